/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The audit log writer: the one module that writes the audit log
 * (kvmid-audit(5)).  Records are built and chained on the event loop, in
 * the order audit_append() is called; one dedicated thread writes and
 * fdatasync()s them, so the loop never waits for the disk.  Records that
 * arrive while a sync is in flight share the next one (group commit).
 * Completions come back to the loop through an eventfd.
 *
 * Everything here is called on the loop thread only. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "audit-record.h"
#include "macro.h"

typedef enum AuditSyncMode {
        AUDIT_SYNC_ALWAYS,      /* done after write + fdatasync (group commit) */
        AUDIT_SYNC_INTERVAL,    /* done after write; fdatasync within interval_msec */
        AUDIT_SYNC_OFF,         /* done after write; the kernel syncs when it likes */
        _AUDIT_SYNC_MAX,
        _AUDIT_SYNC_INVALID = -EINVAL,
} AuditSyncMode;

const char *audit_sync_mode_to_string(AuditSyncMode m);   /* "always", "interval", "off" */
AuditSyncMode audit_sync_mode_from_string(const char *s);

/* Test hook: called on the sync thread before each operation; a negative
 * return makes it fail with that error.  For AUDIT_IO_WRITE a positive
 * return n < len writes only n bytes and then fails with -EIO (a torn
 * write). */
typedef enum AuditIoOp {
        AUDIT_IO_WRITE,
        AUDIT_IO_SYNC,
        AUDIT_IO_ROTATE,
} AuditIoOp;
typedef int (*AuditFaultFn)(void *userdata, AuditIoOp op, size_t len);

#define AUDIT_DEFAULT_INTERVAL_MSEC       1000U
#define AUDIT_DEFAULT_MAX_QUEUED_RECORDS  65536U
#define AUDIT_DEFAULT_MAX_QUEUED_BYTES    (64U * 1024U * 1024U)

typedef struct AuditConfig {
        const char *path;               /* the current file; rotated files are "<path>.<seq>" */
        AuditSyncMode sync;
        unsigned interval_msec;         /* sync=interval; 0: AUDIT_DEFAULT_INTERVAL_MSEC */
        size_t max_queued_records;      /* not yet done; 0: default */
        size_t max_queued_bytes;        /* 0: default */
        bool journal;                   /* mirror key events to the journal */
        AuditFaultFn fault;             /* tests only */
        void *fault_userdata;
} AuditConfig;

/* MESSAGE_ID= of the journal entries (stable; kvmid-audit(5)).  Each entry
 * also carries KVMID_AUDIT_SEQ= and KVMID_AUDIT_DIGEST= (the SHA-256 of
 * the record's line), which anchor the chain outside the file. */
#define AUDIT_MESSAGE_DAEMON_START        "aab054295f8d4da487de03a8a2202e5b"
#define AUDIT_MESSAGE_DAEMON_STOP         "598591fb1dda4f869a41e35b48b324f2"
#define AUDIT_MESSAGE_AUTH_FAIL           "bdde661022d141d384c2e07187824deb"
#define AUDIT_MESSAGE_TOKEN_DENY          "013e7dd80ced4a52a7794dd539c51e99"
#define AUDIT_MESSAGE_MAP_DENY            "bf8ea11fbd0246379245f09fea525336"
#define AUDIT_MESSAGE_UNMAP_DENY          "057a0c61bc3a4d0ba13c46dab7ea5b50"
#define AUDIT_MESSAGE_POLICY_RELOAD_OK    "89fb22cc24fb452aafa2c02695e2b177"
#define AUDIT_MESSAGE_POLICY_RELOAD_FAIL  "ff5f67db4c844cb28f63370d129b9d97"
#define AUDIT_MESSAGE_KVMI_HANDSHAKE_FAIL "1a18ff74ed08407a9a76dc9b40d03c25"
#define AUDIT_MESSAGE_ROTATE              "b2fbda491ecf4eea9c2045aa3f09e0ac"
#define AUDIT_MESSAGE_RECOVERED           "026d9aec851e4b2891737b04f14c321c"
/* Not records: the log became unwritable / writable again. */
#define AUDIT_MESSAGE_DEGRADED            "75f1edf28b5f407f81eee273929e2cfa"
#define AUDIT_MESSAGE_RESTORED            "911ff0700432437b9642c3269d714657"

typedef struct Audit Audit;

/* r == 0: the record is in the file (and, with sync=always, on stable
 * storage); r < 0: it may not be, and the caller must fail closed. */
typedef void (*AuditDoneFn)(void *userdata, int r);

typedef struct AuditTailRecord {
        uint64_t seq;
        AuditKind kind;
        AuditDecision decision;
        const char *line;               /* without the newline, NUL-terminated */
        size_t len;
} AuditTailRecord;
typedef void (*AuditTailFn)(void *userdata, const AuditTailRecord *rec);
typedef struct AuditSubscription AuditSubscription;

typedef struct AuditStats {
        AuditSyncMode sync;
        bool degraded;
        uint64_t records;               /* written (done with r == 0) since open */
        uint64_t failed;                /* done with r < 0 */
        uint64_t syncs;                 /* fdatasync() calls */
        uint64_t bytes;                 /* written since open */
        uint64_t rotations;
        uint64_t queued;                /* appended, not yet done */
        uint64_t queued_bytes;
        uint64_t journal_suppressed;    /* key events not sent: rate limit */
        uint64_t last_seq;              /* last record written */
        char last_digest[AUDIT_HEX_SIZE];
        int last_error;                 /* -errno of the last failure, 0 */
        const char *last_error_op;      /* "write", "fdatasync", "rotate"...; NULL */
        uint64_t last_error_usec;       /* CLOCK_REALTIME */
        /* append → done, in ns */
        uint64_t latency_count, latency_p50_ns, latency_p99_ns, latency_max_ns;
} AuditStats;

/* Open (creating, mode 0600) cfg->path and resume its chain: after its
 * last complete record, or with a "recovered" record if the file ends in
 * a torn line (which is then terminated, never truncated).  Completes an
 * interrupted rotation.  Synchronous (startup only).  -EBADMSG when the end
 * of the file is damaged beyond a torn line (move the file aside), -ELOOP
 * for a symlink, -EINVAL for a file that is not regular. */
int audit_open(struct event_base *base, const AuditConfig *cfg, Audit **ret);
/* Write and sync what is queued (blocking), run every pending callback,
 * free a.  Returns 0 or the last write/sync error.  Not from a callback. */
int audit_close(Audit *a);
Audit *audit_free(Audit *a);            /* audit_close() ignoring its result */
DEFINE_TRIVIAL_CLEANUP_FUNC(Audit *, audit_free);

/* Build the next record and queue it.  On 0, done (if non-NULL) is called
 * exactly once, later, on the loop; on < 0 it is never called: -EIO or the
 * original error while degraded, -ENOBUFS when the queue limit is hit,
 * -EINVAL/-E2BIG for a bad event, -ENOMEM. */
int audit_append(Audit *a, const AuditEvent *ev, AuditDoneFn done, void *userdata);
/* Fire and forget: the record is queued like any other. */
int audit_emit(Audit *a, const AuditEvent *ev);
/* The record the last successful audit_append() queued: its seq, and the
 * SHA-256 of its line (what the next record's prev will be). */
uint64_t audit_last_seq(const Audit *a);
void audit_last_link(const Audit *a, AuditLink *ret);

/* Rename the current file to "<path>.<S>" (S: the seq of its last record,
 * 20 digits, so names sort in chain order) and continue in a new <path>
 * whose first record, "rotate", chains to it.  Asynchronous: done (may be
 * NULL) runs once the new file and its first record are synced.  When
 * degraded this is how the log recovers: the chain resumes from what the
 * old file really holds.  -EBUSY while a rotation is in flight. */
int audit_rotate(Audit *a, AuditDoneFn done, void *userdata);

/* A write or sync failed: every append fails until a rotation succeeds
 * (or the log is reopened). */
bool audit_is_degraded(const Audit *a);
void audit_get_stats(const Audit *a, AuditStats *ret);
const char *audit_path(const Audit *a);

/* fn runs for each record written after this call, in seq order, after
 * its done callback.  fn may unsubscribe (itself or others) and append.
 * Subscriptions still there are freed by audit_close(). */
int audit_subscribe(Audit *a, AuditTailFn fn, void *userdata, AuditSubscription **ret);
AuditSubscription *audit_unsubscribe(AuditSubscription *s);
