/*
 * The local bus: a notification for a worker of this node goes through
 * memory (sio_worker_post) instead of a Redis round trip. Every worker
 * subscribes to "nc:w:<node>:<index>"; a channel of another node is still
 * published. Measured at 10,000 msgs/s, pub/sub cost Redis a PUBLISH and a
 * subscriber write per message and notification, and chatd a read of each.
 */
#include <stdlib.h>
#include <string.h>

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
        hub_chat_on_note(hw, n);
    free(n->text);
    free(n);
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
