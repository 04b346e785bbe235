/* stats_store.c — the result store's part of /stats and /metrics. */
#include <string.h>

#include "front/detach_redis.h"
#include "front/stats_parts.h"

static void str_kv(struct jout *j, const char *key, const char *v)
{
    jout_lit(j, "\"");
    jout_lit(j, key);
    jout_lit(j, "\":");
    jout_str(j, v, strlen(v));
    jout_lit(j, ",");
}

void stats_store_json(struct jout *j, const struct detach_redis *dr)
{
    if (!dr) {
        jout_lit(j, "\"result_store\":null,");
        return;
    }
    struct detach_redis_info in;
    detach_redis_info(dr, &in);
    jout_lit(j, "\"result_store\":{");
    str_kv(j, "url", in.url);
    str_kv(j, "state", in.state);
    jout_lit(j, in.up ? "\"up\":true," : "\"up\":false,");
    stats_kv(j, "writes_dropped_total", in.writes_dropped_total, 1);
    stats_kv(j, "follows_active", in.follows_active, 1);
    stats_kv(j, "reconnects_total", in.reconnects_total, 1);
    jout_lit(j, "\"instance\":");
    jout_str(j, in.instance, strlen(in.instance));
    jout_lit(j, "},");
}

void stats_store_metrics(struct jout *j, const struct detach_redis *dr)
{
    if (!dr)
        return;
    struct detach_redis_info in;
    detach_redis_info(dr, &in);
    stats_one(j, "result_store_up", "gauge", "1 while the result store (Redis) is connected.",
              (uint64_t)in.up);
    stats_one(j, "result_store_writes_dropped_total", "counter",
              "Writes to the result store not made: asked while down, or lost with the link.",
              in.writes_dropped_total);
    stats_one(j, "result_store_reconnects_total", "counter",
              "Connection attempts to the result store after the first.", in.reconnects_total);
    stats_one(j, "result_store_follows_active", "gauge",
              "Attaches here following a job another instance holds.", in.follows_active);
}
