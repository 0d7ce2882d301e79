/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io.kvmid.Admin: what operators ask kvmid through kvmictl. */

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kvmid.h"

static int reply_list(Call *call, const char *key, struct json_object *list) {
        struct json_object *reply = json_object_new_object();

        if (!reply || !list) {
                json_object_put(reply);
                json_object_put(list);
                return -ENOMEM;
        }
        json_object_object_add(reply, key, list);
        return call_reply(call, reply);
}

static struct json_object *listener_status(Server *s, Role role) {
        const ListenerStats *st = &s->stats[__builtin_ctz((unsigned) role)];
        struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(role_to_string(role)));
        json_object_object_add(o, "socket", json_object_new_string(server_listener_path(s, role)));
        json_object_object_add(o, "active", json_object_new_int64((int64_t) st->active));
        json_object_object_add(o, "accepted", json_object_new_int64((int64_t) st->accepted));
        json_object_object_add(o, "rejected", json_object_new_int64((int64_t) st->rejected));
        json_object_object_add(o, "calls", json_object_new_int64((int64_t) st->calls));
        json_object_object_add(o, "errors", json_object_new_int64((int64_t) st->errors));
        json_object_object_add(o, "bytes_in", json_object_new_int64((int64_t) st->bytes_in));
        json_object_object_add(o, "bytes_out", json_object_new_int64((int64_t) st->bytes_out));
        return o;
}

static struct json_object *audit_status(const Audit *a) {
        struct json_object *o = json_object_new_object();
        AuditStats st;
        char err[256];

        if (!o)
                return NULL;
        audit_get_stats(a, &st);
        json_object_object_add(o, "file", json_object_new_string(audit_path(a)));
        json_object_object_add(o, "sync", json_object_new_string(audit_sync_mode_to_string(st.sync)));
        json_object_object_add(o, "degraded", json_object_new_boolean(st.degraded));
        json_object_object_add(o, "records", json_object_new_uint64(st.records));
        json_object_object_add(o, "syncs", json_object_new_uint64(st.syncs));
        json_object_object_add(o, "bytes", json_object_new_uint64(st.bytes));
        json_object_object_add(o, "rotations", json_object_new_uint64(st.rotations));
        json_object_object_add(o, "last_seq", json_object_new_uint64(st.last_seq));
        json_object_object_add(o, "last_digest", json_object_new_string(st.last_digest));
        if (st.last_error) {
                snprintf(err, sizeof err, "%s: %s", st.last_error_op ?: "write", strerror(-st.last_error));
                json_object_object_add(o, "last_error", json_object_new_string(err));
        } else
                json_object_object_add(o, "last_error", NULL);
        return o;
}

static int admin_get_status(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        _cleanup_json_ struct json_object *reply = json_object_new_object();
        struct json_object *list = json_object_new_array();

        if (!reply || !list) {
                json_object_put(list);
                return -ENOMEM;
        }
        json_object_object_add(reply, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(reply, "uptime_usec",
                               json_object_new_int64((int64_t) (now_usec(CLOCK_MONOTONIC) - s->start_usec)));
        json_object_object_add(reply, "config", s->config->path ? json_object_new_string(s->config->path) : NULL);
        json_object_object_add(reply, "connections", json_object_new_int64(s->n_connections));
        json_object_object_add(reply, "max_connections", json_object_new_int64(s->config->max_connections));
        json_object_object_add(reply, "max_connections_per_uid",
                               json_object_new_int64(s->config->max_connections_per_uid));
        json_object_object_add(reply, "listeners", list);
        json_object_object_add(reply, "kvmi_socket", json_object_new_string(s->config->kvmi.socket_path));
        json_object_object_add(reply, "kvmi_channels", json_object_new_int64(channel_server_count(s)));
        json_object_object_add(reply, "domains", json_object_new_int64((int64_t) domain_count(s)));
        size_t ready = 0;
        for (const Domain *d = s->domains; d; d = d->next)
                ready += d->kvmi_state == DOMAIN_KVMI_READY;
        json_object_object_add(reply, "domains_ready", json_object_new_int64((int64_t) ready));
        json_object_object_add(reply, "sessions", json_object_new_int64((int64_t) session_count(s)));
        json_object_object_add(reply, "subscribers", json_object_new_int64((int64_t) session_subscriber_count(s)));
        json_object_object_add(reply, "policy_digest", json_object_new_string(policy_digest(s->policy)));
        json_object_object_add(reply, "policy_rules", json_object_new_int64((int64_t) policy_n_rules(s->policy)));
        json_object_object_add(reply, "audit", audit_status(s->audit));
        json_object_object_add(reply, "libvirt", libvirt_status_json(s));
        for (unsigned i = 0; i < N_ROLES; i++) {
                struct json_object *o = listener_status(s, (Role) (1U << i));
                if (!o)
                        return -ENOMEM;
                json_object_array_add(list, o);
        }
        return call_reply(call, TAKE_PTR(reply));
}

static const char *const kvmi_state_names[] = {
        [DOMAIN_KVMI_DISCONNECTED] = "disconnected",
        [DOMAIN_KVMI_PROBING] = "probing",
        [DOMAIN_KVMI_READY] = "ready",
};

/* Names of the set bits, through a KvmiCmd/KvmiEv naming function. */
static struct json_object *bits_to_names(uint32_t bits, unsigned max, const char *(*name)(unsigned)) {
        struct json_object *a = json_object_new_array();

        for (unsigned i = 0; a && i < max; i++)
                if (bits & (1U << i))
                        json_object_array_add(a, json_object_new_string(name(i)));
        return a;
}

static const char *cmd_name(unsigned i) {
        return kvmi_cmd_to_string((KvmiCmd) i);
}

static const char *ev_name(unsigned i) {
        return kvmi_ev_to_string((KvmiEv) i);
}

static struct json_object *latency_to_json(const Latency *l) {
        struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "count", json_object_new_uint64(l->count));
        json_object_object_add(o, "p50_ns", json_object_new_uint64(latency_quantile(l, 0.50)));
        json_object_object_add(o, "p99_ns", json_object_new_uint64(latency_quantile(l, 0.99)));
        json_object_object_add(o, "max_ns", json_object_new_uint64(l->max_ns));
        return o;
}

static struct json_object *domain_to_json(const Domain *d) {
        struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "uuid", json_object_new_string(d->uuid_str));
        json_object_object_add(o, "role", json_object_new_string(domain_role_to_string(d->role)));
        json_object_object_add(o, "kvmi", json_object_new_string(kvmi_state_names[d->kvmi_state]));
        json_object_object_add(o, "state", json_object_new_string(domain_state_to_string(d->state)));
        json_object_object_add(o, "source", json_object_new_string(domain_source_to_string(d)));
        json_object_object_add(o, "vsock_cid", domain_vsock_cid(d) ? json_object_new_int64(domain_vsock_cid(d)) : NULL);
        json_object_object_add(o, "libvirt_id", d->libvirt_id >= 0 ? json_object_new_int64(d->libvirt_id) : NULL);
        json_object_object_add(o, "cookie", d->cookie_none   ? json_object_new_string("none")
                                            : d->cookie_file ? json_object_new_string(d->cookie_file)
                                                             : NULL);
        json_object_object_add(o, "qemu_name", d->qemu_name ? json_object_new_string(d->qemu_name) : NULL);
        json_object_object_add(o, "qemu_cpu_type", d->qemu_name ? json_object_new_int64(d->qemu_cpu_type) : NULL);
        json_object_object_add(o, "kvmi_version", json_object_new_int64(d->kvmi_version));
        json_object_object_add(o, "vcpus", json_object_new_int64(d->vcpus));
        json_object_object_add(o, "max_message_size", json_object_new_int64(d->max_msg_size));
        json_object_object_add(o, "commands", bits_to_names(d->commands, KVMI_CMD__MAX, cmd_name));
        json_object_object_add(o, "events", bits_to_names(d->events_supported, KVMI_EV__MAX, ev_name));
        json_object_object_add(o, "enabled", bits_to_names(d->events_enabled, KVMI_EV__MAX, ev_name));
        json_object_object_add(o, "connected_usec", json_object_new_uint64(d->connected_usec));
        json_object_object_add(o, "connects", json_object_new_uint64(d->connects));
        json_object_object_add(o, "refused", json_object_new_uint64(d->refused));
        json_object_object_add(o, "events_received", json_object_new_uint64(d->events));
        json_object_object_add(o, "acks", json_object_new_uint64(d->acks));
        json_object_object_add(o, "guest_requests", json_object_new_uint64(d->guest_requests));
        json_object_object_add(o, "other_hypercalls", json_object_new_uint64(d->other_hypercalls));
        json_object_object_add(o, "other_events", json_object_new_uint64(d->other_events));
        json_object_object_add(o, "ack_latency", latency_to_json(&d->ack_latency));
        json_object_object_add(o, "last_error", d->last_error ? json_object_new_string(d->last_error) : NULL);
        return o;
}

static int admin_list_domains(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct json_object *list = json_object_new_array();

        for (const Domain *d = s->domains; list && d; d = d->next) {
                struct json_object *o = domain_to_json(d);
                if (!o) {
                        json_object_put(list);
                        return -ENOMEM;
                }
                json_object_array_add(list, o);
        }
        struct json_object *reply = json_object_new_object(), *unknown = channel_strangers_json(s);
        if (!reply || !list || !unknown) {
                json_object_put(reply);
                json_object_put(list);
                json_object_put(unknown);
                return -ENOMEM;
        }
        json_object_object_add(reply, "domains", list);
        json_object_object_add(reply, "unknown", unknown);
        return call_reply(call, reply);
}

static int admin_get_domain(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *name = json_object_get_string(json_object_object_get(parameters, "domain"));
        Domain *d = domain_find(s, name);
        _cleanup_json_ struct json_object *reply = NULL;
        struct json_object *recent;

        if (!d) {
                struct json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "domain", json_object_new_string(name));
                return call_reply_error(call, "io.kvmid.Admin.DomainNotFound", p);
        }
        reply = json_object_new_object();
        recent = json_object_new_array();
        if (!reply || !recent) {
                json_object_put(recent);
                return -ENOMEM;
        }
        json_object_object_add(reply, "domain", domain_to_json(d));
        json_object_object_add(reply, "recent", recent);
        for (size_t i = 0, k = domain_recent_start(d); i < d->recent_count; i++, k = (k + 1) % d->recent_size) {
                struct json_object *o = session_event_json(d, &d->recent[k], 0);
                if (!o)
                        return -ENOMEM;
                json_object_array_add(recent, o);
        }
        return call_reply(call, TAKE_PTR(reply));
}

static int admin_get_policy(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        _cleanup_free_ char *text = NULL;
        struct json_object *reply;
        int r;

        r = policy_format(s->policy, &text);
        if (r < 0)
                return r;
        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "text", json_object_new_string(text));
        json_object_object_add(reply, "digest", json_object_new_string(policy_digest(s->policy)));
        json_object_object_add(reply, "rules", json_object_new_int64((int64_t) policy_n_rules(s->policy)));
        json_object_object_add(reply, "default",
                               json_object_new_string(policy_verdict_to_string(policy_default_verdict(s->policy))));
        json_object_object_add(reply, "file", json_object_new_string(s->config->policy.file));
        json_object_object_add(reply, "directory", json_object_new_string(s->config->policy.directory));
        json_object_object_add(reply, "builtin", json_object_new_boolean(s->policy_builtin));
        json_object_object_add(reply, "loaded_usec", json_object_new_uint64(s->policy_loaded_usec));
        return call_reply(call, reply);
}

static int admin_reload_policy(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        _cleanup_free_ char *error = NULL;
        Policy *before = policy_ref(s->policy);
        struct json_object *reply;
        int r;

        r = authz_reload(s, &error);
        if (r < 0) {
                policy_unref(before);
                if (!error)
                        return r;
                reply = json_object_new_object();
                if (!reply)
                        return -ENOMEM;
                json_object_object_add(reply, "error", json_object_new_string(error));
                return call_reply_error(call, "io.kvmid.Admin.PolicyInvalid", reply);
        }
        reply = json_object_new_object();
        if (!reply) {
                policy_unref(before);
                return -ENOMEM;
        }
        json_object_object_add(reply, "digest", json_object_new_string(policy_digest(s->policy)));
        json_object_object_add(reply, "rules", json_object_new_int64((int64_t) policy_n_rules(s->policy)));
        json_object_object_add(reply, "changed", json_object_new_boolean(before != s->policy));
        policy_unref(before);
        return call_reply(call, reply);
}

static struct json_object *limits_to_json(const PolicyLimits *l) {
        struct json_object *o = json_object_new_object(), *gpa = json_object_new_array();
        char buf[64];

        if (!o || !gpa) {
                json_object_put(o);
                json_object_put(gpa);
                return NULL;
        }
        json_object_object_add(o, "max_mappings", json_object_new_int64(l->max_mappings));
        for (size_t i = 0; i < l->n_gpa_ranges; i++) {
                snprintf(buf, sizeof buf, "0x%" PRIx64 "-0x%" PRIx64, l->gpa_ranges[i].start, l->gpa_ranges[i].end);
                json_object_array_add(gpa, json_object_new_string(buf));
        }
        json_object_object_add(o, "gpa", gpa);
        if (l->rate_count) {
                snprintf(buf, sizeof buf, "%u/%s", l->rate_count,
                         l->rate_period_sec == 1 ? "s" : l->rate_period_sec == 60 ? "min" : "h");
                json_object_object_add(o, "rate", json_object_new_string(buf));
        } else
                json_object_object_add(o, "rate", NULL);
        return o;
}

static int admin_explain_policy(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *introspector = json_object_get_string(json_object_object_get(parameters, "introspector"));
        const char *target = json_object_get_string(json_object_object_get(parameters, "target"));
        const char *perm_name = json_object_get_string(json_object_object_get(parameters, "permission"));
        struct json_object *extra = json_object_object_get(parameters, "labels");
        size_t n_extra = extra ? json_object_array_length(extra) : 0;
        const Domain *d = domain_find(s, target);
        _cleanup_free_ const char **labels = NULL;
        _cleanup_free_ char *text = NULL, *rule = NULL;
        PolicyRequest req = { .introspector = introspector };
        PolicyPermission perm;
        PolicyDecision dec;
        uint8_t uuid[16];
        size_t n = 0;
        int r;

        if (policy_perm_from_string(perm_name, &perm) < 0)
                return call_reply_invalid_parameter(call, "permission");
        labels = calloc((d ? d->n_labels : 0) + n_extra + 1, sizeof *labels);
        if (!labels)
                return -ENOMEM;
        for (size_t i = 0; d && i < d->n_labels; i++)
                labels[n++] = d->labels[i];
        for (size_t i = 0; i < n_extra; i++)
                labels[n++] = json_object_get_string(json_object_array_get_idx(extra, i));
        req.perm = perm;
        req.target_labels = labels;
        req.n_target_labels = n;
        if (d) {
                req.target_name = d->name;
                req.target_uuid = d->uuid;
        } else if (uuid_from_string(target, uuid) == 0)
                req.target_uuid = uuid;
        else
                req.target_name = target;
        r = policy_explain(s->policy, &req, &dec, &text);
        if (r < 0)
                return r;
        r = policy_format_rule(s->policy, dec.rule, &rule);
        if (r < 0)
                return r;

        struct json_object *reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "decision", json_object_new_string(policy_verdict_to_string(dec.verdict)));
        json_object_object_add(reply, "rule", json_object_new_string(rule));
        json_object_object_add(reply, "file", json_object_new_string(dec.file));
        json_object_object_add(reply, "line", json_object_new_int64(dec.line));
        json_object_object_add(reply, "default", json_object_new_boolean(dec.is_default));
        json_object_object_add(reply, "limits", dec.verdict == POLICY_ALLOW ? limits_to_json(&dec.limits) : NULL);
        json_object_object_add(reply, "text", json_object_new_string(text));
        return call_reply(call, reply);
}

/* ---- audit ---------------------------------------------------------------- */

typedef struct RotatePending {
        Call *call;
        Server *server;
        char *rotated_to;
        uint64_t last_seq;
} RotatePending;

static void rotate_done(void *userdata, int r) {
        RotatePending *p = userdata;

        if (p->call && call_is_alive(p->call)) {
                struct json_object *reply = json_object_new_object();
                if (reply && r < 0) {
                        json_object_object_add(reply, "reason", json_object_new_string(strerror(-r)));
                        (void) call_reply_error(p->call, "io.kvmid.Admin.AuditUnavailable", reply);
                } else if (reply) {
                        json_object_object_add(reply, "file", json_object_new_string(audit_path(p->server->audit)));
                        json_object_object_add(reply, "rotated_to", json_object_new_string(p->rotated_to));
                        json_object_object_add(reply, "last_seq", json_object_new_uint64(p->last_seq));
                        (void) call_reply(p->call, reply);
                }
        }
        if (r == 0)
                log_info("audit log rotated to \"%s\"", p->rotated_to);
        call_unref(p->call);
        free(p->rotated_to);
        free(p);
}

int admin_rotate_audit_start(Server *s, Call *call) {
        RotatePending *p = calloc(1, sizeof *p);
        int r;

        if (!p)
                return -ENOMEM;
        p->server = s;
        p->last_seq = audit_last_seq(s->audit);
        if (asprintf(&p->rotated_to, "%s.%020" PRIu64, audit_path(s->audit), p->last_seq) < 0) {
                free(p);
                return -ENOMEM;
        }
        p->call = call_ref(call);
        r = audit_rotate(s->audit, rotate_done, p);
        if (r < 0) {
                call_unref(p->call);
                free(p->rotated_to);
                free(p);
        }
        return r;
}

static int admin_rotate_audit(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        int r = admin_rotate_audit_start(s, call);

        if (r == -EBUSY) {
                struct json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "reason", json_object_new_string("a rotation is in flight"));
                return call_reply_error(call, "io.kvmid.Admin.AuditUnavailable", p);
        }
        return r;
}

#define TAIL_MAX_LINES 10000
#define TAIL_READ_MAX (8U * 1024U * 1024U)

typedef struct Tail {
        Call *call;
        AuditSubscription *sub;
        uint32_t kinds;                 /* bit per AuditKind; 0: all */
        char *introspector, *target;
        uint64_t last_seq;              /* sent from the backlog: skip on the live feed */
} Tail;

static Tail *tail_free(Tail *t) {
        if (!t)
                return NULL;
        audit_unsubscribe(t->sub);
        call_unref(t->call);
        free(t->introspector);
        free(t->target);
        free(t);
        return NULL;
}

static bool tail_match(const Tail *t, struct json_object *rec) {
        struct json_object *v;

        if (t->kinds) {
                int k = audit_kind_from_string(json_object_get_string(json_object_object_get(rec, "kind")));
                if (k < 0 || !(t->kinds & (1U << k)))
                        return false;
        }
        if (t->introspector) {
                v = json_object_object_get(json_object_object_get(rec, "subject"), "introspector");
                if (!v || !streq(json_object_get_string(v), t->introspector))
                        return false;
        }
        if (t->target) {
                v = json_object_object_get(json_object_object_get(rec, "object"), "target");
                if (!v || !streq(json_object_get_string(v), t->target))
                        return false;
        }
        return true;
}

static int tail_send(Call *call, struct json_object *rec, bool final) {
        struct json_object *reply = json_object_new_object();

        if (!reply) {
                json_object_put(rec);
                return -ENOMEM;
        }
        json_object_object_add(reply, "record", rec);
        return final ? call_reply(call, reply) : call_reply_more(call, reply);
}

static void tail_on_record(void *userdata, const AuditTailRecord *rec) {
        Tail *t = userdata;
        struct json_object *o;

        if (rec->seq <= t->last_seq || (t->kinds && !(t->kinds & (1U << rec->kind))))
                return;
        o = json_tokener_parse(rec->line);
        if (!o)
                return;
        if (!tail_match(t, o)) {
                json_object_put(o);
                return;
        }
        (void) tail_send(t->call, o, false);
}

static void tail_on_abort(Call *call, void *userdata) {
        tail_free(userdata);
}

/* The last 'lines' matching records of the current file, oldest first.
 * Reads at most the file's last TAIL_READ_MAX bytes. */
static int tail_backlog(Tail *t, const char *path, size_t lines, struct json_object ***ret, size_t *ret_n) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_free_ char *buf = NULL;
        struct json_object **found;
        size_t n = 0, len = 0, size;
        struct stat st;
        off_t from;

        if (fd < 0 || fstat(fd, &st) < 0)
                return negative_errno();
        from = st.st_size > (off_t) TAIL_READ_MAX ? st.st_size - (off_t) TAIL_READ_MAX : 0;
        size = (size_t) (st.st_size - from);
        buf = malloc(size + 1);
        found = calloc(lines ?: 1, sizeof *found);
        if (!buf || !found) {
                free(found);
                return -ENOMEM;
        }
        while (len < size) {
                ssize_t k = pread(fd, buf + len, size - len, from + (off_t) len);
                if (k <= 0)
                        break;
                len += (size_t) k;
        }
        buf[len] = '\0';
        /* Only whole lines: drop a partial first one (we started mid-file)
         * and a last one without its newline (being written, or torn). */
        char *first = buf, *end = memrchr(buf, '\n', len);
        if (from > 0 && (first = memchr(buf, '\n', len)))
                first++;
        while (end && first && end > first && n < lines) {
                *end = '\0';
                char *start = memrchr(first, '\n', (size_t) (end - first));
                start = start ? start + 1 : first;
                struct json_object *o = json_tokener_parse(start);
                if (o && tail_match(t, o))
                        found[n++] = o;
                else
                        json_object_put(o);
                end = start > first ? start - 1 : NULL;
        }
        /* found[] is newest first */
        for (size_t i = 0; i < n / 2; i++) {
                struct json_object *x = found[i];
                found[i] = found[n - 1 - i];
                found[n - 1 - i] = x;
        }
        *ret = found;
        *ret_n = n;
        return 0;
}

static int admin_tail_audit(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct json_object *v, *kinds = json_object_object_get(parameters, "kinds");
        int64_t lines = (v = json_object_object_get(parameters, "lines")) ? json_object_get_int64(v) : 10;
        bool follow = (v = json_object_object_get(parameters, "follow")) && json_object_get_boolean(v);
        _cleanup_free_ struct json_object **backlog = NULL;
        size_t n = 0;
        Tail *t;
        int r;

        if (lines < 0 || lines > TAIL_MAX_LINES) {
                struct json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "limit", json_object_new_string("lines"));
                json_object_object_add(p, "max", json_object_new_int64(TAIL_MAX_LINES));
                return call_reply_error(call, "io.kvmid.LimitExceeded", p);
        }
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; kinds && i < json_object_array_length(kinds); i++) {
                int k = audit_kind_from_string(json_object_get_string(json_object_array_get_idx(kinds, i)));
                if (k < 0) {
                        tail_free(t);
                        return call_reply_invalid_parameter(call, "kinds");
                }
                t->kinds |= 1U << k;
        }
        if (((v = json_object_object_get(parameters, "introspector")) &&
             !(t->introspector = strdup(json_object_get_string(v)))) ||
            ((v = json_object_object_get(parameters, "target")) && !(t->target = strdup(json_object_get_string(v))))) {
                tail_free(t);
                return -ENOMEM;
        }
        r = tail_backlog(t, audit_path(s->audit), (size_t) lines, &backlog, &n);
        if (r < 0 && r != -ENOENT) {
                tail_free(t);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                t->last_seq = json_object_get_uint64(json_object_object_get(backlog[i], "seq"));
                (void) tail_send(call, backlog[i], !follow && i + 1 == n);
        }
        if (!follow) {
                if (n == 0)
                        (void) tail_send(call, NULL, true);
                tail_free(t);
                return 0;
        }
        /* What the file held when it was read is history, matched or not. */
        AuditStats st;
        audit_get_stats(s->audit, &st);
        t->last_seq = MAX(t->last_seq, st.last_seq);
        (void) tail_send(call, NULL, false);    /* the live point */
        t->call = call_ref(call);
        r = audit_subscribe(s->audit, tail_on_record, t, &t->sub);
        if (r < 0) {
                tail_free(t);
                return r;
        }
        call_set_abort_handler(call, tail_on_abort, t);
        return 0;
}

/* ---- sessions, tokens, mappings --------------------------------------------- */

static int not_found(Call *call, const char *error, const char *key, const char *value) {
        struct json_object *p = json_object_new_object();

        if (!p)
                return -ENOMEM;
        json_object_object_add(p, key, json_object_new_string(value));
        return call_reply_error(call, error, p);
}

static int admin_list_introspectors(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct json_object *list = json_object_new_array();

        for (const IdentityConfig *id = s->config->identities; list && id; id = id->next) {
                struct json_object *o = json_object_new_object(), *uids = json_object_new_array();
                int64_t conns = 0, sessions = 0;
                if (!o || !uids) {
                        json_object_put(o);
                        json_object_put(uids);
                        break;
                }
                for (size_t i = 0; i < id->n_uids; i++)
                        json_object_array_add(uids, json_object_new_int64(id->uids[i]));
                for (Conn *c = s->conns; c; c = c->next) {
                        const char *who = introspector_identity(c);
                        conns += who && streq(who, id->name);
                }
                for (const Session *ss = s->sessions; ss; ss = ss->next)
                        sessions += streq(ss->introspector, id->name);
                json_object_object_add(o, "name", json_object_new_string(id->name));
                json_object_object_add(o, "domain", id->domain ? json_object_new_string(id->domain) : NULL);
                json_object_object_add(o, "uids", uids);
                json_object_object_add(o, "connections", json_object_new_int64(conns));
                json_object_object_add(o, "sessions", json_object_new_int64(sessions));
                json_object_array_add(list, o);
        }
        return reply_list(call, "introspectors", list);
}

static int admin_list_sessions(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct json_object *list = json_object_new_array();

        for (const Session *ss = s->sessions; list && ss; ss = ss->next) {
                struct json_object *o = session_to_json(ss);
                if (o)
                        json_object_array_add(list, o);
        }
        return reply_list(call, "sessions", list);
}

static int admin_list_tokens(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;

        return reply_list(call, "tokens", token_list_json(s->tokens));
}

static int admin_list_mappings(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;

        return reply_list(call, "mappings", hypervisor_mappings_json(s));
}

static int admin_revoke_session(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *id = json_object_get_string(json_object_object_get(parameters, "session"));
        Session *ss = session_find(s, id);

        if (!ss)
                return not_found(call, "io.kvmid.Admin.SessionNotFound", "session", id);
        session_end(ss, "revoked by an operator");
        return call_reply(call, NULL);
}

static int admin_revoke_introspector(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *name = json_object_get_string(json_object_object_get(parameters, "introspector"));

        /* Also a name no longer configured that still holds something. */
        if (!introspector_known(s, name))
                return not_found(call, "io.kvmid.Admin.IntrospectorNotFound", "introspector", name);
        unsigned n = introspector_revoke(s, name, "introspector revoked by an operator");
        struct json_object *reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "sessions", json_object_new_int64(n));
        return call_reply(call, reply);
}

static int admin_revoke_token(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *id = json_object_get_string(json_object_object_get(parameters, "token_id"));
        MapToken *tok = token_find_id(s->tokens, id);

        /* A used one too: the operator revokes what was mapped with it. */
        if (!tok || tok->state == TOKEN_EXPIRED || tok->state == TOKEN_REVOKED)
                return not_found(call, "io.kvmid.Admin.TokenNotFound", "token_id", id);
        token_revoke(s->tokens, tok, "revoked by an operator");
        return call_reply(call, NULL);
}

static int admin_watch_events(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *name = json_object_get_string(json_object_object_get(parameters, "domain"));
        Domain *d = domain_find(s, name);

        if (!d)
                return not_found(call, "io.kvmid.Admin.DomainNotFound", "domain", name);
        return session_watch(d, call);
}

static const MethodEntry admin_methods[] = {
        { "GetStatus", admin_get_status, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ListDomains", admin_list_domains, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "GetDomain", admin_get_domain, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "GetPolicy", admin_get_policy, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ReloadPolicy", admin_reload_policy, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ExplainPolicy", admin_explain_policy, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "RotateAudit", admin_rotate_audit, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "TailAudit", admin_tail_audit, ROLE_ADMIN, CONN_STATE_ANY, true },
        { "ListIntrospectors", admin_list_introspectors, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ListSessions", admin_list_sessions, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ListTokens", admin_list_tokens, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ListMappings", admin_list_mappings, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "RevokeSession", admin_revoke_session, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "RevokeIntrospector", admin_revoke_introspector, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "RevokeToken", admin_revoke_token, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "WatchEvents", admin_watch_events, ROLE_ADMIN, CONN_STATE_ANY, true },
};

const InterfaceTable admin_interface = {
        "io.kvmid.Admin", admin_methods, ELEMENTSOF(admin_methods), ROLE_ADMIN,
};
