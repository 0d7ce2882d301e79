/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --introspector NAME,KEYFILE,VMNAME: kvmi-sim also plays an introspector
 * VM, the whole loop kvmid brokers, on the same event loop as the targets:
 *
 *   the agent in the VM (io.kvmid.Introspector, --introspector-socket):
 *     a main connection: Hello, Authenticate (proof = hex(HMAC-SHA256(key,
 *     "kvmid-auth-v1" 0x00 || nonce || NAME 0x00 || "unix:EUID"))),
 *     OpenSession on each --attach target (retried while kvmid answers
 *     TargetUnavailable "no ready KVMI channel": not probed yet), later
 *     GetMapToken and CloseSession;
 *     --subscribers N subscribers, each one authenticated connection per
 *     session (a Subscribe occupies its connection): every event is
 *     counted, its per-target seq checked against the previous one and the
 *     missed field (seq == previous + 1 + missed), its target checked;
 *   the VM's VMM (io.kvmid.Hypervisor, --hypervisor-socket):
 *     MemMap (introspector = VMNAME, local gpa from a counter, one page
 *     per attempt), MemUnmap, and with --watch-revocations a
 *     WatchRevocations(VMNAME) stream whose revocations drop the mapping.
 *
 * A map is what the VMM does on the VM's KVM_HC_MEM_MAP: ask kvmid first
 * (MemMap), and only on allow complete it, i.e. redeem the token in the
 * target's kernel, the simulated one of this same process (sim-kernel.c's
 * token table: a redeem there frees the kernel's slot, as the real one
 * does).  A deny leaves the kernel alone.
 *
 * Varlink is spoken with proto/varlink-wire.h over bufferevents; replies
 * on a connection come in call order, so each connection keeps a FIFO of
 * pending calls.  Work after setup runs as "ops" (map, deny, unmap, close,
 * wait), one at a time in order, each answering with a JSON result: the
 * control socket's intro-* commands and the one-shot run both use them. */

#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sim.h"
#include "varlink-wire.h"

#define IV_MAX_MESSAGE          (1024U * 1024U)
#define IV_READ_CHUNK           (64U * 1024U)
#define IV_MAX_DEPTH            64
#define IV_KEY_MIN              32
#define IV_KEY_MAX              4096
#define IV_PAGE                 4096ULL
#define IV_RETRY_MS             50
#define IV_AUTH_CONTEXT         "kvmid-auth-v1"
#define IV_DEFAULT_LOCAL_GPA    0x100000000ULL
#define IV_E_SESSION_ENDED      "io.kvmid.Introspector.SessionEnded"
#define IV_E_UNAVAILABLE        "io.kvmid.Introspector.TargetUnavailable"
#define IV_E_MAP_DENIED         "io.kvmid.Hypervisor.MapDenied"
#define IV_E_UNMAP_DENIED       "io.kvmid.Hypervisor.UnmapDenied"

typedef struct IvConn IvConn;

/* reply NULL: the connection is gone (or the call could not be sent). */
typedef void (*IvReplyFn)(IvConn *c, const VarlinkReply *reply, void *userdata);

typedef struct IvCall {
        struct IvCall *next;
        IvReplyFn fn;
        void *userdata;
} IvCall;

struct IvConn {
        SimIntro *in;
        IvConn *next;
        char label[64];
        struct bufferevent *bev;
        VarlinkReader *reader;
        IvCall *calls, **calls_tail;
        bool dead;
        char why[SIM_ERR_LEN];
};

typedef enum IvSessState {
        SESS_PENDING,
        SESS_OPEN,
        SESS_CLOSED,                    /* CloseSession by us */
        SESS_ENDED,                     /* kvmid ended it (told a subscriber why) */
        SESS_FAILED,                    /* OpenSession refused */
} IvSessState;

typedef struct IvSession {
        char want[256];                 /* as given to --attach */
        char target[256], uuid[37], id[80];
        IvSessState state;
        char reason[SIM_ERR_LEN];
        uint64_t minted, allowed, denied, unmapped, revoked;
        bool has_consumed;              /* a token kvmid already let us map */
        uint8_t consumed[KVMI_MAP_TOKEN_SIZE];
        char consumed_id[32];
        uint64_t consumed_tgpa;
} IvSession;

typedef enum IvSubState {
        SUB_IDLE,
        SUB_AUTH,
        SUB_SUBSCRIBING,
        SUB_LIVE,
        SUB_ENDED,                      /* SessionEnded, or the stream closed */
        SUB_FAILED,
} IvSubState;

/* One subscriber's stream on one session. */
typedef struct IvSub {
        SimIntro *in;
        unsigned index, session;
        IvConn *conn;
        IvSubState state;
        char reason[SIM_ERR_LEN];
        uint64_t delivered, missed, last_seq, order_errors, gaps, foreign;
        uint64_t base_acked;            /* the target's acked count when the stream went live */
        bool have_base;
} IvSub;

typedef struct IvMapping {
        unsigned session;
        uint64_t local_gpa, target_gpa;
        char token_id[32];
} IvMapping;

typedef enum IvState {
        IV_IDLE,
        IV_SETUP,
        IV_READY,
        IV_FAILED,
} IvState;

typedef enum IvStage {
        ST_SESSION,                     /* start the next session of the op */
        ST_MINT,
        ST_MAP,
        ST_DENY,
        ST_UNMAP,
        ST_CLOSE,
        ST_WAITING,                     /* a reply or a condition */
} IvStage;

typedef struct IvOp IvOp;
struct IvOp {
        IvOp *next;
        IntroOpSpec spec;
        char *target;
        IntroDone done;
        void *userdata;
        bool started;
        IvStage stage;
        unsigned *sess;                 /* the sessions it works on */
        size_t n_sess, si;
        unsigned i;                     /* map: tokens done on this session */
        uint64_t *lgpas;                /* unmap: local gpas */
        size_t n_lgpas;
        struct json_object *result, *items;
        bool ok;
        char error[SIM_ERR_LEN];
        uint64_t start_ns, call_ns;
        /* the token in hand */
        uint8_t token[KVMI_MAP_TOKEN_SIZE];
        char token_hex[2 * KVMI_MAP_TOKEN_SIZE + 1], token_id[32];
        uint64_t tgpa, lgpa;
        struct event *ev_timeout;
        uint64_t counts_at_start[4];    /* minted, allowed, denied, unmaps */
};

struct SimIntro {
        Sim *sim;
        SimIntroOpts *o;
        uint8_t key[IV_KEY_MAX];
        size_t key_len;
        char binding[32];
        IvState state;
        bool authenticated;
        IvConn *conns, *main, *hyp, *watch;
        IvSession *sessions;
        size_t n_sessions, open_next;
        IvSub *subs;
        size_t n_subs;
        IvMapping *maps;
        size_t n_maps, cap_maps;
        uint64_t next_local;
        IvOp *ops, **ops_tail;
        struct event *ev_retry, *ev_setup_timeout, *ev_kick;
        const char *watch_state;        /* off, pending, live, ended, failed */
        char watch_reason[SIM_ERR_LEN];
        uint64_t minted, token_errors, allowed, denied, denied_expected, unmaps, unmaps_denied;
        uint64_t redeemed, redeem_failed, revocations;
        char last_revocation[SIM_ERR_LEN];
        LatVec map_lat;
        uint64_t errors;
        char first_error[SIM_ERR_LEN];
        char fail[SIM_ERR_LEN];         /* why the setup failed */
        bool notified;
        uint64_t start_ns, ready_ns;
        void (*oneshot_done)(Sim *s);
};

static void iv_setup_check(SimIntro *in);
static void iv_wait_check(SimIntro *in);

/* snprintf() for messages made of messages: truncation is fine. */
static void iv_fmt(char *buf, size_t n, const char *fmt, ...) _printf_(3, 4);
static void iv_fmt(char *buf, size_t n, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, n, fmt, ap);
        va_end(ap);
}
static void iv_op_run(SimIntro *in);

static void iv_error(SimIntro *in, const char *fmt, ...) _printf_(2, 3);
static void iv_error(SimIntro *in, const char *fmt, ...) {
        char msg[SIM_ERR_LEN];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        in->errors++;
        if (!in->first_error[0])
                iv_fmt(in->first_error, sizeof in->first_error, "%s", msg);
        util_log(in->sim, "introspector: error: %s", msg);
}

static const char *iv_str(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static bool iv_int(struct json_object *o, const char *key, int64_t *ret) {
        struct json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

/* "error.Name {params}" for logs and results. */
static void iv_describe(const VarlinkReply *r, char *buf, size_t n) {
        const char *reason;

        if (!r) {
                iv_fmt(buf, n, "no reply (connection closed)");
                return;
        }
        reason = iv_str(r->parameters, "reason");
        if (reason)
                iv_fmt(buf, n, "%s: %s", r->error ? r->error : "ok", reason);
        else
                iv_fmt(buf, n, "%s %s", r->error ? r->error : "ok",
                         json_object_to_json_string_ext(r->parameters, JSON_C_TO_STRING_PLAIN));
}

/* ---- options ------------------------------------------------------------------------ */

int intro_opts_parse(SimIntroOpts *o, const char *arg, char *why, size_t whylen) {
        const char *c1 = strchr(arg, ','), *c2 = c1 ? strrchr(arg, ',') : NULL;
        size_t nl, vl;

        if (!c1 || c1 == c2 || c1 == arg || c2[1] == '\0' || c2 == c1 + 1) {
                iv_fmt(why, whylen, "expected NAME,KEYFILE,VMNAME, got \"%s\"", arg);
                return -EINVAL;
        }
        nl = (size_t) (c1 - arg);
        vl = strlen(c2 + 1);
        if (nl >= sizeof o->name || vl >= sizeof o->vm) {
                iv_fmt(why, whylen, "names are at most %d bytes", SIM_NAME_MAX - 1);
                return -EINVAL;
        }
        memcpy(o->name, arg, nl);
        o->name[nl] = '\0';
        memcpy(o->vm, c2 + 1, vl + 1);
        free(o->key_file);
        o->key_file = strndup(c1 + 1, (size_t) (c2 - c1 - 1));
        if (!o->key_file)
                return -ENOMEM;
        o->enabled = true;
        return 0;
}

void intro_opts_done(SimIntroOpts *o) {
        o->key_file = mfree(o->key_file);
        o->introspector_socket = mfree(o->introspector_socket);
        o->hypervisor_socket = mfree(o->hypervisor_socket);
        for (size_t i = 0; i < o->n_attach; i++)
                free(o->attach[i]);
        o->attach = mfree(o->attach);
        o->n_attach = 0;
}

/* ---- connections ---------------------------------------------------------------------- */

static void iv_conn_fail_calls(IvConn *c) {
        while (c->calls) {
                IvCall *call = c->calls;
                c->calls = call->next;
                if (!c->calls)
                        c->calls_tail = &c->calls;
                call->fn(c, NULL, call->userdata);
                free(call);
        }
}

/* The connection is unusable: every pending call is told (reply NULL). */
static void iv_conn_lost(IvConn *c, const char *fmt, ...) _printf_(2, 3);
static void iv_conn_lost(IvConn *c, const char *fmt, ...) {
        va_list ap;

        if (c->dead)
                return;
        c->dead = true;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        util_log(c->in->sim, "introspector: %s: %s", c->label, c->why);
        if (c->bev) {
                bufferevent_free(c->bev);
                c->bev = NULL;
        }
        iv_conn_fail_calls(c);
}

static void iv_dispatch(IvConn *c) {
        while (!c->dead) {
                struct json_object *msg = NULL;
                VarlinkReply reply;
                const char *data;
                size_t len;
                IvCall *call;
                bool last;
                int r = varlink_reader_next(c->reader, &data, &len);

                if (r == 0)
                        return;
                if (r < 0) {
                        iv_conn_lost(c, "a reply larger than %u bytes", IV_MAX_MESSAGE);
                        return;
                }
                if (varlink_message_parse(data, len, IV_MAX_DEPTH, &msg) < 0 ||
                    varlink_reply_from_json(msg, &reply) < 0) {
                        json_object_put(msg);
                        iv_conn_lost(c, "malformed reply from kvmid");
                        return;
                }
                call = c->calls;
                if (!call) {
                        json_object_put(msg);
                        iv_conn_lost(c, "a reply to no call");
                        return;
                }
                last = reply.error || !reply.continues;
                if (last) {
                        c->calls = call->next;
                        if (!c->calls)
                                c->calls_tail = &c->calls;
                }
                call->fn(c, &reply, call->userdata);
                json_object_put(msg);
                if (last)
                        free(call);
        }
}

static void iv_on_read(_unused_ struct bufferevent *bev, void *userdata) {
        IvConn *c = userdata;

        while (!c->dead && c->bev && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
                void *p;
                size_t n;
                int k;

                if (varlink_reader_get_space(c->reader, IV_READ_CHUNK, &p, &n) < 0) {
                        iv_conn_lost(c, "a reply larger than %u bytes", IV_MAX_MESSAGE);
                        return;
                }
                k = evbuffer_remove(bufferevent_get_input(c->bev), p, n);
                if (k <= 0)
                        break;
                varlink_reader_advance(c->reader, (size_t) k);
                iv_dispatch(c);
        }
}

static void iv_on_event(_unused_ struct bufferevent *bev, short what, void *userdata) {
        IvConn *c = userdata;

        if (what & BEV_EVENT_CONNECTED) {
                util_log(c->in->sim, "introspector: %s: connected", c->label);
                return;
        }
        if (what & BEV_EVENT_EOF)
                iv_conn_lost(c, "kvmid closed the connection");
        else if (what & BEV_EVENT_ERROR)
                iv_conn_lost(c, "%s", strerror(EVUTIL_SOCKET_ERROR() ?: ECONNRESET));
}

static IvConn *iv_conn_new(SimIntro *in, const char *path, const char *fmt, ...) _printf_(3, 4);
static IvConn *iv_conn_new(SimIntro *in, const char *path, const char *fmt, ...) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        IvConn *c = calloc(1, sizeof *c);
        va_list ap;

        if (!c)
                return NULL;
        c->in = in;
        c->calls_tail = &c->calls;
        va_start(ap, fmt);
        vsnprintf(c->label, sizeof c->label, fmt, ap);
        va_end(ap);
        c->next = in->conns;
        in->conns = c;
        c->reader = varlink_reader_new(IV_MAX_MESSAGE);
        c->bev = bufferevent_socket_new(in->sim->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!c->reader || !c->bev) {
                iv_conn_lost(c, "out of memory");
                return c;
        }
        bufferevent_setcb(c->bev, iv_on_read, NULL, iv_on_event, c);
        if (!path || strlen(path) >= sizeof sa.sun_path) {
                iv_conn_lost(c, "bad socket path");
                return c;
        }
        memcpy(sa.sun_path, path, strlen(path));
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *) &sa, sizeof sa) < 0) {
                iv_conn_lost(c, "cannot connect to %s: %m", path);
                return c;
        }
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        return c;
}

/* Send a call; fn gets every reply (or NULL once if it cannot be had). */
static void iv_call(IvConn *c, const char *method, struct json_object *params, bool more, IvReplyFn fn,
                    void *userdata) {
        IvCall *call;
        VarlinkBlob *blob = NULL;

        if (c->dead || !(call = calloc(1, sizeof *call))) {
                json_object_put(params);
                fn(c, NULL, userdata);
                return;
        }
        call->fn = fn;
        call->userdata = userdata;
        if (varlink_call_encode(method, params, more ? VARLINK_CALL_MORE : 0, &blob) < 0 ||
            bufferevent_write(c->bev, varlink_blob_data(blob), varlink_blob_size(blob)) < 0) {
                varlink_blob_unref(blob);
                json_object_put(params);
                free(call);
                fn(c, NULL, userdata);
                return;
        }
        varlink_blob_unref(blob);
        json_object_put(params);
        *c->calls_tail = call;
        c->calls_tail = &call->next;
        util_log(c->in->sim, "introspector: %s: %s", c->label, method);
}

static struct json_object *iv_params(void) {
        return json_object_new_object();
}

/* ---- authentication ----------------------------------------------------------------------- */

typedef void (*IvAuthDone)(IvConn *c, bool ok, void *userdata);

typedef struct IvAuth {
        IvAuthDone done;
        void *userdata;
} IvAuth;

static void iv_auth_finish(IvConn *c, IvAuth *a, bool ok) {
        IvAuthDone done = a->done;
        void *userdata = a->userdata;

        free(a);
        done(c, ok, userdata);
}

static void iv_on_authenticate(IvConn *c, const VarlinkReply *r, void *userdata) {
        char why[SIM_ERR_LEN];

        if (!r || r->error) {
                iv_describe(r, why, sizeof why);
                iv_error(c->in, "%s: Authenticate as \"%s\": %s", c->label, c->in->o->name, why);
        }
        iv_auth_finish(c, userdata, r && !r->error);
}

static void iv_on_hello(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = c->in;
        uint8_t nonce[32], mac[EVP_MAX_MD_SIZE];
        char why[SIM_ERR_LEN], proof[2 * 32 + 1];
        unsigned maclen = 0;
        size_t nl = strlen(in->o->name), bl = strlen(in->binding);
        size_t len = sizeof IV_AUTH_CONTEXT + sizeof nonce + nl + 1 + bl;
        _cleanup_free_ uint8_t *msg = NULL;
        struct json_object *p;

        if (!r || r->error || util_unhex(iv_str(r->parameters, "nonce"), nonce, sizeof nonce) < 0) {
                iv_describe(r, why, sizeof why);
                iv_error(in, "%s: Hello: %s", c->label, why);
                iv_auth_finish(c, userdata, false);
                return;
        }
        /* "kvmid-auth-v1" 0x00 || nonce || name 0x00 || binding */
        msg = malloc(len);
        if (!msg) {
                iv_auth_finish(c, userdata, false);
                return;
        }
        memcpy(msg, IV_AUTH_CONTEXT, sizeof IV_AUTH_CONTEXT);
        memcpy(msg + sizeof IV_AUTH_CONTEXT, nonce, sizeof nonce);
        memcpy(msg + sizeof IV_AUTH_CONTEXT + sizeof nonce, in->o->name, nl + 1);
        memcpy(msg + sizeof IV_AUTH_CONTEXT + sizeof nonce + nl + 1, in->binding, bl);
        if (!HMAC(EVP_sha256(), in->key, (int) in->key_len, msg, len, mac, &maclen) || maclen != 32) {
                iv_error(in, "%s: HMAC-SHA256 failed", c->label);
                iv_auth_finish(c, userdata, false);
                return;
        }
        util_hex(mac, 32, proof);
        p = iv_params();
        json_object_object_add(p, "name", json_object_new_string(in->o->name));
        json_object_object_add(p, "proof", json_object_new_string(proof));
        iv_call(c, "io.kvmid.Introspector.Authenticate", p, false, iv_on_authenticate, userdata);
}

static void iv_authenticate(IvConn *c, IvAuthDone done, void *userdata) {
        IvAuth *a = calloc(1, sizeof *a);

        if (!a) {
                done(c, false, userdata);
                return;
        }
        a->done = done;
        a->userdata = userdata;
        iv_call(c, "io.kvmid.Introspector.Hello", NULL, false, iv_on_hello, a);
}

/* ---- mappings ------------------------------------------------------------------------------ */

static IvMapping *iv_mapping_find(SimIntro *in, uint64_t local_gpa) {
        for (size_t i = 0; i < in->n_maps; i++)
                if (in->maps[i].local_gpa == local_gpa)
                        return &in->maps[i];
        return NULL;
}

static void iv_mapping_add(SimIntro *in, unsigned session, uint64_t lgpa, uint64_t tgpa, const char *token_id) {
        if (in->n_maps == in->cap_maps) {
                size_t cap = in->cap_maps ? in->cap_maps * 2 : 16;
                IvMapping *m = realloc(in->maps, cap * sizeof *m);
                if (!m) {
                        iv_error(in, "out of memory recording a mapping");
                        return;
                }
                in->maps = m;
                in->cap_maps = cap;
        }
        in->maps[in->n_maps++] = (IvMapping) { .session = session, .local_gpa = lgpa, .target_gpa = tgpa };
        iv_fmt(in->maps[in->n_maps - 1].token_id, sizeof in->maps[0].token_id, "%s", token_id ?: "");
}

static void iv_mapping_drop(SimIntro *in, IvMapping *m) {
        *m = in->maps[--in->n_maps];
}

/* ---- subscribers --------------------------------------------------------------------------- */

static const char *iv_sub_state(IvSubState st) {
        static const char *const names[] = { "idle", "authenticating", "subscribing", "live", "ended", "failed" };
        return names[st];
}

static const char *iv_sess_state(IvSessState st) {
        static const char *const names[] = { "pending", "open", "closed", "ended", "failed" };
        return names[st];
}

static uint64_t iv_target_acked(SimIntro *in, const IvSession *ss, bool *found) {
        SimVm *vm = sim_vm_find(in->sim, ss->target);

        *found = vm != NULL;
        return vm ? vm->acked : 0;
}

static void iv_sub_event(IvSub *sub, struct json_object *ev) {
        SimIntro *in = sub->in;
        IvSession *ss = &in->sessions[sub->session];
        const char *target = iv_str(ev, "target");
        int64_t seq = 0, missed = 0;

        if (!iv_int(ev, "seq", &seq) || seq < 1 || !iv_int(ev, "missed", &missed) || missed < 0 || !target) {
                iv_error(in, "subscriber %u on %s: malformed event %s", sub->index, ss->target,
                         json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
                return;
        }
        sub->delivered++;
        sub->missed += (uint64_t) missed;
        if (!streq(target, ss->target) && !streq(target, ss->uuid))
                sub->foreign++;
        if (sub->last_seq) {
                if ((uint64_t) seq <= sub->last_seq)
                        sub->order_errors++;
                else if ((uint64_t) seq != sub->last_seq + 1 + (uint64_t) missed)
                        sub->gaps++;
        }
        if ((uint64_t) seq > sub->last_seq)
                sub->last_seq = (uint64_t) seq;
}

static void iv_on_subscribe(IvConn *c, const VarlinkReply *r, void *userdata) {
        IvSub *sub = userdata;
        SimIntro *in = sub->in;
        IvSession *ss = &in->sessions[sub->session];
        struct json_object *ev;
        char why[SIM_ERR_LEN];

        if (!r) {
                if (sub->state == SUB_LIVE)
                        sub->state = SUB_ENDED;
                else if (sub->state != SUB_ENDED) {
                        sub->state = SUB_FAILED;
                        iv_error(in, "subscriber %u on %s: %s", sub->index, ss->target, c->why);
                }
                if (!sub->reason[0])
                        iv_fmt(sub->reason, sizeof sub->reason, "connection: %s", c->why);
                goto out;
        }
        if (r->error) {
                iv_describe(r, why, sizeof why);
                iv_fmt(sub->reason, sizeof sub->reason, "%s", why);
                if (streq(r->error, IV_E_SESSION_ENDED)) {
                        sub->state = SUB_ENDED;
                        if (ss->state == SESS_OPEN) {
                                ss->state = SESS_ENDED;
                                iv_fmt(ss->reason, sizeof ss->reason, "%s",
                                         iv_str(r->parameters, "reason") ?: "SessionEnded");
                        }
                } else {
                        sub->state = SUB_FAILED;
                        iv_error(in, "subscriber %u on %s: Subscribe: %s", sub->index, ss->target, why);
                }
                goto out;
        }
        if (sub->state == SUB_SUBSCRIBING) {
                bool found;
                sub->state = SUB_LIVE;
                sub->base_acked = iv_target_acked(in, ss, &found);
                sub->have_base = found;
        }
        if (json_object_object_get_ex(r->parameters, "event", &ev) && ev) {
                if (json_object_is_type(ev, json_type_object))
                        iv_sub_event(sub, ev);
                else
                        iv_error(in, "subscriber %u on %s: \"event\" is not an object", sub->index, ss->target);
        }
        if (!r->continues && sub->state == SUB_LIVE) {
                sub->state = SUB_ENDED;
                iv_fmt(sub->reason, sizeof sub->reason, "the stream ended without an error");
                iv_error(in, "subscriber %u on %s: the stream ended without SessionEnded", sub->index, ss->target);
        }
out:
        iv_setup_check(in);
        iv_wait_check(in);
}

static void iv_sub_authenticated(IvConn *c, bool ok, void *userdata) {
        IvSub *sub = userdata;
        struct json_object *p;

        if (!ok) {
                sub->state = SUB_FAILED;
                iv_fmt(sub->reason, sizeof sub->reason, "authentication failed");
                iv_setup_check(sub->in);
                return;
        }
        sub->state = SUB_SUBSCRIBING;
        p = iv_params();
        json_object_object_add(p, "session", json_object_new_string(sub->in->sessions[sub->session].id));
        iv_call(c, "io.kvmid.Introspector.Subscribe", p, true, iv_on_subscribe, sub);
}

static void iv_start_subscribers(SimIntro *in) {
        unsigned n = in->o->subscribers;

        in->subs = calloc((size_t) n * MAX(in->n_sessions, (size_t) 1), sizeof *in->subs);
        if (!in->subs) {
                iv_error(in, "out of memory");
                return;
        }
        for (unsigned i = 0; i < n; i++)
                for (size_t j = 0; j < in->n_sessions; j++) {
                        IvSub *sub;
                        if (in->sessions[j].state != SESS_OPEN)
                                continue;
                        sub = &in->subs[in->n_subs++];
                        sub->in = in;
                        sub->index = i;
                        sub->session = (unsigned) j;
                        sub->state = SUB_AUTH;
                        sub->conn = iv_conn_new(in, in->o->introspector_socket, "subscriber %u on %s", i,
                                                in->sessions[j].target);
                        if (!sub->conn) {
                                sub->state = SUB_FAILED;
                                iv_error(in, "out of memory");
                                continue;
                        }
                        iv_authenticate(sub->conn, iv_sub_authenticated, sub);
                }
}

/* ---- revocations --------------------------------------------------------------------------- */

static void iv_on_revocation(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        int64_t lgpa;
        char why[SIM_ERR_LEN];

        if (!r || r->error) {
                iv_describe(r, why, sizeof why);
                iv_fmt(in->watch_reason, sizeof in->watch_reason, "%s", why);
                if (!streq(in->watch_state, "live"))
                        iv_error(in, "WatchRevocations: %s", why);
                in->watch_state = streq(in->watch_state, "live") ? "ended" : "failed";
                goto out;
        }
        if (streq(in->watch_state, "pending")) {
                in->watch_state = "live";
                if (!iv_str(r->parameters, "reason"))
                        goto out;       /* the first reply: the watch is live */
        }
        if (iv_int(r->parameters, "local_gpa", &lgpa)) {
                const char *target = iv_str(r->parameters, "target"), *reason = iv_str(r->parameters, "reason");
                IvMapping *m = iv_mapping_find(in, (uint64_t) lgpa);

                in->revocations++;
                iv_fmt(in->last_revocation, sizeof in->last_revocation, "0x%" PRIx64 " of %s: %s",
                         (uint64_t) lgpa, target ?: "?", reason ?: "?");
                util_log(in->sim, "introspector: revocation: %s", in->last_revocation);
                if (m) {
                        in->sessions[m->session].revoked++;
                        iv_mapping_drop(in, m);
                }
        }
        if (!r->continues) {
                in->watch_state = "ended";
                iv_fmt(in->watch_reason, sizeof in->watch_reason, "the stream ended");
        }
out:
        iv_setup_check(in);
        iv_wait_check(in);
}

/* ---- setup --------------------------------------------------------------------------------- */

static void iv_settle(SimIntro *in, const char *fail) {
        if (in->state != IV_SETUP)
                return;
        if (fail && !in->fail[0])
                iv_fmt(in->fail, sizeof in->fail, "%s", fail);
        in->state = in->fail[0] ? IV_FAILED : IV_READY;
        in->ready_ns = util_now_ns();
        event_del(in->ev_setup_timeout);
        event_del(in->ev_retry);
        util_log(in->sim, "introspector: %s%s%s", in->state == IV_READY ? "ready" : "setup failed: ",
                 in->state == IV_READY ? "" : in->fail, "");
        if (!in->notified) {
                in->notified = true;
                sim_intro_notify(in->sim);
        }
        iv_op_run(in);
}

static void iv_setup_check(SimIntro *in) {
        char why[SIM_ERR_LEN];

        if (in->state != IV_SETUP || !in->authenticated || in->open_next < in->n_sessions)
                return;
        for (size_t i = 0; i < in->n_subs; i++)
                if (in->subs[i].state < SUB_LIVE)
                        return;
        if (streq(in->watch_state, "pending"))
                return;
        why[0] = '\0';
        for (size_t i = 0; i < in->n_sessions && !why[0]; i++)
                if (in->sessions[i].state == SESS_FAILED)
                        iv_fmt(why, sizeof why, "OpenSession(%s): %s", in->sessions[i].want, in->sessions[i].reason);
        for (size_t i = 0; i < in->n_subs && !why[0]; i++)
                if (in->subs[i].state != SUB_LIVE)
                        iv_fmt(why, sizeof why, "subscriber %u on %s: %s", in->subs[i].index,
                                 in->sessions[in->subs[i].session].target, in->subs[i].reason);
        if (!why[0] && streq(in->watch_state, "failed"))
                iv_fmt(why, sizeof why, "WatchRevocations: %s", in->watch_reason);
        iv_settle(in, why[0] ? why : NULL);
}

static void iv_open_next(SimIntro *in);

static void iv_on_open_session(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        IvSession *ss = &in->sessions[in->open_next];
        char why[SIM_ERR_LEN];

        if (in->state != IV_SETUP)
                return;
        if (r && r->error && streq(r->error, IV_E_UNAVAILABLE) && !c->dead &&
            streq(iv_str(r->parameters, "reason") ?: "", "no ready KVMI channel")) {
                /* A known target kvmid has not finished probing yet (or
                 * whose VM has yet to connect): until the setup timeout. */
                struct timeval tv = { .tv_usec = IV_RETRY_MS * 1000 };
                iv_describe(r, ss->reason, sizeof ss->reason);
                evtimer_add(in->ev_retry, &tv);
                return;
        }
        if (!r || r->error) {
                iv_describe(r, why, sizeof why);
                ss->state = SESS_FAILED;
                iv_fmt(ss->reason, sizeof ss->reason, "%s", why);
                iv_error(in, "OpenSession(%s): %s", ss->want, why);
        } else {
                iv_fmt(ss->id, sizeof ss->id, "%s", iv_str(r->parameters, "session") ?: "");
                iv_fmt(ss->target, sizeof ss->target, "%s", iv_str(r->parameters, "target") ?: ss->want);
                iv_fmt(ss->uuid, sizeof ss->uuid, "%s", iv_str(r->parameters, "uuid") ?: "");
                ss->state = SESS_OPEN;
                ss->reason[0] = '\0';
                util_log(in->sim, "introspector: session %s on %s", ss->id, ss->target);
        }
        in->open_next++;
        iv_open_next(in);
}

static void iv_open_next(SimIntro *in) {
        struct json_object *p;

        if (in->open_next >= in->n_sessions) {
                iv_start_subscribers(in);
                iv_setup_check(in);
                return;
        }
        p = iv_params();
        json_object_object_add(p, "target", json_object_new_string(in->sessions[in->open_next].want));
        iv_call(in->main, "io.kvmid.Introspector.OpenSession", p, false, iv_on_open_session, in);
}

static void iv_on_retry(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        iv_open_next(userdata);
}

static void iv_main_authenticated(IvConn *c, bool ok, void *userdata) {
        SimIntro *in = userdata;

        if (!ok) {
                char why[SIM_ERR_LEN];
                iv_fmt(why, sizeof why, "authentication as \"%s\" failed%s%s", in->o->name, c->dead ? ": " : "",
                         c->dead ? c->why : "");
                iv_settle(in, why);
                return;
        }
        in->authenticated = true;
        util_log(in->sim, "introspector: authenticated as \"%s\"", in->o->name);
        iv_open_next(in);
}

static void iv_on_setup_timeout(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimIntro *in = userdata;
        char why[SIM_ERR_LEN];

        iv_fmt(why, sizeof why, "setup not done after %us (%s)", in->sim->o.timeout_sec,
                 !in->authenticated                ? "authenticating"
                 : in->open_next < in->n_sessions ? in->sessions[in->open_next].reason[0]
                                                            ? in->sessions[in->open_next].reason
                                                            : "opening sessions"
                                                      : "subscribing");
        iv_error(in, "%s", why);
        iv_settle(in, why);
}

/* ---- ops ----------------------------------------------------------------------------------- */

static IvSession *iv_op_session(SimIntro *in, IvOp *op) {
        return op->si < op->n_sess ? &in->sessions[op->sess[op->si]] : NULL;
}

static void iv_op_fail(IvOp *op, const char *fmt, ...) _printf_(2, 3);
static void iv_op_fail(IvOp *op, const char *fmt, ...) {
        va_list ap;

        op->ok = false;
        if (op->error[0])
                return;
        va_start(ap, fmt);
        vsnprintf(op->error, sizeof op->error, fmt, ap);
        va_end(ap);
}

static struct json_object *iv_item(const IvSession *ss) {
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "target", json_object_new_string(ss->target));
        return o;
}

static void iv_op_item(IvOp *op, struct json_object *item) {
        if (!op->items)
                op->items = json_object_new_array();
        json_object_array_add(op->items, item);
}

/* What the target's kernel says when the VMM completes the mapping. */
static const char *iv_redeem(SimIntro *in, const IvSession *ss, const uint8_t token[KVMI_MAP_TOKEN_SIZE]) {
        SimVm *vm = sim_vm_find(in->sim, ss->target);
        TokenRedeem r;

        if (!vm)
                return "not simulated here";
        if (vm->state != VM_KERNEL) {
                in->redeem_failed++;
                iv_error(in, "redeem on %s: no KVMI channel", ss->target);
                return "no KVMI channel";
        }
        r = kernel_token_redeem(&vm->tokens, token, util_now_ns());
        if (r == TOKEN_OK)
                in->redeemed++;
        else {
                in->redeem_failed++;
                iv_error(in, "the kernel of %s refused a token kvmid allowed: %s", ss->target,
                         kernel_token_redeem_to_string(r));
        }
        return kernel_token_redeem_to_string(r);
}

static void iv_on_token(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        IvOp *op = in->ops;
        IvSession *ss = iv_op_session(in, op);
        const char *hex = r && !r->error ? iv_str(r->parameters, "token") : NULL;
        char why[SIM_ERR_LEN];

        if (!hex || util_unhex(hex, op->token, sizeof op->token) < 0) {
                struct json_object *item = iv_item(ss);
                iv_describe(r, why, sizeof why);
                in->token_errors++;
                if (!r)
                        iv_error(in, "GetMapToken on %s: %s", ss->target, c->why);
                json_object_object_add(item, "decision", json_object_new_string("no-token"));
                json_object_object_add(item, "error", json_object_new_string(why));
                iv_op_item(op, item);
                iv_op_fail(op, "GetMapToken on %s: %s", ss->target, why);
                op->i = UINT32_MAX;     /* no more tokens on this session */
                op->stage = op->spec.kind == INTRO_OP_DENY ? ST_DENY : ST_MINT;
                iv_op_run(in);
                return;
        }
        iv_fmt(op->token_hex, sizeof op->token_hex, "%s", hex);
        iv_fmt(op->token_id, sizeof op->token_id, "%s", iv_str(r->parameters, "token_id") ?: "");
        in->minted++;
        ss->minted++;
        op->stage = ST_MAP;
        iv_op_run(in);
}

static void iv_on_map(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        IvOp *op = in->ops;
        IvSession *ss = iv_op_session(in, op);
        struct json_object *item = iv_item(ss);
        char why[SIM_ERR_LEN];

        (void) util_latvec_add(&in->map_lat, util_now_ns() - op->call_ns);
        json_object_object_add(item, "token_id", json_object_new_string(op->token_id));
        json_object_object_add(item, "target_gpa", util_json_u64(op->tgpa));
        json_object_object_add(item, "local_gpa", util_json_u64(op->lgpa));
        if (r && !r->error) {
                in->allowed++;
                ss->allowed++;
                iv_mapping_add(in, op->sess[op->si], op->lgpa, op->tgpa, op->token_id);
                json_object_object_add(item, "decision", json_object_new_string("allow"));
                json_object_object_add(item, "kernel", json_object_new_string(iv_redeem(in, ss, op->token)));
                ss->has_consumed = true;
                memcpy(ss->consumed, op->token, sizeof ss->consumed);
                iv_fmt(ss->consumed_id, sizeof ss->consumed_id, "%s", op->token_id);
                ss->consumed_tgpa = op->tgpa;
        } else {
                iv_describe(r, why, sizeof why);
                json_object_object_add(item, "decision", json_object_new_string(r ? "deny" : "error"));
                json_object_object_add(item, "reason",
                                       json_object_new_string(r ? iv_str(r->parameters, "reason") ?: why : c->why));
                if (r && streq(r->error, IV_E_MAP_DENIED)) {
                        in->denied++;
                        ss->denied++;
                } else
                        iv_error(in, "MemMap on %s: %s", ss->target, why);
                iv_op_fail(op, "MemMap of token %s on %s: %s", op->token_id, ss->target, why);
        }
        iv_op_item(op, item);
        op->i++;
        op->stage = op->spec.kind == INTRO_OP_DENY ? ST_DENY : ST_MINT;
        iv_op_run(in);
}

static void iv_on_deny(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        IvOp *op = in->ops;
        IvSession *ss = iv_op_session(in, op);
        struct json_object *item = iv_item(ss);
        char why[SIM_ERR_LEN];

        iv_describe(r, why, sizeof why);
        json_object_object_add(item, "token_id", json_object_new_string(ss->consumed_id));
        json_object_object_add(item, "target_gpa", util_json_u64(op->tgpa));
        json_object_object_add(item, "local_gpa", util_json_u64(op->lgpa));
        if (r && r->error && streq(r->error, IV_E_MAP_DENIED)) {
                in->denied++;
                in->denied_expected++;
                ss->denied++;
                json_object_object_add(item, "decision", json_object_new_string("deny"));
                json_object_object_add(item, "reason", json_object_new_string(iv_str(r->parameters, "reason") ?: ""));
        } else if (r && !r->error) {
                in->allowed++;
                ss->allowed++;
                iv_mapping_add(in, op->sess[op->si], op->lgpa, op->tgpa, ss->consumed_id);
                json_object_object_add(item, "decision", json_object_new_string("allow"));
                iv_error(in, "MemMap of the consumed token %s on %s was allowed", ss->consumed_id, ss->target);
                iv_op_fail(op, "MemMap of the consumed token %s on %s was allowed", ss->consumed_id, ss->target);
        } else {
                json_object_object_add(item, "decision", json_object_new_string("error"));
                json_object_object_add(item, "reason", json_object_new_string(r ? why : c->why));
                iv_error(in, "MemMap on %s: %s", ss->target, r ? why : c->why);
                iv_op_fail(op, "MemMap on %s: %s", ss->target, r ? why : c->why);
        }
        iv_op_item(op, item);
        op->si++;
        op->stage = ST_SESSION;
        iv_op_run(in);
}

static void iv_on_unmap(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        IvOp *op = in->ops;
        struct json_object *item = json_object_new_object();
        uint64_t lgpa = op->lgpas[op->i];
        IvMapping *m = iv_mapping_find(in, lgpa);
        char why[SIM_ERR_LEN];

        json_object_object_add(item, "local_gpa", util_json_u64(lgpa));
        if (r && !r->error) {
                int64_t tgpa = 0;
                in->unmaps++;
                json_object_object_add(item, "decision", json_object_new_string("allow"));
                json_object_object_add(item, "target", json_object_new_string(iv_str(r->parameters, "target") ?: ""));
                if (iv_int(r->parameters, "target_gpa", &tgpa))
                        json_object_object_add(item, "target_gpa", json_object_new_int64(tgpa));
                if (m) {
                        in->sessions[m->session].unmapped++;
                        iv_mapping_drop(in, m);
                }
        } else {
                iv_describe(r, why, sizeof why);
                json_object_object_add(item, "decision", json_object_new_string(r ? "deny" : "error"));
                json_object_object_add(item, "reason",
                                       json_object_new_string(r ? iv_str(r->parameters, "reason") ?: why : c->why));
                if (r && streq(r->error, IV_E_UNMAP_DENIED))
                        in->unmaps_denied++;
                else
                        iv_error(in, "MemUnmap 0x%" PRIx64 ": %s", lgpa, r ? why : c->why);
                iv_op_fail(op, "MemUnmap 0x%" PRIx64 ": %s", lgpa, r ? why : c->why);
        }
        iv_op_item(op, item);
        op->i++;
        op->stage = ST_UNMAP;
        iv_op_run(in);
}

static void iv_on_close(IvConn *c, const VarlinkReply *r, void *userdata) {
        SimIntro *in = userdata;
        IvOp *op = in->ops;
        IvSession *ss = iv_op_session(in, op);
        struct json_object *item = iv_item(ss);
        char why[SIM_ERR_LEN];

        if (r && !r->error) {
                ss->state = SESS_CLOSED;
                iv_fmt(ss->reason, sizeof ss->reason, "CloseSession");
                json_object_object_add(item, "closed", json_object_new_boolean(true));
        } else {
                iv_describe(r, why, sizeof why);
                json_object_object_add(item, "closed", json_object_new_boolean(false));
                json_object_object_add(item, "error", json_object_new_string(why));
                if (!r)
                        iv_error(in, "CloseSession(%s): %s", ss->target, c->why);
                iv_op_fail(op, "CloseSession(%s): %s", ss->target, why);
        }
        iv_op_item(op, item);
        op->si++;
        op->stage = ST_CLOSE;
        iv_op_run(in);
}

/* The subscriber i: delivered + missed over its streams. */
static uint64_t iv_subscriber_seen(const SimIntro *in, unsigned index) {
        uint64_t n = 0;

        for (size_t i = 0; i < in->n_subs; i++)
                if (in->subs[i].index == index)
                        n += in->subs[i].delivered + in->subs[i].missed;
        return n;
}

static bool iv_sub_drained(SimIntro *in, const IvSub *sub) {
        bool found;
        uint64_t acked;

        if (sub->state != SUB_LIVE || !sub->have_base)
                return true;
        acked = iv_target_acked(in, &in->sessions[sub->session], &found);
        return !found || sub->delivered + sub->missed >= acked - sub->base_acked;
}

static bool iv_wait_satisfied(SimIntro *in, const IvOp *op) {
        if (in->revocations < op->spec.revocations)
                return false;
        if (op->spec.has_events)
                for (unsigned i = 0; i < in->o->subscribers; i++)
                        if (iv_subscriber_seen(in, i) < op->spec.events)
                                return false;
        if (op->spec.drain)
                for (size_t i = 0; i < in->n_subs; i++)
                        if (!iv_sub_drained(in, &in->subs[i]))
                                return false;
        return true;
}

static void iv_op_finish(SimIntro *in);

static void iv_wait_check(SimIntro *in) {
        IvOp *op = in->ops;

        if (!op || !op->started || op->spec.kind != INTRO_OP_WAIT || op->stage != ST_WAITING)
                return;
        if (iv_wait_satisfied(in, op)) {
                event_del(op->ev_timeout);
                iv_op_finish(in);
        }
}

static void iv_on_wait_timeout(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        SimIntro *in = userdata;
        IvOp *op = in->ops;

        if (!op || op->spec.kind != INTRO_OP_WAIT)
                return;
        iv_op_fail(op, "not there after %u ms (revocations %" PRIu64 "/%" PRIu64 "%s)", op->spec.timeout_ms,
                   in->revocations, op->spec.revocations, op->spec.drain || op->spec.has_events ? ", events missing" : "");
        iv_op_finish(in);
}

static void iv_op_begin(SimIntro *in, IvOp *op) {
        op->started = true;
        op->ok = true;
        op->start_ns = util_now_ns();
        op->stage = ST_SESSION;
        op->counts_at_start[0] = in->minted;
        op->counts_at_start[1] = in->allowed;
        op->counts_at_start[2] = in->denied;
        op->counts_at_start[3] = in->unmaps;
        if (op->spec.kind == INTRO_OP_WAIT) {
                struct timeval tv = { .tv_sec = op->spec.timeout_ms / 1000, .tv_usec = (op->spec.timeout_ms % 1000) * 1000 };
                op->stage = ST_WAITING;
                op->ev_timeout = evtimer_new(in->sim->base, iv_on_wait_timeout, in);
                if (op->ev_timeout)
                        evtimer_add(op->ev_timeout, &tv);
                return;
        }
        /* The sessions it is about: the named one, or every open one. */
        op->sess = calloc(MAX(in->n_sessions, (size_t) 1), sizeof *op->sess);
        if (!op->sess) {
                iv_op_fail(op, "out of memory");
                return;
        }
        for (size_t i = 0; i < in->n_sessions; i++) {
                const IvSession *ss = &in->sessions[i];
                if (op->target ? (streq(ss->want, op->target) || streq(ss->target, op->target) || streq(ss->uuid, op->target))
                               : ss->state == SESS_OPEN)
                        op->sess[op->n_sess++] = (unsigned) i;
        }
        if (op->target && op->n_sess == 0)
                iv_op_fail(op, "no session on \"%s\" (--attach it)", op->target);
        else if (op->n_sess == 0 && op->spec.kind != INTRO_OP_UNMAP)
                iv_op_fail(op, "no open session");
        if (op->spec.kind == INTRO_OP_UNMAP) {
                op->stage = ST_UNMAP;
                op->lgpas = calloc(in->n_maps + 1, sizeof *op->lgpas);
                if (!op->lgpas) {
                        iv_op_fail(op, "out of memory");
                        return;
                }
                if (op->spec.has_local_gpa)
                        op->lgpas[op->n_lgpas++] = op->spec.local_gpa;
                else
                        for (size_t i = 0; i < in->n_maps; i++)
                                for (size_t j = 0; j < op->n_sess; j++)
                                        if (in->maps[i].session == op->sess[j])
                                                op->lgpas[op->n_lgpas++] = in->maps[i].local_gpa;
                op->i = 0;
        }
}

/* Issue the next call of the running op; false once it has nothing left. */
static bool iv_op_step(SimIntro *in, IvOp *op) {
        for (;;) {
                IvSession *ss = iv_op_session(in, op);
                struct json_object *p;
                uint64_t size;

                switch (op->stage) {
                case ST_SESSION:
                        if (!ss)
                                return false;
                        op->i = 0;
                        op->stage = op->spec.kind == INTRO_OP_CLOSE ? ST_CLOSE
                                    : op->spec.kind == INTRO_OP_DENY ? ST_DENY
                                                                      : ST_MINT;
                        if (ss->state != SESS_OPEN && op->spec.kind != INTRO_OP_CLOSE) {
                                iv_op_fail(op, "the session on %s is %s%s%s", ss->target[0] ? ss->target : ss->want,
                                           iv_sess_state(ss->state), ss->reason[0] ? ": " : "", ss->reason);
                                op->si++;
                                op->stage = ST_SESSION;
                        }
                        continue;

                case ST_MINT:
                        if (op->i >= (op->spec.kind == INTRO_OP_DENY ? 1 : op->spec.count)) {
                                op->si++;
                                op->stage = ST_SESSION;
                                continue;
                        }
                        size = op->spec.size ? op->spec.size : in->o->gpa_size;
                        p = iv_params();
                        json_object_object_add(p, "session", json_object_new_string(ss->id));
                        json_object_object_add(p, "gpa", util_json_u64(op->spec.size ? op->spec.gpa : in->o->gpa));
                        json_object_object_add(p, "size", util_json_u64(size));
                        op->stage = ST_WAITING;
                        iv_call(in->main, "io.kvmid.Introspector.GetMapToken", p, false, iv_on_token, in);
                        return true;

                case ST_MAP:
                        size = op->spec.size ? op->spec.size : in->o->gpa_size;
                        op->tgpa = (op->spec.size ? op->spec.gpa : in->o->gpa) +
                                   (size >= IV_PAGE ? ((uint64_t) op->i * IV_PAGE) % (size / IV_PAGE * IV_PAGE) : 0);
                        op->lgpa = in->next_local;
                        in->next_local += IV_PAGE;
                        p = iv_params();
                        json_object_object_add(p, "introspector", json_object_new_string(in->o->vm));
                        json_object_object_add(p, "token", json_object_new_string(op->token_hex));
                        json_object_object_add(p, "target_gpa", util_json_u64(op->tgpa));
                        json_object_object_add(p, "local_gpa", util_json_u64(op->lgpa));
                        op->stage = ST_WAITING;
                        op->call_ns = util_now_ns();
                        iv_call(in->hyp, "io.kvmid.Hypervisor.MemMap", p, false, iv_on_map, in);
                        return true;

                case ST_DENY: {
                        char hex[2 * KVMI_MAP_TOKEN_SIZE + 1];
                        if (!ss->has_consumed) {
                                if (op->i == 0) {
                                        op->stage = ST_MINT;    /* map one first, then replay it */
                                        continue;
                                }
                                iv_op_fail(op, "no consumed token on %s to replay", ss->target);
                                op->si++;
                                op->stage = ST_SESSION;
                                continue;
                        }
                        util_hex(ss->consumed, sizeof ss->consumed, hex);
                        op->tgpa = ss->consumed_tgpa;
                        op->lgpa = in->next_local;
                        in->next_local += IV_PAGE;
                        p = iv_params();
                        json_object_object_add(p, "introspector", json_object_new_string(in->o->vm));
                        json_object_object_add(p, "token", json_object_new_string(hex));
                        json_object_object_add(p, "target_gpa", util_json_u64(op->tgpa));
                        json_object_object_add(p, "local_gpa", util_json_u64(op->lgpa));
                        op->stage = ST_WAITING;
                        iv_call(in->hyp, "io.kvmid.Hypervisor.MemMap", p, false, iv_on_deny, in);
                        return true;
                }

                case ST_UNMAP:
                        if (op->i >= op->n_lgpas)
                                return false;
                        p = iv_params();
                        json_object_object_add(p, "introspector", json_object_new_string(in->o->vm));
                        json_object_object_add(p, "local_gpa", util_json_u64(op->lgpas[op->i]));
                        op->stage = ST_WAITING;
                        iv_call(in->hyp, "io.kvmid.Hypervisor.MemUnmap", p, false, iv_on_unmap, in);
                        return true;

                case ST_CLOSE:
                        if (!ss)
                                return false;
                        if (ss->state != SESS_OPEN) {
                                struct json_object *item = iv_item(ss);
                                json_object_object_add(item, "closed", json_object_new_boolean(false));
                                json_object_object_add(item, "state", json_object_new_string(iv_sess_state(ss->state)));
                                iv_op_item(op, item);
                                op->si++;
                                continue;
                        }
                        p = iv_params();
                        json_object_object_add(p, "session", json_object_new_string(ss->id));
                        op->stage = ST_WAITING;
                        iv_call(in->main, "io.kvmid.Introspector.CloseSession", p, false, iv_on_close, in);
                        return true;

                case ST_WAITING:
                        return true;
                }
        }
}

static void iv_op_free(IvOp *op) {
        if (op->ev_timeout)
                event_free(op->ev_timeout);
        json_object_put(op->result);
        json_object_put(op->items);
        free(op->target);
        free(op->sess);
        free(op->lgpas);
        free(op);
}

static const char *iv_op_name(IntroOpKind k) {
        static const char *const names[] = { "map", "deny", "unmap", "close", "wait" };
        return names[k];
}

static void iv_op_finish(SimIntro *in) {
        IvOp *op = in->ops;
        struct json_object *o = json_object_new_object();
        IntroDone done = op->done;
        void *userdata = op->userdata;

        in->ops = op->next;
        if (!in->ops)
                in->ops_tail = &in->ops;
        json_object_object_add(o, "ok", json_object_new_boolean(op->ok));
        json_object_object_add(o, "op", json_object_new_string(iv_op_name(op->spec.kind)));
        if (!op->ok)
                json_object_object_add(o, "error", json_object_new_string(op->error[0] ? op->error : "failed"));
        switch (op->spec.kind) {
        case INTRO_OP_MAP:
        case INTRO_OP_DENY:
                json_object_object_add(o, "minted", util_json_u64(in->minted - op->counts_at_start[0]));
                json_object_object_add(o, "allowed", util_json_u64(in->allowed - op->counts_at_start[1]));
                json_object_object_add(o, "denied", util_json_u64(in->denied - op->counts_at_start[2]));
                json_object_object_add(o, "maps", op->items ? json_object_get(op->items) : json_object_new_array());
                break;
        case INTRO_OP_UNMAP:
                json_object_object_add(o, "unmapped", util_json_u64(in->unmaps - op->counts_at_start[3]));
                json_object_object_add(o, "unmaps", op->items ? json_object_get(op->items) : json_object_new_array());
                break;
        case INTRO_OP_CLOSE:
                json_object_object_add(o, "sessions", op->items ? json_object_get(op->items) : json_object_new_array());
                break;
        case INTRO_OP_WAIT: {
                struct json_object *subs = json_object_new_array();
                for (unsigned i = 0; i < in->o->subscribers; i++)
                        json_object_array_add(subs, util_json_u64(iv_subscriber_seen(in, i)));
                json_object_object_add(o, "seen", subs);
                json_object_object_add(o, "revocations", util_json_u64(in->revocations));
                break;
        }
        }
        json_object_object_add(o, "elapsed_ms",
                               json_object_new_double((double) ((util_now_ns() - op->start_ns) / 1000) / 1e3));
        util_log(in->sim, "introspector: op %s done: %s", iv_op_name(op->spec.kind), op->ok ? "ok" : op->error);
        iv_op_free(op);
        if (done)
                done(in->sim, userdata, o);
        else
                json_object_put(o);
        if (in->ops)
                event_active(in->ev_kick, 0, 0);      /* the next one from the loop */
}

/* Start or continue the op at the head of the queue, once setup is through. */
static void iv_op_run(SimIntro *in) {
        IvOp *op = in->ops;

        if (!op || in->state == IV_IDLE || in->state == IV_SETUP)
                return;
        if (!op->started) {
                iv_op_begin(in, op);
                if (op->spec.kind == INTRO_OP_WAIT) {
                        iv_wait_check(in);
                        return;
                }
        }
        if (op->stage == ST_WAITING)
                return;
        if (!iv_op_step(in, op))
                iv_op_finish(in);
}

static void iv_on_kick(_unused_ evutil_socket_t fd, _unused_ short what, void *userdata) {
        iv_op_run(userdata);
}

int intro_op(Sim *s, const IntroOpSpec *spec, IntroDone done, void *userdata, char *why, size_t whylen) {
        SimIntro *in = s->intro;
        IvOp *op;

        if (!in) {
                iv_fmt(why, whylen, "no introspector VM (--introspector)");
                return -ENOENT;
        }
        if ((spec->kind == INTRO_OP_MAP || spec->kind == INTRO_OP_DENY || spec->kind == INTRO_OP_UNMAP) &&
            !in->o->hypervisor_socket) {
                iv_fmt(why, whylen, "no --hypervisor-socket");
                return -EINVAL;
        }
        op = calloc(1, sizeof *op);
        if (!op || (spec->target && !(op->target = strdup(spec->target)))) {
                free(op);
                iv_fmt(why, whylen, "out of memory");
                return -ENOMEM;
        }
        op->spec = *spec;
        op->spec.target = op->target;
        op->done = done;
        op->userdata = userdata;
        *in->ops_tail = op;
        in->ops_tail = &op->next;
        if (in->ops == op)
                event_active(in->ev_kick, 0, 0);
        return 0;
}

void intro_forget_userdata(Sim *s, void *userdata) {
        if (!s->intro)
                return;
        for (IvOp *op = s->intro->ops; op; op = op->next)
                if (op->userdata == userdata) {
                        op->userdata = NULL;
                        op->done = NULL;
                }
}

/* ---- one-shot ------------------------------------------------------------------------------ */

static void iv_oneshot_step(Sim *s, void *userdata, struct json_object *result) {
        SimIntro *in = s->intro;
        bool last = userdata != NULL;

        if (!json_object_get_boolean(json_object_object_get(result, "ok")))
                sim_fail(s, "introspector: %s: %s", iv_str(result, "op") ?: "op", iv_str(result, "error") ?: "failed");
        if (s->o.verbose)
                util_log(s, "introspector: %s", json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
        json_object_put(result);
        if (last && in->oneshot_done) {
                void (*done)(Sim *) = in->oneshot_done;
                in->oneshot_done = NULL;
                done(s);
        }
}

void intro_oneshot(Sim *s, void (*done)(Sim *s)) {
        SimIntro *in = s->intro;
        unsigned timeout_ms = s->o.timeout_sec * 1000U, open = 0;
        char why[SIM_ERR_LEN];
        int r = 0;

        in->oneshot_done = done;
        for (size_t i = 0; i < in->n_sessions; i++)
                open += in->sessions[i].state == SESS_OPEN;
        /* Everything the targets' kernels got acked reached every subscriber. */
        r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_WAIT, .drain = true, .timeout_ms = timeout_ms },
                     iv_oneshot_step, NULL, why, sizeof why);
        if (r >= 0 && in->o->map_count > 0 && open > 0) {
                r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_MAP, .count = in->o->map_count }, iv_oneshot_step,
                             NULL, why, sizeof why);
                if (r >= 0)
                        r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_DENY }, iv_oneshot_step, NULL, why, sizeof why);
                if (r >= 0)
                        r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_UNMAP }, iv_oneshot_step, NULL, why, sizeof why);
                if (r >= 0 && in->o->watch_revocations) {
                        /* One mapping held per session, then the session closed:
                         * kvmid tells the VMM to tear it down. */
                        r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_MAP, .count = 1 }, iv_oneshot_step, NULL,
                                     why, sizeof why);
                        if (r >= 0)
                                r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_CLOSE }, iv_oneshot_step, NULL, why,
                                             sizeof why);
                        if (r >= 0)
                                r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_WAIT,
                                                                 .revocations = in->revocations + open,
                                                                 .timeout_ms = timeout_ms },
                                             iv_oneshot_step, NULL, why, sizeof why);
                }
        }
        /* The last one says "done" (userdata non-NULL). */
        if (r >= 0)
                r = intro_op(s, &(IntroOpSpec) { .kind = INTRO_OP_WAIT, .timeout_ms = 1 }, iv_oneshot_step, in, why,
                             sizeof why);
        if (r < 0) {
                sim_fail(s, "introspector: %s", why);
                in->oneshot_done = NULL;
                done(s);
        }
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static int iv_read_key(SimIntro *in, const char *path, char *why, size_t whylen) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t n;

        if (fd < 0) {
                iv_fmt(why, whylen, "--introspector: cannot open the key file %s: %m", path);
                return -errno;
        }
        n = read(fd, in->key, sizeof in->key);
        if (n < 0) {
                iv_fmt(why, whylen, "--introspector: cannot read %s: %m", path);
                return -errno;
        }
        if (n < IV_KEY_MIN) {
                iv_fmt(why, whylen, "--introspector: %s has %zd bytes, a key has at least %d", path, n, IV_KEY_MIN);
                return -EINVAL;
        }
        in->key_len = (size_t) n;
        return 0;
}

static char *iv_sibling(const char *socket_path, const char *name) {
        const char *slash = socket_path ? strrchr(socket_path, '/') : NULL;
        char *p;

        if (!socket_path)
                return NULL;
        if (!slash)
                return strdup(name);
        if (asprintf(&p, "%.*s/%s", (int) (slash - socket_path), socket_path, name) < 0)
                return NULL;
        return p;
}

int intro_new(Sim *s, char *why, size_t whylen) {
        SimIntroOpts *o = &s->o.intro;
        SimIntro *in;
        int r;

        if (!o->enabled)
                return 0;
        in = calloc(1, sizeof *in);
        if (!in)
                return -ENOMEM;
        s->intro = in;
        in->sim = s;
        in->o = o;
        in->ops_tail = &in->ops;
        in->next_local = o->local_gpa ? o->local_gpa : IV_DEFAULT_LOCAL_GPA;
        in->watch_state = "off";
        iv_fmt(in->binding, sizeof in->binding, "unix:%u", (unsigned) geteuid());
        r = iv_read_key(in, o->key_file, why, whylen);
        if (r < 0)
                return r;
        if (!o->introspector_socket && !(o->introspector_socket = iv_sibling(s->o.socket_path, "io.kvmid.Introspector"))) {
                iv_fmt(why, whylen, "--introspector needs --introspector-socket PATH");
                return -EINVAL;
        }
        if (!o->hypervisor_socket)
                o->hypervisor_socket = iv_sibling(s->o.socket_path, "io.kvmid.Hypervisor");
        if ((o->map_count || o->watch_revocations) && !o->hypervisor_socket) {
                iv_fmt(why, whylen, "--map and --watch-revocations need --hypervisor-socket PATH");
                return -EINVAL;
        }
        if (o->n_attach == 0)
                for (size_t i = 0; i < s->o.n_vms; i++) {
                        char **a = realloc(o->attach, (o->n_attach + 1) * sizeof *a);
                        if (!a)
                                return -ENOMEM;
                        o->attach = a;
                        if (!(o->attach[o->n_attach] = strdup(s->o.vms[i].name)))
                                return -ENOMEM;
                        o->n_attach++;
                }
        in->sessions = calloc(MAX(o->n_attach, (size_t) 1), sizeof *in->sessions);
        in->ev_retry = evtimer_new(s->base, iv_on_retry, in);
        in->ev_setup_timeout = evtimer_new(s->base, iv_on_setup_timeout, in);
        in->ev_kick = event_new(s->base, -1, 0, iv_on_kick, in);
        if (!in->sessions || !in->ev_retry || !in->ev_setup_timeout || !in->ev_kick)
                return -ENOMEM;
        in->n_sessions = o->n_attach;
        for (size_t i = 0; i < o->n_attach; i++) {
                iv_fmt(in->sessions[i].want, sizeof in->sessions[i].want, "%s", o->attach[i]);
                iv_fmt(in->sessions[i].target, sizeof in->sessions[i].target, "%s", o->attach[i]);
        }
        return 0;
}

void intro_start(Sim *s) {
        SimIntro *in = s->intro;
        struct timeval tv = { .tv_sec = s->o.timeout_sec };

        if (!in || in->state != IV_IDLE)
                return;
        in->state = IV_SETUP;
        in->start_ns = util_now_ns();
        evtimer_add(in->ev_setup_timeout, &tv);
        util_log(s, "introspector: \"%s\" (VM %s) on %s, %zu target(s), %u subscriber(s)", in->o->name, in->o->vm,
                 in->o->introspector_socket, in->n_sessions, in->o->subscribers);
        if (in->o->hypervisor_socket)
                in->hyp = iv_conn_new(in, in->o->hypervisor_socket, "hypervisor");
        if (in->o->watch_revocations && in->o->hypervisor_socket) {
                struct json_object *p = iv_params();
                in->watch_state = "pending";
                in->watch = iv_conn_new(in, in->o->hypervisor_socket, "revocation watch");
                json_object_object_add(p, "introspector", json_object_new_string(in->o->vm));
                if (in->watch)
                        iv_call(in->watch, "io.kvmid.Hypervisor.WatchRevocations", p, true, iv_on_revocation, in);
                else {
                        json_object_put(p);
                        in->watch_state = "failed";
                }
        }
        in->main = iv_conn_new(in, in->o->introspector_socket, "agent");
        if (!in->main || (in->o->hypervisor_socket && !in->hyp)) {
                iv_settle(in, "out of memory");
                return;
        }
        iv_authenticate(in->main, iv_main_authenticated, in);
}

bool intro_started(const Sim *s) {
        return s->intro && s->intro->state != IV_IDLE;
}

bool intro_settled(const Sim *s) {
        return s->intro && (s->intro->state == IV_READY || s->intro->state == IV_FAILED);
}

void intro_free(Sim *s) {
        SimIntro *in = s->intro;

        if (!in)
                return;
        while (in->ops) {
                IvOp *op = in->ops;
                in->ops = op->next;
                iv_op_free(op);
        }
        while (in->conns) {
                IvConn *c = in->conns;
                in->conns = c->next;
                while (c->calls) {
                        IvCall *call = c->calls;
                        c->calls = call->next;
                        free(call);
                }
                if (c->bev)
                        bufferevent_free(c->bev);
                varlink_reader_free(c->reader);
                free(c);
        }
        if (in->ev_retry)
                event_free(in->ev_retry);
        if (in->ev_setup_timeout)
                event_free(in->ev_setup_timeout);
        if (in->ev_kick)
                event_free(in->ev_kick);
        util_latvec_free(&in->map_lat);
        explicit_bzero(in->key, sizeof in->key);
        free(in->sessions);
        free(in->subs);
        free(in->maps);
        free(in);
        s->intro = NULL;
}

/* ---- report ---------------------------------------------------------------------------------- */

static const char *iv_state(IvState st) {
        static const char *const names[] = { "idle", "setup", "ready", "failed" };
        return names[st];
}

struct json_object *intro_json(const Sim *s) {
        SimIntro *in = s->intro;
        struct json_object *o = json_object_new_object(), *sess = json_object_new_array(),
                           *subs = json_object_new_array(), *maps = json_object_new_array();
        LatSummary lat = util_latvec_summary(&in->map_lat);

        json_object_object_add(o, "name", json_object_new_string(in->o->name));
        json_object_object_add(o, "vm", json_object_new_string(in->o->vm));
        json_object_object_add(o, "state", json_object_new_string(iv_state(in->state)));
        if (in->fail[0])
                json_object_object_add(o, "fail", json_object_new_string(in->fail));
        json_object_object_add(o, "authenticated", json_object_new_boolean(in->authenticated));
        if (in->ready_ns)
                json_object_object_add(o, "setup_ms", json_object_new_double(
                                                              (double) ((in->ready_ns - in->start_ns) / 1000) / 1e3));
        for (size_t i = 0; i < in->n_sessions; i++) {
                const IvSession *ss = &in->sessions[i];
                struct json_object *x = json_object_new_object();
                json_object_object_add(x, "target", json_object_new_string(ss->target));
                json_object_object_add(x, "uuid", ss->uuid[0] ? json_object_new_string(ss->uuid) : NULL);
                json_object_object_add(x, "session", ss->id[0] ? json_object_new_string(ss->id) : NULL);
                json_object_object_add(x, "state", json_object_new_string(iv_sess_state(ss->state)));
                if (ss->reason[0])
                        json_object_object_add(x, "reason", json_object_new_string(ss->reason));
                json_object_object_add(x, "tokens_minted", util_json_u64(ss->minted));
                json_object_object_add(x, "maps_allowed", util_json_u64(ss->allowed));
                json_object_object_add(x, "maps_denied", util_json_u64(ss->denied));
                json_object_object_add(x, "unmaps", util_json_u64(ss->unmapped));
                json_object_object_add(x, "revoked", util_json_u64(ss->revoked));
                json_object_array_add(sess, x);
        }
        json_object_object_add(o, "sessions", sess);
        for (unsigned i = 0; i < in->o->subscribers; i++) {
                struct json_object *x = json_object_new_object(), *targets = json_object_new_array();
                uint64_t delivered = 0, missed = 0, order = 0, gaps = 0, foreign = 0;
                for (size_t j = 0; j < in->n_subs; j++) {
                        const IvSub *sub = &in->subs[j];
                        struct json_object *t;
                        if (sub->index != i)
                                continue;
                        delivered += sub->delivered;
                        missed += sub->missed;
                        order += sub->order_errors;
                        gaps += sub->gaps;
                        foreign += sub->foreign;
                        t = json_object_new_object();
                        json_object_object_add(t, "target", json_object_new_string(in->sessions[sub->session].target));
                        json_object_object_add(t, "state", json_object_new_string(iv_sub_state(sub->state)));
                        if (sub->reason[0])
                                json_object_object_add(t, "reason", json_object_new_string(sub->reason));
                        json_object_object_add(t, "delivered", util_json_u64(sub->delivered));
                        json_object_object_add(t, "missed", util_json_u64(sub->missed));
                        json_object_object_add(t, "last_seq", util_json_u64(sub->last_seq));
                        json_object_object_add(t, "order_errors", util_json_u64(sub->order_errors));
                        json_object_object_add(t, "gaps", util_json_u64(sub->gaps));
                        json_object_array_add(targets, t);
                }
                json_object_object_add(x, "index", json_object_new_int((int) i));
                json_object_object_add(x, "delivered", util_json_u64(delivered));
                json_object_object_add(x, "missed", util_json_u64(missed));
                json_object_object_add(x, "ordered", json_object_new_boolean(order == 0 && gaps == 0 && foreign == 0));
                json_object_object_add(x, "order_errors", util_json_u64(order));
                json_object_object_add(x, "gaps", util_json_u64(gaps));
                json_object_object_add(x, "foreign", util_json_u64(foreign));
                json_object_object_add(x, "targets", targets);
                json_object_array_add(subs, x);
        }
        json_object_object_add(o, "subscribers", subs);
        json_object_object_add(o, "tokens_minted", util_json_u64(in->minted));
        json_object_object_add(o, "token_errors", util_json_u64(in->token_errors));
        json_object_object_add(o, "maps_allowed", util_json_u64(in->allowed));
        json_object_object_add(o, "maps_denied", util_json_u64(in->denied));
        json_object_object_add(o, "maps_denied_expected", util_json_u64(in->denied_expected));
        json_object_object_add(o, "unmaps", util_json_u64(in->unmaps));
        json_object_object_add(o, "unmaps_denied", util_json_u64(in->unmaps_denied));
        json_object_object_add(o, "kernel_redeemed", util_json_u64(in->redeemed));
        json_object_object_add(o, "kernel_redeem_failed", util_json_u64(in->redeem_failed));
        for (size_t i = 0; i < in->n_maps; i++) {
                struct json_object *x = json_object_new_object();
                json_object_object_add(x, "target", json_object_new_string(in->sessions[in->maps[i].session].target));
                json_object_object_add(x, "local_gpa", util_json_u64(in->maps[i].local_gpa));
                json_object_object_add(x, "target_gpa", util_json_u64(in->maps[i].target_gpa));
                json_object_object_add(x, "token_id", json_object_new_string(in->maps[i].token_id));
                json_object_array_add(maps, x);
        }
        json_object_object_add(o, "mappings", maps);
        json_object_object_add(o, "mem_map_latency_ns", util_latency_json(&lat));
        json_object_object_add(o, "watch", json_object_new_string(in->watch_state));
        json_object_object_add(o, "revocations", util_json_u64(in->revocations));
        if (in->last_revocation[0])
                json_object_object_add(o, "last_revocation", json_object_new_string(in->last_revocation));
        json_object_object_add(o, "errors", util_json_u64(in->errors));
        if (in->first_error[0])
                json_object_object_add(o, "first_error", json_object_new_string(in->first_error));
        json_object_object_add(o, "ops_pending", json_object_new_boolean(in->ops != NULL));
        return o;
}

/* One-shot: the ops already failed the run where they went wrong; here
 * what holds for the whole run. */
bool intro_verdict(Sim *s) {
        SimIntro *in = s->intro;

        if (!in)
                return true;
        if (in->state != IV_READY)
                sim_fail(s, "introspector: %s", in->fail[0] ? in->fail : iv_state(in->state));
        if (in->errors)
                sim_fail(s, "introspector: %" PRIu64 " errors, first: %s", in->errors, in->first_error);
        for (size_t i = 0; i < in->n_subs; i++) {
                const IvSub *sub = &in->subs[i];
                const IvSession *ss = &in->sessions[sub->session];
                bool found;
                uint64_t acked = iv_target_acked(in, ss, &found);
                if (sub->order_errors || sub->gaps || sub->foreign)
                        sim_fail(s, "introspector: subscriber %u on %s: %" PRIu64 " out of order, %" PRIu64
                                    " unexplained gaps, %" PRIu64 " of another target",
                                 sub->index, ss->target, sub->order_errors, sub->gaps, sub->foreign);
                else if (sub->have_base && found && sub->delivered + sub->missed != acked - sub->base_acked)
                        sim_fail(s, "introspector: subscriber %u on %s: %" PRIu64 " delivered + %" PRIu64
                                    " missed, the target's kernel had %" PRIu64 " acked",
                                 sub->index, ss->target, sub->delivered, sub->missed, acked - sub->base_acked);
        }
        return !s->fail[0];
}
