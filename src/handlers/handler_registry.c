/* handler_registry.c — built-in and plug-in job types. */
#include "handlers/handler_registry.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "handlers/handlers_builtin.h"

static struct wsjob_handler table[REGISTRY_MAX];
static size_t count;

static int valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return n >= 1 && n <= 32;
}

int registry_add(const struct wsjob_handler *h, const char *origin, char *err, size_t errlen)
{
    if (!h->name || !valid_name(h->name) || !h->run || (h->cls != WSJOB_CPU && h->cls != WSJOB_IO)) {
        snprintf(err, errlen, "%s: invalid handler entry '%s'", origin, h->name ? h->name : "(null)");
        return -1;
    }
    if (registry_find(h->name, strlen(h->name)) >= 0) {
        snprintf(err, errlen, "%s: job type '%s' is already defined", origin, h->name);
        return -1;
    }
    if (count == REGISTRY_MAX) {
        snprintf(err, errlen, "%s: more than %d job types", origin, REGISTRY_MAX);
        return -1;
    }
    table[count++] = *h;
    return 0;
}

static int load_plugin(const char *path, char *err, size_t errlen)
{
    /* RTLD_NOW: an unresolved symbol is a start-up error, not a worker crash
     * in the middle of someone's job. */
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        snprintf(err, errlen, "%s", dlerror());
        return -1;
    }
    const struct wsjob_handler *hs = dlsym(so, "wsjob_handlers");
    if (!hs) {
        snprintf(err, errlen, "%s: no symbol wsjob_handlers", path);
        return -1;
    }
    if (hs[0].name && hs[0].api_version != WSJOB_API_VERSION) {
        snprintf(err, errlen, "%s: handler API version %u, this wsjobd has %u",
                 path, hs[0].api_version, WSJOB_API_VERSION);
        return -1;
    }
    for (; hs->name; hs++)
        if (registry_add(hs, path, err, errlen) < 0)
            return -1;
    return 0;   /* the object stays loaded for the life of the process */
}

int registry_load(char *const *paths, size_t npaths, char *err, size_t errlen)
{
    count = 0;
    for (const struct wsjob_handler *h = handlers_builtin(); h->name; h++)
        if (registry_add(h, "built-in", err, errlen) < 0)
            return -1;
    for (size_t i = 0; i < npaths; i++)
        if (load_plugin(paths[i], err, errlen) < 0)
            return -1;
    return 0;
}

int registry_find(const char *name, size_t len)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

const struct wsjob_handler *registry_get(int type)
{
    return type >= 0 && (size_t)type < count ? &table[type] : NULL;
}

size_t registry_count(void) { return count; }
