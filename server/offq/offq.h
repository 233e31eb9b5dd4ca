/*
 * offq: offline queues in RabbitMQ. A message that cannot be delivered live
 * goes to its recipient's durable queue (one per guest with something
 * waiting: `nearchat.offline.<guestId>`, x-expires = the token lifetime,
 * x-max-length capped with overflow reject-publish), as a persistent
 * message, and counts as queued only once the broker confirmed it
 * (publisher confirms). When the guest comes back, on any node, its
 * messages are fetched in order; each is acked to RabbitMQ only after the
 * client acked it, so a crash in between redelivers it.
 *
 * librabbitmq blocks, so it lives on a thread of its own; loops talk to it
 * through calls that copy their arguments and return at once, and get their
 * answers on their own loop through sio_worker_post. The thread keeps the
 * connection's heartbeats, and reconnects with backoff (100 ms .. 5 s) while
 * the broker is down; meanwhile every publish or fetch answers "unavailable"
 * at once (nothing waits for the broker to come back).
 */
#ifndef NEARCHAT_OFFQ_H
#define NEARCHAT_OFFQ_H
#include <stddef.h>
#include <stdint.h>

#include "../sio/sio.h"

typedef struct offq offq_t;

/** The text of the error that the broker is down or refused (callbacks get it as `err`). */
extern const char offq_err_unavailable[];

/**
 * Starts the thread and the first connection to `amqp_url`
 * (amqp://user:pass@host:port/vhost; an empty vhost, as in "...:5672/",
 * means "/"). `ttl_s` is the queues' x-expires, `max_len` their x-max-length
 * (0 or less leaves the argument out). Returns NULL with a reason in `err`
 * only for a malformed URL (or amqps://, not supported); a broker that is
 * down is not an error. Out of memory, threads or descriptors aborts.
 */
offq_t *offq_new(const char *amqp_url, int ttl_s, int max_len, char *err, size_t errlen);
/**
 * Stops the thread (unanswered calls are dropped: their callbacks never run,
 * not even answers already waiting in a worker's queue) and frees. Call it
 * before the workers stop: what was posted to a stopped worker is never freed.
 */
void offq_free(offq_t *q);
/** 1 while connected to the broker (any thread; for /readyz). Never fails. */
int offq_up(offq_t *q);

/** Answer of offq_publish, on worker `w`: err NULL once the broker confirmed the message. */
typedef void (*offq_done_cb)(sio_worker_t *w, const char *err, void *ud);
/**
 * Queues `body` (copied) for `guest_id`, declaring its queue when needed.
 * `cb` runs on `w` exactly once (unless offq_free comes first), with err
 * offq_err_unavailable when the broker is down (answered at once), refused
 * the message (queue full: x-max-length with reject-publish) or did not
 * confirm it within 10 s. Callable from any thread; never fails.
 */
void offq_publish(offq_t *q, sio_worker_t *w, const char *guest_id, const void *body, size_t len, offq_done_cb cb,
                  void *ud);

/**
 * One waiting message, on worker `w`: `body` is borrowed for the call, `tag`
 * names it for offq_ack / offq_release. `body` NULL means the end of the
 * batch (then `tag` is 0 and `err` says whether the fetch failed).
 */
typedef void (*offq_msg_cb)(sio_worker_t *w, uint64_t tag, const void *body, size_t len, const char *err, void *ud);
/**
 * Fetches every message waiting for `guest_id` (up to `max`; 0 or less
 * fetches none), in order, without acking them: each comes to `cb` on `w`,
 * then a final call with body NULL. A guest without a queue has nothing
 * waiting (err NULL). The messages stay reserved for this fetch until acked
 * or released, or until the connection to the broker ends: then the broker
 * puts them back and their tags are dead (the broker also takes them back
 * from a reservation older than its consumer_timeout, 30 min by default).
 * err is offq_err_unavailable when the broker is down or the connection
 * broke during the fetch. Callable from any thread; never fails.
 */
void offq_fetch(offq_t *q, sio_worker_t *w, const char *guest_id, int max, offq_msg_cb cb, void *ud);
/**
 * The client acked the message: remove it from the queue for good. A tag
 * that is dead (connection ended since), unknown or already acked or
 * released is ignored. Any thread; never fails.
 */
void offq_ack(offq_t *q, uint64_t tag);
/** The client went away before acking: put the message back, in its place, for the next fetch. Tags as offq_ack. */
void offq_release(offq_t *q, uint64_t tag);

#endif
