/*
 * report: what a run measured, as a table for people and, on the last line
 * of stdout, one JSON object for tools (the keys are a contract: see
 * chatbench --help).
 */
#ifndef CHATBENCH_REPORT_H
#define CHATBENCH_REPORT_H

#include <stdio.h>
#include <sys/types.h>

#include "bench.h"

/**
 * The sum of VmRSS of `pids`, in KiB, from /proc/PID/status; -1 when one of
 * them cannot be read (gone, or not ours to read).
 */
long report_rss_kib(const pid_t *pids, size_t n);

/** All errors counted so far, of every kind. */
uint64_t report_errors(const bench_t *b);

/** Prints the table, then the JSON line, to `out`. */
void report_print(const bench_t *b, FILE *out);

#endif
