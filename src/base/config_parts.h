/* config_parts.h — what the files of the option parser share, and nobody
 * else:
 *
 *   config_options.c  the table of every option, and what each accepts
 *   config_store.c    one value, from any source, into its typed field
 *   config.c          the sources (defaults, file, command line), the checks
 *                     across options, --help, and the API of config.h */
#ifndef WSJOBD_CONFIG_PARTS_H
#define WSJOBD_CONFIG_PARTS_H

#include <stdint.h>

#include "base/config.h"

enum kind {
    K_UINT,     /* unsigned, min..max */
    K_CORES,    /* K_UINT, or "auto" for the CPUs this process may run on */
    K_SIZE,     /* size_t with k/M/G suffixes, min..max */
    K_MEMORY,   /* K_SIZE, or "auto" for a share of the memory we may use */
    K_STR,      /* char *, checked by opt_def.check */
    K_STRS,     /* struct config_strs, each checked by opt_def.check */
    K_ADDRS,    /* struct config_addrs */
    K_CIDRS,    /* struct config_cidrs */
    K_LEVEL,    /* int, enum log_level */
    K_FLAG,     /* bool, takes no value */
    K_HELP,
    K_VERSION
};

enum {
    F_REPEAT = 1 << 0,  /* a list: each occurrence appends */
    F_ARGS   = 1 << 1,  /* command line only */
    F_OFF    = 1 << 2,  /* 0 means off and is exempt from the minimum */
    F_POW2   = 1 << 3,  /* rounded up to a power of two */
    F_RESTART = 1 << 4  /* sizes or starts something once: a reload keeps it */
};

/* Where a value came from, lowest precedence first. */
enum { SRC_DEFAULT, SRC_FILE, SRC_ARGS };

typedef int check_fn(const char *v, char *why, size_t whylen);

struct opt_def {
    const char *name;       /* long option and config file key */
    char        letter;     /* short option, or 0 */
    enum kind   kind;
    unsigned    flags;
    size_t      field;      /* offset of the typed field in struct config */
    uint64_t    min, max;   /* K_UINT, K_CORES, K_SIZE, K_MEMORY */
    check_fn   *check;      /* K_STR, K_STRS: NULL accepts any text */
    const char *def[3];     /* default values, NULL-terminated */
    const char *arg;        /* what --help calls the value */
    const char *help;       /* for --help; '\n' continues the column */
};

extern const struct opt_def cfg_options[];
extern const size_t cfg_n_options;
#define CONFIG_OPTION (&cfg_options[0])   /* -c, --config */

struct raw_value {
    char    *text;   /* owned */
    unsigned line;   /* config file line, 0 for other sources */
};

/* The texts behind each option's typed field, in the same order as a
 * list's entries, so entry i of a list came from raw.v[i]. */
struct raw {
    struct raw_value *v;
    size_t n;
    int    src;      /* SRC_* of every value in v */
};

struct config_priv {
    char **argv;     /* owned copy of the command line, for config_reload */
    int    argc;
    struct raw raw[];  /* one per option, in table order */
};

const struct opt_def *cfg_find_option(const char *name, size_t len);

/* "auto" for --memory-budget, before the check against --max-message. */
uint64_t cfg_auto_memory_budget(void);

/* Errors: each writes its message into err and returns CONFIG_ERR. */
__attribute__((format(printf, 3, 4)))
int cfg_fail(char *err, size_t errlen, const char *fmt, ...);
/* "wsjobd: FILE:LINE: key: why" or "wsjobd: --key: why". */
__attribute__((format(printf, 7, 8)))
int cfg_fail_at(const struct config *c, const struct opt_def *o, int src,
                unsigned line, char *err, size_t errlen, const char *fmt, ...);
int cfg_out_of_memory(char *err, size_t errlen);

/* Checks v and stores it in the option's field, keeping its text. */
int cfg_store(struct config *c, const struct opt_def *o, const char *v, int src,
              unsigned line, char *err, size_t errlen);
/* Frees the option's field and texts. */
void cfg_clear_option(struct config *c, const struct opt_def *o);

#endif
