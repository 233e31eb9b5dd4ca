/*
 * json: in-place JSON skimming (see json.h for why not a parser).
 */
#include "json.h"

#include <string.h>

static const char *js_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* `p` at the opening quote; returns the position after the closing one. */
static const char *js_skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++; /* whatever is escaped, it does not end the string */
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static int js_is_delim(char c)
{
    return c == ',' || c == ']' || c == '}' || c == ':' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *js_skip(const char *p, const char *end)
{
    p = js_ws(p, end);
    if (p >= end)
        return NULL;
    if (*p == '"')
        return js_skip_string(p, end);
    if (*p == '{' || *p == '[') {
        /* nesting is counted across both kinds: the encoder balanced them */
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = js_skip_string(p, end);
                if (p == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *start = p; /* a number, true, false or null */
    while (p < end && !js_is_delim(*p))
        p++;
    return p > start ? p : NULL;
}

/*
 * After a member or element at `p`: returns the start of the next one (past
 * the comma), or NULL at the end of the container or on anything else.
 */
static const char *js_next(const char *p, const char *end)
{
    p = js_ws(p, end);
    return p < end && *p == ',' ? p + 1 : NULL;
}

int js_index(const char *p, const char *end, size_t idx, const char **v, const char **vend)
{
    p = js_ws(p, end);
    if (p >= end || *p != '[')
        return -1;
    p = js_ws(p + 1, end);
    if (p < end && *p == ']')
        return -1;
    for (size_t i = 0;; i++) {
        const char *start = js_ws(p, end);
        const char *stop = js_skip(start, end);
        if (stop == NULL)
            return -1;
        if (i == idx) {
            *v = start;
            *vend = stop;
            return 0;
        }
        p = js_next(stop, end);
        if (p == NULL)
            return -1;
    }
}

int js_member(const char *p, const char *end, const char *key, const char **v, const char **vend)
{
    size_t klen = strlen(key);
    p = js_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p = js_ws(p + 1, end);
    if (p < end && *p == '}')
        return -1;
    for (;;) {
        const char *k = js_ws(p, end);
        if (k >= end || *k != '"')
            return -1;
        const char *kend = js_skip_string(k, end);
        if (kend == NULL)
            return -1;
        const char *colon = js_ws(kend, end);
        if (colon >= end || *colon != ':')
            return -1;
        const char *start = js_ws(colon + 1, end);
        const char *stop = js_skip(start, end);
        if (stop == NULL)
            return -1;
        if ((size_t)(kend - k) == klen + 2 && memcmp(k + 1, key, klen) == 0) {
            *v = start;
            *vend = stop;
            return 0;
        }
        p = js_next(stop, end);
        if (p == NULL)
            return -1;
    }
}

static int js_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long js_string(const char *v, const char *vend, char *out, size_t cap)
{
    size_t n = 0;
    if (vend - v < 2 || *v != '"' || vend[-1] != '"' || cap == 0)
        return -1;
    for (const char *p = v + 1; p < vend - 1; p++) {
        char c = *p;
        if (c == '\\') {
            if (++p >= vend - 1)
                return -1;
            switch (*p) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                int cp = 0;
                for (int i = 1; i <= 4; i++) {
                    int h = p + i < vend - 1 ? js_hex(p[i]) : -1;
                    if (h < 0)
                        return -1;
                    cp = cp << 4 | h;
                }
                p += 4;
                c = cp < 0x80 ? (char)cp : '?';
                break;
            }
            default: /* \" \\ \/ stand for themselves */
                c = *p;
            }
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return (long)n;
}

int js_is_true(const char *v, const char *vend)
{
    return vend - v == 4 && memcmp(v, "true", 4) == 0;
}
