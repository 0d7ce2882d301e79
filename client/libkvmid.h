/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef LIBKVMID_H
#define LIBKVMID_H

/* libkvmid: the reference client of kvmid, the KVM introspection broker.
 *
 * An introspection tool connects to io.kvmid.Introspector, authenticates
 * with its key, opens sessions on target VMs, subscribes to their guest
 * requests and mints map tokens.  The VMM of an introspector VM connects
 * to io.kvmid.Hypervisor and asks before it maps or unmaps a page.
 *
 * Conventions: functions return 0 on success or a negative errno; out
 * parameters (ret_*) are written only on success; kvmid_last_error()
 * says what went wrong.  A KvmidClient is one connection and must not be
 * used by two threads at once; the library has no global state.  See
 * libkvmid(3). */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct KvmidClient KvmidClient;

/* ---- connections ------------------------------------------------------ */

/* Connects to io.kvmid.Introspector.  address: NULL for
 * $KVMID_INTROSPECTOR_SOCKET or else /run/kvmid/io.kvmid.Introspector; a
 * path, "unix:PATH", "unix:@ABSTRACT", or "vsock:CID:PORT". */
int kvmid_connect(const char *address, KvmidClient **ret);
/* Connects over vsock, from inside an introspector VM (host: CID 2). */
int kvmid_connect_vsock(unsigned cid, unsigned port, KvmidClient **ret);
/* Connects to io.kvmid.Hypervisor (the VMM side).  address: NULL for
 * $KVMID_HYPERVISOR_SOCKET or else /run/kvmid/io.kvmid.Hypervisor. */
int kvmid_connect_hypervisor(const char *address, KvmidClient **ret);
/* Closes the connection (the daemon ends its sessions).  NULL is fine;
 * returns NULL. */
KvmidClient *kvmid_client_free(KvmidClient *c);
/* How long to wait for each reply, in milliseconds; 0 waits forever.
 * Default 30000.  A subscription waits for its events without limit. */
void kvmid_set_timeout(KvmidClient *c, unsigned timeout_ms);

/* ---- errors ----------------------------------------------------------- */

/* What the last call on c failed with, in one line: "NAME: message" for
 * an error of kvmid, e.g. "io.kvmid.Introspector.PolicyDenied: map denied
 * by /etc/kvmid/policy:3", or a local message.  "" if the last call
 * succeeded.  Never NULL; valid until the next call on c. */
const char *kvmid_last_error(const KvmidClient *c);
/* The varlink error name of the last call, or NULL if it failed locally
 * (I/O, bad arguments, malformed reply) or succeeded. */
const char *kvmid_last_error_name(const KvmidClient *c);
/* A parameter of that varlink error as a string ("reason", "rule",
 * "retry_after", ...), or NULL. */
const char *kvmid_last_error_parameter(const KvmidClient *c, const char *name);

/* ---- authentication --------------------------------------------------- */

/* Hello + Authenticate: proves knowledge of key (32 to 1024 bytes) without
 * sending it.  -EACCES if kvmid refused (one answer for every reason),
 * -EAGAIN after too many failures (parameter "retry_after"). */
int kvmid_authenticate(KvmidClient *c, const char *name, const void *key, size_t key_len);
/* The same with the key read from a file, which must be a regular file
 * that group and others can neither read nor write (-EPERM otherwise),
 * as kvmid requires of its own copy. */
int kvmid_authenticate_key_file(KvmidClient *c, const char *name, const char *path);

/* ---- sessions --------------------------------------------------------- */

/* Opens a session on target (a domain name or UUID).  *ret_session is
 * malloc()ed: free() it.  A session is valid on its connection only. */
int kvmid_open_session(KvmidClient *c, const char *target, char **ret_session);
/* Ends it: its subscriptions end, its tokens are revoked. */
int kvmid_close_session(KvmidClient *c, const char *session);

/* ---- guest requests --------------------------------------------------- */

/* Index into KvmidGuestRequest.regs, and bit (1u << index) of .unreliable. */
enum {
        KVMID_REG_RAX, KVMID_REG_RBX, KVMID_REG_RCX, KVMID_REG_RDX,
        KVMID_REG_RSI, KVMID_REG_RDI, KVMID_REG_RSP, KVMID_REG_RBP,
        KVMID_REG_R8, KVMID_REG_R9, KVMID_REG_R10, KVMID_REG_R11,
        KVMID_REG_R12, KVMID_REG_R13, KVMID_REG_R14, KVMID_REG_R15,
        KVMID_REG_RIP, KVMID_REG_RFLAGS,
        KVMID_REG_COUNT
};

/* "rax" ... "rflags", or NULL for an index out of range. */
const char *kvmid_reg_name(unsigned reg);

/* One guest-request hypercall of a target's in-guest agent.  The strings
 * are valid only during the callback. */
typedef struct KvmidGuestRequest {
        const char *target;             /* domain name */
        const char *uuid;
        uint64_t seq;                   /* per target, from 1 */
        unsigned vcpu;
        unsigned mode;                  /* bytes of the vCPU mode: 2, 4 or 8 */
        uint64_t regs[KVMID_REG_COUNT]; /* as the vCPU had them */
        uint32_t unreliable;            /* 1u << KVMID_REG_*: may be poisoned (r8, r9) */
        uint64_t time_usec;             /* CLOCK_REALTIME, when kvmid read it */
        uint64_t missed;                /* events this subscriber lost just before this one */
} KvmidGuestRequest;

/* ev is NULL once, first: the subscription is live.  Return 0 to go on,
 * nonzero to stop. */
typedef int (*KvmidEventFn)(const KvmidGuestRequest *ev, void *userdata);

/* Subscribes to the session's guest requests and calls fn for each, until
 * the stream ends.  vcpus: only these vCPUs (n_vcpus 0: all).  Returns 0
 * when kvmid ended the stream (kvmid_last_error_name() is then
 * "io.kvmid.Introspector.SessionEnded" and parameter "reason" says why),
 * fn's value if fn stopped it, or -errno.  Unless kvmid ended it, the
 * connection takes no further calls: free it (or reconnect). */
int kvmid_subscribe(KvmidClient *c, const char *session, const unsigned *vcpus, size_t n_vcpus,
                    KvmidEventFn fn, void *userdata);

/* ---- map tokens ------------------------------------------------------- */

#define KVMID_TOKEN_SIZE 32

typedef struct KvmidToken {
        uint8_t bytes[KVMID_TOKEN_SIZE]; /* the bearer secret: pass to KVM_HC_MEM_MAP */
        char hex[2 * KVMID_TOKEN_SIZE + 1];
        char id[64];                    /* public name, for kvmid_revoke_token() */
        uint64_t expires_usec;          /* CLOCK_REALTIME */
} KvmidToken;

/* Mints a token for target pages [gpa, gpa + size) of the session's
 * target.  The token is a secret: wipe it when done. */
int kvmid_get_map_token(KvmidClient *c, const char *session, uint64_t gpa, uint64_t size, KvmidToken *ret);
/* Revokes a token of the session that was not used yet. */
int kvmid_revoke_token(KvmidClient *c, const char *session, const char *token_id);

/* ---- hypervisor side (io.kvmid.Hypervisor) ----------------------------- */

/* The strings are malloc()ed: release with kvmid_mapping_clear(). */
typedef struct KvmidMapping {
        char *target;                   /* domain name */
        char *uuid;                     /* MemMap only, else NULL */
        char *token_id;                 /* MemMap only, else NULL */
        uint64_t target_gpa;
} KvmidMapping;

/* Frees the strings and zeroes *m.  NULL is fine. */
void kvmid_mapping_clear(KvmidMapping *m);

/* May introspector VM "introspector" map the page token was minted for
 * (target_gpa) at its local_gpa?  0: yes, *ret says which target;
 * -EPERM: no, parameter "reason" says why. */
int kvmid_mem_map(KvmidClient *c, const char *introspector, const uint8_t token[KVMID_TOKEN_SIZE],
                  uint64_t target_gpa, uint64_t local_gpa, KvmidMapping *ret);
/* May it unmap local_gpa?  0: yes, *ret says what was mapped there. */
int kvmid_mem_unmap(KvmidClient *c, const char *introspector, uint64_t local_gpa, KvmidMapping *ret);

/* A mapping to tear down; strings valid only during the callback. */
typedef struct KvmidRevocation {
        const char *introspector;
        uint64_t local_gpa;
        const char *target;
        const char *reason;
} KvmidRevocation;

/* rev is NULL once, first: the watch is live.  Return 0 to go on. */
typedef int (*KvmidRevocationFn)(const KvmidRevocation *rev, void *userdata);

/* Streams revocations (of one introspector VM, or all for NULL), like
 * kvmid_subscribe(). */
int kvmid_watch_revocations(KvmidClient *c, const char *introspector, KvmidRevocationFn fn, void *userdata);

#ifdef __cplusplus
}
#endif

#endif
