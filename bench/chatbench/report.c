/*
 * report: the table and the JSON line (see report.h).
 */
#include "report.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *const err_names[ERR__COUNT] = {
    "connect",       "connect_error", "ack_error", "rate_limited", "disconnect",
    "session_ended", "protocol",      "unmatched", "unanswered",
};

static const double quantiles[] = {0.50, 0.90, 0.99, 0.999};

long report_rss_kib(const pid_t *pids, size_t n)
{
    long sum = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64], line[256];
        long kib = -1;
        snprintf(path, sizeof(path), "/proc/%ld/status", (long)pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return -1;
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "VmRSS:", 6) == 0) {
                kib = strtol(line + 6, NULL, 10);
                break;
            }
        fclose(f);
        if (kib < 0)
            return -1; /* a zombie or a kernel thread has no VmRSS */
        sum += kib;
    }
    return sum;
}

uint64_t report_errors(const bench_t *b)
{
    uint64_t n = 0;
    for (int i = 0; i < ERR__COUNT; i++)
        n += b->st.errors[i];
    return n;
}

/* x per second over `ns`; a span too short to time counts as one microsecond. */
static double per_s(uint64_t x, uint64_t ns)
{
    return (double)x * 1e9 / (double)(ns > 1000 ? ns : 1000);
}

static double connects_per_s(const bench_t *b)
{
    return b->st.rooted ? per_s(b->st.rooted, b->t_last_rooted - b->t_connect) : 0;
}

static double matches_per_s(const bench_t *b)
{
    return b->npairs >= 2 ? per_s(b->npairs / 2, b->t_last_pair - b->t_match) : 0;
}

/* The chat window: the scheduled duration, or longer when the last ack came later. */
static uint64_t chat_window_ns(const bench_t *b)
{
    uint64_t w = (uint64_t)(b->duration * 1e9);
    if (b->aborted && b->t_chat_end > b->t_chat)
        w = b->t_chat_end - b->t_chat;
    if (b->t_last_ok > b->t_chat + w)
        w = b->t_last_ok - b->t_chat;
    return w;
}

static double msgs_per_s(const bench_t *b)
{
    return b->st.ok ? per_s(b->st.ok, chat_window_ns(b)) : 0;
}

/* Sets *kib to rss_kib_per_guest and returns 1, or returns 0 when there is none. */
static int rss_per_guest(const bench_t *b, double *kib)
{
    if (b->npids == 0 || b->rss_before_kib < 0 || b->rss_after_kib < 0 || b->st.ready == 0)
        return 0;
    *kib = (double)(b->rss_after_kib - b->rss_before_kib) / (double)b->st.ready;
    return 1;
}

static void print_latency(FILE *out, const char *label, const histo_t *h)
{
    fprintf(out, "%-18s", label);
    if (h->count == 0) {
        fprintf(out, "  no samples\n");
        return;
    }
    for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
        fprintf(out, " %9.3f", (double)histo_quantile(h, quantiles[i]) / 1000.0);
    fprintf(out, " %9.3f %9llu\n", (double)h->max_us / 1000.0, (unsigned long long)h->count);
}

static void print_table(const bench_t *b, FILE *out)
{
    const bench_stats_t *s = &b->st;
    fprintf(out, "chatbench: %u guests on %s", b->nguests, b->targets[0].url);
    for (size_t i = 1; i < b->ntargets; i++)
        fprintf(out, ",%s", b->targets[i].url);
    fprintf(out, ", %.6g msgs/s for %.6g s%s\n\n", b->rate, b->duration, b->aborted ? " (interrupted)" : "");
    fprintf(out, "%-9s %-22s %10s %14s\n", "phase", "done", "time_s", "per_s");
    char done[64];
    snprintf(done, sizeof(done), "%llu/%u guests", (unsigned long long)s->ready, b->nguests);
    fprintf(out, "%-9s %-22s %10.3f %14.1f connects/s\n", "connect", done,
            s->rooted ? (double)(b->t_last_rooted - b->t_connect) / 1e9 : 0.0, connects_per_s(b));
    snprintf(done, sizeof(done), "%zu sessions", b->npairs / 2);
    fprintf(out, "%-9s %-22s %10.3f %14.1f matches/s\n", "match", done,
            b->npairs >= 2 ? (double)(b->t_last_pair - b->t_match) / 1e9 : 0.0, matches_per_s(b));
    snprintf(done, sizeof(done), "%llu/%llu acked ok", (unsigned long long)s->ok, (unsigned long long)s->sent);
    fprintf(out, "%-9s %-22s %10.3f %14.1f msgs/s (delivered %llu, queued %llu)\n", "chat", done,
            s->ok ? (double)chat_window_ns(b) / 1e9 : 0.0, msgs_per_s(b), (unsigned long long)s->delivered,
            (unsigned long long)s->queued);

    fprintf(out, "\n%-18s %9s %9s %9s %9s %9s %9s\n", "latency_ms", "p50", "p90", "p99", "p99.9", "max", "samples");
    print_latency(out, "send -> receipt", &b->receipt);
    print_latency(out, "send -> ack", &b->acked);

    if (s->duplicates > 0)
        fprintf(out, "%-18s %llu chat:message received twice (not counted in the latencies)\n", "duplicates",
                (unsigned long long)s->duplicates);
    fprintf(out, "\n%-18s %llu (", "errors", (unsigned long long)report_errors(b));
    for (int i = 0; i < ERR__COUNT; i++)
        fprintf(out, "%s%s %llu", i ? ", " : "", err_names[i], (unsigned long long)s->errors[i]);
    fprintf(out, ")\n");
    if (b->first_error[0] != '\0')
        fprintf(out, "%-18s %s\n", "first error", b->first_error);

    double rss = 0;
    if (rss_per_guest(b, &rss))
        fprintf(out, "%-18s %ld KiB before, %ld KiB with %llu guests: %.2f KiB per guest\n", "server rss",
                b->rss_before_kib, b->rss_after_kib, (unsigned long long)s->ready, rss);
    else if (b->npids > 0)
        fprintf(out, "%-18s could not be read\n", "server rss");

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    double sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double wall = (double)(bench_now() - b->t0) / 1e9;
    fprintf(out, "%-18s %.2f s user + %.2f s sys in %.2f s (%.0f%% of one core, one thread)\n", "chatbench cpu", user,
            sys, wall, wall > 0 ? 100 * (user + sys) / wall : 0.0);
}

/* A quantile in ms for the JSON line, or null when there are no samples. */
static void json_quantile(FILE *out, const char *key, const histo_t *h, double q)
{
    if (h->count == 0)
        fprintf(out, ",\"%s\":null", key);
    else
        fprintf(out, ",\"%s\":%.3f", key, (double)histo_quantile(h, q) / 1000.0);
}

void report_print(const bench_t *b, FILE *out)
{
    print_table(b, out);
    fprintf(out, "{\"guests\":%llu,\"connects_per_s\":%.1f,\"matches_per_s\":%.1f,\"msgs_per_s\":%.1f",
            (unsigned long long)b->st.ready, connects_per_s(b), matches_per_s(b), msgs_per_s(b));
    json_quantile(out, "p50_ms", &b->receipt, 0.50);
    json_quantile(out, "p90_ms", &b->receipt, 0.90);
    json_quantile(out, "p99_ms", &b->receipt, 0.99);
    json_quantile(out, "p999_ms", &b->receipt, 0.999);
    fprintf(out, ",\"errors\":%llu", (unsigned long long)report_errors(b));
    double rss = 0;
    if (rss_per_guest(b, &rss))
        fprintf(out, ",\"rss_kib_per_guest\":%.2f}\n", rss);
    else
        fprintf(out, ",\"rss_kib_per_guest\":null}\n");
    fflush(out);
}
