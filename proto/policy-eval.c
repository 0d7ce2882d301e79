/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Policy evaluation: the subject index and the first-match decision.
 *
 * Invariant: policy_evaluate() (indexed) and policy_explain() (a plain
 * top-to-bottom scan) return the same decision for every request; both use
 * rule_check() to decide whether one rule matches, and the index only
 * skips rules whose introspector= cannot match the request's name. */

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy-internal.h"

/* ------------------------------------------------------------ hash table */

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

static uint64_t fnv_step(uint64_t h, char c) {
        return (h ^ (uint8_t) c) * FNV_PRIME;
}

uint64_t policy_hash(const char *s, size_t n) {
        uint64_t h = FNV_OFFSET;

        for (size_t i = 0; i < n; i++)
                h = fnv_step(h, s[i]);
        return h;
}

static size_t slot_of(const PolicyIndexTable *t, const char *key, size_t len, uint64_t hash) {
        size_t mask = t->n_slots - 1;

        for (size_t i = (size_t) hash & mask;; i = (i + 1) & mask) {
                const PolicyIndexEntry *e = &t->slots[i];

                if (!e->key || (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0))
                        return i;
        }
}

static int index_grow(PolicyIndexTable *t) {
        PolicyIndexTable n = {};

        n.n_slots = t->n_slots ? t->n_slots * 2 : 16;
        if (n.n_slots > SIZE_MAX / sizeof(PolicyIndexEntry))
                return -ENOMEM;
        n.slots = calloc(n.n_slots, sizeof(PolicyIndexEntry));
        if (!n.slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_slots; i++)
                if (t->slots[i].key)
                        n.slots[slot_of(&n, t->slots[i].key, t->slots[i].len, t->slots[i].hash)] = t->slots[i];
        n.n_used = t->n_used;
        free(t->slots);
        *t = n;
        return 0;
}

int policy_index_put(PolicyIndexTable *t, const char *key, size_t len, PolicyIndexEntry **ret) {
        uint64_t hash = policy_hash(key, len);
        PolicyIndexEntry *e;
        int r;

        if (t->n_slots == 0 || (t->n_used + 1) * 2 > t->n_slots) {
                r = index_grow(t);
                if (r < 0)
                        return r;
        }
        e = &t->slots[slot_of(t, key, len, hash)];
        if (!e->key) {
                e->key = strndup(key, len);
                if (!e->key)
                        return -ENOMEM;
                e->len = len;
                e->hash = hash;
                t->n_used++;
        }
        *ret = e;
        return 0;
}

const PolicyIndexEntry *policy_index_get(const PolicyIndexTable *t, const char *key, size_t len, uint64_t hash) {
        const PolicyIndexEntry *e;

        if (t->n_slots == 0)
                return NULL;
        e = &t->slots[slot_of(t, key, len, hash)];
        return e->key ? e : NULL;
}

int policy_rule_list_append(PolicyRuleList *l, uint32_t v) {
        if (l->n == l->cap) {
                uint32_t cap = l->cap ? l->cap * 2 : 4;
                uint32_t *nv = realloc(l->v, (size_t) cap * sizeof(*nv));

                if (!nv)
                        return -ENOMEM;
                l->v = nv;
                l->cap = cap;
        }
        l->v[l->n++] = v;
        return 0;
}

void policy_index_done(PolicyIndexTable *t) {
        for (size_t i = 0; i < t->n_slots; i++) {
                free(t->slots[i].key);
                for (unsigned b = 0; b < POLICY_N_PERMS; b++)
                        free(t->slots[i].perm[b].v);
        }
        free(t->slots);
        *t = (PolicyIndexTable) {};
}

/* ------------------------------------------------------------ index */

size_t policy_glob_prefix_len(const char *pattern) {
        return strcspn(pattern, "*?[\\");
}

int policy_build_index(Policy *p) {
        for (size_t i = 0; i < p->n_rules; i++) {
                const PolicyRule *rule = &p->rules[i];
                PolicyIndexEntry *e;
                int r;

                if (!rule->introspector)
                        r = policy_index_put(&p->prefix, "", 0, &e);
                else if (rule->introspector_glob) {
                        size_t n = policy_glob_prefix_len(rule->introspector);

                        p->max_prefix = MAX(p->max_prefix, n);
                        r = policy_index_put(&p->prefix, rule->introspector, n, &e);
                } else
                        r = policy_index_put(&p->exact, rule->introspector, strlen(rule->introspector), &e);
                if (r < 0)
                        return r;

                for (unsigned b = 0; b < POLICY_N_PERMS; b++)
                        if (rule->perms & (1U << b)) {
                                r = policy_rule_list_append(&e->perm[b], (uint32_t) i);
                                if (r < 0)
                                        return r;
                        }
        }
        return 0;
}

/* ------------------------------------------------------------ matching */

typedef enum Mismatch {
        MATCH,
        MISMATCH_INTROSPECTOR,
        MISMATCH_PERM,
        MISMATCH_TARGET,
} Mismatch;

static bool pattern_match(const char *pattern, bool glob, const char *s) {
        if (!s)
                return false;
        return glob ? fnmatch(pattern, s, 0) == 0 : streq(pattern, s);
}

static bool target_match(const PolicyRule *rule, const PolicyRequest *req) {
        switch (rule->target_kind) {
        case POLICY_TARGET_ANY:
                return true;
        case POLICY_TARGET_NAME:
                return pattern_match(rule->target, rule->target_glob, req->target_name);
        case POLICY_TARGET_UUID:
                return req->target_uuid && memcmp(req->target_uuid, rule->target_uuid, 16) == 0;
        case POLICY_TARGET_LABEL:
                for (size_t i = 0; i < req->n_target_labels; i++)
                        if (pattern_match(rule->target, rule->target_glob, req->target_labels[i]))
                                return true;
                return false;
        }
        return false;
}

static Mismatch rule_check(const PolicyRule *rule, const PolicyRequest *req) {
        if (rule->introspector && !pattern_match(rule->introspector, rule->introspector_glob, req->introspector))
                return MISMATCH_INTROSPECTOR;
        if (!(rule->perms & req->perm))
                return MISMATCH_PERM;
        if (!target_match(rule, req))
                return MISMATCH_TARGET;
        return MATCH;
}

static int request_check(const Policy *p, const PolicyRequest *req, unsigned *ret_bit) {
        if (!p || !req || !req->introspector)
                return -EINVAL;
        if (req->n_target_labels > 0 && !req->target_labels)
                return -EINVAL;
        for (unsigned b = 0; b < POLICY_N_PERMS; b++)
                if ((unsigned) req->perm == 1U << b) {
                        *ret_bit = b;
                        return 0;
                }
        return -EINVAL;
}

static int decide(const Policy *p, size_t i, PolicyDecision *ret) {
        PolicyDecision d;

        if (i == POLICY_RULE_DEFAULT)
                d = (PolicyDecision) {
                        .verdict = p->default_verdict,
                        .is_default = true,
                        .rule = POLICY_RULE_DEFAULT,
                        .file = p->default_file,
                        .line = p->default_line,
                };
        else {
                const PolicyRule *rule = &p->rules[i];

                d = (PolicyDecision) {
                        .verdict = rule->verdict,
                        .rule = i,
                        .file = rule->file,
                        .line = rule->line,
                        .limits = {
                                .max_mappings = rule->max_mappings,
                                .n_gpa_ranges = rule->n_gpa,
                                .gpa_ranges = rule->gpa,
                                .rate_count = rule->rate_count,
                                .rate_period_sec = rule->rate_period_sec,
                        },
                };
        }
        if (ret)
                *ret = d;
        return (int) d.verdict;
}

/* ------------------------------------------------------------ evaluate */

typedef struct Cursor {
        const uint32_t *v, *end;
} Cursor;

int policy_evaluate(const Policy *p, const PolicyRequest *req, PolicyDecision *ret) {
        /* one exact list plus one per prefix length 0..POLICY_PATTERN_MAX */
        Cursor cur[POLICY_PATTERN_MAX + 2];
        const PolicyIndexEntry *e;
        size_t n_cur = 0, len, k_max;
        uint64_t h;
        unsigned b;
        int r;

        r = request_check(p, req, &b);
        if (r < 0)
                return r;

        len = strlen(req->introspector);
        e = policy_index_get(&p->exact, req->introspector, len, policy_hash(req->introspector, len));
        if (e && e->perm[b].n > 0)
                cur[n_cur++] = (Cursor) { e->perm[b].v, e->perm[b].v + e->perm[b].n };

        k_max = MIN(len, p->max_prefix);
        h = FNV_OFFSET;
        for (size_t k = 0;; k++) {
                e = policy_index_get(&p->prefix, req->introspector, k, h);
                if (e && e->perm[b].n > 0)
                        cur[n_cur++] = (Cursor) { e->perm[b].v, e->perm[b].v + e->perm[b].n };
                if (k == k_max)
                        break;
                h = fnv_step(h, req->introspector[k]);
        }

        /* Merge the candidate lists in rule order: the first candidate that
         * matches is the first rule of the whole policy that matches. */
        for (;;) {
                size_t best = SIZE_MAX;
                uint32_t i;

                for (size_t c = 0; c < n_cur; c++)
                        if (cur[c].v < cur[c].end && (best == SIZE_MAX || *cur[c].v < *cur[best].v))
                                best = c;
                if (best == SIZE_MAX)
                        break;
                i = *cur[best].v++;
                if (rule_check(&p->rules[i], req) == MATCH)
                        return decide(p, i, ret);
        }
        return decide(p, POLICY_RULE_DEFAULT, ret);
}

/* ------------------------------------------------------------ explain */

/* How many skipped rules explain lists before it only counts them. */
#define EXPLAIN_SKIPPED_MAX 64U

/* Request strings come from outside the policy (libvirt, the command
 * line): escape what a terminal would act on. */
static void buf_request_value(PolicyBuf *b, const char *s) {
        bool plain = true;

        if (!s) {
                policy_buf_puts(b, "(unknown)");
                return;
        }
        for (const char *c = s; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        plain = false;
        if (plain) {
                policy_buf_value(b, s);
                return;
        }
        policy_buf_append(b, "\"", 1);
        for (const char *c = s; *c; c++) {
                unsigned char u = (unsigned char) *c;

                if (u < 0x20 || u == 0x7f)
                        policy_buf_printf(b, "\\x%02x", u);
                else {
                        if (u == '"' || u == '\\')
                                policy_buf_append(b, "\\", 1);
                        policy_buf_append(b, c, 1);
                }
        }
        policy_buf_append(b, "\"", 1);
}

static void buf_target_reason(PolicyBuf *b, const PolicyRule *rule, const PolicyRequest *req) {
        char u[37];

        switch (rule->target_kind) {
        case POLICY_TARGET_ANY:
                break;
        case POLICY_TARGET_NAME:
                if (!req->target_name) {
                        policy_buf_puts(b, "the target's name is not known");
                        break;
                }
                policy_buf_puts(b, "target name ");
                buf_request_value(b, req->target_name);
                policy_buf_printf(b, " %s ", rule->target_glob ? "does not match" : "is not");
                policy_buf_value(b, rule->target);
                break;
        case POLICY_TARGET_UUID:
                policy_uuid_to_string(rule->target_uuid, u);
                if (!req->target_uuid)
                        policy_buf_printf(b, "the target's uuid is not known (rule wants %s)", u);
                else {
                        char v[37];

                        policy_uuid_to_string(req->target_uuid, v);
                        policy_buf_printf(b, "target uuid %s is not %s", v, u);
                }
                break;
        case POLICY_TARGET_LABEL:
                if (req->n_target_labels == 0)
                        policy_buf_puts(b, "the target carries no labels");
                else {
                        policy_buf_printf(b, "no label of the target %s ", rule->target_glob ? "matches" : "is");
                        policy_buf_value(b, rule->target);
                }
                break;
        }
}

int policy_explain(const Policy *p, const PolicyRequest *req, PolicyDecision *ret_decision, char **ret_text) {
        PolicyBuf b = {};
        PolicyDecision d;
        size_t other = 0, shown = 0, hidden = 0, i;
        unsigned bit;
        char u[37];
        int r;

        r = request_check(p, req, &bit);
        if (r < 0)
                return r;

        policy_buf_puts(&b, "request: introspector=");
        buf_request_value(&b, req->introspector);
        policy_buf_puts(&b, " target=");
        buf_request_value(&b, req->target_name);
        if (req->target_uuid) {
                policy_uuid_to_string(req->target_uuid, u);
                policy_buf_printf(&b, " uuid=%s", u);
        }
        if (req->n_target_labels > 0) {
                policy_buf_puts(&b, " labels=");
                for (size_t l = 0; l < req->n_target_labels; l++) {
                        if (l > 0)
                                policy_buf_append(&b, ",", 1);
                        buf_request_value(&b, req->target_labels[l]);
                }
        }
        policy_buf_printf(&b, " perm=%s\n", policy_perm_to_string(req->perm));

        for (i = 0; i < p->n_rules; i++) {
                const PolicyRule *rule = &p->rules[i];
                Mismatch m = rule_check(rule, req);

                if (m == MATCH)
                        break;
                if (m == MISMATCH_INTROSPECTOR) {
                        other++;
                        continue;
                }
                if (shown >= EXPLAIN_SKIPPED_MAX) {
                        hidden++;
                        continue;
                }
                shown++;
                policy_buf_printf(&b, "skip  %s:%u: ", rule->file, rule->line);
                policy_buf_rule(&b, p, i);
                policy_buf_puts(&b, "\n      because ");
                if (m == MISMATCH_PERM)
                        policy_buf_printf(&b, "the rule does not cover perm %s", policy_perm_to_string(req->perm));
                else
                        buf_target_reason(&b, rule, req);
                policy_buf_append(&b, "\n", 1);
        }
        if (hidden > 0)
                policy_buf_printf(&b, "skip  (%zu more rules for this introspector, not listed)\n", hidden);
        if (other > 0)
                policy_buf_printf(&b, "skip  (%zu %s for other introspectors)\n", other, other == 1 ? "rule" : "rules");

        (void) decide(p, i < p->n_rules ? i : POLICY_RULE_DEFAULT, &d);
        policy_buf_printf(&b, "match %s:%u: ", d.file, d.line);
        policy_buf_rule(&b, p, d.rule);
        policy_buf_printf(&b, "\ndecision: %s%s\n", policy_verdict_to_string(d.verdict),
                          d.is_default ? " (no rule matched; the default decides)" : "");
        if (!d.is_default && d.verdict == POLICY_ALLOW) {
                const PolicyRule *rule = &p->rules[d.rule];

                if (rule->max_mappings || rule->n_gpa || rule->rate_count) {
                        policy_buf_puts(&b, "limits: ");
                        policy_buf_limits(&b, rule, " ");
                        policy_buf_append(&b, "\n", 1);
                }
        }

        if (ret_text) {
                r = policy_buf_steal(&b, ret_text);
                if (r < 0)
                        return r;
        } else
                policy_buf_done(&b);
        if (ret_decision)
                *ret_decision = d;
        return (int) d.verdict;
}
