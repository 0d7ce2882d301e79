/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sessions (introspector x target, opened only if policy allows attach)
 * and the guest-request fan-out to their subscribers.
 *
 * Fan-out invariant: the KVMI event was acked before session_publish()
 * runs; the event is serialized once and the same bytes are queued to
 * every permitted subscriber; a subscriber whose queue is full misses the
 * event (counted, reported with its next delivery) and never slows the
 * vCPU, the daemon or the other subscribers. */

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvmid.h"

#define VCPU_BITS 4096

typedef struct Subscription {
        Session *session;               /* NULL: an operator watching (Admin.WatchEvents) */
        Domain *domain;
        Call *call;
        uint64_t *vcpus;                /* bitmap of VCPU_BITS; NULL: all */
        uint64_t delivered, missed_total, missed_pending;
        struct Subscription *next;      /* the session's */
        struct Subscription *domain_next;
} Subscription;

/* Ends the sessions a connection opened when it goes away. */
typedef struct ConnSessions {
        Server *server;
        Conn *conn;
} ConnSessions;

static const char *const unreliable_regs[] = { "r8", "r9" };
static const char *const reg_names[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
                                         "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags" };

/* ---- audit ------------------------------------------------------------------ */

/* A session's record; with done, queued for a durable write (audit_append:
 * done is then called once, on the loop, unless this fails). */
static int session_audit_full(Session *ss, AuditKind kind, AuditDecision decision, const PolicyDecision *dec,
                              const char *reason, Conn *peer_conn, AuditDoneFn done, void *userdata) {
        _cleanup_json_ struct json_object *data = json_object_new_object();
        struct ucred cred;
        char rule[512];

        if (data)
                json_object_object_add(data, "session", json_object_new_string(ss->id));
        if (dec)
                snprintf(rule, sizeof rule, "%s:%u", dec->file, dec->line);
        AuditEvent ev = {
                .kind = kind,
                .decision = decision,
                .introspector = ss->introspector,
                .target = ss->target->name,
                .uuid = ss->target->uuid_str,
                .rule = dec ? rule : NULL,
                .reason = reason,
                .data = data,
        };
        conn_audit_subject(peer_conn, &cred, &ev);
        if (done)
                return audit_append(ss->server->audit, &ev, done, userdata);
        server_audit(ss->server, &ev);
        return 0;
}

static void session_audit(Session *ss, AuditKind kind, AuditDecision decision, const PolicyDecision *dec,
                          const char *reason, Conn *peer_conn) {
        (void) session_audit_full(ss, kind, decision, dec, reason, peer_conn, NULL, NULL);
}

/* ---- subscriptions ------------------------------------------------------------ */

static void subscription_unlink(Subscription *sub) {
        Session *ss = sub->session;
        Subscription **p;

        for (p = &sub->domain->subscribers; *p && *p != sub; p = &(*p)->domain_next)
                ;
        if (*p)
                *p = sub->domain_next;
        if (!ss)
                return;
        for (p = &ss->subscriptions; *p && *p != sub; p = &(*p)->next)
                ;
        if (*p)
                *p = sub->next;
        ss->n_subscriptions--;
}

static void subscription_free(Subscription *sub) {
        call_set_abort_handler(sub->call, NULL, NULL);
        call_unref(sub->call);
        free(sub->vcpus);
        free(sub);
}

/* End one subscription, telling the subscriber why (if it still listens). */
static void subscription_end(Subscription *sub, const char *reason) {
        Session *ss = sub->session;

        subscription_unlink(sub);
        if (call_is_alive(sub->call)) {
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "session", json_object_new_string(ss->id));
                        json_object_object_add(p, "reason", json_object_new_string(reason));
                }
                (void) call_reply_error(sub->call, "io.kvmid.Introspector.SessionEnded", p);
        }
        session_audit(ss, AUDIT_KIND_UNSUBSCRIBE, AUDIT_DECISION_NONE, NULL, reason, NULL);
        subscription_free(sub);
}

static void subscription_on_abort(Call *call, void *userdata) {
        Subscription *sub = userdata;

        subscription_unlink(sub);
        if (sub->session)
                session_audit(sub->session, AUDIT_KIND_UNSUBSCRIBE, AUDIT_DECISION_NONE, NULL,
                              "subscriber disconnected", NULL);
        subscription_free(sub);
}

/* Operators watching a target's guest requests: no session, no policy
 * (the admin socket's mode is the gate); ends with the target's channel. */
int session_watch(Domain *d, Call *call) {
        Subscription *sub = calloc(1, sizeof *sub);
        struct json_object *reply;

        if (!sub)
                return -ENOMEM;
        sub->domain = d;
        sub->call = call_ref(call);
        sub->domain_next = d->subscribers;
        d->subscribers = sub;
        call_set_abort_handler(call, subscription_on_abort, sub);
        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "event", NULL);
        return call_reply_more(call, reply);
}

void session_unwatch_target(Domain *d, const char *reason) {
        for (Subscription *sub = d->subscribers, *next; sub; sub = next) {
                next = sub->domain_next;
                if (sub->session)
                        continue;
                subscription_unlink(sub);
                if (call_is_alive(sub->call)) {
                        struct json_object *p = json_object_new_object();
                        if (p) {
                                json_object_object_add(p, "domain", json_object_new_string(d->name));
                                json_object_object_add(p, "reason", json_object_new_string(reason));
                        }
                        (void) call_reply_error(sub->call, "io.kvmid.Admin.WatchEnded", p);
                }
                subscription_free(sub);
        }
}

/* ---- sessions ------------------------------------------------------------------ */

static Session *session_free(Session *ss) {
        if (!ss)
                return NULL;
        free(ss->introspector);
        free(ss);
        return NULL;
}

void session_end(Session *ss, const char *reason) {
        Server *s = ss->server;
        uint64_t now = now_usec(CLOCK_REALTIME);

        if (ss->ended)
                return;
        ss->ended = true;
        while (ss->subscriptions)
                subscription_end(ss->subscriptions, reason);
        token_revoke_session(s->tokens, ss, reason);
        hypervisor_revoke_session(s, ss, reason);
        _cleanup_json_ struct json_object *data = json_object_new_object();
        if (data) {
                json_object_object_add(data, "session", json_object_new_string(ss->id));
                json_object_object_add(data, "duration_usec", json_object_new_uint64(now - ss->opened_usec));
        }
        server_audit(s, &(AuditEvent) {
                .kind = AUDIT_KIND_SESSION_CLOSE,
                .introspector = ss->introspector,
                .target = ss->target->name,
                .uuid = ss->target->uuid_str,
                .reason = reason,
                .data = data,
        });
        log_info("session %s (\"%s\" on \"%s\") ended: %s", ss->id, ss->introspector, ss->target->name, reason);
        if (ss->prev)
                ss->prev->next = ss->next;
        else
                s->sessions = ss->next;
        if (ss->next)
                ss->next->prev = ss->prev;
        /* Its session-open record is still on its way: that callback frees it. */
        if (!ss->open_pending)
                session_free(ss);
}

void session_end_target(Server *s, Domain *d, const char *reason) {
        for (Session *ss = s->sessions, *next; ss; ss = next) {
                next = ss->next;
                if (ss->target == d)
                        session_end(ss, reason);
        }
}

void session_end_introspector(Server *s, const char *name, const char *reason) {
        for (Session *ss = s->sessions, *next; ss; ss = next) {
                next = ss->next;
                if (streq(ss->introspector, name))
                        session_end(ss, reason);
        }
}

static void conn_sessions_destroy(void *userdata) {
        ConnSessions *cs = userdata;

        for (Session *ss = cs->server->sessions, *next; ss; ss = next) {
                next = ss->next;
                if (ss->conn == cs->conn)
                        session_end(ss, "the connection that opened it closed");
        }
        free(cs);
}

Session *session_find(Server *s, const char *id) {
        for (Session *ss = s->sessions; ss; ss = ss->next)
                if (streq(ss->id, id))
                        return ss;
        return NULL;
}

size_t session_count(const Server *s) {
        size_t n = 0;

        for (const Session *ss = s->sessions; ss; ss = ss->next)
                n++;
        return n;
}

size_t session_subscriber_count(const Server *s) {
        size_t n = 0;

        for (const Session *ss = s->sessions; ss; ss = ss->next)
                n += ss->n_subscriptions;
        return n;
}

Session *session_of_call(Call *call, struct json_object *parameters) {
        Server *s = conn_server(call_conn(call));
        const char *id = json_object_get_string(json_object_object_get(parameters, "session"));
        const char *me = introspector_identity(call_conn(call));
        Session *ss = session_find(s, id);

        /* Another introspector's session does not exist, as far as we say. */
        if (ss && me && streq(ss->introspector, me))
                return ss;
        struct json_object *p = json_object_new_object();
        if (p)
                json_object_object_add(p, "session", json_object_new_string(id));
        (void) call_reply_error(call, "io.kvmid.Introspector.NoSuchSession", p);
        return NULL;
}

int session_reply_denied(Call *call, PolicyPermission perm, const PolicyDecision *dec) {
        struct json_object *p = json_object_new_object();
        char rule[512];

        if (!p)
                return -ENOMEM;
        snprintf(rule, sizeof rule, "%s:%u", dec->file, dec->line);
        json_object_object_add(p, "permission", json_object_new_string(policy_perm_to_string(perm)));
        json_object_object_add(p, "rule", json_object_new_string(rule));
        return call_reply_error(call, "io.kvmid.Introspector.PolicyDenied", p);
}

int session_decide(Session *ss, PolicyPermission perm, PolicyDecision *ret) {
        Domain *d = ss->target;

        return authz_check(ss->server, ss->introspector, d->name, d->uuid, (const char *const *) d->labels,
                           d->n_labels, perm, ret);
}

typedef struct OpenPending {
        Call *call;
        Session *session;
} OpenPending;

static void open_durable(void *userdata, int r) {
        OpenPending *p = userdata;
        Session *ss = p->session;

        ss->open_pending = false;
        if (ss->ended) {
                /* Ended (target gone, revoked) before its record was durable. */
                struct json_object *e = json_object_new_object();
                if (e) {
                        json_object_object_add(e, "session", json_object_new_string(ss->id));
                        json_object_object_add(e, "reason", json_object_new_string("ended while opening"));
                }
                if (call_is_alive(p->call))
                        (void) call_reply_error(p->call, "io.kvmid.Introspector.SessionEnded", e);
                else
                        json_object_put(e);
                session_free(ss);
        } else if (r < 0) {
                log_error_errno(r, "session %s: audit record not written (%m): denied", ss->id);
                (void) call_reply_error_reason(p->call, "io.kvmid.AuditFailed", strerror(-r));
                session_end(ss, "its audit record could not be written");
        } else if (call_is_alive(p->call)) {
                struct json_object *reply = json_object_new_object();
                if (reply) {
                        json_object_object_add(reply, "session", json_object_new_string(ss->id));
                        json_object_object_add(reply, "target", json_object_new_string(ss->target->name));
                        json_object_object_add(reply, "uuid", json_object_new_string(ss->target->uuid_str));
                }
                (void) call_reply(p->call, reply);
        }
        call_unref(p->call);
        free(p);
}

static int target_unavailable(Call *call, const char *target, const char *reason) {
        struct json_object *p = json_object_new_object();

        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "target", json_object_new_string(target));
        json_object_object_add(p, "reason", json_object_new_string(reason));
        return call_reply_error(call, "io.kvmid.Introspector.TargetUnavailable", p);
}

int session_method_open(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        Conn *c = call_conn(call);
        const char *target = json_object_get_string(json_object_object_get(parameters, "target"));
        const char *me = introspector_identity(c);
        Domain *d = domain_find(s, target);
        PolicyDecision dec;
        unsigned mine = 0;
        uint8_t rnd[16];
        Session *ss;
        int r;

        if (!d || d->role != DOMAIN_ROLE_TARGET)
                return target_unavailable(call, target, d ? "not a target" : "no such domain");
        if (d->kvmi_state != DOMAIN_KVMI_READY)
                return target_unavailable(call, target, "no ready KVMI channel");
        for (Session *x = s->sessions; x; x = x->next)
                mine += x->conn == c;
        if (mine >= s->config->session.max_per_connection) {
                struct json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "limit", json_object_new_string("max-sessions-per-connection"));
                json_object_object_add(p, "max", json_object_new_int64(s->config->session.max_per_connection));
                return call_reply_error(call, "io.kvmid.Introspector.LimitExceeded", p);
        }
        ss = calloc(1, sizeof *ss);
        if (!ss || !(ss->introspector = strdup(me)) || RAND_bytes(rnd, sizeof rnd) != 1) {
                session_free(ss);
                return -ENOMEM;
        }
        for (size_t i = 0; i < sizeof rnd; i++)
                snprintf(ss->id + 2 * i, 3, "%02x", rnd[i]);
        ss->server = s;
        ss->conn = c;
        ss->target = d;
        ss->opened_usec = now_usec(CLOCK_REALTIME);

        r = session_decide(ss, POLICY_PERM_ATTACH, &dec);
        if (r < 0) {
                session_free(ss);
                return r;
        }
        if (r == POLICY_DENY) {
                session_audit(ss, AUDIT_KIND_SESSION_OPEN, AUDIT_DECISION_DENY, &dec, "policy", c);
                r = session_reply_denied(call, POLICY_PERM_ATTACH, &dec);
                session_free(ss);
                return r;
        }
        if (!conn_get_data(c, "sessions")) {
                ConnSessions *cs = calloc(1, sizeof *cs);
                if (!cs || conn_set_data(c, "sessions", cs, conn_sessions_destroy) < 0) {
                        free(cs);
                        session_free(ss);
                        return -ENOMEM;
                }
                cs->server = s;
                cs->conn = c;
        }
        ss->next = s->sessions;
        if (s->sessions)
                s->sessions->prev = ss;
        s->sessions = ss;
        s->sessions_opened++;
        log_info("session %s: \"%s\" attached to \"%s\" (%s:%u)", ss->id, me, d->name, dec.file, dec.line);

        /* An allow is answered once its record is durable. */
        char rule[512];
        snprintf(rule, sizeof rule, "%s:%u", dec.file, dec.line);
        struct ucred cred;
        _cleanup_json_ struct json_object *data = json_object_new_object();
        if (data)
                json_object_object_add(data, "session", json_object_new_string(ss->id));
        OpenPending *p = calloc(1, sizeof *p);
        if (!p) {
                session_end(ss, "out of memory");
                return -ENOMEM;
        }
        p->call = call_ref(call);
        p->session = ss;
        ss->open_pending = true;
        AuditEvent ev = {
                .kind = AUDIT_KIND_SESSION_OPEN,
                .decision = AUDIT_DECISION_ALLOW,
                .introspector = me,
                .target = d->name,
                .uuid = d->uuid_str,
                .rule = rule,
                .data = data,
        };
        conn_audit_subject(c, &cred, &ev);
        r = audit_append(s->audit, &ev, open_durable, p);
        if (r < 0)
                open_durable(p, r);
        return 0;
}

int session_method_close(Call *call, struct json_object *parameters, void *userdata) {
        Session *ss = session_of_call(call, parameters);

        if (!ss)
                return 0;
        session_end(ss, "closed by the introspector");
        return call_reply(call, NULL);
}

typedef struct SubscribePending {
        Server *server;
        char session[sizeof ((Session *) NULL)->id];  /* looked up again: it may end meanwhile */
        Subscription *sub;                             /* not linked in yet */
} SubscribePending;

static void subscribe_durable(void *userdata, int r) {
        _cleanup_free_ SubscribePending *p = userdata;
        Subscription *sub = p->sub;
        Session *ss = session_find(p->server, p->session);
        Call *call = sub->call;

        if (r < 0) {
                log_error_errno(r, "session %s: subscribe record not written (%m): denied", p->session);
                (void) call_reply_error_reason(call, "io.kvmid.AuditFailed", strerror(-r));
        } else if (!ss) {
                struct json_object *e = json_object_new_object();
                if (e) {
                        json_object_object_add(e, "session", json_object_new_string(p->session));
                        json_object_object_add(e, "reason", json_object_new_string("ended while subscribing"));
                }
                if (call_is_alive(call))
                        (void) call_reply_error(call, "io.kvmid.Introspector.SessionEnded", e);
                else
                        json_object_put(e);
        } else if (!call_is_alive(call))
                session_audit(ss, AUDIT_KIND_UNSUBSCRIBE, AUDIT_DECISION_NONE, NULL, "subscriber disconnected", NULL);
        else {
                sub->session = ss;
                sub->domain = ss->target;
                sub->next = ss->subscriptions;
                ss->subscriptions = sub;
                sub->domain_next = ss->target->subscribers;
                ss->target->subscribers = sub;
                ss->n_subscriptions++;
                call_set_abort_handler(call, subscription_on_abort, sub);
                /* The first reply says the subscription is live. */
                struct json_object *reply = json_object_new_object();
                if (reply)
                        json_object_object_add(reply, "event", NULL);
                (void) call_reply_more(call, reply);
                return;
        }
        subscription_free(sub);
}

int session_method_subscribe(Call *call, struct json_object *parameters, void *userdata) {
        Session *ss = session_of_call(call, parameters);
        struct json_object *vcpus = json_object_object_get(parameters, "vcpus");
        PolicyDecision dec;
        Subscription *sub;
        int r;

        if (!ss)
                return 0;
        r = session_decide(ss, POLICY_PERM_EVENTS, &dec);
        if (r < 0)
                return r;
        if (r == POLICY_DENY) {
                session_audit(ss, AUDIT_KIND_SUBSCRIBE, AUDIT_DECISION_DENY, &dec, "policy", call_conn(call));
                return session_reply_denied(call, POLICY_PERM_EVENTS, &dec);
        }
        sub = calloc(1, sizeof *sub);
        if (!sub)
                return -ENOMEM;
        if (vcpus) {
                sub->vcpus = calloc(VCPU_BITS / 64, sizeof *sub->vcpus);
                if (!sub->vcpus) {
                        free(sub);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < json_object_array_length(vcpus); i++) {
                        int64_t v = json_object_get_int64(json_object_array_get_idx(vcpus, i));
                        if (v < 0 || v >= VCPU_BITS) {
                                free(sub->vcpus);
                                free(sub);
                                return call_reply_invalid_parameter(call, "vcpus");
                        }
                        sub->vcpus[v / 64] |= 1ULL << (v % 64);
                }
        }
        /* An allow takes effect once its record is durable. */
        SubscribePending *p = calloc(1, sizeof *p);
        if (!p) {
                free(sub->vcpus);
                free(sub);
                return -ENOMEM;
        }
        p->server = ss->server;
        memcpy(p->session, ss->id, sizeof p->session);
        p->sub = sub;
        sub->call = call_ref(call);
        r = session_audit_full(ss, AUDIT_KIND_SUBSCRIBE, AUDIT_DECISION_ALLOW, &dec, NULL, call_conn(call),
                               subscribe_durable, p);
        if (r < 0)
                subscribe_durable(p, r);
        return 0;
}

void session_recheck(Server *s) {
        for (Session *ss = s->sessions, *next; ss; ss = next) {
                PolicyDecision dec;
                next = ss->next;
                if (session_decide(ss, POLICY_PERM_ATTACH, &dec) == POLICY_DENY) {
                        char why[600];
                        snprintf(why, sizeof why, "policy reload: attach denied by %s:%u", dec.file, dec.line);
                        session_end(ss, why);
                        continue;
                }
                if (ss->subscriptions && session_decide(ss, POLICY_PERM_EVENTS, &dec) == POLICY_DENY) {
                        char why[600];
                        snprintf(why, sizeof why, "policy reload: events denied by %s:%u", dec.file, dec.line);
                        while (ss->subscriptions)
                                subscription_end(ss->subscriptions, why);
                }
        }
}

/* ---- fan-out --------------------------------------------------------------------- */

struct json_object *session_event_json(const Domain *d, const GuestRequest *g, uint64_t missed) {
        struct json_object *ev = json_object_new_object(), *regs = json_object_new_object(),
                           *unrel = json_object_new_array();
        const KvmRegs *x = &g->regs;
        const uint64_t v[] = { x->rax, x->rbx, x->rcx, x->rdx, x->rsi, x->rdi, x->rsp, x->rbp, x->r8,
                               x->r9,  x->r10, x->r11, x->r12, x->r13, x->r14, x->r15, x->rip, x->rflags };

        if (!ev || !regs || !unrel) {
                json_object_put(ev);
                json_object_put(regs);
                json_object_put(unrel);
                return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(reg_names); i++)
                json_object_object_add(regs, reg_names[i], json_object_new_uint64(v[i]));
        for (size_t i = 0; i < ELEMENTSOF(unreliable_regs); i++)
                json_object_array_add(unrel, json_object_new_string(unreliable_regs[i]));
        json_object_object_add(ev, "target", json_object_new_string(d->name));
        json_object_object_add(ev, "uuid", json_object_new_string(d->uuid_str));
        json_object_object_add(ev, "seq", json_object_new_uint64(g->seq));
        json_object_object_add(ev, "vcpu", json_object_new_int64(g->vcpu));
        json_object_object_add(ev, "mode", json_object_new_int64(g->mode));
        json_object_object_add(ev, "regs", regs);
        json_object_object_add(ev, "unreliable", unrel);
        json_object_object_add(ev, "time_usec", json_object_new_uint64(g->time_usec));
        json_object_object_add(ev, "missed", json_object_new_uint64(missed));
        return ev;
}

/* The reference encoding, with json-c: {"parameters":{"event":...},"continues":true}. */
static VarlinkBlob *event_blob_json(const Domain *d, const GuestRequest *g, uint64_t missed) {
        struct json_object *params = json_object_new_object(), *ev = session_event_json(d, g, missed);
        VarlinkBlob *blob = NULL;

        if (!params || !ev) {
                json_object_put(params);
                json_object_put(ev);
                return NULL;
        }
        json_object_object_add(params, "event", ev);
        if (varlink_reply_encode(params, NULL, true, &blob) < 0)
                blob = NULL;
        json_object_put(params);
        return blob;
}

static char *put_lit(char *p, const char *s) {
        size_t n = strlen(s);

        memcpy(p, s, n);
        return p + n;
}

static char *put_u64(char *p, uint64_t v) {
        char tmp[20];
        size_t n = 0;

        do {
                tmp[n++] = (char) ('0' + v % 10);
                v /= 10;
        } while (v > 0);
        while (n > 0)
                *p++ = tmp[--n];
        return p;
}

/* A JSON string exactly as json-c prints it with JSON_C_TO_STRING_NOSLASHESCAPE:
 * at most 6 bytes out per byte in, plus the quotes. */
static char *put_json_string(char *p, const char *s) {
        static const char hex[] = "0123456789abcdef";

        *p++ = '"';
        for (; *s; s++) {
                unsigned char ch = (unsigned char) *s;
                const char *esc = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\b' ? "\\b" : ch == '\n' ? "\\n"
                                  : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : ch == '\f' ? "\\f" : NULL;
                if (esc)
                        p = put_lit(p, esc);
                else if (ch < 0x20) {
                        p = put_lit(p, "\\u00");
                        *p++ = hex[ch >> 4];
                        *p++ = hex[ch & 0xf];
                } else
                        *p++ = (char) ch;
        }
        *p++ = '"';
        return p;
}

/* The fan-out's one serialization per guest request, written directly:
 * building and printing a json-c tree costs ~5 us per event (more than the
 * whole rest of the fan-out at 8 subscribers); this is ~0.5 us.  It emits
 * one fixed shape (two strings, numbers), and under KVMID_VALIDATE_REPLIES=1
 * (every test run) each event is validated against the IDL and compared
 * byte for byte with the json-c reference above, so none of them can drift. */
static VarlinkBlob *event_blob(const Domain *d, const GuestRequest *g, uint64_t missed) {
        static int validate = -1;
        const KvmRegs *x = &g->regs;
        const uint64_t v[] = { x->rax, x->rbx, x->rcx, x->rdx, x->rsi, x->rdi, x->rsp, x->rbp, x->r8,
                               x->r9,  x->r10, x->r11, x->r12, x->r13, x->r14, x->r15, x->rip, x->rflags };
        /* the literals and 25 numbers of at most 20 digits fit in 1024 */
        size_t cap = 1024 + 6 * (strlen(d->name) + strlen(d->uuid_str));
        _cleanup_free_ char *heap = NULL;
        char stack[2048], *buf = stack, *p;
        VarlinkBlob *blob;

        if (cap > sizeof stack) {
                heap = malloc(cap);
                if (!heap)
                        return NULL;
                buf = heap;
        }
        p = put_lit(buf, "{\"parameters\":{\"event\":{\"target\":");
        p = put_json_string(p, d->name);
        p = put_lit(p, ",\"uuid\":");
        p = put_json_string(p, d->uuid_str);
        p = put_u64(put_lit(p, ",\"seq\":"), g->seq);
        p = put_u64(put_lit(p, ",\"vcpu\":"), g->vcpu);
        p = put_u64(put_lit(p, ",\"mode\":"), g->mode);
        p = put_lit(p, ",\"regs\":{");
        for (size_t i = 0; i < ELEMENTSOF(reg_names); i++) {
                if (i > 0)
                        *p++ = ',';
                p = put_json_string(p, reg_names[i]);
                *p++ = ':';
                p = put_u64(p, v[i]);
        }
        p = put_lit(p, "},\"unreliable\":[");
        for (size_t i = 0; i < ELEMENTSOF(unreliable_regs); i++) {
                if (i > 0)
                        *p++ = ',';
                p = put_json_string(p, unreliable_regs[i]);
        }
        p = put_u64(put_lit(p, "],\"time_usec\":"), g->time_usec);
        p = put_u64(put_lit(p, ",\"missed\":"), missed);
        p = put_lit(p, "}},\"continues\":true}");
        blob = varlink_blob_new(buf, (size_t) (p - buf));
        if (validate < 0) {
                const char *e = getenv("KVMID_VALIDATE_REPLIES");
                validate = e && streq(e, "1");
        }
        if (validate && blob) {
                /* ...and against Subscribe's output type, as call_send()
                 * checks every other reply. */
                const VarlinkInterface *iface = dispatch_find_interface(d->server->dispatch, "io.kvmid.Introspector");
                _cleanup_json_ struct json_object *params = json_object_new_object();
                if (params)
                        json_object_object_add(params, "event", session_event_json(d, g, missed));
                dispatch_check_reply(d->server->dispatch,
                                     iface ? varlink_interface_find_method(iface, "Subscribe") : NULL, NULL, params);
                VarlinkBlob *ref = event_blob_json(d, g, missed);
                if (!ref || varlink_blob_size(ref) != varlink_blob_size(blob) ||
                    memcmp(varlink_blob_data(ref), varlink_blob_data(blob), varlink_blob_size(blob)) != 0) {
                        log_error("fan-out encoding differs from json-c's: %s", varlink_blob_data(blob));
                        abort();
                }
                varlink_blob_unref(ref);
        }
        return blob;
}

size_t session_publish(Domain *d, const GuestRequest *g, const char *target_uuid) {
        VarlinkBlob *shared = NULL;
        size_t writes = 0;
        int r;

        if (!d->subscribers)
                return 0;
        const SessionConfig *sc = &d->server->config->session;
        for (Subscription *sub = d->subscribers, *next; sub; sub = next) {
                Conn *c = call_conn(sub->call);
                VarlinkBlob *blob;

                next = sub->domain_next;
                if (sub->vcpus && (g->vcpu >= VCPU_BITS || !(sub->vcpus[g->vcpu / 64] & (1ULL << (g->vcpu % 64)))))
                        continue;
                if (!c || conn_queued_messages(c) >= sc->queue_events || conn_queued_bytes(c) >= sc->queue_bytes) {
                        sub->missed_pending++;
                        sub->missed_total++;
                        continue;
                }
                if (sub->missed_pending > 0)
                        blob = event_blob(d, g, sub->missed_pending);   /* the rare, per-subscriber path */
                else {
                        if (!shared && !(shared = event_blob(d, g, 0)))
                                return writes;
                        blob = varlink_blob_ref(shared);
                }
                if (!blob) {
                        sub->missed_pending++;
                        sub->missed_total++;
                        continue;
                }
                r = call_publish_blob(sub->call, blob, sc->flush_delay_usec);
                if (r >= 0) {
                        sub->delivered++;
                        sub->missed_pending = 0;
                        writes += r;
                } else {
                        sub->missed_pending++;
                        sub->missed_total++;
                }
                varlink_blob_unref(blob);
        }
        varlink_blob_unref(shared);
        return writes;
}

struct json_object *session_to_json(const Session *ss) {
        struct json_object *o = json_object_new_object(), *subs = json_object_new_array();

        if (!o || !subs) {
                json_object_put(o);
                json_object_put(subs);
                return NULL;
        }
        json_object_object_add(o, "session", json_object_new_string(ss->id));
        json_object_object_add(o, "introspector", json_object_new_string(ss->introspector));
        json_object_object_add(o, "target", json_object_new_string(ss->target->name));
        json_object_object_add(o, "uuid", json_object_new_string(ss->target->uuid_str));
        json_object_object_add(o, "uid", json_object_new_int64(conn_uid(ss->conn)));
        json_object_object_add(o, "pid", json_object_new_int64(conn_pid(ss->conn)));
        json_object_object_add(o, "opened_usec", json_object_new_uint64(ss->opened_usec));
        json_object_object_add(o, "tokens", json_object_new_int64(ss->n_tokens));
        json_object_object_add(o, "mappings", json_object_new_int64(ss->n_mappings));
        for (const Subscription *sub = ss->subscriptions; sub; sub = sub->next) {
                struct json_object *x = json_object_new_object();
                Conn *c = call_conn(sub->call);
                if (!x)
                        break;
                json_object_object_add(x, "delivered", json_object_new_uint64(sub->delivered));
                json_object_object_add(x, "missed", json_object_new_uint64(sub->missed_total));
                json_object_object_add(x, "queued", json_object_new_int64(c ? (int64_t) conn_queued_messages(c) : 0));
                json_object_object_add(x, "queued_bytes", json_object_new_int64(c ? (int64_t) conn_queued_bytes(c) : 0));
                json_object_object_add(x, "pid", json_object_new_int64(c ? conn_pid(c) : 0));
                json_object_array_add(subs, x);
        }
        json_object_object_add(o, "subscriptions", subs);
        return o;
}
