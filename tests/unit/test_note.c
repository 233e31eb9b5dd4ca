/* note: the notes between workers, parsed and encoded by kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "note/note.h"

#define G "AAAAAAAAAAAAAAAAAAAAAA"
#define SID "BBBBBBBBBBBBBBBBBBBBBB"

static note_t parsed(const char *json)
{
    note_t n;
    assert_int_equal(note_parse(json, strlen(json), &n), 0);
    return n;
}

static void test_reads_what_the_scripts_write(void **state)
{
    (void)state;
    /* cjson writes whole numbers past 1e14 in exponent form */
    note_t n = parsed("{\"t\":\"session\",\"g\":\"" G "\",\"sid\":\"" SID
                      "\",\"alias\":\"Blue Fox\",\"city\":\"Paris\",\"cc\":\"FR\",\"d\":18,\"started\":1.7e+12}");
    assert_int_equal(n.kind, NOTE_SESSION);
    assert_string_equal(n.g, G);
    assert_string_equal(n.u.session.city, "Paris");
    assert_true(n.u.session.has_distance);
    assert_true(n.u.session.distance_km == 18.0);
    assert_int_equal(n.u.session.started, 1700000000000LL);
    /* absent and null optional fields are empty */
    n = parsed("{\"t\":\"proposal\",\"g\":\"" G "\",\"pid\":\"p\",\"d\":null,\"ms\":15000}");
    assert_int_equal(n.kind, NOTE_PROPOSAL);
    assert_false(n.u.proposal.has_distance);
    assert_string_equal(n.u.proposal.city, "");
    assert_int_equal(n.u.proposal.ms, 15000);
    n = parsed("{\"t\":\"peer\",\"g\":\"" G "\",\"sid\":\"" SID "\",\"online\":false}");
    assert_int_equal(n.kind, NOTE_PEER);
    assert_false(n.u.peer.online);
}

static void test_round_trip_of_a_message(void **state)
{
    (void)state;
    note_t *m = note_new(NOTE_MSG, G);
    strcpy(m->u.msg.sid, SID);
    strcpy(m->u.msg.id, "m 1");
    strcpy(m->u.msg.sender, G);
    strcpy(m->u.msg.from, "nc:w:n0.abcdefgh:1");
    m->u.msg.seq = 7;
    m->u.msg.ts = 1700000000123LL;
    m->u.msg.text = strdup("quote \" and | bar");
    char *json = note_encode(m);
    assert_non_null(json);
    note_t n = parsed(json);
    assert_int_equal(n.kind, NOTE_MSG);
    assert_string_equal(n.u.msg.sid, SID);
    assert_string_equal(n.u.msg.id, "m 1");
    assert_string_equal(n.u.msg.from, "nc:w:n0.abcdefgh:1");
    assert_int_equal(n.u.msg.seq, 7);
    assert_int_equal(n.u.msg.ts, 1700000000123LL);
    assert_string_equal(n.u.msg.text, "quote \" and | bar");
    note_clear(&n);
    assert_null(n.u.msg.text);
    free(json);
    note_free(m);
}

static void test_refuses_what_is_not_a_note(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "{\"t\":\"msg\"}",                                                        /* no guest */
        "{\"t\":\"nope\",\"g\":\"" G "\"}",                                       /* unknown kind */
        "{\"t\":\"typing\",\"g\":\"" G "\",\"sid\":\"" SID "\"}",                 /* a required field missing */
        "{\"t\":\"typing\",\"g\":\"" G "\",\"sid\":\"" SID "\",\"typing\":1}",    /* of the wrong type */
        "{\"t\":\"read\",\"g\":\"" G "\",\"sid\":\"" SID "\",\"upToSeq\":1.5}",   /* not whole */
        "{\"t\":\"read\",\"g\":\"" G "\",\"sid\":\"" SID "\",\"upToSeq\":1e300}", /* out of range */
        "{\"t\":\"left\",\"g\":\"" G "\",\"sid\":\"" SID "\",\"reason\":\"a reason far too long for it\"}",
        "{\"t\":\"queued\",\"g\":\"" G "A\",\"sid\":\"" SID "\"}",               /* an id past its room */
        "{\"t\":\"queued\",\"g\":\"a\\u0000b\",\"sid\":\"" SID "\"}",            /* a NUL inside */
        "{\"t\":\"queued\",\"t\":\"left\",\"g\":\"" G "\",\"sid\":\"" SID "\"}", /* duplicate keys */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        note_t n;
        assert_int_equal(note_parse(bad[i], strlen(bad[i]), &n), -1);
        assert_int_equal(n.kind, NOTE_NONE);
    }
    /* a msg whose text was read before a later field failed leaks nothing (ASan) */
    const char *late =
        "{\"t\":\"msg\",\"g\":\"" G "\",\"text\":\"x\",\"sid\":\"" SID "\",\"id\":\"i\",\"sender\":\"s\"}";
    note_t n;
    assert_int_equal(note_parse(late, strlen(late), &n), -1);
}

static void test_every_kind_has_a_name(void **state)
{
    (void)state;
    for (int k = NOTE_NONE + 1; k < NOTE_KINDS; k++)
        assert_non_null(note_kind_name((note_kind_t)k));
    assert_null(note_kind_name(NOTE_NONE));
    assert_null(note_kind_name(NOTE_KINDS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_what_the_scripts_write),
        cmocka_unit_test(test_round_trip_of_a_message),
        cmocka_unit_test(test_refuses_what_is_not_a_note),
        cmocka_unit_test(test_every_kind_has_a_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
