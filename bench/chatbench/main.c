/*
 * chatbench: a load generator for chatd, independent of the server's code
 * (its own WebSocket, Engine.IO and Socket.IO client). One thread, one
 * epoll loop: the guests, the pacing of messages and the phase timers all
 * run from it. See usage below.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "guest.h"
#include "phase.h"
#include "report.h"

/* descriptors beyond one per guest: stdio, epoll, /proc reads */
#define FD_SLACK 32
#define MAX_GUESTS 10000000u
#define DEFAULT_INFLIGHT 500u
#define EVENTS_PER_WAIT 1024

static const char usage[] =
    "usage: chatbench --url http://HOST:PORT[,http://HOST:PORT...] --guests N --rate MESSAGES_PER_S\n"
    "                 --duration SECONDS [--pids PID,PID...] [--inflight N]\n"
    "\n"
    "Load generator for chatd. N guests connect over WebSocket (Engine.IO v4, Socket.IO v5),\n"
    "spread over the URLs in turn, CONNECT to / with consent, then /match and /chat; then all\n"
    "request a match (scope any) and accept their proposals; then the paired guests send\n"
    "chat:message at MESSAGES_PER_S in total for SECONDS, and every peer acks what it receives.\n"
    "\n"
    "  --url        chatd nodes (http only); on loopback, connections are spread over\n"
    "               127.0.0.x source addresses when one address's ephemeral ports are too few\n"
    "  --guests     number of guests, at least 2\n"
    "  --rate       chat:message per second, all guests together (paced, not bursts)\n"
    "  --duration   seconds of the chat phase\n"
    "  --pids       chatd processes whose VmRSS is read before connecting and once all\n"
    "               guests are connected\n"
    "  --inflight   connection attempts at once during the connect phase (default 500)\n"
    "  --help       this text\n"
    "\n"
    "chatd must allow the load: set CHAT_RATE_GUEST, CHAT_RATE_IP, MATCH_RATE_GUEST,\n"
    "MATCH_RATE_IP, CHATD_HANDSHAKE_RATE_IP and GUEST_RATE_IP to 0/1 and\n"
    "CHATD_MAX_CONN_PER_IP to 0 (no bound), and raise its ulimit -n.\n"
    "\n"
    "Progress goes to stderr, one line a second (the last second's rates and latencies).\n"
    "Output: a table, then, as the last line of stdout, one JSON object:\n"
    "  guests             guests connected (all three namespaces)\n"
    "  connects_per_s     CONNECTs to / completed per second in the connect phase\n"
    "  matches_per_s      sessions formed per second in the match phase\n"
    "  msgs_per_s         chat:message acked ok per second in the chat phase\n"
    "  p50_ms .. p999_ms  latency from send to the peer's receipt (null: no samples)\n"
    "  errors             failed connects, CONNECT_ERROR, acks with ok:false (rate_limited\n"
    "                     included), disconnects, unpaired guests, unanswered messages\n"
    "  rss_kib_per_guest  (VmRSS after - before) / guests, summed over --pids; else null\n"
    "\n"
    "Exit status: 0 when the run completed (even with errors), 1 when no guest could\n"
    "connect, 2 on bad arguments, 130 when interrupted.\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Says what is wrong with the command line on stderr; returns the exit status for it. */
static int bad_arg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_arg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chatbench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'chatbench --help'.\n");
    va_end(ap);
    return 2;
}

static int parse_count(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        bad_arg("%s: expected a whole number from %u to %u, got \"%s\"", opt, min, max, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_positive(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 1e9) {
        bad_arg("%s: expected a positive number, got \"%s\"", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_urls(bench_t *b, char *arg)
{
    char err[512];
    for (char *save = NULL, *u = strtok_r(arg, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        if (b->ntargets == BENCH_MAX_TARGETS) {
            bad_arg("--url: at most %d URLs", BENCH_MAX_TARGETS);
            return -1;
        }
        if (net_target_parse(&b->targets[b->ntargets], u, err, sizeof(err)) != 0) {
            bad_arg("--url: %s", err);
            return -1;
        }
        b->ntargets++;
    }
    if (b->ntargets == 0) {
        bad_arg("--url: no URL given");
        return -1;
    }
    return 0;
}

static int parse_pids(bench_t *b, char *arg)
{
    for (char *save = NULL, *p = strtok_r(arg, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
        uint32_t pid;
        if (b->npids == BENCH_MAX_PIDS) {
            bad_arg("--pids: at most %d processes", BENCH_MAX_PIDS);
            return -1;
        }
        if (parse_count("--pids", p, 1, 0x7FFFFFFF, &pid) != 0)
            return -1;
        b->pids[b->npids++] = (pid_t)pid;
    }
    if (b->npids == 0) {
        bad_arg("--pids: no process id given");
        return -1;
    }
    return 0;
}

/* Returns 0 with the options in `b`, or the exit status: 2 on a bad argument, -1 after --help. */
static int parse_args(bench_t *b, int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},  {"guests", required_argument, NULL, 'g'},
        {"rate", required_argument, NULL, 'r'}, {"duration", required_argument, NULL, 'd'},
        {"pids", required_argument, NULL, 'p'}, {"inflight", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int have_url = 0, have_guests = 0, c;
    b->inflight = DEFAULT_INFLIGHT;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'u':
            rc = parse_urls(b, optarg);
            have_url = 1;
            break;
        case 'g':
            rc = parse_count("--guests", optarg, 2, MAX_GUESTS, &b->nguests);
            have_guests = 1;
            break;
        case 'r':
            rc = parse_positive("--rate", optarg, &b->rate);
            break;
        case 'd':
            rc = parse_positive("--duration", optarg, &b->duration);
            break;
        case 'p':
            rc = parse_pids(b, optarg);
            break;
        case 'i':
            rc = parse_count("--inflight", optarg, 1, MAX_GUESTS, &b->inflight);
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return bad_arg("unknown option or missing value: %s", argv[optind - 1]);
        }
        if (rc != 0)
            return 2;
    }
    if (optind < argc)
        return bad_arg("unexpected argument \"%s\"", argv[optind]);
    if (!have_url || !have_guests || b->rate == 0 || b->duration == 0)
        return bad_arg("--url, --guests, --rate and --duration are required");
    return 0;
}

/* Raises the soft descriptor limit to the hard one (and the hard one if we may). Returns 0 or 2. */
static int raise_nofile(uint32_t guests)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)guests + FD_SLACK;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        struct rlimit more = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            return 0;
        fprintf(stderr,
                "chatbench: %u guests need %llu open files; the hard limit is %llu (raise it: ulimit -Hn, or "
                "limits.conf)\n",
                guests, (unsigned long long)need, (unsigned long long)rl.rlim_max);
        return 2;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return 0;
}

static int setup(bench_t *b)
{
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        fprintf(stderr, "chatbench: epoll_create1: %s\n", strerror(errno));
        return 1;
    }
    if (getrandom(&b->rng, sizeof(b->rng), 0) != sizeof(b->rng) || b->rng == 0)
        b->rng = bench_now() | 1;
    b->guests = buf_xcalloc(b->nguests, sizeof(guest_t));
    b->pairs = buf_xcalloc(b->nguests, sizeof(uint32_t));
    for (uint32_t i = 0; i < b->nguests; i++) {
        b->guests[i].fd = -1;
        b->guests[i].idx = i;
        b->guests[i].target = (uint16_t)(i % b->ntargets);
    }
    for (size_t t = 0; t < b->ntargets; t++)
        net_plan_sources(&b->targets[t], (uint32_t)((b->nguests + b->ntargets - 1) / b->ntargets));
    histo_init(&b->receipt);
    histo_init(&b->acked);
    histo_init(&b->second);
    b->rss_before_kib = b->rss_after_kib = -1;
    if (b->npids > 0) {
        b->rss_before_kib = report_rss_kib(b->pids, b->npids);
        if (b->rss_before_kib < 0) {
            fprintf(stderr, "chatbench: --pids: cannot read VmRSS from /proc/PID/status of every process given\n");
            return 2;
        }
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void run(bench_t *b)
{
    struct epoll_event evs[EVENTS_PER_WAIT];
    phase_begin(b);
    for (;;) {
        uint64_t now = bench_now();
        if (stop_requested) {
            phase_abort(b, now);
            return;
        }
        phase_step(b, now);
        guest_flush_all(b);
        if (b->phase == PHASE_DONE)
            return;
        int n = epoll_wait(b->epfd, evs, EVENTS_PER_WAIT, phase_timeout_ms(b, bench_now()));
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "chatbench: epoll_wait: %s\n", strerror(errno));
            phase_abort(b, bench_now());
            return;
        }
        for (int i = 0; i < n; i++)
            guest_on_io(b, &b->guests[evs[i].data.u64], evs[i].events);
        guest_flush_all(b);
    }
}

int main(int argc, char **argv)
{
    bench_t *b = buf_xcalloc(1, sizeof(*b));
    b->t0 = bench_now();
    int rc = parse_args(b, argc, argv);
    if (rc == 0)
        rc = raise_nofile(b->nguests);
    if (rc == 0)
        rc = setup(b);
    if (rc != 0)
        goto done;
    run(b);
    for (uint32_t i = 0; i < b->nguests; i++)
        guest_close(&b->guests[i]);
    report_print(b, stdout);
    if (b->aborted)
        rc = 130;
    else if (b->st.ready == 0) {
        fprintf(stderr, "chatbench: no guest could connect%s%s\n", b->first_error[0] ? ": " : "", b->first_error);
        rc = 1;
    }
done:
    if (b->epfd > 0)
        close(b->epfd);
    free(b->guests);
    free(b->pairs);
    free(b->seen);
    buf_free(&b->pkt);
    free(b);
    return rc < 0 ? 0 : rc;
}
