/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libkvmid: the reference client of io.kvmid.Introspector and
 * io.kvmid.Hypervisor, on top of the blocking varlink client of proto/.
 *
 * Only kvmid_* functions are exported (_public_, -fvisibility=hidden and
 * client/libkvmid.sym); everything of proto/ linked in stays hidden. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vm_sockets.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "macro.h"
#include "varlink-client.h"
#include "libkvmid.h"
#include "libkvmid-internal.h"

#define _public_ __attribute__((visibility("default")))

#ifndef VMADDR_CID_LOCAL
#define VMADDR_CID_LOCAL 1
#endif

#define DEFAULT_INTROSPECTOR_SOCKET RUNSTATEDIR "/kvmid/io.kvmid.Introspector"
#define DEFAULT_HYPERVISOR_SOCKET RUNSTATEDIR "/kvmid/io.kvmid.Hypervisor"
#define DEFAULT_TIMEOUT_MS 30000U
/* Replies of these interfaces are a few KiB: do not let json-c build
 * trees of many MiB. */
#define MAX_REPLY (1024U * 1024U)
#define AUTH_CONTEXT "kvmid-auth-v1"

struct KvmidClient {
        VarlinkClient *varlink;
        /* The channel binding of the proof: what kvmid sees of us. */
        char binding[32];
        unsigned timeout_ms;
        char *error;                    /* NULL: the last call succeeded */
        char *error_name;
        struct json_object *error_parameters;
};

DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkClient *, varlink_client_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(KvmidClient *, kvmid_client_free);

/* ---- errors ------------------------------------------------------------- */

static const struct {
        const char *name;
        int error;                      /* positive errno */
        const char *message;            /* "{param}" and "{param:x}" (hex) are replaced */
} known_errors[] = {
        { "io.kvmid.Introspector.AuthenticationFailed", EACCES,
          "authentication failed (wrong name, key or binding, or no valid nonce)" },
        { "io.kvmid.Introspector.TooManyAttempts", EAGAIN, "too many failed attempts: retry in {retry_after} s" },
        { "io.kvmid.Introspector.NoSuchSession", ENOENT, "no session {session} on this connection" },
        { "io.kvmid.Introspector.TargetUnavailable", ENXIO, "target {target} is unavailable: {reason}" },
        { "io.kvmid.Introspector.PolicyDenied", EPERM, "{permission} denied by {rule}" },
        { "io.kvmid.Introspector.LimitExceeded", EDQUOT, "limit {limit} ({max}) reached" },
        { "io.kvmid.Introspector.GpaOutsideRange", ERANGE,
          "gpa range {gpa:x}+{size:x} is outside what the policy allows" },
        { "io.kvmid.Introspector.SessionEnded", ESHUTDOWN, "session {session} ended: {reason}" },
        { "io.kvmid.Introspector.TokenTimeout", ETIMEDOUT, "the target had no map token free within {timeout_ms} ms" },
        { "io.kvmid.Introspector.NoSuchToken", ENOENT, "no token {token_id} in this session" },
        { "io.kvmid.Hypervisor.MapDenied", EPERM, "map denied: {reason}" },
        { "io.kvmid.Hypervisor.UnmapDenied", EPERM, "unmap denied: {reason}" },
        { "io.kvmid.LimitExceeded", EDQUOT, "limit {limit} ({max}) reached" },
        { "io.kvmid.ProtocolError", EPROTO, "protocol error: {reason}" },
        { "io.kvmid.InternalError", EREMOTEIO, "kvmid failed: {reason}" },
        { "io.kvmid.AuditFailed", EIO, "denied: the audit record could not be written ({reason})" },
        { "org.varlink.service.InvalidParameter", EINVAL, "invalid parameter {parameter}" },
        { "org.varlink.service.MethodNotFound", EOPNOTSUPP, "method {method} not found (is kvmid older than libkvmid?)" },
        { "org.varlink.service.MethodNotImplemented", EOPNOTSUPP, "method {method} not implemented" },
        { "org.varlink.service.InterfaceNotFound", EOPNOTSUPP, "interface {interface} not found (wrong socket?)" },
        { "org.varlink.service.PermissionDenied", EACCES, "permission denied (not authenticated?)" },
        { "org.varlink.service.ExpectedMore", EPROTO, "the method must be called with \"more\"" },
};

int libkvmid_error_errno(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(known_errors); i++)
                if (streq(known_errors[i].name, name))
                        return -known_errors[i].error;
        return -EREMOTEIO;
}

/* A peer's string into a message: control characters would reach the
 * tool's terminal or log. */
static void put_sanitized(FILE *f, const char *s) {
        for (; *s; s++)
                fputc((unsigned char) *s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

static void put_value(FILE *f, struct json_object *v, bool hex) {
        if (hex && json_object_is_type(v, json_type_int)) {
                int64_t x = json_object_get_int64(v);
                fprintf(f, "0x%" PRIx64, x < 0 ? (uint64_t) x : json_object_get_uint64(v));
        } else if (json_object_is_type(v, json_type_string))
                put_sanitized(f, json_object_get_string(v));
        else
                put_sanitized(f, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

/* Expands template; false if a parameter it names is missing. */
static bool expand(FILE *f, const char *template, struct json_object *parameters) {
        for (const char *p = template; *p;) {
                const char *end;
                char key[64];
                struct json_object *v;
                bool hex;
                size_t n;

                if (*p != '{') {
                        fputc(*p++, f);
                        continue;
                }
                end = strchr(p, '}');
                n = end ? (size_t) (end - p - 1) : 0;
                if (n == 0 || n >= sizeof key)
                        return false;
                memcpy(key, p + 1, n);
                key[n] = 0;
                hex = n > 2 && streq(key + n - 2, ":x");
                if (hex)
                        key[n - 2] = 0;
                if (!parameters || !json_object_object_get_ex(parameters, key, &v) || !v)
                        return false;
                put_value(f, v, hex);
                p = end + 1;
        }
        return true;
}

/* The parameters as they are: for an unknown error, or one whose
 * parameters a newer kvmid changed. */
static void put_parameters(FILE *f, struct json_object *parameters) {
        bool first = true;

        if (!parameters || !json_object_is_type(parameters, json_type_object))
                return;
        json_object_object_foreach(parameters, k, v) {
                fputs(first ? ": " : ", ", f);
                put_sanitized(f, k);
                fputc('=', f);
                if (v)
                        put_value(f, v, false);
                else
                        fputs("null", f);
                first = false;
        }
}

static char *format_message(const char *template, struct json_object *parameters) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        bool ok;

        if (!f)
                return NULL;
        ok = expand(f, template, parameters);
        if (fclose(f) != 0 || !ok)
                buf = mfree(buf);
        return buf;
}

char *libkvmid_format_error(const char *name, struct json_object *parameters) {
        _cleanup_free_ char *message = NULL;
        char *buf = NULL;
        size_t len = 0;
        FILE *f;

        for (size_t i = 0; i < ELEMENTSOF(known_errors); i++)
                if (streq(known_errors[i].name, name))
                        message = format_message(known_errors[i].message, parameters);

        f = open_memstream(&buf, &len);
        if (!f)
                return NULL;
        put_sanitized(f, name);
        if (message) {
                fputs(": ", f);
                fputs(message, f);
        } else
                put_parameters(f, parameters);
        if (fclose(f) != 0)
                return mfree(buf);
        return buf;
}

static void clear_error(KvmidClient *c) {
        c->error = mfree(c->error);
        c->error_name = mfree(c->error_name);
        if (c->error_parameters)
                json_object_put(TAKE_PTR(c->error_parameters));
}

/* A local failure: sets the message, returns r. */
static int fail(KvmidClient *c, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(KvmidClient *c, int r, const char *fmt, ...) {
        va_list ap;

        clear_error(c);
        va_start(ap, fmt);
        if (vasprintf(&c->error, fmt, ap) < 0)
                c->error = NULL;
        va_end(ap);
        return r;
}

/* An error reply of kvmid: returns the errno it stands for. */
static int fail_remote(KvmidClient *c, const char *name, struct json_object *parameters) {
        clear_error(c);
        c->error_name = strdup(name);
        c->error = libkvmid_format_error(name, parameters);
        c->error_parameters = parameters ? json_object_get(parameters) : NULL;
        if (!c->error_name || !c->error)
                return -ENOMEM;
        return libkvmid_error_errno(name);
}

static int fail_io(KvmidClient *c, const char *method, int r) {
        const char *what = strrchr(method, '.') + 1;

        switch (r) {
        case -ETIMEDOUT:
                return fail(c, r, "%s: no reply from kvmid within %u ms", what, c->timeout_ms);
        case -ECONNRESET:
                return fail(c, r, "%s: kvmid closed the connection", what);
        case -ENOTCONN:
                return fail(c, r, "%s: the connection is unusable after an interrupted call", what);
        case -EBADMSG:
        case -EMSGSIZE:
                return fail(c, r, "%s: malformed or oversized reply from kvmid", what);
        default:
                return fail(c, r, "%s: %s", what, strerror(-r));
        }
}

_public_ const char *kvmid_last_error(const KvmidClient *c) {
        return c && c->error ? c->error : "";
}

_public_ const char *kvmid_last_error_name(const KvmidClient *c) {
        return c ? c->error_name : NULL;
}

_public_ const char *kvmid_last_error_parameter(const KvmidClient *c, const char *name) {
        struct json_object *v;

        if (!c || !name || !c->error_parameters || !json_object_object_get_ex(c->error_parameters, name, &v) || !v)
                return NULL;
        if (json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        /* Kept by v until the error is replaced. */
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* ---- calls -------------------------------------------------------------- */

/* parameters is taken (NULL: out of memory while building it).  On
 * success *ret_reply (may be NULL) owns the reply parameters. */
static int call(KvmidClient *c, const char *method, struct json_object *parameters, struct json_object **ret_reply) {
        _cleanup_json_ struct json_object *p = parameters, *reply = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        clear_error(c);
        if (!p)
                return fail(c, -ENOMEM, "%s: out of memory", method);

        r = varlink_client_call(c->varlink, method, p, &reply, &error);
        if (r < 0)
                return fail_io(c, method, r);
        if (error)
                return fail_remote(c, error, reply);
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

/* Builders that leave NULL behind without memory, which call() reports. */
static struct json_object *add(struct json_object *o, const char *key, struct json_object *v) {
        if (!o || !v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                json_object_put(o);
                return NULL;
        }
        return o;
}

static struct json_object *add_string(struct json_object *o, const char *key, const char *s) {
        return add(o, key, json_object_new_string(s));
}

static struct json_object *add_u64(struct json_object *o, const char *key, uint64_t v) {
        return add(o, key, v <= INT64_MAX ? json_object_new_int64((int64_t) v) : json_object_new_uint64(v));
}

static const char *reply_string(struct json_object *reply, const char *key) {
        struct json_object *v;

        if (!reply || !json_object_object_get_ex(reply, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* Non-negative JSON integers up to UINT64_MAX; negative ones as two's
 * complement when 'wrap' (registers sent as int64). */
static int get_u64(struct json_object *o, const char *key, bool wrap, uint64_t *ret) {
        struct json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        x = json_object_get_int64(v);
        if (x < 0 && !wrap)
                return -EBADMSG;
        /* get_int64 clamps values above INT64_MAX; get_uint64 is exact for those. */
        *ret = x < 0 ? (uint64_t) x : json_object_get_uint64(v);
        return 0;
}

/* ---- connections ---------------------------------------------------------- */

static int client_new(VarlinkClient *varlink, const char *binding, KvmidClient **ret) {
        KvmidClient *c = calloc(1, sizeof *c);

        if (!c)
                return -ENOMEM;
        c->varlink = varlink;
        c->timeout_ms = DEFAULT_TIMEOUT_MS;
        varlink_client_set_timeout(varlink, c->timeout_ms);
        varlink_client_set_max_message(varlink, MAX_REPLY);
        snprintf(c->binding, sizeof c->binding, "%s", binding);
        *ret = c;
        return 0;
}

/* The CID kvmid sees as ours: the local CID of the vsock transport. */
static int local_cid(int fd, unsigned *ret) {
        struct sockaddr_vm sa = {};
        socklen_t len = sizeof sa;
        _cleanup_close_ int dev = open("/dev/vsock", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        unsigned cid;

        if (dev >= 0 && ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) >= 0 && cid != VMADDR_CID_ANY) {
                *ret = cid;
                return 0;
        }
        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        if (sa.svm_family != AF_VSOCK || sa.svm_cid == VMADDR_CID_ANY)
                return -EADDRNOTAVAIL;
        *ret = sa.svm_cid;
        return 0;
}

/* connect() interrupted by a signal goes on in the background: wait for it. */
static int connect_finish(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        socklen_t len = sizeof(int);
        int error = 0;

        while (poll(&p, 1, -1) < 0)
                if (errno != EINTR)
                        return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                return -errno;
        return error > 0 ? -error : 0;
}

_public_ int kvmid_connect_vsock(unsigned cid, unsigned port, KvmidClient **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(varlink_client_freep) VarlinkClient *varlink = NULL;
        struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
        char binding[32];
        unsigned mine = 0;
        int r;

        if (!ret)
                return -EINVAL;
        fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) &sa, sizeof sa) < 0) {
                if (errno != EINTR)
                        return -errno;
                r = connect_finish(fd);
                if (r < 0)
                        return r;
        }
        /* Over the loopback transport kvmid sees CID 1, whatever ours is. */
        if (cid == VMADDR_CID_LOCAL)
                mine = VMADDR_CID_LOCAL;
        else {
                r = local_cid(fd, &mine);
                if (r < 0)
                        return r;
        }
        snprintf(binding, sizeof binding, "vsock:%u", mine);

        r = varlink_client_new_from_fd(fd, &varlink);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        r = client_new(varlink, binding, ret);
        if (r < 0)
                return r;
        TAKE_PTR(varlink);
        return 0;
}

static int parse_vsock(const char *s, unsigned *ret_cid, unsigned *ret_port) {
        unsigned long v[2];
        char *end;

        for (size_t i = 0; i < 2; i++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                errno = 0;
                v[i] = strtoul(s, &end, 10);
                if (errno != 0 || v[i] > UINT32_MAX || *end != (i == 0 ? ':' : 0))
                        return -EINVAL;
                s = end + 1;
        }
        *ret_cid = (unsigned) v[0];
        *ret_port = (unsigned) v[1];
        return 0;
}

static int connect_address(const char *address, const char *env, const char *fallback, KvmidClient **ret) {
        _cleanup_(varlink_client_freep) VarlinkClient *varlink = NULL;
        _cleanup_free_ char *unix_address = NULL;
        char binding[32];
        int r;

        if (!ret)
                return -EINVAL;
        if (!address)
                address = secure_getenv(env);
        if (!address || !*address)
                address = fallback;
        if (strneq(address, "vsock:", 6)) {
                unsigned cid, port;

                r = parse_vsock(address + 6, &cid, &port);
                if (r < 0)
                        return r;
                return kvmid_connect_vsock(cid, port, ret);
        }
        /* Plain relative paths too, which varlink addresses spell "unix:PATH". */
        if (!strneq(address, "unix:", 5) && address[0] != '/') {
                if (asprintf(&unix_address, "unix:%s", address) < 0)
                        return -ENOMEM;
                address = unix_address;
        }

        /* SO_PEERCRED reports the effective uid at connect() time. */
        snprintf(binding, sizeof binding, "unix:%u", (unsigned) geteuid());
        r = varlink_client_connect(address, &varlink);
        if (r < 0)
                return r;
        r = client_new(varlink, binding, ret);
        if (r < 0)
                return r;
        TAKE_PTR(varlink);
        return 0;
}

_public_ int kvmid_connect(const char *address, KvmidClient **ret) {
        return connect_address(address, "KVMID_INTROSPECTOR_SOCKET", DEFAULT_INTROSPECTOR_SOCKET, ret);
}

_public_ int kvmid_connect_hypervisor(const char *address, KvmidClient **ret) {
        return connect_address(address, "KVMID_HYPERVISOR_SOCKET", DEFAULT_HYPERVISOR_SOCKET, ret);
}

_public_ KvmidClient *kvmid_client_free(KvmidClient *c) {
        if (!c)
                return NULL;
        clear_error(c);
        varlink_client_free(c->varlink);
        free(c);
        return NULL;
}

_public_ void kvmid_set_timeout(KvmidClient *c, unsigned timeout_ms) {
        if (!c)
                return;
        c->timeout_ms = timeout_ms;
        varlink_client_set_timeout(c->varlink, timeout_ms);
}

/* ---- authentication ------------------------------------------------------- */

static int unhex(const char *hex, uint8_t *out, size_t n) {
        if (!hex || strlen(hex) != 2 * n)
                return -EBADMSG;
        for (size_t i = 0; i < 2 * n; i++) {
                char ch = hex[i];
                int v = ch >= '0' && ch <= '9' ? ch - '0'
                      : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                      : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
                if (v < 0)
                        return -EBADMSG;
                if (i % 2 == 0)
                        out[i / 2] = (uint8_t) (v << 4);
                else
                        out[i / 2] |= (uint8_t) v;
        }
        return 0;
}

static void tohex(const uint8_t *in, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = 0;
}

int libkvmid_proof(const void *key, size_t key_len, const uint8_t nonce[LIBKVMID_NONCE_SIZE], const char *name,
                   const char *binding, char ret_hex[2 * 32 + 1]) {
        size_t nl = strlen(name), bl = strlen(binding);
        size_t len = sizeof AUTH_CONTEXT + LIBKVMID_NONCE_SIZE + nl + 1 + bl;
        _cleanup_free_ uint8_t *msg = NULL;
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        uint8_t *p;

        if (key_len == 0 || key_len > INT32_MAX)
                return -EINVAL;
        msg = malloc(len);
        if (!msg)
                return -ENOMEM;
        p = msg;
        memcpy(p, AUTH_CONTEXT, sizeof AUTH_CONTEXT);       /* with its NUL */
        p += sizeof AUTH_CONTEXT;
        memcpy(p, nonce, LIBKVMID_NONCE_SIZE);
        p += LIBKVMID_NONCE_SIZE;
        memcpy(p, name, nl + 1);                            /* with its NUL */
        p += nl + 1;
        memcpy(p, binding, bl);
        if (!HMAC(EVP_sha256(), key, (int) key_len, msg, len, mac, &mac_len) || mac_len != 32)
                return -EIO;
        tohex(mac, 32, ret_hex);
        OPENSSL_cleanse(mac, sizeof mac);
        return 0;
}

_public_ int kvmid_authenticate(KvmidClient *c, const char *name, const void *key, size_t key_len) {
        _cleanup_json_ struct json_object *hello = NULL, *reply = NULL;
        uint8_t nonce[LIBKVMID_NONCE_SIZE];
        char proof[2 * 32 + 1];
        const char *who;
        int r;

        if (!c)
                return -EINVAL;
        if (!name || !*name)
                return fail(c, -EINVAL, "Authenticate: no introspector name");
        if (!key || key_len < LIBKVMID_KEY_MIN || key_len > LIBKVMID_KEY_MAX)
                return fail(c, -EINVAL, "Authenticate: the key must be %u to %u bytes", LIBKVMID_KEY_MIN,
                            LIBKVMID_KEY_MAX);

        r = call(c, "io.kvmid.Introspector.Hello", json_object_new_object(), &hello);
        if (r < 0)
                return r;
        if (unhex(reply_string(hello, "nonce"), nonce, sizeof nonce) < 0)
                return fail(c, -EBADMSG, "Hello: the reply has no valid nonce");

        r = libkvmid_proof(key, key_len, nonce, name, c->binding, proof);
        if (r < 0)
                return fail(c, r, "Authenticate: cannot compute the proof: %s", strerror(-r));
        r = call(c, "io.kvmid.Introspector.Authenticate",
                 add_string(add_string(json_object_new_object(), "name", name), "proof", proof), &reply);
        OPENSSL_cleanse(proof, sizeof proof);
        if (r < 0)
                return r;
        who = reply_string(reply, "introspector");
        if (!who || !streq(who, name))
                return fail(c, -EBADMSG, "Authenticate: the reply names another introspector");
        return 0;
}

static void key_freep(uint8_t **key) {
        free(*key);
}

int libkvmid_read_key_file(const char *path, uint8_t **ret_key, size_t *ret_len, const char **ret_why) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t buf[LIBKVMID_KEY_MAX + 1];
        struct stat st;
        size_t len = 0;
        uint8_t *key = NULL;
        int r = 0;

        /* The file a symlink points to is the one checked and read. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                *ret_why = "cannot open the key file";
                return -errno;
        }
        if (fstat(fd, &st) < 0) {
                *ret_why = "cannot stat the key file";
                return -errno;
        }
        if (!S_ISREG(st.st_mode)) {
                *ret_why = "the key file is not a regular file";
                return -EINVAL;
        }
        if (st.st_mode & 0077) {
                *ret_why = "the key file is readable or writable by group or others (chmod 0600 it)";
                return -EPERM;
        }
        while (len < sizeof buf) {
                ssize_t n = read(fd, buf + len, sizeof buf - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        *ret_why = "cannot read the key file";
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (r == 0 && (len < LIBKVMID_KEY_MIN || len > LIBKVMID_KEY_MAX)) {
                *ret_why = len < LIBKVMID_KEY_MIN ? "the key must be at least 32 bytes"
                                                  : "the key must be at most 1024 bytes";
                r = -EINVAL;
        }
        if (r == 0 && !(key = malloc(len))) {
                *ret_why = "out of memory";
                r = -ENOMEM;
        }
        if (r < 0) {
                OPENSSL_cleanse(buf, sizeof buf);
                return r;
        }
        memcpy(key, buf, len);
        OPENSSL_cleanse(buf, sizeof buf);
        *ret_key = key;
        *ret_len = len;
        return 0;
}

_public_ int kvmid_authenticate_key_file(KvmidClient *c, const char *name, const char *path) {
        _cleanup_(key_freep) uint8_t *key = NULL;
        const char *why = NULL;
        size_t len = 0;
        int r;

        if (!c)
                return -EINVAL;
        if (!path)
                return fail(c, -EINVAL, "Authenticate: no key file");
        r = libkvmid_read_key_file(path, &key, &len, &why);
        if (r == -EPERM || r == -EINVAL)
                return fail(c, r, "%s: %s", path, why);
        if (r < 0)
                return fail(c, r, "%s: %s: %s", path, why, strerror(-r));
        r = kvmid_authenticate(c, name, key, len);
        OPENSSL_cleanse(key, len);
        return r;
}

/* ---- sessions --------------------------------------------------------------- */

_public_ int kvmid_open_session(KvmidClient *c, const char *target, char **ret_session) {
        _cleanup_json_ struct json_object *reply = NULL;
        const char *session;
        char *s;
        int r;

        if (!c)
                return -EINVAL;
        if (!target || !ret_session)
                return fail(c, -EINVAL, "OpenSession: no target");
        r = call(c, "io.kvmid.Introspector.OpenSession", add_string(json_object_new_object(), "target", target),
                 &reply);
        if (r < 0)
                return r;
        session = reply_string(reply, "session");
        if (!session || !*session)
                return fail(c, -EBADMSG, "OpenSession: the reply has no session");
        s = strdup(session);
        if (!s)
                return fail(c, -ENOMEM, "OpenSession: out of memory");
        *ret_session = s;
        return 0;
}

_public_ int kvmid_close_session(KvmidClient *c, const char *session) {
        if (!c)
                return -EINVAL;
        if (!session)
                return fail(c, -EINVAL, "CloseSession: no session");
        return call(c, "io.kvmid.Introspector.CloseSession", add_string(json_object_new_object(), "session", session),
                    NULL);
}

/* ---- guest requests ------------------------------------------------------------ */

static const char *const reg_names[KVMID_REG_COUNT] = {
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
        "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
};

_public_ const char *kvmid_reg_name(unsigned reg) {
        return reg < KVMID_REG_COUNT ? reg_names[reg] : NULL;
}

int libkvmid_parse_guest_request(struct json_object *o, KvmidGuestRequest *ret, const char **ret_field) {
        static const char *const numbers[] = { "seq", "vcpu", "mode", "time_usec", "missed" };
        KvmidGuestRequest ev = {};
        struct json_object *regs, *unreliable;
        uint64_t n[ELEMENTSOF(numbers)];

        *ret_field = "event";
        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        *ret_field = "target";
        if (!(ev.target = reply_string(o, "target")))
                return -EBADMSG;
        *ret_field = "uuid";
        if (!(ev.uuid = reply_string(o, "uuid")))
                return -EBADMSG;
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                *ret_field = numbers[i];
                if (get_u64(o, numbers[i], false, &n[i]) < 0)
                        return -EBADMSG;
        }
        *ret_field = "vcpu";
        if (n[1] > UINT32_MAX)
                return -EBADMSG;
        *ret_field = "mode";
        if (n[2] > UINT32_MAX)
                return -EBADMSG;
        ev.seq = n[0];
        ev.vcpu = (unsigned) n[1];
        ev.mode = (unsigned) n[2];
        ev.time_usec = n[3];
        ev.missed = n[4];

        *ret_field = "regs";
        if (!json_object_object_get_ex(o, "regs", &regs) || !json_object_is_type(regs, json_type_object))
                return -EBADMSG;
        for (unsigned i = 0; i < KVMID_REG_COUNT; i++) {
                *ret_field = reg_names[i];
                if (get_u64(regs, reg_names[i], true, &ev.regs[i]) < 0)
                        return -EBADMSG;
        }

        /* Names this library does not know (a newer kvmid) are left out. */
        *ret_field = "unreliable";
        if (!json_object_object_get_ex(o, "unreliable", &unreliable) || !json_object_is_type(unreliable, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(unreliable); i++) {
                struct json_object *v = json_object_array_get_idx(unreliable, i);

                if (!json_object_is_type(v, json_type_string))
                        return -EBADMSG;
                for (unsigned k = 0; k < KVMID_REG_COUNT; k++)
                        if (streq(json_object_get_string(v), reg_names[k]))
                                ev.unreliable |= 1U << k;
        }

        *ret_field = NULL;
        *ret = ev;
        return 0;
}

typedef struct StreamCtx {
        KvmidClient *client;
        const char *method;
        int (*dispatch)(struct StreamCtx *ctx, struct json_object *parameters);
        KvmidEventFn event_fn;
        KvmidRevocationFn revocation_fn;
        void *userdata;
        bool live;
        int stopped;                    /* the callback's nonzero value */
        int failed;                     /* -errno of a malformed reply */
} StreamCtx;

static int stream_reply(VarlinkClient *varlink, const VarlinkReply *reply, void *userdata) {
        StreamCtx *ctx = userdata;
        int r;

        if (reply->error) {
                /* fail_remote() keeps what the stream ended with; the caller decides. */
                ctx->failed = fail_remote(ctx->client, reply->error, reply->parameters);
                return 0;
        }
        if (!ctx->live) {
                ctx->live = true;
                /* Events come when the guest makes them: no timeout from now on. */
                varlink_client_set_timeout(varlink, 0);
                r = ctx->event_fn ? ctx->event_fn(NULL, ctx->userdata) : ctx->revocation_fn(NULL, ctx->userdata);
                if (r != 0) {
                        ctx->stopped = r;
                        return -ECANCELED;
                }
        }
        r = ctx->dispatch(ctx, reply->parameters);
        if (r != 0)
                return -ECANCELED;
        return 0;
}

static int event_dispatch(StreamCtx *ctx, struct json_object *parameters) {
        struct json_object *event;
        KvmidGuestRequest ev;
        const char *field;
        int r;

        if (!json_object_object_get_ex(parameters, "event", &event) || !event)
                return 0;       /* the "live" reply */
        if (libkvmid_parse_guest_request(event, &ev, &field) < 0) {
                ctx->failed = fail(ctx->client, -EBADMSG, "Subscribe: malformed GuestRequest from kvmid (field \"%s\")",
                                   field);
                return ctx->failed;
        }
        r = ctx->event_fn(&ev, ctx->userdata);
        if (r != 0)
                ctx->stopped = r;
        return r;
}

/* Runs a call with "more" through dispatch.  0 once kvmid ended it. */
static int stream(StreamCtx *ctx, struct json_object *parameters) {
        _cleanup_json_ struct json_object *p = parameters;
        KvmidClient *c = ctx->client;
        int r;

        clear_error(c);
        if (!p)
                return fail(c, -ENOMEM, "%s: out of memory", ctx->method);
        r = varlink_client_call_more(c->varlink, ctx->method, p, stream_reply, ctx);
        varlink_client_set_timeout(c->varlink, c->timeout_ms);
        if (ctx->stopped != 0) {
                clear_error(c);
                return ctx->stopped;
        }
        if (ctx->failed == -ESHUTDOWN && streq(kvmid_last_error_name(c), "io.kvmid.Introspector.SessionEnded"))
                return 0;       /* the documented end, error details kept */
        if (ctx->failed < 0)
                return ctx->failed;
        if (r < 0)
                return fail_io(c, ctx->method, r);
        return 0;
}

_public_ int kvmid_subscribe(KvmidClient *c, const char *session, const unsigned *vcpus, size_t n_vcpus,
                             KvmidEventFn fn, void *userdata) {
        StreamCtx ctx = {
                .client = c,
                .method = "io.kvmid.Introspector.Subscribe",
                .dispatch = event_dispatch,
                .event_fn = fn,
                .userdata = userdata,
        };
        struct json_object *p;

        if (!c)
                return -EINVAL;
        if (!session || !fn || (n_vcpus > 0 && !vcpus))
                return fail(c, -EINVAL, "Subscribe: no session, callback or vCPU list");
        p = add_string(json_object_new_object(), "session", session);
        if (n_vcpus > 0) {
                struct json_object *a = json_object_new_array();

                for (size_t i = 0; a && i < n_vcpus; i++) {
                        struct json_object *v = json_object_new_int64(vcpus[i]);

                        if (!v || json_object_array_add(a, v) < 0) {
                                json_object_put(v);
                                json_object_put(TAKE_PTR(a));
                        }
                }
                p = add(p, "vcpus", a);
        }
        return stream(&ctx, p);
}

/* ---- map tokens ------------------------------------------------------------------ */

int libkvmid_parse_token(struct json_object *parameters, KvmidToken *ret, const char **ret_field) {
        KvmidToken t = {};
        const char *s;

        *ret_field = "token";
        s = reply_string(parameters, "token");
        if (unhex(s, t.bytes, sizeof t.bytes) < 0)
                return -EBADMSG;
        tohex(t.bytes, sizeof t.bytes, t.hex);
        *ret_field = "token_id";
        s = reply_string(parameters, "token_id");
        if (!s || !*s || strlen(s) >= sizeof t.id) {
                OPENSSL_cleanse(&t, sizeof t);
                return -EBADMSG;
        }
        strcpy(t.id, s);
        *ret_field = "expires_usec";
        if (get_u64(parameters, "expires_usec", false, &t.expires_usec) < 0) {
                OPENSSL_cleanse(&t, sizeof t);
                return -EBADMSG;
        }
        *ret_field = NULL;
        *ret = t;
        OPENSSL_cleanse(&t, sizeof t);
        return 0;
}

_public_ int kvmid_get_map_token(KvmidClient *c, const char *session, uint64_t gpa, uint64_t size, KvmidToken *ret) {
        _cleanup_json_ struct json_object *reply = NULL;
        const char *field;
        int r;

        if (!c)
                return -EINVAL;
        if (!session || !ret)
                return fail(c, -EINVAL, "GetMapToken: no session");
        r = call(c, "io.kvmid.Introspector.GetMapToken",
                 add_u64(add_u64(add_string(json_object_new_object(), "session", session), "gpa", gpa), "size", size),
                 &reply);
        if (r < 0)
                return r;
        if (libkvmid_parse_token(reply, ret, &field) < 0)
                return fail(c, -EBADMSG, "GetMapToken: malformed reply (field \"%s\")", field);
        return 0;
}

_public_ int kvmid_revoke_token(KvmidClient *c, const char *session, const char *token_id) {
        if (!c)
                return -EINVAL;
        if (!session || !token_id)
                return fail(c, -EINVAL, "RevokeToken: no session or token id");
        return call(c, "io.kvmid.Introspector.RevokeToken",
                    add_string(add_string(json_object_new_object(), "session", session), "token_id", token_id), NULL);
}

/* ---- hypervisor side ----------------------------------------------------------------- */

_public_ void kvmid_mapping_clear(KvmidMapping *m) {
        if (!m)
                return;
        free(m->target);
        free(m->uuid);
        free(m->token_id);
        *m = (KvmidMapping) {};
}

/* Copies an optional string of the reply; false without memory. */
static bool dup_optional(struct json_object *reply, const char *key, char **ret) {
        const char *s = reply_string(reply, key);

        *ret = s ? strdup(s) : NULL;
        return !s || *ret;
}

_public_ int kvmid_mem_map(KvmidClient *c, const char *introspector, const uint8_t token[KVMID_TOKEN_SIZE],
                           uint64_t target_gpa, uint64_t local_gpa, KvmidMapping *ret) {
        _cleanup_json_ struct json_object *reply = NULL;
        KvmidMapping m = { .target_gpa = target_gpa };
        char hex[2 * KVMID_TOKEN_SIZE + 1];
        struct json_object *p;
        int r;

        if (!c)
                return -EINVAL;
        if (!introspector || !token)
                return fail(c, -EINVAL, "MemMap: no introspector or token");
        tohex(token, KVMID_TOKEN_SIZE, hex);
        p = add_string(json_object_new_object(), "introspector", introspector);
        p = add_u64(add_u64(add_string(p, "token", hex), "target_gpa", target_gpa), "local_gpa", local_gpa);
        OPENSSL_cleanse(hex, sizeof hex);
        r = call(c, "io.kvmid.Hypervisor.MemMap", p, &reply);
        if (r < 0)
                return r;
        if (!reply_string(reply, "target"))
                return fail(c, -EBADMSG, "MemMap: the reply names no target");
        if (!ret)
                return 0;
        if (!dup_optional(reply, "target", &m.target) || !dup_optional(reply, "uuid", &m.uuid) ||
            !dup_optional(reply, "token_id", &m.token_id)) {
                kvmid_mapping_clear(&m);
                return fail(c, -ENOMEM, "MemMap: out of memory");
        }
        *ret = m;
        return 0;
}

_public_ int kvmid_mem_unmap(KvmidClient *c, const char *introspector, uint64_t local_gpa, KvmidMapping *ret) {
        _cleanup_json_ struct json_object *reply = NULL;
        KvmidMapping m = {};
        int r;

        if (!c)
                return -EINVAL;
        if (!introspector)
                return fail(c, -EINVAL, "MemUnmap: no introspector");
        r = call(c, "io.kvmid.Hypervisor.MemUnmap",
                 add_u64(add_string(json_object_new_object(), "introspector", introspector), "local_gpa", local_gpa),
                 &reply);
        if (r < 0)
                return r;
        if (!reply_string(reply, "target") || get_u64(reply, "target_gpa", false, &m.target_gpa) < 0)
                return fail(c, -EBADMSG, "MemUnmap: malformed reply");
        if (!ret)
                return 0;
        if (!dup_optional(reply, "target", &m.target))
                return fail(c, -ENOMEM, "MemUnmap: out of memory");
        *ret = m;
        return 0;
}

static int revocation_dispatch(StreamCtx *ctx, struct json_object *parameters) {
        KvmidRevocation rev = {
                .introspector = reply_string(parameters, "introspector"),
                .target = reply_string(parameters, "target"),
                .reason = reply_string(parameters, "reason"),
        };
        struct json_object *v;
        int r;

        if (!json_object_object_get_ex(parameters, "local_gpa", &v) || !v)
                return 0;       /* the "live" reply */
        if (get_u64(parameters, "local_gpa", false, &rev.local_gpa) < 0) {
                ctx->failed = fail(ctx->client, -EBADMSG, "WatchRevocations: malformed reply (field \"local_gpa\")");
                return ctx->failed;
        }
        r = ctx->revocation_fn(&rev, ctx->userdata);
        if (r != 0)
                ctx->stopped = r;
        return r;
}

_public_ int kvmid_watch_revocations(KvmidClient *c, const char *introspector, KvmidRevocationFn fn, void *userdata) {
        StreamCtx ctx = {
                .client = c,
                .method = "io.kvmid.Hypervisor.WatchRevocations",
                .dispatch = revocation_dispatch,
                .revocation_fn = fn,
                .userdata = userdata,
        };
        struct json_object *p = json_object_new_object();

        if (!c) {
                json_object_put(p);
                return -EINVAL;
        }
        if (!fn) {
                json_object_put(p);
                return fail(c, -EINVAL, "WatchRevocations: no callback");
        }
        if (introspector)
                p = add_string(p, "introspector", introspector);
        return stream(&ctx, p);
}
