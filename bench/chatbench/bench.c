/*
 * bench: the helpers every part of a run shares (see bench.h).
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_rand(bench_t *b)
{
    /* xorshift64*: WebSocket keys and masks must differ per frame, not resist an attacker */
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 2685821657736338717ull;
}

void bench_error(bench_t *b, bench_err_t kind, const char *fmt, ...)
{
    b->st.errors[kind]++;
    if (b->first_error[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->first_error, sizeof(b->first_error), fmt, ap);
    va_end(ap);
}
