/*
 * sio-testserver: the protocol module alone, configured as the official
 * Engine.IO and Socket.IO conformance suites expect. PORT (default 3000);
 * --engine makes it a bare Engine.IO echo server on /engine.io/.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log/log.h"
#include "../sio/sio.h"

static void engine_echo(eio_session_t *e, int binary, const uint8_t *data, size_t len, void *ud)
{
    sio_engine_send(e, binary, data, len);
}

static void on_connect(sio_socket_t *s, json_t *auth, void *ud)
{
    sio_socket_accept(s);
    json_t *args = json_pack("[O]", auth);
    sio_socket_emit(s, "auth", args);
    json_decref(args);
}

static void on_message(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    sio_socket_emit_bin(s, "message-back", args, bins, nbins);
}

static void on_message_with_ack(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins,
                                void *ud)
{
    sio_socket_ack_bin(s, ack_id, args, bins, nbins);
}

static void on_ack_result(sio_socket_t *s, json_t *args, const sio_bin_t *bins, size_t nbins, void *ud)
{
    if (args != NULL)
        sio_socket_emit(s, "ack-result", args);
}

/* Server-to-client ack, for our own tests: emits "ack-request" with the
 * client's arguments and reports the client's answer as "ack-result". */
static void on_request_ack(sio_socket_t *s, json_t *args, int64_t ack_id, const sio_bin_t *bins, size_t nbins, void *ud)
{
    sio_socket_emit_ack(s, "ack-request", args, on_ack_result, NULL);
}

static void setup_nsp(sio_nsp_t *nsp)
{
    sio_nsp_on_connect(nsp, on_connect, NULL);
    sio_nsp_on(nsp, "message", on_message, NULL);
    sio_nsp_on(nsp, "message-with-ack", on_message_with_ack, NULL);
    sio_nsp_on(nsp, "request-ack", on_request_ack, NULL);
}

int main(int argc, char **argv)
{
    int engine = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--engine") == 0) {
            engine = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf(
                "Usage: sio-testserver [--engine]\n"
                "Serves the protocol module on PORT (default 3000) for the official conformance suites.\n"
                "  --engine  bare Engine.IO echo server on /engine.io/ (default: Socket.IO server on /socket.io/)\n");
            return 0;
        } else {
            fprintf(stderr, "sio-testserver: unknown argument %s (try --help)\n", argv[i]);
            return 2;
        }
    }
    const char *port_env = getenv("PORT");
    char *end = NULL;
    long port = port_env != NULL ? strtol(port_env, &end, 10) : 3000;
    if (port_env != NULL && (*end != '\0' || port < 1 || port > 65535)) {
        fprintf(stderr, "sio-testserver: PORT must be 1..65535\n");
        return 2;
    }
    sio_options_t opt = {
        .host = "0.0.0.0",
        .port = (int)port,
        .workers = 1,
        .path = engine ? "/engine.io/" : "/socket.io/",
        .ping_interval_ms = 300,
        .ping_timeout_ms = 200,
        .connect_timeout_ms = 1000,
        .max_payload = 1000000,
        .engine_on_message = engine ? engine_echo : NULL,
    };
    char err[256];
    sio_server_t *srv = sio_server_new(&opt, err, sizeof(err));
    if (srv == NULL) {
        fprintf(stderr, "sio-testserver: %s\n", err);
        return 2;
    }
    if (!engine) {
        setup_nsp(sio_server_of(srv, "/"));
        setup_nsp(sio_server_of(srv, "/custom"));
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (sio_server_start(srv, err, sizeof(err)) != 0) {
        fprintf(stderr, "sio-testserver: %s\n", err);
        sio_server_free(srv);
        return 1;
    }
    log_info("sio-testserver listening", json_pack("{s:i,s:b}", "port", sio_server_port(srv), "engine", engine));
    int sig;
    sigwait(&set, &sig);
    int rc = sio_server_stop(srv, 5000);
    sio_server_free(srv);
    return rc == 0 ? 0 : 1;
}
