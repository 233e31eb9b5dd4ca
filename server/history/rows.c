/*
 * The JSON shapes of history rows (protocol.md section 6), built by both
 * backends from their own rows. A leaf: it calls nothing of history's.
 */
#include <stdlib.h>

#include "internal.h"

json_t *hist_json_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *place(const char *city, const char *country)
{
    return json_pack("{s:o,s:o}", "city", hist_json_str(city), "country", hist_json_str(country));
}

json_t *hist_json_session(const char *session_id, const char *guest_a, const char *guest_b, const char *city_a,
                          const char *country_a, const char *city_b, const char *country_b, int has_started,
                          int64_t started_ms, int has_ended, int64_t ended_ms, const char *end_reason)
{
    json_t *o = json_pack("{s:o,s:[o,o],s:[o,o],s:o,s:o,s:o}", "sessionId", hist_json_str(session_id), "guests",
                          hist_json_str(guest_a), hist_json_str(guest_b), "geo", place(city_a, country_a),
                          place(city_b, country_b), "startedAt",
                          has_started ? json_integer((json_int_t)started_ms) : json_null(), "endedAt",
                          has_ended ? json_integer((json_int_t)ended_ms) : json_null(), "endReason",
                          has_ended ? hist_json_str(end_reason) : json_null());
    if (o == NULL)
        abort();
    return o;
}

json_t *hist_json_message(const char *session_id, int64_t seq, const char *message_id, const char *sender,
                          const char *text, int64_t sent_ms, int64_t delivered_ms)
{
    json_t *o =
        json_pack("{s:o,s:I,s:o,s:o,s:o,s:I,s:I}", "sessionId", hist_json_str(session_id), "seq", (json_int_t)seq, "id",
                  hist_json_str(message_id), "senderGuestId", hist_json_str(sender), "text", hist_json_str(text),
                  "sentAt", (json_int_t)sent_ms, "deliveredAt", (json_int_t)delivered_ms);
    if (o == NULL)
        abort();
    return o;
}

json_t *hist_json_report(const char *report_id, const char *session_id, const char *reporter, const char *reason,
                         int64_t created_ms, const char *status, int has_closed, int64_t closed_ms)
{
    json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:I,s:s,s:o}", "reportId", hist_json_str(report_id), "sessionId",
                          hist_json_str(session_id), "reporterGuestId", hist_json_str(reporter), "reason",
                          hist_json_str(reason), "createdAt", (json_int_t)created_ms, "status",
                          status != NULL ? status : "open", "closedAt",
                          has_closed ? json_integer((json_int_t)closed_ms) : json_null());
    if (o == NULL)
        abort();
    return o;
}

json_t *hist_json_audit(const char *audit_id, const char *moderator, const char *action, const char *detail,
                        const char *target, const char *info, int64_t at_ms)
{
    /* entries written before info existed, or whose info does not parse, show null */
    json_t *obj = info != NULL ? json_loads(info, 0, NULL) : NULL;
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    json_t *o =
        json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:I}", "id", hist_json_str(audit_id), "moderator", hist_json_str(moderator),
                  "action", hist_json_str(action), "detail", hist_json_str(detail), "target", hist_json_str(target),
                  "info", obj != NULL ? obj : json_null(), "at", (json_int_t)at_ms);
    if (o == NULL)
        abort();
    return o;
}
