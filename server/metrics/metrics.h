/*
 * metrics: process-wide counters and gauges rendered in the Prometheus text
 * exposition format. Updates are lock-free atomics, safe from any thread;
 * registration takes a mutex and is meant for start-up or first use.
 */
#ifndef NEARCHAT_METRICS_H
#define NEARCHAT_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "../buf/buf.h"

typedef enum metrics_kind { METRICS_COUNTER, METRICS_GAUGE } metrics_kind_t;

typedef struct metrics_value {
    _Atomic int64_t value;
    /* private */
    metrics_kind_t _kind;
    const char *_name;
    const char *_help;
    char *_labels; /* e.g. transport="websocket", or NULL */
    struct metrics_value *_next;
} metrics_value_t;

/**
 * Returns the series `name{labels}`, creating it on first call; later calls
 * with the same name and labels return the same pointer. `name` and `help`
 * must be static strings; `labels` is copied (may be NULL). Never fails.
 */
metrics_value_t *metrics_counter(const char *name, const char *labels, const char *help);
metrics_value_t *metrics_gauge(const char *name, const char *labels, const char *help);

static inline void metrics_add(metrics_value_t *m, int64_t n)
{
    atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}
static inline void metrics_inc(metrics_value_t *m)
{
    metrics_add(m, 1);
}
static inline void metrics_dec(metrics_value_t *m)
{
    metrics_add(m, -1);
}
/** For gauges that are read from elsewhere rather than counted. */
static inline void metrics_set(metrics_value_t *m, int64_t v)
{
    atomic_store_explicit(&m->value, v, memory_order_relaxed);
}
static inline int64_t metrics_get(metrics_value_t *m)
{
    return atomic_load_explicit(&m->value, memory_order_relaxed);
}

/**
 * Appends every series to `out` in the Prometheus text format (one # HELP
 * and # TYPE per name, series of one name grouped together). Never fails.
 */
void metrics_render(buf_t *out);

/** Frees every series (at exit, for leak checkers). */
void metrics_free_all(void);

#endif
