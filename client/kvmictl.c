/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmictl: the operator's command line for kvmid. */

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kvmictl.h"
#include "audit-record.h"
#include "kvmi.h"
#include "policy.h"
#include "varlink-client.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#define DEFAULT_SOCKET RUNSTATEDIR "/kvmid/io.kvmid.Admin"
#define HYPERVISOR_SOCKET RUNSTATEDIR "/kvmid/io.kvmid.Hypervisor"
#define KVMID_XMLNS "http://kvmid.io/xmlns/introspection/1"
#define HOOK_XML_MAX (16U << 20)

#define MAX_LABELS 64

typedef enum JsonMode { JSON_OFF, JSON_PRETTY, JSON_SHORT } JsonMode;

typedef struct Ctx {
        const char *socket;
        JsonMode json;
        bool legend;
        unsigned timeout_sec;
        bool more, oneway;
        const char *introspector, *target, *perm;
        const char *labels[MAX_LABELS];
        size_t n_labels;
        bool follow;
        unsigned lines;
        const char *kinds[MAX_LABELS];
        size_t n_kinds;
        const char *expect_last;        /* audit verify: "SEQ[:DIGEST]" */
        unsigned given;                 /* VERB_OPT_* seen on the command line */
        VarlinkClient *client;
} Ctx;

/* Options only some verbs take. */
enum {
        VERB_OPT_CALL = 1U << 0,        /* --more, --oneway */
        VERB_OPT_EXPLAIN = 1U << 1,     /* --perm, --label */
        VERB_OPT_FILTER = 1U << 2,      /* --introspector, --target */
        VERB_OPT_TAIL = 1U << 3,        /* --follow, --lines, --kind */
        VERB_OPT_VERIFY = 1U << 4,      /* --expect-last */
};

typedef struct Verb {
        const char *name;
        const char *usage;              /* arguments, for --help */
        const char *help;
        int min_args, max_args;         /* after the verb */
        int (*run)(Ctx *ctx, int argc, char **argv);
        unsigned options;               /* VERB_OPT_*: the verb-specific options it takes */
} Verb;

static int errorf(int code, const char *fmt, ...) _printf_(2, 3);
static int errorf(int code, const char *fmt, ...) {
        va_list ap;

        fputs("kvmictl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

static int exit_code_for_error(const char *error) {
        if (streq(error, "org.varlink.service.PermissionDenied"))
                return EXIT_DENIED;
        size_t n = strlen(error);
        /* InterfaceNotFound, MethodNotFound, DomainNotFound, ... */
        if (n >= 8 && streq(error + n - 8, "NotFound"))
                return EXIT_NOTFOUND;
        return EXIT_FAIL;
}

static int connect_daemon(Ctx *ctx) {
        int r;

        if (ctx->client)
                return 0;
        r = varlink_client_connect(ctx->socket, &ctx->client);
        if (r < 0)
                return errorf(r == -ENOENT || r == -ECONNREFUSED ? EXIT_NOTFOUND : r == -EACCES ? EXIT_DENIED : EXIT_FAIL,
                              "cannot connect to \"%s\": %s%s", ctx->socket, strerror(-r),
                              r == -ENOENT || r == -ECONNREFUSED ? " (is kvmid running?)" : "");
        varlink_client_set_timeout(ctx->client, ctx->timeout_sec * 1000U);
        return 0;
}

static int print_json(const Ctx *ctx, struct json_object *o) {
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                    (ctx->json == JSON_SHORT ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);

        puts(json_object_to_json_string_ext(o, flags));
        return fflush(stdout) == 0 ? 0 : -errno;
}

static void print_error_reply(const char *method, const char *error, struct json_object *params) {
        fprintf(stderr, "kvmictl: %s: %s %s\n", method, error,
                json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* One call with one reply; error replies become messages and exit codes. */
static int call_simple(Ctx *ctx, const char *method, struct json_object *params, struct json_object **ret) {
        _cleanup_json_ struct json_object *reply = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = connect_daemon(ctx);
        if (r != 0)
                return r;
        r = varlink_client_call(ctx->client, method, params, &reply, &error);
        if (r < 0)
                return errorf(EXIT_FAIL, "%s: %s", method,
                              r == -ETIMEDOUT ? "timed out waiting for kvmid" : strerror(-r));
        if (error) {
                print_error_reply(method, error, reply);
                return exit_code_for_error(error);
        }
        *ret = TAKE_PTR(reply);
        return 0;
}

static int64_t get_int(struct json_object *o, const char *key) {
        return json_object_get_int64(json_object_object_get(o, key));
}

static const char *get_str(struct json_object *o, const char *key) {
        return json_object_get_string(json_object_object_get(o, key));
}

static void format_duration(uint64_t usec, char *buf, size_t n) {
        uint64_t s = usec / 1000000ULL;

        if (s >= 86400)
                snprintf(buf, n, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "min", s / 86400, s % 86400 / 3600, s % 3600 / 60);
        else if (s >= 3600)
                snprintf(buf, n, "%" PRIu64 "h %" PRIu64 "min %" PRIu64 "s", s / 3600, s % 3600 / 60, s % 60);
        else if (s >= 60)
                snprintf(buf, n, "%" PRIu64 "min %" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, n, "%" PRIu64 ".%03" PRIu64 "s", s, (uint64_t) (usec % 1000000ULL / 1000));
}

static int verb_status(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *st = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *listeners;
        char uptime[64];
        int r;

        r = call_simple(ctx, "io.kvmid.Admin.GetStatus", NULL, &st);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, st) < 0 ? EXIT_FAIL : EXIT_OK;

        format_duration((uint64_t) get_int(st, "uptime_usec"), uptime, sizeof uptime);
        printf("    Version: %s\n", get_str(st, "version"));
        printf("     Uptime: %s\n", uptime);
        printf("     Config: %s\n", get_str(st, "config") ?: "(built-in defaults)");
        printf("Connections: %" PRId64 " (limit %" PRId64 ", %" PRId64 " per uid)\n", get_int(st, "connections"),
               get_int(st, "max_connections"), get_int(st, "max_connections_per_uid"));
        printf("    Domains: %" PRId64 " known, %" PRId64 " with a ready KVMI channel\n", get_int(st, "domains"),
               get_int(st, "domains_ready"));
        printf("       KVMI: %s (%" PRId64 " channels)\n", get_str(st, "kvmi_socket"), get_int(st, "kvmi_channels"));
        printf("   Sessions: %" PRId64 " (%" PRId64 " subscribers)\n", get_int(st, "sessions"), get_int(st, "subscribers"));
        printf("     Policy: %" PRId64 " rules, digest %.16s\n", get_int(st, "policy_rules"), get_str(st, "policy_digest"));
        struct json_object *lvs = json_object_object_get(st, "libvirt");
        if (lvs)
                printf("    Libvirt: %s, %s, %" PRId64 " domains\n", get_str(lvs, "uri"),
                       json_object_get_boolean(json_object_object_get(lvs, "connected")) ? "connected" : "disconnected",
                       get_int(lvs, "domains"));
        else
                printf("    Libvirt: off\n");
        struct json_object *au = json_object_object_get(st, "audit");
        printf("      Audit: %s, %s, %" PRId64 " records%s%s\n\n", get_str(au, "file"),
               json_object_get_boolean(json_object_object_get(au, "degraded")) ? "DEGRADED (allows are denied)" : "ok",
               get_int(au, "records"), get_str(au, "last_error") ? ", last error: " : "",
               get_str(au, "last_error") ?: "");

        t = table_new("LISTENER", "ACTIVE", "ACCEPTED", "REJECTED", "CALLS", "ERRORS", "IN", "OUT", "SOCKET", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        listeners = json_object_object_get(st, "listeners");
        for (size_t i = 0; i < json_object_array_length(listeners); i++) {
                struct json_object *l = json_object_array_get_idx(listeners, i);
                char num[6][24];
                static const char *const keys[] = { "active", "accepted", "rejected", "calls", "errors", "bytes_in" };

                for (size_t k = 0; k < ELEMENTSOF(keys); k++)
                        snprintf(num[k], sizeof num[k], "%" PRId64, get_int(l, keys[k]));
                char out[24];
                snprintf(out, sizeof out, "%" PRId64, get_int(l, "bytes_out"));
                if (table_add_row(t, get_str(l, "name"), num[0], num[1], num[2], num[3], num[4], num[5], out,
                                  get_str(l, "socket")) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        table_print(t, stdout, ctx->legend, "listeners");
        return EXIT_OK;
}

static int verb_introspect(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL, *params = NULL;
        int r;

        if (argc == 0) {
                struct json_object *ifaces;

                r = call_simple(ctx, "org.varlink.service.GetInfo", NULL, &reply);
                if (r != 0)
                        return r;
                if (ctx->json != JSON_OFF)
                        return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
                printf("    Vendor: %s\n", get_str(reply, "vendor"));
                printf("   Product: %s\n", get_str(reply, "product"));
                printf("   Version: %s\n", get_str(reply, "version"));
                printf("       URL: %s\n", get_str(reply, "url"));
                ifaces = json_object_object_get(reply, "interfaces");
                for (size_t i = 0; i < json_object_array_length(ifaces); i++)
                        printf("%s %s\n", i == 0 ? "Interfaces:" : "           ",
                               json_object_get_string(json_object_array_get_idx(ifaces, i)));
                return EXIT_OK;
        }

        params = json_object_new_object();
        if (!params)
                return errorf(EXIT_FAIL, "out of memory");
        json_object_object_add(params, "interface", json_object_new_string(argv[0]));
        r = call_simple(ctx, "org.varlink.service.GetInterfaceDescription", params, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        fputs(get_str(reply, "description"), stdout);
        return EXIT_OK;
}

typedef struct MoreState {
        Ctx *ctx;
        const char *method;
        int result;
} MoreState;

static int on_more_reply(VarlinkClient *c, const VarlinkReply *reply, void *userdata) {
        MoreState *m = userdata;

        if (reply->error) {
                print_error_reply(m->method, reply->error, reply->parameters);
                m->result = exit_code_for_error(reply->error);
                return 0;
        }
        if (print_json(m->ctx, reply->parameters) < 0)
                return -EPIPE;
        return 0;
}

static int verb_call(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *params = NULL, *reply = NULL;
        const char *method = argv[0];
        int r;

        if (!varlink_method_name_valid(method))
                return errorf(EXIT_USAGE, "\"%s\" is not a method name (interface.Method)", method);
        if (ctx->more && ctx->oneway)
                return errorf(EXIT_USAGE, "--more and --oneway exclude each other");
        if (argc > 1) {
                enum json_tokener_error jerr;
                params = json_tokener_parse_verbose(argv[1], &jerr);
                if (!params || !json_object_is_type(params, json_type_object))
                        return errorf(EXIT_USAGE, "parameters must be a JSON object: %s",
                                      params ? "got another JSON value" : json_tokener_error_desc(jerr));
        }
        r = connect_daemon(ctx);
        if (r != 0)
                return r;
        if (ctx->oneway) {
                r = varlink_client_call_oneway(ctx->client, method, params);
                return r < 0 ? errorf(EXIT_FAIL, "%s: %s", method, strerror(-r)) : EXIT_OK;
        }
        if (ctx->more) {
                MoreState m = { ctx, method, EXIT_OK };
                r = varlink_client_call_more(ctx->client, method, params, on_more_reply, &m);
                if (r < 0)
                        return errorf(EXIT_FAIL, "%s: %s", method,
                                      r == -ETIMEDOUT ? "timed out waiting for kvmid" : strerror(-r));
                return m.result;
        }
        r = call_simple(ctx, method, params, &reply);
        if (r != 0)
                return r;
        if (ctx->json == JSON_OFF)
                ctx->json = JSON_PRETTY;
        return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
}

static void format_count(char *buf, size_t n, int64_t v) {
        snprintf(buf, n, "%" PRId64, v);
}

/* "12.3us" from nanoseconds; "-" when there is no sample. */
static void format_ns(char *buf, size_t n, int64_t ns, bool any) {
        if (!any)
                snprintf(buf, n, "-");
        else if (ns < 10000)
                snprintf(buf, n, "%" PRId64 "ns", ns);
        else if (ns < 10000000)
                snprintf(buf, n, "%.1fus", (double) ns / 1e3);
        else
                snprintf(buf, n, "%.1fms", (double) ns / 1e6);
}

static int verb_domains(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list;
        int r;

        r = call_simple(ctx, "io.kvmid.Admin.ListDomains", NULL, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        t = table_new("NAME", "ROLE", "STATE", "CID", "KVMI", "VERSION", "VCPUS", "EVENTS", "REQUESTS", "ACK-P50",
                      "ACK-P99", "UUID", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        list = json_object_object_get(reply, "domains");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *d = json_object_array_get_idx(list, i);
                struct json_object *lat = json_object_object_get(d, "ack_latency");
                bool any = get_int(lat, "count") > 0;
                char ver[16], vcpus[16], ev[24], req[24], p50[24], p99[24], cid[16];

                if (get_int(d, "kvmi_version"))
                        format_count(ver, sizeof ver, get_int(d, "kvmi_version"));
                else
                        snprintf(ver, sizeof ver, "-");
                if (get_int(d, "vsock_cid"))
                        snprintf(cid, sizeof cid, "%" PRId64, get_int(d, "vsock_cid"));
                else
                        snprintf(cid, sizeof cid, "-");
                format_count(vcpus, sizeof vcpus, get_int(d, "vcpus"));
                format_count(ev, sizeof ev, get_int(d, "events_received"));
                format_count(req, sizeof req, get_int(d, "guest_requests"));
                format_ns(p50, sizeof p50, get_int(lat, "p50_ns"), any);
                format_ns(p99, sizeof p99, get_int(lat, "p99_ns"), any);
                if (table_add_row(t, get_str(d, "name"), get_str(d, "role"), get_str(d, "state"), cid,
                                  get_str(d, "kvmi"), ver,
                                  vcpus, ev, req, p50, p99, get_str(d, "uuid")) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        table_print(t, stdout, ctx->legend, "domains");
        /* Why an expected VM never comes up: its QEMU offered a UUID that
         * kvmid.conf and libvirt do not know. */
        list = json_object_object_get(reply, "unknown");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *x = json_object_array_get_idx(list, i);
                if (i == 0)
                        printf("\nRefused, unknown UUID (not in kvmid.conf or libvirt):\n");
                printf("  %s  QEMU name \"%s\"  from %s  %" PRId64 " attempt%s\n", get_str(x, "uuid"),
                       get_str(x, "qemu_name"), get_str(x, "peer"), get_int(x, "attempts"),
                       get_int(x, "attempts") == 1 ? "" : "s");
        }
        return EXIT_OK;
}

static void print_names(const char *label, struct json_object *a) {
        printf("%s", label);
        if (json_object_array_length(a) == 0)
                printf(" -");
        for (size_t i = 0; i < json_object_array_length(a); i++)
                printf(" %s", json_object_get_string(json_object_array_get_idx(a, i)));
        printf("\n");
}

static int verb_domain(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL, *params = json_object_new_object();
        struct json_object *d, *lat, *recent;
        char p50[24], p99[24], max[24];
        int r;

        if (!params)
                return errorf(EXIT_FAIL, "out of memory");
        json_object_object_add(params, "domain", json_object_new_string(argv[0]));
        r = call_simple(ctx, "io.kvmid.Admin.GetDomain", params, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        d = json_object_object_get(reply, "domain");
        lat = json_object_object_get(d, "ack_latency");
        format_ns(p50, sizeof p50, get_int(lat, "p50_ns"), get_int(lat, "count") > 0);
        format_ns(p99, sizeof p99, get_int(lat, "p99_ns"), get_int(lat, "count") > 0);
        format_ns(max, sizeof max, get_int(lat, "max_ns"), get_int(lat, "count") > 0);
        printf("          Name: %s\n", get_str(d, "name"));
        printf("          UUID: %s\n", get_str(d, "uuid"));
        printf("          Role: %s\n", get_str(d, "role"));
        printf("        Cookie: %s\n", get_str(d, "cookie") ?: "(none configured: handshakes are refused)");
        printf("          KVMI: %s", get_str(d, "kvmi"));
        if (get_int(d, "kvmi_version"))
                printf(", version %" PRId64 ", %" PRId64 " vCPUs, max message %" PRId64 " bytes",
                       get_int(d, "kvmi_version"), get_int(d, "vcpus"), get_int(d, "max_message_size"));
        printf("\n");
        if (get_str(d, "qemu_name"))
                printf("     QEMU name: %s\n", get_str(d, "qemu_name"));
        if (json_object_object_get(d, "qemu_cpu_type")) {
                int64_t cpu = get_int(d, "qemu_cpu_type");
                printf(" QEMU CPU type: %" PRId64 "%s\n", cpu,
                       cpu == KVMI_QEMU_CPU_TYPE_X86_64 ? " (x86_64)"
                       : cpu == KVMI_QEMU_CPU_TYPE_I386 ? " (i386, or a QEMU too old to say)"
                                                        : "");
        }
        print_names("      Commands:", json_object_object_get(d, "commands"));
        print_names("        Events:", json_object_object_get(d, "events"));
        print_names("       Enabled:", json_object_object_get(d, "enabled"));
        printf("      Connects: %" PRId64 " (%" PRId64 " refused)\n", get_int(d, "connects"), get_int(d, "refused"));
        printf("    Events in: %" PRId64 " (acked %" PRId64 "; guest requests %" PRId64 ", other hypercalls %" PRId64
               ", other events %" PRId64 ")\n",
               get_int(d, "events_received"), get_int(d, "acks"), get_int(d, "guest_requests"),
               get_int(d, "other_hypercalls"), get_int(d, "other_events"));
        printf("   Ack latency: p50 %s, p99 %s, max %s (inside kvmid)\n", p50, p99, max);
        if (get_str(d, "last_error"))
                printf("    Last error: %s\n", get_str(d, "last_error"));

        recent = json_object_object_get(reply, "recent");
        if (json_object_array_length(recent) == 0)
                return EXIT_OK;
        _cleanup_(table_freep) Table *t = table_new("SEQ", "VCPU", "MODE", "RDX", "RBX", "RCX", "RIP", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        for (size_t i = 0; i < json_object_array_length(recent); i++) {
                struct json_object *g = json_object_array_get_idx(recent, i), *regs = json_object_object_get(g, "regs");
                char seq[24], vcpu[8], mode[8], x[4][24];
                static const char *const names[] = { "rdx", "rbx", "rcx", "rip" };

                format_count(seq, sizeof seq, get_int(g, "seq"));
                format_count(vcpu, sizeof vcpu, get_int(g, "vcpu"));
                snprintf(mode, sizeof mode, "%" PRId64 "-bit", get_int(g, "mode") * 8);
                for (size_t k = 0; k < ELEMENTSOF(names); k++)
                        snprintf(x[k], sizeof x[k], "0x%" PRIx64,
                                 json_object_get_uint64(json_object_object_get(regs, names[k])));
                if (table_add_row(t, seq, vcpu, mode, x[0], x[1], x[2], x[3]) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        printf("\nRecent guest requests:\n");
        table_print(t, stdout, ctx->legend, "guest requests");
        return EXIT_OK;
}

/* The files and drop-in directories, in order, as one policy. */
static int policy_check(Ctx *ctx, int n, char **paths) {
        _cleanup_(policy_unrefp) Policy *p = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = policy_load_paths((const char *const *) paths, (size_t) n, &p, &error);
        if (r < 0) {
                fprintf(stderr, "%s\n", error ?: strerror(-r));
                return EXIT_FAIL;
        }
        if (ctx->json != JSON_OFF) {
                _cleanup_json_ struct json_object *o = json_object_new_object();
                if (!o)
                        return errorf(EXIT_FAIL, "out of memory");
                struct json_object *files = json_object_new_array();
                if (!files)
                        return errorf(EXIT_FAIL, "out of memory");
                for (int i = 0; i < n; i++)
                        json_object_array_add(files, json_object_new_string(paths[i]));
                json_object_object_add(o, "file", json_object_new_string(paths[0]));
                json_object_object_add(o, "files", files);
                json_object_object_add(o, "rules", json_object_new_int64((int64_t) policy_n_rules(p)));
                json_object_object_add(o, "default",
                                       json_object_new_string(policy_verdict_to_string(policy_default_verdict(p))));
                json_object_object_add(o, "digest", json_object_new_string(policy_digest(p)));
                return print_json(ctx, o) < 0 ? EXIT_FAIL : EXIT_OK;
        }
        for (int i = 0; i < n; i++)
                printf("%s%s", i > 0 ? " + " : "", paths[i]);
        printf(": OK, %zu rules, default %s, digest %s\n", policy_n_rules(p),
               policy_verdict_to_string(policy_default_verdict(p)), policy_digest(p));
        return EXIT_OK;
}

static int policy_explain_verb(Ctx *ctx) {
        _cleanup_json_ struct json_object *params = json_object_new_object(), *reply = NULL;
        int r;

        if (!ctx->introspector || !ctx->target || !ctx->perm)
                return errorf(EXIT_USAGE, "policy explain needs --introspector, --target and --perm");
        if (!params)
                return errorf(EXIT_FAIL, "out of memory");
        json_object_object_add(params, "introspector", json_object_new_string(ctx->introspector));
        json_object_object_add(params, "target", json_object_new_string(ctx->target));
        json_object_object_add(params, "permission", json_object_new_string(ctx->perm));
        if (ctx->n_labels > 0) {
                struct json_object *a = json_object_new_array();
                if (!a)
                        return errorf(EXIT_FAIL, "out of memory");
                for (size_t i = 0; i < ctx->n_labels; i++)
                        json_object_array_add(a, json_object_new_string(ctx->labels[i]));
                json_object_object_add(params, "labels", a);
        }
        r = call_simple(ctx, "io.kvmid.Admin.ExplainPolicy", params, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        fputs(get_str(reply, "text"), stdout);
        return EXIT_OK;
}

static int verb_policy(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        const char *sub = argv[0];
        int r;

        if (streq(sub, "check")) {
                if (argc < 2)
                        return errorf(EXIT_USAGE, "policy check needs a FILE (more files and drop-in DIRs may follow)");
                return policy_check(ctx, argc - 1, argv + 1);
        }
        if (argc > 1)
                return errorf(EXIT_USAGE, "policy %s takes no arguments", sub);
        if (streq(sub, "explain"))
                return policy_explain_verb(ctx);
        if (streq(sub, "show")) {
                r = call_simple(ctx, "io.kvmid.Admin.GetPolicy", NULL, &reply);
                if (r != 0)
                        return r;
                if (ctx->json != JSON_OFF)
                        return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
                if (ctx->legend)
                        printf("# %s%s, %" PRId64 " rules, digest %s\n",
                               json_object_get_boolean(json_object_object_get(reply, "builtin"))
                                       ? "built-in (no rules file "
                                       : "from ",
                               get_str(reply, "file"), get_int(reply, "rules"), get_str(reply, "digest"));
                fputs(get_str(reply, "text"), stdout);
                return EXIT_OK;
        }
        if (streq(sub, "reload")) {
                r = call_simple(ctx, "io.kvmid.Admin.ReloadPolicy", NULL, &reply);
                if (r != 0)
                        return r;
                if (ctx->json != JSON_OFF)
                        return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
                printf("policy %s: %" PRId64 " rules, digest %s\n",
                       json_object_get_boolean(json_object_object_get(reply, "changed")) ? "reloaded" : "unchanged",
                       get_int(reply, "rules"), get_str(reply, "digest"));
                return EXIT_OK;
        }
        return errorf(EXIT_USAGE, "unknown policy command \"%s\" (check, show, reload, explain)", sub);
}

/* A chain intact from its first record to its last says nothing of
 * records cut off the end: --expect-last compares the end with an anchor
 * kept elsewhere (GetStatus's audit last_seq and last_digest, the
 * journal's KVMID_AUDIT_SEQ and KVMID_AUDIT_DIGEST). */
static int audit_check_end(const char *expect, AuditVerifyResult *res) {
        char *end;
        uint64_t seq;

        errno = 0;
        seq = strtoull(expect, &end, 10);
        if (errno || end == expect || (*end && *end != ':'))
                return -EINVAL;
        if (*end == ':' && strlen(end + 1) != AUDIT_HEX_SIZE - 1)
                return -EINVAL;
        if (res->last_seq != seq)
                snprintf(res->message, sizeof res->message, "the chain ends at seq %" PRIu64 ", expected %" PRIu64 "%s",
                         res->last_seq, seq, res->last_seq < seq ? ": records are missing at the end (truncated)" : "");
        else if (*end == ':' && strcasecmp(end + 1, res->last_digest) != 0)
                snprintf(res->message, sizeof res->message,
                         "the last record (seq %" PRIu64 ") hashes to %s, expected %s: it is not the record anchored",
                         seq, res->last_digest, end + 1);
        else
                return 0;
        return 1;
}

static int audit_verify(Ctx *ctx, int n, char **files) {
        AuditVerifyResult res;
        int r = audit_verify_files((const char *const *) files, (size_t) n, &res);

        if (r < 0)
                return errorf(EXIT_FAIL, "audit verify: %s", strerror(-r));
        if (r == 0 && ctx->expect_last) {
                r = audit_check_end(ctx->expect_last, &res);
                if (r < 0)
                        return errorf(EXIT_USAGE, "--expect-last takes SEQ or SEQ:DIGEST (64 hex digits), not \"%s\"",
                                      ctx->expect_last);
                if (r > 0) {
                        res.file = files[n - 1];
                        res.line = 0;
                }
        }
        if (ctx->json != JSON_OFF) {
                _cleanup_json_ struct json_object *o = json_object_new_object();
                if (!o)
                        return errorf(EXIT_FAIL, "out of memory");
                json_object_object_add(o, "intact", json_object_new_boolean(r == 0));
                json_object_object_add(o, "files", json_object_new_int64((int64_t) res.files));
                json_object_object_add(o, "records", json_object_new_uint64(res.records));
                json_object_object_add(o, "first_seq", json_object_new_uint64(res.first_seq));
                json_object_object_add(o, "last_seq", json_object_new_uint64(res.last_seq));
                json_object_object_add(o, "last_digest", json_object_new_string(res.last_digest));
                if (r != 0) {
                        json_object_object_add(o, "file", json_object_new_string(res.file ?: ""));
                        json_object_object_add(o, "line", json_object_new_uint64(res.line));
                        json_object_object_add(o, "error", json_object_new_string(res.message));
                }
                (void) print_json(ctx, o);
                return r == 0 ? EXIT_OK : EXIT_FAIL;
        }
        if (r != 0) {
                if (res.line == 0)
                        fprintf(stderr, "%s: %s\n", res.file ?: "?", res.message);
                else
                        fprintf(stderr, "%s:%" PRIu64 ": %s\n", res.file ?: "?", res.line, res.message);
                return EXIT_FAIL;
        }
        printf("%zu file%s, %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64 ": intact%s (last digest %s)\n", res.files,
               res.files == 1 ? "" : "s", res.records, res.first_seq, res.last_seq,
               strcmp(res.first_prev, AUDIT_ZERO_HASH) == 0 ? "" : ", continuing an earlier chain", res.last_digest);
        return EXIT_OK;
}

static int on_tail_reply(VarlinkClient *c, const VarlinkReply *reply, void *userdata) {
        MoreState *m = userdata;
        struct json_object *rec;

        if (reply->error) {
                print_error_reply(m->method, reply->error, reply->parameters);
                m->result = exit_code_for_error(reply->error);
                return 0;
        }
        rec = json_object_object_get(reply->parameters, "record");
        if (!rec)
                return 0;               /* the live point, or nothing matched */
        if (m->ctx->json == JSON_PRETTY)
                return print_json(m->ctx, rec) < 0 ? -EPIPE : 0;
        if (m->ctx->json == JSON_SHORT) {
                /* As the log holds them: one JSON line each. */
                puts(json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                return fflush(stdout) == 0 ? 0 : -EPIPE;
        }
        /* One line for a person: seq, time, kind, decision, who, what, why. */
        struct json_object *subj = json_object_object_get(rec, "subject"), *obj = json_object_object_get(rec, "object");
        const char *who = get_str(subj, "introspector"), *what = get_str(obj, "target");
        const char *decision = get_str(rec, "decision");
        printf("%6" PRId64 " %.23s %-20s %-5s %s%s%s%s%s%s%s\n", get_int(rec, "seq"), get_str(rec, "time") ?: "",
               get_str(rec, "kind") ?: "?", decision && !streq(decision, "none") ? decision : "", who ?: "",
               who && what ? " -> " : "", what ?: "", get_str(rec, "rule") ? " by " : "", get_str(rec, "rule") ?: "",
               get_str(rec, "reason") ? ": " : "", get_str(rec, "reason") ?: "");
        return fflush(stdout) == 0 ? 0 : -EPIPE;
}

static int audit_tail(Ctx *ctx) {
        _cleanup_json_ struct json_object *params = json_object_new_object();
        MoreState m = { ctx, "io.kvmid.Admin.TailAudit", EXIT_OK };
        int r;

        if (!params)
                return errorf(EXIT_FAIL, "out of memory");
        json_object_object_add(params, "lines", json_object_new_int64(ctx->lines));
        json_object_object_add(params, "follow", json_object_new_boolean(ctx->follow));
        if (ctx->n_kinds > 0) {
                struct json_object *a = json_object_new_array();
                if (!a)
                        return errorf(EXIT_FAIL, "out of memory");
                for (size_t i = 0; i < ctx->n_kinds; i++)
                        json_object_array_add(a, json_object_new_string(ctx->kinds[i]));
                json_object_object_add(params, "kinds", a);
        }
        if (ctx->introspector)
                json_object_object_add(params, "introspector", json_object_new_string(ctx->introspector));
        if (ctx->target)
                json_object_object_add(params, "target", json_object_new_string(ctx->target));
        r = connect_daemon(ctx);
        if (r != 0)
                return r;
        if (ctx->follow)
                varlink_client_set_timeout(ctx->client, 0);
        r = varlink_client_call_more(ctx->client, m.method, params, on_tail_reply, &m);
        if (r < 0)
                return errorf(EXIT_FAIL, "%s: %s", m.method, r == -ETIMEDOUT ? "timed out waiting for kvmid" : strerror(-r));
        return m.result;
}

static int verb_audit(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        const char *sub = argv[0];
        int r;

        if (streq(sub, "verify")) {
                if (argc < 2)
                        return errorf(EXIT_USAGE, "audit verify needs the files, oldest first");
                return audit_verify(ctx, argc - 1, argv + 1);
        }
        if (argc > 1)
                return errorf(EXIT_USAGE, "audit %s takes no arguments", sub);
        if (streq(sub, "tail"))
                return audit_tail(ctx);
        if (streq(sub, "rotate")) {
                r = call_simple(ctx, "io.kvmid.Admin.RotateAudit", NULL, &reply);
                if (r != 0)
                        return r;
                if (ctx->json != JSON_OFF)
                        return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
                printf("audit log rotated: \"%s\" now continues \"%s\" (last seq %" PRId64 ")\n", get_str(reply, "file"),
                       get_str(reply, "rotated_to"), get_int(reply, "last_seq"));
                return EXIT_OK;
        }
        return errorf(EXIT_USAGE, "unknown audit command \"%s\" (verify, tail, rotate)", sub);
}

static int verb_sessions(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list;
        int r;

        r = call_simple(ctx, "io.kvmid.Admin.ListSessions", NULL, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        t = table_new("SESSION", "INTROSPECTOR", "TARGET", "PID", "SUBSCRIBERS", "DELIVERED", "MISSED", "QUEUED", "TOKENS",
                      "MAPPINGS", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        list = json_object_object_get(reply, "sessions");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *ss = json_object_array_get_idx(list, i), *subs = json_object_object_get(ss, "subscriptions");
                int64_t delivered = 0, missed = 0, queued = 0;
                char c[7][24];
                for (size_t k = 0; k < json_object_array_length(subs); k++) {
                        struct json_object *x = json_object_array_get_idx(subs, k);
                        delivered += get_int(x, "delivered");
                        missed += get_int(x, "missed");
                        queued += get_int(x, "queued");
                }
                format_count(c[0], sizeof c[0], get_int(ss, "pid"));
                format_count(c[1], sizeof c[1], (int64_t) json_object_array_length(subs));
                format_count(c[2], sizeof c[2], delivered);
                format_count(c[3], sizeof c[3], missed);
                format_count(c[4], sizeof c[4], queued);
                format_count(c[5], sizeof c[5], get_int(ss, "tokens"));
                format_count(c[6], sizeof c[6], get_int(ss, "mappings"));
                if (table_add_row(t, get_str(ss, "session"), get_str(ss, "introspector"), get_str(ss, "target"), c[0], c[1],
                                  c[2], c[3], c[4], c[5], c[6]) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        table_print(t, stdout, ctx->legend, "sessions");
        return EXIT_OK;
}

static int verb_tokens(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list;
        int r;

        r = call_simple(ctx, "io.kvmid.Admin.ListTokens", NULL, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        t = table_new("TOKEN", "STATE", "INTROSPECTOR", "TARGET", "GPA", "SIZE", "SESSION", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        list = json_object_object_get(reply, "tokens");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *k = json_object_array_get_idx(list, i);
                char gpa[24], size[24];
                snprintf(gpa, sizeof gpa, "0x%" PRIx64, (uint64_t) get_int(k, "gpa"));
                snprintf(size, sizeof size, "0x%" PRIx64, (uint64_t) get_int(k, "size"));
                if (table_add_row(t, get_str(k, "token_id"), get_str(k, "state"), get_str(k, "introspector"),
                                  get_str(k, "target"), gpa, size, get_str(k, "session")) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        table_print(t, stdout, ctx->legend, "tokens");
        return EXIT_OK;
}

static int verb_mappings(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list;
        int r;

        r = call_simple(ctx, "io.kvmid.Admin.ListMappings", NULL, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        t = table_new("VM", "LOCAL-GPA", "TARGET", "TARGET-GPA", "TOKEN", "INTROSPECTOR", "STATE", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        list = json_object_object_get(reply, "mappings");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *m = json_object_array_get_idx(list, i);
                char lg[24], tg[24];
                snprintf(lg, sizeof lg, "0x%" PRIx64, (uint64_t) get_int(m, "local_gpa"));
                snprintf(tg, sizeof tg, "0x%" PRIx64, (uint64_t) get_int(m, "target_gpa"));
                if (table_add_row(t, get_str(m, "introspector_vm"), lg, get_str(m, "target"), tg, get_str(m, "token_id"),
                                  get_str(m, "introspector"), get_str(m, "state")) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        table_print(t, stdout, ctx->legend, "mappings");
        return EXIT_OK;
}

static int verb_introspectors(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *reply = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        struct json_object *list;
        int r;

        r = call_simple(ctx, "io.kvmid.Admin.ListIntrospectors", NULL, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        t = table_new("NAME", "VM", "UIDS", "CONNECTIONS", "SESSIONS", NULL);
        if (!t)
                return errorf(EXIT_FAIL, "out of memory");
        list = json_object_object_get(reply, "introspectors");
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                struct json_object *x = json_object_array_get_idx(list, i), *uids = json_object_object_get(x, "uids");
                char u[128] = "", conns[24], sessions[24];
                for (size_t k = 0; k < json_object_array_length(uids); k++) {
                        size_t l = strlen(u);
                        snprintf(u + l, sizeof u - l, "%s%" PRId64, k ? "," : "",
                                 json_object_get_int64(json_object_array_get_idx(uids, k)));
                }
                format_count(conns, sizeof conns, get_int(x, "connections"));
                format_count(sessions, sizeof sessions, get_int(x, "sessions"));
                if (table_add_row(t, get_str(x, "name"), get_str(x, "domain"), u[0] ? u : "any", conns, sessions) < 0)
                        return errorf(EXIT_FAIL, "out of memory");
        }
        table_print(t, stdout, ctx->legend, "introspectors");
        return EXIT_OK;
}

static int verb_revoke(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *params = json_object_new_object(), *reply = NULL;
        const char *what = argv[0], *method, *key;
        int r;

        if (argc != 2)
                return errorf(EXIT_USAGE, "revoke takes a kind (session, introspector, token) and its id or name");
        if (streq(what, "session"))
                method = "io.kvmid.Admin.RevokeSession", key = "session";
        else if (streq(what, "introspector"))
                method = "io.kvmid.Admin.RevokeIntrospector", key = "introspector";
        else if (streq(what, "token"))
                method = "io.kvmid.Admin.RevokeToken", key = "token_id";
        else
                return errorf(EXIT_USAGE, "revoke: unknown kind \"%s\" (session, introspector, token)", what);
        if (!params)
                return errorf(EXIT_FAIL, "out of memory");
        json_object_object_add(params, key, json_object_new_string(argv[1]));
        r = call_simple(ctx, method, params, &reply);
        if (r != 0)
                return r;
        if (ctx->json != JSON_OFF)
                return print_json(ctx, reply) < 0 ? EXIT_FAIL : EXIT_OK;
        printf("%s %s revoked\n", what, argv[1]);
        return EXIT_OK;
}

static int on_event_reply(VarlinkClient *c, const VarlinkReply *reply, void *userdata) {
        MoreState *m = userdata;
        struct json_object *ev, *regs;

        if (reply->error) {
                print_error_reply(m->method, reply->error, reply->parameters);
                m->result = streq(reply->error, "io.kvmid.Admin.WatchEnded") ? EXIT_OK : exit_code_for_error(reply->error);
                return 0;
        }
        ev = json_object_object_get(reply->parameters, "event");
        if (!ev)
                return 0;
        if (m->ctx->json != JSON_OFF)
                return print_json(m->ctx, ev) < 0 ? -EPIPE : 0;
        regs = json_object_object_get(ev, "regs");
        printf("%s seq %" PRId64 " vcpu %" PRId64 " %" PRId64 "-bit rbx=0x%" PRIx64 " rcx=0x%" PRIx64 " rdx=0x%" PRIx64
               " rsi=0x%" PRIx64 " rip=0x%" PRIx64 "%s\n",
               get_str(ev, "target"), get_int(ev, "seq"), get_int(ev, "vcpu"), get_int(ev, "mode") * 8,
               json_object_get_uint64(json_object_object_get(regs, "rbx")),
               json_object_get_uint64(json_object_object_get(regs, "rcx")),
               json_object_get_uint64(json_object_object_get(regs, "rdx")),
               json_object_get_uint64(json_object_object_get(regs, "rsi")),
               json_object_get_uint64(json_object_object_get(regs, "rip")), get_int(ev, "missed") ? " (missed some)" : "");
        return fflush(stdout) == 0 ? 0 : -EPIPE;
}

static int verb_events(Ctx *ctx, int argc, char **argv) {
        _cleanup_json_ struct json_object *params = json_object_new_object();
        MoreState m = { ctx, "io.kvmid.Admin.WatchEvents", EXIT_OK };
        int r;

        if (!params)
                return errorf(EXIT_FAIL, "out of memory");
        json_object_object_add(params, "domain", json_object_new_string(argv[0]));
        r = connect_daemon(ctx);
        if (r != 0)
                return r;
        varlink_client_set_timeout(ctx->client, 0);
        r = varlink_client_call_more(ctx->client, m.method, params, on_event_reply, &m);
        if (r < 0)
                return errorf(EXIT_FAIL, "%s: %s", m.method, strerror(-r));
        return m.result;
}

/* ---- hook: libvirt's qemu hook ---------------------------------------------- */

/* The domain XML libvirt gives the hook on stdin (empty if none). */
static char *read_stdin(void) {
        size_t n = 0, size = 0;
        char *buf = NULL;

        if (isatty(STDIN_FILENO))
                return strdup("");
        for (;;) {
                if (size - n < 4096) {
                        if (size >= HOOK_XML_MAX)
                                break;
                        char *b = realloc(buf, size + 65536);
                        if (!b) {
                                free(buf);
                                return NULL;
                        }
                        buf = b;
                        size += 65536;
                }
                ssize_t k = read(STDIN_FILENO, buf + n, size - n - 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t) k;
        }
        if (!buf)
                return strdup("");
        buf[n] = '\0';
        return buf;
}

/* required="yes" on kvmid's metadata element (see kvmid(8)). */
static bool xml_requires_kvmid(const char *xml) {
        xmlDocPtr doc;
        xmlXPathContextPtr ctx;
        xmlXPathObjectPtr o = NULL;
        bool yes = false;

        if (!xml || !*xml)
                return false;
        doc = xmlReadMemory(xml, (int) strlen(xml), "domain.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        ctx = doc ? xmlXPathNewContext(doc) : NULL;
        if (ctx && xmlXPathRegisterNs(ctx, (const xmlChar *) "k", (const xmlChar *) KVMID_XMLNS) == 0)
                o = xmlXPathEvalExpression((const xmlChar *) "/domain/metadata/k:introspection/@required", ctx);
        if (o && o->type == XPATH_NODESET && o->nodesetval && o->nodesetval->nodeNr > 0) {
                xmlChar *c = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
                yes = c && streq((const char *) c, "yes");
                xmlFree(c);
        }
        xmlXPathFreeObject(o);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        return yes;
}

/* kvmictl hook qemu NAME OP SUBOP: never fails a domain because kvmid is
 * down, except at prepare/start of a domain whose metadata says
 * required="yes".  Only "started", "stopped" and "release" call kvmid. */
static int verb_hook(Ctx *ctx, int argc, char **argv) {
        const char *driver = argv[0], *name = argv[1], *op = argv[2], *subop = argv[3];
        _cleanup_json_ struct json_object *params = NULL, *reply = NULL;
        _cleanup_free_ char *xml = NULL, *error = NULL;
        const char *method;
        bool starting;
        int r;

        if (!streq(driver, "qemu"))
                return errorf(EXIT_USAGE, "hook: only the qemu hook is known, not \"%s\"", driver);
        /* Always drain stdin: libvirt writes the whole XML to it. */
        xml = read_stdin();
        if (!xml)
                return errorf(EXIT_OK, "hook: out of memory reading the domain XML");
        starting = streq(op, "prepare") || streq(op, "start");
        if (streq(op, "started"))
                method = "io.kvmid.Hypervisor.DomainStarted";
        else if (streq(op, "stopped") || streq(op, "release"))
                method = "io.kvmid.Hypervisor.DomainStopped";
        else if (starting)
                method = NULL;
        else
                return EXIT_OK;
        if (streq(ctx->socket, DEFAULT_SOCKET))
                ctx->socket = HYPERVISOR_SOCKET;
        if (starting) {
                if (!xml_requires_kvmid(xml))
                        return EXIT_OK;
                /* Required: kvmid must be there and answer. */
                r = varlink_client_connect(ctx->socket, &ctx->client);
                if (r >= 0) {
                        varlink_client_set_timeout(ctx->client, ctx->timeout_sec * 1000U);
                        r = varlink_client_call(ctx->client, "org.varlink.service.GetInfo", NULL, &reply, &error);
                }
                if (r < 0) {
                        fprintf(stderr, "kvmictl: domain \"%s\" requires introspection (kvmid metadata required=\"yes\") "
                                        "but kvmid is not reachable at %s: %s; refusing to %s it\n",
                                name, ctx->socket, r == -ETIMEDOUT ? "timed out" : strerror(-r), op);
                        return EXIT_FAIL;
                }
                return EXIT_OK;
        }
        params = json_object_new_object();
        if (!params)
                return errorf(EXIT_OK, "hook: out of memory");
        json_object_object_add(params, "name", json_object_new_string(name));
        if (streq(op, "started")) {
                if (*xml)
                        json_object_object_add(params, "xml", json_object_new_string(xml));
        } else {
                char reason[128];
                snprintf(reason, sizeof reason, "libvirt hook: %s%s%s", op, subop && !streq(subop, "-") ? " " : "",
                         subop && !streq(subop, "-") ? subop : "");
                json_object_object_add(params, "reason", json_object_new_string(reason));
        }
        r = varlink_client_connect(ctx->socket, &ctx->client);
        if (r < 0)
                return errorf(EXIT_OK, "hook: kvmid is not reachable at %s (%s); domain \"%s\" %s not reported",
                              ctx->socket, strerror(-r), name, op);
        varlink_client_set_timeout(ctx->client, ctx->timeout_sec * 1000U);
        r = varlink_client_call(ctx->client, method, params, &reply, &error);
        if (r < 0)
                return errorf(EXIT_OK, "hook: %s: %s", method, r == -ETIMEDOUT ? "timed out waiting for kvmid" : strerror(-r));
        if (error) {
                print_error_reply(method, error, reply);
                return EXIT_OK;
        }
        if (ctx->json != JSON_OFF)
                (void) print_json(ctx, reply);
        return EXIT_OK;
}

static const Verb verbs[] = {
        { "status", "", "daemon status and per-listener counters", 0, 0, verb_status, 0 },
        { "domains", "", "known domains and their KVMI channels", 0, 0, verb_domains, 0 },
        { "domain", "NAME|UUID", "one domain: capabilities, counters, recent guest requests", 1, 1, verb_domain, 0 },
        { "policy", "check FILE|DIR...|show|reload|explain", "check offline, show, reload or explain the policy", 1, 65,
          verb_policy, VERB_OPT_EXPLAIN | VERB_OPT_FILTER },
        { "audit", "verify FILE...|tail|rotate", "verify audit files offline, follow or rotate the audit log", 1,
          64, verb_audit, VERB_OPT_FILTER | VERB_OPT_TAIL | VERB_OPT_VERIFY },
        { "introspectors", "", "configured introspector identities and what they hold", 0, 0, verb_introspectors, 0 },
        { "sessions", "", "open sessions and their subscribers", 0, 0, verb_sessions, 0 },
        { "tokens", "", "map tokens (public ids, never the secrets)", 0, 0, verb_tokens, 0 },
        { "mappings", "", "target pages mapped into introspector VMs", 0, 0, verb_mappings, 0 },
        { "revoke", "session|introspector|token ID", "end a session, an introspector's sessions, or a token", 2, 2,
          verb_revoke, 0 },
        { "events", "TARGET", "watch a target's guest requests as they arrive", 1, 1, verb_events, 0 },
        { "introspect", "[INTERFACE]", "service info, or an interface's description", 0, 1, verb_introspect, 0 },
        { "call", "METHOD [JSON]", "call a varlink method (--more, --oneway)", 1, 2, verb_call, VERB_OPT_CALL },
        { "hook", "qemu NAME OP SUBOP", "libvirt's qemu hook: report domain start and stop (XML on stdin)", 4, 4,
          verb_hook, 0 },
};

static void help(void) {
        printf("Usage: kvmictl [OPTIONS] VERB [ARGS...]\n\n"
               "Control and inspect kvmid.\n\n"
               "Verbs:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                char what[64];
                snprintf(what, sizeof what, "%s %s", verbs[i].name, verbs[i].usage);
                if (strlen(what) > 27)
                        printf("  %s\n  %-27s %s\n", what, "", verbs[i].help);
                else
                        printf("  %-27s %s\n", what, verbs[i].help);
        }
        printf("\nOptions:\n"
               "  -s, --socket PATH           kvmid socket (default %s, or $KVMID_SOCKET)\n"
               "  -j, --json[=pretty|short]   print the reply parameters as JSON\n"
               "      --no-legend             omit table headers and footers\n"
               "  -t, --timeout SECONDS       give up waiting for kvmid (default 30, 0 = never)\n"
               "      --more                  with call: stream replies until the last\n"
               "      --oneway                with call: send and do not wait\n"
               "      --introspector NAME     with policy explain: the introspector asking;\n"
               "                              with audit tail: only its records\n"
               "      --target NAME|UUID      with policy explain: the target domain;\n"
               "                              with audit tail: only its records\n"
               "      --perm PERM             with policy explain: attach, events or map\n"
               "      --label LABEL           with policy explain: assume the target has LABEL\n"
               "  -f, --follow                with audit tail: keep printing new records\n"
               "  -n, --lines N               with audit tail: the last N records first (default 10)\n"
               "      --kind KIND             with audit tail: only records of KIND (repeatable)\n"
               "      --expect-last SEQ[:DIGEST]\n"
               "                              with audit verify: the chain must end at record SEQ\n"
               "  -V, --version               print the version\n"
               "  -h, --help                  print this help\n\n"
               "Exit status: 0 ok, 1 failure, 2 usage, 3 permission denied, 4 not found.\n"
               "See kvmictl(1).\n",
               DEFAULT_SOCKET);
}

static int parse_argv(int argc, char **argv, Ctx *ctx, const Verb **ret_verb, int *ret_optind) {
        enum { ARG_NO_LEGEND = 0x100, ARG_MORE, ARG_ONEWAY, ARG_INTROSPECTOR, ARG_TARGET, ARG_PERM, ARG_LABEL,
               ARG_KIND, ARG_EXPECT_LAST };
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "json", optional_argument, NULL, 'j' },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "timeout", required_argument, NULL, 't' },
                { "more", no_argument, NULL, ARG_MORE },
                { "oneway", no_argument, NULL, ARG_ONEWAY },
                { "introspector", required_argument, NULL, ARG_INTROSPECTOR },
                { "target", required_argument, NULL, ARG_TARGET },
                { "perm", required_argument, NULL, ARG_PERM },
                { "label", required_argument, NULL, ARG_LABEL },
                { "follow", no_argument, NULL, 'f' },
                { "lines", required_argument, NULL, 'n' },
                { "kind", required_argument, NULL, ARG_KIND },
                { "expect-last", required_argument, NULL, ARG_EXPECT_LAST },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const Verb *verb = NULL;
        char *end;
        int c, nargs;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "s:jt:fn:Vh", longopts, NULL)) >= 0)
                switch (c) {
                case 's':
                        ctx->socket = optarg;
                        break;
                case 'j':
                        if (!optarg || streq(optarg, "pretty"))
                                ctx->json = JSON_PRETTY;
                        else if (streq(optarg, "short"))
                                ctx->json = JSON_SHORT;
                        else
                                return errorf(EXIT_USAGE, "--json takes pretty or short, not \"%s\"", optarg);
                        break;
                case ARG_NO_LEGEND:
                        ctx->legend = false;
                        break;
                case 't':
                        errno = 0;
                        unsigned long t = strtoul(optarg, &end, 10);
                        if (errno || *end || !*optarg || t > 86400)
                                return errorf(EXIT_USAGE, "--timeout takes seconds from 0 to 86400, not \"%s\"", optarg);
                        ctx->timeout_sec = (unsigned) t;
                        break;
                case ARG_MORE:
                        ctx->more = true;
                        ctx->given |= VERB_OPT_CALL;
                        break;
                case ARG_ONEWAY:
                        ctx->oneway = true;
                        ctx->given |= VERB_OPT_CALL;
                        break;
                case ARG_INTROSPECTOR:
                        ctx->introspector = optarg;
                        ctx->given |= VERB_OPT_FILTER;
                        break;
                case ARG_TARGET:
                        ctx->target = optarg;
                        ctx->given |= VERB_OPT_FILTER;
                        break;
                case 'f':
                        ctx->follow = true;
                        ctx->given |= VERB_OPT_TAIL;
                        break;
                case 'n': {
                        errno = 0;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (errno || *end || !*optarg || n > 10000)
                                return errorf(EXIT_USAGE, "--lines takes a number from 0 to 10000, not \"%s\"", optarg);
                        ctx->lines = (unsigned) n;
                        ctx->given |= VERB_OPT_TAIL;
                        break;
                }
                case ARG_KIND:
                        if (ctx->n_kinds == MAX_LABELS)
                                return errorf(EXIT_USAGE, "at most %d --kind options", MAX_LABELS);
                        ctx->kinds[ctx->n_kinds++] = optarg;
                        ctx->given |= VERB_OPT_TAIL;
                        break;
                case ARG_EXPECT_LAST:
                        ctx->expect_last = optarg;
                        ctx->given |= VERB_OPT_VERIFY;
                        break;
                case ARG_PERM:
                        ctx->perm = optarg;
                        ctx->given |= VERB_OPT_EXPLAIN;
                        break;
                case ARG_LABEL:
                        if (ctx->n_labels == MAX_LABELS)
                                return errorf(EXIT_USAGE, "at most %d --label options", MAX_LABELS);
                        ctx->labels[ctx->n_labels++] = optarg;
                        ctx->given |= VERB_OPT_EXPLAIN;
                        break;
                case 'V':
                        printf("kvmictl %s\n", PACKAGE_VERSION);
                        return -1;
                case 'h':
                        help();
                        return -1;
                case ':':
                        return errorf(EXIT_USAGE, "option \"%s\" needs an argument", argv[optind - 1]);
                default:
                        return errorf(EXIT_USAGE, "unknown option \"%s\" (see kvmictl --help)", argv[optind - 1]);
                }

        if (optind >= argc)
                return errorf(EXIT_USAGE, "no verb given (see kvmictl --help)");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[optind]))
                        verb = &verbs[i];
        if (!verb)
                return errorf(EXIT_USAGE, "unknown verb \"%s\" (see kvmictl --help)", argv[optind]);
        nargs = argc - optind - 1;
        if (nargs < verb->min_args || nargs > verb->max_args)
                return errorf(EXIT_USAGE, "%s takes %s%d argument%s, got %d", verb->name,
                              verb->min_args == verb->max_args ? "" : nargs < verb->min_args ? "at least " : "at most ",
                              nargs < verb->min_args ? verb->min_args : verb->max_args,
                              (nargs < verb->min_args ? verb->min_args : verb->max_args) == 1 ? "" : "s", nargs);
        if ((ctx->given & VERB_OPT_CALL) && !(verb->options & VERB_OPT_CALL))
                return errorf(EXIT_USAGE, "--more and --oneway only go with call");
        if ((ctx->given & VERB_OPT_EXPLAIN) && !(verb->options & VERB_OPT_EXPLAIN))
                return errorf(EXIT_USAGE, "--perm and --label only go with policy explain");
        if ((ctx->given & VERB_OPT_FILTER) && !(verb->options & VERB_OPT_FILTER))
                return errorf(EXIT_USAGE, "--introspector and --target only go with policy explain and audit tail");
        if ((ctx->given & VERB_OPT_TAIL) && !(verb->options & VERB_OPT_TAIL))
                return errorf(EXIT_USAGE, "--follow, --lines and --kind only go with audit tail");
        if ((ctx->given & VERB_OPT_VERIFY) && !(verb->options & VERB_OPT_VERIFY))
                return errorf(EXIT_USAGE, "--expect-last only goes with audit verify");
        *ret_verb = verb;
        *ret_optind = optind + 1;
        return 0;
}

int main(int argc, char **argv) {
        Ctx ctx = { .legend = true, .timeout_sec = 30, .lines = 10 };
        const Verb *verb = NULL;
        int r, first = 0;

        ctx.socket = getenv("KVMID_SOCKET") ?: DEFAULT_SOCKET;
        r = parse_argv(argc, argv, &ctx, &verb, &first);
        if (r != 0)
                return r < 0 ? EXIT_OK : r;
        r = verb->run(&ctx, argc - first, argv + first);
        varlink_client_free(ctx.client);
        return r;
}
