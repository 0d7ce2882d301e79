/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit log: record format and canonical form, the hash chain and
 * every way of breaking it, and the writer on a real event loop in a
 * temporary directory (group commit, resume, torn tails, rotation, write
 * and sync failures, kill -9).
 *
 * Failures are injected with AuditConfig.fault (a failing fdatasync, a
 * torn write) and with RLIMIT_FSIZE (the kernel refusing a write halfway:
 * EFBIG), not with a full file system, which a test cannot make. */

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>
#include <openssl/evp.h>

#include "audit.h"
#include "kvmid.h"

/* ---- helpers ------------------------------------------------------------ */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
        return remove(p);
}

static char *tmpdir_new(void) {
        const char *t = getenv("TMPDIR");
        char *d = NULL;

        ck_assert_int_ge(asprintf(&d, "%s/check-audit-XXXXXX", t && t[0] ? t : "/tmp"), 0);
        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

static void tmpdir_free(char *d) {
        if (!d)
                return;
        (void) nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(d);
}

static uint64_t now_ns_test(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static char *join(const char *a, const char *b) {
        char *s = NULL;
        ck_assert_int_ge(asprintf(&s, "%s/%s", a, b), 0);
        return s;
}

static char *slurp(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t len = 0;

        ck_assert_msg(f, "open %s: %m", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        len = (size_t) ftell(f);
        rewind(f);
        buf = malloc(len + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(fread(buf, 1, len, f), len);
        buf[len] = 0;
        fclose(f);
        if (ret_len)
                *ret_len = len;
        return buf;
}

static void spew(const char *path, const char *data, size_t len, bool append) {
        FILE *f = fopen(path, append ? "ae" : "we");
        ck_assert_msg(f, "open %s: %m", path);
        ck_assert_uint_eq(fwrite(data, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
}

static void sha256(const char *data, size_t len, char out[static AUDIT_HEX_SIZE]) {
        unsigned char md[32];
        unsigned n = 0;

        ck_assert(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL));
        for (unsigned i = 0; i < 32; i++)
                sprintf(out + 2 * i, "%02x", md[i]);
}

/* The lines of a file, without newlines (the last one may be unterminated). */
typedef struct Lines {
        char **v;
        size_t n;
} Lines;

static Lines file_lines(const char *path) {
        size_t len;
        char *buf = slurp(path, &len), *p = buf;
        Lines l = {};

        while (p < buf + len) {
                char *nl = memchr(p, '\n', (size_t) (buf + len - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (buf + len - p);
                l.v = realloc(l.v, (l.n + 1) * sizeof *l.v);
                l.v[l.n++] = strndup(p, n);
                p += n + (nl ? 1 : 0);
        }
        free(buf);
        return l;
}

static void lines_free(Lines *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        *l = (Lines) {};
}

/* Write lines[order[i]] for each i, each with its newline. */
static void write_order(const char *path, char **lines, const size_t *order, size_t n) {
        FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s\n", lines[order[i]]);
        ck_assert_int_eq(fclose(f), 0);
}

static char *replace(const char *s, const char *from, const char *to) {
        const char *p = strstr(s, from);
        char *out = NULL;

        ck_assert_msg(p, "\"%s\" not in %s", from, s);
        ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int) (p - s), s, to, p + strlen(from)), 0);
        return out;
}

/* Edit a record and recompute its own hash: only the chain can tell. */
static char *edit_rehash(const char *line, const char *from, const char *to) {
        char *e = replace(line, from, to), *hl = NULL, *out = NULL, h[AUDIT_HEX_SIZE];
        struct json_object *o = json_tokener_parse(e);
        size_t hlen;

        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(audit_json_canonical(o, "hash", 16, &hl, &hlen), 0);
        sha256(hl, hlen, h);
        json_object_object_add(o, "hash", json_object_new_string(h));
        ck_assert_int_eq(audit_json_canonical(o, NULL, 16, &out, NULL), 0);
        json_object_put(o);
        free(hl);
        free(e);
        return out;
}

static const struct ucred peer = { .pid = 4242, .uid = 1000, .gid = 1001 };

static AuditEvent sample_event(size_t i) {
        static const AuditKind kinds[] = { AUDIT_KIND_MAP_ALLOW, AUDIT_KIND_MAP_DENY, AUDIT_KIND_TOKEN_MINT,
                                           AUDIT_KIND_SESSION_OPEN, AUDIT_KIND_DOMAIN_UP };
        AuditKind k = kinds[i % ELEMENTSOF(kinds)];

        return (AuditEvent) {
                .kind = k,
                .decision = k == AUDIT_KIND_SESSION_OPEN ? AUDIT_DECISION_ALLOW : AUDIT_DECISION_NONE,
                .introspector = "ids",
                .peer = &peer,
                .target = "web1",
                .uuid = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f",
                .rule = "/etc/kvmid/policy:12",
                .reason = k == AUDIT_KIND_MAP_DENY ? "gpa outside the token's range" : NULL,
        };
}

static uint64_t time_base = 1714564800000000000ULL;

/* n records after *link (updated), with made-up but increasing times. */
static char **make_lines(AuditLink *link, size_t n) {
        char **v = calloc(n, sizeof *v);

        ck_assert_ptr_nonnull(v);
        for (size_t i = 0; i < n; i++) {
                AuditEvent ev = sample_event(link->seq);
                AuditLink next;
                ck_assert_int_eq(audit_record_build(&ev, link, time_base + link->seq * 1000,
                                                    123456789 + link->seq, &v[i], NULL, &next), 0);
                *link = next;
        }
        return v;
}

/* The same, the first a rotate record: how every file after the first starts. */
static char **make_rotated_lines(AuditLink *link, size_t n) {
        char **v = calloc(n, sizeof *v);
        AuditLink next;
        char **rest;

        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_ROTATE }, link,
                                            time_base + link->seq * 1000, 123456789 + link->seq, &v[0], NULL, &next), 0);
        *link = next;
        rest = make_lines(link, n - 1);
        memcpy(v + 1, rest, (n - 1) * sizeof *v);
        free(rest);
        return v;
}

static void free_lines(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void write_all_lines(const char *path, char **v, size_t n) {
        FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s\n", v[i]);
        ck_assert_int_eq(fclose(f), 0);
}

static int verify1(const char *path, AuditVerifyResult *res) {
        const char *p[] = { path };
        return audit_verify_files(p, 1, res);
}

#define ck_assert_break(res, kind, idx, ln)                                                       \
        do {                                                                                      \
                ck_assert_msg((res).error == (kind), "expected %s, got %s at %zu:%" PRIu64 ": %s", \
                              audit_break_to_string(kind), audit_break_to_string((res).error),    \
                              (res).file_index, (res).line, (res).message);                       \
                ck_assert_uint_eq((res).file_index, (idx));                                       \
                ck_assert_uint_eq((res).line, (ln));                                              \
        } while (0)

/* ---- names -------------------------------------------------------------- */

START_TEST(test_kind_names) {
        static const char *const names[] = {
                "auth-ok", "auth-fail", "session-open", "session-close", "subscribe", "unsubscribe",
                "token-mint", "token-deny", "token-revoke", "token-expire", "map-allow", "map-deny",
                "unmap-allow", "unmap-deny", "policy-reload-ok", "policy-reload-fail", "domain-up",
                "domain-down", "kvmi-handshake-ok", "kvmi-handshake-fail", "daemon-start", "daemon-stop",
                "rotate", "recovered",
        };

        ck_assert_int_eq(_AUDIT_KIND_MAX, (int) ELEMENTSOF(names));
        for (int k = 0; k < _AUDIT_KIND_MAX; k++) {
                ck_assert_str_eq(audit_kind_to_string((AuditKind) k), names[k]);
                ck_assert_int_eq(audit_kind_from_string(names[k]), k);
                ck_assert_uint_ne(audit_kind_decisions((AuditKind) k), 0);
        }
        ck_assert_int_eq(audit_kind_from_string("map"), -EINVAL);
        ck_assert_ptr_null(audit_kind_to_string(_AUDIT_KIND_MAX));
        ck_assert_str_eq(audit_decision_to_string(AUDIT_DECISION_ALLOW), "allow");
        ck_assert_int_eq(audit_decision_from_string("deny"), AUDIT_DECISION_DENY);
        ck_assert_int_eq(audit_decision_from_string("maybe"), -EINVAL);
        ck_assert_str_eq(audit_sync_mode_to_string(AUDIT_SYNC_INTERVAL), "interval");
        ck_assert_int_eq(audit_sync_mode_from_string("always"), AUDIT_SYNC_ALWAYS);
        ck_assert_int_eq(audit_sync_mode_from_string("sometimes"), -EINVAL);
        for (int b = 0; b < _AUDIT_BREAK_MAX; b++)
                ck_assert_ptr_nonnull(audit_break_to_string((AuditBreak) b));
}
END_TEST

/* ---- canonical JSON ------------------------------------------------------ */

static char *canon(struct json_object *o) {
        char *s = NULL;
        ck_assert_int_eq(audit_json_canonical(o, NULL, 16, &s, NULL), 0);
        return s;
}

START_TEST(test_canonical) {
        struct json_object *o = json_object_new_object(), *arr = json_object_new_array(), *big;
        char *s;

        json_object_object_add(o, "b", json_object_new_int64(INT64_MIN));
        json_object_object_add(o, "a", json_object_new_int64(INT64_MAX));
        json_object_object_add(o, "\xc3\xa9", json_object_new_boolean(true));   /* é sorts after ASCII */
        json_object_object_add(o, "Z", NULL);
        static const char raw[] = "\"\\/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
                                  "\xff \xed\xa0\x80 a\0b";
        json_object_object_add(o, "s", json_object_new_string_len(raw, (int) sizeof raw - 1));
        json_object_array_add(arr, json_object_new_int(-1));
        json_object_array_add(arr, json_object_new_object());
        json_object_array_add(arr, json_object_new_array());
        json_object_array_add(arr, json_object_new_boolean(false));
        json_object_object_add(o, "arr", arr);
        s = canon(o);
        ck_assert_str_eq(s,
                         "{\"Z\":null,\"a\":9223372036854775807,\"arr\":[-1,{},[],false],\"b\":-9223372036854775808,"
                         "\"s\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
                         "\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd a\\u0000b\",\"\xc3\xa9\":true}");
        free(s);

        ck_assert_int_eq(audit_json_canonical(o, "arr", 16, &s, NULL), 0);
        ck_assert_ptr_null(strstr(s, "arr"));
        free(s);

        /* no floats, nothing beyond int64, bounded depth */
        json_object_object_add(o, "f", json_object_new_double(1.5));
        ck_assert_int_eq(audit_json_canonical(o, NULL, 16, &s, NULL), -EINVAL);
        json_object_object_del(o, "f");
        big = json_object_new_uint64(UINT64_MAX);
        json_object_object_add(o, "u", big);
        ck_assert_int_eq(audit_json_canonical(o, NULL, 16, &s, NULL), -ERANGE);
        json_object_object_del(o, "u");
        ck_assert_int_eq(audit_json_canonical(o, NULL, 1, &s, NULL), -ELOOP);
        json_object_put(o);

        o = json_object_new_string("x");
        s = canon(o);
        ck_assert_str_eq(s, "\"x\"");
        free(s);
        json_object_put(o);
}
END_TEST

/* ---- time ----------------------------------------------------------------- */

START_TEST(test_time) {
        char buf[AUDIT_TIME_SIZE];
        uint64_t ns;

        ck_assert_int_eq(audit_time_format(0, buf), 0);
        ck_assert_str_eq(buf, "1970-01-01T00:00:00.000000000Z");
        ck_assert_int_eq(audit_time_format(1714564800123456789ULL, buf), 0);
        ck_assert_str_eq(buf, "2024-05-01T12:00:00.123456789Z");
        ck_assert_int_eq(audit_time_parse(buf, &ns), 0);
        ck_assert_uint_eq(ns, 1714564800123456789ULL);
        ck_assert_int_eq(audit_time_parse("2024-02-29T23:59:59.999999999Z", &ns), 0);

        static const char *const bad[] = {
                "2023-02-29T00:00:00.000000000Z", "2024-05-01T24:00:00.000000000Z",
                "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456789+00:00",
                "2024-05-01 12:00:00.123456789Z", "2024-05-01T12:00:60.000000000Z",
                "1969-12-31T23:59:59.000000000Z", "2024-13-01T12:00:00.000000000Z", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(audit_time_parse(bad[i], &ns) < 0, "accepted %s", bad[i]);
}
END_TEST

/* ---- build ------------------------------------------------------------------ */

/* The whole format in one line; the hash is checked independently below. */
#define GOLDEN_HASHLESS                                                                               \
        "{\"data\":{\"gpa\":4096,\"local_gpa\":8192,\"pages\":1},\"decision\":\"allow\","           \
        "\"kind\":\"map-allow\",\"mono_ns\":5000000000,\"object\":{\"target\":\"web1\","             \
        "\"uuid\":\"6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f\"},\"prev\":"                               \
        "\"0000000000000000000000000000000000000000000000000000000000000000\",\"reason\":null,"      \
        "\"rule\":\"/etc/kvmid/policy:12\",\"seq\":1,\"subject\":{\"gid\":1001,\"introspector\":\"ids\"," \
        "\"pid\":4242,\"uid\":1000},\"time\":\"2024-05-01T12:00:00.123456789Z\",\"v\":1}"

START_TEST(test_build_golden) {
        struct json_object *data = json_object_new_object();
        char *line = NULL, h[AUDIT_HEX_SIZE], d[AUDIT_HEX_SIZE], *expect = NULL;
        const char *kind_at;
        AuditLink prev, link;
        size_t len;

        json_object_object_add(data, "pages", json_object_new_int(1));
        json_object_object_add(data, "local_gpa", json_object_new_int(8192));
        json_object_object_add(data, "gpa", json_object_new_int(4096));
        audit_link_init(&prev);
        ck_assert_int_eq(audit_record_build(&(AuditEvent) {
                                                    .kind = AUDIT_KIND_MAP_ALLOW,
                                                    .introspector = "ids",
                                                    .peer = &peer,
                                                    .target = "web1",
                                                    .uuid = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f",
                                                    .rule = "/etc/kvmid/policy:12",
                                                    .data = data,
                                            },
                                            &prev, 1714564800123456789ULL, 5000000000ULL, &line, &len, &link),
                         0);
        json_object_put(data);

        /* hash = SHA-256 of the canonical record without "hash" */
        sha256(GOLDEN_HASHLESS, strlen(GOLDEN_HASHLESS), h);
        kind_at = strstr(GOLDEN_HASHLESS, "\"kind\"");
        ck_assert_int_ge(asprintf(&expect, "%.*s\"hash\":\"%s\",%s", (int) (kind_at - GOLDEN_HASHLESS), GOLDEN_HASHLESS,
                                  h, kind_at), 0);
        ck_assert_str_eq(line, expect);
        ck_assert_uint_eq(len, strlen(expect));
        /* the link: seq 1, digest = SHA-256 of the exact line */
        sha256(line, len, d);
        ck_assert_uint_eq(link.seq, 1);
        ck_assert_str_eq(link.digest, d);
        free(expect);
        free(line);
}
END_TEST

START_TEST(test_build_decisions) {
        AuditLink prev, link;
        char *line = NULL;
        AuditRecord rec;

        audit_link_init(&prev);
        static const struct {
                AuditKind kind;
                AuditDecision in;
                int r;
                AuditDecision out;
        } t[] = {
                { AUDIT_KIND_MAP_ALLOW, AUDIT_DECISION_NONE, 0, AUDIT_DECISION_ALLOW },
                { AUDIT_KIND_MAP_DENY, AUDIT_DECISION_NONE, 0, AUDIT_DECISION_DENY },
                { AUDIT_KIND_MAP_ALLOW, AUDIT_DECISION_DENY, -EINVAL, 0 },
                { AUDIT_KIND_SESSION_OPEN, AUDIT_DECISION_NONE, -EINVAL, 0 },
                { AUDIT_KIND_SESSION_OPEN, AUDIT_DECISION_DENY, 0, AUDIT_DECISION_DENY },
                { AUDIT_KIND_SUBSCRIBE, AUDIT_DECISION_ALLOW, 0, AUDIT_DECISION_ALLOW },
                { AUDIT_KIND_DAEMON_START, AUDIT_DECISION_NONE, 0, AUDIT_DECISION_NONE },
                { AUDIT_KIND_DAEMON_START, AUDIT_DECISION_ALLOW, -EINVAL, 0 },
                { AUDIT_KIND_AUTH_FAIL, AUDIT_DECISION_NONE, 0, AUDIT_DECISION_DENY },
                { AUDIT_KIND_KVMI_HANDSHAKE_OK, AUDIT_DECISION_NONE, 0, AUDIT_DECISION_ALLOW },
                { _AUDIT_KIND_MAX, AUDIT_DECISION_NONE, -EINVAL, 0 },
                { AUDIT_KIND_MAP_ALLOW, _AUDIT_DECISION_MAX, -EINVAL, 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                int r = audit_record_build(&(AuditEvent) { .kind = t[i].kind, .decision = t[i].in }, &prev, 0, 0,
                                           &line, NULL, &link);
                ck_assert_msg(r == t[i].r, "case %zu: %d", i, r);
                if (r < 0)
                        continue;
                ck_assert_int_eq(audit_record_parse(line, strlen(line), &rec, NULL), 0);
                ck_assert_int_eq(rec.decision, t[i].out);
                ck_assert_int_eq(rec.kind, t[i].kind);
                audit_record_done(&rec);
                free(line);
        }
}
END_TEST

START_TEST(test_build_invalid) {
        struct json_object *data;
        AuditLink prev, link;
        char *line = NULL, *big;
        int r;

        audit_link_init(&prev);
        data = json_object_new_array();
        ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP, .data = data }, &prev, 0, 0,
                                            &line, NULL, &link), -EINVAL);
        json_object_put(data);

        static const char *const bad_keys[] = { "with space", "", "é", "a/b" };
        for (size_t i = 0; i < ELEMENTSOF(bad_keys); i++) {
                data = json_object_new_object();
                json_object_object_add(data, bad_keys[i], json_object_new_int(1));
                ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP, .data = data }, &prev,
                                                    0, 0, &line, NULL, &link), -EINVAL);
                json_object_put(data);
        }
        data = json_object_new_object();
        json_object_object_add(data, "ratio", json_object_new_double(0.5));
        ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP, .data = data }, &prev, 0, 0,
                                            &line, NULL, &link), -EINVAL);
        json_object_put(data);

        big = malloc(AUDIT_LINE_MAX + 1);
        memset(big, 'x', AUDIT_LINE_MAX);
        big[AUDIT_LINE_MAX] = 0;
        ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP, .reason = big }, &prev, 0, 0,
                                            &line, NULL, &link), -E2BIG);
        free(big);

        /* peer strings that are not UTF-8 are repaired, not refused */
        r = audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_AUTH_FAIL, .introspector = "ev\xffil\n" }, &prev, 0, 0,
                               &line, NULL, &link);
        ck_assert_int_eq(r, 0);
        ck_assert_ptr_nonnull(strstr(line, "\"introspector\":\"ev\xef\xbf\xbdil\\n\""));
        AuditRecord rec;
        ck_assert_int_eq(audit_record_parse(line, strlen(line), &rec, NULL), 0);
        audit_record_done(&rec);
        free(line);
}
END_TEST

START_TEST(test_parse_roundtrip) {
        AuditLink link;
        char **v;
        AuditRecord rec;
        struct json_object *s;

        audit_link_init(&link);
        v = make_lines(&link, 2);
        ck_assert_int_eq(audit_record_parse(v[1], strlen(v[1]), &rec, NULL), 0);
        ck_assert_uint_eq(rec.seq, 2);
        ck_assert_int_eq(rec.kind, AUDIT_KIND_MAP_DENY);
        ck_assert_int_eq(rec.decision, AUDIT_DECISION_DENY);
        ck_assert_uint_eq(rec.realtime_ns, 1714564800000001000ULL);
        ck_assert_uint_eq(rec.mono_ns, 123456790);
        ck_assert_str_eq(rec.digest, link.digest);
        s = json_object_object_get(rec.root, "subject");
        ck_assert_int_eq(json_object_get_int(json_object_object_get(s, "uid")), 1000);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(s, "pid")), 4242);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(rec.root, "reason")),
                         "gpa outside the token's range");
        audit_record_done(&rec);
        /* prev of record 2 is the digest of line 1 */
        char d[AUDIT_HEX_SIZE];
        sha256(v[0], strlen(v[0]), d);
        ck_assert_ptr_nonnull(strstr(v[1], d));
        free_lines(v, 2);
}
END_TEST

START_TEST(test_parse_errors) {
        AuditLink link;
        char **v, *m, *big;
        AuditRecord rec;
        AuditError e;

        audit_link_init(&link);
        v = make_lines(&link, 2);       /* v[1]: map-deny, seq 2 */

        static const struct {
                const char *from, *to;
                AuditBreak kind;
        } t[] = {
                { "\"web1\"", "\"web2\"", AUDIT_BREAK_HASH },
                { "\"seq\":2", "\"seq\":3", AUDIT_BREAK_HASH },
                { "{\"data\"", "{ \"data\"", AUDIT_BREAK_NOT_CANONICAL },
                { "/etc/kvmid", "\\/etc/kvmid", AUDIT_BREAK_NOT_CANONICAL },
                { "\"web1\"", "\"w\\u0065b1\"", AUDIT_BREAK_NOT_CANONICAL },
                { "\"seq\":2", "\"seq\":2.0", AUDIT_BREAK_BAD_FIELD },
                { "\"seq\":2", "\"seq\":-2", AUDIT_BREAK_BAD_FIELD },
                { ",\"v\":1}", "}", AUDIT_BREAK_BAD_FIELD },
                { ",\"v\":1}", ",\"v\":2}", AUDIT_BREAK_BAD_FIELD },
                { ",\"v\":1}", ",\"v\":1,\"x\":1}", AUDIT_BREAK_BAD_FIELD },
                { "\"map-deny\"", "\"map-denied\"", AUDIT_BREAK_BAD_FIELD },
                { "\"decision\":\"deny\"", "\"decision\":\"allow\"", AUDIT_BREAK_BAD_FIELD },
                { "\"time\":\"2024-05-01T12:00:00.000001000Z\"", "\"time\":\"2024-05-01T12:00:00Z\"",
                  AUDIT_BREAK_BAD_FIELD },
                { "\"uid\":1000", "\"uid\":\"1000\"", AUDIT_BREAK_BAD_FIELD },
                { "\"pid\":4242", "\"pid\":4242,\"port\":1", AUDIT_BREAK_BAD_FIELD },
                { "\"data\":{}", "\"data\":[]", AUDIT_BREAK_BAD_FIELD },
                { "\"prev\":\"", "\"prev\":\"A", AUDIT_BREAK_BAD_FIELD },
                { "\"data\":{}", "\"data\":{}}", AUDIT_BREAK_BAD_JSON },
                { "{\"data\":{}", "[{\"data\":{}", AUDIT_BREAK_BAD_JSON },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                m = replace(v[1], t[i].from, t[i].to);
                memset(&e, 0, sizeof e);
                ck_assert_int_eq(audit_record_parse(m, strlen(m), &rec, &e), -EBADMSG);
                ck_assert_msg(e.kind == t[i].kind, "case %zu: %s: %s", i, audit_break_to_string(e.kind), e.message);
                ck_assert_str_ne(e.message, "");
                free(m);
        }

        /* data keys the builder refuses, even with a matching hash (fuzz-audit) */
        static const char *const bad_keys[] = { "\"a.b\"", "\"\"", "\"caf\xc3\xa9\"", "\"x y\"" };
        for (size_t i = 0; i < ELEMENTSOF(bad_keys); i++) {
                char *data = NULL;

                ck_assert_int_ge(asprintf(&data, "\"data\":{\"n\":[{%s:1}]}", bad_keys[i]), 0);
                m = edit_rehash(v[1], "\"data\":{}", data);
                memset(&e, 0, sizeof e);
                ck_assert_int_eq(audit_record_parse(m, strlen(m), &rec, &e), -EBADMSG);
                ck_assert_msg(e.kind == AUDIT_BREAK_BAD_FIELD, "key %s: %s", bad_keys[i], e.message);
                free(m);
                free(data);
        }

        /* seq 1 with a prev, or a later seq without: both impossible */
        m = edit_rehash(v[0], "\"prev\":\"0", "\"prev\":\"1");
        ck_assert_int_eq(audit_record_parse(m, strlen(m), &rec, &e), -EBADMSG);
        ck_assert_int_eq(e.kind, AUDIT_BREAK_BAD_FIELD);
        free(m);

        ck_assert_int_eq(audit_record_parse("", 0, &rec, &e), -EBADMSG);
        ck_assert_int_eq(e.kind, AUDIT_BREAK_BAD_JSON);
        ck_assert_int_eq(audit_record_parse("{\"a\":1}\n", 8, &rec, &e), -EBADMSG);
        ck_assert_int_eq(e.kind, AUDIT_BREAK_BAD_JSON);
        ck_assert_int_eq(audit_record_parse("{\"data\":{\"x\"", 12, &rec, &e), -EBADMSG);
        ck_assert_int_eq(e.kind, AUDIT_BREAK_BAD_JSON);
        ck_assert_int_eq(audit_record_parse("{\"a\":\"\xff\"}", 9, &rec, &e), -EBADMSG);
        big = calloc(1, AUDIT_LINE_MAX + 2);
        memset(big, ' ', AUDIT_LINE_MAX + 1);
        ck_assert_int_eq(audit_record_parse(big, AUDIT_LINE_MAX + 1, &rec, &e), -EBADMSG);
        ck_assert_int_eq(e.kind, AUDIT_BREAK_BAD_JSON);
        free(big);
        /* NULL error is fine */
        ck_assert_int_eq(audit_record_parse("x", 1, &rec, NULL), -EBADMSG);
        free_lines(v, 2);
}
END_TEST

START_TEST(test_tail_scan) {
        AuditLink link;
        char **v, *buf = NULL, *m;
        AuditTail t;
        AuditError e;
        size_t off = 0;

        audit_link_init(&link);
        v = make_lines(&link, 3);

        /* empty file: a new chain */
        ck_assert_int_eq(audit_tail_scan("", 0, true, &t, &e, &off), 0);
        ck_assert(!t.have_record && !t.torn && t.link.seq == 0);
        ck_assert_str_eq(t.link.digest, AUDIT_ZERO_HASH);

        /* clean end */
        ck_assert_int_ge(asprintf(&buf, "%s\n%s\n%s\n", v[0], v[1], v[2]), 0);
        ck_assert_int_eq(audit_tail_scan(buf, strlen(buf), true, &t, &e, &off), 0);
        ck_assert(t.have_record && !t.torn && !t.unterminated);
        ck_assert_uint_eq(t.link.seq, 3);
        ck_assert_str_eq(t.link.digest, link.digest);
        /* a window starting mid-line is fine */
        ck_assert_int_eq(audit_tail_scan(buf + 10, strlen(buf) - 10, false, &t, &e, &off), 0);
        ck_assert_uint_eq(t.link.seq, 3);
        free(buf);

        /* torn tail */
        ck_assert_int_ge(asprintf(&buf, "%s\n%s\n%.40s", v[0], v[1], v[2]), 0);
        ck_assert_int_eq(audit_tail_scan(buf, strlen(buf), true, &t, &e, &off), 0);
        ck_assert(t.have_record && t.torn && !t.unterminated);
        ck_assert_uint_eq(t.link.seq, 2);
        ck_assert_uint_eq(t.torn_bytes, 40);
        ck_assert_uint_eq(t.torn_offset, strlen(v[0]) + strlen(v[1]) + 2);
        free(buf);

        /* a complete record that lost only its newline is kept */
        ck_assert_int_ge(asprintf(&buf, "%s\n%s", v[0], v[1]), 0);
        ck_assert_int_eq(audit_tail_scan(buf, strlen(buf), true, &t, &e, &off), 0);
        ck_assert(t.have_record && t.unterminated && !t.torn);
        ck_assert_uint_eq(t.link.seq, 2);
        free(buf);

        /* the first record torn: a new chain, with the torn bytes witnessed */
        ck_assert_int_eq(audit_tail_scan(v[0], 30, true, &t, &e, &off), 0);
        ck_assert(!t.have_record && t.torn && t.torn_bytes == 30 && t.link.seq == 0);

        /* a bad complete line is not a crash: refused, with where */
        m = replace(v[1], "web1", "web9");
        ck_assert_int_ge(asprintf(&buf, "%s\n%s\n", v[0], m), 0);
        ck_assert_int_eq(audit_tail_scan(buf, strlen(buf), true, &t, &e, &off), -EBADMSG);
        ck_assert_int_eq(e.kind, AUDIT_BREAK_HASH);
        ck_assert_uint_eq(off, strlen(v[0]) + 1);
        free(buf);
        ck_assert_int_ge(asprintf(&buf, "%s\n%s\nxx", v[0], m), 0);
        ck_assert_int_eq(audit_tail_scan(buf, strlen(buf), true, &t, &e, &off), -EBADMSG);
        free(buf);
        free(m);
        /* no line end within the window */
        ck_assert_int_eq(audit_tail_scan("abc", 3, false, &t, &e, &off), -EBADMSG);
        free_lines(v, 3);
}
END_TEST

/* ---- verify --------------------------------------------------------------- */

typedef struct Chain {
        char *dir, *path;
        char **v;
        size_t n;
        AuditLink link;
} Chain;

static void chain_new(Chain *c, size_t n) {
        c->dir = tmpdir_new();
        c->path = join(c->dir, "audit.log");
        audit_link_init(&c->link);
        c->v = make_lines(&c->link, n);
        c->n = n;
        write_all_lines(c->path, c->v, n);
}

static void chain_free(Chain *c) {
        free_lines(c->v, c->n);
        free(c->path);
        tmpdir_free(c->dir);
}

START_TEST(test_verify_intact) {
        AuditVerifyResult res;
        Chain c;

        chain_new(&c, 10);
        ck_assert_int_eq(verify1(c.path, &res), 0);
        ck_assert_int_eq(res.error, AUDIT_BREAK_NONE);
        ck_assert_uint_eq(res.records, 10);
        ck_assert_uint_eq(res.files, 1);
        ck_assert_uint_eq(res.first_seq, 1);
        ck_assert_uint_eq(res.last_seq, 10);
        ck_assert_str_eq(res.first_prev, AUDIT_ZERO_HASH);
        ck_assert_str_eq(res.last_digest, c.link.digest);

        /* an empty file is not a log kvmid left (daemon-start is its
         * first record); no files at all are intact, and empty */
        spew(c.path, "", 0, false);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_EMPTY, 0, 0);
        ck_assert_int_eq(audit_verify_files(NULL, 0, &res), 0);
        ck_assert_uint_eq(res.records, 0);
        chain_free(&c);
}
END_TEST

START_TEST(test_verify_edited) {
        AuditVerifyResult res;
        size_t order[10];
        char *saved;
        Chain c;

        chain_new(&c, 10);
        for (size_t i = 0; i < 10; i++)
                order[i] = i;

        /* a field edited: the record's own hash says so */
        saved = c.v[3];
        c.v[3] = replace(saved, "\"ids\"", "\"idz\"");
        write_order(c.path, c.v, order, 10);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_HASH, 0, 4);
        ck_assert_str_eq(res.file, c.path);
        free(c.v[3]);

        /* edited and re-hashed: the next record's prev says so */
        c.v[3] = edit_rehash(saved, "\"ids\"", "\"idz\"");
        write_order(c.path, c.v, order, 10);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_PREV, 0, 5);
        free(c.v[3]);

        /* reformatted, same contents */
        c.v[3] = replace(saved, "\"seq\":", "\"seq\": ");
        write_order(c.path, c.v, order, 10);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_NOT_CANONICAL, 0, 4);
        free(c.v[3]);

        /* not JSON at all */
        c.v[3] = strdup("{\"data\":");
        write_order(c.path, c.v, order, 10);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_BAD_JSON, 0, 4);
        free(c.v[3]);
        c.v[3] = saved;
        chain_free(&c);
}
END_TEST

START_TEST(test_verify_deleted_swapped) {
        AuditVerifyResult res;
        Chain c;

        chain_new(&c, 10);
        /* line 4 deleted */
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 4, 5, 6, 7, 8, 9 }, 9);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 0, 4);
        /* lines 4 and 5 deleted */
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 5, 6 }, 5);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 0, 4);
        ck_assert_ptr_nonnull(strstr(res.message, "2 record(s) missing"));
        /* the first lines deleted: a file starts with seq 1 or a rotate record */
        write_order(c.path, c.v, (const size_t[]) { 1, 2, 3 }, 3);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 0, 1);
        ck_assert_ptr_nonnull(strstr(res.message, "first record is seq 2"));
        ck_assert_ptr_nonnull(strstr(res.message, "missing"));
        write_order(c.path, c.v, (const size_t[]) { 5, 6, 7, 8, 9 }, 5);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 0, 1);
        /* lines 4 and 5 swapped */
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 4, 3, 5, 6, 7, 8, 9 }, 10);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SWAPPED, 0, 4);
        /* the last two swapped */
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 3, 4, 5, 6, 7, 9, 8 }, 10);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SWAPPED, 0, 9);
        /* a line duplicated */
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 3, 3, 4 }, 6);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_ORDER, 0, 5);
        /* a line moved back */
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 3, 4, 1 }, 6);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_ORDER, 0, 6);
        chain_free(&c);
}
END_TEST

START_TEST(test_verify_truncated) {
        AuditVerifyResult res;
        char *all, *p2;
        size_t len;
        Chain c;

        chain_new(&c, 10);
        all = slurp(c.path, &len);
        /* cut in the middle of line 10: a torn tail */
        ck_assert_int_eq(truncate(c.path, (off_t) (len - 50)), 0);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_TORN_TAIL, 0, 10);
        ck_assert_uint_eq(res.records, 9);
        /* only the newline lost: still torn (the writer adds it back) */
        ck_assert_int_eq(truncate(c.path, (off_t) (len - 1)), 0);
        ck_assert_int_eq(verify1(c.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_TORN_TAIL, 0, 10);

        /* a rotated file cut at a line end: the next file's first record
         * no longer follows */
        spew(c.path, all, len, false);
        p2 = join(c.dir, "audit.log.2");
        {
                AuditLink l = c.link;
                char **w = make_lines(&l, 3);
                write_all_lines(p2, w, 3);
                free_lines(w, 3);
        }
        const char *paths[] = { c.path, p2 };
        ck_assert_int_eq(audit_verify_files(paths, 2, &res), 0);
        ck_assert_uint_eq(res.records, 13);
        ck_assert_uint_eq(res.files, 2);
        write_order(c.path, c.v, (const size_t[]) { 0, 1, 2, 3, 4, 5, 6, 7 }, 8);
        ck_assert_int_eq(audit_verify_files(paths, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 1, 1);
        ck_assert_str_eq(res.file, p2);
        ck_assert_ptr_nonnull(strstr(res.message, "truncated"));
        free(p2);
        free(all);
        chain_free(&c);
}
END_TEST

START_TEST(test_verify_files_order) {
        AuditVerifyResult res;
        char *p[3];
        AuditLink l;
        char **w[3];

        char *dir = tmpdir_new();
        audit_link_init(&l);
        for (size_t i = 0; i < 3; i++) {
                char name[32];
                snprintf(name, sizeof name, "audit.log.%zu", i);
                p[i] = join(dir, name);
                /* as the writer rotates: each later file starts with a rotate record */
                w[i] = i == 0 ? make_lines(&l, 4) : make_rotated_lines(&l, 4);
                write_all_lines(p[i], w[i], 4);
        }
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[1], p[2] }, 3, &res), 0);
        ck_assert_uint_eq(res.records, 12);
        /* out of order */
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[1], p[0], p[2] }, 3, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_RESTART, 1, 1);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[2], p[1] }, 3, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 1, 1);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[1], p[2], p[1] }, 4, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_ORDER, 3, 1);
        ck_assert_ptr_nonnull(strstr(res.message, "files out of order"));
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[2], p[1] }, 3, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 1, 1);
        /* one left out */
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[2] }, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 1, 1);
        /* starting later is fine: the chain continues an earlier file */
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[1], p[2] }, 2, &res), 0);
        ck_assert_uint_eq(res.first_seq, 5);
        ck_assert_str_ne(res.first_prev, AUDIT_ZERO_HASH);
        /* but not without its rotate record */
        write_all_lines(p[1], w[1] + 1, 3);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[1], p[2] }, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 0, 1);
        ck_assert_ptr_nonnull(strstr(res.message, "seq 6 (map-allow)"));
        write_all_lines(p[1], w[1], 4);
        /* an empty file in the middle */
        spew(p[1], "", 0, false);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[1], p[2] }, 3, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_EMPTY, 1, 0);
        write_all_lines(p[1], w[1], 4);
        /* a file that cannot be read */
        char *missing = join(dir, "nope");
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], missing }, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_int_eq(res.error, AUDIT_BREAK_IO);
        ck_assert_int_eq(res.io_error, -ENOENT);
        ck_assert_uint_eq(res.file_index, 1);
        free(missing);
        /* the first file of another chain spliced in */
        audit_link_init(&l);
        time_base += 7;
        char **other = make_lines(&l, 6);
        time_base -= 7;
        write_all_lines(p[1], other + 4, 2);   /* seq 5 and 6 of a different chain */
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[1] }, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_PREV, 1, 1);
        /* a new chain after an old one */
        write_all_lines(p[1], other, 2);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { p[0], p[1] }, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_RESTART, 1, 1);
        free_lines(other, 6);
        for (size_t i = 0; i < 3; i++) {
                free_lines(w[i], 4);
                free(p[i]);
        }
        tmpdir_free(dir);
}
END_TEST

/* A torn line, terminated and witnessed by a recovered record, verifies. */
START_TEST(test_verify_witness) {
        AuditVerifyResult res;
        struct json_object *data;
        char *dir = tmpdir_new(), *path = join(dir, "audit.log"), *rline = NULL, h[AUDIT_HEX_SIZE];
        const char *torn = "{\"data\":{\"gpa\":40";
        AuditLink l, after;
        char **v;
        FILE *f;

        audit_link_init(&l);
        v = make_lines(&l, 2);
        sha256(torn, strlen(torn), h);
        data = json_object_new_object();
        json_object_object_add(data, AUDIT_DATA_TORN_BYTES, json_object_new_int((int) strlen(torn)));
        json_object_object_add(data, AUDIT_DATA_TORN_SHA256, json_object_new_string(h));
        ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_RECOVERED, .data = data }, &l, 0, 0,
                                            &rline, NULL, &after), 0);
        f = fopen(path, "we");
        fprintf(f, "%s\n%s\n%s\n%s\n", v[0], v[1], torn, rline);
        fclose(f);
        ck_assert_int_eq(verify1(path, &res), 0);
        ck_assert_uint_eq(res.torn, 1);
        ck_assert_uint_eq(res.records, 3);
        ck_assert_str_eq(res.last_digest, after.digest);

        /* the torn line altered: the witness no longer matches */
        f = fopen(path, "we");
        fprintf(f, "%s\n%s\n%s1\n%s\n", v[0], v[1], torn, rline);
        fclose(f);
        ck_assert_int_eq(verify1(path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_BAD_JSON, 0, 3);
        ck_assert_ptr_nonnull(strstr(res.message, "other bytes"));

        /* the torn line removed: a witness of nothing */
        f = fopen(path, "we");
        fprintf(f, "%s\n%s\n%s\n", v[0], v[1], rline);
        fclose(f);
        ck_assert_int_eq(verify1(path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_WITNESS, 0, 3);

        /* a bad line without a witness; two bad lines in a row */
        f = fopen(path, "we");
        fprintf(f, "%s\n%s\n%s\n%s\n", v[0], torn, torn, v[1]);
        fclose(f);
        ck_assert_int_eq(verify1(path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_BAD_JSON, 0, 2);

        /* a new log whose first write was torn: the recovered record that
         * witnesses it is seq 1, where a file may start */
        free(rline);
        audit_link_init(&l);
        ck_assert_int_eq(audit_record_build(&(AuditEvent) { .kind = AUDIT_KIND_RECOVERED, .data = data }, &l, 0, 0,
                                            &rline, NULL, &after), 0);
        f = fopen(path, "we");
        fprintf(f, "%s\n%s\n", torn, rline);
        fclose(f);
        ck_assert_int_eq(verify1(path, &res), 0);
        ck_assert_uint_eq(res.first_seq, 1);
        ck_assert_uint_eq(res.torn, 1);

        json_object_put(data);
        free(rline);
        free_lines(v, 2);
        free(path);
        tmpdir_free(dir);
}
END_TEST

/* ---- the writer ----------------------------------------------------------- */

typedef struct Counter {
        unsigned calls, ok, failed;
        int last_r;
} Counter;

static void on_done(void *userdata, int r) {
        Counter *c = userdata;

        c->calls++;
        if (r < 0)
                c->failed++;
        else
                c->ok++;
        c->last_r = r;
}

static void on_tick(evutil_socket_t fd, short what, void *userdata) {
}

/* Run the loop until *calls reaches want (or fail after 30 s). */
static void run_until(struct event_base *base, const unsigned *calls, unsigned want) {
        struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
        struct timeval tv = { 0, 5000 };
        uint64_t deadline = now_ns_test() + 30ULL * 1000000000ULL;

        event_add(tick, &tv);
        while (*calls < want) {
                ck_assert_msg(now_ns_test() < deadline, "timed out: %u of %u", *calls, want);
                event_base_loop(base, EVLOOP_ONCE);
        }
        event_free(tick);
}

static void run_for_ms(struct event_base *base, unsigned ms) {
        struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
        struct timeval tv = { 0, 5000 };
        uint64_t end = now_ns_test() + (uint64_t) ms * 1000000ULL;

        event_add(tick, &tv);
        while (now_ns_test() < end)
                event_base_loop(base, EVLOOP_ONCE);
        event_free(tick);
}

typedef struct Env {
        char *dir, *path;
        struct event_base *base;
        AuditConfig cfg;
} Env;

static void env_new(Env *e) {
        e->dir = tmpdir_new();
        e->path = join(e->dir, "audit.log");
        e->base = event_base_new();
        ck_assert_ptr_nonnull(e->base);
        e->cfg = (AuditConfig) { .path = e->path, .sync = AUDIT_SYNC_ALWAYS };
}

static void env_free(Env *e) {
        event_base_free(e->base);
        free(e->path);
        tmpdir_free(e->dir);
}

static Audit *env_open(Env *e) {
        Audit *a = NULL;
        ck_assert_int_eq(audit_open(e->base, &e->cfg, &a), 0);
        return a;
}

static void append_n(Audit *a, unsigned n, Counter *c) {
        for (unsigned i = 0; i < n; i++) {
                AuditEvent ev = sample_event(i);
                ck_assert_int_eq(audit_append(a, &ev, on_done, c), 0);
        }
}

static void verify_paths_ok(const char *const *p, size_t n, uint64_t records) {
        AuditVerifyResult res;
        int r = audit_verify_files(p, n, &res);
        ck_assert_msg(r == 0, "%s at %s:%" PRIu64 ": %s", audit_break_to_string(res.error), res.file, res.line,
                      res.message);
        ck_assert_uint_eq(res.records, records);
}

static void verify_ok(const char *path, uint64_t records) {
        verify_paths_ok((const char *const[]) { path }, 1, records);
}

START_TEST(test_writer_basic) {
        Counter c = {};
        AuditStats st;
        struct stat s;
        Audit *a;
        Env e;

        env_new(&e);
        a = env_open(&e);
        ck_assert_str_eq(audit_path(a), e.path);
        ck_assert(!audit_is_degraded(a));
        ck_assert_int_eq(stat(e.path, &s), 0);
        ck_assert_uint_eq(s.st_mode & 07777, 0600);
        append_n(a, 10, &c);
        ck_assert_uint_eq(audit_last_seq(a), 10);
        ck_assert_int_eq(audit_emit(a, &(AuditEvent) { .kind = AUDIT_KIND_DAEMON_START }), 0);
        ck_assert_uint_eq(audit_last_seq(a), 11);
        /* bad events are refused up front, without a callback */
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_SESSION_OPEN }, on_done, &c), -EINVAL);
        run_until(e.base, &c.calls, 10);
        ck_assert_uint_eq(c.ok, 10);
        audit_get_stats(a, &st);
        while (st.records < 11) {
                run_for_ms(e.base, 5);
                audit_get_stats(a, &st);
        }
        ck_assert_uint_eq(st.records, 11);
        ck_assert_uint_eq(st.failed, 0);
        ck_assert_uint_ge(st.syncs, 1);
        ck_assert_uint_eq(st.last_seq, 11);
        ck_assert_uint_eq(st.queued, 0);
        ck_assert_uint_gt(st.bytes, 11 * 200);
        ck_assert_uint_eq(st.latency_count, 11);
        ck_assert_int_eq(st.sync, AUDIT_SYNC_ALWAYS);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 11);
        ck_assert_uint_eq(c.calls, 10);
        env_free(&e);
}
END_TEST

START_TEST(test_writer_refuses) {
        Audit *a = NULL;
        char *link, *fifo;
        Env e;

        env_new(&e);
        link = join(e.dir, "link");
        ck_assert_int_eq(symlink("audit.log", link), 0);
        e.cfg.path = link;
        ck_assert_int_eq(audit_open(e.base, &e.cfg, &a), -ELOOP);
        fifo = join(e.dir, "fifo");
        ck_assert_int_eq(mkfifo(fifo, 0600), 0);
        e.cfg.path = fifo;
        ck_assert_int_lt(audit_open(e.base, &e.cfg, &a), 0);      /* no reader: ENXIO, never a hang */
        e.cfg.path = e.dir;
        ck_assert_int_lt(audit_open(e.base, &e.cfg, &a), 0);
        e.cfg.path = "";
        ck_assert_int_eq(audit_open(e.base, &e.cfg, &a), -EINVAL);
        free(link);
        free(fifo);
        env_free(&e);
}
END_TEST

/* Records arriving while a sync is in flight share the next one: the
 * first fdatasync is held until 499 more records are queued. */
typedef struct Gate {
        int entered;                    /* the sync thread is in the first sync */
        int open;
} Gate;

static int on_gate(void *userdata, AuditIoOp op, size_t len) {
        Gate *g = userdata;

        if (op != AUDIT_IO_SYNC || __atomic_exchange_n(&g->entered, 1, __ATOMIC_SEQ_CST))
                return 0;
        while (!__atomic_load_n(&g->open, __ATOMIC_SEQ_CST))
                usleep(1000);
        return 0;
}

START_TEST(test_group_commit) {
        Gate g = {};
        Counter c = {};
        AuditStats st;
        Audit *a;
        Env e;

        env_new(&e);
        e.cfg.fault = on_gate;
        e.cfg.fault_userdata = &g;
        a = env_open(&e);
        append_n(a, 1, &c);
        while (!__atomic_load_n(&g.entered, __ATOMIC_SEQ_CST))
                usleep(1000);
        append_n(a, 499, &c);
        /* the loop runs while the first sync is held: nothing may complete
         * before its fdatasync, not even the record already written */
        run_for_ms(e.base, 50);
        ck_assert_uint_eq(c.calls, 0);
        audit_get_stats(a, &st);
        ck_assert_uint_eq(st.records, 0);
        ck_assert_uint_eq(st.queued, 500);
        __atomic_store_n(&g.open, 1, __ATOMIC_SEQ_CST);
        run_until(e.base, &c.calls, 500);
        ck_assert_uint_eq(c.ok, 500);
        audit_get_stats(a, &st);
        ck_assert_uint_eq(st.records, 500);
        ck_assert_uint_eq(st.syncs, 2);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 500);
        env_free(&e);
}
END_TEST

START_TEST(test_resume) {
        Counter c = {};
        Audit *a;
        Env e;

        env_new(&e);
        for (unsigned round = 0; round < 3; round++) {
                a = env_open(&e);
                ck_assert_uint_eq(audit_last_seq(a), round * 5);
                append_n(a, 5, &c);
                run_until(e.base, &c.calls, (round + 1) * 5);
                ck_assert_int_eq(audit_close(a), 0);
                verify_ok(e.path, (round + 1) * 5);
        }
        env_free(&e);
}
END_TEST

START_TEST(test_torn_recovery) {
        static const char torn[] = "{\"data\":{\"gpa\":4096,\"loc";
        Counter c = {};
        AuditVerifyResult res;
        AuditRecord rec;
        AuditStats st;
        Lines l;
        Audit *a;
        char *all;
        Env e;

        env_new(&e);
        a = env_open(&e);
        append_n(a, 5, &c);
        run_until(e.base, &c.calls, 5);
        ck_assert_int_eq(audit_close(a), 0);

        /* a crash in the middle of writing record 6 */
        spew(e.path, torn, strlen(torn), true);
        ck_assert_int_eq(verify1(e.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_TORN_TAIL, 0, 6);

        a = env_open(&e);
        ck_assert_uint_eq(audit_last_seq(a), 6);      /* the recovered record */
        audit_get_stats(a, &st);
        ck_assert_uint_eq(st.records, 1);
        verify_ok(e.path, 6);
        ck_assert_int_eq(verify1(e.path, &res), 0);
        ck_assert_uint_eq(res.torn, 1);

        /* the torn bytes are still there, on their own line */
        l = file_lines(e.path);
        ck_assert_uint_eq(l.n, 7);
        ck_assert_str_eq(l.v[5], torn);
        ck_assert_int_eq(audit_record_parse(l.v[6], strlen(l.v[6]), &rec, NULL), 0);
        ck_assert_int_eq(rec.kind, AUDIT_KIND_RECOVERED);
        ck_assert_uint_eq(rec.seq, 6);
        {
                struct json_object *d = json_object_object_get(rec.root, "data");
                char h[AUDIT_HEX_SIZE];
                sha256(torn, strlen(torn), h);
                ck_assert_int_eq(json_object_get_int(json_object_object_get(d, AUDIT_DATA_TORN_BYTES)), (int) strlen(torn));
                ck_assert_str_eq(json_object_get_string(json_object_object_get(d, AUDIT_DATA_TORN_SHA256)), h);
                all = slurp(e.path, NULL);
                ck_assert_int_eq(json_object_get_int(json_object_object_get(d, AUDIT_DATA_TORN_OFFSET)),
                                 (int) (strstr(all, torn) - all));
                free(all);
        }
        audit_record_done(&rec);
        lines_free(&l);

        append_n(a, 3, &c);
        run_until(e.base, &c.calls, 8);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 9);

        /* a complete record that lost only its newline gets it back */
        all = slurp(e.path, NULL);
        ck_assert_int_eq(truncate(e.path, (off_t) strlen(all) - 1), 0);
        free(all);
        a = env_open(&e);
        ck_assert_uint_eq(audit_last_seq(a), 10);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 10);
        ck_assert_int_eq(verify1(e.path, &res), 0);
        ck_assert_uint_eq(res.torn, 1);

        /* the first record of a new file torn */
        spew(e.path, torn, strlen(torn), false);
        a = env_open(&e);
        ck_assert_uint_eq(audit_last_seq(a), 1);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 1);
        env_free(&e);
}
END_TEST

/* Damage that a crash cannot leave is for a person to look at. */
START_TEST(test_damaged_refused) {
        Counter c = {};
        Audit *a = NULL;
        Lines l;
        char *m;
        Env e;

        env_new(&e);
        a = env_open(&e);
        append_n(a, 3, &c);
        run_until(e.base, &c.calls, 3);
        ck_assert_int_eq(audit_close(a), 0);
        l = file_lines(e.path);
        m = replace(l.v[2], "\"web1\"", "\"web7\"");
        write_order(e.path, (char *[]) { l.v[0], l.v[1], m }, (const size_t[]) { 0, 1, 2 }, 3);
        a = NULL;
        ck_assert_int_eq(audit_open(e.base, &e.cfg, &a), -EBADMSG);
        ck_assert_ptr_null(a);
        free(m);
        lines_free(&l);
        env_free(&e);
}
END_TEST

static char *rotated_path(const Env *e, uint64_t seq) {
        char *s = NULL;
        ck_assert_int_ge(asprintf(&s, "%s.%020" PRIu64, e->path, seq), 0);
        return s;
}

START_TEST(test_rotate) {
        Counter c = {}, rc = {};
        AuditRecord rec;
        AuditStats st;
        Lines l;
        Audit *a;
        char *r1, *r2;
        Env e;

        env_new(&e);
        a = env_open(&e);
        append_n(a, 3, &c);
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), -EBUSY);
        append_n(a, 3, &c);             /* queued behind the rotation: go to the new file */
        run_until(e.base, &c.calls, 6);
        ck_assert_uint_eq(rc.calls, 1);
        ck_assert_int_eq(rc.last_r, 0);
        ck_assert_uint_eq(c.ok, 6);
        audit_get_stats(a, &st);
        ck_assert_uint_eq(st.rotations, 1);

        r1 = rotated_path(&e, 3);
        verify_ok(r1, 3);
        verify_ok(e.path, 4);
        verify_paths_ok((const char *const[]) { r1, e.path }, 2, 7);
        l = file_lines(e.path);
        ck_assert_int_eq(audit_record_parse(l.v[0], strlen(l.v[0]), &rec, NULL), 0);
        ck_assert_int_eq(rec.kind, AUDIT_KIND_ROTATE);
        ck_assert_uint_eq(rec.seq, 4);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(json_object_object_get(rec.root, "data"),
                                                                      "previous_file")),
                         "audit.log.00000000000000000003");
        audit_record_done(&rec);
        lines_free(&l);

        /* again, then reopen and go on: three files, one chain */
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 2);
        ck_assert_int_eq(rc.last_r, 0);
        ck_assert_int_eq(audit_close(a), 0);
        a = env_open(&e);
        ck_assert_uint_eq(audit_last_seq(a), 8);
        append_n(a, 2, &c);
        run_until(e.base, &c.calls, 8);
        ck_assert_int_eq(audit_close(a), 0);
        r2 = rotated_path(&e, 7);
        verify_paths_ok((const char *const[]) { r1, r2, e.path }, 3, 10);

        AuditVerifyResult res;
        ck_assert_int_eq(audit_verify_files((const char *const[]) { r2, r1, e.path }, 3, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_RESTART, 1, 1);
        ck_assert_ptr_nonnull(strstr(res.message, "out of order"));
        ck_assert_int_eq(audit_verify_files((const char *const[]) { r1, r2, r2 }, 3, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_ORDER, 2, 1);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { r1, e.path }, 2, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_SEQ_GAP, 1, 1);
        free(r1);
        free(r2);
        env_free(&e);
}
END_TEST

/* Fault injection: fail every fdatasync while armed, or tear a write. */
typedef struct Faults {
        bool fail_sync;
        int tear_write;                 /* > 0: the next write stops after this many bytes */
        bool fail_rotate;
} Faults;

static int on_fault(void *userdata, AuditIoOp op, size_t len) {
        Faults *f = userdata;

        /* runs on the sync thread */
        switch (op) {
        case AUDIT_IO_SYNC:
                return __atomic_load_n(&f->fail_sync, __ATOMIC_SEQ_CST) ? -EIO : 0;
        case AUDIT_IO_WRITE:
                return __atomic_exchange_n(&f->tear_write, 0, __ATOMIC_SEQ_CST);
        case AUDIT_IO_ROTATE:
                return __atomic_load_n(&f->fail_rotate, __ATOMIC_SEQ_CST) ? -ENOSPC : 0;
        }
        return 0;
}

START_TEST(test_sync_failure) {
        Counter c = {}, bad = {}, rc = {};
        Faults f = {};
        AuditRecord rec;
        AuditStats st;
        Lines l;
        Audit *a;
        char *r1;
        Env e;

        env_new(&e);
        e.cfg.fault = on_fault;
        e.cfg.fault_userdata = &f;
        a = env_open(&e);
        append_n(a, 5, &c);
        run_until(e.base, &c.calls, 5);
        ck_assert_uint_eq(c.ok, 5);

        __atomic_store_n(&f.fail_sync, true, __ATOMIC_SEQ_CST);
        append_n(a, 5, &bad);
        run_until(e.base, &bad.calls, 5);
        ck_assert_uint_eq(bad.failed, 5);
        ck_assert_int_eq(bad.last_r, -EIO);
        ck_assert(audit_is_degraded(a));
        audit_get_stats(a, &st);
        ck_assert(st.degraded);
        ck_assert_int_eq(st.last_error, -EIO);
        ck_assert_str_eq(st.last_error_op, "fdatasync");
        ck_assert_uint_eq(st.failed, 5);
        /* fail closed: nothing more is accepted */
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP }, on_done, &bad), -EIO);
        ck_assert_int_eq(audit_emit(a, &(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP }), -EIO);

        /* a rotation that fails too leaves it degraded */
        __atomic_store_n(&f.fail_rotate, true, __ATOMIC_SEQ_CST);
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 1);
        ck_assert_int_eq(rc.last_r, -ENOSPC);
        ck_assert(audit_is_degraded(a));

        /* the disk is back: rotating restores the log */
        __atomic_store_n(&f.fail_rotate, false, __ATOMIC_SEQ_CST);
        __atomic_store_n(&f.fail_sync, false, __ATOMIC_SEQ_CST);
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 2);
        ck_assert_int_eq(rc.last_r, 0);
        ck_assert(!audit_is_degraded(a));
        append_n(a, 2, &c);
        run_until(e.base, &c.calls, 7);
        ck_assert_uint_eq(c.ok, 7);
        ck_assert_int_eq(audit_close(a), 0);

        /* the records whose sync failed are in the old file (written, not
         * confirmed; how many depends on how the thread batched them); the
         * rotate record says from where */
        l = file_lines(e.path);
        ck_assert_uint_eq(l.n, 3);
        ck_assert_int_eq(audit_record_parse(l.v[0], strlen(l.v[0]), &rec, NULL), 0);
        ck_assert_int_eq(rec.kind, AUDIT_KIND_ROTATE);
        ck_assert_uint_ge(rec.seq, 7);
        ck_assert_uint_le(rec.seq, 11);
        ck_assert_int_eq(json_object_get_int(json_object_object_get(json_object_object_get(rec.root, "data"),
                                                                   "unconfirmed_from")), 6);
        r1 = rotated_path(&e, rec.seq - 1);
        ck_assert_str_eq(json_object_get_string(json_object_object_get(json_object_object_get(rec.root, "data"),
                                                                      "previous_file")), strrchr(r1, '/') + 1);
        verify_paths_ok((const char *const[]) { r1, e.path }, 2, rec.seq + 2);
        audit_record_done(&rec);
        lines_free(&l);
        free(r1);
        env_free(&e);
}
END_TEST

START_TEST(test_write_failure_torn) {
        Counter c = {}, bad = {}, rc = {};
        AuditVerifyResult res;
        Faults f = {};
        Audit *a;
        char *r1;
        Env e;

        env_new(&e);
        e.cfg.fault = on_fault;
        e.cfg.fault_userdata = &f;
        a = env_open(&e);
        append_n(a, 4, &c);
        run_until(e.base, &c.calls, 4);
        __atomic_store_n(&f.tear_write, 100, __ATOMIC_SEQ_CST);
        append_n(a, 3, &bad);
        run_until(e.base, &bad.calls, 3);
        ck_assert_uint_eq(bad.failed, 3);
        ck_assert(audit_is_degraded(a));
        ck_assert_int_eq(verify1(e.path, &res), AUDIT_VERIFY_BROKEN);
        ck_assert_break(res, AUDIT_BREAK_TORN_TAIL, 0, 5);

        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 1);
        ck_assert_int_eq(rc.last_r, 0);
        ck_assert_uint_eq(audit_last_seq(a), 5);
        append_n(a, 1, &c);
        run_until(e.base, &c.calls, 5);
        ck_assert_int_eq(audit_close(a), 0);
        r1 = rotated_path(&e, 4);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { r1, e.path }, 2, &res), 0);
        ck_assert_uint_eq(res.records, 6);
        ck_assert_uint_eq(res.torn, 1);
        free(r1);
        env_free(&e);
}
END_TEST

/* The kernel refusing a write halfway (EFBIG), no hooks involved. */
START_TEST(test_write_failure_rlimit) {
        Counter c = {}, bad = {}, rc = {};
        struct rlimit old, lim;
        AuditVerifyResult res;
        struct stat s;
        Audit *a;
        char *r1;
        Env e;

        env_new(&e);
        signal(SIGXFSZ, SIG_IGN);
        a = env_open(&e);
        append_n(a, 3, &c);
        run_until(e.base, &c.calls, 3);
        ck_assert_int_eq(stat(e.path, &s), 0);
        ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = (rlim_t) s.st_size + 150;
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
        append_n(a, 4, &bad);
        run_until(e.base, &bad.calls, 4);
        ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
        ck_assert_uint_eq(bad.failed, 4);
        ck_assert_int_eq(bad.last_r, -EFBIG);
        ck_assert(audit_is_degraded(a));

        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 1);
        ck_assert_int_eq(rc.last_r, 0);
        ck_assert_int_eq(audit_close(a), 0);
        r1 = rotated_path(&e, 3);
        ck_assert_int_eq(audit_verify_files((const char *const[]) { r1, e.path }, 2, &res), 0);
        ck_assert_uint_eq(res.records, 4);
        ck_assert_uint_eq(res.torn, 1);
        free(r1);
        env_free(&e);
}
END_TEST

START_TEST(test_interval_and_off) {
        Counter c = {};
        AuditStats st;
        uint64_t t0;
        Audit *a;
        Env e;

        env_new(&e);
        e.cfg.sync = AUDIT_SYNC_INTERVAL;
        e.cfg.interval_msec = 30;
        a = env_open(&e);
        t0 = now_ns_test();
        append_n(a, 20, &c);
        run_until(e.base, &c.calls, 20);
        ck_assert_uint_eq(c.ok, 20);
        /* the sync comes within the interval of the first write: allow 3x
         * the interval and some slack for a loaded machine, not seconds */
        do {
                audit_get_stats(a, &st);
                if (st.syncs > 0)
                        break;
                run_for_ms(e.base, 2);
        } while (now_ns_test() - t0 < (3 * 30 + 60) * 1000000ULL);
        ck_assert_msg(st.syncs >= 1, "no sync %" PRIu64 " ms after the writes with sync-interval 30 ms",
                      (now_ns_test() - t0) / 1000000);
        ck_assert_uint_le(st.syncs, 3);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 20);

        e.cfg.sync = AUDIT_SYNC_OFF;
        a = env_open(&e);
        append_n(a, 20, &c);
        run_until(e.base, &c.calls, 40);
        run_for_ms(e.base, 50);
        audit_get_stats(a, &st);
        ck_assert_uint_eq(st.syncs, 0);
        ck_assert_uint_eq(st.records, 20);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 40);
        env_free(&e);
}
END_TEST

typedef struct Tail {
        Audit *audit;
        AuditSubscription *sub;
        unsigned n, stop_after;
        uint64_t seqs[64];
        char *lines[64];
} Tail;

static void on_tail(void *userdata, const AuditTailRecord *rec) {
        Tail *t = userdata;

        ck_assert_uint_lt(t->n, 64);
        ck_assert_uint_eq(strlen(rec->line), rec->len);
        t->seqs[t->n] = rec->seq;
        t->lines[t->n] = strdup(rec->line);
        t->n++;
        if (t->stop_after && t->n == t->stop_after)
                t->sub = audit_unsubscribe(t->sub);
}

START_TEST(test_subscribe) {
        Tail t1 = {}, t2 = { .stop_after = 2 }, t3 = {};
        Counter c = {};
        Lines l;
        Audit *a;
        Env e;

        env_new(&e);
        a = env_open(&e);
        ck_assert_int_eq(audit_subscribe(a, on_tail, &t1, &t1.sub), 0);
        ck_assert_int_eq(audit_subscribe(a, on_tail, &t2, &t2.sub), 0);
        append_n(a, 5, &c);
        ck_assert_int_eq(audit_subscribe(a, on_tail, &t3, &t3.sub), 0);   /* from seq 6 on */
        append_n(a, 2, &c);
        run_until(e.base, &c.calls, 7);
        ck_assert_uint_eq(t1.n, 7);
        ck_assert_uint_eq(t2.n, 2);
        ck_assert_ptr_null(t2.sub);
        ck_assert_uint_eq(t3.n, 2);
        ck_assert_uint_eq(t3.seqs[0], 6);
        l = file_lines(e.path);
        ck_assert_uint_eq(l.n, 7);
        for (unsigned i = 0; i < 7; i++) {
                ck_assert_uint_eq(t1.seqs[i], i + 1);
                ck_assert_str_eq(t1.lines[i], l.v[i]);
        }
        lines_free(&l);
        t1.sub = audit_unsubscribe(t1.sub);
        ck_assert_int_eq(audit_close(a), 0);     /* frees t3's subscription */
        for (unsigned i = 0; i < t1.n; i++)
                free(t1.lines[i]);
        for (unsigned i = 0; i < t2.n; i++)
                free(t2.lines[i]);
        for (unsigned i = 0; i < t3.n; i++)
                free(t3.lines[i]);
        env_free(&e);
}
END_TEST

START_TEST(test_queue_limit) {
        Counter c = {};
        Audit *a;
        Env e;

        env_new(&e);
        e.cfg.max_queued_records = 4;
        a = env_open(&e);
        append_n(a, 4, &c);
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP }, on_done, &c), -ENOBUFS);
        run_until(e.base, &c.calls, 4);
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP }, on_done, &c), 0);
        run_until(e.base, &c.calls, 5);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 5);
        env_free(&e);
}
END_TEST

/* audit_close() writes and syncs everything and answers every caller. */
START_TEST(test_close_flushes) {
        Counter c = {};
        Audit *a;
        Env e;

        env_new(&e);
        a = env_open(&e);
        append_n(a, 100, &c);
        ck_assert_int_eq(audit_close(a), 0);
        ck_assert_uint_eq(c.ok, 100);
        verify_ok(e.path, 100);
        env_free(&e);
}
END_TEST

/* A crash between the two renames of a rotation. */
START_TEST(test_interrupted_rotation) {
        Counter c = {}, rc = {};
        char *r1, *tmp;
        Audit *a;
        Env e;

        env_new(&e);
        a = env_open(&e);
        append_n(a, 3, &c);
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 1);
        ck_assert_int_eq(audit_close(a), 0);
        /* undo the last rename: <path>.new holds the new file, no <path> */
        tmp = join(e.dir, "audit.log.new");
        ck_assert_int_eq(rename(e.path, tmp), 0);
        a = env_open(&e);
        ck_assert_uint_eq(audit_last_seq(a), 4);
        append_n(a, 1, &c);
        run_until(e.base, &c.calls, 4);
        ck_assert_int_eq(audit_close(a), 0);
        r1 = rotated_path(&e, 3);
        verify_paths_ok((const char *const[]) { r1, e.path }, 2, 5);

        /* a stale <path>.new next to <path> never took effect: removed */
        spew(tmp, "junk", 4, false);
        a = env_open(&e);
        ck_assert_int_eq(access(tmp, F_OK), -1);
        ck_assert_uint_eq(audit_last_seq(a), 5);
        ck_assert_int_eq(audit_close(a), 0);
        free(r1);
        free(tmp);
        env_free(&e);
}
END_TEST

/* Journal mirroring.  The writer calls sd_journal_sendv() and
 * sd_journal_send() (through sd-journal.h's *_with_location macros); the
 * definitions here take their place at link time (libkvmid-core is a
 * static convenience library, so the executable's own symbols win over
 * libsystemd's), record every entry, and never reach a real journal. */
#define JOURNAL_MAX 256

typedef struct JournalEntry {
        size_t n;
        char *field[16];
} JournalEntry;

static JournalEntry journal_seen[JOURNAL_MAX];
static size_t journal_n;

static void journal_reset(void) {
        for (size_t i = 0; i < journal_n; i++)
                for (size_t k = 0; k < journal_seen[i].n; k++)
                        free(journal_seen[i].field[k]);
        journal_n = 0;
}

static void journal_add_field(JournalEntry *e, char *f) {
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_lt(e->n, ELEMENTSOF(e->field));
        e->field[e->n++] = f;
}

int sd_journal_sendv_with_location(const char *file, const char *line, const char *func, const struct iovec *iov, int n) {
        JournalEntry *e;

        ck_assert_uint_lt(journal_n, JOURNAL_MAX);
        e = &journal_seen[journal_n++];
        e->n = 0;
        for (int i = 0; i < n; i++)
                journal_add_field(e, strndup(iov[i].iov_base, iov[i].iov_len));
        return 0;
}

/* The varargs form: "FIELD=format", its arguments, ..., NULL.  Only the
 * conversions a journal call here can use: %s %d %u %lu %llu (PRIu64) %%. */
int sd_journal_send_with_location(const char *file, const char *line, const char *func, const char *format, ...) {
        JournalEntry *e;
        va_list ap;

        ck_assert_uint_lt(journal_n, JOURNAL_MAX);
        e = &journal_seen[journal_n++];
        e->n = 0;
        va_start(ap, format);
        for (const char *fmt = format; fmt; fmt = va_arg(ap, const char *)) {
                char *out = NULL;
                size_t len = 0;
                FILE *f = open_memstream(&out, &len);

                ck_assert_ptr_nonnull(f);
                for (const char *p = fmt; *p; p++) {
                        unsigned longs = 0;

                        if (*p != '%') {
                                fputc(*p, f);
                                continue;
                        }
                        p++;
                        while (*p == 'l') {
                                longs++;
                                p++;
                        }
                        switch (*p) {
                        case '%':
                                fputc('%', f);
                                break;
                        case 's':
                                fputs(va_arg(ap, const char *), f);
                                break;
                        case 'd':
                                if (longs == 0)
                                        fprintf(f, "%d", va_arg(ap, int));
                                else
                                        fprintf(f, "%lld", longs == 1 ? (long long) va_arg(ap, long) : va_arg(ap, long long));
                                break;
                        case 'u':
                                if (longs == 0)
                                        fprintf(f, "%u", va_arg(ap, unsigned));
                                else
                                        fprintf(f, "%llu", longs == 1 ? (unsigned long long) va_arg(ap, unsigned long)
                                                                      : va_arg(ap, unsigned long long));
                                break;
                        default:
                                ck_abort_msg("journal format \"%s\": conversion not handled here", fmt);
                        }
                }
                ck_assert_int_eq(fclose(f), 0);
                journal_add_field(e, out);
        }
        va_end(ap);
        return 0;
}

static bool same_str(const char *a, const char *b) {
        return a && b && streq(a, b);
}

/* The value of FIELD= in entry e, or NULL. */
static const char *journal_field(const JournalEntry *e, const char *name) {
        size_t n = strlen(name);

        for (size_t k = 0; k < e->n; k++)
                if (strncmp(e->field[k], name, n) == 0 && e->field[k][n] == '=')
                        return e->field[k] + n + 1;
        return NULL;
}

static size_t journal_count(const char *message_id) {
        size_t n = 0;

        for (size_t i = 0; i < journal_n; i++)
                n += same_str(journal_field(&journal_seen[i], "MESSAGE_ID"), message_id);
        return n;
}

static const JournalEntry *journal_find(const char *message_id, size_t nth) {
        for (size_t i = 0; i < journal_n; i++)
                if (same_str(journal_field(&journal_seen[i], "MESSAGE_ID"), message_id) && nth-- == 0)
                        return &journal_seen[i];
        return NULL;
}

#define ck_assert_field(e, name, want)                                                                       \
        do {                                                                                                 \
                const char *_v = journal_field(e, name);                                                     \
                ck_assert_msg(_v && streq(_v, want), "%s=%s, want %s", name, _v ? _v : "(missing)", want); \
        } while (0)

/* Key events go to the journal with the chain position as an anchor and
 * the peer's strings sanitized in MESSAGE=; rate-limited per kind. */
START_TEST(test_journal) {
        Counter c = {};
        AuditStats st;
        const JournalEntry *j;
        char digest[AUDIT_HEX_SIZE + 1] = {}, seq[32];
        Lines l;
        Audit *a;
        Env e;

        journal_reset();
        env_new(&e);
        e.cfg.journal = true;
        a = env_open(&e);
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_DAEMON_START }, on_done, &c), 0);
        for (unsigned i = 0; i < 60; i++)
                ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_AUTH_FAIL, .introspector = "x\"\n",
                                                                 .peer = &peer, .rule = "p:1", .reason = "bad" },
                                              on_done, &c), 0);
        /* not a key event: the file only */
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_AUTH_OK, .introspector = "tool",
                                                         .peer = &peer },
                                      on_done, &c), 0);
        run_until(e.base, &c.calls, 62);
        audit_get_stats(a, &st);
        ck_assert_uint_eq(st.journal_suppressed, 10);
        ck_assert_int_eq(audit_close(a), 0);
        verify_ok(e.path, 62);
        l = file_lines(e.path);
        ck_assert_uint_eq(l.n, 62);

        /* daemon-start: one entry, anchored to its line in the file */
        ck_assert_uint_eq(journal_count(AUDIT_MESSAGE_DAEMON_START), 1);
        j = journal_find(AUDIT_MESSAGE_DAEMON_START, 0);
        sha256(l.v[0], strlen(l.v[0]), digest);
        ck_assert_field(j, "MESSAGE", "audit daemon-start (seq 1)");
        ck_assert_field(j, "PRIORITY", "6");
        ck_assert_field(j, "KVMID_AUDIT_KIND", "daemon-start");
        ck_assert_field(j, "KVMID_AUDIT_SEQ", "1");
        ck_assert_field(j, "KVMID_AUDIT_DIGEST", digest);
        ck_assert_field(j, "KVMID_AUDIT_PATH", e.path);
        ck_assert_ptr_null(journal_field(j, "KVMID_INTROSPECTOR"));
        ck_assert_ptr_null(journal_field(j, "KVMID_RULE"));

        /* auth-fail: 50 of 60 in the window, each with its own seq and digest */
        ck_assert_uint_eq(journal_count(AUDIT_MESSAGE_AUTH_FAIL), 50);
        for (unsigned i = 0; i < 50; i++) {
                j = journal_find(AUDIT_MESSAGE_AUTH_FAIL, i);
                snprintf(seq, sizeof seq, "%u", i + 2);
                sha256(l.v[i + 1], strlen(l.v[i + 1]), digest);
                ck_assert_field(j, "KVMID_AUDIT_SEQ", seq);
                ck_assert_field(j, "KVMID_AUDIT_DIGEST", digest);
                ck_assert_field(j, "KVMID_AUDIT_KIND", "auth-fail");
                ck_assert_field(j, "PRIORITY", "4");
                ck_assert_field(j, "KVMID_RULE", "p:1");
                /* the raw name in its own field; MESSAGE= is one line without quotes to fake fields with */
                ck_assert_field(j, "KVMID_INTROSPECTOR", "x\"\n");
                ck_assert_ptr_null(journal_field(j, "KVMID_AUDIT_SUPPRESSED"));
        }
        j = journal_find(AUDIT_MESSAGE_AUTH_FAIL, 0);
        ck_assert_field(j, "MESSAGE", "audit auth-fail introspector=\"x??\" (seq 2): bad");
        /* nothing else: auth-ok is not mirrored */
        ck_assert_uint_eq(journal_n, 51);
        for (size_t i = 0; i < journal_n; i++)
                ck_assert(!same_str(journal_field(&journal_seen[i], "KVMID_AUDIT_KIND"), "auth-ok"));
        lines_free(&l);
        env_free(&e);

        /* without journal = yes nothing is sent */
        journal_reset();
        env_new(&e);
        a = env_open(&e);
        c = (Counter) {};
        ck_assert_int_eq(audit_append(a, &(AuditEvent) { .kind = AUDIT_KIND_DAEMON_START }, on_done, &c), 0);
        run_until(e.base, &c.calls, 1);
        ck_assert_int_eq(audit_close(a), 0);
        ck_assert_uint_eq(journal_n, 0);
        env_free(&e);
}
END_TEST

/* The log's own state: degraded (a write failed), restored (rotated). */
static int fail_writes(void *userdata, AuditIoOp op, size_t len) {
        return op == AUDIT_IO_WRITE && __atomic_load_n((int *) userdata, __ATOMIC_SEQ_CST) ? -ENOSPC : 0;
}

START_TEST(test_journal_state) {
        Counter c = {}, rc = {};
        const JournalEntry *j;
        int failing = 0;
        Audit *a;
        Env e;

        journal_reset();
        env_new(&e);
        e.cfg.journal = true;
        e.cfg.fault = fail_writes;
        e.cfg.fault_userdata = &failing;
        a = env_open(&e);
        append_n(a, 2, &c);
        run_until(e.base, &c.calls, 2);
        __atomic_store_n(&failing, 1, __ATOMIC_SEQ_CST);
        append_n(a, 1, &c);
        run_until(e.base, &c.calls, 3);
        ck_assert_uint_eq(c.failed, 1);
        ck_assert(audit_is_degraded(a));
        ck_assert_uint_eq(journal_count(AUDIT_MESSAGE_DEGRADED), 1);
        j = journal_find(AUDIT_MESSAGE_DEGRADED, 0);
        ck_assert_field(j, "PRIORITY", "3");
        ck_assert_field(j, "KVMID_AUDIT_PATH", e.path);
        ck_assert_field(j, "KVMID_AUDIT_SEQ", "3");
        ck_assert_ptr_nonnull(strstr(journal_field(j, "MESSAGE"), "degraded: write failed"));
        ck_assert_uint_eq(journal_count(AUDIT_MESSAGE_RESTORED), 0);

        __atomic_store_n(&failing, 0, __ATOMIC_SEQ_CST);
        ck_assert_int_eq(audit_rotate(a, on_done, &rc), 0);
        run_until(e.base, &rc.calls, 1);
        ck_assert_int_eq(rc.last_r, 0);
        ck_assert(!audit_is_degraded(a));
        ck_assert_uint_eq(journal_count(AUDIT_MESSAGE_RESTORED), 1);
        j = journal_find(AUDIT_MESSAGE_RESTORED, 0);
        ck_assert_field(j, "PRIORITY", "5");
        ck_assert_field(j, "KVMID_AUDIT_PATH", e.path);
        /* the chain goes on from the old file's real end (seq 2): the rotate record is 3 */
        ck_assert_field(j, "KVMID_AUDIT_SEQ", "3");
        /* and the rotate record itself is a key event */
        ck_assert_uint_eq(journal_count(AUDIT_MESSAGE_ROTATE), 1);
        ck_assert_field(journal_find(AUDIT_MESSAGE_ROTATE, 0), "KVMID_AUDIT_SEQ", "3");
        ck_assert_int_eq(audit_close(a), 0);
        env_free(&e);
}
END_TEST

/* ---- kill -9 during a burst of durable appends ----------------------------- */

typedef struct Burst {
        Audit *audit;
        int out;
        unsigned outstanding;
        char reason[1500];
} Burst;

typedef struct BurstRecord {
        Burst *burst;
        uint64_t seq;
        char digest[AUDIT_HEX_SIZE];
} BurstRecord;

static void burst_append(Burst *b);

static void burst_done(void *userdata, int r) {
        BurstRecord *br = userdata;
        Burst *b = br->burst;
        char msg[100];
        int n;

        if (r >= 0) {
                n = snprintf(msg, sizeof msg, "%" PRIu64 " %s\n", br->seq, br->digest);
                if (write(b->out, msg, (size_t) n) != n)
                        _exit(3);
        }
        free(br);
        b->outstanding--;
        burst_append(b);
}

static void burst_append(Burst *b) {
        while (b->outstanding < 64) {
                BurstRecord *br = calloc(1, sizeof *br);
                AuditEvent ev = sample_event(b->outstanding);
                ev.reason = b->reason;          /* big records: writes span pages and can tear */
                br->burst = b;
                AuditLink l;
                if (audit_append(b->audit, &ev, burst_done, br) < 0)
                        _exit(4);
                audit_last_link(b->audit, &l);
                br->seq = l.seq;
                memcpy(br->digest, l.digest, AUDIT_HEX_SIZE);
                b->outstanding++;
        }
}

/* In the child: append forever, 64 outstanding, report each durable one. */
_noreturn_ static void burst_child(const char *path, int out) {
        struct event_base *base = event_base_new();
        AuditConfig cfg = { .path = path, .sync = AUDIT_SYNC_ALWAYS };
        Burst b = { .out = out };

        memset(b.reason, 'r', sizeof b.reason - 1);
        if (!base || audit_open(base, &cfg, &b.audit) < 0)
                _exit(2);
        burst_append(&b);
        event_base_dispatch(base);
        _exit(5);
}

static void check_durable_in_file(const char *path, const char *report) {
        /* every record reported durable is in the file, byte for byte */
        Lines l = file_lines(path);
        char (*d)[AUDIT_HEX_SIZE] = calloc(l.n ? l.n : 1, sizeof *d);
        const char *p = report;
        unsigned checked = 0;

        for (size_t i = 0; i < l.n; i++)
                sha256(l.v[i], strlen(l.v[i]), d[i]);
        while (*p) {
                uint64_t seq;
                char digest[AUDIT_HEX_SIZE];
                bool found = false;
                ck_assert_int_eq(sscanf(p, "%" SCNu64 " %64s", &seq, digest), 2);
                for (size_t i = 0; i < l.n && !found; i++)
                        found = streq(d[i], digest);
                ck_assert_msg(found, "durable record %" PRIu64 " is not in the file", seq);
                checked++;
                p = strchr(p, '\n');
                ck_assert_ptr_nonnull(p);
                p++;
        }
        ck_assert_uint_gt(checked, 0);
        free(d);
        lines_free(&l);
}

START_TEST(test_kill9) {
        struct event_base *base = event_base_new();
        AuditVerifyResult res;
        char *dir = tmpdir_new(), *path = join(dir, "audit.log");
        uint64_t records = 0;

        for (unsigned round = 0; round < 4; round++) {
                char *report = NULL;
                size_t rlen = 0, want = 100 + round * 150;
                unsigned lines = 0;
                int fds[2];
                pid_t pid;
                int status;

                ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        close(fds[0]);
                        burst_child(path, fds[1]);
                }
                close(fds[1]);
                /* kill it once enough records are durable: mid-burst */
                for (;;) {
                        char buf[4096];
                        ssize_t n = read(fds[0], buf, sizeof buf);
                        ck_assert_int_gt(n, 0);
                        report = realloc(report, rlen + (size_t) n + 1);
                        memcpy(report + rlen, buf, (size_t) n);
                        rlen += (size_t) n;
                        report[rlen] = 0;
                        for (ssize_t i = 0; i < n; i++)
                                lines += buf[i] == '\n';
                        if (lines >= want)
                                break;
                }
                ck_assert_int_eq(kill(pid, SIGKILL), 0);
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                /* what it said before dying */
                for (;;) {
                        char buf[4096];
                        ssize_t n = read(fds[0], buf, sizeof buf);
                        ck_assert_int_ge(n, 0);
                        if (n == 0)
                                break;
                        report = realloc(report, rlen + (size_t) n + 1);
                        memcpy(report + rlen, buf, (size_t) n);
                        rlen += (size_t) n;
                        report[rlen] = 0;
                }
                close(fds[0]);
                /* complete lines only: a report cut by the kill is not a claim */
                char *last = strrchr(report, '\n');
                ck_assert_ptr_nonnull(last);
                last[1] = 0;
                check_durable_in_file(path, report);
                free(report);

                /* reopen: a torn tail is recovered, the chain goes on */
                Audit *a = NULL;
                ck_assert_int_eq(audit_open(base, &(AuditConfig) { .path = path, .sync = AUDIT_SYNC_ALWAYS }, &a), 0);
                ck_assert_int_eq(audit_close(a), 0);
                ck_assert_int_eq(verify1(path, &res), 0);
                ck_assert_uint_gt(res.records, records);
                records = res.records;
        }
        free(path);
        tmpdir_free(dir);
        event_base_free(base);
}
END_TEST

int main(void) {
        Suite *s = suite_create("audit");
        TCase *tr = tcase_create("record"), *tv = tcase_create("verify"), *tw = tcase_create("writer");
        SRunner *sr;
        int failed;

        /* the writer logs the failures these tests cause on purpose */
        log_setup(getenv("CHECK_AUDIT_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERR - 1);

        tcase_add_test(tr, test_kind_names);
        tcase_add_test(tr, test_canonical);
        tcase_add_test(tr, test_time);
        tcase_add_test(tr, test_build_golden);
        tcase_add_test(tr, test_build_decisions);
        tcase_add_test(tr, test_build_invalid);
        tcase_add_test(tr, test_parse_roundtrip);
        tcase_add_test(tr, test_parse_errors);
        tcase_add_test(tr, test_tail_scan);
        suite_add_tcase(s, tr);

        tcase_add_test(tv, test_verify_intact);
        tcase_add_test(tv, test_verify_edited);
        tcase_add_test(tv, test_verify_deleted_swapped);
        tcase_add_test(tv, test_verify_truncated);
        tcase_add_test(tv, test_verify_files_order);
        tcase_add_test(tv, test_verify_witness);
        suite_add_tcase(s, tv);

        tcase_set_timeout(tw, 120);
        tcase_add_test(tw, test_writer_basic);
        tcase_add_test(tw, test_writer_refuses);
        tcase_add_test(tw, test_group_commit);
        tcase_add_test(tw, test_resume);
        tcase_add_test(tw, test_torn_recovery);
        tcase_add_test(tw, test_damaged_refused);
        tcase_add_test(tw, test_rotate);
        tcase_add_test(tw, test_sync_failure);
        tcase_add_test(tw, test_write_failure_torn);
        tcase_add_test(tw, test_write_failure_rlimit);
        tcase_add_test(tw, test_interval_and_off);
        tcase_add_test(tw, test_subscribe);
        tcase_add_test(tw, test_queue_limit);
        tcase_add_test(tw, test_close_flushes);
        tcase_add_test(tw, test_interrupted_rotation);
        tcase_add_test(tw, test_journal);
        tcase_add_test(tw, test_journal_state);
        tcase_add_test(tw, test_kill9);
        suite_add_tcase(s, tw);

        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
