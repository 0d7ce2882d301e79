/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --misbehave MODE: each VM breaks the protocol in one way and watches what
 * kvmid does.  Success means the misbehaviour was carried out and kvmid
 * closed the channel (wrong-cookie: we close, like QEMU; duplicate-uuid:
 * the second connection is closed while the first stays usable;
 * silent-command: GET_GUEST_INFO is never answered, kvmid must give up on
 * it after its command-timeout; unexpected-seq: the event sent just before
 * the bad reply is answered first).  Where a
 * close of ours would hide kvmid's reaction, we half-close (SHUT_WR): kvmid
 * reads EOF exactly as after close(), and we can still see it close. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sim.h"

#define MIS_TRUNCATED_BYTES     40
#define MIS_HDR_CLAIM           600                     /* the header's claim ... */
#define MIS_BOGUS_SEQ           0xfffffff0U             /* kvmid's seqs count up from 1 */
#define MIS_OVERSIZE_SENT       64                      /* body bytes actually sent (of limit + 1) */
#define MIS_SILENT_CMD          KVMI_CMD_GET_GUEST_INFO /* a probe step kvmid cannot do without */

struct SimMis {
        MisMode mode;
        SimVm *owner, *dup;
        bool acted, finished, closed_by_kvmid;
        int first_alive;                /* duplicate-uuid: -1 unknown, 0, 1 */
        uint64_t act_ns, closed_ns;
        char detail[SIM_ERR_LEN];
        struct event *ev_wait;
};

static const char *const mis_names[MIS__MAX] = {
        [MIS_NONE] = "none",
        [MIS_WRONG_COOKIE] = "wrong-cookie",
        [MIS_TRUNCATED_HANDSHAKE] = "truncated-handshake",
        [MIS_SLOW_HANDSHAKE] = "slow-handshake",
        [MIS_BAD_HEADER_SIZE] = "bad-header-size",
        [MIS_NONZERO_PADDING] = "nonzero-padding",
        [MIS_UNEXPECTED_SEQ] = "unexpected-seq",
        [MIS_OVERSIZE] = "oversize",
        [MIS_DISCONNECT_MID_MESSAGE] = "disconnect-mid-message",
        [MIS_DUPLICATE_UUID] = "duplicate-uuid",
        [MIS_SILENT_COMMAND] = "silent-command",
};

MisMode mis_from_string(const char *s) {
        for (int i = MIS_NONE + 1; i < MIS__MAX; i++)
                if (streq(mis_names[i], s))
                        return (MisMode) i;
        return MIS__MAX;
}

const char *mis_to_string(MisMode m) {
        return (unsigned) m < MIS__MAX ? mis_names[m] : "?";
}

static void mis_acted(SimMis *m);

static bool mis_is_owner(const SimVm *vm) {
        return vm->mis && vm->mis->owner == vm;
}

bool mis_handshake_wrong(const SimVm *vm) {
        return mis_is_owner(vm) && vm->mis->mode == MIS_WRONG_COOKIE;
}

bool mis_sends_handshake(const SimVm *vm) {
        return !mis_is_owner(vm) ||
               (vm->mis->mode != MIS_TRUNCATED_HANDSHAKE && vm->mis->mode != MIS_SLOW_HANDSHAKE);
}

bool mis_silent(SimVm *vm, KvmiCmd cmd, uint32_t seq) {
        SimMis *m = vm->mis;

        if (!mis_is_owner(vm) || m->mode != MIS_SILENT_COMMAND || cmd != MIS_SILENT_CMD || m->acted)
                return false;
        mis_acted(m);
        snprintf(m->detail, sizeof m->detail, "%s (seq %" PRIu32 ") never answered", kvmi_cmd_to_string(cmd), seq);
        util_log(vm->sim, "%s: misbehave: %s", vm->spec.name, m->detail);
        return true;
}

bool mis_done(const SimVm *vm) {
        return !vm->mis || vm->mis->finished;
}

static void mis_arm(SimMis *m) {
        struct timeval tv = { .tv_sec = m->owner->sim->o.timeout_sec };

        evtimer_add(m->ev_wait, &tv);
}

static void mis_finish(SimMis *m, const char *fmt, ...) _printf_(2, 3);
static void mis_finish(SimMis *m, const char *fmt, ...) {
        va_list ap;

        if (m->finished)
                return;
        m->finished = true;
        event_del(m->ev_wait);
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(m->detail, sizeof m->detail, fmt, ap);
                va_end(ap);
        }
        util_log(m->owner->sim, "%s: misbehave %s done: %s", m->owner->spec.name, mis_names[m->mode], m->detail);
        sim_vm_notify(m->owner, VM_NOTE_MISBEHAVE_DONE);
}

static void mis_on_wait(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimMis *m = userdata;
        SimVm *vm = m->owner;
        unsigned t = vm->sim->o.timeout_sec;

        if (m->mode == MIS_DUPLICATE_UUID && m->dup && m->dup->state != VM_CLOSED)
                mis_finish(m, "kvmid did not close the duplicate connection within %us", t);
        else if (m->mode == MIS_DUPLICATE_UUID && m->dup)
                mis_finish(m, "the first connection did not answer within %us", t);
        else if (m->acted)
                mis_finish(m, "kvmid did not close the channel within %us of the misbehaviour", t);
        else
                mis_finish(m, "never got to misbehave within %us (state %s, handshake \"%s\")", t,
                           vm_state_to_string(vm->state), vm->handshake);
        if (m->dup)
                vm_close(m->dup, false, "misbehave: giving up");
        vm_close(vm, false, "misbehave: giving up");
}

int mis_start(SimVm *vm, MisMode mode) {
        SimMis *m = calloc(1, sizeof *m);

        if (!m)
                return -ENOMEM;
        m->mode = mode;
        m->owner = vm;
        m->first_alive = -1;
        m->ev_wait = evtimer_new(vm->sim->base, mis_on_wait, m);
        if (!m->ev_wait) {
                free(m);
                return -ENOMEM;
        }
        vm->mis = m;
        mis_arm(m);             /* until the act: connect + probe */
        vm_connect(vm);
        return 0;
}

void mis_free(SimVm *vm) {
        SimMis *m = vm->mis;

        if (!m)
                return;
        vm->mis = NULL;
        if (m->owner != vm)
                return;
        if (m->dup) {
                m->dup->mis = NULL;
                vm_free(m->dup);
        }
        event_free(m->ev_wait);
        free(m);
}

/* ---- acts ------------------------------------------------------------------------- */

static void mis_acted(SimMis *m) {
        m->acted = true;
        m->act_ns = util_now_ns();
        mis_arm(m);
}

static void mis_half_close(SimVm *vm) {
        if (vm->fd >= 0)
                (void) shutdown(vm->fd, SHUT_WR);
}

static void mis_send_truncated_handshake(SimMis *m) {
        KvmiQemu2Introspector h = { .struct_size = KVMI_QEMU2INTROSPECTOR_SIZE, .start_time = (int64_t) time(NULL) };
        uint8_t buf[KVMI_QEMU2INTROSPECTOR_SIZE];
        SimVm *vm = m->owner;
        int n;

        memcpy(h.uuid, vm->spec.uuid, sizeof h.uuid);
        snprintf(h.name, sizeof h.name, "%s", vm->spec.name);
        n = kvmi_qemu2introspector_encode(buf, sizeof buf, &h);
        if (n < MIS_TRUNCATED_BYTES) {
                mis_finish(m, "cannot encode the handshake");
                return;
        }
        mis_acted(m);
        if (vm_send(vm, buf, MIS_TRUNCATED_BYTES) == 0)
                mis_half_close(vm);
        snprintf(m->detail, sizeof m->detail, "sent %d of %d handshake bytes, then EOF", MIS_TRUNCATED_BYTES, n);
}

static void mis_act_after_probe(SimMis *m) {
        uint8_t buf[KVMI_MSG_HDR_SIZE + MIS_HDR_CLAIM];
        SimVm *vm = m->owner;
        uint32_t seq = vm->next_seq++;
        uint16_t event_id = 1;
        size_t len = 0;
        int n;

        (void) kvmi_numbering_cmd_to_id(&kvmi_numbering_v7, KVMI_CMD_EVENT, &event_id);
        memset(buf, 0, sizeof buf);
        switch (m->mode) {
        case MIS_BAD_HEADER_SIZE:
                /* A well-formed 544-byte HYPERCALL kvmi_event (size field 544)
                 * under a header claiming 600, padded with garbage. */
                n = job_encode_event(vm, 0, KVMI_EV_HYPERCALL, NULL, seq, buf, sizeof buf);
                if (n < 0)
                        break;
                (void) kvmi_msg_hdr_encode(buf, sizeof buf,
                                           &(KvmiMsgHdr) { .id = event_id, .size = MIS_HDR_CLAIM, .seq = seq });
                memset(buf + n, 0xa5, sizeof buf - (size_t) n);
                len = sizeof buf;
                snprintf(m->detail, sizeof m->detail,
                         "EVENT header size %d, kvmi_event.size %d, then %zu garbage bytes", MIS_HDR_CLAIM,
                         KVMI_EVENT_SIZE, sizeof buf - (size_t) n);
                break;

        case MIS_NONZERO_PADDING:
                n = job_encode_event(vm, 0, KVMI_EV_HYPERCALL, NULL, seq, buf, sizeof buf);
                if (n < 0)
                        break;
                buf[KVMI_MSG_HDR_SIZE + 5] = 0x5a;      /* kvmi_event.padding[0] */
                len = (size_t) n;
                snprintf(m->detail, sizeof m->detail, "HYPERCALL event with kvmi_event.padding[0] = 0x5a");
                break;

        case MIS_UNEXPECTED_SEQ: {
                /* After a HYPERCALL event in the same write: kvmid must
                 * answer the event (its vCPU waits) before it looks at the
                 * reply that makes it close the channel. */
                KvmiReply r = { .seq = MIS_BOGUS_SEQ, .version = { .version = 7, .has_features = true } };
                SimVcpu *v = &vm->vcpus[0];
                int e = job_encode_event(vm, 0, KVMI_EV_HYPERCALL, NULL, seq, buf, sizeof buf);
                if (e < 0)
                        break;
                n = kvmi_reply_encode(buf + e, sizeof buf - (size_t) e, &kvmi_numbering_v7, KVMI_CMD_GET_VERSION, &r);
                if (n < 0)
                        break;
                len = (size_t) e + (size_t) n;
                v->outstanding = true;
                v->seq = seq;
                v->sent_id = buf[KVMI_MSG_HDR_SIZE + 4];
                v->sent_ns = util_now_ns();
                snprintf(m->detail, sizeof m->detail,
                         "HYPERCALL event, then in the same write an unsolicited GET_VERSION reply with seq 0x%x",
                         MIS_BOGUS_SEQ);
                break;
        }

        case MIS_OVERSIZE: {
                /* One byte over what our GET_VERSION reported (--max-msg). */
                uint32_t limit = kernel_max_msg(vm->sim);
                if (limit >= KVMI_MAX_MSG_SIZE_LIMIT) {
                        mis_finish(m, "a header cannot announce more than the %" PRIu32 " byte limit", limit);
                        return;
                }
                n = kvmi_msg_hdr_encode(buf, sizeof buf,
                                        &(KvmiMsgHdr) { .id = event_id, .size = (uint16_t) (limit + 1), .seq = seq });
                if (n < 0)
                        break;
                len = KVMI_MSG_HDR_SIZE + MIS_OVERSIZE_SENT;
                snprintf(m->detail, sizeof m->detail,
                         "EVENT header announcing %" PRIu32 " body bytes (limit %" PRIu32 "), %d sent", limit + 1,
                         limit, MIS_OVERSIZE_SENT);
                break;
        }

        case MIS_DISCONNECT_MID_MESSAGE:
                n = job_encode_event(vm, 0, KVMI_EV_HYPERCALL, NULL, seq, buf, sizeof buf);
                if (n < 0)
                        break;
                len = (size_t) n / 2;
                snprintf(m->detail, sizeof m->detail, "sent %zu of a %d-byte event, then EOF", len, n);
                break;

        default:
                return;
        }
        if (len == 0) {
                mis_finish(m, "cannot encode the message");
                return;
        }
        mis_acted(m);
        if (vm_send(vm, buf, len) == 0 && m->mode == MIS_DISCONNECT_MID_MESSAGE)
                mis_half_close(vm);
}

static void mis_on_alive(SimJob *job) {
        SimMis *m = job->userdata;
        SimVm *vm = m->owner;

        m->first_alive = job->sent > 0 && job->acked == job->sent && job->errors == 0 && vm->state == VM_KERNEL;
        if (m->first_alive)
                mis_finish(m, "second connection closed by kvmid; first still answers events");
        else
                mis_finish(m, "second connection %s; first connection: %s",
                           m->closed_by_kvmid ? "closed by kvmid" : "not closed by kvmid",
                           job->error[0] ? job->error : "event not acked");
        job_free(job);
}

static void mis_dup_closed(SimMis *m) {
        SimVm *vm = m->owner, *dup = m->dup;
        char why[SIM_ERR_LEN];
        SimJob *job;

        m->closed_by_kvmid = dup->closed_by_peer;
        m->closed_ns = dup->closed_ns;
        if (!m->closed_by_kvmid) {
                mis_finish(m, "duplicate connection: %s", dup->close_reason);
                return;
        }
        /* Is the first one unharmed?  One guest request must still be acked. */
        job = job_new(vm, -1, 1, 0, NULL, mis_on_alive, m, why, sizeof why);
        if (!job) {
                m->first_alive = 0;
                mis_finish(m, "second connection closed by kvmid; first connection: %s", why);
        }
}

void mis_notify(SimVm *vm, VmNote note) {
        SimMis *m = vm->mis;

        if (!m || m->finished)
                return;
        if (vm == m->dup) {
                if (note == VM_NOTE_HANDSHAKE_REPLY) {
                        m->closed_by_kvmid = false;
                        mis_finish(m, "kvmid answered the handshake of a second connection for uuid %s",
                                   vm->spec.uuid_str);
                        vm_close(vm, false, "duplicate accepted");
                } else if (note == VM_NOTE_CLOSED)
                        mis_dup_closed(m);
                return;
        }

        switch (note) {
        case VM_NOTE_CONNECTED:
                if (m->mode == MIS_TRUNCATED_HANDSHAKE)
                        mis_send_truncated_handshake(m);
                else if (m->mode == MIS_SLOW_HANDSHAKE) {
                        mis_acted(m);
                        snprintf(m->detail, sizeof m->detail, "connected, sent nothing");
                }
                break;

        case VM_NOTE_PROBED:
                if (m->mode == MIS_DUPLICATE_UUID) {
                        m->dup = vm_new(vm->sim, &vm->spec);
                        if (!m->dup) {
                                mis_finish(m, "out of memory");
                                return;
                        }
                        m->dup->hidden = true;
                        m->dup->mis = m;
                        mis_acted(m);
                        vm_connect(m->dup);
                } else if (m->mode == MIS_WRONG_COOKIE)
                        mis_finish(m, "the cookie hash matched a deliberately wrong secret");
                else
                        mis_act_after_probe(m);
                break;

        case VM_NOTE_CLOSED:
                if (m->mode == MIS_WRONG_COOKIE) {
                        m->acted = streq(vm->handshake, "cookie mismatch");
                        m->act_ns = m->closed_ns = vm->closed_ns;
                        mis_finish(m, "%s", m->acted ? "cookie hash mismatch: closed like QEMU" : vm->close_reason);
                } else if (m->mode == MIS_DUPLICATE_UUID) {
                        m->first_alive = 0;
                        mis_finish(m, "first connection closed: %s", vm->close_reason);
                } else if (m->acted) {
                        m->closed_by_kvmid = vm->closed_by_peer;
                        m->closed_ns = vm->closed_ns;
                        if (m->mode == MIS_UNEXPECTED_SEQ && vm->acked != 1)
                                mis_finish(m, "channel closed, the event before the bad reply never answered");
                        else
                                mis_finish(m, NULL);
                } else
                        mis_finish(m, "closed before misbehaving: %s", vm->close_reason);
                break;

        default:
                break;
        }
}

bool mis_ok(const SimVm *vm, char *why, size_t whylen) {
        const SimMis *m = vm->mis;
        bool ok;

        if (!m)
                return true;
        if (!m->finished)
                ok = false;
        else if (m->mode == MIS_WRONG_COOKIE)
                ok = m->acted;
        else if (m->mode == MIS_DUPLICATE_UUID)
                ok = m->acted && m->closed_by_kvmid && m->first_alive == 1;
        else if (m->mode == MIS_UNEXPECTED_SEQ)
                ok = m->acted && m->closed_by_kvmid && vm->acked == 1;
        else
                ok = m->acted && m->closed_by_kvmid;
        if (!ok)
                snprintf(why, whylen, "misbehave %s: %s", mis_names[m->mode],
                         !m->finished ? "not finished" : m->detail[0] ? m->detail : "kvmid did not close the channel");
        return ok;
}

struct json_object *mis_json(const SimVm *vm) {
        const SimMis *m = vm->mis;
        struct json_object *o;
        bool closed;

        if (!m)
                return NULL;
        closed = m->closed_ns && m->closed_by_kvmid;
        o = json_object_new_object();
        json_object_object_add(o, "mode", json_object_new_string(mis_names[m->mode]));
        json_object_object_add(o, "carried_out", json_object_new_boolean(m->acted));
        json_object_object_add(o, "closed_by_kvmid", json_object_new_boolean(m->closed_by_kvmid));
        json_object_object_add(o, "after_ms",
                               closed ? json_object_new_double((double) ((m->closed_ns - m->act_ns + 500) / 1000) / 1e3)
                                      : NULL);
        if (m->mode == MIS_DUPLICATE_UUID)
                json_object_object_add(o, "first_alive",
                                       m->first_alive < 0 ? NULL : json_object_new_boolean(m->first_alive));
        if (m->detail[0])
                json_object_object_add(o, "detail", json_object_new_string(m->detail));
        return o;
}
