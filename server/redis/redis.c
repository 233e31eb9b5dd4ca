/*
 * The Redis client on a worker loop. Replies come back in the order commands
 * were written, so a FIFO of callbacks is all the bookkeeping a pipelined
 * connection needs; pub/sub pushes of a subscriber bypass it.
 */
#include "redis.h"

#include <netdb.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check/check.h"
#include "../log/log.h"

const char redis_err_unavailable[] = "unavailable";

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 2000
#define REPLY_TIMEOUT_MS 3000
#define STALL_MS 250 /* a timer this late means the loop itself stood still */

typedef enum { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_UP } conn_state_t;

typedef enum {
    P_USER,      /* the caller's command */
    P_HANDSHAKE, /* AUTH, SELECT, SCRIPT LOAD, SUBSCRIBE of the handshake */
    P_INTERNAL,  /* a later SUBSCRIBE or script reload */
} pending_kind_t;

typedef struct pending {
    redis_reply_cb cb;
    void *ud;
    pending_kind_t kind;
} pending_t;

struct redis_client {
    sio_worker_t *w;
    redis_target_t target;
    redis_script_t *const *scripts;
    redis_state_cb on_state;
    redis_message_cb on_message;
    void *ud;
    sio_stream_t *st;
    redisReader *reader;
    conn_state_t state;
    int handshake_left;
    pending_t *q; /* ring of callbacks, in the order of the commands */
    size_t qhead, qlen, qcap;
    char **channels;
    size_t nchannels;
    sio_timer_t *retry, *watchdog;
    uint64_t watchdog_due; /* loop time the watchdog should fire at */
    uint64_t backoff_ms;
    int in_cb, freed;
};

void redis_script_init(redis_script_t *s, const char *name, const char *body)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)body, strlen(body), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    s->name = name;
    s->body = body;
}

int redis_target_parse(const char *url, redis_target_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0) {
        snprintf(err, errlen, "REDIS_URL must start with redis://");
        return REDIS_CLIENT_ERR_URL;
    }
    p += 8;
    const char *at = strchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof(out->password)) {
            snprintf(err, errlen, "REDIS_URL password too long");
            return REDIS_CLIENT_ERR_URL;
        }
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    char host[128] = "127.0.0.1", port[16] = "6379";
    const char *slash = strchr(p, '/');
    size_t hostport = slash != NULL ? (size_t)(slash - p) : strlen(p);
    const char *colon = NULL;
    if (hostport > 0 && p[0] == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', hostport);
        if (close == NULL) {
            snprintf(err, errlen, "REDIS_URL: unterminated [IPv6] host");
            return REDIS_CLIENT_ERR_URL;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(close - p - 1), p + 1);
        if (close + 1 < p + hostport && close[1] == ':')
            colon = close + 1;
    } else {
        colon = memchr(p, ':', hostport);
        size_t hl = colon != NULL ? (size_t)(colon - p) : hostport;
        if (hl > 0)
            snprintf(host, sizeof(host), "%.*s", (int)hl, p);
    }
    if (colon != NULL) {
        size_t pl = (size_t)(p + hostport - colon - 1);
        if (pl == 0 || pl >= sizeof(port) || strspn(colon + 1, "0123456789") < pl) {
            snprintf(err, errlen, "REDIS_URL: bad port");
            return REDIS_CLIENT_ERR_URL;
        }
        snprintf(port, sizeof(port), "%.*s", (int)pl, colon + 1);
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end != '\0' || db < 0 || db > 1000) {
            snprintf(err, errlen, "REDIS_URL: bad database number");
            return REDIS_CLIENT_ERR_URL;
        }
        out->db = (int)db;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "REDIS_URL host %s: %s", host, gai_strerror(rc));
        return REDIS_CLIENT_ERR_URL;
    }
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->addrlen = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(out->display, sizeof(out->display), "%s:%s/%d", host, port, out->db);
    snprintf(out->host, sizeof(out->host), "%s", host);
    out->port = atoi(port);
    return 0;
}

/* ---- the FIFO of callbacks ---- */

static void q_push(redis_client_t *c, redis_reply_cb cb, void *ud, pending_kind_t kind)
{
    if (c->qlen == c->qcap) {
        size_t ncap = c->qcap ? c->qcap * 2 : 64;
        pending_t *nq = buf_xcalloc(ncap, sizeof(*nq));
        for (size_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qcap = ncap;
        c->qhead = 0;
    }
    c->q[(c->qhead + c->qlen) % c->qcap] = (pending_t){cb, ud, kind};
    c->qlen++;
}

static pending_t q_pop(redis_client_t *c)
{
    pending_t p = c->q[c->qhead];
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    return p;
}

/* ---- connection life ---- */

static void connect_now(redis_client_t *c);

static void on_retry(sio_timer_t *t, void *ud)
{
    redis_client_t *c = ud;
    if (c->state == ST_CONNECTING) { /* the connect itself timed out */
        sio_stream_close(c->st);
        c->st = NULL;
        c->state = ST_DOWN;
    }
    connect_now(c);
}

/* Drops the connection: every waiting callback learns it, then a reconnect is scheduled. */
static void conn_lost(redis_client_t *c, const char *why)
{
    int was_up = c->state == ST_UP;
    if (c->st != NULL) {
        sio_stream_close(c->st);
        c->st = NULL;
    }
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    c->state = ST_DOWN;
    sio_timer_stop(c->watchdog);
    c->in_cb++;
    while (c->qlen > 0) {
        pending_t p = q_pop(c);
        if (p.cb != NULL)
            p.cb(NULL, redis_err_unavailable, p.ud);
    }
    if (was_up) {
        log_warn("redis connection lost", json_pack("{s:s,s:s}", "redis", c->target.display, "error", why));
        if (c->on_state != NULL)
            c->on_state(0, c->ud);
    }
    c->in_cb--;
    if (c->freed)
        return;
    sio_timer_start(c->retry, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void client_destroy(redis_client_t *c)
{
    c->on_state = NULL;
    if (c->st != NULL || c->reader != NULL || c->qlen > 0)
        conn_lost(c, "closed");
    sio_timer_free(c->retry);
    sio_timer_free(c->watchdog);
    for (size_t i = 0; i < c->nchannels; i++)
        free(c->channels[i]);
    free(c->channels);
    free(c->q);
    free(c);
}

/* A callback asked for the client to be freed while it ran: do it now. */
static void free_if_asked(redis_client_t *c)
{
    if (c->freed && c->in_cb == 0)
        client_destroy(c);
}

/* Replies are awaited: REPLY_TIMEOUT_MS of the loop's time from now. */
static void watchdog_arm(redis_client_t *c)
{
    c->watchdog_due = sio_worker_now(c->w) + REPLY_TIMEOUT_MS;
    sio_timer_start(c->watchdog, REPLY_TIMEOUT_MS);
}

static void on_watchdog(sio_timer_t *t, void *ud)
{
    redis_client_t *c = ud;
    /*
     * Firing long after it was due means this loop did not run (the process
     * was stopped, or starved): the replies may be waiting in the socket,
     * unread. That is no reason to drop the connection and fail every command
     * in flight; give the loop one more period to read them.
     */
    if (sio_worker_now(c->w) > c->watchdog_due + STALL_MS) {
        watchdog_arm(c);
        return;
    }
    conn_lost(c, "no reply in time");
    free_if_asked(c);
}

static void write_argv(redis_client_t *c, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        abort(); /* out of memory: fatal by policy */
    sio_stream_write(c->st, cmd, (size_t)n);
    free(cmd);
    if (!sio_timer_armed(c->watchdog) && !(c->on_message != NULL && c->state == ST_UP))
        watchdog_arm(c);
}

static void send_internal(redis_client_t *c, pending_kind_t kind, int argc, const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    write_argv(c, argc, argv, lens);
    q_push(c, NULL, NULL, kind);
    if (kind == P_HANDSHAKE)
        c->handshake_left++;
}

static void became_up(redis_client_t *c)
{
    c->state = ST_UP;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->qlen == 0 || c->on_message != NULL)
        sio_timer_stop(c->watchdog);
    log_info("redis connected", json_pack("{s:s,s:s}", "redis", c->target.display, "role",
                                          c->on_message != NULL ? "subscriber" : "commands"));
    if (c->on_state != NULL)
        c->on_state(1, c->ud);
}

static void stream_connected(sio_stream_t *st, const char *err, void *ud)
{
    redis_client_t *c = ud;
    sio_timer_stop(c->retry);
    c->state = ST_HANDSHAKE;
    c->reader = redisReaderCreate();
    c->handshake_left = 0;
    if (c->target.password[0] != '\0')
        send_internal(c, P_HANDSHAKE, 2, (const char *[]){"AUTH", c->target.password});
    if (c->target.db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", c->target.db);
        send_internal(c, P_HANDSHAKE, 2, (const char *[]){"SELECT", db});
    }
    for (size_t i = 0; c->scripts != NULL && c->scripts[i] != NULL; i++)
        send_internal(c, P_HANDSHAKE, 3, (const char *[]){"SCRIPT", "LOAD", c->scripts[i]->body});
    for (size_t i = 0; i < c->nchannels; i++)
        send_internal(c, P_HANDSHAKE, 2, (const char *[]){"SUBSCRIBE", c->channels[i]});
    if (c->handshake_left == 0)
        became_up(c);
}

static void dispatch_push(redis_client_t *c, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
        c->on_message(r->element[1]->str, r->element[2]->str, r->element[2]->len, c->ud);
}

/* Handles one reply; returns -1 when the connection must be dropped. */
static int handle_reply(redis_client_t *c, redisReply *r)
{
    if (c->on_message != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0) {
        dispatch_push(c, r);
        return 0;
    }
    if (c->qlen == 0)
        return -1; /* a reply nobody asked for: the stream is out of step */
    pending_t p = q_pop(c);
    const char *err = r->type == REDIS_REPLY_ERROR ? r->str : NULL;
    if (p.kind == P_USER) {
        if (err != NULL && strncmp(err, "NOSCRIPT", 8) == 0) {
            /* someone flushed the scripts while we were connected: load them again */
            for (size_t i = 0; c->scripts != NULL && c->scripts[i] != NULL; i++)
                send_internal(c, P_INTERNAL, 3, (const char *[]){"SCRIPT", "LOAD", c->scripts[i]->body});
        }
        if (p.cb != NULL)
            p.cb(r, err, p.ud);
        return 0;
    }
    if (err != NULL) {
        log_error("redis handshake failed", json_pack("{s:s,s:s}", "redis", c->target.display, "error", err));
        return -1;
    }
    if (p.kind == P_HANDSHAKE && --c->handshake_left == 0)
        became_up(c);
    return 0;
}

static void stream_read(sio_stream_t *st, const void *data, size_t len, void *ud)
{
    redis_client_t *c = ud;
    if (redisReaderFeed(c->reader, data, len) != REDIS_OK) {
        conn_lost(c, "reader error");
        return;
    }
    c->in_cb++;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            c->in_cb--;
            conn_lost(c, "protocol error");
            goto Done;
        }
        if (reply == NULL)
            break;
        int rc = handle_reply(c, reply);
        freeReplyObject(reply);
        if (c->freed || c->state == ST_DOWN)
            break;
        if (rc != 0) {
            c->in_cb--;
            conn_lost(c, "unexpected reply");
            goto Done;
        }
    }
    c->in_cb--;
    if (!c->freed && c->state != ST_DOWN) {
        if (c->qlen > 0 && !(c->on_message != NULL && c->state == ST_UP))
            watchdog_arm(c);
        else
            sio_timer_stop(c->watchdog);
    }
Done:
    free_if_asked(c);
}

static void stream_closed(sio_stream_t *st, const char *err, void *ud)
{
    redis_client_t *c = ud;
    c->st = NULL; /* the stream frees itself after this callback */
    if (c->state == ST_CONNECTING && c->backoff_ms <= BACKOFF_MIN_MS)
        log_warn("redis unreachable", json_pack("{s:s,s:s}", "redis", c->target.display, "error", err));
    conn_lost(c, err);
    free_if_asked(c);
}

static const sio_stream_callbacks_t stream_cbs = {stream_connected, stream_read, stream_closed};

static void connect_now(redis_client_t *c)
{
    c->state = ST_CONNECTING;
    sio_timer_start(c->retry, CONNECT_TIMEOUT_MS);
    c->st = sio_stream_connect(c->w, (const struct sockaddr *)&c->target.addr, c->target.addrlen, &stream_cbs, c);
}

redis_client_t *redis_client_new(sio_worker_t *w, const redis_target_t *target, redis_script_t *const *scripts,
                                 redis_state_cb on_state, redis_message_cb on_message, void *ud)
{
    CHECK(sio_worker_is_current(w));
    redis_client_t *c = buf_xcalloc(1, sizeof(*c));
    c->w = w;
    c->target = *target;
    c->scripts = scripts;
    c->on_state = on_state;
    c->on_message = on_message;
    c->ud = ud;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->retry = sio_timer_new(w, on_retry, c);
    c->watchdog = sio_timer_new(w, on_watchdog, c);
    connect_now(c);
    return c;
}

void redis_client_free(redis_client_t *c)
{
    if (c == NULL)
        return;
    if (c->in_cb > 0) {
        c->freed = 1;
        return;
    }
    c->freed = 1;
    client_destroy(c);
}

int redis_client_up(const redis_client_t *c)
{
    return c->state == ST_UP;
}

int redis_command_argv(redis_client_t *c, int argc, const char **argv, const size_t *argvlen, redis_reply_cb cb,
                       void *ud)
{
    CHECK(sio_worker_is_current(c->w)); /* a client belongs to its worker's loop */
    if (c->state != ST_UP || c->freed)
        return REDIS_CLIENT_ERR_DOWN;
    write_argv(c, argc, argv, argvlen);
    q_push(c, cb, ud, P_USER);
    return 0;
}

int redis_command(redis_client_t *c, redis_reply_cb cb, void *ud, const char *arg0, ...)
{
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a != NULL && argc < 32; a = va_arg(ap, const char *)) {
        argv[argc] = a;
        lens[argc++] = strlen(a);
    }
    va_end(ap);
    return redis_command_argv(c, argc, argv, lens, cb, ud);
}

int redis_eval(redis_client_t *c, const redis_script_t *s, int nkeys, int nargs, const char **args,
               const size_t *arglens, redis_reply_cb cb, void *ud)
{
    enum { MAX_ARGS = 64 };
    const char *argv[MAX_ARGS + 3];
    size_t lens[MAX_ARGS + 3];
    char nk[16];
    if (nargs > MAX_ARGS)
        abort(); /* a programming error, not input */
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = s->sha;
    lens[1] = 40;
    argv[2] = nk;
    lens[2] = strlen(nk);
    for (int i = 0; i < nargs; i++) {
        argv[3 + i] = args[i];
        lens[3 + i] = arglens != NULL ? arglens[i] : strlen(args[i]);
    }
    return redis_command_argv(c, nargs + 3, argv, lens, cb, ud);
}

void redis_subscribe(redis_client_t *c, const char *channel)
{
    CHECK(sio_worker_is_current(c->w));
    c->channels = realloc(c->channels, (c->nchannels + 1) * sizeof(*c->channels));
    if (c->channels == NULL)
        abort();
    c->channels[c->nchannels++] = strdup(channel);
    if (c->state == ST_UP)
        send_internal(c, P_INTERNAL, 2, (const char *[]){"SUBSCRIBE", channel});
}

void redis_strings_from(const redisReply *reply, const char *err, redis_strings_t *r)
{
    memset(r, 0, sizeof(*r));
    if (err != NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        r->status = "err";
        r->err = redis_err_unavailable;
        return;
    }
    r->status = reply->element[0]->str;
    for (size_t i = 1; i < reply->elements && r->n < 8; i++) {
        const redisReply *e = reply->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            r->v[r->n] = e->str;
        } else if (e->type == REDIS_REPLY_INTEGER) {
            snprintf(r->nums[r->n], sizeof(r->nums[r->n]), "%lld", e->integer);
            r->v[r->n] = r->nums[r->n];
        } else {
            r->v[r->n] = "";
        }
        r->n++;
    }
    if (strcmp(r->status, "err") == 0)
        r->err = r->n > 0 ? r->v[0] : redis_err_unavailable;
}
