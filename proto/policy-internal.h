/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Compiled policy representation, shared by policy.c (lifetime, canonical
 * printer, digest), policy-parse.c (loader, parser) and policy-eval.c
 * (index, evaluation, explain).  Not installed, not used outside proto/. */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "policy.h"

#define POLICY_N_PERMS 3U

typedef enum PolicyTargetKind {
        POLICY_TARGET_ANY,
        POLICY_TARGET_NAME,      /* domain name glob */
        POLICY_TARGET_UUID,      /* exact domain UUID */
        POLICY_TARGET_LABEL,     /* glob over the labels the target carries */
} PolicyTargetKind;

typedef struct PolicyRule {
        PolicyVerdict verdict;
        unsigned perms;                  /* PolicyPermission bits, never 0 */
        char *introspector;              /* NULL: any */
        bool introspector_glob;          /* false: compare with streq() */
        PolicyTargetKind target_kind;
        char *target;                    /* NAME, LABEL: the pattern */
        bool target_glob;
        uint8_t target_uuid[16];         /* UUID */
        unsigned max_mappings;           /* 0: not given */
        PolicyGpaRange *gpa;             /* sorted, disjoint */
        size_t n_gpa;
        unsigned rate_count;             /* 0: not given */
        unsigned rate_period_sec;
        const char *file;                /* points into Policy.files */
        unsigned line;
} PolicyRule;

/* Ascending rule indices, so several lists merge in first-match order. */
typedef struct PolicyRuleList {
        uint32_t *v;
        uint32_t n, cap;
} PolicyRuleList;

typedef struct PolicyIndexEntry {
        char *key;                       /* NULL: free slot */
        size_t len;
        uint64_t hash;
        PolicyRuleList perm[POLICY_N_PERMS];
} PolicyIndexEntry;

/* Open addressing, linear probing, at most half full. */
typedef struct PolicyIndexTable {
        PolicyIndexEntry *slots;
        size_t n_slots;                  /* 0 or a power of two */
        size_t n_used;
} PolicyIndexTable;

struct Policy {
        unsigned n_ref;
        PolicyRule *rules;
        size_t n_rules;
        PolicyVerdict default_verdict;
        const char *default_file;
        unsigned default_line;
        char **files;                    /* every file read, in order */
        size_t n_files;

        /* The subject index.  A rule whose introspector= is a plain name
         * sits in "exact" under that name; a glob sits in "prefix" under
         * its literal prefix (the bytes before the first metacharacter,
         * "" for any).  A name can only match globs whose prefix it starts
         * with, so a lookup probes exact[name] and prefix[name[0..k]] for
         * every k up to max_prefix, then merges those lists by rule index:
         * first match wins exactly as in a top-to-bottom scan. */
        PolicyIndexTable exact;
        PolicyIndexTable prefix;
        size_t max_prefix;

        char digest[65];
};

/* policy.c */
Policy *policy_new(void);
void policy_free(Policy *p);
int policy_finalize(Policy *p);          /* index + digest, after a successful parse */

typedef struct PolicyBuf {
        char *s;
        size_t len, cap;
        bool oom;                        /* sticky: checked once at the end */
} PolicyBuf;

void policy_buf_append(PolicyBuf *b, const char *s, size_t n);
void policy_buf_puts(PolicyBuf *b, const char *s);
_printf_(2, 3) void policy_buf_printf(PolicyBuf *b, const char *fmt, ...);
/* A pattern or name as the grammar writes it: bare if it can be, else in
 * double quotes with \" and \\ escaped. */
void policy_buf_value(PolicyBuf *b, const char *s);
void policy_buf_rule(PolicyBuf *b, const Policy *p, size_t rule);
void policy_buf_perms(PolicyBuf *b, unsigned perms);
void policy_buf_limits(PolicyBuf *b, const PolicyRule *r, const char *sep);
/* Returns 0 and hands over the string (never NULL), or -ENOMEM. */
int policy_buf_steal(PolicyBuf *b, char **ret);
void policy_buf_done(PolicyBuf *b);

const char *policy_rate_unit(unsigned period_sec);
void policy_uuid_to_string(const uint8_t u[16], char s[37]);

/* policy-eval.c */
uint64_t policy_hash(const char *s, size_t n);
int policy_index_put(PolicyIndexTable *t, const char *key, size_t len, PolicyIndexEntry **ret);
const PolicyIndexEntry *policy_index_get(const PolicyIndexTable *t, const char *key, size_t len, uint64_t hash);
int policy_rule_list_append(PolicyRuleList *l, uint32_t v);
void policy_index_done(PolicyIndexTable *t);
int policy_build_index(Policy *p);
/* Bytes before the first glob metacharacter. */
size_t policy_glob_prefix_len(const char *pattern);
