/*
 * Integration tests of offq against a real rabbitmq-server that the test
 * starts itself: free loopback ports, its own epmd port, a throw-away
 * folder. The broker is stopped (and restarted on the same data folder for
 * the persistence tests) by signalling its process group; at the end no
 * process of it may survive.
 *
 * Callbacks arrive on the one worker of a sio server, as in chatd; the test
 * thread waits for them on a condition variable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "offq/offq.h"
#include "sio/sio.h"

extern char **environ;

#define WAIT_MS 15000
#define BROKER_BOOT_MS 90000

#include "support/rabbit_broker.c"

/* ---- the loop that receives the answers ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sio_server_t *srv;
static sio_worker_t *worker;
static pthread_t worker_thread;
static int wrong_thread; /* callbacks that ran elsewhere than on the worker */
static offq_t *q;
static char url[128];

static void on_worker_start(sio_worker_t *w, void *ud)
{
    pthread_mutex_lock(&mu);
    worker = w;
    worker_thread = pthread_self();
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_worker_stop(sio_worker_t *w, void *ud) {}

/* Waits (mu held) until *flag is set or `ms` passed; returns *flag. */
static int wait_flag(const int *flag, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (!*flag)
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT)
            break;
    return *flag;
}

static void check_thread(void)
{
    if (!pthread_equal(pthread_self(), worker_thread))
        wrong_thread++;
}

typedef struct pub {
    int done;
    const char *err;
    int *count; /* optional: counts answers of a batch */
    int *failed;
} pub_t;

static void on_published(sio_worker_t *w, const char *err, void *ud)
{
    pub_t *p = ud;
    pthread_mutex_lock(&mu);
    check_thread();
    p->done = 1;
    p->err = err;
    if (p->count != NULL) {
        (*p->count)++;
        if (err != NULL)
            (*p->failed)++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Publishes and waits for the answer; returns its err. */
static const char *publish_wait(offq_t *oq, const char *guest, const char *body, uint64_t *took_ms)
{
    pub_t p = {0};
    uint64_t t0 = now_ms();
    offq_publish(oq, worker, guest, body, strlen(body), on_published, &p);
    pthread_mutex_lock(&mu);
    int done = wait_flag(&p.done, WAIT_MS);
    pthread_mutex_unlock(&mu);
    assert_true(done);
    if (took_ms != NULL)
        *took_ms = now_ms() - t0;
    return p.err;
}

typedef struct fetched {
    int ended;
    const char *err;
    size_t n, cap;
    uint64_t *tags;
    char **bodies;
} fetched_t;

static void on_message(sio_worker_t *w, uint64_t tag, const void *body, size_t len, const char *err, void *ud)
{
    fetched_t *f = ud;
    pthread_mutex_lock(&mu);
    check_thread();
    if (body == NULL) {
        if (tag != 0)
            wrong_thread += 1000; /* the end of a batch has tag 0; make it fail loudly */
        f->ended = 1;
        f->err = err;
    } else {
        if (f->n == f->cap) {
            f->cap = f->cap == 0 ? 16 : f->cap * 2;
            f->tags = realloc(f->tags, f->cap * sizeof(*f->tags));
            f->bodies = realloc(f->bodies, f->cap * sizeof(*f->bodies));
        }
        f->tags[f->n] = tag;
        f->bodies[f->n] = strndup(body, len);
        f->n++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void fetched_free(fetched_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->bodies[i]);
    free(f->bodies);
    free(f->tags);
    memset(f, 0, sizeof(*f));
}

static void fetch_wait(offq_t *oq, const char *guest, int max, fetched_t *f, uint64_t *took_ms)
{
    memset(f, 0, sizeof(*f));
    uint64_t t0 = now_ms();
    offq_fetch(oq, worker, guest, max, on_message, f);
    pthread_mutex_lock(&mu);
    int ended = wait_flag(&f->ended, WAIT_MS);
    pthread_mutex_unlock(&mu);
    assert_true(ended);
    if (took_ms != NULL)
        *took_ms = now_ms() - t0;
}

/* Fetches and expects exactly `bodies` (n of them), err NULL. */
static void expect_fetch(offq_t *oq, const char *guest, int max, const char *const *bodies, size_t n, fetched_t *f)
{
    fetch_wait(oq, guest, max, f, NULL);
    assert_null(f->err);
    assert_int_equal(f->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(f->bodies[i], bodies[i]);
        assert_true(f->tags[i] != 0);
    }
}

static void ack_all(offq_t *oq, const fetched_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        offq_ack(oq, f->tags[i]);
}

static int wait_up(offq_t *oq, int want, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    while (offq_up(oq) != want && now_ms() < deadline)
        sleep_ms(10);
    return offq_up(oq) == want;
}

/* A guest id of its own for each test, so that tests never see each other's queues. */
static const char *guest(const char *name)
{
    static char buf[8][96];
    static int next;
    char *g = buf[next++ % 8];
    snprintf(g, 96, "%s-%d-%llu", name, (int)getpid(), (unsigned long long)now_ms());
    return g;
}

static int group_setup(void **state)
{
    if (broker_setup() != 0)
        return -1;
    int port;
    free_ports(&port, 1);
    sio_options_t opt = {
        .host = "127.0.0.1",
        .port = port,
        .workers = 1,
        .path = "/socket.io/",
        .ping_interval_ms = 25000,
        .ping_timeout_ms = 20000,
        .connect_timeout_ms = 45000,
        .max_payload = 100000,
    };
    char err[256];
    srv = sio_server_new(&opt, err, sizeof(err));
    assert_non_null(srv);
    sio_server_on_worker(srv, on_worker_start, on_worker_stop, NULL);
    assert_int_equal(sio_server_start(srv, err, sizeof(err)), 0);
    int have = 0;
    pthread_mutex_lock(&mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    while (worker == NULL) /* the worker's start hook broadcasts cv */
        if (pthread_cond_timedwait(&cv, &mu, &until) == ETIMEDOUT)
            break;
    have = worker != NULL;
    pthread_mutex_unlock(&mu);
    assert_true(have);

    snprintf(url, sizeof(url), "amqp://guest:guest@127.0.0.1:%d/", B.port);
    q = offq_new(url, 3600, 1000000, err, sizeof(err));
    assert_non_null(q);
    assert_true(wait_up(q, 1, 10000));
    return 0;
}

static int group_teardown(void **state)
{
    offq_free(q);
    q = NULL;
    if (srv != NULL) {
        assert_int_equal(sio_server_stop(srv, 5000), 0);
        sio_server_free(srv);
        srv = NULL;
    }
    if (B.dir[0] != '\0')
        broker_teardown();
    assert_int_equal(wrong_thread, 0);
    return 0;
}

/* ---- tests ---- */

static void test_bad_url_is_refused(void **state)
{
    char err[128] = "";
    assert_null(offq_new("http://127.0.0.1/", 60, 10, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    assert_null(offq_new("amqp://guest:guest@127.0.0.1:notaport/", 60, 10, err, sizeof(err)));
    assert_null(offq_new("amqps://guest:guest@127.0.0.1/", 60, 10, err, sizeof(err)));
}

static void test_publish_fetch_ack(void **state)
{
    const char *g = guest("ack");
    const char *msgs[] = {"first", "second", "third"};
    for (size_t i = 0; i < 3; i++)
        assert_null(publish_wait(q, g, msgs[i], NULL));
    fetched_t f;
    expect_fetch(q, g, 10, msgs, 3, &f);
    ack_all(q, &f);
    fetched_free(&f);
    expect_fetch(q, g, 10, NULL, 0, &f);
    fetched_free(&f);
}

static void test_fetch_then_release_refetches_in_order(void **state)
{
    const char *g = guest("release");
    const char *msgs[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < 4; i++)
        assert_null(publish_wait(q, g, msgs[i], NULL));
    fetched_t f;
    expect_fetch(q, g, 10, msgs, 4, &f);
    /* released out of order, they still come back in their places */
    offq_release(q, f.tags[2]);
    offq_release(q, f.tags[0]);
    offq_release(q, f.tags[3]);
    offq_release(q, f.tags[1]);
    fetched_free(&f);
    expect_fetch(q, g, 10, msgs, 4, &f);
    ack_all(q, &f);
    fetched_free(&f);
    expect_fetch(q, g, 10, NULL, 0, &f);
    fetched_free(&f);
}

static void test_fetch_max_and_held_messages(void **state)
{
    const char *g = guest("max");
    const char *msgs[] = {"1", "2", "3", "4", "5"};
    for (size_t i = 0; i < 5; i++)
        assert_null(publish_wait(q, g, msgs[i], NULL));
    fetched_t a, b, c;
    expect_fetch(q, g, 2, msgs, 2, &a);
    /* the first two are reserved: a second fetch gets the rest */
    expect_fetch(q, g, 10, msgs + 2, 3, &b);
    expect_fetch(q, g, 0, NULL, 0, &c);
    fetched_free(&c);
    for (size_t i = 0; i < a.n; i++)
        offq_release(q, a.tags[i]);
    for (size_t i = 0; i < b.n; i++)
        offq_release(q, b.tags[i]);
    expect_fetch(q, g, 10, msgs, 5, &c);
    ack_all(q, &c);
    fetched_free(&a);
    fetched_free(&b);
    fetched_free(&c);
}

static void test_repeated_and_stale_tags_are_ignored(void **state)
{
    const char *g = guest("tags");
    const char *msgs[] = {"x", "y"};
    for (size_t i = 0; i < 2; i++)
        assert_null(publish_wait(q, g, msgs[i], NULL));
    fetched_t f, e;
    expect_fetch(q, g, 10, msgs, 2, &f);
    offq_ack(q, f.tags[0]);
    offq_ack(q, f.tags[0]);     /* a repeat would make the broker close the channel... */
    offq_release(q, f.tags[0]); /* ...and so would this */
    offq_ack(q, f.tags[1] + 1000);
    offq_ack(q, 12345);
    /* ...which would have requeued "y": it must still be reserved */
    expect_fetch(q, g, 10, NULL, 0, &e);
    fetched_free(&e);
    offq_release(q, f.tags[1]);
    expect_fetch(q, g, 10, msgs + 1, 1, &e);
    ack_all(q, &e);
    fetched_free(&e);
    fetched_free(&f);
}

static void test_unknown_queue_fetches_as_empty(void **state)
{
    fetched_t f;
    uint64_t took;
    fetch_wait(q, guest("nobody"), 10, &f, &took);
    assert_null(f.err);
    assert_int_equal(f.n, 0);
    fetched_free(&f);
    /* twice: the channel the 404 closed was reopened */
    fetch_wait(q, guest("nobody-else"), 10, &f, NULL);
    assert_null(f.err);
    assert_int_equal(f.n, 0);
    fetched_free(&f);
    const char *g = guest("after-404");
    const char *msgs[] = {"still works"};
    assert_null(publish_wait(q, g, msgs[0], NULL));
    expect_fetch(q, g, 10, msgs, 1, &f);
    ack_all(q, &f);
    fetched_free(&f);
    fprintf(stderr, "# fetch of a queue that does not exist: %llu ms\n", (unsigned long long)took);
}

static void test_max_length_rejects_publish(void **state)
{
    char err[128];
    offq_t *small = offq_new(url, 3600, 3, err, sizeof(err));
    assert_non_null(small);
    assert_true(wait_up(small, 1, 10000));
    const char *g = guest("full");
    const char *msgs[] = {"m1", "m2", "m3"};
    for (size_t i = 0; i < 3; i++)
        assert_null(publish_wait(small, g, msgs[i], NULL));
    assert_string_equal(publish_wait(small, g, "m4", NULL), offq_err_unavailable);
    fetched_t f;
    expect_fetch(small, g, 10, msgs, 3, &f);
    ack_all(small, &f);
    fetched_free(&f);
    /* room again */
    const char *more[] = {"m5"};
    assert_null(publish_wait(small, g, more[0], NULL));
    expect_fetch(small, g, 10, more, 1, &f);
    ack_all(small, &f);
    fetched_free(&f);
    offq_free(small);
}

static void test_many_publishes_in_flight(void **state)
{
    enum { N = 5000 };
    const char *g = guest("many");
    static pub_t p[N];
    int count = 0, failed = 0;
    char body[32];
    uint64_t t0 = now_ms();
    for (int i = 0; i < N; i++) {
        p[i] = (pub_t){.count = &count, .failed = &failed};
        snprintf(body, sizeof(body), "msg %d", i);
        offq_publish(q, worker, g, body, strlen(body), on_published, &p[i]);
    }
    pthread_mutex_lock(&mu);
    for (uint64_t start = now_ms(); count < N && now_ms() - start < 30000;) {
        int dummy = 0;
        wait_flag(&dummy, 100);
    }
    int got = count, bad = failed;
    pthread_mutex_unlock(&mu);
    uint64_t took = now_ms() - t0;
    assert_int_equal(got, N);
    assert_int_equal(bad, 0);
    fprintf(stderr, "# %d publishes in flight confirmed in %llu ms (%.0f/s)\n", N, (unsigned long long)took,
            N * 1000.0 / (double)(took > 0 ? took : 1));
    fetched_t f;
    t0 = now_ms();
    fetch_wait(q, g, N + 10, &f, NULL);
    took = now_ms() - t0;
    assert_null(f.err);
    assert_int_equal(f.n, N);
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof(body), "msg %d", i);
        assert_string_equal(f.bodies[i], body);
    }
    fprintf(stderr, "# %d messages fetched in %llu ms\n", N, (unsigned long long)took);
    ack_all(q, &f);
    fetched_free(&f);
    expect_fetch(q, g, 10, NULL, 0, &f);
    fetched_free(&f);
}

static void test_messages_survive_broker_restart(void **state)
{
    const char *g = guest("restart");
    const char *msgs[] = {"kept 1", "kept 2", "kept 3"};
    for (size_t i = 0; i < 3; i++)
        assert_null(publish_wait(q, g, msgs[i], NULL));
    fetched_t held;
    /* two of them are reserved, unacked, when the broker goes down */
    expect_fetch(q, g, 2, msgs, 2, &held);
    broker_stop();
    assert_true(wait_up(q, 0, 5000));
    assert_int_equal(broker_start(), 0);
    uint64_t t0 = now_ms();
    assert_true(wait_up(q, 1, 15000));
    fprintf(stderr, "# broker restarted in %.1f s; offq reconnected %llu ms after it listened\n", B.boot_s,
            (unsigned long long)(now_ms() - t0));
    /* tags from before the reconnect are dead: acking them must not lose anything */
    ack_all(q, &held);
    fetched_free(&held);
    fetched_t f;
    expect_fetch(q, g, 10, msgs, 3, &f);
    ack_all(q, &f);
    fetched_free(&f);
    expect_fetch(q, g, 10, NULL, 0, &f);
    fetched_free(&f);
}

static void test_broker_down_answers_unavailable_then_recovers(void **state)
{
    const char *g = guest("down");
    broker_stop();
    assert_true(wait_up(q, 0, 5000));
    assert_int_equal(offq_up(q), 0);
    uint64_t took;
    assert_string_equal(publish_wait(q, g, "lost", &took), offq_err_unavailable);
    assert_true(took < 1000);
    fprintf(stderr, "# publish while the broker is down answered in %llu ms\n", (unsigned long long)took);
    fetched_t f;
    fetch_wait(q, g, 10, &f, &took);
    assert_string_equal(f.err, offq_err_unavailable);
    assert_int_equal(f.n, 0);
    assert_true(took < 1000);
    fetched_free(&f);
    /* still unavailable a few backoff rounds later: the passing of time is what is tested */
    sleep_ms(1500);
    assert_int_equal(offq_up(q), 0);
    assert_string_equal(publish_wait(q, g, "lost too", &took), offq_err_unavailable);
    assert_true(took < 1000);

    assert_int_equal(broker_start(), 0);
    assert_true(wait_up(q, 1, 15000));
    const char *msgs[] = {"back"};
    assert_null(publish_wait(q, g, msgs[0], NULL));
    expect_fetch(q, g, 10, msgs, 1, &f);
    ack_all(q, &f);
    fetched_free(&f);
}

static void test_free_with_calls_in_flight(void **state)
{
    char err[128];
    offq_t *tmp = offq_new(url, 3600, 100, err, sizeof(err));
    assert_non_null(tmp);
    assert_true(wait_up(tmp, 1, 10000));
    static pub_t p[50];
    int count = 0, failed = 0;
    const char *g = guest("freed");
    for (int i = 0; i < 50; i++) {
        p[i] = (pub_t){.count = &count, .failed = &failed};
        offq_publish(tmp, worker, g, "x", 1, on_published, &p[i]);
    }
    offq_free(tmp);
    /* callbacks never run after offq_free returned */
    pthread_mutex_lock(&mu);
    int before = count;
    pthread_mutex_unlock(&mu);
    sleep_ms(300); /* proving that nothing happens takes time: no event can say it */
    pthread_mutex_lock(&mu);
    assert_int_equal(count, before);
    pthread_mutex_unlock(&mu);
}

/* Takes ~90 s, so it runs only with OFFQ_SLOW_TESTS=1. */
static int slow_tests(void)
{
    const char *v = getenv("OFFQ_SLOW_TESTS");
    if (v != NULL && strcmp(v, "1") == 0)
        return 1;
    fprintf(stderr, "# SKIPPED (slow, ~90 s): set OFFQ_SLOW_TESTS=1 to run it\n");
    return 0;
}

static void test_heartbeats_keep_idle_connection_and_detect_frozen_broker(void **state)
{
    if (!slow_tests()) {
        skip();
        return;
    }
    /* idle for three heartbeat timeouts of the broker: our heartbeats must keep the connection */
    sleep_ms(35000);
    assert_int_equal(offq_up(q), 1);
    const char *g = guest("idle");
    const char *msgs[] = {"after idle"};
    assert_null(publish_wait(q, g, msgs[0], NULL));
    /* a frozen broker keeps the TCP connection open but sends nothing: the heartbeats tell */
    uint64_t t0 = now_ms();
    kill(-B.rabbit, SIGSTOP);
    int noticed = wait_up(q, 0, 40000);
    uint64_t took = now_ms() - t0;
    uint64_t took_pub = 0;
    const char *err = noticed ? publish_wait(q, g, "frozen", &took_pub) : NULL;
    kill(-B.rabbit, SIGCONT);
    assert_true(noticed);
    fprintf(stderr, "# frozen broker noticed after %llu ms\n", (unsigned long long)took);
    assert_string_equal(err, offq_err_unavailable);
    assert_true(took_pub < 1000);
    assert_true(wait_up(q, 1, 30000));
    fetched_t f;
    expect_fetch(q, g, 10, msgs, 1, &f);
    ack_all(q, &f);
    fetched_free(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_url_is_refused),
        cmocka_unit_test(test_publish_fetch_ack),
        cmocka_unit_test(test_fetch_then_release_refetches_in_order),
        cmocka_unit_test(test_fetch_max_and_held_messages),
        cmocka_unit_test(test_repeated_and_stale_tags_are_ignored),
        cmocka_unit_test(test_unknown_queue_fetches_as_empty),
        cmocka_unit_test(test_max_length_rejects_publish),
        cmocka_unit_test(test_many_publishes_in_flight),
        cmocka_unit_test(test_free_with_calls_in_flight),
        cmocka_unit_test(test_heartbeats_keep_idle_connection_and_detect_frozen_broker),
        cmocka_unit_test(test_messages_survive_broker_restart),
        cmocka_unit_test(test_broker_down_answers_unavailable_then_recovers),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    broker_kill_all();
    return failed == 0 ? 0 : 1;
}
