/*
 * check: the rules of the code that hold in every build. CHECK is never
 * compiled out (unlike assert under NDEBUG): a broken rule (a call from a
 * thread that does not own the object, a reference count going below zero)
 * stops the process where it happened, with the place, instead of
 * corrupting memory that fails somewhere else later.
 */
#ifndef NEARCHAT_CHECK_H
#define NEARCHAT_CHECK_H

#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__))

/** Writes "check failed: <what> (<file>:<line>)" to stderr and aborts. */
_Noreturn void check_failed(const char *what, const char *file, int line);

#endif
