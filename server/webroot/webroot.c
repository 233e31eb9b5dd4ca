/*
 * webroot: see webroot.h. Paths are kept sorted for a binary search; the
 * same file can answer several paths (`/x/index.html`, `/x/`, `/x`), so
 * paths point at shared file records.
 */
#include "webroot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../buf/buf.h"

#define WEBROOT_MAX_FILES 4096
#define WEBROOT_MAX_BYTES (64u << 20)
#define WEBROOT_MAX_DEPTH 8

/* Pages may load only what the app itself serves and talk only to this origin. */
#define WEBROOT_CSP                                                                                                    \
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self'; "                  \
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

typedef struct webroot_file {
    sio_static_file_t f;
    char etag[20];
    char *data;
    char *gz;
} webroot_file_t;

typedef struct webroot_path {
    char *path;
    const webroot_file_t *file;
} webroot_path_t;

struct webroot {
    webroot_file_t **files;
    size_t nfiles;
    webroot_path_t *paths;
    size_t npaths, cappaths;
    size_t bytes;
};

static const struct {
    const char *ext;
    const char *type;
    int compress;
} webroot_types[] = {
    {".html", "text/html; charset=utf-8", 1},
    {".js", "text/javascript; charset=utf-8", 1},
    {".mjs", "text/javascript; charset=utf-8", 1},
    {".css", "text/css; charset=utf-8", 1},
    {".json", "application/json", 1},
    {".webmanifest", "application/manifest+json", 1},
    {".map", "application/json", 1},
    {".svg", "image/svg+xml", 1},
    {".txt", "text/plain; charset=utf-8", 1},
    {".png", "image/png", 0},
    {".ico", "image/x-icon", 1},
    {".webp", "image/webp", 0},
    {".woff2", "font/woff2", 0},
};

static const char *type_of(const char *name, int *compress)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(webroot_types) / sizeof(webroot_types[0]); i++) {
        size_t e = strlen(webroot_types[i].ext);
        if (n > e && strcmp(name + n - e, webroot_types[i].ext) == 0) {
            *compress = webroot_types[i].compress;
            return webroot_types[i].type;
        }
    }
    *compress = 0;
    return "application/octet-stream";
}

/* Gzips `data`; keeps the result only when it saves at least a tenth. */
static void compress_file(webroot_file_t *file)
{
    if (file->f.len < 256)
        return;
    z_stream z = {0};
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return;
    uLong cap = deflateBound(&z, (uLong)file->f.len);
    char *out = buf_xmalloc(cap);
    z.next_in = (Bytef *)file->data;
    z.avail_in = (uInt)file->f.len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || len > file->f.len - file->f.len / 10) {
        free(out);
        return;
    }
    file->gz = out;
    file->f.gzip = out;
    file->f.gzip_len = len;
}

static void add_path(webroot_t *root, const char *path, const webroot_file_t *file)
{
    if (root->npaths == root->cappaths) {
        root->cappaths = root->cappaths ? root->cappaths * 2 : 64;
        root->paths = buf_xrealloc(root->paths, root->cappaths * sizeof(*root->paths));
    }
    root->paths[root->npaths++] = (webroot_path_t){buf_xstrndup(path, strlen(path)), file};
}

/* Reads one file whose URL path is `url`; 0, or -1 with `err` set. */
static int load_file(webroot_t *root, const char *fs_path, const char *url, const char *name, size_t size, char *err,
                     size_t errlen)
{
    if (root->nfiles >= WEBROOT_MAX_FILES || root->bytes + size > WEBROOT_MAX_BYTES) {
        snprintf(err, errlen, "more than %d files or %u MiB", WEBROOT_MAX_FILES, WEBROOT_MAX_BYTES >> 20);
        return -1;
    }
    webroot_file_t *file = buf_xcalloc(1, sizeof(*file));
    file->data = buf_xmalloc(size + 1);
    FILE *fp = fopen(fs_path, "rb");
    size_t got = fp != NULL ? fread(file->data, 1, size, fp) : 0;
    if (fp != NULL)
        fclose(fp);
    if (got != size) {
        snprintf(err, errlen, "cannot read %s", fs_path);
        free(file->data);
        free(file);
        return -1;
    }
    root->files = buf_xrealloc(root->files, (root->nfiles + 1) * sizeof(*root->files));
    root->files[root->nfiles++] = file;
    root->bytes += size;

    int compress = 0;
    file->f.content_type = type_of(name, &compress);
    file->f.body = file->data;
    file->f.len = size;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)file->data, size, digest);
    snprintf(file->etag, sizeof(file->etag), "\"%02x%02x%02x%02x%02x%02x%02x%02x\"", digest[0], digest[1], digest[2],
             digest[3], digest[4], digest[5], digest[6], digest[7]);
    file->f.etag = file->etag;
    file->f.cache_control = strncmp(url, "/assets/", 8) == 0 ? "public, max-age=31536000, immutable" : "no-cache";
    file->f.csp = strncmp(file->f.content_type, "text/html", 9) == 0 ? WEBROOT_CSP : NULL;
    if (compress)
        compress_file(file);

    add_path(root, url, file);
    if (strcmp(name, "index.html") == 0) {
        size_t dlen = strlen(url) - strlen("index.html"); /* the folder's URL, with its slash */
        char *dir = buf_xstrndup(url, dlen);
        add_path(root, dir, file);
        if (dlen > 1) {
            dir[dlen - 1] = '\0';
            add_path(root, dir, file);
        }
        free(dir);
    }
    return 0;
}

static int load_dir(webroot_t *root, const char *fs_dir, const char *url_dir, int depth, char *err, size_t errlen)
{
    DIR *d = opendir(fs_dir);
    if (d == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", fs_dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    const struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char fs_path[4096], url[4096];
        struct stat st;
        /* the URL keeps room for the "/" a folder gets */
        if ((size_t)snprintf(fs_path, sizeof(fs_path), "%s/%s", fs_dir, e->d_name) >= sizeof(fs_path) ||
            (size_t)snprintf(url, sizeof(url), "%s%s", url_dir, e->d_name) >= sizeof(url) - 1 ||
            lstat(fs_path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < WEBROOT_MAX_DEPTH) {
            strcat(url, "/");
            rc = load_dir(root, fs_path, url, depth + 1, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            rc = load_file(root, fs_path, url, e->d_name, (size_t)st.st_size, err, errlen);
        }
    }
    closedir(d);
    return rc;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(((const webroot_path_t *)a)->path, ((const webroot_path_t *)b)->path);
}

webroot_t *webroot_load(const char *dir, char *err, size_t errlen)
{
    webroot_t *root = buf_xcalloc(1, sizeof(*root));
    if (load_dir(root, dir, "/", 0, err, errlen) != 0) {
        webroot_free(root);
        return NULL;
    }
    if (root->npaths > 0)
        qsort(root->paths, root->npaths, sizeof(*root->paths), compare_paths);
    return root;
}

size_t webroot_count(const webroot_t *root)
{
    return root->npaths;
}

const sio_static_file_t *webroot_find(const webroot_t *root, const char *path, size_t len)
{
    size_t lo = 0, hi = root->npaths;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *p = root->paths[mid].path;
        int c = strncmp(p, path, len);
        if (c == 0 && p[len] != '\0')
            c = 1;
        if (c == 0)
            return &root->paths[mid].file->f;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const sio_static_file_t *find_cb(void *ud, const char *path, size_t len)
{
    return webroot_find(ud, path, len);
}

void webroot_attach(webroot_t *root, sio_server_t *srv)
{
    sio_server_static(srv, find_cb, root);
}

void webroot_free(webroot_t *root)
{
    if (root == NULL)
        return;
    for (size_t i = 0; i < root->nfiles; i++) {
        free(root->files[i]->data);
        free(root->files[i]->gz);
        free(root->files[i]);
    }
    for (size_t i = 0; i < root->npaths; i++)
        free(root->paths[i].path);
    free(root->files);
    free(root->paths);
    free(root);
}
