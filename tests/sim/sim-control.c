/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --control PATH: a Unix socket taking JSON-lines commands, one reply line
 * each, in order (a client's next command waits for the reply to its
 * previous one; "send", "connect" and "unhook" reply when done):
 *
 *   {"cmd":"status"}                     → {"ready":B,"vms":[{...per-VM state...}]}
 *   {"cmd":"send","vm":N,"vcpu":V,"count":C,"regs":{"rdx":1},"rate":HZ,"event":ID}
 *       vcpu optional (all HYPERCALL-enabled vCPUs), count default 1, event:
 *       kvmi_event.event 1..255 (default --event-id: HYPERCALL)
 *                                        → {"ok":B,"sent","acked","errors","latency_ns",...}
 *   {"cmd":"tokens","vm":N}              → {"vm":N,"live":K,"tokens":[{"token":HEX,"age_ms":MS}]}
 *   {"cmd":"mint","vm":N}                → as if GET_MAP_TOKEN: {"ok":true,"token":HEX} | {"ok":false,"error":"KVM_EAGAIN"}
 *   {"cmd":"redeem","vm":N,"token":HEX}  → KVM_HC_MEM_MAP: {"ok":true} | {"ok":false,"error":"unknown"|"expired"|"consumed"}
 *   {"cmd":"unhook","vm":N}              → {"ok":true,"closed_by_kvmid":B,"after_ms":MS}
 *   {"cmd":"connect","vm":"NAME,UUID[,COOKIE]"} → {"ok":B,"handshake":...,"hypercall_vcpus":K,...}
 *   {"cmd":"disconnect","vm":N}          → {"ok":true}
 *   {"cmd":"quit"}                       → {"ok":true}, then exit (report on stdout)
 *
 * With --introspector (sim-introspector.c), "ready" waits for its setup too
 * (every subscriber live, or the setup failed), "status" has an
 * "introspector" object, and these run one at a time, in order, each
 * replying when done ("target" optional: every open session):
 *
 *   {"cmd":"intro-status"}               → the report's "introspector" object
 *   {"cmd":"intro-map","target":T,"count":N,"gpa":G,"size":S}
 *       count default 1, gpa/size default --gpa; N x (GetMapToken, MemMap, on
 *       allow redeem in T's simulated kernel)
 *                                        → {"ok":B,"op":"map","minted","allowed","denied",
 *                                           "maps":[{"target","token_id","target_gpa","local_gpa",
 *                                                    "decision":"allow"|"deny"|"no-token","reason","kernel"}]}
 *   {"cmd":"intro-deny","target":T}      → MemMap of the session's last consumed token (one is
 *                                          minted and mapped first if there is none): ok if denied
 *                                        → {"ok":B,"op":"deny","maps":[{...,"decision","reason"}]}
 *   {"cmd":"intro-unmap","target":T,"local_gpa":L}
 *       default: every mapping recorded for T    → {"ok":B,"unmapped":N,"unmaps":[{"local_gpa","decision",...}]}
 *   {"cmd":"intro-close","target":T}     → CloseSession: {"ok":B,"sessions":[{"target","closed"}]}
 *   {"cmd":"intro-wait","events":N,"revocations":R,"timeout_ms":MS}
 *       until every subscriber saw N events (delivered + missed; no "events":
 *       until every live subscription has all its target acked since it went
 *       live) and R revocations were seen; default 5000 ms
 *                                        → {"ok":B,"seen":[per subscriber],"revocations":R}
 *
 * Errors: {"error":"..."}. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "sim.h"

#define CTL_LINE_MAX    (1024U * 1024U)

typedef enum CtlWait {
        CTL_WAIT_NONE,
        CTL_WAIT_SEND,
        CTL_WAIT_CONNECT,
        CTL_WAIT_UNHOOK,
        CTL_WAIT_INTRO,
} CtlWait;

typedef struct CtlClient CtlClient;
struct CtlClient {
        SimCtl *ctl;
        CtlClient *next;
        struct bufferevent *bev;
        struct event *ev_resume;
        CtlWait wait;
        SimVm *wait_vm;
        SimJob *wait_job;
        bool quitting;
};

struct SimCtl {
        Sim *sim;
        int fd;
        char *path;
        struct event *ev_accept;
        CtlClient *clients;
};

/* ---- replies ----------------------------------------------------------------------- */

static void ctl_reply(CtlClient *c, struct json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        bufferevent_write(c->bev, s, strlen(s));
        bufferevent_write(c->bev, "\n", 1);
        json_object_put(o);
}

static void ctl_error(CtlClient *c, const char *fmt, ...) _printf_(2, 3);
static void ctl_error(CtlClient *c, const char *fmt, ...) {
        struct json_object *o = json_object_new_object();
        char msg[SIM_ERR_LEN * 2];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        json_object_object_add(o, "error", json_object_new_string(msg));
        ctl_reply(c, o);
}

static struct json_object *ctl_ok(bool ok) {
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "ok", json_object_new_boolean(ok));
        return o;
}

/* Done waiting: the next queued line runs from the loop, not from inside
 * the VM callback that finished the wait. */
static void ctl_resume(CtlClient *c) {
        c->wait = CTL_WAIT_NONE;
        c->wait_vm = NULL;
        c->wait_job = NULL;
        event_active(c->ev_resume, 0, 0);
}

/* ---- commands ------------------------------------------------------------------------ */

static SimVm *ctl_vm(CtlClient *c, struct json_object *req) {
        struct json_object *v;
        SimVm *vm;

        if (!json_object_object_get_ex(req, "vm", &v) || !json_object_is_type(v, json_type_string)) {
                ctl_error(c, "\"vm\" (a VM name) is required");
                return NULL;
        }
        vm = sim_vm_find(c->ctl->sim, json_object_get_string(v));
        if (!vm)
                ctl_error(c, "no VM \"%s\"", json_object_get_string(v));
        return vm;
}

static void ctl_status(CtlClient *c) {
        Sim *s = c->ctl->sim;
        struct json_object *o = json_object_new_object(), *vms = json_object_new_array();

        for (SimVm *vm = s->vms; vm; vm = vm->next)
                if (!vm->hidden)
                        json_object_array_add(vms, report_vm_json(vm, true));
        json_object_object_add(o, "ready", json_object_new_boolean(s->ready_printed));
        json_object_object_add(o, "vms", vms);
        if (s->intro)
                json_object_object_add(o, "introspector", intro_json(s));
        ctl_reply(c, o);
}

static void ctl_job_done(SimJob *job) {
        CtlClient *c = job->userdata;

        if (c) {
                ctl_reply(c, job_result_json(job));
                ctl_resume(c);
        }
        job_free(job);
}

static int ctl_regs(CtlClient *c, struct json_object *regs, SimRegs *ret) {
        json_object_object_foreach(regs, key, val) {
                int i = util_reg_index(key);
                uint64_t v;
                char *end;

                if (i < 0) {
                        ctl_error(c, "unknown register \"%s\"", key);
                        return -EINVAL;
                }
                if (json_object_is_type(val, json_type_int))
                        v = json_object_get_uint64(val);
                else if (json_object_is_type(val, json_type_string)) {
                        errno = 0;
                        v = strtoull(json_object_get_string(val), &end, 0);
                        if (errno || *end || end == json_object_get_string(val)) {
                                ctl_error(c, "register \"%s\": bad value", key);
                                return -EINVAL;
                        }
                } else {
                        ctl_error(c, "register \"%s\": want a number or a string", key);
                        return -EINVAL;
                }
                ret->mask |= 1U << i;
                ret->val[i] = v;
        }
        return 0;
}

static void ctl_send(CtlClient *c, struct json_object *req) {
        struct json_object *v;
        SimRegs regs = {};
        char why[SIM_ERR_LEN];
        int64_t count = 1, vcpu = -1, event = -1;
        double rate = 0;
        SimVm *vm = ctl_vm(c, req);
        SimJob *job;

        if (!vm)
                return;
        if (json_object_object_get_ex(req, "vcpu", &v) && !json_object_is_type(v, json_type_null)) {
                vcpu = json_object_get_int64(v);
                if (!json_object_is_type(v, json_type_int) || vcpu < 0 || vcpu >= SIM_VCPUS_MAX) {
                        ctl_error(c, "\"vcpu\" must be a vCPU index");
                        return;
                }
        }
        if (json_object_object_get_ex(req, "count", &v)) {
                count = json_object_get_int64(v);
                if (!json_object_is_type(v, json_type_int) || count < 1) {
                        ctl_error(c, "\"count\" must be a positive integer");
                        return;
                }
        }
        if (json_object_object_get_ex(req, "rate", &v)) {
                rate = json_object_get_double(v);
                if (rate < 0 || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))) {
                        ctl_error(c, "\"rate\" must be a number >= 0");
                        return;
                }
        }
        if (json_object_object_get_ex(req, "event", &v) && !json_object_is_type(v, json_type_null)) {
                event = json_object_get_int64(v);
                if (!json_object_is_type(v, json_type_int) || event < 1 || event > UINT8_MAX) {
                        ctl_error(c, "\"event\" must be an event id 1..255 (UNHOOK: \"unhook\")");
                        return;
                }
        }
        if (json_object_object_get_ex(req, "regs", &v)) {
                if (!json_object_is_type(v, json_type_object)) {
                        ctl_error(c, "\"regs\" must be an object");
                        return;
                }
                if (ctl_regs(c, v, &regs) < 0)
                        return;
        }
        job = job_new(vm, (int) vcpu, (uint64_t) count, rate, &regs, ctl_job_done, c, why, sizeof why);
        if (!job) {
                ctl_error(c, "%s", why);
                return;
        }
        if (event >= 0)
                job->event_id = (uint8_t) event;        /* nothing is sent before we return to the loop */
        c->wait = CTL_WAIT_SEND;
        c->wait_job = job;
}

static void ctl_tokens(CtlClient *c, struct json_object *req) {
        SimVm *vm = ctl_vm(c, req);
        struct json_object *o, *arr;
        uint64_t now = util_now_ns();
        char hex[2 * KVMI_MAP_TOKEN_SIZE + 1];

        if (!vm)
                return;
        kernel_tokens_sweep(&vm->tokens, now);
        o = json_object_new_object();
        arr = json_object_new_array();
        for (unsigned i = 0; i < vm->tokens.n_live; i++) {
                struct json_object *t = json_object_new_object();
                util_hex(vm->tokens.live[i].bytes, KVMI_MAP_TOKEN_SIZE, hex);
                json_object_object_add(t, "token", json_object_new_string(hex));
                json_object_object_add(t, "age_ms", util_json_u64((now - vm->tokens.live[i].created_ns) / 1000000ULL));
                json_object_array_add(arr, t);
        }
        json_object_object_add(o, "vm", json_object_new_string(vm->spec.name));
        json_object_object_add(o, "live", json_object_new_int((int) vm->tokens.n_live));
        json_object_object_add(o, "tokens", arr);
        ctl_reply(c, o);
}

static void ctl_mint(CtlClient *c, struct json_object *req) {
        SimVm *vm = ctl_vm(c, req);
        char hex[2 * KVMI_MAP_TOKEN_SIZE + 1];
        KvmiMapToken tok;
        struct json_object *o;
        int r;

        if (!vm)
                return;
        if (vm->state != VM_KERNEL) {
                ctl_error(c, "VM \"%s\" has no KVMI channel (%s)", vm->spec.name, vm_state_to_string(vm->state));
                return;
        }
        r = vm->sim->o.no_map_token ? -KVM_EOPNOTSUPP : kernel_token_mint(&vm->tokens, util_now_ns(), &tok);
        o = ctl_ok(r == 0);
        if (r == 0) {
                util_hex(tok.bytes, KVMI_MAP_TOKEN_SIZE, hex);
                json_object_object_add(o, "token", json_object_new_string(hex));
        } else
                json_object_object_add(o, "error", json_object_new_string(kvmi_kvm_error_to_string(r) ?: "error"));
        ctl_reply(c, o);
}

static void ctl_redeem(CtlClient *c, struct json_object *req) {
        uint8_t bytes[KVMI_MAP_TOKEN_SIZE];
        SimVm *vm = ctl_vm(c, req);
        struct json_object *v, *o;
        TokenRedeem r;

        if (!vm)
                return;
        if (!json_object_object_get_ex(req, "token", &v) || !json_object_is_type(v, json_type_string) ||
            util_unhex(json_object_get_string(v), bytes, sizeof bytes) < 0) {
                ctl_error(c, "\"token\" must be %d hex digits", 2 * KVMI_MAP_TOKEN_SIZE);
                return;
        }
        r = kernel_token_redeem(&vm->tokens, bytes, util_now_ns());
        o = ctl_ok(r == TOKEN_OK);
        if (r != TOKEN_OK)
                json_object_object_add(o, "error", json_object_new_string(kernel_token_redeem_to_string(r)));
        ctl_reply(c, o);
}

static void ctl_unhook(CtlClient *c, struct json_object *req) {
        SimVm *vm = ctl_vm(c, req);
        int r;

        if (!vm)
                return;
        c->wait = CTL_WAIT_UNHOOK;
        c->wait_vm = vm;
        r = vm_unhook(vm);
        if (r < 0 && c->wait == CTL_WAIT_UNHOOK) {
                c->wait = CTL_WAIT_NONE;
                c->wait_vm = NULL;
                ctl_error(c, "%s",
                          r == -EPERM      ? "kvmid did not enable the UNHOOK event"
                          : r == -EALREADY ? "UNHOOK already sent"
                          : r == -ENOTCONN ? "VM has no KVMI channel"
                                           : strerror(-r));
        }
}

static void ctl_connect(CtlClient *c, struct json_object *req) {
        Sim *s = c->ctl->sim;
        struct json_object *v;
        char why[SIM_ERR_LEN];
        SimVmSpec spec;
        SimVm *vm, *old;

        if (!json_object_object_get_ex(req, "vm", &v) || !json_object_is_type(v, json_type_string)) {
                ctl_error(c, "\"vm\" must be \"NAME,UUID[,COOKIEFILE]\"");
                return;
        }
        if (vm_spec_parse(json_object_get_string(v), &spec, why, sizeof why) < 0) {
                ctl_error(c, "%s", why);
                return;
        }
        old = sim_vm_find(s, spec.name);
        if (old && old->state != VM_CLOSED) {
                ctl_error(c, "VM \"%s\" exists and is %s", spec.name, vm_state_to_string(old->state));
                vm_spec_done(&spec);
                return;
        }
        if (old)
                old->hidden = true;     /* replaced; its counters go with it */
        vm = sim_vm_add(s, &spec);
        vm_spec_done(&spec);
        if (!vm) {
                ctl_error(c, "out of memory");
                return;
        }
        c->wait = CTL_WAIT_CONNECT;
        c->wait_vm = vm;
        vm_connect(vm);
}

static void ctl_disconnect(CtlClient *c, struct json_object *req) {
        SimVm *vm = ctl_vm(c, req);
        struct json_object *o;
        bool was_open;

        if (!vm)
                return;
        was_open = vm->state != VM_CLOSED;
        vm_close(vm, false, "disconnected by the control socket (QEMU went away)");
        o = ctl_ok(true);
        json_object_object_add(o, "was_connected", json_object_new_boolean(was_open));
        ctl_reply(c, o);
}

/* ---- introspector VM ------------------------------------------------------------------- */

static void ctl_intro_done(_unused_ Sim *s, void *userdata, struct json_object *result) {
        CtlClient *c = userdata;

        if (!c) {
                json_object_put(result);
                return;
        }
        ctl_reply(c, result);
        ctl_resume(c);
}

/* A non-negative integer field; -1 if bad (error sent), 0 absent, 1 set. */
static int ctl_u64(CtlClient *c, struct json_object *req, const char *key, uint64_t *ret) {
        struct json_object *v;

        if (!json_object_object_get_ex(req, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                ctl_error(c, "\"%s\" must be a non-negative integer", key);
                return -1;
        }
        *ret = json_object_get_uint64(v);
        return 1;
}

static void ctl_intro(CtlClient *c, struct json_object *req, IntroOpKind kind) {
        Sim *s = c->ctl->sim;
        IntroOpSpec spec = { .kind = kind, .count = 1, .timeout_ms = 5000 };
        struct json_object *v;
        char why[SIM_ERR_LEN];
        uint64_t x;
        int k;

        if (!s->intro) {
                ctl_error(c, "no introspector VM (--introspector)");
                return;
        }
        if (json_object_object_get_ex(req, "target", &v) && !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_string)) {
                        ctl_error(c, "\"target\" must be a target name");
                        return;
                }
                spec.target = json_object_get_string(v);
        }
        if ((k = ctl_u64(c, req, "count", &x)) < 0)
                return;
        if (k > 0) {
                if (x < 1 || x > 1000000) {
                        ctl_error(c, "\"count\" must be 1..1000000");
                        return;
                }
                spec.count = (unsigned) x;
        }
        if (ctl_u64(c, req, "gpa", &spec.gpa) < 0 || (k = ctl_u64(c, req, "size", &spec.size)) < 0)
                return;
        if (json_object_object_get_ex(req, "gpa", &v) && k <= 0) {
                ctl_error(c, "\"gpa\" goes with \"size\"");
                return;
        }
        if ((k = ctl_u64(c, req, "local_gpa", &spec.local_gpa)) < 0)
                return;
        spec.has_local_gpa = k > 0;
        if ((k = ctl_u64(c, req, "events", &spec.events)) < 0)
                return;
        spec.has_events = k > 0;
        spec.drain = kind == INTRO_OP_WAIT && !spec.has_events;
        if (ctl_u64(c, req, "revocations", &spec.revocations) < 0 || (k = ctl_u64(c, req, "timeout_ms", &x)) < 0)
                return;
        if (k > 0)
                spec.timeout_ms = (unsigned) MIN(x, (uint64_t) 3600000);
        c->wait = CTL_WAIT_INTRO;
        if (intro_op(s, &spec, ctl_intro_done, c, why, sizeof why) < 0) {
                c->wait = CTL_WAIT_NONE;
                ctl_error(c, "%s", why);
        }
}

static void ctl_on_read(struct bufferevent *bev, void *userdata);
static void ctl_on_event(struct bufferevent *bev, short what, void *userdata);

static void ctl_on_written(_unused_ struct bufferevent *bev, void *userdata) {
        CtlClient *c = userdata;

        if (c->quitting)
                sim_quit(c->ctl->sim);
}

static void ctl_command(CtlClient *c, const char *line) {
        struct json_object *req = json_tokener_parse(line), *v;
        const char *cmd;

        if (!req || !json_object_is_type(req, json_type_object)) {
                ctl_error(c, "not a JSON object");
                json_object_put(req);
                return;
        }
        if (!json_object_object_get_ex(req, "cmd", &v) || !json_object_is_type(v, json_type_string)) {
                ctl_error(c, "\"cmd\" is required");
                json_object_put(req);
                return;
        }
        cmd = json_object_get_string(v);
        util_log(c->ctl->sim, "control: %s", line);
        if (streq(cmd, "status"))
                ctl_status(c);
        else if (streq(cmd, "send"))
                ctl_send(c, req);
        else if (streq(cmd, "tokens"))
                ctl_tokens(c, req);
        else if (streq(cmd, "mint"))
                ctl_mint(c, req);
        else if (streq(cmd, "redeem"))
                ctl_redeem(c, req);
        else if (streq(cmd, "unhook"))
                ctl_unhook(c, req);
        else if (streq(cmd, "connect"))
                ctl_connect(c, req);
        else if (streq(cmd, "disconnect"))
                ctl_disconnect(c, req);
        else if (streq(cmd, "intro-status")) {
                if (c->ctl->sim->intro)
                        ctl_reply(c, intro_json(c->ctl->sim));
                else
                        ctl_error(c, "no introspector VM (--introspector)");
        } else if (streq(cmd, "intro-map"))
                ctl_intro(c, req, INTRO_OP_MAP);
        else if (streq(cmd, "intro-deny"))
                ctl_intro(c, req, INTRO_OP_DENY);
        else if (streq(cmd, "intro-unmap"))
                ctl_intro(c, req, INTRO_OP_UNMAP);
        else if (streq(cmd, "intro-close"))
                ctl_intro(c, req, INTRO_OP_CLOSE);
        else if (streq(cmd, "intro-wait"))
                ctl_intro(c, req, INTRO_OP_WAIT);
        else if (streq(cmd, "quit")) {
                /* Quit once the reply is out (ctl_on_written), or the client gone. */
                c->quitting = true;
                bufferevent_setcb(c->bev, ctl_on_read, ctl_on_written, ctl_on_event, c);
                ctl_reply(c, ctl_ok(true));
        } else
                ctl_error(c, "unknown command \"%s\"", cmd);
        json_object_put(req);
}

/* ---- clients ------------------------------------------------------------------------ */

static void ctl_client_free(CtlClient *c) {
        SimCtl *ctl = c->ctl;

        for (CtlClient **pp = &ctl->clients; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        if (c->wait == CTL_WAIT_SEND && c->wait_job)
                c->wait_job->userdata = NULL;   /* the job finishes on its own */
        intro_forget_userdata(ctl->sim, c);     /* so do its introspector ops */
        if (c->quitting)
                sim_quit(ctl->sim);
        event_free(c->ev_resume);
        bufferevent_free(c->bev);
        free(c);
}

static void ctl_client_drain(CtlClient *c) {
        struct evbuffer *in = bufferevent_get_input(c->bev);

        while (c->wait == CTL_WAIT_NONE) {
                size_t len;
                char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
                if (!line) {
                        if (evbuffer_get_length(in) > CTL_LINE_MAX) {
                                ctl_error(c, "line longer than %u bytes", CTL_LINE_MAX);
                                (void) evbuffer_drain(in, evbuffer_get_length(in));
                        }
                        return;
                }
                if (len > 0)
                        ctl_command(c, line);
                free(line);
        }
}

static void ctl_on_resume(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        ctl_client_drain(userdata);
}

static void ctl_on_read(_unused_ struct bufferevent *bev, void *userdata) {
        ctl_client_drain(userdata);
}

static void ctl_on_event(_unused_ struct bufferevent *bev, short what, void *userdata) {
        if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
                ctl_client_free(userdata);
}

static void ctl_on_accept(evutil_socket_t lfd, _unused_ short what, void *userdata) {
        SimCtl *ctl = userdata;
        Sim *s = ctl->sim;
        CtlClient *c;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0)
                return;
        c = calloc(1, sizeof *c);
        if (!c || !(c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE)) ||
            !(c->ev_resume = event_new(s->base, -1, 0, ctl_on_resume, c))) {
                if (c && c->bev)
                        bufferevent_free(c->bev);
                else
                        safe_close(fd);
                free(c);
                return;
        }
        c->ctl = ctl;
        bufferevent_setcb(c->bev, ctl_on_read, NULL, ctl_on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        c->next = ctl->clients;
        ctl->clients = c;
}

/* ---- notes from the VMs ---------------------------------------------------------------- */

static void ctl_check_ready(Sim *s) {
        if (s->ready_printed)
                return;
        for (SimVm *vm = s->vms; vm; vm = vm->next)
                if (!vm->hidden && !vm->probed && vm->state != VM_CLOSED)
                        return;
        if (s->intro && !intro_started(s)) {
                intro_start(s);         /* sim_intro_notify() → here again once through */
                return;
        }
        if (s->intro && !intro_settled(s))
                return;
        s->ready_printed = true;
        printf("ready\n");
        fflush(stdout);
}

void ctl_notify(Sim *s, SimVm *vm, VmNote note) {
        SimCtl *ctl = s->ctl;

        if (!ctl)
                return;
        for (CtlClient *c = ctl->clients; c && vm; c = c->next) {
                if (c->wait_vm != vm)
                        continue;
                if (c->wait == CTL_WAIT_CONNECT && (note == VM_NOTE_PROBED || note == VM_NOTE_CLOSED)) {
                        struct json_object *o = report_vm_json(vm, true);
                        json_object_object_add(o, "ok", json_object_new_boolean(vm->probed && vm->state == VM_KERNEL));
                        ctl_reply(c, o);
                        ctl_resume(c);
                } else if (c->wait == CTL_WAIT_UNHOOK && note == VM_NOTE_UNHOOK_DONE) {
                        struct json_object *o = ctl_ok(true);
                        json_object_object_add(o, "closed_by_kvmid", json_object_new_boolean(vm->unhook_closed == 1));
                        uint64_t ns = (vm->closed_ns ? vm->closed_ns : util_now_ns()) - vm->unhook_ns;
                        json_object_object_add(o, "after_ms", json_object_new_double((double) ((ns + 500) / 1000) / 1e3));
                        ctl_reply(c, o);
                        ctl_resume(c);
                }
        }
        ctl_check_ready(s);
}

/* ---- listener ------------------------------------------------------------------------- */

int ctl_start(Sim *s, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        SimCtl *ctl;
        struct stat st;

        if (strlen(path) >= sizeof sa.sun_path) {
                fprintf(stderr, "kvmi-sim: control socket path too long\n");
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, path, strlen(path));
        ctl = calloc(1, sizeof *ctl);
        if (!ctl)
                return -ENOMEM;
        ctl->sim = s;
        ctl->path = strdup(path);
        ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        s->ctl = ctl;
        if (!ctl->path || ctl->fd < 0)
                return -ENOMEM;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path);            /* a stale one from an earlier run */
        if (bind(ctl->fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(ctl->fd, 16) < 0) {
                int r = negative_errno();
                fprintf(stderr, "kvmi-sim: cannot listen on %s: %s\n", path, strerror(-r));
                ctl->path = mfree(ctl->path);
                return r;
        }
        ctl->ev_accept = event_new(s->base, ctl->fd, EV_READ | EV_PERSIST, ctl_on_accept, ctl);
        if (!ctl->ev_accept)
                return -ENOMEM;
        event_add(ctl->ev_accept, NULL);
        util_log(s, "control socket on %s", path);
        return 0;
}

void ctl_free(Sim *s) {
        SimCtl *ctl = s->ctl;

        if (!ctl)
                return;
        while (ctl->clients)
                ctl_client_free(ctl->clients);
        if (ctl->ev_accept)
                event_free(ctl->ev_accept);
        safe_close(ctl->fd);
        if (ctl->path)
                (void) unlink(ctl->path);
        free(ctl->path);
        free(ctl);
        s->ctl = NULL;
}
