/*
 * webroot: the built web app (the visitor PWA and the moderator console),
 * read into memory once at start-up and served by sio from there. The whole
 * app is a few hundred KiB; holding it in memory means no disk read ever
 * happens on an event loop, and each compressible file is gzipped once.
 */
#ifndef NEARCHAT_WEBROOT_H
#define NEARCHAT_WEBROOT_H
#include <stddef.h>

#include "../sio/sio.h"

typedef struct webroot webroot_t;

/**
 * Reads every regular file under `dir` (dot files and symbolic links are
 * skipped). `dir/index.html` answers `/`, and `dir/x/index.html` answers
 * `/x` and `/x/`. Files under `assets/` (content-hashed names) are cached
 * for a year; everything else is revalidated on each use. Returns NULL with
 * a reason in `err` when the folder cannot be read or is too large.
 */
webroot_t *webroot_load(const char *dir, char *err, size_t errlen);
/** How many paths the root answers. */
size_t webroot_count(const webroot_t *root);
/** The file that answers `path` (not NUL-terminated), or NULL. Thread-safe: read-only after load. */
const sio_static_file_t *webroot_find(const webroot_t *root, const char *path, size_t len);
/** Serves the root from `srv`. Before the server starts. */
void webroot_attach(webroot_t *root, sio_server_t *srv);
/** Frees; after the server stopped, since responses point into it. NULL is accepted. */
void webroot_free(webroot_t *root);

#endif
