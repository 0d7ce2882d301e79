/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Blocking varlink client: one call at a time, poll() for timeouts. */

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "macro.h"
#include "varlink-client.h"

#define CLIENT_DEFAULT_MAX_MESSAGE VARLINK_MAX_MESSAGE_CEILING
/* Replies come from a server we chose to talk to: allow more than the
 * daemon allows its clients, but still bounded. */
#define CLIENT_MAX_DEPTH 64
#define CLIENT_READ_CHUNK (64U * 1024U)

struct VarlinkClient {
        int fd;
        unsigned timeout_ms;            /* 0 = wait forever */
        size_t max_message;
        VarlinkReader *reader;          /* created on first read */
        /* Set once the stream is out of step with our calls (timeout, cb
         * stopped a "more" call early, garbage from the server): a late
         * reply would otherwise be taken as the answer to the next call. */
        bool broken;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkBlob *, varlink_blob_unref);

/* Takes the fd only on success; on failure it stays the caller's. */
int varlink_client_new_from_fd(int fd, VarlinkClient **ret) {
        VarlinkClient *c;

        assert(ret);

        if (fd < 0)
                return -EBADF;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = fd;
        c->max_message = CLIENT_DEFAULT_MAX_MESSAGE;

        *ret = c;
        return 0;
}

/* "unix:/path", "unix:@abstract", "unix:relative" or "/path".  A ";key=value"
 * suffix (libvarlink's ";mode=0666" listen option) is ignored. */
static int parse_address(const char *address, struct sockaddr_un *ret, socklen_t *ret_len) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path;
        size_t n;

        if (!address)
                return -EINVAL;

        if (strneq(address, "unix:", 5))
                path = address + 5;
        else if (address[0] == '/')
                path = address;
        else
                return -EINVAL;

        n = strcspn(path, ";");
        if (n == 0 || (path[0] == '@' && n == 1))
                return -EINVAL;
        if (n > sizeof(sa.sun_path) - (path[0] == '@' ? 0 : 1))
                return -ENAMETOOLONG;   /* paths need room for their NUL */
        if (memchr(path, 0, n))
                return -EINVAL;

        memcpy(sa.sun_path, path, n);
        if (path[0] == '@') {
                /* Abstract: leading NUL, no terminator, length is exact. */
                sa.sun_path[0] = 0;
                *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
        } else
                *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);

        *ret = sa;
        return 0;
}

/* A blocking connect() interrupted by a signal goes on in the background:
 * wait for it and fetch its result. */
static int connect_finish(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        socklen_t len = sizeof(int);
        int error = 0;

        for (;;) {
                if (poll(&p, 1, -1) >= 0)
                        break;
                if (errno != EINTR)
                        return -errno;
        }

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                return -errno;
        return error > 0 ? -error : 0;
}

int varlink_client_connect(const char *address, VarlinkClient **ret) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        socklen_t sa_len;
        VarlinkClient *c;
        int r;

        assert(ret);

        r = parse_address(address, &sa, &sa_len);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;

        if (connect(fd, (const struct sockaddr *) &sa, sa_len) < 0) {
                if (errno != EINTR)
                        return -errno;
                r = connect_finish(fd);
                if (r < 0)
                        return r;
        }

        r = varlink_client_new_from_fd(fd, &c);
        if (r < 0)
                return r;
        TAKE_FD(fd);

        *ret = c;
        return 0;
}

VarlinkClient *varlink_client_free(VarlinkClient *c) {
        if (!c)
                return NULL;
        safe_close(c->fd);
        varlink_reader_free(c->reader);
        free(c);
        return NULL;
}

int varlink_client_fd(const VarlinkClient *c) {
        return c ? c->fd : -EBADF;
}

void varlink_client_set_timeout(VarlinkClient *c, unsigned timeout_ms) {
        assert(c);
        c->timeout_ms = timeout_ms;
}

/* 0 restores the default (16 MiB).  Takes effect for the next reply that
 * starts on an empty buffer, which is every reply of a well-behaved server. */
void varlink_client_set_max_message(VarlinkClient *c, size_t max_message_size) {
        assert(c);

        c->max_message = max_message_size > 0 ? max_message_size : CLIENT_DEFAULT_MAX_MESSAGE;
        if (varlink_reader_pending(c->reader) == 0)
                c->reader = varlink_reader_free(c->reader);
}

/* ---- I/O with a deadline ------------------------------------------------ */

static uint64_t now_ms(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000U + (uint64_t) ts.tv_nsec / 1000000U;
}

/* UINT64_MAX: no deadline. */
static uint64_t deadline_from_now(const VarlinkClient *c) {
        return c->timeout_ms > 0 ? now_ms() + c->timeout_ms : UINT64_MAX;
}

/* Waits for 'events'; -ETIMEDOUT once the deadline passed. */
static int wait_for(int fd, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int timeout = -1, k;

                if (deadline != UINT64_MAX) {
                        uint64_t n = now_ms();

                        if (n >= deadline)
                                return -ETIMEDOUT;
                        timeout = (int) MIN(deadline - n, (uint64_t) INT32_MAX);
                }

                k = poll(&p, 1, timeout);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -ETIMEDOUT;
                /* POLLHUP/POLLERR: let the following send()/recv() tell. */
                return 0;
        }
}

static int send_all(VarlinkClient *c, const char *data, size_t len) {
        uint64_t deadline = deadline_from_now(c);

        while (len > 0) {
                ssize_t n;
                int r;

                /* Non-blocking per call so the timeout also covers a server
                 * that stopped reading; MSG_NOSIGNAL so a dead peer is EPIPE,
                 * not SIGPIPE. */
                n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EPIPE)
                                return -ECONNRESET;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                return -errno;

                        r = wait_for(c->fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }

                data += n;
                len -= (size_t) n;
        }

        return 0;
}

/* Reads and parses the next message; *ret_msg owns what reply borrows. */
static int read_reply(VarlinkClient *c, struct json_object **ret_msg, VarlinkReply *ret_reply) {
        _cleanup_json_ struct json_object *o = NULL;
        uint64_t deadline = deadline_from_now(c);
        VarlinkReply reply;
        const char *msg;
        size_t len;
        int r;

        if (!c->reader) {
                c->reader = varlink_reader_new(c->max_message);
                if (!c->reader)
                        return -ENOMEM;
        }

        for (;;) {
                void *p;
                ssize_t n;
                size_t space;

                r = varlink_reader_next(c->reader, &msg, &len);
                if (r < 0)
                        return r;
                if (r > 0)
                        break;

                r = varlink_reader_get_space(c->reader, CLIENT_READ_CHUNK, &p, &space);
                if (r < 0)
                        return r;

                n = recv(c->fd, p, space, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == ECONNRESET || errno == EPIPE)
                                return -ECONNRESET;
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                return -errno;

                        r = wait_for(c->fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n == 0)
                        return -ECONNRESET;     /* hung up, maybe mid-message */

                varlink_reader_advance(c->reader, (size_t) n);
        }

        r = varlink_message_parse(msg, len, CLIENT_MAX_DEPTH, &o);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return -EBADMSG;

        r = varlink_reply_from_json(o, &reply);
        if (r < 0)
                return r;

        *ret_reply = reply;
        *ret_msg = TAKE_PTR(o);
        return 0;
}

/* Encodes and sends a call; the reply reading is up to the caller. */
static int send_call(VarlinkClient *c, const char *method, struct json_object *parameters, unsigned flags) {
        _cleanup_(varlink_blob_unrefp) VarlinkBlob *b = NULL;
        int r;

        assert(c);

        if (c->broken)
                return -ENOTCONN;

        r = varlink_call_encode(method, parameters, flags, &b);
        if (r < 0)
                return r;

        r = send_all(c, varlink_blob_data(b), varlink_blob_size(b));
        if (r < 0)
                /* Part of the call may have gone out: the stream is lost. */
                c->broken = true;
        return r;
}

/* If ret_error is NULL, an error reply is returned as -EREMOTEIO. */
int varlink_client_call(VarlinkClient *c, const char *method, struct json_object *parameters,
                        struct json_object **ret_parameters, char **ret_error) {
        _cleanup_json_ struct json_object *msg = NULL;
        _cleanup_free_ char *error = NULL;
        VarlinkReply reply;
        int r;

        r = send_call(c, method, parameters, 0);
        if (r < 0)
                return r;

        /* A server that (wrongly) streams to a plain call: the last reply
         * is the answer. */
        for (;;) {
                r = read_reply(c, &msg, &reply);
                if (r < 0) {
                        c->broken = true;
                        return r;
                }
                if (!reply.continues || reply.error)
                        break;
                json_object_put(TAKE_PTR(msg));
        }

        if (reply.error) {
                if (!ret_error)
                        return -EREMOTEIO;
                error = strdup(reply.error);
                if (!error)
                        return -ENOMEM;
        }

        if (ret_parameters)
                *ret_parameters = json_object_get(reply.parameters);
        if (ret_error)
                *ret_error = TAKE_PTR(error);
        return 0;
}

int varlink_client_call_more(VarlinkClient *c, const char *method, struct json_object *parameters,
                             varlink_reply_cb cb, void *userdata) {
        int r;

        assert(cb);

        r = send_call(c, method, parameters, VARLINK_CALL_MORE);
        if (r < 0)
                return r;

        for (;;) {
                _cleanup_json_ struct json_object *msg = NULL;
                VarlinkReply reply;
                bool last;

                r = read_reply(c, &msg, &reply);
                if (r < 0) {
                        c->broken = true;
                        return r;
                }

                /* An error ends the call even if it claims to continue. */
                last = reply.error || !reply.continues;

                r = cb(c, &reply, userdata);
                if (r < 0) {
                        if (!last)
                                c->broken = true;   /* replies still on their way */
                        return r;
                }
                if (last)
                        return 0;
        }
}

int varlink_client_call_oneway(VarlinkClient *c, const char *method, struct json_object *parameters) {
        return send_call(c, method, parameters, VARLINK_CALL_ONEWAY);
}
