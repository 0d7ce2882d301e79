/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io.kvmid.Admin: what operators ask kvmid through kvmictl. */

#include <inttypes.h>
#include <stdio.h>

#include "kvmid.h"

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
        json_object_object_add(reply, "policy_digest", json_object_new_string(policy_digest(s->policy)));
        json_object_object_add(reply, "policy_rules", json_object_new_int64((int64_t) policy_n_rules(s->policy)));
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
        json_object_object_add(o, "cookie", d->cookie_none   ? json_object_new_string("none")
                                            : d->cookie_file ? json_object_new_string(d->cookie_file)
                                                             : NULL);
        json_object_object_add(o, "qemu_name", d->qemu_name ? json_object_new_string(d->qemu_name) : NULL);
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

static struct json_object *guest_request_to_json(const GuestRequest *g) {
        struct json_object *o = json_object_new_object(), *r = json_object_new_object();
        const KvmRegs *x = &g->regs;
        const struct {
                const char *name;
                uint64_t v;
        } regs[] = {
                { "rax", x->rax }, { "rbx", x->rbx }, { "rcx", x->rcx }, { "rdx", x->rdx }, { "rsi", x->rsi },
                { "rdi", x->rdi }, { "rsp", x->rsp }, { "rbp", x->rbp }, { "r8", x->r8 },   { "r9", x->r9 },
                { "r10", x->r10 }, { "r11", x->r11 }, { "r12", x->r12 }, { "r13", x->r13 }, { "r14", x->r14 },
                { "r15", x->r15 }, { "rip", x->rip }, { "rflags", x->rflags },
        };

        if (!o || !r) {
                json_object_put(o);
                json_object_put(r);
                return NULL;
        }
        json_object_object_add(o, "seq", json_object_new_uint64(g->seq));
        json_object_object_add(o, "time_usec", json_object_new_uint64(g->time_usec));
        json_object_object_add(o, "vcpu", json_object_new_int64(g->vcpu));
        json_object_object_add(o, "mode", json_object_new_int64(g->mode));
        for (size_t i = 0; i < ELEMENTSOF(regs); i++)
                json_object_object_add(r, regs[i].name, json_object_new_uint64(regs[i].v));
        json_object_object_add(o, "regs", r);
        return o;
}

static int admin_list_domains(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        _cleanup_json_ struct json_object *reply = json_object_new_object();
        struct json_object *list = json_object_new_array();

        if (!reply || !list) {
                json_object_put(list);
                return -ENOMEM;
        }
        json_object_object_add(reply, "domains", list);
        for (const Domain *d = s->domains; d; d = d->next) {
                struct json_object *o = domain_to_json(d);
                if (!o)
                        return -ENOMEM;
                json_object_array_add(list, o);
        }
        return call_reply(call, TAKE_PTR(reply));
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
                struct json_object *o = guest_request_to_json(&d->recent[k]);
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

static const MethodEntry admin_methods[] = {
        { "GetStatus", admin_get_status, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ListDomains", admin_list_domains, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "GetDomain", admin_get_domain, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "GetPolicy", admin_get_policy, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ReloadPolicy", admin_reload_policy, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "ExplainPolicy", admin_explain_policy, ROLE_ADMIN, CONN_STATE_ANY, false },
};

const InterfaceTable admin_interface = {
        "io.kvmid.Admin", admin_methods, ELEMENTSOF(admin_methods), ROLE_ADMIN,
};
