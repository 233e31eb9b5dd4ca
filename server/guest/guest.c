#include "guest.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *guest_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case GUEST_ERR_MALFORMED:
        return "malformed token";
    case GUEST_ERR_MAC:
        return "token signature does not match";
    case GUEST_ERR_EXPIRED:
        return "token expired";
    case GUEST_ERR_SECRET:
        return "unusable secret";
    default:
        return "unknown error";
    }
}

static void random_bytes(unsigned char *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1)
        abort(); /* no randomness: identities would be guessable, refuse to go on */
}

/* base64url without padding; `out` holds 4*ceil(n/3) + 1 bytes. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int write_new_secret(const char *path, char *err, size_t errlen)
{
    unsigned char raw[48];
    char hex[2 * sizeof(raw) + 2];
    random_bytes(raw, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    strcat(hex, "\n");
    /* make the parent folder (one level, e.g. var/) when it is missing */
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex)) {
        snprintf(err, errlen, "cannot create secret file %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return GUEST_ERR_SECRET;
    }
    close(fd);
    return 0;
}

int guest_secret_load(const char *path, guest_secret_t *out, int *created, char *err, size_t errlen)
{
    *created = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL && errno == ENOENT) {
        if (write_new_secret(path, err, errlen) != 0)
            return GUEST_ERR_SECRET;
        *created = 1;
        f = fopen(path, "rb");
    }
    if (f == NULL) {
        snprintf(err, errlen, "cannot read secret file %s: %s", path, strerror(errno));
        return GUEST_ERR_SECRET;
    }
    unsigned char buf[sizeof(out->key) + 64];
    size_t n = fread(buf, 1, sizeof(buf), f);
    int too_long = !feof(f);
    fclose(f);
    size_t start = 0;
    while (start < n && isspace(buf[start]))
        start++;
    while (n > start && isspace(buf[n - 1]))
        n--;
    if (too_long || n - start > sizeof(out->key)) {
        snprintf(err, errlen, "secret file %s is longer than %zu bytes", path, sizeof(out->key));
        return GUEST_ERR_SECRET;
    }
    if (n - start < GUEST_SECRET_MIN) {
        snprintf(err, errlen, "secret file %s holds %zu bytes, at least %d are needed", path, n - start,
                 GUEST_SECRET_MIN);
        return GUEST_ERR_SECRET;
    }
    memcpy(out->key, buf + start, n - start);
    out->len = n - start;
    return 0;
}

void guest_new_id(char out[GUEST_ID_LEN + 1])
{
    unsigned char raw[16];
    random_bytes(raw, sizeof(raw));
    b64url_encode(raw, sizeof(raw), out);
}

int guest_id_valid(const char *id)
{
    if (strlen(id) != GUEST_ID_LEN)
        return 0;
    for (size_t i = 0; i < GUEST_ID_LEN; i++)
        if (strchr(b64url, id[i]) == NULL)
            return 0;
    /* 128 bits in 22 characters: the last one carries 2 bits, its low 4 are zero */
    return (strchr(b64url, id[GUEST_ID_LEN - 1]) - b64url) % 16 == 0;
}

/* mac text of `v1.<id>.<exp>` (43 chars + NUL) */
static void token_mac(const guest_secret_t *s, const char *signed_part, size_t len, char mac[44])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), s->key, (int)s->len, (const unsigned char *)signed_part, len, md, &mdlen);
    b64url_encode(md, mdlen, mac);
}

void guest_token_make(const guest_secret_t *s, const char *guest_id, int64_t expires_unix, char out[GUEST_TOKEN_MAX])
{
    int n = snprintf(out, GUEST_TOKEN_MAX, "v1.%s.%lld", guest_id, (long long)expires_unix);
    char mac[44];
    token_mac(s, out, (size_t)n, mac);
    snprintf(out + n, GUEST_TOKEN_MAX - (size_t)n, ".%s", mac);
}

int guest_token_verify(const guest_secret_t *s, const char *token, int64_t now_unix, char guest_id[GUEST_ID_LEN + 1],
                       int64_t *expires_unix)
{
    size_t len = strnlen(token, GUEST_TOKEN_MAX);
    if (len >= GUEST_TOKEN_MAX || strncmp(token, "v1.", 3) != 0)
        return GUEST_ERR_MALFORMED;
    const char *id = token + 3;
    const char *dot1 = strchr(id, '.');
    if (dot1 == NULL || dot1 - id != GUEST_ID_LEN)
        return GUEST_ERR_MALFORMED;
    const char *exp = dot1 + 1;
    const char *dot2 = strchr(exp, '.');
    if (dot2 == NULL || dot2 == exp || dot2 - exp > 12)
        return GUEST_ERR_MALFORMED;
    int64_t e = 0;
    for (const char *p = exp; p < dot2; p++) {
        if (*p < '0' || *p > '9')
            return GUEST_ERR_MALFORMED;
        e = e * 10 + (*p - '0');
    }
    char idbuf[GUEST_ID_LEN + 1];
    memcpy(idbuf, id, GUEST_ID_LEN);
    idbuf[GUEST_ID_LEN] = '\0';
    if (!guest_id_valid(idbuf))
        return GUEST_ERR_MALFORMED;
    char mac[44];
    token_mac(s, token, (size_t)(dot2 - token), mac);
    const char *given = dot2 + 1;
    if (strlen(given) != 43 || CRYPTO_memcmp(given, mac, 43) != 0)
        return GUEST_ERR_MAC;
    if (e <= now_unix)
        return GUEST_ERR_EXPIRED;
    memcpy(guest_id, idbuf, GUEST_ID_LEN + 1);
    *expires_unix = e;
    return 0;
}

static const char *const adjectives[] = {
    "Quiet", "Brave",  "Gentle", "Clever", "Sunny",  "Lucky",  "Calm",   "Swift",  "Bright", "Curious",
    "Jolly", "Kind",   "Witty",  "Merry",  "Bold",   "Happy",  "Silver", "Golden", "Misty",  "Cosmic",
    "Rapid", "Humble", "Noble",  "Shy",    "Breezy", "Dreamy", "Fuzzy",  "Mellow", "Nimble", "Plucky",
    "Rosy",  "Snowy",  "Velvet", "Wild",   "Zesty",  "Amber",  "Cheery", "Dapper", "Eager",  "Fancy",
};
static const char *const animals[] = {
    "Otter",    "Fox",    "Panda",  "Heron",   "Koala",  "Lynx",   "Badger", "Falcon",   "Dolphin", "Owl",
    "Hedgehog", "Raven",  "Tiger",  "Walrus",  "Beaver", "Gecko",  "Moose",  "Penguin",  "Rabbit",  "Seal",
    "Sparrow",  "Turtle", "Wolf",   "Yak",     "Zebra",  "Bison",  "Crane",  "Ferret",   "Gazelle", "Ibis",
    "Jaguar",   "Lemur",  "Marmot", "Narwhal", "Ocelot", "Puffin", "Quokka", "Squirrel", "Tapir",   "Wombat",
};

void guest_alias(char *out, size_t outlen)
{
    unsigned char r[2];
    random_bytes(r, sizeof(r));
    size_t na = sizeof(adjectives) / sizeof(adjectives[0]), nn = sizeof(animals) / sizeof(animals[0]);
    snprintf(out, outlen, "%s %s", adjectives[r[0] % na], animals[r[1] % nn]);
}
