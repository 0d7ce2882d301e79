/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmid.conf parsing: defaults, every key, and errors with file:line. */

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "kvmid.h"

static char *write_tmp(const char *text) {
        char *path = strdup("/tmp/check-config-XXXXXX");
        int fd = mkstemp(path);

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        return path;
}

/* Load text; returns the error string (or NULL on success). */
static char *load(const char *text, Config **ret) {
        _cleanup_free_ char *path = write_tmp(text);
        char *error = NULL;
        Config *c = NULL;
        int r = config_load(path, NULL, &c, &error);

        unlink(path);
        if (r < 0) {
                ck_assert_ptr_nonnull(error);
                /* strip the temp path so tests compare "LINE: message" */
                char *colon = strchr(error, ':');
                memmove(error, colon + 1, strlen(colon));
                return error;
        }
        ck_assert_ptr_null(error);
        *ret = c;
        return NULL;
}

START_TEST(test_defaults) {
        _cleanup_(config_freep) Config *c = NULL;

        ck_assert_int_eq(config_load(NULL, "/tmp/rt", &c, NULL), 0);
        ck_assert_str_eq(c->runtime_dir, "/tmp/rt");
        ck_assert_str_eq(config_listener(c, ROLE_ADMIN)->socket_path, "/tmp/rt/io.kvmid.Admin");
        ck_assert_str_eq(config_listener(c, ROLE_INTROSPECTOR)->socket_path, "/tmp/rt/io.kvmid.Introspector");
        ck_assert_str_eq(config_listener(c, ROLE_HYPERVISOR)->socket_path, "/tmp/rt/io.kvmid.Hypervisor");
        ck_assert_str_eq(config_listener(c, ROLE_ADMIN)->group, "kvmid-admin");
        ck_assert_uint_eq(config_listener(c, ROLE_ADMIN)->mode, 0660);
        ck_assert_uint_eq(config_listener(c, ROLE_ADMIN)->max_message_size, 1024 * 1024);
        ck_assert_uint_eq(config_listener(c, ROLE_INTROSPECTOR)->max_message_size, 16 * 1024);
        ck_assert_uint_eq(c->max_connections, 4096);
        ck_assert_uint_eq(c->max_connections_per_uid, 1024);
        ck_assert_int_eq(c->log_level, LOG_LVL_INFO);
        ck_assert(!c->certification);
        ck_assert_ptr_null(c->path);
}
END_TEST

START_TEST(test_all_keys) {
        _cleanup_(config_freep) Config *c = NULL;
        char *e = load("# comment\n"
                       "[daemon]\n"
                       "runtime-dir = /srv/kvmid\n"
                       "log-level = debug\n"
                       "max-connections = 10\n"
                       "max-connections-per-uid = 3\n"
                       "idle-timeout = 0\n"
                       "write-timeout = 7\n"
                       "varlink-certification = yes\n"
                       "; another comment\n"
                       "[introspector]\n"
                       "socket = /srv/i.sock\n"
                       "mode = 0600\n"
                       "group = wheel\n"
                       "max-message-size = 32K\n"
                       "max-depth = 8\n"
                       "max-pending-calls = 2\n"
                       "max-output-bytes = 2M\n",
                       &c);
        ck_assert_ptr_null(e);
        ck_assert_str_eq(c->runtime_dir, "/srv/kvmid");
        ck_assert_int_eq(c->log_level, LOG_LVL_DEBUG);
        ck_assert_uint_eq(c->max_connections, 10);
        ck_assert_uint_eq(c->max_connections_per_uid, 3);
        ck_assert_uint_eq(c->idle_timeout_sec, 0);
        ck_assert_uint_eq(c->write_timeout_sec, 7);
        ck_assert(c->certification);
        ListenerConfig *l = config_listener(c, ROLE_INTROSPECTOR);
        ck_assert_str_eq(l->socket_path, "/srv/i.sock");
        ck_assert_uint_eq(l->mode, 0600);
        ck_assert_str_eq(l->group, "wheel");
        ck_assert_uint_eq(l->max_message_size, 32 * 1024);
        ck_assert_int_eq(l->max_depth, 8);
        ck_assert_uint_eq(l->max_pending_calls, 2);
        ck_assert_uint_eq(l->max_output_bytes, 2 * 1024 * 1024);
        /* runtime-dir from the file moves the other defaults */
        ck_assert_str_eq(config_listener(c, ROLE_ADMIN)->socket_path, "/srv/kvmid/io.kvmid.Admin");
}
END_TEST

START_TEST(test_runtime_dir_override) {
        _cleanup_free_ char *path = write_tmp("[daemon]\nruntime-dir = /srv/x\n");
        _cleanup_(config_freep) Config *c = NULL;

        ck_assert_int_eq(config_load(path, "/tmp/cli", &c, NULL), 0);
        unlink(path);
        ck_assert_str_eq(c->runtime_dir, "/tmp/cli");
        ck_assert_str_eq(config_listener(c, ROLE_ADMIN)->socket_path, "/tmp/cli/io.kvmid.Admin");
}
END_TEST

static const struct {
        const char *text, *error;
} bad[] = {
        { "[daemon]\nbogus = 1\n", "2: [daemon] bogus = \"1\": unknown key" },
        { "[nope]\nx = 1\n", "2: [nope] x = \"1\": unknown section" },
        { "[daemon]\nlog-level = loud\n", "2: [daemon] log-level = \"loud\": expected one of debug, info, notice, warning, err" },
        { "[daemon]\n\nmax-connections = 0\n", "3: [daemon] max-connections = \"0\": expected a number from 1 to 1000000" },
        { "[daemon]\nmax-connections = -5\n", "2: [daemon] max-connections = \"-5\": expected a number from 1 to 1000000" },
        { "[daemon]\nidle-timeout = 1s\n", "2: [daemon] idle-timeout = \"1s\": expected seconds from 0 to 86400" },
        { "[daemon]\nruntime-dir = relative\n", "2: [daemon] runtime-dir = \"relative\": must be an absolute path" },
        { "[daemon]\nvarlink-certification = maybe\n", "2: [daemon] varlink-certification = \"maybe\": expected yes or no" },
        { "[admin]\nmode = 0999\n", "2: [admin] mode = \"0999\": expected an octal mode such as 0660" },
        { "[admin]\nmax-message-size = 17M\n", "2: [admin] max-message-size = \"17M\": expected a size from 1K to 16M" },
        { "[admin]\nmax-message-size = 12\n", "2: [admin] max-message-size = \"12\": expected a size from 1K to 16M" },
        { "[admin]\nmax-message-size = 1X\n", "2: [admin] max-message-size = \"1X\": expected a size from 1K to 16M" },
        { "[hypervisor]\nmax-depth = 1\n", "2: [hypervisor] max-depth = \"1\": expected a number from 2 to 256" },
        { "[hypervisor]\nmax-pending-calls = 0\n", "2: [hypervisor] max-pending-calls = \"0\": expected a number from 1 to 4096" },
        { "[hypervisor]\nsocket = x.sock\n", "2: [hypervisor] socket = \"x.sock\": must be an absolute path" },
        { "[daemon]\nno equals sign\n", "2: syntax error" },
        /* the first error is reported, even when later lines are bad too */
        { "[daemon]\nlog-level = info\nfoo = 1\nbar = 2\n", "3: [daemon] foo = \"1\": unknown key" },
};

START_TEST(test_bad) {
        Config *c = NULL;
        _cleanup_free_ char *e = load(bad[_i].text, &c);

        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e, bad[_i].error);
}
END_TEST

START_TEST(test_missing_file) {
        Config *c = NULL;
        _cleanup_free_ char *e = NULL;

        ck_assert_int_eq(config_load("/nonexistent/kvmid.conf", NULL, &c, &e), -ENOENT);
        ck_assert_ptr_null(c);
        ck_assert_str_eq(e, "/nonexistent/kvmid.conf: No such file or directory");
}
END_TEST

START_TEST(test_role_names) {
        ck_assert_str_eq(role_to_string(ROLE_ADMIN), "admin");
        ck_assert_str_eq(role_to_string(ROLE_INTROSPECTOR), "introspector");
        ck_assert_str_eq(role_to_string(ROLE_HYPERVISOR), "hypervisor");
        ck_assert_int_eq(log_level_from_string("warning"), LOG_LVL_WARNING);
        ck_assert_int_eq(log_level_from_string("ERROR"), LOG_LVL_ERR);
        ck_assert_int_eq(log_level_from_string("verbose"), -EINVAL);
        ck_assert_str_eq(log_level_to_string(LOG_LVL_NOTICE), "notice");
}
END_TEST

int main(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("config");
        SRunner *sr;
        int failed;

        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_all_keys);
        tcase_add_test(tc, test_runtime_dir_override);
        tcase_add_loop_test(tc, test_bad, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_role_names);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
