/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt lifecycle handling without a libvirt connection: events for
 * started, stopped, crashed, shut down and undefined domains, applied to
 * the registry through libvirt_lifecycle(). */

#include <check.h>
#include <stdio.h>
#include <libvirt/libvirt.h>

#include "kvmid.h"

#define U1 "11111111-2222-3333-4444-000000000001"
#define U2 "11111111-2222-3333-4444-000000000002"

typedef struct Fake {
        Server s;
} Fake;

static void fake_init(Fake *f, const char *text) {
        char path[] = "/tmp/check-libvirt-XXXXXX";
        int fd = mkstemp(path);
        char *error = NULL;

        memset(f, 0, sizeof *f);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        ck_assert_int_eq(config_load(path, "/tmp/rt", &f->s.config, &error), 0);
        unlink(path);
        ck_assert_ptr_null(error);
        f->s.base = event_base_new();
        ck_assert_ptr_nonnull(f->s.base);
        ck_assert_int_eq(token_table_new(&f->s, &f->s.tokens), 0);
        ck_assert_int_eq(hypervisor_new(&f->s), 0);
        ck_assert_int_eq(domain_registry_load(&f->s, f->s.config), 0);
}

static void fake_done(Fake *f) {
        domain_registry_free(&f->s);
        hypervisor_free(&f->s);
        token_table_free(f->s.tokens);
        config_free(f->s.config);
        event_base_free(f->s.base);
}

static DomainLibvirtInfo info(const char *name, const char *uuid, int id, DomainRunState st) {
        DomainLibvirtInfo i = { .name = name, .id = id, .state = st };

        ck_assert_int_eq(uuid_from_string(uuid, i.uuid), 0);
        return i;
}

START_TEST(test_started_stopped) {
        Fake f;
        fake_init(&f, "");
        DomainLibvirtInfo i = info("t1", U1, 5, DOMAIN_STATE_RUNNING);

        i.vsock_cid = 21;
        i.has_metadata = true;
        i.role = DOMAIN_ROLE_TARGET;
        i.cookie_none = true;
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        Domain *d = domain_find(&f.s, "t1");
        ck_assert_ptr_nonnull(d);
        ck_assert(d->from_libvirt);
        ck_assert_int_eq(d->state, DOMAIN_STATE_RUNNING);
        ck_assert_int_eq(d->libvirt_id, 5);
        ck_assert_uint_eq(domain_vsock_cid(d), 21);
        ck_assert(d->cookie_none);
        ck_assert_str_eq(d->uuid_str, U1);
        ck_assert_str_eq(domain_source_to_string(d), "libvirt");

        i = info("t1", U1, -1, DOMAIN_STATE_SHUTOFF);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED);
        ck_assert_ptr_eq(domain_find(&f.s, "t1"), d);   /* still defined: stays */
        ck_assert_int_eq(d->state, DOMAIN_STATE_SHUTOFF);
        ck_assert_int_eq(d->libvirt_id, -1);

        /* started again: running, new id */
        i = info("t1", U1, 7, DOMAIN_STATE_RUNNING);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        ck_assert_int_eq(d->state, DOMAIN_STATE_RUNNING);
        ck_assert_int_eq(d->libvirt_id, 7);
        ck_assert_uint_eq(domain_count(&f.s), 1);
        fake_done(&f);
}
END_TEST

START_TEST(test_crashed_shutdown) {
        Fake f;
        fake_init(&f, "");
        DomainLibvirtInfo i = info("t1", U1, 3, DOMAIN_STATE_RUNNING);

        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        Domain *d = domain_find(&f.s, "t1");
        ck_assert_ptr_nonnull(d);
        /* libvirt may still say running in the crashed event: kvmid says crashed */
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_CRASHED, VIR_DOMAIN_EVENT_CRASHED_PANICKED);
        ck_assert_int_eq(d->state, DOMAIN_STATE_CRASHED);
        ck_assert_int_eq(d->libvirt_id, -1);

        i = info("t1", U1, 4, DOMAIN_STATE_RUNNING);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        ck_assert_int_eq(d->state, DOMAIN_STATE_RUNNING);
        ck_assert_int_eq(d->libvirt_id, 4);
        /* shutdown begun: no change yet */
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_GUEST);
        ck_assert_int_eq(d->libvirt_id, 4);
        /* shutdown finished: shut off, down */
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_SHUTDOWN, VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED);
        ck_assert_int_eq(d->state, DOMAIN_STATE_SHUTOFF);
        ck_assert_int_eq(d->libvirt_id, -1);
        /* stopped: crashed detail */
        i = info("t1", U1, 5, DOMAIN_STATE_RUNNING);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        i = info("t1", U1, -1, DOMAIN_STATE_CRASHED);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_CRASHED);
        ck_assert_int_eq(d->state, DOMAIN_STATE_CRASHED);
        ck_assert_int_eq(d->libvirt_id, -1);
        fake_done(&f);
}
END_TEST

START_TEST(test_undefined) {
        Fake f;
        fake_init(&f, "[domain conf1]\nuuid = " U2 "\ncookie = none\nlabel = fromconf\n");
        DomainLibvirtInfo i = info("lv1", U1, -1, DOMAIN_STATE_SHUTOFF);
        char *labels[] = { (char *) "fromxml" };

        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_ADDED);
        ck_assert_ptr_nonnull(domain_find(&f.s, "lv1"));
        ck_assert_uint_eq(domain_count(&f.s), 2);

        /* the configured one, seen in libvirt: source both, config's labels */
        i = info("conf1", U2, 9, DOMAIN_STATE_RUNNING);
        i.has_metadata = true;
        i.role = DOMAIN_ROLE_INTROSPECTOR;
        i.labels = labels;
        i.n_labels = 1;
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_BOOTED);
        Domain *c = domain_find(&f.s, "conf1");
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(domain_source_to_string(c), "both");
        ck_assert_int_eq(c->role, DOMAIN_ROLE_TARGET);
        ck_assert_uint_eq(c->n_labels, 1);
        ck_assert_str_eq(c->labels[0], "fromconf");
        ck_assert_int_eq(c->state, DOMAIN_STATE_RUNNING);

        /* undefined libvirt-only domain: removed */
        i = info("lv1", U1, -1, DOMAIN_STATE_UNKNOWN);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED);
        ck_assert_ptr_null(domain_find(&f.s, "lv1"));
        ck_assert_uint_eq(domain_count(&f.s), 1);

        /* undefined while running, configured: down, stays as config only */
        i = info("conf1", U2, -1, DOMAIN_STATE_UNKNOWN);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED);
        ck_assert_ptr_eq(domain_find(&f.s, "conf1"), c);
        ck_assert(!c->from_libvirt);
        ck_assert(c->configured);
        ck_assert_int_eq(c->state, DOMAIN_STATE_UNKNOWN);
        ck_assert_int_eq(c->libvirt_id, -1);
        ck_assert_str_eq(domain_source_to_string(c), "config");

        /* undefined for a domain kvmid never saw from libvirt: nothing */
        i = info("ghost", "11111111-2222-3333-4444-000000000009", -1, DOMAIN_STATE_UNKNOWN);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED);
        ck_assert_uint_eq(domain_count(&f.s), 1);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_REMOVED);
        ck_assert_ptr_eq(domain_find(&f.s, "conf1"), c);
        fake_done(&f);
}
END_TEST

START_TEST(test_rename) {
        Fake f;
        fake_init(&f, "");
        DomainLibvirtInfo i = info("old", U1, -1, DOMAIN_STATE_SHUTOFF);

        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_ADDED);
        Domain *d = domain_find(&f.s, "old");
        ck_assert_ptr_nonnull(d);
        i = info("new", U1, -1, DOMAIN_STATE_SHUTOFF);
        libvirt_lifecycle(&f.s, &i, VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_RENAMED);
        ck_assert_ptr_eq(domain_find(&f.s, "new"), d);
        ck_assert_ptr_null(domain_find(&f.s, "old"));
        ck_assert_uint_eq(domain_count(&f.s), 1);
        fake_done(&f);
}
END_TEST

int main(void) {
        Suite *s = suite_create("libvirt");
        TCase *tc = tcase_create("lifecycle");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_started_stopped);
        tcase_add_test(tc, test_crashed_shutdown);
        tcase_add_test(tc, test_undefined);
        tcase_add_test(tc, test_rename);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
