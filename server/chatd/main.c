/*
 * chatd: the nearchat server. Reads its configuration from the environment
 * (chatd --help lists it), serves Socket.IO on /socket.io/ with the
 * namespaces /, /match and /chat, plus /healthz and /metrics, the web app
 * (visitor PWA and /moderate), and drains on SIGTERM or SIGINT.
 */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../config/config.h"
#include "../hub/hub.h"
#include "../modapi/modapi.h"
#include "../log/log.h"
#include "../metrics/metrics.h"
#include "../sio/sio.h"
#include "../webroot/webroot.h"

static void route_healthz(void *ud, const char *method, const char *path, sio_http_response_t *res)
{
    buf_append_str(&res->body, "ok\n");
}

static void route_metrics(void *ud, const char *method, const char *path, sio_http_response_t *res)
{
    hub_metrics_refresh(ud);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    metrics_render(&res->body);
}

/*
 * The web app: CHATD_WEB_DIR must load when it is set; the default, `web`
 * beside the binary (where `make` builds it), may be missing, and then chatd
 * serves the API alone. Returns -1 only for a configured folder that fails.
 */
static int open_webroot(const config_t *cfg, webroot_t **out, char *err, size_t errlen)
{
    *out = NULL;
    char dir[PATH_MAX];
    if (cfg->web_dir != NULL) {
        snprintf(dir, sizeof(dir), "%s", cfg->web_dir);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
            return 0;
        exe[n] = '\0';
        snprintf(dir, sizeof(dir), "%.*s/web", (int)(sizeof(dir) - 8), dirname(exe));
    }
    char why[256];
    *out = webroot_load(dir, why, sizeof(why));
    if (*out != NULL) {
        log_info("web app loaded", json_pack("{s:s,s:i}", "dir", dir, "paths", (int)webroot_count(*out)));
        return 0;
    }
    if (cfg->web_dir != NULL) {
        snprintf(err, errlen, "CHATD_WEB_DIR: %s", why);
        return -1;
    }
    log_warn("no web app: serving the API only", json_pack("{s:s}", "reason", why));
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_print_help(stdout, argv[0]);
            return 0;
        }
        fprintf(stderr, "chatd: unknown argument %s (try --help)\n", argv[i]);
        return 2;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s\n", err);
        return 2;
    }
    log_set_level((log_level_t)log_parse_level(cfg.log_level));

    int rc = 1;
    sio_server_t *srv = NULL;
    modapi_t *api = NULL;
    webroot_t *web = NULL;
    hub_t *hub = hub_new(&cfg, err, sizeof(err));
    if (hub == NULL) {
        fprintf(stderr, "chatd: %s\n", err);
        rc = 2;
        goto Exit;
    }
    sio_options_t opt = {
        .host = cfg.listen_host,
        .port = cfg.listen_port,
        .workers = cfg.workers,
        .path = "/socket.io/",
        .ping_interval_ms = cfg.ping_interval_ms,
        .ping_timeout_ms = cfg.ping_timeout_ms,
        .connect_timeout_ms = cfg.connect_timeout_ms,
        .max_payload = cfg.max_payload,
        .max_queued = cfg.max_queued,
        .allowed_origins = cfg.allowed_origins,
        .resolve_addr = hub_resolve_addr,
        .resolve_addr_ud = hub,
        .ip_limits = hub_ip_limits(hub),
    };
    srv = sio_server_new(&opt, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "chatd: %s\n", err);
        goto Exit;
    }
    hub_attach(hub, srv);
    size_t keylen = 0;
    const void *key = hub_secret(hub, &keylen);
    api = modapi_new(&cfg, hub_redis_target(hub), hub_history(hub), key, keylen, err, sizeof(err));
    if (api == NULL) {
        fprintf(stderr, "chatd: %s\n", err);
        rc = 2;
        goto Exit;
    }
    modapi_attach(api, srv);
    sio_server_route(srv, "/healthz", route_healthz, NULL);
    sio_server_route(srv, "/metrics", route_metrics, hub);
    if (open_webroot(&cfg, &web, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s\n", err);
        rc = 2;
        goto Exit;
    }
    if (web != NULL)
        webroot_attach(web, srv);

    /* Signals go to this thread only, which waits for them; workers never see them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sio_server_start(srv, err, sizeof(err)) != 0) {
        log_error("cannot start", json_pack("{s:s}", "error", err));
        goto Exit;
    }
    log_info("chatd listening", json_pack("{s:s,s:i,s:i,s:s}", "host", cfg.listen_host, "port", sio_server_port(srv),
                                          "workers", cfg.workers, "node", cfg.node_id));
    int sig = 0;
    sigwait(&set, &sig);
    log_info("draining", json_pack("{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    if (sio_server_stop(srv, 4500) != 0) {
        log_warn("workers did not stop in time", NULL);
        goto Exit;
    }
    log_info("stopped", NULL);
    rc = 0;
Exit:
    modapi_free(api); /* its threads answer through the server and read the history: stop them first */
    sio_server_free(srv);
    webroot_free(web); /* after the server: responses point into it */
    hub_free(hub);
    metrics_free_all();
    config_free(&cfg);
    return rc;
}
