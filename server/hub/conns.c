/*
 * The leaf of the hub: guest connections (counted references, the
 * per-worker registry by guest id), emitting and acking on their sockets,
 * the payload parts more than one feature writes, and the wall clock.
 * Every other file of the hub stands on this one; it calls none of them.
 */
#include <limits.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "../check/check.h"
#include "internal.h"

hub_conn_t *hub_conn_ref(hub_conn_t *c)
{
    CHECK(c->refs > 0 && c->refs < UINT_MAX); /* a freed connection is never taken again */
    c->refs++;
    return c;
}

void hub_conn_unref(hub_conn_t *c)
{
    CHECK(c->refs > 0);
    if (--c->refs > 0)
        return;
    sio_timer_free(c->widen);
    sio_timer_free(c->proposal);
    sio_timer_free(c->proposing);
    sio_timer_free(c->session_end);
    limits_release(c->hw->hub->guest_limits, c->guest_slot);
    free(c);
}

static size_t bucket_of(const char *gid)
{
    uint32_t h = 2166136261u; /* FNV-1a: ids are random already, this only spreads them */
    for (const char *p = gid; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % HUB_REGISTRY_BUCKETS;
}

hub_conn_t *hub_registry_find(hub_worker_t *hw, const char *gid)
{
    for (hub_conn_t *c = hw->registry[bucket_of(gid)]; c != NULL; c = c->hnext)
        if (strcmp(c->gid, gid) == 0)
            return c;
    return NULL;
}

void hub_registry_remove(hub_worker_t *hw, hub_conn_t *c)
{
    if (!c->registered)
        return;
    for (hub_conn_t **pp = &hw->registry[bucket_of(c->gid)]; *pp != NULL; pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    c->registered = 0;
    c->hnext = NULL;
    hub_conn_unref(c);
}

void hub_registry_add(hub_worker_t *hw, hub_conn_t *c)
{
    /* the newest connection of a guest on this worker is the one that hears from it */
    hub_conn_t *old = hub_registry_find(hw, c->gid);
    if (old != NULL)
        hub_registry_remove(hw, old);
    size_t b = bucket_of(c->gid);
    c->hnext = hw->registry[b];
    hw->registry[b] = hub_conn_ref(c);
    c->registered = 1;
}

hub_conn_t *hub_conn_of(sio_socket_t *s)
{
    sio_socket_t *root = strcmp(sio_socket_nsp(s), "/") == 0 ? s : sio_socket_sibling(s, "/");
    if (root == NULL)
        return NULL;
    hub_conn_t *c = sio_socket_data(root);
    return c != NULL && c->accepted ? c : NULL;
}

void hub_emit(hub_conn_t *c, const char *nsp, const char *event, json_t *payload)
{
    if (c->root == NULL)
        return;
    sio_socket_t *s = strcmp(nsp, "/") == 0 ? c->root : sio_socket_sibling(c->root, nsp);
    if (s == NULL)
        return;
    json_t *args = json_pack("[O]", payload);
    sio_socket_emit(s, event, args);
    json_decref(args);
}

void hub_ack(sio_socket_t *s, int64_t ack_id, json_t *obj)
{
    if (ack_id >= 0) {
        json_t *args = json_pack("[O]", obj);
        sio_socket_ack(s, ack_id, args);
        json_decref(args);
    }
    json_decref(obj);
}

void hub_ack_error(sio_socket_t *s, int64_t ack_id, const char *code)
{
    hub_ack(s, ack_id, json_pack("{s:b,s:s}", "ok", 0, "error", code));
}

sio_socket_t *hub_chat_socket(hub_conn_t *c)
{
    return c != NULL && c->root != NULL ? sio_socket_sibling(c->root, "/chat") : NULL;
}

/* A string, or JSON null when it is NULL or empty. */
json_t *hub_json_str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* A distance in km as the matcher gave it (whole numbers stay integers), or JSON null when none came. */
json_t *hub_json_distance(bool known, double km)
{
    if (!known)
        return json_null();
    return km == floor(km) && fabs(km) < 1e15 ? json_integer((json_int_t)km) : json_real(km);
}

/* {"sessionId":sid,"id":id,"seq":seq: how the payloads of chat:message and chat:delivered begin */
void hub_chat_payload_head(buf_t *b, const char *sid, const char *id, int64_t seq)
{
    buf_append_str(b, "{\"sessionId\":");
    buf_append_json_string(b, sid, strlen(sid));
    buf_append_str(b, ",\"id\":");
    buf_append_json_string(b, id, strlen(id));
    buf_append_str(b, ",\"seq\":");
    buf_append_u64(b, (uint64_t)seq);
}

/* `user-session` from the fields of a hello or session notification. */
json_t *hub_user_session(const char *sid, const char *alias, const char *city, const char *country, json_t *distance,
                         int64_t started_ms, int resumed)
{
    return json_pack("{s:s,s:{s:s,s:o,s:o,s:o},s:I,s:b}", "sessionId", sid, "peer", "alias", alias, "city",
                     hub_json_str_or_null(city), "country", hub_json_str_or_null(country), "distanceKm", distance,
                     "startedAt", (json_int_t)started_ms, "resumed", resumed);
}
