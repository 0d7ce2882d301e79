/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* kvmid's internal header: the types and module entry points the daemon's
 * files share.  One header for the component, like tmux.h. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "audit.h"
#include "kvmi.h"
#include "macro.h"
#include "policy.h"
#include "varlink-idl.h"
#include "varlink-wire.h"

typedef struct Config Config;
typedef struct ListenerConfig ListenerConfig;
typedef struct Server Server;
typedef struct Listener Listener;
typedef struct Conn Conn;
typedef struct Call Call;
typedef struct ListenerStats ListenerStats;
typedef struct Domain Domain;
typedef struct Channel Channel;
typedef struct ChannelServer ChannelServer;
typedef struct IntrospectorState IntrospectorState;
typedef struct Session Session;
typedef struct MapToken MapToken;
typedef struct TokenTable TokenTable;

/* ---- log.c ------------------------------------------------------------ */

/* syslog levels */
enum { LOG_LVL_ERR = 3, LOG_LVL_WARNING = 4, LOG_LVL_NOTICE = 5, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_setup(int max_level);
void log_set_max_level(int level);
/* After detaching from the terminal: log through the journal instead. */
void log_to_journal(void);
int log_get_max_level(void);
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
/* Returns -abs(error) when error != 0, so callers can 'return log_..._errno(r, ...)';
 * "%m" in format expands to strerror(error). */
int log_internal(int level, int error, const char *file, int line, const char *format, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...)   log_full_errno(LOG_LVL_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_LVL_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_LVL_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_LVL_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_LVL_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...)   log_full_errno(LOG_LVL_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_LVL_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LVL_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_LVL_ERR, (e), __VA_ARGS__)

/* ---- config.c --------------------------------------------------------- */

typedef enum Role {
        ROLE_ADMIN        = 1 << 0,
        ROLE_INTROSPECTOR = 1 << 1,
        ROLE_HYPERVISOR   = 1 << 2,
} Role;
#define ROLE_ANY (ROLE_ADMIN | ROLE_INTROSPECTOR | ROLE_HYPERVISOR)
#define N_ROLES 3

struct ListenerConfig {
        Role role;
        const char *name;          /* "admin", section name and fd name */
        char *socket_path;
        mode_t mode;
        char *group;               /* NULL: keep the daemon's gid */
        size_t max_message_size;
        int max_depth;
        size_t max_pending_calls;
        size_t max_output_bytes;
        unsigned vsock_port;       /* introspector only: tools in VMs; 0: none */
};

/* [kvmi]: the listener QEMU connects to. */
typedef struct KvmiConfig {
        char *socket_path;
        mode_t mode;
        char *group;
        unsigned vsock_port;            /* 0: no vsock listener */
        unsigned handshake_timeout_sec; /* QEMU's own default is 10 s */
        unsigned command_timeout_sec;   /* a command the peer leaves unanswered */
        unsigned max_channels;
        unsigned recent_events;         /* guest requests kept per domain */
        const KvmiNumbering *numbering; /* message ids new channels speak */
} KvmiConfig;

typedef enum DomainRole {
        DOMAIN_ROLE_TARGET,
        DOMAIN_ROLE_INTROSPECTOR,
} DomainRole;

/* [domain NAME] */
typedef struct DomainConfig {
        char *name;
        uint8_t uuid[16];
        bool has_uuid;
        DomainRole role;
        char *cookie_file;              /* NULL and !cookie_none: refused at handshake */
        bool cookie_none;               /* explicitly no cookie: any QEMU may claim it */
        uint32_t vsock_cid;             /* 0: none known */
        char **labels;                  /* policy labels (label = ..., repeatable) */
        size_t n_labels;
        struct DomainConfig *next;      /* in file order */
} DomainConfig;

/* [policy] */
typedef struct PolicyConfig {
        char *file;                     /* main rules file */
        char *directory;                /* drop-ins: *.policy in lexical order */
} PolicyConfig;

/* [audit] */
typedef struct AuditFileConfig {
        char *file;
        AuditSyncMode sync;
        unsigned interval_msec;         /* sync = interval */
} AuditFileConfig;

/* [session] */
typedef struct SessionConfig {
        unsigned max_per_connection;
        unsigned queue_events;          /* per subscriber: deliveries queued before it misses */
        size_t queue_bytes;
        unsigned flush_delay_usec;      /* a busy subscriber's deliveries share a write per this */
        unsigned token_timeout_msec;    /* waiting for a free kernel token */
        unsigned token_lifetime_msec;   /* the kernel's expiry */
        unsigned max_tokens;            /* live or requested per session */
} SessionConfig;

/* [introspector NAME]: an identity that may authenticate. */
#define IDENTITY_KEY_MIN 32
#define IDENTITY_KEY_MAX 1024
#define IDENTITY_MAX_UIDS 16
typedef struct IdentityConfig {
        char *name;
        char *key_file;
        uint8_t *key;                   /* read at load; cleansed on free */
        size_t key_len;
        char *domain;                   /* vsock peers must be this domain (its vsock-cid) */
        uid_t uids[IDENTITY_MAX_UIDS];  /* Unix peers must have one of these, if any */
        size_t n_uids;
        struct IdentityConfig *next;
} IdentityConfig;

struct Config {
        char *path;                /* NULL: built-in defaults only */
        char *runtime_dir;
        int log_level;
        unsigned max_connections;
        unsigned max_connections_per_uid;
        unsigned idle_timeout_sec;   /* 0: never */
        unsigned write_timeout_sec;  /* peer not draining its output */
        bool certification;          /* serve org.varlink.certification on admin */
        ListenerConfig listeners[N_ROLES];
        KvmiConfig kvmi;
        PolicyConfig policy;
        AuditFileConfig audit;
        SessionConfig session;
        DomainConfig *domains;
        IdentityConfig *identities;
        char *libvirt_uri;           /* [libvirt] uri =; NULL: no libvirt connection */
};

/* Build the defaults for runtime_dir, then apply the file (if path non-NULL).
 * On error returns -EINVAL and sets *ret_error to "file:line: message". */
int config_load(const char *path, const char *runtime_dir_override, Config **ret, char **ret_error);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);
ListenerConfig *config_listener(Config *c, Role role);
const char *role_to_string(Role role);
const char *domain_role_to_string(DomainRole role);
const DomainConfig *config_find_domain(const Config *c, const char *name);
const IdentityConfig *config_find_identity(const Config *c, const char *name);
/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", any case. 0 or -EINVAL. */
int uuid_from_string(const char *s, uint8_t ret[16]);
/* Lower case, 37 bytes with the NUL. */
void uuid_to_string(const uint8_t uuid[16], char buf[static 37]);

/* ---- dispatch.c: interface tables ------------------------------------- */

typedef enum ConnState {
        CONN_STATE_ANY           = 0,
        CONN_STATE_AUTHENTICATED = 1 << 0,
} ConnState;

typedef int (*MethodHandler)(Call *call, struct json_object *parameters, void *userdata);

typedef struct MethodEntry {
        const char *name;          /* "GetStatus" */
        MethodHandler handler;
        unsigned roles;            /* Role mask allowed to call it */
        unsigned state;            /* ConnState bits required */
        bool needs_more;           /* refuse without "more": ExpectedMore */
} MethodEntry;

typedef struct InterfaceTable {
        const char *name;          /* "io.kvmid.Admin" */
        const MethodEntry *methods;
        size_t n_methods;
        unsigned roles;            /* listeners that serve this interface */
} InterfaceTable;

typedef struct Dispatch Dispatch;

/* Parse the embedded IDL and bind the tables. Every table method must exist
 * in its IDL; every IDL method must have a table entry (else start fails). */
int dispatch_new(Dispatch **ret);
Dispatch *dispatch_free(Dispatch *d);
int dispatch_add(Dispatch *d, const InterfaceTable *table, void *userdata);
const VarlinkInterface *dispatch_find_interface(const Dispatch *d, const char *name);
/* Interfaces served to a role, in registration order. */
size_t dispatch_interfaces(const Dispatch *d, Role role, const char **ret_names, size_t max);
/* Run one call: method lookup, role/state checks, parameter validation,
 * handler.  Always leads to exactly one final reply unless oneway. */
void dispatch_call(Dispatch *d, Call *call, struct json_object *parameters);
/* With reply validation on (tests), abort on a reply that breaks the IDL. */
void dispatch_check_reply(Dispatch *d, const VarlinkMethod *method, const char *error, struct json_object *parameters);
void dispatch_set_validate_replies(Dispatch *d, bool b);

/* ---- conn.c: connections and calls ------------------------------------ */

/* A call in flight.  Handlers reply synchronously or keep a reference and
 * reply later (streams); if the connection goes away first, replies are
 * dropped and call_is_alive() turns false. */
const char *call_method(const Call *call);
bool call_wants_more(const Call *call);
bool call_is_oneway(const Call *call);
bool call_wants_upgrade(const Call *call);
bool call_is_alive(const Call *call);
Conn *call_conn(const Call *call);
Call *call_ref(Call *call);
Call *call_unref(Call *call);
/* Register fn to run if the connection closes before the final reply. */
void call_set_abort_handler(Call *call, void (*fn)(Call *call, void *userdata), void *userdata);

/* Replies take ownership of parameters (may be NULL for {}).  call_reply
 * ends the call; call_reply_more sends continues:true (only valid when the
 * call asked for more). Return 0 or -errno (-ENOBUFS: peer's queue full). */
int call_reply(Call *call, struct json_object *parameters);
int call_reply_more(Call *call, struct json_object *parameters);
int call_reply_error(Call *call, const char *error, struct json_object *parameters);
int call_reply_invalid_parameter(Call *call, const char *parameter);
/* An error whose only parameter is "reason"; nothing if the caller is gone. */
int call_reply_error_reason(Call *call, const char *error, const char *reason);
/* Queue an already-encoded continues:true reply (a blob shared by many calls:
 * fan-out).  If the connection wrote less than delay_usec ago it waits for
 * the next flush tick (at most delay_usec) to share one write; any other
 * reply flushes it at once.  Returns 1 if the write happens in this loop
 * iteration, 0 if it waits, or -errno. */
int call_publish_blob(Call *call, VarlinkBlob *blob, uint64_t delay_usec);
/* A run of this many subscriber writes right after acks yields the CPU
 * first: the acks woke vCPUs that would otherwise wait the run out. */
#define FANOUT_YIELD_WRITES 16

Role conn_role(const Conn *c);
uid_t conn_uid(const Conn *c);
gid_t conn_gid(const Conn *c);
pid_t conn_pid(const Conn *c);
unsigned conn_state(const Conn *c);
void conn_set_state(Conn *c, unsigned state);
uint64_t conn_id(const Conn *c);
Server *conn_server(const Conn *c);
/* The peer's vsock CID, 0 for a Unix peer. */
uint32_t conn_vsock_cid(const Conn *c);
/* An audit record's subject from the peer c (may be NULL: none): its
 * SO_PEERCRED in *cred for a Unix peer, its CID for a vsock one. */
void conn_audit_subject(const Conn *c, struct ucred *cred, AuditEvent *ev);
/* Replies queued and not yet written (a subscriber's backlog). */
size_t conn_queued_bytes(const Conn *c);
size_t conn_queued_messages(const Conn *c);
/* Per-connection data owned by a module (freed via destroy on close). */
void *conn_get_data(const Conn *c, const char *key);
int conn_set_data(Conn *c, const char *key, void *data, void (*destroy)(void *));

/* private to conn.c / server.c */
struct Conn {
        Server *server;
        Listener *listener;
        Conn *prev, *next;           /* server's list */
        Role role;
        uint64_t id;
        int fd;
        struct ucred cred;           /* vsock peers: pid 0, uid/gid -1 */
        uint32_t vsock_cid;          /* 0: a Unix peer */
        ListenerConfig limits;       /* copied at accept: reloads affect new connections */
        ListenerStats *stats;
        VarlinkReader *reader;
        VarlinkOutQueue *outq;
        struct event *ev_read, *ev_write, *ev_timer, *ev_process;
        short read_what;
        bool write_armed;
        bool urgent;                 /* output queued that must not wait for ev_flush */
        uint64_t flush_delay_usec;   /* of the deferrable output queued */
        uint64_t flushed_usec;       /* last write */
        bool deferred;               /* on the server's flush-tick list */
        Conn *deferred_next;
        Call *current;               /* the one call in flight; calls run in order */
        size_t pending_msgs;         /* complete messages waiting behind it */
        unsigned state;
        bool read_eof, closing, dead;
        uint64_t activity_usec, write_since_usec;
        struct ConnData *data;
};
int conn_new(Server *s, Listener *l, int fd, const struct ucred *cred, const ListenerConfig *limits,
             ListenerStats *stats, Conn **ret);
void conn_free(Conn *c);
void conn_close(Conn *c);
void conn_begin_shutdown(Conn *c);
void conn_fail_limit(Conn *c, const char *limit, uint64_t max);
void conn_on_read(evutil_socket_t fd, short what, void *userdata);
void conn_arm_timer(Conn *c, uint64_t deadline_usec);
void call_set_idl(Call *call, const VarlinkMethod *idl);
void server_conn_closed(Server *s, Conn *c);

/* ---- server.c --------------------------------------------------------- */

struct ListenerStats {
        uint64_t accepted, rejected, active;
        uint64_t calls, replies, errors, bytes_in, bytes_out;
};

struct Server {
        struct event_base *base;
        Config *config;
        Dispatch *dispatch;
        uint64_t start_usec;          /* CLOCK_MONOTONIC */
        unsigned n_connections;
        ListenerStats stats[N_ROLES];
        /* private to server.c/conn.c */
        Listener *listeners[N_ROLES];
        Listener *vsock_listener;    /* introspector tools in VMs */
        struct ServerUid *uids;
        Conn *conns;
        Conn *graveyard;             /* closed, freed from the loop */
        struct event *ev_reap;
        Conn *deferred;              /* subscribers waiting for the flush tick */
        struct event *ev_flush_tick;
        uint64_t next_conn_id;
        bool stopping;
        bool start_recorded;         /* daemon-start is in the audit log: daemon-stop will be */
        /* module state */
        struct Certification *certification;
        Domain *domains;             /* domain.c */
        ChannelServer *channels;     /* channel.c */
        Audit *audit;                /* audit.c: the one writer of the audit log */
        Session *sessions;           /* session.c */
        uint64_t sessions_opened;
        TokenTable *tokens;          /* token.c */
        struct Hypervisor *hypervisor; /* hypervisor.c: mappings and revocation watchers */
        Policy *policy;              /* authz.c: the snapshot in force */
        bool policy_builtin;         /* no rules file: the built-in "default deny" */
        uint64_t policy_loaded_usec; /* CLOCK_REALTIME */
        IntrospectorState *introspectors; /* introspector.c */
        int kvmi_fd_passed;          /* socket-activation fd named "kvmi", or -EBADF */
        struct Libvirt *libvirt;     /* libvirt.c: kvmid's own libvirt connection */
};

int server_new(struct event_base *base, Config *config, Server **ret);
Server *server_free(Server *s);
int server_start(Server *s);     /* bind or adopt listeners */
/* Apply a reloaded config (limits, log level); listener paths need a restart. */
void server_apply_config(Server *s, Config *c);
/* Stop accepting, flush replies (bounded), close everything. */
void server_stop(Server *s);
const char *server_listener_path(const Server *s, Role role);
/* Bind a Unix stream socket at path (stale file replaced, parents created)
 * with the mode and group that are its access control; logs its errors. */
int server_bind_unix(const char *name, const char *path, mode_t mode, const char *group, int *ret_fd);
uint64_t now_usec(clockid_t clock);
/* An audit record that needs no durability callback (lifecycle events).
 * Failures show as the audit log's degraded state. */
void server_audit(Server *s, const AuditEvent *ev);

/* ---- interface modules: each exports its table --------------------------- */

extern const InterfaceTable service_interface;        /* org.varlink.service */
extern const InterfaceTable kvmid_errors_interface;   /* io.kvmid: shared errors */
extern const InterfaceTable admin_interface;          /* io.kvmid.Admin */
extern const InterfaceTable introspector_interface;   /* io.kvmid.Introspector */
extern const InterfaceTable certification_interface;  /* org.varlink.certification */

/* certification.c: per-client test progress, userdata of its table. */
typedef struct Certification Certification;
int certification_new(Certification **ret);
Certification *certification_free(Certification *c);

/* ---- latency.c: log-linear histograms for p50/p99 ------------------------ */

#define LATENCY_BUCKETS 1024
typedef struct Latency {
        uint64_t count, max_ns, sum_ns;
        uint64_t bucket[LATENCY_BUCKETS];
} Latency;

void latency_add(Latency *l, uint64_t ns);
/* Upper bound of the bucket holding quantile q (0..1); 0 when empty.
 * Buckets are 1/16 of a power of two wide: at most 6.25% over. */
uint64_t latency_quantile(const Latency *l, double q);

/* ---- domain.c: the domain registry --------------------------------------- */

typedef enum DomainKvmiState {
        DOMAIN_KVMI_DISCONNECTED,
        DOMAIN_KVMI_PROBING,        /* handshake done, capabilities being read */
        DOMAIN_KVMI_READY,
} DomainKvmiState;

/* One guest-request hypercall as the vCPU issued it. */
typedef struct GuestRequest {
        uint64_t seq;               /* per target, from 1, across reconnects */
        uint64_t time_usec;         /* CLOCK_REALTIME when kvmid read it */
        uint16_t vcpu;
        uint8_t mode;               /* 2, 4 or 8 bytes */
        KvmRegs regs;
} GuestRequest;

/* virDomainState, plus UNKNOWN for a domain libvirt doesn't know. */
typedef enum DomainRunState {
        DOMAIN_STATE_UNKNOWN,
        DOMAIN_STATE_NOSTATE,
        DOMAIN_STATE_RUNNING,
        DOMAIN_STATE_BLOCKED,
        DOMAIN_STATE_PAUSED,
        DOMAIN_STATE_SHUTDOWN,
        DOMAIN_STATE_SHUTOFF,
        DOMAIN_STATE_CRASHED,
        DOMAIN_STATE_PMSUSPENDED,
        _DOMAIN_STATE_MAX,
} DomainRunState;

struct Domain {
        Server *server;
        char *name;
        uint8_t uuid[16];
        char uuid_str[37];
        DomainRole role;
        char **labels;              /* for policy label: objects */
        size_t n_labels;
        char *cookie_file;          /* NULL: see cookie_none */
        bool cookie_none;
        bool configured;            /* has a [domain] entry in the configuration in force */
        /* libvirt.c: what kvmid's libvirt connection says (config wins for
         * role, cookie and labels; libvirt supplies id, state and CID). */
        bool from_libvirt;          /* defined in libvirt (as last seen) */
        bool down_recorded;         /* domain-down audited since it was last up: the hook's
                                     * stopped/release and libvirt's event make one record */
        bool libvirt_seen;          /* resync mark */
        int libvirt_id;             /* -1: not running */
        DomainRunState state;
        uint32_t config_cid, libvirt_cid;

        Channel *channel;           /* the one KVMI channel, when connected */
        DomainKvmiState kvmi_state;
        /* What the current or last channel said. */
        char *qemu_name;            /* name in QEMU's handshake */
        uint8_t qemu_cpu_type;      /* its cpu_type byte (KVMI_QEMU_CPU_TYPE_*); with qemu_name */
        int64_t qemu_start_time;
        uint32_t kvmi_version, max_msg_size, vcpus;
        uint32_t commands, events_supported; /* bit (1 << KvmiCmd / KvmiEv) */
        uint32_t events_enabled;    /* VM-wide or on every vCPU */
        uint64_t connected_usec;    /* CLOCK_REALTIME of the handshake */

        /* Counters since kvmid started. */
        uint64_t connects, refused;
        uint64_t events, acks, guest_requests, other_hypercalls, other_events;
        Latency ack_latency;        /* event read → reply written, in kvmid */
        char *last_error;

        struct Subscription *subscribers; /* session.c: the fan-out list */
        GuestRequest *recent;       /* ring of the last config->kvmi.recent_events */
        size_t recent_size, recent_count, recent_next;
        uint64_t next_request_seq;

        Domain *next;
};

/* Build the registry from the configuration's [domain] entries. */
int domain_registry_load(Server *s, const Config *c);
/* After a reload: add, update, and drop what is gone (connected domains
 * stay until their channel closes). */
int domain_registry_apply(Server *s, const Config *c);
/* Before domain_registry_apply(c): each domain c no longer configures (and
 * libvirt does not define) goes through domain_gone(), its channel too. */
void domain_registry_retire(Server *s, const Config *c);
void domain_registry_free(Server *s);
Domain *domain_find_uuid(Server *s, const uint8_t uuid[16]);
/* By name or by UUID string. */
Domain *domain_find(Server *s, const char *name_or_uuid);
size_t domain_count(const Server *s);
/* Remember why the channel failed (formatted, for GetDomain). */
void domain_set_error(Domain *d, const char *fmt, ...) _printf_(2, 3);
/* The channel of d went away: d forgets it, and is dropped if no longer
 * configured. */
void domain_channel_closed(Domain *d);
/* What libvirt says about one domain (libvirt.c fills it in). */
typedef struct DomainLibvirtInfo {
        const char *name;
        uint8_t uuid[16];
        int id;                         /* -1: inactive */
        DomainRunState state;
        uint32_t vsock_cid;             /* 0: none */
        bool has_metadata;              /* a kvmid:introspection element */
        DomainRole role;
        const char *cookie_file;
        bool cookie_none;
        char **labels;
        size_t n_labels;
} DomainLibvirtInfo;
/* Add or update a libvirt-sourced domain (matched by UUID, then name). */
int domain_upsert_libvirt(Server *s, const DomainLibvirtInfo *info, Domain **ret);
/* d stopped, crashed or was undefined: every session, token and mapping
 * of it (as target and as introspector) ends at once, its channel closes,
 * audited as domain-down with reason.  d stays valid unless it is neither
 * configured nor from libvirt (then it is freed). */
void domain_gone(Domain *d, const char *reason);
/* d went from not running to running: audited as domain-up. */
void domain_up(Domain *d);
/* libvirt no longer defines d: dropped unless configured or connected. */
void domain_libvirt_undefined(Domain *d);
const char *domain_state_to_string(DomainRunState st);
const char *domain_source_to_string(const Domain *d);
uint32_t domain_vsock_cid(const Domain *d);
/* Hook of the fan-out path: called after the event was acked.  Returns
 * the subscriber writes it set off in this loop iteration (deliveries
 * that wait for the flush tick do not count). */
size_t domain_guest_request(Domain *d, const KvmiEvent *e, uint64_t time_usec);
/* The recent guest requests, oldest first: *ret_n entries of d->recent
 * starting at the returned index (modulo recent_size). */
size_t domain_recent_start(const Domain *d);

/* ---- channel.c: the KVMI listener and channels ---------------------------- */

/* Event priorities of the loop: KVMI channel I/O, then the rest (the
 * libevent default for events not given one). */
#define EVENT_PRIORITIES 2
#define EVENT_PRIORITY_KVMI 0

/* Bind (or adopt s->kvmi_fd_passed) the KVMI listener(s) and start accepting. */
int channel_server_start(Server *s);
void channel_server_stop(Server *s);
unsigned channel_server_count(const Server *s);
/* The last handshakes refused for a UUID no source knows (Admin.ListDomains). */
struct json_object *channel_strangers_json(Server *s);
/* Close d's channel (admin request, domain gone). */
void channel_close(Channel *ch, const char *reason);

/* ---- introspector.c: io.kvmid.Introspector --------------------------------- */

int introspector_state_new(IntrospectorState **ret);
IntrospectorState *introspector_state_free(IntrospectorState *st);
/* The authentication proof (see io.kvmid.Introspector.varlink). */
int introspector_proof(const uint8_t *key, size_t key_len, const uint8_t nonce[32], const char *name,
                       const char *binding, uint8_t ret[32]);
/* Whether a peer (uid over Unix, or vsock CID if cid != 0) may
 * authenticate as id: a VM-bound identity from its VM's CID, or on Unix
 * from its listed uids; an unbound one only on Unix, from its uids if it
 * lists any.  vm is the registry's domain named by id's domain = (config
 * or libvirt; NULL if unknown): its CID as libvirt or the config gives it,
 * and only while libvirt says it runs (a stopped VM's CID may be reused). */
bool introspector_binding_ok(const IdentityConfig *id, const Domain *vm, uid_t uid, uint32_t cid);
/* The identity a connection authenticated as, or NULL. */
const char *introspector_identity(const Conn *c);
/* In the configuration, or still holding sessions or connections. */
bool introspector_known(Server *s, const char *name);
/* End name's sessions (each audited with reason) and close its connections,
 * also one whose authentication is being recorded: it must authenticate
 * again.  Returns the sessions ended. */
unsigned introspector_revoke(Server *s, const char *name, const char *reason);
/* After a reload replaced old with s->config: an identity that is gone, or
 * whose key or binding changed, is revoked (introspector_revoke). */
void introspector_apply_config(Server *s, const Config *old);

/* ---- authz.c: the policy in force ------------------------------------------ */

/* Load the configured policy: at start, a missing rules file means the
 * built-in "default deny" (logged); on a reload it is an error.  Any
 * problem is an error in *ret_error ("file:line:col: message"). */
int authz_load(const Config *c, bool allow_builtin, Policy **ret, bool *ret_builtin, char **ret_error);
/* Start: load or fail. */
int authz_start(Server *s);
/* Reload from s->config's paths; the new snapshot replaces the old only if
 * it loads whole.  Returns 0 (changed or not), or -errno with *ret_error. */
int authz_reload(Server *s, char **ret_error);
/* Decide perm for introspector on target (by the domain's name, UUID and
 * labels; extra_labels are added, for explain). */
int authz_check(Server *s, const char *introspector, const char *target_name, const uint8_t *target_uuid,
                const char *const *labels, size_t n_labels, PolicyPermission perm, PolicyDecision *ret);

/* ---- admin.c ---------------------------------------------------------------- */

/* Rotate the audit log; call (may be NULL: SIGUSR1) gets the reply. */
int admin_rotate_audit_start(Server *s, Call *call);

/* ---- session.c: sessions and guest-request fan-out ----------------------------- */

struct Session {
        Server *server;
        char id[33];                    /* 128 random bits, hex */
        char *introspector;
        Conn *conn;                     /* the connection that opened it */
        Domain *target;
        uint64_t opened_usec;           /* CLOCK_REALTIME */
        struct Subscription *subscriptions;
        size_t n_subscriptions;
        unsigned n_tokens;              /* live */
        unsigned n_mappings;            /* recorded, or allowed and waiting for the disk */
        bool open_pending;              /* its session-open record is not durable yet */
        bool ended;                     /* unlinked; freed once open_pending clears */
        Session *prev, *next;
};

/* End every session of target d (its channel closed), of introspector
 * name, or of connection c; each ending is audited with reason. */
void session_end_target(Server *s, Domain *d, const char *reason);
void session_end_introspector(Server *s, const char *name, const char *reason);
void session_end(Session *ss, const char *reason);
Session *session_find(Server *s, const char *id);
/* After a policy reload: end sessions and subscriptions no longer allowed. */
void session_recheck(Server *s);
/* A guest request as subscribers (and GetDomain) see it. */
struct json_object *session_event_json(const Domain *d, const GuestRequest *g, uint64_t missed);
/* The fan-out hook: serialize once, queue to every permitted subscriber;
 * returns the writes set off now, as domain_guest_request. */
size_t session_publish(Domain *d, const GuestRequest *g, const char *target_uuid);
size_t session_count(const Server *s);
/* Admin.WatchEvents: an operator's stream of d's guest requests. */
int session_watch(Domain *d, Call *call);
void session_unwatch_target(Domain *d, const char *reason);
size_t session_subscriber_count(const Server *s);
struct json_object *session_to_json(const Session *ss);
/* io.kvmid.Introspector handlers (the table is in introspector.c). */
int session_method_open(Call *call, struct json_object *parameters, void *userdata);
int session_method_close(Call *call, struct json_object *parameters, void *userdata);
int session_method_subscribe(Call *call, struct json_object *parameters, void *userdata);
/* The session of this id on the caller's connection, or an error reply
 * (NoSuchSession) and NULL. */
Session *session_of_call(Call *call, struct json_object *parameters);
/* PolicyDenied naming the permission and the deciding rule. */
int session_reply_denied(Call *call, PolicyPermission perm, const PolicyDecision *dec);
/* Decide perm for the session's introspector on its target, now. */
int session_decide(Session *ss, PolicyPermission perm, PolicyDecision *ret);

/* ---- token.c: map tokens ---------------------------------------------------------- */

typedef enum MapTokenState {
        TOKEN_LIVE,
        TOKEN_MAPPING,                  /* MemMap allowed, its audit record not yet durable */
        TOKEN_CONSUMED,
        TOKEN_EXPIRED,
        TOKEN_REVOKED,
} MapTokenState;

struct MapToken {
        uint8_t secret[KVMI_MAP_TOKEN_SIZE];
        char id[20];                    /* "t-" + 16 hex: the public name */
        Session *session;               /* NULL once the session ended */
        char *introspector;
        Domain *target;                 /* valid while state is LIVE or MAPPING */
        char target_name[256];
        char target_uuid[37];
        uint64_t gpa, size;
        uint64_t issued_usec, expires_usec; /* CLOCK_REALTIME */
        MapTokenState state;
        MapToken *hash_next;            /* index bucket */
        MapToken *prev, *next;          /* all tokens */
};

int token_table_new(Server *s, TokenTable **ret);
TokenTable *token_table_free(TokenTable *t);
/* O(1), timing-safe: a keyed hash picks the bucket, CRYPTO_memcmp decides. */
MapToken *token_lookup(TokenTable *t, const uint8_t secret[KVMI_MAP_TOKEN_SIZE]);
MapToken *token_find_id(TokenTable *t, const char *id);
/* Revoke every token of a session not yet used (reason audited). */
void token_revoke_session(TokenTable *t, Session *ss, const char *reason);
/* Revoke a live, mapping or consumed token (audited); one MemMap redeemed
 * takes its mapping with it (hypervisor_revoke_token).  Expired or
 * revoked: nothing to do. */
void token_revoke(TokenTable *t, MapToken *tok, const char *reason);
void token_set_state(TokenTable *t, MapToken *tok, MapTokenState state);
const char *token_state_to_string(MapTokenState st);
struct json_object *token_list_json(TokenTable *t);
/* Pending GET_MAP_TOKEN requests of a target whose channel closed fail. */
void token_target_gone(TokenTable *t, Domain *d);
int token_method_get(Call *call, struct json_object *parameters, void *userdata);
int token_method_revoke(Call *call, struct json_object *parameters, void *userdata);

/* ---- hypervisor.c: io.kvmid.Hypervisor ----------------------------------------------- */

extern const InterfaceTable hypervisor_interface;
int hypervisor_new(Server *s);
void hypervisor_free(Server *s);
/* The session's mappings are revoked: tell the VMM watchers, audited. */
void hypervisor_revoke_session(Server *s, Session *ss, const char *reason);
/* The mapping made with token token_id (if any) is revoked, likewise. */
void hypervisor_revoke_token(Server *s, const char *token_id, const char *reason);
struct json_object *hypervisor_mappings_json(Server *s);

/* ---- channel.c (tokens) ------------------------------------------------------------- */

/* KVMI_GET_MAP_TOKEN on d's channel; done(userdata, err, token): err 0, a
 * -KVM_E* from the kernel, or -ECONNRESET when the channel went away. */
typedef void (*ChannelTokenFn)(void *userdata, int err, const KvmiMapToken *token);
int channel_get_map_token(Channel *ch, ChannelTokenFn done, void *userdata);

/* ---- libvirt.c: kvmid's own libvirt connection ------------------------------ */

/* Register libvirt's event loop on base (once per process, before any
 * connection is opened). */
int libvirt_event_register(struct event_base *base);
/* Connect to s->config->libvirt_uri (no-op without one); failures are
 * retried with back-off, never fatal. */
int libvirt_start(Server *s);
void libvirt_stop(Server *s);
/* GetStatus: {uri, connected, domains}, or NULL when off. */
struct json_object *libvirt_status_json(Server *s);
/* For STATUS=: NULL without a libvirt URI, else "connected" or "disconnected". */
const char *libvirt_status_word(const Server *s);
/* The lifecycle handler (virDomainEventLifecycle), callable from tests. */
void libvirt_lifecycle(Server *s, const DomainLibvirtInfo *info, int event, int detail);
/* A domain XML (libvirt's, or the hook's stdin) parsed without libvirt:
 * <name>, <uuid>, the vsock CID and kvmid's metadata.  info.name points at
 * name; the strings are owned here until libvirt_domain_xml_done(). */
typedef struct DomainXml {
        DomainLibvirtInfo info;
        char *name;
        bool has_uuid;
        char *cookie_file;
        char **labels;
        size_t n_labels;
        bool required;                  /* required="yes" in the metadata */
} DomainXml;
/* -EINVAL: not XML, or no <name>. */
int libvirt_domain_xml_parse(const char *xml, DomainXml *ret);
void libvirt_domain_xml_done(DomainXml *x);
/* Running, blocked, paused, suspended or shutting down: it has a QEMU. */
bool domain_state_is_up(DomainRunState st);

/* ---- notify.c: the service manager (sd_notify) ----------------------------- */

/* All no-ops without NOTIFY_SOCKET.  READY=1 with STATUS=; the first call
 * also starts the STATUS= refresh (at most once a second, when it changed)
 * and, with WatchdogSec=, WATCHDOG=1 from the loop at half the interval. */
void notify_ready(Server *s);
/* RELOADING=1 with MONOTONIC_USEC=; notify_ready() ends the reload. */
void notify_reloading(void);
void notify_stopping(void);
/* Free the timers; before the event loop is freed. */
void notify_done(void);
