/* tls_conn.c — placeholder until TLS lands: refuses TLS listeners at
 * start-up so nothing half-works. */
#include "tls_conn.h"

#include <stddef.h>
#include <stdio.h>

int tls_server_load(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    (void)cert_file;
    (void)key_file;
    snprintf(err, errlen, "TLS is not available in this build");
    return -1;
}

struct bufferevent *tls_conn_new(struct front *f, int fd)
{
    (void)f;
    (void)fd;
    return NULL;
}
