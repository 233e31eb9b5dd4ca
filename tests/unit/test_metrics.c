/*
 * Unit tests for metrics: registration identity, exact rendering, and
 * atomic updates from several threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"

/* The registry is process-wide; each test leaves it empty for the next. */
static int free_registry(void **state)
{
    (void)state;
    metrics_free_all();
    return 0;
}

static void test_register_twice_same_pointer(void **state)
{
    metrics_value_t *a = metrics_counter("t_requests_total", "kind=\"a\"", "Requests.");
    metrics_value_t *b = metrics_counter("t_requests_total", "kind=\"a\"", "Requests.");
    metrics_value_t *c = metrics_counter("t_requests_total", "kind=\"b\"", "Requests.");
    metrics_value_t *d = metrics_counter("t_requests_total", NULL, "Requests.");
    metrics_value_t *e = metrics_counter("t_requests_total", NULL, "Requests.");
    metrics_value_t *g1 = metrics_gauge("t_open", NULL, "Open things.");
    metrics_value_t *g2 = metrics_gauge("t_open", NULL, "Open things.");

    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, d);
    assert_ptr_equal(d, e);
    assert_ptr_equal(g1, g2);
    assert_ptr_not_equal(g1, d);
    assert_int_equal(metrics_get(a), 0);
}

static void test_labels_are_copied(void **state)
{
    char labels[32];
    strcpy(labels, "x=\"1\"");
    metrics_value_t *a = metrics_counter("t_copy_total", labels, "Copy.");
    strcpy(labels, "x=\"2\"");
    metrics_value_t *b = metrics_counter("t_copy_total", "x=\"1\"", "Copy.");
    assert_ptr_equal(a, b);
}

static void test_render_exact(void **state)
{
    buf_t out = BUF_INIT;
    metrics_value_t *ws = metrics_counter("chat_conn_total", "transport=\"websocket\"", "Connections opened.");
    metrics_value_t *open = metrics_gauge("chat_open", NULL, "Open connections.");
    metrics_value_t *poll = metrics_counter("chat_conn_total", "transport=\"polling\"", "Connections opened.");

    metrics_add(ws, 5);
    metrics_inc(poll);
    metrics_inc(open);
    metrics_dec(open);
    metrics_dec(open);
    metrics_render(&out);

    const char *expect = "# HELP chat_conn_total Connections opened.\n"
                         "# TYPE chat_conn_total counter\n"
                         "chat_conn_total{transport=\"websocket\"} 5\n"
                         "chat_conn_total{transport=\"polling\"} 1\n"
                         "# HELP chat_open Open connections.\n"
                         "# TYPE chat_open gauge\n"
                         "chat_open -1\n";
    assert_int_equal(out.len, strlen(expect));
    assert_memory_equal(out.base, expect, out.len);
    buf_free(&out);
}

static void test_render_empty(void **state)
{
    buf_t out = BUF_INIT;
    metrics_render(&out);
    assert_int_equal(out.len, 0);
    buf_free(&out);
}

#define THREADS 4
#define PER_THREAD 100000

static void *hammer(void *arg)
{
    metrics_value_t *m = arg;
    for (int i = 0; i < PER_THREAD; i++)
        metrics_inc(m);
    /* Registration from several threads must also be safe and converge. */
    return metrics_counter("t_concurrent_total", NULL, "Concurrent.");
}

static void test_concurrent_increments(void **state)
{
    pthread_t th[THREADS];
    metrics_value_t *m = metrics_counter("t_concurrent_total", NULL, "Concurrent.");

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, m), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        assert_int_equal(pthread_join(th[i], &ret), 0);
        assert_ptr_equal(ret, m);
    }
    assert_int_equal(metrics_get(m), (int64_t)THREADS * PER_THREAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_register_twice_same_pointer, free_registry),
        cmocka_unit_test_teardown(test_labels_are_copied, free_registry),
        cmocka_unit_test_teardown(test_render_exact, free_registry),
        cmocka_unit_test_teardown(test_render_empty, free_registry),
        cmocka_unit_test_teardown(test_concurrent_increments, free_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
