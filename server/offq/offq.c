/*
 * offq: the public calls, the request queue between the loops and the offq
 * thread, the thread's loop (reconnect with backoff, wait on the broker's
 * socket and the queue at once). The AMQP side is broker.c; the answers
 * posted back to workers are answer.c, below both.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../buf/buf.h"
#include "../log/log.h"
#include "../now/now.h"

/* ---- the request queue ---- */

static offq_req_t *req_new(offq_kind_t kind, const char *guest_id, size_t body_len)
{
    size_t name_len = guest_id != NULL ? sizeof(OFFQ_QUEUE_PREFIX) - 1 + strlen(guest_id) : 0;
    offq_req_t *r = buf_xcalloc(1, sizeof(*r) + name_len + 1 + body_len);
    r->kind = kind;
    if (guest_id != NULL) {
        memcpy(r->queue, OFFQ_QUEUE_PREFIX, sizeof(OFFQ_QUEUE_PREFIX) - 1);
        strcpy(r->queue + sizeof(OFFQ_QUEUE_PREFIX) - 1, guest_id);
    }
    r->body = r->queue + name_len + 1;
    return r;
}

static void enqueue(offq_t *q, offq_req_t *r)
{
    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    pthread_mutex_unlock(&q->mu);
    uint64_t one = 1;
    /* cannot fail short of a closed fd; a full counter still wakes the thread */
    while (write(q->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/* Queue names are at most 255 bytes; a longer guest id cannot have a queue. */
static int name_ok(const offq_req_t *r)
{
    return strlen(r->queue) <= 255;
}

/* A publish or fetch that cannot reach the broker now is answered without a hop to the thread. */
static int refuse_now(offq_t *q, offq_req_t *r)
{
    if (name_ok(r) && !atomic_load(&q->failing))
        return 0;
    offq__answer(q, r, offq_err_unavailable);
    return 1;
}

void offq_publish(offq_t *q, sio_worker_t *w, const char *guest_id, const void *body, size_t len, offq_done_cb cb,
                  void *ud)
{
    offq_req_t *r = req_new(OFFQ_PUBLISH, guest_id, len);
    r->w = w;
    r->done_cb = cb;
    r->ud = ud;
    r->len = len;
    if (len > 0)
        memcpy(r->body, body, len);
    if (!refuse_now(q, r))
        enqueue(q, r);
}

void offq_fetch(offq_t *q, sio_worker_t *w, const char *guest_id, int max, offq_msg_cb cb, void *ud)
{
    offq_req_t *r = req_new(OFFQ_FETCH, guest_id, 0);
    r->w = w;
    r->msg_cb = cb;
    r->ud = ud;
    r->max = max;
    if (!refuse_now(q, r))
        enqueue(q, r);
}

static void settle(offq_t *q, offq_kind_t kind, uint64_t tag)
{
    offq_req_t *r = req_new(kind, NULL, 0);
    r->tag = tag;
    enqueue(q, r);
}

void offq_ack(offq_t *q, uint64_t tag)
{
    settle(q, OFFQ_ACK, tag);
}

void offq_release(offq_t *q, uint64_t tag)
{
    settle(q, OFFQ_RELEASE, tag);
}

int offq_up(offq_t *q)
{
    return atomic_load(&q->up);
}

/* ---- the thread ---- */

/* Waits for the queue (and the broker's socket while connected) at most `ms`. */
static void wait_events(offq_t *q, uint64_t ms)
{
    struct pollfd fds[2] = {{.fd = q->wake_fd, .events = POLLIN}, {.fd = -1}};
    nfds_t n = 1;
    if (q->conn != NULL) {
        fds[1].fd = amqp_get_sockfd(q->conn);
        fds[1].events = POLLIN;
        n = 2;
    }
    int rc = poll(fds, n, (int)ms);
    if (rc > 0 && (fds[0].revents & POLLIN)) {
        uint64_t v;
        if (read(q->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR)
            log_warn("offq: wake read failed", json_pack("{s:s}", "error", strerror(errno)));
    }
    if (rc > 0 && n == 2 && fds[1].revents != 0)
        q->last_rx_ms = now_mono_ms();
}

static offq_req_t *take_all(offq_t *q, int *stopping)
{
    pthread_mutex_lock(&q->mu);
    offq_req_t *list = q->head;
    q->head = q->tail = NULL;
    *stopping = q->stopping;
    pthread_mutex_unlock(&q->mu);
    return list;
}

static void free_list(offq_req_t *r)
{
    while (r != NULL) {
        offq_req_t *next = r->next;
        free(r);
        r = next;
    }
}

static void try_connect(offq_t *q, uint64_t *backoff, uint64_t *next_attempt)
{
    char why[256];
    if (offq__connect(q, why, sizeof(why)) == 0) {
        log_info("offq: connected", json_pack("{s:s,s:i}", "host", q->ci.host, "port", q->ci.port));
        *backoff = 0;
        atomic_store(&q->failing, 0);
        atomic_store(&q->up, 1);
        return;
    }
    if (*backoff == 0)
        log_warn("offq: broker unavailable",
                 json_pack("{s:s,s:s,s:i}", "error", why, "host", q->ci.host, "port", q->ci.port));
    atomic_store(&q->failing, 1);
    *backoff = *backoff == 0 ? OFFQ_BACKOFF_MIN_MS : *backoff * 2;
    if (*backoff > OFFQ_BACKOFF_MAX_MS)
        *backoff = OFFQ_BACKOFF_MAX_MS;
    *next_attempt = now_mono_ms() + *backoff;
}

static void *offq_main(void *arg)
{
    offq_t *q = arg;
    uint64_t backoff = 0, next_attempt = 0;
    for (;;) {
        int stopping;
        offq_req_t *list = take_all(q, &stopping);
        if (stopping) {
            free_list(list);
            break;
        }
        /* the first attempt runs before the first requests, so they wait for its outcome */
        uint64_t now = now_mono_ms();
        if (q->conn == NULL && now >= next_attempt)
            try_connect(q, &backoff, &next_attempt);
        int burst = 0;
        while (list != NULL) {
            offq_req_t *r = list;
            list = r->next;
            r->next = NULL;
            if (q->conn != NULL) {
                offq_kind_t kind = r->kind; /* offq__handle takes r */
                offq__handle(q, r);
                /* read confirms between bursts so that neither side's buffers fill up */
                if (kind == OFFQ_PUBLISH && ++burst % OFFQ_PUBLISH_BURST == 0 && q->conn != NULL)
                    offq__pump(q);
            } else if (r->kind == OFFQ_PUBLISH || r->kind == OFFQ_FETCH) {
                offq__answer(q, r, offq_err_unavailable);
            } else {
                free(r); /* the broker requeued what that tag named when the connection died */
            }
        }
        uint64_t wait_ms = OFFQ_TICK_MS;
        if (q->conn != NULL)
            offq__pump(q);
        now = now_mono_ms();
        /* the broker sends a heartbeat at least every OFFQ_HEARTBEAT_S while idle */
        if (q->conn != NULL && q->last_rx_ms + (uint64_t)OFFQ_HEARTBEAT_S * 2500 < now)
            offq__lost(q, "heartbeat timeout");
        if (q->conn != NULL) {
            wait_ms = offq__expire(q, now, wait_ms);
        } else {
            if (backoff == 0) { /* just lost: first retry after the shortest backoff */
                backoff = OFFQ_BACKOFF_MIN_MS;
                next_attempt = now + backoff;
            }
            wait_ms = next_attempt > now ? next_attempt - now : 0;
        }
        wait_events(q, wait_ms);
    }
    offq__close(q);
    return NULL;
}

/* ---- life cycle ---- */

offq_t *offq_new(const char *amqp_url, int ttl_s, int max_len, char *err, size_t errlen)
{
    offq_t *q = buf_xcalloc(1, sizeof(*q));
    q->wake_fd = -1;
    q->url_buf = buf_xstrndup(amqp_url, strlen(amqp_url));
    amqp_default_connection_info(&q->ci);
    if (amqp_parse_url(q->url_buf, &q->ci) != AMQP_STATUS_OK) {
        snprintf(err, errlen, "malformed AMQP URL (expected amqp://user:pass@host:port/vhost)");
        goto Error;
    }
    if (q->ci.ssl) {
        snprintf(err, errlen, "amqps:// is not supported");
        goto Error;
    }
    /* "amqp://host:port/" names the default vhost, as every other client reads it */
    if (q->ci.vhost == NULL || q->ci.vhost[0] == '\0')
        q->ci.vhost = "/";
    q->ttl_s = ttl_s;
    q->max_len = max_len;
    /* re-declare well before x-expires: publishing alone does not keep a queue alive */
    q->cache_ms = ttl_s > 0 && (uint64_t)ttl_s * 500 < OFFQ_CACHE_MAX_MS ? (uint64_t)ttl_s * 500 : OFFQ_CACHE_MAX_MS;
    q->life = buf_xcalloc(1, sizeof(*q->life));
    atomic_init(&q->life->refs, 1);
    q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->wake_fd < 0) {
        /* out of file descriptors: as fatal as out of memory */
        fprintf(stderr, "offq: eventfd: %s\n", strerror(errno));
        abort();
    }
    pthread_mutex_init(&q->mu, NULL);
    int rc = pthread_create(&q->thread, NULL, offq_main, q);
    if (rc != 0) {
        fprintf(stderr, "offq: pthread_create: %s\n", strerror(rc));
        abort();
    }
    return q;
Error:
    free(q->url_buf);
    free(q);
    return NULL;
}

void offq_free(offq_t *q)
{
    if (q == NULL)
        return;
    /* from now on, answers still waiting in a worker's queue call nobody */
    atomic_store(&q->life->dead, 1);
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_mutex_unlock(&q->mu);
    uint64_t one = 1;
    while (write(q->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(q->thread, NULL);
    free_list(q->head);
    offq__life_release(q->life);
    pthread_mutex_destroy(&q->mu);
    close(q->wake_fd);
    free(q->url_buf);
    free(q);
}
