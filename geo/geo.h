/*
 * geo: where a guest is. The client address (from the socket, or from
 * X-Forwarded-For when the direct peer is a trusted proxy), a city lookup in
 * a MaxMind DB City database (libmaxminddb, MMDB_MODE_MMAP), device
 * locations rounded to about 1 km, and great-circle distances.
 *
 * A geo_db_t is read-only after geo_db_open and may be shared by all worker
 * threads without locking (libmaxminddb lookups on an mmapped file are
 * thread-safe); so may a geo_proxies_t after geo_proxies_parse. The module
 * keeps no global state. Out of memory is fatal (abort), as everywhere in
 * the project; no function here reports it.
 */
#ifndef NEARCHAT_GEO_H
#define NEARCHAT_GEO_H
#include <stddef.h>
#include <stdint.h>

typedef struct geo_db geo_db_t;
typedef struct geo_proxies geo_proxies_t;

/* Errors (0 is success). */
enum {
    GEO_ERR_OPEN = -401,      /* the database cannot be opened or is not a MaxMind DB */
    GEO_ERR_ADDRESS = -402,   /* not an IPv4 or IPv6 address */
    GEO_ERR_NOT_FOUND = -403, /* the address is not in the database */
    GEO_ERR_CIDR = -404,      /* a malformed CIDR in a proxy list */
};

/** Where a guest is; `source` is "device", "ip" or "unknown". */
typedef struct geo_place {
    uint32_t city_id; /* GeoNames id of the city, 0 when unknown */
    char city[96];    /* English city name, "" when unknown */
    char country[4];  /* ISO 3166-1 alpha-2, "" when unknown */
    int has_coords;   /* lat/lon below are meaningful */
    double lat, lon;  /* degrees; rounded to 0.01 (about 1 km) for device locations */
    const char *source;
} geo_place_t;

/** A short text for a GEO_ERR_* code; never NULL. */
const char *geo_strerror(int err);

/**
 * Opens a City database (any MaxMind DB file with the City layout:
 * GeoLite2-City, GeoIP2-City, DB-IP City Lite), memory-mapped. Returns a
 * database the caller owns and closes with geo_db_close, with `*err` 0 and
 * `why` "". Returns NULL and sets `*err` to GEO_ERR_OPEN with libmaxminddb's
 * reason in `why` when the file is missing, unreadable or not a MaxMind DB.
 * `err` and `why` may be NULL (whylen 0).
 */
geo_db_t *geo_db_open(const char *path, int *err, char *why, size_t whylen);
/**
 * Closes a database opened by geo_db_open and frees it; NULL is accepted.
 * No lookup may be running on it. Never fails.
 */
void geo_db_close(geo_db_t *db);

/**
 * Fills `out` for IPv4 or IPv6 address text `ip` (strict inet_pton forms;
 * IPv4-mapped IPv6 is looked up as IPv4). With db NULL, or an address that is
 * not found, `out` has source "unknown" and the return is GEO_ERR_NOT_FOUND
 * (or GEO_ERR_ADDRESS for text that is no address, NULL included). A found
 * address gives source "ip" and returns 0, even when the record lacks a city
 * (country only); fields missing from the record stay 0 / "". A city name
 * longer than the field is cut at a UTF-8 character boundary. `out` is always
 * overwritten and points only at static strings; nothing is allocated.
 */
int geo_lookup_ip(const geo_db_t *db, const char *ip, geo_place_t *out);

/**
 * Parses a comma-separated list of CIDRs ("10.0.0.0/8, ::1/128, 192.0.2.7")
 * (a bare address is a /32 or /128; entries are trimmed of spaces and tabs;
 * host bits after the prefix are ignored; empty entries are skipped).
 * Returns a set the caller owns and frees with geo_proxies_free, with `*err`
 * 0. Returns NULL with GEO_ERR_CIDR in `*err` and the offending entry in `why`
 * when one is malformed. An empty or NULL list gives an empty set (nothing
 * trusted). `err` and `why` may be NULL (whylen 0).
 */
geo_proxies_t *geo_proxies_parse(const char *list, int *err, char *why, size_t whylen);
/** Frees a set from geo_proxies_parse; NULL is accepted. Never fails. */
void geo_proxies_free(geo_proxies_t *p);
/**
 * 1 when `ip` (text) falls in one of the CIDRs, else 0 (also for p NULL and
 * for text that is no address). An IPv4-mapped IPv6 address
 * ("::ffff:10.0.0.1") matches the IPv4 CIDRs. Never fails.
 */
int geo_proxies_contains(const geo_proxies_t *p, const char *ip);

/**
 * The client's address: `peer` (the direct peer, text) unless it is a trusted
 * proxy, in which case X-Forwarded-For (`xff`, may be NULL) is read from the
 * right, skipping trusted hops; the first untrusted entry is the client. When
 * every entry is trusted, the leftmost is taken. Entries are trimmed of
 * spaces and tabs. Malformed entries (empty, a name, a zone) stop the walk and
 * the last good address is kept (the peer itself when the rightmost entry is
 * malformed). Writes NUL-terminated text into `out` (at least 46 bytes, the
 * caller's buffer): the peer as given, or the address of an X-Forwarded-For
 * entry without brackets or port. One header line: geo_client_ip_lines.
 * Never fails.
 */
void geo_client_ip(const geo_proxies_t *p, const char *peer, const char *xff, char *out, size_t outlen);

/** Trusted hops geo_client_ip_lines examines at most; past them, the leftmost examined is the client. */
#define GEO_XFF_MAX_HOPS 16

/**
 * geo_client_ip over every X-Forwarded-For header line of a request: `n`
 * values lines[i] of lens[i] bytes (not NUL-terminated, as h2o holds them),
 * in the order received, read as one comma-separated list from its right
 * end. Entries may also be "[v6]", "[v6]:port" or "v4:port" (the port is
 * dropped). At most GEO_XFF_MAX_HOPS entries are examined, whatever the
 * lines' length; nothing is allocated or copied but one entry. Writes the
 * peer, or the bare address of one entry, NUL-terminated and cut to `outlen`
 * (out NULL or outlen 0: nothing written). A NULL line is malformed. Never
 * fails.
 */
void geo_client_ip_lines(const geo_proxies_t *p, const char *peer, const char *const *lines, const size_t *lens,
                         size_t n, char *out, size_t outlen);

/**
 * Validates a device location (lat in [-90, 90], lon in [-180, 180], finite
 * numbers) and rounds it to 0.01 degree. Returns 0 and fills `out` (source
 * "device", has_coords 1; city and country are left as they were, so look up
 * the IP first and then apply the device location), or -1 and leaves `out`
 * untouched.
 */
int geo_apply_device(double lat, double lon, geo_place_t *out);

/**
 * Great-circle distance in km between two points given in degrees (haversine,
 * mean radius 6371.0088 km). Never fails; NaN in gives NaN out.
 */
double geo_distance_km(double lat1, double lon1, double lat2, double lon2);

/** Room for any canonical address, or CIDR, with its NUL. */
#define GEO_CANONICAL_MAX 64

/**
 * Writes the one text form of an address or CIDR, so that two spellings of
 * one address compare equal as strings (ban keys, limit keys): IPv4 dotted,
 * IPv4-mapped IPv6 as IPv4 (its prefix less 96), other IPv6 as RFC 5952
 * (lowercase, the longest zero run compressed), a CIDR's address with the
 * host bits kept as given. Returns 0, or -1 when `text` is neither (then
 * `out` is empty). `outlen` of GEO_CANONICAL_MAX always suffices.
 */
int geo_addr_canonical(const char *text, char *out, size_t outlen);

#endif
