/*
 * config: chatd's settings from the environment.
 *
 * Every value is validated here, at start-up, so that a typo stops the
 * server with a message naming the variable instead of surfacing later as
 * a confusing runtime failure. An empty variable counts as unset, because
 * container environments often define variables as "" to mean "default".
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_DEFAULT_HOST "0.0.0.0"
#define CONFIG_DEFAULT_PORT 8080
#define CONFIG_DEFAULT_SECRET_FILE "var/secret"
#define CONFIG_DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"
#define CONFIG_DEFAULT_AMQP_URL "amqp://guest:guest@127.0.0.1:5672/"
#define CONFIG_DEFAULT_HISTORY_URL "sqlite:var/history.db"
#define CONFIG_DEFAULT_LOG_LEVEL "info"
#define CONFIG_MAX_WORKERS 256
#define CONFIG_MAX_MS 3600000L

/* Returns the variable's value, or NULL when it is unset or empty. */
static const char *config_env(const char *name)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

/*
 * Copies `s` into a new string. Out of memory is fatal project-wide, and
 * at start-up there is nothing better to do than stop.
 */
static char *config_strdup(const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL) {
        fputs("chatd: out of memory\n", stderr);
        abort();
    }
    return copy;
}

/* Copies the variable's value, or `def` (which may be NULL) when unset. */
static char *config_string(const char *name, const char *def)
{
    const char *v = config_env(name);
    if (v == NULL)
        v = def;
    return v != NULL ? config_strdup(v) : NULL;
}

static void config_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * Parses the whole of `s` as a decimal integer in min..max. Returns false
 * on trailing garbage, empty input, overflow or out-of-range values; strtol
 * alone would accept "12abc" and " 12" and silently clamp on overflow.
 */
static bool config_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || s[0] == '\0' || s[0] == ' ' || s[0] == '\t' || s[0] == '+')
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/*
 * Reads an integer variable into *out, keeping `def` when unset. Returns
 * 0, or -1 with the reason in `err`.
 */
static int config_int(const char *name, long def, long min, long max, long *out, char *err, size_t errlen)
{
    const char *v = config_env(name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!config_parse_long(v, min, max, out)) {
        config_errf(err, errlen, "%s: expected an integer in %ld..%ld, got \"%s\"", name, min, max, v);
        return -1;
    }
    return 0;
}

/*
 * Parses `count` integers in 0..CONFIG_MAX_MS separated by `sep` ("10000,20000,30000",
 * "10/60"). Returns 0, or -1 with a message naming the variable.
 */
static int config_list(const char *name, const char *def, char sep, int count, int *out, char *err, size_t errlen)
{
    const char *v = config_env(name);
    if (v == NULL)
        v = def;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", v);
    char *p = buf;
    for (int i = 0; i < count; i++) {
        char *end = i + 1 < count ? strchr(p, sep) : p + strlen(p);
        long n;
        if (end == NULL)
            goto bad;
        *end = '\0';
        if (!config_parse_long(p, 0, CONFIG_MAX_MS, &n))
            goto bad;
        out[i] = (int)n;
        p = end + 1;
    }
    return 0;
bad:
    config_errf(err, errlen, "%s: expected %d integers separated by '%c', got \"%s\"", name, count, sep, v);
    return -1;
}

/*
 * Splits CHATD_LISTEN ("host:port", "[v6]:port" or ":port") into
 * cfg->listen_host (allocated) and cfg->listen_port. Returns 0, or -1 with
 * the reason in `err` and nothing allocated.
 */
static int config_listen(config_t *cfg, char *err, size_t errlen)
{
    const char *v = config_env("CHATD_LISTEN");
    const char *host;
    size_t host_len;
    const char *port;
    long port_num;

    if (v == NULL) {
        cfg->listen_host = config_strdup(CONFIG_DEFAULT_HOST);
        cfg->listen_port = CONFIG_DEFAULT_PORT;
        return 0;
    }
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':' || close == v + 1)
            goto bad;
        host = v + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (colon == NULL)
            goto bad;
        host = v;
        host_len = (size_t)(colon - v);
        port = colon + 1;
        /* An unbracketed IPv6 address makes the port ambiguous. */
        if (memchr(host, ':', host_len) != NULL)
            goto bad;
    }
    if (!config_parse_long(port, 1, 65535, &port_num))
        goto bad;

    if (host_len == 0) {
        cfg->listen_host = config_strdup(CONFIG_DEFAULT_HOST);
    } else {
        cfg->listen_host = strndup(host, host_len);
        if (cfg->listen_host == NULL) {
            fputs("chatd: out of memory\n", stderr);
            abort();
        }
    }
    cfg->listen_port = (int)port_num;
    return 0;

bad:
    config_errf(err, errlen,
                "CHATD_LISTEN: expected \"host:port\", \"[ipv6]:port\" or \":port\" with port in 1..65535, got \"%s\"",
                v);
    return -1;
}

/* Builds the default node id "<hostname>-<pid>", unique per process. */
static char *config_default_node_id(void)
{
    char host[256];
    char id[300];

    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "chatd");
    host[sizeof(host) - 1] = '\0';
    snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
    return config_strdup(id);
}

static bool config_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int config_load(config_t *cfg, char *err, size_t errlen)
{
    long n;
    const char *v;

    memset(cfg, 0, sizeof(*cfg));
    if (err != NULL && errlen > 0)
        err[0] = '\0';

    if (config_listen(cfg, err, errlen) != 0)
        goto error;

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    if (cpus > CONFIG_MAX_WORKERS)
        cpus = CONFIG_MAX_WORKERS;
    if (config_int("CHATD_WORKERS", cpus, 1, CONFIG_MAX_WORKERS, &n, err, errlen) != 0)
        goto error;
    cfg->workers = (int)n;

    v = config_env("CHATD_NODE_ID");
    cfg->node_id = v != NULL ? config_strdup(v) : config_default_node_id();
    cfg->secret_file = config_string("CHATD_SECRET_FILE", CONFIG_DEFAULT_SECRET_FILE);
    cfg->redis_url = config_string("REDIS_URL", CONFIG_DEFAULT_REDIS_URL);
    cfg->amqp_url = config_string("AMQP_URL", CONFIG_DEFAULT_AMQP_URL);

    cfg->history_url = config_string("HISTORY_URL", CONFIG_DEFAULT_HISTORY_URL);
    if (!config_has_prefix(cfg->history_url, "sqlite:") && !config_has_prefix(cfg->history_url, "mongodb://") &&
        !config_has_prefix(cfg->history_url, "mongodb+srv://")) {
        config_errf(err, errlen, "HISTORY_URL: expected \"sqlite:PATH\" or a mongodb:// URL, got \"%s\"",
                    cfg->history_url);
        goto error;
    }

    cfg->geoip_db = config_string("GEOIP_DB", NULL);
    cfg->trusted_proxies = config_string("TRUSTED_PROXIES", NULL);
    cfg->allowed_origins = config_string("ALLOWED_ORIGINS", NULL);
    cfg->moderator_keys_file = config_string("MODERATOR_KEYS_FILE", NULL);
    cfg->web_dir = config_string("CHATD_WEB_DIR", NULL);

    if (config_int("CHATD_PING_INTERVAL_MS", 25000, 1, CONFIG_MAX_MS, &n, err, errlen) != 0)
        goto error;
    cfg->ping_interval_ms = (int)n;
    if (config_int("CHATD_PING_TIMEOUT_MS", 20000, 1, CONFIG_MAX_MS, &n, err, errlen) != 0)
        goto error;
    cfg->ping_timeout_ms = (int)n;
    if (config_int("CHATD_MAX_PAYLOAD", 1000000, 1024, 100000000, &n, err, errlen) != 0)
        goto error;
    cfg->max_payload = (size_t)n;
    if (config_int("CHATD_MAX_QUEUED_BYTES", 4194304, 65536, 1000000000, &n, err, errlen) != 0)
        goto error;
    cfg->max_queued = (size_t)n;
    if (config_int("CHATD_MAX_CONN_PER_IP", 256, 0, 1000000, &n, err, errlen) != 0)
        goto error;
    cfg->max_conn_per_ip = (int)n;
    if (config_int("CHATD_MAX_CONN_PER_GUEST", 8, 0, 1000000, &n, err, errlen) != 0)
        goto error;
    cfg->max_conn_per_guest = (int)n;
    if (config_list("CHATD_HANDSHAKE_RATE_IP", "60/10", '/', 2, cfg->handshake_rate_ip, err, errlen) != 0 ||
        config_list("GUEST_RATE_IP", "30/60", '/', 2, cfg->guest_rate_ip, err, errlen) != 0 ||
        config_list("MODAPI_AUTH_FAIL_RATE", "10/60", '/', 2, cfg->modapi_auth_fail_rate, err, errlen) != 0)
        goto error;
    if (config_int("CHATD_CONNECT_TIMEOUT_MS", 45000, 1, CONFIG_MAX_MS, &n, err, errlen) != 0)
        goto error;
    cfg->connect_timeout_ms = (int)n;

    if (config_int("CHATD_TOKEN_TTL_S", 86400, 60, 30L * 86400, &n, err, errlen) != 0)
        goto error;
    cfg->token_ttl_s = (int)n;
    if (config_int("MATCH_NEARBY_KM", 100, 1, 20000, &n, err, errlen) != 0)
        goto error;
    cfg->match_nearby_km = (int)n;
    if (config_int("MATCH_PROPOSAL_MS", 15000, 100, CONFIG_MAX_MS, &n, err, errlen) != 0)
        goto error;
    cfg->match_proposal_ms = (int)n;
    if (config_list("MATCH_WIDEN_MS", "10000,20000,30000", ',', 3, cfg->match_widen_ms, err, errlen) != 0)
        goto error;
    if (cfg->match_widen_ms[0] > cfg->match_widen_ms[1] || cfg->match_widen_ms[1] > cfg->match_widen_ms[2]) {
        config_errf(err, errlen, "MATCH_WIDEN_MS: the three times must not decrease");
        goto error;
    }
    if (config_list("MATCH_RATE_GUEST", "10/60", '/', 2, cfg->match_rate_guest, err, errlen) != 0 ||
        config_list("MATCH_RATE_IP", "60/60", '/', 2, cfg->match_rate_ip, err, errlen) != 0 ||
        config_list("CHAT_RATE_GUEST", "30/10", '/', 2, cfg->chat_rate_guest, err, errlen) != 0 ||
        config_list("CHAT_RATE_IP", "200/10", '/', 2, cfg->chat_rate_ip, err, errlen) != 0 ||
        config_list("CHAT_TYPING_RATE", "20/10", '/', 2, cfg->typing_rate_guest, err, errlen) != 0)
        goto error;
    if (config_int("CHAT_SESSION_TTL_S", 86400, 1, 30L * 86400, &n, err, errlen) != 0)
        goto error;
    cfg->chat_session_ttl_s = (int)n;
    if (config_int("CHAT_DELIVERY_TIMEOUT_MS", 3000, 50, CONFIG_MAX_MS, &n, err, errlen) != 0)
        goto error;
    cfg->chat_delivery_timeout_ms = (int)n;

    /* Checked here rather than with log_parse_level so config has no link dependency on log. */
    cfg->log_level = config_string("CHATD_LOG_LEVEL", CONFIG_DEFAULT_LOG_LEVEL);
    if (strcmp(cfg->log_level, "debug") != 0 && strcmp(cfg->log_level, "info") != 0 &&
        strcmp(cfg->log_level, "warn") != 0 && strcmp(cfg->log_level, "error") != 0) {
        config_errf(err, errlen, "CHATD_LOG_LEVEL: expected one of debug, info, warn, error, got \"%s\"",
                    cfg->log_level);
        goto error;
    }
    return 0;

error:
    /* The contract says nothing needs freeing on failure. */
    config_free(cfg);
    return -1;
}

void config_free(config_t *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->listen_host);
    free(cfg->node_id);
    free(cfg->secret_file);
    free(cfg->redis_url);
    free(cfg->amqp_url);
    free(cfg->history_url);
    free(cfg->geoip_db);
    free(cfg->trusted_proxies);
    free(cfg->allowed_origins);
    free(cfg->moderator_keys_file);
    free(cfg->web_dir);
    free(cfg->log_level);
    /* Leaves no dangling pointers, so a second free is harmless. */
    memset(cfg, 0, sizeof(*cfg));
}

void config_print_help(FILE *out, const char *argv0)
{
    static const struct {
        const char *name;
        const char *meaning;
        const char *def;
    } vars[] = {
        {"CHATD_LISTEN", "address and port (host:port, [ipv6]:port or :port)", "0.0.0.0:8080"},
        {"CHATD_WORKERS", "worker threads (1..256)", "number of CPUs"},
        {"CHATD_NODE_ID", "this node's name in Redis", "host name and pid"},
        {"CHATD_SECRET_FILE", "token HMAC secret shared by all nodes (>= 32 bytes)",
         "var/secret, created on first run"},
        {"REDIS_URL", "redis://host:port/db", CONFIG_DEFAULT_REDIS_URL},
        {"AMQP_URL", "amqp://user:pass@host:port/vhost", CONFIG_DEFAULT_AMQP_URL},
        {"HISTORY_URL", "sqlite:PATH or a mongodb:// URL", CONFIG_DEFAULT_HISTORY_URL},
        {"GEOIP_DB", "City database in MaxMind DB format", "none: geo source unknown"},
        {"TRUSTED_PROXIES", "CIDRs whose X-Forwarded-For is believed", "none"},
        {"ALLOWED_ORIGINS", "Origin allow-list for browsers (comma-separated)", "any"},
        {"MODERATOR_KEYS_FILE", "one SHA-256 hex digest of a moderator key per line",
         "none: moderator API answers 401"},
        {"MODAPI_AUTH_FAIL_RATE", "failed moderator API logins per client address: count/seconds (0/1: no bound)",
         "10/60"},
        {"CHATD_WEB_DIR", "the built web app (visitor PWA and /moderate console)", "web beside the binary"},
        {"CHATD_PING_INTERVAL_MS", "Engine.IO ping interval (ms)", "25000"},
        {"CHATD_PING_TIMEOUT_MS", "Engine.IO ping timeout (ms)", "20000"},
        {"CHATD_MAX_PAYLOAD", "Engine.IO max payload (bytes, 1024..100000000)", "1000000"},
        {"CHATD_MAX_QUEUED_BYTES", "output queued for one connection before it is closed (bytes)", "4194304"},
        {"CHATD_MAX_CONN_PER_IP", "open Engine.IO sessions per client address (0: no bound)", "256"},
        {"CHATD_HANDSHAKE_RATE_IP", "new Engine.IO sessions per client address: count/seconds (0/1: no bound)",
         "60/10"},
        {"GUEST_RATE_IP", "new guest identities per client address: count/seconds (0/1: no bound)", "30/60"},
        {"CHATD_MAX_CONN_PER_GUEST", "connections of one guest identity at once (0: no bound)", "8"},
        {"CHATD_CONNECT_TIMEOUT_MS", "Socket.IO connect timeout (ms)", "45000"},
        {"CHATD_LOG_LEVEL", "debug, info, warn or error", CONFIG_DEFAULT_LOG_LEVEL},
        {"CHATD_TOKEN_TTL_S", "lifetime of a guest token (s)", "86400"},
        {"MATCH_NEARBY_KM", "radius of the nearby search (km)", "100"},
        {"MATCH_WIDEN_MS", "waiting time before the search widens to nearby,country,any (ms)", "10000,20000,30000"},
        {"MATCH_PROPOSAL_MS", "time to accept a proposal (ms)", "15000"},
        {"MATCH_RATE_GUEST", "match requests per guest: count/seconds (0/.. disables)", "10/60"},
        {"MATCH_RATE_IP", "match requests per client IP: count/seconds (0/.. disables)", "60/60"},
        {"CHAT_RATE_GUEST", "chat messages per guest: count/seconds (0/.. disables)", "30/10"},
        {"CHAT_RATE_IP", "chat messages per client IP and node: count/seconds", "200/10"},
        {"CHAT_TYPING_RATE", "typing events per guest: count/seconds", "20/10"},
        {"CHAT_SESSION_TTL_S", "a chat session ends (expired) this long after it began (s)", "86400"},
        {"CHAT_DELIVERY_TIMEOUT_MS", "time for a recipient's receipt before a message is queued (ms)", "3000"},
    };
    (void)argv0; /* The usage line names the installed binary, not the path it was run from. */

    fprintf(out, "Usage: chatd [--help]\n\n");
    fprintf(out, "nearchat: anonymous one-to-one chat that pairs nearby strangers; configured by the environment.\n\n");
    fprintf(out, "%-26s %-54s %s\n", "variable", "meaning", "default");
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        fprintf(out, "%-26s %-54s %s\n", vars[i].name, vars[i].meaning, vars[i].def);
}
