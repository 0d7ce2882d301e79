/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* kvmi-sim internals, shared by its files (tests/sim/).  The program plays
 * target VMs toward kvmid's KVMI listener: QEMU's handshake, then the KVM
 * kernel side of KVMI (answers commands, emits HYPERCALL guest requests,
 * UNHOOK).  All encoding goes through proto/kvmi.h.  With --introspector it
 * also plays an introspector VM (its agent on io.kvmid.Introspector, its
 * VMM on io.kvmid.Hypervisor), non-blocking, on the same loop, so the map
 * tokens it redeems are the ones its own simulated kernels minted.  One
 * event_base, no threads.  Functions are prefixed by concern:
 *
 *   util_*    time, logging, hex, uuid, registers, latency vectors  (sim-util.c)
 *   vm_*      one simulated VM: connection, handshake, I/O          (sim-vm.c)
 *   kernel_*  the kernel's command side, map tokens                 (sim-kernel.c)
 *   job_*     guest-request event generation and reply checking     (sim-events.c)
 *   mis_*     --misbehave modes                                     (sim-misbehave.c)
 *   floor_*   --floor: the forked echo peer                         (sim-floor.c)
 *   ctl_*     --control: the JSON-lines control socket              (sim-control.c)
 *   intro_*   --introspector: an introspector VM over varlink        (sim-introspector.c)
 *   report_* the JSON report and the one-shot verdict             (sim-report.c)
 *   sim_*     the program: options, phases                          (kvmi-sim.c)
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "kvmi.h"
#include "macro.h"

#define SIM_NAME_MAX            64      /* handshake name field, NUL included */
#define SIM_VCPUS_MAX           4096
#define SIM_TOKENS_MAX          8       /* live map tokens per VM (kernel: ~8) */
#define SIM_TOKEN_TTL_NS        (3ULL * 1000000000ULL)
#define SIM_TOKEN_HISTORY       64      /* expired/consumed tokens remembered for "redeem" */
#define SIM_UNHOOK_WAIT_MS      2000
#define SIM_NREGS               18      /* struct kvm_regs: rax .. rflags */
#define SIM_MSG_MAX             (KVMI_MSG_HDR_SIZE + KVMI_MAX_MSG_SIZE_LIMIT)
#define SIM_ERR_LEN             192

typedef struct Sim Sim;
typedef struct SimVm SimVm;
typedef struct SimJob SimJob;
typedef struct SimCtl SimCtl;
typedef struct SimMis SimMis;

/* ---- util ---------------------------------------------------------------- */

typedef struct LatVec {
        uint64_t *v;
        size_t n, cap;
} LatVec;

typedef struct LatSummary {
        size_t n;
        uint64_t p50, p99, max;
} LatSummary;

/* Register overrides: bit i of mask set → val[i] replaces register i
 * (kvm_regs order: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags). */
typedef struct SimRegs {
        uint32_t mask;
        uint64_t val[SIM_NREGS];
} SimRegs;

uint64_t util_now_ns(void);
void util_log(const Sim *s, const char *fmt, ...) _printf_(2, 3);
void util_hex(const uint8_t *p, size_t n, char *out);           /* out: 2n+1 */
int util_unhex(const char *s, uint8_t *out, size_t n);          /* exactly 2n hex digits */
int util_uuid_parse(const char *s, uint8_t ret[16]);
void util_uuid_format(const uint8_t u[16], char out[37]);
int util_reg_index(const char *name);                           /* -1 if unknown */
const char *util_reg_name(int index);
int util_regs_parse(SimRegs *r, const char *assignment);        /* "rdx=0x1234" */
void util_regs_apply(const SimRegs *r, KvmRegs *regs);
int util_latvec_add(LatVec *l, uint64_t ns);
void util_latvec_free(LatVec *l);
LatSummary util_latvec_summary(const LatVec *l);
struct json_object *util_latency_json(const LatSummary *sum);
double util_rate(uint64_t n, uint64_t start_ns, uint64_t end_ns);
struct json_object *util_json_u64(uint64_t v);

/* ---- kernel: map tokens --------------------------------------------------- */

typedef struct SimToken {
        uint8_t bytes[KVMI_MAP_TOKEN_SIZE];
        uint64_t created_ns;
} SimToken;

typedef struct SimTokenGone {
        uint8_t bytes[KVMI_MAP_TOKEN_SIZE];
        bool consumed;                  /* else expired */
} SimTokenGone;

typedef struct SimTokens {
        SimToken live[SIM_TOKENS_MAX];
        unsigned n_live;
        SimTokenGone gone[SIM_TOKEN_HISTORY];
        unsigned n_gone, gone_next;
        uint64_t minted, redeemed, refused;
} SimTokens;

typedef enum TokenRedeem {
        TOKEN_OK,
        TOKEN_UNKNOWN,
        TOKEN_EXPIRED,
        TOKEN_CONSUMED,
} TokenRedeem;

void kernel_tokens_sweep(SimTokens *t, uint64_t now);
int kernel_token_mint(SimTokens *t, uint64_t now, KvmiMapToken *ret);   /* 0 or -KVM_E* */
TokenRedeem kernel_token_redeem(SimTokens *t, const uint8_t bytes[KVMI_MAP_TOKEN_SIZE], uint64_t now);
const char *kernel_token_redeem_to_string(TokenRedeem r);
void kernel_tokens_clear(SimTokens *t);
/* The body limit this kernel reports in GET_VERSION (--max-msg, else v7's
 * 8184) and enforces on what kvmid sends. */
uint32_t kernel_max_msg(const Sim *s);
/* One KVMI message from kvmid (commands and EVENT_REPLYs). */
void kernel_handle(SimVm *vm, const KvmiMsgHdr *h, const uint8_t *msg, size_t len);

/* ---- vm -------------------------------------------------------------------- */

typedef enum VmState {
        VM_IDLE,
        VM_CONNECTING,          /* connect() not done yet (retrying) */
        VM_HANDSHAKE,           /* qemu2introspector sent, waiting for the reply */
        VM_KERNEL,              /* speaking KVMI */
        VM_CLOSED,
} VmState;

/* What sim_vm_notify() is told. */
typedef enum VmNote {
        VM_NOTE_CONNECTED,      /* connect() succeeded, nothing sent yet */
        VM_NOTE_PROBED,         /* kvmid finished probing (HYPERCALL on all vCPUs, or settled) */
        VM_NOTE_CLOSED,         /* the channel is gone (either side) */
        VM_NOTE_UNHOOK_DONE,    /* after UNHOOK: kvmid closed or the wait expired */
        VM_NOTE_HANDSHAKE_REPLY,/* introspector2qemu received (before the cookie check) */
        VM_NOTE_MISBEHAVE_DONE, /* --misbehave: outcome known */
} VmNote;

typedef struct SimVmSpec {
        char name[SIM_NAME_MAX];
        uint8_t uuid[16];
        char uuid_str[37];
        char *cookie_file;              /* NULL: no key configured, any hash passes */
} SimVmSpec;

typedef struct SimVcpu {
        SimVm *vm;
        uint16_t index;
        uint32_t events;                /* enabled vCPU events, bit per KvmiEv */
        bool outstanding;               /* stopped in an event until its reply */
        uint32_t seq;
        uint8_t sent_id;                /* kvmi_event.event of the outstanding event (wire id) */
        uint64_t sent_ns;
        SimJob *job;                    /* the job driving this vCPU, or NULL */
        uint64_t job_left, job_sent;
        struct event *ev_tick;          /* --rate pacing */
} SimVcpu;

struct SimVm {
        Sim *sim;
        SimVm *next;
        SimVmSpec spec;
        bool hidden;                    /* internal (duplicate-uuid's second connection) */
        bool floor;
        VmState state;
        int fd;
        struct event *ev_read, *ev_write, *ev_retry, *ev_settle, *ev_unhook;
        struct evbuffer *out;
        uint8_t *in;
        size_t in_len, in_cap;
        uint64_t t_read_ns;             /* when the bytes being parsed were read */
        uint64_t connect_start_ns, connected_ns, closed_ns;
        int connect_errno;              /* last failed connect() while retrying */

        char handshake[SIM_ERR_LEN];    /* "" pending, "ok", or why not */
        bool got_cookie_hash;
        uint8_t cookie_hash[KVMI_COOKIE_HASH_SIZE];     /* as kvmid sent it in introspector2qemu */
        bool probed, got_guest_info;
        bool closed_by_peer;
        char close_reason[SIM_ERR_LEN];

        uint32_t cmd_count[KVMI_CMD__MAX];
        uint32_t cmd_unknown;
        uint32_t vm_events;             /* enabled VM events, bit per KvmiEv */
        uint16_t nvcpus;
        SimVcpu *vcpus;
        uint32_t next_seq;              /* the kernel's own event seq */

        uint64_t events_sent, acked, errors;
        char first_error[SIM_ERR_LEN];
        LatVec lat;
        uint64_t first_send_ns, last_ack_ns;
        SimTokens tokens;

        bool unhook_sent;
        int unhook_closed;              /* -1 not requested, 0 no, 1 yes */
        uint64_t unhook_ns;

        SimMis *mis;
};

SimVm *vm_new(Sim *s, const SimVmSpec *spec);
void vm_free(SimVm *vm);
void vm_connect(SimVm *vm);
void vm_attach(SimVm *vm, int fd);      /* --floor: connected, enabled, no handshake */
int vm_send(SimVm *vm, const void *buf, size_t len);
void vm_close(SimVm *vm, bool by_peer, const char *fmt, ...) _printf_(3, 4);
void vm_error(SimVm *vm, const char *fmt, ...) _printf_(2, 3);
void vm_check_probed(SimVm *vm);
unsigned vm_hypercall_vcpus(const SimVm *vm);
int vm_unhook(SimVm *vm);               /* 0 sent, -ENOTCONN, -EPERM (not enabled) */
const char *vm_state_to_string(VmState st);
int vm_spec_parse(const char *arg, SimVmSpec *ret, char *why, size_t whylen);
void vm_spec_done(SimVmSpec *spec);

/* ---- job: guest requests --------------------------------------------------- */

typedef void (*JobDone)(SimJob *job);

struct SimJob {
        Sim *sim;
        SimVm *vm;
        uint64_t per_vcpu;
        double rate;                    /* per vCPU, 0 = as fast as acks allow */
        SimRegs regs;                   /* on top of the process-wide --reg */
        uint8_t event_id;               /* kvmi_event.event (wire id): job_new sets --event-id;
                                         * callers may change it before returning to the loop */
        uint64_t start_ns, first_send_ns, last_ack_ns, last_progress_ns;
        uint64_t sent, acked, errors;
        unsigned vcpus_active;
        LatVec lat;
        char error[SIM_ERR_LEN];
        bool done;
        JobDone on_done;
        void *userdata;
        struct event *ev_stall;
};

/* vcpu < 0: every vCPU with HYPERCALL enabled.  NULL + *why on refusal. */
SimJob *job_new(SimVm *vm, int vcpu, uint64_t per_vcpu, double rate, const SimRegs *regs, JobDone done,
                void *userdata, char *why, size_t whylen);
void job_free(SimJob *job);
void job_vm_closed(SimVm *vm);
void job_on_reply(SimVm *vm, const KvmiMsgHdr *h, const uint8_t *msg, size_t len);
/* The event message a vCPU of this VM would send (HYPERCALL guest request
 * or UNHOOK, kvmi_event.size 544); returns its size or -errno. */
int job_encode_event(SimVm *vm, uint16_t vcpu, KvmiEv ev, const SimRegs *regs, uint32_t seq, uint8_t *buf,
                     size_t bufsize);
struct json_object *job_result_json(const SimJob *job);

/* ---- misbehave -------------------------------------------------------------- */

typedef enum MisMode {
        MIS_NONE,
        MIS_WRONG_COOKIE,
        MIS_TRUNCATED_HANDSHAKE,
        MIS_SLOW_HANDSHAKE,
        MIS_BAD_HEADER_SIZE,
        MIS_NONZERO_PADDING,
        MIS_UNEXPECTED_SEQ,
        MIS_OVERSIZE,
        MIS_DISCONNECT_MID_MESSAGE,
        MIS_DUPLICATE_UUID,
        MIS_SILENT_COMMAND,
        MIS__MAX,
} MisMode;

MisMode mis_from_string(const char *s);
const char *mis_to_string(MisMode m);
int mis_start(SimVm *vm, MisMode mode);         /* instead of vm_connect() */
void mis_notify(SimVm *vm, VmNote note);
bool mis_done(const SimVm *vm);
bool mis_ok(const SimVm *vm, char *why, size_t whylen);
bool mis_handshake_wrong(const SimVm *vm);      /* wrong-cookie: compare against a wrong secret */
bool mis_sends_handshake(const SimVm *vm);      /* false: the mode writes its own handshake */
/* silent-command: true if this command must go unanswered (the act). */
bool mis_silent(SimVm *vm, KvmiCmd cmd, uint32_t seq);
struct json_object *mis_json(const SimVm *vm);
void mis_free(SimVm *vm);

/* ---- floor ------------------------------------------------------------------ */

/* Before the event_base exists: n socketpairs, the far ends served by a
 * forked echo process.  fds[i] is VM i's end. */
int floor_start(size_t n, int *fds, pid_t *ret_pid);
/* Reap the floor peer; *ret_cpu_ns: the CPU it used (user + system). */
int floor_wait(pid_t pid, uint64_t *ret_cpu_ns);

/* ---- control ---------------------------------------------------------------- */

int ctl_start(Sim *s, const char *path);
void ctl_notify(Sim *s, SimVm *vm, VmNote note);
void ctl_free(Sim *s);

/* ---- introspector VM ---------------------------------------------------------- */

typedef struct SimIntro SimIntro;

typedef struct SimIntroOpts {
        bool enabled;
        char name[SIM_NAME_MAX];        /* the identity ([introspector NAME]) */
        char *key_file;
        char vm[SIM_NAME_MAX];          /* the introspector VM's domain name (MemMap "introspector") */
        char *introspector_socket, *hypervisor_socket;  /* default: next to --socket */
        char **attach;                  /* --attach targets; none: every --vm */
        size_t n_attach;
        unsigned subscribers;           /* connections subscribed to every session */
        unsigned map_count;             /* one-shot: tokens minted and mapped per session */
        uint64_t gpa, gpa_size;         /* GetMapToken range */
        uint64_t local_gpa;             /* first local gpa (a counter, one page per MemMap) */
        bool watch_revocations;
} SimIntroOpts;

typedef enum IntroOpKind {
        INTRO_OP_MAP,                   /* count x (GetMapToken, MemMap, redeem in the target's kernel) */
        INTRO_OP_DENY,                  /* MemMap of a consumed token: must be denied */
        INTRO_OP_UNMAP,                 /* MemUnmap of recorded mappings (or of one local gpa) */
        INTRO_OP_CLOSE,                 /* CloseSession */
        INTRO_OP_WAIT,                  /* until deliveries / revocations reach a count */
} IntroOpKind;

typedef struct IntroOpSpec {
        IntroOpKind kind;
        const char *target;             /* NULL: every open session (copied) */
        unsigned count;                 /* map */
        uint64_t gpa, size;             /* map: size 0 = --gpa */
        bool has_local_gpa;             /* unmap just this one */
        uint64_t local_gpa;
        bool drain;                     /* wait: every live subscription has every event its
                                         * target acked since it went live */
        bool has_events;                /* wait: every subscriber has >= events (delivered + missed) */
        uint64_t events;
        uint64_t revocations;           /* wait: at least this many seen in all */
        unsigned timeout_ms;            /* wait */
} IntroOpSpec;

/* The result (owned by the callee) has "ok" and, when not ok, "error". */
typedef void (*IntroDone)(Sim *s, void *userdata, struct json_object *result);

int intro_opts_parse(SimIntroOpts *o, const char *arg, char *why, size_t whylen);     /* NAME,KEYFILE,VMNAME */
void intro_opts_done(SimIntroOpts *o);
int intro_new(Sim *s, char *why, size_t whylen);        /* reads the key; s->intro */
void intro_free(Sim *s);
/* Authenticate, open the sessions, subscribe, watch revocations; then
 * sim_intro_notify() (also on failure). */
void intro_start(Sim *s);
bool intro_started(const Sim *s);
bool intro_settled(const Sim *s);
/* Ops run one at a time, in order. */
int intro_op(Sim *s, const IntroOpSpec *spec, IntroDone done, void *userdata, char *why, size_t whylen);
void intro_forget_userdata(Sim *s, void *userdata);     /* a control client went away */
/* One-shot: drain, then per session map/deny/unmap (and a revoked mapping
 * with --watch-revocations); done() when all are through. */
void intro_oneshot(Sim *s, void (*done)(Sim *s));
struct json_object *intro_json(const Sim *s);
bool intro_verdict(Sim *s);

/* ---- program ---------------------------------------------------------------- */

typedef struct SimOpts {
        const char *socket_path;
        SimVmSpec *vms;
        size_t n_vms;
        unsigned vcpus;
        uint64_t events;
        double rate;
        SimRegs regs;
        uint8_t mode;                   /* KVMI_MODE_64 / KVMI_MODE_32 */
        bool unhook_at_exit;
        unsigned timeout_sec;
        MisMode misbehave;
        const char *control_path;
        bool floor;
        unsigned version_layout;        /* 16 (with kvmi_features) or 8 (max_msg_size) */
        bool has_max_msg;
        uint32_t max_msg;               /* --max-msg: GET_VERSION's second word, in either layout */
        uint32_t handshake_size;        /* qemu2introspector struct_size (96; 32 .. 64 KiB) */
        uint8_t cpu_type;               /* its byte 20 (0: an older QEMU's padding) */
        uint8_t event_id;               /* the one-shot events' kvmi_event.event (wire id) */
        uint16_t event_size;            /* their kvmi_event.size (544, more like a newer kernel) */
        bool no_map_token, no_hypercall;
        bool verbose;
        SimIntroOpts intro;
} SimOpts;

struct Sim {
        struct event_base *base;
        SimOpts o;
        SimVm *vms, **vms_tail;
        SimCtl *ctl;
        SimIntro *intro;
        pid_t floor_pid;
        int phase;                      /* kvmi-sim.c's one-shot phases */
        bool ready_printed;
        char fail[SIM_ERR_LEN];         /* first reason the run is not as expected */
        uint64_t start_ns, events_start_ns, events_end_ns;
        struct event *ev_deadline, *ev_sigint, *ev_sigterm;
};

/* Called by the vm/job/mis code whenever a VM makes progress. */
void sim_vm_notify(SimVm *vm, VmNote note);
/* Called by sim-introspector.c once its setup is through (ready or failed). */
void sim_intro_notify(Sim *s);
void sim_fail(Sim *s, const char *fmt, ...) _printf_(2, 3);
SimVm *sim_vm_find(Sim *s, const char *name);
SimVm *sim_vm_add(Sim *s, const SimVmSpec *spec);
void sim_quit(Sim *s);

/* ---- report (sim-report.c) -------------------------------------------------- */

struct json_object *report_vm_json(const SimVm *vm, bool status);
struct json_object *report_json(Sim *s);
bool report_verdict(Sim *s);    /* one-shot: everything as expected?  Else sets s->fail. */
