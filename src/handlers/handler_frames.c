/* handler_frames.c — `frames`: a stream of SVG animation frames (SPEC §7).
 *
 * Input {"count":C,"width":W,"height":H,"interval_ms":T}, every field
 * optional: C 0..10^6 (default 10; 0 streams until cancelled or the
 * deadline), W and H 16..4096 pixels (default 320 x 240), T 0..60000 ms
 * between frames (default 100).  Each chunk is one complete SVG document;
 * the job ends with no output of its own.
 *
 * Frame f is a zoom into the Mandelbrot set, rendered afresh: the view
 * narrows by 4% a frame towards a point on the boundary, the iteration limit
 * grows with depth, and the palette cycles one step a frame.  The zoom
 * restarts every ZOOM_FRAMES frames, before doubles run out of precision.
 * The picture is a grid of at most GRID x GRID square cells whatever W and
 * H are, so work and size per frame stay bounded; cells of one colour merge
 * into horizontal runs, drawn as one <path> per colour.  That keeps a frame
 * at 320 x 240 to 25 KB on average, 45 KB at most, and under 80 KB at any
 * size, against a default --max-message of 1 MiB. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handler_args.h"
#include "handlers/handlers_builtin.h"

#define GRID 64
#define PALETTE 16
#define ZOOM_FRAMES 360
#define ZOOM_STEP 0.96
#define FIRST_SPAN 3.5          /* width of the first view, complex plane */
#define CENTER_RE (-0.743643887037151)   /* in the "seahorse valley" */
#define CENTER_IM 0.131825904205330

struct frames_args {
    int64_t count, width, height, interval_ms;
};

/* One frame's cells: 0 = inside the set, 1 + palette index otherwise. */
struct grid {
    int cols, rows, cell;   /* cell: side of one square, pixels */
    unsigned char c[GRID * GRID];
};

/* A growing SVG text.  `err` latches the first failure (too_large past
 * `limit`, handler_error when memory runs out) and stops all appends. */
struct svg {
    char  *p;      /* owned, freed by svg_free */
    size_t len, cap, limit;
    enum wsjob_error err;   /* 0 while all is well */
};

static const char *const palette[PALETTE] = {
    "#1a0a40", "#28126a", "#302394", "#2a44b8", "#1f6ed0", "#1998d8",
    "#2fbcd0", "#5cd6b8", "#92e69a", "#c6ef7c", "#f2ec66", "#fcc94c",
    "#fb9a3a", "#f0662e", "#d63a34", "#a82046",
};

static int read_args(wsjob_ctx *ctx, struct frames_args *a)
{
    static const char *const known[] = {
        "count", "width", "height", "interval_ms", NULL
    };
    json_t *obj = args_object(ctx, known);
    if (!obj)
        return WSJOB_ERR;
    int rc = args_int_opt(ctx, obj, "count", 0, 1000000, 10, &a->count);
    if (rc == WSJOB_OK)
        rc = args_int_opt(ctx, obj, "width", 16, 4096, 320, &a->width);
    if (rc == WSJOB_OK)
        rc = args_int_opt(ctx, obj, "height", 16, 4096, 240, &a->height);
    if (rc == WSJOB_OK)
        rc = args_int_opt(ctx, obj, "interval_ms", 0, 60000, 100, &a->interval_ms);
    json_decref(obj);
    return rc;
}

static void grid_size(struct grid *g, int width, int height)
{
    int longest = width > height ? width : height;
    g->cell = (longest + GRID - 1) / GRID;
    g->cols = (width + g->cell - 1) / g->cell;
    g->rows = (height + g->cell - 1) / g->cell;
}

static int escape_time(double cr, double ci, int limit)
{
    double zr = 0, zi = 0;
    for (int i = 0; i < limit; i++) {
        double zr2 = zr * zr, zi2 = zi * zi;
        if (zr2 + zi2 > 4.0)
            return i;
        zi = 2 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
    }
    return -1;
}

static void render(struct grid *g, uint64_t frame)
{
    int phase = (int)(frame % ZOOM_FRAMES);
    double span = FIRST_SPAN * pow(ZOOM_STEP, phase);
    double step = span / g->cols;
    int limit = 64 + 4 * phase;
    for (int y = 0; y < g->rows; y++) {
        double ci = CENTER_IM + (y + 0.5 - g->rows / 2.0) * step;
        for (int x = 0; x < g->cols; x++) {
            double cr = CENTER_RE + (x + 0.5 - g->cols / 2.0) * step;
            int n = escape_time(cr, ci, limit);
            g->c[y * g->cols + x] =
                n < 0 ? 0 : (unsigned char)(1 + (n + frame) % PALETTE);
        }
    }
}

static void svg_free(struct svg *s)
{
    free(s->p);
    *s = (struct svg){ 0 };
}

static int svg_reserve(struct svg *s, size_t more)
{
    if (s->len + more <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 16384;
    while (cap < s->len + more)
        cap *= 2;
    char *p = realloc(s->p, cap);
    if (!p)
        return -1;
    s->p = p;
    s->cap = cap;
    return 0;
}

/* Appends formatted text.  A failure only latches `err` (checked once per
 * frame), so the drawing code reads straight through.  Every fragment this
 * file writes is far shorter than tmp. */
__attribute__((format(printf, 2, 3)))
static void svg_add(struct svg *s, const char *fmt, ...)
{
    if (s->err)
        return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        s->err = WSJOB_E_HANDLER_ERROR;
        return;
    }
    if (s->len + (size_t)n > s->limit) {
        s->err = WSJOB_E_TOO_LARGE;
        return;
    }
    if (svg_reserve(s, (size_t)n) != 0) {
        s->err = WSJOB_E_HANDLER_ERROR;
        return;
    }
    memcpy(s->p + s->len, tmp, (size_t)n);
    s->len += (size_t)n;
}

/* All runs of colour `color` as one path: "M x y h w v cell H x z" each. */
static void draw_color(struct svg *s, const struct grid *g, unsigned char color)
{
    int opened = 0;
    for (int y = 0; y < g->rows; y++) {
        const unsigned char *row = g->c + y * g->cols;
        for (int x = 0; x < g->cols; ) {
            if (row[x] != color) {
                x++;
                continue;
            }
            int end = x;
            while (end < g->cols && row[end] == color)
                end++;
            if (!opened)
                svg_add(s, "<path fill=\"%s\" d=\"", palette[color - 1]);
            opened = 1;
            svg_add(s, "M%d %dh%dv%dH%dz", x * g->cell, y * g->cell,
                    (end - x) * g->cell, g->cell, x * g->cell);
            x = end;
        }
    }
    if (opened)
        svg_add(s, "\"/>\n");
}

/* The set itself is the black background; only escaping cells are drawn. */
static void draw(struct svg *s, const struct grid *g, int width, int height)
{
    s->len = 0;
    s->err = 0;
    svg_add(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
               "height=\"%d\" viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\">\n",
            width, height, width, height);
    svg_add(s, "<rect width=\"%d\" height=\"%d\" fill=\"#000\"/>\n", width, height);
    for (unsigned char color = 1; color <= PALETTE; color++)
        draw_color(s, g, color);
    svg_add(s, "</svg>\n");
}

/* Renders and sends frame f; WSJOB_ERR (recorded) when the job must end. */
static int send_frame(wsjob_ctx *ctx, struct svg *s, struct grid *g,
                      const struct frames_args *a, uint64_t f)
{
    render(g, f);
    draw(s, g, (int)a->width, (int)a->height);
    if (s->err == WSJOB_E_TOO_LARGE)
        return wsjob_fail(ctx, WSJOB_E_TOO_LARGE,
                          "frame %" PRIu64 " is over the %zu-byte limit",
                          f, s->limit);
    if (s->err)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "out of memory");
    /* The size was checked above, so a failed emit means cancel or deadline. */
    if (wsjob_emit(ctx, s->p, s->len) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_CANCELLED,
                          "stopped after %" PRIu64 " frames", f);
    return WSJOB_OK;
}

static int stream(wsjob_ctx *ctx, struct svg *s, const struct frames_args *a)
{
    struct grid g;
    grid_size(&g, (int)a->width, (int)a->height);
    const uint64_t count = (uint64_t)a->count;
    for (uint64_t f = 0; count == 0 || f < count; f++) {
        if (wsjob_cancelled(ctx))
            return wsjob_fail(ctx, WSJOB_E_CANCELLED,
                              "stopped after %" PRIu64 " frames", f);
        if (send_frame(ctx, s, &g, a, f) != WSJOB_OK)
            return WSJOB_ERR;
        if (count)
            wsjob_progress(ctx, f + 1, count);
        if (f + 1 == count || a->interval_ms == 0)
            continue;
        if (wsjob_sleep(ctx, a->interval_ms) != WSJOB_OK)
            return wsjob_fail(ctx, WSJOB_E_CANCELLED,
                              "stopped after %" PRIu64 " frames", f + 1);
    }
    return WSJOB_OK;
}

int handler_frames(wsjob_ctx *ctx)
{
    struct frames_args a;
    if (read_args(ctx, &a) != WSJOB_OK)
        return WSJOB_ERR;
    struct svg s = { .limit = wsjob_max_output(ctx) };
    int rc = stream(ctx, &s, &a);
    svg_free(&s);
    return rc;
}
