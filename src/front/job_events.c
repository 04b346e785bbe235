/* job_events.c — see job_events.h. */
#include "front/job_events.h"

#include <string.h>

#include "wire/utf8.h"

static void begin(struct jout *j, const char *id, size_t idlen, const char *event)
{
    jout_lit(j, "{");
    if (id) {
        jout_lit(j, "\"id\":");
        jout_str(j, id, idlen);
        jout_lit(j, ",");
    }
    jout_lit(j, "\"event\":\"");
    jout_lit(j, event);
    jout_lit(j, "\"");
}

/* "output":"..." when the bytes are UTF-8 text, else "output_b64":"...".
 * Text heavy with control bytes escapes to six bytes per byte (\u00XX);
 * past a third more than its length base64 is the smaller, and what the
 * client has not read yet is memory the front holds. */
static void put_output(struct jout *j, const uint8_t *data, size_t len)
{
    if (utf8_valid(data, len) && jout_str_size(data, len) <= jout_b64_size(len)) {
        jout_lit(j, ",\"output\":");
        jout_str(j, data, len);
    } else {
        jout_lit(j, ",\"output_b64\":");
        jout_b64(j, data, len);
    }
}

void jev_chunk(struct jout *j, const char *id, size_t idlen, uint64_t seq,
               const uint8_t *data, size_t len)
{
    begin(j, id, idlen, "chunk");
    jout_lit(j, ",\"seq\":");
    jout_u64(j, seq);
    put_output(j, data, len);
    jout_lit(j, "}");
}

void jev_progress(struct jout *j, const char *id, size_t idlen, uint64_t done, uint64_t total)
{
    begin(j, id, idlen, "progress");
    jout_lit(j, ",\"done\":");
    jout_u64(j, done);
    jout_lit(j, ",\"total\":");
    jout_u64(j, total);
    jout_lit(j, "}");
}

void jev_error(struct jout *j, const char *id, size_t idlen, enum job_error code,
               const char *msg, size_t msglen)
{
    begin(j, id, idlen, "error");
    jout_lit(j, ",\"code\":\"");
    jout_lit(j, job_error_name(code));
    jout_lit(j, "\",\"message\":");
    /* A handler's message may not be valid UTF-8; JSON text must be. */
    if (utf8_valid((const uint8_t *)msg, msglen))
        jout_str(j, msg, msglen);
    else
        jout_lit(j, "\"(message not valid UTF-8)\"");
    jout_lit(j, "}");
}

void jev_done(struct jout *j, const char *id, size_t idlen, const uint8_t *data, size_t len,
              int has_output, uint64_t queued_us, uint64_t run_us)
{
    size_t start = j->len;
    begin(j, id, idlen, "done");
    if (has_output)
        put_output(j, data, len);
    jout_lit(j, ",\"queued_us\":");
    jout_u64(j, queued_us);
    jout_lit(j, ",\"run_us\":");
    jout_u64(j, run_us);
    jout_lit(j, "}");
    if (!j->oom)
        return;
    j->oom = 0;
    j->len = start;
    static const char why[] = "output too large to encode";
    jev_error(j, id, idlen, JE_TOO_LARGE, why, sizeof why - 1);
}

size_t jev_accepted(char *buf, size_t cap, const char *handle, size_t hl)
{
    static const char head[] = "{\"event\":\"accepted\",\"handle\":\"", tail[] = "\"}";
    size_t n = sizeof head - 1 + hl + sizeof tail - 1;
    if (n >= cap)
        return 0;
    memcpy(buf, head, sizeof head - 1);
    memcpy(buf + sizeof head - 1, handle, hl);
    memcpy(buf + sizeof head - 1 + hl, tail, sizeof tail);
    return n;
}

size_t jev_id_prefix(char *buf, const char *id, size_t idlen, int more)
{
    memcpy(buf, "{\"id\":", 6);
    size_t n = 6 + json_quote(buf + 6, id, idlen);
    buf[n++] = more ? ',' : '}';
    return n;
}
