/*
 * sse_load: load generator for Switchyard's legacy HTTP+SSE transport (GET /sse + POST /messages).
 * wrk cannot do this (the answer to a POST arrives on another connection), hence this program.
 * Plain sockets + epoll, one thread.
 *
 * Mode "load": N sessions, each = one `GET /sse` stream connection + one keep-alive POST connection.
 *   Per session: read `event: endpoint` (data: /messages?sessionId=<id>), POST `initialize` (id 1), wait
 *   for its answer on the stream, POST `notifications/initialized`, then POST `tools/call` echo requests
 *   with increasing integer ids, one in flight per session: the next POST is sent when the previous
 *   answer (`event: message` whose data has that id) arrived on the stream AND the previous POST's 202
 *   arrived (no HTTP pipelining on the POST connection). Latency = POST written -> matching answer read.
 *   Timeline: setup (all sessions initialized, at most 30 s), warm-up, measured window, drain (<= 2 s).
 *   Only answers received inside the window are counted; errors are counted over the whole run.
 *
 *   sse_load load -p PORT -c SESSIONS [-d SECONDS] [-w WARMUP_S] [-x TEXT] [-g GATEWAY_PID] [-H HOST]
 *
 *   Output (stdout), one line:
 *     BENCH_SSE sessions=N requests=R duration_us=D rps=X p50_us= p90_us= p99_us= max_us= errors=E
 *       err_setup= err_post= err_answer= err_closed= err_timeout= answer_before_202= late_answers=
 *       gw_ticks= gw_reaped_ticks= child_ticks= child_pids= child_active= self_cpu_us= wall_us=
 *   gw_ticks: utime+stime delta of GATEWAY_PID over the window; gw_reaped_ticks: its cutime+cstime delta;
 *   child_ticks: utime+stime delta summed over all descendants of GATEWAY_PID (from
 *   /proc/PID/task/T/children); self_cpu_us: this program's own CPU (getrusage) over the window.
 *   The first bad answer/POST is printed as a "BENCH_SSE_SAMPLE ..." line.
 *
 * Mode "idle": idle-session memory. Opens `GET /sse` connections, at most -b at a time in the
 *   connect/handshake phase, each read up to its `event: endpoint` event and then left idle (no POST, so no
 *   child is spawned). Reads the gateway's VmRSS (/proc/PID/status) and open fd count (/proc/PID/fd) at
 *   each step. Steps: base, then cumulative targets from -n (e.g. 1000,10000), close all; then round 2:
 *   open -r sessions, close all.
 *
 *   sse_load idle -p PORT -g GATEWAY_PID [-n 1000,10000] [-r 10000] [-b 500] [-T DEADLINE_S] [-W WARM] [-H HOST]
 *
 *   -W WARM: before the base reading, open WARM sessions and close them again (steps "pre" and "warmup"), so
 *   one-time costs of the first connection (lazy initialisation, about 2 MB) are not charged per session.
 *   -T: deadline in seconds for all opening (connections still waiting then count as errors).
 *   A last step "settled" reads RSS 3 s after the last close (time for the gateway's housekeeping).
 *
 *   Output (stdout), one line per step:
 *     BENCH_IDLE step=NAME open=N rss_kb=K fds=F ms=T errors=E
 *   and a final "BENCH_IDLE_DONE errors=E server_closed=C" line. Errors: connect failures, non-200, no
 *   endpoint event, malformed endpoint, deadline passed. server_closed: idle streams the gateway closed
 *   before we did.
 *
 * -E PREFIX: expected endpoint event data before the 32 lowercase hex session id (default
 *   "/messages?sessionId=", Switchyard's; the Python SDK, e.g. mcp-proxy, sends "/messages/?session_id=").
 *
 * Exit status: 0 ran (check errors=), 1 fatal error (message on stderr), 2 usage.
 * Build: cc -O2 -o sse_load sse_load.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define REQ_TIMEOUT_US 5000000.0
#define SETUP_TIMEOUT_US 30000000.0

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sse_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double self_cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

/* ------------------------------------------------------------------ /proc helpers */

/* utime+stime (and cutime+cstime) of a pid in clock ticks; returns 0 if gone */
static int proc_ticks(int pid, long long *own, long long *reaped) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p += 2; /* field 3 (state) */
    long long v[20] = {0};
    int i = 0;
    char *save = NULL;
    for (char *t = strtok_r(p, " ", &save); t && i < 20; t = strtok_r(NULL, " ", &save)) v[i++] = atoll(t);
    /* v[0]=state(field 3) ... utime=field 14 -> v[11], stime v[12], cutime v[13], cstime v[14] */
    if (own) *own = v[11] + v[12];
    if (reaped) *reaped = v[13] + v[14];
    return 1;
}

typedef struct { int pid; long long ticks; } pidticks_t;
#define MAX_DESC 8192

static int descendants(int pid, pidticks_t *out, int n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) return n;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char cp[320];
        snprintf(cp, sizeof cp, "/proc/%d/task/%s/children", pid, e->d_name);
        FILE *f = fopen(cp, "r");
        if (!f) continue;
        int c;
        while (fscanf(f, "%d", &c) == 1) {
            if (n >= MAX_DESC) break;
            long long t = 0;
            proc_ticks(c, &t, NULL);
            out[n].pid = c;
            out[n].ticks = t;
            n++;
            n = descendants(c, out, n);
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

typedef struct {
    long long gw, reaped;
    int ndesc;
    pidticks_t desc[MAX_DESC];
    double self_cpu, wall;
} snap_t;

static void take_snap(int gpid, snap_t *s) {
    s->gw = s->reaped = 0;
    s->ndesc = 0;
    if (gpid > 0) {
        proc_ticks(gpid, &s->gw, &s->reaped);
        s->ndesc = descendants(gpid, s->desc, 0);
    }
    s->self_cpu = self_cpu_us();
    s->wall = now_us();
}

static long rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) { v = atol(line + 6); break; }
    fclose(f);
    return v;
}

static int fd_count(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ connections + parsers */

enum { R_STREAM = 1, R_POST = 2 };
enum { CS_SIZE, CS_DATA, CS_CRLF, CS_END };

typedef struct sess sess_t;

typedef struct conn {
    int fd;
    int role;
    sess_t *s;
    int connecting;       /* non-blocking connect in progress */
    int in_epoll;
    /* raw input */
    char *in;
    size_t inlen, incap;
    /* HTTP response */
    int in_body;          /* headers of the current response parsed */
    int status, chunked, conn_close;
    long clen;            /* POST: body bytes still to skip */
    int cstate;           /* chunked decoder */
    long crem;
    /* SSE parser (stream) */
    char *line;
    size_t linelen, linecap;
    char evtype[32];
    char *data;
    size_t datalen, datacap;
    /* pending output */
    char *out;
    size_t outlen, outoff;
} conn_t;

struct sess {
    int idx;
    conn_t *st, *po;
    char path[160];
    int state;            /* S_* */
    long next_id;
    long inflight_id;     /* 0 = none */
    double sent_at;
    int await_202;        /* POST connection waiting for a response */
    int queued_notify;    /* notifications/initialized to send */
    char last[64];        /* what the last POST carried, for error messages */
};
enum { S_WAIT_ENDPOINT, S_WAIT_INIT, S_RUN, S_DEAD, S_IDLE_DONE };

static int ep;
static const char *host = "127.0.0.1";
static int port;
static struct sockaddr_in addr;
static char hosthdr[128];
static const char *text = "hello from switchyard bench";

/* counters */
static long err_setup, err_post, err_answer, err_closed, err_timeout, answer_before_202, late_answers;
static char sample[700];

static void note(const char *fmt, ...) {
    if (sample[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sample, sizeof sample, fmt, ap);
    va_end(ap);
    for (char *p = sample; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
}

static void grow(char **b, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    *b = realloc(*b, c);
    if (!*b) die("out of memory");
    *cap = c;
}

static void ep_set(conn_t *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    c->in_epoll = 1;
}

static void ep_del(conn_t *c) {
    if (c->in_epoll) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->in_epoll = 0;
}

static void conn_reset_parse(conn_t *c) {
    c->inlen = 0;
    c->in_body = 0;
    c->status = 0;
    c->chunked = 0;
    c->conn_close = 0;
    c->clen = 0;
    c->cstate = CS_SIZE;
    c->crem = 0;
    c->linelen = 0;
    c->datalen = 0;
    c->evtype[0] = 0;
    c->outlen = c->outoff = 0;
}

/* starts a non-blocking connect; returns 0 or -1 (errno) */
static int conn_open(conn_t *c) {
    conn_reset_parse(c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->in_epoll = 0;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(c->fd);
            c->fd = -1;
            errno = e;
            return -1;
        }
        c->connecting = 1;
        ep_set(c, EPOLLOUT);
    } else {
        c->connecting = 0;
        ep_set(c, EPOLLIN);
    }
    return 0;
}

static void conn_close(conn_t *c) {
    if (c->fd >= 0) {
        ep_del(c);
        close(c->fd);
    }
    c->fd = -1;
    c->connecting = 0;
}

/* queue bytes and try to write them now; returns 0 or -1 on a write error */
static int conn_send(conn_t *c, const char *b, size_t n) {
    if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
    char *nb = realloc(c->out, c->outlen + n);
    if (!nb) die("out of memory");
    c->out = nb;
    memcpy(c->out + c->outlen, b, n);
    c->outlen += n;
    if (c->connecting) return 0;
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                ep_set(c, EPOLLIN | EPOLLOUT);
                return 0;
            }
            return -1;
        }
        c->outoff += (size_t)w;
    }
    return 0;
}

static int flush_out(conn_t *c) {
    while (c->outoff < c->outlen) {
        ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        c->outoff += (size_t)w;
    }
    ep_set(c, EPOLLIN);
    return 0;
}

/* header lookup inside a header block [h, h+n) (case-insensitive name), copies value into v */
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

/* parses the status line + headers if complete; returns bytes consumed, 0 if incomplete */
static size_t parse_head(conn_t *c) {
    char *e = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!e) return 0;
    size_t hl = (size_t)(e - c->in) + 4;
    c->status = 0;
    if (c->inlen > 12 && !strncmp(c->in, "HTTP/1.", 7)) c->status = atoi(c->in + 9);
    char v[128];
    c->chunked = hdr(c->in, hl, "Transfer-Encoding", v, sizeof v) && strcasestr(v, "chunked");
    c->clen = hdr(c->in, hl, "Content-Length", v, sizeof v) ? atol(v) : (c->chunked ? 0 : -1);
    c->conn_close = hdr(c->in, hl, "Connection", v, sizeof v) && strcasestr(v, "close");
    c->in_body = 1;
    c->cstate = CS_SIZE;
    return hl;
}

static void consume(conn_t *c, size_t n) {
    memmove(c->in, c->in + n, c->inlen - n);
    c->inlen -= n;
}

/* ---- event handling (defined per mode) */
static void on_event(sess_t *s, const char *type, const char *data, size_t dlen);
static void on_stream_head(sess_t *s, conn_t *c);
static void on_post_response(sess_t *s, conn_t *c);
static void on_conn_lost(sess_t *s, conn_t *c, const char *why);

static void sse_feed(conn_t *c, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];
        if (ch != '\n') {
            grow(&c->line, &c->linecap, c->linelen + 1);
            c->line[c->linelen++] = ch;
            continue;
        }
        size_t L = c->linelen;
        if (L && c->line[L - 1] == '\r') L--;
        c->linelen = 0;
        if (L == 0) { /* dispatch */
            if (c->datalen || c->evtype[0]) {
                grow(&c->data, &c->datacap, c->datalen + 1);
                c->data[c->datalen] = 0;
                on_event(c->s, c->evtype[0] ? c->evtype : "message", c->data, c->datalen);
                if (c->fd < 0) return; /* closed by the handler */
            }
            c->datalen = 0;
            c->evtype[0] = 0;
            continue;
        }
        if (c->line[0] == ':') continue; /* comment (keep-alive) */
        char *colon = memchr(c->line, ':', L);
        size_t fl = colon ? (size_t)(colon - c->line) : L;
        const char *val = colon ? colon + 1 : c->line + L;
        size_t vl = colon ? L - fl - 1 : 0;
        if (vl && *val == ' ') { val++; vl--; }
        if (fl == 5 && !memcmp(c->line, "event", 5)) {
            if (vl >= sizeof c->evtype) vl = sizeof c->evtype - 1;
            memcpy(c->evtype, val, vl);
            c->evtype[vl] = 0;
        } else if (fl == 4 && !memcmp(c->line, "data", 4)) {
            grow(&c->data, &c->datacap, c->datalen + vl + 2);
            if (c->datalen) c->data[c->datalen++] = '\n';
            memcpy(c->data + c->datalen, val, vl);
            c->datalen += vl;
        }
    }
}

/* processes buffered input of a stream connection */
static void stream_input(conn_t *c) {
    for (;;) {
        if (c->fd < 0) return;
        if (!c->in_body) {
            size_t n = parse_head(c);
            if (!n) return;
            consume(c, n);
            on_stream_head(c->s, c);
            continue;
        }
        if (!c->chunked) {
            if (!c->inlen) return;
            size_t n = c->inlen;
            char *tmp = malloc(n);
            memcpy(tmp, c->in, n);
            c->inlen = 0;
            sse_feed(c, tmp, n);
            free(tmp);
            return;
        }
        if (c->cstate == CS_SIZE) {
            char *e = memmem(c->in, c->inlen, "\r\n", 2);
            if (!e) return;
            long sz = strtol(c->in, NULL, 16);
            consume(c, (size_t)(e - c->in) + 2);
            if (sz == 0) {
                c->cstate = CS_END;
                on_conn_lost(c->s, c, "stream ended (last chunk)");
                return;
            }
            c->crem = sz;
            c->cstate = CS_DATA;
        } else if (c->cstate == CS_DATA) {
            if (!c->inlen) return;
            size_t n = c->inlen < (size_t)c->crem ? c->inlen : (size_t)c->crem;
            char *tmp = malloc(n);
            memcpy(tmp, c->in, n);
            consume(c, n);
            c->crem -= (long)n;
            if (c->crem == 0) c->cstate = CS_CRLF;
            sse_feed(c, tmp, n);
            free(tmp);
        } else if (c->cstate == CS_CRLF) {
            if (c->inlen < 2) return;
            consume(c, 2);
            c->cstate = CS_SIZE;
        } else {
            return;
        }
    }
}

static void post_input(conn_t *c) {
    for (;;) {
        if (c->fd < 0) return;
        if (!c->in_body) {
            size_t n = parse_head(c);
            if (!n) return;
            consume(c, n);
            if (c->chunked) { /* not expected for 202/4xx from this gateway; keep it simple */
                c->clen = 0;
            }
            if (c->clen < 0) c->clen = 0;
        }
        if ((long)c->inlen < c->clen) return;
        char body[301];
        size_t bl = c->clen < 300 ? (size_t)c->clen : 300;
        memcpy(body, c->in, bl);
        body[bl] = 0;
        consume(c, (size_t)c->clen);
        c->in_body = 0;
        /* stash body for the sample */
        grow(&c->data, &c->datacap, bl + 1);
        memcpy(c->data, body, bl + 1);
        c->datalen = bl;
        on_post_response(c->s, c);
    }
}

/* reads everything available; returns 0, or -1 on EOF/error (connection closed and reported) */
static int conn_read(conn_t *c) {
    static char rb[65536];
    for (;;) {
        ssize_t r = read(c->fd, rb, sizeof rb);
        if (r > 0) {
            grow(&c->in, &c->incap, c->inlen + (size_t)r);
            memcpy(c->in + c->inlen, rb, (size_t)r);
            c->inlen += (size_t)r;
            if (c->role == R_STREAM) stream_input(c);
            else post_input(c);
            if (c->fd < 0) return -1;
            continue;
        }
        if (r == 0) {
            on_conn_lost(c->s, c, "connection closed by the gateway");
            return -1;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return 0;
        on_conn_lost(c->s, c, strerror(errno));
        return -1;
    }
}

static void handle_io(conn_t *c, uint32_t evs) {
    if (c->connecting) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            char m[128];
            snprintf(m, sizeof m, "connect: %s", strerror(err));
            on_conn_lost(c->s, c, m);
            return;
        }
        c->connecting = 0;
        if (c->outlen > c->outoff) {
            ep_set(c, EPOLLIN | EPOLLOUT);
        } else {
            ep_set(c, EPOLLIN);
        }
    }
    if (evs & EPOLLOUT) {
        if (flush_out(c) < 0) {
            on_conn_lost(c->s, c, strerror(errno));
            return;
        }
    }
    if (evs & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_read(c);
}

/* ------------------------------------------------------------------ load mode */

static int mode_idle;
static sess_t *sessions;
static int nsess;
static double t_measure0 = -1, t_measure1 = -1; /* window */
static int sending = 0;                         /* new tools/call allowed */
static long measured;
static uint32_t *lat;
static size_t nlat, latcap;
static long idle_ready, idle_pending, idle_errors, idle_server_closed;
static char endpoint_prefix[64] = "/messages?sessionId=";

static void post_json(sess_t *s, const char *what, const char *body) {
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
                     s->path, hosthdr, strlen(body), body);
    s->await_202 = 1;
    snprintf(s->last, sizeof s->last, "%s", what);
    if (conn_send(s->po, req, (size_t)n) < 0) on_conn_lost(s, s->po, strerror(errno));
}

static void send_call(sess_t *s) {
    char body[1024];
    long id = s->next_id++;
    snprintf(body, sizeof body,
             "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
             "\"arguments\":{\"text\":\"%s\"}}}",
             id, text);
    char what[64];
    snprintf(what, sizeof what, "tools/call echo id %ld", id);
    s->inflight_id = id;
    s->sent_at = now_us();
    post_json(s, what, body);
}

/* sends whatever the session may send now */
static void pump(sess_t *s) {
    if (s->state == S_DEAD || s->await_202 || !s->po || s->po->fd < 0) return;
    if (s->queued_notify) {
        s->queued_notify = 0;
        post_json(s, "notifications/initialized", "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
        return;
    }
    if (s->state == S_RUN && sending && s->inflight_id == 0) send_call(s);
}

static void kill_session(sess_t *s) {
    s->state = S_DEAD;
    if (s->st) conn_close(s->st);
    if (s->po) conn_close(s->po);
}

static void on_stream_head(sess_t *s, conn_t *c) {
    if (c->status != 200) {
        if (mode_idle) {
            idle_errors++;
            note("GET /sse: expected 200 text/event-stream, got HTTP %d", c->status);
            idle_pending--;
            conn_close(c);
            s->state = S_DEAD;
            return;
        }
        err_setup++;
        note("GET /sse: expected 200 text/event-stream, got HTTP %d", c->status);
        kill_session(s);
    }
}

static long json_id(const char *d) {
    const char *p = strstr(d, "\"id\"");
    if (!p) return -1;
    p += 4;
    while (*p == ' ') p++;
    if (*p != ':') return -1;
    p++;
    while (*p == ' ') p++;
    if (!isdigit((unsigned char)*p)) return -1;
    return atol(p);
}

static void on_event(sess_t *s, const char *type, const char *data, size_t dlen) {
    (void)dlen;
    if (!strcmp(type, "endpoint")) {
        if (s->state != S_WAIT_ENDPOINT) return;
        size_t pl = strlen(endpoint_prefix);
        int ok = strlen(data) == pl + 32 && !strncmp(data, endpoint_prefix, pl);
        for (size_t i = pl; ok && data[i]; i++)
            if (!isxdigit((unsigned char)data[i]) || isupper((unsigned char)data[i])) ok = 0;
        if (mode_idle) {
            idle_pending--;
            if (!ok) {
                idle_errors++;
                note("GET /sse: expected endpoint data '%s<32 lowercase hex>', got '%.200s'", endpoint_prefix, data);
                conn_close(s->st);
                s->state = S_DEAD;
                return;
            }
            idle_ready++;
            s->state = S_IDLE_DONE;
            ep_del(s->st); /* stay idle; checked for EOF before closing */
            return;
        }
        if (!ok) {
            err_setup++;
            note("GET /sse: expected endpoint data '%s<32 lowercase hex>', got '%.200s'", endpoint_prefix, data);
            kill_session(s);
            return;
        }
        snprintf(s->path, sizeof s->path, "%s", data);
        s->state = S_WAIT_INIT;
        s->sent_at = now_us();
        post_json(s, "initialize id 1", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                     "\"2024-11-05\",\"capabilities\":{},\"clientInfo\":{\"name\":\"switchyard-bench-sse\","
                     "\"version\":\"1\"}}}");
        return;
    }
    if (strcmp(type, "message") != 0) return;
    long id = json_id(data);
    if (id < 0) return; /* a notification or server request: not ours */
    double t = now_us();
    if (s->state == S_WAIT_INIT) {
        if (id != 1 || !strstr(data, "\"result\"")) {
            err_setup++;
            note("POST %s initialize id 1: expected stream event: message with id 1 and a result, got '%.300s'", s->path, data);
            kill_session(s);
            return;
        }
        s->state = S_RUN;
        s->queued_notify = 1;
        pump(s);
        return;
    }
    if (s->state != S_RUN) return;
    if (id != s->inflight_id) {
        late_answers++; /* an answer to a request we already gave up on (timeout) */
        return;
    }
    int good = strstr(data, "\"result\"") && strstr(data, text) && !strstr(data, "\"error\"");
    if (!good) {
        err_answer++;
        note("POST %s tools/call echo id %ld: expected stream event: message with that id and a result echoing '%s', got '%.300s'",
             s->path, id, text, data);
    } else if (t_measure0 > 0 && t >= t_measure0 && (t_measure1 < 0 || t < t_measure1)) {
        measured++;
        if (nlat == latcap) {
            latcap = latcap ? latcap * 2 : 65536;
            lat = realloc(lat, latcap * sizeof *lat);
            if (!lat) die("out of memory");
        }
        double d = t - s->sent_at;
        lat[nlat++] = d < 0 ? 0 : (uint32_t)(d + 0.5);
    }
    if (s->await_202) answer_before_202++;
    s->inflight_id = 0;
    pump(s);
}

static void on_post_response(sess_t *s, conn_t *c) {
    if (c->status != 202) {
        err_post++;
        note("POST %s (%s): expected 202 with an empty body, got HTTP %d body '%s'", s->path, s->last, c->status,
             c->data ? c->data : "");
        /* the answer will not come on the stream */
        if (s->state == S_WAIT_INIT) {
            kill_session(s);
            return;
        }
        s->inflight_id = 0;
    }
    s->await_202 = 0;
    if (c->conn_close) { /* reconnect the POST connection */
        conn_close(c);
        if (conn_open(c) < 0) {
            err_closed++;
            kill_session(s);
            return;
        }
    }
    pump(s);
}

static void on_conn_lost(sess_t *s, conn_t *c, const char *why) {
    if (mode_idle) {
        if (s->state == S_WAIT_ENDPOINT) {
            idle_pending--;
            idle_errors++;
            note("GET /sse: %s before the endpoint event", why);
        }
        conn_close(c);
        s->state = S_DEAD;
        return;
    }
    if (s->state == S_DEAD) return;
    if (c->role == R_STREAM) {
        if (sending || s->state != S_RUN) {
            err_closed++;
            note("GET /sse (session %s, last POST: %s): expected the stream to stay open, got %s", s->path[0] ? s->path : "(no endpoint yet)",
                 s->last[0] ? s->last : "none", why);
        }
        kill_session(s);
        return;
    }
    /* POST connection: reconnect once per loss; the in-flight request (if its 202 is missing) is abandoned */
    err_closed++;
    note("POST %s (%s): expected a response on the keep-alive connection, got %s", s->path, s->last, why);
    conn_close(c);
    s->await_202 = 0;
    if (s->state == S_WAIT_INIT || conn_open(c) < 0) {
        kill_session(s);
        return;
    }
    s->inflight_id = 0;
    pump(s);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double p) {
    if (!nlat) return 0;
    size_t i = (size_t)(p * nlat);
    if (i >= nlat) i = nlat - 1;
    return lat[i];
}

static void loop_once(int timeout_ms) {
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->fd < 0) continue;
        handle_io(c, evs[i].events);
    }
}

static void open_stream(sess_t *s) {
    static const char *getfmt = "GET /sse HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    char req[256];
    int n = snprintf(req, sizeof req, getfmt, hosthdr);
    if (conn_open(s->st) < 0) {
        on_conn_lost(s, s->st, strerror(errno));
        return;
    }
    conn_send(s->st, req, (size_t)n);
}

static int run_load(int gpid, double dur_s, double warm_s) {
    sessions = calloc((size_t)nsess, sizeof *sessions);
    for (int i = 0; i < nsess; i++) {
        sess_t *s = &sessions[i];
        s->idx = i;
        s->next_id = 2;
        s->st = calloc(1, sizeof(conn_t));
        s->po = calloc(1, sizeof(conn_t));
        s->st->role = R_STREAM;
        s->po->role = R_POST;
        s->st->s = s->po->s = s;
        s->st->fd = s->po->fd = -1;
        s->state = S_WAIT_ENDPOINT;
        open_stream(s);
        if (s->state != S_DEAD && conn_open(s->po) < 0) {
            err_setup++;
            note("POST connection: connect: %s", strerror(errno));
            kill_session(s);
        }
    }
    /* setup: wait until every session is initialized (or dead) */
    double t0 = now_us();
    for (;;) {
        int waiting = 0, dead = 0;
        for (int i = 0; i < nsess; i++) {
            if (sessions[i].state == S_DEAD) dead++;
            else if (sessions[i].state != S_RUN || sessions[i].queued_notify || sessions[i].await_202) waiting++;
        }
        if (!waiting) break;
        if (now_us() - t0 > SETUP_TIMEOUT_US) {
            fprintf(stderr, "sse_load: %d of %d sessions not initialized after 30 s (%d dead)\n", waiting, nsess, dead);
            err_setup += waiting;
            break;
        }
        loop_once(50);
    }
    int alive = 0;
    for (int i = 0; i < nsess; i++) alive += sessions[i].state == S_RUN;
    if (!alive) {
        if (sample[0]) printf("BENCH_SSE_SAMPLE %s\n", sample);
        die("no session could be set up (setup errors %ld)", err_setup);
    }
    fprintf(stderr, "sse_load: %d/%d sessions initialized in %.0f ms\n", alive, nsess, (now_us() - t0) / 1000);

    static snap_t a, b;
    sending = 1;
    for (int i = 0; i < nsess; i++) pump(&sessions[i]);
    double tw = now_us() + warm_s * 1e6;
    t_measure0 = -1;
    for (;;) {
        double t = now_us();
        if (t_measure0 < 0 && t >= tw) {
            take_snap(gpid, &a);
            t_measure0 = a.wall;
        }
        if (t_measure0 > 0 && t >= t_measure0 + dur_s * 1e6) break;
        loop_once(20);
        t = now_us();
        for (int i = 0; i < nsess; i++) {
            sess_t *s = &sessions[i];
            if (s->state == S_RUN && s->inflight_id && t - s->sent_at > REQ_TIMEOUT_US) {
                err_timeout++;
                note("POST %s tools/call echo id %ld: expected stream event: message with that id, got no answer within 5 s (POST's 202 %s)",
                     s->path, s->inflight_id, s->await_202 ? "missing too" : "received");
                s->inflight_id = 0;
                if (s->await_202) { /* POST connection stuck: reconnect */
                    conn_close(s->po);
                    s->await_202 = 0;
                    if (conn_open(s->po) < 0) { kill_session(s); continue; }
                }
                pump(s);
            }
        }
    }
    take_snap(gpid, &b);
    t_measure1 = b.wall;
    sending = 0;
    /* drain in-flight answers (not counted), at most 2 s */
    double td = now_us();
    for (;;) {
        int busy = 0;
        for (int i = 0; i < nsess; i++)
            if (sessions[i].state == S_RUN && (sessions[i].inflight_id || sessions[i].await_202)) busy++;
        if (!busy || now_us() - td > 2e6) break;
        loop_once(20);
    }
    int alive_end = 0;
    for (int i = 0; i < nsess; i++) alive_end += sessions[i].state == S_RUN;
    for (int i = 0; i < nsess; i++) kill_session(&sessions[i]);

    long long child = 0;
    int active = 0;
    for (int i = 0; i < b.ndesc; i++) {
        long long before = 0;
        for (int j = 0; j < a.ndesc; j++)
            if (a.desc[j].pid == b.desc[i].pid) { before = a.desc[j].ticks; break; }
        long long d = b.desc[i].ticks - before;
        if (d > 0) { child += d; active++; }
    }
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    double wall = b.wall - a.wall;
    long errors = err_setup + err_post + err_answer + err_closed + err_timeout;
    if (sample[0]) printf("BENCH_SSE_SAMPLE %s\n", sample);
    printf("BENCH_SSE sessions=%d alive_end=%d requests=%ld duration_us=%.0f rps=%.0f p50_us=%u p90_us=%u p99_us=%u "
           "max_us=%u errors=%ld err_setup=%ld err_post=%ld err_answer=%ld err_closed=%ld err_timeout=%ld "
           "answer_before_202=%ld late_answers=%ld gw_ticks=%lld gw_reaped_ticks=%lld child_ticks=%lld "
           "child_pids=%d child_active=%d self_cpu_us=%.0f wall_us=%.0f\n",
           nsess, alive_end, measured, wall, measured / (wall / 1e6), pct(0.50), pct(0.90), pct(0.99),
           nlat ? lat[nlat - 1] : 0, errors, err_setup, err_post, err_answer, err_closed, err_timeout,
           answer_before_202, late_answers, b.gw - a.gw, b.reaped - a.reaped, child, b.ndesc, active,
           b.self_cpu - a.self_cpu, wall);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ idle mode */

static sess_t *isess;
static int icap, iopen; /* sessions allocated / opened so far */

/* opens sessions until `target` are open (endpoint received) or deadline; returns ms taken */
static double idle_open_to(int target, int batch, double deadline) {
    double t0 = now_us();
    int want = target - (int)idle_ready;
    int started = 0;
    while ((int)idle_ready < target) {
        while (idle_pending < batch && started < want && iopen < icap) {
            sess_t *s = &isess[iopen++];
            s->st = calloc(1, sizeof(conn_t));
            s->st->role = R_STREAM;
            s->st->s = s;
            s->st->fd = -1;
            s->state = S_WAIT_ENDPOINT;
            idle_pending++;
            started++;
            open_stream(s);
        }
        if (idle_pending == 0 && started >= want) break; /* errors: cannot reach target */
        if (now_us() > deadline) {
            idle_errors += idle_pending;
            note("idle: deadline passed with %ld connections still waiting for the endpoint event", idle_pending);
            for (int i = 0; i < iopen; i++)
                if (isess[i].state == S_WAIT_ENDPOINT) { conn_close(isess[i].st); isess[i].state = S_DEAD; }
            idle_pending = 0;
            break;
        }
        loop_once(20);
    }
    return (now_us() - t0) / 1000;
}

static void idle_close_all(void) {
    char buf[4096];
    for (int i = 0; i < iopen; i++) {
        sess_t *s = &isess[i];
        if (s->state == S_IDLE_DONE) {
            /* did the gateway close it while it was idle? (keep-alive comments are fine) */
            for (;;) {
                ssize_t r = recv(s->st->fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r > 0) continue;
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) idle_server_closed++;
                break;
            }
        }
        if (s->st) {
            conn_close(s->st);
            free(s->st->in);
            free(s->st->line);
            free(s->st->data);
            free(s->st->out);
            free(s->st);
            s->st = NULL;
        }
        s->state = S_DEAD;
    }
    iopen = 0;
    idle_ready = 0;
    idle_pending = 0;
}

static void idle_report(const char *step, int gpid, double ms) {
    /* give the gateway a moment to finish handling what we did */
    usleep(300000);
    printf("BENCH_IDLE step=%s open=%ld rss_kb=%ld fds=%d ms=%.0f errors=%ld\n", step, idle_ready, rss_kb(gpid),
           fd_count(gpid), ms, idle_errors);
    fflush(stdout);
}

/* after closing: wait until the gateway's fd count is back to <= base_fds + slack (at most 10 s) */
static double idle_wait_fds(int gpid, int base_fds) {
    double t0 = now_us();
    while (now_us() - t0 < 10e6) {
        int f = fd_count(gpid);
        if (f >= 0 && f <= base_fds + 2) break;
        usleep(50000);
    }
    return (now_us() - t0) / 1000;
}

static int run_idle(int gpid, const char *steps, int round2, int batch, double deadline_s, int warm) {
    double deadline = now_us() + deadline_s * 1e6;
    int targets[16], nt = 0, maxt = round2;
    for (const char *p = steps; *p && nt < 16;) {
        targets[nt] = atoi(p);
        if (targets[nt] > maxt) maxt = targets[nt];
        nt++;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    if (warm > maxt) maxt = warm;
    icap = maxt;
    isess = calloc((size_t)icap, sizeof *isess);
    int base_fds = fd_count(gpid);
    if (base_fds < 0) die("cannot read /proc/%d/fd", gpid);
    if (warm > 0) { /* one-time costs (first connection, lazy initialisation) are not per session */
        idle_report("pre", gpid, 0);
        double ms = idle_open_to(warm, batch, deadline);
        idle_close_all();
        ms += idle_wait_fds(gpid, base_fds);
        idle_report("warmup", gpid, ms);
    }
    idle_report("base", gpid, 0);
    for (int i = 0; i < nt; i++) {
        char name[32];
        snprintf(name, sizeof name, "open%d", targets[i]);
        double ms = idle_open_to(targets[i], batch, deadline);
        idle_report(name, gpid, ms);
    }
    idle_close_all();
    double ms = idle_wait_fds(gpid, base_fds);
    idle_report("closed1", gpid, ms);
    if (round2 > 0) {
        char name[32];
        snprintf(name, sizeof name, "round2_open%d", round2);
        ms = idle_open_to(round2, batch, deadline);
        idle_report(name, gpid, ms);
        idle_close_all();
        ms = idle_wait_fds(gpid, base_fds);
        idle_report("closed2", gpid, ms);
    }
    /* RSS once the gateway had time for its housekeeping (Switchyard hands freed heap back to the kernel
       after a burst of closes, on its next quiet janitor tick) */
    sleep(3);
    idle_report("settled", gpid, 3000);
    if (sample[0]) printf("BENCH_SSE_SAMPLE %s\n", sample);
    printf("BENCH_IDLE_DONE errors=%ld server_closed=%ld\n", idle_errors, idle_server_closed);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ main */

static void usage(void) {
    fprintf(stderr,
            "usage: sse_load load -p PORT -c SESSIONS [-d SECONDS] [-w WARMUP_S] [-x TEXT] [-g GATEWAY_PID] [-H HOST] [-E PREFIX]\n"
            "       sse_load idle -p PORT -g GATEWAY_PID [-n 1000,10000] [-r 10000] [-b 500] [-T DEADLINE_S] [-W WARM] [-H HOST] [-E PREFIX]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *mode = argv[1];
    if (strcmp(mode, "load") && strcmp(mode, "idle")) usage();
    mode_idle = !strcmp(mode, "idle");
    int gpid = 0, round2 = 10000, batch = 500, warm_sessions = 0;
    double dur = 5, warm = 1, deadline = 55;
    const char *steps = "1000,10000";
    nsess = 1;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "p:c:d:w:x:g:H:n:r:b:T:W:E:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': nsess = atoi(optarg); break;
        case 'd': dur = atof(optarg); break;
        case 'w': warm = atof(optarg); break;
        case 'x': text = optarg; break;
        case 'g': gpid = atoi(optarg); break;
        case 'H': host = optarg; break;
        case 'n': steps = optarg; break;
        case 'r': round2 = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'T': deadline = atof(optarg); break;
        case 'W': warm_sessions = atoi(optarg); break;
        case 'E': snprintf(endpoint_prefix, sizeof endpoint_prefix, "%s", optarg); break;
        default: usage();
        }
    }
    if (port <= 0 || nsess <= 0 || batch <= 0) usage();
    if (mode_idle && gpid <= 0) usage();
    for (const char *p = text; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) die("-x TEXT must not contain quotes, backslashes or control characters");
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("-H must be an IPv4 address");
    snprintf(hosthdr, sizeof hosthdr, "%s:%d", host, port);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));
    if (mode_idle) {
        long need = 0;
        for (const char *p = steps; p; p = strchr(p, ',')) {
            if (*p == ',') p++;
            if (atol(p) > need) need = atol(p);
        }
        if (round2 > need) need = round2;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (long)rl.rlim_cur < need + 64)
            die("file limit %ld is too low for %ld connections (raise ulimit -n)", (long)rl.rlim_cur, need);
        return run_idle(gpid, steps, round2, batch, deadline, warm_sessions);
    }
    return run_load(gpid, dur, warm);
}
