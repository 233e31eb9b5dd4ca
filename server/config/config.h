/*
 * config: chatd's settings, read from the environment. The variable names
 * are part of the contract (architecture.md) and are listed by chatd --help.
 */
#ifndef NEARCHAT_CONFIG_H
#define NEARCHAT_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct config {
    char *listen_host;            /* CHATD_LISTEN host part, default "0.0.0.0" */
    int listen_port;              /* CHATD_LISTEN port part, default 8080 */
    int workers;                  /* CHATD_WORKERS, default: number of online CPUs */
    char *node_id;                /* CHATD_NODE_ID, default "<hostname>-<pid>" */
    char *secret_file;            /* CHATD_SECRET_FILE, default "var/secret" */
    char *redis_url;              /* REDIS_URL */
    char *amqp_url;               /* AMQP_URL */
    char *history_url;            /* HISTORY_URL */
    char *geoip_db;               /* GEOIP_DB, NULL when unset */
    char *trusted_proxies;        /* TRUSTED_PROXIES, NULL when unset */
    char *allowed_origins;        /* ALLOWED_ORIGINS (comma-separated), NULL = any */
    char *moderator_keys_file;    /* MODERATOR_KEYS_FILE, NULL when unset */
    char *web_dir;                /* CHATD_WEB_DIR, NULL: "web" beside the binary */
    int ping_interval_ms;         /* CHATD_PING_INTERVAL_MS, 25000 */
    int ping_timeout_ms;          /* CHATD_PING_TIMEOUT_MS, 20000 */
    size_t max_payload;           /* CHATD_MAX_PAYLOAD, 1000000 */
    size_t max_queued;            /* CHATD_MAX_QUEUED_BYTES, 4194304 */
    int max_conn_per_ip;          /* CHATD_MAX_CONN_PER_IP open Engine.IO sessions per address, 256; 0: no bound */
    int modapi_auth_fail_rate[2]; /* MODAPI_AUTH_FAIL_RATE failed moderator auths per address, "10/60" */
    int handshake_rate_ip[2];     /* CHATD_HANDSHAKE_RATE_IP new sessions per address, "60/10"; 0/x: no bound */
    int guest_rate_ip[2];         /* GUEST_RATE_IP new guests per address, "30/60"; 0/x: no bound */
    int max_conn_per_guest;       /* CHATD_MAX_CONN_PER_GUEST connections of one guest, 8; 0: no bound */
    int connect_timeout_ms;       /* CHATD_CONNECT_TIMEOUT_MS, 45000 */
    char *log_level;              /* CHATD_LOG_LEVEL, "info" */
    int token_ttl_s;              /* CHATD_TOKEN_TTL_S, 86400 */
    int match_nearby_km;          /* MATCH_NEARBY_KM, 100 */
    int match_widen_ms[3];        /* MATCH_WIDEN_MS "nearby,country,any", "10000,20000,30000" */
    int match_proposal_ms;        /* MATCH_PROPOSAL_MS, 15000 */
    int match_rate_guest[2];      /* MATCH_RATE_GUEST "count/seconds", "10/60" */
    int match_rate_ip[2];         /* MATCH_RATE_IP "count/seconds", "60/60" */
    int chat_rate_guest[2];       /* CHAT_RATE_GUEST messages per guest, "30/10" */
    int chat_rate_ip[2];          /* CHAT_RATE_IP messages per client IP, "200/10" */
    int typing_rate_guest[2];     /* CHAT_TYPING_RATE typing events per guest, "20/10" */
    int chat_session_ttl_s;       /* CHAT_SESSION_TTL_S, 86400: a session ends "expired" this long after it began */
    int chat_delivery_timeout_ms; /* CHAT_DELIVERY_TIMEOUT_MS, 3000: no receipt by then, the message is queued */
} config_t;

/**
 * Fills `cfg` from the environment with defaults for what is unset.
 * Returns 0, or -1 with a one-line reason naming the variable in `err`
 * (the caller prints it and exits 2). On -1 nothing needs freeing.
 */
int config_load(config_t *cfg, char *err, size_t errlen);

/** Frees the strings config_load allocated. */
void config_free(config_t *cfg);

/** Prints the usage text with every variable, its meaning and default. */
void config_print_help(FILE *out, const char *argv0);

#endif
