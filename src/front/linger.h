/* linger.h — the lingering close every connection the front ends goes
 * through: plain and TLS connections, sockets refused at accept, and the
 * agent check's answers. */
#ifndef WSJOBD_LINGER_H
#define WSJOBD_LINGER_H

struct bufferevent;

/* Takes bev (a socket bufferevent that closes its fd when freed): sends
 * what its output holds, shuts down the sending side, drops what the peer
 * still sends, and frees bev at the peer's FIN or after LINGER_MS.  -1 when
 * no linger can be had (too many at once, the loop is ending, no memory):
 * bev stays the caller's, to free at once. */
int linger_start(struct bufferevent *bev);

/* linger_start(), and ended(arg) is called once the socket is closed
 * (also from linger_end_all), so a caller can bound its own lingerers. */
int linger_start_notify(struct bufferevent *bev, void (*ended)(void *arg), void *arg);

/* Ends every linger now (shutdown: nothing would run them any more). */
void linger_end_all(void);

#endif
