/*
 * keys: the names of nearchat's Redis keys, from keys.def (which the Lua
 * scripts' prelude is generated from too). Every key shares the hash tag
 * {nc}, so that every script finds all its keys in one slot.
 */
#ifndef NEARCHAT_KEYS_H
#define NEARCHAT_KEYS_H

#include <stddef.h>

#define KEYS_TAG "{nc}:"
/* the longest id a key takes: a worker channel, an IPv6 address */
#define KEYS_ID_MAX 200

typedef enum keys_family {
#define KEY(name, lua, suffix, what) KEYS_##name,
#include "keys.def"
#undef KEY
    KEYS_FAMILIES
} keys_family_t;

/** A key's name, NUL-terminated; "" when the id does not fit (never, for ids of ours). */
typedef struct keys_name {
    char s[sizeof(KEYS_TAG) + 16 + KEYS_ID_MAX];
} keys_name_t;

/** The key of family `f` for `id` ("" or NULL for the keys that take none). */
keys_name_t keys_name(keys_family_t f, const char *id);

#endif
