/*
 * The hub's view of the offline queue and the history store: thin calls that
 * tolerate a module that is not configured (NULL), so that the rest of the
 * hub never tests for it.
 */
#include "../offq/offq.h"
#include "internal.h"

void hub_offq_publish(hub_worker_t *hw, const char *guest_id, const char *body, size_t len, hub_queued_cb cb, void *ud)
{
    if (hw->hub->offq == NULL) {
        cb(hw->w, offq_err_unavailable, ud);
        return;
    }
    offq_publish(hw->hub->offq, hw->w, guest_id, body, len, cb, ud);
}

void hub_offq_fetch(hub_worker_t *hw, const char *guest_id, int max, hub_fetched_cb cb, void *ud)
{
    if (hw->hub->offq == NULL) {
        cb(hw->w, 0, NULL, 0, offq_err_unavailable, ud);
        return;
    }
    offq_fetch(hw->hub->offq, hw->w, guest_id, max, cb, ud);
}

void hub_offq_ack(hub_worker_t *hw, uint64_t tag)
{
    if (hw->hub->offq != NULL)
        offq_ack(hw->hub->offq, tag);
}

void hub_offq_release(hub_worker_t *hw, uint64_t tag)
{
    if (hw->hub->offq != NULL)
        offq_release(hw->hub->offq, tag);
}

void hub_history_session_start(hub_t *h, const char *sid, const char *guest_a, const char *guest_b, hist_place_t geo_a,
                               hist_place_t geo_b, int64_t started_ms)
{
    if (h->history != NULL)
        hist_put_session_start(h->history, sid, guest_a, guest_b, geo_a, geo_b, started_ms);
}

void hub_history_session_end(hub_t *h, const char *sid, int64_t ended_ms, const char *reason)
{
    if (h->history != NULL)
        hist_put_session_end(h->history, sid, ended_ms, reason);
}

void hub_history_report(hub_t *h, const char *report_id, const char *sid, const char *reporter, const char *reason,
                        int64_t created_ms)
{
    if (h->history != NULL)
        hist_put_report(h->history, report_id, sid, reporter, reason, created_ms);
}
