/*
 * guest: one simulated guest, a state machine over one non-blocking socket:
 * TCP, the WebSocket upgrade, Engine.IO open, CONNECT to / (consent), /match
 * and /chat, then matching and chatting as tests/e2e/guests.js does with the
 * official client. Output is queued in the guest's buffer and written once
 * per loop iteration (guest_flush_all), so the frames one wakeup produces
 * leave in one write.
 */
#ifndef CHATBENCH_GUEST_H
#define CHATBENCH_GUEST_H

#include "bench.h"

/**
 * Opens `g`'s connection and registers it with the loop. A failure is
 * counted as an error of `b` and leaves `g` dead.
 */
void guest_start(bench_t *b, guest_t *g);

/** Handles epoll `events` on `g`'s socket. Errors are counted, never returned. */
void guest_on_io(bench_t *b, guest_t *g, uint32_t events);

/** Queues match:request {"scope":"any"} on a ready guest. Never fails. */
void guest_request_match(bench_t *b, guest_t *g);

/** Queues one chat:message on a paired guest, its id carrying the send time. Never fails. */
void guest_send_chat(bench_t *b, guest_t *g);

/**
 * Counts an error of `kind` (text printf-style) and closes `g`, unless it is
 * already dead or closed. The guest's state stays readable; its buffers are
 * freed by guest_close.
 */
void guest_fail(bench_t *b, guest_t *g, bench_err_t kind, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** Closes `g` quietly (the end of the run) and frees its buffers. Never fails. */
void guest_close(guest_t *g);

/** Writes what every guest queued since the last call. */
void guest_flush_all(bench_t *b);

/** Whether `g` has a live connection (started, not dead nor closed). */
static inline int guest_alive(const guest_t *g)
{
    return g->state > G_IDLE && g->state < G_DEAD;
}

#endif
