/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The KVMI listener and channels.  QEMU of each target connects here, sends
 * its handshake, gets the cookie hash back and hands the socket to KVM; from
 * then on the kernel speaks KVMI on it.  Per channel: handshake → probe
 * (GET_VERSION, CHECK_*, GET_GUEST_INFO, CONTROL_*) → ready.
 *
 * Invariant of the event path: a vCPU that sent an event is stopped until
 * its reply arrives, so every vCPU event gets a well-formed CONTINUE, queued
 * while the read batch is parsed and written before any other work: before
 * the batch's events are handed on, and before the handler of a command
 * reply later in the same read runs (the acks of one read share one write
 * unless such a reply splits them). */

#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <event2/buffer.h>
#include <openssl/evp.h>

#include "kvmid.h"

#define CHANNEL_IN_INITIAL      (16U * 1024U)
#define CHANNEL_IN_MAX          (KVMI_HANDSHAKE_MAX_SIZE + KVMI_MSG_HDR_SIZE + KVMI_MAX_MSG_SIZE_LIMIT)
#define CHANNEL_OUT_MAX         (256U * 1024U)  /* a kernel that stops reading is broken */
#define CHANNEL_BATCH           64              /* guest requests handed on per ack write */
#define COOKIE_MAX              (64U * 1024U)
#define ACCEPT_PAUSE_USEC       100000

typedef enum ChannelState {
        CHANNEL_HANDSHAKE,
        CHANNEL_PROBE,
        CHANNEL_READY,
} ChannelState;

typedef struct PendingCmd PendingCmd;
typedef void (*ReplyHandler)(Channel *ch, const PendingCmd *p, const KvmiReply *r);

struct PendingCmd {
        uint32_t seq;
        KvmiCmd cmd;
        uint32_t arg;                   /* what was checked / which vCPU */
        ChannelTokenFn token_fn;        /* GET_MAP_TOKEN */
        void *userdata;
        uint64_t deadline_usec;
        ReplyHandler done;
        PendingCmd *next;
};

struct Channel {
        ChannelServer *cs;
        Server *server;
        int fd;
        char peer[48];
        ChannelState state;
        bool dead, unhooked;
        bool confirmed;                 /* the kernel answered GET_VERSION: QEMU took our cookie hash */
        char qemu_name[KVMI_HANDSHAKE_NAME_SIZE];
        char uuid[37];                  /* from the handshake, for the audit record */
        Domain *domain;
        const KvmiNumbering *numbering;
        size_t max_msg;

        uint8_t *in;
        size_t in_len, in_cap;
        struct evbuffer *out;
        struct event *ev_read, *ev_write, *ev_timer;
        uint64_t handshake_deadline_usec;

        uint32_t next_seq;
        PendingCmd *pending, **pending_tail;
        unsigned probe_outstanding;
        unsigned hypercall_vcpus;       /* vCPUs with HYPERCALL enabled */

        Channel *prev, *next;
};

/* A QEMU that offered a UUID no source knows: refused, and remembered
 * (the last few, bounded) so that `kvmictl domains` can show why a VM the
 * operator expects never comes up. */
#define CHANNEL_STRANGERS 16
typedef struct Stranger {
        char uuid[37];
        char qemu_name[KVMI_HANDSHAKE_NAME_SIZE];
        char peer[48];
        uint64_t attempts, last_usec;   /* CLOCK_REALTIME */
} Stranger;

struct ChannelServer {
        Server *server;
        int unix_fd, vsock_fd;
        bool unix_owned;
        char *unix_path;
        struct event *ev_unix, *ev_vsock, *ev_resume, *ev_reap;
        Channel *channels, *graveyard;
        unsigned n_channels;
        Stranger strangers[CHANNEL_STRANGERS];
        size_t n_strangers;
};

static void channel_process(Channel *ch, uint64_t t_read_ns);
static void probe_stage_check(Channel *ch);

static uint64_t now_nsec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static const char *channel_name(const Channel *ch) {
        return ch->domain ? ch->domain->name : ch->peer;
}

/* ---- lifetime ------------------------------------------------------------ */

static Channel *channel_free(Channel *ch) {
        if (!ch)
                return NULL;
        while (ch->pending) {
                PendingCmd *p = ch->pending;
                ch->pending = p->next;
                free(p);
        }
        if (ch->ev_read)
                event_free(ch->ev_read);
        if (ch->ev_write)
                event_free(ch->ev_write);
        if (ch->ev_timer)
                event_free(ch->ev_timer);
        if (ch->out)
                evbuffer_free(ch->out);
        safe_close(ch->fd);
        free(ch->in);
        free(ch);
        return NULL;
}

static void channel_server_on_reap(evutil_socket_t fd, short what, void *userdata) {
        ChannelServer *cs = userdata;

        while (cs->graveyard) {
                Channel *ch = cs->graveyard;
                cs->graveyard = ch->next;
                channel_free(ch);
        }
}

/* A handshake is over when the kernel answers GET_VERSION (QEMU accepted
 * the cookie hash) or when the channel closes before that: one record. */
static void channel_audit_handshake(Channel *ch, const char *reason) {
        _cleanup_json_ struct json_object *data = json_object_new_object();

        if (data) {
                json_object_object_add(data, "peer", json_object_new_string(ch->peer));
                if (ch->qemu_name[0])
                        json_object_object_add(data, "qemu_name", json_object_new_string(ch->qemu_name));
                if (ch->domain && ch->domain->kvmi_version)
                        json_object_object_add(data, "kvmi_version", json_object_new_int64(ch->domain->kvmi_version));
        }
        server_audit(ch->server, &(AuditEvent) {
                .kind = reason ? AUDIT_KIND_KVMI_HANDSHAKE_FAIL : AUDIT_KIND_KVMI_HANDSHAKE_OK,
                .target = ch->domain ? ch->domain->name : NULL,
                .uuid = ch->uuid[0] ? ch->uuid : NULL,
                .reason = reason,
                .data = data,
        });
        ch->confirmed = true;
}

/* Closing never frees: the channel may be deep in its own callbacks, so it
 * goes to the graveyard and is freed from the loop. */
void channel_close(Channel *ch, const char *reason) {
        ChannelServer *cs = ch->cs;

        if (ch->dead)
                return;
        if (!ch->confirmed)
                channel_audit_handshake(ch, reason);
        ch->dead = true;
        if (ch->domain) {
                Domain *d = ch->domain;
                char why[300];
                log_info("domain \"%s\": KVMI channel closed: %s", d->name, reason);
                /* Without its channel the target's tokens are gone (the
                 * kernel drops them) and nothing can be introspected. */
                snprintf(why, sizeof why, "target's KVMI channel closed: %s", reason);
                token_target_gone(ch->server->tokens, d);
                session_end_target(ch->server, d, why);
                session_unwatch_target(d, why);
                ch->domain = NULL;
                domain_channel_closed(d);
        } else
                log_info("KVMI connection %s closed: %s", ch->peer, reason);
        event_del(ch->ev_read);
        event_del(ch->ev_write);
        event_del(ch->ev_timer);
        ch->fd = safe_close(ch->fd);

        if (ch->prev)
                ch->prev->next = ch->next;
        else
                cs->channels = ch->next;
        if (ch->next)
                ch->next->prev = ch->prev;
        ch->prev = NULL;
        ch->next = cs->graveyard;
        cs->graveyard = ch;
        cs->n_channels--;
        event_active(cs->ev_reap, 0, 0);
}

/* A failure the domain should remember (GetDomain shows it). */
static void channel_fail(Channel *ch, const char *fmt, ...) _printf_(2, 3);
static void channel_fail(Channel *ch, const char *fmt, ...) {
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (ch->domain)
                domain_set_error(ch->domain, "%s", msg);
        log_warning("KVMI %s \"%s\": %s", ch->domain ? "domain" : "connection", channel_name(ch), msg);
        channel_close(ch, msg);
}

/* ---- output -------------------------------------------------------------- */

static void channel_flush(Channel *ch) {
        while (!ch->dead && evbuffer_get_length(ch->out) > 0) {
                int n = evbuffer_write(ch->out, ch->fd);
                if (n > 0)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                        if (evbuffer_get_length(ch->out) > CHANNEL_OUT_MAX) {
                                channel_fail(ch, "peer stopped reading (%zu bytes queued)",
                                             evbuffer_get_length(ch->out));
                                return;
                        }
                        event_add(ch->ev_write, NULL);
                        return;
                }
                channel_close(ch, n < 0 ? strerror(errno) : "write failed");
                return;
        }
        if (!ch->dead)
                event_del(ch->ev_write);
}

static void channel_on_write(evutil_socket_t fd, short what, void *userdata) {
        channel_flush(userdata);
}

static int channel_queue(Channel *ch, const void *msg, size_t len) {
        return evbuffer_add(ch->out, msg, len) < 0 ? -ENOMEM : 0;
}

/* ---- commands ------------------------------------------------------------ */

static void channel_arm_timer(Channel *ch) {
        uint64_t deadline = ch->state == CHANNEL_HANDSHAKE ? ch->handshake_deadline_usec
                            : ch->pending                  ? ch->pending->deadline_usec
                                                           : 0;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        struct timeval tv = {};

        if (deadline == 0) {
                event_del(ch->ev_timer);
                return;
        }
        if (deadline > now) {
                tv.tv_sec = (time_t) ((deadline - now) / 1000000);
                tv.tv_usec = (suseconds_t) ((deadline - now) % 1000000);
        }
        evtimer_add(ch->ev_timer, &tv);
}

static void channel_on_timer(evutil_socket_t fd, short what, void *userdata) {
        Channel *ch = userdata;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (ch->state == CHANNEL_HANDSHAKE && now >= ch->handshake_deadline_usec) {
                channel_fail(ch, "no complete handshake within %us", ch->server->config->kvmi.handshake_timeout_sec);
                return;
        }
        if (ch->pending && now >= ch->pending->deadline_usec) {
                channel_fail(ch, "no reply to %s (seq %" PRIu32 ") within %us", kvmi_cmd_to_string(ch->pending->cmd),
                             ch->pending->seq, ch->server->config->kvmi.command_timeout_sec);
                return;
        }
        channel_arm_timer(ch);
}

static int channel_command(Channel *ch, const KvmiCommand *c, uint32_t arg, ReplyHandler done) {
        uint8_t buf[64];
        KvmiCommand cmd = *c;
        PendingCmd *p;
        int n;

        cmd.seq = ch->next_seq++;
        n = kvmi_command_encode(buf, sizeof buf, ch->numbering, &cmd);
        if (n < 0)
                return n;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->seq = cmd.seq;
        p->cmd = cmd.cmd;
        p->arg = arg;
        p->done = done;
        p->deadline_usec = now_usec(CLOCK_MONOTONIC) + ch->server->config->kvmi.command_timeout_sec * 1000000ULL;
        if (channel_queue(ch, buf, (size_t) n) < 0) {
                free(p);
                return -ENOMEM;
        }
        *ch->pending_tail = p;
        ch->pending_tail = &p->next;
        if (ch->pending == p)
                channel_arm_timer(ch);
        return 0;
}

/* Send or fail the channel; returns false when the channel is gone. */
static bool channel_send(Channel *ch, const KvmiCommand *c, uint32_t arg, ReplyHandler done) {
        int r = channel_command(ch, c, arg, done);

        if (r < 0) {
                channel_fail(ch, "cannot send %s: %s", kvmi_cmd_to_string(c->cmd), kvmi_strerror(r));
                return false;
        }
        return true;
}

static int channel_reply(Channel *ch, const KvmiMsgHdr *h, const uint8_t *msg, size_t len) {
        PendingCmd **pp, *p;
        KvmiReply reply;
        int r;

        for (pp = &ch->pending; *pp && (*pp)->seq != h->seq; pp = &(*pp)->next)
                ;
        p = *pp;
        if (!p) {
                channel_fail(ch, "reply with unexpected seq %" PRIu32 " (message id %u)", h->seq, h->id);
                return -EPROTO;
        }
        *pp = p->next;
        if (ch->pending_tail == &p->next)
                ch->pending_tail = pp;
        r = kvmi_reply_decode(ch->numbering, p->cmd, msg, len, &reply);
        if (r < 0) {
                channel_fail(ch, "malformed reply to %s: %s", kvmi_cmd_to_string(p->cmd), kvmi_strerror(r));
                free(p);
                return r;
        }
        p->done(ch, p, &reply);
        free(p);
        if (!ch->dead)
                channel_arm_timer(ch);
        return ch->dead ? -ECONNRESET : 0;
}

static void on_map_token(Channel *ch, const PendingCmd *p, const KvmiReply *r) {
        p->token_fn(p->userdata, r->err, r->err == 0 ? &r->map_token : NULL);
}

int channel_get_map_token(Channel *ch, ChannelTokenFn done, void *userdata) {
        KvmiCommand c = { .cmd = KVMI_CMD_GET_MAP_TOKEN };
        int r;

        if (ch->dead || ch->state != CHANNEL_READY)
                return -ENOTCONN;
        r = channel_command(ch, &c, 0, on_map_token);
        if (r < 0)
                return r;
        /* channel_command appended it: it is the tail. */
        PendingCmd *p = ch->pending;
        while (p->next)
                p = p->next;
        p->token_fn = done;
        p->userdata = userdata;
        channel_flush(ch);
        return 0;
}

/* ---- probe --------------------------------------------------------------- */

static void probe_ready(Channel *ch) {
        Domain *d = ch->domain;

        ch->state = CHANNEL_READY;
        d->kvmi_state = DOMAIN_KVMI_READY;
        if (d->vcpus > 0 && ch->hypercall_vcpus == d->vcpus)
                d->events_enabled |= 1U << KVMI_EV_HYPERCALL;
        log_info("domain \"%s\": KVMI v%" PRIu32 " ready, %" PRIu32 " vCPUs, max message %zu bytes, guest requests %s%s",
                 d->name, d->kvmi_version, d->vcpus, ch->max_msg,
                 d->events_enabled & (1U << KVMI_EV_HYPERCALL) ? "on" : "OFF",
                 d->commands & (1U << KVMI_CMD_GET_MAP_TOKEN) ? ", map tokens" : ", no map tokens");
}

static void probe_one_done(Channel *ch) {
        if (--ch->probe_outstanding == 0 && ch->state == CHANNEL_PROBE)
                probe_ready(ch);
}

static void on_control(Channel *ch, const PendingCmd *p, const KvmiReply *r) {
        Domain *d = ch->domain;

        if (r->err < 0) {
                domain_set_error(d, "%s %s failed: %s", kvmi_cmd_to_string(p->cmd),
                                 p->cmd == KVMI_CMD_CONTROL_EVENTS ? "HYPERCALL" : "UNHOOK",
                                 kvmi_kvm_error_to_string(r->err) ?: "error");
                log_warning("domain \"%s\": %s", d->name, d->last_error);
        } else if (p->cmd == KVMI_CMD_CONTROL_EVENTS)
                ch->hypercall_vcpus++;
        else
                d->events_enabled |= 1U << KVMI_EV_UNHOOK;
        probe_one_done(ch);
}

static void probe_stage_control(Channel *ch) {
        Domain *d = ch->domain;
        KvmiCommand c = {};

        ch->probe_outstanding = 1;      /* held while sending */
        if ((d->commands & (1U << KVMI_CMD_CONTROL_VM_EVENTS)) && (d->events_supported & (1U << KVMI_EV_UNHOOK))) {
                c = (KvmiCommand) { .cmd = KVMI_CMD_CONTROL_VM_EVENTS,
                                    .control = { .event = KVMI_EV_UNHOOK, .enable = true } };
                ch->probe_outstanding++;
                if (!channel_send(ch, &c, 0, on_control))
                        return;
        }
        if ((d->commands & (1U << KVMI_CMD_CONTROL_EVENTS)) && (d->events_supported & (1U << KVMI_EV_HYPERCALL)))
                for (uint32_t v = 0; v < d->vcpus; v++) {
                        c = (KvmiCommand) { .cmd = KVMI_CMD_CONTROL_EVENTS, .vcpu = (uint16_t) v,
                                            .control = { .event = KVMI_EV_HYPERCALL, .enable = true } };
                        ch->probe_outstanding++;
                        if (!channel_send(ch, &c, v, on_control))
                                return;
                }
        probe_one_done(ch);
}

static void on_guest_info(Channel *ch, const PendingCmd *p, const KvmiReply *r) {
        if (r->err < 0) {
                channel_fail(ch, "GET_GUEST_INFO failed: %s", kvmi_kvm_error_to_string(r->err) ?: "error");
                return;
        }
        if (r->guest_info.vcpu_count > UINT16_MAX + 1U) {
                channel_fail(ch, "GET_GUEST_INFO reports %" PRIu32 " vCPUs", r->guest_info.vcpu_count);
                return;
        }
        ch->domain->vcpus = r->guest_info.vcpu_count;
        probe_stage_control(ch);
}

static void on_check(Channel *ch, const PendingCmd *p, const KvmiReply *r) {
        Domain *d = ch->domain;

        /* An error here just means "not available": unsupported or not allowed. */
        if (r->err == 0) {
                if (p->cmd == KVMI_CMD_CHECK_COMMAND)
                        d->commands |= 1U << p->arg;
                else
                        d->events_supported |= 1U << p->arg;
        }
        if (--ch->probe_outstanding > 0)
                return;
        if (d->commands & (1U << KVMI_CMD_GET_GUEST_INFO)) {
                KvmiCommand c = { .cmd = KVMI_CMD_GET_GUEST_INFO };
                (void) channel_send(ch, &c, 0, on_guest_info);
        } else
                probe_stage_control(ch);
}

static void on_version(Channel *ch, const PendingCmd *p, const KvmiReply *r) {
        Domain *d = ch->domain;

        if (r->err < 0) {
                channel_fail(ch, "GET_VERSION failed: %s", kvmi_kvm_error_to_string(r->err) ?: "error");
                return;
        }
        d->kvmi_version = r->version.version;
        channel_audit_handshake(ch, NULL);
        d->down_recorded = false;       /* running again: its next end is recorded */
        ch->max_msg = kvmi_version_max_msg_size(ch->numbering, &r->version);
        d->max_msg_size = (uint32_t) ch->max_msg;
        d->commands |= 1U << KVMI_CMD_GET_VERSION;
        probe_stage_check(ch);
}

/* What kvmid uses: ask for each so kvmictl can show what a target lacks. */
static void probe_stage_check(Channel *ch) {
        static const KvmiCmd cmds[] = { KVMI_CMD_GET_GUEST_INFO, KVMI_CMD_CONTROL_VM_EVENTS, KVMI_CMD_CONTROL_EVENTS,
                                        KVMI_CMD_GET_MAP_TOKEN };
        static const KvmiEv evs[] = { KVMI_EV_UNHOOK, KVMI_EV_HYPERCALL };
        uint16_t id;
        uint8_t ev;

        ch->probe_outstanding = 0;
        for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
                if (kvmi_numbering_cmd_to_id(ch->numbering, cmds[i], &id) < 0)
                        continue;
                KvmiCommand c = { .cmd = KVMI_CMD_CHECK_COMMAND, .check = { .id = id } };
                ch->probe_outstanding++;
                if (!channel_send(ch, &c, cmds[i], on_check))
                        return;
        }
        for (size_t i = 0; i < ELEMENTSOF(evs); i++) {
                if (kvmi_numbering_ev_to_id(ch->numbering, evs[i], &ev) < 0)
                        continue;
                KvmiCommand c = { .cmd = KVMI_CMD_CHECK_EVENT, .check = { .id = ev } };
                ch->probe_outstanding++;
                if (!channel_send(ch, &c, evs[i], on_check))
                        return;
        }
}

/* ---- handshake ------------------------------------------------------------ */

static int cookie_hash(const Domain *d, uint8_t ret[KVMI_COOKIE_HASH_SIZE], const char **ret_why) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *data = NULL;
        unsigned int mdlen = 0;
        struct stat st;
        size_t len = 0;

        if (d->cookie_none) {
                /* QEMU without key= accepts any hash. */
                memset(ret, 0, KVMI_COOKIE_HASH_SIZE);
                return 0;
        }
        if (!d->cookie_file) {
                *ret_why = "no cookie configured (set cookie-file = PATH, or cookie = none)";
                return -ENOKEY;
        }
        fd = open(d->cookie_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                *ret_why = "cannot read its cookie file";
                return negative_errno();
        }
        if (!S_ISREG(st.st_mode) || st.st_size > (off_t) COOKIE_MAX) {
                *ret_why = "its cookie file is not a regular file of at most 64 KiB";
                return -EINVAL;
        }
        if (st.st_mode & S_IROTH)
                log_warning("domain \"%s\": cookie file \"%s\" is world-readable", d->name, d->cookie_file);
        data = malloc((size_t) st.st_size + 1);
        if (!data)
                return -ENOMEM;
        while (len < (size_t) st.st_size) {
                ssize_t n = read(fd, data + len, (size_t) st.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        *ret_why = "cannot read its cookie file";
                        return n < 0 ? negative_errno() : -EIO;
                }
                len += (size_t) n;
        }
        /* Byte for byte, as QEMU's secret object holds the file. */
        if (!EVP_Digest(data, len, ret, &mdlen, EVP_sha1(), NULL) || mdlen != KVMI_COOKIE_HASH_SIZE) {
                *ret_why = "SHA-1 failed";
                return -EIO;
        }
        return 0;
}

static void stranger_note(ChannelServer *cs, const char *uuid, const char *qemu_name, const char *peer) {
        Stranger *x = NULL;

        for (size_t i = 0; i < cs->n_strangers && !x; i++)
                if (streq(cs->strangers[i].uuid, uuid))
                        x = &cs->strangers[i];
        if (!x && cs->n_strangers < CHANNEL_STRANGERS)
                x = &cs->strangers[cs->n_strangers++];
        if (!x) {       /* full: the one seen longest ago goes */
                x = &cs->strangers[0];
                for (size_t i = 1; i < CHANNEL_STRANGERS; i++)
                        if (cs->strangers[i].last_usec < x->last_usec)
                                x = &cs->strangers[i];
        }
        if (!streq(x->uuid, uuid))
                *x = (Stranger) {};
        snprintf(x->uuid, sizeof x->uuid, "%s", uuid);
        snprintf(x->qemu_name, sizeof x->qemu_name, "%s", qemu_name);
        snprintf(x->peer, sizeof x->peer, "%s", peer);
        x->attempts++;
        x->last_usec = now_usec(CLOCK_REALTIME);
}

struct json_object *channel_strangers_json(Server *s) {
        struct json_object *a = json_object_new_array();
        const ChannelServer *cs = s->channels;

        for (size_t i = 0; a && cs && i < cs->n_strangers; i++) {
                const Stranger *x = &cs->strangers[i];
                struct json_object *o;

                if (domain_find(s, x->uuid))
                        continue;       /* known since (a reload, libvirt) */
                o = json_object_new_object();
                if (!o) {
                        json_object_put(a);
                        return NULL;
                }
                json_object_object_add(o, "uuid", json_object_new_string(x->uuid));
                json_object_object_add(o, "qemu_name", json_object_new_string(x->qemu_name));
                json_object_object_add(o, "peer", json_object_new_string(x->peer));
                json_object_object_add(o, "attempts", json_object_new_uint64(x->attempts));
                json_object_object_add(o, "last_usec", json_object_new_uint64(x->last_usec));
                json_object_array_add(a, o);
        }
        return a;
}

static int channel_handshake(Channel *ch, const uint8_t *buf, size_t len) {
        KvmiQemu2Introspector h;
        KvmiIntrospector2Qemu reply = { .struct_size = KVMI_INTROSPECTOR2QEMU_SIZE };
        uint8_t out[KVMI_INTROSPECTOR2QEMU_SIZE];
        const char *why = NULL;
        char uuid[37];
        Domain *d;
        int r, n;

        r = kvmi_qemu2introspector_decode(buf, len, &h);
        if (r < 0) {
                channel_fail(ch, "bad handshake: %s", kvmi_strerror(r));
                return r;
        }
        uuid_to_string(h.uuid, uuid);
        memcpy(ch->uuid, uuid, sizeof ch->uuid);
        memcpy(ch->qemu_name, h.name, sizeof ch->qemu_name);
        d = domain_find_uuid(ch->server, h.uuid);
        if (!d) {
                stranger_note(ch->cs, uuid, h.name, ch->peer);
                channel_fail(ch, "handshake from unknown domain uuid %s (QEMU name \"%s\"): refused", uuid, h.name);
                return -ENOENT;
        }
        /* ch->domain stays NULL (the channel is not the domain's), so the
         * reason goes to the domain here, as for the cookie below. */
        if (d->role != DOMAIN_ROLE_TARGET) {
                d->refused++;
                domain_set_error(d, "handshake refused: the domain is an introspector, not a target");
                channel_fail(ch, "handshake for domain \"%s\", which is an introspector, not a target: refused",
                             d->name);
                return -EPERM;
        }
        if (d->channel) {
                d->refused++;
                domain_set_error(d, "handshake refused: the domain already has a KVMI channel (from %s)",
                                 d->channel->peer);
                channel_fail(ch, "handshake for domain \"%s\" (uuid %s), which already has a KVMI channel: refused",
                             d->name, uuid);
                return -EEXIST;
        }
        r = cookie_hash(d, reply.cookie_hash, &why);
        if (r < 0) {
                d->refused++;
                domain_set_error(d, "handshake refused: %s", why);
                channel_fail(ch, "handshake for domain \"%s\" refused: %s", d->name, why);
                return r;
        }
        n = kvmi_introspector2qemu_encode(out, sizeof out, &reply);
        if (n < 0 || channel_queue(ch, out, (size_t) n) < 0) {
                channel_fail(ch, "cannot encode the handshake reply");
                return -ENOMEM;
        }
        if (!streq(h.name, d->name))
                log_notice("domain \"%s\": QEMU calls it \"%s\"", d->name, h.name);

        ch->domain = d;
        d->channel = ch;
        d->kvmi_state = DOMAIN_KVMI_PROBING;
        d->connects++;
        d->connected_usec = now_usec(CLOCK_REALTIME);
        d->qemu_start_time = h.start_time;
        d->qemu_cpu_type = h.cpu_type;
        d->commands = d->events_supported = d->events_enabled = 0;
        d->kvmi_version = d->vcpus = 0;
        free(d->qemu_name);
        d->qemu_name = strdup(h.name);
        ch->state = CHANNEL_PROBE;
        log_info("domain \"%s\" (uuid %s): KVMI handshake from %s done", d->name, uuid, ch->peer);

        KvmiCommand c = { .cmd = KVMI_CMD_GET_VERSION };
        if (!channel_send(ch, &c, 0, on_version))
                return -ECONNRESET;
        return (int) h.struct_size;
}

/* ---- events ---------------------------------------------------------------- */

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) le16(p) | (uint32_t) le16(p + 2) << 16;
}

/* An event id this numbering does not know (a newer kernel): the vCPU still
 * waits, so answer CONTINUE with the ids as they came. */
static int channel_ack_unknown(Channel *ch, const KvmiMsgHdr *h, const uint8_t *msg) {
        uint8_t body[KVMI_EVENT_REPLY_SIZE] = {}, out[KVMI_MSG_HDR_SIZE + KVMI_EVENT_REPLY_SIZE];
        uint16_t reply_id;
        int n;

        if (h->size < 8 || kvmi_numbering_cmd_to_id(ch->numbering, KVMI_CMD_EVENT_REPLY, &reply_id) < 0)
                return -EBADMSG;
        (void) kvmi_vcpu_hdr_encode(body, sizeof body, le16(msg + KVMI_MSG_HDR_SIZE + 2));
        body[8] = KVMI_EVENT_ACTION_CONTINUE;
        body[9] = msg[KVMI_MSG_HDR_SIZE + 4];
        n = kvmi_msg_encode(out, sizeof out, reply_id, h->seq, body, sizeof body);
        if (n < 0)
                return n;
        return channel_queue(ch, out, (size_t) n);
}

typedef struct Batch {
        KvmiEvent ev[CHANNEL_BATCH];
        size_t n;
        uint64_t t_read_ns, wall_usec;
} Batch;

/* Acks are written; now the rest of the work on the batch's events. */
static void batch_deliver(Channel *ch, Batch *b) {
        uint64_t lat = now_nsec() - b->t_read_ns;
        Domain *d = ch->domain;
        size_t writes = 0;

        if (ch->dead || !d) {
                b->n = 0;
                return;
        }
        for (size_t i = 0; i < b->n; i++) {
                latency_add(&d->ack_latency, lat);
                if (b->ev[i].event == KVMI_EV_HYPERCALL && kvmi_event_is_guest_request(&b->ev[i]))
                        writes += domain_guest_request(d, &b->ev[i], b->wall_usec);
        }
        b->n = 0;
        /* Our acks just woke the vCPUs (or the kernel's KVMI receiver).
         * One put on this CPU would wait out the flushes that follow
         * (the scheduler lets the running task finish its slice), so with
         * a long fan-out ahead hand the CPU over first; for a short one
         * the extra context switch costs more than it saves.  Without
         * this, ack p99 tripled at 64 subscribers on 2 CPUs (bench-fanout). */
        if (writes >= FANOUT_YIELD_WRITES)
                (void) sched_yield();
}

static int channel_event(Channel *ch, const KvmiMsgHdr *h, const uint8_t *msg, size_t len, Batch *b) {
        uint8_t out[KVMI_MSG_HDR_SIZE + KVMI_EVENT_REPLY_SIZE];
        Domain *d = ch->domain;
        KvmiEvent *e = &b->ev[b->n];
        int r, n;

        r = kvmi_event_decode(ch->numbering, msg, len, e);
        if (r == -ENOMSG) {
                r = channel_ack_unknown(ch, h, msg);
                if (r < 0) {
                        channel_fail(ch, "event with unknown id: cannot reply");
                        return r;
                }
                d->events++;
                d->acks++;
                d->other_events++;
                return 0;
        }
        if (r < 0) {
                channel_fail(ch, "malformed event (seq %" PRIu32 "): %s", h->seq, kvmi_strerror(r));
                return r;
        }
        d->events++;
        if (e->event == KVMI_EV_UNHOOK) {
                /* QEMU is detaching (shutdown, migration): drop everything. */
                ch->unhooked = true;
                return 0;
        }
        /* The common reply only: events whose v7 reply carries more (CR's
         * new value, MSR's) would have that zero-filled by the kernel, but
         * the kernel sends only the events we enable, and kvmid enables
         * HYPERCALL alone; anything else is a peer's bug, answered so that
         * its vCPU does not stay stopped. */
        n = kvmi_encode_event_reply(out, sizeof out, ch->numbering, e->seq, e->vcpu, e->event,
                                    KVMI_EVENT_ACTION_CONTINUE);
        if (n < 0 || channel_queue(ch, out, (size_t) n) < 0) {
                channel_fail(ch, "cannot reply to a %s event: %s", kvmi_ev_to_string(e->event), kvmi_strerror(n));
                return -ENOMEM;
        }
        d->acks++;
        if (e->event != KVMI_EV_HYPERCALL)
                d->other_events++;
        else if (!kvmi_event_is_guest_request(e))
                d->other_hypercalls++;
        b->n++;
        return 0;
}

/* ---- input ------------------------------------------------------------------ */

static int channel_grow(Channel *ch, size_t need) {
        size_t cap = ch->in_cap;
        uint8_t *p;

        if (need <= cap)
                return 0;
        if (need > CHANNEL_IN_MAX)
                return -EMSGSIZE;
        while (cap < need)
                cap *= 2;
        cap = MIN(cap, (size_t) CHANNEL_IN_MAX);
        p = realloc(ch->in, cap);
        if (!p)
                return -ENOMEM;
        ch->in = p;
        ch->in_cap = cap;
        return 0;
}

static void channel_process(Channel *ch, uint64_t t_read_ns) {
        Batch b;        /* not zeroed: 64 events are 35 KiB, and only ev[0..n) is read */
        b.n = 0;
        b.t_read_ns = t_read_ns;
        b.wall_usec = now_usec(CLOCK_REALTIME);
        uint16_t event_id;
        size_t off = 0;
        int r;

        if (kvmi_numbering_cmd_to_id(ch->numbering, KVMI_CMD_EVENT, &event_id) < 0) {
                channel_fail(ch, "numbering %s has no EVENT message", ch->numbering->name);
                return;
        }
        while (!ch->dead && !ch->unhooked && off < ch->in_len) {
                const uint8_t *p = ch->in + off;
                size_t avail = ch->in_len - off;
                KvmiMsgHdr h;

                if (ch->state == CHANNEL_HANDSHAKE) {
                        r = kvmi_handshake_frame_check(p, avail, KVMI_QEMU2INTROSPECTOR_MIN_SIZE);
                        if (r == 0) {
                                if (avail >= 4 && channel_grow(ch, off + le32(p)) < 0)
                                        channel_fail(ch, "handshake larger than the buffer");
                                break;
                        }
                        if (r < 0) {
                                channel_fail(ch, "bad handshake: %s", kvmi_strerror(r));
                                return;
                        }
                        r = channel_handshake(ch, p, avail);
                        if (r < 0)
                                return;
                        off += (size_t) r;
                        continue;
                }

                r = kvmi_frame_check(p, avail, ch->max_msg, &h);
                if (r < 0) {
                        KvmiMsgHdr bad;
                        (void) kvmi_msg_hdr_decode(p, avail, &bad);
                        channel_fail(ch, "message of %u bytes (id %u) over the %zu byte limit", bad.size, bad.id,
                                     ch->max_msg);
                        return;
                }
                if (r == 0) {
                        if (avail >= KVMI_MSG_HDR_SIZE && channel_grow(ch, off + KVMI_MSG_HDR_SIZE + le16(p + 2)) < 0)
                                channel_fail(ch, "message larger than the buffer");
                        break;
                }
                if (h.id == event_id)
                        r = channel_event(ch, &h, p, (size_t) r, &b);
                else {
                        /* A reply handler does real work (a token's JSON,
                         * its audit record): the vCPUs of the events before
                         * it in this read must not wait for that.  Replies
                         * are rare; with nothing queued this writes nothing. */
                        channel_flush(ch);
                        if (ch->dead)
                                return;
                        r = channel_reply(ch, &h, p, (size_t) r);
                }
                if (r < 0)
                        return;
                off += KVMI_MSG_HDR_SIZE + h.size;
                if (b.n == CHANNEL_BATCH) {
                        channel_flush(ch);
                        batch_deliver(ch, &b);
                }
        }
        if (ch->dead)
                return;
        memmove(ch->in, ch->in + off, ch->in_len - off);
        ch->in_len -= off;
        channel_flush(ch);
        batch_deliver(ch, &b);
        if (ch->unhooked && !ch->dead)
                channel_close(ch, "UNHOOK: QEMU is detaching introspection");
}

static void channel_on_read(evutil_socket_t fd, short what, void *userdata) {
        Channel *ch = userdata;

        /* A few reads per wakeup, so one busy target cannot starve others;
         * a short read drained the socket, and the level-triggered ev_read
         * reports what comes next (a read to see EAGAIN would cost a
         * syscall per event in a closed loop). */
        for (int i = 0; i < 8 && !ch->dead; i++) {
                size_t space;
                ssize_t n;

                if (ch->in_len == ch->in_cap && channel_grow(ch, ch->in_cap * 2) < 0) {
                        channel_fail(ch, "input buffer full");
                        return;
                }
                space = ch->in_cap - ch->in_len;
                n = read(ch->fd, ch->in + ch->in_len, space);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n < 0 && errno != ECONNRESET) {
                        channel_fail(ch, "read failed: %s", strerror(errno));
                        return;
                }
                /* A reset is a hang-up with our last write unread (QEMU
                 * closing on a cookie mismatch does that). */
                if (n <= 0) {
                        if (ch->state == CHANNEL_PROBE && ch->domain && ch->domain->kvmi_version == 0)
                                channel_fail(ch, "closed by the peer before GET_VERSION was answered "
                                                 "(cookie mismatch, or QEMU gave up)");
                        else if (ch->in_len > 0)
                                channel_fail(ch, "closed by the peer in the middle of a message (%zu bytes pending)",
                                             ch->in_len);
                        else
                                channel_close(ch, "closed by the peer");
                        return;
                }
                ch->in_len += (size_t) n;
                channel_process(ch, now_nsec());
                if ((size_t) n < space)
                        return;
        }
}

/* ---- listeners ------------------------------------------------------------- */

static int channel_new(ChannelServer *cs, int fd, const char *peer) {
        Channel *ch = calloc(1, sizeof *ch);
        Server *s = cs->server;

        if (!ch)
                return -ENOMEM;
        ch->cs = cs;
        ch->server = s;
        ch->fd = fd;
        snprintf(ch->peer, sizeof ch->peer, "%s", peer);
        ch->numbering = s->config->kvmi.numbering;
        ch->max_msg = ch->numbering->max_msg_size;
        ch->next_seq = 1;
        ch->pending_tail = &ch->pending;
        ch->in_cap = CHANNEL_IN_INITIAL;
        ch->in = malloc(ch->in_cap);
        ch->out = evbuffer_new();
        ch->ev_read = event_new(s->base, fd, EV_READ | EV_PERSIST, channel_on_read, ch);
        ch->ev_write = event_new(s->base, fd, EV_WRITE | EV_PERSIST, channel_on_write, ch);
        ch->ev_timer = evtimer_new(s->base, channel_on_timer, ch);
        if (!ch->in || !ch->out || !ch->ev_read || !ch->ev_write || !ch->ev_timer) {
                ch->fd = -EBADF;
                channel_free(ch);
                return -ENOMEM;
        }
        /* Ignored by a loop without priorities (unit tests). */
        (void) event_priority_set(ch->ev_read, EVENT_PRIORITY_KVMI);
        (void) event_priority_set(ch->ev_write, EVENT_PRIORITY_KVMI);
        ch->handshake_deadline_usec = now_usec(CLOCK_MONOTONIC) + s->config->kvmi.handshake_timeout_sec * 1000000ULL;
        event_add(ch->ev_read, NULL);
        channel_arm_timer(ch);
        ch->next = cs->channels;
        if (cs->channels)
                cs->channels->prev = ch;
        cs->channels = ch;
        cs->n_channels++;
        return 0;
}

static void channel_server_on_resume(evutil_socket_t fd, short what, void *userdata) {
        ChannelServer *cs = userdata;

        if (cs->ev_unix)
                event_add(cs->ev_unix, NULL);
        if (cs->ev_vsock)
                event_add(cs->ev_vsock, NULL);
}

static void channel_server_on_accept(evutil_socket_t lfd, short what, void *userdata) {
        ChannelServer *cs = userdata;

        for (int i = 0; i < 16; i++) {
                union {
                        struct sockaddr sa;
                        struct sockaddr_un un;
                        struct sockaddr_vm vm;
                } addr = {};
                socklen_t alen = sizeof addr;
                char peer[48];
                int fd = accept4(lfd, &addr.sa, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                struct timeval tv = { .tv_usec = ACCEPT_PAUSE_USEC };
                                log_warning_errno(errno, "KVMI listener: cannot accept (%m), pausing");
                                if (cs->ev_unix)
                                        event_del(cs->ev_unix);
                                if (cs->ev_vsock)
                                        event_del(cs->ev_vsock);
                                evtimer_add(cs->ev_resume, &tv);
                        }
                        return;
                }
                if (addr.sa.sa_family == AF_VSOCK)
                        snprintf(peer, sizeof peer, "vsock:%u", addr.vm.svm_cid);
                else {
                        struct ucred cred;
                        socklen_t clen = sizeof cred;
                        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
                                snprintf(peer, sizeof peer, "unix:pid %d uid %u", (int) cred.pid, (unsigned) cred.uid);
                        else
                                snprintf(peer, sizeof peer, "unix");
                }
                if (cs->server->stopping || cs->n_channels >= cs->server->config->kvmi.max_channels) {
                        log_warning("KVMI listener: %u channels open (max-channels), refusing %s", cs->n_channels,
                                    peer);
                        safe_close(fd);
                        continue;
                }
                if (channel_new(cs, fd, peer) < 0) {
                        log_warning("KVMI listener: out of memory, refusing %s", peer);
                        safe_close(fd);
                }
        }
}

static int vsock_listen(unsigned port, int *ret_fd) {
        _cleanup_close_ int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_vm vm = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };

        if (fd < 0)
                return negative_errno();
        if (bind(fd, (struct sockaddr *) &vm, sizeof vm) < 0 || listen(fd, SOMAXCONN) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int channel_server_start(Server *s) {
        const KvmiConfig *k = &s->config->kvmi;
        ChannelServer *cs = calloc(1, sizeof *cs);
        int r;

        if (!cs)
                return -ENOMEM;
        s->channels = cs;
        cs->server = s;
        cs->unix_fd = cs->vsock_fd = -EBADF;
        cs->ev_reap = event_new(s->base, -1, 0, channel_server_on_reap, cs);
        cs->ev_resume = evtimer_new(s->base, channel_server_on_resume, cs);
        if (!cs->ev_reap || !cs->ev_resume)
                return -ENOMEM;

        if (s->kvmi_fd_passed >= 0) {
                cs->unix_fd = TAKE_FD(s->kvmi_fd_passed);
                /* systemd passes it blocking: accept must never wait. */
                (void) fcntl(cs->unix_fd, F_SETFL, fcntl(cs->unix_fd, F_GETFL) | O_NONBLOCK);
                log_info("KVMI listener: using socket passed by systemd");
        } else {
                r = server_bind_unix("kvmi", k->socket_path, k->mode, k->group, &cs->unix_fd);
                if (r < 0)
                        return r;
                cs->unix_owned = true;
                cs->unix_path = strdup(k->socket_path);
                if (!cs->unix_path)
                        return -ENOMEM;
                log_info("KVMI listener on \"%s\"", k->socket_path);
        }
        cs->ev_unix = event_new(s->base, cs->unix_fd, EV_READ | EV_PERSIST, channel_server_on_accept, cs);
        if (!cs->ev_unix)
                return -ENOMEM;
        event_add(cs->ev_unix, NULL);

        if (k->vsock_port > 0) {
                r = vsock_listen(k->vsock_port, &cs->vsock_fd);
                if (r == -EAFNOSUPPORT || r == -ENODEV)
                        log_notice("KVMI vsock listener on port %u is off: this kernel has no AF_VSOCK", k->vsock_port);
                else if (r < 0)
                        log_warning_errno(r, "KVMI vsock listener on port %u is off: %m", k->vsock_port);
                else {
                        cs->ev_vsock = event_new(s->base, cs->vsock_fd, EV_READ | EV_PERSIST, channel_server_on_accept,
                                                 cs);
                        if (!cs->ev_vsock)
                                return -ENOMEM;
                        event_add(cs->ev_vsock, NULL);
                        log_info("KVMI listener on vsock port %u", k->vsock_port);
                }
        }
        return 0;
}

void channel_server_stop(Server *s) {
        ChannelServer *cs = s->channels;

        if (!cs)
                return;
        while (cs->channels)
                channel_close(cs->channels, "kvmid is stopping");
        channel_server_on_reap(-1, 0, cs);
        if (cs->ev_unix)
                event_free(cs->ev_unix);
        if (cs->ev_vsock)
                event_free(cs->ev_vsock);
        if (cs->ev_resume)
                event_free(cs->ev_resume);
        if (cs->ev_reap)
                event_free(cs->ev_reap);
        if (cs->unix_owned && cs->unix_path)
                (void) unlink(cs->unix_path);
        safe_close(cs->unix_fd);
        safe_close(cs->vsock_fd);
        free(cs->unix_path);
        free(cs);
        s->channels = NULL;
}

unsigned channel_server_count(const Server *s) {
        return s->channels ? s->channels->n_channels : 0;
}
