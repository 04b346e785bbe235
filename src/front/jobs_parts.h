/* jobs_parts.h — what the two files of /jobs share, and nobody else:
 *
 *   jobs_proto.c   requests in, a job's events out, the no-loss invariant
 *                  for jobs run for this connection
 *   jobs_detach.c  detached jobs: submit, attach, cancel by handle, and
 *                  the events of a job this connection follows
 *
 * Whatever its kind, an entry is one id in flight on the connection: it
 * gets exactly one final event, after which it is freed (jobs_finish). */
#ifndef WSJOBD_JOBS_PARTS_H
#define WSJOBD_JOBS_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "front/conn.h"
#include "front/detach.h"
#include "pipeline/dispatch.h"
#include "wire/jobs_request.h"

#define ID_MAX 64

enum entry_kind {
    ENTRY_JOB,        /* run for this connection; the dispatch cookie */
    ENTRY_DETACHED,   /* following a detached job held here */
    ENTRY_REMOTE,     /* following a detached job through the result store */
};

struct jobs_conn;

struct entry {
    struct jobs_conn *jc;
    struct entry *next;
    uint8_t  kind;              /* enum entry_kind */
    uint8_t  idlen;
    uint8_t  starting;          /* REMOTE: inside the mirror's follow call */
    uint8_t  ended;             /* REMOTE: its final came during that call */
    uint32_t job;               /* JOB: dispatch's job number */
    uint32_t chunk_seq;         /* JOB */
    uint64_t unacked;           /* JOB: stream bytes handed to the socket buffer */
    int64_t  last_progress_ns;  /* JOB */
    struct detach_job *dj;      /* DETACHED */
    struct detach_remote *remote;   /* REMOTE: NULL once final */
    char     handle[DETACH_HANDLE_LEN + 1];   /* REMOTE: to cancel through the store */
    char     id[ID_MAX];
};

struct jobs_conn {
    struct conn  *c;
    struct entry *jobs;         /* in flight, newest first */
    unsigned      n;
    int           shutting_down;
};

/* jobs_proto.c */
/* May this connection take one more id?  0, or -1 after answering it
 * (duplicate_id, busy). */
int  jobs_admit(struct jobs_conn *jc, const char *id, size_t idlen);
struct entry *jobs_new_entry(struct jobs_conn *jc, const char *id, size_t idlen);
void jobs_send_error(struct jobs_conn *jc, const char *id, size_t idlen,
                     enum job_error code, const char *msg);
struct jout *jobs_scratch(struct jobs_conn *jc);   /* reset, ready for one event */
void jobs_send(struct jobs_conn *jc, struct jout *j);
void jobs_link(struct jobs_conn *jc, struct entry *e);
void jobs_finish(struct entry *e);   /* its final event is sent: unlink and free */

/* jobs_detach.c */
enum job_error jobs_detach_submit(struct entry *e, const struct job_request *r, const char **why);
/* Answers the request itself, whatever happens. */
void jobs_attach(struct jobs_conn *jc, const struct jobs_request *r, const char *id, size_t idlen);
void jobs_cancel_handle(struct jobs_conn *jc, const struct jr_field *handle);
void jobs_detach_cancel(struct entry *e);   /* a cancel by id of a followed job */
void jobs_detach_closed(struct entry *e);   /* the connection is gone */

#endif
