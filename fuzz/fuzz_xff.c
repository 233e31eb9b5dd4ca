/*
 * libFuzzer target for the client address behind proxies: the input is cut at
 * '\n' into a TRUSTED_PROXIES list, the direct peer, and X-Forwarded-For
 * header lines (raw bytes, not NUL-terminated, as h2o holds them). The
 * first byte, when there is one, sets the output buffer's size. Whatever
 * the lines, the result must be NUL-terminated inside the buffer, and be
 * the peer or the address of one entry (text found in a line).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../geo/geo.h"

#define MAX_LINES 24

/* 1 when `needle` (NUL-terminated, not empty) occurs in hay[0..len). */
static int occurs(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t outlen = data[0] % 70; /* 0 .. 69: below, at and past an address's length */
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    /* Each field is its own allocation of exactly its length, so ASan sees a
     * read past any of them. */
    char *fields[MAX_LINES + 2];
    size_t lens[MAX_LINES + 2], n = 0, at = 0;
    while (n < MAX_LINES + 2) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t flen = nl != NULL ? (size_t)(nl - (text + at)) : len - at;
        fields[n] = malloc(flen + 1);
        memcpy(fields[n], text + at, flen);
        lens[n] = flen;
        n++;
        if (nl == NULL)
            break;
        at += flen + 1;
    }

    /* The proxy list and the peer are C strings in chatd: cut at a NUL. */
    char *list = malloc(lens[0] + 1);
    memcpy(list, fields[0], lens[0]);
    list[lens[0]] = '\0';
    char peer[64] = "";
    if (n > 1) {
        size_t plen = strnlen(fields[1], lens[1]);
        memcpy(peer, fields[1], plen < sizeof(peer) ? plen : sizeof(peer) - 1);
        peer[plen < sizeof(peer) ? plen : sizeof(peer) - 1] = '\0';
    }
    geo_proxies_t *p = geo_proxies_parse(list, NULL, NULL, 0);
    if (p == NULL)
        p = geo_proxies_parse("0.0.0.0/0, ::/0", NULL, NULL, 0); /* trust everything: the deepest walk */

    size_t nlines = n > 2 ? n - 2 : 0;
    const char *lines[MAX_LINES];
    for (size_t i = 0; i < nlines; i++) {
        /* A tail copy without the spare byte: reading past lens[i] is caught. */
        char *exact = malloc(lens[i + 2] > 0 ? lens[i + 2] : 1);
        memcpy(exact, fields[i + 2], lens[i + 2]);
        lines[i] = exact;
    }

    char out[80];
    memset(out, 'Z', sizeof(out));
    geo_client_ip_lines(p, peer, lines, lens + 2, nlines, out, outlen);
    if (outlen == 0) {
        if (out[0] != 'Z')
            abort(); /* nothing may be written */
    } else {
        size_t olen = strnlen(out, outlen);
        if (olen >= outlen)
            abort(); /* not terminated inside the buffer */
        for (size_t i = outlen; i < sizeof(out); i++) {
            if (out[i] != 'Z')
                abort(); /* written past outlen */
        }
        if (strncmp(out, peer, olen) != 0 || strlen(peer) < olen) {
            /* not the peer: the (possibly cut) address of one entry */
            int found = 0;
            for (size_t i = 0; i < nlines && !found; i++)
                found = occurs(lines[i], lens[i + 2], out);
            if (!found || !geo_proxies_contains(p, peer))
                abort();
        }
    }

    /* One line read by geo_client_ip gives the same as by the lines form. */
    if (nlines >= 1 && memchr(lines[nlines - 1], '\0', lens[nlines + 1]) == NULL) {
        char single[64], via_lines[64];
        char *last = malloc(lens[nlines + 1] + 1);
        memcpy(last, lines[nlines - 1], lens[nlines + 1]);
        last[lens[nlines + 1]] = '\0';
        geo_client_ip(p, peer, last, single, sizeof(single));
        geo_client_ip_lines(p, peer, &lines[nlines - 1], &lens[nlines + 1], 1, via_lines, sizeof(via_lines));
        if (strcmp(single, via_lines) != 0)
            abort();
        free(last);
    }

    for (size_t i = 0; i < nlines; i++)
        free((char *)lines[i]);
    for (size_t i = 0; i < n; i++)
        free(fields[i]);
    free(list);
    geo_proxies_free(p);
    return 0;
}
