/*
 * libFuzzer target for the untrusted text a CONNECT brings besides packets:
 * tokens, X-Forwarded-For headers and proxy lists. None may crash, read out
 * of bounds, or accept a token that was not made with the secret.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../geo/geo.h"
#include "guest/guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    guest_secret_t secret = {.len = 32};
    memset(secret.key, 'k', secret.len);
    char id[GUEST_ID_LEN + 1];
    int64_t exp;
    if (guest_token_verify(&secret, text, 0, id, &exp) == 0) {
        /* accepted: it must be exactly the token the secret makes */
        char again[GUEST_TOKEN_MAX];
        guest_token_make(&secret, id, exp, again);
        if (strcmp(again, text) != 0)
            abort();
    }

    int err = 0;
    char why[128], out[64];
    geo_proxies_t *p = geo_proxies_parse(text, &err, why, sizeof(why));
    geo_proxies_t *trusted = geo_proxies_parse("127.0.0.0/8, ::1, 10.0.0.0/8", &err, why, sizeof(why));
    geo_client_ip(trusted, "127.0.0.1", text, out, sizeof(out));
    if (strlen(out) >= sizeof(out))
        abort();
    if (p != NULL) {
        geo_proxies_contains(p, "10.1.2.3");
        geo_proxies_contains(p, "2001:db8::1");
        geo_client_ip(p, "10.1.2.3", "192.0.2.1, 10.9.9.9", out, sizeof(out));
    }
    geo_proxies_free(p);
    geo_proxies_free(trusted);
    free(text);
    return 0;
}
