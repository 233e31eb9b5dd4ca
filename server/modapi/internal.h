/* modapi internals, shared by its files only. */
#ifndef NEARCHAT_MODAPI_INTERNAL_H
#define NEARCHAT_MODAPI_INTERNAL_H
#include <jansson.h>
#include <pthread.h>

#include "../limits/limits.h"
#include "../metrics/metrics.h"
#include "modapi.h"

#define MODAPI_PREFIX "/api/v1/"
#define MODAPI_MAX_KEYS 256
/* "key:" and 16 hex digits of the key's SHA-256, with its NUL */
#define MODAPI_WHO_LEN 21
/* Client addresses whose failed logins are counted (a bounded table). */
#define MODAPI_AUTH_FAIL_ENTRIES 4096
/* calls waiting for the API threads (each holds its request until answered) */
#define MODAPI_MAX_QUEUED 1024
#define MODAPI_B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

typedef struct api_call {
    struct modapi *api;
    sio_http_request_t *req; /* NULL once answered */
    int status;
    int authed;               /* the key is one of MODERATOR_KEYS_FILE's */
    char who[MODAPI_WHO_LEN]; /* the moderator's fingerprint, never the key */
    char *target;             /* owned, NULL: the guest id or address the call was about (audit) */
    json_t *info;             /* owned: what the call did, for its audit entry (handlers add to it) */
    struct api_call *next;
} api_call_t;

struct modapi {
    char keys[MODAPI_MAX_KEYS][64]; /* SHA-256 hex digests, lower case */
    int nkeys;
    redis_target_t redis;
    hist_t *history;
    unsigned char cursor_key[64];
    size_t cursor_keylen;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    api_call_t *head, *tail;
    size_t queued; /* calls in the list: past MODAPI_MAX_QUEUED, answered 503 at once */
    int stopping;
    pthread_t threads[2];
    limits_t *auth_fails;                             /* failed logins per client address */
    metrics_value_t *m_unauthorized, *m_rate_limited; /* chatd_modapi_auth_failures_total */
};

void modapi_reply_json(api_call_t *call, int status, json_t *body);
void modapi_reply_error(api_call_t *call, int status, const char *code, const char *message);
char *modapi_query_param(const char *query, const char *name);
int modapi_int_param(api_call_t *call, const char *name, long long def, long long min, long long max, long long *out);

/** Sets the call's audit target (copied; NULL clears). */
void modapi_set_target(api_call_t *call, const char *target);

/* bans.c */
void modapi_ban_create(api_call_t *call);
void modapi_ban_list(api_call_t *call);
void modapi_ban_lift(api_call_t *call, const char *ban_id);
/** Closes this thread's Redis connection. */
void modapi_redis_close(void);

#endif
