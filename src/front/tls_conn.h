/* tls_conn.h — TLS (mbedTLS) for the front's connections: a bufferevent
 * that the rest of conn.c uses exactly like a plain socket one. */
#ifndef WSJOBD_TLS_CONN_H
#define WSJOBD_TLS_CONN_H

#include <stddef.h>

struct front;
struct bufferevent;

/* Loads the certificate chain and key, at start-up and again on SIGHUP:
 * connections accepted from then on get the new pair, open ones keep the
 * one they started with.  0, or -1 with a reason naming the file (and the
 * pair in use stays). */
int tls_server_load(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* A bufferevent that speaks TLS on fd (the server side), or NULL (fd stays
 * the caller's).  It behaves like bufferevent_socket_new(..., CLOSE_ON_FREE)
 * seen from above: plaintext in its input and output buffers, the write
 * callback (from the loop, never from inside an evbuffer_add) once the
 * output is handed on, an event on EOF or any TLS failure.
 * bufferevent_free() sends close_notify after what was already written,
 * then closes fd lingering: once the peer has closed its side, or after
 * 2 s.  A stalled or failed handshake closes fd at once. */
struct bufferevent *tls_conn_new(struct front *f, int fd);

/* At exit, before event_base_free(): joins the handshake threads (after
 * the steps they are running), frees the sessions left on them, drops the
 * loaded pair and closes the sockets still flushing their last bytes. */
void tls_server_free(void);

#endif
