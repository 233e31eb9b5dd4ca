/*
 * bench: the state of one run, shared by the guests (guest.c), the phases
 * and the loop (main.c) and the report (report.c). One thread owns all of
 * it, so nothing here is locked.
 */
#ifndef CHATBENCH_BENCH_H
#define CHATBENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../server/buf/buf.h"
#include "hist.h"
#include "net.h"

#define BENCH_MAX_TARGETS 64
#define BENCH_MAX_PIDS 64
#define BENCH_SESSION_ID_MAX 64

typedef enum { PHASE_CONNECT, PHASE_MATCH, PHASE_CHAT, PHASE_DRAIN, PHASE_DONE } bench_phase_t;

/* What counts as an error, by kind; the report gives the breakdown. */
typedef enum {
    ERR_CONNECT,       /* TCP, WebSocket or Engine.IO handshake failed, or timed out */
    ERR_CONNECT_ERROR, /* the server refused a namespace CONNECT */
    ERR_ACK,           /* an ack with ok:false (other than rate_limited) */
    ERR_RATE_LIMITED,  /* an ack with ok:false, error rate_limited */
    ERR_DISCONNECT,    /* a connected guest lost its connection or a namespace */
    ERR_SESSION_ENDED, /* a paired guest got user-left */
    ERR_PROTOCOL,      /* a frame or packet this client cannot read */
    ERR_UNMATCHED,     /* a guest still unpaired when the match phase gave up */
    ERR_UNANSWERED,    /* a chat:message without an ack when the run ended */
    ERR__COUNT
} bench_err_t;

typedef enum {
    G_IDLE,    /* not started */
    G_TCP,     /* connect() in progress */
    G_UPGRADE, /* the upgrade request sent, waiting for 101 */
    G_OPEN,    /* waiting for the Engine.IO open packet */
    G_ROOT,    /* CONNECT to / sent, waiting for `session` */
    G_NSP,     /* CONNECTs to /match and /chat sent */
    G_READY,   /* all three namespaces connected */
    G_DEAD,    /* failed; its error is counted */
    G_CLOSED   /* closed by us at the end */
} guest_state_t;

enum {
    GF_MATCH = 1 << 0,   /* /match connected */
    GF_CHAT = 1 << 1,    /* /chat connected */
    GF_PAIRED = 1 << 2,  /* in a session (user-session received) */
    GF_DIRTY = 1 << 3,   /* has output waiting for the end-of-iteration flush */
    GF_POLLOUT = 1 << 4, /* EPOLLOUT requested: the socket was full */
    GF_FRAG = 1 << 5     /* a fragmented message is being assembled in `frag` */
};

typedef struct guest {
    int fd;
    uint32_t idx;
    uint8_t state; /* guest_state_t */
    uint8_t flags; /* GF_* */
    uint16_t target;
    uint32_t next_ack;   /* our ack ids: counter << 2 | kind */
    uint32_t pending;    /* chat:message sent and not acked yet */
    uint64_t started_ns; /* when connecting began, for the connect timeout */
    buf_t in;            /* bytes of an incomplete frame carried to the next read */
    buf_t out;           /* frames not written yet */
    buf_t frag;          /* a fragmented message being assembled (chatd sends none) */
    char session[BENCH_SESSION_ID_MAX + 1];
    char accept[32]; /* the Sec-WebSocket-Accept value the server must send */
    struct guest *dirty_next;
} guest_t;

typedef struct bench_stats {
    uint64_t started, settled; /* connection attempts begun, and ended (ready or failed) */
    uint64_t rooted;           /* CONNECTs to / completed (`session` received) */
    uint64_t ready;            /* guests with all three namespaces */
    uint64_t waiting;          /* ready, alive, not paired */
    uint64_t paired;           /* guests paired (two per session) */
    uint64_t sent, answered;   /* chat:message sent, and acked either way */
    uint64_t ok, delivered, queued;
    uint64_t received;   /* chat:message received by a peer */
    uint64_t duplicates; /* of which a message received before */
    uint64_t errors[ERR__COUNT];
} bench_stats_t;

typedef struct bench {
    /* options */
    net_target_t targets[BENCH_MAX_TARGETS];
    size_t ntargets;
    uint32_t nguests;
    double rate;
    double duration;
    pid_t pids[BENCH_MAX_PIDS];
    size_t npids;
    uint32_t inflight; /* connection attempts allowed at once */

    /* run state */
    int epfd;
    bench_phase_t phase;
    guest_t *guests;
    guest_t *dirty;  /* guests with output to flush */
    uint32_t *pairs; /* indices of paired guests, the senders' rotation */
    size_t npairs, rr;
    uint32_t next_start; /* the next guest to start connecting */
    uint64_t next_msg;   /* message ids are unique across the run */
    uint8_t *seen;       /* a bit per message id: received already */
    uint64_t seen_bits;
    uint64_t rng; /* xorshift state for keys and masks */
    buf_t pkt;    /* the packet being built: one buffer reused for all */
    uint8_t rbuf[65536];

    /* times, CLOCK_MONOTONIC ns */
    uint64_t t0, t_connect, t_last_rooted, t_connect_end, t_match, t_last_pair, t_chat, t_chat_end, t_last_ok;
    uint64_t t_progress;           /* the last pairing, or the match phase's start: the stall timer */
    uint64_t t_scan;               /* the last connect-timeout scan */
    uint64_t t_shown;              /* the last progress line */
    uint64_t sent_shown, ok_shown; /* the counters at the last progress line */
    uint64_t total_msgs;           /* rate x duration */
    int aborted;                   /* stopped by a signal */

    long rss_before_kib, rss_after_kib; /* -1: not read */
    bench_stats_t st;
    histo_t receipt; /* send -> the peer's receipt */
    histo_t acked;   /* send -> the sender's ok ack */
    histo_t second;  /* send -> receipt since the last progress line */
    char first_error[256];
} bench_t;

/** CLOCK_MONOTONIC now, in ns. Never fails. */
uint64_t bench_now(void);

/** A pseudo-random 64-bit number (xorshift; keys and masks need no secrecy here). */
uint64_t bench_rand(bench_t *b);

/**
 * Counts an error of `kind`; the first one's text (printf-style) is kept for
 * the report. Never fails.
 */
void bench_error(bench_t *b, bench_err_t kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
