/*
 * What every moderator call shares: its answer (JSON, with its status kept
 * for the audit), its query's parameters, and the target the audit names.
 * A leaf of modapi: the router (modapi.c) and the bans (bans.c) stand on it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- answers ---- */

void modapi_reply_json(api_call_t *call, int status, json_t *body)
{
    buf_t out = BUF_INIT;
    if (body != NULL) {
        char *text = json_dumps(body, JSON_COMPACT);
        buf_append_str(&out, text);
        free(text);
        json_decref(body);
    }
    call->status = status;
    sio_http_respond(call->req, status, "application/json", &out);
    call->req = NULL;
}

void modapi_reply_error(api_call_t *call, int status, const char *code, const char *message)
{
    modapi_reply_json(call, status, json_pack("{s:s,s:s}", "error", code, "message", message));
}

/* ---- query strings ---- */

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* The decoded value of `name` in the query, or NULL (a new string). */
char *modapi_query_param(const char *query, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char *out = buf_xmalloc(len - nl);
            size_t o = 0;
            for (size_t i = nl + 1; i < len; i++) {
                if (p[i] == '+')
                    out[o++] = ' ';
                else if (p[i] == '%' && i + 2 < len + 0 && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
                    out[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
                    i += 2;
                } else
                    out[o++] = p[i];
            }
            out[o] = '\0';
            return out;
        }
        p += len + (amp != NULL ? 1 : 0);
        if (amp == NULL)
            break;
    }
    return NULL;
}

/* Parses an optional integer parameter in [min, max]; 0 when fine, -1 after answering 400. */
int modapi_int_param(api_call_t *call, const char *name, long long def, long long min, long long max, long long *out)
{
    char *v = modapi_query_param(sio_http_query(call->req), name);
    *out = def;
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    int bad = v[0] == '\0' || *end != '\0' || errno != 0 || n < min || n > max;
    free(v);
    if (bad) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s must be an integer in %lld..%lld", name, min, max);
        modapi_reply_error(call, 400, "invalid_parameter", msg);
        return -1;
    }
    *out = n;
    return 0;
}

void modapi_set_target(api_call_t *call, const char *target)
{
    free(call->target);
    call->target = target != NULL ? strdup(target) : NULL;
}
