/*
 * A SQLite history file made before audit entries had a target and info:
 * opening it adds the columns, its old rows read back with nulls, and new
 * entries can be searched by target.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "history/history.h"

static const char KEY[] = "0123456789abcdef0123456789abcdef-test-key";

static void test_old_audit_table(void **state)
{
    char dir[] = "/tmp/nearchat-migrate-XXXXXX", path[128], url[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/old.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE audit (audit_id TEXT PRIMARY KEY, moderator TEXT, action TEXT,"
                                  " detail TEXT, at INTEGER NOT NULL);"
                                  "INSERT INTO audit VALUES ('a1', 'key:old', 'GET /api/v1/bans', '', 10);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    int code = 0;
    char err[256] = "";
    hist_t *h = hist_open(url, KEY, sizeof KEY - 1, &code, err, sizeof err);
    assert_non_null(h);
    hist_put_audit(h, "key:new", "POST /api/v1/bans", "", "10.0.0.1", "{\"reason\":\"spam\"}", 20);
    hist_flush(h, 5000);
    json_t *page = NULL;
    assert_int_equal(hist_audit(h, NULL, 10, NULL, &page), 0);
    json_t *items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *old = json_array_get(items, 1);
    assert_string_equal(json_string_value(json_object_get(old, "moderator")), "key:old");
    assert_true(json_is_null(json_object_get(old, "target")) && json_is_null(json_object_get(old, "info")));
    json_decref(page);
    assert_int_equal(hist_audit(h, "10.0.0.1", 10, NULL, &page), 0);
    items = json_object_get(page, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *info = json_object_get(json_array_get(items, 0), "info");
    assert_string_equal(json_string_value(json_object_get(info, "reason")), "spam");
    json_decref(page);
    hist_close(h, 5000);
    /* opening it again finds the columns there: no second ALTER */
    h = hist_open(url, KEY, sizeof KEY - 1, &code, err, sizeof err);
    assert_non_null(h);
    hist_close(h, 5000);
    unlink(path);
    char more[160];
    snprintf(more, sizeof more, "rm -rf '%s'", dir);
    assert_int_equal(system(more), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_old_audit_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
