/*
 * log: one JSON object per line on stderr.
 *
 * Each line is built in memory and handed to the kernel with a single
 * write(2), so lines from different threads never interleave (stderr is
 * unbuffered and stdio would split a line into several writes).
 */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* An int rather than the enum so the atomic is lock-free everywhere. */
static atomic_int log_min_level = LOG_INFO;

static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&log_min_level, (int)level, memory_order_relaxed);
}

int log_parse_level(const char *s)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < (int)(sizeof(log_level_names) / sizeof(log_level_names[0])); i++) {
        if (strcmp(s, log_level_names[i]) == 0)
            return i;
    }
    return -1;
}

/*
 * Formats the current time as RFC 3339 UTC with milliseconds into `out`
 * (at least 25 bytes). Never fails: a broken clock yields the epoch.
 */
static void log_format_time(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        ts.tv_sec = 0;
        ts.tv_nsec = 0;
    }
    gmtime_r(&ts.tv_sec, &tm);
    char date[24];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%.19s.%03dZ", date, (int)(ts.tv_nsec / 1000000L) % 1000);
}

/*
 * Writes all of `len` bytes to stderr, retrying on EINTR and short writes.
 * A short write can only happen on pipes with huge lines; a failure drops
 * the rest of the line because there is nowhere left to report it.
 */
static void log_write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

void log_write(log_level_t level, const char *msg, json_t *fields)
{
    json_t *line = NULL;
    char *text = NULL;
    char ts[40];

    if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed))
        goto cleanup;
    if ((int)level < LOG_DEBUG || (int)level > LOG_ERROR)
        level = LOG_ERROR;

    log_format_time(ts, sizeof(ts));
    line = json_object();
    if (line == NULL)
        goto cleanup;
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(log_level_names[level]));
    json_object_set_new(line, "msg", json_string(msg != NULL ? msg : ""));
    /* Caller fields come after and may not overwrite the three fixed keys. */
    if (json_is_object(fields)) {
        const char *key;
        json_t *value;
        json_object_foreach(fields, key, value)
        {
            if (strcmp(key, "ts") == 0 || strcmp(key, "level") == 0 || strcmp(key, "msg") == 0)
                continue;
            json_object_set(line, key, value);
        }
    }

    /* JSON_PRESERVE_ORDER keeps ts/level/msg first, which eases reading by eye. */
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        goto cleanup;
    /* json_dumps uses malloc: nearchat never installs other jansson allocators. */
    size_t len = strlen(text);
    char *with_nl = realloc(text, len + 2);
    if (with_nl == NULL)
        goto cleanup;
    text = with_nl;
    text[len] = '\n';
    text[len + 1] = '\0';
    log_write_all(text, len + 1);

cleanup:
    free(text);
    json_decref(line);
    json_decref(fields);
}
