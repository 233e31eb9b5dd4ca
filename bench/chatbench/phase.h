/*
 * phase: the run's timeline. Connect every guest (a bounded number at
 * once), then have them all request a match and accept their proposals,
 * then send chat:message at the aggregate rate for the duration, then wait
 * for the last acks. The loop calls phase_step after every wakeup.
 */
#ifndef CHATBENCH_PHASE_H
#define CHATBENCH_PHASE_H

#include "bench.h"

/** Starts the run: the connect phase. Never fails. */
void phase_begin(bench_t *b);

/**
 * Does whatever is due at `now` (starting connections, timeouts, phase
 * changes, paced sends). Never fails; b->phase is PHASE_DONE at the end.
 */
void phase_step(bench_t *b, uint64_t now);

/** How long the loop may sleep from `now`, in ms, before phase_step is due. */
int phase_timeout_ms(const bench_t *b, uint64_t now);

/** Ends the run early (a signal): what was measured so far is reported. */
void phase_abort(bench_t *b, uint64_t now);

#endif
