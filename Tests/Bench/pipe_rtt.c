/*
 * pipe_rtt: direct stdio round-trip baseline for Switchyard's benchmark.
 *
 * Spawns an MCP stdio server (normally `$SWITCHYARD_BIN demo-server`), performs
 * initialize + notifications/initialized, then sends tools/call "echo" requests
 * strictly one at a time (write one line, read one response line) and reports
 * throughput, round-trip latency percentiles and CPU of the child and of itself.
 *
 * Usage: pipe_rtt [-n REQUESTS] [-w WARMUP] [-t MAX_SECONDS] [-x TEXT] -- CMD [ARGS...]
 *
 * Output (stdout): one line of key=value pairs starting with "PIPE_RTT", e.g.
 *   PIPE_RTT requests=20000 seconds=1.234 rps=16207 p50_us=58 p90_us=63 p99_us=91
 *            max_us=812 child_cpu_us_per_req=31.2 self_cpu_us_per_req=18.0 self_cpu_pct=29.1
 * Exit status: 0 on success, 1 on protocol/child errors (message on stderr), 2 on usage errors.
 *
 * Build: cc -O2 -o pipe_rtt pipe_rtt.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static pid_t child_pid = -1;
static int to_child = -1, from_child = -1;
static int io_timeout_ms = 10000;

/* Line reader state over from_child. */
static char *rbuf;
static size_t rcap = 1 << 20, rlen = 0, rpos = 0;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pipe_rtt: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
    }
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(to_child, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("write to child failed: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Returns a pointer to a NUL-terminated line (without '\n'), valid until the next call. */
static char *read_line(size_t *len_out) {
    for (;;) {
        char *nl = memchr(rbuf + rpos, '\n', rlen - rpos);
        if (nl) {
            char *line = rbuf + rpos;
            *nl = '\0';
            *len_out = (size_t)(nl - line);
            rpos = (size_t)(nl - rbuf) + 1;
            return line;
        }
        /* compact */
        if (rpos > 0) {
            memmove(rbuf, rbuf + rpos, rlen - rpos);
            rlen -= rpos;
            rpos = 0;
        }
        if (rlen == rcap) {
            rcap *= 2;
            rbuf = realloc(rbuf, rcap);
            if (!rbuf) die("out of memory");
        }
        ssize_t r = read(from_child, rbuf + rlen, rcap - rlen);
        if (r > 0) {
            rlen += (size_t)r;
            continue;
        }
        if (r == 0) die("child closed stdout (exited?)");
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
            struct pollfd pfd = {.fd = from_child, .events = POLLIN};
            int pr = poll(&pfd, 1, io_timeout_ms);
            if (pr == 0) die("no response from child within %d ms", io_timeout_ms);
            continue;
        }
        die("read from child failed: %s", strerror(errno));
    }
}

/* True if `line` contains `"id":<id>` (optionally with one space after the colon), not as a prefix of a
 * longer number. */
static int has_id(const char *line, long id) {
    char key[48];
    for (int sp = 0; sp < 2; sp++) {
        snprintf(key, sizeof key, sp ? "\"id\": %ld" : "\"id\":%ld", id);
        size_t klen = strlen(key);
        for (const char *p = strstr(line, key); p; p = strstr(p + 1, key))
            if (p[klen] < '0' || p[klen] > '9') return 1;
    }
    return 0;
}

/* Read lines until one is the response for `id`; skips notifications and other lines. */
static char *read_response(long id, size_t *len_out) {
    for (;;) {
        char *line = read_line(len_out);
        if (has_id(line, id) && (strstr(line, "\"result\"") || strstr(line, "\"error\""))) return line;
    }
}

static long proc_cpu_ticks(pid_t pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* skip ") " -> field 3 (state) */
    unsigned long utime = 0, stime = 0;
    /* fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) return -1;
    return (long)(utime + stime);
}

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, long n, double p) {
    if (n <= 0) return 0;
    long idx = (long)(p / 100.0 * (double)n + 0.5) - 1; /* nearest-rank */
    if (idx < 0) idx = 0;
    if (idx >= n) idx = n - 1;
    return sorted[idx];
}

static void usage(void) {
    fprintf(stderr,
            "usage: pipe_rtt [-n REQUESTS] [-w WARMUP] [-t MAX_SECONDS] [-x TEXT] -- CMD [ARGS...]\n"
            "  -n  timed requests (default 20000)\n"
            "  -w  warm-up requests, not timed (default 1000)\n"
            "  -t  stop the timed phase after this many seconds even if -n is not reached (default 10)\n"
            "  -x  echo text (plain ASCII, no quotes/backslashes; default \"hello from switchyard bench\")\n");
    exit(2);
}

int main(int argc, char **argv) {
    long n_req = 20000, n_warm = 1000;
    double max_s = 10.0;
    const char *text = "hello from switchyard bench";
    int opt;
    while ((opt = getopt(argc, argv, "+n:w:t:x:h")) != -1) {
        switch (opt) {
        case 'n': n_req = atol(optarg); break;
        case 'w': n_warm = atol(optarg); break;
        case 't': max_s = atof(optarg); break;
        case 'x': text = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc || n_req <= 0 || n_warm < 0 || max_s <= 0) usage();
    for (const char *c = text; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) usage();

    signal(SIGPIPE, SIG_IGN);
    rbuf = malloc(rcap);
    if (!rbuf) die("out of memory");

    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    /* child's stderr goes to ours (PIPE_RTT_CHILD_STDERR=1) or to /dev/null */
    const char *keep_err = getenv("PIPE_RTT_CHILD_STDERR");
    if (!(keep_err && *keep_err == '1'))
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);

    int rc = posix_spawnp(&child_pid, argv[optind], &fa, &attr, &argv[optind], environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) die("cannot spawn %s: %s", argv[optind], strerror(rc));
    close(in_pipe[0]);
    close(out_pipe[1]);
    to_child = in_pipe[1];
    from_child = out_pipe[0];
    /* Non-blocking reads with poll() so a silent child cannot hang us; writes stay blocking. */
    fcntl(from_child, F_SETFL, fcntl(from_child, F_GETFL) | O_NONBLOCK);

    char req[4096];
    size_t len;
    char *line;

    /* 1. initialize */
    int n = snprintf(req, sizeof req,
                     "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                     "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"pipe_rtt\",\"version\":\"1\"}}}\n");
    write_all(req, (size_t)n);
    line = read_response(0, &len);
    if (!strstr(line, "\"result\"")) die("initialize failed: %.300s", line);
    /* 2. initialized notification */
    static const char initialized[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
    write_all(initialized, sizeof initialized - 1);

    /* 3. warm-up + timed echo calls, one in flight at a time */
    double *lat = malloc(sizeof(double) * (size_t)n_req);
    if (!lat) die("out of memory");
    long done = 0;
    long id = 1;
    long ticks0 = 0;
    double cpu0 = 0, t0 = 0, t_end = 0;
    for (long i = 0; i < n_warm + n_req; i++, id++) {
        if (i == n_warm) {
            ticks0 = proc_cpu_ticks(child_pid);
            cpu0 = self_cpu_s();
            t0 = now_s();
        }
        n = snprintf(req, sizeof req,
                     "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                     "\"arguments\":{\"text\":\"%s\"}}}\n",
                     id, text);
        if (n <= 0 || (size_t)n >= sizeof req) die("echo text too long");
        double s = now_s();
        write_all(req, (size_t)n);
        line = read_response(id, &len);
        double e = now_s();
        if (!strstr(line, "\"result\"") || !strstr(line, text))
            die("request id %ld: unexpected response: %.300s", id, line);
        if (i >= n_warm) {
            lat[done++] = (e - s) * 1e6;
            if (e - t0 >= max_s) break;
        }
    }
    t_end = now_s();
    long ticks1 = proc_cpu_ticks(child_pid);
    double cpu1 = self_cpu_s();

    /* 4. shut the child down: close stdin, give it 2 s, then SIGKILL */
    close(to_child);
    int status = 0;
    pid_t w = 0;
    for (int k = 0; k < 200; k++) {
        w = waitpid(child_pid, &status, WNOHANG);
        if (w == child_pid) break;
        usleep(10000);
    }
    if (w != child_pid) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, &status, 0);
    }
    child_pid = -1;

    double secs = t_end - t0;
    qsort(lat, (size_t)done, sizeof(double), cmp_double);
    long hz = sysconf(_SC_CLK_TCK);
    double child_us = (ticks0 >= 0 && ticks1 >= 0) ? (double)(ticks1 - ticks0) * 1e6 / (double)hz : -1;
    double self_us = (cpu1 - cpu0) * 1e6;
    printf("PIPE_RTT requests=%ld seconds=%.3f rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
           "child_cpu_us_per_req=%.1f child_cpu_pct=%.1f self_cpu_us_per_req=%.1f self_cpu_pct=%.1f\n",
           done, secs, (double)done / secs, pct(lat, done, 50), pct(lat, done, 90), pct(lat, done, 99),
           lat[done - 1], child_us >= 0 ? child_us / (double)done : -1,
           child_us >= 0 ? child_us / 1e4 / secs : -1, self_us / (double)done, self_us / 1e4 / secs);
    free(lat);
    return 0;
}
