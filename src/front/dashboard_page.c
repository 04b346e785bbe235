/* dashboard_page.c — see dashboard_page.h.
 *
 * index.html marks where the style and the script go (STYLE_MARK,
 * SCRIPT_MARK); they are put there inline, so the page is one request and
 * the policy can forbid every source but these two texts, named by their
 * SHA-256 (CSP Level 2 §4.2.5 hash sources).  The browser hashes exactly
 * the text between the tags, so the hashes are taken of the very bytes
 * inserted. */
#include "front/dashboard_page.h"

#include <mbedtls/base64.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STYLE_MARK  "<!--STYLE-->"
#define SCRIPT_MARK "<!--SCRIPT-->"

/* dashboard_assets.S */
extern const char dashboard_html[], dashboard_html_end[];
extern const char dashboard_js[], dashboard_js_end[];
extern const char dashboard_css[], dashboard_css_end[];

static struct dashboard_page page;
static char *body;                 /* page.body, owned */
static char headers[1024];

/* 'sha256-BASE64' of the text, into out (at least 64 bytes). */
static int hash_source(const char *text, size_t len, char *out, size_t outlen)
{
    unsigned char digest[32];
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    int rc = mbedtls_sha256((const unsigned char *)text, len, digest, 0);
#else
    int rc = mbedtls_sha256_ret((const unsigned char *)text, len, digest, 0);
#endif
    size_t n = 0;
    if (rc != 0 || mbedtls_base64_encode((unsigned char *)out, outlen, &n, digest, sizeof digest) != 0)
        return -1;
    return 0;
}

struct piece {
    const char *p;
    size_t len;
};

/* Splits the HTML at its two marks into five pieces: before, style, between,
 * script, after. */
static int split(struct piece pc[5], char *err, size_t errlen)
{
    const char *html = dashboard_html;
    size_t hlen = (size_t)(dashboard_html_end - dashboard_html);
    const char *st = memmem(html, hlen, STYLE_MARK, strlen(STYLE_MARK));
    const char *sc = memmem(html, hlen, SCRIPT_MARK, strlen(SCRIPT_MARK));
    if (!st || !sc || sc < st) {
        snprintf(err, errlen, "dashboard: index.html lacks %s before %s", STYLE_MARK, SCRIPT_MARK);
        return -1;
    }
    const char *mid = st + strlen(STYLE_MARK), *end = sc + strlen(SCRIPT_MARK);
    pc[0] = (struct piece){ html, (size_t)(st - html) };
    pc[1] = (struct piece){ dashboard_css, (size_t)(dashboard_css_end - dashboard_css) };
    pc[2] = (struct piece){ mid, (size_t)(sc - mid) };
    pc[3] = (struct piece){ dashboard_js, (size_t)(dashboard_js_end - dashboard_js) };
    pc[4] = (struct piece){ end, (size_t)(html + hlen - end) };
    return 0;
}

int dashboard_page_init(char *err, size_t errlen)
{
    struct piece pc[5];
    if (split(pc, err, errlen) < 0)
        return -1;
    static const char *const wrap[5][2] = {
        { "", "" }, { "<style>", "</style>" }, { "", "" }, { "<script>", "</script>" }, { "", "" },
    };
    size_t total = 1;
    for (int i = 0; i < 5; i++)
        total += strlen(wrap[i][0]) + pc[i].len + strlen(wrap[i][1]);
    body = malloc(total);
    if (!body) {
        snprintf(err, errlen, "dashboard: out of memory");
        return -1;
    }
    size_t at = 0;
    for (int i = 0; i < 5; i++) {
        at += (size_t)sprintf(body + at, "%s", wrap[i][0]);
        memcpy(body + at, pc[i].p, pc[i].len);
        at += pc[i].len;
        at += (size_t)sprintf(body + at, "%s", wrap[i][1]);
    }
    char css_hash[64], js_hash[64];
    if (hash_source(pc[1].p, pc[1].len, css_hash, sizeof css_hash) < 0 ||
        hash_source(pc[3].p, pc[3].len, js_hash, sizeof js_hash) < 0) {
        snprintf(err, errlen, "dashboard: cannot hash the page's sources");
        dashboard_page_fini();
        return -1;
    }
    /* connect-src 'self' covers ws: and wss: to this host and port (CSP
     * Level 3 §6.7.2.9); blob: images are the `frames` job's SVG frames.
     * The token a page may carry in its URL is kept from any Referer. */
    snprintf(headers, sizeof headers,
             "Content-Security-Policy: default-src 'none'; script-src 'sha256-%s'; "
             "style-src 'sha256-%s'; img-src blob:; connect-src 'self'; base-uri 'none'; "
             "form-action 'none'; frame-ancestors 'none'\r\n"
             "X-Content-Type-Options: nosniff\r\n"
             "Referrer-Policy: no-referrer\r\n"
             "Cache-Control: no-cache\r\n",
             js_hash, css_hash);
    page = (struct dashboard_page){ .body = body, .len = at, .headers = headers };
    return 0;
}

void dashboard_page_fini(void)
{
    free(body);
    body = NULL;
    page = (struct dashboard_page){ 0 };
}

const struct dashboard_page *dashboard_page(void)
{
    return &page;
}
