/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Map tokens.  The kernel's tokens are bearer capabilities (any VM that
 * presents one gets the page); kvmid mints them on a session's behalf and
 * records whom each was for, so MemMap can refuse every other redeemer.
 *
 * The kernel keeps ~8 live tokens per VM and answers EAGAIN past that:
 * requests queue per target in arrival order and are retried as tokens
 * expire or are used, up to a timeout the caller sees. */

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "kvmid.h"

#define TOKEN_BUCKETS 1024              /* power of two */
#define TOKEN_RETRY_MSEC 50             /* after EAGAIN: the kernel frees tokens on use or expiry */
#define TOKEN_SWEEP_MSEC 250
#define TOKEN_KEEP_USEC (60ULL * 1000000) /* ended tokens stay listed this long */

typedef struct TokenRequest {
        TokenTable *table;
        Call *call;
        Session *session;
        char session_id[33];
        Domain *target;
        uint64_t gpa, size;
        uint64_t deadline_usec;         /* CLOCK_MONOTONIC */
        char rule[512];
        bool in_flight;                 /* GET_MAP_TOKEN sent, reply pending */
        struct TokenRequest *next;
} TokenRequest;

/* rate=: one window per (introspector, target), so that more sessions or
 * connections get an introspector no more tokens.  A window whose period
 * has passed counts nothing and is swept. */
typedef struct RateWindow {
        char *introspector;
        uint8_t target_uuid[16];
        uint64_t start_usec, period_usec; /* CLOCK_MONOTONIC */
        unsigned count;
        struct RateWindow *next;
} RateWindow;

struct TokenTable {
        Server *server;
        uint8_t index_key[32];          /* keys the bucket hash: a peer cannot aim at buckets */
        MapToken *buckets[TOKEN_BUCKETS];
        MapToken *all;
        TokenRequest *queue;            /* FIFO, all targets; per target in order */
        RateWindow *rates;
        struct event *ev_retry, *ev_sweep;
};

static const char *const state_names[] = {
        [TOKEN_LIVE] = "live",
        [TOKEN_MAPPING] = "mapping",
        [TOKEN_CONSUMED] = "consumed",
        [TOKEN_EXPIRED] = "expired",
        [TOKEN_REVOKED] = "revoked",
};

const char *token_state_to_string(MapTokenState st) {
        return state_names[st];
}

static size_t bucket_of(const TokenTable *t, const uint8_t secret[KVMI_MAP_TOKEN_SIZE]) {
        uint8_t md[32];
        unsigned int len = 0;
        uint64_t h;

        HMAC(EVP_sha256(), t->index_key, sizeof t->index_key, secret, KVMI_MAP_TOKEN_SIZE, md, &len);
        memcpy(&h, md, sizeof h);
        return (size_t) (h & (TOKEN_BUCKETS - 1));
}

MapToken *token_lookup(TokenTable *t, const uint8_t secret[KVMI_MAP_TOKEN_SIZE]) {
        MapToken *found = NULL;

        for (MapToken *k = t->buckets[bucket_of(t, secret)]; k; k = k->hash_next)
                if (CRYPTO_memcmp(k->secret, secret, KVMI_MAP_TOKEN_SIZE) == 0)
                        found = k;
        return found;
}

MapToken *token_find_id(TokenTable *t, const char *id) {
        for (MapToken *k = t->all; k; k = k->next)
                if (streq(k->id, id))
                        return k;
        return NULL;
}

static void token_unindex(TokenTable *t, MapToken *tok) {
        for (MapToken **p = &t->buckets[bucket_of(t, tok->secret)]; *p; p = &(*p)->hash_next)
                if (*p == tok) {
                        *p = tok->hash_next;
                        break;
                }
}

static void token_free(TokenTable *t, MapToken *tok) {
        token_unindex(t, tok);
        if (tok->prev)
                tok->prev->next = tok->next;
        else
                t->all = tok->next;
        if (tok->next)
                tok->next->prev = tok->prev;
        OPENSSL_cleanse(tok->secret, sizeof tok->secret);
        free(tok->introspector);
        free(tok);
}

static void token_audit(TokenTable *t, AuditKind kind, const MapToken *tok, const char *reason) {
        _cleanup_json_ struct json_object *data = json_object_new_object();

        if (data) {
                json_object_object_add(data, "token_id", json_object_new_string(tok->id));
                json_object_object_add(data, "gpa", json_object_new_uint64(tok->gpa));
                json_object_object_add(data, "size", json_object_new_uint64(tok->size));
        }
        server_audit(t->server, &(AuditEvent) {
                .kind = kind,
                .introspector = tok->introspector,
                .target = tok->target_name,
                .uuid = tok->target_uuid,
                .reason = reason,
                .data = data,
        });
}

/* Leaving LIVE: the session's count drops.  The secret stays indexed
 * until the token is freed, so a replay is denied as "consumed" (or
 * expired, revoked) rather than unknown. */
void token_set_state(TokenTable *t, MapToken *tok, MapTokenState state) {
        bool was_live = tok->state == TOKEN_LIVE || tok->state == TOKEN_MAPPING;
        bool is_live = state == TOKEN_LIVE || state == TOKEN_MAPPING;

        if (was_live && !is_live) {
                if (tok->session)
                        tok->session->n_tokens--;
                tok->expires_usec = now_usec(CLOCK_REALTIME); /* now: the keep window starts */
        }
        tok->state = state;
}

void token_revoke(TokenTable *t, MapToken *tok, const char *reason) {
        bool redeemed = tok->state == TOKEN_MAPPING || tok->state == TOKEN_CONSUMED;

        if (tok->state != TOKEN_LIVE && !redeemed)
                return;
        token_set_state(t, tok, TOKEN_REVOKED);
        token_audit(t, AUDIT_KIND_TOKEN_REVOKE, tok, reason);
        /* What MemMap allowed with it goes too; a MemMap still waiting for
         * its record then finds it revoked and denies. */
        if (redeemed)
                hypervisor_revoke_token(t->server, tok->id, reason);
}

static void request_free(TokenRequest *q) {
        call_set_abort_handler(q->call, NULL, NULL);
        call_unref(q->call);
        free(q);
}

static void request_unlink(TokenTable *t, TokenRequest *q) {
        for (TokenRequest **p = &t->queue; *p; p = &(*p)->next)
                if (*p == q) {
                        *p = q->next;
                        return;
                }
}

/* A request that cannot be served: audited as a deny, answered with error. */
static void request_fail(TokenTable *t, TokenRequest *q, const char *reason, const char *error,
                         struct json_object *params) {
        _cleanup_json_ struct json_object *data = json_object_new_object();

        if (data) {
                json_object_object_add(data, "gpa", json_object_new_uint64(q->gpa));
                json_object_object_add(data, "size", json_object_new_uint64(q->size));
        }
        server_audit(t->server, &(AuditEvent) {
                .kind = AUDIT_KIND_TOKEN_DENY,
                .introspector = q->session ? q->session->introspector : NULL,
                .target = q->target->name,
                .uuid = q->target->uuid_str,
                .rule = q->rule[0] ? q->rule : NULL,
                .reason = reason,
                .data = data,
        });
        request_unlink(t, q);
        if (call_is_alive(q->call))
                (void) call_reply_error(q->call, error, params);
        else
                json_object_put(params);
        request_free(q);
}

static RateWindow *rate_window_free(RateWindow *w) {
        if (w)
                free(w->introspector);
        free(w);
        return NULL;
}

/* The introspector's window on target, restarted if its period is over;
 * NULL when out of memory. */
static RateWindow *rate_window(TokenTable *t, const char *introspector, const Domain *target, uint64_t period_usec,
                               uint64_t now) {
        RateWindow *w;

        for (w = t->rates; w; w = w->next)
                if (streq(w->introspector, introspector) && memcmp(w->target_uuid, target->uuid, 16) == 0)
                        break;
        if (!w) {
                w = calloc(1, sizeof *w);
                if (!w || !(w->introspector = strdup(introspector)))
                        return rate_window_free(w);
                memcpy(w->target_uuid, target->uuid, 16);
                w->next = t->rates;
                t->rates = w;
        } else if (now - w->start_usec < w->period_usec && w->period_usec == period_usec)
                return w;
        w->start_usec = now;
        w->period_usec = period_usec;
        w->count = 0;
        return w;
}

static void rate_sweep(TokenTable *t, uint64_t now) {
        for (RateWindow **p = &t->rates; *p;) {
                RateWindow *w = *p;
                if (now - w->start_usec >= w->period_usec) {
                        *p = w->next;
                        rate_window_free(w);
                } else
                        p = &w->next;
        }
}

static void queue_kick(TokenTable *t);

typedef struct MintPending {
        TokenTable *table;
        Call *call;
        MapToken *token;
} MintPending;

static void mint_durable(void *userdata, int r) {
        MintPending *p = userdata;
        MapToken *tok = p->token;

        if (!call_is_alive(p->call) || r < 0) {
                /* Nobody will use it, or nobody may: spent at once. */
                if (tok->state == TOKEN_LIVE)
                        token_set_state(p->table, tok, TOKEN_REVOKED);
                if (r < 0)
                        (void) call_reply_error_reason(p->call, "io.kvmid.AuditFailed", strerror(-r));
        } else {
                struct json_object *reply = json_object_new_object();
                char hex[2 * KVMI_MAP_TOKEN_SIZE + 1];
                for (size_t i = 0; i < KVMI_MAP_TOKEN_SIZE; i++)
                        snprintf(hex + 2 * i, 3, "%02x", tok->secret[i]);
                if (reply) {
                        json_object_object_add(reply, "token", json_object_new_string(hex));
                        json_object_object_add(reply, "token_id", json_object_new_string(tok->id));
                        json_object_object_add(reply, "expires_usec", json_object_new_uint64(tok->expires_usec));
                }
                OPENSSL_cleanse(hex, sizeof hex);
                (void) call_reply(p->call, reply);
        }
        call_unref(p->call);
        free(p);
}

static void on_kernel_token(void *userdata, int err, const KvmiMapToken *kt) {
        TokenRequest *q = userdata;
        TokenTable *t = q->table;
        Server *s = t->server;
        uint8_t rnd[8];

        q->in_flight = false;
        if (!q->session) {
                /* The session ended while the kernel minted: nobody may use it. */
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "session", json_object_new_string(q->session_id));
                        json_object_object_add(p, "reason", json_object_new_string("the session ended"));
                }
                request_fail(t, q, "the session ended", "io.kvmid.Introspector.SessionEnded", p);
                queue_kick(t);
                return;
        }
        if (err == -KVM_EAGAIN) {
                /* The kernel's live tokens are taken: wait our turn. */
                struct timeval tv = { .tv_usec = TOKEN_RETRY_MSEC * 1000 };
                evtimer_add(t->ev_retry, &tv);
                return;
        }
        if (err < 0) {
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "target", json_object_new_string(q->target->name));
                        json_object_object_add(p, "reason",
                                               json_object_new_string(kvmi_kvm_error_to_string(err) ?: "kernel error"));
                }
                request_fail(t, q, "GET_MAP_TOKEN failed", "io.kvmid.Introspector.TargetUnavailable", p);
                queue_kick(t);
                return;
        }
        MapToken *tok = calloc(1, sizeof *tok);
        if (!tok || !(tok->introspector = strdup(q->session->introspector)) || RAND_bytes(rnd, sizeof rnd) != 1) {
                if (tok)
                        free(tok->introspector);
                free(tok);
                request_fail(t, q, "out of memory", "io.kvmid.InternalError", NULL);
                queue_kick(t);
                return;
        }
        memcpy(tok->secret, kt->bytes, sizeof tok->secret);
        snprintf(tok->id, sizeof tok->id, "t-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                 rnd[5], rnd[6], rnd[7]);
        tok->session = q->session;
        tok->target = q->target;
        snprintf(tok->target_name, sizeof tok->target_name, "%s", q->target->name);
        memcpy(tok->target_uuid, q->target->uuid_str, sizeof tok->target_uuid);
        tok->gpa = q->gpa;
        tok->size = q->size;
        tok->issued_usec = now_usec(CLOCK_REALTIME);
        tok->expires_usec = tok->issued_usec + s->config->session.token_lifetime_msec * 1000ULL;
        tok->state = TOKEN_LIVE;
        size_t b = bucket_of(t, tok->secret);
        tok->hash_next = t->buckets[b];
        t->buckets[b] = tok;
        tok->next = t->all;
        if (t->all)
                t->all->prev = tok;
        t->all = tok;
        q->session->n_tokens++;

        _cleanup_json_ struct json_object *data = json_object_new_object();
        if (data) {
                json_object_object_add(data, "token_id", json_object_new_string(tok->id));
                json_object_object_add(data, "gpa", json_object_new_uint64(tok->gpa));
                json_object_object_add(data, "size", json_object_new_uint64(tok->size));
                json_object_object_add(data, "expires_usec", json_object_new_uint64(tok->expires_usec));
        }
        MintPending *mp = calloc(1, sizeof *mp);
        request_unlink(t, q);
        if (mp) {
                mp->table = t;
                mp->call = call_ref(q->call);
                mp->token = tok;
                int r = audit_append(s->audit, &(AuditEvent) {
                        .kind = AUDIT_KIND_TOKEN_MINT,
                        .decision = AUDIT_DECISION_ALLOW,
                        .introspector = tok->introspector,
                        .target = tok->target_name,
                        .uuid = tok->target_uuid,
                        .rule = q->rule,
                        .data = data,
                }, mint_durable, mp);
                if (r < 0)
                        mint_durable(mp, r);
        } else
                token_set_state(t, tok, TOKEN_REVOKED);
        request_free(q);
        queue_kick(t);
}

/* Send GET_MAP_TOKEN for the first waiting request of every target that
 * has none in flight; fail the ones whose time is up. */
static void queue_kick(TokenTable *t) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        for (TokenRequest *q = t->queue, *next; q; q = next) {
                next = q->next;
                if (q->in_flight)
                        continue;
                if (now >= q->deadline_usec) {
                        struct json_object *p = json_object_new_object();
                        if (p)
                                json_object_object_add(p, "timeout_ms",
                                                       json_object_new_int64(t->server->config->session.token_timeout_msec));
                        request_fail(t, q, "no kernel token free within the timeout",
                                     "io.kvmid.Introspector.TokenTimeout", p);
                        continue;
                }
                bool earlier = false;   /* fair: one at a time per target, oldest first */
                for (TokenRequest *x = t->queue; x != q; x = x->next)
                        earlier |= x->target == q->target;
                if (earlier)
                        continue;
                q->in_flight = true;
                int r = channel_get_map_token(q->target->channel, on_kernel_token, q);
                if (r < 0) {
                        q->in_flight = false;
                        struct json_object *p = json_object_new_object();
                        if (p) {
                                json_object_object_add(p, "target", json_object_new_string(q->target->name));
                                json_object_object_add(p, "reason", json_object_new_string("no ready KVMI channel"));
                        }
                        request_fail(t, q, "target has no ready KVMI channel",
                                     "io.kvmid.Introspector.TargetUnavailable", p);
                }
        }
}

static void token_on_retry(evutil_socket_t fd, short what, void *userdata) {
        queue_kick(userdata);
}

static void token_on_sweep(evutil_socket_t fd, short what, void *userdata) {
        TokenTable *t = userdata;
        uint64_t now = now_usec(CLOCK_REALTIME);
        struct timeval tv = { .tv_usec = TOKEN_SWEEP_MSEC * 1000 };

        rate_sweep(t, now_usec(CLOCK_MONOTONIC));
        for (MapToken *tok = t->all, *next; tok; tok = next) {
                next = tok->next;
                if (tok->state == TOKEN_LIVE && now >= tok->expires_usec) {
                        token_set_state(t, tok, TOKEN_EXPIRED);
                        token_audit(t, AUDIT_KIND_TOKEN_EXPIRE, tok, "the kernel forgets it");
                } else if (tok->state != TOKEN_LIVE && tok->state != TOKEN_MAPPING &&
                           now - tok->expires_usec > TOKEN_KEEP_USEC)
                        token_free(t, tok);
        }
        queue_kick(t);
        evtimer_add(t->ev_sweep, &tv);
}

static void request_on_abort(Call *call, void *userdata) {
        TokenRequest *q = userdata;

        /* In flight: the kernel's answer still comes; it finds no caller. */
        if (q->in_flight) {
                call_set_abort_handler(q->call, NULL, NULL);
                return;
        }
        request_unlink(q->table, q);
        request_free(q);
}

void token_target_gone(TokenTable *t, Domain *d) {
        for (TokenRequest *q = t->queue, *next; q; q = next) {
                next = q->next;
                if (q->target != d)
                        continue;
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "target", json_object_new_string(d->name));
                        json_object_object_add(p, "reason", json_object_new_string("KVMI channel closed"));
                }
                request_fail(t, q, "target's KVMI channel closed", "io.kvmid.Introspector.TargetUnavailable", p);
        }
        /* A consumed token's mapping ends with its session (session_end_target). */
        for (MapToken *tok = t->all; tok; tok = tok->next)
                if (tok->target == d) {
                        if (tok->state != TOKEN_CONSUMED)
                                token_revoke(t, tok, "target's KVMI channel closed: the kernel dropped its tokens");
                        tok->target = NULL;
                }
}

void token_revoke_session(TokenTable *t, Session *ss, const char *reason) {
        for (TokenRequest *q = t->queue, *next; q; q = next) {
                next = q->next;
                if (q->session != ss)
                        continue;
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "session", json_object_new_string(ss->id));
                        json_object_object_add(p, "reason", json_object_new_string(reason));
                }
                if (q->in_flight) {
                        /* The kernel's answer will find the session gone. */
                        q->session = NULL;
                        continue;
                }
                request_fail(t, q, reason, "io.kvmid.Introspector.SessionEnded", p);
        }
        /* A consumed token stays listed as used: hypervisor_revoke_session()
         * takes its mapping. */
        for (MapToken *tok = t->all; tok; tok = tok->next)
                if (tok->session == ss) {
                        if (tok->state != TOKEN_CONSUMED)
                                token_revoke(t, tok, reason);
                        tok->session = NULL;
                }
}

int token_table_new(Server *s, TokenTable **ret) {
        TokenTable *t = calloc(1, sizeof *t);
        struct timeval tv = { .tv_usec = TOKEN_SWEEP_MSEC * 1000 };

        if (!t)
                return -ENOMEM;
        t->server = s;
        t->ev_retry = evtimer_new(s->base, token_on_retry, t);
        t->ev_sweep = evtimer_new(s->base, token_on_sweep, t);
        if (!t->ev_retry || !t->ev_sweep || RAND_bytes(t->index_key, sizeof t->index_key) != 1) {
                token_table_free(t);
                return -ENOMEM;
        }
        evtimer_add(t->ev_sweep, &tv);
        *ret = t;
        return 0;
}

TokenTable *token_table_free(TokenTable *t) {
        if (!t)
                return NULL;
        while (t->queue) {
                TokenRequest *q = t->queue;
                t->queue = q->next;
                request_free(q);
        }
        while (t->all)
                token_free(t, t->all);
        while (t->rates) {
                RateWindow *w = t->rates;
                t->rates = w->next;
                rate_window_free(w);
        }
        if (t->ev_retry)
                event_free(t->ev_retry);
        if (t->ev_sweep)
                event_free(t->ev_sweep);
        OPENSSL_cleanse(t->index_key, sizeof t->index_key);
        free(t);
        return NULL;
}

struct json_object *token_list_json(TokenTable *t) {
        struct json_object *a = json_object_new_array();

        for (MapToken *tok = t->all; a && tok; tok = tok->next) {
                struct json_object *o = json_object_new_object();
                if (!o)
                        break;
                json_object_object_add(o, "token_id", json_object_new_string(tok->id));
                json_object_object_add(o, "state", json_object_new_string(token_state_to_string(tok->state)));
                json_object_object_add(o, "introspector", json_object_new_string(tok->introspector));
                json_object_object_add(o, "session", tok->session ? json_object_new_string(tok->session->id) : NULL);
                json_object_object_add(o, "target", json_object_new_string(tok->target_name));
                json_object_object_add(o, "gpa", json_object_new_uint64(tok->gpa));
                json_object_object_add(o, "size", json_object_new_uint64(tok->size));
                json_object_object_add(o, "issued_usec", json_object_new_uint64(tok->issued_usec));
                json_object_object_add(o, "expires_usec", json_object_new_uint64(tok->expires_usec));
                json_object_array_add(a, o);
        }
        return a;
}

/* ---- io.kvmid.Introspector ------------------------------------------------------------ */

static struct json_object *limit_params(const char *limit, int64_t max) {
        struct json_object *p = json_object_new_object();

        if (p) {
                json_object_object_add(p, "limit", json_object_new_string(limit));
                json_object_object_add(p, "max", json_object_new_int64(max));
        }
        return p;
}

int token_method_get(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        TokenTable *t = s->tokens;
        Session *ss = session_of_call(call, parameters);
        int64_t gpa = json_object_get_int64(json_object_object_get(parameters, "gpa"));
        int64_t size = json_object_get_int64(json_object_object_get(parameters, "size"));
        RateWindow *rate = NULL;
        unsigned queued = 0;
        PolicyDecision dec;
        TokenRequest *q;
        int r;

        if (!ss)
                return 0;
        if (gpa < 0 || size <= 0 || (uint64_t) gpa + (uint64_t) size < (uint64_t) gpa)
                return call_reply_invalid_parameter(call, gpa < 0 ? "gpa" : "size");
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        q->table = t;
        q->session = ss;
        memcpy(q->session_id, ss->id, sizeof q->session_id);
        q->target = ss->target;
        q->gpa = (uint64_t) gpa;
        q->size = (uint64_t) size;
        q->call = call_ref(call);

        r = session_decide(ss, POLICY_PERM_MAP, &dec);
        if (r < 0) {
                request_free(q);
                return r;
        }
        snprintf(q->rule, sizeof q->rule, "%s:%u", dec.file, dec.line);
        /* request_fail() unlinks from the queue; not queued yet is fine. */
        if (r == POLICY_DENY) {
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "permission", json_object_new_string("map"));
                        json_object_object_add(p, "rule", json_object_new_string(q->rule));
                }
                request_fail(t, q, "policy", "io.kvmid.Introspector.PolicyDenied", p);
                return 0;
        }
        if (!policy_limits_allow_gpa(&dec.limits, q->gpa, q->size)) {
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "gpa", json_object_new_int64(gpa));
                        json_object_object_add(p, "size", json_object_new_int64(size));
                }
                request_fail(t, q, "gpa range outside the rule's gpa=", "io.kvmid.Introspector.GpaOutsideRange", p);
                return 0;
        }
        if (dec.limits.rate_count > 0) {
                rate = rate_window(t, ss->introspector, ss->target, dec.limits.rate_period_sec * 1000000ULL,
                                   now_usec(CLOCK_MONOTONIC));
                if (!rate) {
                        request_free(q);
                        return -ENOMEM;
                }
                if (rate->count >= dec.limits.rate_count) {
                        request_fail(t, q, "token rate of the rule exceeded", "io.kvmid.Introspector.LimitExceeded",
                                     limit_params("rate", dec.limits.rate_count));
                        return 0;
                }
        }
        /* Requests still waiting for the kernel become live tokens too:
         * pipelined calls must not slip past the limit together. */
        for (const TokenRequest *x = t->queue; x; x = x->next)
                queued += x->session == ss;
        if (ss->n_tokens + queued >= s->config->session.max_tokens) {
                request_fail(t, q, "too many live tokens in this session", "io.kvmid.Introspector.LimitExceeded",
                             limit_params("max-tokens", s->config->session.max_tokens));
                return 0;
        }
        if (!(ss->target->commands & (1U << KVMI_CMD_GET_MAP_TOKEN))) {
                struct json_object *p = json_object_new_object();
                if (p) {
                        json_object_object_add(p, "target", json_object_new_string(ss->target->name));
                        json_object_object_add(p, "reason", json_object_new_string("the target's KVMI has no GET_MAP_TOKEN"));
                }
                request_fail(t, q, "target has no GET_MAP_TOKEN", "io.kvmid.Introspector.TargetUnavailable", p);
                return 0;
        }
        if (rate)
                rate->count++;
        q->deadline_usec = now_usec(CLOCK_MONOTONIC) + s->config->session.token_timeout_msec * 1000ULL;
        TokenRequest **tail = &t->queue;
        while (*tail)
                tail = &(*tail)->next;
        *tail = q;
        call_set_abort_handler(call, request_on_abort, q);
        queue_kick(t);
        return 0;
}

int token_method_revoke(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        Session *ss = session_of_call(call, parameters);
        const char *id = json_object_get_string(json_object_object_get(parameters, "token_id"));
        MapToken *tok;

        if (!ss)
                return 0;
        tok = token_find_id(s->tokens, id);
        if (!tok || tok->session != ss || tok->state != TOKEN_LIVE) {
                struct json_object *p = json_object_new_object();
                if (p)
                        json_object_object_add(p, "token_id", json_object_new_string(id));
                return call_reply_error(call, "io.kvmid.Introspector.NoSuchToken", p);
        }
        token_revoke(s->tokens, tok, "revoked by the introspector");
        return call_reply(call, NULL);
}
