/* webroot: the built web app, read into memory and looked up by URL path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "webroot/webroot.h"

static char dir[64];

static void write_file(const char *rel, const char *text, size_t repeat)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < repeat; i++)
        fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/webroot-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/moderate", dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof(sub), "%s/assets", dir);
    mkdir(sub, 0700);
    write_file("index.html", "<!doctype html><p>app</p>\n", 40);
    write_file("moderate/index.html", "<!doctype html><p>console</p>", 1);
    write_file("assets/app-abc123.js", "console.log('nearchat');\n", 100);
    write_file("icon.png", "\x89PNG not really", 100);
    write_file(".secret", "never served", 1);
    char target[128], link[128];
    snprintf(target, sizeof(target), "%s/index.html", dir);
    snprintf(link, sizeof(link), "%s/link.html", dir);
    return symlink(target, link);
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static const sio_static_file_t *find(const webroot_t *r, const char *path)
{
    return webroot_find(r, path, strlen(path));
}

static void test_paths_and_index_files(void **state)
{
    char err[256];
    webroot_t *r = webroot_load(dir, err, sizeof(err));
    assert_non_null(r);
    const sio_static_file_t *app = find(r, "/");
    assert_non_null(app);
    assert_ptr_equal(app, find(r, "/index.html"));
    const sio_static_file_t *mod = find(r, "/moderate/");
    assert_non_null(mod);
    assert_ptr_equal(mod, find(r, "/moderate"));
    assert_ptr_equal(mod, find(r, "/moderate/index.html"));
    assert_ptr_not_equal(app, mod);
    assert_null(find(r, "/.secret"));
    assert_null(find(r, "/link.html"));
    assert_null(find(r, "/moderat"));
    assert_null(find(r, "/moderate/x"));
    assert_null(find(r, "/assets/"));
    assert_null(find(r, "/../index.html"));
    /* the path is not NUL-terminated where it ends: a query string may follow */
    assert_ptr_equal(webroot_find(r, "/moderate/?x=1", 10), mod);
    assert_int_equal(webroot_count(r), 7);
    webroot_free(r);
}

static void test_types_caching_and_security_headers(void **state)
{
    char err[256];
    webroot_t *r = webroot_load(dir, err, sizeof(err));
    const sio_static_file_t *html = find(r, "/"), *js = find(r, "/assets/app-abc123.js"), *png = find(r, "/icon.png");
    assert_string_equal(html->content_type, "text/html; charset=utf-8");
    assert_string_equal(html->cache_control, "no-cache");
    assert_non_null(html->csp);
    assert_non_null(strstr(html->csp, "default-src 'self'"));
    assert_string_equal(js->content_type, "text/javascript; charset=utf-8");
    assert_string_equal(js->cache_control, "public, max-age=31536000, immutable");
    assert_null(js->csp);
    assert_string_equal(png->content_type, "image/png");
    assert_int_equal(strlen(html->etag), 18);
    assert_int_equal(html->etag[0], '"');
    assert_string_not_equal(html->etag, js->etag);
    webroot_free(r);
}

static void test_gzip_only_where_it_pays_and_round_trips(void **state)
{
    char err[256];
    webroot_t *r = webroot_load(dir, err, sizeof(err));
    const sio_static_file_t *js = find(r, "/assets/app-abc123.js");
    assert_non_null(js->gzip);
    assert_true(js->gzip_len < js->len / 4);
    char out[4096];
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)js->gzip;
    z.avail_in = (uInt)js->gzip_len;
    z.next_out = (Bytef *)out;
    z.avail_out = sizeof(out);
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, js->len);
    assert_memory_equal(out, js->body, js->len);
    inflateEnd(&z);
    assert_null(find(r, "/icon.png")->gzip);  /* images are compressed already */
    assert_null(find(r, "/moderate/")->gzip); /* too small to be worth it */
    webroot_free(r);
}

static void test_a_missing_folder_is_an_error(void **state)
{
    char err[256] = "";
    assert_null(webroot_load("/nonexistent/webroot", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/webroot"));
    webroot_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_and_index_files),
        cmocka_unit_test(test_types_caching_and_security_headers),
        cmocka_unit_test(test_gzip_only_where_it_pays_and_round_trips),
        cmocka_unit_test(test_a_missing_folder_is_an_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
