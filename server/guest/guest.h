/*
 * guest: anonymous identities. A guest id is 128 random bits in base64url
 * (22 characters); a token is `v1.<guestId>.<expiresUnix>.<mac>` with mac the
 * base64url HMAC-SHA256 of `v1.<guestId>.<expiresUnix>` under the secret that
 * every node shares (protocol.md §2). Also the friendly aliases peers see.
 */
#ifndef NEARCHAT_GUEST_H
#define NEARCHAT_GUEST_H
#include <stddef.h>
#include <stdint.h>

#define GUEST_ID_LEN 22
#define GUEST_TOKEN_MAX 128
#define GUEST_SECRET_MIN 32

enum {
    GUEST_ERR_MALFORMED = -601, /* not a v1 token */
    GUEST_ERR_MAC = -602,       /* signed with another secret, or altered */
    GUEST_ERR_EXPIRED = -603,   /* past its expiry */
    GUEST_ERR_SECRET = -604,    /* the secret file is unusable */
};

typedef struct guest_secret {
    unsigned char key[256];
    size_t len;
} guest_secret_t;

/** A short text for a GUEST_ERR_* code; never NULL. */
const char *guest_strerror(int err);

/**
 * Reads the secret from `path` (surrounding white space ignored; at least
 * GUEST_SECRET_MIN bytes). When the file does not exist it is created with
 * 48 random bytes in hex (mode 0600) and `*created` is set, so that the
 * caller can warn. Returns 0, or GUEST_ERR_SECRET with a reason in `err`.
 */
int guest_secret_load(const char *path, guest_secret_t *out, int *created, char *err, size_t errlen);

/** Writes a new random guest id (GUEST_ID_LEN chars and a NUL) into `out`. Never fails. */
void guest_new_id(char out[GUEST_ID_LEN + 1]);

/** Writes the token of `guest_id` expiring at `expires_unix` into `out` (GUEST_TOKEN_MAX bytes). Never fails. */
void guest_token_make(const guest_secret_t *s, const char *guest_id, int64_t expires_unix, char out[GUEST_TOKEN_MAX]);

/**
 * Checks a token at time `now_unix`. Returns 0 and fills `guest_id` and
 * `*expires_unix`, or a GUEST_ERR_* code (then the outputs are untouched).
 * The MAC is compared in constant time. Any input, however long or odd, is safe.
 */
int guest_token_verify(const guest_secret_t *s, const char *token, int64_t now_unix, char guest_id[GUEST_ID_LEN + 1],
                       int64_t *expires_unix);

/** 1 when `id` looks like a guest id (22 base64url characters). */
int guest_id_valid(const char *id);

/** Writes a random friendly alias ("Quiet Otter") into `out`. Never fails. */
void guest_alias(char *out, size_t outlen);

#endif
