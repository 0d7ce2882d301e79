/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io.kvmid.Hypervisor: the decision points the introspector VM's VMM
 * consults before completing KVM_HC_MEM_MAP / KVM_HC_MEM_UNMAP, and the
 * mappings kvmid therefore knows about.
 *
 * MemMap checks, in order: a known introspector VM; a live token; issued
 * to an introspector bound to that VM; the target gpa in the token's
 * range; the session still open; policy "map" now, with its gpa ranges
 * and mapping quota; the local gpa free.  Every decision is audited and
 * an allow is answered only once its record is durable (a failed record
 * denies).
 *
 * DomainStarted/DomainStopped come from libvirt's hook (kvmictl hook
 * qemu): they only touch the registry, never libvirt. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kvmid.h"

#define PAGE_SIZE_BYTES 4096U

typedef struct Mapping {
        char *introspector;             /* the introspector VM (domain name) */
        uint64_t local_gpa, target_gpa;
        char target[256], uuid[37];
        char token_id[20];
        char *identity;                 /* the introspector identity the token was for */
        Session *session;               /* NULL once revoked */
        bool pending;                   /* allowed, record not yet durable */
        bool unmapping;                 /* MemUnmap allowed, record not yet durable */
        bool revoked;                   /* unlinked while a record was pending: its callback frees it */
        struct Mapping *next, **pprev;  /* every mapping, newest first */
        struct Mapping *hnext;          /* its (introspector VM, local gpa) bucket */
} Mapping;

typedef struct Watcher {
        struct Hypervisor *hypervisor;
        Call *call;
        char *introspector;             /* NULL: every VM */
        struct Watcher *next;
} Watcher;

#define MAPPING_BUCKETS_MIN 64

struct Hypervisor {
        Mapping *mappings;
        /* MemMap's duplicate check and MemUnmap look mappings up by
         * (introspector VM, local gpa): a hash, so thousands of live
         * mappings cost no scan per decision. */
        Mapping **buckets;
        size_t n_buckets, n_mappings;
        Watcher *watchers;
};

int hypervisor_new(Server *s) {
        struct Hypervisor *h = calloc(1, sizeof *h);

        if (!h || !(h->buckets = calloc(MAPPING_BUCKETS_MIN, sizeof *h->buckets))) {
                free(h);
                return -ENOMEM;
        }
        h->n_buckets = MAPPING_BUCKETS_MIN;
        s->hypervisor = h;
        return 0;
}

static size_t mapping_hash(const char *vm, uint64_t local_gpa) {
        uint64_t x = 1469598103934665603ULL;     /* FNV-1a over the name, then the page number mixed in */

        for (const unsigned char *p = (const unsigned char *) vm; *p; p++)
                x = (x ^ *p) * 1099511628211ULL;
        x ^= local_gpa >> 12;
        x *= 0x9e3779b97f4a7c15ULL;
        return (size_t) (x ^ (x >> 29));
}

static Mapping **mapping_bucket(struct Hypervisor *h, const char *vm, uint64_t local_gpa) {
        return &h->buckets[mapping_hash(vm, local_gpa) & (h->n_buckets - 1)];
}

/* The mapping of local_gpa in VM vm (at most one: MemMap refuses a second). */
static Mapping *mapping_find(struct Hypervisor *h, const char *vm, uint64_t local_gpa) {
        for (Mapping *m = *mapping_bucket(h, vm, local_gpa); m; m = m->hnext)
                if (m->local_gpa == local_gpa && streq(m->introspector, vm))
                        return m;
        return NULL;
}

static void mapping_hash_add(struct Hypervisor *h, Mapping *m) {
        Mapping **head = mapping_bucket(h, m->introspector, m->local_gpa);

        m->hnext = *head;
        *head = m;
}

/* Doubling keeps chains short; failing to grow only lengthens them. */
static void mapping_grow(struct Hypervisor *h) {
        size_t n = h->n_buckets * 2;
        Mapping **b = calloc(n, sizeof *b);

        if (!b)
                return;
        free(h->buckets);
        h->buckets = b;
        h->n_buckets = n;
        for (Mapping *m = h->mappings; m; m = m->next)
                mapping_hash_add(h, m);
}

static void mapping_link(struct Hypervisor *h, Mapping *m) {
        if (h->n_mappings + 1 > h->n_buckets)
                mapping_grow(h);
        m->next = h->mappings;
        if (m->next)
                m->next->pprev = &m->next;
        m->pprev = &h->mappings;
        h->mappings = m;
        mapping_hash_add(h, m);
        h->n_mappings++;
}

static void mapping_free(Mapping *m) {
        free(m->introspector);
        free(m->identity);
        free(m);
}

static void watcher_free(Watcher *w) {
        call_set_abort_handler(w->call, NULL, NULL);
        call_unref(w->call);
        free(w->introspector);
        free(w);
}

void hypervisor_free(Server *s) {
        struct Hypervisor *h = s->hypervisor;

        if (!h)
                return;
        while (h->mappings) {
                Mapping *m = h->mappings;
                h->mappings = m->next;
                mapping_free(m);
        }
        free(h->buckets);
        while (h->watchers) {
                Watcher *w = h->watchers;
                h->watchers = w->next;
                watcher_free(w);
        }
        free(h);
        s->hypervisor = NULL;
}

static void mapping_unlink(struct Hypervisor *h, Mapping *m) {
        if (!m->pprev)
                return;
        *m->pprev = m->next;
        if (m->next)
                m->next->pprev = m->pprev;
        m->pprev = NULL;
        m->next = NULL;
        for (Mapping **p = mapping_bucket(h, m->introspector, m->local_gpa); *p; p = &(*p)->hnext)
                if (*p == m) {
                        *p = m->hnext;
                        break;
                }
        m->hnext = NULL;
        h->n_mappings--;
}

static void map_audit(Server *s, AuditKind kind, const char *identity, const char *vm, const char *target,
                      const char *uuid, const char *token_id, uint64_t target_gpa, uint64_t local_gpa, const char *rule,
                      const char *reason, Call *call, AuditDoneFn done, void *userdata) {
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct ucred cred;

        if (data) {
                json_object_object_add(data, "introspector_vm", json_object_new_string(vm));
                if (token_id)
                        json_object_object_add(data, "token_id", json_object_new_string(token_id));
                json_object_object_add(data, "target_gpa", json_object_new_uint64(target_gpa));
                json_object_object_add(data, "local_gpa", json_object_new_uint64(local_gpa));
        }
        AuditEvent ev = {
                .kind = kind,
                .introspector = identity,
                .target = target,
                .uuid = uuid,
                .rule = rule,
                .reason = reason,
                .data = data,
        };
        conn_audit_subject(call ? call_conn(call) : NULL, &cred, &ev);
        if (!done) {
                server_audit(s, &ev);
                return;
        }
        int r = audit_append(s->audit, &ev, done, userdata);
        if (r < 0)
                done(userdata, r);
}

static int deny(Server *s, Call *call, const char *error, AuditKind kind, const char *identity, const char *vm,
                const MapToken *tok, uint64_t target_gpa, uint64_t local_gpa, const char *rule, const char *reason) {
        map_audit(s, kind, identity, vm, tok ? tok->target_name : NULL, tok ? tok->target_uuid : NULL,
                  tok ? tok->id : NULL, target_gpa, local_gpa, rule, reason, call, NULL, NULL);
        log_info("%s denied for \"%s\": %s", kind == AUDIT_KIND_MAP_DENY ? "MemMap" : "MemUnmap", vm, reason);
        return call_reply_error_reason(call, error, reason);
}

static int parse_token(const char *hex, uint8_t out[KVMI_MAP_TOKEN_SIZE]) {
        if (strlen(hex) != 2 * KVMI_MAP_TOKEN_SIZE)
                return -EINVAL;
        for (size_t i = 0; i < KVMI_MAP_TOKEN_SIZE; i++) {
                int v = 0;
                for (int k = 0; k < 2; k++) {
                        char ch = hex[2 * i + (size_t) k];
                        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
                        if (d < 0)
                                return -EINVAL;
                        v = v * 16 + d;
                }
                out[i] = (uint8_t) v;
        }
        return 0;
}

typedef struct MapPending {
        Server *server;
        Call *call;
        Mapping *mapping;
        MapToken *token;
} MapPending;

static void map_durable(void *userdata, int r) {
        MapPending *p = userdata;
        Server *s = p->server;
        struct Hypervisor *h = s->hypervisor;
        Mapping *m = p->mapping;
        bool alive = !m->revoked;

        /* While the mapping is alive its token is MAPPING: revoking either
         * revokes both (token_revoke, token_revoke_session first).  A
         * revoked one's token is left as revoked, and may be freed. */
        if (r < 0 || !alive) {
                if (alive) {
                        m->session->n_mappings--;
                        mapping_unlink(h, m);
                        /* Not recorded, not used: it may be redeemed again. */
                        token_set_state(s->tokens, p->token, TOKEN_LIVE);
                }
                mapping_free(m);
                (void) call_reply_error_reason(p->call, r < 0 ? "io.kvmid.AuditFailed" : "io.kvmid.Hypervisor.MapDenied",
                                               r < 0 ? strerror(-r) : "revoked meanwhile");
        } else {
                m->pending = false;
                token_set_state(s->tokens, p->token, TOKEN_CONSUMED);
                if (call_is_alive(p->call)) {
                        struct json_object *reply = json_object_new_object();
                        if (reply) {
                                json_object_object_add(reply, "target", json_object_new_string(m->target));
                                json_object_object_add(reply, "uuid", json_object_new_string(m->uuid));
                                json_object_object_add(reply, "token_id", json_object_new_string(m->token_id));
                        }
                        (void) call_reply(p->call, reply);
                }
        }
        call_unref(p->call);
        free(p);
}

static int hypervisor_mem_map(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct Hypervisor *h = s->hypervisor;
        const char *vm = json_object_get_string(json_object_object_get(parameters, "introspector"));
        const char *hex = json_object_get_string(json_object_object_get(parameters, "token"));
        int64_t tgpa = json_object_get_int64(json_object_object_get(parameters, "target_gpa"));
        int64_t lgpa = json_object_get_int64(json_object_object_get(parameters, "local_gpa"));
        const Domain *d = domain_find(s, vm);
        uint8_t secret[KVMI_MAP_TOKEN_SIZE];
        const IdentityConfig *id;
        PolicyDecision dec;
        MapToken *tok;
        char rule[512], why[512];
        int r;

        if (tgpa < 0 || lgpa < 0)
                return call_reply_invalid_parameter(call, tgpa < 0 ? "target_gpa" : "local_gpa");
        if (parse_token(hex, secret) < 0)
                return call_reply_invalid_parameter(call, "token");
        tok = token_lookup(s->tokens, secret);
        const char *who = tok ? tok->introspector : NULL;
#define DENY(reason, rl) \
        deny(s, call, "io.kvmid.Hypervisor.MapDenied", AUDIT_KIND_MAP_DENY, who, vm, tok, (uint64_t) tgpa, \
             (uint64_t) lgpa, rl, reason)
        if (!d || d->role != DOMAIN_ROLE_INTROSPECTOR)
                return DENY("no such introspector VM", NULL);
        if (!tok)
                return DENY("unknown token (never issued, or already used, expired or revoked)", NULL);
        if (tok->state != TOKEN_LIVE) {
                snprintf(why, sizeof why, "token %s is %s", tok->id, token_state_to_string(tok->state));
                return DENY(why, NULL);
        }
        id = config_find_identity(s->config, tok->introspector);
        if (!id || !id->domain || !streq(id->domain, vm)) {
                snprintf(why, sizeof why, "token %s was issued to introspector \"%s\", which is not bound to VM \"%s\"",
                         tok->id, tok->introspector, vm);
                return DENY(why, NULL);
        }
        if ((uint64_t) tgpa < tok->gpa || (uint64_t) tgpa - tok->gpa >= tok->size) {
                snprintf(why, sizeof why, "target gpa 0x%" PRIx64 " is outside token %s's range 0x%" PRIx64 "+0x%" PRIx64,
                         (uint64_t) tgpa, tok->id, tok->gpa, tok->size);
                return DENY(why, NULL);
        }
        if (!tok->session || !tok->target)
                return DENY("the token's session has ended", NULL);
        r = session_decide(tok->session, POLICY_PERM_MAP, &dec);
        if (r < 0)
                return r;
        snprintf(rule, sizeof rule, "%s:%u", dec.file, dec.line);
        if (r == POLICY_DENY)
                return DENY("policy", rule);
        /* The token's range was checked at mint; a reload may have narrowed it since. */
        if (!policy_limits_allow_gpa(&dec.limits, (uint64_t) tgpa & ~(uint64_t) (PAGE_SIZE_BYTES - 1),
                                     PAGE_SIZE_BYTES)) {
                snprintf(why, sizeof why, "target gpa 0x%" PRIx64 " is outside the rule's gpa= ranges now",
                         (uint64_t) tgpa);
                return DENY(why, rule);
        }
        if (dec.limits.max_mappings > 0 && tok->session->n_mappings >= dec.limits.max_mappings) {
                snprintf(why, sizeof why, "the session has its %u mappings (max-mappings)", dec.limits.max_mappings);
                return DENY(why, rule);
        }
        if (mapping_find(h, vm, (uint64_t) lgpa)) {
                snprintf(why, sizeof why, "local gpa 0x%" PRIx64 " is already mapped", (uint64_t) lgpa);
                return DENY(why, rule);
        }
#undef DENY

        Mapping *m = calloc(1, sizeof *m);
        MapPending *p = calloc(1, sizeof *p);
        if (!m || !p || !(m->introspector = strdup(vm)) || !(m->identity = strdup(tok->introspector))) {
                if (m)
                        mapping_free(m);
                free(p);
                return -ENOMEM;
        }
        m->local_gpa = (uint64_t) lgpa;
        m->target_gpa = (uint64_t) tgpa;
        snprintf(m->target, sizeof m->target, "%s", tok->target_name);
        memcpy(m->uuid, tok->target_uuid, sizeof m->uuid);
        memcpy(m->token_id, tok->id, sizeof m->token_id);
        m->session = tok->session;
        m->pending = true;
        /* Counted from now: maps waiting for the disk (a whole group
         * commit) must not slip past max-mappings together. */
        m->session->n_mappings++;
        mapping_link(h, m);
        /* Nobody else may redeem it while the record is on its way. */
        token_set_state(s->tokens, tok, TOKEN_MAPPING);
        p->server = s;
        p->call = call_ref(call);
        p->mapping = m;
        p->token = tok;
        map_audit(s, AUDIT_KIND_MAP_ALLOW, tok->introspector, vm, tok->target_name, tok->target_uuid, tok->id,
                  (uint64_t) tgpa, (uint64_t) lgpa, rule, NULL, call, map_durable, p);
        return 0;
}

typedef struct UnmapPending {
        Server *server;
        Call *call;
        Mapping *mapping;
} UnmapPending;

static void unmap_durable(void *userdata, int r) {
        UnmapPending *p = userdata;
        struct Hypervisor *h = p->server->hypervisor;
        Mapping *m = p->mapping;
        bool alive = !m->revoked;

        if (r < 0) {
                if (alive)
                        m->unmapping = false;
                else
                        mapping_free(m);
                (void) call_reply_error_reason(p->call, "io.kvmid.AuditFailed", strerror(-r));
        } else {
                if (call_is_alive(p->call)) {
                        struct json_object *reply = json_object_new_object();
                        if (reply) {
                                json_object_object_add(reply, "target", json_object_new_string(m->target));
                                json_object_object_add(reply, "target_gpa", json_object_new_uint64(m->target_gpa));
                        }
                        (void) call_reply(p->call, reply);
                }
                if (alive) {
                        if (m->session)
                                m->session->n_mappings--;
                        mapping_unlink(h, m);
                }
                mapping_free(m);
        }
        call_unref(p->call);
        free(p);
}

static int hypervisor_mem_unmap(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct Hypervisor *h = s->hypervisor;
        const char *vm = json_object_get_string(json_object_object_get(parameters, "introspector"));
        int64_t lgpa = json_object_get_int64(json_object_object_get(parameters, "local_gpa"));
        Mapping *m;
        char why[256];

        if (lgpa < 0)
                return call_reply_invalid_parameter(call, "local_gpa");
        m = mapping_find(h, vm, (uint64_t) lgpa);
        if (m && (m->pending || m->unmapping))
                m = NULL;
        if (!m) {
                snprintf(why, sizeof why, "no mapping of local gpa 0x%" PRIx64 " recorded for \"%s\"", (uint64_t) lgpa,
                         vm);
                return deny(s, call, "io.kvmid.Hypervisor.UnmapDenied", AUDIT_KIND_UNMAP_DENY, NULL, vm, NULL, 0,
                            (uint64_t) lgpa, NULL, why);
        }
        UnmapPending *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        m->unmapping = true;
        p->server = s;
        p->call = call_ref(call);
        p->mapping = m;
        map_audit(s, AUDIT_KIND_UNMAP_ALLOW, m->identity, vm, m->target, m->uuid, m->token_id, m->target_gpa,
                  m->local_gpa, NULL, NULL, call, unmap_durable, p);
        return 0;
}

static void watcher_on_abort(Call *call, void *userdata) {
        Watcher *w = userdata;

        for (Watcher **p = &w->hypervisor->watchers; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        watcher_free(w);
}

static int hypervisor_watch_revocations(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        struct Hypervisor *h = s->hypervisor;
        struct json_object *v = json_object_object_get(parameters, "introspector");
        Watcher *w = calloc(1, sizeof *w);

        if (!w || (v && !(w->introspector = strdup(json_object_get_string(v))))) {
                free(w);
                return -ENOMEM;
        }
        w->hypervisor = h;
        w->call = call_ref(call);
        w->next = h->watchers;
        h->watchers = w;
        call_set_abort_handler(call, watcher_on_abort, w);
        return call_reply_more(call, NULL);
}

/* Tell every VMM watching, then forget the mapping: it is no longer
 * allowed, whatever the VMM does. */
static void mapping_revoke(Server *s, Mapping *m, const char *reason) {
        struct Hypervisor *h = s->hypervisor;

        for (Watcher *w = h->watchers; w; w = w->next) {
                if (w->introspector && !streq(w->introspector, m->introspector))
                        continue;
                struct json_object *o = json_object_new_object();
                if (!o)
                        continue;
                json_object_object_add(o, "introspector", json_object_new_string(m->introspector));
                json_object_object_add(o, "local_gpa", json_object_new_uint64(m->local_gpa));
                json_object_object_add(o, "target", json_object_new_string(m->target));
                json_object_object_add(o, "reason", json_object_new_string(reason));
                (void) call_reply_more(w->call, o);
        }
        map_audit(s, AUDIT_KIND_TOKEN_REVOKE, m->identity, m->introspector, m->target, m->uuid, m->token_id,
                  m->target_gpa, m->local_gpa, NULL, reason, NULL, NULL, NULL);
        mapping_unlink(h, m);
        m->session->n_mappings--;       /* its quota is free again (a session that goes on) */
        m->session = NULL;
        /* A decision on it is waiting for the disk: its callback frees it. */
        if (m->pending || m->unmapping)
                m->revoked = true;
        else
                mapping_free(m);
}

void hypervisor_revoke_session(Server *s, Session *ss, const char *reason) {
        for (Mapping *m = s->hypervisor->mappings, *next; m; m = next) {
                next = m->next;
                if (m->session == ss)
                        mapping_revoke(s, m, reason);
        }
}

void hypervisor_revoke_token(Server *s, const char *token_id, const char *reason) {
        for (Mapping *m = s->hypervisor->mappings; m; m = m->next)
                if (streq(m->token_id, token_id)) {
                        mapping_revoke(s, m, reason);
                        return;         /* a token is redeemed once */
                }
}

struct json_object *hypervisor_mappings_json(Server *s) {
        struct json_object *a = json_object_new_array();

        for (const Mapping *m = s->hypervisor->mappings; a && m; m = m->next) {
                struct json_object *o = json_object_new_object();
                if (!o)
                        break;
                json_object_object_add(o, "introspector_vm", json_object_new_string(m->introspector));
                json_object_object_add(o, "introspector", json_object_new_string(m->identity));
                json_object_object_add(o, "local_gpa", json_object_new_uint64(m->local_gpa));
                json_object_object_add(o, "target", json_object_new_string(m->target));
                json_object_object_add(o, "target_gpa", json_object_new_uint64(m->target_gpa));
                json_object_object_add(o, "token_id", json_object_new_string(m->token_id));
                json_object_object_add(o, "session", m->session ? json_object_new_string(m->session->id) : NULL);
                json_object_object_add(o, "state", json_object_new_string(m->pending ? "pending" : "mapped"));
                json_object_array_add(a, o);
        }
        return a;
}

/* ---- libvirt's hook ------------------------------------------------------- */

/* Called from inside libvirt's hook: nothing here may call libvirt. */
static int hypervisor_domain_started(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *name = json_object_get_string(json_object_object_get(parameters, "name"));
        struct json_object *vu = json_object_object_get(parameters, "uuid");
        struct json_object *vx = json_object_object_get(parameters, "xml");
        const char *xml = vx ? json_object_get_string(vx) : NULL;
        uint8_t uuid[16];
        DomainXml x = { .info = { .id = -1 } };
        bool have_xml = false;
        Domain *d = NULL;
        int r;

        if (!name || !*name)
                return call_reply_invalid_parameter(call, "name");
        if (vu && uuid_from_string(json_object_get_string(vu), uuid) < 0)
                return call_reply_invalid_parameter(call, "uuid");
        if (xml) {
                if (libvirt_domain_xml_parse(xml, &x) < 0 || !streq(x.name, name))
                        log_warning("hook: domain \"%s\": the XML given is unusable or names another domain", name);
                else
                        have_xml = true;
        }
        if (vu)
                d = domain_find_uuid(s, uuid);
        if (!d && have_xml && x.has_uuid)
                d = domain_find_uuid(s, x.info.uuid);
        if (!d)
                d = domain_find(s, name);
        if (!d && have_xml && (x.has_uuid || vu)) {
                if (vu)
                        memcpy(x.info.uuid, uuid, 16);
                x.info.state = DOMAIN_STATE_RUNNING;
                x.info.cookie_file = x.cookie_file;
                r = domain_upsert_libvirt(s, &x.info, &d);
                if (r < 0) {
                        libvirt_domain_xml_done(&x);
                        return r;
                }
                log_info("hook: domain \"%s\" started (added from its XML)", name);
                domain_up(d);
        } else if (d && !domain_state_is_up(d->state)) {
                d->state = DOMAIN_STATE_RUNNING;
                log_info("hook: domain \"%s\" started", d->name);
                domain_up(d);
        } else if (!d)
                log_info("hook: unknown domain \"%s\" started", name);

        struct json_object *reply = json_object_new_object();
        if (!reply) {
                libvirt_domain_xml_done(&x);
                return -ENOMEM;
        }
        json_object_object_add(reply, "known", json_object_new_boolean(d != NULL));
        json_object_object_add(reply, "required", json_object_new_boolean(have_xml && x.required));
        libvirt_domain_xml_done(&x);
        return call_reply(call, reply);
}

static int hypervisor_domain_stopped(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *name = json_object_get_string(json_object_object_get(parameters, "name"));
        struct json_object *vr = json_object_object_get(parameters, "reason");
        const char *reason = vr && json_object_get_string(vr) && *json_object_get_string(vr)
                                     ? json_object_get_string(vr)
                                     : "stopped";
        Domain *d;
        bool known;

        if (!name || !*name)
                return call_reply_invalid_parameter(call, "name");
        d = domain_find(s, name);
        known = d != NULL;
        if (d) {
                if (d->from_libvirt)
                        d->state = DOMAIN_STATE_SHUTOFF;
                domain_gone(d, reason); /* may free d */
        } else
                log_info("hook: unknown domain \"%s\" stopped", name);

        struct json_object *reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "known", json_object_new_boolean(known));
        return call_reply(call, reply);
}

static const MethodEntry hypervisor_methods[] = {
        { "MemMap", hypervisor_mem_map, ROLE_HYPERVISOR, CONN_STATE_ANY, false },
        { "MemUnmap", hypervisor_mem_unmap, ROLE_HYPERVISOR, CONN_STATE_ANY, false },
        { "WatchRevocations", hypervisor_watch_revocations, ROLE_HYPERVISOR, CONN_STATE_ANY, true },
        { "DomainStarted", hypervisor_domain_started, ROLE_HYPERVISOR, CONN_STATE_ANY, false },
        { "DomainStopped", hypervisor_domain_stopped, ROLE_HYPERVISOR, CONN_STATE_ANY, false },
};

const InterfaceTable hypervisor_interface = {
        "io.kvmid.Hypervisor", hypervisor_methods, ELEMENTSOF(hypervisor_methods), ROLE_HYPERVISOR,
};
