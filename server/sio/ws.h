/*
 * ws: the server side of RFC 6455 framing over an upgraded h2o socket.
 * Written here rather than through h2o's wslay glue so that frames queued in
 * one loop turn leave in one write, and so that close codes (1001 on
 * shutdown, 1009 for oversized messages) are ours to choose.
 */
#ifndef NEARCHAT_SIO_WS_H
#define NEARCHAT_SIO_WS_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "sio.h"

typedef struct ws_conn ws_conn_t;

typedef struct ws_callbacks {
    /* A complete message. `data` is writable and valid during the call. */
    void (*on_message)(ws_conn_t *ws, int binary, uint8_t *data, size_t len);
    /* The connection is gone (peer close, error, or a close we started); `code` is the close code seen. */
    void (*on_close)(ws_conn_t *ws, int code);
} ws_callbacks_t;

/**
 * Takes ownership of an upgraded socket. Messages larger than `max_payload`
 * close the connection with 1009. Reading starts with ws_conn_start, so the
 * owner can store the pointer before the first callback. Never fails.
 * After a close (ws_conn_close), the socket goes once the close frame is
 * written, or after a few seconds if the peer never takes it.
 */
ws_conn_t *ws_conn_new(sio_worker_t *w, h2o_socket_t *sock, size_t max_payload, const ws_callbacks_t *cb, void *data);

/** Starts reading, first handling the bytes that came with the upgrade request. */
void ws_conn_start(ws_conn_t *ws);

/** Queues one message made of two parts (either may be empty); the frame leaves at the next flush. */
void ws_conn_send(ws_conn_t *ws, int binary, const void *a, size_t alen, const void *b, size_t blen);

/**
 * Writes what is queued now rather than at the end of the loop turn, for a
 * reply that must leave before what other connections answer in the same
 * turn. Never fails.
 */
void ws_conn_flush_now(ws_conn_t *ws);

/** Bytes of frames waiting for the peer to read them (queued and being written). Never fails. */
size_t ws_conn_queued(const ws_conn_t *ws);

/**
 * Sends a close frame with `code` and closes the socket once it is written.
 * on_close is not called for a close started here. Safe inside callbacks;
 * the memory is released after the callback returns.
 */
void ws_conn_close(ws_conn_t *ws, int code);

void *ws_conn_data(ws_conn_t *ws);
void ws_conn_set_data(ws_conn_t *ws, void *data);

#endif
