/*
 * The server's life and its workers: one h2o evloop per thread, SO_REUSEPORT
 * listeners, the queue through which workers hand each other long-polling
 * requests, upgraded sockets and the application's calls, and start, stop
 * and free.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../log/log.h"
#include "internal.h"

/* ---- cross-worker messages ---- */

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        sio_msg_t *m = H2O_STRUCT_FROM_MEMBER(sio_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        switch (m->kind) {
        case SIO_MSG_POLL_GET:
            eio_handle_poll_get(w, m->sid, m->from);
            break;
        case SIO_MSG_POLL_POST:
            eio_handle_poll_post(w, m->sid, m->from, &m->body);
            break;
        case SIO_MSG_POLL_ABORT:
            eio_handle_poll_abort(w, m->sid, m->from);
            break;
        case SIO_MSG_REPLY:
            sio_complete_local(w, m->from.token, m->status, m->content_type, &m->body);
            break;
        case SIO_MSG_WS_ADOPT: {
            h2o_socket_t *sock = h2o_socket_import(w->loop, &m->sock);
            /* the input came from the other thread's allocator (empty, nothing to free): take this one's */
            h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
            if (m->body.len > 0) {
                h2o_iovec_t room = h2o_buffer_reserve(&sock->input, m->body.len);
                memcpy(room.base, m->body.base, m->body.len);
                sock->input->size += m->body.len;
            }
            eio_accept_ws(w, sock, m->sid, m->addr, LIMITS_UNCOUNTED);
            break;
        }
        case SIO_MSG_CALL:
            m->call(w, m->call_arg);
            break;
        case SIO_MSG_STOP:
            if (w->listener != NULL) {
                h2o_socket_read_stop(w->listener);
                h2o_socket_close(w->listener);
                w->listener = NULL;
            }
            eio_drain_worker(w);
            /* give the close frames a moment to leave before the loop ends */
            h2o_timeout_link(w->loop, &w->drain_timeout, &w->drain_entry);
            break;
        }
        buf_free(&m->body);
        free(m);
    }
}

static void on_drained(h2o_timeout_entry_t *entry)
{
    sio_worker_t *w = H2O_STRUCT_FROM_MEMBER(sio_worker_t, drain_entry, entry);
    if (w->srv->worker_stop != NULL && !w->app_stopped) {
        /* the application closes its own streams; give the loop a turn to finish them */
        w->app_stopped = 1;
        w->srv->worker_stop(w, w->srv->worker_ud);
        h2o_timeout_link(w->loop, &w->upgrade_check, &w->drain_entry);
        return;
    }
    w->stopped = 1;
}

/* ---- accepting ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    sio_worker_t *w = listener->data;
    if (err != NULL)
        return;
    /* take a burst of connections per wake-up, but not forever */
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void *worker_main(void *arg)
{
    sio_worker_t *w = arg;
    sio_server_t *srv = w->srv;
    /*
     * The queue's pipe socket takes its buffers from libh2o's per-thread
     * recycling allocator of the thread that creates it: made by the starting
     * thread, every worker's queue shared that thread's free list without a
     * lock, which corrupted the heap once workers posted to each other often.
     */
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_messages);
    pthread_barrier_wait(&srv->queues_ready); /* nobody posts to a worker before its queue exists */
    sio_flush_bind(w);
    h2o_context_init(&w->ctx, w->loop, &srv->h2o_config);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = srv->h2o_config.hosts;
    h2o_timeout_init(w->loop, &w->ping_interval, (uint64_t)srv->opt.ping_interval_ms);
    h2o_timeout_init(w->loop, &w->ping_timeout, (uint64_t)srv->opt.ping_timeout_ms);
    h2o_timeout_init(w->loop, &w->connect_timeout, (uint64_t)srv->opt.connect_timeout_ms);
    h2o_timeout_init(w->loop, &w->drain_timeout, 300);
    h2o_timeout_init(w->loop, &w->upgrade_check, 100);
    w->drain_entry.cb = on_drained;
    w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    if (srv->worker_start != NULL)
        srv->worker_start(w, srv->worker_ud);
    while (!w->stopped)
        h2o_evloop_run(w->loop, INT32_MAX);
    return NULL;
}

/* ---- server ---- */

static int bind_listener(sio_server_t *srv, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    int rc = getaddrinfo(srv->opt.host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen address %s: %s", srv->opt.host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", srv->opt.host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* An Engine.IO application (sio_options_t.engine_on_message) in place of Socket.IO. */
static void engine_app_message(eio_session_t *e, int binary, const uint8_t *data, size_t len)
{
    const sio_server_t *srv = e->worker->srv;
    srv->opt.engine_on_message(e, binary, data, len, srv->opt.engine_ud);
}

sio_server_t *sio_server_new(const sio_options_t *opt, char *err, size_t errlen)
{
    if (opt->workers < 1 || opt->workers > SIO_MAX_WORKERS || opt->port < 0 || opt->port > 65535 ||
        opt->ping_interval_ms < 1 || opt->ping_timeout_ms < 1 || opt->connect_timeout_ms < 1 || opt->max_payload < 16 ||
        opt->path == NULL || opt->path[0] != '/' || opt->path[strlen(opt->path) - 1] != '/') {
        snprintf(err, errlen, "invalid server options (workers 1..%d, timeouts > 0, path like /socket.io/)",
                 SIO_MAX_WORKERS);
        return NULL;
    }
    sio_server_t *srv = buf_xcalloc(1, sizeof(*srv));
    srv->opt = *opt;
    srv->eio = (sio_eio_entry_t){eio_session_exists,    eio_handle_poll_get,   eio_handle_poll_post,
                                 eio_handle_poll_abort, eio_handshake_polling, eio_accept_ws};
    srv->conn = srv_is_socketio(srv) ? (sio_conn_ops_t){sio_conn_open, sio_conn_on_message, sio_conn_closed}
                                     : (sio_conn_ops_t){NULL, engine_app_message, NULL};
    srv->path = buf_xstrndup(opt->path, strlen(opt->path));
    srv->opt.path = srv->path;
    srv->opt.host = NULL;
    if (srv->opt.max_queued == 0)
        srv->opt.max_queued = 4194304;
    srv->nworkers = opt->workers;
    srv->opt.host = buf_xstrndup(opt->host ? opt->host : "0.0.0.0", strlen(opt->host ? opt->host : "0.0.0.0"));
    if (opt->allowed_origins != NULL && opt->allowed_origins[0] != '\0') {
        size_t n = 2;
        for (const char *p = opt->allowed_origins; *p; p++)
            n += *p == ',';
        srv->origins = buf_xcalloc(n, sizeof(char *));
        size_t i = 0;
        const char *p = opt->allowed_origins;
        while (*p) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            while (len > 0 && (*p == ' ' || *p == '\t'))
                p++, len--;
            while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
                len--;
            if (len > 0)
                srv->origins[i++] = buf_xstrndup(p, len);
            p += len;
            while (*p && *p != ',')
                p++;
            if (*p == ',')
                p++;
        }
    }
    srv->opt.allowed_origins = NULL;
    sio_metrics_t *m = &srv->m;
    m->open_polling =
        metrics_gauge("chatd_connections_open", "transport=\"polling\"", "Open Engine.IO connections, by transport");
    m->open_websocket =
        metrics_gauge("chatd_connections_open", "transport=\"websocket\"", "Open Engine.IO connections, by transport");
    m->handoff_poll = metrics_counter("chatd_worker_handoffs_total", "kind=\"poll\"",
                                      "Requests handed to the worker that owns their session");
    m->handoff_ws = metrics_counter("chatd_worker_handoffs_total", "kind=\"websocket\"",
                                    "Requests handed to the worker that owns their session");
    m->packets_in = metrics_counter("chatd_packets_in_total", NULL, "Engine.IO packets received");
    m->packets_out = metrics_counter("chatd_packets_out_total", NULL, "Engine.IO packets sent");
    m->zombies = metrics_counter("chatd_zombie_reaps_total", NULL, "Connections closed for not answering pings");
    m->slow_readers = metrics_counter("chatd_slow_reader_closes_total", NULL,
                                      "Connections closed because more than CHATD_MAX_QUEUED_BYTES waited for them");
    m->handshakes = metrics_counter("chatd_handshakes_total", NULL, "Engine.IO sessions opened");
    m->bad_requests = metrics_counter("chatd_http_bad_requests_total", NULL, "Engine.IO requests refused with 400");
    for (int code = 1000; code < 1000 + SIO_CLOSE_CODES; code++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "code=\"%d\"", code);
        m->closed[code - 1000] =
            metrics_counter("chatd_connections_closed_total", labels, "Engine.IO connections closed, by close code");
    }
    m->closed_other = metrics_counter("chatd_connections_closed_total", "code=\"other\"",
                                      "Engine.IO connections closed, by close code");
    m->forbidden = metrics_counter("chatd_http_forbidden_total", NULL, "Requests refused for their Origin");

    h2o_config_init(&srv->h2o_config);
    srv->h2o_config.max_request_entity_size = opt->max_payload;
    /* HTTP/1.1 only: nothing needs HTTP/2 in clear text, and libh2o 2.2's
     * HTTP/2 has known flood issues (rapid reset) */
    srv->h2o_config.http1.upgrade_to_http2 = 0;
    /* long-polls are held for up to a ping interval; h2o must not cut them */
    srv->h2o_config.http1.req_timeout = (uint64_t)opt->ping_interval_ms + (uint64_t)opt->ping_timeout_ms + 10000;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = sio_http_on_req;
    return srv;
}

sio_nsp_t *sio_server_of(sio_server_t *srv, const char *name)
{
    for (sio_nsp_t *n = srv->nsps; n != NULL; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    sio_nsp_t *n = buf_xcalloc(1, sizeof(*n));
    n->name = buf_xstrndup(name, strlen(name));
    n->next = srv->nsps;
    srv->nsps = n;
    return n;
}

void sio_nsp_on_connect(sio_nsp_t *nsp, sio_connect_cb cb, void *ud)
{
    nsp->on_connect = cb;
    nsp->on_connect_ud = ud;
}

void sio_nsp_on_disconnect(sio_nsp_t *nsp, sio_disconnect_cb cb, void *ud)
{
    nsp->on_disconnect = cb;
    nsp->on_disconnect_ud = ud;
}

void sio_nsp_on(sio_nsp_t *nsp, const char *event, sio_event_cb cb, void *ud)
{
    sio_handler_t *h = buf_xcalloc(1, sizeof(*h));
    h->event = buf_xstrndup(event, strlen(event));
    h->cb = cb;
    h->ud = ud;
    h->next = nsp->handlers;
    nsp->handlers = h;
}

void sio_server_route(sio_server_t *srv, const char *path, sio_route_cb cb, void *ud)
{
    sio_route_t *r = buf_xcalloc(1, sizeof(*r));
    r->path = buf_xstrndup(path, strlen(path));
    r->cb = cb;
    r->ud = ud;
    r->next = srv->routes;
    srv->routes = r;
}

int sio_server_start(sio_server_t *srv, char *err, size_t errlen)
{
    srv->workers = buf_xcalloc((size_t)srv->nworkers, sizeof(sio_worker_t));
    int port = srv->opt.port;
    for (int i = 0; i < srv->nworkers; i++) {
        sio_worker_t *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        w->listen_fd = bind_listener(srv, port, err, errlen);
        if (w->listen_fd < 0) {
            for (int j = 0; j < i; j++)
                close(srv->workers[j].listen_fd);
            return SIO_ERR_LISTEN;
        }
        if (port == 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            getsockname(w->listen_fd, (struct sockaddr *)&ss, &len);
            port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
        }
        w->loop = h2o_evloop_create();
    }
    srv->port = port;
    pthread_barrier_init(&srv->queues_ready, NULL, (unsigned)srv->nworkers + 1);
    srv->queues_barrier = 1;
    for (int i = 0; i < srv->nworkers; i++)
        h2o_multithread_create_thread(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]);
    pthread_barrier_wait(&srv->queues_ready);
    return 0;
}

int sio_server_port(sio_server_t *srv)
{
    return srv->port;
}

int sio_server_stop(sio_server_t *srv, int timeout_ms)
{
    for (int i = 0; i < srv->nworkers; i++)
        sio_worker_send(&srv->workers[i], sio_msg_new(SIO_MSG_STOP));
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        if (pthread_timedjoin_np(srv->workers[i].tid, NULL, &deadline) != 0)
            rc = -1;
        else
            srv->workers[i].tid = 0;
    }
    return rc;
}

void sio_server_free(sio_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; srv->workers != NULL && i < srv->nworkers; i++) {
        sio_worker_t *w = &srv->workers[i];
        if (w->tid != 0)
            continue; /* still running: leave it to process exit */
        sio_held_requests_free(w);
        eio_table_free(w);
    }
    if (srv->queues_barrier) /* every worker left it long ago: they all answered since */
        pthread_barrier_destroy(&srv->queues_ready);
    /* h2o 2.2.5 cannot close idle HTTP/1 connections on demand, so the loops
     * and contexts of the workers stay allocated until the process exits;
     * they are parked here to stay reachable rather than leak. */
    static sio_worker_t *parked;
    free(parked);
    parked = srv->workers;
    while (srv->api_routes != NULL) {
        sio_api_route_t *r = srv->api_routes;
        srv->api_routes = r->next;
        free(r->prefix);
        free(r);
    }
    while (srv->routes != NULL) {
        sio_route_t *r = srv->routes;
        srv->routes = r->next;
        free(r->path);
        free(r);
    }
    while (srv->nsps != NULL) {
        sio_nsp_t *n = srv->nsps;
        srv->nsps = n->next;
        while (n->handlers != NULL) {
            sio_handler_t *h = n->handlers;
            n->handlers = h->next;
            free(h->event);
            free(h);
        }
        free(n->name);
        free(n);
    }
    for (char **o = srv->origins; o != NULL && *o != NULL; o++)
        free(*o);
    free(srv->origins);
    free((char *)srv->opt.host);
    free(srv->path);
    h2o_config_dispose(&srv->h2o_config);
    free(srv);
}
