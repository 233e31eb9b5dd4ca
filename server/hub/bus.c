/*
 * Notes between workers (hub_chat_note_t). The local bus: a note for a worker
 * of this node goes through memory (sio_worker_post) instead of a Redis round
 * trip. Every worker subscribes to "nc:w:<node>:<index>"; a note for another
 * node's is published there as JSON. Measured at 10,000 msgs/s, pub/sub cost Redis a PUBLISH and a
 * subscriber write per message and notification, and chatd a read of each.
 */
#include <stdlib.h>
#include <string.h>

#include "../buf/buf.h"

#include "internal.h"

void hub_bus_join(hub_worker_t *hw)
{
    if (hw->index >= 0 && hw->index < HUB_MAX_WORKERS)
        atomic_store(&hw->hub->bus[hw->index], hw->w);
}

void hub_bus_leave(hub_worker_t *hw)
{
    if (hw->index >= 0 && hw->index < HUB_MAX_WORKERS)
        atomic_store(&hw->hub->bus[hw->index], NULL);
}

int hub_bus_index(const hub_t *h, const char *channel)
{
    size_t plen = strlen(h->bus_prefix);
    if (channel == NULL || strncmp(channel, h->bus_prefix, plen) != 0)
        return -1;
    const char *digits = channel + plen;
    char *end = NULL;
    long i = strtol(digits, &end, 10);
    if (end == digits || *end != '\0' || i < 0 || i >= h->nworkers || i >= HUB_MAX_WORKERS)
        return -1;
    return (int)i;
}

static void on_note(sio_worker_t *w, void *arg)
{
    hub_chat_note_t *n = arg;
    hub_worker_t *hw = sio_worker_data(w);
    if (hw != NULL) /* NULL: the worker stopped; a note lost here is like a pub/sub message lost */
        hw->hub->on_note(hw, n);
    hub_note_free(n);
}

int hub_bus_send_note(hub_worker_t *hw, const char *channel, hub_chat_note_t *n)
{
    int i = hub_bus_index(hw->hub, channel);
    sio_worker_t *to = i >= 0 ? atomic_load(&hw->hub->bus[i]) : NULL;
    if (to == NULL)
        return 0;
    sio_worker_post(to, on_note, n);
    return 1;
}

hub_chat_note_t *hub_note_new(char kind, const char *g, const char *sid, const char *sender, const char *id,
                              int64_t seq)
{
    hub_chat_note_t *n = buf_xcalloc(1, sizeof(*n));
    n->kind = kind;
    buf_copy_str(n->g, sizeof(n->g), g);
    buf_copy_str(n->sid, sizeof(n->sid), sid);
    buf_copy_str(n->sender, sizeof(n->sender), sender);
    buf_copy_str(n->id, sizeof(n->id), id);
    n->seq = seq;
    return n;
}

void hub_note_free(hub_chat_note_t *n)
{
    free(n->text);
    free(n);
}

char *hub_note_json(const hub_chat_note_t *n)
{
    json_t *j = NULL;
    if (n->kind == HUB_NOTE_TYPING)
        j = json_pack("{s:s,s:s,s:s,s:b}", "t", "typing", "g", n->g, "sid", n->sid, "typing", n->seq != 0);
    else if (n->kind == HUB_NOTE_READ)
        j = json_pack("{s:s,s:s,s:s,s:I}", "t", "read", "g", n->g, "sid", n->sid, "upToSeq", (json_int_t)n->seq);
    else if (n->kind == HUB_NOTE_MSG)
        j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "t", "msg", "g", n->g, "sid", n->sid, "id", n->id, "seq",
                      (json_int_t)n->seq, "ts", (json_int_t)n->ts, "text", n->text, "sender", n->sender, "from",
                      n->from);
    else
        j = json_pack("{s:s,s:s,s:s,s:s,s:I}", "t", n->kind == HUB_NOTE_NACK ? "nack" : "delivered", "g", n->g, "sid",
                      n->sid, "id", n->id, "seq", (json_int_t)n->seq);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

void hub_note_send(hub_worker_t *hw, const char *channel, hub_chat_note_t *n)
{
    if (hub_bus_send_note(hw, channel, n))
        return;
    char *text = hub_note_json(n);
    redis_command(hw->cmd, NULL, NULL, "PUBLISH", channel, text, (const char *)NULL);
    free(text);
    hub_note_free(n);
}
