/*
 * geo: client addresses, City lookups in a MaxMind DB, device locations and
 * distances.
 *
 * Addresses are compared as 16-byte IPv6 addresses; IPv4 is held in its
 * IPv4-mapped form (::ffff:a.b.c.d) and an IPv4 CIDR a.b.c.d/n becomes
 * ::ffff:a.b.c.d/(96+n). One comparison then serves both families, and a
 * peer that a dual-stack socket reports as ::ffff:10.0.0.1 matches 10.0.0.0/8.
 *
 * Out-of-memory policy (whole project): allocation failure is fatal.
 * Nothing here keeps global mutable state; a geo_db_t and a geo_proxies_t are
 * read-only once built and may be shared between threads.
 */
#include "geo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <maxminddb.h>

#define GEO_EARTH_RADIUS_KM 6371.0088
#define GEO_DEG_TO_RAD (3.14159265358979323846 / 180.0)
/* Longest address text we accept, with room to spare: inet_pton's longest
 * IPv6 form ("0000:...:ffff:255.255.255.255") is 45 characters. */
#define GEO_ADDR_TEXT_MAX 64

struct geo_db {
    MMDB_s mmdb;
};

typedef struct geo_cidr {
    unsigned char addr[16]; /* network, host bits cleared */
    unsigned prefix;        /* 0..128, counted on the 16-byte form */
} geo_cidr_t;

struct geo_proxies {
    size_t count;
    geo_cidr_t cidrs[];
};

/* calloc that never returns NULL: out of memory is fatal by policy. */
static void *geo_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fputs("geo: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Writes a formatted reason into `why` when the caller gave room for one. */
__attribute__((format(printf, 3, 4))) static void geo_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static int geo_is_space(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Copies s[0..len) without surrounding spaces and tabs into `dst` (dstlen
 * bytes) as a NUL-terminated string. Returns -1, leaving `dst` empty, when
 * the trimmed text does not fit.
 */
static int geo_trim_copy(const char *s, size_t len, char *dst, size_t dstlen)
{
    while (len > 0 && geo_is_space(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && geo_is_space(s[len - 1]))
        len--;
    if (len >= dstlen) {
        dst[0] = '\0';
        return -1;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/*
 * Parses IPv4 or IPv6 text (no spaces, no zone, no port) into the 16-byte
 * form, IPv4 as ::ffff:a.b.c.d. Sets `*is_v4`. Returns 0, or -1 when the text
 * is no address (inet_pton rejects the shorthand forms inet_aton accepts,
 * such as "10.1").
 */
static int geo_parse_addr(const char *text, unsigned char addr[16], int *is_v4)
{
    struct in_addr v4;

    if (text == NULL)
        return -1;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memset(addr, 0, 10);
        addr[10] = 0xff;
        addr[11] = 0xff;
        memcpy(addr + 12, &v4, 4);
        *is_v4 = 1;
        return 0;
    }
    if (inet_pton(AF_INET6, text, addr) == 1) {
        *is_v4 = 0;
        return 0;
    }
    return -1;
}

/* 1 when the first `prefix` bits of `a` and `b` agree. */
static int geo_prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

const char *geo_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case GEO_ERR_OPEN:
        return "cannot open the geolocation database";
    case GEO_ERR_ADDRESS:
        return "not an IPv4 or IPv6 address";
    case GEO_ERR_NOT_FOUND:
        return "address not in the geolocation database";
    case GEO_ERR_CIDR:
        return "malformed CIDR";
    default:
        return "unknown geo error";
    }
}

geo_db_t *geo_db_open(const char *path, int *err, char *why, size_t whylen)
{
    geo_db_t *db = geo_xcalloc(1, sizeof(*db));
    int status;

    if (path == NULL || path[0] == '\0') {
        geo_why(why, whylen, "no database path");
        goto error;
    }
    status = MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb);
    if (status != MMDB_SUCCESS) {
        /* For these two, libmaxminddb leaves the system's reason in errno. */
        int saved_errno = errno;
        if (status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR)
            geo_why(why, whylen, "%s: %s (%s)", path, MMDB_strerror(status), strerror(saved_errno));
        else
            geo_why(why, whylen, "%s: %s", path, MMDB_strerror(status));
        goto error;
    }
    if (err != NULL)
        *err = 0;
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    return db;

error:
    /* MMDB_open cleans up after itself when it fails. */
    free(db);
    if (err != NULL)
        *err = GEO_ERR_OPEN;
    return NULL;
}

void geo_db_close(geo_db_t *db)
{
    if (db == NULL)
        return;
    MMDB_close(&db->mmdb);
    free(db);
}

/* Clears `out` to an unknown place. */
static void geo_place_unknown(geo_place_t *out)
{
    memset(out, 0, sizeof(*out));
    out->source = "unknown";
}

/*
 * Looks up a path (NULL-terminated) under `entry`. Returns 1 and fills
 * `data` when the value is there, 0 when it is absent or the data is corrupt.
 */
static int geo_value(MMDB_entry_s *entry, MMDB_entry_data_s *data, const char *const *path)
{
    int status = MMDB_aget_value(entry, data, path);
    return status == MMDB_SUCCESS && data->has_data;
}

/* Reads a double or float; returns 1 and sets `*v`, or 0. */
static int geo_value_double(MMDB_entry_s *entry, const char *const *path, double *v)
{
    MMDB_entry_data_s data;

    if (!geo_value(entry, &data, path))
        return 0;
    if (data.type == MMDB_DATA_TYPE_DOUBLE)
        *v = data.double_value;
    else if (data.type == MMDB_DATA_TYPE_FLOAT)
        *v = data.float_value;
    else
        return 0;
    return isfinite(*v);
}

/*
 * Copies a UTF-8 string value into `dst` (dstlen bytes, NUL-terminated).
 * A value too long is cut at a character boundary when `cut` is set, and
 * refused (dst left "", returns 0) otherwise. Values with an embedded NUL
 * are refused.
 */
static int geo_value_string(MMDB_entry_s *entry, const char *const *path, char *dst, size_t dstlen, int cut)
{
    MMDB_entry_data_s data;
    size_t len;

    if (!geo_value(entry, &data, path) || data.type != MMDB_DATA_TYPE_UTF8_STRING)
        return 0;
    len = data.data_size;
    if (memchr(data.utf8_string, '\0', len) != NULL)
        return 0;
    if (len >= dstlen) {
        if (!cut)
            return 0;
        len = dstlen - 1;
        /* Back off over continuation bytes so no character is split. */
        while (len > 0 && ((unsigned char)data.utf8_string[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(dst, data.utf8_string, len);
    dst[len] = '\0';
    return 1;
}

int geo_lookup_ip(const geo_db_t *db, const char *ip, geo_place_t *out)
{
    static const char *const city_id_path[] = {"city", "geoname_id", NULL};
    static const char *const city_name_path[] = {"city", "names", "en", NULL};
    static const char *const country_path[] = {"country", "iso_code", NULL};
    static const char *const lat_path[] = {"location", "latitude", NULL};
    static const char *const lon_path[] = {"location", "longitude", NULL};
    unsigned char addr[16];
    int is_v4, gai_error = 0, mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s res;
    MMDB_entry_data_s data;
    double lat, lon;

    geo_place_unknown(out);
    /* Validate first: getaddrinfo, under MMDB_lookup_string, also takes
     * forms such as "10.1" that are no address in a header or a socket. */
    if (geo_parse_addr(ip, addr, &is_v4) != 0)
        return GEO_ERR_ADDRESS;
    if (db == NULL)
        return GEO_ERR_NOT_FOUND;

    res = MMDB_lookup_string(&db->mmdb, ip, &gai_error, &mmdb_error);
    if (gai_error != 0)
        return GEO_ERR_ADDRESS;
    /* An IPv6 address in an IPv4-only database is simply not there. */
    if (mmdb_error != MMDB_SUCCESS || !res.found_entry)
        return GEO_ERR_NOT_FOUND;

    out->source = "ip";
    if (geo_value(&res.entry, &data, city_id_path)) {
        if (data.type == MMDB_DATA_TYPE_UINT32)
            out->city_id = data.uint32;
        else if (data.type == MMDB_DATA_TYPE_UINT16)
            out->city_id = data.uint16;
    }
    geo_value_string(&res.entry, city_name_path, out->city, sizeof(out->city), 1);
    geo_value_string(&res.entry, country_path, out->country, sizeof(out->country), 0);
    if (geo_value_double(&res.entry, lat_path, &lat) && geo_value_double(&res.entry, lon_path, &lon) &&
        fabs(lat) <= 90.0 && fabs(lon) <= 180.0) {
        out->has_coords = 1;
        out->lat = lat;
        out->lon = lon;
    }
    return 0;
}

/*
 * Parses one trimmed, non-empty CIDR or bare address. Returns 0 and fills
 * `c`, or -1.
 */
static int geo_parse_cidr(const char *text, geo_cidr_t *c)
{
    char addr_text[GEO_ADDR_TEXT_MAX];
    const char *slash = strchr(text, '/');
    size_t addr_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
    unsigned prefix, max;
    int is_v4;

    if (addr_len == 0 || addr_len >= sizeof(addr_text))
        return -1;
    memcpy(addr_text, text, addr_len);
    addr_text[addr_len] = '\0';
    if (geo_parse_addr(addr_text, c->addr, &is_v4) != 0)
        return -1;
    max = is_v4 ? 32 : 128;
    if (slash == NULL) {
        prefix = max;
    } else {
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        /* Plain decimal only: no sign, no spaces, no leading zeros. */
        if (digits == 0 || digits > 3 || p[digits] != '\0' || (p[0] == '0' && digits > 1))
            return -1;
        prefix = (unsigned)strtoul(p, NULL, 10);
        if (prefix > max)
            return -1;
    }
    c->prefix = is_v4 ? prefix + 96 : prefix;
    /* Host bits are allowed ("10.0.0.1/8", as nginx's set_real_ip_from
     * does) and cleared here. */
    for (unsigned bit = c->prefix; bit < 128; bit++)
        c->addr[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
    return 0;
}

geo_proxies_t *geo_proxies_parse(const char *list, int *err, char *why, size_t whylen)
{
    size_t n = 1;
    geo_proxies_t *p;
    const char *s = list != NULL ? list : "";

    for (const char *c = s; *c != '\0'; c++)
        n += *c == ',';
    p = geo_xcalloc(1, sizeof(*p) + n * sizeof(p->cidrs[0]));

    while (1) {
        const char *end = strchr(s, ',');
        size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
        char entry[GEO_ADDR_TEXT_MAX + 8];

        if (geo_trim_copy(s, len, entry, sizeof(entry)) != 0) {
            /* Too long to be a CIDR; report its start. */
            geo_why(why, whylen, "malformed CIDR \"%.40s...\"", s);
            goto error;
        }
        /* Empty entries ("a,,b", a trailing comma, a blank list) are skipped. */
        if (entry[0] != '\0') {
            if (geo_parse_cidr(entry, &p->cidrs[p->count]) != 0) {
                geo_why(why, whylen, "malformed CIDR \"%s\"", entry);
                goto error;
            }
            p->count++;
        }
        if (end == NULL)
            break;
        s = end + 1;
    }
    if (err != NULL)
        *err = 0;
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    return p;

error:
    free(p);
    if (err != NULL)
        *err = GEO_ERR_CIDR;
    return NULL;
}

void geo_proxies_free(geo_proxies_t *p)
{
    free(p);
}

/* Like geo_proxies_contains, on an address already parsed. */
static int geo_proxies_contains_addr(const geo_proxies_t *p, const unsigned char addr[16])
{
    if (p == NULL)
        return 0;
    for (size_t i = 0; i < p->count; i++) {
        if (geo_prefix_equal(p->cidrs[i].addr, addr, p->cidrs[i].prefix))
            return 1;
    }
    return 0;
}

int geo_proxies_contains(const geo_proxies_t *p, const char *ip)
{
    unsigned char addr[16];
    int is_v4;

    if (geo_parse_addr(ip, addr, &is_v4) != 0)
        return 0;
    return geo_proxies_contains_addr(p, addr);
}

void geo_client_ip(const geo_proxies_t *p, const char *peer, const char *xff, char *out, size_t outlen)
{
    const char *lines[1] = {xff};
    size_t lens[1] = {xff != NULL ? strlen(xff) : 0};

    geo_client_ip_lines(p, peer, lines, lens, xff != NULL ? 1 : 0, out, outlen);
}

/* 1 when s[0..len) holds nothing but spaces and tabs. */
static int geo_is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!geo_is_space(s[i]))
            return 0;
    return 1;
}

/* 1 when s[0..len) is a port: 1 to 5 digits, at most 65535. */
static int geo_is_port(const char *s, size_t len)
{
    unsigned long v = 0;

    if (len == 0 || len > 5)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v <= 65535;
}

/*
 * Parses one X-Forwarded-For entry, s[0..len) (not NUL-terminated): spaces
 * and tabs around it are dropped; it is an address, "[v6]", "[v6]:port" or
 * "v4:port". Writes the bare address text into `dst` and its 16-byte form into
 * `addr`. Returns 0, or -1 when the entry is anything else (empty, a name, a
 * zone, too long), with `dst` undefined. Never allocates.
 */
static int geo_xff_entry(const char *s, size_t len, char dst[GEO_ADDR_TEXT_MAX], unsigned char addr[16])
{
    size_t colons = 0;
    int is_v4, want_v4 = -1;

    while (len > 0 && geo_is_space(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && geo_is_space(s[len - 1]))
        len--;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        size_t after;

        if (close == NULL)
            return -1;
        after = len - (size_t)(close - s) - 1;
        if (after > 0 && (close[1] != ':' || !geo_is_port(close + 2, after - 1)))
            return -1;
        s++;
        len = (size_t)(close - s);
        want_v4 = 0;
    } else {
        for (size_t i = 0; i < len; i++)
            colons += s[i] == ':';
        if (colons == 1) { /* only "v4:port" has one colon; IPv6 has two or more */
            const char *colon = memchr(s, ':', len);
            size_t host = (size_t)(colon - s);

            if (!geo_is_port(colon + 1, len - host - 1))
                return -1;
            len = host;
            want_v4 = 1;
        }
    }
    if (len == 0 || len >= GEO_ADDR_TEXT_MAX || memchr(s, '\0', len) != NULL)
        return -1; /* a NUL would let "1.2.3.4\0junk" pass as its prefix */
    memcpy(dst, s, len);
    dst[len] = '\0';
    if (geo_parse_addr(dst, addr, &is_v4) != 0 || (want_v4 >= 0 && is_v4 != want_v4))
        return -1;
    return 0;
}

void geo_client_ip_lines(const geo_proxies_t *p, const char *peer, const char *const *lines, const size_t *lens,
                         size_t n, char *out, size_t outlen)
{
    char best[GEO_ADDR_TEXT_MAX];
    unsigned hops = 0;

    if (out == NULL || outlen == 0)
        return;
    snprintf(out, outlen, "%s", peer != NULL ? peer : "");
    if (!geo_proxies_contains(p, peer) || lines == NULL || lens == NULL)
        return;

    /* The lines are one list (RFC 7230 3.2.2), walked from its right end: each
     * hop appended the address it saw. Nothing is copied but one entry at a
     * time, so a padded client line costs a scan and cannot push a proxy's
     * entry out of view; the walk stops after GEO_XFF_MAX_HOPS entries. */
    best[0] = '\0';
    for (size_t li = n; li-- > 0;) {
        const char *base = lines[li];
        const char *end = base != NULL ? base + lens[li] : NULL;

        if (base == NULL)
            goto done; /* an absent line is malformed too */
        while (1) {
            const char *start = end;
            char entry[GEO_ADDR_TEXT_MAX];
            unsigned char addr[16];

            while (start > base && start[-1] != ',')
                start--;
            if (!geo_is_blank(start, (size_t)(end - start))) { /* an empty element is none (RFC 7230 7) */
                if (geo_xff_entry(start, (size_t)(end - start), entry, addr) != 0)
                    goto done; /* malformed: keep the last good address */
                memcpy(best, entry, strlen(entry) + 1);
                if (!geo_proxies_contains_addr(p, addr) || ++hops >= GEO_XFF_MAX_HOPS)
                    goto done; /* the first untrusted hop is the client */
            }
            if (start == base)
                break; /* on to the line before */
            end = start - 1;
        }
    }
done:
    /* All trusted (or the bound reached): the leftmost seen is all we know. */
    if (best[0] != '\0')
        snprintf(out, outlen, "%s", best);
}

int geo_apply_device(double lat, double lon, geo_place_t *out)
{
    if (out == NULL || !isfinite(lat) || !isfinite(lon) || lat < -90.0 || lat > 90.0 || lon < -180.0 || lon > 180.0)
        return -1;
    /* Adding 0.0 turns the -0.0 that rounding small negatives gives into 0. */
    out->lat = round(lat * 100.0) / 100.0 + 0.0;
    out->lon = round(lon * 100.0) / 100.0 + 0.0;
    out->has_coords = 1;
    out->source = "device";
    return 0;
}

double geo_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    double phi1 = lat1 * GEO_DEG_TO_RAD, phi2 = lat2 * GEO_DEG_TO_RAD;
    double dphi = (lat2 - lat1) * GEO_DEG_TO_RAD, dlambda = (lon2 - lon1) * GEO_DEG_TO_RAD;
    double s1 = sin(dphi / 2.0), s2 = sin(dlambda / 2.0);
    double a = s1 * s1 + cos(phi1) * cos(phi2) * s2 * s2;

    /* Rounding can push `a` a hair outside [0, 1] near the antipodes. */
    if (a > 1.0)
        a = 1.0;
    if (a < 0.0)
        a = 0.0;
    return 2.0 * GEO_EARTH_RADIUS_KM * atan2(sqrt(a), sqrt(1.0 - a));
}

int geo_addr_canonical(const char *text, char *out, size_t outlen)
{
    char addr_text[GEO_ADDR_TEXT_MAX], buf[INET6_ADDRSTRLEN + 8];
    unsigned char addr[16];
    int is_v4;

    if (out == NULL || outlen == 0)
        return -1;
    out[0] = '\0';
    if (text == NULL)
        return -1;
    const char *slash = strchr(text, '/');
    size_t addr_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
    if (addr_len == 0 || addr_len >= sizeof(addr_text))
        return -1;
    memcpy(addr_text, text, addr_len);
    addr_text[addr_len] = '\0';
    if (geo_parse_addr(addr_text, addr, &is_v4) != 0)
        return -1;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int as_v4 = memcmp(addr, mapped, sizeof(mapped)) == 0;
    long prefix = -1;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0' || (p[0] == '0' && digits > 1))
            return -1;
        prefix = strtol(p, NULL, 10);
        if (prefix > (is_v4 ? 32 : 128))
            return -1;
        if (!is_v4 && as_v4) {
            if (prefix < 96)
                as_v4 = 0; /* wider than the mapped range: it stays IPv6 */
            else
                prefix -= 96;
        }
    }
    if (inet_ntop(as_v4 ? AF_INET : AF_INET6, as_v4 ? (const void *)(addr + 12) : (const void *)addr, buf,
                  sizeof(buf)) == NULL)
        return -1;
    int n = prefix >= 0 ? snprintf(out, outlen, "%s/%ld", buf, prefix) : snprintf(out, outlen, "%s", buf);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
