/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Who may authenticate as which identity: the binding rules (Unix uid,
 * VM-bound over vsock by CID), and the proof. */

#include <check.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "kvmid.h"

static char dir[] = "/tmp/check-introspector-XXXXXX";

static const char *keyfile(const char *name) {
        static char path[256];
        int fd;

        snprintf(path, sizeof path, "%s/%s.key", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
        close(fd);
        return path;
}

static Config *conf(void) {
        char text[4096], path[300];
        Config *c = NULL;
        char *error = NULL;
        int n = 0;

        n += snprintf(text + n, sizeof text - (size_t) n, "[domain vm-a]\nuuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5ea1\n"
                      "role = introspector\ncookie = none\nvsock-cid = 42\n"
                      "[domain vm-nocid]\nuuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5ea2\nrole = introspector\n");
        n += snprintf(text + n, sizeof text - (size_t) n, "[introspector invm]\nkey-file = %s\ndomain = vm-a\n",
                      keyfile("invm"));
        n += snprintf(text + n, sizeof text - (size_t) n, "[introspector helper]\nkey-file = %s\ndomain = vm-a\nuid = 0 7\n",
                      keyfile("helper"));
        n += snprintf(text + n, sizeof text - (size_t) n, "[introspector host]\nkey-file = %s\nuid = 1000\n",
                      keyfile("host"));
        n += snprintf(text + n, sizeof text - (size_t) n, "[introspector anyuid]\nkey-file = %s\n", keyfile("anyuid"));
        n += snprintf(text + n, sizeof text - (size_t) n, "[introspector nocid]\nkey-file = %s\ndomain = vm-nocid\n",
                      keyfile("nocid"));
        snprintf(path, sizeof path, "%s/kvmid.conf", dir);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        ck_assert_int_eq(config_load(path, "/tmp/rt", &c, &error), 0);
        ck_assert_ptr_null(error);
        return c;
}

START_TEST(test_binding) {
        _cleanup_(config_freep) Config *c = conf();
        const IdentityConfig *invm = config_find_identity(c, "invm"), *helper = config_find_identity(c, "helper"),
                             *host = config_find_identity(c, "host"), *anyuid = config_find_identity(c, "anyuid"),
                             *nocid = config_find_identity(c, "nocid");
        /* The registry's view of the bound VMs: vm-a with its config CID
         * 42, vm-nocid without one. */
        const Domain vm_a = { .config_cid = 42, .state = DOMAIN_STATE_UNKNOWN },
                     vm_nocid = { .state = DOMAIN_STATE_UNKNOWN };

        /* VM-bound: from its VM's CID only */
        ck_assert(introspector_binding_ok(invm, &vm_a, (uid_t) -1, 42));
        ck_assert(!introspector_binding_ok(invm, &vm_a, (uid_t) -1, 43));
        ck_assert(!introspector_binding_ok(invm, &vm_a, 0, 0));             /* not on Unix without uid= */
        ck_assert(!introspector_binding_ok(invm, NULL, (uid_t) -1, 42));    /* its VM unknown */
        /* VM-bound with uids: also those uids on Unix */
        ck_assert(introspector_binding_ok(helper, &vm_a, 7, 0));
        ck_assert(!introspector_binding_ok(helper, &vm_a, 8, 0));
        ck_assert(introspector_binding_ok(helper, &vm_a, (uid_t) -1, 42));
        /* host tools: Unix only */
        ck_assert(introspector_binding_ok(host, NULL, 1000, 0));
        ck_assert(!introspector_binding_ok(host, NULL, 1001, 0));
        ck_assert(!introspector_binding_ok(host, &vm_a, (uid_t) -1, 42));
        ck_assert(introspector_binding_ok(anyuid, NULL, 12345, 0));
        ck_assert(!introspector_binding_ok(anyuid, &vm_a, (uid_t) -1, 42)); /* unbound: never over vsock */
        /* a VM without a known CID cannot be matched */
        ck_assert(!introspector_binding_ok(nocid, &vm_nocid, (uid_t) -1, 42));
        ck_assert(!introspector_binding_ok(nocid, &vm_nocid, (uid_t) -1, 0));
        /* libvirt's CID wins over the config's; a stopped VM matches nothing
         * (its CID may be another VM's now) */
        const Domain running = { .config_cid = 42, .libvirt_cid = 50, .from_libvirt = true,
                                 .state = DOMAIN_STATE_RUNNING },
                     stopped = { .libvirt_cid = 50, .from_libvirt = true, .state = DOMAIN_STATE_SHUTOFF };
        ck_assert(introspector_binding_ok(invm, &running, (uid_t) -1, 50));
        ck_assert(!introspector_binding_ok(invm, &running, (uid_t) -1, 42));
        ck_assert(!introspector_binding_ok(invm, &stopped, (uid_t) -1, 50));
}
END_TEST

START_TEST(test_key_refused) {
        char path[300], text[600];
        Config *c = NULL;
        char *error = NULL;
        FILE *f;

        snprintf(path, sizeof path, "%s/open.key", dir);
        f = fopen(path, "w");
        fputs("0123456789abcdef0123456789abcdef", f);
        fclose(f);
        chmod(path, 0644);
        snprintf(text, sizeof text, "%s/bad.conf", dir);
        f = fopen(text, "w");
        fprintf(f, "[introspector x]\nkey-file = %s\n", path);
        fclose(f);
        ck_assert_int_eq(config_load(text, "/tmp/rt", &c, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "readable or writable by group or others"));
        free(error);
        error = NULL;
        chmod(path, 0600);
        f = fopen(path, "w");
        fputs("short", f);
        fclose(f);
        ck_assert_int_eq(config_load(text, "/tmp/rt", &c, &error), -EINVAL);
        ck_assert_ptr_nonnull(strstr(error, "at least 32 bytes"));
        free(error);
}
END_TEST

/* HMAC-SHA256(key, "kvmid-auth-v1\0" nonce name "\0" binding), computed
 * independently with Python's hmac module. */
START_TEST(test_proof_vector) {
        const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
        uint8_t nonce[32], out[32];
        char hex[65];

        for (int i = 0; i < 32; i++)
                nonce[i] = (uint8_t) i;
        ck_assert_int_eq(introspector_proof(key, sizeof key, nonce, "forensics", "unix:1000", out), 0);
        for (int i = 0; i < 32; i++)
                snprintf(hex + 2 * i, 3, "%02x", out[i]);
        ck_assert_str_eq(hex, "3b6c6e92254d32ab085968533001109e27cf2e2cc49ba85c50299423d20db1c0");
}
END_TEST

int main(void) {
        Suite *s = suite_create("introspector");
        TCase *tc = tcase_create("introspector");
        SRunner *sr;
        int failed;

        if (!mkdtemp(dir))
                return EXIT_FAILURE;
        tcase_add_test(tc, test_binding);
        tcase_add_test(tc, test_key_refused);
        tcase_add_test(tc, test_proof_vector);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
