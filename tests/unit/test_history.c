/*
 * The history contract: one suite of tests, run against every backend.
 *
 *   sqlite     a throw-away file (always)
 *   emulator   MongoDB through tests/mongo-emulator.py, which this test
 *              starts on a free port and kills at the end; if it cannot
 *              start, the group FAILS (it is never skipped)
 *   mongod     a real server when MONGODB_TEST_URL is set (a fresh database
 *              per test, dropped at teardown); skipped loudly otherwise
 *
 * Each test opens a fresh store in its setup and closes it in its teardown.
 * The one test that needs a store that goes down (hist_backlog) runs on the
 * emulator only and says so when it skips.
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
#include "history/internal.h"

#include "support/history_backends.c"

/* ---- the contract ---- */

/* A conversation reads back exactly: seq order, both senders, sent and delivered times. */
static void test_conversation(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1700000000000;
    hist_place_t lyon = {"Lyon", "FR"};
    hist_put_session_start(f->h, "S1", "guestA", "guestB", PARIS, lyon, t0);
    /* written out of order, as two nodes may deliver them */
    static const int order[] = {3, 1, 2, 6, 4, 5};
    for (int i = 0; i < 6; i++) {
        int seq = order[i];
        char id[16], text[64];
        snprintf(id, sizeof id, "m%d", seq);
        snprintf(text, sizeof text, "message %d \xc3\xa9\xe2\x82\xac \"quoted\"\n", seq);
        hist_put_message(f->h, "S1", seq, id, seq % 2 ? "guestA" : "guestB", text, t0 + seq * 1000,
                         t0 + seq * 1000 + 15);
    }
    hist_put_message(f->h, "S2", 1, "m1", "guestC", "another session", t0, t0 + 1);
    flush(f->h);

    json_t *page = NULL;
    assert_int_equal(hist_messages(f->h, "S1", 500, NULL, &page), 0);
    assert_int_equal(items_of(page), 6);
    assert_true(json_is_null(json_object_get(page, "nextCursor")));
    for (int seq = 1; seq <= 6; seq++) {
        char id[16], text[64];
        snprintf(id, sizeof id, "m%d", seq);
        snprintf(text, sizeof text, "message %d \xc3\xa9\xe2\x82\xac \"quoted\"\n", seq);
        json_t *want = json_pack("{s:s,s:i,s:s,s:s,s:s,s:I,s:I}", "sessionId", "S1", "seq", seq, "id", id,
                                 "senderGuestId", seq % 2 ? "guestA" : "guestB", "text", text, "sentAt",
                                 (json_int_t)(t0 + seq * 1000), "deliveredAt", (json_int_t)(t0 + seq * 1000 + 15));
        assert_json_eq(json_array_get(json_object_get(page, "items"), (size_t)seq - 1), want);
        json_decref(want);
    }
    json_decref(page);

    /* the same in pages of 4: 4, 2 */
    static const size_t sizes[] = {4, 2, 0};
    json_t *all = read_pages(f->h, list_messages, "S1", 4, sizes);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "seq")), (json_int_t)i + 1);
    json_decref(all);

    json_t *s = NULL;
    assert_int_equal(hist_session(f->h, "S1", &s), 0);
    json_t *want = json_pack("{s:s,s:[s,s],s:[{s:s,s:s},{s:s,s:s}],s:I,s:n,s:n}", "sessionId", "S1", "guests", "guestA",
                             "guestB", "geo", "city", "Paris", "country", "FR", "city", "Lyon", "country", "FR",
                             "startedAt", (json_int_t)t0, "endedAt", "endReason");
    assert_json_eq(s, want);
    json_decref(want);
    json_decref(s);

    /* an empty session reads as an empty list */
    assert_int_equal(hist_messages(f->h, "nobody", 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 0);
    assert_true(json_is_null(json_object_get(page, "nextCursor")));
    json_decref(page);
}

/* More writes than one batch, and a page of the largest size. */
static void test_many_messages(void **state)
{
    fx_t *f = *state;
    for (int seq = 1; seq <= 1700; seq++) {
        char id[16];
        snprintf(id, sizeof id, "id%d", seq);
        hist_put_message(f->h, "BIG", seq, id, seq % 3 ? "x" : "y", "hello", 1000 + seq, 2000 + seq);
    }
    flush(f->h);
    static const size_t sizes[] = {500, 500, 500, 200, 0};
    json_t *all = read_pages(f->h, list_messages, "BIG", 500, sizes);
    for (size_t i = 0; i < 1700; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "seq")), (json_int_t)i + 1);
    json_decref(all);
}

/*
 * Writes that trickle in are grouped: one transaction per
 * HIST_COMMIT_INTERVAL_MS, not one per write. The producer is paced by
 * sleeping because the spreading of writes over time is what is tested.
 */
static void test_group_commit(void **state)
{
    fx_t *f = *state;
    flush(f->h);
    uint64_t before = hist_batches(f->h);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int seq = 1; seq <= 40; seq++) {
        char id[16];
        snprintf(id, sizeof id, "id%d", seq);
        hist_put_message(f->h, "TRICKLE", seq, id, "x", "hello", 1000 + seq, 2000 + seq);
        sleep_ms(2);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    flush(f->h);
    uint64_t batches = hist_batches(f->h) - before;
    /* 40 writes over 80 ms or more: at most one batch per interval, plus the first and last */
    long elapsed_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_in_range(batches, 1, (uint64_t)(elapsed_ms / HIST_COMMIT_INTERVAL_MS + 3));
    static const size_t sizes[] = {40, 0};
    json_decref(read_pages(f->h, list_messages, "TRICKLE", 500, sizes));
}

/* The same message written twice is stored once (same batch, or later). */
static void test_idempotent(void **state)
{
    fx_t *f = *state;
    hist_put_session_start(f->h, "S", "a", "b", PARIS, NOWHERE, 5000);
    hist_put_session_start(f->h, "S", "a", "b", PARIS, NOWHERE, 5000);
    hist_put_message(f->h, "S", 1, "m1", "a", "hi", 5001, 5002);
    hist_put_message(f->h, "S", 1, "m1", "a", "hi", 5001, 5002);
    hist_put_message(f->h, "S", 2, "m1", "b", "same id, other sender", 5003, 5004);
    hist_put_report(f->h, "R1", "S", "b", "spam", 6000);
    hist_put_report(f->h, "R1", "S", "b", "spam", 6000);
    flush(f->h);
    hist_put_message(f->h, "S", 1, "m1", "a", "hi", 5001, 5002);
    hist_put_report(f->h, "R1", "S", "b", "spam", 6000);
    hist_put_session_start(f->h, "S", "a", "b", PARIS, NOWHERE, 5000);
    flush(f->h);

    json_t *page = NULL;
    assert_int_equal(hist_messages(f->h, "S", 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "text")),
                        "hi");
    json_decref(page);
    assert_int_equal(hist_reports(f->h, NULL, 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 1);
    json_decref(page);
    assert_int_equal(hist_sessions(f->h, NULL, 0, 0, 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 1);
    json_t *s = json_array_get(json_object_get(page, "items"), 0);
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(s, "geo"), 1), "city")));
    json_decref(page);
}

/* Checks newest-first order (startedAt, then sessionId, both descending) and returns the ids in a string. */
static void assert_newest_first(const json_t *items)
{
    for (size_t i = 1; i < json_array_size(items); i++) {
        const json_t *p = json_array_get(items, i - 1), *c = json_array_get(items, i);
        json_int_t tp = json_integer_value(json_object_get(p, "startedAt"));
        json_int_t tc = json_integer_value(json_object_get(c, "startedAt"));
        assert_true(tp >= tc);
        if (tp == tc)
            assert_true(strcmp(json_string_value(json_object_get(p, "sessionId")),
                               json_string_value(json_object_get(c, "sessionId"))) > 0);
    }
}

static int has_guest(const json_t *session, const char *g)
{
    const json_t *gs = json_object_get(session, "guests");
    return strcmp(json_string_value(json_array_get(gs, 0)), g) == 0 ||
           strcmp(json_string_value(json_array_get(gs, 1)), g) == 0;
}

/* Sessions by guest and by time range, over several pages, newest first. */
static void test_sessions_pages(void **state)
{
    fx_t *f = *state;
    const int64_t t0 = 1700000000000;
    /* 25 sessions of "me" (on either side; pairs share a start time), and 10 of others */
    for (int i = 0; i < 25; i++) {
        char sid[16], other[16];
        snprintf(sid, sizeof sid, "me%02d", i);
        snprintf(other, sizeof other, "peer%d", i);
        if (i % 2)
            hist_put_session_start(f->h, sid, "me", other, PARIS, NOWHERE, t0 + (i / 2) * 1000);
        else
            hist_put_session_start(f->h, sid, other, "me", NOWHERE, PARIS, t0 + (i / 2) * 1000);
    }
    for (int i = 0; i < 10; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "xx%02d", i);
        hist_put_session_start(f->h, sid, "u", "v", NOWHERE, NOWHERE, t0 + i * 1000 + 500);
    }
    flush(f->h);

    sess_q_t q = {"me", 0, 0};
    static const size_t s25[] = {10, 10, 5, 0};
    json_t *all = read_pages(f->h, list_sessions, &q, 10, s25);
    assert_newest_first(all);
    for (size_t i = 0; i < 25; i++)
        assert_true(has_guest(json_array_get(all, i), "me"));
    /* every session once: the ids, sorted descending, are me24..me00 */
    for (size_t i = 0; i < 25; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "me%02d", (int)(24 - i));
        assert_string_equal(json_string_value(json_object_get(json_array_get(all, i), "sessionId")), sid);
    }
    json_decref(all);

    /* a time range, any guest: starts in [t0 + 2000, t0 + 6000] are me04..me13 and xx02..xx05 */
    sess_q_t r = {NULL, t0 + 2000, t0 + 6000};
    static const size_t s14[] = {4, 4, 4, 2, 0};
    all = read_pages(f->h, list_sessions, &r, 4, s14);
    assert_newest_first(all);
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_int_t t = json_integer_value(json_object_get(json_array_get(all, i), "startedAt"));
        assert_true(t >= t0 + 2000 && t <= t0 + 6000);
    }
    json_decref(all);

    /* a guest and a range together; an open lower bound */
    sess_q_t gr = {"me", 0, t0 + 1000};
    static const size_t s4[] = {3, 1, 0};
    all = read_pages(f->h, list_sessions, &gr, 3, s4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "sessionId")), "me03");
    json_decref(all);

    /* exactly one page: no next cursor */
    json_t *page = NULL;
    assert_int_equal(hist_sessions(f->h, "me", 0, 0, 25, NULL, &page), 0);
    assert_int_equal(items_of(page), 25);
    assert_true(json_is_null(json_object_get(page, "nextCursor")));
    json_decref(page);
    assert_int_equal(hist_sessions(f->h, "nobody", 0, 0, 25, NULL, &page), 0);
    assert_int_equal(items_of(page), 0);
    json_decref(page);
}

/* A cursor that was edited, or made by another query, is refused. */
static void test_cursors(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 6; i++) {
        char sid[16], id[16];
        snprintf(sid, sizeof sid, "s%d", i);
        snprintf(id, sizeof id, "r%d", i);
        hist_put_session_start(f->h, sid, "g1", i % 2 ? "g2" : "g3", PARIS, PARIS, 1000 + i);
        hist_put_message(f->h, "s0", i + 1, id, "g1", "x", 1, 2);
        hist_put_message(f->h, "s1", i + 1, id, "g1", "x", 1, 2);
        hist_put_report(f->h, id, sid, "g1", "r", 2000 + i);
        hist_put_audit(f->h, "mod", "GET /x", "", NULL, NULL, 3000 + i);
    }
    flush(f->h);

    json_t *page = NULL, *other = NULL;
    assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, NULL, &page), 0);
    char *c = next_cursor(page);
    assert_non_null(c);
    json_decref(page);
    /* the cursor works with its own query */
    assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, c, &page), 0);
    assert_int_equal(items_of(page), 2);
    json_decref(page);

    /* every single-character edit is refused */
    size_t len = strlen(c);
    for (size_t i = 0; i < len; i++) {
        char *t = strdup(c);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        page = NULL;
        assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, t, &page), HIST_ERR_CURSOR);
        assert_null(page);
        free(t);
    }
    char *shorter = strndup(c, len - 1);
    assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, shorter, &page), HIST_ERR_CURSOR);
    free(shorter);
    assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, "", &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, "garbage", &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_sessions(f->h, "g1", 0, 0, 2, "e30.AAAA", &page), HIST_ERR_CURSOR);

    /* other queries: another guest, a time range, another list */
    assert_int_equal(hist_sessions(f->h, "g2", 0, 0, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_sessions(f->h, NULL, 0, 0, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_sessions(f->h, "g1", 1, 0, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_sessions(f->h, "g1", 0, 5000, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_reports(f->h, NULL, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_audit(f->h, NULL, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_messages(f->h, "s0", 2, c, &page), HIST_ERR_CURSOR);
    free(c);

    /* a message cursor of one session does not page another */
    assert_int_equal(hist_messages(f->h, "s0", 2, NULL, &page), 0);
    c = next_cursor(page);
    json_decref(page);
    assert_non_null(c);
    assert_int_equal(hist_messages(f->h, "s1", 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_messages(f->h, "s0", 2, c, &page), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "seq")), 3);
    json_decref(page);
    free(c);

    /* reports: a cursor of "open" is not one of all reports */
    assert_int_equal(hist_reports(f->h, "open", 2, NULL, &page), 0);
    c = next_cursor(page);
    json_decref(page);
    assert_non_null(c);
    assert_int_equal(hist_reports(f->h, NULL, 2, c, &page), HIST_ERR_CURSOR);
    assert_int_equal(hist_reports(f->h, "closed", 2, c, &page), HIST_ERR_CURSOR);
    free(c);

    /* a cursor signed with another key (another deployment) is refused */
    assert_int_equal(hist_audit(f->h, NULL, 2, NULL, &page), 0);
    c = next_cursor(page);
    json_decref(page);
    assert_non_null(c);
    int code;
    char err[128];
    static const char other_key[] = "another key of at least thirty-two bytes!";
    hist_t *h2 = hist_open(f->url, other_key, sizeof other_key - 1, &code, err, sizeof err);
    assert_non_null(h2);
    assert_int_equal(hist_audit(h2, NULL, 2, c, &other), HIST_ERR_CURSOR);
    hist_close(h2, 1000);
    free(c);
}

/* A limit outside 1..500 is invalid; so is an unknown report status. */
static void test_limits(void **state)
{
    fx_t *f = *state;
    json_t *page = NULL;
    static const int bad[] = {0, 501, -1, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(hist_sessions(f->h, NULL, 0, 0, bad[i], NULL, &page), HIST_ERR_INVALID);
        assert_int_equal(hist_sessions(f->h, "g", 0, 0, bad[i], NULL, &page), HIST_ERR_INVALID);
        assert_int_equal(hist_messages(f->h, "s", bad[i], NULL, &page), HIST_ERR_INVALID);
        assert_int_equal(hist_reports(f->h, NULL, bad[i], NULL, &page), HIST_ERR_INVALID);
        assert_int_equal(hist_audit(f->h, NULL, bad[i], NULL, &page), HIST_ERR_INVALID);
    }
    assert_null(page);
    assert_int_equal(hist_reports(f->h, "pending", 10, NULL, &page), HIST_ERR_INVALID);
    static const int good[] = {1, 500};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(hist_sessions(f->h, NULL, 0, 0, good[i], NULL, &page), 0);
        json_decref(page);
        assert_int_equal(hist_messages(f->h, "s", good[i], NULL, &page), 0);
        json_decref(page);
        assert_int_equal(hist_reports(f->h, "open", good[i], NULL, &page), 0);
        json_decref(page);
        assert_int_equal(hist_audit(f->h, NULL, good[i], NULL, &page), 0);
        json_decref(page);
    }
    assert_string_equal(hist_strerror(HIST_ERR_INVALID), "invalid argument");
    assert_non_null(hist_strerror(12345));
}

/* A session ends once: the first end wins; an end that overtakes its start still counts. */
static void test_session_end(void **state)
{
    fx_t *f = *state;
    hist_put_session_start(f->h, "E1", "a", "b", PARIS, NOWHERE, 1000);
    hist_put_session_end(f->h, "E1", 2000, "left");
    hist_put_session_end(f->h, "E1", 3000, "expired");
    hist_put_session_end(f->h, "E2", 2500, "reported");
    hist_put_session_start(f->h, "E2", "c", "d", NOWHERE, NOWHERE, 1500);
    hist_put_session_start(f->h, "E3", "e", "f", NOWHERE, NOWHERE, 1700);
    flush(f->h);
    hist_put_session_end(f->h, "E1", 4000, "reported");
    flush(f->h);

    json_t *s = NULL;
    assert_int_equal(hist_session(f->h, "E1", &s), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "startedAt")), 1000);
    assert_int_equal(json_integer_value(json_object_get(s, "endedAt")), 2000);
    assert_string_equal(json_string_value(json_object_get(s, "endReason")), "left");
    json_decref(s);
    assert_int_equal(hist_session(f->h, "E2", &s), 0);
    json_t *want =
        json_pack("{s:s,s:[s,s],s:[{s:n,s:n},{s:n,s:n}],s:i,s:i,s:s}", "sessionId", "E2", "guests", "c", "d", "geo",
                  "city", "country", "city", "country", "startedAt", 1500, "endedAt", 2500, "endReason", "reported");
    assert_json_eq(s, want);
    json_decref(want);
    json_decref(s);
    assert_int_equal(hist_session(f->h, "E3", &s), 0);
    assert_true(json_is_null(json_object_get(s, "endedAt")));
    assert_true(json_is_null(json_object_get(s, "endReason")));
    json_decref(s);
    s = NULL;
    assert_int_equal(hist_session(f->h, "nope", &s), HIST_ERR_NOT_FOUND);
    assert_null(s);

    json_t *page = NULL;
    assert_int_equal(hist_sessions(f->h, NULL, 0, 0, 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 3);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "sessionId")), "E3");
    json_decref(page);
}

/* Reports: open until closed, closed once, listed by status newest first. */
static void test_reports(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 5; i++) {
        char rid[16], sid[16];
        snprintf(rid, sizeof rid, "R%d", i);
        snprintf(sid, sizeof sid, "S%d", i);
        hist_put_report(f->h, rid, sid, "rep", i == 2 ? "harassment" : "spam", 10000 + i * 10);
    }
    /* closing right after the put: hist_close_report stores what is queued first */
    assert_int_equal(hist_close_report(f->h, "R1", 20000), 0);
    assert_int_equal(hist_close_report(f->h, "R3", 20001), 0);
    assert_int_equal(hist_close_report(f->h, "R3", 29999), 0); /* idempotent: the first close time stays */
    assert_int_equal(hist_close_report(f->h, "R9", 20002), HIST_ERR_NOT_FOUND);

    static const size_t s3[] = {2, 1, 0}, s2[] = {2, 0}, s5[] = {2, 2, 1, 0};
    json_t *open = read_pages(f->h, list_reports, "open", 2, s3);
    static const char *open_ids[] = {"R4", "R2", "R0"};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(open, i);
        assert_string_equal(json_string_value(json_object_get(r, "reportId")), open_ids[i]);
        assert_string_equal(json_string_value(json_object_get(r, "status")), "open");
        assert_true(json_is_null(json_object_get(r, "closedAt")));
    }
    json_t *want = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:n}", "reportId", "R2", "sessionId", "S2", "reporterGuestId",
                             "rep", "reason", "harassment", "createdAt", 10020, "status", "open", "closedAt");
    assert_json_eq(json_array_get(open, 1), want);
    json_decref(want);
    json_decref(open);

    json_t *closed = read_pages(f->h, list_reports, "closed", 2, s2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(closed, 0), "reportId")), "R3");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(closed, 0), "closedAt")), 20001);
    assert_string_equal(json_string_value(json_object_get(json_array_get(closed, 1), "status")), "closed");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(closed, 1), "closedAt")), 20000);
    json_decref(closed);

    json_t *all = read_pages(f->h, list_reports, NULL, 2, s5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(all, i), "createdAt")),
                         10000 + (4 - (json_int_t)i) * 10);
    json_decref(all);
}

/* The audit log: who, what, when, newest first, in pages. */
static void test_audit(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 12; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "{\"n\":%d}", i);
        /* two entries share each time stamp: the order among them must still be stable */
        /* every third names a target, with what was done to it */
        hist_put_audit(f->h, i % 2 ? "fp:abc" : "fp:def", "POST /api/v1/bans", detail, i % 3 ? NULL : "T",
                       i % 3 ? NULL : "{\"banId\":\"b\"}", 50000 + (i / 2) * 100);
    }
    flush(f->h);
    static const size_t target_sizes[] = {3, 1, 0};
    json_t *hits = read_pages(f->h, list_audit, "T", 3, target_sizes);
    for (size_t i = 0; i < 4; i++) {
        json_t *a = json_array_get(hits, i);
        assert_string_equal(json_string_value(json_object_get(a, "target")), "T");
        assert_string_equal(json_string_value(json_object_get(json_object_get(a, "info"), "banId")), "b");
    }
    json_decref(hits);
    static const size_t sizes[] = {5, 5, 2, 0};
    json_t *all = read_pages(f->h, list_audit, NULL, 5, sizes);
    int seen[12] = {0};
    for (size_t i = 0; i < 12; i++) {
        json_t *a = json_array_get(all, i);
        assert_int_equal(json_object_size(a), 6);
        assert_string_equal(json_string_value(json_object_get(a, "action")), "POST /api/v1/bans");
        json_int_t at = json_integer_value(json_object_get(a, "at"));
        assert_int_equal(at, 50000 + (json_int_t)(11 - i) / 2 * 100);
        int n = -1;
        sscanf(json_string_value(json_object_get(a, "detail")), "{\"n\":%d}", &n);
        assert_true(n >= 0 && n < 12);
        assert_int_equal(n / 2, (int)(11 - i) / 2);
        assert_string_equal(json_string_value(json_object_get(a, "moderator")), n % 2 ? "fp:abc" : "fp:def");
        assert_true(n % 3 ? json_is_null(json_object_get(a, "target")) : json_is_object(json_object_get(a, "info")));
        seen[n]++;
    }
    for (int i = 0; i < 12; i++)
        assert_int_equal(seen[i], 1);
    json_decref(all);
}

/* What was stored survives closing the store and opening it again (another process could). */
static void test_reopen(void **state)
{
    fx_t *f = *state;
    hist_put_session_start(f->h, "D", "a", "b", PARIS, PARIS, 7000);
    hist_put_message(f->h, "D", 1, "m", "a", "kept", 7001, 7002);
    hist_put_report(f->h, "DR", "D", "b", "spam", 7003);
    hist_put_audit(f->h, "fp", "GET /api/v1/sessions", "", NULL, NULL, 7004);
    hist_put_session_end(f->h, "D", 7005, "reported");
    /* closing drains the queue */
    hist_close(f->h, 5000);
    f->h = open_url(f->url);

    json_t *page = NULL, *s = NULL;
    assert_int_equal(hist_session(f->h, "D", &s), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "endedAt")), 7005);
    json_decref(s);
    assert_int_equal(hist_messages(f->h, "D", 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(page, "items"), 0), "text")),
                        "kept");
    json_decref(page);
    assert_int_equal(hist_reports(f->h, "open", 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 1);
    json_decref(page);
    assert_int_equal(hist_audit(f->h, NULL, 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 1);
    json_decref(page);
    /* two stores open on the same data at once (two chatd nodes) */
    hist_t *h2 = open_url(f->url);
    hist_put_message(h2, "D", 2, "m2", "b", "from the other", 7006, 7007);
    assert_int_equal(hist_flush(h2, FLUSH_MS), 0);
    hist_close(h2, 5000);
    assert_int_equal(hist_messages(f->h, "D", 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 2);
    json_decref(page);
}

/* Writes from many threads at once all arrive. */
typedef struct writer_arg {
    hist_t *h;
    int id;
} writer_arg_t;

static void *writer_thread(void *p)
{
    writer_arg_t *a = p;
    char sid[16], mid[16];
    snprintf(sid, sizeof sid, "T%d", a->id);
    for (int i = 1; i <= 100; i++) {
        snprintf(mid, sizeof mid, "m%d", i);
        hist_put_message(a->h, sid, i, mid, "w", "x", i, i);
    }
    return NULL;
}

static void test_threads(void **state)
{
    fx_t *f = *state;
    pthread_t t[4];
    writer_arg_t a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (writer_arg_t){f->h, i};
        assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    flush(f->h);
    for (int i = 0; i < 4; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "T%d", i);
        json_t *page = NULL;
        assert_int_equal(hist_messages(f->h, sid, 500, NULL, &page), 0);
        assert_int_equal(items_of(page), 100);
        json_decref(page);
    }
}

/* hist_backlog while the store is down: nothing is lost, the lag grows, and it all arrives when it is back. */
static void test_backlog_down(void **state)
{
    fx_t *f = *state;
    if (BE->kind != BE_EMULATOR) {
        fprintf(stderr, "    [%s] SKIPPED test_backlog_down: %s\n", BE->name,
                BE->kind == BE_SQLITE ? "an embedded SQLite file has no \"down\""
                                      : "a real mongod is not ours to stop (the emulator covers this)");
        skip();
    }
    hist_put_session_start(f->h, "B", "a", "b", PARIS, PARIS, 100);
    hist_put_message(f->h, "B", 1, "m1", "a", "before", 101, 102);
    flush(f->h);

    emu_stop();
    for (int i = 2; i <= 11; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        hist_put_message(f->h, "B", i, id, i % 2 ? "a" : "b", "while down", 100 + i, 200 + i);
    }
    hist_put_session_end(f->h, "B", 300, "left");
    hist_put_report(f->h, "BR", "B", "a", "spam", 301);
    hist_put_audit(f->h, "fp", "GET /x", "", NULL, NULL, 302);
    sleep_ms(300); /* the lag is the age of waiting writes: time must pass for it to show */
    size_t queued = 0;
    int64_t age1 = 0, age2 = 0;
    hist_backlog(f->h, &queued, &age1);
    assert_int_equal(queued, 13);
    assert_true(age1 >= 250);
    assert_int_equal(hist_flush(f->h, 200), -1);
    sleep_ms(400);
    hist_backlog(f->h, &queued, &age2);
    assert_int_equal(queued, 13);
    assert_true(age2 >= age1 + 300);
    json_t *page = NULL;
    assert_int_equal(hist_messages(f->h, "B", 10, NULL, &page), HIST_ERR_UNAVAILABLE);
    assert_null(page);

    assert_int_equal(emu_start(EMU.port), 0);
    assert_int_equal(hist_flush(f->h, FLUSH_MS), 0);
    hist_backlog(f->h, &queued, &age1);
    assert_int_equal(queued, 0);
    assert_int_equal(age1, 0);

    static const size_t sizes[] = {11, 0};
    json_t *all = read_pages(f->h, list_messages, "B", 20, sizes);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "text")), "before");
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 10), "text")), "while down");
    json_decref(all);
    json_t *s = NULL;
    assert_int_equal(hist_session(f->h, "B", &s), 0);
    assert_string_equal(json_string_value(json_object_get(s, "endReason")), "left");
    json_decref(s);
    assert_int_equal(hist_close_report(f->h, "BR", 400), 0);
    assert_int_equal(hist_audit(f->h, NULL, 10, NULL, &page), 0);
    assert_int_equal(items_of(page), 1);
    json_decref(page);
}

/* ---- the interface, whatever the backend ---- */

static void test_open_errors(void **state)
{
    int code = 0;
    char err[256] = "";
    char path[128];
    assert_null(hist_open("redis://127.0.0.1/0", KEY, KEYLEN, &code, err, sizeof err));
    assert_int_equal(code, HIST_ERR_URL);
    assert_true(err[0] != '\0');
    assert_null(hist_open("sqlite:", KEY, KEYLEN, &code, err, sizeof err));
    assert_int_equal(code, HIST_ERR_URL);
    assert_null(hist_open(NULL, KEY, KEYLEN, &code, err, sizeof err));
    assert_int_equal(code, HIST_ERR_URL);
    snprintf(path, sizeof path, "sqlite:%s/no/such/folder/h.db", TMPDIR_PATH);
    assert_null(hist_open(path, KEY, KEYLEN, &code, err, sizeof err));
    assert_int_equal(code, HIST_ERR_OPEN);
    snprintf(path, sizeof path, "sqlite:%s/short.db", TMPDIR_PATH);
    assert_null(hist_open(path, "short", 5, &code, err, sizeof err));
    assert_int_equal(code, HIST_ERR_INVALID);
    assert_null(hist_open("mongodb://", KEY, KEYLEN, &code, err, sizeof err));
    assert_int_equal(code, HIST_ERR_OPEN);
    hist_close(NULL, 0);
}

/* A MongoDB that is down at open is not an error: writes wait, reads say unavailable, close gives up in time. */
static void test_mongo_down_at_open(void **state)
{
    /* a port nobody listens on: bind one, then close it */
    int code = 0;
    char err[256] = "";
    char url[256];
    snprintf(url, sizeof url, "mongodb://127.0.0.1:1/h?serverSelectionTimeoutMS=300&connectTimeoutMS=300");
    int64_t t = mono_ms();
    hist_t *h = hist_open(url, KEY, KEYLEN, &code, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(code, 0);
    assert_true(mono_ms() - t < 3000);
    hist_put_message(h, "s", 1, "m", "g", "text", 1, 2);
    json_t *page = NULL;
    assert_int_equal(hist_messages(h, "s", 10, NULL, &page), HIST_ERR_UNAVAILABLE);
    assert_int_equal(hist_close_report(h, "r", 5), HIST_ERR_UNAVAILABLE);
    size_t queued = 0;
    hist_backlog(h, &queued, NULL);
    assert_int_equal(queued, 1);
    t = mono_ms();
    hist_close(h, 300);
    assert_true(mono_ms() - t < 3000);
}

/* ---- groups ---- */

static int group_setup_emulator(void **state)
{
    if (emu_find_script() != 0) {
        fprintf(stderr, "\n*** FAILED: tests/mongo-emulator.py not found or not executable (%s)\n\n", EMU.script);
        return -1;
    }
    snprintf(EMU.data, sizeof EMU.data, "%s/emulator.pkl", TMPDIR_PATH);
    return emu_start(0);
}

static int group_teardown_emulator(void **state)
{
    int alive = EMU.pid > 0 && kill(EMU.pid, 0) == 0;
    emu_stop();
    unlink(EMU.data);
    return alive ? 0 : -1;
}

static int rm_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", TMPDIR_PATH);
    return system(cmd);
}

#define CONTRACT(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest contract[] = {
        CONTRACT(test_conversation), CONTRACT(test_many_messages),  CONTRACT(test_group_commit),
        CONTRACT(test_idempotent),   CONTRACT(test_sessions_pages), CONTRACT(test_cursors),
        CONTRACT(test_limits),       CONTRACT(test_session_end),    CONTRACT(test_reports),
        CONTRACT(test_audit),        CONTRACT(test_reopen),         CONTRACT(test_threads),
        CONTRACT(test_backlog_down),
    };
    const struct CMUnitTest interface[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_mongo_down_at_open),
    };
    snprintf(TMPDIR_PATH, sizeof TMPDIR_PATH, "/tmp/nearchat-hist-XXXXXX");
    if (mkdtemp(TMPDIR_PATH) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(emu_kill_all);
    signal(SIGPIPE, SIG_IGN);
    int failed = 0;

    failed += cmocka_run_group_tests_name("history interface", interface, NULL, NULL);

    backend_t sqlite = {BE_SQLITE, "sqlite", ""};
    BE = &sqlite;
    failed += cmocka_run_group_tests_name("history contract: sqlite", contract, NULL, NULL);

    backend_t emu = {BE_EMULATOR, "mongodb-emulator", ""};
    BE = &emu;
    int rc = cmocka_run_group_tests_name("history contract: mongodb (emulator)", contract, group_setup_emulator,
                                         group_teardown_emulator);
    if (rc == 0 && EMU.port <= 0)
        rc = 1; /* never a silent pass without the emulator */
    failed += rc;

    const char *real = getenv("MONGODB_TEST_URL");
    if (real != NULL && real[0] != '\0') {
        backend_t mongod = {BE_MONGOD, "mongod", ""};
        snprintf(mongod.base_url, sizeof mongod.base_url, "%s", real);
        BE = &mongod;
        failed += cmocka_run_group_tests_name("history contract: mongod (MONGODB_TEST_URL)", contract, NULL, NULL);
    } else {
        fprintf(stderr, "\n*** SKIPPED: history contract against a real mongod (set MONGODB_TEST_URL to run it)\n\n");
    }
    emu_stop();
    rm_tmpdir();
    return failed != 0;
}
