/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Policy snapshot lifetime, the canonical printer and the digest.
 *
 * The canonical form is what "kvmictl policy show" prints and what the
 * digest covers: rules in evaluation order, options in a fixed order, the
 * minimum of quoting, the default last.  Comments, spacing, option order
 * and file boundaries do not change it, so two policies with the same
 * digest decide every request the same way. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "policy-internal.h"

/* ------------------------------------------------------------ lifetime */

Policy *policy_new(void) {
        Policy *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->n_ref = 1;
        p->default_verdict = POLICY_DENY;
        return p;
}

void policy_free(Policy *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_rules; i++) {
                free(p->rules[i].introspector);
                free(p->rules[i].target);
                free(p->rules[i].gpa);
        }
        free(p->rules);
        for (size_t i = 0; i < p->n_files; i++)
                free(p->files[i]);
        free(p->files);
        policy_index_done(&p->exact);
        policy_index_done(&p->prefix);
        free(p);
}

Policy *policy_ref(Policy *p) {
        if (p)
                __atomic_add_fetch(&p->n_ref, 1, __ATOMIC_RELAXED);
        return p;
}

Policy *policy_unref(Policy *p) {
        if (p && __atomic_sub_fetch(&p->n_ref, 1, __ATOMIC_ACQ_REL) == 0)
                policy_free(p);
        return NULL;
}

size_t policy_n_rules(const Policy *p) {
        return p ? p->n_rules : 0;
}

PolicyVerdict policy_default_verdict(const Policy *p) {
        return p ? p->default_verdict : POLICY_DENY;
}

const char *policy_digest(const Policy *p) {
        return p ? p->digest : NULL;
}

/* ------------------------------------------------------------ names */

static const char *const perm_names[POLICY_N_PERMS] = { "attach", "events", "map" };

const char *policy_perm_to_string(PolicyPermission perm) {
        switch (perm) {
        case POLICY_PERM_ATTACH: return perm_names[0];
        case POLICY_PERM_EVENTS: return perm_names[1];
        case POLICY_PERM_MAP: return perm_names[2];
        case POLICY_PERM_ALL: return "all";
        }
        return NULL;
}

int policy_perm_from_string(const char *s, PolicyPermission *ret) {
        static const PolicyPermission perms[] = { POLICY_PERM_ATTACH, POLICY_PERM_EVENTS, POLICY_PERM_MAP, POLICY_PERM_ALL };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(perms); i++)
                if (streq(s, policy_perm_to_string(perms[i]))) {
                        if (ret)
                                *ret = perms[i];
                        return 0;
                }
        return -EINVAL;
}

const char *policy_verdict_to_string(PolicyVerdict v) {
        return v == POLICY_ALLOW ? "allow" : v == POLICY_DENY ? "deny" : NULL;
}

const char *policy_rate_unit(unsigned period_sec) {
        switch (period_sec) {
        case 1: return "s";
        case 60: return "min";
        case 3600: return "h";
        }
        return "?";
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int policy_uuid_from_string(const char *s, uint8_t ret[16]) {
        uint8_t u[16];
        size_t j = 0;

        if (!s || strlen(s) != 36)
                return -EINVAL;
        for (size_t i = 0; i < 36;) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                        i++;
                        continue;
                }
                int hi = unhex(s[i]), lo = unhex(s[i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                u[j++] = (uint8_t) (hi << 4 | lo);
                i += 2;
        }
        memcpy(ret, u, sizeof(u));
        return 0;
}

void policy_uuid_to_string(const uint8_t u[16], char s[37]) {
        (void) snprintf(s, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                        u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
                        u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

bool policy_limits_allow_gpa(const PolicyLimits *l, uint64_t gpa, uint64_t size) {
        uint64_t last;

        if (!l || size == 0 || gpa > UINT64_MAX - (size - 1))
                return false;
        if (l->n_gpa_ranges == 0)
                return true;
        last = gpa + (size - 1);
        for (size_t i = 0; i < l->n_gpa_ranges; i++)
                if (l->gpa_ranges[i].start <= gpa && last <= l->gpa_ranges[i].end)
                        return true;
        return false;
}

/* ------------------------------------------------------------ buffer */

static bool buf_reserve(PolicyBuf *b, size_t extra) {
        size_t cap;
        char *s;

        if (b->oom)
                return false;
        if (extra < b->cap - b->len)
                return true;
        if (extra > SIZE_MAX / 2 - b->len) {
                b->oom = true;
                return false;
        }
        cap = MAX(b->cap * 2, b->len + extra + 1);
        cap = MAX(cap, (size_t) 256);
        s = realloc(b->s, cap);
        if (!s) {
                b->oom = true;
                return false;
        }
        b->s = s;
        b->cap = cap;
        return true;
}

void policy_buf_append(PolicyBuf *b, const char *s, size_t n) {
        if (!buf_reserve(b, n))
                return;
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = 0;
}

void policy_buf_puts(PolicyBuf *b, const char *s) {
        policy_buf_append(b, s, strlen(s));
}

void policy_buf_printf(PolicyBuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->oom = true;
                return;
        }
        if (!buf_reserve(b, (size_t) n))
                return;
        va_start(ap, fmt);
        (void) vsnprintf(b->s + b->len, (size_t) n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t) n;
}

void policy_buf_value(PolicyBuf *b, const char *s) {
        /* The lexer splits words at blanks and quotes; nothing else in a
         * value is special (a backslash outside quotes is kept as is). */
        if (*s && !strpbrk(s, " \t\"")) {
                policy_buf_puts(b, s);
                return;
        }
        policy_buf_append(b, "\"", 1);
        for (const char *c = s; *c; c++) {
                if (*c == '"' || *c == '\\')
                        policy_buf_append(b, "\\", 1);
                policy_buf_append(b, c, 1);
        }
        policy_buf_append(b, "\"", 1);
}

int policy_buf_steal(PolicyBuf *b, char **ret) {
        if (!b->oom && !b->s)
                (void) buf_reserve(b, 0);
        if (b->oom) {
                policy_buf_done(b);
                return -ENOMEM;
        }
        b->s[b->len] = 0;
        *ret = TAKE_PTR(b->s);
        b->len = b->cap = 0;
        return 0;
}

void policy_buf_done(PolicyBuf *b) {
        b->s = mfree(b->s);
        b->len = b->cap = 0;
        b->oom = false;
}

/* ------------------------------------------------------------ printer */

void policy_buf_perms(PolicyBuf *b, unsigned perms) {
        bool first = true;

        if (perms == POLICY_PERM_ALL) {
                policy_buf_puts(b, "all");
                return;
        }
        for (unsigned i = 0; i < POLICY_N_PERMS; i++)
                if (perms & (1U << i)) {
                        if (!first)
                                policy_buf_append(b, ",", 1);
                        policy_buf_puts(b, perm_names[i]);
                        first = false;
                }
}

void policy_buf_limits(PolicyBuf *b, const PolicyRule *r, const char *sep) {
        const char *s = "";

        if (r->max_mappings > 0) {
                policy_buf_printf(b, "%smax-mappings=%u", s, r->max_mappings);
                s = sep;
        }
        if (r->n_gpa > 0) {
                policy_buf_printf(b, "%sgpa=", s);
                for (size_t i = 0; i < r->n_gpa; i++)
                        policy_buf_printf(b, "%s0x%" PRIx64 "-0x%" PRIx64, i > 0 ? "," : "",
                                          r->gpa[i].start, r->gpa[i].end);
                s = sep;
        }
        if (r->rate_count > 0)
                policy_buf_printf(b, "%srate=%u/%s", s, r->rate_count, policy_rate_unit(r->rate_period_sec));
}

static void buf_target(PolicyBuf *b, const PolicyRule *r) {
        char u[37];

        switch (r->target_kind) {
        case POLICY_TARGET_ANY:
                policy_buf_puts(b, "any");
                break;
        case POLICY_TARGET_UUID:
                policy_uuid_to_string(r->target_uuid, u);
                policy_buf_printf(b, "uuid:%s", u);
                break;
        case POLICY_TARGET_LABEL:
                policy_buf_puts(b, "label:");
                policy_buf_value(b, r->target);
                break;
        case POLICY_TARGET_NAME:
                /* "any" and "kind:..." would read as something else */
                if (streq(r->target, "any") || strchr(r->target, ':'))
                        policy_buf_puts(b, "name:");
                policy_buf_value(b, r->target);
                break;
        }
}

void policy_buf_rule(PolicyBuf *b, const Policy *p, size_t i) {
        const PolicyRule *r;

        if (i == POLICY_RULE_DEFAULT) {
                policy_buf_printf(b, "default %s", policy_verdict_to_string(p->default_verdict));
                return;
        }
        r = &p->rules[i];
        policy_buf_printf(b, "%s introspector=", policy_verdict_to_string(r->verdict));
        if (r->introspector)
                policy_buf_value(b, r->introspector);
        else
                policy_buf_puts(b, "any");
        policy_buf_puts(b, " target=");
        buf_target(b, r);
        policy_buf_puts(b, " perm=");
        policy_buf_perms(b, r->perms);
        if (r->max_mappings > 0 || r->n_gpa > 0 || r->rate_count > 0) {
                policy_buf_append(b, " ", 1);
                policy_buf_limits(b, r, " ");
        }
}

int policy_format_rule(const Policy *p, size_t rule, char **ret) {
        PolicyBuf b = {};

        if (!p || !ret)
                return -EINVAL;
        if (rule != POLICY_RULE_DEFAULT && rule >= p->n_rules)
                return -ERANGE;
        policy_buf_rule(&b, p, rule);
        return policy_buf_steal(&b, ret);
}

int policy_format(const Policy *p, char **ret) {
        PolicyBuf b = {};

        if (!p || !ret)
                return -EINVAL;
        for (size_t i = 0; i < p->n_rules; i++) {
                policy_buf_rule(&b, p, i);
                policy_buf_append(&b, "\n", 1);
        }
        policy_buf_rule(&b, p, POLICY_RULE_DEFAULT);
        policy_buf_append(&b, "\n", 1);
        return policy_buf_steal(&b, ret);
}

/* ------------------------------------------------------------ digest */

static int digest_compute(const char *text, char hex[65]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;

        if (EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
                return -EIO;
        for (unsigned i = 0; i < n; i++)
                (void) snprintf(hex + 2 * i, 3, "%02x", md[i]);
        return 0;
}

int policy_finalize(Policy *p) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = policy_build_index(p);
        if (r < 0)
                return r;
        r = policy_format(p, &text);
        if (r < 0)
                return r;
        return digest_compute(text, p->digest);
}
