/*
 * The moderator API: authentication, a queue of calls served by two
 * threads, routing, the history reads, and the audit of every call. The
 * answers and the query's parameters are reply.c, below this and bans.c.
 */
#include "modapi.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../geo/geo.h"
#include "../log/log.h"
#include "internal.h"
#include "../now/now.h"

#define API_THREADS 2
/* The longest audit target searched: a guest id (22) or an address or CIDR. */
#define MAX_TARGET GEO_CANONICAL_MAX

/* ---- keys ---- */

static int load_keys(modapi_t *m, const char *path, char *err, size_t errlen)
{
    if (path == NULL)
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            log_warn("MODERATOR_KEYS_FILE does not exist: every moderator call is refused",
                     json_pack("{s:s}", "file", path));
            return 0;
        }
        snprintf(err, errlen, "MODERATOR_KEYS_FILE %s: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    int lineno = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strlen(p);
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            p[--n] = '\0';
        if (n == 0 || p[0] == '#')
            continue;
        if (n != 64 || strspn(p, "0123456789abcdefABCDEF") != 64) {
            snprintf(err, errlen, "MODERATOR_KEYS_FILE %s line %d: expected a SHA-256 hex digest", path, lineno);
            fclose(f);
            return -1;
        }
        if (m->nkeys == MODAPI_MAX_KEYS)
            break;
        for (int i = 0; i < 64; i++)
            m->keys[m->nkeys][i] = (char)tolower((unsigned char)p[i]);
        m->nkeys++;
    }
    fclose(f);
    return 0;
}

/*
 * The index of the key behind an Authorization header, or -1. `who` gets the
 * moderator's fingerprint: 16 hex digits of the digest (64 bits: distinct
 * for any realistic number of keys, and useless to log in with).
 */
static int authenticate(const modapi_t *m, const char *authorization, char who[MODAPI_WHO_LEN])
{
    if (strncmp(authorization, "Bearer ", 7) != 0 || authorization[7] == '\0')
        return -1;
    const char *key = authorization + 7;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    char hex[65];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    int found = -1;
    for (int i = 0; i < m->nkeys; i++) /* every digest is compared: the time says nothing of which matched */
        if (CRYPTO_memcmp(hex, m->keys[i], 64) == 0)
            found = i;
    if (found >= 0)
        snprintf(who, MODAPI_WHO_LEN, "key:%.16s", m->keys[found]);
    return found;
}

/* ---- history reads ---- */

static void answer_history(api_call_t *call, int rc, json_t *out)
{
    switch (rc) {
    case 0:
        modapi_reply_json(call, 200, out);
        return;
    case HIST_ERR_CURSOR:
        modapi_reply_error(call, 400, "invalid_cursor", "the cursor does not belong to this query");
        return;
    case HIST_ERR_INVALID:
        modapi_reply_error(call, 400, "invalid_parameter", "a parameter is out of range");
        return;
    case HIST_ERR_NOT_FOUND:
        modapi_reply_error(call, 404, "not_found", "no such record");
        return;
    default:
        modapi_reply_error(call, 503, "unavailable", "the history store is unavailable");
        return;
    }
}

static void get_sessions(api_call_t *call)
{
    modapi_t *m = call->api;
    const char *q = sio_http_query(call->req);
    long long limit, since, until;
    if (modapi_int_param(call, "limit", 100, 1, 500, &limit) != 0 ||
        modapi_int_param(call, "since", 0, 0, INT64_MAX / 2, &since) != 0 ||
        modapi_int_param(call, "until", 0, 0, INT64_MAX / 2, &until) != 0)
        return;
    char *guest = modapi_query_param(q, "guest"), *cursor = modapi_query_param(q, "cursor");
    if (guest != NULL && (strlen(guest) != 22 || strspn(guest, MODAPI_B64URL) != 22)) {
        modapi_reply_error(call, 400, "invalid_parameter", "guest must be a guest id");
    } else if (m->history == NULL) {
        modapi_reply_error(call, 503, "unavailable", "no history store");
    } else {
        json_t *out = NULL;
        modapi_set_target(call, guest);
        int rc = hist_sessions(m->history, guest, since, until, (int)limit, cursor, &out);
        answer_history(call, rc, out);
    }
    free(guest);
    free(cursor);
}

static void get_session(api_call_t *call, const char *sid, int messages)
{
    modapi_t *m = call->api;
    long long limit;
    if (modapi_int_param(call, "limit", 100, 1, 500, &limit) != 0)
        return;
    if (m->history == NULL) {
        modapi_reply_error(call, 503, "unavailable", "no history store");
        return;
    }
    json_t *out = NULL;
    int rc;
    if (messages) {
        char *cursor = modapi_query_param(sio_http_query(call->req), "cursor");
        rc = hist_messages(m->history, sid, (int)limit, cursor, &out);
        free(cursor);
    } else {
        rc = hist_session(m->history, sid, &out);
    }
    answer_history(call, rc, out);
}

static void get_reports(api_call_t *call)
{
    modapi_t *m = call->api;
    const char *q = sio_http_query(call->req);
    long long limit;
    if (modapi_int_param(call, "limit", 100, 1, 500, &limit) != 0)
        return;
    char *status = modapi_query_param(q, "status"), *cursor = modapi_query_param(q, "cursor");
    if (status != NULL && strcmp(status, "open") != 0 && strcmp(status, "closed") != 0) {
        modapi_reply_error(call, 400, "invalid_parameter", "status must be open or closed");
    } else if (m->history == NULL) {
        modapi_reply_error(call, 503, "unavailable", "no history store");
    } else {
        json_t *out = NULL;
        int rc = hist_reports(m->history, status, (int)limit, cursor, &out);
        answer_history(call, rc, out);
    }
    free(status);
    free(cursor);
}

static void close_report(api_call_t *call, const char *rid)
{
    modapi_t *m = call->api;
    if (m->history == NULL) {
        modapi_reply_error(call, 503, "unavailable", "no history store");
        return;
    }
    json_object_set_new(call->info, "reportId", json_string(rid));
    int rc = hist_close_report(m->history, rid, now_wall_ms());
    if (rc == 0)
        modapi_reply_json(call, 200, json_pack("{s:b,s:s}", "ok", 1, "reportId", rid));
    else
        answer_history(call, rc, NULL);
}

static void get_audit(api_call_t *call)
{
    modapi_t *m = call->api;
    long long limit;
    if (modapi_int_param(call, "limit", 100, 1, 500, &limit) != 0)
        return;
    const char *q = sio_http_query(call->req);
    char *cursor = modapi_query_param(q, "cursor"), *target = modapi_query_param(q, "target");
    /* an address is searched in the one form bans.c stores */
    char canon[GEO_CANONICAL_MAX];
    if (target != NULL && geo_addr_canonical(target, canon, sizeof(canon)) == 0) {
        free(target);
        target = strdup(canon);
    }
    if (target != NULL && (target[0] == '\0' || strlen(target) > MAX_TARGET)) {
        modapi_reply_error(call, 400, "invalid_parameter", "target must be a guest id or an address");
    } else if (m->history == NULL) {
        modapi_reply_error(call, 503, "unavailable", "no history store");
    } else {
        json_t *out = NULL;
        int rc = hist_audit(m->history, target, (int)limit, cursor, &out);
        answer_history(call, rc, out);
    }
    free(target);
    free(cursor);
}

/* ---- routing ---- */

/* Splits "/api/v1/a/b/c" into up to 4 segments (pointers into `buf`). */
static int split_path(const char *path, char *buf, size_t buflen, char *seg[4])
{
    snprintf(buf, buflen, "%s", path + strlen(MODAPI_PREFIX));
    int n = 0;
    for (char *p = buf; *p && n < 4;) {
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

static void route(api_call_t *call)
{
    const char *method = sio_http_method(call->req);
    char buf[512], *seg[4] = {0};
    int n = split_path(sio_http_path(call->req), buf, sizeof(buf), seg);
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0, del = strcmp(method, "DELETE") == 0;
    if (n >= 1 && strcmp(seg[0], "sessions") == 0) {
        if (!get)
            goto NotAllowed;
        if (n == 1)
            get_sessions(call);
        else if (n == 2)
            get_session(call, seg[1], 0);
        else if (n == 3 && strcmp(seg[2], "messages") == 0)
            get_session(call, seg[1], 1);
        else
            goto NotFound;
        return;
    }
    if (n >= 1 && strcmp(seg[0], "reports") == 0) {
        if (n == 1 && get)
            get_reports(call);
        else if (n == 3 && strcmp(seg[2], "close") == 0 && post)
            close_report(call, seg[1]);
        else if (n == 1 || (n == 3 && strcmp(seg[2], "close") == 0))
            goto NotAllowed;
        else
            goto NotFound;
        return;
    }
    if (n >= 1 && strcmp(seg[0], "bans") == 0) {
        if (n == 1 && post)
            modapi_ban_create(call);
        else if (n == 1 && get)
            modapi_ban_list(call);
        else if (n == 2 && del)
            modapi_ban_lift(call, seg[1]);
        else if (n <= 2)
            goto NotAllowed;
        else
            goto NotFound;
        return;
    }
    if (n == 1 && strcmp(seg[0], "audit") == 0) {
        if (!get)
            goto NotAllowed;
        get_audit(call);
        return;
    }
NotFound:
    modapi_reply_error(call, 404, "not_found", "no such endpoint");
    return;
NotAllowed:
    modapi_reply_error(call, 405, "method_not_allowed", "this endpoint does not take that method");
}

/* ---- threads ---- */

/*
 * A call without a valid key, within its address's bucket (on_request took
 * the token): 401, a log line and a small audit entry (the method and path,
 * never the query, body or key).
 */
static void refuse(api_call_t *call, const char *action)
{
    modapi_t *m = call->api;
    metrics_inc(m->m_unauthorized);
    modapi_reply_error(call, 401, "unauthorized", "a valid moderator key is needed");
    log_info("moderator call refused", json_pack("{s:s,s:i}", "action", action, "status", call->status));
    if (m->history != NULL)
        hist_put_audit(m->history, "anonymous", action, NULL, NULL, NULL, now_wall_ms());
}

static void serve(api_call_t *call)
{
    modapi_t *m = call->api;
    char action[160];
    snprintf(action, sizeof(action), "%s %s", sio_http_method(call->req), sio_http_path(call->req));
    if (!call->authed) {
        refuse(call, action);
        return;
    }
    /* what was asked, without secrets: the query never holds one, the body of a ban neither */
    char *detail = strdup(sio_http_query(call->req));
    call->info = json_object();
    route(call);
    json_object_set_new(call->info, "status", json_integer(call->status));
    log_info("moderator call",
             json_pack("{s:s,s:s,s:i}", "moderator", call->who, "action", action, "status", call->status));
    if (m->history != NULL) {
        char *info = json_dumps(call->info, JSON_COMPACT);
        hist_put_audit(m->history, call->who, action, detail, call->target, info, now_wall_ms());
        free(info);
    }
    json_decref(call->info);
    free(call->target);
    free(detail);
}

static void *api_thread(void *arg)
{
    modapi_t *m = arg;
    pthread_mutex_lock(&m->lock);
    for (;;) {
        while (m->head == NULL && !m->stopping)
            pthread_cond_wait(&m->cond, &m->lock);
        if (m->head == NULL && m->stopping)
            break;
        api_call_t *call = m->head;
        m->head = call->next;
        m->queued--;
        if (m->head == NULL)
            m->tail = NULL;
        pthread_mutex_unlock(&m->lock);
        serve(call);
        free(call);
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    modapi_redis_close();
    return NULL;
}

/*
 * On a worker loop: authenticates (one SHA-256 and a compare per key, no
 * I/O), answers 429 at once when a call without a valid key finds its
 * address's bucket empty (so a flood never reaches the queue, the threads,
 * the log or the audit), and queues the rest for the API threads.
 */
static void on_request(void *ud, sio_http_request_t *req)
{
    modapi_t *m = ud;
    api_call_t *call = buf_xcalloc(1, sizeof(*call));
    call->api = m;
    call->req = req;
    call->authed = authenticate(m, sio_http_authorization(req), call->who) >= 0;
    if (!call->authed && !limits_take(m->auth_fails, sio_http_client_addr(req), LIMITS_HANDSHAKE, now_mono_ms())) {
        metrics_inc(m->m_rate_limited);
        modapi_reply_error(call, 429, "rate_limited", "too many calls without a valid key");
        free(call);
        return;
    }
    pthread_mutex_lock(&m->lock);
    if (m->queued >= MODAPI_MAX_QUEUED) { /* the store is slow or down: moderators retry, memory stays bounded */
        pthread_mutex_unlock(&m->lock);
        modapi_reply_error(call, 503, "unavailable", "too many calls waiting");
        free(call);
        return;
    }
    m->queued++;
    if (m->tail != NULL)
        m->tail->next = call;
    else
        m->head = call;
    m->tail = call;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

modapi_t *modapi_new(const config_t *cfg, const redis_target_t *redis, hist_t *history, const void *cursor_key,
                     size_t keylen, char *err, size_t errlen)
{
    modapi_t *m = buf_xcalloc(1, sizeof(*m));
    if (load_keys(m, cfg->moderator_keys_file, err, errlen) != 0) {
        free(m);
        return NULL;
    }
    m->redis = *redis;
    m->history = history;
    limits_config_t lc = {.name = "modapi", .max_entries = MODAPI_AUTH_FAIL_ENTRIES};
    lc.rate[LIMITS_HANDSHAKE][0] = cfg->modapi_auth_fail_rate[0];
    lc.rate[LIMITS_HANDSHAKE][1] = cfg->modapi_auth_fail_rate[1];
    m->auth_fails = limits_new(&lc);
    static const char help[] = "Moderator API calls without a valid key, by what they got (401 or 429)";
    m->m_unauthorized = metrics_counter("chatd_modapi_auth_failures_total", "result=\"unauthorized\"", help);
    m->m_rate_limited = metrics_counter("chatd_modapi_auth_failures_total", "result=\"rate_limited\"", help);
    memcpy(m->cursor_key, cursor_key, keylen < sizeof(m->cursor_key) ? keylen : sizeof(m->cursor_key));
    m->cursor_keylen = keylen < sizeof(m->cursor_key) ? keylen : sizeof(m->cursor_key);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    for (int i = 0; i < API_THREADS; i++)
        pthread_create(&m->threads[i], NULL, api_thread, m);
    return m;
}

void modapi_attach(modapi_t *m, sio_server_t *srv)
{
    sio_server_route_prefix(srv, MODAPI_PREFIX, on_request, m);
}

void modapi_free(modapi_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = 1;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < API_THREADS; i++)
        pthread_join(m->threads[i], NULL);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->cond);
    limits_free(m->auth_fails);
    free(m);
}
