/* tls_conn.h — TLS (mbedTLS) for the front's connections: a bufferevent
 * that the rest of conn.c uses exactly like a plain socket one. */
#ifndef WSJOBD_TLS_CONN_H
#define WSJOBD_TLS_CONN_H

#include <stddef.h>

struct front;
struct bufferevent;

/* Loads the certificate chain and key (start-up and SIGHUP).  0, or -1
 * with a reason naming the file. */
int tls_server_load(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* A bufferevent that speaks TLS on fd (the server side), or NULL. */
struct bufferevent *tls_conn_new(struct front *f, int fd);

#endif
