/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One varlink connection: reads framed calls, runs them one at a time in
 * order, queues replies and flushes them with writev.  A connection never
 * holds more than one message's worth of unread input plus its bounded
 * output queue, whatever the peer does. */

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <event2/event.h>

#include <assert.h>
#include <inttypes.h>
#include <sched.h>

#include "kvmid.h"

#define READ_CHUNK (64U * 1024U)
#define IOV_MAX_BATCH 64

struct Call {
        unsigned n_ref;
        Conn *conn;                  /* NULL once the connection is gone */
        char *method;
        unsigned flags;
        const VarlinkMethod *idl;    /* for reply validation in tests */
        bool done;
        void (*abort_fn)(Call *call, void *userdata);
        void *abort_userdata;
};

typedef struct ConnData {
        const char *key;
        void *data;
        void (*destroy)(void *);
        struct ConnData *next;
} ConnData;

static void conn_process(Conn *c);
static void conn_update_events(Conn *c);
static void conn_flush(Conn *c);

/* ---- calls ---------------------------------------------------------- */

static Call *call_new(Conn *conn, const char *method, unsigned flags) {
        Call *call = calloc(1, sizeof *call);

        if (!call)
                return NULL;
        call->method = strdup(method);
        if (!call->method) {
                free(call);
                return NULL;
        }
        call->n_ref = 1;
        call->conn = conn;
        call->flags = flags;
        return call;
}

Call *call_ref(Call *call) {
        if (call)
                call->n_ref++;
        return call;
}

Call *call_unref(Call *call) {
        if (!call || --call->n_ref > 0)
                return NULL;
        free(call->method);
        free(call);
        return NULL;
}

const char *call_method(const Call *call) {
        return call->method;
}

bool call_wants_more(const Call *call) {
        return call->flags & VARLINK_CALL_MORE;
}

bool call_is_oneway(const Call *call) {
        return call->flags & VARLINK_CALL_ONEWAY;
}

bool call_wants_upgrade(const Call *call) {
        return call->flags & VARLINK_CALL_UPGRADE;
}

bool call_is_alive(const Call *call) {
        return call->conn && !call->done;
}

Conn *call_conn(const Call *call) {
        return call->conn;
}

void call_set_idl(Call *call, const VarlinkMethod *idl) {
        call->idl = idl;
}

void call_set_abort_handler(Call *call, void (*fn)(Call *call, void *userdata), void *userdata) {
        call->abort_fn = fn;
        call->abort_userdata = userdata;
}

/* The connection stops waiting for this call: later replies are dropped. */
static void call_finish(Call *call) {
        Conn *c = call->conn;

        call->done = true;
        if (c && c->current == call) {
                c->current = NULL;
                call_unref(call);
                /* Pipelined calls may be waiting; run them from the loop, not
                 * from inside whatever handler replied. */
                event_active(c->ev_process, 0, 0);
        }
}

static int call_queue(Call *call, VarlinkBlob *blob, bool final, bool is_error, uint64_t delay_usec) {
        Conn *c = call->conn;
        int r;

        if (!c || call->done)
                return -ESTALE;
        assert(!(call->flags & VARLINK_CALL_ONEWAY));
        if (!final && !(call->flags & VARLINK_CALL_MORE))
                return -EINVAL;

        r = varlink_outq_push(c->outq, blob, false);
        if (r < 0) {
                /* The peer is not reading what it asked for, or asked for
                 * more than the limit: say so and drop it rather than grow
                 * without bound. */
                conn_fail_limit(c, "max-output-bytes", c->limits.max_output_bytes);
                return r;
        }
        if (delay_usec == 0)
                c->urgent = true;
        else if (c->flush_delay_usec == 0 || delay_usec < c->flush_delay_usec)
                c->flush_delay_usec = delay_usec;
        c->stats->replies++;
        if (is_error)
                c->stats->errors++;
        if (final)
                call_finish(call);
        conn_update_events(c);
        return 0;
}

uint32_t conn_vsock_cid(const Conn *c) {
        return c->vsock_cid;
}

void conn_audit_subject(const Conn *c, struct ucred *cred, AuditEvent *ev) {
        ev->peer = NULL;
        ev->cid = 0;
        if (!c)
                return;
        if (c->vsock_cid) {
                ev->cid = c->vsock_cid;
                return;
        }
        *cred = c->cred;
        ev->peer = cred;
}

Server *conn_server(const Conn *c) {
        return c->server;
}

int call_reply_error_reason(Call *call, const char *error, const char *reason) {
        struct json_object *p;

        if (!call_is_alive(call))
                return -ESTALE;
        p = json_object_new_object();
        if (p)
                json_object_object_add(p, "reason", json_object_new_string(reason));
        return call_reply_error(call, error, p);
}

size_t conn_queued_bytes(const Conn *c) {
        return varlink_outq_bytes(c->outq);
}

size_t conn_queued_messages(const Conn *c) {
        return varlink_outq_count(c->outq);
}

int call_publish_blob(Call *call, VarlinkBlob *blob, uint64_t delay_usec) {
        if (call->flags & VARLINK_CALL_ONEWAY)
                return 0;
        int r = call_queue(call, blob, false, false, delay_usec);

        if (r < 0)
                return r;
        return call->conn && !call->conn->write_armed && !call->conn->deferred;
}

static int call_send(Call *call, struct json_object *parameters, const char *error, bool final) {
        _cleanup_json_ struct json_object *p = parameters;
        VarlinkBlob *blob = NULL;
        int r;

        if (call->flags & VARLINK_CALL_ONEWAY) {
                if (final)
                        call_finish(call);
                return 0;
        }
        if (!call->conn || call->done)
                return -ESTALE;
        dispatch_check_reply(call->conn->server->dispatch, call->idl, error, p);

        r = varlink_reply_encode(p, error, !final, &blob);
        if (r < 0)
                return r;
        r = call_queue(call, blob, final, error != NULL, 0);
        varlink_blob_unref(blob);
        return r;
}

int call_reply(Call *call, struct json_object *parameters) {
        return call_send(call, parameters, NULL, true);
}

int call_reply_more(Call *call, struct json_object *parameters) {
        return call_send(call, parameters, NULL, false);
}

int call_reply_error(Call *call, const char *error, struct json_object *parameters) {
        return call_send(call, parameters, error, true);
}

int call_reply_invalid_parameter(Call *call, const char *parameter) {
        struct json_object *p = json_object_new_object();

        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "parameter", json_object_new_string(parameter));
        return call_reply_error(call, "org.varlink.service.InvalidParameter", p);
}

/* ---- connection accessors -------------------------------------------- */

Role conn_role(const Conn *c) {
        return c->role;
}

uid_t conn_uid(const Conn *c) {
        return c->cred.uid;
}

gid_t conn_gid(const Conn *c) {
        return c->cred.gid;
}

pid_t conn_pid(const Conn *c) {
        return c->cred.pid;
}

unsigned conn_state(const Conn *c) {
        return c->state;
}

void conn_set_state(Conn *c, unsigned state) {
        c->state = state;
}

uint64_t conn_id(const Conn *c) {
        return c->id;
}

void *conn_get_data(const Conn *c, const char *key) {
        for (ConnData *d = c->data; d; d = d->next)
                if (streq(d->key, key))
                        return d->data;
        return NULL;
}

int conn_set_data(Conn *c, const char *key, void *data, void (*destroy)(void *)) {
        ConnData *d;

        for (d = c->data; d; d = d->next)
                if (streq(d->key, key))
                        break;
        if (!d) {
                d = calloc(1, sizeof *d);
                if (!d)
                        return -ENOMEM;
                d->key = key;
                d->next = c->data;
                c->data = d;
        } else if (d->destroy && d->data)
                d->destroy(d->data);
        d->data = data;
        d->destroy = destroy;
        return 0;
}

/* ---- I/O ---------------------------------------------------------------- */

/* Errors outside any call (framing, limits): queued even past the output
 * limit, then the connection closes once they are flushed. */
static void conn_fail(Conn *c, const char *error, struct json_object *parameters) {
        _cleanup_json_ struct json_object *p = parameters;
        VarlinkBlob *blob = NULL;

        if (c->closing)
                return;
        if (varlink_reply_encode(p, error, false, &blob) >= 0) {
                (void) varlink_outq_push(c->outq, blob, true);
                varlink_blob_unref(blob);
                c->stats->errors++;
        }
        c->closing = true;
        conn_update_events(c);
}

void conn_fail_limit(Conn *c, const char *limit, uint64_t max) {
        struct json_object *p = json_object_new_object();

        log_notice("connection %" PRIu64 " (uid %u, pid %d): %s (%" PRIu64 ") exceeded, disconnecting",
                   c->id, (unsigned) c->cred.uid, (int) c->cred.pid, limit, max);
        if (p) {
                json_object_object_add(p, "limit", json_object_new_string(limit));
                json_object_object_add(p, "max", json_object_new_int64((int64_t) max));
        }
        conn_fail(c, "io.kvmid.LimitExceeded", p);
}

static void conn_fail_protocol(Conn *c, const char *reason) {
        struct json_object *p = json_object_new_object();

        log_notice("connection %" PRIu64 " (uid %u, pid %d): protocol error: %s, disconnecting",
                   c->id, (unsigned) c->cred.uid, (int) c->cred.pid, reason);
        if (p)
                json_object_object_add(p, "reason", json_object_new_string(reason));
        conn_fail(c, "io.kvmid.ProtocolError", p);
}

/* The flush tick: every deferred subscriber written at once, after a yield
 * when that is a long run of writes (see batch_deliver in channel.c). */
static void conn_on_flush_tick(evutil_socket_t fd, short what, void *userdata) {
        Server *s = userdata;
        Conn *list = TAKE_PTR(s->deferred);
        size_t n = 0;

        for (Conn *c = list; c; c = c->deferred_next)
                n++;
        if (n >= FANOUT_YIELD_WRITES)
                (void) sched_yield();
        while (list) {
                Conn *c = list;
                list = c->deferred_next;
                c->deferred_next = NULL;
                c->deferred = false;
                if (!c->dead)
                        conn_flush(c);
        }
}

/* Fan-out deliveries to a busy subscriber wait for the next flush tick (at
 * most the flush delay away) and share one write: a write per event wakes
 * the reader per event, which at 8 subscribers on 2 CPUs cost more than
 * all the rest of the fan-out (bench-fanout).  The first delivery after a
 * quiet interval still goes out at once, and any other reply takes
 * everything queued with it.  True if the write happens in this loop
 * iteration. */
static bool conn_schedule_flush(Conn *c) {
        Server *s = c->server;

        if (c->deferred && !c->urgent && !c->closing)
                return false;
        if (c->urgent || c->closing || c->flush_delay_usec == 0 ||
            now_usec(CLOCK_MONOTONIC) >= c->flushed_usec + c->flush_delay_usec) {
                event_active(c->ev_write, EV_WRITE, 0);
                return true;
        }
        if (!s->ev_flush_tick && !(s->ev_flush_tick = evtimer_new(s->base, conn_on_flush_tick, s))) {
                event_active(c->ev_write, EV_WRITE, 0);
                return true;
        }
        if (!s->deferred) {
                struct timeval tv = { .tv_sec = (time_t) (c->flush_delay_usec / 1000000),
                                      .tv_usec = (suseconds_t) (c->flush_delay_usec % 1000000) };
                evtimer_add(s->ev_flush_tick, &tv);
        }
        c->deferred = true;
        c->deferred_next = s->deferred;
        s->deferred = c;
        return false;
}

/* Read interest only while idle: a call in flight or a backed-up output
 * queue pauses input, so the socket buffer pushes back on the peer.
 * EV_CLOSED still reports a hangup.  Fresh output is flushed from the loop
 * once the running callback returns (ev_write made active by hand: one
 * flush carries everything queued meanwhile, and no epoll_ctl is needed);
 * write interest is armed in epoll only while the socket is full. */
static void conn_update_events(Conn *c) {
        bool want_read = !c->closing && !c->current && !c->read_eof &&
                         varlink_outq_bytes(c->outq) < c->limits.max_output_bytes / 2 &&
                         c->pending_msgs == 0;
        bool want_write = varlink_outq_bytes(c->outq) > 0;
        /* After EOF or while draining, EPOLLRDHUP would fire forever. */
        short what = c->read_eof || c->closing ? 0 : EV_CLOSED | (want_read ? EV_READ : 0);

        if (c->closing && !want_write) {
                event_active(c->ev_process, 0, 0);
                return;
        }
        if (what != c->read_what) {
                event_del(c->ev_read);
                if (what) {
                        event_assign(c->ev_read, c->server->base, c->fd, what | EV_PERSIST, conn_on_read, c);
                        event_add(c->ev_read, NULL);
                }
                c->read_what = what;
        }
        if (want_write && !c->write_armed)
                (void) conn_schedule_flush(c);
        else if (!want_write && c->write_armed) {
                event_del(c->ev_write);
                c->write_armed = false;
        }
}

static void conn_flush(Conn *c) {
        struct iovec iov[IOV_MAX_BATCH];
        size_t n;
        ssize_t w;

        while ((n = varlink_outq_peek(c->outq, iov, ELEMENTSOF(iov))) > 0) {
                struct msghdr mh = { .msg_iov = iov, .msg_iovlen = n };

                w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                if (!c->write_armed) {
                                        event_add(c->ev_write, NULL);
                                        c->write_armed = true;
                                        c->write_since_usec = now_usec(CLOCK_MONOTONIC);
                                }
                                break;
                        }
                        log_debug_errno(errno, "connection %" PRIu64 ": write failed: %m", c->id);
                        conn_close(c);
                        return;
                }
                varlink_outq_consume(c->outq, (size_t) w);
                c->stats->bytes_out += (uint64_t) w;
                c->flushed_usec = c->write_since_usec = c->activity_usec = now_usec(CLOCK_MONOTONIC);
        }
        if (varlink_outq_bytes(c->outq) == 0) {
                c->urgent = false;
                c->flush_delay_usec = 0;
        }
        if (c->pending_msgs > 0 && !c->current)
                event_active(c->ev_process, 0, 0);
        conn_update_events(c);
}

static void conn_on_write(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;

        if (!c->dead)
                conn_flush(c);
}

/* Dispatch complete messages while nothing is in flight. */
static void conn_process(Conn *c) {
        const char *msg;
        size_t len;
        int r;

        /* Stop taking calls while the peer is not reading its replies; the
         * calls wait in the reader, bounded by max-pending-calls. */
        while (!c->dead && !c->closing && !c->current &&
               varlink_outq_bytes(c->outq) < c->limits.max_output_bytes / 2) {
                _cleanup_json_ struct json_object *json = NULL;
                VarlinkCall vc;
                const char *bad = NULL;
                Call *call;

                r = varlink_reader_next(c->reader, &msg, &len);
                if (r == -EMSGSIZE) {
                        conn_fail_limit(c, "max-message-size", c->limits.max_message_size);
                        break;
                }
                if (r <= 0)
                        break;
                if (c->pending_msgs > 0)
                        c->pending_msgs--;
                c->stats->calls++;
                c->activity_usec = now_usec(CLOCK_MONOTONIC);

                r = varlink_message_parse(msg, len, c->limits.max_depth, &json);
                if (r == -ELOOP) {
                        conn_fail_limit(c, "max-depth", (uint64_t) c->limits.max_depth);
                        break;
                }
                if (r < 0) {
                        conn_fail_protocol(c, "message is not a JSON object in valid UTF-8");
                        break;
                }
                r = varlink_call_from_json(json, &vc, &bad);
                if (r < 0) {
                        if (!bad) {
                                conn_fail_protocol(c, "message is not a varlink call");
                                break;
                        }
                        /* A call with a bad field is answered (unless it
                         * asked for no reply), and the connection goes on:
                         * framing is intact. */
                        if (varlink_message_is_oneway(json))
                                continue;
                        call = call_new(c, "", 0);
                        if (!call) {
                                conn_close(c);
                                return;
                        }
                        c->current = call;
                        (void) call_reply_invalid_parameter(call, bad);
                        if (c->current == call) /* output queue overflowed */
                                call_finish(call);
                        continue;
                }

                call = call_new(c, vc.method, vc.flags);
                if (!call) {
                        conn_close(c);
                        return;
                }
                c->current = call;
                /* The handler may finish (and so drop) the call: hold it. */
                call_ref(call);
                dispatch_call(c->server->dispatch, call, vc.parameters);
                if (!c->dead && call->flags & VARLINK_CALL_ONEWAY && c->current == call)
                        call_finish(call);
                call_unref(call);
                if (c->dead)
                        return;
        }
        if (c->dead)
                return;
        /* After the peer's EOF, answer what it sent, then close; a partial
         * message left without its NUL is dropped. */
        if (c->read_eof && !c->current && c->pending_msgs == 0)
                c->closing = true;
        conn_update_events(c);
}

static void conn_on_process(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;

        if (c->dead)
                return;
        if (c->closing && varlink_outq_bytes(c->outq) == 0) {
                conn_close(c);
                return;
        }
        conn_process(c);
}

static size_t count_nuls(const char *p, size_t n) {
        size_t k = 0;
        const char *end = p + n;

        while ((p = memchr(p, '\0', (size_t) (end - p)))) {
                k++;
                p++;
        }
        return k;
}

void conn_on_read(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;
        void *space;
        size_t avail;
        ssize_t n;
        int r;

        if ((what & EV_CLOSED) && !(what & EV_READ) && c->read_what == EV_CLOSED) {
                /* Hung up while a call was in flight or output backed up. */
                log_debug("connection %" PRIu64 ": peer hung up", c->id);
                conn_close(c);
                return;
        }
        if (!(what & EV_READ))
                return;

        r = varlink_reader_get_space(c->reader, READ_CHUNK, &space, &avail);
        if (r < 0) {
                conn_fail_limit(c, "max-message-size", c->limits.max_message_size);
                return;
        }
        n = recv(c->fd, space, avail, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return;
                log_debug_errno(errno, "connection %" PRIu64 ": read failed: %m", c->id);
                conn_close(c);
                return;
        }
        if (n == 0)
                c->read_eof = true;
        else {
                c->pending_msgs += count_nuls(space, (size_t) n);
                varlink_reader_advance(c->reader, (size_t) n);
                c->stats->bytes_in += (uint64_t) n;
        }
        conn_process(c);
        if (c->dead)
                return;
        /* Calls queued behind one in flight are bounded by configuration. */
        if (c->pending_msgs > c->limits.max_pending_calls)
                conn_fail_limit(c, "max-pending-calls", c->limits.max_pending_calls);
}

/* Idle and stuck-writer deadlines are checked lazily: the timer fires at
 * the earliest possible deadline and re-arms from the real timestamps, so
 * activity never has to touch the timer. */
static void conn_on_timer(evutil_socket_t fd, short what, void *userdata) {
        Conn *c = userdata;
        const Config *cfg = c->server->config;
        uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;

        if (c->write_armed && cfg->write_timeout_sec > 0) {
                uint64_t deadline = c->write_since_usec + cfg->write_timeout_sec * 1000000ULL;
                if (now >= deadline) {
                        log_notice("connection %" PRIu64 " (uid %u, pid %d): peer has not read its replies for %us, disconnecting",
                                   c->id, (unsigned) c->cred.uid, (int) c->cred.pid, cfg->write_timeout_sec);
                        conn_close(c);
                        return;
                }
                next = MIN(next, deadline);
        }
        if (!c->current && !c->write_armed && varlink_outq_bytes(c->outq) == 0 && cfg->idle_timeout_sec > 0) {
                uint64_t deadline = c->activity_usec + cfg->idle_timeout_sec * 1000000ULL;
                if (now >= deadline) {
                        log_debug("connection %" PRIu64 ": idle for %us, closing", c->id, cfg->idle_timeout_sec);
                        conn_close(c);
                        return;
                }
                next = MIN(next, deadline);
        }
        conn_arm_timer(c, next == UINT64_MAX ? now + 1000000ULL : next);
}

void conn_arm_timer(Conn *c, uint64_t deadline_usec) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        uint64_t d = deadline_usec > now ? deadline_usec - now : 0;
        /* Never sleep longer than the shortest configured timeout, so a
         * reload that shortens it takes effect. */
        struct timeval tv = { .tv_sec = (time_t) (d / 1000000ULL), .tv_usec = (suseconds_t) (d % 1000000ULL) };

        if (tv.tv_sec > 5)
                tv = (struct timeval) { .tv_sec = 5 };
        evtimer_add(c->ev_timer, &tv);
}

int conn_new(Server *s, Listener *l, int fd, const struct ucred *cred, const ListenerConfig *limits,
             ListenerStats *stats, Conn **ret) {
        _cleanup_free_ Conn *c = calloc(1, sizeof *c);

        if (!c)
                return -ENOMEM;
        c->server = s;
        c->listener = l;
        c->role = limits->role;
        c->fd = fd;
        c->cred = *cred;
        c->limits = *limits;
        c->limits.socket_path = c->limits.group = NULL; /* not owned */
        c->stats = stats;
        c->activity_usec = now_usec(CLOCK_MONOTONIC);
        c->reader = varlink_reader_new(limits->max_message_size);
        c->outq = varlink_outq_new(limits->max_output_bytes);
        c->ev_read = event_new(s->base, fd, EV_READ | EV_CLOSED | EV_PERSIST, conn_on_read, c);
        c->ev_write = event_new(s->base, fd, EV_WRITE | EV_PERSIST, conn_on_write, c);
        c->ev_timer = evtimer_new(s->base, conn_on_timer, c);
        c->ev_process = event_new(s->base, -1, 0, conn_on_process, c);
        if (!c->reader || !c->outq || !c->ev_read || !c->ev_write || !c->ev_timer || !c->ev_process) {
                c->fd = -EBADF; /* the caller still owns fd on failure */
                conn_free(c);
                c = NULL;
                return -ENOMEM;
        }
        c->read_what = EV_READ | EV_CLOSED;
        event_add(c->ev_read, NULL);
        conn_arm_timer(c, c->activity_usec + 1000000ULL);
        *ret = TAKE_PTR(c);
        return 0;
}

/* Frees everything; the server unlinks it from its list first. */
void conn_free(Conn *c) {
        Call *call;

        if (!c)
                return;
        call = TAKE_PTR(c->current);
        if (call) {
                call->conn = NULL;
                if (call->abort_fn)
                        call->abort_fn(call, call->abort_userdata);
                call_unref(call);
        }
        while (c->data) {
                ConnData *d = c->data;
                c->data = d->next;
                if (d->destroy && d->data)
                        d->destroy(d->data);
                free(d);
        }
        if (c->ev_read)
                event_free(c->ev_read);
        if (c->ev_write)
                event_free(c->ev_write);
        if (c->ev_timer)
                event_free(c->ev_timer);
        if (c->ev_process)
                event_free(c->ev_process);
        varlink_reader_free(c->reader);
        varlink_outq_free(c->outq);
        /* Closing a Unix socket with unread input makes the peer's next
         * read fail with ECONNRESET, even before the replies it has not
         * read yet: drop what it sent (bounded) so it gets them, then EOF. */
        for (int i = 0; i < 64; i++) {
                char sink[16384];
                if (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
                        break;
        }
        safe_close(c->fd);
        free(c);
}

/* Closing is deferred to the loop so that callers up the stack (handlers,
 * fan-out loops) never touch a freed connection. */
void conn_close(Conn *c) {
        if (c->dead)
                return;
        c->dead = true;
        event_del(c->ev_read);
        event_del(c->ev_write);
        event_del(c->ev_timer);
        event_del(c->ev_process);
        if (c->deferred)
                for (Conn **p = &c->server->deferred; *p; p = &(*p)->deferred_next)
                        if (*p == c) {
                                *p = c->deferred_next;
                                c->deferred = false;
                                break;
                        }
        server_conn_closed(c->server, c);
}

void conn_begin_shutdown(Conn *c) {
        if (c->dead)
                return;
        c->closing = true;
        conn_update_events(c);
}
