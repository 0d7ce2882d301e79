/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* KVMI binary codec: the QEMU handshake and the KVMI messages kvmid (the
 * introspector side) and kvmi-sim (the kernel side) exchange.  Pure buffer
 * logic: no I/O, no logging, no globals except const tables.  Wire facts:
 * shared/KVMI-PROTOCOL.md.  Everything on the wire is little-endian; no
 * packed struct is ever overlaid on a buffer.
 *
 * Message ids are numbering-specific (they drift between KVMI versions), so
 * the codec speaks abstract KvmiCmd / KvmiEv values and translates through a
 * const KvmiNumbering table; adding a numbering is a data change.
 *
 * Errors: every function returns 0 or a documented positive size on success
 * and a negative errno on failure; ret_* out-parameters are written only on
 * success.  Each malformation has its own code:
 *
 *   -EBADMSG     too short: the buffer/body is shorter than the structure
 *   -E2BIG       too long: trailing bytes after a fixed-size structure
 *   -EPROTO      a padding/reserved field is not zero
 *   -ENOMSG      message or event id unknown to the numbering (or, when
 *                encoding, the abstract command/event is absent from it)
 *   -EMSGSIZE    message body larger than the negotiated maximum (framing),
 *                or than the u16 size field can describe (encoding)
 *   -EBADR       a size field disagrees with the data (msg hdr size vs the
 *                bytes given, kvmi_event.size smaller than the common struct
 *                or beyond the body)
 *   -EBADE       the message id is not the one expected (a reply whose id is
 *                not its command's, a non-EVENT given to the event decoder)
 *   -ERANGE      handshake struct_size outside [minimum, 64 KiB]
 *   -EILSEQ      handshake name not NUL-terminated within its 64 bytes
 *   -EDOM        a field value out of its range (action > CRASH, enable > 1,
 *                positive error code in a reply)
 *   -EOPNOTSUPP  known id, but this codec has no layout for its body
 *   -ENOBUFS     (encoding) the output buffer is too small
 *   -EINVAL      (encoding) invalid argument from the caller
 *
 * kvmi_strerror() turns these into one-line messages. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Constants -------------------------------------------------------- */

/* Hypercalls issued inside guests. */
#define KVM_HC_MEM_MAP                                  32
#define KVM_HC_MEM_UNMAP                                33
#define KVM_HC_XEN_HVM_OP                               34
#define KVM_HC_XEN_HVM_OP_GUEST_REQUEST_VM_EVENT        24

/* Event reply actions. */
#define KVMI_EVENT_ACTION_CONTINUE      0
#define KVMI_EVENT_ACTION_RETRY         1
#define KVMI_EVENT_ACTION_CRASH         2

/* KVMI error codes: kvmi_error_code.err carries them negated (-KVM_EPERM).
 * Guarded because <linux/kvm_para.h> defines some of them too. */
#ifndef KVM_ENOSYS
#define KVM_ENOSYS              1000
#endif
#ifndef KVM_EOPNOTSUPP
#define KVM_EOPNOTSUPP          95
#endif
#ifndef KVM_EPERM
#define KVM_EPERM               1
#endif
#ifndef KVM_EINVAL
#define KVM_EINVAL              22
#endif
#ifndef KVM_EAGAIN
#define KVM_EAGAIN              11
#endif
#ifndef KVM_ENOMEM
#define KVM_ENOMEM              12
#endif
#ifndef KVM_EFAULT
#define KVM_EFAULT              14
#endif
#ifndef KVM_ENOENT
#define KVM_ENOENT              2
#endif

/* vCPU modes in kvmi_event_arch.mode. */
#define KVMI_MODE_16            2
#define KVMI_MODE_32            4
#define KVMI_MODE_64            8

/* Wire sizes, in bytes. */
#define KVMI_MSG_HDR_SIZE               8
#define KVMI_ERROR_CODE_SIZE            8
#define KVMI_VCPU_HDR_SIZE              8
#define KVMI_EVENT_SIZE                 544     /* struct kvmi_event (v7, with view) */
#define KVMI_EVENT_REPLY_SIZE           16      /* kvmi_vcpu_hdr + kvmi_event_reply */
#define KVMI_MAP_TOKEN_SIZE             32
#define KVMI_QEMU2INTROSPECTOR_SIZE     96      /* the full v7 struct, as we send it */
#define KVMI_QEMU2INTROSPECTOR_MIN_SIZE 32      /* the offset of name: what a peer must send */
#define KVMI_INTROSPECTOR2QEMU_SIZE     24
#define KVMI_HANDSHAKE_MAX_SIZE         (64U * 1024U)
#define KVMI_HANDSHAKE_NAME_SIZE        64
#define KVMI_COOKIE_HASH_SIZE           20      /* SHA-1 */

/* Offsets inside struct kvmi_event, for readers of hex dumps and tests. */
#define KVMI_EVENT_OFFSET_MODE          8
#define KVMI_EVENT_OFFSET_VIEW          10
#define KVMI_EVENT_OFFSET_REGS          16      /* rax; rbx 24, rcx 32, rdx 40, rsi 48, rdi 56 */
#define KVMI_EVENT_OFFSET_RIP           144
#define KVMI_EVENT_OFFSET_SREGS         160
#define KVMI_EVENT_OFFSET_MSRS          472

/* Largest message body (excluding the header). */
#define KVMI_MAX_MSG_SIZE_V7            (8192U - KVMI_MSG_HDR_SIZE)
#define KVMI_MAX_MSG_SIZE_V5            (4096U - KVMI_MSG_HDR_SIZE)
#define KVMI_MAX_MSG_SIZE_LIMIT         UINT16_MAX      /* what hdr.size can say */

/* ---- Abstract command and event ids ----------------------------------- */

/* Every message id kvmid knows by name, independent of any numbering.
 * EVENT_REPLY and EVENT are messages rather than commands but share the id
 * space. */
typedef enum KvmiCmd {
        KVMI_CMD_EVENT_REPLY,
        KVMI_CMD_EVENT,
        KVMI_CMD_GET_VERSION,
        KVMI_CMD_CHECK_COMMAND,
        KVMI_CMD_CHECK_EVENT,
        KVMI_CMD_GET_GUEST_INFO,
        KVMI_CMD_GET_VCPU_INFO,
        KVMI_CMD_PAUSE_VCPU,
        KVMI_CMD_CONTROL_VM_EVENTS,
        KVMI_CMD_CONTROL_EVENTS,
        KVMI_CMD_CONTROL_CR,
        KVMI_CMD_CONTROL_MSR,
        KVMI_CMD_GET_REGISTERS,
        KVMI_CMD_SET_REGISTERS,
        KVMI_CMD_READ_PHYSICAL,
        KVMI_CMD_WRITE_PHYSICAL,
        KVMI_CMD_GET_PAGE_ACCESS,
        KVMI_CMD_SET_PAGE_ACCESS,
        KVMI_CMD_GET_MAP_TOKEN,
        KVMI_CMD_GET_MAX_GFN,
        KVMI_CMD__MAX,
} KvmiCmd;

typedef enum KvmiEv {
        KVMI_EV_UNHOOK,
        KVMI_EV_CR,
        KVMI_EV_MSR,
        KVMI_EV_XSETBV,
        KVMI_EV_BREAKPOINT,
        KVMI_EV_HYPERCALL,
        KVMI_EV_PF,
        KVMI_EV_TRAP,
        KVMI_EV_DESCRIPTOR,
        KVMI_EV_CREATE_VCPU,
        KVMI_EV_PAUSE_VCPU,
        KVMI_EV_SINGLESTEP,
        KVMI_EV__MAX,
} KvmiEv;

/* "GET_VERSION", "HYPERCALL"; NULL when out of range. */
const char *kvmi_cmd_to_string(KvmiCmd cmd);
const char *kvmi_ev_to_string(KvmiEv ev);

/* ---- Numbering tables ------------------------------------------------- */

/* Request body size bound meaning "up to the message limit". */
#define KVMI_SIZE_VARIABLE      UINT16_MAX

typedef struct KvmiCmdInfo {
        bool present;           /* zero-initialised entries are absent, never id 0 */
        uint16_t id;            /* wire id */
        uint16_t min_size;      /* request body bounds (after the msg header) */
        uint16_t max_size;      /* KVMI_SIZE_VARIABLE: bounded by the message limit */
        bool vcpu;              /* body starts with kvmi_vcpu_hdr */
} KvmiCmdInfo;

typedef struct KvmiEvInfo {
        bool present;
        uint8_t id;             /* wire id (kvmi_event.event is a u8) */
        bool vm;                /* enabled with CONTROL_VM_EVENTS, not CONTROL_EVENTS */
} KvmiEvInfo;

typedef struct KvmiNumbering {
        const char *name;               /* "v7" */
        uint16_t max_msg_size;          /* body limit until GET_VERSION says otherwise */
        int32_t err_unsupported;        /* the peer's reply to an unsupported command */
        KvmiCmdInfo cmd[KVMI_CMD__MAX];
        KvmiEvInfo ev[KVMI_EV__MAX];
} KvmiNumbering;

/* The KVM-VMI kvmi-v7 numbering (libkvmi's v7 uapi headers). */
extern const KvmiNumbering kvmi_numbering_v7;

/* "v7" → &kvmi_numbering_v7; NULL if unknown. */
const KvmiNumbering *kvmi_numbering_by_name(const char *name);
/* Sanity of a table: present ids unique, size bounds ordered.  0 / -EINVAL. */
int kvmi_numbering_validate(const KvmiNumbering *n);

/* Abstract ↔ wire.  -ENOMSG if absent/unknown, -EINVAL if cmd/ev out of range. */
int kvmi_numbering_cmd_to_id(const KvmiNumbering *n, KvmiCmd cmd, uint16_t *ret_id);
int kvmi_numbering_cmd_from_id(const KvmiNumbering *n, uint16_t id, KvmiCmd *ret_cmd);
int kvmi_numbering_ev_to_id(const KvmiNumbering *n, KvmiEv ev, uint8_t *ret_id);
int kvmi_numbering_ev_from_id(const KvmiNumbering *n, uint16_t id, KvmiEv *ret_ev);
/* Request body length against the table: 0, -EBADMSG, -E2BIG, -ENOMSG, -EINVAL. */
int kvmi_numbering_check_size(const KvmiNumbering *n, KvmiCmd cmd, size_t body_len);

/* ---- Messages: header, framing, raw encoding -------------------------- */

typedef struct KvmiMsgHdr {
        uint16_t id;
        uint16_t size;          /* body bytes, excluding the header */
        uint32_t seq;
} KvmiMsgHdr;

/* 8 bytes; returns KVMI_MSG_HDR_SIZE or -ENOBUFS.  Decode: 0 or -EBADMSG. */
int kvmi_msg_hdr_encode(void *buf, size_t bufsize, const KvmiMsgHdr *h);
int kvmi_msg_hdr_decode(const void *buf, size_t len, KvmiMsgHdr *ret);

/* Stream framing: given the bytes buffered so far, returns 0 when more are
 * needed, the size N > 0 of the complete message (header + body) at the
 * front, or -EMSGSIZE as soon as the header announces a body larger than
 * max_msg_size (the stream is then unusable: close it).  *ret_hdr is set
 * when N > 0. */
int kvmi_frame_check(const void *buf, size_t len, size_t max_msg_size, KvmiMsgHdr *ret_hdr);

/* Header + body in one buffer (body may already sit at buf + 8: moved, not
 * copied).  Returns the total size, -EMSGSIZE (body > 65535), -ENOBUFS. */
int kvmi_msg_encode(void *buf, size_t bufsize, uint16_t id, uint32_t seq, const void *body, size_t body_len);

/* Prefix structures.  Encoders return 8 or -ENOBUFS; decoders read the
 * first 8 bytes (not an exact length): 0, -EBADMSG, -EPROTO. */
int kvmi_error_code_encode(void *buf, size_t bufsize, int32_t err);
int kvmi_error_code_decode(const void *buf, size_t len, int32_t *ret_err);
int kvmi_vcpu_hdr_encode(void *buf, size_t bufsize, uint16_t vcpu);
int kvmi_vcpu_hdr_decode(const void *buf, size_t len, uint16_t *ret_vcpu);

/* A whole error reply (header + kvmi_error_code, no payload) for any wire
 * id, also ids the numbering does not know.  err must be < 0 (-EINVAL). */
int kvmi_error_reply_encode(void *buf, size_t bufsize, uint16_t id, uint32_t seq, int32_t err);

/* ---- Commands (kvmid encodes, the kernel/simulator decodes) ----------- */

/* One decoded/encodable command.  Covered: GET_VERSION, CHECK_COMMAND,
 * CHECK_EVENT, GET_GUEST_INFO, CONTROL_VM_EVENTS, CONTROL_EVENTS,
 * GET_MAP_TOKEN, EVENT_REPLY; others → -EOPNOTSUPP. */
typedef struct KvmiCommand {
        KvmiCmd cmd;
        uint32_t seq;
        uint16_t vcpu;                  /* CONTROL_EVENTS, EVENT_REPLY */
        union {
                /* CHECK_COMMAND / CHECK_EVENT: a raw wire id, since probing
                 * ids outside the table is the point. */
                struct {
                        uint16_t id;
                } check;
                /* CONTROL_VM_EVENTS / CONTROL_EVENTS */
                struct {
                        KvmiEv event;
                        bool enable;
                } control;
                /* EVENT_REPLY (no event-specific reply payload: HYPERCALL
                 * and the other events without one) */
                struct {
                        uint8_t action;
                        KvmiEv event;
                } event_reply;
        };
} KvmiCommand;

/* Returns the total message size, or -ENOMSG, -EINVAL, -EDOM, -EOPNOTSUPP,
 * -ENOBUFS. */
int kvmi_command_encode(void *buf, size_t bufsize, const KvmiNumbering *n, const KvmiCommand *c);
/* msg/len: one whole message as framed by kvmi_frame_check().  0, -EBADMSG,
 * -EBADR, -ENOMSG, -E2BIG, -EPROTO, -EDOM, -EOPNOTSUPP. */
int kvmi_command_decode(const KvmiNumbering *n, const void *msg, size_t len, KvmiCommand *ret);

/* Typed wrappers for kvmid; each returns the total message size or -errno. */
int kvmi_encode_get_version(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq);
int kvmi_encode_check_command(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq, KvmiCmd which);
int kvmi_encode_check_event(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq, KvmiEv which);
int kvmi_encode_get_guest_info(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq);
int kvmi_encode_control_vm_events(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq,
                                  KvmiEv event, bool enable);
int kvmi_encode_control_events(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq,
                               uint16_t vcpu, KvmiEv event, bool enable);
int kvmi_encode_get_map_token(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq);
int kvmi_encode_event_reply(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq,
                            uint16_t vcpu, KvmiEv event, uint8_t action);

/* ---- Replies (the kernel/simulator encodes, kvmid decodes) ------------ */

typedef struct KvmiVersionReply {
        uint32_t version;
        /* The second word: max_msg_size in some v7-era texts, padding (0) in
         * libkvmi's v7 header; read it through kvmi_version_max_msg_size(). */
        uint32_t max_msg_size;
        bool has_features;              /* the 16-byte form with kvmi_features */
        uint8_t spp, vmfunc, eptp, ve;
} KvmiVersionReply;

typedef struct KvmiGuestInfoReply {
        uint32_t vcpu_count;
} KvmiGuestInfoReply;

/* Opaque 256-bit bearer token (struct kvmi_mem_token {u64 token[4]}), kept
 * as the bytes on the wire. */
typedef struct KvmiMapToken {
        uint8_t bytes[KVMI_MAP_TOKEN_SIZE];
} KvmiMapToken;

typedef struct KvmiReply {
        uint32_t seq;
        int32_t err;                    /* 0 or -KVM_E*; the payload only when 0 */
        union {
                KvmiVersionReply version;       /* GET_VERSION */
                KvmiGuestInfoReply guest_info;  /* GET_GUEST_INFO */
                KvmiMapToken map_token;         /* GET_MAP_TOKEN */
        };                                      /* CHECK_*, CONTROL_*: no payload */
} KvmiReply;

/* Reply to 'cmd' (err < 0: just the error code, any cmd in the numbering).
 * Returns the total size or -errno. */
int kvmi_reply_encode(void *buf, size_t bufsize, const KvmiNumbering *n, KvmiCmd cmd, const KvmiReply *r);
/* Decode one whole message as the reply to 'cmd' (the caller matched the
 * seq).  A peer error is success with ret->err < 0.  0, -EBADR, -EBADE,
 * -ENOMSG, -EBADMSG, -E2BIG, -EPROTO, -EDOM, -EOPNOTSUPP, -EINVAL. */
int kvmi_reply_decode(const KvmiNumbering *n, KvmiCmd cmd, const void *msg, size_t len, KvmiReply *ret);

/* The body limit to use after GET_VERSION: the second word when it is a
 * plausible limit (v5's 4088 .. 65535), else the numbering's default. */
uint32_t kvmi_version_max_msg_size(const KvmiNumbering *n, const KvmiVersionReply *v);

/* ---- Events (the kernel/simulator encodes, kvmid decodes) ------------- */

typedef struct KvmRegs {
        uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
        uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
        uint64_t rip, rflags;
} KvmRegs;

typedef struct KvmSegment {
        uint64_t base;
        uint32_t limit;
        uint16_t selector;
        uint8_t type, present, dpl, db, s, l, g, avl, unusable;
        uint8_t padding;        /* KVM's own struct: carried through, not validated */
} KvmSegment;

typedef struct KvmDtable {
        uint64_t base;
        uint16_t limit;
        uint16_t padding[3];    /* idem */
} KvmDtable;

typedef struct KvmSregs {
        KvmSegment cs, ds, es, fs, gs, ss, tr, ldt;
        KvmDtable gdt, idt;
        uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
        uint64_t interrupt_bitmap[4];
} KvmSregs;

typedef struct KvmiMsrs {
        uint64_t sysenter_cs, sysenter_esp, sysenter_eip, efer, star, lstar, cstar, pat, shadow_gs;
} KvmiMsrs;

/* The common vCPU event (struct kvmi_event).  The v7 kernel sends UNHOOK
 * as an all-zero kvmi_event with only .event set (size 0, mode 0). */
typedef struct KvmiEvent {
        uint32_t seq;                   /* message seq: the reply must repeat it */
        uint16_t size;                  /* kvmi_event.size: 544, more from newer kernels, 0 for UNHOOK */
        uint16_t vcpu;
        KvmiEv event;
        uint8_t mode;                   /* KVMI_MODE_*; not validated (an odd value just isn't a guest request) */
        uint16_t view;
        KvmRegs regs;
        KvmSregs sregs;
        KvmiMsrs msrs;
        /* Decode only: the event-specific struct, as an offset into the
         * decoded message (header included) and its length; 0 for
         * HYPERCALL and UNHOOK, which have none. */
        size_t payload_offset, payload_len;
} KvmiEvent;

/* Writes header (id EVENT, e->seq) + kvmi_event (e->size bytes: 544, or
 * more with zero-filled unknown fields, or 0 → 544 bytes for UNHOOK) +
 * payload (must be empty for HYPERCALL and UNHOOK).  Returns the total
 * size, or -ENOMSG, -EINVAL, -EMSGSIZE, -ENOBUFS. */
int kvmi_event_encode(void *buf, size_t bufsize, const KvmiNumbering *n, const KvmiEvent *e,
                      const void *payload, size_t payload_len);
/* One whole EVENT message.  0, -EBADR, -EBADE, -EBADMSG, -ENOMSG, -EPROTO,
 * -E2BIG. */
int kvmi_event_decode(const KvmiNumbering *n, const void *msg, size_t len, KvmiEvent *ret);

/* A HYPERCALL event that is the in-guest agent's KVM_HC_XEN_HVM_OP /
 * GUEST_REQUEST_VM_EVENT: rax = 34, a0 = 24, a1 = 0 with a0/a1 = rdi/rsi in
 * 64-bit mode and ebx/ecx in 32- and 16-bit modes (where KVM also truncates
 * rax to 32 bits).  Any other mode: false. */
bool kvmi_event_is_guest_request(const KvmiEvent *e);

/* ---- Handshake (before KVMI proper; QEMU ↔ kvmid) --------------------- */

/* Byte 20 of QEMU's handshake: the KVM-VMI QEMUs that append an arch block
 * after name put their target's CPU type there; older ones sent zero there
 * as padding, which cannot be told from I386. */
#define KVMI_QEMU_CPU_TYPE_I386         0
#define KVMI_QEMU_CPU_TYPE_X86_64       1
#define KVMI_QEMU_CPU_TYPE_UNKNOWN      255

typedef struct KvmiQemu2Introspector {
        uint32_t struct_size;           /* decode: as received; encode: 96.., tail zero-filled */
        uint8_t uuid[16];
        uint8_t cpu_type;               /* KVMI_QEMU_CPU_TYPE_*, or a newer QEMU's value */
        int64_t start_time;
        char name[KVMI_HANDSHAKE_NAME_SIZE];    /* NUL-terminated, zero-padded after decode */
} KvmiQemu2Introspector;

typedef struct KvmiIntrospector2Qemu {
        uint32_t struct_size;           /* decode: as received; encode: always 24 */
        uint8_t cookie_hash[KVMI_COOKIE_HASH_SIZE];
} KvmiIntrospector2Qemu;

/* Handshake framing on a stream: 0 = need more bytes, N > 0 = the
 * struct_size of the complete structure at the front, -ERANGE if
 * struct_size < min_size or > 64 KiB (min_size: KVMI_QEMU2INTROSPECTOR_MIN_SIZE
 * or KVMI_INTROSPECTOR2QEMU_SIZE). */
int kvmi_handshake_frame_check(const void *buf, size_t len, size_t min_size);

/* Encoders return the bytes written (struct_size) or -EINVAL, -ENOBUFS.
 * Decoders return the bytes to consume (struct_size; newer peers append
 * fields, skipped) or -EBADMSG, -ERANGE, -EILSEQ.  Bytes 21..23 of
 * qemu2introspector are not judged: padding after cpu_type that a newer
 * QEMU may fill. */
int kvmi_qemu2introspector_encode(void *buf, size_t bufsize, const KvmiQemu2Introspector *h);
int kvmi_qemu2introspector_decode(const void *buf, size_t len, KvmiQemu2Introspector *ret);
int kvmi_introspector2qemu_encode(void *buf, size_t bufsize, const KvmiIntrospector2Qemu *h);
int kvmi_introspector2qemu_decode(const void *buf, size_t len, KvmiIntrospector2Qemu *ret);

/* ---- Messages for humans ---------------------------------------------- */

/* One line for a codec error (negative errno above); never NULL. */
const char *kvmi_strerror(int r);
/* "KVM_EPERM" for -1 or 1, ...; NULL if not a KVMI error code. */
const char *kvmi_kvm_error_to_string(int32_t err);
