/*
 * log: one JSON object per line on stderr.
 *
 * Privacy rule: callers never pass message text, tokens or precise
 * locations as fields. Thread-safe: each line is written with one write(2).
 */
#ifndef NEARCHAT_LOG_H
#define NEARCHAT_LOG_H

#include <jansson.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level_t;

/** Lines below `level` are dropped. Default LOG_INFO. */
void log_set_level(log_level_t level);

/** Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int log_parse_level(const char *s);

/**
 * Writes {"ts":"<RFC 3339 UTC with ms>","level":"info","msg":msg, ...fields}.
 * Takes ownership of `fields` (a JSON object or NULL). Never fails; a line
 * that cannot be written is dropped.
 */
void log_write(log_level_t level, const char *msg, json_t *fields);

#define log_info(msg, fields) log_write(LOG_INFO, (msg), (fields))
#define log_warn(msg, fields) log_write(LOG_WARN, (msg), (fields))
#define log_error(msg, fields) log_write(LOG_ERROR, (msg), (fields))
#define log_debug(msg, fields) log_write(LOG_DEBUG, (msg), (fields))

#endif
