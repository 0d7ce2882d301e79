/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The audit log's record format and hash chain (kvmid-audit(5)).  Pure:
 * shared by the daemon's writer (daemon/audit.c) and the offline verifier
 * (kvmictl audit verify).
 *
 * A record is one line: the canonical JSON serialization of an object
 * (members sorted by key, no whitespace, minimal escaping, integers only;
 * see audit_json_canonical()).  "hash" is the SHA-256 of the canonical
 * serialization of the record without its "hash" member; "prev" is the
 * SHA-256 of the previous record's line.  Both lowercase hex. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <json-c/json.h>

#define AUDIT_FORMAT_VERSION 1
/* 64 lowercase hex digits and the NUL. */
#define AUDIT_HEX_SIZE 65
#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/* Longest record line, without its newline.  The builder refuses longer
 * records; the verifier and the writer's resume treat longer lines as
 * damage. */
#define AUDIT_LINE_MAX (64U * 1024U)
/* Nesting of "data" (the record itself adds one level). */
#define AUDIT_DATA_MAX_DEPTH 8

/* Members of "data" in a recovered or rotate record that describe the
 * torn line just before it (the witness the verifier checks). */
#define AUDIT_DATA_TORN_BYTES  "torn_bytes"
#define AUDIT_DATA_TORN_SHA256 "torn_sha256"
#define AUDIT_DATA_TORN_OFFSET "torn_offset"

/* Event kinds.  The names are the stable interface (they are in the
 * files); the numbers are not. */
typedef enum AuditKind {
        AUDIT_KIND_AUTH_OK,
        AUDIT_KIND_AUTH_FAIL,
        AUDIT_KIND_SESSION_OPEN,
        AUDIT_KIND_SESSION_CLOSE,
        AUDIT_KIND_SUBSCRIBE,
        AUDIT_KIND_UNSUBSCRIBE,
        AUDIT_KIND_TOKEN_MINT,
        AUDIT_KIND_TOKEN_DENY,
        AUDIT_KIND_TOKEN_REVOKE,
        AUDIT_KIND_TOKEN_EXPIRE,
        AUDIT_KIND_MAP_ALLOW,
        AUDIT_KIND_MAP_DENY,
        AUDIT_KIND_UNMAP_ALLOW,
        AUDIT_KIND_UNMAP_DENY,
        AUDIT_KIND_POLICY_RELOAD_OK,
        AUDIT_KIND_POLICY_RELOAD_FAIL,
        AUDIT_KIND_DOMAIN_UP,
        AUDIT_KIND_DOMAIN_DOWN,
        AUDIT_KIND_KVMI_HANDSHAKE_OK,
        AUDIT_KIND_KVMI_HANDSHAKE_FAIL,
        AUDIT_KIND_DAEMON_START,
        AUDIT_KIND_DAEMON_STOP,
        AUDIT_KIND_ROTATE,
        AUDIT_KIND_RECOVERED,
        _AUDIT_KIND_MAX,
        _AUDIT_KIND_INVALID = -EINVAL,
} AuditKind;

typedef enum AuditDecision {
        AUDIT_DECISION_NONE,          /* not a decision; see audit_record_build() */
        AUDIT_DECISION_ALLOW,
        AUDIT_DECISION_DENY,
        _AUDIT_DECISION_MAX,
        _AUDIT_DECISION_INVALID = -EINVAL,
} AuditDecision;

const char *audit_kind_to_string(AuditKind k);          /* "map-allow"; NULL if out of range */
AuditKind audit_kind_from_string(const char *s);        /* or -EINVAL */
const char *audit_decision_to_string(AuditDecision d);  /* "allow", "deny", "none" */
AuditDecision audit_decision_from_string(const char *s);
/* Bit (1 << AuditDecision) for each decision a record of kind k may carry. */
unsigned audit_kind_decisions(AuditKind k);

/* What the caller knows about one event.  Every pointer may be NULL
 * ("not known"); the strings are copied, data is only read. */
typedef struct AuditEvent {
        AuditKind kind;
        /* NONE on a kind with exactly one possible decision (map-allow,
         * auth-fail...) means that one; session-open and subscribe must
         * say allow or deny. */
        AuditDecision decision;
        /* subject */
        const char *introspector;
        const struct ucred *peer;       /* SO_PEERCRED: uid, gid, pid */
        uint32_t cid;                   /* vsock peer CID; 0: not over vsock */
        /* object */
        const char *target;
        const char *uuid;
        const char *rule;               /* deciding rule, "FILE:LINE" */
        const char *reason;
        /* Event-specific members: an object whose keys (at every depth) are
         * 1..64 of [A-Za-z0-9_-] and whose numbers are integers. */
        struct json_object *data;
} AuditEvent;

/* A position in the chain: the last record and the SHA-256 of its line.
 * {0, AUDIT_ZERO_HASH} before the first record of a new chain. */
typedef struct AuditLink {
        uint64_t seq;
        char digest[AUDIT_HEX_SIZE];
} AuditLink;

void audit_link_init(AuditLink *l);

/* Why a line or a chain is broken. */
typedef enum AuditBreak {
        AUDIT_BREAK_NONE,
        AUDIT_BREAK_IO,             /* a file could not be read */
        AUDIT_BREAK_BAD_JSON,       /* not one JSON object (or longer than AUDIT_LINE_MAX) */
        AUDIT_BREAK_NOT_CANONICAL,  /* JSON, but not in the canonical form */
        AUDIT_BREAK_BAD_FIELD,      /* a member missing, unknown or of the wrong form */
        AUDIT_BREAK_HASH,           /* "hash" does not match the contents: edited */
        AUDIT_BREAK_PREV,           /* "prev" does not match the line before: replaced/edited */
        AUDIT_BREAK_SEQ_GAP,        /* records missing: deleted, or a file left out */
        AUDIT_BREAK_SWAPPED,        /* two records in the wrong order */
        AUDIT_BREAK_SEQ_ORDER,      /* seq not increasing: duplicated, files out of order */
        AUDIT_BREAK_RESTART,        /* a new chain (seq 1) after other records */
        AUDIT_BREAK_TORN_TAIL,      /* the last line has no newline */
        AUDIT_BREAK_WITNESS,        /* a torn-line witness that does not match */
        AUDIT_BREAK_EMPTY,          /* a file without a single line */
        _AUDIT_BREAK_MAX,
} AuditBreak;

const char *audit_break_to_string(AuditBreak b);     /* "hash-mismatch"... */

/* Where parsing a line failed (filled on failure only). */
typedef struct AuditError {
        AuditBreak kind;
        char message[200];
} AuditError;

/* A parsed, self-consistent record. */
typedef struct AuditRecord {
        uint64_t seq;
        AuditKind kind;
        AuditDecision decision;
        uint64_t realtime_ns;
        uint64_t mono_ns;
        char prev[AUDIT_HEX_SIZE];
        char hash[AUDIT_HEX_SIZE];
        char digest[AUDIT_HEX_SIZE];    /* SHA-256 of the line: the next record's prev */
        struct json_object *root;       /* the whole record, owned */
} AuditRecord;

void audit_record_done(AuditRecord *r);  /* releases root; r may be reused */

/* Canonical serialization of o (an object, array, string, integer,
 * boolean or null; no doubles).  skip_key, if non-NULL, leaves out that
 * member of the top-level object.  Strings that are not valid UTF-8 have
 * each offending byte replaced by U+FFFD.  Returns -EINVAL (double),
 * -ERANGE (integer beyond int64), -ELOOP (deeper than max_depth), -ENOMEM. */
int audit_json_canonical(struct json_object *o, const char *skip_key, int max_depth, char **ret, size_t *ret_len);

/* Format CLOCK_REALTIME ns as "2024-05-01T12:00:00.123456789Z". */
#define AUDIT_TIME_SIZE 31
int audit_time_format(uint64_t realtime_ns, char buf[static AUDIT_TIME_SIZE]);
int audit_time_parse(const char *s, uint64_t *ret_ns);

/* The line (no newline, NUL-terminated, malloc'd) of the record that
 * follows *prev, and the link it makes.  Returns -EINVAL (bad kind,
 * decision or data), -ERANGE, -E2BIG (line longer than AUDIT_LINE_MAX),
 * -ENOMEM. */
int audit_record_build(const AuditEvent *ev, const AuditLink *prev, uint64_t realtime_ns, uint64_t mono_ns,
                       char **ret_line, size_t *ret_len, AuditLink *ret_link);

/* Parse one line (without its newline) and check it on its own: JSON,
 * canonical form, members, hash.  -EBADMSG with *error filled (if
 * non-NULL) when it is not a valid record, -ENOMEM. */
int audit_record_parse(const char *line, size_t len, AuditRecord *ret, AuditError *error);

/* The end of an audit file, as the writer resumes it.  buf holds the last
 * bytes of the file (at least the last 2 * (AUDIT_LINE_MAX + 1), or all of
 * it); at_start says buf begins at offset 0. */
typedef struct AuditTail {
        AuditLink link;                 /* last valid record, or {0, zeros} */
        bool have_record;
        bool unterminated;              /* that record lacks its newline: append one */
        bool torn;                      /* the file ends in a torn line */
        size_t torn_offset;             /* in buf */
        size_t torn_bytes;
        char torn_sha256[AUDIT_HEX_SIZE];
} AuditTail;

/* Returns 0, or -EBADMSG if the end is not what a crash can leave (the
 * last complete line is not a valid record, or a torn line is longer than
 * a record); then *error says why, with offset_in_buf where. */
int audit_tail_scan(const char *buf, size_t len, bool at_start, AuditTail *ret, AuditError *error,
                    size_t *error_offset);

/* ---- Verification of a chain of files ---------------------------------- */

typedef struct AuditVerifyResult {
        size_t files;                   /* files read to the end */
        uint64_t records;               /* valid records */
        uint64_t torn;                  /* torn lines, each witnessed by the record after it */
        uint64_t first_seq, last_seq;   /* 0: no record */
        char first_prev[AUDIT_HEX_SIZE];/* AUDIT_ZERO_HASH: the chain starts here */
        char last_digest[AUDIT_HEX_SIZE];
        /* The first break. */
        AuditBreak error;               /* AUDIT_BREAK_NONE: intact */
        size_t file_index;
        const char *file;               /* paths[file_index] */
        uint64_t line;                  /* 1-based */
        int io_error;                   /* AUDIT_BREAK_IO: -errno */
        char message[320];
} AuditVerifyResult;

#define AUDIT_VERIFY_BROKEN 1

/* Check every line of paths[0..n-1], in that order, as one chain: each
 * record on its own, seq +1 and prev = SHA-256 of the previous line
 * across file boundaries, torn lines witnessed, the first record seq 1
 * or a rotate record, no empty file.  Returns 0 when intact,
 * AUDIT_VERIFY_BROKEN with ret describing the first break, -ENOMEM.
 * *ret is filled in both cases. */
int audit_verify_files(const char *const *paths, size_t n, AuditVerifyResult *ret);
