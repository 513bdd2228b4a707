/*
 * raw_echo: the physical HTTP limit for the benchmark. A minimal libevent (evhttp) server that answers
 * every POST /mcp with 200 and a fixed reply of the same size and shape as the gateway's answer to
 * tools/call echo, without any MCP work: no JSON parsing, no session lookup, no child.
 *
 *   raw_echo -p PORT -b BODY_FILE [-c CONTENT_TYPE] [-k] [--cert PEM --key PEM] [--minimal]
 *
 * Reply: status 200, headers Content-Type (default text/event-stream), Cache-Control: no-cache, no-transform,
 * X-Accel-Buffering: no, the request's Mcp-Session-Id echoed back (wrk's per-connection session bookkeeping
 * uses it), and BODY_FILE's bytes. By default the body is sent chunked in one chunk plus the last chunk, like
 * the gateway's SSE answer (`-k`: Content-Length instead, for a JSON-shaped answer). Anything other than
 * POST /mcp gets 404.
 * Listener: 127.0.0.1 only, backlog 4096, TCP_NODELAY (set on the listening socket; Linux accepted sockets inherit
 * it, as in the gateway).
 * With --cert/--key: TLS (libevent_openssl, OpenSSL defaults, TLS 1.2+).
 * Prints "raw_echo listening port=N" on stderr once bound (-p 0 picks a free port). SIGTERM/SIGINT stop it.
 *
 * --minimal (plain only): no evhttp. One EV_READ|EV_PERSIST event per connection, read() into a fixed
 * per-connection buffer, find the end of the head and Content-Length/Mcp-Session-Id with memmem/strncasecmp,
 * answer with one write() (EV_WRITE only if the kernel buffer is full). This is the cheapest way to answer
 * these requests on libevent, and the same I/O strategy as the gateway's own HTTP layer: the honest floor
 * now that the gateway no longer uses evhttp. Requests are trusted (benchmark traffic only).
 *
 * --minimal --children N -- CHILD ARGS...: the minimal C *gateway*. N stdio children are spawned at start
 * (SCHED_BATCH, like Switchyard's default); each accepted connection owns one (like the dedicated pool), its
 * request bodies are written to the child's stdin as one line, and each stdout line goes back as the same
 * chunked `event: message` answer. No MCP work at all (no session, no JSON scan, no id mapping): the floor
 * for a gateway that puts a child process behind every connection. The body file is still required (unused).
 *
 * Build: cc -O2 -o raw_echo raw_echo.c -levent_core -levent_extra [-DRAW_ECHO_TLS -levent_openssl -lssl -lcrypto]
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#ifdef RAW_ECHO_TLS
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
static SSL_CTX *ssl_ctx;
#endif

static char *body;
static size_t body_len;
static const char *ctype = "text/event-stream";
static int use_clen;

static void die(const char *m) {
    fprintf(stderr, "raw_echo: %s\n", m);
    exit(1);
}

static void on_request(struct evhttp_request *req, void *arg) {
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || !uri || strncmp(uri, "/mcp", 4) != 0 ||
        (uri[4] && uri[4] != '?' && uri[4] != '/')) {
        evhttp_send_error(req, 404, "Not Found");
        return;
    }
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", ctype);
    if (!use_clen) {
        evhttp_add_header(out, "Cache-Control", "no-cache, no-transform");
        evhttp_add_header(out, "X-Accel-Buffering", "no");
    }
    const char *sid = evhttp_find_header(in, "Mcp-Session-Id");
    if (sid) evhttp_add_header(out, "Mcp-Session-Id", sid);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_reference(b, body, body_len, NULL, NULL);
    if (use_clen) {
        evhttp_send_reply(req, 200, "OK", b);
    } else {
        evhttp_send_reply_start(req, 200, "OK");
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
    }
    evbuffer_free(b);
}

static void nodelay(evutil_socket_t fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct bufferevent *bev_plain(struct event_base *base, void *arg) {
    (void)arg;
    return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
}

#ifdef RAW_ECHO_TLS
static struct bufferevent *bev_tls(struct event_base *base, void *arg) {
    (void)arg;
    SSL *ssl = SSL_new(ssl_ctx);
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}
#endif

static struct evhttp *http;

/* ---- --minimal: one connection = one fd, one read event, a fixed buffer ---- */
struct kid;
struct mconn {
    int fd;
    struct event *rev, *wev;
    struct kid *kid; /* --child: this connection's own child (like Switchyard's dedicated pool) */
    int inflight;    /* --child: a request is with the child */
    char sid[80];    /* --child: the request's Mcp-Session-Id, echoed on the answer */
    size_t have;
    char in[16384];
    char *pending; /* unwritten reply bytes (malloc'd), if the kernel buffer was full */
    size_t pending_len;
};

struct kid {
    pid_t pid;
    int in, out;
    struct event *rev;
    struct mconn *conn;
    size_t have;
    char buf[65536];
};

static void mconn_close(struct mconn *c) {
    event_free(c->rev);
    if (c->wev) event_free(c->wev);
    close(c->fd);
    free(c->pending);
    free(c);
}

static void mconn_write(struct mconn *c, const char *p, size_t n) {
    if (c->pending) { /* already backed up: append */
        c->pending = realloc(c->pending, c->pending_len + n);
        memcpy(c->pending + c->pending_len, p, n);
        c->pending_len += n;
        return;
    }
    ssize_t w = write(c->fd, p, n);
    if (w < 0) w = 0;
    if ((size_t)w < n) {
        c->pending = malloc(n - (size_t)w);
        memcpy(c->pending, p + w, n - (size_t)w);
        c->pending_len = n - (size_t)w;
        event_add(c->wev, NULL);
    }
}

static void mconn_writable(evutil_socket_t fd, short ev, void *arg) {
    (void)ev;
    struct mconn *c = arg;
    ssize_t w = write(fd, c->pending, c->pending_len);
    if (w < 0) {
        if (errno == EAGAIN) return;
        if (c->kid) c->kid->conn = NULL;
        mconn_close(c);
        return;
    }
    memmove(c->pending, c->pending + w, c->pending_len - (size_t)w);
    c->pending_len -= (size_t)w;
    if (!c->pending_len) {
        free(c->pending);
        c->pending = NULL;
        event_del(c->wev);
    }
}

static size_t header_value(const char *head, size_t hlen, const char *name, const char **val) {
    size_t nl = strlen(name);
    for (const char *p = head; p + nl + 1 < head + hlen;) {
        const char *eol = memchr(p, '\n', (size_t)(head + hlen - p));
        if (!eol) break;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            const char *e = eol;
            if (e > v && e[-1] == '\r') e--;
            *val = v;
            return (size_t)(e - v);
        }
        p = eol + 1;
    }
    return 0;
}

/* ---- --child: a pool of pre-spawned stdio children, one per connection while it lives ---- */
static struct kid *kids;
static int nkids;
static char **child_argv;

static void kid_readable(evutil_socket_t fd, short ev, void *arg);
static void mconn_process(struct mconn *c);

static void spawn_kids(struct event_base *base) {
    kids = calloc((size_t)nkids, sizeof *kids);
    for (int i = 0; i < nkids; i++) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) die("pipe2 failed");
        pid_t pid = fork();
        if (pid < 0) die("fork failed");
        if (pid == 0) {
            dup2(in[0], 0);
            dup2(out[1], 1);
            /* the same policy Switchyard gives its children by default (pool.scheduling: batch) */
            struct sched_param sp = {0};
            sched_setscheduler(0, SCHED_BATCH, &sp);
            execv(child_argv[0], child_argv);
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        evutil_make_socket_nonblocking(out[0]);
        kids[i].pid = pid;
        kids[i].in = in[1];
        kids[i].out = out[0];
        kids[i].rev = event_new(base, out[0], EV_READ | EV_PERSIST, kid_readable, &kids[i]);
        event_add(kids[i].rev, NULL);
    }
}

static void kid_readable(evutil_socket_t fd, short ev, void *arg) {
    (void)ev;
    struct kid *k = arg;
    ssize_t n = read(fd, k->buf + k->have, sizeof k->buf - k->have);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        die("a child's stdout closed");
    }
    k->have += (size_t)n;
    char *nl;
    while ((nl = memchr(k->buf, '\n', k->have))) {
        size_t line = (size_t)(nl - k->buf);
        struct mconn *c = k->conn;
        if (c && c->inflight) {
            static const char pre[] = "event: message\ndata: ";
            char date[64], out[70000];
            time_t t = time(NULL);
            struct tm tmv;
            gmtime_r(&t, &tmv);
            strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tmv);
            size_t olen = (size_t)snprintf(out, sizeof out,
                                           "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache, no-transform\r\n"
                                           "X-Accel-Buffering: no\r\nMcp-Session-Id: %s\r\nDate: %s\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s",
                                           ctype, c->sid, date, sizeof pre - 1 + line + 2, pre);
            memcpy(out + olen, k->buf, line);
            olen += line;
            memcpy(out + olen, "\n\n\r\n0\r\n\r\n", 9);
            olen += 9;
            c->inflight = 0;
            mconn_write(c, out, olen);
        }
        memmove(k->buf, nl + 1, k->have - line - 1);
        k->have -= line + 1;
        if (c && !c->inflight) mconn_process(c);
    }
}

static void mconn_readable(evutil_socket_t fd, short ev, void *arg) {
    (void)ev;
    struct mconn *c = arg;
    ssize_t n = read(fd, c->in + c->have, sizeof c->in - c->have);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        if (c->kid) c->kid->conn = NULL;
        mconn_close(c);
        return;
    }
    c->have += (size_t)n;
    mconn_process(c);
    if (c->have == sizeof c->in) { /* a head larger than the buffer: not benchmark traffic */
        if (c->kid) c->kid->conn = NULL;
        mconn_close(c);
    }
}

static void mconn_process(struct mconn *c) {
    char out[4096];
    size_t olen = 0;
    for (;;) {
        if (c->inflight) break;
        char *end = memmem(c->in, c->have, "\r\n\r\n", 4);
        if (!end) break;
        size_t hlen = (size_t)(end - c->in) + 4;
        const char *v;
        size_t cl = 0, vl = header_value(c->in, hlen, "Content-Length", &v);
        if (vl) cl = (size_t)strtoul(v, NULL, 10);
        if (hlen + cl > c->have) break;
        size_t sl = header_value(c->in, hlen, "Mcp-Session-Id", &v);
        if (c->kid) {
            /* forward the body as one line; the answer comes back through kid_readable */
            if (sl >= sizeof c->sid) sl = sizeof c->sid - 1;
            memcpy(c->sid, v, sl);
            c->sid[sl] = 0;
            struct iovec iov[2] = {{c->in + hlen, cl}, {"\n", 1}};
            if (writev(c->kid->in, iov, 2) != (ssize_t)(cl + 1)) die("short write to a child");
            c->inflight = 1;
            memmove(c->in, c->in + hlen + cl, c->have - hlen - cl);
            c->have -= hlen + cl;
            break;
        }
        char date[64];
        time_t t = time(NULL);
        struct tm tmv;
        gmtime_r(&t, &tmv);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tmv);
        olen += (size_t)snprintf(out + olen, sizeof out - olen,
                                 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache, no-transform\r\n"
                                 "X-Accel-Buffering: no\r\nMcp-Session-Id: %.*s\r\nDate: %s\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
                                 ctype, (int)sl, sl ? v : "", date, body_len);
        if (olen + body_len + 16 > sizeof out) break;
        memcpy(out + olen, body, body_len);
        olen += body_len;
        memcpy(out + olen, "\r\n0\r\n\r\n", 7);
        olen += 7;
        memmove(c->in, c->in + hlen + cl, c->have - hlen - cl);
        c->have -= hlen + cl;
        if (olen > sizeof out - 1024) break;
    }
    if (olen) mconn_write(c, out, olen);
}

static void on_accept_minimal(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg) {
    (void)sa;
    (void)len;
    (void)arg;
    struct event_base *base = evconnlistener_get_base(l);
    struct mconn *c = calloc(1, sizeof *c);
    c->fd = fd;
    if (nkids) {
        for (int i = 0; i < nkids && !c->kid; i++)
            if (!kids[i].conn) c->kid = &kids[i];
        if (!c->kid) { /* more connections than children: refuse */
            close(fd);
            free(c);
            return;
        }
        c->kid->conn = c;
    }
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, mconn_readable, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, mconn_writable, c);
    event_add(c->rev, NULL);
}

static void on_signal(evutil_socket_t s, short ev, void *arg) {
    (void)s;
    (void)ev;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv) {
    int port = 0;
    const char *bodyfile = NULL, *cert = NULL, *key = NULL;
    int minimal = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-p") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc) bodyfile = argv[++i];
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) ctype = argv[++i];
        else if (!strcmp(argv[i], "-k")) use_clen = 1;
        else if (!strcmp(argv[i], "--minimal")) minimal = 1;
        else if (!strcmp(argv[i], "--children") && i + 1 < argc) nkids = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--") && i + 1 < argc) {
            child_argv = &argv[i + 1];
            break;
        }
        else if (!strcmp(argv[i], "--cert") && i + 1 < argc) cert = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) key = argv[++i];
        else {
            fprintf(stderr, "usage: raw_echo -p PORT -b BODY_FILE [-c CONTENT_TYPE] [-k] [--cert PEM --key PEM] [--minimal "
                            "[--children N -- CHILD ARGS...]]\n");
            return 2;
        }
    }
    if (!bodyfile) die("-b BODY_FILE is required");
    if (minimal && (cert || key || use_clen)) die("--minimal is plain HTTP with a chunked reply only");
    if ((nkids > 0) != (child_argv != NULL) || (nkids && !minimal)) die("--children N and -- CHILD... go together, with --minimal");
    FILE *f = fopen(bodyfile, "rb");
    if (!f) die("cannot open the body file");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n <= 0) die("empty body file");
    body = malloc((size_t)n);
    if (fread(body, 1, (size_t)n, f) != (size_t)n) die("cannot read the body file");
    fclose(f);
    body_len = (size_t)n;
    signal(SIGPIPE, SIG_IGN);

    struct event_base *base = event_base_new();
    if (!base) die("event_base_new failed");
    http = evhttp_new(base);
    evhttp_set_gencb(http, on_request, NULL);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_POST | EVHTTP_REQ_GET | EVHTTP_REQ_DELETE);
    if (cert || key) {
#ifdef RAW_ECHO_TLS
        if (!cert || !key) die("--cert and --key go together");
        ssl_ctx = SSL_CTX_new(TLS_server_method());
        SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
        if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1)
            die("cannot load the certificate or key");
        evhttp_set_bevcb(http, bev_tls, NULL);
#else
        die("built without TLS (compile with -DRAW_ECHO_TLS -levent_openssl -lssl -lcrypto)");
#endif
    } else {
        evhttp_set_bevcb(http, bev_plain, NULL);
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    /* our own listener like the gateway's: backlog 4096, TCP_NODELAY on the listening socket (accepted sockets
       inherit it on Linux), handed to evhttp */
    struct evconnlistener *l = evconnlistener_new_bind(base, NULL, NULL,
                                                       LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                       4096, (struct sockaddr *)&sin, sizeof sin);
    if (!l) die("cannot listen on 127.0.0.1");
    nodelay(evconnlistener_get_fd(l));
    if (nkids) spawn_kids(base);
    if (minimal) {
        evconnlistener_set_cb(l, on_accept_minimal, NULL);
    } else if (!evhttp_bind_listener(http, l)) {
        die("evhttp_bind_listener failed");
    }
    struct sockaddr_in got;
    socklen_t gl = sizeof got;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&got, &gl);
    fprintf(stderr, "raw_echo listening port=%d tls=%s minimal=%s\n", ntohs(got.sin_port), cert ? "yes" : "no",
            minimal ? "yes" : "no");
    fflush(stderr);
    struct event *s1 = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *s2 = evsignal_new(base, SIGINT, on_signal, base);
    event_add(s1, NULL);
    event_add(s2, NULL);
    event_base_dispatch(base);
    if (minimal) evconnlistener_free(l);
    evhttp_free(http); /* frees the bound listener too (not bound in --minimal mode) */
    event_free(s1);
    event_free(s2);
    event_base_free(base);
    free(body);
    return 0;
}
