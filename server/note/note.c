/*
 * Each kind is a table of its fields (name on the wire, type, place in
 * note_t), read by one parse and written by one encode, so that adding a
 * field is one line and the two directions cannot disagree.
 */
#include "note.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../buf/buf.h"

typedef enum field_type {
    FIELD_STR,  /* a char array of `size` */
    FIELD_TEXT, /* a char * the note owns */
    FIELD_INT,  /* int64_t; any JSON number (the scripts' cjson may write 1.7e+12) */
    FIELD_BOOL,
    FIELD_DISTANCE, /* double at `off`, and a bool at `has` telling whether it came */
} field_type_t;

typedef struct field {
    const char *name;
    field_type_t type;
    size_t off, size;
    bool optional; /* absent (or null): left empty */
    size_t has;
} field_t;

#define U(m) offsetof(note_t, u.m)
#define STR(name, m, opt)                                                                                              \
    {                                                                                                                  \
        name, FIELD_STR, U(m), sizeof(((note_t *)0)->u.m), opt, 0                                                      \
    }
#define INT(name, m)                                                                                                   \
    {                                                                                                                  \
        name, FIELD_INT, U(m), 0, false, 0                                                                             \
    }
#define BOOL(name, m)                                                                                                  \
    {                                                                                                                  \
        name, FIELD_BOOL, U(m), 0, false, 0                                                                            \
    }
#define DISTANCE(name, m, has_m)                                                                                       \
    {                                                                                                                  \
        name, FIELD_DISTANCE, U(m), 0, true, U(has_m)                                                                  \
    }

static const field_t msg_fields[] = {
    STR("sid", msg.sid, false),
    STR("id", msg.id, false),
    STR("sender", msg.sender, false),
    STR("from", msg.from, true),
    INT("seq", msg.seq),
    INT("ts", msg.ts),
    {"text", FIELD_TEXT, U(msg.text), 0, false, 0},
};
static const field_t outcome_fields[] = {STR("sid", outcome.sid, false), STR("id", outcome.id, false),
                                         INT("seq", outcome.seq)};
static const field_t typing_fields[] = {STR("sid", typing.sid, false), BOOL("typing", typing.typing)};
static const field_t read_fields[] = {STR("sid", read.sid, false), INT("upToSeq", read.up_to_seq)};
static const field_t queued_fields[] = {STR("sid", queued.sid, false)};
static const field_t left_fields[] = {STR("sid", left.sid, false), STR("reason", left.reason, false)};
static const field_t peer_fields[] = {STR("sid", peer.sid, false), BOOL("online", peer.online)};
static const field_t proposal_fields[] = {
    STR("pid", proposal.pid, false), STR("city", proposal.city, true), STR("cc", proposal.cc, true),
    DISTANCE("d", proposal.distance_km, proposal.has_distance), INT("ms", proposal.ms)};
static const field_t proposing_fields[] = {STR("pid", proposing.pid, false), INT("ms", proposing.ms)};
static const field_t waiting_fields[] = {INT("stage", waiting.stage), INT("waited", waiting.waited_ms)};
static const field_t session_fields[] = {STR("sid", session.sid, false),
                                         STR("alias", session.alias, true),
                                         STR("city", session.city, true),
                                         STR("cc", session.cc, true),
                                         DISTANCE("d", session.distance_km, session.has_distance),
                                         INT("started", session.started)};
static const field_t ended_fields[] = {STR("pid", ended.pid, false)};

#define KIND(name, f)                                                                                                  \
    {                                                                                                                  \
        name, f, sizeof(f) / sizeof(f[0])                                                                              \
    }
static const struct {
    const char *name;
    const field_t *fields;
    size_t n;
} kinds[NOTE_KINDS] = {
    [NOTE_MSG] = KIND("msg", msg_fields),
    [NOTE_DELIVERED] = KIND("delivered", outcome_fields),
    [NOTE_NACK] = KIND("nack", outcome_fields),
    [NOTE_TYPING] = KIND("typing", typing_fields),
    [NOTE_READ] = KIND("read", read_fields),
    [NOTE_QUEUED] = KIND("queued", queued_fields),
    [NOTE_LEFT] = KIND("left", left_fields),
    [NOTE_PEER] = KIND("peer", peer_fields),
    [NOTE_PROPOSAL] = KIND("proposal", proposal_fields),
    [NOTE_PROPOSING] = KIND("proposing", proposing_fields),
    [NOTE_WAITING] = KIND("waiting", waiting_fields),
    [NOTE_SESSION] = KIND("session", session_fields),
    [NOTE_EXPIRED] = KIND("expired", ended_fields),
    [NOTE_WITHDRAWN] = KIND("withdrawn", ended_fields),
};

const char *note_kind_name(note_kind_t kind)
{
    return kind > NOTE_NONE && kind < NOTE_KINDS ? kinds[kind].name : NULL;
}

static note_kind_t kind_named(const char *name)
{
    for (int k = NOTE_NONE + 1; name != NULL && k < NOTE_KINDS; k++)
        if (strcmp(kinds[k].name, name) == 0)
            return (note_kind_t)k;
    return NOTE_NONE;
}

static int copy_str(json_t *v, char *out, size_t size)
{
    if (!json_is_string(v) || json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* A JSON number as an int64_t: integers as they are, reals when whole and in range. */
static int read_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    double d = json_is_real(v) ? json_real_value(v) : NAN;
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != floor(d))
        return -1;
    *out = (int64_t)d;
    return 0;
}

static int read_field(json_t *m, const field_t *f, note_t *n)
{
    char *at = (char *)n + f->off;
    json_t *v = json_object_get(m, f->name);
    if (v == NULL || json_is_null(v))
        return f->optional ? 0 : -1;
    switch (f->type) {
    case FIELD_STR:
        return copy_str(v, at, f->size);
    case FIELD_TEXT:
        if (!json_is_string(v))
            return -1;
        *(char **)at = buf_xstrndup(json_string_value(v), json_string_length(v));
        return 0;
    case FIELD_INT:
        return read_int(v, (int64_t *)at);
    case FIELD_BOOL:
        if (!json_is_boolean(v))
            return -1;
        *(bool *)at = json_is_true(v);
        return 0;
    case FIELD_DISTANCE:
        if (!json_is_number(v))
            return -1;
        double km = json_number_value(v);
        memcpy(at, &km, sizeof(km));
        *(bool *)((char *)n + f->has) = true;
        return 0;
    }
    return -1;
}

int note_parse(const char *json, size_t len, note_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *m = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    note_kind_t kind = json_is_object(m) ? kind_named(json_string_value(json_object_get(m, "t"))) : NOTE_NONE;
    int rc = kind != NOTE_NONE && copy_str(json_object_get(m, "g"), out->g, sizeof(out->g)) == 0 ? 0 : -1;
    out->kind = kind;
    for (size_t i = 0; rc == 0 && i < kinds[kind].n; i++)
        rc = read_field(m, &kinds[kind].fields[i], out);
    json_decref(m);
    if (rc != 0) {
        note_clear(out);
        out->kind = NOTE_NONE;
    }
    return rc;
}

static json_t *field_value(const field_t *f, const note_t *n)
{
    const char *at = (const char *)n + f->off;
    switch (f->type) {
    case FIELD_STR:
        return f->optional && at[0] == '\0' ? NULL : json_string(at);
    case FIELD_TEXT:
        return json_string(*(char *const *)at != NULL ? *(char *const *)at : "");
    case FIELD_INT:
        return json_integer((json_int_t) * (const int64_t *)at);
    case FIELD_BOOL:
        return json_boolean(*(const bool *)at);
    case FIELD_DISTANCE:
        if (!*(const bool *)((const char *)n + f->has))
            return NULL;
        double km;
        memcpy(&km, at, sizeof(km));
        return json_real(km);
    }
    return NULL;
}

char *note_encode(const note_t *n)
{
    const char *name = note_kind_name(n->kind);
    if (name == NULL)
        return NULL;
    json_t *m = json_pack("{s:s,s:s}", "t", name, "g", n->g);
    for (size_t i = 0; i < kinds[n->kind].n; i++) {
        json_t *v = field_value(&kinds[n->kind].fields[i], n);
        if (v != NULL)
            json_object_set_new(m, kinds[n->kind].fields[i].name, v);
    }
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return text;
}

void note_clear(note_t *n)
{
    if (n->kind == NOTE_MSG) {
        free(n->u.msg.text);
        n->u.msg.text = NULL;
    }
}

note_t *note_new(note_kind_t kind, const char *g)
{
    note_t *n = buf_xcalloc(1, sizeof(*n));
    n->kind = kind;
    buf_copy_str(n->g, sizeof(n->g), g);
    return n;
}

void note_free(note_t *n)
{
    if (n == NULL)
        return;
    note_clear(n);
    free(n);
}
