/* result_store_table.c — the result store's records by handle: the jobs
 * this instance owns between begin and final, and the job channels it is
 * subscribed to.  Chained buckets, doubled when the table is as full as it
 * has buckets, so a lookup costs about one string compare whatever the
 * number of jobs. */
#include <stdlib.h>
#include <string.h>

#include "store/result_store_parts.h"

#define RS_TABLE_MIN 16

/* FNV-1a: handles are random already; this only has to spread other keys. */
static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

struct rs_entry *rs_table_find(const struct rs_table *t, const char *key)
{
    if (!t->b || strlen(key) > RS_HANDLE_MAX)
        return NULL;
    uint32_t h = hash_key(key);
    for (struct rs_entry *e = t->b[h & (t->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static int grow(struct rs_table *t)
{
    size_t nb = t->nb ? t->nb * 2 : RS_TABLE_MIN;
    struct rs_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < t->nb; i++) {
        struct rs_entry *e = t->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

int rs_table_add(struct rs_table *t, struct rs_entry *e)
{
    /* A full table that cannot grow still works, just with longer chains. */
    if (t->n >= t->nb && grow(t) < 0 && !t->b)
        return -1;
    e->hash = hash_key(e->key);
    struct rs_entry **head = &t->b[e->hash & (t->nb - 1)];
    e->next = *head;
    *head = e;
    t->n++;
    return 0;
}

void rs_table_del(struct rs_table *t, struct rs_entry *e)
{
    for (struct rs_entry **p = &t->b[e->hash & (t->nb - 1)]; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            t->n--;
            return;
        }
    }
}

void rs_table_each(struct rs_table *t, void (*fn)(struct rs_entry *e, void *arg), void *arg)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct rs_entry *e = t->b[i], *next;
        for (; e; e = next) {
            next = e->next;        /* fn may free e */
            fn(e, arg);
        }
    }
}

void rs_table_release(struct rs_table *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}
