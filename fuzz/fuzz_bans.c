/*
 * libFuzzer target for ban matching: the input is "ban\nclient". The
 * canonical form must be stable (canonical of canonical is itself), and an
 * exact ban must match a client exactly when the CIDR matcher says the
 * address is covered, whatever the spelling of either.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../geo/geo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *client = strchr(copy, '\n');
    if (client != NULL)
        *client++ = '\0';
    char ban[GEO_CANONICAL_MAX], again[GEO_CANONICAL_MAX], who[GEO_CANONICAL_MAX];
    if (geo_addr_canonical(copy, ban, sizeof(ban)) == 0) {
        if (geo_addr_canonical(ban, again, sizeof(again)) != 0 || strcmp(ban, again) != 0)
            abort();
        if (client != NULL && strchr(ban, '/') == NULL && geo_addr_canonical(client, who, sizeof(who)) == 0 &&
            strchr(who, '/') == NULL) {
            int err = 0;
            char why[64];
            geo_proxies_t *p = geo_proxies_parse(copy, &err, why, sizeof(why));
            if (p == NULL)
                abort(); /* what canonicalises must parse as a one-address list */
            if ((strcmp(ban, who) == 0) != (geo_proxies_contains(p, client) != 0))
                abort();
            geo_proxies_free(p);
        }
    } else if (ban[0] != '\0') {
        abort();
    }
    free(copy);
    return 0;
}
