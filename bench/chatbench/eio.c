/*
 * eio: the client's Engine.IO and Socket.IO codec (see eio.h). Socket.IO
 * layout: <type>[/<nsp>,][<ack id>][<JSON>].
 */
#include "eio.h"

#include <string.h>

/* Largest ack id a JavaScript peer can hold exactly (2^53 - 1). */
#define EIO_ACK_MAX 9007199254740991LL

static const char *const eio_nsp_names[] = {"/", "/match", "/chat", "?"};

const char *eio_nsp_name(eio_nsp_t nsp)
{
    return eio_nsp_names[nsp];
}

static eio_nsp_t eio_nsp_of(const char *s, size_t len)
{
    if (len == 6 && memcmp(s, "/match", 6) == 0)
        return EIO_NSP_MATCH;
    if (len == 5 && memcmp(s, "/chat", 5) == 0)
        return EIO_NSP_CHAT;
    if (len == 1 && s[0] == '/')
        return EIO_NSP_ROOT;
    return EIO_NSP_OTHER;
}

int eio_parse(const char *s, size_t len, eio_pkt_t *p)
{
    const char *end = s + len;
    p->sio = -1;
    p->nsp = EIO_NSP_ROOT;
    p->ack = -1;
    p->data = p->end = end;
    if (len == 0 || s[0] < EIO_OPEN || s[0] > EIO_NOOP)
        return -1;
    p->eio = s[0];
    s++;
    if (p->eio != EIO_MESSAGE) {
        p->data = s;
        return 0;
    }
    if (s >= end || *s < '0' || *s > '4')
        return -1; /* 5 and 6 are the binary types */
    p->sio = *s++ - '0';
    if (s < end && *s == '/') {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *nsp_end = comma != NULL ? comma : end;
        p->nsp = eio_nsp_of(s, (size_t)(nsp_end - s));
        s = comma != NULL ? comma + 1 : end;
    }
    if (s < end && *s >= '0' && *s <= '9') {
        int64_t id = 0;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
            id = id * 10 + (*s - '0');
            if (id > EIO_ACK_MAX)
                return -1;
        }
        p->ack = id;
    }
    p->data = s;
    return 0;
}

void eio_header(buf_t *out, int sio_type, eio_nsp_t nsp, int64_t ack)
{
    buf_append_char(out, EIO_MESSAGE);
    buf_append_char(out, (char)('0' + sio_type));
    if (nsp != EIO_NSP_ROOT) {
        buf_append_str(out, eio_nsp_names[nsp]);
        buf_append_char(out, ',');
    }
    if (ack >= 0)
        buf_append_u64(out, (uint64_t)ack);
}
