/*
 * The hub's view of the offline queue and the history store. Until those
 * modules are wired in, a message that cannot be delivered live is answered
 * "unavailable" (never "queued": nothing durable holds it), and history
 * writes are dropped here, which the ack promise does not depend on.
 */
#include "internal.h"

void hub_offq_publish(hub_worker_t *hw, const char *guest_id, const char *body, size_t len, hub_queued_cb cb, void *ud)
{
    cb(hw->w, "unavailable", ud);
}

void hub_offq_fetch(hub_worker_t *hw, const char *guest_id, int max, hub_fetched_cb cb, void *ud)
{
    cb(hw->w, 0, NULL, 0, "unavailable", ud);
}

void hub_offq_ack(hub_worker_t *hw, uint64_t tag) {}

void hub_offq_release(hub_worker_t *hw, uint64_t tag) {}

void hub_history_message(hub_t *h, const char *sid, int64_t seq, const char *id, const char *sender, const char *text,
                         int64_t sent_ms, int64_t delivered_ms)
{
}

void hub_history_session_start(hub_t *h, const char *sid, const char *guest_a, const char *guest_b, hist_place_t geo_a,
                               hist_place_t geo_b, int64_t started_ms)
{
}

void hub_history_session_end(hub_t *h, const char *sid, int64_t ended_ms, const char *reason) {}

void hub_history_report(hub_t *h, const char *report_id, const char *sid, const char *reporter, const char *reason,
                        int64_t created_ms)
{
}
