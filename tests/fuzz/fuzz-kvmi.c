/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* proto/kvmi.c: every decoder.  Byte 0 selects what the rest is:
 *
 *   0  QEMU's handshake (qemu2introspector)
 *   1  kvmid's handshake (introspector2qemu)
 *   2  a stream of KVMI messages, framed with the limit byte 1 picks
 *   3+ one KVMI message, given to every message decoder
 *
 * The decoders are strict about padding and sizes, so whatever decodes
 * must encode back to the very same bytes (less what the codec documents
 * it does not keep: handshake padding, a newer kernel's event fields). */

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "kvmi.h"
#include "macro.h"

#define BUF_SIZE (KVMI_MSG_HDR_SIZE + KVMI_MAX_MSG_SIZE_LIMIT)

static uint8_t out[KVMI_HANDSHAKE_MAX_SIZE + BUF_SIZE];

static void check_strerror(int r) {
        FUZZ_CHECK(kvmi_strerror(r));
}

static void fuzz_q2i(const uint8_t *data, size_t size) {
        KvmiQemu2Introspector h, h2;
        size_t name_len;
        int r, f;

        f = kvmi_handshake_frame_check(data, size, KVMI_QEMU2INTROSPECTOR_MIN_SIZE);
        r = kvmi_qemu2introspector_decode(data, size, &h);
        check_strerror(r);
        check_strerror(f);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ERANGE || r == -EILSEQ);
                FUZZ_CHECK(r != -ERANGE || f == -ERANGE);
                return;
        }
        FUZZ_CHECK((uint32_t) r == h.struct_size && (size_t) r <= size);
        FUZZ_CHECK(f == r);
        name_len = strnlen(h.name, sizeof(h.name));
        FUZZ_CHECK(name_len < sizeof(h.name));
        for (size_t i = name_len; i < sizeof(h.name); i++)
                FUZZ_CHECK(h.name[i] == 0);

        FUZZ_CHECK(kvmi_qemu2introspector_encode(out, sizeof(out), &h) == r);
        /* bytes 21..23 are not judged, so not kept */
        FUZZ_CHECK(memcmp(out, data, 21) == 0);
        FUZZ_CHECK(memcmp(out + 24, data + 24, KVMI_QEMU2INTROSPECTOR_MIN_SIZE - 24 + name_len) == 0);
        FUZZ_CHECK(kvmi_qemu2introspector_decode(out, (size_t) r, &h2) == r);
        FUZZ_CHECK(memcmp(&h, &h2, sizeof(h)) == 0);
}

static void fuzz_i2q(const uint8_t *data, size_t size) {
        KvmiIntrospector2Qemu h, h2;
        int r, f;

        f = kvmi_handshake_frame_check(data, size, KVMI_INTROSPECTOR2QEMU_SIZE);
        r = kvmi_introspector2qemu_decode(data, size, &h);
        check_strerror(r);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ERANGE);
                return;
        }
        FUZZ_CHECK(f == r && (uint32_t) r == h.struct_size && (size_t) r <= size);
        FUZZ_CHECK(kvmi_introspector2qemu_encode(out, sizeof(out), &h) == KVMI_INTROSPECTOR2QEMU_SIZE);
        FUZZ_CHECK(memcmp(out + 4, data + 4, KVMI_INTROSPECTOR2QEMU_SIZE - 4) == 0);
        FUZZ_CHECK(kvmi_introspector2qemu_decode(out, KVMI_INTROSPECTOR2QEMU_SIZE, &h2) == KVMI_INTROSPECTOR2QEMU_SIZE);
        FUZZ_CHECK(memcmp(h.cookie_hash, h2.cookie_hash, sizeof(h.cookie_hash)) == 0);
}

static void fuzz_command(const KvmiNumbering *n, const uint8_t *msg, size_t len) {
        KvmiCommand c;
        int r;

        r = kvmi_command_decode(n, msg, len, &c);
        check_strerror(r);
        if (r < 0)
                return;
        FUZZ_CHECK(kvmi_cmd_to_string(c.cmd));
        r = kvmi_command_encode(out, sizeof(out), n, &c);
        FUZZ_CHECK(r >= 0 && (size_t) r == len);
        FUZZ_CHECK(memcmp(out, msg, len) == 0);
}

static void fuzz_replies(const KvmiNumbering *n, const uint8_t *msg, size_t len) {
        for (KvmiCmd cmd = 0; cmd < KVMI_CMD__MAX; cmd++) {
                KvmiReply rep;
                int r;

                r = kvmi_reply_decode(n, cmd, msg, len, &rep);
                check_strerror(r);
                if (r < 0)
                        continue;
                FUZZ_CHECK(rep.err <= 0);
                (void) kvmi_kvm_error_to_string(rep.err);
                if (cmd == KVMI_CMD_GET_VERSION && rep.err == 0) {
                        uint32_t m = kvmi_version_max_msg_size(n, &rep.version);

                        FUZZ_CHECK(m >= KVMI_MAX_MSG_SIZE_V5 && m <= KVMI_MAX_MSG_SIZE_LIMIT);
                }
                r = kvmi_reply_encode(out, sizeof(out), n, cmd, &rep);
                FUZZ_CHECK(r >= 0 && (size_t) r == len);
                FUZZ_CHECK(memcmp(out, msg, len) == 0);
        }
}

static void fuzz_event(const KvmiNumbering *n, const uint8_t *msg, size_t len) {
        KvmiEvent e, e2;
        size_t common;
        int r;

        r = kvmi_event_decode(n, msg, len, &e);
        check_strerror(r);
        if (r < 0)
                return;
        FUZZ_CHECK(kvmi_ev_to_string(e.event));
        FUZZ_CHECK(e.payload_offset >= KVMI_MSG_HDR_SIZE + KVMI_EVENT_SIZE);
        FUZZ_CHECK(e.payload_offset + e.payload_len == len);
        (void) kvmi_event_is_guest_request(&e);

        r = kvmi_event_encode(out, sizeof(out), n, &e, msg + e.payload_offset, e.payload_len);
        FUZZ_CHECK(r >= 0 && (size_t) r == len);
        /* a newer kernel's fields past the v7 struct are written as zeros */
        common = e.payload_offset - KVMI_MSG_HDR_SIZE;
        FUZZ_CHECK(memcmp(out, msg, KVMI_MSG_HDR_SIZE + KVMI_EVENT_SIZE) == 0);
        for (size_t i = KVMI_MSG_HDR_SIZE + KVMI_EVENT_SIZE; i < KVMI_MSG_HDR_SIZE + common; i++)
                FUZZ_CHECK(out[i] == 0);
        FUZZ_CHECK(memcmp(out + e.payload_offset, msg + e.payload_offset, e.payload_len) == 0);
        FUZZ_CHECK(kvmi_event_decode(n, out, len, &e2) == 0);
        FUZZ_CHECK(memcmp(&e.regs, &e2.regs, sizeof(e.regs)) == 0 &&
                   memcmp(&e.sregs, &e2.sregs, sizeof(e.sregs)) == 0 &&
                   memcmp(&e.msrs, &e2.msrs, sizeof(e.msrs)) == 0);
        FUZZ_CHECK(e.seq == e2.seq && e.size == e2.size && e.vcpu == e2.vcpu && e.event == e2.event &&
                   e.mode == e2.mode && e.view == e2.view && e.payload_len == e2.payload_len);
}

static void fuzz_prefixes(const uint8_t *body, size_t len) {
        int32_t err;
        uint16_t vcpu;
        uint8_t b[8];

        if (kvmi_error_code_decode(body, len, &err) == 0) {
                FUZZ_CHECK(kvmi_error_code_encode(b, sizeof(b), err) == KVMI_ERROR_CODE_SIZE);
                FUZZ_CHECK(memcmp(b, body, sizeof(b)) == 0);
        }
        if (kvmi_vcpu_hdr_decode(body, len, &vcpu) == 0) {
                FUZZ_CHECK(kvmi_vcpu_hdr_encode(b, sizeof(b), vcpu) == KVMI_VCPU_HDR_SIZE);
                FUZZ_CHECK(memcmp(b, body, sizeof(b)) == 0);
        }
}

static void fuzz_message(const KvmiNumbering *n, const uint8_t *msg, size_t len) {
        KvmiMsgHdr h;
        KvmiCmd cmd;

        if (kvmi_msg_hdr_decode(msg, len, &h) == 0) {
                uint8_t b[KVMI_MSG_HDR_SIZE];

                FUZZ_CHECK(kvmi_msg_hdr_encode(b, sizeof(b), &h) == KVMI_MSG_HDR_SIZE);
                FUZZ_CHECK(memcmp(b, msg, sizeof(b)) == 0);
                if (kvmi_numbering_cmd_from_id(n, h.id, &cmd) == 0)
                        check_strerror(kvmi_numbering_check_size(n, cmd, h.size));
                fuzz_prefixes(msg + KVMI_MSG_HDR_SIZE, len - KVMI_MSG_HDR_SIZE);
        }
        fuzz_command(n, msg, len);
        fuzz_replies(n, msg, len);
        fuzz_event(n, msg, len);
}

static void fuzz_stream(const KvmiNumbering *n, uint8_t limit, const uint8_t *data, size_t size) {
        static const size_t limits[] = { KVMI_MAX_MSG_SIZE_V7, KVMI_MAX_MSG_SIZE_V5, KVMI_MAX_MSG_SIZE_LIMIT, 16 };
        size_t max = limits[limit % ELEMENTSOF(limits)];

        for (size_t off = 0; off < size;) {
                KvmiMsgHdr h;
                int r = kvmi_frame_check(data + off, size - off, max, &h);

                if (r <= 0) {
                        FUZZ_CHECK(r == 0 || r == -EMSGSIZE);
                        FUZZ_CHECK(r == 0 || size - off >= KVMI_MSG_HDR_SIZE);
                        return;
                }
                FUZZ_CHECK((size_t) r == (size_t) KVMI_MSG_HDR_SIZE + h.size && h.size <= max && (size_t) r <= size - off);
                fuzz_message(n, data + off, (size_t) r);
                off += (size_t) r;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const KvmiNumbering *n = kvmi_numbering_by_name("v7");

        FUZZ_CHECK(n && kvmi_numbering_validate(n) == 0);
        if (size < 1)
                return 0;
        switch (data[0]) {
        case 0:
                fuzz_q2i(data + 1, size - 1);
                break;
        case 1:
                fuzz_i2q(data + 1, size - 1);
                break;
        case 2:
                if (size >= 2)
                        fuzz_stream(n, data[1], data + 2, size - 2);
                break;
        default:
                fuzz_message(n, data + 1, size - 1);
        }
        return 0;
}
