/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The kvmid policy: who may attach to, listen to, and map pages of which
 * target.  The rules language is documented in kvmid.policy(5).
 *
 * A Policy is an immutable, refcounted snapshot compiled from the main file
 * and the drop-ins; evaluation is a pure function of (snapshot, request), so
 * a reload builds a new snapshot and swaps it in only if everything parsed.
 * No globals, no logging, no I/O except reading the files to parse.
 *
 * Pointers a Policy hands out (file names in decisions, gpa ranges in
 * limits, the digest) stay valid while the caller holds a reference. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Policy Policy;

/* policy_evaluate() returns one of these: allow is 0, deny is the
 * documented positive outcome the caller must handle. */
typedef enum PolicyVerdict {
        POLICY_ALLOW = 0,
        POLICY_DENY = 1,
} PolicyVerdict;

typedef enum PolicyPermission {
        POLICY_PERM_ATTACH = 1U << 0,    /* open a session on the target */
        POLICY_PERM_EVENTS = 1U << 1,    /* subscribe to guest-request events */
        POLICY_PERM_MAP = 1U << 2,       /* mint map tokens, map target pages */
        POLICY_PERM_ALL = POLICY_PERM_ATTACH | POLICY_PERM_EVENTS | POLICY_PERM_MAP,
} PolicyPermission;

/* Bounds on what a policy file may make us allocate. */
#define POLICY_FILE_SIZE_MAX (1024U * 1024U)  /* bytes per file */
#define POLICY_LINE_MAX 4096U                 /* bytes per line, without the newline */
#define POLICY_RULES_MAX 65536U               /* rules across all files */
#define POLICY_DROPINS_MAX 1024U              /* *.policy files in the drop-in directory */
#define POLICY_PATTERN_MAX 255U               /* bytes in a name, glob or label */
#define POLICY_GPA_RANGES_MAX 64U             /* ranges in one gpa= */
#define POLICY_MAX_MAPPINGS_MAX (1U << 20)    /* largest max-mappings= */
#define POLICY_RATE_MAX 1000000U              /* largest count in rate= */
#define POLICY_PAGE_SIZE 4096U                /* gpa= ranges are whole pages */

/* PolicyDecision.rule when no rule matched and the default decided. */
#define POLICY_RULE_DEFAULT SIZE_MAX

typedef struct PolicyGpaRange {
        uint64_t start, end;             /* inclusive; start page aligned, end the last byte of a page */
} PolicyGpaRange;

/* The limits of the deciding allow rule; all zero for a deny or the default. */
typedef struct PolicyLimits {
        unsigned max_mappings;           /* live mappings per session; 0: policy sets no limit */
        size_t n_gpa_ranges;             /* 0: any target gpa */
        const PolicyGpaRange *gpa_ranges;/* sorted by start, disjoint */
        unsigned rate_count;             /* map tokens minted per rate_period_sec; 0: no limit */
        unsigned rate_period_sec;        /* 1, 60 or 3600 */
} PolicyLimits;

typedef struct PolicyRequest {
        const char *introspector;        /* authenticated identity; required */
        const char *target_name;         /* libvirt domain name; NULL if not known */
        const uint8_t *target_uuid;      /* 16 bytes; NULL if not known */
        const char *const *target_labels;/* metadata labels the target carries */
        size_t n_target_labels;
        PolicyPermission perm;           /* exactly one permission */
} PolicyRequest;

typedef struct PolicyDecision {
        PolicyVerdict verdict;
        bool is_default;                 /* no rule matched: the default line decided */
        size_t rule;                     /* index of the deciding rule, or POLICY_RULE_DEFAULT */
        const char *file;                /* where the deciding rule (or default line) is */
        unsigned line;
        PolicyLimits limits;
} PolicyDecision;

/* Read main_file, then every dropin_dir/ *.policy (names not starting with
 * '.') in strcmp() order, as one policy.  main_file may be NULL (drop-ins
 * only); dropin_dir may be NULL or missing.  Exactly one "default" line
 * across all files.  Returns 0, or a negative errno and, if ret_error is
 * non-NULL, a malloc'd message: "FILE:LINE:COL: message" (1-based, columns
 * count bytes) for anything in the text, "FILE: message" for a file that
 * cannot be read or is too large.  -EINVAL: the text is wrong; -EFBIG: a
 * file exceeds POLICY_FILE_SIZE_MAX; -E2BIG: too many rules or drop-ins;
 * -ENOMEM (ret_error may stay unset); else the errno of open/read. */
int policy_load(const char *main_file, const char *dropin_dir, Policy **ret, char **ret_error);

/* The same for a list of paths, in order, as one policy: a directory
 * stands for its *.policy drop-ins (strcmp() order), a missing one for
 * none; the first plain file is the main file, where a missing "default"
 * line is reported.  For `kvmictl policy check FILE...`. */
int policy_load_paths(const char *const *paths, size_t n, Policy **ret, char **ret_error);

/* The same for one text in memory; filename is only used in messages
 * (NULL: "<string>"). */
int policy_parse_string(const char *filename, const char *text, Policy **ret, char **ret_error);

/* Both accept NULL; unref returns NULL: p = policy_unref(p). */
Policy *policy_ref(Policy *p);
Policy *policy_unref(Policy *p);
static inline void policy_unrefp(Policy **p) {
        if (*p)
                (void) policy_unref(*p);
}

/* First match wins.  Returns POLICY_ALLOW (0) or POLICY_DENY and fills
 * *ret for both; -EINVAL if the request has no introspector or perm is
 * not exactly one permission.  Pure: safe from any number of threads. */
int policy_evaluate(const Policy *p, const PolicyRequest *req, PolicyDecision *ret);

/* Same decision as policy_evaluate() (found by a plain top-to-bottom scan,
 * so it doubles as the reference the index is tested against), plus a
 * human explanation in *ret_text: the request, the earlier rules for this
 * introspector that were skipped and why, the deciding rule, the limits. */
int policy_explain(const Policy *p, const PolicyRequest *req, PolicyDecision *ret_decision, char **ret_text);

/* Canonical form: one rule per line in order, fixed option order, minimal
 * quoting, "default" last, no comments.  Parses back to an equivalent
 * policy whose canonical form is identical. */
int policy_format(const Policy *p, char **ret);

/* One rule in canonical form (no newline); rule may be POLICY_RULE_DEFAULT.
 * -ERANGE for an index past the last rule. */
int policy_format_rule(const Policy *p, size_t rule, char **ret);

/* SHA-256 of policy_format()'s output, 64 lower-case hex digits. */
const char *policy_digest(const Policy *p);

size_t policy_n_rules(const Policy *p);
PolicyVerdict policy_default_verdict(const Policy *p);

/* Whether the target gpa range [gpa, gpa + size) lies inside one allowed
 * range (always true if the limits name no range; false for size 0 or a
 * range that wraps). */
bool policy_limits_allow_gpa(const PolicyLimits *l, uint64_t gpa, uint64_t size);

/* "attach", "events", "map" for one permission, "all" for POLICY_PERM_ALL;
 * NULL otherwise. */
const char *policy_perm_to_string(PolicyPermission perm);
/* One of the names above; -EINVAL otherwise. */
int policy_perm_from_string(const char *s, PolicyPermission *ret);
const char *policy_verdict_to_string(PolicyVerdict v);

/* "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f", either case; -EINVAL otherwise. */
int policy_uuid_from_string(const char *s, uint8_t ret[16]);
