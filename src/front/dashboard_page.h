/* dashboard_page.h — GET /: the dashboard, one page (HTML with its style
 * and script inline) built into the binary, with the headers that lock it
 * to its own origin. */
#ifndef WSJOBD_DASHBOARD_PAGE_H
#define WSJOBD_DASHBOARD_PAGE_H

#include <stddef.h>

struct dashboard_page {
    const char *body;      /* text/html, static */
    size_t      len;
    const char *headers;   /* header lines (CRLF each): CSP, no-cache, nosniff */
};

/* Assembles the page from the built-in sources, once, at start-up.  0, or
 * -1 with a reason. */
int dashboard_page_init(char *err, size_t errlen);
void dashboard_page_fini(void);

/* The page; valid between init and fini. */
const struct dashboard_page *dashboard_page(void);

#endif
