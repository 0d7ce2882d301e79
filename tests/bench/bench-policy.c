/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Policy decisions per second for a small (10 rules) and a large (10,000
 * rules) policy, with requests that hit an early rule, a late exact-name
 * rule, a late glob rule, and the default.  The subject index should keep
 * the large policy within a small factor of the small one; a linear scan
 * would be ~1000 times slower on the late and default requests, as the
 * last row shows: policy_explain() is such a scan (it is the reference the
 * index is tested against), timed on the default request.
 *
 *   tests/bench/bench-policy [SECONDS-PER-CASE]   (default 0.3)
 *
 * Not run by make check: timings on a shared CI machine prove nothing. */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

/* Rule i of n: 9 in 10 name one introspector exactly, 1 in 10 a team glob;
 * rule 0 denies quarantined targets to everyone, the last allows one tool. */
static char *build_policy(unsigned n) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        if (!f)
                abort();
        fputs("deny introspector=any target=label:quarantine perm=all\n", f);
        for (unsigned i = 1; i + 1 < n; i++) {
                if (i % 10 == 5)
                        fprintf(f, "allow introspector=team%05u-* target=vm-%05u perm=attach,events\n", i, i);
                else
                        fprintf(f, "allow introspector=tool%05u target=vm-%05u perm=all max-mappings=16 rate=10/s\n", i, i);
        }
        fputs("allow introspector=late-tool target=any perm=map\n", f);
        fputs("default deny\n", f);
        if (fclose(f) != 0)
                abort();
        return text;
}

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

typedef struct Case {
        const char *what;
        char introspector[32], target[32];
        const char *label;
        PolicyPermission perm;
        size_t expect_rule;              /* POLICY_RULE_DEFAULT for the default */
} Case;

/* Decisions per second for one request, run for about secs; with scan,
 * through policy_explain()'s top-to-bottom scan instead of the index. */
static double measure(const Policy *p, const Case *c, double secs, bool scan) {
        const char *labels[] = { c->label };
        PolicyRequest req = {
                .introspector = c->introspector,
                .target_name = c->target,
                .target_labels = labels,
                .n_target_labels = c->label ? 1 : 0,
                .perm = c->perm,
        };
        PolicyDecision d;
        unsigned long long n = 0;
        volatile int sink = 0;  /* keeps the calls from being optimized out */
        double t0, t;

        if (policy_evaluate(p, &req, &d) < 0 || d.rule != c->expect_rule) {
                fprintf(stderr, "%s: decided by rule %zu, expected %zu\n", c->what, d.rule, c->expect_rule);
                exit(EXIT_FAILURE);
        }
        t0 = now();
        do {
                unsigned batch = scan ? 10 : 1000;

                for (unsigned i = 0; i < batch; i++)
                        sink += scan ? policy_explain(p, &req, &d, NULL) : policy_evaluate(p, &req, &d);
                n += batch;
                t = now();
        } while (t - t0 < secs);
        return (double) n / (t - t0);
}

static void make_cases(unsigned n, Case cases[static 5]) {
        unsigned late_exact = n - 2, late_glob = (n - 7) / 10 * 10 + 5;

        while (late_exact % 10 == 5)
                late_exact--;
        cases[0] = (Case) { .what = "early (rule 1, any)", .label = "quarantine", .perm = POLICY_PERM_ATTACH, .expect_rule = 0 };
        snprintf(cases[0].introspector, sizeof(cases[0].introspector), "tool%05u", late_exact);
        snprintf(cases[0].target, sizeof(cases[0].target), "vm-%05u", late_exact);

        cases[1] = (Case) { .what = "late exact name", .perm = POLICY_PERM_MAP, .expect_rule = late_exact };
        snprintf(cases[1].introspector, sizeof(cases[1].introspector), "tool%05u", late_exact);
        snprintf(cases[1].target, sizeof(cases[1].target), "vm-%05u", late_exact);

        cases[2] = (Case) { .what = "late glob", .perm = POLICY_PERM_EVENTS, .expect_rule = late_glob };
        snprintf(cases[2].introspector, sizeof(cases[2].introspector), "team%05u-x", late_glob);
        snprintf(cases[2].target, sizeof(cases[2].target), "vm-%05u", late_glob);

        cases[3] = (Case) { .what = "last rule", .perm = POLICY_PERM_MAP, .expect_rule = n - 1 };
        snprintf(cases[3].introspector, sizeof(cases[3].introspector), "late-tool");
        snprintf(cases[3].target, sizeof(cases[3].target), "vm-x");

        cases[4] = (Case) { .what = "default", .perm = POLICY_PERM_MAP, .expect_rule = POLICY_RULE_DEFAULT };
        snprintf(cases[4].introspector, sizeof(cases[4].introspector), "nobody");
        snprintf(cases[4].target, sizeof(cases[4].target), "vm-00001");
}

int main(int argc, char **argv) {
        static const unsigned sizes[] = { 10, 10000 };
        double secs = argc > 1 ? atof(argv[1]) : 0.3;
        double rate[2][5], total[2] = {}, scan[2];
        Case cases[2][5];

        if (secs <= 0) {
                fprintf(stderr, "usage: %s [SECONDS-PER-CASE]\n", argv[0]);
                return EXIT_FAILURE;
        }

        for (unsigned s = 0; s < 2; s++) {
                Policy *p = NULL;
                char *text = build_policy(sizes[s]), *error = NULL;
                double t0 = now(), load;

                if (policy_parse_string("bench", text, &p, &error) < 0) {
                        fprintf(stderr, "%s\n", error);
                        return EXIT_FAILURE;
                }
                load = now() - t0;
                if (policy_n_rules(p) != sizes[s])
                        abort();
                printf("%u rules: parsed and indexed in %.2f ms\n", sizes[s], load * 1e3);
                make_cases(sizes[s], cases[s]);
                for (unsigned c = 0; c < 5; c++) {
                        rate[s][c] = measure(p, &cases[s][c], secs, false);
                        /* harmonic: the rate of an even mix of the five requests */
                        total[s] += 1.0 / rate[s][c];
                }
                total[s] = 5.0 / total[s];
                scan[s] = measure(p, &cases[s][4], secs, true);
                p = policy_unref(p);
                free(text);
        }

        printf("\n%-22s %16s %16s %10s\n", "request", "10 rules/s", "10000 rules/s", "10k/10");
        for (unsigned c = 0; c < 5; c++)
                printf("%-22s %16.0f %16.0f %10.2f\n", cases[0][c].what, rate[0][c], rate[1][c], rate[1][c] / rate[0][c]);
        printf("%-22s %16.0f %16.0f %10.2f\n", "even mix", total[0], total[1], total[1] / total[0]);
        printf("%-22s %16.0f %16.0f %10.4f\n", "default, linear scan", scan[0], scan[1], scan[1] / scan[0]);
        return EXIT_SUCCESS;
}
