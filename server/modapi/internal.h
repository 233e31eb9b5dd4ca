/* modapi internals, shared by its files only. */
#ifndef NEARCHAT_MODAPI_INTERNAL_H
#define NEARCHAT_MODAPI_INTERNAL_H
#include <jansson.h>
#include <pthread.h>

#include "modapi.h"

#define MODAPI_PREFIX "/api/v1/"
#define MODAPI_MAX_KEYS 256
#define MODAPI_B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

typedef struct api_call {
    struct modapi *api;
    sio_http_request_t *req; /* NULL once answered */
    int status;
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
    int stopping;
    pthread_t threads[2];
};

void modapi_reply_json(api_call_t *call, int status, json_t *body);
void modapi_reply_error(api_call_t *call, int status, const char *code, const char *message);
char *modapi_query_param(const char *query, const char *name);
int modapi_int_param(api_call_t *call, const char *name, long long def, long long min, long long max, long long *out);

/* bans.c */
void modapi_ban_create(api_call_t *call);
void modapi_ban_list(api_call_t *call);
void modapi_ban_lift(api_call_t *call, const char *ban_id);
/** Closes this thread's Redis connection. */
void modapi_redis_close(void);

#endif
