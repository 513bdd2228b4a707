// Umbrella header for libevent plus the process APIs the I/O layer needs.
//
// Feature macros (libevent-notes B6): every Clang module that textually includes a glibc header must see
// the same feature macros as Swift's own Glibc module, which defines none. libevent's event-config.h
// defines _GNU_SOURCE, so every glibc header libevent (or we) use is included FIRST, before any event2
// header, and GNU-only functions are declared by hand below. Verify with a clean build
// (`rm -rf .build && swift build`): an incremental build can hide a mismatch.
#ifndef SWITCHYARD_CLIBEVENT_SHIM_H
#define SWITCHYARD_CLIBEVENT_SHIM_H
#include <sys/types.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/prctl.h>
#include <malloc.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <event2/bufferevent_ssl.h>

// GNU extensions, declared by hand (see above).
extern int pipe2(int pipefd[2], int flags);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

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
// prctl is variadic (not callable from Swift): the one call we need, with a fixed signature.
static inline int sy_set_parent_death_signal(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }
// errno as a plain read (Glibc's errno is a macro over a TLS accessor).
static inline int sy_errno(void) { return errno; }
#endif
