/* handler_fetch.c — `fetch`: one HTTP GET to an allowed host (SPEC §7).
 *
 * Input {"url":"http://host[:port]/path","max_bytes":B}.  B is optional,
 * 1..--max-message, default 1 MiB (or --max-message if smaller).  The
 * output is the response body; a status outside 2xx is a handler_error
 * naming it (redirects are not followed, so a 3xx is one too).  A body over
 * B is too_large, and the transfer stops there.
 *
 * Who may be reached is the operator's `--fetch-allow` list, none by
 * default (then every fetch is forbidden).  An entry is
 *   HOST        the scheme's default port only (80, or 443 for https)
 *   HOST:PORT   that port
 *   HOST:*      any port
 * with an IPv6 address written in brackets, "[::1]:8080".  The check
 * compares the host as written in the URL (after libcurl's own parser, the
 * same parsed URL the transfer then uses, so the two cannot disagree),
 * case-insensitively.  It never resolves names: a listed name that resolves
 * to an internal address (DNS rebinding) reaches that address, so list only
 * names you control, or addresses.  Proxy settings from the environment are
 * ignored so that the host checked is the host connected to.
 *
 * Runs on I/O threads: every call owns its easy handle; libcurl's global
 * set-up happens once, before the first transfer.  Cancel is seen by the
 * transfer's progress callback, which libcurl calls often while data flows
 * and about once a second while it waits; the deadline is the transfer's
 * own timeout. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "handlers/handler_args.h"
#include "handlers/handlers_builtin.h"

#define FETCH_DEFAULT_MAX ((int64_t)1 << 20)
#define HOST_MAX 256

/* The body being received; ctx and curl are borrowed for the callbacks. */
struct body {
    char     *p;          /* owned, freed by fetch_run's caller */
    size_t    len, cap, max;
    long      status;     /* set once a non-2xx status stopped the transfer */
    int       too_large;
    wsjob_ctx *ctx;
    CURL     *curl;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Copies "[v6]" without its brackets, anything else as it is. */
static int bare_host(const char *host, size_t len, char out[HOST_MAX])
{
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= HOST_MAX)
        return -1;
    memcpy(out, host, len);
    out[len] = '\0';
    return 0;
}

/* Splits a --fetch-allow entry into host and port ("" when absent). */
static int split_entry(const char *entry, char host[HOST_MAX], const char **port)
{
    const char *colon = strrchr(entry, ':');
    const char *close = strchr(entry, ']');
    size_t hlen = strlen(entry);
    *port = "";
    if (entry[0] == '[') {
        if (!close)
            return -1;
        if (close[1] == ':')
            *port = close + 2;
        else if (close[1] != '\0')
            return -1;
        hlen = (size_t)(close + 1 - entry);
    } else if (colon && colon == strchr(entry, ':')) {
        /* One colon: HOST:PORT.  More: a bare IPv6 address, no port. */
        *port = colon + 1;
        hlen = (size_t)(colon - entry);
    }
    return bare_host(entry, hlen, host);
}

static int entry_allows(const char *entry, const char *host, const char *port,
                        int default_port)
{
    char ehost[HOST_MAX];
    const char *eport;
    if (split_entry(entry, ehost, &eport) != 0 || strcasecmp(ehost, host) != 0)
        return 0;
    if (eport[0] == '\0')
        return default_port;
    return strcmp(eport, "*") == 0 || strcmp(eport, port) == 0;
}

/* Scheme, host and port of the URL, from libcurl; curl_free'd. */
struct target {
    char *scheme, *host, *port;
};

static void target_free(struct target *t)
{
    curl_free(t->scheme);
    curl_free(t->host);
    curl_free(t->port);
}

static int target_get(CURLU *url, struct target *t)
{
    if (curl_url_get(url, CURLUPART_SCHEME, &t->scheme, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_HOST, &t->host, 0) != CURLUE_OK ||
        curl_url_get(url, CURLUPART_PORT, &t->port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        return -1;
    return 0;
}

static int target_allowed(wsjob_ctx *ctx, const struct target *t)
{
    int https = strcasecmp(t->scheme, "https") == 0;
    if (!https && strcasecmp(t->scheme, "http") != 0)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST,
                          "\"url\" must be http:// or https://");
    char host[HOST_MAX];
    if (bare_host(t->host, strlen(t->host), host) != 0)
        return wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "\"url\" has a bad host");
    int default_port = strcmp(t->port, https ? "443" : "80") == 0;
    const char *entry = wsjob_option(ctx, "fetch-allow", 0);
    if (!entry)
        return wsjob_fail(ctx, WSJOB_E_FORBIDDEN, "fetch is disabled (no --fetch-allow)");
    for (unsigned i = 1; entry; entry = wsjob_option(ctx, "fetch-allow", i++))
        if (entry_allows(entry, host, t->port, default_port))
            return WSJOB_OK;
    return wsjob_fail(ctx, WSJOB_E_FORBIDDEN, "%s port %s is not in --fetch-allow",
                      host, t->port);
}

/* Checks the parsed URL against --fetch-allow; records the failure. */
static int check_allowed(wsjob_ctx *ctx, CURLU *url)
{
    struct target t = { 0 };
    int rc = target_get(url, &t) == 0
        ? target_allowed(ctx, &t)
        : wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "\"url\" needs a scheme and a host");
    target_free(&t);
    return rc;
}

static int body_grow(struct body *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 16384;
    while (cap < need)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Returning less than n aborts the transfer (CURLE_WRITE_ERROR). */
static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    long status = 0;
    curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        b->status = status;   /* an error page is not worth downloading */
        return 0;
    }
    if (n > b->max - b->len) {
        b->too_large = 1;
        return 0;
    }
    if (b->len + n > b->cap && body_grow(b, b->len + n) != 0)
        return 0;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    (void)size;   /* always 1 */
    return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct body *b = arg;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return wsjob_cancelled(b->ctx) ? 1 : 0;
}

static int set_options(CURL *curl, CURLU *url, struct body *b, int64_t timeout_ms,
                       char *errbuf)
{
    CURLcode rc = CURLE_OK;
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(curl, opt, val)
    SET(CURLOPT_CURLU, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_NOSIGNAL, 1L);       /* threads: no SIGALRM around DNS */
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could leave the list */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)b->max);
    SET(CURLOPT_USERAGENT, "wsjobd");
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_data);
    SET(CURLOPT_WRITEDATA, b);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, b);
    SET(CURLOPT_NOPROGRESS, 0L);
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

/* Turns the end of a transfer into the job's result. */
static int finish(wsjob_ctx *ctx, CURL *curl, CURLcode rc, struct body *b,
                  const char *errbuf)
{
    /* The transfer's timeout is the job's deadline, so its expiry is the
     * job's, even when the clock has not quite reached it here. */
    if (wsjob_cancelled(ctx) || rc == CURLE_OPERATION_TIMEDOUT)
        return wsjob_fail(ctx, WSJOB_E_CANCELLED, "fetch stopped");
    if (b->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return wsjob_fail(ctx, WSJOB_E_TOO_LARGE, "body is over %zu bytes", b->max);
    long status = b->status;
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status && (status < 200 || status > 299))
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "HTTP status %ld", status);
    if (rc != CURLE_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "fetch failed: %s",
                          errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (wsjob_output(ctx, b->p ? b->p : "", b->len) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}

static int transfer(wsjob_ctx *ctx, CURLU *url, size_t max)
{
    int64_t left = wsjob_remaining_ms(ctx);
    if (left <= 0 || wsjob_cancelled(ctx))
        return wsjob_fail(ctx, WSJOB_E_CANCELLED, "no time left to fetch");
    CURL *curl = curl_easy_init();
    if (!curl)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot start a transfer");
    struct body b = { .max = max, .ctx = ctx, .curl = curl };
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc;
    /* +1: remaining_ms rounds down, and the timer must not fire early. */
    if (set_options(curl, url, &b, left + 1, errbuf) != 0)
        rc = wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot set up the transfer");
    else
        rc = finish(ctx, curl, curl_easy_perform(curl), &b, errbuf);
    curl_easy_cleanup(curl);
    free(b.p);
    return rc;
}

/* Parses the input into a URL handle (the caller's) and a byte limit. */
static int read_args(wsjob_ctx *ctx, CURLU *url, size_t *max)
{
    static const char *const known[] = { "url", "max_bytes", NULL };
    json_t *obj = args_object(ctx, known);
    if (!obj)
        return WSJOB_ERR;
    size_t limit = wsjob_max_output(ctx);
    if (limit > INT64_MAX)
        limit = INT64_MAX;
    int64_t def = FETCH_DEFAULT_MAX < (int64_t)limit ? FETCH_DEFAULT_MAX : (int64_t)limit;
    const char *text;
    size_t len;
    int64_t bytes;
    int rc = args_string(ctx, obj, "url", &text, &len);
    if (rc == WSJOB_OK)
        rc = args_int_opt(ctx, obj, "max_bytes", 1, (int64_t)limit, def, &bytes);
    if (rc == WSJOB_OK && (strlen(text) != len ||
                           curl_url_set(url, CURLUPART_URL, text, 0) != CURLUE_OK))
        rc = wsjob_fail(ctx, WSJOB_E_BAD_REQUEST, "\"url\" is not a valid URL");
    json_decref(obj);
    if (rc == WSJOB_OK)
        *max = (size_t)bytes;
    return rc;
}

int handler_fetch(wsjob_ctx *ctx)
{
    if (pthread_once(&curl_once, curl_init) != 0 || curl_init_rc != CURLE_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "libcurl failed to start");
    CURLU *url = curl_url();
    if (!url)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "out of memory");
    size_t max = 0;
    int rc = read_args(ctx, url, &max);
    if (rc == WSJOB_OK)
        rc = check_allowed(ctx, url);
    if (rc == WSJOB_OK)
        rc = transfer(ctx, url, max);
    curl_url_cleanup(url);
    return rc;
}
