// Umbrella header for libevent plus the process APIs the I/O layer needs.
// Every C module must see the same feature macros (libevent-notes B6): libevent's event-config.h
// defines _GNU_SOURCE, so both shims define it first.
#ifndef SWITCHYARD_CLIBEVENT_SHIM_H
#define SWITCHYARD_CLIBEVENT_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <spawn.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <time.h>

// evsignal_new is a macro.
static inline struct event *sy_evsignal_new(struct event_base *b, int sig, event_callback_fn cb, void *arg) {
    return event_new(b, sig, EV_SIGNAL | EV_PERSIST, cb, arg);
}
// W* status macros.
static inline int sy_wifexited(int s) { return WIFEXITED(s); }
static inline int sy_wexitstatus(int s) { return WEXITSTATUS(s); }
static inline int sy_wifsignaled(int s) { return WIFSIGNALED(s); }
static inline int sy_wtermsig(int s) { return WTERMSIG(s); }
// environ is not exported to Swift (B7).
extern char **environ;
static inline char *const *sy_environ(void) { return environ; }
// errno as a plain read (Glibc's errno is a macro over a TLS accessor).
static inline int sy_errno(void) { return errno; }
#endif
