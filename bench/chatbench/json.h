/*
 * json: reads values out of JSON text in place, without building a tree, so
 * that handling a message costs no allocation. It walks the structure (the
 * strings, escapes and nesting) rather than searching for substrings, so a
 * chat text that happens to contain `"id":` cannot fool it. It trusts that
 * the text came from a JSON encoder: it finds values, it does not validate.
 */
#ifndef CHATBENCH_JSON_H
#define CHATBENCH_JSON_H

#include <stddef.h>
#include <stdint.h>

/**
 * Returns the end of the value that starts at `p` (leading whitespace
 * allowed), or NULL when it is cut short or is not a value.
 */
const char *js_skip(const char *p, const char *end);

/**
 * Finds element `idx` of the array at `p`: sets [*v, *vend) to it and
 * returns 0, or returns -1 (not an array, too short, malformed).
 */
int js_index(const char *p, const char *end, size_t idx, const char **v, const char **vend);

/**
 * Finds member `key` of the object at `p`: sets [*v, *vend) to its value
 * and returns 0, or returns -1. Keys are compared as written, escapes
 * included, which is exact for the plain ASCII keys of the protocol.
 */
int js_member(const char *p, const char *end, const char *key, const char **v, const char **vend);

/**
 * Decodes the string value [v, vend) into `out` (NUL-terminated). Returns
 * its length, or -1 when it is not a string or does not fit in `cap`.
 * \u escapes outside ASCII become '?': the protocol's ids are ASCII.
 */
long js_string(const char *v, const char *vend, char *out, size_t cap);

/** Whether [v, vend) is the literal true. */
int js_is_true(const char *v, const char *vend);

#endif
