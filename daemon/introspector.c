/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io.kvmid.Introspector: the nonce half of challenge-response
 * authentication.  A nonce lives on its connection, is valid once, and
 * expires, so a captured proof cannot be replayed anywhere else. */

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "kvmid.h"

#define NONCE_BYTES 32
#define NONCE_LIFETIME_SEC 30
#define PROOF_BYTES 32
#define AUTH_CONTEXT "kvmid-auth-v1"
/* Failed attempts a peer may make per window before it must wait. */
#define AUTH_MAX_FAILURES 5
#define AUTH_WINDOW_SEC 60
#define AUTH_PEERS_MAX 4096

/* Failures per peer (uid or CID): a guessing peer is slowed down without
 * learning anything about which part of its proof was wrong. */
typedef struct AuthPeer {
        char key[48];
        unsigned failures;
        uint64_t window_start_usec;
        struct AuthPeer *next;
} AuthPeer;

struct IntrospectorState {
        AuthPeer *peers;
        size_t n_peers;
        uint8_t dummy_key[IDENTITY_KEY_MIN];    /* for unknown names: same work either way */
};

typedef struct Nonce {
        uint8_t bytes[NONCE_BYTES];
        uint64_t expires_usec;
} Nonce;

static void nonce_free(void *p) {
        if (p)
                OPENSSL_cleanse(p, sizeof(Nonce));
        free(p);
}

static int introspector_hello(Call *call, struct json_object *parameters, void *userdata) {
        _cleanup_free_ Nonce *n = calloc(1, sizeof *n);
        char hex[NONCE_BYTES * 2 + 1];
        struct json_object *reply;
        int r;

        if (!n)
                return -ENOMEM;
        if (RAND_bytes(n->bytes, sizeof n->bytes) != 1)
                return -EIO;
        n->expires_usec = now_usec(CLOCK_MONOTONIC) + NONCE_LIFETIME_SEC * 1000000ULL;
        for (size_t i = 0; i < NONCE_BYTES; i++)
                snprintf(hex + 2 * i, 3, "%02x", n->bytes[i]);

        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "nonce", json_object_new_string(hex));
        json_object_object_add(reply, "expires_in", json_object_new_int(NONCE_LIFETIME_SEC));
        /* A new Hello replaces any earlier nonce on this connection. */
        r = conn_set_data(call_conn(call), "introspector.nonce", n, nonce_free);
        if (r < 0) {
                json_object_put(reply);
                return r;
        }
        TAKE_PTR(n);
        return call_reply(call, reply);
}

int introspector_state_new(IntrospectorState **ret) {
        IntrospectorState *st = calloc(1, sizeof *st);

        if (!st)
                return -ENOMEM;
        if (RAND_bytes(st->dummy_key, sizeof st->dummy_key) != 1) {
                free(st);
                return -EIO;
        }
        *ret = st;
        return 0;
}

IntrospectorState *introspector_state_free(IntrospectorState *st) {
        if (!st)
                return NULL;
        while (st->peers) {
                AuthPeer *p = st->peers;
                st->peers = p->next;
                free(p);
        }
        OPENSSL_cleanse(st->dummy_key, sizeof st->dummy_key);
        free(st);
        return NULL;
}

/* The peer identity the proof is bound to: the uid on the Unix socket,
 * the VM's CID over vsock. */
static void peer_binding(Conn *c, char *buf, size_t n) {
        if (conn_vsock_cid(c))
                snprintf(buf, n, "vsock:%u", conn_vsock_cid(c));
        else
                snprintf(buf, n, "unix:%u", (unsigned) conn_uid(c));
}

bool introspector_binding_ok(const IdentityConfig *id, const Domain *vm, uid_t uid, uint32_t cid) {
        if (cid != 0)
                /* Over vsock the VM is the identity's anchor: no VM, no entry. */
                return id->domain && vm && domain_vsock_cid(vm) == cid &&
                       (!vm->from_libvirt || domain_state_is_up(vm->state));
        if (id->domain && id->n_uids == 0)
                return false;
        if (id->n_uids == 0)
                return true;
        for (size_t i = 0; i < id->n_uids; i++)
                if (id->uids[i] == uid)
                        return true;
        return false;
}

static AuthPeer *auth_peer(IntrospectorState *st, const char *key, uint64_t now) {
        AuthPeer **pp;

        for (pp = &st->peers; *pp; pp = &(*pp)->next)
                if (streq((*pp)->key, key))
                        return *pp;
        /* Bounded: forget peers whose window has passed before adding. */
        for (pp = &st->peers; *pp && st->n_peers >= AUTH_PEERS_MAX;) {
                AuthPeer *p = *pp;
                if (now - p->window_start_usec > AUTH_WINDOW_SEC * 1000000ULL) {
                        *pp = p->next;
                        free(p);
                        st->n_peers--;
                } else
                        pp = &p->next;
        }
        if (st->n_peers >= AUTH_PEERS_MAX)
                return NULL;
        AuthPeer *p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        snprintf(p->key, sizeof p->key, "%s", key);
        p->window_start_usec = now;
        p->next = st->peers;
        st->peers = p;
        st->n_peers++;
        return p;
}

static int unhex_bytes(const char *hex, uint8_t *out, size_t n) {
        if (strlen(hex) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                unsigned v;
                if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", hex[2 * i]) ||
                    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]))
                        return -EINVAL;
                out[i] = (uint8_t) v;
        }
        return 0;
}

int introspector_proof(const uint8_t *key, size_t key_len, const uint8_t nonce[32], const char *name,
                       const char *binding, uint8_t ret[32]) {
        size_t nl = strlen(name), bl = strlen(binding), len = sizeof AUTH_CONTEXT + 32 + nl + 1 + bl;
        _cleanup_free_ uint8_t *msg = malloc(len);
        unsigned int outlen = 0;
        uint8_t *p = msg;

        if (!msg)
                return -ENOMEM;
        memcpy(p, AUTH_CONTEXT, sizeof AUTH_CONTEXT); /* with its NUL */
        p += sizeof AUTH_CONTEXT;
        memcpy(p, nonce, 32);
        p += 32;
        memcpy(p, name, nl + 1);
        p += nl + 1;
        memcpy(p, binding, bl);
        if (!HMAC(EVP_sha256(), key, (int) key_len, msg, len, ret, &outlen) || outlen != 32)
                return -EIO;
        return 0;
}

typedef struct AuthPending {
        Call *call;
        char *name;
} AuthPending;

static void auth_durable(void *userdata, int r) {
        AuthPending *p = userdata;
        Call *call = p->call;
        Conn *c;

        if (!call_is_alive(call))
                goto done;
        c = call_conn(call);
        (void) conn_set_data(c, "introspector.authenticating", NULL, NULL);
        if (r < 0) {
                log_error_errno(r, "introspector \"%s\": audit record not written (%m): denied", p->name);
                (void) call_reply_error_reason(call, "io.kvmid.AuditFailed", strerror(-r));
                goto done;
        }
        if (conn_set_data(c, "introspector.identity", p->name, free) < 0) {
                (void) call_reply_error(call, "io.kvmid.InternalError", NULL);
                goto done;
        }
        conn_set_state(c, conn_state(c) | CONN_STATE_AUTHENTICATED);
        log_info("introspector \"%s\" authenticated (uid %u, pid %d)", p->name, (unsigned) conn_uid(c),
                 (int) conn_pid(c));
        struct json_object *reply = json_object_new_object();
        if (reply)
                json_object_object_add(reply, "introspector", json_object_new_string(p->name));
        p->name = NULL; /* owned by the connection now */
        (void) call_reply(call, reply);
done:
        call_unref(call);
        free(p->name);
        free(p);
}

static int introspector_authenticate(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        IntrospectorState *st = s->introspectors;
        Conn *c = call_conn(call);
        const char *name = json_object_get_string(json_object_object_get(parameters, "name"));
        const char *proof_hex = json_object_get_string(json_object_object_get(parameters, "proof"));
        const IdentityConfig *id = config_find_identity(s->config, name);
        Nonce *n = conn_get_data(c, "introspector.nonce");
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        uint8_t proof[PROOF_BYTES], want[PROOF_BYTES], nonce[NONCE_BYTES] = {};
        char binding[48];
        bool ok;
        AuthPeer *peer;
        int r;

        peer_binding(c, binding, sizeof binding);
        peer = auth_peer(st, binding, now);
        if (peer && now - peer->window_start_usec > AUTH_WINDOW_SEC * 1000000ULL) {
                peer->failures = 0;
                peer->window_start_usec = now;
        }
        if (!peer || peer->failures >= AUTH_MAX_FAILURES) {
                uint64_t left = peer ? AUTH_WINDOW_SEC * 1000000ULL - (now - peer->window_start_usec) : 1000000;
                struct json_object *p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                json_object_object_add(p, "retry_after", json_object_new_int64((int64_t) (left / 1000000 + 1)));
                /* The first refusal of a window is logged and audited;
                 * the rest are what a flood looks like, and must not be
                 * able to flood the audit log. */
                if (peer && peer->failures++ == AUTH_MAX_FAILURES) {
                        struct ucred cred;
                        char why[160];
                        AuditEvent ev = { .kind = AUDIT_KIND_AUTH_FAIL, .introspector = name, .reason = why };
                        snprintf(why, sizeof why, "%u failures from %s in %us: refused until the window ends, "
                                 "further attempts not recorded", AUTH_MAX_FAILURES, binding, AUTH_WINDOW_SEC);
                        conn_audit_subject(c, &cred, &ev);
                        server_audit(s, &ev);
                        log_notice("introspector authentication: too many failures from %s, refusing for now", binding);
                }
                return call_reply_error(call, "io.kvmid.Introspector.TooManyAttempts", p);
        }

        /* Every check runs whatever the outcome of the others: the work and
         * the answer do not depend on which part is wrong. */
        ok = n && now < n->expires_usec;
        if (n)
                memcpy(nonce, n->bytes, sizeof nonce);
        (void) conn_set_data(c, "introspector.nonce", NULL, NULL); /* used up */
        ok &= unhex_bytes(proof_hex, proof, sizeof proof) == 0;
        r = id ? introspector_proof(id->key, id->key_len, nonce, name, binding, want)
               : introspector_proof(st->dummy_key, sizeof st->dummy_key, nonce, name, binding, want);
        if (r < 0)
                return r;
        ok &= CRYPTO_memcmp(proof, want, sizeof want) == 0;
        ok &= id != NULL && introspector_binding_ok(id, id->domain ? domain_find(s, id->domain) : NULL, conn_uid(c),
                                                    conn_vsock_cid(c));
        OPENSSL_cleanse(want, sizeof want);

        struct ucred cred;
        AuditEvent ev = { .kind = ok ? AUDIT_KIND_AUTH_OK : AUDIT_KIND_AUTH_FAIL, .introspector = name };
        conn_audit_subject(c, &cred, &ev);
        if (!ok) {
                peer->failures++;
                log_notice("introspector authentication failed for \"%s\" from %s (pid %d)", name, binding,
                           (int) conn_pid(c));
                server_audit(s, &ev);
                return call_reply_error(call, "io.kvmid.Introspector.AuthenticationFailed", NULL);
        }
        peer->failures = 0;

        /* An allow is answered only once its record is durable; until
         * then a reload that drops or changes the identity must find this
         * connection too (introspector_revoke). */
        _cleanup_free_ char *marker = strdup(name);
        AuthPending *pending = calloc(1, sizeof *pending);
        if (!marker || !pending || !(pending->name = strdup(name)) ||
            conn_set_data(c, "introspector.authenticating", marker, free) < 0) {
                if (pending)
                        free(pending->name);
                free(pending);
                return -ENOMEM;
        }
        TAKE_PTR(marker);
        pending->call = call_ref(call);
        r = audit_append(s->audit, &ev, auth_durable, pending);
        if (r < 0) {
                auth_durable(pending, r);
                return 0;
        }
        return 0;
}

const char *introspector_identity(const Conn *c) {
        return conn_get_data(c, "introspector.identity");
}

/* Authenticated as name, or about to be (its auth-ok record on its way). */
static bool conn_is_introspector(const Conn *c, const char *name) {
        const char *who = introspector_identity(c) ?: conn_get_data(c, "introspector.authenticating");

        return who && streq(who, name);
}

bool introspector_known(Server *s, const char *name) {
        if (config_find_identity(s->config, name))
                return true;
        for (const Session *ss = s->sessions; ss; ss = ss->next)
                if (streq(ss->introspector, name))
                        return true;
        for (const Conn *c = s->conns; c; c = c->next)
                if (conn_is_introspector(c, name))
                        return true;
        return false;
}

unsigned introspector_revoke(Server *s, const char *name, const char *reason) {
        unsigned n_sessions = 0, n_conns = 0;

        for (const Session *ss = s->sessions; ss; ss = ss->next)
                n_sessions += streq(ss->introspector, name);
        session_end_introspector(s, name, reason);
        /* Each closes once what is queued on it is written: its
         * subscribers' SessionEnded says why; it takes no more calls. */
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_is_introspector(c, name)) {
                        conn_begin_shutdown(c);
                        n_conns++;
                }
        if (n_sessions > 0 || n_conns > 0)
                log_notice("introspector \"%s\": %s: %u sessions ended, %u connections closed", name, reason,
                           n_sessions, n_conns);
        return n_sessions;
}

static bool uids_within(const IdentityConfig *a, const IdentityConfig *b) {
        for (size_t i = 0; i < a->n_uids; i++) {
                bool found = false;
                for (size_t k = 0; k < b->n_uids && !found; k++)
                        found = a->uids[i] == b->uids[k];
                if (!found)
                        return false;
        }
        return true;
}

/* The same secret and the same peers: what an authentication proved still holds. */
static bool identity_same(const IdentityConfig *a, const IdentityConfig *b) {
        return a->key_len == b->key_len && CRYPTO_memcmp(a->key, b->key, a->key_len) == 0 &&
               (a->domain ? b->domain && streq(a->domain, b->domain) : !b->domain) && uids_within(a, b) &&
               uids_within(b, a);
}

void introspector_apply_config(Server *s, const Config *old) {
        for (const IdentityConfig *id = old->identities; id; id = id->next) {
                const IdentityConfig *now = config_find_identity(s->config, id->name);
                if (now && identity_same(id, now))
                        continue;
                (void) introspector_revoke(s, id->name, now ? "introspector key or binding changed"
                                                            : "introspector removed from configuration");
        }
}

static const MethodEntry introspector_methods[] = {
        { "Hello", introspector_hello, ROLE_INTROSPECTOR, CONN_STATE_ANY, false },
        { "Authenticate", introspector_authenticate, ROLE_INTROSPECTOR, CONN_STATE_ANY, false },
        { "OpenSession", session_method_open, ROLE_INTROSPECTOR, CONN_STATE_AUTHENTICATED, false },
        { "CloseSession", session_method_close, ROLE_INTROSPECTOR, CONN_STATE_AUTHENTICATED, false },
        { "Subscribe", session_method_subscribe, ROLE_INTROSPECTOR, CONN_STATE_AUTHENTICATED, true },
        { "GetMapToken", token_method_get, ROLE_INTROSPECTOR, CONN_STATE_AUTHENTICATED, false },
        { "RevokeToken", token_method_revoke, ROLE_INTROSPECTOR, CONN_STATE_AUTHENTICATED, false },
};

const InterfaceTable introspector_interface = {
        "io.kvmid.Introspector", introspector_methods, ELEMENTSOF(introspector_methods), ROLE_INTROSPECTOR,
};
