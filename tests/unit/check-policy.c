/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The policy engine: corpus (good/ round-trips, bad/ fails where it says),
 * evaluation tables, the index against a linear scan, drop-ins, limits,
 * the canonical printer and digest, explain. */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "policy.h"

#ifndef POLICY_CORPUS
#define POLICY_CORPUS TOP_SRCDIR "/tests/policy"
#endif

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

/* ------------------------------------------------------------ helpers */

static char *read_all(const char *path) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        char *s = NULL;
        size_t n = 0;
        ssize_t k;

        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        k = getdelim(&s, &n, '\0', f);
        ck_assert_int_ge(k, 0);
        return s;
}

static void write_file(const char *path, const char *text) {
        _cleanup_(fclosep) FILE *f = fopen(path, "we");

        ck_assert_msg(f, "%s: %s", path, strerror(errno));
        ck_assert_int_eq(fputs(text, f) >= 0, 1);
}

static char *make_tmpdir(void) {
        char *d = strdup("/tmp/check-policy-XXXXXX");

        ck_assert_ptr_nonnull(mkdtemp(d));
        return d;
}

static void rm_rf(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                ck_assert_int_ge(asprintf(&p, "%s/%s", dir, de->d_name), 0);
                if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                        rm_rf(p);
                else
                        (void) unlink(p);
        }
        closedir(d);
        (void) rmdir(dir);
}

typedef struct Names {
        char **v;
        size_t n;
} Names;

static void names_done(Names *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Full paths of dir/ *.policy, sorted. */
static Names corpus(const char *sub) {
        _cleanup_free_ char *dir = NULL;
        Names l = {};
        DIR *d;
        struct dirent *de;

        ck_assert_int_ge(asprintf(&dir, "%s/%s", POLICY_CORPUS, sub), 0);
        d = opendir(dir);
        ck_assert_msg(d, "%s: %s", dir, strerror(errno));
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);

                if (n < 8 || !streq(de->d_name + n - 7, ".policy"))
                        continue;
                l.v = realloc(l.v, (l.n + 1) * sizeof(char *));
                ck_assert_int_ge(asprintf(&l.v[l.n++], "%s/%s", dir, de->d_name), 0);
        }
        closedir(d);
        qsort(l.v, l.n, sizeof(char *), cmp_str);
        return l;
}

/* Parse text; on failure return the error with "name:" stripped. */
static char *parse(const char *text, Policy **ret) {
        char *error = NULL;
        int r = policy_parse_string("t", text, ret, &error);

        if (r < 0) {
                ck_assert_ptr_nonnull(error);
                ck_assert_msg(strneq(error, "t:", 2), "%s", error);
                memmove(error, error + 2, strlen(error + 2) + 1);
                return error;
        }
        ck_assert_int_eq(r, 0);
        ck_assert_ptr_null(error);
        return NULL;
}

static Policy *parse_ok(const char *text) {
        Policy *p = NULL;
        _cleanup_free_ char *e = parse(text, &p);

        ck_assert_msg(!e, "unexpected error: %s", e);
        return p;
}

/* A request built from "introspector=X target=Y uuid=U labels=a,b perm=P"
 * words; values may be double-quoted. */
typedef struct Req {
        char *introspector, *target, *labels_text;
        uint8_t uuid[16];
        bool has_uuid;
        char *labels[8];
        size_t n_labels;
        PolicyPermission perm;
        PolicyRequest req;
} Req;

static void req_done(Req *r) {
        free(r->introspector);
        free(r->target);
        free(r->labels_text);
}

/* Next word of s at *pos (quotes group, \" and \\ escape); NULL at end. */
static char *next_word(const char *s, size_t *pos) {
        size_t i = *pos, o = 0;
        bool q = false;
        char *w;

        while (s[i] == ' ')
                i++;
        if (!s[i])
                return NULL;
        w = malloc(strlen(s) + 1);
        for (; s[i] && (q || s[i] != ' '); i++) {
                if (s[i] == '"') {
                        q = !q;
                        continue;
                }
                if (q && s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\'))
                        i++;
                w[o++] = s[i];
        }
        w[o] = 0;
        *pos = i;
        return w;
}

static void req_set(Req *r, const char *word) {
        const char *eq = strchr(word, '=');
        const char *v;

        ck_assert_msg(eq, "bad request word %s", word);
        v = eq + 1;
        if (strneq(word, "introspector=", 13))
                r->introspector = strdup(v);
        else if (strneq(word, "target=", 7))
                r->target = strdup(v);
        else if (strneq(word, "uuid=", 5)) {
                ck_assert_int_eq(policy_uuid_from_string(v, r->uuid), 0);
                r->has_uuid = true;
        } else if (strneq(word, "labels=", 7)) {
                char *save = NULL;

                r->labels_text = strdup(v);
                for (char *t = strtok_r(r->labels_text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                        ck_assert_uint_lt(r->n_labels, ELEMENTSOF(r->labels));
                        r->labels[r->n_labels++] = t;
                }
        } else if (strneq(word, "perm=", 5))
                ck_assert_int_eq(policy_perm_from_string(v, &r->perm), 0);
        else
                ck_abort_msg("bad request word %s", word);
}

static const PolicyRequest *req_finish(Req *r) {
        r->req = (PolicyRequest) {
                .introspector = r->introspector,
                .target_name = r->target,
                .target_uuid = r->has_uuid ? r->uuid : NULL,
                .target_labels = (const char *const *) r->labels,
                .n_target_labels = r->n_labels,
                .perm = r->perm,
        };
        return &r->req;
}

/* ------------------------------------------------------------ corpus */

/* Run every "# check: REQUEST -> allow|deny LINE|default" line of text
 * against p (and against q, the reparsed canonical form: same verdict,
 * same rule). Returns the number of checks. */
static unsigned run_checks(const char *path, const char *text, const Policy *p, const Policy *q) {
        unsigned n = 0, line = 1;

        for (const char *s = text; *s; line++) {
                const char *nl = strchr(s, '\n');
                _cleanup_free_ char *l = strndup(s, nl ? (size_t) (nl - s) : strlen(s));
                _cleanup_(req_done) Req r = {};
                _cleanup_free_ char *verdict = NULL, *where = NULL;
                PolicyDecision d, e, x;
                size_t pos = 9;
                char *w;
                int rv;

                s = nl ? nl + 1 : s + strlen(s);
                if (l[0] && l[strlen(l) - 1] == '\r')
                        l[strlen(l) - 1] = 0;
                if (!strneq(l, "# check: ", 9))
                        continue;
                while ((w = next_word(l, &pos)) && !streq(w, "->")) {
                        req_set(&r, w);
                        free(w);
                }
                ck_assert_msg(w, "%s:%u: check line without ->", path, line);
                free(w);
                verdict = next_word(l, &pos);
                where = next_word(l, &pos);
                ck_assert_msg(verdict && where, "%s:%u: check line without verdict and line", path, line);

                rv = policy_evaluate(p, req_finish(&r), &d);
                ck_assert_int_ge(rv, 0);
                ck_assert_int_eq(rv, (int) d.verdict);
                ck_assert_msg(streq(policy_verdict_to_string(d.verdict), verdict), "%s:%u: got %s by %s:%u", path,
                              line, policy_verdict_to_string(d.verdict), d.file, d.line);
                if (streq(where, "default"))
                        ck_assert_msg(d.is_default, "%s:%u: decided by %s:%u, not the default", path, line, d.file, d.line);
                else {
                        ck_assert_msg(!d.is_default, "%s:%u: decided by the default", path, line);
                        ck_assert_msg(d.line == (unsigned) atoi(where), "%s:%u: decided by line %u", path, line, d.line);
                        ck_assert_str_eq(d.file, path);
                }

                /* the reference scan agrees, and so does the canonical form */
                ck_assert_int_eq(policy_explain(p, &r.req, &x, NULL), rv);
                ck_assert_uint_eq(x.rule, d.rule);
                ck_assert_int_eq(policy_evaluate(q, &r.req, &e), rv);
                ck_assert_uint_eq(e.rule, d.rule);
                ck_assert_int_eq(e.is_default, d.is_default);
                ck_assert_uint_eq(e.limits.max_mappings, d.limits.max_mappings);
                ck_assert_uint_eq(e.limits.n_gpa_ranges, d.limits.n_gpa_ranges);
                ck_assert_uint_eq(e.limits.rate_count, d.limits.rate_count);
                ck_assert_uint_eq(e.limits.rate_period_sec, d.limits.rate_period_sec);
                n++;
        }
        return n;
}

START_TEST(test_good_corpus) {
        _cleanup_(names_done) Names files = corpus("good");
        unsigned checks = 0;

        ck_assert_uint_ge(files.n, 8);
        for (size_t i = 0; i < files.n; i++) {
                _cleanup_(policy_unrefp) Policy *p = NULL, *q = NULL;
                _cleanup_free_ char *text = read_all(files.v[i]);
                _cleanup_free_ char *error = NULL, *f1 = NULL, *f2 = NULL;
                int r;

                r = policy_load(files.v[i], NULL, &p, &error);
                ck_assert_msg(r == 0, "%s: %s", files.v[i], error);

                /* print, parse, print: identical text, identical digest */
                ck_assert_int_eq(policy_format(p, &f1), 0);
                r = policy_parse_string("canonical", f1, &q, &error);
                ck_assert_msg(r == 0, "%s: canonical form does not parse: %s\n%s", files.v[i], error, f1);
                ck_assert_int_eq(policy_format(q, &f2), 0);
                ck_assert_str_eq(f1, f2);
                ck_assert_str_eq(policy_digest(p), policy_digest(q));
                ck_assert_uint_eq(policy_n_rules(p), policy_n_rules(q));
                ck_assert_int_eq(policy_default_verdict(p), policy_default_verdict(q));

                checks += run_checks(files.v[i], text, p, q);
        }
        ck_assert_uint_ge(checks, 40);
}
END_TEST

START_TEST(test_bad_corpus) {
        _cleanup_(names_done) Names files = corpus("bad");

        ck_assert_uint_ge(files.n, 12);
        for (size_t i = 0; i < files.n; i++) {
                _cleanup_(policy_unrefp) Policy *p = NULL;
                _cleanup_free_ char *text = read_all(files.v[i]);
                _cleanup_free_ char *error = NULL, *expect = NULL;
                const char *nl = strchr(text, '\n');
                size_t plen = strlen(files.v[i]);
                char *at;
                int r;

                /* a file whose error is its byte order mark has it before the expectation */
                const char *head = strneq(text, "\xef\xbb\xbf", 3) ? text + 3 : text;

                ck_assert_msg(strneq(head, "# expect: ", 10) && nl, "%s: first line is not \"# expect: LINE:COL: message\"",
                              files.v[i]);
                expect = strndup(head + 10, (size_t) (nl - head) - 10);
                /* "FILE" in the expectation stands for this file's path */
                while ((at = strstr(expect, "FILE"))) {
                        char *e2 = NULL;

                        ck_assert_int_ge(asprintf(&e2, "%.*s%s%s", (int) (at - expect), expect, files.v[i], at + 4), 0);
                        free(expect);
                        expect = e2;
                }

                r = policy_load(files.v[i], NULL, &p, &error);
                ck_assert_msg(r < 0, "%s: parsed, but should fail with %s", files.v[i], expect);
                ck_assert_ptr_null(p);
                ck_assert_ptr_nonnull(error);
                ck_assert_msg(strneq(error, files.v[i], plen) && error[plen] == ':', "%s: error without the file name: %s",
                              files.v[i], error);
                ck_assert_msg(streq(error + plen + 1, expect), "%s:\n  expected %s\n  got      %s", files.v[i], expect,
                              error + plen + 1);
        }
}
END_TEST

/* ------------------------------------------------------------ evaluation */

static const char table_policy[] =
        "# evaluation table policy\n"
        "deny introspector=any target=label:quarantine perm=all\n"
        "allow introspector=forensics target=web-* perm=all max-mappings=64 gpa=0x0-0xfffff rate=20/s\n"
        "allow introspector=forensics target=db-? perm=attach,events\n"
        "deny introspector=forensics-* target=any perm=map\n"
        "allow introspector=forensics-* target=any perm=attach,events\n"
        "allow introspector=av* target=label:\"tier 1\" perm=events\n"
        "allow introspector=av-scanner target=any perm=attach\n"
        "allow introspector=memdump target=uuid:6F1D4A4E-8C55-4B4E-9D1E-2A7B3C4D5E6F perm=map max-mappings=8\n"
        "allow introspector=[xy]ray target=name:odd:name perm=all\n"
        "allow introspector=\"spaced name\" target=\"my vm\" perm=attach\n"
        "deny introspector=* target=web-secret perm=all\n"
        "allow introspector=any target=web-* perm=events\n"
        "default deny\n";

#define U1 "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f"
#define U2 "00000000-0000-0000-0000-000000000001"

static const struct {
        const char *introspector, *target, *uuid, *labels;
        const char *perm, *verdict;
        unsigned line;           /* 0: the default (line 14) */
} table[] = {
        { "forensics", "web-1", NULL, NULL, "attach", "allow", 3 },
        { "forensics", "web-1", NULL, "quarantine", "attach", "deny", 2 },
        { "forensics", "web-1", NULL, "a,b,quarantine", "map", "deny", 2 },
        { "forensics", "web-1", NULL, "a,b", "map", "allow", 3 },
        { "forensics", "web-secret", NULL, NULL, "attach", "allow", 3 },
        { "forensics", "db-1", NULL, NULL, "events", "allow", 4 },
        { "forensics", "db-10", NULL, NULL, "events", "deny", 0 },
        { "forensics", "db-1", NULL, NULL, "map", "deny", 0 },
        { "forensics", NULL, NULL, NULL, "attach", "deny", 0 },
        { "forensics-2", "db-1", NULL, NULL, "map", "deny", 5 },
        { "forensics-2", "anything", NULL, NULL, "attach", "allow", 6 },
        { "forensics-2", "web-1", NULL, "quarantine", "events", "deny", 2 },
        { "forensics-", "x", NULL, NULL, "events", "allow", 6 },
        { "forensicsx", "x", NULL, NULL, "events", "deny", 0 },
        { "av-scanner", "x", NULL, "tier 1", "events", "allow", 7 },
        { "av", "x", NULL, "tier 1", "events", "allow", 7 },
        { "av-scanner", "x", NULL, "tier", "events", "deny", 0 },
        { "av-scanner", "x", NULL, NULL, "attach", "allow", 8 },
        { "av-scanner", "web-2", NULL, NULL, "events", "allow", 13 },
        { "av-scanner", "web-secret", NULL, NULL, "events", "deny", 12 },
        { "avast", "x", NULL, NULL, "attach", "deny", 0 },
        { "memdump", "renamed", U1, NULL, "map", "allow", 9 },
        { "memdump", "renamed", U2, NULL, "map", "deny", 0 },
        { "memdump", "renamed", NULL, NULL, "map", "deny", 0 },
        { "memdump", "renamed", U1, NULL, "attach", "deny", 0 },
        { "xray", "odd:name", NULL, NULL, "map", "allow", 10 },
        { "yray", "odd:name", NULL, NULL, "attach", "allow", 10 },
        { "zray", "odd:name", NULL, NULL, "attach", "deny", 0 },
        { "xray", "name:odd:name", NULL, NULL, "attach", "deny", 0 },
        { "spaced name", "my vm", NULL, NULL, "attach", "allow", 11 },
        { "spaced", "my vm", NULL, NULL, "attach", "deny", 0 },
        { "nobody", "web-1", NULL, NULL, "events", "allow", 13 },
        { "nobody", "web-1", NULL, NULL, "attach", "deny", 0 },
        { "nobody", "web-secret", NULL, NULL, "events", "deny", 12 },
        { "", "web-1", NULL, NULL, "events", "allow", 13 },
};

START_TEST(test_table) {
        _cleanup_(policy_unrefp) Policy *p = parse_ok(table_policy);
        _cleanup_free_ char *labels = table[_i].labels ? strdup(table[_i].labels) : NULL;
        const char *lv[8];
        size_t n = 0;
        uint8_t u[16];
        PolicyDecision d, x;
        char *save = NULL;
        int r;

        for (char *t = labels ? strtok_r(labels, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
                lv[n++] = t;
        if (table[_i].uuid)
                ck_assert_int_eq(policy_uuid_from_string(table[_i].uuid, u), 0);

        PolicyRequest req = {
                .introspector = table[_i].introspector,
                .target_name = table[_i].target,
                .target_uuid = table[_i].uuid ? u : NULL,
                .target_labels = lv,
                .n_target_labels = n,
        };
        ck_assert_int_eq(policy_perm_from_string(table[_i].perm, &req.perm), 0);

        r = policy_evaluate(p, &req, &d);
        ck_assert_int_eq(r, streq(table[_i].verdict, "allow") ? POLICY_ALLOW : POLICY_DENY);
        ck_assert_int_eq((int) d.verdict, r);
        ck_assert_uint_eq(d.line, table[_i].line ?: 14);
        ck_assert_int_eq(d.is_default, table[_i].line == 0);
        ck_assert_uint_eq(d.rule, table[_i].line ? table[_i].line - 2 : POLICY_RULE_DEFAULT);
        ck_assert_str_eq(d.file, "t");

        ck_assert_int_eq(policy_explain(p, &req, &x, NULL), r);
        ck_assert_uint_eq(x.rule, d.rule);
}
END_TEST

START_TEST(test_limits_in_decision) {
        _cleanup_(policy_unrefp) Policy *p = parse_ok(table_policy);
        PolicyRequest req = { .introspector = "forensics", .target_name = "web-1", .perm = POLICY_PERM_MAP };
        PolicyDecision d;

        ck_assert_int_eq(policy_evaluate(p, &req, &d), POLICY_ALLOW);
        ck_assert_uint_eq(d.limits.max_mappings, 64);
        ck_assert_uint_eq(d.limits.n_gpa_ranges, 1);
        ck_assert_uint_eq(d.limits.gpa_ranges[0].start, 0);
        ck_assert_uint_eq(d.limits.gpa_ranges[0].end, 0xfffff);
        ck_assert_uint_eq(d.limits.rate_count, 20);
        ck_assert_uint_eq(d.limits.rate_period_sec, 1);
        ck_assert(policy_limits_allow_gpa(&d.limits, 0, 4096));
        ck_assert(policy_limits_allow_gpa(&d.limits, 0xff000, 4096));
        ck_assert(!policy_limits_allow_gpa(&d.limits, 0xff000, 4097));
        ck_assert(!policy_limits_allow_gpa(&d.limits, 0x100000, 1));
        ck_assert(!policy_limits_allow_gpa(&d.limits, 0, 0));
        ck_assert(!policy_limits_allow_gpa(&d.limits, UINT64_MAX, 2));

        /* a deny and the default carry no limits */
        req.introspector = "forensics-1";
        ck_assert_int_eq(policy_evaluate(p, &req, &d), POLICY_DENY);
        ck_assert_uint_eq(d.limits.max_mappings, 0);
        ck_assert_uint_eq(d.limits.n_gpa_ranges, 0);
        ck_assert(policy_limits_allow_gpa(&d.limits, 0x123456000, 4096));
        req.introspector = "none";
        ck_assert_int_eq(policy_evaluate(p, &req, &d), POLICY_DENY);
        ck_assert(d.is_default);
        ck_assert_uint_eq(d.limits.rate_count, 0);

        /* several ranges: sorted, a request must fit in one of them */
        _cleanup_(policy_unrefp) Policy *q =
                parse_ok("allow introspector=a target=any perm=map gpa=0x3000-0x3fff,0x0-0xfff,0x1000-0x1fff rate=5/min\n"
                         "default deny\n");
        req.introspector = "a";
        ck_assert_int_eq(policy_evaluate(q, &req, &d), POLICY_ALLOW);
        ck_assert_uint_eq(d.limits.n_gpa_ranges, 3);
        ck_assert_uint_eq(d.limits.gpa_ranges[0].start, 0);
        ck_assert_uint_eq(d.limits.gpa_ranges[1].start, 0x1000);
        ck_assert_uint_eq(d.limits.gpa_ranges[2].start, 0x3000);
        ck_assert(policy_limits_allow_gpa(&d.limits, 0x3800, 0x800));
        ck_assert(!policy_limits_allow_gpa(&d.limits, 0x2000, 1));
        /* adjacent ranges stay separate: a mapping may not straddle them */
        ck_assert(!policy_limits_allow_gpa(&d.limits, 0xf00, 0x200));
        ck_assert_uint_eq(d.limits.rate_count, 5);
        ck_assert_uint_eq(d.limits.rate_period_sec, 60);
}
END_TEST

START_TEST(test_bad_requests) {
        _cleanup_(policy_unrefp) Policy *p = parse_ok("default allow\n");
        PolicyRequest req = { .introspector = "a", .perm = POLICY_PERM_ATTACH };
        PolicyDecision d = { .line = 12345 };
        char *text = NULL;

        ck_assert_int_eq(policy_evaluate(p, &req, &d), POLICY_ALLOW);
        ck_assert(d.is_default);
        ck_assert_uint_eq(d.line, 1);
        d.line = 12345;
        req.perm = POLICY_PERM_ALL;
        ck_assert_int_eq(policy_evaluate(p, &req, &d), -EINVAL);
        req.perm = 0;
        ck_assert_int_eq(policy_evaluate(p, &req, &d), -EINVAL);
        req.perm = 8;
        ck_assert_int_eq(policy_evaluate(p, &req, &d), -EINVAL);
        ck_assert_int_eq(policy_explain(p, &req, &d, &text), -EINVAL);
        req.perm = POLICY_PERM_MAP;
        req.introspector = NULL;
        ck_assert_int_eq(policy_evaluate(p, &req, &d), -EINVAL);
        req.introspector = "a";
        req.n_target_labels = 1;
        ck_assert_int_eq(policy_evaluate(p, &req, &d), -EINVAL);
        ck_assert_int_eq(policy_evaluate(NULL, &req, &d), -EINVAL);
        /* ret_* untouched on failure */
        ck_assert_uint_eq(d.line, 12345);
        ck_assert_ptr_null(text);
}
END_TEST

/* ------------------------------------------------------------ index vs scan */

static uint64_t rng_next(uint64_t *s) {
        /* xorshift64*: deterministic, so a failure reproduces */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * UINT64_C(2685821657736338717);
}

START_TEST(test_index_matches_scan) {
        static const char *const subjects[] = { "any", "a", "b", "ab", "abc", "a*", "ab*", "b*", "*", "a?", "[ab]*",
                                                "x*y", "abc*", "\\a*", "*c" };
        static const char *const targets[] = { "any", "t1", "t2", "t*", "label:l1", "label:l*", "name:any",
                                                "uuid:" U1, "uuid:" U2, "?1" };
        static const char *const names[] = { "a", "b", "ab", "abc", "abcd", "ax", "xy", "xzy", "c", "", "abc*", "ba" };
        static const char *const tnames[] = { "t1", "t2", "t3", "x1", NULL };
        static const char *const labels[] = { "l1", "l2", "lx" };
        unsigned decided_by_rule = 0;
        uint64_t seed = 0x9e3779b97f4a7c15;

        for (unsigned round = 0; round < 40; round++) {
                _cleanup_free_ char *text = NULL;
                _cleanup_(policy_unrefp) Policy *p = NULL;
                unsigned covered[ELEMENTSOF(subjects)][ELEMENTSOF(targets)] = {};
                size_t len = 0;
                FILE *f = open_memstream(&text, &len);
                unsigned n_rules = 1 + (unsigned) (rng_next(&seed) % 60);

                for (unsigned i = 0; i < n_rules; i++) {
                        size_t s = rng_next(&seed) % ELEMENTSOF(subjects), t = rng_next(&seed) % ELEMENTSOF(targets);
                        unsigned perms = 1 + (unsigned) (rng_next(&seed) % 7);
                        bool allow = rng_next(&seed) & 1;

                        if ((perms & ~covered[s][t]) == 0)
                                continue;  /* would be reported as never matching */
                        covered[s][t] |= perms;
                        fprintf(f, "%s introspector=%s target=%s perm=%s%s%s\n", allow ? "allow" : "deny",
                                subjects[s], targets[t], perms & 1 ? "attach," : "", perms & 2 ? "events," : "",
                                perms & 4 ? "map" : "");
                }
                fprintf(f, "default %s\n", rng_next(&seed) & 1 ? "allow" : "deny");
                fclose(f);
                /* "perm=attach," has a trailing comma when map is absent: fix up */
                for (char *c = text; (c = strstr(c, ",\n")); )
                        memmove(c, c + 1, strlen(c));

                p = parse_ok(text);
                for (unsigned q = 0; q < 400; q++) {
                        const char *lv[2] = { labels[rng_next(&seed) % 3], labels[rng_next(&seed) % 3] };
                        uint8_t u[16];
                        PolicyDecision d, x;
                        int r1, r2;

                        ck_assert_int_eq(policy_uuid_from_string(rng_next(&seed) & 1 ? U1 : U2, u), 0);
                        PolicyRequest req = {
                                .introspector = names[rng_next(&seed) % ELEMENTSOF(names)],
                                .target_name = tnames[rng_next(&seed) % ELEMENTSOF(tnames)],
                                .target_uuid = rng_next(&seed) % 3 ? u : NULL,
                                .target_labels = lv,
                                .n_target_labels = rng_next(&seed) % 3,
                                .perm = 1U << (rng_next(&seed) % 3),
                        };
                        r1 = policy_evaluate(p, &req, &d);
                        r2 = policy_explain(p, &req, &x, NULL);
                        ck_assert_int_ge(r1, 0);
                        ck_assert_msg(r1 == r2 && d.rule == x.rule,
                                      "round %u: index says rule %zu, scan says rule %zu for %s/%s\n%s", round, d.rule,
                                      x.rule, req.introspector, req.target_name ?: "-", text);
                        if (!d.is_default)
                                decided_by_rule++;
                }
        }
        /* the random policies must actually exercise the rules */
        ck_assert_uint_gt(decided_by_rule, 4000);
}
END_TEST

/* ------------------------------------------------------------ drop-ins */

START_TEST(test_dropins) {
        _cleanup_free_ char *dir = make_tmpdir(), *main_file = NULL, *dropins = NULL, *p1 = NULL, *error = NULL;
        _cleanup_(policy_unrefp) Policy *p = NULL;
        PolicyRequest req = { .introspector = "x", .target_name = "t", .perm = POLICY_PERM_MAP };
        PolicyDecision d;
        char path[512];

        ck_assert_int_ge(asprintf(&main_file, "%s/policy", dir), 0);
        ck_assert_int_ge(asprintf(&dropins, "%s/policy.d", dir), 0);
        ck_assert_int_eq(mkdir(dropins, 0755), 0);
        write_file(main_file, "allow introspector=main target=any perm=all\ndefault deny\n");
        /* strcmp order: "10-..." sorts before "9-..." */
        snprintf(path, sizeof(path), "%s/9-late.policy", dropins);
        write_file(path, "allow introspector=x target=t perm=map\n");
        snprintf(path, sizeof(path), "%s/10-early.policy", dropins);
        write_file(path, "# early\ndeny introspector=x target=any perm=map\n");
        /* ignored: other suffixes, hidden files */
        snprintf(path, sizeof(path), "%s/README", dropins);
        write_file(path, "not a policy\n");
        snprintf(path, sizeof(path), "%s/.hidden.policy", dropins);
        write_file(path, "garbage\n");
        snprintf(path, sizeof(path), "%s/x.policy~", dropins);
        write_file(path, "garbage\n");
        snprintf(path, sizeof(path), "%s/x.policy.rpmsave", dropins);
        write_file(path, "garbage\n");

        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), 0);
        ck_assert_ptr_null(error);
        ck_assert_uint_eq(policy_n_rules(p), 3);
        ck_assert_int_eq(policy_evaluate(p, &req, &d), POLICY_DENY);
        ck_assert_uint_eq(d.line, 2);
        snprintf(path, sizeof(path), "%s/10-early.policy", dropins);
        ck_assert_str_eq(d.file, path);
        req.introspector = "nobody";
        ck_assert_int_eq(policy_evaluate(p, &req, &d), POLICY_DENY);
        ck_assert_str_eq(d.file, main_file);
        ck_assert_uint_eq(d.line, 2);
        p = policy_unref(p);

        /* a trailing slash on the directory does not double up */
        free(p1);
        ck_assert_int_ge(asprintf(&p1, "%s/", dropins), 0);
        ck_assert_int_eq(policy_load(main_file, p1, &p, NULL), 0);
        ck_assert_int_eq(policy_evaluate(p, &(PolicyRequest) { .introspector = "x", .perm = POLICY_PERM_MAP }, &d),
                         POLICY_DENY);
        ck_assert_str_eq(d.file, path);
        p = policy_unref(p);

        /* the default may come from a drop-in; only drop-ins, no main file */
        snprintf(path, sizeof(path), "%s/50-default.policy", dropins);
        write_file(path, "default allow\n");
        ck_assert_int_eq(policy_load(NULL, dropins, &p, &error), 0);
        ck_assert_int_eq(policy_default_verdict(p), POLICY_ALLOW);
        p = policy_unref(p);

        /* ... but only one default across all files */
        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), -EINVAL);
        ck_assert_ptr_null(p);
        {
                _cleanup_free_ char *expect = NULL;

                ck_assert_int_ge(asprintf(&expect, "%s:1:1: duplicate default (the default is already set at %s:2)", path,
                                          main_file), 0);
                ck_assert_str_eq(error, expect);
        }
        error = mfree(error);
        ck_assert_int_eq(unlink(path), 0);

        /* an error in a drop-in names the drop-in */
        snprintf(path, sizeof(path), "%s/20-bad.policy", dropins);
        write_file(path, "\n\nallow introspector=x target=y perm=nope\n");
        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), -EINVAL);
        {
                _cleanup_free_ char *expect = NULL;

                ck_assert_int_ge(asprintf(&expect, "%s:3:36: unknown permission \"nope\" (expected attach, events, map or all)",
                                          path), 0);
                ck_assert_str_eq(error, expect);
        }
        error = mfree(error);
        ck_assert_int_eq(unlink(path), 0);

        /* a drop-in that only repeats the main file's rule is dead */
        snprintf(path, sizeof(path), "%s/30-dup.policy", dropins);
        write_file(path, "deny introspector=main target=any perm=events\n");
        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "30-dup.policy:1:1: this rule can never match"));
        ck_assert_ptr_nonnull(strstr(error, "already decide events at "));
        error = mfree(error);
        ck_assert_int_eq(unlink(path), 0);

        /* a directory or FIFO named *.policy is an error, not skipped */
        snprintf(path, sizeof(path), "%s/40-dir.policy", dropins);
        ck_assert_int_eq(mkdir(path, 0755), 0);
        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), -EISDIR);
        ck_assert_ptr_nonnull(strstr(error, "40-dir.policy: Is a directory"));
        error = mfree(error);
        ck_assert_int_eq(rmdir(path), 0);
        snprintf(path, sizeof(path), "%s/40-fifo.policy", dropins);
        ck_assert_int_eq(mkfifo(path, 0600), 0);
        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "40-fifo.policy: not a regular file"));
        error = mfree(error);
        ck_assert_int_eq(unlink(path), 0);

        /* no default anywhere: reported at the end of the main file */
        write_file(main_file, "allow introspector=main target=any perm=all\n");
        ck_assert_int_eq(policy_load(main_file, dropins, &p, &error), -EINVAL);
        {
                _cleanup_free_ char *expect = NULL;

                ck_assert_int_ge(asprintf(&expect, "%s:2:1: no default: add a line \"default deny\" (or \"default allow\")",
                                          main_file), 0);
                ck_assert_str_eq(error, expect);
        }
        error = mfree(error);

        rm_rf(dir);
}
END_TEST

START_TEST(test_load_errors) {
        _cleanup_free_ char *dir = make_tmpdir(), *file = NULL, *error = NULL;
        Policy *p = NULL;

        ck_assert_int_eq(policy_load("/nonexistent/policy", NULL, &p, &error), -ENOENT);
        ck_assert_ptr_null(p);
        ck_assert_str_eq(error, "/nonexistent/policy: No such file or directory");
        error = mfree(error);

        /* a missing drop-in directory is no error */
        ck_assert_int_ge(asprintf(&file, "%s/policy", dir), 0);
        write_file(file, "default deny\n");
        ck_assert_int_eq(policy_load(file, "/nonexistent/policy.d", &p, &error), 0);
        p = policy_unref(p);
        /* nothing at all is */
        ck_assert_int_eq(policy_load(NULL, "/nonexistent/policy.d", &p, &error), -ENOENT);
        ck_assert_str_eq(error, "/nonexistent/policy.d: no main policy file and no *.policy files");
        error = mfree(error);
        ck_assert_int_eq(policy_load(NULL, NULL, &p, &error), -EINVAL);
        /* a file where the directory should be */
        ck_assert_int_eq(policy_load(file, file, &p, &error), -ENOTDIR);
        ck_assert_ptr_nonnull(strstr(error, ": Not a directory"));
        error = mfree(error);
        /* the main file is a directory */
        ck_assert_int_eq(policy_load(dir, NULL, &p, &error), -EISDIR);
        error = mfree(error);
        /* a NULL ret_error is fine */
        ck_assert_int_eq(policy_load("/nonexistent/policy", NULL, &p, NULL), -ENOENT);
        ck_assert_int_eq(policy_parse_string(NULL, "bogus\n", &p, NULL), -EINVAL);
        ck_assert_int_eq(policy_parse_string(NULL, "bogus\n", &p, &error), -EINVAL);
        ck_assert_str_eq(error, "<string>:1:1: unknown keyword \"bogus\" (expected allow, deny or default)");
        error = mfree(error);
        ck_assert_ptr_null(p);

        rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------ globs */

/* The glob checks against fnmatch(3) itself: a pattern is accepted exactly
 * when fnmatch() matches the name its author meant, so no accepted rule
 * silently matches nothing and nothing rejected would have worked. */
static const struct {
        const char *pattern, *meant;
} glob_table[] = {
        { "[[:digit:]]-prod*", "7-prod1" },
        { "[[:digit:]-prod*", "7-prod1" },      /* the missing ']' */
        { "[[:digt:]]", "7" },
        { "[[:DIGIT:]]", "7" },
        { "[:digit:]", "7" },
        { "[a\\]x", "]x" },                   /* \] is a member: the bracket never ends */
        { "[a\\]]x", "]x" },
        { "[z-a]", "m" },
        { "[a-\\]]", "b" },                   /* a-] is reversed */
        { "[\\a-c]", "b" },
        { "[a-\\z]", "q" },
        { "[[.a.]-c]", "b" },
        { "[[.-.]a]", "-" },
        { "[[.ab.]]", "a" },
        { "[[=e=]]", "e" },
        { "[[=ab=]]", "a" },
        { "[[=e=]-z]", "-" },                   /* no range after an equivalence class */
        { "[[:digit:]-z]", "-" },
        { "[]a]", "]" },
        { "[!]a]", "b" },
        { "[^0-9]x", "ax" },
        { "[a-]", "-" },
        { "[]", "]" },
        { "[!", "x" },
        { "web[12", "web1" },
        { "[[:upper:][:digit:]_]", "_" },
        { "x\\", "x" },
};

static bool glob_accepted(const char *pattern, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        Policy *p = NULL;
        bool ok;

        ck_assert_int_ge(asprintf(&text, "allow introspector=any target=name:%s perm=attach\ndefault deny\n", pattern), 0);
        ok = policy_parse_string("t", text, &p, ret_error) == 0;
        policy_unref(p);
        return ok;
}

START_TEST(test_globs_match_fnmatch) {
        static const struct {
                const char *name, *member;
        } classes[] = {
                { "alnum", "a" }, { "alpha", "Z" }, { "blank", "\t" }, { "cntrl", "\x01" },
                { "digit", "7" }, { "graph", "!" }, { "lower", "q" }, { "print", " " },
                { "punct", "," }, { "space", "\n" }, { "upper", "Q" }, { "xdigit", "f" },
        };

        for (size_t i = 0; i < ELEMENTSOF(glob_table); i++) {
                _cleanup_free_ char *error = NULL;
                bool accepted = glob_accepted(glob_table[i].pattern, &error);
                bool matches = fnmatch(glob_table[i].pattern, glob_table[i].meant, 0) == 0;

                ck_assert_msg(accepted == matches, "%s: %s, but fnmatch() %s \"%s\"%s%s", glob_table[i].pattern,
                              accepted ? "accepted" : "rejected", matches ? "matches" : "does not match",
                              glob_table[i].meant, error ? ": " : "", error ?: "");
        }
        /* every class POSIX names, each matched by a member */
        for (size_t i = 0; i < ELEMENTSOF(classes); i++) {
                _cleanup_(policy_unrefp) Policy *p = NULL;
                _cleanup_free_ char *pattern = NULL, *text = NULL;
                PolicyDecision d;

                ck_assert_int_ge(asprintf(&pattern, "[[:%s:]]", classes[i].name), 0);
                ck_assert_int_ge(asprintf(&text, "allow introspector=any target=name:%s perm=attach\ndefault deny\n",
                                          pattern), 0);
                p = parse_ok(text);
                ck_assert_int_eq(fnmatch(pattern, classes[i].member, 0), 0);
                ck_assert_int_eq(policy_evaluate(p, &(PolicyRequest) { .introspector = "x",
                                                                       .target_name = classes[i].member,
                                                                       .perm = POLICY_PERM_ATTACH }, &d),
                                 POLICY_ALLOW);
        }
}
END_TEST

/* ------------------------------------------------------------ limits */

START_TEST(test_file_size_limit) {
        _cleanup_free_ char *dir = make_tmpdir(), *file = NULL, *text = NULL, *error = NULL, *expect = NULL;
        Policy *p = NULL;
        size_t n = POLICY_FILE_SIZE_MAX + 1;

        /* a file of comments just over the limit */
        text = malloc(n + 1);
        for (size_t i = 0; i < n; i += 64) {
                size_t k = MIN((size_t) 64, n - i);
                memset(text + i, 'x', k);
                text[i] = '#';
                text[i + k - 1] = '\n';
        }
        text[n] = 0;
        ck_assert_int_ge(asprintf(&file, "%s/policy", dir), 0);
        write_file(file, text);
        ck_assert_int_eq(policy_load(file, NULL, &p, &error), -EFBIG);
        ck_assert_int_ge(asprintf(&expect, "%s: too large (%zu bytes; the limit is %u)", file, n, POLICY_FILE_SIZE_MAX), 0);
        ck_assert_str_eq(error, expect);
        error = mfree(error);
        ck_assert_int_eq(policy_parse_string("big", text, &p, &error), -EFBIG);
        ck_assert_str_eq(error, "big: too large (1048577 bytes; the limit is 1048576)");
        error = mfree(error);
        ck_assert_ptr_null(p);

        /* exactly at the limit is fine */
        memcpy(text + n - 14, "\ndefault deny\n", 14);
        text[n - 1] = 0;
        ck_assert_uint_eq(strlen(text), POLICY_FILE_SIZE_MAX);
        write_file(file, text);
        ck_assert_int_eq(policy_load(file, NULL, &p, &error), 0);
        p = policy_unref(p);

        rm_rf(dir);
}
END_TEST

START_TEST(test_line_limit) {
        _cleanup_free_ char *text = malloc(POLICY_LINE_MAX + 64), *e = NULL;
        Policy *p = NULL;

        /* a line of exactly POLICY_LINE_MAX bytes is fine, one more is not */
        memset(text, ' ', POLICY_LINE_MAX);
        memcpy(text, "default deny #", 14);
        text[POLICY_LINE_MAX] = '\n';
        text[POLICY_LINE_MAX + 1] = 0;
        p = parse_ok(text);
        p = policy_unref(p);
        text[POLICY_LINE_MAX] = ' ';
        text[POLICY_LINE_MAX + 1] = 0;
        e = parse(text, &p);
        ck_assert_str_eq(e, "1:4097: line is longer than 4096 bytes");
        ck_assert_ptr_null(p);
}
END_TEST

static void write_rules(const char *path, unsigned from, unsigned n) {
        _cleanup_(fclosep) FILE *f = fopen(path, "we");

        ck_assert_ptr_nonnull(f);
        for (unsigned i = from; i < from + n; i++)
                fprintf(f, "allow introspector=i%u target=t perm=map\n", i);
}

START_TEST(test_rule_limit) {
        _cleanup_free_ char *dir = make_tmpdir(), *main_file = NULL, *d = NULL, *error = NULL, *expect = NULL;
        char path[512];
        Policy *p = NULL;
        const unsigned per = 22000;  /* about 900 KiB a file */

        ck_assert_int_ge(asprintf(&main_file, "%s/policy", dir), 0);
        ck_assert_int_ge(asprintf(&d, "%s/policy.d", dir), 0);
        ck_assert_int_eq(mkdir(d, 0755), 0);
        write_file(main_file, "default deny\n");
        for (unsigned k = 0; k < 2; k++) {
                snprintf(path, sizeof(path), "%s/%u.policy", d, k);
                write_rules(path, k * per, per);
        }
        snprintf(path, sizeof(path), "%s/2.policy", d);
        write_rules(path, 2 * per, POLICY_RULES_MAX - 2 * per);
        ck_assert_int_eq(policy_load(main_file, d, &p, &error), 0);
        ck_assert_uint_eq(policy_n_rules(p), POLICY_RULES_MAX);
        p = policy_unref(p);

        write_rules(path, 2 * per, POLICY_RULES_MAX - 2 * per + 1);
        ck_assert_int_eq(policy_load(main_file, d, &p, &error), -E2BIG);
        ck_assert_int_ge(asprintf(&expect, "%s:%u:1: too many rules (the limit is %u)", path,
                                  POLICY_RULES_MAX - 2 * per + 1, POLICY_RULES_MAX), 0);
        ck_assert_str_eq(error, expect);
        ck_assert_ptr_null(p);
        rm_rf(dir);
}
END_TEST

START_TEST(test_dropin_limit) {
        _cleanup_free_ char *dir = make_tmpdir(), *error = NULL, *expect = NULL;
        char path[512];
        Policy *p = NULL;

        for (unsigned i = 0; i <= POLICY_DROPINS_MAX; i++) {
                snprintf(path, sizeof(path), "%s/%04u.policy", dir, i);
                write_file(path, i == 0 ? "default deny\n" : "# empty\n");
        }
        ck_assert_int_eq(policy_load(NULL, dir, &p, &error), -E2BIG);
        ck_assert_int_ge(asprintf(&expect, "%s: more than %u *.policy files", dir, POLICY_DROPINS_MAX), 0);
        ck_assert_str_eq(error, expect);
        error = mfree(error);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(policy_load(NULL, dir, &p, &error), 0);
        p = policy_unref(p);
        rm_rf(dir);
}
END_TEST

/* ------------------------------------------------------------ printer */

START_TEST(test_canonical_form) {
        _cleanup_(policy_unrefp) Policy *p = NULL;
        _cleanup_free_ char *f = NULL, *rule = NULL;

        p = parse_ok("# comment\n"
                     "default   deny   # trailing\n"
                     "\tallow rate=10/min gpa=0x2000-0x2fff,0x0-0xfff perm=map,attach,events introspector=ir "
                     "target=web-* max-mappings=4\n"
                     "deny target=label:\"tier 1\" perm=map,events introspector=any\n"
                     "allow introspector=\"a b\" target=\"name:any\" perm=attach\n"
                     "allow introspector=x target=uuid:6F1D4A4E-8C55-4B4E-9D1E-2A7B3C4D5E6F perm=events,attach\n"
                     "allow introspector=x target=\"q\\\"uo\\\\te\" perm=map\n"
                     "allow introspector=x target=name:a:b:c perm=map\n"
                     "allow introspector=\"t\tab\" target=x perm=map\r\n");
        ck_assert_int_eq(policy_format(p, &f), 0);
        ck_assert_str_eq(f,
                         "allow introspector=ir target=web-* perm=all max-mappings=4 gpa=0x0-0xfff,0x2000-0x2fff rate=10/min\n"
                         "deny introspector=any target=label:\"tier 1\" perm=events,map\n"
                         "allow introspector=\"a b\" target=name:any perm=attach\n"
                         "allow introspector=x target=uuid:" U1 " perm=attach,events\n"
                         "allow introspector=x target=\"q\\\"uo\\\\te\" perm=map\n"
                         "allow introspector=x target=name:a:b:c perm=map\n"
                         "allow introspector=\"t\tab\" target=x perm=map\n"
                         "default deny\n");
        ck_assert_int_eq(policy_format_rule(p, 1, &rule), 0);
        ck_assert_str_eq(rule, "deny introspector=any target=label:\"tier 1\" perm=events,map");
        rule = mfree(rule);
        ck_assert_int_eq(policy_format_rule(p, POLICY_RULE_DEFAULT, &rule), 0);
        ck_assert_str_eq(rule, "default deny");
        rule = mfree(rule);
        ck_assert_int_eq(policy_format_rule(p, 7, &rule), -ERANGE);
        ck_assert_ptr_null(rule);
}
END_TEST

START_TEST(test_digest) {
        _cleanup_(policy_unrefp) Policy *a = NULL, *b = NULL, *c = NULL, *m = NULL;

        /* printf 'default deny\n' | sha256sum */
        m = parse_ok("# nothing but the default\ndefault deny");
        ck_assert_str_eq(policy_digest(m), "1ba0e9b99543bcefc784ecaa0bde58b97d7f62c52ec41a8b24fc920b58cdd5d9");

        /* spelling, order of options, comments and the default's place do not matter */
        a = parse_ok("default deny\nallow introspector=x target=y perm=attach,map max-mappings=3\n");
        b = parse_ok("# same\nallow  max-mappings=3 perm=map,attach target=\"y\" introspector=x # same\n\ndefault deny\n");
        ck_assert_str_eq(policy_digest(a), policy_digest(b));
        ck_assert_uint_eq(strlen(policy_digest(a)), 64);
        /* a different limit does */
        c = parse_ok("allow introspector=x target=y perm=attach,map max-mappings=4\ndefault deny\n");
        ck_assert_str_ne(policy_digest(a), policy_digest(c));
}
END_TEST

/* Random edits of the good corpus never crash, every error has a position,
 * and whatever still parses round-trips. */
START_TEST(test_mutations) {
        static const char alphabet[] = " =,:*?[]\"\\#-x0\n\ta/!";
        _cleanup_(names_done) Names files = corpus("good");
        uint64_t seed = 42;
        unsigned parsed = 0, failed = 0;

        for (size_t i = 0; i < files.n; i++) {
                _cleanup_free_ char *orig = read_all(files.v[i]);
                size_t n = strlen(orig);

                for (unsigned m = 0; m < 300; m++) {
                        _cleanup_free_ char *t = strdup(orig), *error = NULL, *f1 = NULL, *f2 = NULL;
                        _cleanup_(policy_unrefp) Policy *p = NULL, *q = NULL;
                        unsigned edits = 1 + (unsigned) (rng_next(&seed) % 3);
                        unsigned line, col;
                        int r;

                        for (unsigned e = 0; e < edits && n > 0; e++)
                                t[rng_next(&seed) % n] = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
                        r = policy_parse_string("m", t, &p, &error);
                        if (r < 0) {
                                ck_assert_int_eq(r, -EINVAL);
                                ck_assert_ptr_nonnull(error);
                                ck_assert_msg(sscanf(error, "m:%u:%u: ", &line, &col) == 2 && line > 0 && col > 0,
                                              "error without a position: %s", error);
                                failed++;
                                continue;
                        }
                        ck_assert_int_eq(policy_format(p, &f1), 0);
                        r = policy_parse_string("c", f1, &q, &error);
                        ck_assert_msg(r == 0, "canonical form does not parse: %s\n%s\nfrom\n%s", error, f1, t);
                        ck_assert_int_eq(policy_format(q, &f2), 0);
                        ck_assert_str_eq(f1, f2);
                        parsed++;
                }
        }
        ck_assert_uint_gt(parsed, 100);
        ck_assert_uint_gt(failed, 100);
}
END_TEST

/* ------------------------------------------------------------ explain */

START_TEST(test_explain) {
        _cleanup_(policy_unrefp) Policy *p = parse_ok(table_policy);
        _cleanup_free_ char *text = NULL;
        const char *lv[] = { "prod" };
        PolicyRequest req = {
                .introspector = "forensics",
                .target_name = "db-10",
                .target_labels = lv,
                .n_target_labels = 1,
                .perm = POLICY_PERM_EVENTS,
        };
        PolicyDecision d;

        ck_assert_int_eq(policy_explain(p, &req, &d, &text), POLICY_DENY);
        ck_assert(d.is_default);
        ck_assert_str_eq(text,
                         "request: introspector=forensics target=db-10 labels=prod perm=events\n"
                         "skip  t:2: deny introspector=any target=label:quarantine perm=all\n"
                         "      because no label of the target is quarantine\n"
                         "skip  t:3: allow introspector=forensics target=web-* perm=all max-mappings=64 gpa=0x0-0xfffff rate=20/s\n"
                         "      because target name db-10 does not match web-*\n"
                         "skip  t:4: allow introspector=forensics target=db-? perm=attach,events\n"
                         "      because target name db-10 does not match db-?\n"
                         "skip  t:12: deny introspector=* target=web-secret perm=all\n"
                         "      because target name db-10 is not web-secret\n"
                         "skip  t:13: allow introspector=any target=web-* perm=events\n"
                         "      because target name db-10 does not match web-*\n"
                         "skip  (7 rules for other introspectors)\n"
                         "match t:14: default deny\n"
                         "decision: deny (no rule matched; the default decides)\n");
        text = mfree(text);

        req.target_name = "web-1";
        req.perm = POLICY_PERM_MAP;
        ck_assert_int_eq(policy_explain(p, &req, &d, &text), POLICY_ALLOW);
        ck_assert_str_eq(text,
                         "request: introspector=forensics target=web-1 labels=prod perm=map\n"
                         "skip  t:2: deny introspector=any target=label:quarantine perm=all\n"
                         "      because no label of the target is quarantine\n"
                         "match t:3: allow introspector=forensics target=web-* perm=all max-mappings=64 gpa=0x0-0xfffff rate=20/s\n"
                         "decision: allow\n"
                         "limits: max-mappings=64 gpa=0x0-0xfffff rate=20/s\n");
        text = mfree(text);

        uint8_t u[16];
        ck_assert_int_eq(policy_uuid_from_string(U2, u), 0);
        req = (PolicyRequest) { .introspector = "memdump", .target_name = "a b", .target_uuid = u, .perm = POLICY_PERM_MAP };
        ck_assert_int_eq(policy_explain(p, &req, &d, &text), POLICY_DENY);
        ck_assert_ptr_nonnull(strstr(text, "request: introspector=memdump target=\"a b\" uuid=" U2 " perm=map\n"));
        ck_assert_ptr_nonnull(strstr(text, "      because the target carries no labels\n"));
        ck_assert_ptr_nonnull(strstr(text, "      because target uuid " U2 " is not " U1 "\n"));
        text = mfree(text);
        req.target_uuid = NULL;
        req.target_name = NULL;
        ck_assert_int_eq(policy_explain(p, &req, &d, &text), POLICY_DENY);
        ck_assert_ptr_nonnull(strstr(text, "request: introspector=memdump target=(unknown) perm=map\n"));
        ck_assert_ptr_nonnull(strstr(text, "because the target's uuid is not known (rule wants " U1 ")\n"));
        ck_assert_ptr_nonnull(strstr(text, "because the target's name is not known\n"));
        text = mfree(text);
        /* what a terminal would act on is escaped */
        req.target_name = "evil\x1b[2J\n";
        ck_assert_int_eq(policy_explain(p, &req, &d, &text), POLICY_DENY);
        ck_assert_ptr_nonnull(strstr(text, "target=\"evil\\x1b[2J\\x0a\" perm=map\n"));
        ck_assert_ptr_nonnull(strstr(text, "because target name \"evil\\x1b[2J\\x0a\" is not "));
        text = mfree(text);
        req.perm = POLICY_PERM_ATTACH;
        req.target_name = NULL;
        req.introspector = "av-scanner";
        ck_assert_int_eq(policy_explain(p, &req, &d, &text), POLICY_ALLOW);
        ck_assert_ptr_nonnull(strstr(text, "skip  t:7: allow introspector=av* target=label:\"tier 1\" perm=events\n"
                                           "      because the rule does not cover perm attach\n"));
}
END_TEST

START_TEST(test_explain_many) {
        _cleanup_free_ char *text = NULL, *big = NULL;
        _cleanup_(policy_unrefp) Policy *p = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&big, &len);
        PolicyRequest req = { .introspector = "x", .target_name = "none", .perm = POLICY_PERM_MAP };

        for (unsigned i = 0; i < 100; i++)
                fprintf(f, "allow introspector=x target=t%u perm=map\n", i);
        fputs("default deny\n", f);
        fclose(f);
        p = parse_ok(big);
        ck_assert_int_eq(policy_explain(p, &req, NULL, &text), POLICY_DENY);
        ck_assert_ptr_nonnull(strstr(text, "skip  t:64: "));
        ck_assert_ptr_null(strstr(text, "skip  t:65: "));
        ck_assert_ptr_nonnull(strstr(text, "skip  (36 more rules for this introspector, not listed)\n"));
}
END_TEST

/* ------------------------------------------------------------ small things */

START_TEST(test_ref) {
        Policy *p = parse_ok("default allow\n");

        ck_assert_ptr_null(policy_unref(NULL));
        ck_assert_ptr_null(policy_ref(NULL));
        ck_assert_ptr_eq(policy_ref(p), p);
        ck_assert_ptr_null(policy_unref(p));
        /* still alive: one reference left */
        ck_assert_int_eq(policy_default_verdict(p), POLICY_ALLOW);
        ck_assert_ptr_null(policy_unref(p));
        ck_assert_uint_eq(policy_n_rules(NULL), 0);
        ck_assert_ptr_null(policy_digest(NULL));
}
END_TEST

START_TEST(test_names) {
        PolicyPermission perm;
        uint8_t u[16];

        ck_assert_str_eq(policy_perm_to_string(POLICY_PERM_ATTACH), "attach");
        ck_assert_str_eq(policy_perm_to_string(POLICY_PERM_EVENTS), "events");
        ck_assert_str_eq(policy_perm_to_string(POLICY_PERM_MAP), "map");
        ck_assert_str_eq(policy_perm_to_string(POLICY_PERM_ALL), "all");
        ck_assert_ptr_null(policy_perm_to_string(POLICY_PERM_ATTACH | POLICY_PERM_MAP));
        ck_assert_int_eq(policy_perm_from_string("events", &perm), 0);
        ck_assert_int_eq(perm, POLICY_PERM_EVENTS);
        ck_assert_int_eq(policy_perm_from_string("Events", &perm), -EINVAL);
        ck_assert_int_eq(policy_perm_from_string(NULL, &perm), -EINVAL);
        ck_assert_str_eq(policy_verdict_to_string(POLICY_ALLOW), "allow");
        ck_assert_str_eq(policy_verdict_to_string(POLICY_DENY), "deny");

        ck_assert_int_eq(policy_uuid_from_string("00112233-4455-6677-8899-AABBCCDDEEFF", u), 0);
        ck_assert_uint_eq(u[0], 0x00);
        ck_assert_uint_eq(u[15], 0xff);
        ck_assert_int_eq(policy_uuid_from_string("00112233-4455-6677-8899-aabbccddeef", u), -EINVAL);
        ck_assert_int_eq(policy_uuid_from_string("00112233-4455-6677-8899-aabbccddeeff0", u), -EINVAL);
        ck_assert_int_eq(policy_uuid_from_string("00112233+4455-6677-8899-aabbccddeeff", u), -EINVAL);
        ck_assert_int_eq(policy_uuid_from_string("0011223g-4455-6677-8899-aabbccddeeff", u), -EINVAL);
        ck_assert_int_eq(policy_uuid_from_string(NULL, u), -EINVAL);
}
END_TEST

int main(void) {
        Suite *s = suite_create("policy");
        TCase *tc = tcase_create("policy");
        SRunner *sr;
        int failed;

        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_good_corpus);
        tcase_add_test(tc, test_bad_corpus);
        tcase_add_loop_test(tc, test_table, 0, ELEMENTSOF(table));
        tcase_add_test(tc, test_limits_in_decision);
        tcase_add_test(tc, test_bad_requests);
        tcase_add_test(tc, test_index_matches_scan);
        tcase_add_test(tc, test_dropins);
        tcase_add_test(tc, test_load_errors);
        tcase_add_test(tc, test_globs_match_fnmatch);
        tcase_add_test(tc, test_file_size_limit);
        tcase_add_test(tc, test_line_limit);
        tcase_add_test(tc, test_rule_limit);
        tcase_add_test(tc, test_dropin_limit);
        tcase_add_test(tc, test_canonical_form);
        tcase_add_test(tc, test_digest);
        tcase_add_test(tc, test_mutations);
        tcase_add_test(tc, test_explain);
        tcase_add_test(tc, test_explain_many);
        tcase_add_test(tc, test_ref);
        tcase_add_test(tc, test_names);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
