/* listener.h — listening sockets: bound from the config or inherited from
 * systemd (socket activation), accepting into conn_new(). */
#ifndef WSJOBD_LISTENER_H
#define WSJOBD_LISTENER_H

#include <stddef.h>

struct front;
struct netaddr;
struct listeners;

/* Binds every --listen address (or takes systemd's sockets when
 * LISTEN_FDS is set).  NULL with a reason on failure. */
struct listeners *listeners_open(struct front *f, char *err, size_t errlen);

/* Starts accepting (after the workers are up). */
void listeners_enable(struct listeners *l);

/* Closes every listening socket at once: new connections are refused. */
void listeners_close(struct listeners *l);

/* A listening TCP socket (non-blocking, close-on-exec) bound to a; [::]
 * means IPv6 only.  The fd, or -1 with a reason. */
int listener_bind(const struct netaddr *a, int backlog, char *err, size_t errlen);

/* The local port of a bound socket (what port 0 became), or 0. */
int listener_port(int fd);

/* The port bound by the first listener (tests bind port 0). */
int listeners_first_port(const struct listeners *l);

#endif
