/*
 * Static files (sio_server_static): the application owns the bytes, this
 * file speaks HTTP about them. Bodies are sent from the application's memory
 * without a copy, which is why they must outlive the server.
 */
#include <string.h>

#include "internal.h"

void sio_server_static(sio_server_t *srv, sio_static_cb cb, void *ud)
{
    srv->static_cb = cb;
    srv->static_ud = ud;
}

/* 1 when the comma-separated header value lists `token` (case-insensitive, parameters ignored). */
static int header_lists(h2o_iovec_t v, const char *token)
{
    size_t n = strlen(token), i = 0;
    while (i < v.len) {
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == ','))
            i++;
        size_t start = i;
        while (i < v.len && v.base[i] != ',' && v.base[i] != ';' && v.base[i] != ' ')
            i++;
        if (i - start == n && strncasecmp(v.base + start, token, n) == 0) {
            while (i < v.len && v.base[i] != ',') /* "gzip;q=0" refuses it */
                if (v.base[i++] == '=' && i < v.len && v.base[i] == '0' && (i + 1 == v.len || v.base[i + 1] != '.'))
                    return 0;
            return 1;
        }
        while (i < v.len && v.base[i] != ',')
            i++;
    }
    return 0;
}

static h2o_iovec_t request_header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    return i == -1 ? h2o_iovec_init(NULL, 0) : req->headers.entries[i].value;
}

static void add_header(h2o_req_t *req, const h2o_token_t *token, const char *value)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, value, strlen(value));
}

static void add_named_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

int sio_static_dispatch(sio_worker_t *w, h2o_req_t *req, size_t plen)
{
    sio_server_t *srv = w->srv;
    if (srv->static_cb == NULL)
        return 0;
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (!is_head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return 0;
    const sio_static_file_t *f = srv->static_cb(srv->static_ud, req->path.base, plen);
    if (f == NULL)
        return 0;

    add_header(req, H2O_TOKEN_CACHE_CONTROL, f->cache_control);
    add_header(req, H2O_TOKEN_ETAG, f->etag);
    add_header(req, H2O_TOKEN_VARY, "Accept-Encoding");
    add_named_header(req, "x-content-type-options", "nosniff");
    add_named_header(req, "referrer-policy", "no-referrer");
    if (f->csp != NULL) {
        add_named_header(req, "content-security-policy", f->csp);
        add_named_header(req, "x-frame-options", "DENY");
    }
    h2o_iovec_t inm = request_header(req, H2O_TOKEN_IF_NONE_MATCH);
    if (inm.len == strlen(f->etag) && memcmp(inm.base, f->etag, inm.len) == 0) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, "", 0);
        return 1;
    }
    h2o_iovec_t body = h2o_iovec_init(f->body, f->len);
    if (f->gzip != NULL && header_lists(request_header(req, H2O_TOKEN_ACCEPT_ENCODING), "gzip")) {
        body = h2o_iovec_init(f->gzip, f->gzip_len);
        add_header(req, H2O_TOKEN_CONTENT_ENCODING, "gzip");
    }
    add_header(req, H2O_TOKEN_CONTENT_TYPE, f->content_type);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    static h2o_generator_t generator = {NULL, NULL}; /* one answer, sent whole: nothing to proceed or stop */
    h2o_start_response(req, &generator);
    h2o_send(req, &body, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 1;
}
