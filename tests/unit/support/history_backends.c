/*
 * The backends the history contract runs on (SQLite files, the MongoDB
 * wire emulator as a child process, a real mongod from MONGODB_TEST_URL),
 * their fixtures and the helpers that read results. Included by
 * test_history.c (tests may include .c files); not a test of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <mongoc/mongoc.h>
#include "history/history.h"

#define FLUSH_MS 30000
#define EMULATOR_BOOT_MS 30000

static const char KEY[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof KEY - 1)

typedef enum { BE_SQLITE, BE_EMULATOR, BE_MONGOD } be_kind_t;

typedef struct backend {
    be_kind_t kind;
    const char *name;
    char base_url[512]; /* mongo: without a database */
} backend_t;

static backend_t *BE; /* the backend of the group that runs */
static char TMPDIR_PATH[64];
static int SEQ; /* fresh names per test */

/* ---- small helpers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Only for tests of the passing of time itself (the history lag): nothing else waits this way. */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the emulator process ---- */

static struct {
    pid_t pid;
    int port;
    int out; /* its stdout, kept open so that it never gets SIGPIPE */
    char script[PATH_MAX];
    char data[128];
} EMU = {.pid = -1, .out = -1};

static void emu_stop(void)
{
    if (EMU.pid > 0) {
        kill(EMU.pid, SIGKILL);
        waitpid(EMU.pid, NULL, 0);
        EMU.pid = -1;
    }
    if (EMU.out >= 0) {
        close(EMU.out);
        EMU.out = -1;
    }
}

/* Finds tests/mongo-emulator.py: $MONGO_EMULATOR, the working folder, or beside our build folder. */
static int emu_find_script(void)
{
    const char *env = getenv("MONGO_EMULATOR");
    if (env != NULL) {
        snprintf(EMU.script, sizeof EMU.script, "%s", env);
        return access(EMU.script, X_OK);
    }
    snprintf(EMU.script, sizeof EMU.script, "tests/mongo-emulator.py");
    if (access(EMU.script, X_OK) == 0)
        return 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    /* BUILD/tests/test_history -> BUILD/../tests/mongo-emulator.py */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return -1;
        *slash = '\0';
    }
    snprintf(EMU.script, sizeof EMU.script, "%.*s/tests/mongo-emulator.py", (int)(sizeof EMU.script - 32), exe);
    return access(EMU.script, X_OK);
}

/* Starts the emulator on `port` (0: a free one); 0 once it printed its port, -1 (with a reason on stderr). */
static int emu_start(int port)
{
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    char *argv[] = {EMU.script, "--port", port_s, "--data", EMU.data, NULL};
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t ppid = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* dies with the test, however the test ends */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != ppid)
            _exit(127);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    EMU.pid = pid;
    EMU.out = fds[0];
    char line[32] = "";
    size_t len = 0;
    int64_t deadline = mono_ms() + EMULATOR_BOOT_MS;
    while (len < sizeof line - 1 && memchr(line, '\n', len) == NULL) {
        struct pollfd p = {EMU.out, POLLIN, 0};
        int64_t left = deadline - mono_ms();
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = read(EMU.out, line + len, sizeof line - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    line[len] = '\0';
    EMU.port = atoi(line);
    if (memchr(line, '\n', len) == NULL || EMU.port <= 0) {
        fprintf(stderr, "\n*** FAILED: the MongoDB emulator %s did not start (output \"%s\")\n\n", EMU.script, line);
        emu_stop();
        return -1;
    }
    return 0;
}

/* atexit: no emulator outlives the test, whatever way it ends (PR_SET_PDEATHSIG covers crashes). */
static void emu_kill_all(void)
{
    emu_stop();
}

/* ---- fixtures ---- */

typedef struct fx {
    hist_t *h;
    char url[700];
    char path[128]; /* sqlite file */
    char db[64];    /* mongo database */
} fx_t;

static hist_t *open_url(const char *url)
{
    int code = 1;
    char err[256] = "";
    hist_t *h = hist_open(url, KEY, KEYLEN, &code, err, sizeof err);
    if (h == NULL)
        fprintf(stderr, "hist_open(%s): %d %s\n", url, code, err);
    assert_non_null(h);
    assert_int_equal(code, 0);
    return h;
}

/* The URL of a fresh store of the current backend. */
static void fresh_url(fx_t *f)
{
    SEQ++;
    switch (BE->kind) {
    case BE_SQLITE:
        snprintf(f->path, sizeof f->path, "%s/h%d.db", TMPDIR_PATH, SEQ);
        snprintf(f->url, sizeof f->url, "sqlite:%s", f->path);
        break;
    case BE_EMULATOR:
        snprintf(f->db, sizeof f->db, "t%d_%d", (int)getpid(), SEQ);
        snprintf(f->url, sizeof f->url, "mongodb://127.0.0.1:%d/%s?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
                 EMU.port, f->db);
        break;
    case BE_MONGOD: {
        snprintf(f->db, sizeof f->db, "nearchat_test_%d_%ld_%d", (int)getpid(), (long)time(NULL), SEQ);
        mongoc_uri_t *uri = mongoc_uri_new(BE->base_url);
        assert_non_null(uri);
        assert_true(mongoc_uri_set_database(uri, f->db));
        snprintf(f->url, sizeof f->url, "%s", mongoc_uri_get_string(uri));
        mongoc_uri_destroy(uri);
        break;
    }
    }
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fresh_url(f);
    f->h = open_url(f->url);
    *state = f;
    return 0;
}

static void drop_mongod_db(const char *url, const char *db)
{
    mongoc_client_t *c = mongoc_client_new(url);
    if (c == NULL)
        return;
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    bson_error_t error;
    if (!mongoc_database_drop(d, &error))
        fprintf(stderr, "warning: could not drop test database %s: %s\n", db, error.message);
    mongoc_database_destroy(d);
    mongoc_client_destroy(c);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->h != NULL) {
        assert_int_equal(hist_flush(f->h, FLUSH_MS), 0);
        hist_close(f->h, 5000);
    }
    if (BE->kind == BE_SQLITE) {
        char p[160];
        unlink(f->path);
        snprintf(p, sizeof p, "%s-wal", f->path);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", f->path);
        unlink(p);
    } else if (BE->kind == BE_MONGOD) {
        drop_mongod_db(f->url, f->db);
    }
    free(f);
    return 0;
}

/* ---- reading helpers ---- */

static void flush(hist_t *h)
{
    assert_int_equal(hist_flush(h, FLUSH_MS), 0);
    size_t queued = 99;
    int64_t age = 99;
    hist_backlog(h, &queued, &age);
    assert_int_equal(queued, 0);
    assert_int_equal(age, 0);
}

static void assert_json_eq(const json_t *got, const json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS), *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(stderr, "got:  %s\nwant: %s\n", g, w);
        free(g);
        free(w);
        fail();
    }
}

/* Copies nextCursor (NULL when null). */
static char *next_cursor(const json_t *page)
{
    json_t *n = json_object_get(page, "nextCursor");
    assert_true(json_is_string(n) || json_is_null(n));
    return json_is_string(n) ? strdup(json_string_value(n)) : NULL;
}

static size_t items_of(const json_t *page)
{
    json_t *items = json_object_get(page, "items");
    assert_true(json_is_array(items));
    assert_int_equal(json_object_size(page), 2);
    return json_array_size(items);
}

typedef int (*lister_t)(hist_t *h, const void *arg, int limit, const char *cursor, json_t **out);

/* Reads every page; checks the sizes of the pages against `sizes` (0-terminated); returns all items. */
static json_t *read_pages(hist_t *h, lister_t list, const void *arg, int limit, const size_t *sizes)
{
    json_t *all = json_array();
    char *cursor = NULL;
    int page_no = 0;
    for (;;) {
        json_t *page = NULL;
        assert_int_equal(list(h, arg, limit, cursor, &page), 0);
        size_t n = items_of(page);
        if (sizes != NULL) {
            if (sizes[page_no] != n)
                fprintf(stderr, "page %d: %zu items, want %zu\n", page_no, n, sizes[page_no]);
            assert_int_equal(n, sizes[page_no]);
        }
        page_no++;
        json_array_extend(all, json_object_get(page, "items"));
        free(cursor);
        cursor = next_cursor(page);
        json_decref(page);
        if (cursor == NULL)
            break;
        assert_true(page_no < 1000);
    }
    if (sizes != NULL)
        assert_int_equal(sizes[page_no], 0);
    return all;
}

typedef struct sess_q {
    const char *guest;
    int64_t since, until;
} sess_q_t;

static int list_sessions(hist_t *h, const void *arg, int limit, const char *cursor, json_t **out)
{
    const sess_q_t *q = arg;
    return hist_sessions(h, q->guest, q->since, q->until, limit, cursor, out);
}

static int list_messages(hist_t *h, const void *arg, int limit, const char *cursor, json_t **out)
{
    return hist_messages(h, arg, limit, cursor, out);
}

static int list_reports(hist_t *h, const void *arg, int limit, const char *cursor, json_t **out)
{
    return hist_reports(h, arg, limit, cursor, out);
}

static int list_audit(hist_t *h, const void *arg, int limit, const char *cursor, json_t **out)
{
    return hist_audit(h, arg, limit, cursor, out);
}

static const hist_place_t PARIS = {"Paris", "FR"};
static const hist_place_t NOWHERE = {NULL, NULL};
