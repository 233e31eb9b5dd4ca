/*
 * net: targets and connections (see net.h).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Connections per source address: the brief's ~50k, less when the kernel's range is smaller. */
#define NET_PER_SOURCE_MAX 50000

int net_target_parse(net_target_t *t, const char *url, char *err, size_t errlen)
{
    char host[256], port[8] = "80";
    memset(t, 0, sizeof(*t));
    snprintf(t->url, sizeof(t->url), "%s", url);
    if (strncasecmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "%s: only http:// URLs are supported", url);
        return -1;
    }
    const char *h = url + 7, *hend;
    if (*h == '[') { /* [v6]:port */
        hend = strchr(h, ']');
        if (hend == NULL) {
            snprintf(err, errlen, "%s: unterminated [IPv6 address]", url);
            return -1;
        }
        h++;
    } else {
        hend = h + strcspn(h, ":/");
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(err, errlen, "%s: no host", url);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    const char *rest = hend + (*hend == ']');
    if (*rest == ':') {
        size_t plen = strspn(rest + 1, "0123456789");
        long n = plen > 0 && plen < 6 ? strtol(rest + 1, NULL, 10) : 0;
        if (n < 1 || n > 65535) {
            snprintf(err, errlen, "%s: bad port", url);
            return -1;
        }
        snprintf(port, sizeof(port), "%ld", n);
        rest += 1 + plen;
    }
    if (*rest != '\0' && strcmp(rest, "/") != 0) {
        snprintf(err, errlen, "%s: give the server's root, without a path", url);
        return -1;
    }
    snprintf(t->hostport, sizeof(t->hostport), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", url, gai_strerror(rc));
        return -1;
    }
    /* IPv4 first: "localhost" may list ::1 first while chatd listens on 127.0.0.1 */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(&t->addr, pick->ai_addr, pick->ai_addrlen);
    t->addrlen = pick->ai_addrlen;
    freeaddrinfo(res);
    if (t->addr.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&t->addr;
        t->loopback4 = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    return 0;
}

void net_plan_sources(net_target_t *t, uint32_t guests)
{
    t->nsources = 0;
    if (!t->loopback4)
        return;
    long lo = 32768, hi = 60999; /* Linux's default, if the range cannot be read */
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &lo, &hi) != 2)
            lo = 32768, hi = 60999;
        fclose(f);
    }
    /* leave a quarter for TIME_WAIT leftovers of earlier runs and other programs */
    long per = (hi - lo + 1) * 3 / 4;
    if (per > NET_PER_SOURCE_MAX)
        per = NET_PER_SOURCE_MAX;
    if (per < 1)
        per = 1;
    uint32_t n = (uint32_t)((guests + (uint64_t)per - 1) / (uint64_t)per);
    /* one address needs no bind(): the kernel picks 127.0.0.1 for a loopback peer anyway */
    t->nsources = n > 1 ? n : 0;
}

int net_connect(const net_target_t *t, uint32_t nth)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* frames are small and latency is what is measured */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (t->nsources > 0) {
        /* The port is chosen at connect(), per destination, not at bind():
         * otherwise every bound socket would hold a port of its own and the
         * extra addresses would not add any. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7F000001u + nth % t->nsources);
        if (bind(fd, (const struct sockaddr *)&src, sizeof(src)) != 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}
