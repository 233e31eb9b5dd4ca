/*
 * offq internals, shared by offq.c (the public calls, the request queue, the
 * thread's loop and the answers to workers) and broker.c (everything that
 * talks AMQP). Everything below the "thread only" line is touched by the
 * offq thread alone, so it needs no lock.
 */
#ifndef NEARCHAT_OFFQ_INTERNAL_H
#define NEARCHAT_OFFQ_INTERNAL_H

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "offq.h"

#define OFFQ_QUEUE_PREFIX "nearchat.offline."
#define OFFQ_HEARTBEAT_S 10
#define OFFQ_BACKOFF_MIN_MS 100
#define OFFQ_BACKOFF_MAX_MS 5000
#define OFFQ_CONNECT_TIMEOUT_MS 2000
#define OFFQ_RPC_TIMEOUT_MS 5000
/* A publish whose confirm takes longer (broker blocked by an alarm) is answered "unavailable". */
#define OFFQ_CONFIRM_TIMEOUT_MS 10000
/* The longest idle wait: librabbitmq sends heartbeats only when it is called. */
#define OFFQ_TICK_MS 1000
/* Publishes sent in a row before the thread reads the broker's confirms. */
#define OFFQ_PUBLISH_BURST 64
#define OFFQ_CACHE_MAX_MS 60000
#define OFFQ_CACHE_BUCKETS 1024
#define OFFQ_CACHE_MAX_NAMES 8192

/* The channels of a connection: each kind of work gets its own so that an
 * error on one (a 404 on a passive declare closes its channel) never drops
 * the state of another (unconfirmed publishes, reserved messages). */
enum {
    OFFQ_CH_PUBLISH = 1, /* basic.publish in confirm mode */
    OFFQ_CH_GET = 2,     /* basic.get, basic.ack, basic.reject */
    OFFQ_CH_DECLARE = 3, /* queue.declare, active and passive */
};

/* Tags handed out are (channel generation << 40) | delivery tag, so that a
 * tag of a channel that has since closed is recognised and ignored. */
#define OFFQ_TAG_BITS 40
#define OFFQ_TAG_MASK ((UINT64_C(1) << OFFQ_TAG_BITS) - 1)
#define OFFQ_GEN_MASK ((UINT64_C(1) << (64 - OFFQ_TAG_BITS)) - 1)

typedef enum { OFFQ_PUBLISH, OFFQ_FETCH, OFFQ_ACK, OFFQ_RELEASE } offq_kind_t;

/*
 * Shared with every answer posted to a worker: once offq_free marked it
 * dead, answers still in a worker's queue run no callback. The last holder
 * frees it.
 */
typedef struct offq_life {
    atomic_int refs;
    atomic_int dead;
} offq_life_t;

/*
 * One call from a loop, with copies of its arguments in one allocation. A
 * publish stays alive until its confirm and then travels to the worker as
 * its own answer; a fetch travels as the end-of-batch answer.
 */
typedef struct offq_req {
    struct offq_req *next;
    offq_kind_t kind;
    sio_worker_t *w;
    offq_done_cb done_cb;
    offq_msg_cb msg_cb;
    void *ud;
    offq_life_t *life; /* set when the request is posted as an answer */
    const char *err;   /* the answer */
    uint64_t tag;      /* ack, release */
    int max;           /* fetch */
    uint64_t seq;      /* publish: the publish sequence number on its channel */
    uint64_t deadline; /* publish: when its confirm is given up */
    int returned;      /* publish: the broker returned it (no such queue) */
    size_t len;        /* publish: body length */
    char *body;        /* publish: points into data, after the name */
    char queue[];      /* NUL-terminated queue name (empty for ack/release), then the body */
} offq_req_t;

typedef struct offq_name {
    struct offq_name *next;
    uint64_t until_ms;
    char name[];
} offq_name_t;

struct offq {
    pthread_t thread;
    pthread_mutex_t mu;
    offq_req_t *head, *tail;
    int stopping;
    int wake_fd; /* eventfd, not a condvar: the thread waits on it and on the broker's socket at once */
    atomic_int up;
    atomic_int failing; /* after a failed attempt: calls answer "unavailable" without a hop */
    offq_life_t *life;

    /* configuration, read-only after offq_new */
    char *url_buf; /* amqp_parse_url splits this copy in place */
    struct amqp_connection_info ci;
    int ttl_s, max_len;
    uint64_t cache_ms;

    /* ---- thread only ---- */
    amqp_connection_state_t conn; /* NULL while disconnected */
    uint64_t last_rx_ms;          /* the broker was last heard from */
    uint64_t next_seq;            /* next publish sequence number on OFFQ_CH_PUBLISH */
    offq_req_t *pend_head, *pend_tail;
    uint64_t gen;   /* generation of OFFQ_CH_GET */
    uint64_t *held; /* delivery tags reserved by fetches, ascending */
    size_t nheld, capheld;
    offq_name_t *names[OFFQ_CACHE_BUCKETS];
    size_t nnames;
};

/* answer.c, below offq.c and broker.c: the clock, and the answers to workers. */
/* Drops a reference to what answers in flight check before they run. */
void offq__life_release(offq_life_t *life);
/* Posts a publish's or fetch's answer to its worker; takes `r`. */
void offq__answer(offq_t *q, offq_req_t *r, const char *err);
/* Posts one fetched message (the body is copied). */
void offq__post_message(offq_t *q, const offq_req_t *fetch, uint64_t tag, const void *body, size_t len);

/* Broker (broker.c); every call is made on the offq thread. */
/* Connects, logs in and opens the channels; 0 or -1 with a reason in `why`. */
int offq__connect(offq_t *q, char *why, size_t whylen);
/* Drops the connection: pending publishes answer "unavailable", held tags die. */
void offq__lost(offq_t *q, const char *why);
/* Closes the connection politely (at shutdown); pending publishes are freed unanswered. */
void offq__close(offq_t *q);
/* Handles one request while connected; takes `r`. */
void offq__handle(offq_t *q, offq_req_t *r);
/* Reads every frame already available (confirms, returns, closes) without blocking. */
void offq__pump(offq_t *q);
/* Answers the publishes whose confirm is overdue; returns ms until the next deadline (or `cap`). */
uint64_t offq__expire(offq_t *q, uint64_t now, uint64_t cap);
/* Frees the declared-names cache. */
void offq__cache_clear(offq_t *q);

#endif
