/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* proto/policy-parse.c and what it builds: the input is a policy text.
 * An error must be "FILE:LINE:COL: message" pointing into the text; a
 * policy that parses must print canonically to a text that parses to the
 * same digest and prints the same again, and the indexed evaluation must
 * decide requests made of the text's own words exactly as the plain scan
 * of explain does. */

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "policy.h"

#define FILENAME "fuzz.policy"
#define NAMES_MAX 12
#define NAME_MAX_LEN 300

/* Candidate names: the text's words, split at blanks, '=', ',', ':' and
 * quotes, so the rules' own patterns and names come back as requests. */
static size_t collect_names(const char *text, char names[NAMES_MAX][NAME_MAX_LEN + 1]) {
        size_t n = 0;

        for (const char *s = text; *s && n < NAMES_MAX;) {
                size_t len;

                s += strspn(s, " \t\r\n=,:\"");
                len = strcspn(s, " \t\r\n=,:\"");
                if (len == 0)
                        break;
                if (len <= NAME_MAX_LEN) {
                        memcpy(names[n], s, len);
                        names[n][len] = 0;
                        n++;
                }
                s += len;
        }
        return n;
}

static void check_evaluate(const Policy *p, const char *text) {
        static const PolicyPermission perms[] = { POLICY_PERM_ATTACH, POLICY_PERM_EVENTS, POLICY_PERM_MAP };
        static const uint8_t uuid[16] = { 0x6f, 0x1d, 0x4a, 0x4e, 0x8c, 0x55, 0x4b, 0x4e,
                                          0x9d, 0x1e, 0x2a, 0x7b, 0x3c, 0x4d, 0x5e, 0x6f };
        char names[NAMES_MAX][NAME_MAX_LEN + 1];
        size_t n = collect_names(text, names);

        if (n == 0)
                return;
        for (size_t i = 0; i < n; i++) {
                const char *labels[2] = { names[i], names[(i + 2) % n] };
                PolicyRequest req = {
                        .introspector = names[i],
                        .target_name = names[(i + 1) % n],
                        .target_uuid = i % 2 ? uuid : NULL,
                        .target_labels = labels,
                        .n_target_labels = i % 3,
                        .perm = perms[i % ELEMENTSOF(perms)],
                };
                PolicyDecision d, x;
                _cleanup_free_ char *why = NULL;
                int r, rx;

                r = policy_evaluate(p, &req, &d);
                rx = policy_explain(p, &req, &x, &why);
                FUZZ_CHECK(r == POLICY_ALLOW || r == POLICY_DENY);
                FUZZ_CHECK(r == rx && why);
                FUZZ_CHECK(d.verdict == x.verdict && d.rule == x.rule && d.is_default == x.is_default);
                FUZZ_CHECK(d.is_default == (d.rule == POLICY_RULE_DEFAULT));
                FUZZ_CHECK(d.rule == POLICY_RULE_DEFAULT || d.rule < policy_n_rules(p));
                if (d.verdict == POLICY_DENY)
                        FUZZ_CHECK(d.limits.max_mappings == 0 && d.limits.n_gpa_ranges == 0 &&
                                   d.limits.rate_count == 0);
                (void) policy_limits_allow_gpa(&d.limits, 0x1000, 0x1000);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *error = NULL, *canon = NULL, *canon2 = NULL, *error2 = NULL;
        Policy *p = NULL, *q = NULL;
        int r;

        if (size > POLICY_FILE_SIZE_MAX)
                return 0;
        text = strndup((const char *) data, size);
        FUZZ_CHECK(text);

        r = policy_parse_string(FILENAME, text, &p, &error);
        if (r < 0) {
                unsigned line, col;

                FUZZ_CHECK(!p);
                FUZZ_CHECK(r == -EINVAL || r == -E2BIG || r == -ENOMEM);
                if (r != -ENOMEM) {
                        FUZZ_CHECK(error);
                        FUZZ_CHECK(sscanf(error, FILENAME ":%u:%u: ", &line, &col) == 2);
                        FUZZ_CHECK(fuzz_position_valid(text, line, col, POLICY_LINE_MAX));
                }
                return 0;
        }
        FUZZ_CHECK(r == 0 && p && !error);

        FUZZ_CHECK(policy_format(p, &canon) == 0);
        r = policy_parse_string("canonical", canon, &q, &error2);
        if (r < 0)
                fprintf(stderr, "canonical form does not parse: %s\n--- input\n%s\n--- canonical\n%s", error2, text, canon);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(streq(policy_digest(p), policy_digest(q)));
        FUZZ_CHECK(policy_format(q, &canon2) == 0);
        FUZZ_CHECK(streq(canon, canon2));
        FUZZ_CHECK(policy_n_rules(p) == policy_n_rules(q));
        FUZZ_CHECK(policy_default_verdict(p) == policy_default_verdict(q));

        check_evaluate(p, text);
        check_evaluate(q, text);

        policy_unref(q);
        policy_unref(p);
        return 0;
}
