/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest requests: a job sends N HYPERCALL events on each of some vCPUs
 * (only where kvmid enabled HYPERCALL), paced per vCPU, and checks every
 * EVENT_REPLY strictly.  A job may send another event id instead (CR,
 * BREAKPOINT with their event-specific structs, or an id no numbering
 * knows), as a kernel whose introspector enabled more than kvmid does, or a
 * newer kernel; the reply must still name the very id and vCPU, with zero
 * padding and CONTINUE.  A vCPU that sent an event is stopped: it has at
 * most one event outstanding, and issues the next one only after the reply.
 * Ack latency = send → the read that brought the reply (CLOCK_MONOTONIC). */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define JOB_GUEST_RIP_64        0xffffffff81a01000ULL   /* an in-kernel agent's vmcall */
#define JOB_GUEST_RIP_32        0xc1201000ULL
#define JOB_EVENT_PAYLOAD_MAX   24

/* ---- encoding ---------------------------------------------------------------- */

static void job_segment(KvmSegment *s, uint16_t sel, uint8_t type, bool code64, bool db) {
        *s = (KvmSegment) { .limit = 0xffffffff, .selector = sel, .type = type, .present = 1, .s = 1,
                            .l = code64, .db = db, .g = 1 };
}

/* A vCPU stopped on vmcall in a flat-mode guest kernel; kvmid does not
 * validate sregs, but they should look like a real guest's. */
static void job_guest_state(KvmiEvent *e, uint8_t mode, uint16_t vcpu) {
        bool m64 = mode == KVMI_MODE_64;

        e->mode = mode;
        e->regs.rax = KVM_HC_XEN_HVM_OP;
        if (m64) {
                e->regs.rdi = KVM_HC_XEN_HVM_OP_GUEST_REQUEST_VM_EVENT;
                e->regs.rsi = 0;
        } else {
                e->regs.rbx = KVM_HC_XEN_HVM_OP_GUEST_REQUEST_VM_EVENT;
                e->regs.rcx = 0;
        }
        e->regs.rip = m64 ? JOB_GUEST_RIP_64 : JOB_GUEST_RIP_32;
        e->regs.rsp = (m64 ? 0xffffc90000010000ULL : 0xc2000000ULL) + 0x4000ULL * vcpu;
        e->regs.rflags = 0x246;
        job_segment(&e->sregs.cs, 0x10, 0xb, m64, !m64);
        job_segment(&e->sregs.ds, 0x18, 0x3, false, true);
        e->sregs.es = e->sregs.ss = e->sregs.ds;
        e->sregs.fs = e->sregs.gs = e->sregs.ds;
        e->sregs.tr = (KvmSegment) { .limit = 0x67, .selector = 0x40, .type = 0xb, .present = 1 };
        e->sregs.ldt = (KvmSegment) { .unusable = 1 };
        e->sregs.gdt = (KvmDtable) { .base = m64 ? 0xfffffe0000001000ULL : 0xc1800000ULL, .limit = 0x7f };
        e->sregs.idt = (KvmDtable) { .base = m64 ? 0xfffffe0000000000ULL : 0xc1801000ULL, .limit = 0xfff };
        e->sregs.cr0 = 0x80050033;
        e->sregs.cr3 = 0x1000000ULL + 0x1000ULL * vcpu;
        e->sregs.cr4 = m64 ? 0x3506f0 : 0x6f0;
        e->sregs.efer = m64 ? 0xd01 : 0;
        e->sregs.apic_base = 0xfee00900;
        e->msrs.efer = e->sregs.efer;
        e->msrs.pat = 0x0407050600070106ULL;
        e->msrs.lstar = m64 ? 0xffffffff81e00080ULL : 0;
}

int job_encode_event(SimVm *vm, uint16_t vcpu, KvmiEv ev, const SimRegs *regs, uint32_t seq, uint8_t *buf,
                     size_t bufsize) {
        KvmiEvent e = { .seq = seq, .vcpu = vcpu, .event = ev };

        /* The v7 kernel's UNHOOK: an all-zero kvmi_event but for the id. */
        if (ev != KVMI_EV_UNHOOK) {
                e.size = KVMI_EVENT_SIZE;
                job_guest_state(&e, vm->sim->o.mode, vcpu);
                util_regs_apply(&vm->sim->o.regs, &e.regs);
                if (regs)
                        util_regs_apply(regs, &e.regs);
        }
        return kvmi_event_encode(buf, bufsize, &kvmi_numbering_v7, &e, NULL, 0);
}

static void job_put_u64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

/* A job's event: wire id 'id' with kvmi_event.size --event-size.  v7's
 * event-specific structs for CR (kvmi_event_cr: u16 cr, u16 padding[3], u64
 * old_value, new_value) and BREAKPOINT (kvmi_event_breakpoint: u64 gpa, u8
 * insn_len, u8 padding[7]); none for the rest.  An id the numbering does
 * not know goes out as a HYPERCALL with that byte in kvmi_event.event. */
static int job_encode_id(SimVm *vm, uint16_t vcpu, uint8_t id, const SimRegs *regs, uint32_t seq, uint8_t *buf,
                         size_t bufsize) {
        uint8_t payload[JOB_EVENT_PAYLOAD_MAX] = {};
        KvmiEvent e = { .seq = seq, .vcpu = vcpu, .size = vm->sim->o.event_size };
        bool known = kvmi_numbering_ev_from_id(&kvmi_numbering_v7, id, &e.event) == 0;
        size_t plen = 0;
        int n;

        if (!known)
                e.event = KVMI_EV_HYPERCALL;
        job_guest_state(&e, vm->sim->o.mode, vcpu);
        util_regs_apply(&vm->sim->o.regs, &e.regs);
        if (regs)
                util_regs_apply(regs, &e.regs);
        if (known && e.event == KVMI_EV_CR) {
                payload[0] = 4;                                         /* cr4 */
                job_put_u64(payload + 8, e.sregs.cr4);
                job_put_u64(payload + 16, e.sregs.cr4 | (1ULL << 20));  /* SMEP on */
                plen = 24;
        } else if (known && e.event == KVMI_EV_BREAKPOINT) {
                job_put_u64(payload, 0x1a01000ULL);                     /* the int3's gpa */
                payload[8] = 1;                                         /* insn_len */
                plen = 16;
        }
        n = kvmi_event_encode(buf, bufsize, &kvmi_numbering_v7, &e, plen ? payload : NULL, plen);
        if (n >= 0 && !known)
                buf[KVMI_MSG_HDR_SIZE + 4] = id;                        /* kvmi_event.event */
        return n;
}

/* ---- lifetime ------------------------------------------------------------------ */

static void job_on_tick(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata);
static void job_on_stall(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata);

void job_free(SimJob *job) {
        if (!job)
                return;
        if (job->ev_stall)
                event_free(job->ev_stall);
        util_latvec_free(&job->lat);
        free(job);
}

static void job_finish(SimJob *job) {
        job->done = true;
        event_del(job->ev_stall);
        util_log(job->sim, "%s: job done: %" PRIu64 " sent, %" PRIu64 " acked, %" PRIu64 " errors%s%s",
                 job->vm->spec.name, job->sent, job->acked, job->errors, job->error[0] ? ": " : "", job->error);
        job->on_done(job);      /* owns the job from here */
}

/* The vCPU leaves the job; the last one out finishes it. */
static void job_vcpu_detach(SimVcpu *v) {
        SimJob *job = v->job;

        v->job = NULL;
        v->job_left = 0;
        if (v->ev_tick)
                event_del(v->ev_tick);
        if (--job->vcpus_active == 0)
                job_finish(job);
}

static struct timeval job_tv(uint64_t ns) {
        return (struct timeval) { .tv_sec = (time_t) (ns / 1000000000ULL),
                                  .tv_usec = (suseconds_t) (ns % 1000000000ULL / 1000) };
}

SimJob *job_new(SimVm *vm, int vcpu, uint64_t per_vcpu, double rate, const SimRegs *regs, JobDone done,
                void *userdata, char *why, size_t whylen) {
        Sim *s = vm->sim;
        struct timeval now_tv = {};
        unsigned first = 0, last = vm->nvcpus, n = 0;
        SimJob *job;

        if (vm->state != VM_KERNEL) {
                snprintf(why, whylen, "VM \"%s\" is not connected (%s)", vm->spec.name, vm_state_to_string(vm->state));
                return NULL;
        }
        if (per_vcpu == 0) {
                snprintf(why, whylen, "count must be at least 1");
                return NULL;
        }
        if (vcpu >= 0) {
                if ((unsigned) vcpu >= vm->nvcpus) {
                        snprintf(why, whylen, "VM \"%s\" has no vCPU %d", vm->spec.name, vcpu);
                        return NULL;
                }
                if (!(vm->vcpus[vcpu].events & (1U << KVMI_EV_HYPERCALL))) {
                        snprintf(why, whylen, "HYPERCALL is not enabled on vCPU %d of \"%s\"", vcpu, vm->spec.name);
                        return NULL;
                }
                first = (unsigned) vcpu;
                last = first + 1;
        }
        for (unsigned i = first; i < last; i++) {
                const SimVcpu *v = &vm->vcpus[i];
                if (!(v->events & (1U << KVMI_EV_HYPERCALL)))
                        continue;
                if (v->job || v->outstanding) {
                        snprintf(why, whylen, "vCPU %u of \"%s\" is busy (%s)", i, vm->spec.name,
                                 v->outstanding ? "stopped in an event" : "in another send");
                        return NULL;
                }
                n++;
        }
        if (n == 0) {
                snprintf(why, whylen, "HYPERCALL is not enabled on any vCPU of \"%s\"", vm->spec.name);
                return NULL;
        }

        job = calloc(1, sizeof *job);
        if (!job || !(job->ev_stall = evtimer_new(s->base, job_on_stall, job))) {
                job_free(job);
                snprintf(why, whylen, "out of memory");
                return NULL;
        }
        job->sim = s;
        job->vm = vm;
        job->per_vcpu = per_vcpu;
        job->rate = rate;
        job->event_id = s->o.event_id;
        if (regs)
                job->regs = *regs;
        job->on_done = done;
        job->userdata = userdata;
        job->start_ns = job->last_progress_ns = util_now_ns();
        for (unsigned i = first; i < last; i++) {
                SimVcpu *v = &vm->vcpus[i];
                if (!(v->events & (1U << KVMI_EV_HYPERCALL)))
                        continue;
                if (!v->ev_tick && !(v->ev_tick = evtimer_new(s->base, job_on_tick, v)))
                        continue;
                v->job = job;
                v->job_left = per_vcpu;
                v->job_sent = 0;
                job->vcpus_active++;
                /* First sends from the loop: job_new never calls back. */
                evtimer_add(v->ev_tick, &now_tv);
        }
        if (job->vcpus_active == 0) {
                job_free(job);
                snprintf(why, whylen, "out of memory");
                return NULL;
        }
        struct timeval tv = { .tv_sec = s->o.timeout_sec };
        evtimer_add(job->ev_stall, &tv);
        return job;
}

/* ---- sending ------------------------------------------------------------------- */

static void job_vcpu_send(SimVcpu *v) {
        static uint8_t buf[SIM_MSG_MAX];        /* --event-size: up to 64 KiB; vm_send copies what waits */
        SimJob *job = v->job;
        SimVm *vm = v->vm;
        uint32_t seq = vm->next_seq++;
        int n;

        n = job_encode_id(vm, v->index, job->event_id, &job->regs, seq, buf, sizeof buf);
        if (n < 0) {
                snprintf(job->error, sizeof job->error, "cannot encode the event: %s", kvmi_strerror(n));
                vm_error(vm, "%s", job->error);
                job_vcpu_detach(v);
                return;
        }
        v->outstanding = true;
        v->seq = seq;
        v->sent_id = job->event_id;
        v->job_left--;
        v->job_sent++;
        job->sent++;
        vm->events_sent++;
        v->sent_ns = util_now_ns();
        if (!job->first_send_ns)
                job->first_send_ns = v->sent_ns;
        if (!vm->first_send_ns)
                vm->first_send_ns = v->sent_ns;
        /* May close the VM and finish (free) the job: nothing after this. */
        (void) vm_send(vm, buf, (size_t) n);
}

/* Next step for a vCPU whose previous event (if any) was answered. */
static void job_vcpu_next(SimVcpu *v) {
        SimJob *job = v->job;

        if (!job || v->outstanding)
                return;
        if (v->job_left == 0) {
                job_vcpu_detach(v);
                return;
        }
        if (job->rate > 0) {
                uint64_t due = job->start_ns + (uint64_t) ((double) v->job_sent * 1e9 / job->rate);
                uint64_t now = util_now_ns();
                if (now < due) {
                        struct timeval tv = job_tv(due - now);
                        evtimer_add(v->ev_tick, &tv);
                        return;
                }
        }
        job_vcpu_send(v);
}

static void job_on_tick(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        job_vcpu_next(userdata);
}

static void job_on_stall(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimJob *job = userdata;
        SimVm *vm = job->vm;
        uint64_t limit = vm->sim->o.timeout_sec * 1000000000ULL, idle = util_now_ns() - job->last_progress_ns;
        unsigned stopped = 0;

        if (idle < limit) {
                struct timeval tv = job_tv(limit - idle);
                evtimer_add(job->ev_stall, &tv);
                return;
        }
        for (unsigned i = 0; i < vm->nvcpus; i++)
                stopped += vm->vcpus[i].job == job && vm->vcpus[i].outstanding;
        snprintf(job->error, sizeof job->error, "no EVENT_REPLY within %us (%u vCPUs stopped)",
                 vm->sim->o.timeout_sec, stopped);
        vm_error(vm, "%s", job->error);
        /* The stopped vCPUs stay stopped: a late reply still releases them. */
        for (unsigned i = 0; i < vm->nvcpus; i++)
                if (vm->vcpus[i].job == job) {
                        SimVcpu *v = &vm->vcpus[i];
                        v->job = NULL;
                        v->job_left = 0;
                        event_del(v->ev_tick);
                        job->vcpus_active--;
                }
        job_finish(job);
}

void job_vm_closed(SimVm *vm) {
        for (unsigned i = 0; i < vm->nvcpus; i++) {
                SimVcpu *v = &vm->vcpus[i];
                v->outstanding = false;
                if (!v->job)
                        continue;
                if (!v->job->error[0])
                        snprintf(v->job->error, sizeof v->job->error, "channel closed: %.150s", vm->close_reason);
                job_vcpu_detach(v);
        }
}

/* ---- replies ------------------------------------------------------------------- */

static void job_vcpu_answered(SimVcpu *v, bool ok) {
        SimVm *vm = v->vm;
        SimJob *job = v->job;
        uint64_t t = vm->t_read_ns, lat = t - v->sent_ns;

        v->outstanding = false;
        if (ok) {
                vm->acked++;
                vm->last_ack_ns = t;
                (void) util_latvec_add(&vm->lat, lat);
        }
        if (!job)
                return;
        job->last_progress_ns = t;
        if (ok) {
                job->acked++;
                job->last_ack_ns = t;
                (void) util_latvec_add(&job->lat, lat);
        } else
                job->errors++;
        job_vcpu_next(v);
}

void job_on_reply(SimVm *vm, const KvmiMsgHdr *h, const uint8_t *msg, size_t len) {
        SimVcpu *v = NULL;
        KvmiCommand c = {};
        uint8_t ev_id = 0;
        int r;

        r = kvmi_command_decode(&kvmi_numbering_v7, msg, len, &c);
        if (r == -ENOMSG && len == KVMI_MSG_HDR_SIZE + KVMI_EVENT_REPLY_SIZE) {
                /* Well formed (padding and action checked) but for an event
                 * id v7 does not know: what an unknown event's reply names. */
                c.vcpu = (uint16_t) (msg[KVMI_MSG_HDR_SIZE] | msg[KVMI_MSG_HDR_SIZE + 1] << 8);
                c.event_reply.action = msg[KVMI_MSG_HDR_SIZE + 8];
                r = 0;
        }
        if (r == 0)
                ev_id = msg[KVMI_MSG_HDR_SIZE + 9];     /* kvmi_event_reply.event, as on the wire */
        if (r == 0 && c.vcpu < vm->nvcpus && vm->vcpus[c.vcpu].outstanding && vm->vcpus[c.vcpu].seq == h->seq)
                v = &vm->vcpus[c.vcpu];
        else
                for (unsigned i = 0; i < vm->nvcpus && !v; i++)
                        if (vm->vcpus[i].outstanding && vm->vcpus[i].seq == h->seq)
                                v = &vm->vcpus[i];
        if (r < 0) {
                vm_error(vm, "malformed EVENT_REPLY (seq %" PRIu32 ", %u bytes): %s", h->seq, h->size,
                         kvmi_strerror(r));
                if (v)
                        job_vcpu_answered(v, false);
                return;
        }
        if (!v) {
                if (vm->unhook_sent)
                        vm_error(vm, "EVENT_REPLY (seq %" PRIu32 ") after UNHOOK: UNHOOK has no reply", h->seq);
                else
                        vm_error(vm, "EVENT_REPLY with unexpected seq %" PRIu32 " (vCPU %u): no such event outstanding",
                                 h->seq, c.vcpu);
                return;
        }
        if (c.vcpu != v->index) {
                vm_error(vm, "EVENT_REPLY seq %" PRIu32 " names vCPU %u, the event came from vCPU %u", h->seq, c.vcpu,
                         v->index);
                job_vcpu_answered(v, false);
                return;
        }
        if (ev_id != v->sent_id) {
                vm_error(vm, "EVENT_REPLY seq %" PRIu32 " is for event id %u, vCPU %u sent event id %u", h->seq, ev_id,
                         v->index, v->sent_id);
                job_vcpu_answered(v, false);
                return;
        }
        if (c.event_reply.action != KVMI_EVENT_ACTION_CONTINUE) {
                vm_error(vm, "EVENT_REPLY seq %" PRIu32 " on vCPU %u: action %u, not CONTINUE", h->seq, v->index,
                         c.event_reply.action);
                job_vcpu_answered(v, false);
                return;
        }
        job_vcpu_answered(v, true);
}

struct json_object *job_result_json(const SimJob *job) {
        struct json_object *o = json_object_new_object();
        LatSummary sum = util_latvec_summary(&job->lat);
        bool ok = !job->error[0] && job->errors == 0 && job->acked == job->sent;

        json_object_object_add(o, "ok", json_object_new_boolean(ok));
        if (job->error[0])
                json_object_object_add(o, "error", json_object_new_string(job->error));
        json_object_object_add(o, "vm", json_object_new_string(job->vm->spec.name));
        json_object_object_add(o, "sent", util_json_u64(job->sent));
        json_object_object_add(o, "acked", util_json_u64(job->acked));
        json_object_object_add(o, "errors", util_json_u64(job->errors));
        json_object_object_add(o, "latency_ns", util_latency_json(&sum));
        json_object_object_add(o, "events_per_sec",
                               json_object_new_double(util_rate(job->acked, job->first_send_ns, job->last_ack_ns)));
        return o;
}
