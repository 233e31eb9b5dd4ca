/*
 * A real rabbitmq-server for the offq tests: free ports, a throw-away folder, its own epmd, and a
 * clean stop of the whole process group.
 * Included by test_offq.c (tests may include .c files); not a test of its own.
 */
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "offq/offq.h"
#include "sio/sio.h"

extern char **environ;

#ifndef BROKER_BOOT_MS
#define BROKER_BOOT_MS 90000
#endif

/* ---- clock ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * For a port that another process opens: no event tells when it listens, so
 * it is polled. Process exits are awaited on pidfds instead (await_group).
 */
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the broker ---- */

typedef struct broker {
    char dir[64];
    char exe[256];
    char epmd_exe[256];
    char nodename[64];
    int port, dist_port, epmd_port;
    pid_t epmd;   /* its own process group */
    pid_t rabbit; /* the rabbitmq-server script, leader of the broker's process group */
    char **envp;
    double boot_s; /* last start, seconds until AMQP accepted connections */
} broker_t;

static broker_t B;

/* Finds an executable in PATH (done before fork: the child must not allocate). */
static int find_exe(const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/') != NULL) {
        snprintf(out, outlen, "%s", name);
        return access(out, X_OK) == 0 ? 0 : -1;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(out, outlen, "%.*s/%s", (int)n, path, name);
        if (n > 0 && access(out, X_OK) == 0)
            return 0;
        path += n + (path[n] == ':');
    }
    return -1;
}

/* Three distinct free loopback ports, held open together so they differ. */
static void free_ports(int *ports, int n)
{
    int fds[8];
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
        socklen_t len = sizeof(a);
        assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
        ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The environment of the broker: ours without RABBITMQ_*, HOME and ERL_EPMD_PORT, plus its own. */
static char **broker_env(void)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 20, sizeof(*env));
    assert_non_null(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "RABBITMQ_", 9) == 0 || strncmp(environ[i], "HOME=", 5) == 0 ||
            strncmp(environ[i], "ERL_EPMD_PORT=", 14) == 0)
            continue;
        env[k++] = strdup(environ[i]);
    }
    char buf[512];
#define ENV(...)                                                                                                       \
    do {                                                                                                               \
        snprintf(buf, sizeof(buf), __VA_ARGS__);                                                                       \
        env[k++] = strdup(buf);                                                                                        \
    } while (0)
    ENV("HOME=%s/home", B.dir); /* the Erlang cookie goes there */
    ENV("RABBITMQ_NODENAME=%s", B.nodename);
    ENV("RABBITMQ_NODE_IP_ADDRESS=127.0.0.1");
    ENV("RABBITMQ_NODE_PORT=%d", B.port);
    ENV("RABBITMQ_DIST_PORT=%d", B.dist_port);
    ENV("ERL_EPMD_PORT=%d", B.epmd_port);
    ENV("RABBITMQ_MNESIA_BASE=%s/mnesia", B.dir);
    ENV("RABBITMQ_LOG_BASE=%s/log", B.dir);
    ENV("RABBITMQ_CONFIG_FILE=%s/rabbitmq.conf", B.dir);
    ENV("RABBITMQ_ADVANCED_CONFIG_FILE=%s/advanced.config", B.dir);
    ENV("RABBITMQ_CONF_ENV_FILE=%s/rabbitmq-env.conf", B.dir);
    ENV("RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins", B.dir);
    ENV("RABBITMQ_PID_FILE=%s/rabbit.pid", B.dir);
    /* our epmd runs already; the broker must not start a daemon one that would outlive the test */
    ENV("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false");
#undef ENV
    env[k] = NULL;
    return env;
}

/* Scans /proc: 1 while a live (not zombie) process is in process group `pgid`. */
/* A live (not zombie) member of process group `pgid`, or 0 when it is empty. */
static pid_t live_member(pid_t pgid)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return kill(-pgid, 0) == 0 ? pgid : 0;
    pid_t alive = 0;
    struct dirent *e;
    while (!alive && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], line[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(line, 1, sizeof(line) - 1, f);
        fclose(f);
        line[n] = '\0';
        const char *p = strrchr(line, ')');
        char state;
        int ppid, pgrp;
        if (p != NULL && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3)
            alive = pgrp == pgid && state != 'Z' ? (pid_t)atoi(e->d_name) : 0;
    }
    closedir(d);
    return alive;
}

/* Reaps every exited child (the test is a subreaper: orphans of the broker come to it). */
static void reap(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* Waits until the group is empty or `deadline` passes: each member's exit is awaited on its pidfd. */
static void await_group(pid_t pgid, uint64_t deadline)
{
    for (pid_t pid; (pid = live_member(pgid)) != 0 && now_ms() < deadline;) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            uint64_t left = deadline - now_ms();
            poll(&p, 1, left > INT32_MAX ? -1 : (int)left);
            close(fd);
        }
        reap();
    }
}

/* Signals group `pgid` and waits up to `ms` for it to empty; SIGKILL after that. */
static void stop_group(pid_t pgid, int sig, int ms)
{
    if (pgid <= 0)
        return;
    kill(-pgid, sig);
    await_group(pgid, now_ms() + (uint64_t)ms);
    if (live_member(pgid) != 0) {
        fprintf(stderr, "# process group %d ignored signal %d for %d ms: SIGKILL\n", (int)pgid, sig, ms);
        kill(-pgid, SIGKILL);
        await_group(pgid, UINT64_MAX);
    }
    reap();
}

static pid_t spawn_group(const char *exe, char *const argv[], char *const envp[], const char *log, int deathsig)
{
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(out >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        /* if the test dies without its teardown, the broker's script stops the broker */
        prctl(PR_SET_PDEATHSIG, deathsig);
        int in = open("/dev/null", O_RDONLY);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execve(exe, argv, envp);
        _exit(127);
    }
    setpgid(pid, pid); /* also from here, so that it holds before anything signals the group */
    close(out);
    return pid;
}

static void print_tail(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "tail -n 30 %s >&2", path);
    if (system(cmd) != 0)
        fprintf(stderr, "# (could not show %s)\n", path);
}

static int broker_start(void)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/rabbitmq-server.out", B.dir);
    char *argv[] = {B.exe, NULL};
    uint64_t t0 = now_ms();
    B.rabbit = spawn_group(B.exe, argv, B.envp, log, SIGTERM);
    while (!port_open(B.port)) {
        int status;
        if (waitpid(B.rabbit, &status, WNOHANG) == B.rabbit) {
            fprintf(stderr, "# rabbitmq-server exited (status %d) before it listened:\n", status);
            print_tail(log);
            B.rabbit = 0;
            return -1;
        }
        if (now_ms() - t0 > BROKER_BOOT_MS) {
            fprintf(stderr, "# rabbitmq-server did not listen within %d s:\n", BROKER_BOOT_MS / 1000);
            print_tail(log);
            return -1;
        }
        sleep_ms(25);
    }
    B.boot_s = (double)(now_ms() - t0) / 1000.0;
    return 0;
}

static void broker_stop(void)
{
    /* SIGTERM: the script asks the node to stop cleanly, so durable data is flushed */
    stop_group(B.rabbit, SIGTERM, 30000);
    B.rabbit = 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Stops everything at once: the last resort of an exit without teardown. */
static void broker_kill_all(void)
{
    if (B.rabbit > 0)
        stop_group(B.rabbit, SIGKILL, 5000);
    if (B.epmd > 0)
        stop_group(B.epmd, SIGKILL, 5000);
    B.rabbit = B.epmd = 0;
    if (B.dir[0] != '\0')
        nftw(B.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    B.dir[0] = '\0';
}

/* 1 when `pgrep -f pattern` finds a process (pgrep never matches itself). */
static int pgrep(const char *pattern)
{
    char *argv[] = {"pgrep", "-f", (char *)pattern, NULL};
    pid_t pid;
    assert_int_equal(posix_spawnp(&pid, "pgrep", NULL, NULL, argv, environ), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    return WEXITSTATUS(status) == 0;
}

static int broker_setup(void)
{
    if (find_exe("/usr/lib/rabbitmq/bin/rabbitmq-server", B.exe, sizeof(B.exe)) != 0 &&
        find_exe("rabbitmq-server", B.exe, sizeof(B.exe)) != 0) {
        fprintf(stderr, "\n#\n# FAIL: rabbitmq-server is not installed (apt-get install rabbitmq-server, or "
                        "make setup): the offq integration tests cannot run\n#\n\n");
        return -1;
    }
    if (find_exe("epmd", B.epmd_exe, sizeof(B.epmd_exe)) != 0) {
        fprintf(stderr, "\n# FAIL: epmd (erlang-base) is not installed\n\n");
        return -1;
    }
    snprintf(B.dir, sizeof(B.dir), "/tmp/offq-rabbit-XXXXXX");
    if (mkdtemp(B.dir) == NULL)
        return -1;
    atexit(broker_kill_all);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int ports[3];
    free_ports(ports, 3);
    B.port = ports[0];
    B.dist_port = ports[1];
    B.epmd_port = ports[2];
    snprintf(B.nodename, sizeof(B.nodename), "rabbit-test-%d@localhost", (int)getpid());
    char path[128];
    snprintf(path, sizeof(path), "%s/home", B.dir);
    mkdir(path, 0700);
    write_file(B.dir, "rabbitmq.conf",
               "disk_free_limit.absolute = 1MB\n"
               "vm_memory_high_watermark.relative = 0.9\n");
    write_file(B.dir, "enabled_plugins", "[].\n");
    write_file(B.dir, "rabbitmq-env.conf", "");
    B.envp = broker_env();

    char port[16], log[128];
    snprintf(port, sizeof(port), "%d", B.epmd_port);
    snprintf(log, sizeof(log), "%s/epmd.out", B.dir);
    char *argv[] = {"epmd", "-port", port, NULL};
    B.epmd = spawn_group(B.epmd_exe, argv, B.envp, log, SIGKILL);
    uint64_t t0 = now_ms();
    while (!port_open(B.epmd_port)) {
        if (now_ms() - t0 > 10000) {
            fprintf(stderr, "# epmd did not listen on %d\n", B.epmd_port);
            return -1;
        }
        sleep_ms(10);
    }
    if (broker_start() != 0)
        return -1;
    fprintf(stderr, "# rabbitmq-server up on 127.0.0.1:%d in %.1f s (folder %s)\n", B.port, B.boot_s, B.dir);
    return 0;
}

static void broker_teardown(void)
{
    broker_stop();
    stop_group(B.epmd, SIGTERM, 5000);
    B.epmd = 0;
    char dir[64];
    snprintf(dir, sizeof(dir), "%s", B.dir);
    nftw(B.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    B.dir[0] = '\0';
    for (size_t i = 0; B.envp[i] != NULL; i++)
        free(B.envp[i]);
    free(B.envp);
    /* nothing of this broker may outlive the test */
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "epmd -port %d", B.epmd_port);
    assert_false(pgrep(pattern));
    assert_false(pgrep(dir));
    assert_false(pgrep(B.nodename));
}
