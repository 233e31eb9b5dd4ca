/*
 * modapi: the moderator HTTP API of protocol.md §6 under /api/v1/. Every
 * call needs `Authorization: Bearer <key>` whose SHA-256 is listed in
 * MODERATOR_KEYS_FILE (compared in constant time). Calls run on the API's
 * own threads, never on an event loop: history reads block, and bans talk to
 * Redis with a synchronous hiredis connection per thread. Every call with a
 * valid key is audited (history store and a log line, never with a key);
 * calls without one are, up to MODAPI_AUTH_FAIL_RATE per client address, and
 * past it get 429 and leave no trace but a counter.
 */
#ifndef NEARCHAT_MODAPI_H
#define NEARCHAT_MODAPI_H
#include <stddef.h>

#include "../config/config.h"
#include "../history/history.h"
#include "../redis/redis.h"
#include "../sio/sio.h"

typedef struct modapi modapi_t;

/**
 * Loads the keys (a missing MODERATOR_KEYS_FILE means no key: every call is
 * 401; an unreadable or malformed one is an error) and starts the threads.
 * `history` may be NULL (reads answer 503). `cursor_key` signs the bans
 * list's cursors. Returns NULL with a reason in `err`.
 */
modapi_t *modapi_new(const config_t *cfg, const redis_target_t *redis, hist_t *history, const void *cursor_key,
                     size_t keylen, char *err, size_t errlen);
/** Routes /api/v1/ to the API. Before the server starts. */
void modapi_attach(modapi_t *m, sio_server_t *srv);
/** Stops the threads (after the server stopped) and frees. NULL is accepted. */
void modapi_free(modapi_t *m);

#endif
