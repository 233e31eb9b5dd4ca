/*
 * metrics: a process-wide registry of counters and gauges.
 *
 * The registry is a singly linked list in registration order under one
 * mutex. Registration is rare (start-up or first use), so a list scan is
 * cheaper than maintaining a hash table; updates never take the lock.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static metrics_value_t *metrics_head;
/* Appending at the tail keeps first-registration order for rendering. */
static metrics_value_t **metrics_tail = &metrics_head;

static bool metrics_labels_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/*
 * Finds or creates the series for name+labels. The first registration
 * decides kind and help. Never fails (allocation failure aborts, as for
 * the whole project).
 */
static metrics_value_t *metrics_register(metrics_kind_t kind, const char *name, const char *labels, const char *help)
{
    metrics_value_t *m;

    pthread_mutex_lock(&metrics_lock);
    for (m = metrics_head; m != NULL; m = m->_next) {
        if (strcmp(m->_name, name) == 0 && metrics_labels_equal(m->_labels, labels))
            goto cleanup;
    }
    m = buf_xcalloc(1, sizeof(*m));
    atomic_init(&m->value, 0);
    m->_kind = kind;
    m->_name = name;
    m->_help = help;
    m->_labels = labels != NULL ? buf_xstrndup(labels, strlen(labels)) : NULL;
    *metrics_tail = m;
    metrics_tail = &m->_next;

cleanup:
    pthread_mutex_unlock(&metrics_lock);
    return m;
}

metrics_value_t *metrics_counter(const char *name, const char *labels, const char *help)
{
    return metrics_register(METRICS_COUNTER, name, labels, help);
}

metrics_value_t *metrics_gauge(const char *name, const char *labels, const char *help)
{
    return metrics_register(METRICS_GAUGE, name, labels, help);
}

/* Appends a signed decimal; buf only knows unsigned, and gauges can go negative. */
static void metrics_append_i64(buf_t *out, int64_t v)
{
    if (v < 0) {
        buf_append_char(out, '-');
        /* Negating in unsigned arithmetic is defined even for INT64_MIN. */
        buf_append_u64(out, (uint64_t)0 - (uint64_t)v);
    } else {
        buf_append_u64(out, (uint64_t)v);
    }
}

static void metrics_append_series(buf_t *out, metrics_value_t *m)
{
    buf_append_str(out, m->_name);
    if (m->_labels != NULL) {
        buf_append_char(out, '{');
        buf_append_str(out, m->_labels);
        buf_append_char(out, '}');
    }
    buf_append_char(out, ' ');
    metrics_append_i64(out, metrics_get(m));
    buf_append_char(out, '\n');
}

void metrics_render(buf_t *out)
{
    pthread_mutex_lock(&metrics_lock);
    for (metrics_value_t *m = metrics_head; m != NULL; m = m->_next) {
        /* A name already seen was rendered with all its series; skip it. */
        bool seen = false;
        for (metrics_value_t *p = metrics_head; p != m; p = p->_next) {
            if (strcmp(p->_name, m->_name) == 0) {
                seen = true;
                break;
            }
        }
        if (seen)
            continue;

        buf_append_str(out, "# HELP ");
        buf_append_str(out, m->_name);
        buf_append_char(out, ' ');
        buf_append_str(out, m->_help != NULL ? m->_help : "");
        buf_append_str(out, "\n# TYPE ");
        buf_append_str(out, m->_name);
        buf_append_str(out, m->_kind == METRICS_COUNTER ? " counter\n" : " gauge\n");
        for (metrics_value_t *s = m; s != NULL; s = s->_next) {
            if (strcmp(s->_name, m->_name) == 0)
                metrics_append_series(out, s);
        }
    }
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_free_all(void)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_value_t *m = metrics_head;
    metrics_head = NULL;
    metrics_tail = &metrics_head;
    pthread_mutex_unlock(&metrics_lock);

    while (m != NULL) {
        metrics_value_t *next = m->_next;
        free(m->_labels);
        free(m);
        m = next;
    }
}
