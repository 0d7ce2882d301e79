/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latency histograms: exact below 16 ns, within 1/16 above, quantiles
 * never past the maximum. */

#include <check.h>

#include "kvmid.h"

START_TEST(test_empty) {
        Latency l = {};

        ck_assert_uint_eq(latency_quantile(&l, 0.5), 0);
        ck_assert_uint_eq(latency_quantile(&l, 0.99), 0);
}
END_TEST

START_TEST(test_small_exact) {
        Latency l = {};

        for (uint64_t v = 0; v < 10; v++)
                latency_add(&l, v);
        ck_assert_uint_eq(l.count, 10);
        ck_assert_uint_eq(l.max_ns, 9);
        ck_assert_uint_eq(l.sum_ns, 45);
        ck_assert_uint_eq(latency_quantile(&l, 0.0), 0);
        ck_assert_uint_eq(latency_quantile(&l, 0.5), 5);
        ck_assert_uint_eq(latency_quantile(&l, 1.0), 9);
}
END_TEST

/* For every magnitude the reported quantile is >= the true value and at
 * most 1/16 above it. */
START_TEST(test_relative_error) {
        for (uint64_t v = 16; v < (1ULL << 62); v = v * 3 + 7) {
                Latency l = {};
                latency_add(&l, v);
                latency_add(&l, v * 2 + 1);     /* the max must not cap the answer for v */
                uint64_t q = latency_quantile(&l, 0.0);
                ck_assert_uint_ge(q, v);
                ck_assert_uint_le(q - v, v / 16);
        }
}
END_TEST

START_TEST(test_p99) {
        Latency l = {};

        for (int i = 0; i < 990; i++)
                latency_add(&l, 1000);
        for (int i = 0; i < 10; i++)
                latency_add(&l, 1000000);
        ck_assert_uint_le(latency_quantile(&l, 0.5), 1000 + 1000 / 16);
        ck_assert_uint_ge(latency_quantile(&l, 0.5), 1000);
        ck_assert_uint_ge(latency_quantile(&l, 0.995), 1000000);
        ck_assert_uint_eq(latency_quantile(&l, 1.0), 1000000);
        ck_assert_uint_eq(l.max_ns, 1000000);
}
END_TEST

START_TEST(test_huge) {
        Latency l = {};

        latency_add(&l, UINT64_MAX);
        ck_assert_uint_eq(latency_quantile(&l, 0.5), UINT64_MAX);
}
END_TEST

int main(void) {
        Suite *s = suite_create("latency");
        TCase *tc = tcase_create("latency");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_empty);
        tcase_add_test(tc, test_small_exact);
        tcase_add_test(tc, test_relative_error);
        tcase_add_test(tc, test_p99);
        tcase_add_test(tc, test_huge);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
