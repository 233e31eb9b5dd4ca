/*
 * libFuzzer target for the notes between workers: any bytes published on a
 * worker's channel are parsed; a note that parses encodes to JSON that
 * parses again to the same note.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "note/note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    note_t n, again;
    if (note_parse((const char *)data, size, &n) != 0)
        return 0;
    char *json = note_encode(&n);
    if (json == NULL || note_parse(json, strlen(json), &again) != 0 || again.kind != n.kind ||
        strcmp(again.g, n.g) != 0)
        abort();
    if (n.kind == NOTE_MSG && strcmp(n.u.msg.text, again.u.msg.text) != 0)
        abort();
    free(json);
    note_clear(&n);
    note_clear(&again);
    return 0;
}
