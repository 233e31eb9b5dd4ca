/*
 * histctl: reads the history store through the same interface moderators'
 * API uses, and prints JSON. For operators and for the end-to-end tests that
 * check that a conversation reads back exactly as it was sent.
 *
 *   histctl sessions [GUEST_ID]     sessions, newest first (all pages)
 *   histctl session SESSION_ID      one session
 *   histctl messages SESSION_ID     its messages in seq order (all pages)
 *   histctl reports [open|closed]   reports (all pages)
 *
 * Configuration from the environment, as chatd: HISTORY_URL and
 * CHATD_SECRET_FILE (the cursor key).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/config.h"
#include "../guest/guest.h"
#include "../history/history.h"

/* Follows nextCursor until the end and prints one array of every item. */
static int print_all(hist_t *h, const char *what, const char *arg)
{
    json_t *all = json_array();
    char *cursor = NULL;
    int rc = 0;
    for (;;) {
        json_t *page = NULL;
        if (strcmp(what, "sessions") == 0)
            rc = hist_sessions(h, arg, 0, 0, 500, cursor, &page);
        else if (strcmp(what, "messages") == 0)
            rc = hist_messages(h, arg, 500, cursor, &page);
        else
            rc = hist_reports(h, arg, 500, cursor, &page);
        free(cursor);
        cursor = NULL;
        if (rc != 0)
            break;
        json_array_extend(all, json_object_get(page, "items"));
        const char *next = json_string_value(json_object_get(page, "nextCursor"));
        cursor = next != NULL ? strdup(next) : NULL;
        json_decref(page);
        if (cursor == NULL)
            break;
    }
    if (rc == 0) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "histctl: %s\n", hist_strerror(rc));
    }
    json_decref(all);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(
            argc < 2 ? stderr : stdout,
            "usage: histctl sessions [GUEST_ID] | session SESSION_ID | messages SESSION_ID | reports [open|closed]\n");
        return argc < 2 ? 2 : 0;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "histctl: %s\n", err);
        return 2;
    }
    int rc = 2, created = 0, code = 0;
    guest_secret_t secret;
    hist_t *h = NULL;
    if (guest_secret_load(cfg.secret_file, &secret, &created, err, sizeof(err)) != 0 ||
        (h = hist_open(cfg.history_url, secret.key, secret.len, &code, err, sizeof(err))) == NULL) {
        fprintf(stderr, "histctl: %s\n", err);
        goto Exit;
    }
    const char *what = argv[1], *arg = argc > 2 ? argv[2] : NULL;
    if (strcmp(what, "session") == 0 && arg != NULL) {
        json_t *s = NULL;
        int r = hist_session(h, arg, &s);
        if (r == 0) {
            json_dumpf(s, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
            json_decref(s);
            rc = 0;
        } else {
            fprintf(stderr, "histctl: %s\n", hist_strerror(r));
            rc = 1;
        }
    } else if (strcmp(what, "sessions") == 0 || (strcmp(what, "messages") == 0 && arg != NULL) ||
               strcmp(what, "reports") == 0) {
        rc = print_all(h, what, arg);
    } else {
        fprintf(stderr, "histctl: unknown command %s (try --help)\n", what);
    }
Exit:
    hist_close(h, 1000);
    config_free(&cfg);
    return rc;
}
