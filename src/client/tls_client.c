/* tls_client.c — TLS 1.2 client over a connected socket, for the wsjob
 * CLI's wss:// URLs.  mbedTLS talks to the socket directly through the BIO
 * callbacks below; the policy (versions, suites) is tls_config's. */
#include "client/tls_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <mbedtls/asn1.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "wire/tls_config.h"

#define HOST_MAX 256
#define SAN_IP_TAG (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)   /* GeneralName iPAddress, RFC 5280 §4.2.1.6 */

struct tls_client_ctx {
    mbedtls_ssl_config conf;   /* read-only once made: connections share it */
    mbedtls_x509_crt ca;       /* conf points at it */
    int insecure;
};

struct tls_client {
    mbedtls_ssl_context ssl;
    int fd;                    /* the caller's */
    int sys_errno;             /* errno of the last failed socket call */
    int closing;               /* sending close_notify: never block */
    int established;
    unsigned char ip[16];      /* host as an IP literal ... */
    size_t iplen;              /* ... or 0: a DNS name, which mbedTLS checks */
    char error[320];
};

/* ---- trust ------------------------------------------------------------------ */

struct tls_client_ctx *tls_client_ctx_new(const char *cafile, int insecure,
                                          char *err, size_t errlen)
{
    struct tls_client_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&ctx->conf);
    mbedtls_x509_crt_init(&ctx->ca);
    ctx->insecure = insecure;
    if (tls_policy_apply(&ctx->conf, MBEDTLS_SSL_IS_CLIENT, err, errlen) < 0)
        goto fail;
    if (insecure) {
        mbedtls_ssl_conf_authmode(&ctx->conf, MBEDTLS_SSL_VERIFY_NONE);
        return ctx;
    }
    const char *path = cafile ? cafile : TLS_CLIENT_SYSTEM_CAFILE;
    if (access(path, R_OK) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    /* A store may hold certificates mbedTLS cannot parse (> 0 of them);
     * the rest still count.  None at all is an error. */
    int rc = mbedtls_x509_crt_parse_file(&ctx->ca, path);
    if (rc < 0 || ctx->ca.version == 0) {
        char why[200];
        if (rc < 0)
            tls_strerror(rc, why, sizeof why);
        snprintf(err, errlen, "%s: %s", path, rc < 0 ? why : "no certificate in the file");
        goto fail;
    }
    mbedtls_ssl_conf_ca_chain(&ctx->conf, &ctx->ca, NULL);
    mbedtls_ssl_conf_authmode(&ctx->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    return ctx;
fail:
    tls_client_ctx_free(ctx);
    return NULL;
}

void tls_client_ctx_free(struct tls_client_ctx *ctx)
{
    if (!ctx)
        return;
    mbedtls_ssl_config_free(&ctx->conf);
    mbedtls_x509_crt_free(&ctx->ca);
    free(ctx);
}

/* ---- IP addresses in the certificate ------------------------------------------ */

/* mbedTLS 2.28 checks names against dNSName entries only, so for
 * wss://127.0.0.1 the iPAddress entries of subjectAltName are matched here,
 * straight from the extension's DER: GeneralNames ::= SEQUENCE OF
 * GeneralName, iPAddress [7] IMPLICIT OCTET STRING (4 or 16 bytes). */
static int san_has_ip(unsigned char *p, const unsigned char *end,
                      const unsigned char *ip, size_t iplen)
{
    size_t len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
        return 0;
    end = p + len;
    while (p < end) {
        unsigned char tag = *p++;
        if (mbedtls_asn1_get_len(&p, end, &len))
            return 0;
        if (tag == SAN_IP_TAG && len == iplen && memcmp(p, ip, iplen) == 0)
            return 1;
        p += len;
    }
    return 0;
}

/* Extensions ::= SEQUENCE OF SEQUENCE { extnID, critical BOOLEAN DEFAULT
 * FALSE, extnValue OCTET STRING }; crt->v3_ext starts at the outer SEQUENCE. */
static int cert_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
    unsigned char *p = crt->v3_ext.p;
    if (!p)
        return 0;
    const unsigned char *end = p + crt->v3_ext.len;
    size_t len;
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
        return 0;
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
            return 0;
        const unsigned char *ext_end = p + len;
        mbedtls_asn1_buf oid;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID))
            return 0;
        oid.p = p;
        p += oid.len;
        int critical;
        (void)mbedtls_asn1_get_bool(&p, ext_end, &critical);   /* absent means FALSE */
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING))
            return 0;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) == 0)
            return san_has_ip(p, p + len, ip, iplen);
        p = (unsigned char *)ext_end;
    }
    return 0;
}

static int verify_ip(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_client *c = arg;
    if (depth == 0 && !cert_has_ip(crt, c->ip, c->iplen))
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* ---- the socket ------------------------------------------------------------------ */

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
    struct tls_client *c = arg;
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL | (c->closing ? MSG_DONTWAIT : 0));
        if (n >= 0)
            return (int)n;   /* at most one record buffer */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        c->sys_errno = errno;
        return MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
    struct tls_client *c = arg;
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return (int)n;   /* 0: the TCP end, which mbedTLS reports as EOF */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MBEDTLS_ERR_SSL_WANT_READ;
        c->sys_errno = errno;
        return MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

static int64_t now_ms(void)
{
    return shm_now_ns() / 1000000;
}

/* 0 when fd is ready for events; -1 with errno, ETIMEDOUT at the deadline
 * (< 0: none). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- connecting ---------------------------------------------------------------- */

static void say(struct tls_client *c, const char *what, int rc)
{
    char why[200];
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        /* One " reason\n" line per flag: made into one line. */
        mbedtls_x509_crt_verify_info(why, sizeof why, " ", mbedtls_ssl_get_verify_result(&c->ssl));
        for (char *s = why; *s; s++)
            if (*s == '\n')
                *s = s[1] ? ';' : '\0';
        snprintf(c->error, sizeof c->error, "certificate verification failed:%s", why);
        return;
    }
    if (c->sys_errno && (rc == MBEDTLS_ERR_NET_SEND_FAILED || rc == MBEDTLS_ERR_NET_RECV_FAILED)) {
        snprintf(c->error, sizeof c->error, "%s: %s", what, strerror(c->sys_errno));
        return;
    }
    tls_strerror(rc, why, sizeof why);
    snprintf(c->error, sizeof c->error, "%s: %s", what, why);
}

/* SNI and the name check for a DNS name; our own check for an IP literal
 * (RFC 6066 §3 sends no SNI for addresses). */
static int set_peer_name(struct tls_client *c, const struct tls_client_ctx *ctx, const char *host)
{
    char name[HOST_MAX];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof name) {
        snprintf(c->error, sizeof c->error, "bad host name");
        return -1;
    }
    memcpy(name, host, n);
    name[n] = '\0';
    if (inet_pton(AF_INET, name, c->ip) == 1)
        c->iplen = 4;
    else if (inet_pton(AF_INET6, name, c->ip) == 1)
        c->iplen = 16;
    if (c->iplen) {
        if (!ctx->insecure)
            mbedtls_ssl_set_verify(&c->ssl, verify_ip, c);
        return 0;
    }
    int rc = mbedtls_ssl_set_hostname(&c->ssl, name);
    if (rc)
        say(c, "host name", rc);
    return rc ? -1 : 0;
}

static int handshake(struct tls_client *c, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int rc = mbedtls_ssl_handshake(&c->ssl);
        if (rc == 0)
            return 0;
        short ev = rc == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : rc == MBEDTLS_ERR_SSL_WANT_WRITE ? POLLOUT : 0;
        if (!ev) {
            say(c, "TLS handshake", rc);
            return -1;
        }
        if (wait_fd(c->fd, ev, deadline) < 0) {
            snprintf(c->error, sizeof c->error, "TLS handshake: %s", strerror(errno));
            return -1;
        }
    }
}

struct tls_client *tls_client_connect(struct tls_client_ctx *ctx, int fd, const char *host,
                                      int timeout_ms, char *err, size_t errlen)
{
    struct tls_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = fd;
    mbedtls_ssl_init(&c->ssl);
    int rc = mbedtls_ssl_setup(&c->ssl, &ctx->conf);
    if (rc)
        say(c, "TLS set-up", rc);
    else
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    if (rc || set_peer_name(c, ctx, host) < 0 || handshake(c, timeout_ms) < 0) {
        snprintf(err, errlen, "%s", c->error);
        tls_client_free(c);
        return NULL;
    }
    c->established = 1;
    return c;
}

/* ---- I/O ------------------------------------------------------------------------ */

static ssize_t io_failed(struct tls_client *c, const char *what, int rc)
{
    say(c, what, rc);
    errno = c->sys_errno ? c->sys_errno : EPROTO;
    return -1;
}

ssize_t tls_client_recv(struct tls_client *c, void *buf, size_t len)
{
    int n = mbedtls_ssl_read(&c->ssl, buf, len);
    if (n >= 0)
        return n;
    if (n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || n == MBEDTLS_ERR_SSL_CONN_EOF)
        return 0;
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    return io_failed(c, "TLS read", n);
}

ssize_t tls_client_send(struct tls_client *c, const void *buf, size_t len)
{
    int n = mbedtls_ssl_write(&c->ssl, buf, len);
    if (n >= 0)
        return n;
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    return io_failed(c, "TLS write", n);
}

size_t tls_client_pending(const struct tls_client *c)
{
    return mbedtls_ssl_get_bytes_avail(&c->ssl);
}

const char *tls_client_error(const struct tls_client *c)
{
    return c->error;
}

void tls_client_free(struct tls_client *c)
{
    if (!c)
        return;
    if (c->established) {
        c->closing = 1;
        (void)mbedtls_ssl_close_notify(&c->ssl);   /* best effort: we are leaving anyway */
    }
    mbedtls_ssl_free(&c->ssl);
    free(c);
}
