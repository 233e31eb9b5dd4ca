/*
 * net: where the guests connect to, and from where. Parses and resolves the
 * --url targets (once, before the loop starts: resolving blocks) and opens
 * non-blocking connections, spread over several 127.x.y.z source addresses
 * on loopback so that a run is not capped by one address's ephemeral ports.
 */
#ifndef CHATBENCH_NET_H
#define CHATBENCH_NET_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct net_target {
    char url[256];
    char hostport[264]; /* the Host header: host (bracketed for IPv6) and port */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int loopback4;     /* an IPv4 loopback address: sources can be spread */
    uint32_t nsources; /* source addresses in use, 127.0.0.1 upwards (0: let the kernel pick) */
} net_target_t;

/**
 * Parses `url` (http://HOST[:PORT][/]) into `t` and resolves HOST, IPv4
 * first. Returns 0, or -1 with the reason in `err`.
 */
int net_target_parse(net_target_t *t, const char *url, char *err, size_t errlen);

/**
 * Decides how many source addresses `guests` connections to `t` need, from
 * the ephemeral port range the kernel allows. Never fails.
 */
void net_plan_sources(net_target_t *t, uint32_t guests);

/**
 * Starts a non-blocking connection to `t` for the target's `nth` guest (which
 * picks its source address). Returns the socket, or a negative errno.
 */
int net_connect(const net_target_t *t, uint32_t nth);

#endif
