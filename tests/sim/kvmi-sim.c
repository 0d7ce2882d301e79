/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmi-sim: plays one or many target VMs toward kvmid's KVMI listener
 * exactly as a KVM-VMI patched QEMU + kernel would.
 *
 *   kvmi-sim --socket PATH --vm NAME,UUID[,COOKIEFILE] [--vm ...]
 *            [--vcpus N] [--events N] [--rate HZ] [--reg NAME=VALUE]...
 *            [--mode 64|32] [--unhook-at-exit] [--timeout SEC]
 *            [--misbehave MODE] [--control PATH] [--floor]
 *            [--version-layout 16|8] [--max-msg N] [--no-map-token] [--no-hypercall]
 *            [--handshake-size N] [--cpu-type N] [--event-id ID] [--event-size N] [-v]
 *            [--introspector NAME,KEYFILE,VMNAME [--introspector-socket PATH]
 *             [--hypervisor-socket PATH] [--attach TARGET]... [--subscribers N]
 *             [--map COUNT] [--gpa START,SIZE] [--local-gpa BASE]
 *             [--watch-revocations]]
 *
 * Per VM: connect to the Unix socket like QEMU, send kvmi_qemu2introspector
 * (96 bytes: uuid, start_time = now, name; --handshake-size N: struct_size
 * N, 32 .. 65536, beyond 96 zero, below 96 the name cut to what fits;
 * --cpu-type N: byte 20, 0 like an older QEMU, 1 x86_64 like a newer), read
 * kvmi_introspector2qemu and compare cookie_hash with SHA-1 of COOKIEFILE's
 * bytes (no COOKIEFILE: any hash passes; mismatch: close, "cookie
 * mismatch"; the report's "cookie_hash" is what kvmid sent).  Then play
 * the kernel: GET_VERSION (7; 16-byte reply with kvmi_features, or
 * --version-layout 8: second word = max_msg_size 8184; --max-msg N puts N
 * there in either layout, and N is then the limit both ways: kvmid's
 * messages are held to it, and --misbehave oversize exceeds it by one),
 * CHECK_COMMAND / CHECK_EVENT (0 or
 * -KVM_EOPNOTSUPP; --no-map-token, --no-hypercall), GET_GUEST_INFO
 * (--vcpus), CONTROL_VM_EVENTS / CONTROL_EVENTS (bad vCPU: -KVM_EINVAL),
 * GET_MAP_TOKEN (256-bit random, at most 8 live, 3 s, single use), anything
 * else -KVM_EOPNOTSUPP.  Guest requests (HYPERCALL: rax=34, rdi=24, rsi=0;
 * --mode 32: ebx/ecx) go only to vCPUs kvmid enabled, one outstanding per
 * vCPU; every EVENT_REPLY is checked (seq, vCPU, event, padding, CONTINUE).
 * --event-id ID sends kvmi_event.event = ID (1..255, v7 numbering: 1 CR, 4
 * BREAKPOINT with their event-specific structs, ...; unknown ids too)
 * instead of HYPERCALL; --event-size N sets kvmi_event.size (544..65535, a
 * newer kernel's longer struct, the tail zero).
 *
 * One-shot (default): connect all VMs, wait until HYPERCALL is enabled on
 * every vCPU (--timeout → exit 1), send --events per vCPU at --rate per vCPU
 * (0 = as fast as acks allow; all vCPUs of all VMs concurrently), UNHOOK if
 * --unhook-at-exit (then wait ≤ 2 s for kvmid to close), print the JSON
 * report on stdout; exit 0 if everything went as expected, else 1 and one
 * line on stderr.  --floor: same client code against a forked echo peer
 * over socketpairs (the benchmark baseline).  --misbehave MODE: each VM
 * breaks the protocol one way (wrong-cookie, truncated-handshake,
 * slow-handshake, bad-header-size, nonzero-padding, unexpected-seq: an
 * event and an unsolicited reply in one write, the event to be acked,
 * oversize, disconnect-mid-message, duplicate-uuid, silent-command: never
 * answer GET_GUEST_INFO); exit 0 when it was
 * carried out and kvmid closed the channel.  --control PATH: a JSON-lines
 * control socket, "ready" on stdout once it listens and the initial VMs are
 * through handshake and probe (or failed); one reply line per command:
 *
 *   {"cmd":"status"}                               per-VM state, counters, tokens
 *   {"cmd":"send","vm":N[,"vcpu":V][,"count":C][,"regs":{"rdx":1}][,"rate":HZ][,"event":ID]}
 *                                                  replies once all are acked
 *   {"cmd":"tokens","vm":N}                        live map tokens (hex, age_ms)
 *   {"cmd":"mint","vm":N}                          as if kvmid sent GET_MAP_TOKEN
 *   {"cmd":"redeem","vm":N,"token":HEX}            KVM_HC_MEM_MAP: {"ok":true} or
 *                                                  {"ok":false,"error":"unknown"|"expired"|"consumed"}
 *   {"cmd":"unhook","vm":N}  {"cmd":"connect","vm":"NAME,UUID[,COOKIE]"}
 *   {"cmd":"disconnect","vm":N}  {"cmd":"quit"}    errors: {"error":"..."}
 *
 * --introspector NAME,KEYFILE,VMNAME: the same process also plays an
 * introspector VM (sim-introspector.c): identity NAME with the key in
 * KEYFILE, running as the libvirt domain VMNAME (kvmid.conf: [introspector
 * NAME] key-file=KEYFILE domain=VMNAME uid=UID, [domain VMNAME]
 * role=introspector).  It authenticates on --introspector-socket (default:
 * io.kvmid.Introspector next to --socket), opens a session on each
 * --attach TARGET (default: every --vm), subscribes --subscribers N
 * connections to each session (default 1) and counts and checks every
 * event (per-target seq order, the missed field); its VMM asks
 * --hypervisor-socket (default io.kvmid.Hypervisor next to --socket) for
 * MemMap / MemUnmap as VMNAME, local gpas counted up from --local-gpa
 * (default 0x100000000) a page at a time.  Once the targets are probed it
 * sets up; the targets' events start (one-shot) or "ready" is printed
 * (--control) only once every subscriber is live.  One-shot, after the
 * events: wait until every subscriber has every acked event; with --map
 * COUNT, per session COUNT x (GetMapToken in --gpa START,SIZE, default
 * 0x1000,0x1000; MemMap; on allow, redeem the token in the target's
 * simulated kernel), one MemMap replaying a consumed token (must be
 * denied), MemUnmap of every mapping; with --watch-revocations as well
 * (a WatchRevocations(VMNAME) stream, counted), one more mapping per
 * session, CloseSession, and wait until kvmid revoked each.  The report
 * gains "introspector"; exit 1 if any of it went otherwise.  Control
 * commands for it (each replies once done; they run one at a time):
 *
 *   {"cmd":"intro-status"}                         sessions, subscribers' counts, tokens, maps
 *   {"cmd":"intro-map"[,"target":T][,"count":N][,"gpa":G,"size":S]}
 *                                                  N x GetMapToken + MemMap + redeem
 *   {"cmd":"intro-deny"[,"target":T]}              MemMap of a consumed token: "ok" if denied
 *   {"cmd":"intro-unmap"[,"target":T][,"local_gpa":L]}   MemUnmap (default: every mapping)
 *   {"cmd":"intro-close"[,"target":T]}             CloseSession
 *   {"cmd":"intro-wait"[,"events":N][,"revocations":R][,"timeout_ms":MS]}
 *                                                  until every subscriber saw N events (default:
 *                                                  all its targets acked) and R revocations seen
 *
 * No "target": every open session.
 *
 * Details of each reply: sim-control.c.  Report: sim-report.c. */

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

enum {
        PHASE_CONNECT,
        PHASE_EVENTS,
        PHASE_UNHOOK,
        PHASE_DONE,
        PHASE_MISBEHAVE,
        PHASE_CONTROL,
        PHASE_INTRO_SETUP,      /* targets probed, the introspector VM sets up */
        PHASE_INTRO_RUN,        /* events done, the introspector VM's one-shot ops */
};

static unsigned sim_jobs_running;
static bool sim_unhook_started, sim_intro_ran;

static void sim_step(Sim *s);

static void sim_usage(FILE *f) {
        fputs("Usage: kvmi-sim --socket PATH --vm NAME,UUID[,COOKIEFILE] [--vm ...] [OPTIONS]\n"
              "Simulate KVM-VMI targets (QEMU handshake + KVMI kernel side) toward kvmid.\n\n"
              "  -s, --socket PATH        kvmid's KVMI Unix socket\n"
              "      --vm NAME,UUID[,F]   a VM; F = its cookie file (QEMU secret), none: any hash passes\n"
              "      --vcpus N            vCPUs per VM (1..4096, default 1)\n"
              "      --events N           guest requests per vCPU in one-shot mode (default 100)\n"
              "      --rate HZ            events per second per vCPU (0 = as fast as acks allow)\n"
              "      --reg NAME=VALUE     extra register in each event (rdx=0x1234); repeatable\n"
              "      --mode 64|32         guest mode: a0/a1 in rdi/rsi (64) or ebx/ecx (32)\n"
              "      --unhook-at-exit     send UNHOOK at the end, wait <= 2 s for kvmid to close\n"
              "      --timeout SEC        enable / reply / close waits (default 15)\n"
              "      --misbehave MODE     wrong-cookie, truncated-handshake, slow-handshake,\n"
              "                           bad-header-size, nonzero-padding, unexpected-seq, oversize,\n"
              "                           disconnect-mid-message, duplicate-uuid, silent-command\n"
              "      --control PATH       JSON-lines control socket; prints \"ready\" when up\n"
              "      --floor              baseline: a forked echo peer instead of kvmid\n"
              "      --version-layout N   GET_VERSION reply: 16 (kvmi_features, default) or 8\n"
              "      --max-msg N          max message size GET_VERSION reports (64..65535; default\n"
              "                           8184 with --version-layout 8, none in the 16-byte form)\n"
              "      --handshake-size N   qemu2introspector struct_size (32..65536, default 96)\n"
              "      --cpu-type N         its cpu_type byte (0..255, default 0; newer x86_64 QEMUs: 1)\n"
              "      --event-id ID        the events' kvmi_event.event (1..255, default 5 HYPERCALL)\n"
              "      --event-size N       their kvmi_event.size (544..65535, default 544)\n"
              "      --no-map-token       GET_MAP_TOKEN unsupported\n"
              "      --no-hypercall       HYPERCALL events unsupported\n"
              "  -v, --verbose            log protocol steps on stderr\n"
              "  -h, --help               this text\n\n"
              "Introspector VM (the same process plays it; see kvmi-sim.c's header):\n"
              "      --introspector NAME,KEYFILE,VMNAME  identity NAME, its key file, its VM's domain name\n"
              "      --introspector-socket PATH  io.kvmid.Introspector (default: next to --socket)\n"
              "      --hypervisor-socket PATH    io.kvmid.Hypervisor (default: next to --socket)\n"
              "      --attach TARGET      open a session on TARGET; repeatable (default: every --vm)\n"
              "      --subscribers N      subscriber connections per session (default 1)\n"
              "      --map COUNT          one-shot: per session COUNT tokens minted, mapped, redeemed,\n"
              "                           one consumed-token MemMap (denied), then every MemUnmap\n"
              "      --gpa START,SIZE     GetMapToken range (default 0x1000,0x1000)\n"
              "      --local-gpa BASE     first local gpa of the VM's mappings (default 0x100000000)\n"
              "      --watch-revocations  keep a WatchRevocations stream; one-shot with --map: hold one\n"
              "                           mapping per session, CloseSession, expect its revocation\n\n"
              "Control commands (one JSON object per line, one reply line each):\n"
              "  {\"cmd\":\"status\"}  {\"cmd\":\"send\",\"vm\":N,\"vcpu\":0,\"count\":1,\"regs\":{\"rdx\":1}}\n"
              "  (\"send\" also takes \"rate\":HZ and \"event\":ID, a kvmi_event.event 1..255)\n"
              "  {\"cmd\":\"tokens\",\"vm\":N}  {\"cmd\":\"mint\",\"vm\":N}  {\"cmd\":\"redeem\",\"vm\":N,\"token\":HEX}\n"
              "  {\"cmd\":\"unhook\",\"vm\":N}  {\"cmd\":\"connect\",\"vm\":\"NAME,UUID[,COOKIE]\"}\n"
              "  {\"cmd\":\"disconnect\",\"vm\":N}  {\"cmd\":\"quit\"}\n"
              "  {\"cmd\":\"intro-status\"}  {\"cmd\":\"intro-map\",\"target\":T,\"count\":N,\"gpa\":G,\"size\":S}\n"
              "  {\"cmd\":\"intro-deny\",\"target\":T}  {\"cmd\":\"intro-unmap\",\"target\":T,\"local_gpa\":L}\n"
              "  {\"cmd\":\"intro-close\",\"target\":T}  {\"cmd\":\"intro-wait\",\"events\":N,\"revocations\":R,\"timeout_ms\":MS}\n"
              "  (intro-*: \"target\" optional = every open session; each replies when done)\n",
              f);
}

/* ---- shared with the other files ----------------------------------------------- */

void sim_fail(Sim *s, const char *fmt, ...) {
        va_list ap;

        if (s->fail[0])
                return;
        va_start(ap, fmt);
        vsnprintf(s->fail, sizeof s->fail, fmt, ap);
        va_end(ap);
        util_log(s, "not as expected: %s", s->fail);
}

SimVm *sim_vm_find(Sim *s, const char *name) {
        SimVm *found = NULL;

        for (SimVm *vm = s->vms; vm; vm = vm->next)
                if (!vm->hidden && streq(vm->spec.name, name))
                        found = vm;
        return found;
}

SimVm *sim_vm_add(Sim *s, const SimVmSpec *spec) {
        SimVm *vm = vm_new(s, spec);

        if (!vm)
                return NULL;
        *s->vms_tail = vm;
        s->vms_tail = &vm->next;
        return vm;
}

void sim_quit(Sim *s) {
        event_base_loopexit(s->base, NULL);
}

/* ---- one-shot --------------------------------------------------------------------- */

static void sim_finish(Sim *s) {
        s->phase = PHASE_DONE;
        event_del(s->ev_deadline);
        for (SimVm *vm = s->vms; vm; vm = vm->next)
                vm_close(vm, false, "done: QEMU exits");
        sim_quit(s);
}

static void sim_after_events(Sim *s) {
        if (s->intro && !sim_intro_ran) {
                sim_intro_ran = true;
                s->phase = PHASE_INTRO_RUN;
                intro_oneshot(s, sim_after_events);
                return;
        }
        if (!s->o.unhook_at_exit) {
                sim_finish(s);
                return;
        }
        s->phase = PHASE_UNHOOK;
        for (SimVm *vm = s->vms; vm; vm = vm->next) {
                int r;
                if (vm->state != VM_KERNEL)
                        continue;
                r = vm_unhook(vm);
                if (r == -EPERM)
                        sim_fail(s, "%s: cannot UNHOOK: kvmid did not enable the UNHOOK event", vm->spec.name);
                else if (r < 0 && r != -ENOTCONN)
                        sim_fail(s, "%s: cannot send UNHOOK: %s", vm->spec.name, strerror(-r));
        }
        sim_unhook_started = true;
        sim_step(s);
}

static void sim_job_done(SimJob *job) {
        Sim *s = job->sim;

        if (job->error[0])
                sim_fail(s, "%s: %s", job->vm->spec.name, job->error);
        job_free(job);
        if (--sim_jobs_running == 0 && s->phase == PHASE_EVENTS) {
                s->events_end_ns = util_now_ns();
                sim_after_events(s);
        }
}

static void sim_start_events(Sim *s) {
        char why[SIM_ERR_LEN];

        event_del(s->ev_deadline);
        s->phase = PHASE_EVENTS;
        s->events_start_ns = util_now_ns();
        for (SimVm *vm = s->vms; vm; vm = vm->next) {
                if (vm->state != VM_KERNEL || s->o.events == 0 || vm_hypercall_vcpus(vm) == 0)
                        continue;
                if (job_new(vm, -1, s->o.events, s->o.rate, NULL, sim_job_done, NULL, why, sizeof why))
                        sim_jobs_running++;
                else
                        sim_fail(s, "%s: %s", vm->spec.name, why);
        }
        util_log(s, "events phase: %u jobs", sim_jobs_running);
        if (sim_jobs_running == 0) {
                s->events_end_ns = util_now_ns();
                sim_after_events(s);
        }
}

static void sim_step(Sim *s) {
        bool all = true;

        switch (s->phase) {
        case PHASE_CONNECT:
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        all = all && (vm->probed || vm->state == VM_CLOSED);
                if (!all)
                        break;
                if (s->intro) {
                        event_del(s->ev_deadline);
                        s->phase = PHASE_INTRO_SETUP;
                        intro_start(s);         /* sim_intro_notify() once through */
                } else
                        sim_start_events(s);
                break;
        case PHASE_UNHOOK:
                if (!sim_unhook_started)
                        break;
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        all = all && !(vm->unhook_sent && vm->state != VM_CLOSED);
                if (all)
                        sim_finish(s);
                break;
        case PHASE_MISBEHAVE:
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        all = all && mis_done(vm);
                if (all)
                        sim_finish(s);
                break;
        default:
                break;
        }
}

void sim_vm_notify(SimVm *vm, VmNote note) {
        Sim *s = vm->sim;

        if (vm->mis)
                mis_notify(vm, note);
        if (s->ctl)
                ctl_notify(s, vm, note);
        if (!vm->hidden)
                sim_step(s);
}

void sim_intro_notify(Sim *s) {
        if (s->phase == PHASE_INTRO_SETUP)
                sim_start_events(s);            /* failed or not: the verdict says */
        else if (s->ctl)
                ctl_notify(s, NULL, VM_NOTE_PROBED);
}

static void sim_on_deadline(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        Sim *s = userdata;

        if (s->phase != PHASE_CONNECT)
                return;
        for (SimVm *vm = s->vms; vm; vm = vm->next)
                if (vm->state == VM_CONNECTING)
                        sim_fail(s, "timeout after %us: %s cannot connect to %s: %s", s->o.timeout_sec, vm->spec.name,
                                 s->o.socket_path, strerror(vm->connect_errno));
                else if (!vm->probed && vm->state != VM_CLOSED)
                        sim_fail(s, "timeout after %us waiting for HYPERCALL on all vCPUs: %s has %u/%u (%s, handshake %s)",
                                 s->o.timeout_sec, vm->spec.name, vm_hypercall_vcpus(vm), vm->nvcpus,
                                 vm_state_to_string(vm->state), vm->handshake[0] ? vm->handshake : "pending");
        sim_finish(s);
}

static void sim_on_start(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        sim_step(userdata);
}

static void sim_on_signal(evutil_socket_t sig, _unused_ short what, void *userdata) {
        Sim *s = userdata;

        sim_fail(s, "interrupted by signal %d", (int) sig);
        sim_finish(s);
}

/* ---- options ---------------------------------------------------------------------- */

static uint8_t sim_hypercall_id(void) {
        uint8_t id = 0;

        (void) kvmi_numbering_ev_to_id(&kvmi_numbering_v7, KVMI_EV_HYPERCALL, &id);
        return id;
}

static int sim_parse_uint(const char *arg, unsigned long long lo, unsigned long long hi, unsigned long long *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-' || v < lo || v > hi)
                return -ERANGE;
        *ret = v;
        return 0;
}

static int sim_parse(Sim *s, int argc, char **argv) {
        enum { OPT_VM = 256, OPT_VCPUS, OPT_EVENTS, OPT_RATE, OPT_REG, OPT_MODE, OPT_UNHOOK, OPT_TIMEOUT,
               OPT_MISBEHAVE, OPT_CONTROL, OPT_FLOOR, OPT_LAYOUT, OPT_NO_TOKEN, OPT_NO_HC, OPT_INTRO,
               OPT_INTRO_SOCKET, OPT_HV_SOCKET, OPT_ATTACH, OPT_SUBSCRIBERS, OPT_MAP, OPT_GPA, OPT_LOCAL_GPA,
               OPT_WATCH, OPT_MAX_MSG, OPT_HS_SIZE, OPT_CPU_TYPE, OPT_EVENT_ID, OPT_EVENT_SIZE };
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' },      { "vm", required_argument, NULL, OPT_VM },
                { "vcpus", required_argument, NULL, OPT_VCPUS }, { "events", required_argument, NULL, OPT_EVENTS },
                { "rate", required_argument, NULL, OPT_RATE },   { "reg", required_argument, NULL, OPT_REG },
                { "mode", required_argument, NULL, OPT_MODE },   { "unhook-at-exit", no_argument, NULL, OPT_UNHOOK },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "misbehave", required_argument, NULL, OPT_MISBEHAVE },
                { "control", required_argument, NULL, OPT_CONTROL },
                { "floor", no_argument, NULL, OPT_FLOOR },
                { "version-layout", required_argument, NULL, OPT_LAYOUT },
                { "no-map-token", no_argument, NULL, OPT_NO_TOKEN },
                { "no-hypercall", no_argument, NULL, OPT_NO_HC },
                { "introspector", required_argument, NULL, OPT_INTRO },
                { "introspector-socket", required_argument, NULL, OPT_INTRO_SOCKET },
                { "hypervisor-socket", required_argument, NULL, OPT_HV_SOCKET },
                { "attach", required_argument, NULL, OPT_ATTACH },
                { "subscribers", required_argument, NULL, OPT_SUBSCRIBERS },
                { "map", required_argument, NULL, OPT_MAP },
                { "gpa", required_argument, NULL, OPT_GPA },
                { "local-gpa", required_argument, NULL, OPT_LOCAL_GPA },
                { "watch-revocations", no_argument, NULL, OPT_WATCH },
                { "max-msg", required_argument, NULL, OPT_MAX_MSG },
                { "handshake-size", required_argument, NULL, OPT_HS_SIZE },
                { "cpu-type", required_argument, NULL, OPT_CPU_TYPE },
                { "event-id", required_argument, NULL, OPT_EVENT_ID },
                { "event-size", required_argument, NULL, OPT_EVENT_SIZE },
                { "verbose", no_argument, NULL, 'v' },           { "help", no_argument, NULL, 'h' },
                {}
        };
        SimOpts *o = &s->o;
        char why[SIM_ERR_LEN];
        unsigned long long v;
        bool intro_opt = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "s:vh", opts, NULL)) >= 0) {
                switch (c) {
                case 's':
                        o->socket_path = optarg;
                        break;
                case OPT_VM: {
                        SimVmSpec spec, *p;
                        if (vm_spec_parse(optarg, &spec, why, sizeof why) < 0) {
                                fprintf(stderr, "kvmi-sim: --vm: %s\n", why);
                                return -EINVAL;
                        }
                        for (size_t i = 0; i < o->n_vms; i++)
                                if (streq(o->vms[i].name, spec.name)) {
                                        fprintf(stderr, "kvmi-sim: --vm: \"%s\" given twice\n", spec.name);
                                        vm_spec_done(&spec);
                                        return -EINVAL;
                                }
                        p = realloc(o->vms, (o->n_vms + 1) * sizeof *p);
                        if (!p)
                                return -ENOMEM;
                        o->vms = p;
                        o->vms[o->n_vms++] = spec;
                        break;
                }
                case OPT_VCPUS:
                        if (sim_parse_uint(optarg, 1, SIM_VCPUS_MAX, &v) < 0)
                                goto bad;
                        o->vcpus = (unsigned) v;
                        break;
                case OPT_EVENTS:
                        if (sim_parse_uint(optarg, 0, UINT32_MAX, &v) < 0)
                                goto bad;
                        o->events = v;
                        break;
                case OPT_RATE: {
                        char *end;
                        o->rate = strtod(optarg, &end);
                        if (*end || end == optarg || !isfinite(o->rate) || o->rate < 0)
                                goto bad;
                        break;
                }
                case OPT_REG:
                        r = util_regs_parse(&o->regs, optarg);
                        if (r < 0) {
                                fprintf(stderr, "kvmi-sim: --reg %s: %s\n", optarg,
                                        r == -ENOENT ? "unknown register (rax..r15, rip, rflags)"
                                                     : "expected NAME=VALUE with a 64-bit unsigned VALUE");
                                return -EINVAL;
                        }
                        break;
                case OPT_MODE:
                        if (streq(optarg, "64"))
                                o->mode = KVMI_MODE_64;
                        else if (streq(optarg, "32"))
                                o->mode = KVMI_MODE_32;
                        else
                                goto bad;
                        break;
                case OPT_UNHOOK:
                        o->unhook_at_exit = true;
                        break;
                case OPT_TIMEOUT:
                        if (sim_parse_uint(optarg, 1, 3600, &v) < 0)
                                goto bad;
                        o->timeout_sec = (unsigned) v;
                        break;
                case OPT_MISBEHAVE:
                        o->misbehave = mis_from_string(optarg);
                        if (o->misbehave == MIS__MAX)
                                goto bad;
                        break;
                case OPT_CONTROL:
                        o->control_path = optarg;
                        break;
                case OPT_FLOOR:
                        o->floor = true;
                        break;
                case OPT_LAYOUT:
                        if (!streq(optarg, "8") && !streq(optarg, "16"))
                                goto bad;
                        o->version_layout = (unsigned) atoi(optarg);
                        break;
                case OPT_NO_TOKEN:
                        o->no_map_token = true;
                        break;
                case OPT_NO_HC:
                        o->no_hypercall = true;
                        break;
                case OPT_INTRO:
                        if (intro_opts_parse(&o->intro, optarg, why, sizeof why) < 0) {
                                fprintf(stderr, "kvmi-sim: --introspector: %s\n", why);
                                return -EINVAL;
                        }
                        break;
                case OPT_INTRO_SOCKET:
                case OPT_HV_SOCKET: {
                        char **p = c == OPT_INTRO_SOCKET ? &o->intro.introspector_socket : &o->intro.hypervisor_socket;
                        free(*p);
                        if (!(*p = strdup(optarg)))
                                return -ENOMEM;
                        intro_opt = true;
                        break;
                }
                case OPT_ATTACH: {
                        char **a = realloc(o->intro.attach, (o->intro.n_attach + 1) * sizeof *a);
                        if (!a)
                                return -ENOMEM;
                        o->intro.attach = a;
                        if (!optarg[0] || !(a[o->intro.n_attach] = strdup(optarg)))
                                goto bad;
                        o->intro.n_attach++;
                        intro_opt = true;
                        break;
                }
                case OPT_SUBSCRIBERS:
                        if (sim_parse_uint(optarg, 1, 1024, &v) < 0)
                                goto bad;
                        o->intro.subscribers = (unsigned) v;
                        intro_opt = true;
                        break;
                case OPT_MAP:
                        if (sim_parse_uint(optarg, 0, 1000000, &v) < 0)
                                goto bad;
                        o->intro.map_count = (unsigned) v;
                        intro_opt = true;
                        break;
                case OPT_GPA: {
                        char *end, *end2;
                        errno = 0;
                        o->intro.gpa = strtoull(optarg, &end, 0);
                        if (errno || end == optarg || *end != ',' || optarg[0] == '-' || end[1] == '-')
                                goto bad;
                        o->intro.gpa_size = strtoull(end + 1, &end2, 0);
                        if (errno || end2 == end + 1 || *end2 || o->intro.gpa_size == 0)
                                goto bad;
                        intro_opt = true;
                        break;
                }
                case OPT_LOCAL_GPA: {
                        char *end;
                        errno = 0;
                        o->intro.local_gpa = strtoull(optarg, &end, 0);
                        if (errno || end == optarg || *end || optarg[0] == '-')
                                goto bad;
                        intro_opt = true;
                        break;
                }
                case OPT_WATCH:
                        o->intro.watch_revocations = true;
                        intro_opt = true;
                        break;
                case OPT_MAX_MSG:
                        if (sim_parse_uint(optarg, 64, KVMI_MAX_MSG_SIZE_LIMIT, &v) < 0)
                                goto bad;
                        o->has_max_msg = true;
                        o->max_msg = (uint32_t) v;
                        break;
                case OPT_HS_SIZE:
                        if (sim_parse_uint(optarg, KVMI_QEMU2INTROSPECTOR_MIN_SIZE, KVMI_HANDSHAKE_MAX_SIZE, &v) < 0)
                                goto bad;
                        o->handshake_size = (uint32_t) v;
                        break;
                case OPT_CPU_TYPE:
                        if (sim_parse_uint(optarg, 0, UINT8_MAX, &v) < 0)
                                goto bad;
                        o->cpu_type = (uint8_t) v;
                        break;
                case OPT_EVENT_ID:
                        /* 0 is UNHOOK, which has no reply: --unhook-at-exit. */
                        if (sim_parse_uint(optarg, 1, UINT8_MAX, &v) < 0)
                                goto bad;
                        o->event_id = (uint8_t) v;
                        break;
                case OPT_EVENT_SIZE:
                        if (sim_parse_uint(optarg, KVMI_EVENT_SIZE, KVMI_MAX_MSG_SIZE_LIMIT, &v) < 0)
                                goto bad;
                        o->event_size = (uint16_t) v;
                        break;
                case 'v':
                        o->verbose = true;
                        break;
                case 'h':
                        sim_usage(stdout);
                        exit(0);
                default:
                        sim_usage(stderr);
                        return -EINVAL;
                }
                continue;
        bad:
                fprintf(stderr, "kvmi-sim: bad value \"%s\" for --%s (see --help)\n", optarg,
                        opts[c == 's' ? 0 : c - OPT_VM + 1].name);
                return -EINVAL;
        }
        if (optind < argc) {
                fprintf(stderr, "kvmi-sim: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        if (!o->socket_path && !o->floor) {
                fprintf(stderr, "kvmi-sim: --socket PATH is required (or --floor)\n");
                return -EINVAL;
        }
        if (o->n_vms == 0 && !o->control_path) {
                fprintf(stderr, "kvmi-sim: at least one --vm is required (or --control)\n");
                return -EINVAL;
        }
        if (o->floor && (o->control_path || o->misbehave)) {
                fprintf(stderr, "kvmi-sim: --floor is a one-shot benchmark baseline: no --control, no --misbehave\n");
                return -EINVAL;
        }
        if (intro_opt && !o->intro.enabled) {
                fprintf(stderr, "kvmi-sim: introspector options need --introspector NAME,KEYFILE,VMNAME\n");
                return -EINVAL;
        }
        if (o->intro.enabled && o->event_id != sim_hypercall_id()) {
                /* kvmid delivers guest requests only: the subscribers would wait. */
                fprintf(stderr, "kvmi-sim: --event-id does not go with --introspector\n");
                return -EINVAL;
        }
        if (o->intro.enabled && (o->floor || o->misbehave)) {
                fprintf(stderr, "kvmi-sim: --introspector does not go with --floor or --misbehave\n");
                return -EINVAL;
        }
        if (o->misbehave && o->control_path) {
                fprintf(stderr, "kvmi-sim: --misbehave is a one-shot mode: no --control\n");
                return -EINVAL;
        }
        return 0;
}

/* ---- main -------------------------------------------------------------------------- */

static int sim_setup(Sim *s, int *floor_fds) {
        struct timeval zero = {}, deadline = { .tv_sec = s->o.timeout_sec };
        struct event *ev_start;

        for (size_t i = 0; i < s->o.n_vms; i++)
                if (!sim_vm_add(s, &s->o.vms[i]))
                        return -ENOMEM;
        s->ev_deadline = evtimer_new(s->base, sim_on_deadline, s);
        s->ev_sigint = evsignal_new(s->base, SIGINT, sim_on_signal, s);
        s->ev_sigterm = evsignal_new(s->base, SIGTERM, sim_on_signal, s);
        ev_start = evtimer_new(s->base, sim_on_start, s);
        if (!s->ev_deadline || !s->ev_sigint || !s->ev_sigterm || !ev_start)
                return -ENOMEM;
        event_add(s->ev_sigint, NULL);
        event_add(s->ev_sigterm, NULL);

        if (s->o.intro.enabled) {
                char why[SIM_ERR_LEN];
                int r = intro_new(s, why, sizeof why);
                if (r < 0) {
                        sim_fail(s, "%s", r == -ENOMEM ? "out of memory" : why);
                        return r;
                }
        }
        if (s->o.floor) {
                size_t i = 0;
                s->phase = PHASE_CONNECT;
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        vm_attach(vm, floor_fds[i++]);
        } else if (s->o.misbehave) {
                s->phase = PHASE_MISBEHAVE;
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        if (mis_start(vm, s->o.misbehave) < 0)
                                return -ENOMEM;
        } else if (s->o.control_path) {
                int r = ctl_start(s, s->o.control_path);
                if (r < 0)
                        return r;
                s->phase = PHASE_CONTROL;
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        vm_connect(vm);
                ctl_notify(s, NULL, VM_NOTE_CONNECTED);
        } else {
                s->phase = PHASE_CONNECT;
                evtimer_add(s->ev_deadline, &deadline);
                for (SimVm *vm = s->vms; vm; vm = vm->next)
                        vm_connect(vm);
        }
        evtimer_add(ev_start, &zero);
        event_base_dispatch(s->base);
        event_free(ev_start);
        return 0;
}

int main(int argc, char **argv) {
        Sim s = { .o = { .vcpus = 1, .events = 100, .mode = KVMI_MODE_64, .timeout_sec = 15, .version_layout = 16,
                         .handshake_size = KVMI_QEMU2INTROSPECTOR_SIZE, .event_id = sim_hypercall_id(),
                         .event_size = KVMI_EVENT_SIZE,
                         .intro = { .subscribers = 1, .gpa = 0x1000, .gpa_size = 0x1000 } } };
        _cleanup_free_ int *floor_fds = NULL;
        struct json_object *report;
        int r, ret = 1;

        s.start_ns = util_now_ns();
        json_c_set_serialization_double_format("%.9g", JSON_C_OPTION_GLOBAL);
        s.vms_tail = &s.vms;
        if (sim_parse(&s, argc, argv) < 0) {
                intro_opts_done(&s.o.intro);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        if (s.o.floor) {
                floor_fds = calloc(s.o.n_vms, sizeof *floor_fds);
                if (!floor_fds || floor_start(s.o.n_vms, floor_fds, &s.floor_pid) < 0) {
                        fprintf(stderr, "kvmi-sim: cannot start the floor peer: %m\n");
                        return 1;
                }
        }
        s.base = event_base_new();
        if (!s.base) {
                fprintf(stderr, "kvmi-sim: cannot create the event loop\n");
                return 1;
        }
        r = sim_setup(&s, floor_fds);
        if (r < 0)
                sim_fail(&s, "setup failed: %s", strerror(-r));

        report = report_json(&s);
        if (s.floor_pid > 0) {
                /* The baseline's CPU, to set beside kvmid's: hang up, reap. */
                uint64_t cpu_ns = 0;
                for (SimVm *vm = s.vms; vm; vm = vm->next)
                        vm_close(vm, false, "exiting");
                if (floor_wait(s.floor_pid, &cpu_ns) != 0 && r >= 0)
                        fprintf(stderr, "kvmi-sim: warning: the floor peer exited abnormally\n");
                s.floor_pid = 0;
                json_object_object_add(report, "floor_cpu_ns", json_object_new_uint64(cpu_ns));
        }
        if (r >= 0) {
                printf("%s\n", json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY |
                                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
                fflush(stdout);
        }
        json_object_put(report);
        if (s.phase == PHASE_CONTROL)
                ret = s.fail[0] ? 1 : 0;
        else
                ret = report_verdict(&s) ? 0 : 1;
        if (ret != 0)
                fprintf(stderr, "kvmi-sim: %s\n", s.fail);

        ctl_free(&s);
        intro_free(&s);
        for (SimVm *vm = s.vms; vm; vm = vm->next)
                vm_close(vm, false, "exiting");        /* ends running jobs */
        while (s.vms) {
                SimVm *vm = s.vms;
                s.vms = vm->next;
                vm_free(vm);
        }
        if (s.ev_deadline)
                event_free(s.ev_deadline);
        if (s.ev_sigint)
                event_free(s.ev_sigint);
        if (s.ev_sigterm)
                event_free(s.ev_sigterm);
        event_base_free(s.base);
        if (s.floor_pid > 0)
                (void) floor_wait(s.floor_pid, NULL);  /* setup failed before the report */
        for (size_t i = 0; i < s.o.n_vms; i++)
                vm_spec_done(&s.o.vms[i]);
        free(s.o.vms);
        intro_opts_done(&s.o.intro);
        json_c_set_serialization_double_format(NULL, JSON_C_OPTION_GLOBAL);
        return ret;
}
