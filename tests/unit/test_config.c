/*
 * Unit tests for config: defaults, every override, every rejected value.
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

#include "config/config.h"

static const char *const all_vars[] = {
    "CHATD_LISTEN",
    "CHATD_WORKERS",
    "CHATD_NODE_ID",
    "CHATD_SECRET_FILE",
    "REDIS_URL",
    "AMQP_URL",
    "HISTORY_URL",
    "GEOIP_DB",
    "TRUSTED_PROXIES",
    "ALLOWED_ORIGINS",
    "MODERATOR_KEYS_FILE",
    "CHATD_PING_INTERVAL_MS",
    "CHATD_PING_TIMEOUT_MS",
    "CHATD_MAX_PAYLOAD",
    "CHATD_CONNECT_TIMEOUT_MS",
    "CHATD_LOG_LEVEL",
};

/* Every test starts from an environment with none of our variables set. */
static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
    return 0;
}

static void test_defaults(void **state)
{
    config_t cfg;
    char err[256];
    char expect_node[300];
    char host[256];

    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 8080);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg.workers, cpus < 1 ? 1 : (cpus > 256 ? 256 : cpus));
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    snprintf(expect_node, sizeof(expect_node), "%s-%ld", host, (long)getpid());
    assert_string_equal(cfg.node_id, expect_node);
    assert_string_equal(cfg.secret_file, "var/secret");
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(cfg.amqp_url, "amqp://guest:guest@127.0.0.1:5672/");
    assert_string_equal(cfg.history_url, "sqlite:var/history.db");
    assert_null(cfg.geoip_db);
    assert_null(cfg.trusted_proxies);
    assert_null(cfg.allowed_origins);
    assert_null(cfg.moderator_keys_file);
    assert_int_equal(cfg.ping_interval_ms, 25000);
    assert_int_equal(cfg.ping_timeout_ms, 20000);
    assert_int_equal(cfg.max_payload, 1000000);
    assert_int_equal(cfg.connect_timeout_ms, 45000);
    assert_string_equal(cfg.log_level, "info");
    config_free(&cfg);
}

static void test_empty_means_unset(void **state)
{
    config_t cfg;
    char err[256];

    setenv("MODERATOR_KEYS_FILE", "", 1);
    setenv("CHATD_WORKERS", "", 1);
    setenv("CHATD_LISTEN", "", 1);
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    assert_null(cfg.moderator_keys_file);
    assert_true(cfg.workers >= 1);
    assert_int_equal(cfg.listen_port, 8080);
    config_free(&cfg);
}

static void test_overrides(void **state)
{
    config_t cfg;
    char err[256];

    setenv("CHATD_LISTEN", "127.0.0.1:9000", 1);
    setenv("CHATD_WORKERS", "7", 1);
    setenv("CHATD_NODE_ID", "node-a", 1);
    setenv("CHATD_SECRET_FILE", "/etc/chatd/secret", 1);
    setenv("REDIS_URL", "redis://redis:6380/2", 1);
    setenv("AMQP_URL", "amqp://u:p@rabbit:5673/v", 1);
    setenv("HISTORY_URL", "mongodb://mongo:27017/chat", 1);
    setenv("GEOIP_DB", "/data/city.mmdb", 1);
    setenv("TRUSTED_PROXIES", "10.0.0.0/8", 1);
    setenv("ALLOWED_ORIGINS", "https://a.example,https://b.example", 1);
    setenv("MODERATOR_KEYS_FILE", "/etc/chatd/mods", 1);
    setenv("CHATD_PING_INTERVAL_MS", "1000", 1);
    setenv("CHATD_PING_TIMEOUT_MS", "2000", 1);
    setenv("CHATD_MAX_PAYLOAD", "1024", 1);
    setenv("CHATD_CONNECT_TIMEOUT_MS", "3600000", 1);
    setenv("CHATD_LOG_LEVEL", "debug", 1);

    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.workers, 7);
    assert_string_equal(cfg.node_id, "node-a");
    assert_string_equal(cfg.secret_file, "/etc/chatd/secret");
    assert_string_equal(cfg.redis_url, "redis://redis:6380/2");
    assert_string_equal(cfg.amqp_url, "amqp://u:p@rabbit:5673/v");
    assert_string_equal(cfg.history_url, "mongodb://mongo:27017/chat");
    assert_string_equal(cfg.geoip_db, "/data/city.mmdb");
    assert_string_equal(cfg.trusted_proxies, "10.0.0.0/8");
    assert_string_equal(cfg.allowed_origins, "https://a.example,https://b.example");
    assert_string_equal(cfg.moderator_keys_file, "/etc/chatd/mods");
    assert_int_equal(cfg.ping_interval_ms, 1000);
    assert_int_equal(cfg.ping_timeout_ms, 2000);
    assert_int_equal(cfg.max_payload, 1024);
    assert_int_equal(cfg.connect_timeout_ms, 3600000);
    assert_string_equal(cfg.log_level, "debug");
    config_free(&cfg);
}

static void expect_listen(const char *value, const char *host, int port)
{
    config_t cfg;
    char err[256];

    setenv("CHATD_LISTEN", value, 1);
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.listen_host, host);
    assert_int_equal(cfg.listen_port, port);
    config_free(&cfg);
}

static void test_listen_forms(void **state)
{
    expect_listen("[::1]:8080", "::1", 8080);
    expect_listen(":8081", "0.0.0.0", 8081);
    expect_listen("localhost:1", "localhost", 1);
    expect_listen("0.0.0.0:65535", "0.0.0.0", 65535);
    expect_listen("[::]:443", "::", 443);
}

static void test_history_schemes(void **state)
{
    static const char *const ok[] = {"sqlite:/tmp/h.db", "mongodb://h/db", "mongodb+srv://cluster.example/db"};
    config_t cfg;
    char err[256];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        setenv("HISTORY_URL", ok[i], 1);
        assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
        assert_string_equal(cfg.history_url, ok[i]);
        config_free(&cfg);
    }
}

static void test_log_levels(void **state)
{
    static const char *const ok[] = {"debug", "info", "warn", "error"};
    config_t cfg;
    char err[256];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        setenv("CHATD_LOG_LEVEL", ok[i], 1);
        assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
        assert_string_equal(cfg.log_level, ok[i]);
        config_free(&cfg);
    }
}

/* Sets one variable to a bad value and checks the error names it. */
static void expect_bad(const char *name, const char *value, const char *err_contains)
{
    config_t cfg;
    char err[256] = "";

    clear_env(NULL);
    setenv(name, value, 1);
    assert_int_equal(config_load(&cfg, err, sizeof(err)), -1);
    if (strstr(err, name) != err)
        fail_msg("error for %s=\"%s\" does not start with the name: %s", name, value, err);
    if (strstr(err, err_contains) == NULL)
        fail_msg("error for %s=\"%s\" lacks \"%s\": %s", name, value, err_contains, err);
    /* On failure config_load has freed everything; the struct is zeroed. */
    assert_null(cfg.listen_host);
    assert_null(cfg.node_id);
    unsetenv(name);
}

static void test_bad_workers(void **state)
{
    config_t cfg;
    char err[256];

    setenv("CHATD_WORKERS", "abc", 1);
    assert_int_equal(config_load(&cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "CHATD_WORKERS: expected an integer in 1..256, got \"abc\"");
    expect_bad("CHATD_WORKERS", "0", "1..256");
    expect_bad("CHATD_WORKERS", "257", "1..256");
    expect_bad("CHATD_WORKERS", "-1", "1..256");
    expect_bad("CHATD_WORKERS", "4x", "\"4x\"");
    expect_bad("CHATD_WORKERS", " 4", "1..256");
    expect_bad("CHATD_WORKERS", "99999999999999999999999", "1..256");
}

static void test_bad_listen(void **state)
{
    expect_bad("CHATD_LISTEN", "8080", "8080");
    expect_bad("CHATD_LISTEN", "host:", "host:");
    expect_bad("CHATD_LISTEN", "host:0", "1..65535");
    expect_bad("CHATD_LISTEN", "host:65536", "65536");
    expect_bad("CHATD_LISTEN", "host:80a", "80a");
    expect_bad("CHATD_LISTEN", "::1:8080", "::1:8080");
    expect_bad("CHATD_LISTEN", "[::1]8080", "[::1]8080");
    expect_bad("CHATD_LISTEN", "[::1:8080", "[::1:8080");
    expect_bad("CHATD_LISTEN", "[]:8080", "[]:8080");
}

static void test_bad_ms_values(void **state)
{
    static const char *const names[] = {"CHATD_PING_INTERVAL_MS", "CHATD_PING_TIMEOUT_MS", "CHATD_CONNECT_TIMEOUT_MS"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        expect_bad(names[i], "0", "1..3600000");
        expect_bad(names[i], "3600001", "1..3600000");
        expect_bad(names[i], "fast", "\"fast\"");
        expect_bad(names[i], "1.5", "\"1.5\"");
    }
}

static void test_bad_max_payload(void **state)
{
    expect_bad("CHATD_MAX_PAYLOAD", "1023", "1024..100000000");
    expect_bad("CHATD_MAX_PAYLOAD", "100000001", "1024..100000000");
    expect_bad("CHATD_MAX_PAYLOAD", "1e6", "\"1e6\"");
}

static void test_bad_history_url(void **state)
{
    expect_bad("HISTORY_URL", "postgres://db/x", "postgres://db/x");
    expect_bad("HISTORY_URL", "mongodb:/x", "mongodb:/x");
    expect_bad("HISTORY_URL", "var/history.db", "sqlite:");
}

static void test_bad_log_level(void **state)
{
    expect_bad("CHATD_LOG_LEVEL", "verbose", "\"verbose\"");
    expect_bad("CHATD_LOG_LEVEL", "INFO", "debug, info, warn, error");
}

static void test_help_lists_every_variable(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    config_print_help(out, "/usr/local/bin/chatd");
    assert_int_equal(fclose(out), 0);
    assert_non_null(strstr(text, "Usage: chatd [--help]"));
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++) {
        if (strstr(text, all_vars[i]) == NULL)
            fail_msg("help does not mention %s", all_vars[i]);
    }
    assert_non_null(strstr(text, "0.0.0.0:8080"));
    assert_non_null(strstr(text, "redis://127.0.0.1:6379/0"));
    assert_non_null(strstr(text, "25000"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_empty_means_unset, clear_env),
        cmocka_unit_test_setup(test_overrides, clear_env),
        cmocka_unit_test_setup(test_listen_forms, clear_env),
        cmocka_unit_test_setup(test_history_schemes, clear_env),
        cmocka_unit_test_setup(test_log_levels, clear_env),
        cmocka_unit_test_setup(test_bad_workers, clear_env),
        cmocka_unit_test_setup(test_bad_listen, clear_env),
        cmocka_unit_test_setup(test_bad_ms_values, clear_env),
        cmocka_unit_test_setup(test_bad_max_payload, clear_env),
        cmocka_unit_test_setup(test_bad_history_url, clear_env),
        cmocka_unit_test_setup(test_bad_log_level, clear_env),
        cmocka_unit_test_setup(test_help_lists_every_variable, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
