/*
 * hub: the product on top of the protocol module. It owns the guests of each
 * worker (identity, place, registry), the namespaces / and /match, the
 * worker's Redis connections (commands and its pub/sub channel), and the
 * readiness of the dependencies.
 */
#ifndef NEARCHAT_HUB_H
#define NEARCHAT_HUB_H
#include <stddef.h>

#include "../config/config.h"
#include "../sio/sio.h"

typedef struct hub hub_t;

/**
 * Prepares everything that must be ready before the workers start: the token
 * secret (created with a warning when missing), the geo database (a warning
 * and geo source "unknown" when missing or unreadable), trusted proxies, the
 * Redis address. Returns NULL with a reason in `err` when the configuration
 * cannot work (bad secret, bad REDIS_URL, bad TRUSTED_PROXIES). `cfg` is
 * borrowed for the hub's life.
 */
hub_t *hub_new(const config_t *cfg, char *err, size_t errlen);
/** Frees a hub after the server stopped. NULL is accepted. */
void hub_free(hub_t *h);

/** The resolve_addr hook of sio_options_t: X-Forwarded-For through trusted proxies only. */
void hub_resolve_addr(void *hub, const char *peer, const char *const *lines, const size_t *lens, size_t n, char *out,
                      size_t outlen);

struct hist;
struct redis_target;
/** The history store, the Redis address and the secret the hub opened (borrowed for the hub's life). */
struct hist *hub_history(hub_t *h);
const struct redis_target *hub_redis_target(const hub_t *h);
const void *hub_secret(const hub_t *h, size_t *len);

/** The node's per-address bounds, for the Socket.IO server's new sessions (sio_options_t.ip_limits). */
struct limits *hub_ip_limits(hub_t *h);

/** Brings the gauges that are read rather than counted (history backlog) up to date; before /metrics renders. */
void hub_metrics_refresh(hub_t *h);

/** Registers the namespaces, their handlers, /readyz and the worker hooks on `srv`. Before start. */
void hub_attach(hub_t *h, sio_server_t *srv);

#endif
