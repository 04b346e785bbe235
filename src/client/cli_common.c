/* cli_common.c — what every wsjob command shares; see cli.h. */
#include "client/cli.h"

#include <errno.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/tls_client.h"
#include "wire/utf8.h"

void cli_error(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "wsjob: %s\n", line);
}

bool cli_common_option(struct cli_opts *o, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_URL:      o->url = arg; return true;
    case CLI_OPT_TOKEN:    o->token = arg; return true;
    case CLI_OPT_CAFILE:   o->cafile = arg; return true;
    case CLI_OPT_INSECURE: o->insecure = true; return true;
    default:               return false;
    }
}

int cli_url(const struct cli_opts *o, struct ws_url *u)
{
    char why[256];
    if (ws_url_parse(u, o->url ? o->url : CLI_DEFAULT_URL, why, sizeof why) < 0) {
        cli_error("%s", why);
        return -1;
    }
    return 0;
}

int cli_tls(const struct cli_opts *o, const struct ws_url *u, struct tls_client_ctx **ctx)
{
    char why[320];
    *ctx = NULL;
    if (!u->tls)
        return 0;
    *ctx = tls_client_ctx_new(o->cafile, o->insecure, why, sizeof why);
    if (!*ctx) {
        cli_error("wss://: %s", why);
        return -1;
    }
    return 0;
}

const char *cli_target(const struct ws_url *u, const char *dflt)
{
    if (u->target[0] == '\0' || strcmp(u->target, "/") == 0)
        return dflt;
    return u->target;
}

int cli_auth_header(const struct cli_opts *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!o->token)
        return 0;
    for (const char *p = o->token; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            cli_error("--token must not hold control characters");
            return -1;
        }
    }
    int n = snprintf(buf, cap, "Authorization: Bearer %s\r\n", o->token);
    if (n < 0 || (size_t)n >= cap) {
        cli_error("--token is too long");
        return -1;
    }
    return 0;
}

int cli_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        cli_error("%s: expected a whole number %llu..%llu, got '%s'", opt,
                  (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_seconds(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 86400) {
        cli_error("%s: expected seconds 0..86400, got '%s'", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static json_t *b64_string(const uint8_t *data, size_t len)
{
    size_t olen = 0, cap = (len + 2) / 3 * 4 + 1;
    unsigned char *out = malloc(cap);
    json_t *s = NULL;
    if (out && mbedtls_base64_encode(out, cap, &olen, data, len) == 0)
        s = json_stringn((const char *)out, olen);
    free(out);
    return s;
}

json_t *cli_input(const uint8_t *bytes, size_t len, bool b64, const char **key)
{
    *key = "input_b64";
    if (b64 || !utf8_valid(bytes, len))
        return b64_string(bytes, len);
    *key = "input";
    json_t *v = json_loadb((const char *)bytes, len, JSON_DECODE_ANY, NULL);
    if (json_is_object(v) || json_is_array(v) || json_is_number(v))
        return v;
    json_decref(v);
    return json_stringn((const char *)bytes, len);
}
