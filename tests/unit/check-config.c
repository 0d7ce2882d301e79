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

/* [kvmi] numbering: a name resolved to its table at load (unknown: the
 * error table below). */
START_TEST(test_kvmi_numbering) {
        _cleanup_(config_freep) Config *dflt = NULL, *c = NULL;

        ck_assert_int_eq(config_load(NULL, "/tmp/rt", &dflt, NULL), 0);
        ck_assert_ptr_eq(dflt->kvmi.numbering, &kvmi_numbering_v7);
        ck_assert_ptr_null(load("[kvmi]\nnumbering = v7\n", &c));
        ck_assert_ptr_eq(c->kvmi.numbering, &kvmi_numbering_v7);
        ck_assert_ptr_eq(c->kvmi.numbering, kvmi_numbering_by_name("v7"));
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
        { "[kvmi]\nhandshake-timeout = 0\n", "2: [kvmi] handshake-timeout = \"0\": expected seconds from 1 to 600" },
        { "[kvmi]\nvsock-port = x\n", "2: [kvmi] vsock-port = \"x\": expected a vsock port number, or 0 for none" },
        { "[kvmi]\nmax-channels = 0\n", "2: [kvmi] max-channels = \"0\": expected a number from 1 to 65536" },
        { "[kvmi]\nsocket = rel\n", "2: [kvmi] socket = \"rel\": must be an absolute path" },
        { "[kvmi]\nbogus = 1\n", "2: [kvmi] bogus = \"1\": unknown key" },
        { "[kvmi]\n\nnumbering = v5\n", "3: [kvmi] numbering = \"v5\": expected a known KVMI numbering: v7" },
        { "[kvmi]\nnumbering = V7\n", "2: [kvmi] numbering = \"V7\": expected a known KVMI numbering: v7" },
        { "[kvmi]\nnumbering =\n", "2: [kvmi] numbering = \"\": expected a known KVMI numbering: v7" },
        { "[domain a]\nuuid = 1234\n",
          "2: [domain a] uuid = \"1234\": expected a UUID such as 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f" },
        { "[domain a]\nuuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6g\n",
          "2: [domain a] uuid = \"6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6g\": expected a UUID such as 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f" },
        { "[domain a]\nrole = victim\n", "2: [domain a] role = \"victim\": expected target or introspector" },
        { "[domain a]\ncookie = secret\n",
          "2: [domain a] cookie = \"secret\": the only value is none (use cookie-file = PATH for a secret)" },
        { "[domain a]\ncookie-file = rel\n", "2: [domain a] cookie-file = \"rel\": must be an absolute path" },
        { "[domain a]\ncolour = red\n", "2: [domain a] colour = \"red\": unknown key" },
        { "[domain a/b]\nrole = target\n",
          "2: [domain a/b] role = \"target\": a domain name must be 1 to 255 characters without spaces or '/'" },
        { "[audit]\nsync = sometimes\n", "2: [audit] sync = \"sometimes\": expected always, interval or off" },
        { "[audit]\nsync = ALWAYS\n", "2: [audit] sync = \"ALWAYS\": expected always, interval or off" },
        { "[audit]\nsync =\n", "2: [audit] sync = \"\": expected always, interval or off" },
        { "[audit]\n\nsync-interval = 0\n", "3: [audit] sync-interval = \"0\": expected milliseconds from 1 to 60000" },
        { "[audit]\nsync-interval = 60001\n", "2: [audit] sync-interval = \"60001\": expected milliseconds from 1 to 60000" },
        { "[audit]\nsync-interval = 100ms\n", "2: [audit] sync-interval = \"100ms\": expected milliseconds from 1 to 60000" },
        { "[audit]\nsync-interval = -1\n", "2: [audit] sync-interval = \"-1\": expected milliseconds from 1 to 60000" },
        { "[audit]\nfile = audit.log\n", "2: [audit] file = \"audit.log\": must be an absolute path" },
        { "[audit]\nsync-every = 1\n", "2: [audit] sync-every = \"1\": unknown key" },
        /* a later bad sync line is reported even after a good one */
        { "[audit]\nsync = off\nsync = never\n", "3: [audit] sync = \"never\": expected always, interval or off" },
        /* an indented line is a line of its own, not a continuation */
        { "[daemon]\nmax-connections = 10\n  bogus = 1\n", "3: [daemon] bogus = \"1\": unknown key" },
        /* the first error is reported, even when later lines are bad too */
        { "[daemon]\nlog-level = info\nfoo = 1\nbar = 2\n", "3: [daemon] foo = \"1\": unknown key" },
};

/* Blanks before a key are ignored, as kvmid.conf(5) says (libinih alone
 * would append the line to the previous value). */
START_TEST(test_indented) {
        Config *c = NULL;
        _cleanup_free_ char *e = load("[daemon]\n  max-connections = 10\n\tidle-timeout = 5\n", &c);

        ck_assert_ptr_null(e);
        ck_assert_uint_eq(c->max_connections, 10);
        ck_assert_uint_eq(c->idle_timeout_sec, 5);
        config_free(c);
}
END_TEST

START_TEST(test_bad) {
        Config *c = NULL;
        _cleanup_free_ char *e = load(bad[_i].text, &c);

        ck_assert_ptr_null(c);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e, bad[_i].error);
}
END_TEST

/* [audit]: sync and sync-interval, and the file's default. */
START_TEST(test_audit_keys) {
        static const struct {
                const char *text;
                AuditSyncMode sync;
                unsigned interval_msec;
        } good[] = {
                { "[audit]\nsync = always\n", AUDIT_SYNC_ALWAYS, 1000 },
                { "[audit]\nsync = interval\n", AUDIT_SYNC_INTERVAL, 1000 },
                { "[audit]\nsync = interval\nsync-interval = 250\n", AUDIT_SYNC_INTERVAL, 250 },
                { "[audit]\nsync-interval = 1\nsync = interval\n", AUDIT_SYNC_INTERVAL, 1 },
                { "[audit]\nsync = interval\nsync-interval = 60000\n", AUDIT_SYNC_INTERVAL, 60000 },
                { "[audit]\nsync = off\n", AUDIT_SYNC_OFF, 1000 },
                /* the last line wins */
                { "[audit]\nsync = off\nsync = always\nsync-interval = 5\nsync-interval = 7\n", AUDIT_SYNC_ALWAYS, 7 },
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                _cleanup_(config_freep) Config *c = NULL;
                char *e = load(good[i].text, &c);

                ck_assert_msg(!e, "%s: %s", good[i].text, e);
                ck_assert_msg(c->audit.sync == good[i].sync, "%s: sync %d", good[i].text, c->audit.sync);
                ck_assert_uint_eq(c->audit.interval_msec, good[i].interval_msec);
                ck_assert_ptr_nonnull(c->audit.file);
        }

        _cleanup_(config_freep) Config *c = NULL;
        ck_assert_int_eq(config_load(NULL, "/tmp/rt", &c, NULL), 0);
        ck_assert_int_eq(c->audit.sync, AUDIT_SYNC_ALWAYS);
        ck_assert_uint_eq(c->audit.interval_msec, 1000);
        /* a private runtime directory keeps its own audit log */
        ck_assert_str_eq(c->audit.file, "/tmp/rt/audit.log");
        c = config_free(c);
        ck_assert_ptr_null(load("[audit]\nfile = /srv/log/a.log\nsync = off\n", &c));
        ck_assert_str_eq(c->audit.file, "/srv/log/a.log");
        ck_assert_int_eq(c->audit.sync, AUDIT_SYNC_OFF);
        ck_assert_str_eq(audit_sync_mode_to_string(c->audit.sync), "off");
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

START_TEST(test_domains) {
        _cleanup_(config_freep) Config *c = NULL;
        const DomainConfig *d;
        char u[37];

        ck_assert_ptr_null(load("[kvmi]\nsocket = /x/kvmi\nmode = 0600\ngroup = g\nvsock-port = 4242\n"
                                "handshake-timeout = 3\ncommand-timeout = 2\nmax-channels = 7\nrecent-events = 0\n"
                                "[domain web1]\nuuid = 6F1D4A4E-8C55-4B4E-9D1E-2A7B3C4D5E6F\ncookie-file = /etc/c1\n"
                                "[domain intro]\nuuid = 00000000-0000-0000-0000-000000000001\nrole = introspector\n"
                                "cookie = none\n"
                                "[domain web1]\ncookie = none\n",
                                &c));
        ck_assert_str_eq(c->kvmi.socket_path, "/x/kvmi");
        ck_assert_uint_eq(c->kvmi.mode, 0600);
        ck_assert_str_eq(c->kvmi.group, "g");
        ck_assert_uint_eq(c->kvmi.vsock_port, 4242);
        ck_assert_uint_eq(c->kvmi.handshake_timeout_sec, 3);
        ck_assert_uint_eq(c->kvmi.command_timeout_sec, 2);
        ck_assert_uint_eq(c->kvmi.max_channels, 7);
        ck_assert_uint_eq(c->kvmi.recent_events, 0);
        d = config_find_domain(c, "web1");
        ck_assert_ptr_nonnull(d);
        uuid_to_string(d->uuid, u);
        ck_assert_str_eq(u, "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f");
        ck_assert_int_eq(d->role, DOMAIN_ROLE_TARGET);
        /* a later section of the same name continues the entry: cookie = none replaces the file */
        ck_assert(d->cookie_none);
        ck_assert_ptr_null(d->cookie_file);
        d = config_find_domain(c, "intro");
        ck_assert_int_eq(d->role, DOMAIN_ROLE_INTROSPECTOR);
        ck_assert_ptr_eq(c->domains->next, d);
        ck_assert_ptr_null(d->next);
        ck_assert_ptr_null(config_find_domain(c, "nope"));
}
END_TEST

START_TEST(test_domain_defaults) {
        _cleanup_(config_freep) Config *c = NULL;

        ck_assert_int_eq(config_load(NULL, "/tmp/rt", &c, NULL), 0);
        ck_assert_str_eq(c->kvmi.socket_path, "/tmp/rt/kvmi");
        ck_assert_str_eq(c->kvmi.group, "kvm");
        ck_assert_uint_eq(c->kvmi.mode, 0660);
        ck_assert_uint_eq(c->kvmi.vsock_port, 0);
        ck_assert_uint_eq(c->kvmi.handshake_timeout_sec, 10);
        ck_assert_ptr_null(c->domains);
}
END_TEST

/* Errors only the whole file shows. */
START_TEST(test_domain_file_errors) {
        Config *c = NULL;
        char *e;

        e = load("[domain a]\nrole = target\n", &c);
        ck_assert_ptr_null(c);
        ck_assert_str_eq(e, " [domain a]: uuid = is missing");
        free(e);
        e = load("[domain a]\nuuid = 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f\n"
                 "[domain b]\nuuid = 6F1D4A4E-8C55-4B4E-9D1E-2A7B3C4D5E6F\n", &c);
        ck_assert_ptr_null(c);
        ck_assert_str_eq(e, " [domain b]: uuid 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f is also the uuid of [domain a]");
        free(e);
}
END_TEST

START_TEST(test_uuid) {
        uint8_t u[16];
        char s[37];

        ck_assert_int_eq(uuid_from_string("00112233-4455-6677-8899-aabbccddeeff", u), 0);
        ck_assert_uint_eq(u[0], 0x00);
        ck_assert_uint_eq(u[15], 0xff);
        uuid_to_string(u, s);
        ck_assert_str_eq(s, "00112233-4455-6677-8899-aabbccddeeff");
        ck_assert_int_eq(uuid_from_string("00112233-4455-6677-8899-aabbccddeef", u), -EINVAL);
        ck_assert_int_eq(uuid_from_string("00112233-4455-6677-8899-aabbccddeeff0", u), -EINVAL);
        ck_assert_int_eq(uuid_from_string("001122334-455-6677-8899-aabbccddeeff", u), -EINVAL);
        ck_assert_int_eq(uuid_from_string("", u), -EINVAL);
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
        tcase_add_test(tc, test_kvmi_numbering);
        tcase_add_loop_test(tc, test_bad, 0, ELEMENTSOF(bad));
        tcase_add_test(tc, test_audit_keys);
        tcase_add_test(tc, test_missing_file);
        tcase_add_test(tc, test_indented);
        tcase_add_test(tc, test_role_names);
        tcase_add_test(tc, test_domains);
        tcase_add_test(tc, test_domain_defaults);
        tcase_add_test(tc, test_domain_file_errors);
        tcase_add_test(tc, test_uuid);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
