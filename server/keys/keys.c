#include "keys.h"

#include <stdio.h>

static const char *const suffixes[KEYS_FAMILIES] = {
#define KEY(name, lua, suffix, what) [KEYS_##name] = suffix,
#include "keys.def"
#undef KEY
};

keys_name_t keys_name(keys_family_t f, const char *id)
{
    keys_name_t k;
    int n = snprintf(k.s, sizeof(k.s), "%s%s%s", KEYS_TAG, suffixes[f], id != NULL ? id : "");
    if (n < 0 || (size_t)n >= sizeof(k.s))
        k.s[0] = '\0';
    return k;
}
