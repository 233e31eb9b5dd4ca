/*
 * note: the notes a worker gets about one of its guests, from the matcher
 * (matcher.lua), from chat.lua, and from the workers of every node. On the
 * wire (a worker's Redis channel) a note is one JSON object with "t" its
 * kind and "g" the guest it is for; schemas/notes/<kind>.json is the
 * contract each writer keeps. Between the workers of one node it travels as
 * this struct, never encoded.
 *
 * One parse and one encode for every kind, so that no reader looks a field
 * up by name and no writer spells one: the scripts write the same JSON, and
 * tests check what they publish against the same schemas.
 */
#ifndef NEARCHAT_NOTE_H
#define NEARCHAT_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../guest/guest.h"

#define NOTE_ID_MAX (GUEST_ID_LEN + 1) /* guest, session and proposal ids and a NUL */
#define NOTE_MSG_ID_MAX 65             /* a client message id: 64 bytes and a NUL (protocol.md §5) */
#define NOTE_CHANNEL_MAX 160
#define NOTE_ALIAS_MAX 64
#define NOTE_CITY_MAX 256
#define NOTE_CC_MAX 8
#define NOTE_REASON_MAX 16

typedef enum note_kind {
    NOTE_NONE = 0,
    NOTE_MSG,       /* a message for its recipient's worker */
    NOTE_DELIVERED, /* to the sender's worker: the recipient's client acked */
    NOTE_NACK,      /* to the sender's worker: the recipient's worker could not hand it over */
    NOTE_TYPING,
    NOTE_READ,
    NOTE_QUEUED,    /* something waits in the guest's offline queue */
    NOTE_LEFT,      /* the session ended */
    NOTE_PEER,      /* the peer came or went */
    NOTE_PROPOSAL,  /* the matcher proposes a peer to this guest */
    NOTE_PROPOSING, /* the matcher proposed this guest to a peer */
    NOTE_WAITING,   /* the matcher widened the search */
    NOTE_SESSION,   /* both accepted: a session started */
    NOTE_EXPIRED,   /* a proposal ran out */
    NOTE_WITHDRAWN, /* the other side went */
    NOTE_KINDS
} note_kind_t;

typedef struct note_msg {
    char sid[NOTE_ID_MAX], id[NOTE_MSG_ID_MAX], sender[NOTE_ID_MAX];
    char from[NOTE_CHANNEL_MAX]; /* the origin worker's channel; "" when none (no nack can go back) */
    int64_t seq, ts;
    char *text; /* owned (note_clear) */
} note_msg_t;

typedef struct note_outcome { /* delivered, nack */
    char sid[NOTE_ID_MAX], id[NOTE_MSG_ID_MAX];
    int64_t seq;
} note_outcome_t;

typedef struct note_typing {
    char sid[NOTE_ID_MAX];
    bool typing;
} note_typing_t;

typedef struct note_read {
    char sid[NOTE_ID_MAX];
    int64_t up_to_seq;
} note_read_t;

typedef struct note_queued {
    char sid[NOTE_ID_MAX];
} note_queued_t;

typedef struct note_left {
    char sid[NOTE_ID_MAX], reason[NOTE_REASON_MAX];
} note_left_t;

typedef struct note_peer {
    char sid[NOTE_ID_MAX];
    bool online;
} note_peer_t;

typedef struct note_proposal {
    char pid[NOTE_ID_MAX], city[NOTE_CITY_MAX], cc[NOTE_CC_MAX]; /* "" when unknown */
    bool has_distance;
    double distance_km;
    int64_t ms; /* the time to answer */
} note_proposal_t;

typedef struct note_proposing {
    char pid[NOTE_ID_MAX];
    int64_t ms;
} note_proposing_t;

typedef struct note_waiting {
    int64_t stage, waited_ms;
} note_waiting_t;

typedef struct note_session {
    char sid[NOTE_ID_MAX], alias[NOTE_ALIAS_MAX], city[NOTE_CITY_MAX], cc[NOTE_CC_MAX];
    bool has_distance;
    double distance_km;
    int64_t started;
} note_session_t;

typedef struct note_proposal_end { /* expired, withdrawn */
    char pid[NOTE_ID_MAX];
} note_proposal_end_t;

typedef struct note {
    note_kind_t kind;
    char g[NOTE_ID_MAX]; /* the guest it is for */
    union {
        note_msg_t msg;
        note_outcome_t outcome; /* delivered, nack */
        note_typing_t typing;
        note_read_t read;
        note_queued_t queued;
        note_left_t left;
        note_peer_t peer;
        note_proposal_t proposal;
        note_proposing_t proposing;
        note_waiting_t waiting;
        note_session_t session;
        note_proposal_end_t ended; /* expired, withdrawn */
    } u;
} note_t;

/** The kind's name on the wire ("msg", "delivered", ...); NULL for none. */
const char *note_kind_name(note_kind_t kind);

/**
 * Parses a note's JSON (`len` bytes) into `out`; 0, or -1 when it is not one
 * (unknown kind, a field missing, of the wrong type or too long). On 0, a
 * msg's text is owned by `out`: note_clear frees it.
 */
int note_parse(const char *json, size_t len, note_t *out);

/** The note as JSON (a new string, the caller frees it). */
char *note_encode(const note_t *n);

/** Frees what the note owns (a msg's text); the note stays usable as empty. */
void note_clear(note_t *n);

/** A note on the heap (zeroed, `kind` and `g` set), for the local bus; note_free frees it and its text. */
note_t *note_new(note_kind_t kind, const char *g);
void note_free(note_t *n);

#endif
