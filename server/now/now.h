/*
 * now: the process's clocks, in one place. Monotonic milliseconds for
 * deadlines and intervals (never jumps), wall-clock milliseconds and seconds
 * for what is shown, stored or signed (timestamps, expiries). Any thread.
 */
#ifndef NEARCHAT_NOW_H
#define NEARCHAT_NOW_H

#include <stdint.h>

/** Milliseconds of CLOCK_MONOTONIC. */
uint64_t now_mono_ms(void);
/** Milliseconds since the Unix epoch. */
int64_t now_wall_ms(void);
/** Seconds since the Unix epoch. */
int64_t now_unix_s(void);

#endif
