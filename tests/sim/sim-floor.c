/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --floor: the benchmark baseline.  Each VM's socket is one end of a
 * socketpair; the other ends are served by one forked process with one
 * libevent loop doing the least kvmid could do: frame, decode each event,
 * write the EVENT_REPLY it expects (the acks of one read in one write),
 * close on UNHOOK or on anything malformed.  No handshake, no probe. */

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <event2/buffer.h>

#include "sim.h"

#define FLOOR_IN_SIZE   (64U * 1024U)

typedef struct FloorConn {
        int fd;
        uint8_t *in;
        size_t in_len;
        struct evbuffer *out;
        struct event *ev_read, *ev_write;
        unsigned *n_open;
        struct event_base *base;
} FloorConn;

static void floor_conn_close(FloorConn *c) {
        if (c->fd < 0)
                return;
        event_del(c->ev_read);
        event_del(c->ev_write);
        c->fd = safe_close(c->fd);
        if (--*c->n_open == 0)
                event_base_loopexit(c->base, NULL);
}

static void floor_flush(FloorConn *c) {
        while (c->fd >= 0 && evbuffer_get_length(c->out) > 0) {
                int n = evbuffer_write(c->out, c->fd);
                if (n > 0)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                        event_add(c->ev_write, NULL);
                        return;
                }
                floor_conn_close(c);
                return;
        }
        if (c->fd >= 0)
                event_del(c->ev_write);
}

static void floor_on_write(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        floor_flush(userdata);
}

/* One whole message: the expected reply, or false to hang up. */
static bool floor_message(FloorConn *c, const uint8_t *msg, size_t len) {
        uint8_t out[KVMI_MSG_HDR_SIZE + KVMI_EVENT_REPLY_SIZE];
        KvmiEvent e;
        int n;

        if (kvmi_event_decode(&kvmi_numbering_v7, msg, len, &e) < 0 || e.event == KVMI_EV_UNHOOK)
                return false;
        n = kvmi_encode_event_reply(out, sizeof out, &kvmi_numbering_v7, e.seq, e.vcpu, e.event,
                                    KVMI_EVENT_ACTION_CONTINUE);
        return n > 0 && evbuffer_add(c->out, out, (size_t) n) == 0;
}

static void floor_on_read(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        FloorConn *c = userdata;
        size_t off = 0;
        KvmiMsgHdr h;
        ssize_t n;
        int r;

        n = read(c->fd, c->in + c->in_len, FLOOR_IN_SIZE - c->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                floor_conn_close(c);
                return;
        }
        c->in_len += (size_t) n;
        while ((r = kvmi_frame_check(c->in + off, c->in_len - off, KVMI_MAX_MSG_SIZE_V7, &h)) > 0) {
                if (!floor_message(c, c->in + off, (size_t) r)) {
                        floor_flush(c);
                        floor_conn_close(c);
                        return;
                }
                off += (size_t) r;
        }
        if (r < 0) {
                floor_conn_close(c);
                return;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        floor_flush(c);
}

static _noreturn_ void floor_serve(const int *far, size_t n) {
        struct event_base *base = event_base_new();
        FloorConn *conns = calloc(n, sizeof *conns);
        unsigned n_open = 0;

        if (!base || !conns)
                _exit(1);
        for (size_t i = 0; i < n; i++) {
                FloorConn *c = &conns[i];
                c->fd = far[i];
                c->base = base;
                c->n_open = &n_open;
                c->in = malloc(FLOOR_IN_SIZE);
                c->out = evbuffer_new();
                c->ev_read = event_new(base, c->fd, EV_READ | EV_PERSIST, floor_on_read, c);
                c->ev_write = event_new(base, c->fd, EV_WRITE | EV_PERSIST, floor_on_write, c);
                if (!c->in || !c->out || !c->ev_read || !c->ev_write)
                        _exit(1);
                event_add(c->ev_read, NULL);
                n_open++;
        }
        if (n_open > 0)
                event_base_dispatch(base);
        /* _exit: the parent's heap we inherited is not ours to free. */
        _exit(0);
}

int floor_start(size_t n, int *fds, pid_t *ret_pid) {
        _cleanup_free_ int *far = calloc(n ? n : 1, sizeof *far);
        pid_t parent = getpid(), pid;
        int sp[2];

        if (!far)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                        return negative_errno();
                fds[i] = sp[0];
                far[i] = sp[1];
        }
        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(1);
                for (size_t i = 0; i < n; i++) {
                        safe_close(fds[i]);
                        (void) fcntl(far[i], F_SETFL, O_NONBLOCK);
                }
                floor_serve(far, n);
        }
        for (size_t i = 0; i < n; i++) {
                safe_close(far[i]);
                (void) fcntl(fds[i], F_SETFL, O_NONBLOCK);
        }
        *ret_pid = pid;
        return 0;
}

int floor_wait(pid_t pid, uint64_t *ret_cpu_ns) {
        struct rusage ru;
        int status;

        if (pid <= 0)
                return 0;
        while (wait4(pid, &status, 0, &ru) < 0)
                if (errno != EINTR)
                        return negative_errno();
        if (ret_cpu_ns)
                *ret_cpu_ns = (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
                              (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
