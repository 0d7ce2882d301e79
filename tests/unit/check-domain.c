/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The domain registry: load from configuration, lookups, reload (add,
 * update, drop; connected domains stay), guest-request ring. */

#include <check.h>
#include <stdio.h>

#include "kvmid.h"

static Config *conf(const char *text) {
        char path[] = "/tmp/check-domain-XXXXXX";
        int fd = mkstemp(path);
        Config *c = NULL;
        char *error = NULL;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        ck_assert_int_eq(config_load(path, "/tmp/rt", &c, &error), 0);
        unlink(path);
        ck_assert_ptr_null(error);
        return c;
}

#define U1 "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e61"
#define U2 "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e62"
#define U3 "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e63"

START_TEST(test_load_find) {
        Server s = {};
        _cleanup_(config_freep) Config *c =
                conf("[domain a]\nuuid = " U1 "\ncookie-file = /c/a\n[domain b]\nuuid = " U2 "\nrole = introspector\n");
        uint8_t u[16];

        ck_assert_int_eq(domain_registry_load(&s, c), 0);
        ck_assert_uint_eq(domain_count(&s), 2);
        Domain *a = domain_find(&s, "a");
        ck_assert_ptr_nonnull(a);
        ck_assert_str_eq(a->uuid_str, U1);
        ck_assert_str_eq(a->cookie_file, "/c/a");
        ck_assert_int_eq(a->role, DOMAIN_ROLE_TARGET);
        ck_assert_ptr_eq(domain_find(&s, U2), domain_find(&s, "b"));
        ck_assert_int_eq(domain_find(&s, "b")->role, DOMAIN_ROLE_INTROSPECTOR);
        ck_assert_int_eq(uuid_from_string(U1, u), 0);
        ck_assert_ptr_eq(domain_find_uuid(&s, u), a);
        ck_assert_ptr_null(domain_find(&s, "c"));
        ck_assert_ptr_null(domain_find(&s, U3));
        domain_registry_free(&s);
        ck_assert_ptr_null(s.domains);
}
END_TEST

START_TEST(test_reload) {
        Server s = {};
        _cleanup_(config_freep) Config *c1 = conf("[domain a]\nuuid = " U1 "\n[domain b]\nuuid = " U2 "\n");
        _cleanup_(config_freep) Config *c2 = conf("[domain b]\nuuid = " U2 "\ncookie = none\n[domain c]\nuuid = " U3 "\n");
        Channel *fake = (Channel *) &s;         /* only compared, never used */

        ck_assert_int_eq(domain_registry_load(&s, c1), 0);
        Domain *a = domain_find(&s, "a"), *b = domain_find(&s, "b");
        a->channel = fake;                      /* a is connected: it outlives its entry */
        b->guest_requests = 5;
        ck_assert_int_eq(domain_registry_apply(&s, c2), 0);
        ck_assert_uint_eq(domain_count(&s), 3);
        ck_assert_ptr_eq(domain_find(&s, "a"), a);
        ck_assert(!a->configured);
        ck_assert_ptr_eq(domain_find(&s, "b"), b);     /* same object: counters survive */
        ck_assert_uint_eq(b->guest_requests, 5);
        ck_assert(b->cookie_none);
        ck_assert_ptr_nonnull(domain_find(&s, "c"));
        domain_channel_closed(a);               /* its channel goes: so does it */
        ck_assert_ptr_null(domain_find(&s, "a"));
        ck_assert_uint_eq(domain_count(&s), 2);
        domain_channel_closed(b);               /* still configured: stays */
        ck_assert_ptr_eq(domain_find(&s, "b"), b);
        ck_assert_int_eq(b->kvmi_state, DOMAIN_KVMI_DISCONNECTED);
        domain_registry_free(&s);
}
END_TEST

START_TEST(test_recent_ring) {
        Server s = {};
        _cleanup_(config_freep) Config *c = conf("[kvmi]\nrecent-events = 3\n[domain a]\nuuid = " U1 "\n");
        KvmiEvent e = { .event = KVMI_EV_HYPERCALL, .mode = 8 };

        ck_assert_int_eq(domain_registry_load(&s, c), 0);
        Domain *a = domain_find(&s, "a");
        for (uint16_t v = 0; v < 5; v++) {
                e.vcpu = v;
                e.regs.rdx = 100 + v;
                domain_guest_request(a, &e, 1000 + v);
        }
        ck_assert_uint_eq(a->guest_requests, 5);
        ck_assert_uint_eq(a->recent_count, 3);
        size_t k = domain_recent_start(a);
        for (uint64_t i = 0; i < 3; i++, k = (k + 1) % a->recent_size) {
                ck_assert_uint_eq(a->recent[k].seq, 3 + i);     /* oldest kept first */
                ck_assert_uint_eq(a->recent[k].vcpu, 2 + i);
                ck_assert_uint_eq(a->recent[k].regs.rdx, 102 + i);
                ck_assert_uint_eq(a->recent[k].time_usec, 1002 + i);
        }
        domain_registry_free(&s);
}
END_TEST

int main(void) {
        Suite *s = suite_create("domain");
        TCase *tc = tcase_create("domain");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_load_find);
        tcase_add_test(tc, test_reload);
        tcase_add_test(tc, test_recent_ring);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
