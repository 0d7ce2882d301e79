/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* KVMI wire codec.  Every multi-byte field goes through the le*() helpers
 * below on a byte pointer, so the code is alignment- and endian-safe; each
 * decoder checks lengths up front and then reads with an unchecked cursor. */

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kvmi.h"
#include "macro.h"

/* ---- Byte cursors ----------------------------------------------------- */

typedef struct Reader {
        const uint8_t *p;
        size_t off;
        bool dirty;             /* some padding byte was nonzero */
} Reader;

typedef struct Writer {
        uint8_t *p;
        size_t off;
} Writer;

static uint16_t get_le16(const uint8_t *p) {
        uint16_t v;
        memcpy(&v, p, sizeof(v));
        return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p) {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return le64toh(v);
}

static void put_le16(uint8_t *p, uint16_t v) {
        v = htole16(v);
        memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v) {
        v = htole32(v);
        memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v) {
        v = htole64(v);
        memcpy(p, &v, sizeof(v));
}

static uint8_t rd_u8(Reader *r) {
        return r->p[r->off++];
}

static uint16_t rd_u16(Reader *r) {
        uint16_t v = get_le16(r->p + r->off);
        r->off += 2;
        return v;
}

static uint32_t rd_u32(Reader *r) {
        uint32_t v = get_le32(r->p + r->off);
        r->off += 4;
        return v;
}

static uint64_t rd_u64(Reader *r) {
        uint64_t v = get_le64(r->p + r->off);
        r->off += 8;
        return v;
}

static void rd_pad(Reader *r, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (r->p[r->off + i] != 0)
                        r->dirty = true;
        r->off += n;
}

static void wr_u8(Writer *w, uint8_t v) {
        w->p[w->off++] = v;
}

static void wr_u16(Writer *w, uint16_t v) {
        put_le16(w->p + w->off, v);
        w->off += 2;
}

static void wr_u32(Writer *w, uint32_t v) {
        put_le32(w->p + w->off, v);
        w->off += 4;
}

static void wr_u64(Writer *w, uint64_t v) {
        put_le64(w->p + w->off, v);
        w->off += 8;
}

static void wr_pad(Writer *w, size_t n) {
        memset(w->p + w->off, 0, n);
        w->off += n;
}

/* Exact-length check shared by fixed-size bodies. */
static int check_exact(size_t len, size_t want) {
        if (len < want)
                return -EBADMSG;
        if (len > want)
                return -E2BIG;
        return 0;
}

/* ---- Names ------------------------------------------------------------ */

static const char *const cmd_names[KVMI_CMD__MAX] = {
        [KVMI_CMD_EVENT_REPLY]       = "EVENT_REPLY",
        [KVMI_CMD_EVENT]             = "EVENT",
        [KVMI_CMD_GET_VERSION]       = "GET_VERSION",
        [KVMI_CMD_CHECK_COMMAND]     = "CHECK_COMMAND",
        [KVMI_CMD_CHECK_EVENT]       = "CHECK_EVENT",
        [KVMI_CMD_GET_GUEST_INFO]    = "GET_GUEST_INFO",
        [KVMI_CMD_GET_VCPU_INFO]     = "GET_VCPU_INFO",
        [KVMI_CMD_PAUSE_VCPU]        = "PAUSE_VCPU",
        [KVMI_CMD_CONTROL_VM_EVENTS] = "CONTROL_VM_EVENTS",
        [KVMI_CMD_CONTROL_EVENTS]    = "CONTROL_EVENTS",
        [KVMI_CMD_CONTROL_CR]        = "CONTROL_CR",
        [KVMI_CMD_CONTROL_MSR]       = "CONTROL_MSR",
        [KVMI_CMD_GET_REGISTERS]     = "GET_REGISTERS",
        [KVMI_CMD_SET_REGISTERS]     = "SET_REGISTERS",
        [KVMI_CMD_READ_PHYSICAL]     = "READ_PHYSICAL",
        [KVMI_CMD_WRITE_PHYSICAL]    = "WRITE_PHYSICAL",
        [KVMI_CMD_GET_PAGE_ACCESS]   = "GET_PAGE_ACCESS",
        [KVMI_CMD_SET_PAGE_ACCESS]   = "SET_PAGE_ACCESS",
        [KVMI_CMD_GET_MAP_TOKEN]     = "GET_MAP_TOKEN",
        [KVMI_CMD_GET_MAX_GFN]       = "GET_MAX_GFN",
};

static const char *const ev_names[KVMI_EV__MAX] = {
        [KVMI_EV_UNHOOK]      = "UNHOOK",
        [KVMI_EV_CR]          = "CR",
        [KVMI_EV_MSR]         = "MSR",
        [KVMI_EV_XSETBV]      = "XSETBV",
        [KVMI_EV_BREAKPOINT]  = "BREAKPOINT",
        [KVMI_EV_HYPERCALL]   = "HYPERCALL",
        [KVMI_EV_PF]          = "PF",
        [KVMI_EV_TRAP]        = "TRAP",
        [KVMI_EV_DESCRIPTOR]  = "DESCRIPTOR",
        [KVMI_EV_CREATE_VCPU] = "CREATE_VCPU",
        [KVMI_EV_PAUSE_VCPU]  = "PAUSE_VCPU",
        [KVMI_EV_SINGLESTEP]  = "SINGLESTEP",
};

const char *kvmi_cmd_to_string(KvmiCmd cmd) {
        if ((unsigned) cmd >= KVMI_CMD__MAX)
                return NULL;
        return cmd_names[cmd];
}

const char *kvmi_ev_to_string(KvmiEv ev) {
        if ((unsigned) ev >= KVMI_EV__MAX)
                return NULL;
        return ev_names[ev];
}

/* ---- Numbering tables ------------------------------------------------- */

#define CMD(i, mn, mx, v) { .present = true, .id = (i), .min_size = (mn), .max_size = (mx), .vcpu = (v) }
#define EV(i, v) { .present = true, .id = (i), .vm = (v) }
#define VAR KVMI_SIZE_VARIABLE

/* Request body sizes: kvmi_vcpu_hdr (8) where vCPU-scoped, then the
 * command struct from libkvmi's v7 uapi headers. */
const KvmiNumbering kvmi_numbering_v7 = {
        .name = "v7",
        .max_msg_size = KVMI_MAX_MSG_SIZE_V7,
        .err_unsupported = -KVM_EOPNOTSUPP,
        .cmd = {
                [KVMI_CMD_EVENT_REPLY]       = CMD(0, 16, VAR, true),   /* + event-specific reply */
                [KVMI_CMD_EVENT]             = CMD(1, KVMI_EVENT_SIZE, VAR, false),
                [KVMI_CMD_GET_VERSION]       = CMD(2, 0, 0, false),
                [KVMI_CMD_CHECK_COMMAND]     = CMD(3, 8, 8, false),
                [KVMI_CMD_CHECK_EVENT]       = CMD(4, 8, 8, false),
                [KVMI_CMD_GET_GUEST_INFO]    = CMD(5, 0, 0, false),
                [KVMI_CMD_GET_VCPU_INFO]     = CMD(6, 8, 8, true),
                [KVMI_CMD_PAUSE_VCPU]        = CMD(7, 16, 16, true),
                [KVMI_CMD_CONTROL_VM_EVENTS] = CMD(8, 8, 8, false),
                [KVMI_CMD_CONTROL_EVENTS]    = CMD(9, 16, 16, true),
                [KVMI_CMD_CONTROL_CR]        = CMD(10, 16, 16, true),
                [KVMI_CMD_CONTROL_MSR]       = CMD(11, 16, 16, true),
                [KVMI_CMD_GET_REGISTERS]     = CMD(13, 16, VAR, true),  /* + u32 msrs_idx[nmsrs] */
                [KVMI_CMD_SET_REGISTERS]     = CMD(14, 8 + 144, 8 + 144, true),
                [KVMI_CMD_READ_PHYSICAL]     = CMD(17, 16, 16, false),
                [KVMI_CMD_WRITE_PHYSICAL]    = CMD(18, 16, VAR, false), /* + data */
                [KVMI_CMD_GET_PAGE_ACCESS]   = CMD(20, 8, VAR, false),  /* + u64 gpa[count] */
                [KVMI_CMD_SET_PAGE_ACCESS]   = CMD(21, 8, VAR, false),  /* + entries[count] */
                [KVMI_CMD_GET_MAP_TOKEN]     = CMD(22, 0, 0, false),
                [KVMI_CMD_GET_MAX_GFN]       = CMD(29, 0, 0, false),
        },
        .ev = {
                [KVMI_EV_UNHOOK]      = EV(0, true),
                [KVMI_EV_CR]          = EV(1, false),
                [KVMI_EV_MSR]         = EV(2, false),
                [KVMI_EV_XSETBV]      = EV(3, false),
                [KVMI_EV_BREAKPOINT]  = EV(4, false),
                [KVMI_EV_HYPERCALL]   = EV(5, false),
                [KVMI_EV_PF]          = EV(6, false),
                [KVMI_EV_TRAP]        = EV(7, false),
                [KVMI_EV_DESCRIPTOR]  = EV(8, false),
                [KVMI_EV_CREATE_VCPU] = EV(9, true),
                [KVMI_EV_PAUSE_VCPU]  = EV(10, false),
                [KVMI_EV_SINGLESTEP]  = EV(11, false),
        },
};

#undef CMD
#undef EV
#undef VAR

static const KvmiNumbering *const numberings[] = {
        &kvmi_numbering_v7,
};

const KvmiNumbering *kvmi_numbering_by_name(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(numberings); i++)
                if (streq(numberings[i]->name, name))
                        return numberings[i];
        return NULL;
}

int kvmi_numbering_validate(const KvmiNumbering *n) {
        if (!n || !n->name || n->max_msg_size < KVMI_EVENT_SIZE)
                return -EINVAL;
        /* Abstract → wire must be injective or id → abstract is ambiguous. */
        for (size_t i = 0; i < KVMI_CMD__MAX; i++) {
                if (!n->cmd[i].present)
                        continue;
                if (n->cmd[i].min_size > n->cmd[i].max_size)
                        return -EINVAL;
                for (size_t j = i + 1; j < KVMI_CMD__MAX; j++)
                        if (n->cmd[j].present && n->cmd[j].id == n->cmd[i].id)
                                return -EINVAL;
        }
        for (size_t i = 0; i < KVMI_EV__MAX; i++) {
                if (!n->ev[i].present)
                        continue;
                for (size_t j = i + 1; j < KVMI_EV__MAX; j++)
                        if (n->ev[j].present && n->ev[j].id == n->ev[i].id)
                                return -EINVAL;
        }
        return 0;
}

int kvmi_numbering_cmd_to_id(const KvmiNumbering *n, KvmiCmd cmd, uint16_t *ret_id) {
        if (!n || (unsigned) cmd >= KVMI_CMD__MAX)
                return -EINVAL;
        if (!n->cmd[cmd].present)
                return -ENOMSG;
        if (ret_id)
                *ret_id = n->cmd[cmd].id;
        return 0;
}

int kvmi_numbering_cmd_from_id(const KvmiNumbering *n, uint16_t id, KvmiCmd *ret_cmd) {
        if (!n)
                return -EINVAL;
        for (unsigned i = 0; i < KVMI_CMD__MAX; i++)
                if (n->cmd[i].present && n->cmd[i].id == id) {
                        if (ret_cmd)
                                *ret_cmd = (KvmiCmd) i;
                        return 0;
                }
        return -ENOMSG;
}

int kvmi_numbering_ev_to_id(const KvmiNumbering *n, KvmiEv ev, uint8_t *ret_id) {
        if (!n || (unsigned) ev >= KVMI_EV__MAX)
                return -EINVAL;
        if (!n->ev[ev].present)
                return -ENOMSG;
        if (ret_id)
                *ret_id = n->ev[ev].id;
        return 0;
}

int kvmi_numbering_ev_from_id(const KvmiNumbering *n, uint16_t id, KvmiEv *ret_ev) {
        if (!n)
                return -EINVAL;
        for (unsigned i = 0; i < KVMI_EV__MAX; i++)
                if (n->ev[i].present && n->ev[i].id == id) {
                        if (ret_ev)
                                *ret_ev = (KvmiEv) i;
                        return 0;
                }
        return -ENOMSG;
}

int kvmi_numbering_check_size(const KvmiNumbering *n, KvmiCmd cmd, size_t body_len) {
        int r;

        r = kvmi_numbering_cmd_to_id(n, cmd, NULL);
        if (r < 0)
                return r;
        if (body_len < n->cmd[cmd].min_size)
                return -EBADMSG;
        if (n->cmd[cmd].max_size != KVMI_SIZE_VARIABLE && body_len > n->cmd[cmd].max_size)
                return -E2BIG;
        return 0;
}

/* ---- Header, framing, raw messages ------------------------------------ */

int kvmi_msg_hdr_encode(void *buf, size_t bufsize, const KvmiMsgHdr *h) {
        if (!buf || !h)
                return -EINVAL;
        if (bufsize < KVMI_MSG_HDR_SIZE)
                return -ENOBUFS;

        Writer w = { .p = buf };
        wr_u16(&w, h->id);
        wr_u16(&w, h->size);
        wr_u32(&w, h->seq);
        return KVMI_MSG_HDR_SIZE;
}

int kvmi_msg_hdr_decode(const void *buf, size_t len, KvmiMsgHdr *ret) {
        if (!buf || len < KVMI_MSG_HDR_SIZE)
                return -EBADMSG;

        Reader r = { .p = buf };
        KvmiMsgHdr h = {
                .id = rd_u16(&r),
                .size = rd_u16(&r),
                .seq = rd_u32(&r),
        };
        if (ret)
                *ret = h;
        return 0;
}

int kvmi_frame_check(const void *buf, size_t len, size_t max_msg_size, KvmiMsgHdr *ret_hdr) {
        KvmiMsgHdr h;

        if (len < KVMI_MSG_HDR_SIZE)
                return 0;
        if (kvmi_msg_hdr_decode(buf, len, &h) < 0)
                return -EINVAL;
        /* Fail on the header alone: never wait for a body we won't take. */
        if (h.size > max_msg_size)
                return -EMSGSIZE;
        if (len < KVMI_MSG_HDR_SIZE + (size_t) h.size)
                return 0;
        if (ret_hdr)
                *ret_hdr = h;
        return KVMI_MSG_HDR_SIZE + h.size;
}

int kvmi_msg_encode(void *buf, size_t bufsize, uint16_t id, uint32_t seq, const void *body, size_t body_len) {
        if (!buf || (body_len > 0 && !body))
                return -EINVAL;
        if (body_len > KVMI_MAX_MSG_SIZE_LIMIT)
                return -EMSGSIZE;
        if (bufsize < KVMI_MSG_HDR_SIZE + body_len)
                return -ENOBUFS;

        uint8_t *p = buf;
        if (body_len > 0)
                memmove(p + KVMI_MSG_HDR_SIZE, body, body_len);
        (void) kvmi_msg_hdr_encode(p, bufsize, &(KvmiMsgHdr) {
                .id = id,
                .size = (uint16_t) body_len,
                .seq = seq,
        });
        return (int) (KVMI_MSG_HDR_SIZE + body_len);
}

/* A whole message: header consistent with the bytes given. */
static int msg_open(const void *msg, size_t len, KvmiMsgHdr *ret_hdr, const uint8_t **ret_body) {
        KvmiMsgHdr h;
        int r;

        r = kvmi_msg_hdr_decode(msg, len, &h);
        if (r < 0)
                return r;
        if (len != KVMI_MSG_HDR_SIZE + (size_t) h.size)
                return -EBADR;
        *ret_hdr = h;
        *ret_body = (const uint8_t *) msg + KVMI_MSG_HDR_SIZE;
        return 0;
}

int kvmi_error_code_encode(void *buf, size_t bufsize, int32_t err) {
        if (!buf)
                return -EINVAL;
        if (bufsize < KVMI_ERROR_CODE_SIZE)
                return -ENOBUFS;

        Writer w = { .p = buf };
        wr_u32(&w, (uint32_t) err);
        wr_pad(&w, 4);
        return KVMI_ERROR_CODE_SIZE;
}

int kvmi_error_code_decode(const void *buf, size_t len, int32_t *ret_err) {
        if (!buf || len < KVMI_ERROR_CODE_SIZE)
                return -EBADMSG;

        Reader r = { .p = buf };
        int32_t err = (int32_t) rd_u32(&r);
        rd_pad(&r, 4);
        if (r.dirty)
                return -EPROTO;
        if (ret_err)
                *ret_err = err;
        return 0;
}

int kvmi_vcpu_hdr_encode(void *buf, size_t bufsize, uint16_t vcpu) {
        if (!buf)
                return -EINVAL;
        if (bufsize < KVMI_VCPU_HDR_SIZE)
                return -ENOBUFS;

        Writer w = { .p = buf };
        wr_u16(&w, vcpu);
        wr_pad(&w, 6);
        return KVMI_VCPU_HDR_SIZE;
}

int kvmi_vcpu_hdr_decode(const void *buf, size_t len, uint16_t *ret_vcpu) {
        if (!buf || len < KVMI_VCPU_HDR_SIZE)
                return -EBADMSG;

        Reader r = { .p = buf };
        uint16_t vcpu = rd_u16(&r);
        rd_pad(&r, 6);
        if (r.dirty)
                return -EPROTO;
        if (ret_vcpu)
                *ret_vcpu = vcpu;
        return 0;
}

int kvmi_error_reply_encode(void *buf, size_t bufsize, uint16_t id, uint32_t seq, int32_t err) {
        uint8_t body[KVMI_ERROR_CODE_SIZE];

        if (err >= 0)
                return -EINVAL;
        (void) kvmi_error_code_encode(body, sizeof(body), err);
        return kvmi_msg_encode(buf, bufsize, id, seq, body, sizeof(body));
}

/* ---- Commands --------------------------------------------------------- */

static bool event_has_no_payload(KvmiEv ev) {
        return ev == KVMI_EV_HYPERCALL || ev == KVMI_EV_UNHOOK;
}

int kvmi_command_encode(void *buf, size_t bufsize, const KvmiNumbering *n, const KvmiCommand *c) {
        uint8_t body[KVMI_EVENT_REPLY_SIZE] = {};
        Writer w = { .p = body };
        uint16_t id;
        uint8_t ev;
        int r;

        if (!c)
                return -EINVAL;
        r = kvmi_numbering_cmd_to_id(n, c->cmd, &id);
        if (r < 0)
                return r;

        switch (c->cmd) {
        case KVMI_CMD_GET_VERSION:
        case KVMI_CMD_GET_GUEST_INFO:
        case KVMI_CMD_GET_MAP_TOKEN:
                break;

        case KVMI_CMD_CHECK_COMMAND:
        case KVMI_CMD_CHECK_EVENT:
                wr_u16(&w, c->check.id);
                wr_pad(&w, 6);
                break;

        case KVMI_CMD_CONTROL_VM_EVENTS:
        case KVMI_CMD_CONTROL_EVENTS:
                r = kvmi_numbering_ev_to_id(n, c->control.event, &ev);
                if (r < 0)
                        return r;
                if (c->cmd == KVMI_CMD_CONTROL_EVENTS) {
                        wr_u16(&w, c->vcpu);
                        wr_pad(&w, 6);
                }
                wr_u16(&w, ev);
                wr_u8(&w, c->control.enable ? 1 : 0);
                wr_pad(&w, 5);
                break;

        case KVMI_CMD_EVENT_REPLY:
                if (c->event_reply.action > KVMI_EVENT_ACTION_CRASH)
                        return -EDOM;
                r = kvmi_numbering_ev_to_id(n, c->event_reply.event, &ev);
                if (r < 0)
                        return r;
                wr_u16(&w, c->vcpu);
                wr_pad(&w, 6);
                wr_u8(&w, c->event_reply.action);
                wr_u8(&w, ev);
                wr_pad(&w, 6);
                break;

        default:
                return -EOPNOTSUPP;
        }

        return kvmi_msg_encode(buf, bufsize, id, c->seq, body, w.off);
}

int kvmi_command_decode(const KvmiNumbering *n, const void *msg, size_t len, KvmiCommand *ret) {
        KvmiCommand c = {};
        const uint8_t *body;
        KvmiMsgHdr h;
        uint16_t ev;
        uint8_t enable;
        int r;

        if (!n)
                return -EINVAL;
        r = msg_open(msg, len, &h, &body);
        if (r < 0)
                return r;
        r = kvmi_numbering_cmd_from_id(n, h.id, &c.cmd);
        if (r < 0)
                return r;
        r = kvmi_numbering_check_size(n, c.cmd, h.size);
        if (r < 0)
                return r;

        c.seq = h.seq;
        Reader rd = { .p = body };

        switch (c.cmd) {
        case KVMI_CMD_GET_VERSION:
        case KVMI_CMD_GET_GUEST_INFO:
        case KVMI_CMD_GET_MAP_TOKEN:
                break;

        case KVMI_CMD_CHECK_COMMAND:
        case KVMI_CMD_CHECK_EVENT:
                c.check.id = rd_u16(&rd);
                rd_pad(&rd, 6);
                if (rd.dirty)
                        return -EPROTO;
                break;

        case KVMI_CMD_CONTROL_VM_EVENTS:
        case KVMI_CMD_CONTROL_EVENTS:
                if (c.cmd == KVMI_CMD_CONTROL_EVENTS) {
                        c.vcpu = rd_u16(&rd);
                        rd_pad(&rd, 6);
                }
                ev = rd_u16(&rd);
                enable = rd_u8(&rd);
                rd_pad(&rd, 5);
                if (rd.dirty)
                        return -EPROTO;
                if (enable > 1)
                        return -EDOM;
                r = kvmi_numbering_ev_from_id(n, ev, &c.control.event);
                if (r < 0)
                        return r;
                c.control.enable = enable;
                break;

        case KVMI_CMD_EVENT_REPLY:
                /* Only replies without an event-specific part are decoded. */
                if (h.size > KVMI_EVENT_REPLY_SIZE)
                        return -E2BIG;
                c.vcpu = rd_u16(&rd);
                rd_pad(&rd, 6);
                c.event_reply.action = rd_u8(&rd);
                ev = rd_u8(&rd);
                rd_pad(&rd, 6);
                if (rd.dirty)
                        return -EPROTO;
                if (c.event_reply.action > KVMI_EVENT_ACTION_CRASH)
                        return -EDOM;
                r = kvmi_numbering_ev_from_id(n, ev, &c.event_reply.event);
                if (r < 0)
                        return r;
                break;

        default:
                return -EOPNOTSUPP;
        }

        if (ret)
                *ret = c;
        return 0;
}

int kvmi_encode_get_version(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq) {
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_GET_VERSION,
                .seq = seq,
        });
}

int kvmi_encode_check_command(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq, KvmiCmd which) {
        uint16_t id;
        int r;

        r = kvmi_numbering_cmd_to_id(n, which, &id);
        if (r < 0)
                return r;
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_CHECK_COMMAND,
                .seq = seq,
                .check.id = id,
        });
}

int kvmi_encode_check_event(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq, KvmiEv which) {
        uint8_t id;
        int r;

        r = kvmi_numbering_ev_to_id(n, which, &id);
        if (r < 0)
                return r;
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_CHECK_EVENT,
                .seq = seq,
                .check.id = id,
        });
}

int kvmi_encode_get_guest_info(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq) {
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_GET_GUEST_INFO,
                .seq = seq,
        });
}

int kvmi_encode_control_vm_events(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq,
                                  KvmiEv event, bool enable) {
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_CONTROL_VM_EVENTS,
                .seq = seq,
                .control = { .event = event, .enable = enable },
        });
}

int kvmi_encode_control_events(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq,
                               uint16_t vcpu, KvmiEv event, bool enable) {
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_CONTROL_EVENTS,
                .seq = seq,
                .vcpu = vcpu,
                .control = { .event = event, .enable = enable },
        });
}

int kvmi_encode_get_map_token(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq) {
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_GET_MAP_TOKEN,
                .seq = seq,
        });
}

int kvmi_encode_event_reply(void *buf, size_t bufsize, const KvmiNumbering *n, uint32_t seq,
                            uint16_t vcpu, KvmiEv event, uint8_t action) {
        return kvmi_command_encode(buf, bufsize, n, &(KvmiCommand) {
                .cmd = KVMI_CMD_EVENT_REPLY,
                .seq = seq,
                .vcpu = vcpu,
                .event_reply = { .action = action, .event = event },
        });
}

/* ---- Replies ---------------------------------------------------------- */

/* EVENT and EVENT_REPLY are never answered. */
static bool cmd_has_reply(KvmiCmd cmd) {
        return cmd != KVMI_CMD_EVENT && cmd != KVMI_CMD_EVENT_REPLY;
}

int kvmi_reply_encode(void *buf, size_t bufsize, const KvmiNumbering *n, KvmiCmd cmd, const KvmiReply *r) {
        uint8_t body[KVMI_ERROR_CODE_SIZE + KVMI_MAP_TOKEN_SIZE];
        Writer w = { .p = body };
        uint16_t id;
        int k;

        if (!r || r->err > 0)
                return -EINVAL;
        k = kvmi_numbering_cmd_to_id(n, cmd, &id);
        if (k < 0)
                return k;
        if (!cmd_has_reply(cmd))
                return -EINVAL;

        wr_u32(&w, (uint32_t) r->err);
        wr_pad(&w, 4);

        /* The kernel sends no payload with an error. */
        if (r->err == 0)
                switch (cmd) {
                case KVMI_CMD_GET_VERSION:
                        wr_u32(&w, r->version.version);
                        wr_u32(&w, r->version.max_msg_size);
                        if (r->version.has_features) {
                                wr_u8(&w, r->version.spp);
                                wr_u8(&w, r->version.vmfunc);
                                wr_u8(&w, r->version.eptp);
                                wr_u8(&w, r->version.ve);
                                wr_pad(&w, 4);
                        }
                        break;

                case KVMI_CMD_GET_GUEST_INFO:
                        wr_u32(&w, r->guest_info.vcpu_count);
                        wr_pad(&w, 12);
                        break;

                case KVMI_CMD_GET_MAP_TOKEN:
                        memcpy(w.p + w.off, r->map_token.bytes, KVMI_MAP_TOKEN_SIZE);
                        w.off += KVMI_MAP_TOKEN_SIZE;
                        break;

                case KVMI_CMD_CHECK_COMMAND:
                case KVMI_CMD_CHECK_EVENT:
                case KVMI_CMD_CONTROL_VM_EVENTS:
                case KVMI_CMD_CONTROL_EVENTS:
                        break;

                default:
                        return -EOPNOTSUPP;
                }

        return kvmi_msg_encode(buf, bufsize, id, r->seq, body, w.off);
}

int kvmi_reply_decode(const KvmiNumbering *n, KvmiCmd cmd, const void *msg, size_t len, KvmiReply *ret) {
        KvmiReply rep = {};
        const uint8_t *body;
        KvmiMsgHdr h;
        uint16_t id;
        size_t plen;
        int r;

        r = kvmi_numbering_cmd_to_id(n, cmd, &id);
        if (r < 0)
                return r;
        if (!cmd_has_reply(cmd))
                return -EINVAL;
        r = msg_open(msg, len, &h, &body);
        if (r < 0)
                return r;
        if (h.id != id)
                return -EBADE;

        r = kvmi_error_code_decode(body, h.size, &rep.err);
        if (r < 0)
                return r;
        if (rep.err > 0)
                return -EDOM;
        rep.seq = h.seq;

        plen = h.size - KVMI_ERROR_CODE_SIZE;
        Reader rd = { .p = body + KVMI_ERROR_CODE_SIZE };

        if (rep.err < 0) {
                if (plen > 0)
                        return -E2BIG;
                if (ret)
                        *ret = rep;
                return 0;
        }

        switch (cmd) {
        case KVMI_CMD_GET_VERSION:
                /* v7-era peers send 8 bytes or 8 + kvmi_features. */
                if (plen != 8) {
                        r = check_exact(plen, 16);
                        if (r < 0)
                                return r;
                }
                rep.version.version = rd_u32(&rd);
                rep.version.max_msg_size = rd_u32(&rd);
                if (plen == 16) {
                        rep.version.has_features = true;
                        rep.version.spp = rd_u8(&rd);
                        rep.version.vmfunc = rd_u8(&rd);
                        rep.version.eptp = rd_u8(&rd);
                        rep.version.ve = rd_u8(&rd);
                        rd_pad(&rd, 4);
                }
                break;

        case KVMI_CMD_GET_GUEST_INFO:
                r = check_exact(plen, 16);
                if (r < 0)
                        return r;
                rep.guest_info.vcpu_count = rd_u32(&rd);
                rd_pad(&rd, 12);
                break;

        case KVMI_CMD_GET_MAP_TOKEN:
                r = check_exact(plen, KVMI_MAP_TOKEN_SIZE);
                if (r < 0)
                        return r;
                memcpy(rep.map_token.bytes, rd.p, KVMI_MAP_TOKEN_SIZE);
                break;

        case KVMI_CMD_CHECK_COMMAND:
        case KVMI_CMD_CHECK_EVENT:
        case KVMI_CMD_CONTROL_VM_EVENTS:
        case KVMI_CMD_CONTROL_EVENTS:
                if (plen > 0)
                        return -E2BIG;
                break;

        default:
                return -EOPNOTSUPP;
        }
        if (rd.dirty)
                return -EPROTO;

        if (ret)
                *ret = rep;
        return 0;
}

uint32_t kvmi_version_max_msg_size(const KvmiNumbering *n, const KvmiVersionReply *v) {
        uint32_t fallback = n ? n->max_msg_size : KVMI_MAX_MSG_SIZE_V7;

        /* libkvmi's v7 header has padding (0) there; anything below v5's
         * limit could not even carry an event. */
        if (!v || v->max_msg_size < KVMI_MAX_MSG_SIZE_V5 || v->max_msg_size > KVMI_MAX_MSG_SIZE_LIMIT)
                return fallback;
        return v->max_msg_size;
}

/* ---- Events ----------------------------------------------------------- */

static void wr_segment(Writer *w, const KvmSegment *s) {
        wr_u64(w, s->base);
        wr_u32(w, s->limit);
        wr_u16(w, s->selector);
        wr_u8(w, s->type);
        wr_u8(w, s->present);
        wr_u8(w, s->dpl);
        wr_u8(w, s->db);
        wr_u8(w, s->s);
        wr_u8(w, s->l);
        wr_u8(w, s->g);
        wr_u8(w, s->avl);
        wr_u8(w, s->unusable);
        wr_u8(w, s->padding);
}

static void rd_segment(Reader *r, KvmSegment *s) {
        s->base = rd_u64(r);
        s->limit = rd_u32(r);
        s->selector = rd_u16(r);
        s->type = rd_u8(r);
        s->present = rd_u8(r);
        s->dpl = rd_u8(r);
        s->db = rd_u8(r);
        s->s = rd_u8(r);
        s->l = rd_u8(r);
        s->g = rd_u8(r);
        s->avl = rd_u8(r);
        s->unusable = rd_u8(r);
        s->padding = rd_u8(r);
}

static void wr_dtable(Writer *w, const KvmDtable *d) {
        wr_u64(w, d->base);
        wr_u16(w, d->limit);
        for (size_t i = 0; i < ELEMENTSOF(d->padding); i++)
                wr_u16(w, d->padding[i]);
}

static void rd_dtable(Reader *r, KvmDtable *d) {
        d->base = rd_u64(r);
        d->limit = rd_u16(r);
        for (size_t i = 0; i < ELEMENTSOF(d->padding); i++)
                d->padding[i] = rd_u16(r);
}

/* struct kvm_regs, kvm_sregs and the MSR block as flat u64 lists, in wire order. */
#define REGS_FIELDS(X, r) \
        X(r.rax) X(r.rbx) X(r.rcx) X(r.rdx) X(r.rsi) X(r.rdi) X(r.rsp) X(r.rbp) \
        X(r.r8) X(r.r9) X(r.r10) X(r.r11) X(r.r12) X(r.r13) X(r.r14) X(r.r15) \
        X(r.rip) X(r.rflags)
#define SREGS_TAIL_FIELDS(X, s) \
        X(s.cr0) X(s.cr2) X(s.cr3) X(s.cr4) X(s.cr8) X(s.efer) X(s.apic_base) \
        X(s.interrupt_bitmap[0]) X(s.interrupt_bitmap[1]) \
        X(s.interrupt_bitmap[2]) X(s.interrupt_bitmap[3])
#define MSRS_FIELDS(X, m) \
        X(m.sysenter_cs) X(m.sysenter_esp) X(m.sysenter_eip) X(m.efer) X(m.star) \
        X(m.lstar) X(m.cstar) X(m.pat) X(m.shadow_gs)

static void wr_event_arch(Writer *w, const KvmiEvent *e) {
#define W(f) wr_u64(w, e->f);
        wr_u8(w, e->mode);
        wr_pad(w, 1);
        wr_u16(w, e->view);
        wr_pad(w, 4);
        REGS_FIELDS(W, regs)
        wr_segment(w, &e->sregs.cs);
        wr_segment(w, &e->sregs.ds);
        wr_segment(w, &e->sregs.es);
        wr_segment(w, &e->sregs.fs);
        wr_segment(w, &e->sregs.gs);
        wr_segment(w, &e->sregs.ss);
        wr_segment(w, &e->sregs.tr);
        wr_segment(w, &e->sregs.ldt);
        wr_dtable(w, &e->sregs.gdt);
        wr_dtable(w, &e->sregs.idt);
        SREGS_TAIL_FIELDS(W, sregs)
        MSRS_FIELDS(W, msrs)
#undef W
}

static void rd_event_arch(Reader *r, KvmiEvent *e) {
#define R(f) e->f = rd_u64(r);
        e->mode = rd_u8(r);
        rd_pad(r, 1);
        e->view = rd_u16(r);
        rd_pad(r, 4);
        REGS_FIELDS(R, regs)
        rd_segment(r, &e->sregs.cs);
        rd_segment(r, &e->sregs.ds);
        rd_segment(r, &e->sregs.es);
        rd_segment(r, &e->sregs.fs);
        rd_segment(r, &e->sregs.gs);
        rd_segment(r, &e->sregs.ss);
        rd_segment(r, &e->sregs.tr);
        rd_segment(r, &e->sregs.ldt);
        rd_dtable(r, &e->sregs.gdt);
        rd_dtable(r, &e->sregs.idt);
        SREGS_TAIL_FIELDS(R, sregs)
        MSRS_FIELDS(R, msrs)
#undef R
}

int kvmi_event_encode(void *buf, size_t bufsize, const KvmiNumbering *n, const KvmiEvent *e,
                      const void *payload, size_t payload_len) {
        size_t common, body_len;
        uint16_t id;
        uint8_t ev;
        int r;

        if (!buf || !e || (payload_len > 0 && !payload))
                return -EINVAL;
        r = kvmi_numbering_cmd_to_id(n, KVMI_CMD_EVENT, &id);
        if (r < 0)
                return r;
        r = kvmi_numbering_ev_to_id(n, e->event, &ev);
        if (r < 0)
                return r;

        common = e->size;
        if (common == 0 && e->event == KVMI_EV_UNHOOK)
                common = KVMI_EVENT_SIZE;       /* the v7 kernel's zeroed UNHOOK */
        else if (common < KVMI_EVENT_SIZE)
                return -EINVAL;
        if (payload_len > 0 && event_has_no_payload(e->event))
                return -EINVAL;

        /* Compared before adding: a huge payload_len must not wrap. */
        if (payload_len > KVMI_MAX_MSG_SIZE_LIMIT - common)
                return -EMSGSIZE;
        body_len = common + payload_len;
        if (bufsize < KVMI_MSG_HDR_SIZE + body_len)
                return -ENOBUFS;

        Writer w = { .p = (uint8_t *) buf + KVMI_MSG_HDR_SIZE };
        if (payload_len > 0)
                memmove(w.p + common, payload, payload_len);
        wr_u16(&w, e->size);
        wr_u16(&w, e->vcpu);
        wr_u8(&w, ev);
        wr_pad(&w, 3);
        wr_event_arch(&w, e);
        wr_pad(&w, common - KVMI_EVENT_SIZE);   /* fields of a newer kernel: zero */

        return kvmi_msg_encode(buf, bufsize, id, e->seq, w.p, body_len);
}

int kvmi_event_decode(const KvmiNumbering *n, const void *msg, size_t len, KvmiEvent *ret) {
        KvmiEvent e = {};
        const uint8_t *body;
        KvmiMsgHdr h;
        size_t common;
        uint16_t id;
        uint8_t ev;
        int r;

        r = kvmi_numbering_cmd_to_id(n, KVMI_CMD_EVENT, &id);
        if (r < 0)
                return r;
        r = msg_open(msg, len, &h, &body);
        if (r < 0)
                return r;
        if (h.id != id)
                return -EBADE;
        if (h.size < KVMI_EVENT_SIZE)
                return -EBADMSG;

        Reader rd = { .p = body };
        e.seq = h.seq;
        e.size = rd_u16(&rd);
        e.vcpu = rd_u16(&rd);
        ev = rd_u8(&rd);
        rd_pad(&rd, 3);
        rd_event_arch(&rd, &e);

        r = kvmi_numbering_ev_from_id(n, ev, &e.event);
        if (r < 0)
                return r;

        common = e.size;
        if (common == 0 && e.event == KVMI_EV_UNHOOK)
                common = KVMI_EVENT_SIZE;
        /* Larger is a newer kernel's longer struct; the payload follows it. */
        if (common < KVMI_EVENT_SIZE || common > h.size)
                return -EBADR;
        if (rd.dirty)
                return -EPROTO;

        e.payload_offset = KVMI_MSG_HDR_SIZE + common;
        e.payload_len = h.size - common;
        if (e.payload_len > 0 && event_has_no_payload(e.event))
                return -E2BIG;

        if (ret)
                *ret = e;
        return 0;
}

bool kvmi_event_is_guest_request(const KvmiEvent *e) {
        if (!e || e->event != KVMI_EV_HYPERCALL)
                return false;

        switch (e->mode) {
        case KVMI_MODE_64:
                return e->regs.rax == KVM_HC_XEN_HVM_OP &&
                       e->regs.rdi == KVM_HC_XEN_HVM_OP_GUEST_REQUEST_VM_EVENT &&
                       e->regs.rsi == 0;
        case KVMI_MODE_32:
        case KVMI_MODE_16:
                /* KVM truncates nr and the arguments outside 64-bit mode. */
                return (uint32_t) e->regs.rax == KVM_HC_XEN_HVM_OP &&
                       (uint32_t) e->regs.rbx == KVM_HC_XEN_HVM_OP_GUEST_REQUEST_VM_EVENT &&
                       (uint32_t) e->regs.rcx == 0;
        default:
                return false;
        }
}

/* ---- Handshake -------------------------------------------------------- */

int kvmi_handshake_frame_check(const void *buf, size_t len, size_t min_size) {
        uint32_t size;

        if (min_size < sizeof(uint32_t) || min_size > KVMI_HANDSHAKE_MAX_SIZE)
                return -EINVAL;
        if (!buf || len < sizeof(uint32_t))
                return 0;
        size = get_le32(buf);
        if (size < min_size || size > KVMI_HANDSHAKE_MAX_SIZE)
                return -ERANGE;
        if (len < size)
                return 0;
        return (int) size;
}

int kvmi_qemu2introspector_encode(void *buf, size_t bufsize, const KvmiQemu2Introspector *h) {
        size_t name_len;

        if (!buf || !h)
                return -EINVAL;
        if (h->struct_size < KVMI_QEMU2INTROSPECTOR_MIN_SIZE || h->struct_size > KVMI_HANDSHAKE_MAX_SIZE)
                return -EINVAL;
        name_len = strnlen(h->name, sizeof(h->name));
        if (name_len >= sizeof(h->name))
                return -EINVAL;
        if (name_len > h->struct_size - KVMI_QEMU2INTROSPECTOR_MIN_SIZE)
                name_len = h->struct_size - KVMI_QEMU2INTROSPECTOR_MIN_SIZE;   /* an older, shorter struct */
        if (bufsize < h->struct_size)
                return -ENOBUFS;

        Writer w = { .p = buf };
        wr_u32(&w, h->struct_size);
        memcpy(w.p + w.off, h->uuid, sizeof(h->uuid));
        w.off += sizeof(h->uuid);
        wr_u8(&w, h->cpu_type);
        wr_pad(&w, 3);
        wr_u64(&w, (uint64_t) h->start_time);
        memcpy(w.p + w.off, h->name, name_len);
        w.off += name_len;
        wr_pad(&w, h->struct_size - w.off);     /* rest of name + fields we don't know */
        return (int) h->struct_size;
}

int kvmi_qemu2introspector_decode(const void *buf, size_t len, KvmiQemu2Introspector *ret) {
        KvmiQemu2Introspector h = {};
        const uint8_t *name;
        size_t name_len, avail;

        if (!buf || len < sizeof(uint32_t))
                return -EBADMSG;

        Reader rd = { .p = buf };
        h.struct_size = rd_u32(&rd);
        if (h.struct_size < KVMI_QEMU2INTROSPECTOR_MIN_SIZE || h.struct_size > KVMI_HANDSHAKE_MAX_SIZE)
                return -ERANGE;
        if (len < h.struct_size)
                return -EBADMSG;

        memcpy(h.uuid, rd.p + rd.off, sizeof(h.uuid));
        rd.off += sizeof(h.uuid);
        h.cpu_type = rd_u8(&rd);
        rd.off += 3;    /* padding[3], but a newer QEMU may use it: not judged */
        h.start_time = (int64_t) rd_u64(&rd);
        name = rd.p + rd.off;

        /* Bytes after the NUL are not ours to judge; zero them for callers.
         * A struct shorter than v7's (libkvmi accepts one that ends anywhere
         * after start_time) carries what fits of the name, NUL or not. */
        avail = MIN((size_t) h.struct_size - KVMI_QEMU2INTROSPECTOR_MIN_SIZE, (size_t) KVMI_HANDSHAKE_NAME_SIZE);
        name_len = strnlen((const char *) name, avail);
        if (name_len >= KVMI_HANDSHAKE_NAME_SIZE)
                return -EILSEQ;
        memcpy(h.name, name, name_len);

        if (ret)
                *ret = h;
        return (int) h.struct_size;
}

int kvmi_introspector2qemu_encode(void *buf, size_t bufsize, const KvmiIntrospector2Qemu *h) {
        if (!buf || !h)
                return -EINVAL;
        if (bufsize < KVMI_INTROSPECTOR2QEMU_SIZE)
                return -ENOBUFS;

        Writer w = { .p = buf };
        wr_u32(&w, KVMI_INTROSPECTOR2QEMU_SIZE);
        memcpy(w.p + w.off, h->cookie_hash, sizeof(h->cookie_hash));
        return KVMI_INTROSPECTOR2QEMU_SIZE;
}

int kvmi_introspector2qemu_decode(const void *buf, size_t len, KvmiIntrospector2Qemu *ret) {
        KvmiIntrospector2Qemu h = {};

        if (!buf || len < sizeof(uint32_t))
                return -EBADMSG;

        h.struct_size = get_le32(buf);
        if (h.struct_size < KVMI_INTROSPECTOR2QEMU_SIZE || h.struct_size > KVMI_HANDSHAKE_MAX_SIZE)
                return -ERANGE;
        if (len < h.struct_size)
                return -EBADMSG;
        memcpy(h.cookie_hash, (const uint8_t *) buf + sizeof(uint32_t), sizeof(h.cookie_hash));

        if (ret)
                *ret = h;
        return (int) h.struct_size;
}

/* ---- Messages for humans ---------------------------------------------- */

const char *kvmi_strerror(int r) {
        if (r == INT_MIN)       /* -r would overflow */
                return "unknown KVMI codec error";
        switch (-r) {
        case 0:
                return "success";
        case EBADMSG:
                return "KVMI message truncated: shorter than its structure";
        case E2BIG:
                return "KVMI message has trailing bytes after its structure";
        case EPROTO:
                return "KVMI message has nonzero padding";
        case ENOMSG:
                return "KVMI message or event id unknown to the numbering";
        case EMSGSIZE:
                return "KVMI message larger than the maximum message size";
        case EBADR:
                return "KVMI size field disagrees with the message length";
        case EBADE:
                return "KVMI message id is not the expected one";
        case ERANGE:
                return "KVMI handshake struct_size out of range";
        case EILSEQ:
                return "KVMI handshake name is not NUL-terminated";
        case EDOM:
                return "KVMI message field value out of range";
        case EOPNOTSUPP:
                return "KVMI message body not supported by this codec";
        case ENOBUFS:
                return "KVMI output buffer too small";
        case EINVAL:
                return "invalid argument to the KVMI codec";
        default:
                return "unknown KVMI codec error";
        }
}

const char *kvmi_kvm_error_to_string(int32_t err) {
        /* Peers send these negated; accept either sign.  No abs() on
         * INT32_MIN. */
        if (err == INT32_MIN)
                return NULL;
        switch (err < 0 ? -err : err) {
        case KVM_ENOSYS:
                return "KVM_ENOSYS";
        case KVM_EOPNOTSUPP:
                return "KVM_EOPNOTSUPP";
        case KVM_EPERM:
                return "KVM_EPERM";
        case KVM_EINVAL:
                return "KVM_EINVAL";
        case KVM_EAGAIN:
                return "KVM_EAGAIN";
        case KVM_ENOMEM:
                return "KVM_ENOMEM";
        case KVM_EFAULT:
                return "KVM_EFAULT";
        case KVM_ENOENT:
                return "KVM_ENOENT";
        default:
                return NULL;
        }
}
