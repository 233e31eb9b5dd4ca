/*
 * redis: a Redis client that lives on one worker's loop and never blocks it.
 * hiredis supplies the command formatter and the reply reader; the bytes go
 * over an sio_stream_t. Commands are pipelined (everything issued while a
 * write is in flight leaves in the next one), Lua scripts are called by SHA
 * (loaded once per connection, re-sent transparently on NOSCRIPT), and a lost
 * connection is re-made with exponential backoff.
 *
 * One client is either a command client or a subscriber (pub/sub mode);
 * every call must be made on the worker thread that created it.
 */
#ifndef NEARCHAT_REDIS_H
#define NEARCHAT_REDIS_H
#include <hiredis.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../sio/sio.h"

typedef struct redis_client redis_client_t;

enum {
    REDIS_CLIENT_ERR_DOWN = -501, /* not connected: the command was not sent */
    REDIS_CLIENT_ERR_URL = -502,  /* a malformed REDIS_URL */
};

/** The error text of a command that could not complete because the connection is down or was lost. */
extern const char redis_err_unavailable[];

/** Where the server is, parsed from `redis://[:password@]host[:port][/db]`. */
typedef struct redis_target {
    struct sockaddr_storage addr;
    unsigned addrlen;
    int db;
    char password[128];
    char display[160]; /* host:port/db, for logs (never the password) */
    char host[128];
    int port;
} redis_target_t;

/**
 * Parses and resolves a URL (getaddrinfo: call at start-up, never on a loop).
 * Returns 0, or REDIS_CLIENT_ERR_URL with a reason in `err`.
 */
int redis_target_parse(const char *url, redis_target_t *out, char *err, size_t errlen);

/**
 * A command's answer. `err` is NULL on success; it is the server's error text
 * for an error reply (then `reply` is that reply), or redis_err_unavailable
 * when the connection was lost first (then `reply` is NULL). `reply` is
 * borrowed: it is freed when the callback returns.
 */
typedef void (*redis_reply_cb)(redisReply *reply, const char *err, void *ud);
/** A message on a subscribed channel (subscriber clients); `msg` is borrowed. */
typedef void (*redis_message_cb)(const char *channel, const char *msg, size_t len, void *ud);
/** The connection came up (1, handshake done, subscriptions renewed) or went down (0). */
typedef void (*redis_state_cb)(int up, void *ud);

/** A Lua script: the body and its SHA-1, made once (see redis_script_init). */
typedef struct redis_script {
    const char *name;
    const char *body;
    char sha[41];
} redis_script_t;

/** Computes the SHA-1 of a script's body. Never fails. */
void redis_script_init(redis_script_t *s, const char *name, const char *body);

/**
 * Creates a client on worker `w` and starts connecting. `scripts` (may be
 * NULL, else NULL-terminated, borrowed for the client's life) are loaded on
 * every connect. With `on_message` set, the client is a subscriber. Never
 * returns NULL.
 */
redis_client_t *redis_client_new(sio_worker_t *w, const redis_target_t *target, redis_script_t *const *scripts,
                                 redis_state_cb on_state, redis_message_cb on_message, void *ud);
/**
 * Closes the connection and frees the client; pending commands get
 * redis_err_unavailable. Safe from inside a callback of the client.
 */
void redis_client_free(redis_client_t *c);
/** 1 while connected and ready. */
int redis_client_up(const redis_client_t *c);

/**
 * Sends a command (arguments are copied). Returns 0 and later calls `cb`
 * exactly once (cb may be NULL), or REDIS_CLIENT_ERR_DOWN at once, without
 * calling it, when the client is not connected.
 */
int redis_command_argv(redis_client_t *c, int argc, const char **argv, const size_t *argvlen, redis_reply_cb cb,
                       void *ud);
/** Like redis_command_argv with NUL-terminated arguments (NULL-terminated list). */
int redis_command(redis_client_t *c, redis_reply_cb cb, void *ud, const char *arg0, ...);
/** Calls a script by SHA with `nkeys` keys first in `args`, then the other arguments. Same returns. */
int redis_eval(redis_client_t *c, const redis_script_t *s, int nkeys, int nargs, const char **args,
               const size_t *arglens, redis_reply_cb cb, void *ud);
/**
 * The reply of a script that answers an array of strings: `status` is its
 * first element ("ok", "err", ...); `err` is NULL, or the second element when
 * the status is "err", or redis_err_unavailable when there was no usable
 * answer (connection lost, script error, wrong shape). `v` holds the elements
 * after the status (integers as text, kept in `nums`), borrowed from the
 * reply. The modules that own a script turn this into their typed results
 * (chat_result_t, match_result_t); nothing above them reads `v`.
 */
typedef struct redis_strings {
    const char *status;
    const char *err;
    int n;
    const char *v[8];
    char nums[8][24];
} redis_strings_t;
/** Fills `out` from a script's reply (`err`: the call's error, as redis_reply_cb gets it). */
void redis_strings_from(const redisReply *reply, const char *err, redis_strings_t *out);

/** Subscribes to `channel` (copied), now and after every reconnect. Subscriber clients only. */
void redis_subscribe(redis_client_t *c, const char *channel);

#endif
