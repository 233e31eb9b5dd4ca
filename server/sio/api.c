/*
 * Asynchronous HTTP routes (sio_server_route_prefix): the request is held
 * like a long-poll, handed to the application with copies of what it needs,
 * and answered later from any thread through the request's worker queue.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const sio_api_route_t *sio_api_find(const sio_server_t *srv, const h2o_req_t *req, size_t plen)
{
    for (const sio_api_route_t *r = srv->api_routes; r != NULL; r = r->next) {
        size_t n = strlen(r->prefix);
        if (plen >= n && memcmp(r->prefix, req->path.base, n) == 0)
            return r;
    }
    return NULL;
}

void sio_api_start(const sio_api_route_t *r, sio_worker_t *w, h2o_req_t *req, size_t plen, uint64_t token,
                   const char *addr)
{
    sio_http_request_t *ar = buf_xcalloc(1, sizeof(*ar));
    ar->handle = (sio_poll_handle_t){w, token};
    ar->method = strndup(req->method.base, req->method.len);
    ar->path = strndup(req->path.base, plen);
    ar->query = strndup(req->query_at == SIZE_MAX ? "" : req->path.base + req->query_at + 1,
                        req->query_at == SIZE_MAX ? 0 : req->path.len - req->query_at - 1);
    ssize_t hi = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    ar->authorization =
        hi >= 0 ? strndup(req->headers.entries[hi].value.base, req->headers.entries[hi].value.len) : strdup("");
    snprintf(ar->addr, sizeof(ar->addr), "%s", addr);
    if (req->entity.base != NULL)
        buf_append(&ar->body, req->entity.base, req->entity.len);
    r->cb(r->ud, ar);
}

void sio_server_route_prefix(sio_server_t *srv, const char *prefix, sio_api_cb cb, void *ud)
{
    sio_api_route_t *r = buf_xcalloc(1, sizeof(*r));
    r->prefix = strdup(prefix);
    r->cb = cb;
    r->ud = ud;
    r->next = srv->api_routes;
    srv->api_routes = r;
}

void sio_http_respond(sio_http_request_t *r, int status, const char *content_type, buf_t *body)
{
    /* always through the request's worker queue: this may run on any thread */
    sio_msg_t *m = sio_msg_new(SIO_MSG_REPLY);
    m->from = r->handle;
    m->status = status;
    m->content_type = content_type;
    m->body = *body;
    *body = (buf_t)BUF_INIT;
    sio_worker_send(r->handle.worker, m);
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->authorization);
    buf_free(&r->body);
    free(r);
}

const char *sio_http_method(const sio_http_request_t *r)
{
    return r->method;
}
const char *sio_http_path(const sio_http_request_t *r)
{
    return r->path;
}
const char *sio_http_query(const sio_http_request_t *r)
{
    return r->query;
}
const char *sio_http_authorization(const sio_http_request_t *r)
{
    return r->authorization;
}
const char *sio_http_client_addr(const sio_http_request_t *r)
{
    return r->addr;
}
const buf_t *sio_http_body(const sio_http_request_t *r)
{
    return &r->body;
}
