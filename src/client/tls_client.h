/* tls_client.h — the client side of wss:// for the wsjob CLI: a TLS 1.2
 * handshake over a socket the caller has already connected, then I/O
 * shaped like recv(2) and send(2).
 *
 * A tls_client_ctx holds the trust settings and is made once per run;
 * every connection of the run (wsjob bench opens many) shares it, from any
 * thread: it is read-only once made.  A tls_client is one connection,
 * used by one thread at a time.  The socket stays the caller's throughout:
 * nothing here closes it. */
#ifndef WSJOBD_TLS_CLIENT_H
#define WSJOBD_TLS_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

struct tls_client_ctx;
struct tls_client;

/* The system's trust store, used when no cafile is given. */
#define TLS_CLIENT_SYSTEM_CAFILE "/etc/ssl/certs/ca-certificates.crt"

/* Trust for a run.  cafile: PEM bundle of trusted certificates (NULL: the
 * system store).  insecure: accept any certificate (--insecure); cafile is
 * then not read.  NULL with a reason. */
struct tls_client_ctx *tls_client_ctx_new(const char *cafile, int insecure,
                                          char *err, size_t errlen);
void tls_client_ctx_free(struct tls_client_ctx *ctx);   /* after its connections */

/* Handshakes on fd, a connected stream socket, blocking or not (a
 * non-blocking one is waited for with poll(2)), for at most timeout_ms
 * (< 0: no limit).  host is the URL's host: sent as SNI and matched against
 * the certificate — a DNS name, or an IPv4/IPv6 literal (brackets allowed)
 * matched against the certificate's IP addresses.  NULL with a reason (a
 * failed verification says why). */
struct tls_client *tls_client_connect(struct tls_client_ctx *ctx, int fd, const char *host,
                                      int timeout_ms, char *err, size_t errlen);

/* Like recv(2): bytes read (> 0); 0 once the server has closed (its
 * close_notify, or the TCP end); -1 with errno EAGAIN when a non-blocking
 * socket has nothing yet, or another errno (EPROTO for a TLS error; see
 * tls_client_error). */
ssize_t tls_client_recv(struct tls_client *c, void *buf, size_t len);

/* Like send(2): bytes taken (> 0, perhaps fewer than len: at most one
 * 16 KiB record per call), or -1 with errno.  After EAGAIN, call again
 * with the same buf and len: mbedTLS holds the record it already made. */
ssize_t tls_client_send(struct tls_client *c, const void *buf, size_t len);

/* Bytes already decrypted and waiting.  poll(2) on the socket cannot see
 * them: drain them with tls_client_recv before waiting for readability. */
size_t tls_client_pending(const struct tls_client *c);

/* What the last failure was, in words ("" if none). */
const char *tls_client_error(const struct tls_client *c);

/* Sends close_notify if it can without blocking, and frees c; fd stays
 * open. */
void tls_client_free(struct tls_client *c);

#endif
