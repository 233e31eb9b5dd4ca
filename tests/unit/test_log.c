/*
 * Unit tests for log: stderr is pointed at a temporary file around each
 * call so the exact bytes written can be checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log/log.h"

typedef struct capture {
    FILE *file;
    int saved_stderr;
} capture_t;

static int capture_start(void **state)
{
    capture_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved_stderr = dup(STDERR_FILENO);
    assert_true(c->saved_stderr >= 0);
    assert_true(dup2(fileno(c->file), STDERR_FILENO) >= 0);
    log_set_level(LOG_INFO);
    *state = c;
    return 0;
}

/* Puts stderr back (so cmocka can report) and returns what was written. */
static char *capture_take(capture_t *c)
{
    assert_true(dup2(c->saved_stderr, STDERR_FILENO) >= 0);
    assert_int_equal(fseek(c->file, 0, SEEK_END), 0);
    long len = ftell(c->file);
    assert_true(len >= 0);
    char *text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    rewind(c->file);
    assert_int_equal(fread(text, 1, (size_t)len, c->file), (size_t)len);
    return text;
}

static int capture_end(void **state)
{
    capture_t *c = *state;
    dup2(c->saved_stderr, STDERR_FILENO);
    close(c->saved_stderr);
    fclose(c->file);
    free(c);
    log_set_level(LOG_INFO);
    return 0;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ" character by character. */
static void assert_rfc3339_ms(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_int_equal(strlen(ts), strlen(shape));
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd')
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(ts[i], shape[i]);
    }
}

static void test_one_json_line(void **state)
{
    capture_t *c = *state;
    json_error_t jerr;

    log_info("chatd listening", json_pack("{s:s,s:i}", "host", "0.0.0.0", "port", 8080));
    char *text = capture_take(c);

    assert_int_equal(count_lines(text), 1);
    assert_int_equal(text[strlen(text) - 1], '\n');
    json_t *obj = json_loads(text, 0, &jerr);
    if (obj == NULL)
        fail_msg("not JSON: %s (%s)", text, jerr.text);
    assert_true(json_is_object(obj));
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "chatd listening");
    assert_string_equal(json_string_value(json_object_get(obj, "host")), "0.0.0.0");
    assert_int_equal(json_integer_value(json_object_get(obj, "port")), 8080);
    assert_rfc3339_ms(json_string_value(json_object_get(obj, "ts")));
    /* Compact output: fixed keys first, no spaces after separators. */
    assert_int_equal(strncmp(text, "{\"ts\":\"", 7), 0);
    assert_null(strstr(text, ", "));
    assert_null(strstr(text, "\": "));
    json_decref(obj);
    free(text);
}

static void test_null_fields_and_levels(void **state)
{
    capture_t *c = *state;

    log_warn("w", NULL);
    log_error("e", NULL);
    char *text = capture_take(c);

    assert_int_equal(count_lines(text), 2);
    char *nl = strchr(text, '\n');
    *nl = '\0';
    json_t *first = json_loads(text, 0, NULL);
    json_t *second = json_loads(nl + 1, 0, NULL);
    assert_non_null(first);
    assert_non_null(second);
    assert_string_equal(json_string_value(json_object_get(first, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(second, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(second, "msg")), "e");
    assert_int_equal(json_object_size(first), 3);
    json_decref(first);
    json_decref(second);
    free(text);
}

static void test_fields_cannot_override_fixed_keys(void **state)
{
    capture_t *c = *state;

    log_info("real", json_pack("{s:s,s:s,s:s}", "level", "fake", "msg", "fake", "ts", "fake"));
    char *text = capture_take(c);
    json_t *obj = json_loads(text, 0, NULL);
    assert_non_null(obj);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "real");
    assert_rfc3339_ms(json_string_value(json_object_get(obj, "ts")));
    json_decref(obj);
    free(text);
}

static void test_level_filtering(void **state)
{
    capture_t *c = *state;

    /* Default is info: debug is dropped, and its fields are still freed (ASan checks). */
    log_debug("hidden", json_pack("{s:i}", "n", 1));
    log_set_level(LOG_WARN);
    log_info("hidden too", json_pack("{s:i}", "n", 2));
    log_warn("shown", NULL);
    log_set_level(LOG_DEBUG);
    log_debug("shown debug", NULL);
    char *text = capture_take(c);

    assert_int_equal(count_lines(text), 2);
    assert_null(strstr(text, "hidden"));
    assert_non_null(strstr(text, "\"msg\":\"shown\""));
    assert_non_null(strstr(text, "\"level\":\"debug\""));
    free(text);
}

static void test_parse_level(void **state)
{
    assert_int_equal(log_parse_level("debug"), LOG_DEBUG);
    assert_int_equal(log_parse_level("info"), LOG_INFO);
    assert_int_equal(log_parse_level("warn"), LOG_WARN);
    assert_int_equal(log_parse_level("error"), LOG_ERROR);
    assert_int_equal(log_parse_level("warning"), -1);
    assert_int_equal(log_parse_level("INFO"), -1);
    assert_int_equal(log_parse_level(""), -1);
    assert_int_equal(log_parse_level(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_json_line, capture_start, capture_end),
        cmocka_unit_test_setup_teardown(test_null_fields_and_levels, capture_start, capture_end),
        cmocka_unit_test_setup_teardown(test_fields_cannot_override_fixed_keys, capture_start, capture_end),
        cmocka_unit_test_setup_teardown(test_level_filtering, capture_start, capture_end),
        cmocka_unit_test(test_parse_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
