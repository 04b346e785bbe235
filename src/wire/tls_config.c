/* tls_config.c — the TLS policy, the process's random generator, and
 * loading a server's certificate chain and key. */
#include "wire/tls_config.h"

#include <errno.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PEM_FILE_MAX (1u << 20)   /* far above any real chain; stops a wrong path to a huge file */

/* Server order is the preference order (mbedTLS servers pick by their own
 * list): AES-128-GCM first, it runs on AES-NI; ChaCha20 for CPUs without. */
static const int aead_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

struct tls_creds {
    unsigned refs;              /* the current set holds one, each connection one */
    mbedtls_ssl_config conf;    /* points into crt and key: they live and die together */
    mbedtls_x509_crt crt;       /* leaf, then the rest of the chain */
    mbedtls_pk_context key;
};

void tls_strerror(int rc, char *buf, size_t len)
{
    char why[160];
    mbedtls_strerror(rc, why, sizeof why);
    snprintf(buf, len, "%s (-0x%04x)", why, (unsigned)-rc);
}

/* ---- random generator ---------------------------------------------------- */

/* One CTR_DRBG per process.  The daemon seeds it before it forks its
 * workers; a child that inherited the state must not draw the parent's
 * numbers, so the generator remembers whose it is and reseeds in a new
 * process.  mbedtls_ctr_drbg_random locks the context itself (the Debian
 * build has MBEDTLS_THREADING_C), so the CLI's threads may share it. */
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;
static pid_t rng_owner;   /* 0: never seeded */

static int rng_seed_locked(void)
{
    pid_t me = getpid();
    if (rng_owner == me)
        return 0;
    if (rng_owner)   /* a fork: fresh entropy, our pid as additional input */
        return mbedtls_ctr_drbg_reseed(&rng_drbg, (const unsigned char *)&me, sizeof me);
    static const char who[] = "wsjobd tls";
    mbedtls_entropy_init(&rng_entropy);
    mbedtls_ctr_drbg_init(&rng_drbg);
    return mbedtls_ctr_drbg_seed(&rng_drbg, mbedtls_entropy_func, &rng_entropy,
                                 (const unsigned char *)who, sizeof who - 1);
}

static int rng_ready(char *err, size_t errlen)
{
    pthread_mutex_lock(&rng_lock);
    int rc = rng_seed_locked();
    if (rc == 0)
        rng_owner = getpid();
    pthread_mutex_unlock(&rng_lock);
    if (rc == 0)
        return 0;
    char why[200];
    tls_strerror(rc, why, sizeof why);
    snprintf(err, errlen, "cannot seed the random generator: %s", why);
    return -1;
}

int tls_policy_apply(mbedtls_ssl_config *conf, int endpoint, char *err, size_t errlen)
{
    if (rng_ready(err, errlen) < 0)
        return -1;
    int rc = mbedtls_ssl_config_defaults(conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc) {
        char why[200];
        tls_strerror(rc, why, sizeof why);
        snprintf(err, errlen, "TLS defaults: %s", why);
        return -1;
    }
    mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(conf, aead_suites);
    mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &rng_drbg);
    return 0;
}

/* ---- certificate and key --------------------------------------------------- */

/* The whole file plus a NUL (mbedTLS's PEM parser wants one and counts it
 * in the length).  Read here rather than by mbedTLS so a missing file says
 * why in errno's words, and so the key's copy can be wiped. */
static unsigned char *read_pem(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = malloc(PEM_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_FILE_MAX + 1, fp) : 0;
    int bad = !buf || ferror(fp);
    int saved = errno;
    fclose(fp);
    if (bad || n > PEM_FILE_MAX) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 !buf ? "out of memory" : bad ? strerror(saved) : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n + 1;
    return buf;
}

static void wipe_free(unsigned char *buf, size_t len)
{
    if (!buf)
        return;
    mbedtls_platform_zeroize(buf, len);
    free(buf);
}

static int fail_mbedtls(char *err, size_t errlen, const char *path, int rc)
{
    char why[200];
    tls_strerror(rc, why, sizeof why);
    snprintf(err, errlen, "%s: %s", path, why);
    return -1;
}

static int load_chain(mbedtls_x509_crt *crt, const char *path, char *err, size_t errlen)
{
    size_t len;
    unsigned char *pem = read_pem(path, &len, err, errlen);
    if (!pem)
        return -1;
    int rc = strstr((char *)pem, "-----BEGIN CERTIFICATE-----")
                 ? mbedtls_x509_crt_parse(crt, pem, len) : 1;
    free(pem);
    if (rc < 0)
        return fail_mbedtls(err, errlen, path, rc);
    if (rc > 0 && crt->version == 0) {
        snprintf(err, errlen, "%s: no PEM certificate in the file", path);
        return -1;
    }
    if (rc > 0) {   /* a chain with a bad link would fail clients, not us: refuse it now */
        snprintf(err, errlen, "%s: %d certificate(s) in the chain could not be parsed", path, rc);
        return -1;
    }
    return 0;
}

static int load_key(mbedtls_pk_context *key, const char *path, char *err, size_t errlen)
{
    size_t len;
    unsigned char *pem = read_pem(path, &len, err, errlen);
    if (!pem)
        return -1;
    int rc = mbedtls_pk_parse_key(key, pem, len, NULL, 0);
    wipe_free(pem, len);
    if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
        snprintf(err, errlen, "%s: the key is encrypted; give an unencrypted PEM key", path);
        return -1;
    }
    return rc ? fail_mbedtls(err, errlen, path, rc) : 0;
}

static int creds_fill(struct tls_creds *c, const char *cert_file, const char *key_file,
                      char *err, size_t errlen)
{
    if (load_chain(&c->crt, cert_file, err, errlen) < 0 ||
        load_key(&c->key, key_file, err, errlen) < 0)
        return -1;
    if (mbedtls_pk_check_pair(&c->crt.pk, &c->key) != 0) {
        snprintf(err, errlen, "%s: the key does not match the certificate in %s", key_file, cert_file);
        return -1;
    }
    if (tls_policy_apply(&c->conf, MBEDTLS_SSL_IS_SERVER, err, errlen) < 0)
        return -1;
    int rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->key);
    return rc ? fail_mbedtls(err, errlen, cert_file, rc) : 0;
}

static void creds_free(struct tls_creds *c)
{
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->crt);
    mbedtls_pk_free(&c->key);
    free(c);
}

struct tls_creds *tls_creds_load(const char *cert_file, const char *key_file,
                                 char *err, size_t errlen)
{
    struct tls_creds *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->refs = 1;
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->crt);
    mbedtls_pk_init(&c->key);
    if (creds_fill(c, cert_file, key_file, err, errlen) < 0) {
        creds_free(c);
        return NULL;
    }
    return c;
}

struct tls_creds *tls_creds_ref(struct tls_creds *c)
{
    c->refs++;
    return c;
}

void tls_creds_unref(struct tls_creds *c)
{
    if (c && --c->refs == 0)
        creds_free(c);
}

const mbedtls_ssl_config *tls_creds_conf(const struct tls_creds *c)
{
    return &c->conf;
}

void tls_creds_describe(const struct tls_creds *c, char *buf, size_t len)
{
    char subject[256];
    if (mbedtls_x509_dn_gets(subject, sizeof subject, &c->crt.subject) < 0)
        snprintf(subject, sizeof subject, "?");
    const mbedtls_x509_time *t = &c->crt.valid_to;
    snprintf(buf, len, "%s, valid until %04d-%02d-%02d%s", subject, t->year, t->mon, t->day,
             mbedtls_x509_time_is_past(t) ? " (EXPIRED)" : "");
}
