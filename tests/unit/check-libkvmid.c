/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Unit tests for client/libkvmid.c: what needs no daemon (proof, key
 * files, reply parsing, error messages), then the public calls against a
 * scripted fake kvmid, a forked child on a Unix socket in a temp dir.
 *
 * The proof vectors were computed independently of this code, with
 * Python's hmac module:
 *   hmac.new(bytes(range(32)), b"kvmid-auth-v1\0" + bytes(range(0xa0, 0xc0))
 *            + b"tool\0" + b"unix:1000", hashlib.sha256).hexdigest()
 * and the proofs the fake server expects with OpenSSL's EVP_MAC API (not
 * the HMAC() the library uses). */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "libkvmid.h"
#include "libkvmid-internal.h"

static const char *const vector_proof = "84fec4ab77bbd059d2f81fbbafe0a6dbe0d639269878062efeebeaa25cf9bcf3";

static void vector_inputs(uint8_t key[32], uint8_t nonce[32]) {
        for (unsigned i = 0; i < 32; i++) {
                key[i] = (uint8_t) i;
                nonce[i] = (uint8_t) (0xa0 + i);
        }
}

/* HMAC-SHA256 through EVP_MAC: an implementation independent of the library's. */
static void evp_proof(const void *key, size_t key_len, const uint8_t nonce[32], const char *name, const char *binding,
                      char hex[65]) {
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
                OSSL_PARAM_construct_end(),
        };
        uint8_t out[32];
        size_t out_len = 0;

        if (!ctx || EVP_MAC_init(ctx, key, key_len, params) != 1 ||
            EVP_MAC_update(ctx, (const uint8_t *) "kvmid-auth-v1", 14) != 1 ||   /* with its NUL */
            EVP_MAC_update(ctx, nonce, 32) != 1 ||
            EVP_MAC_update(ctx, (const uint8_t *) name, strlen(name) + 1) != 1 ||
            EVP_MAC_update(ctx, (const uint8_t *) binding, strlen(binding)) != 1 ||
            EVP_MAC_final(ctx, out, &out_len, sizeof out) != 1 || out_len != 32)
                abort();
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        for (size_t i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", out[i]);
}

/* ---- proof -------------------------------------------------------------- */

START_TEST(test_proof_vector) {
        uint8_t key[32], nonce[32];
        char hex[65];

        vector_inputs(key, nonce);
        ck_assert_int_eq(libkvmid_proof(key, sizeof key, nonce, "tool", "unix:1000", hex), 0);
        ck_assert_str_eq(hex, vector_proof);

        /* Second Python vector: 40-byte key, a vsock binding. */
        uint8_t k40[40];
        memset(k40, 'k', sizeof k40);
        ck_assert_int_eq(libkvmid_proof(k40, sizeof k40, nonce, "scanner", "vsock:42", hex), 0);
        ck_assert_str_eq(hex, "a818edf774d0e4fcc75819b29a0e6036e2e22b2a39d2f4dd9ad4ec37c0108ec7");
}
END_TEST

START_TEST(test_proof_evp_mac) {
        uint8_t key[64], nonce[32];
        char got[65], want[65];

        for (unsigned i = 0; i < sizeof key; i++)
                key[i] = (uint8_t) (i * 7 + 3);
        for (unsigned i = 0; i < sizeof nonce; i++)
                nonce[i] = (uint8_t) (255 - i);
        ck_assert_int_eq(libkvmid_proof(key, sizeof key, nonce, "introspector-1", "vsock:7", got), 0);
        evp_proof(key, sizeof key, nonce, "introspector-1", "vsock:7", want);
        ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_proof_fields_separated) {
        uint8_t key[32], nonce[32];
        char a[65], b[65], c[65];

        vector_inputs(key, nonce);
        /* The NUL after the name: "ab" + "c" is not "a" + "bc". */
        ck_assert_int_eq(libkvmid_proof(key, sizeof key, nonce, "ab", "c", a), 0);
        ck_assert_int_eq(libkvmid_proof(key, sizeof key, nonce, "a", "bc", b), 0);
        ck_assert_str_ne(a, b);
        nonce[31] ^= 1;
        ck_assert_int_eq(libkvmid_proof(key, sizeof key, nonce, "ab", "c", c), 0);
        ck_assert_str_ne(a, c);
        ck_assert_int_eq(libkvmid_proof(key, 0, nonce, "ab", "c", c), -EINVAL);
}
END_TEST

/* ---- key files ------------------------------------------------------------ */

static char tmpdir[] = "/tmp/check-libkvmid-XXXXXX";

static void make_tmpdir(void) {
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
        strcpy(tmpdir, "/tmp/check-libkvmid-XXXXXX");
}

static const char *write_key(const char *name, size_t len, mode_t mode) {
        static char path[256];
        int fd;

        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        for (size_t i = 0; i < len; i++) {
                uint8_t b = (uint8_t) i;
                ck_assert_int_eq(write(fd, &b, 1), 1);
        }
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
        return path;
}

START_TEST(test_key_file_modes) {
        static const mode_t refused[] = { 0644, 0640, 0604, 0620, 0602, 0660, 0666 };
        uint8_t *key = NULL;
        size_t len = 0;
        const char *why = NULL;

        make_tmpdir();
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                why = NULL;
                ck_assert_int_eq(libkvmid_read_key_file(write_key("key", 32, refused[i]), &key, &len, &why), -EPERM);
                ck_assert_ptr_null(key);
                ck_assert_ptr_nonnull(strstr(why, "chmod 0600"));
        }
        ck_assert_int_eq(libkvmid_read_key_file(write_key("key", 48, 0600), &key, &len, &why), 0);
        ck_assert_uint_eq(len, 48);
        for (size_t i = 0; i < len; i++)
                ck_assert_uint_eq(key[i], i);
        free(key);
        key = NULL;
        ck_assert_int_eq(libkvmid_read_key_file(write_key("key", 32, 0400), &key, &len, &why), 0);
        free(key);
        remove_tmpdir();
}
END_TEST

START_TEST(test_key_file_sizes) {
        uint8_t *key = NULL;
        size_t len = 0;
        const char *why = NULL;
        char path[256];

        make_tmpdir();
        ck_assert_int_eq(libkvmid_read_key_file(write_key("key", 31, 0600), &key, &len, &why), -EINVAL);
        ck_assert_str_eq(why, "the key must be at least 32 bytes");
        ck_assert_int_eq(libkvmid_read_key_file(write_key("key", 1025, 0600), &key, &len, &why), -EINVAL);
        ck_assert_str_eq(why, "the key must be at most 1024 bytes");
        ck_assert_int_eq(libkvmid_read_key_file(write_key("key", 1024, 0600), &key, &len, &why), 0);
        ck_assert_uint_eq(len, 1024);
        free(key);
        key = NULL;

        /* Not a regular file, or none at all. */
        snprintf(path, sizeof path, "%s/dir", tmpdir);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_eq(libkvmid_read_key_file(path, &key, &len, &why), -EINVAL);
        ck_assert_str_eq(why, "the key file is not a regular file");
        snprintf(path, sizeof path, "%s/missing", tmpdir);
        ck_assert_int_eq(libkvmid_read_key_file(path, &key, &len, &why), -ENOENT);
        ck_assert_ptr_null(key);

        /* A symlink is followed, and the file it names is the one checked. */
        char link[256];
        snprintf(link, sizeof link, "%s/link", tmpdir);
        ck_assert_int_eq(symlink(write_key("key", 32, 0644), link), 0);
        ck_assert_int_eq(libkvmid_read_key_file(link, &key, &len, &why), -EPERM);
        remove_tmpdir();
}
END_TEST

/* ---- parsing ---------------------------------------------------------------- */

static const char *const event_json =
        "{\"target\":\"vm1\",\"uuid\":\"6f1b3c2e-0000-4000-8000-000000000001\",\"seq\":42,\"vcpu\":3,"
        "\"mode\":8,\"regs\":{\"rax\":1,\"rbx\":2,\"rcx\":3,\"rdx\":4,\"rsi\":5,\"rdi\":6,\"rsp\":7,"
        "\"rbp\":8,\"r8\":9,\"r9\":10,\"r10\":11,\"r11\":12,\"r12\":13,\"r13\":14,\"r14\":15,\"r15\":16,"
        "\"rip\":18446744071578845184,\"rflags\":-2},\"unreliable\":[\"r8\",\"r9\",\"xmm0\"],"
        "\"time_usec\":1767225600000000,\"missed\":5,\"future\":{\"x\":1}}";

START_TEST(test_parse_guest_request) {
        _cleanup_json_ struct json_object *o = json_tokener_parse(event_json);
        KvmidGuestRequest ev;
        const char *field = "x";

        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(libkvmid_parse_guest_request(o, &ev, &field), 0);
        ck_assert_ptr_null(field);
        ck_assert_str_eq(ev.target, "vm1");
        ck_assert_str_eq(ev.uuid, "6f1b3c2e-0000-4000-8000-000000000001");
        ck_assert_uint_eq(ev.seq, 42);
        ck_assert_uint_eq(ev.vcpu, 3);
        ck_assert_uint_eq(ev.mode, 8);
        for (unsigned i = 0; i < KVMID_REG_RIP; i++)
                ck_assert_uint_eq(ev.regs[i], i + 1);
        /* Above INT64_MAX (as kvmid sends uint64), and an int64 that wraps. */
        ck_assert_uint_eq(ev.regs[KVMID_REG_RIP], UINT64_C(0xffffffff81000000));
        ck_assert_uint_eq(ev.regs[KVMID_REG_RFLAGS], UINT64_C(0xfffffffffffffffe));
        ck_assert_uint_eq(ev.unreliable, (1U << KVMID_REG_R8) | (1U << KVMID_REG_R9));
        ck_assert_uint_eq(ev.time_usec, UINT64_C(1767225600000000));
        ck_assert_uint_eq(ev.missed, 5);
}
END_TEST

START_TEST(test_parse_guest_request_missing) {
        static const char *const top[] = { "target", "uuid", "seq", "vcpu", "mode", "regs", "unreliable",
                                           "time_usec", "missed" };
        KvmidGuestRequest ev;
        const char *field;

        for (size_t i = 0; i < ELEMENTSOF(top); i++) {
                _cleanup_json_ struct json_object *o = json_tokener_parse(event_json);
                json_object_object_del(o, top[i]);
                ck_assert_int_eq(libkvmid_parse_guest_request(o, &ev, &field), -EBADMSG);
                ck_assert_str_eq(field, top[i]);
        }
        for (unsigned i = 0; i < KVMID_REG_COUNT; i++) {
                _cleanup_json_ struct json_object *o = json_tokener_parse(event_json);
                json_object_object_del(json_object_object_get(o, "regs"), kvmid_reg_name(i));
                ck_assert_int_eq(libkvmid_parse_guest_request(o, &ev, &field), -EBADMSG);
                ck_assert_str_eq(field, kvmid_reg_name(i));
        }
}
END_TEST

static int parse_with(const char *key, const char *value_json, const char **ret_field) {
        _cleanup_json_ struct json_object *o = json_tokener_parse(event_json);
        KvmidGuestRequest ev;

        json_object_object_add(o, key, json_tokener_parse(value_json));
        return libkvmid_parse_guest_request(o, &ev, ret_field);
}

START_TEST(test_parse_guest_request_types) {
        const char *field;

        ck_assert_int_eq(parse_with("seq", "-1", &field), -EBADMSG);            /* only registers wrap */
        ck_assert_str_eq(field, "seq");
        ck_assert_int_eq(parse_with("seq", "\"42\"", &field), -EBADMSG);
        ck_assert_int_eq(parse_with("vcpu", "4294967296", &field), -EBADMSG);
        ck_assert_str_eq(field, "vcpu");
        ck_assert_int_eq(parse_with("target", "7", &field), -EBADMSG);
        ck_assert_str_eq(field, "target");
        ck_assert_int_eq(parse_with("regs", "[]", &field), -EBADMSG);
        ck_assert_str_eq(field, "regs");
        ck_assert_int_eq(parse_with("unreliable", "[1]", &field), -EBADMSG);
        ck_assert_str_eq(field, "unreliable");
        ck_assert_int_eq(parse_with("missed", "1.5", &field), -EBADMSG);
        ck_assert_int_eq(parse_with("missed", "18446744073709551615", &field), 0);

        KvmidGuestRequest ev;
        ck_assert_int_eq(libkvmid_parse_guest_request(NULL, &ev, &field), -EBADMSG);
        ck_assert_str_eq(field, "event");
}
END_TEST

START_TEST(test_parse_token) {
        KvmidToken t;
        const char *field;
        _cleanup_json_ struct json_object *o = json_tokener_parse(
                "{\"token\":\"00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff\","
                "\"token_id\":\"t-1f2e\",\"expires_usec\":1767225605000000}");

        ck_assert_int_eq(libkvmid_parse_token(o, &t, &field), 0);
        ck_assert_uint_eq(t.bytes[0], 0x00);
        ck_assert_uint_eq(t.bytes[10], 0xaa);
        ck_assert_uint_eq(t.bytes[31], 0xff);
        ck_assert_str_eq(t.hex, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
        ck_assert_str_eq(t.id, "t-1f2e");
        ck_assert_uint_eq(t.expires_usec, UINT64_C(1767225605000000));

        json_object_object_add(o, "token", json_object_new_string("0011"));
        ck_assert_int_eq(libkvmid_parse_token(o, &t, &field), -EBADMSG);
        ck_assert_str_eq(field, "token");
        json_object_object_add(o, "token",
                               json_object_new_string("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"));
        ck_assert_int_eq(libkvmid_parse_token(o, &t, &field), -EBADMSG);
        json_object_object_add(o, "token",
                               json_object_new_string("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"));
        char long_id[80];
        memset(long_id, 'x', sizeof long_id - 1);
        long_id[sizeof long_id - 1] = 0;
        json_object_object_add(o, "token_id", json_object_new_string(long_id));
        ck_assert_int_eq(libkvmid_parse_token(o, &t, &field), -EBADMSG);
        ck_assert_str_eq(field, "token_id");
        json_object_object_add(o, "token_id", json_object_new_string("t-1"));
        json_object_object_del(o, "expires_usec");
        ck_assert_int_eq(libkvmid_parse_token(o, &t, &field), -EBADMSG);
        ck_assert_str_eq(field, "expires_usec");
}
END_TEST

/* ---- error messages ----------------------------------------------------------- */

static void check_format(const char *name, const char *params_json, const char *want) {
        _cleanup_json_ struct json_object *p = params_json ? json_tokener_parse(params_json) : NULL;
        _cleanup_free_ char *s = libkvmid_format_error(name, p);

        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, want);
}

START_TEST(test_error_format) {
        check_format("io.kvmid.Introspector.PolicyDenied", "{\"permission\":\"map\",\"rule\":\"/etc/kvmid/policy:3\"}",
                     "io.kvmid.Introspector.PolicyDenied: map denied by /etc/kvmid/policy:3");
        check_format("io.kvmid.Introspector.GpaOutsideRange", "{\"gpa\":1048576,\"size\":4096}",
                     "io.kvmid.Introspector.GpaOutsideRange: gpa range 0x100000+0x1000 is outside what the policy allows");
        check_format("io.kvmid.Introspector.SessionEnded", "{\"session\":\"ab12\",\"reason\":\"target gone\"}",
                     "io.kvmid.Introspector.SessionEnded: session ab12 ended: target gone");
        check_format("io.kvmid.Introspector.TooManyAttempts", "{\"retry_after\":17}",
                     "io.kvmid.Introspector.TooManyAttempts: too many failed attempts: retry in 17 s");
        check_format("io.kvmid.Introspector.AuthenticationFailed", "{}",
                     "io.kvmid.Introspector.AuthenticationFailed: authentication failed (wrong name, key or binding, "
                     "or no valid nonce)");
        check_format("org.varlink.service.InvalidParameter", "{\"parameter\":\"gpa\"}",
                     "org.varlink.service.InvalidParameter: invalid parameter gpa");
        /* Unknown errors, and known ones without the expected parameters. */
        check_format("com.example.Odd", "{\"a\":1,\"b\":\"two\",\"c\":[1,2],\"d\":null}",
                     "com.example.Odd: a=1, b=two, c=[1,2], d=null");
        check_format("com.example.Odd", NULL, "com.example.Odd");
        check_format("com.example.Odd", "{}", "com.example.Odd");
        check_format("io.kvmid.Introspector.PolicyDenied", "{\"permission\":\"map\"}",
                     "io.kvmid.Introspector.PolicyDenied: permission=map");
        /* A peer's control characters never reach the terminal. */
        check_format("io.kvmid.Hypervisor.MapDenied", "{\"reason\":\"bad\\u001b[2Jtoken\\n\"}",
                     "io.kvmid.Hypervisor.MapDenied: map denied: bad?[2Jtoken?");
}
END_TEST

START_TEST(test_error_errno) {
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.AuthenticationFailed"), -EACCES);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.TooManyAttempts"), -EAGAIN);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.PolicyDenied"), -EPERM);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.NoSuchSession"), -ENOENT);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.TargetUnavailable"), -ENXIO);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.GpaOutsideRange"), -ERANGE);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Introspector.TokenTimeout"), -ETIMEDOUT);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.Hypervisor.MapDenied"), -EPERM);
        ck_assert_int_eq(libkvmid_error_errno("io.kvmid.AuditFailed"), -EIO);
        ck_assert_int_eq(libkvmid_error_errno("org.varlink.service.MethodNotFound"), -EOPNOTSUPP);
        ck_assert_int_eq(libkvmid_error_errno("com.example.Odd"), -EREMOTEIO);
        ck_assert_int_eq(libkvmid_error_errno(NULL), -EREMOTEIO);
}
END_TEST

START_TEST(test_reg_names) {
        ck_assert_str_eq(kvmid_reg_name(KVMID_REG_RAX), "rax");
        ck_assert_str_eq(kvmid_reg_name(KVMID_REG_R8), "r8");
        ck_assert_str_eq(kvmid_reg_name(KVMID_REG_RFLAGS), "rflags");
        ck_assert_ptr_null(kvmid_reg_name(KVMID_REG_COUNT));
        ck_assert_int_eq(KVMID_REG_COUNT, 18);
}
END_TEST

/* ---- the public calls against a fake kvmid --------------------------------------- */

#define CHILD_CHECK(cond)                                                                  \
        do {                                                                               \
                if (!(cond)) {                                                             \
                        fprintf(stderr, "fake kvmid %s:%d: %s\n", __FILE__, __LINE__, #cond); \
                        _exit(3);                                                          \
                }                                                                          \
        } while (0)

typedef struct Fake {
        char path[256];
        pid_t pid;
} Fake;

/* One message; NULL once the client hung up. */
static struct json_object *srv_read(int fd) {
        char buf[8192];
        size_t n = 0;

        for (;;) {
                ssize_t k = read(fd, buf + n, 1);
                if (k < 0 && errno == EINTR)
                        continue;
                CHILD_CHECK(k >= 0 || errno == ECONNRESET);
                if (k <= 0)
                        return NULL;
                if (buf[n] == 0)
                        break;
                CHILD_CHECK(++n < sizeof buf);
        }
        struct json_object *o = json_tokener_parse(buf);
        CHILD_CHECK(o);
        return o;
}

/* Reads a call of 'method' and returns its parameters (owned). */
static struct json_object *srv_expect(int fd, const char *method, bool more) {
        struct json_object *o = srv_read(fd), *p, *m;

        CHILD_CHECK(o);
        if (!streq(json_object_get_string(json_object_object_get(o, "method")), method))
                fprintf(stderr, "fake kvmid: got %s, want %s\n", json_object_to_json_string(o), method);
        CHILD_CHECK(streq(json_object_get_string(json_object_object_get(o, "method")), method));
        m = json_object_object_get(o, "more");
        CHILD_CHECK(more == (m && json_object_get_boolean(m)));
        p = json_object_get(json_object_object_get(o, "parameters"));
        json_object_put(o);
        return p ?: json_object_new_object();
}

static void srv_send(int fd, const char *fmt, ...) _printf_(2, 3);
static void srv_send(int fd, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        CHILD_CHECK(n >= 0);
        CHILD_CHECK(write(fd, msg, (size_t) n + 1) == n + 1);       /* with the NUL */
        free(msg);
}

static const char *param(struct json_object *p, const char *key) {
        return json_object_get_string(json_object_object_get(p, key));
}

static uint8_t fake_key[40];

/* Hello + Authenticate, checking the proof for the binding "unix:EUID". */
static void srv_auth(int fd, const char *name) {
        static const char nonce_hex[] = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
        uint8_t nonce[32];
        char binding[32], want[65];
        struct json_object *p;

        for (unsigned i = 0; i < 32; i++)
                nonce[i] = (uint8_t) (0xa0 + i);
        json_object_put(srv_expect(fd, "io.kvmid.Introspector.Hello", false));
        srv_send(fd, "{\"parameters\":{\"nonce\":\"%s\",\"expires_in\":30}}", nonce_hex);
        p = srv_expect(fd, "io.kvmid.Introspector.Authenticate", false);
        snprintf(binding, sizeof binding, "unix:%u", (unsigned) geteuid());
        evp_proof(fake_key, sizeof fake_key, nonce, name, binding, want);
        CHILD_CHECK(streq(param(p, "name"), name));
        if (streq(param(p, "proof"), want))
                srv_send(fd, "{\"parameters\":{\"introspector\":\"%s\"}}", name);
        else
                srv_send(fd, "{\"error\":\"io.kvmid.Introspector.AuthenticationFailed\",\"parameters\":{}}");
        json_object_put(p);
}

/* Binds the socket, then forks the server running script on the accepted connection. */
static void fake_start(Fake *f, void (*script)(int fd)) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int lfd;

        for (unsigned i = 0; i < sizeof fake_key; i++)
                fake_key[i] = (uint8_t) (0x40 + i);
        make_tmpdir();
        snprintf(f->path, sizeof f->path, "%s/io.kvmid.Introspector", tmpdir);
        strcpy(sa.sun_path, f->path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(listen(lfd, 4), 0);
        fflush(NULL);
        f->pid = fork();
        ck_assert_int_ge(f->pid, 0);
        if (f->pid == 0) {
                alarm(60);      /* never outlive a test that failed before connecting */
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                CHILD_CHECK(fd >= 0);
                script(fd);
                close(fd);
                _exit(0);
        }
        close(lfd);
}

static void fake_finish(Fake *f) {
        int status;

        ck_assert_int_eq(waitpid(f->pid, &status, 0), f->pid);
        remove_tmpdir();
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fake kvmid failed (status %d)", status);
}

static const char *write_fake_key(mode_t mode) {
        static char path[256];
        int fd;

        snprintf(path, sizeof path, "%s/key", tmpdir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, fake_key, sizeof fake_key), (ssize_t) sizeof fake_key);
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
        return path;
}

#define EVENT_FMT                                                                                        \
        "{\"continues\":true,\"parameters\":{\"event\":{\"target\":\"vm1\",\"uuid\":\"u-1\",\"seq\":%d,"  \
        "\"vcpu\":%d,\"mode\":8,\"regs\":{\"rax\":%d,\"rbx\":0,\"rcx\":0,\"rdx\":0,\"rsi\":0,\"rdi\":0,"     \
        "\"rsp\":0,\"rbp\":0,\"r8\":0,\"r9\":0,\"r10\":0,\"r11\":0,\"r12\":0,\"r13\":0,\"r14\":0,\"r15\":0,"  \
        "\"rip\":0,\"rflags\":2},\"unreliable\":[\"r8\",\"r9\"],\"time_usec\":1,\"missed\":%d}}}"

static void script_full(int fd) {
        struct json_object *p;

        srv_auth(fd, "tool");

        p = srv_expect(fd, "io.kvmid.Introspector.OpenSession", false);
        CHILD_CHECK(streq(param(p, "target"), "vm1"));
        json_object_put(p);
        srv_send(fd, "{\"parameters\":{\"session\":\"s-1\",\"target\":\"vm1\",\"uuid\":\"u-1\"}}");

        p = srv_expect(fd, "io.kvmid.Introspector.GetMapToken", false);
        CHILD_CHECK(streq(param(p, "session"), "s-1"));
        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "gpa")) == 0x100000);
        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "size")) == 0x1000);
        json_object_put(p);
        srv_send(fd, "{\"parameters\":{\"token\":\"%s\",\"token_id\":\"t-1\",\"expires_usec\":99}}",
                 "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20");

        p = srv_expect(fd, "io.kvmid.Introspector.Subscribe", true);
        CHILD_CHECK(streq(param(p, "session"), "s-1"));
        struct json_object *v = json_object_object_get(p, "vcpus");
        CHILD_CHECK(v && json_object_array_length(v) == 2);
        CHILD_CHECK(json_object_get_int(json_object_array_get_idx(v, 1)) == 3);
        json_object_put(p);
        srv_send(fd, "{\"continues\":true,\"parameters\":{\"event\":null}}");
        srv_send(fd, EVENT_FMT, 1, 0, 100, 0);
        srv_send(fd, EVENT_FMT, 4, 3, 400, 2);
        srv_send(fd, "{\"error\":\"io.kvmid.Introspector.SessionEnded\","
                     "\"parameters\":{\"session\":\"s-1\",\"reason\":\"target gone\"}}");

        p = srv_expect(fd, "io.kvmid.Introspector.RevokeToken", false);
        CHILD_CHECK(streq(param(p, "token_id"), "t-1"));
        json_object_put(p);
        srv_send(fd, "{\"error\":\"io.kvmid.Introspector.NoSuchSession\",\"parameters\":{\"session\":\"s-1\"}}");

        p = srv_expect(fd, "io.kvmid.Introspector.CloseSession", false);
        json_object_put(p);
        srv_send(fd, "{\"parameters\":{}}");
        CHILD_CHECK(!srv_read(fd));
}

typedef struct Seen {
        unsigned live, events;
        uint64_t seq[4], rax[4], missed[4];
        unsigned vcpu[4];
        uint32_t unreliable;
        int stop_after;                 /* stop with 7 after this many events (0: never) */
} Seen;

static int on_event(const KvmidGuestRequest *ev, void *userdata) {
        Seen *s = userdata;

        if (!ev) {
                s->live++;
                return 0;
        }
        ck_assert_uint_lt(s->events, 4);
        ck_assert_str_eq(ev->target, "vm1");
        s->seq[s->events] = ev->seq;
        s->vcpu[s->events] = ev->vcpu;
        s->rax[s->events] = ev->regs[KVMID_REG_RAX];
        s->missed[s->events] = ev->missed;
        s->unreliable = ev->unreliable;
        s->events++;
        return s->stop_after && s->events == (unsigned) s->stop_after ? 7 : 0;
}

START_TEST(test_client_full) {
        static const unsigned vcpus[] = { 0, 3 };
        KvmidClient *c = NULL;
        KvmidToken t;
        Seen seen = {};
        char *session = NULL;
        Fake f;

        fake_start(&f, script_full);
        ck_assert_int_eq(kvmid_connect(f.path, &c), 0);
        ck_assert_int_eq(kvmid_authenticate_key_file(c, "tool", write_fake_key(0600)), 0);
        ck_assert_str_eq(kvmid_last_error(c), "");
        ck_assert_ptr_null(kvmid_last_error_name(c));

        ck_assert_int_eq(kvmid_open_session(c, "vm1", &session), 0);
        ck_assert_str_eq(session, "s-1");

        ck_assert_int_eq(kvmid_get_map_token(c, session, 0x100000, 0x1000, &t), 0);
        ck_assert_uint_eq(t.bytes[0], 1);
        ck_assert_uint_eq(t.bytes[31], 0x20);
        ck_assert_str_eq(t.id, "t-1");
        ck_assert_uint_eq(t.expires_usec, 99);

        ck_assert_int_eq(kvmid_subscribe(c, session, vcpus, ELEMENTSOF(vcpus), on_event, &seen), 0);
        ck_assert_uint_eq(seen.live, 1);
        ck_assert_uint_eq(seen.events, 2);
        ck_assert_uint_eq(seen.seq[0], 1);
        ck_assert_uint_eq(seen.seq[1], 4);
        ck_assert_uint_eq(seen.vcpu[1], 3);
        ck_assert_uint_eq(seen.rax[1], 400);
        ck_assert_uint_eq(seen.missed[1], 2);
        ck_assert_uint_eq(seen.unreliable, (1U << KVMID_REG_R8) | (1U << KVMID_REG_R9));
        ck_assert_str_eq(kvmid_last_error_name(c), "io.kvmid.Introspector.SessionEnded");
        ck_assert_str_eq(kvmid_last_error_parameter(c, "reason"), "target gone");
        ck_assert_str_eq(kvmid_last_error(c), "io.kvmid.Introspector.SessionEnded: session s-1 ended: target gone");

        /* The connection goes on after kvmid ended the stream. */
        ck_assert_int_eq(kvmid_revoke_token(c, session, t.id), -ENOENT);
        ck_assert_str_eq(kvmid_last_error(c), "io.kvmid.Introspector.NoSuchSession: no session s-1 on this connection");
        ck_assert_int_eq(kvmid_close_session(c, session), 0);
        ck_assert_str_eq(kvmid_last_error(c), "");
        free(session);
        ck_assert_ptr_null(kvmid_client_free(c));
        fake_finish(&f);
}
END_TEST

static void script_denied(int fd) {
        struct json_object *p;

        srv_auth(fd, "tool");
        json_object_put(srv_expect(fd, "io.kvmid.Introspector.OpenSession", false));
        srv_send(fd, "{\"error\":\"io.kvmid.Introspector.PolicyDenied\","
                     "\"parameters\":{\"permission\":\"attach\",\"rule\":\"/etc/kvmid/policy:3\"}}");
        json_object_put(srv_expect(fd, "io.kvmid.Introspector.GetMapToken", false));
        srv_send(fd, "{\"error\":\"io.kvmid.Introspector.GpaOutsideRange\",\"parameters\":{\"gpa\":0,\"size\":4096}}");
        /* A stopped subscription leaves the connection unusable. */
        p = srv_expect(fd, "io.kvmid.Introspector.Subscribe", true);
        CHILD_CHECK(!json_object_object_get(p, "vcpus"));
        json_object_put(p);
        srv_send(fd, "{\"continues\":true,\"parameters\":{\"event\":null}}");
        /* In one write: the client hangs up once it stopped, maybe before a later write. */
        char buf[4096];
        int n = 0;
        for (int i = 1; i <= 3; i++) {
                n += snprintf(buf + n, sizeof buf - (size_t) n, EVENT_FMT, i, 0, i, 0) + 1;
                CHILD_CHECK(n < (int) sizeof buf);
        }
        CHILD_CHECK(write(fd, buf, (size_t) n) == n);
        CHILD_CHECK(!srv_read(fd));
}

START_TEST(test_client_errors) {
        KvmidClient *c = NULL;
        KvmidToken t;
        Seen seen = { .stop_after = 2 };
        char *session = NULL;
        Fake f;
        uint8_t key[40];

        fake_start(&f, script_denied);
        ck_assert_int_eq(kvmid_connect(f.path, &c), 0);
        memcpy(key, fake_key, sizeof key);
        ck_assert_int_eq(kvmid_authenticate(c, "tool", key, sizeof key), 0);

        ck_assert_int_eq(kvmid_open_session(c, "vm1", &session), -EPERM);
        ck_assert_ptr_null(session);
        ck_assert_str_eq(kvmid_last_error(c), "io.kvmid.Introspector.PolicyDenied: attach denied by /etc/kvmid/policy:3");
        ck_assert_str_eq(kvmid_last_error_name(c), "io.kvmid.Introspector.PolicyDenied");
        ck_assert_str_eq(kvmid_last_error_parameter(c, "rule"), "/etc/kvmid/policy:3");
        ck_assert_ptr_null(kvmid_last_error_parameter(c, "nope"));

        ck_assert_int_eq(kvmid_get_map_token(c, "s-x", 0, 4096, &t), -ERANGE);
        ck_assert_str_eq(kvmid_last_error_parameter(c, "size"), "4096");

        ck_assert_int_eq(kvmid_subscribe(c, "s-x", NULL, 0, on_event, &seen), 7);
        ck_assert_uint_eq(seen.events, 2);
        ck_assert_str_eq(kvmid_last_error(c), "");
        ck_assert_int_eq(kvmid_close_session(c, "s-x"), -ENOTCONN);
        ck_assert_ptr_nonnull(strstr(kvmid_last_error(c), "unusable"));
        ck_assert_ptr_null(kvmid_last_error_name(c));

        /* Arguments are checked before anything is sent. */
        ck_assert_int_eq(kvmid_open_session(c, NULL, &session), -EINVAL);
        ck_assert_int_eq(kvmid_subscribe(c, "s", NULL, 2, on_event, &seen), -EINVAL);
        ck_assert_int_eq(kvmid_authenticate(c, "tool", key, 31), -EINVAL);
        ck_assert_int_eq(kvmid_open_session(NULL, "vm1", &session), -EINVAL);
        kvmid_client_free(c);
        fake_finish(&f);
}
END_TEST

static void script_auth_fail(int fd) {
        /* The group-readable key file was refused without a word to kvmid. */
        srv_auth(fd, "tool");
        srv_auth(fd, "tool");
        json_object_put(srv_expect(fd, "io.kvmid.Introspector.Hello", false));
        srv_send(fd, "{\"parameters\":{\"nonce\":\"short\",\"expires_in\":30}}");
        json_object_put(srv_expect(fd, "io.kvmid.Introspector.Hello", false));
        srv_send(fd, "{\"error\":\"io.kvmid.Introspector.TooManyAttempts\",\"parameters\":{\"retry_after\":42}}");
        json_object_put(srv_expect(fd, "io.kvmid.Introspector.Hello", false));
        /* no reply: the client times out */
        CHILD_CHECK(!srv_read(fd));
}

START_TEST(test_client_auth_failures) {
        KvmidClient *c = NULL;
        uint8_t wrong[40];
        Fake f;

        fake_start(&f, script_auth_fail);
        ck_assert_int_eq(kvmid_connect(f.path, &c), 0);
        ck_assert_int_eq(kvmid_authenticate_key_file(c, "tool", write_fake_key(0640)), -EPERM);
        ck_assert_ptr_nonnull(strstr(kvmid_last_error(c), "chmod 0600"));
        ck_assert_ptr_null(kvmid_last_error_name(c));

        memset(wrong, 0x55, sizeof wrong);
        ck_assert_int_eq(kvmid_authenticate(c, "tool", wrong, sizeof wrong), -EACCES);
        ck_assert_str_eq(kvmid_last_error_name(c), "io.kvmid.Introspector.AuthenticationFailed");
        ck_assert_int_eq(kvmid_authenticate_key_file(c, "tool", write_fake_key(0600)), 0);
        ck_assert_int_eq(kvmid_authenticate(c, "tool", wrong, sizeof wrong), -EBADMSG);
        ck_assert_str_eq(kvmid_last_error(c), "Hello: the reply has no valid nonce");
        ck_assert_int_eq(kvmid_authenticate(c, "tool", wrong, sizeof wrong), -EAGAIN);
        ck_assert_str_eq(kvmid_last_error_parameter(c, "retry_after"), "42");
        kvmid_set_timeout(c, 200);
        ck_assert_int_eq(kvmid_authenticate(c, "tool", wrong, sizeof wrong), -ETIMEDOUT);
        ck_assert_str_eq(kvmid_last_error(c), "Hello: no reply from kvmid within 200 ms");
        kvmid_client_free(c);
        fake_finish(&f);
}
END_TEST

static void script_hypervisor(int fd) {
        struct json_object *p;

        p = srv_expect(fd, "io.kvmid.Hypervisor.MemMap", false);
        CHILD_CHECK(streq(param(p, "introspector"), "ivm"));
        CHILD_CHECK(streq(param(p, "token"), "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"));
        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "target_gpa")) == 0x2000);
        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "local_gpa")) == 0x7000);
        json_object_put(p);
        srv_send(fd, "{\"parameters\":{\"target\":\"vm1\",\"uuid\":\"u-1\",\"token_id\":\"t-9\"}}");
        json_object_put(srv_expect(fd, "io.kvmid.Hypervisor.MemMap", false));
        srv_send(fd, "{\"error\":\"io.kvmid.Hypervisor.MapDenied\",\"parameters\":{\"reason\":\"token consumed\"}}");
        json_object_put(srv_expect(fd, "io.kvmid.Hypervisor.MemUnmap", false));
        srv_send(fd, "{\"parameters\":{\"target\":\"vm1\",\"target_gpa\":8192}}");

        p = srv_expect(fd, "io.kvmid.Hypervisor.WatchRevocations", true);
        CHILD_CHECK(!json_object_object_get(p, "introspector"));
        json_object_put(p);
        srv_send(fd, "{\"continues\":true,\"parameters\":{}}");
        srv_send(fd, "{\"continues\":true,\"parameters\":{\"introspector\":\"ivm\",\"local_gpa\":28672,"
                     "\"target\":\"vm1\",\"reason\":\"session closed\"}}");
        srv_send(fd, "{\"parameters\":{}}");
        CHILD_CHECK(!srv_read(fd));
}

static int on_revocation(const KvmidRevocation *rev, void *userdata) {
        unsigned *n = userdata;

        if (!rev) {
                ck_assert_uint_eq(*n, 0);
                *n = 1;
                return 0;
        }
        ck_assert_str_eq(rev->introspector, "ivm");
        ck_assert_str_eq(rev->target, "vm1");
        ck_assert_str_eq(rev->reason, "session closed");
        ck_assert_uint_eq(rev->local_gpa, 0x7000);
        (*n)++;
        return 0;
}

START_TEST(test_client_hypervisor) {
        KvmidClient *c = NULL;
        KvmidMapping m;
        uint8_t token[KVMID_TOKEN_SIZE];
        unsigned n = 0;
        Fake f;

        for (unsigned i = 0; i < 16; i++)
                token[i] = token[16 + i] = (uint8_t) (0xff - 0x11 * i);
        fake_start(&f, script_hypervisor);
        ck_assert_int_eq(kvmid_connect_hypervisor(f.path, &c), 0);
        ck_assert_int_eq(kvmid_mem_map(c, "ivm", token, 0x2000, 0x7000, &m), 0);
        ck_assert_str_eq(m.target, "vm1");
        ck_assert_str_eq(m.uuid, "u-1");
        ck_assert_str_eq(m.token_id, "t-9");
        ck_assert_uint_eq(m.target_gpa, 0x2000);
        kvmid_mapping_clear(&m);
        ck_assert_ptr_null(m.target);
        ck_assert_int_eq(kvmid_mem_map(c, "ivm", token, 0x2000, 0x7000, &m), -EPERM);
        ck_assert_str_eq(kvmid_last_error(c), "io.kvmid.Hypervisor.MapDenied: map denied: token consumed");
        ck_assert_int_eq(kvmid_mem_unmap(c, "ivm", 0x7000, &m), 0);
        ck_assert_str_eq(m.target, "vm1");
        ck_assert_ptr_null(m.uuid);
        ck_assert_uint_eq(m.target_gpa, 0x2000);
        kvmid_mapping_clear(&m);
        kvmid_mapping_clear(NULL);
        ck_assert_int_eq(kvmid_watch_revocations(c, NULL, on_revocation, &n), 0);
        ck_assert_uint_eq(n, 2);
        kvmid_client_free(c);
        fake_finish(&f);
}
END_TEST

START_TEST(test_connect_addresses) {
        KvmidClient *c = (KvmidClient *) 0x1;
        char path[300];

        make_tmpdir();
        snprintf(path, sizeof path, "%s/none", tmpdir);
        ck_assert_int_eq(kvmid_connect(path, &c), -ENOENT);
        ck_assert_ptr_eq(c, (KvmidClient *) 0x1);       /* untouched on failure */
        ck_assert_int_eq(kvmid_connect("vsock:", &c), -EINVAL);
        ck_assert_int_eq(kvmid_connect("vsock:2", &c), -EINVAL);
        ck_assert_int_eq(kvmid_connect("vsock:2:", &c), -EINVAL);
        ck_assert_int_eq(kvmid_connect("vsock:x:1", &c), -EINVAL);
        ck_assert_int_eq(kvmid_connect("vsock:2:4294967296", &c), -EINVAL);
        ck_assert_int_eq(kvmid_connect(path, NULL), -EINVAL);

        /* NULL takes the environment's address. */
        const char *saved = getenv("KVMID_INTROSPECTOR_SOCKET");
        _cleanup_free_ char *copy = saved ? strdup(saved) : NULL;
        ck_assert_int_eq(setenv("KVMID_INTROSPECTOR_SOCKET", path, 1), 0);
        ck_assert_int_eq(kvmid_connect(NULL, &c), -ENOENT);
        ck_assert_int_eq(setenv("KVMID_HYPERVISOR_SOCKET", "vsock:x", 1), 0);
        ck_assert_int_eq(kvmid_connect_hypervisor(NULL, &c), -EINVAL);
        unsetenv("KVMID_HYPERVISOR_SOCKET");
        if (copy)
                setenv("KVMID_INTROSPECTOR_SOCKET", copy, 1);
        else
                unsetenv("KVMID_INTROSPECTOR_SOCKET");

        ck_assert_ptr_null(kvmid_client_free(NULL));
        ck_assert_str_eq(kvmid_last_error(NULL), "");
        ck_assert_ptr_null(kvmid_last_error_name(NULL));
        remove_tmpdir();
}
END_TEST

static Suite *libkvmid_suite(void) {
        Suite *s = suite_create("libkvmid");
        TCase *tc;

        tc = tcase_create("proof");
        tcase_add_test(tc, test_proof_vector);
        tcase_add_test(tc, test_proof_evp_mac);
        tcase_add_test(tc, test_proof_fields_separated);
        suite_add_tcase(s, tc);

        tc = tcase_create("key-file");
        tcase_add_test(tc, test_key_file_modes);
        tcase_add_test(tc, test_key_file_sizes);
        suite_add_tcase(s, tc);

        tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_guest_request);
        tcase_add_test(tc, test_parse_guest_request_missing);
        tcase_add_test(tc, test_parse_guest_request_types);
        tcase_add_test(tc, test_parse_token);
        suite_add_tcase(s, tc);

        tc = tcase_create("errors");
        tcase_add_test(tc, test_error_format);
        tcase_add_test(tc, test_error_errno);
        tcase_add_test(tc, test_reg_names);
        suite_add_tcase(s, tc);

        tc = tcase_create("client");
        tcase_add_test(tc, test_client_full);
        tcase_add_test(tc, test_client_errors);
        tcase_add_test(tc, test_client_auth_failures);
        tcase_add_test(tc, test_client_hypervisor);
        tcase_add_test(tc, test_connect_addresses);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(libkvmid_suite());
        int failed;

        /* A fake kvmid whose client died must not hang on in the background. */
        signal(SIGPIPE, SIG_IGN);
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
