/*
 * phase: the run's timeline (see phase.h).
 */
#include "phase.h"

#include <math.h>
#include <stdio.h>

#include "guest.h"
#include "report.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull
/* chatd closes a connection without CONNECT after 45 s; give up on ours before that */
#define CONNECT_TIMEOUT_NS (30 * NS_PER_S)
/* no new session for this long ends the match phase (a proposal expires in 15 s by default) */
#define MATCH_STALL_NS (20 * NS_PER_S)
/* acks still missing this long after the last send: chatd queues undelivered messages after 3 s */
#define DRAIN_MAX_NS (15 * NS_PER_S)
#define SCAN_EVERY_NS (250 * NS_PER_MS)
/* sends per step when the loop fell behind: catch up, but keep reading in between */
#define SENDS_PER_STEP 2048

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static const char *state_name(int state)
{
    static const char *const names[] = {"idle",           "TCP connect", "WebSocket upgrade",
                                        "Engine.IO open", "session",     "namespaces",
                                        "ready",          "dead",        "closed"};
    return names[state];
}

void phase_begin(bench_t *b)
{
    b->phase = PHASE_CONNECT;
    b->t_connect = b->t_scan = b->t_shown = bench_now();
}

void phase_abort(bench_t *b, uint64_t now)
{
    fprintf(stderr, "chatbench: interrupted after %.1f s; reporting what was measured\n", secs(now - b->t0));
    b->aborted = 1;
    if (b->phase == PHASE_CHAT || b->phase == PHASE_DRAIN)
        b->t_chat_end = b->t_chat_end ? b->t_chat_end : now;
    b->phase = PHASE_DONE;
}

/*
 * One line a second on stderr while the run lasts, with the last second's
 * rates and latencies: a server that falls behind shows as a climb here,
 * which the run's percentiles alone would hide.
 */
static void show_progress(bench_t *b, uint64_t now)
{
    static const char *const names[] = {"connect", "match", "chat", "drain", "done"};
    if (now - b->t_shown < NS_PER_S)
        return;
    const bench_stats_t *s = &b->st;
    double span = secs(now - b->t_shown);
    fprintf(stderr, "chatbench: %6.1f s %-7s ready %llu/%u paired %llu", secs(now - b->t0), names[b->phase],
            (unsigned long long)s->ready, b->nguests, (unsigned long long)s->paired);
    if (b->phase == PHASE_CHAT || b->phase == PHASE_DRAIN) {
        fprintf(stderr, " sent/s %.0f acked/s %.0f", (double)(s->sent - b->sent_shown) / span,
                (double)(s->ok - b->ok_shown) / span);
        if (b->second.count > 0)
            fprintf(stderr, " receipt p50 %.1f ms p99 %.1f ms", (double)histo_quantile(&b->second, 0.5) / 1000,
                    (double)histo_quantile(&b->second, 0.99) / 1000);
    }
    fprintf(stderr, " errors %llu\n", (unsigned long long)report_errors(b));
    b->t_shown = now;
    b->sent_shown = s->sent;
    b->ok_shown = s->ok;
    histo_init(&b->second);
}

static void start_match(bench_t *b, uint64_t now)
{
    b->t_connect_end = now;
    if (b->npids > 0)
        b->rss_after_kib = report_rss_kib(b->pids, b->npids);
    fprintf(stderr, "chatbench: connect: %llu of %u guests connected in %.2f s\n", (unsigned long long)b->st.ready,
            b->nguests, secs(now - b->t_connect));
    if (b->st.ready == 0) {
        b->phase = PHASE_DONE;
        return;
    }
    b->phase = PHASE_MATCH;
    b->t_match = b->t_progress = now;
    for (uint32_t i = 0; i < b->nguests; i++)
        if (b->guests[i].state == G_READY)
            guest_request_match(b, &b->guests[i]);
}

static void start_chat(bench_t *b, uint64_t now)
{
    fprintf(stderr, "chatbench: match: %zu sessions in %.2f s\n", b->npairs / 2, secs(now - b->t_match));
    if (b->npairs == 0) {
        fprintf(stderr, "chatbench: no session was formed: nothing to send\n");
        b->phase = PHASE_DONE;
        return;
    }
    b->phase = PHASE_CHAT;
    b->t_chat = b->t_shown = now;
    b->sent_shown = b->ok_shown = 0;
    histo_init(&b->second);
    b->total_msgs = (uint64_t)llround(b->rate * b->duration);
    b->seen_bits = b->total_msgs;
    b->seen = buf_xcalloc(b->total_msgs / 8 + 1, 1);
}

/* The next paired guest in rotation, or NULL when none is left. */
static guest_t *next_sender(bench_t *b)
{
    for (size_t tries = 0; tries < b->npairs; tries++) {
        guest_t *g = &b->guests[b->pairs[b->rr]];
        b->rr = (b->rr + 1) % b->npairs;
        if (guest_alive(g) && (g->flags & GF_PAIRED))
            return g;
    }
    return NULL;
}

static uint64_t due_at(const bench_t *b, uint64_t n)
{
    return b->t_chat + (uint64_t)((double)n * 1e9 / b->rate);
}

static void step_connect(bench_t *b, uint64_t now)
{
    while (b->next_start < b->nguests && b->st.started - b->st.settled < b->inflight)
        guest_start(b, &b->guests[b->next_start++]);
    if (now - b->t_scan >= SCAN_EVERY_NS) {
        b->t_scan = now;
        for (uint32_t i = 0; i < b->next_start; i++) {
            guest_t *g = &b->guests[i];
            /* started_ns may be later than `now`: guests started in this very step */
            if (guest_alive(g) && g->state < G_READY && now > g->started_ns + CONNECT_TIMEOUT_NS)
                guest_fail(b, g, ERR_CONNECT, "no answer within %.0f s (at: %s)", secs(CONNECT_TIMEOUT_NS),
                           state_name(g->state));
        }
    }
    if (b->st.settled == b->nguests)
        start_match(b, now);
}

static void step_match(bench_t *b, uint64_t now)
{
    /* done when at most an odd guest out is left, and both sides of every session heard of it */
    if (b->st.waiting + (b->npairs & 1) <= 1) {
        start_chat(b, now);
        return;
    }
    if (now < b->t_progress + MATCH_STALL_NS)
        return;
    uint64_t left = b->st.waiting;
    bench_error(b, ERR_UNMATCHED, "%llu guests still unpaired after %.0f s without a new session",
                (unsigned long long)left, secs(MATCH_STALL_NS));
    b->st.errors[ERR_UNMATCHED] += left - 1;
    start_chat(b, now);
}

static void step_chat(bench_t *b, uint64_t now)
{
    for (int n = 0; n < SENDS_PER_STEP && b->st.sent < b->total_msgs && due_at(b, b->st.sent) <= now; n++) {
        guest_t *g = next_sender(b);
        if (g == NULL) {
            fprintf(stderr, "chatbench: no paired guest is left to send\n");
            b->total_msgs = b->st.sent;
            break;
        }
        guest_send_chat(b, g);
    }
    if (b->st.sent >= b->total_msgs) {
        b->t_chat_end = now;
        b->phase = PHASE_DRAIN;
    }
}

static void step_drain(bench_t *b, uint64_t now)
{
    if (b->st.answered < b->st.sent && now < b->t_chat_end + DRAIN_MAX_NS)
        return;
    uint64_t missing = b->st.sent - b->st.answered;
    if (missing > 0) {
        bench_error(b, ERR_UNANSWERED, "%llu chat:message still unanswered %.0f s after the last send",
                    (unsigned long long)missing, secs(DRAIN_MAX_NS));
        b->st.errors[ERR_UNANSWERED] += missing - 1;
    }
    fprintf(stderr, "chatbench: chat: %llu of %llu messages acked ok\n", (unsigned long long)b->st.ok,
            (unsigned long long)b->st.sent);
    b->phase = PHASE_DONE;
}

void phase_step(bench_t *b, uint64_t now)
{
    switch (b->phase) {
    case PHASE_CONNECT:
        step_connect(b, now);
        break;
    case PHASE_MATCH:
        step_match(b, now);
        break;
    case PHASE_CHAT:
        step_chat(b, now);
        break;
    case PHASE_DRAIN:
        step_drain(b, now);
        break;
    case PHASE_DONE:
        return;
    }
    show_progress(b, now);
}

int phase_timeout_ms(const bench_t *b, uint64_t now)
{
    switch (b->phase) {
    case PHASE_CONNECT:
        return 50;
    case PHASE_MATCH:
        return 100;
    case PHASE_CHAT: {
        if (b->st.sent >= b->total_msgs)
            return 0;
        uint64_t due = due_at(b, b->st.sent);
        if (due <= now)
            return 0;
        uint64_t ms = (due - now + NS_PER_MS - 1) / NS_PER_MS; /* round up: never wake before it is due */
        return ms > 100 ? 100 : (int)ms;
    }
    case PHASE_DRAIN:
        return 50;
    case PHASE_DONE:
        break;
    }
    return 0;
}
