/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* proto/audit-record.c: the input is the content of audit log files,
 * separated by NUL bytes (which no record holds).  Every line goes
 * through the record parser, and a record that parses must be what the
 * builder writes for the same event, byte for byte; the whole input goes
 * through the writer's tail scan and the chain verifier (over memfds),
 * and the two must agree on where an intact log ends. */

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "audit-record.h"
#include "fuzz.h"
#include "macro.h"

#define FILES_MAX 4
#define LINES_MAX 64

/* A string member that the builder can write: absent or null is NULL. */
static bool get_str(struct json_object *o, const char *key, const char **ret) {
        struct json_object *v = json_object_object_get(o, key);

        *ret = NULL;
        if (!v)
                return true;
        if (!json_object_is_type(v, json_type_string))
                return false;
        *ret = json_object_get_string(v);
        /* an escaped NUL would be cut short by the builder's strlen() */
        return strlen(*ret) == (size_t) json_object_get_string_len(v);
}

/* Rebuild the record from its fields, unless the builder cannot say what
 * the line says: a subject with only some of uid/gid/pid, cid 0, a pid
 * above INT32_MAX, a string with an escaped NUL. */
static void check_rebuild(const char *line, size_t len, const AuditRecord *rec) {
        struct json_object *subject = json_object_object_get(rec->root, "subject");
        struct json_object *object = json_object_object_get(rec->root, "object");
        struct json_object *uid, *gid, *pid, *cid;
        _cleanup_free_ char *built = NULL;
        struct ucred peer = {};
        AuditLink prev, link;
        AuditEvent ev = {
                .kind = rec->kind,
                .decision = rec->decision,
                .data = json_object_object_get(rec->root, "data"),
        };
        size_t blen = 0;
        int r;

        if (!get_str(subject, "introspector", &ev.introspector) || !get_str(object, "target", &ev.target) ||
            !get_str(object, "uuid", &ev.uuid) || !get_str(rec->root, "rule", &ev.rule) ||
            !get_str(rec->root, "reason", &ev.reason))
                return;
        uid = json_object_object_get(subject, "uid");
        gid = json_object_object_get(subject, "gid");
        pid = json_object_object_get(subject, "pid");
        cid = json_object_object_get(subject, "cid");
        if (!uid != !gid || !uid != !pid)
                return;
        if (uid) {
                if (json_object_get_int64(pid) > INT32_MAX)
                        return;
                peer = (struct ucred) {
                        .uid = (uid_t) json_object_get_int64(uid),
                        .gid = (gid_t) json_object_get_int64(gid),
                        .pid = (pid_t) json_object_get_int64(pid),
                };
                ev.peer = &peer;
        }
        if (cid) {
                ev.cid = (uint32_t) json_object_get_int64(cid);
                if (ev.cid == 0)
                        return;
        }

        prev.seq = rec->seq - 1;
        memcpy(prev.digest, rec->prev, AUDIT_HEX_SIZE);
        r = audit_record_build(&ev, &prev, rec->realtime_ns, rec->mono_ns, &built, &blen, &link);
        FUZZ_CHECK(r == 0);
        if (blen != len || memcmp(built, line, len) != 0)
                fprintf(stderr, "rebuilt record differs:\n%.*s\n%s\n", (int) len, line, built);
        FUZZ_CHECK(blen == len && memcmp(built, line, len) == 0);
        FUZZ_CHECK(link.seq == rec->seq && streq(link.digest, rec->digest));
}

/* A copy of the line with "hash" made right, so that mutated records get
 * past the hash check to the builder comparison.  The line is canonical
 * and its members valid (only the hash failed), so the record's own
 * "hash" member is the last one: data's keys sort before it, and no other
 * member has keys of its own named so. */
static char *fix_hash(const char *line, size_t len) {
        _cleanup_json_ struct json_object *o = NULL;
        _cleanup_free_ char *hashless = NULL, *fixed = NULL;
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        size_t hlen;
        char *at = NULL;

        fixed = strndup(line, len);
        FUZZ_CHECK(fixed);
        for (char *p = strstr(fixed, "\"hash\":\""); p; p = strstr(p + 1, "\"hash\":\""))
                at = p + strlen("\"hash\":\"");
        FUZZ_CHECK(at && strlen(at) > AUDIT_HEX_SIZE - 1);
        o = json_tokener_parse(fixed);
        FUZZ_CHECK(o);
        FUZZ_CHECK(audit_json_canonical(o, "hash", AUDIT_DATA_MAX_DEPTH + 1, &hashless, &hlen) == 0);
        FUZZ_CHECK(EVP_Digest(hashless, hlen, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32);
        for (unsigned i = 0; i < 32; i++) {
                at[2 * i] = "0123456789abcdef"[md[i] >> 4];
                at[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
        }
        return TAKE_PTR(fixed);
}

static void check_lines(const char *buf, size_t size) {
        size_t n = 0;

        for (const char *s = buf, *end = buf + size; s < end && n < LINES_MAX; n++) {
                const char *nl = memchr(s, '\n', (size_t) (end - s));
                size_t len = (size_t) ((nl ? nl : end) - s);
                AuditRecord rec;
                AuditError e = {};
                int r;

                r = audit_record_parse(s, len, &rec, &e);
                if (r < 0) {
                        FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
                        FUZZ_CHECK(r == -ENOMEM || (e.kind > AUDIT_BREAK_NONE && e.kind < _AUDIT_BREAK_MAX));
                        FUZZ_CHECK(audit_break_to_string(e.kind));
                        if (r == -EBADMSG && e.kind == AUDIT_BREAK_HASH) {
                                _cleanup_free_ char *fixed = fix_hash(s, len);

                                FUZZ_CHECK(audit_record_parse(fixed, len, &rec, &e) == 0);
                                check_rebuild(fixed, len, &rec);
                                audit_record_done(&rec);
                        }
                } else {
                        FUZZ_CHECK(rec.seq > 0 && rec.root);
                        FUZZ_CHECK(audit_kind_to_string(rec.kind) && audit_decision_to_string(rec.decision));
                        check_rebuild(s, len, &rec);
                        audit_record_done(&rec);
                }
                s += len + 1;
        }
}

static void check_tail(const char *buf, size_t size, bool at_start, AuditTail *ret, int *ret_r) {
        AuditTail t;
        AuditError e = {};
        size_t off = SIZE_MAX;
        int r;

        r = audit_tail_scan(buf, size, at_start, &t, &e, &off);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
                FUZZ_CHECK(r == -ENOMEM || off <= size);
        } else {
                FUZZ_CHECK(t.have_record == (t.link.seq > 0));
                FUZZ_CHECK(!t.unterminated || (t.have_record && !t.torn));
                if (t.torn)
                        FUZZ_CHECK(t.torn_offset + t.torn_bytes == size && t.torn_bytes > 0);
        }
        *ret = t;
        *ret_r = r;
}

static int memfd_with(const uint8_t *data, size_t size) {
        int fd = memfd_create("fuzz-audit", MFD_CLOEXEC);

        FUZZ_CHECK(fd >= 0);
        for (size_t off = 0; off < size;) {
                ssize_t n = write(fd, data + off, size - off);

                FUZZ_CHECK(n > 0);
                off += (size_t) n;
        }
        return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char paths[FILES_MAX][64];
        const char *ptrs[FILES_MAX];
        int fds[FILES_MAX];
        size_t n = 0, last_start = 0, last_size = 0;
        AuditVerifyResult res;
        AuditTail tail;
        int r, tr;

        check_lines((const char *) data, size);

        for (size_t off = 0; n < FILES_MAX;) {
                const uint8_t *nul = memchr(data + off, 0, size - off);
                size_t len = nul && n + 1 < FILES_MAX ? (size_t) (nul - (data + off)) : size - off;

                check_tail((const char *) data + off, len, false, &tail, &tr);
                check_tail((const char *) data + off, len, true, &tail, &tr);
                fds[n] = memfd_with(data + off, len);
                (void) snprintf(paths[n], sizeof(paths[n]), "/proc/self/fd/%d", fds[n]);
                ptrs[n] = paths[n];
                last_start = off;
                last_size = len;
                n++;
                off += len + 1;
                if (off > size)
                        break;
        }

        r = audit_verify_files(ptrs, n, &res);
        FUZZ_CHECK(r == 0 || r == AUDIT_VERIFY_BROKEN || r == -ENOMEM);
        if (r >= 0) {
                FUZZ_CHECK(audit_break_to_string(res.error));
                FUZZ_CHECK((r == 0) == (res.error == AUDIT_BREAK_NONE));
                FUZZ_CHECK(res.error != AUDIT_BREAK_IO);
                FUZZ_CHECK(res.records == 0 || res.last_seq >= res.first_seq);
        }
        if (r == 0) {
                /* An intact log: the writer resumes after its last record. */
                FUZZ_CHECK(res.files == n && res.records > 0);
                check_tail((const char *) data + last_start, last_size, true, &tail, &tr);
                FUZZ_CHECK(tr == 0 && tail.have_record && !tail.torn && !tail.unterminated);
                FUZZ_CHECK(tail.link.seq == res.last_seq && streq(tail.link.digest, res.last_digest));
        }

        for (size_t i = 0; i < n; i++)
                (void) close(fds[i]);
        return 0;
}
