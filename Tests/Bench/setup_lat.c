/*
 * setup_lat: session setup latency over Streamable HTTP. N sequential sessions on one keep-alive connection:
 *   t0 -> POST /mcp initialize -> (200, Mcp-Session-Id) -> POST notifications/initialized (202)
 *      -> POST tools/call echo -> answer (JSON or SSE) carrying "result" and the echo text -> t1
 * latency = t1 - t0 (what a client waits from its first byte to its first tool result). Then DELETE the
 * session (not timed) so children do not pile up. The first -w sessions are warm-up and not counted.
 *
 *   setup_lat -p PORT [-n 200] [-w 10] [-x TEXT] [-H 127.0.0.1] [-P /mcp]
 *
 * Output (stdout): BENCH_SETUP sessions=N p50_us= p90_us= p99_us= max_us= mean_us= errors=E
 * and, on the first error, "BENCH_SETUP_SAMPLE step=... expected=... got=...". Exit status 0 (check errors=),
 * 1 fatal, 2 usage. Blocking sockets, plain HTTP only, a 5 s receive timeout per response.
 * Build: cc -O2 -o setup_lat setup_lat.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1";
static const char *path = "/mcp";
static const char *text = "hello from switchyard bench";
static int port;
static int fd = -1;
static char sample[600];
static long errors;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void note(const char *step, const char *expected, const char *got) {
    errors++;
    if (sample[0]) return;
    snprintf(sample, sizeof sample, "step=%s expected=%s got=%.300s", step, expected, got);
    for (char *p = sample; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
}

static int conn(void) {
    if (fd >= 0) return 0;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        fd = -1;
        return -1;
    }
    return 0;
}

static void disconnect(void) {
    if (fd >= 0) close(fd);
    fd = -1;
}

static char in[1 << 16];
static size_t inlen;

static int fill(void) { /* reads more; -1 on EOF/error */
    if (inlen >= sizeof in) return -1;
    ssize_t r = recv(fd, in + inlen, sizeof in - inlen, 0);
    if (r <= 0) return -1;
    inlen += (size_t)r;
    return 0;
}

static int hdr(const char *h, size_t n, const char *name, char *v, size_t vn) {
    size_t ln = strlen(name);
    const char *p = h, *end = h + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > ln && !strncasecmp(p, name, ln) && p[ln] == ':') {
            const char *q = p + ln + 1;
            while (q < eol && (*q == ' ' || *q == '\t')) q++;
            const char *r = eol;
            while (r > q && (r[-1] == '\r' || r[-1] == ' ')) r--;
            size_t m = (size_t)(r - q);
            if (m >= vn) m = vn - 1;
            memcpy(v, q, m);
            v[m] = 0;
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* sends one request and reads the whole response; body de-chunked into `body`. Returns status or -1. */
static char body[1 << 16];
static size_t bodylen;
static char sid_out[128];
static int request(const char *method, const char *sid, const char *payload) {
    char req[4096];
    int n;
    if (conn() < 0) return -1;
    n = snprintf(req, sizeof req,
                 "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                 "Accept: application/json, text/event-stream\r\n%s%s%s%sContent-Length: %zu\r\n\r\n%s",
                 method, path, host, port, sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "",
                 sid ? "MCP-Protocol-Version: 2025-06-18\r\n" : "", payload ? strlen(payload) : 0, payload ? payload : "");
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) { disconnect(); return -1; }
    inlen = 0;
    char *e;
    while (!(e = memmem(in, inlen, "\r\n\r\n", 4)))
        if (fill() < 0) { disconnect(); return -1; }
    size_t hl = (size_t)(e - in) + 4;
    int status = inlen > 12 ? atoi(in + 9) : 0;
    char v[256];
    sid_out[0] = 0;
    hdr(in, hl, "Mcp-Session-Id", sid_out, sizeof sid_out);
    int chunked = hdr(in, hl, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked");
    long clen = hdr(in, hl, "Content-Length", v, sizeof v) ? atol(v) : -1;
    int close_after = hdr(in, hl, "Connection", v, sizeof v) && strcasestr(v, "close");
    memmove(in, in + hl, inlen - hl);
    inlen -= hl;
    bodylen = 0;
    if (chunked) {
        for (;;) {
            while (!(e = memmem(in, inlen, "\r\n", 2)))
                if (fill() < 0) { disconnect(); return -1; }
            long sz = strtol(in, NULL, 16);
            size_t l = (size_t)(e - in) + 2;
            while (inlen < l + (size_t)sz + 2)
                if (fill() < 0) { disconnect(); return -1; }
            if (sz > 0 && bodylen + (size_t)sz < sizeof body) {
                memcpy(body + bodylen, in + l, (size_t)sz);
                bodylen += (size_t)sz;
            }
            memmove(in, in + l + sz + 2, inlen - (l + (size_t)sz + 2));
            inlen -= l + (size_t)sz + 2;
            if (sz == 0) break;
        }
    } else if (clen >= 0) {
        while ((long)inlen < clen)
            if (fill() < 0) { disconnect(); return -1; }
        bodylen = (size_t)clen < sizeof body ? (size_t)clen : sizeof body - 1;
        memcpy(body, in, bodylen);
    } else { /* until close */
        while (fill() == 0) {}
        bodylen = inlen < sizeof body ? inlen : sizeof body - 1;
        memcpy(body, in, bodylen);
        close_after = 1;
    }
    body[bodylen] = 0;
    if (close_after) disconnect();
    return status;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int n = 200, warm = 10, opt;
    while ((opt = getopt(argc, argv, "p:n:w:x:H:P:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'n': n = atoi(optarg); break;
        case 'w': warm = atoi(optarg); break;
        case 'x': text = optarg; break;
        case 'H': host = optarg; break;
        case 'P': path = optarg; break;
        default: fprintf(stderr, "usage: setup_lat -p PORT [-n 200] [-w 10] [-x TEXT] [-H HOST] [-P /mcp]\n"); return 2;
        }
    }
    if (port <= 0 || n <= 0) { fprintf(stderr, "setup_lat: -p PORT is required\n"); return 2; }
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\","
                       "\"capabilities\":{},\"clientInfo\":{\"name\":\"switchyard-bench-setup\",\"version\":\"1\"}}}";
    const char *inited = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    char call[1024];
    snprintf(call, sizeof call,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"%s\"}}}",
             text);
    double *lat = calloc((size_t)n, sizeof *lat);
    int got = 0;
    double deadline = now_us() + 120e6;
    for (int i = 0; i < n + warm && now_us() < deadline; i++) {
        char got_s[400], sid[128];
        double t0 = now_us();
        int st = request("POST", NULL, init);
        if (st != 200 || !sid_out[0] || !strstr(body, "\"result\"")) {
            snprintf(got_s, sizeof got_s, "HTTP %d session=%s body=%.200s", st, sid_out[0] ? sid_out : "(none)", body);
            note("initialize", "200 + Mcp-Session-Id + result", got_s);
            continue;
        }
        snprintf(sid, sizeof sid, "%s", sid_out);
        st = request("POST", sid, inited);
        if (st != 202) {
            snprintf(got_s, sizeof got_s, "HTTP %d body=%.200s", st, body);
            note("notifications/initialized", "202", got_s);
            continue;
        }
        st = request("POST", sid, call);
        double t1 = now_us();
        if (st != 200 || !strstr(body, "\"result\"") || !strstr(body, text)) {
            snprintf(got_s, sizeof got_s, "HTTP %d body=%.200s", st, body);
            note("tools/call echo", "200 with result and the echo text", got_s);
        } else if (i >= warm) {
            lat[got++] = t1 - t0;
        }
        request("DELETE", sid, NULL);
    }
    disconnect();
    qsort(lat, (size_t)got, sizeof *lat, cmp);
    double sum = 0;
    for (int i = 0; i < got; i++) sum += lat[i];
#define P(q) (got ? lat[(size_t)((q) * got) < (size_t)got ? (size_t)((q) * got) : (size_t)got - 1] : 0)
    if (sample[0]) printf("BENCH_SETUP_SAMPLE %s\n", sample);
    printf("BENCH_SETUP sessions=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f mean_us=%.0f errors=%ld\n", got, P(0.50),
           P(0.90), P(0.99), got ? lat[got - 1] : 0, got ? sum / got : 0, errors);
    return 0;
}
