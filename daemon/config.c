/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmid.conf: INI via libinih.  Unknown sections and keys are errors, so a
 * typo never silently falls back to a default. */

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <ini.h>

#include "kvmid.h"

#define DEFAULT_RUNTIME_DIR RUNSTATEDIR "/kvmid"

static const struct {
        Role role;
        const char *name, *socket, *group;
        size_t max_message, max_output;
        int max_depth;
} listener_defaults[N_ROLES] = {
        { ROLE_ADMIN, "admin", "io.kvmid.Admin", "kvmid-admin", 1024 * 1024, 16 * 1024 * 1024, 32 },
        { ROLE_INTROSPECTOR, "introspector", "io.kvmid.Introspector", "kvmid-introspector", 16 * 1024, 1024 * 1024, 16 },
        { ROLE_HYPERVISOR, "hypervisor", "io.kvmid.Hypervisor", "kvm", 16 * 1024, 1024 * 1024, 16 },
};

const char *role_to_string(Role role) {
        for (size_t i = 0; i < N_ROLES; i++)
                if (listener_defaults[i].role == role)
                        return listener_defaults[i].name;
        return "unknown";
}

ListenerConfig *config_listener(Config *c, Role role) {
        for (size_t i = 0; i < N_ROLES; i++)
                if (c->listeners[i].role == role)
                        return &c->listeners[i];
        return NULL;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < N_ROLES; i++) {
                free(c->listeners[i].socket_path);
                free(c->listeners[i].group);
        }
        free(c->runtime_dir);
        free(c->path);
        free(c);
        return NULL;
}

static int parse_uint(const char *v, unsigned long long max, unsigned long long *ret) {
        char *end;
        unsigned long long x;

        if (!isdigit((unsigned char) *v))
                return -EINVAL;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        if (x > max)
                return -ERANGE;
        *ret = x;
        return 0;
}

/* "64K", "1M", "1048576": 1024-based. */
static int parse_size(const char *v, unsigned long long max, unsigned long long *ret) {
        _cleanup_free_ char *num = strdup(v);
        unsigned long long x, mult = 1;
        size_t n;
        int r;

        if (!num)
                return -ENOMEM;
        n = strlen(num);
        if (n > 0) {
                switch (toupper((unsigned char) num[n - 1])) {
                case 'K': mult = 1ULL << 10; break;
                case 'M': mult = 1ULL << 20; break;
                case 'G': mult = 1ULL << 30; break;
                default: break;
                }
                if (mult != 1)
                        num[n - 1] = '\0';
        }
        r = parse_uint(num, ULLONG_MAX / mult, &x);
        if (r < 0)
                return r;
        if (x * mult > max)
                return -ERANGE;
        *ret = x * mult;
        return 0;
}

static int parse_bool(const char *v, bool *ret) {
        static const char *const yes[] = { "1", "yes", "true", "on" }, *const no[] = { "0", "no", "false", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(v, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return -EINVAL;
}

static int set_string(char **dst, const char *v) {
        char *s = strdup(v);
        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

typedef struct ParseState {
        Config *config;
        char *error;             /* first error, without the line prefix */
        bool runtime_dir_locked; /* --runtime-dir wins over the file */
} ParseState;

static int parse_daemon_key(ParseState *st, const char *key, const char *v, const char **ret_why) {
        Config *c = st->config;
        unsigned long long x;
        int r;

        if (streq(key, "runtime-dir")) {
                if (v[0] != '/') {
                        *ret_why = "must be an absolute path";
                        return -EINVAL;
                }
                return st->runtime_dir_locked ? 0 : set_string(&c->runtime_dir, v);
        }
        if (streq(key, "log-level")) {
                r = log_level_from_string(v);
                if (r < 0) {
                        *ret_why = "expected one of debug, info, notice, warning, err";
                        return r;
                }
                c->log_level = r;
                return 0;
        }
        if (streq(key, "max-connections") || streq(key, "max-connections-per-uid")) {
                r = parse_uint(v, 1000000, &x);
                if (r < 0 || x == 0) {
                        *ret_why = "expected a number from 1 to 1000000";
                        return -EINVAL;
                }
                *(streq(key, "max-connections") ? &c->max_connections : &c->max_connections_per_uid) = (unsigned) x;
                return 0;
        }
        if (streq(key, "idle-timeout") || streq(key, "write-timeout")) {
                r = parse_uint(v, 86400, &x);
                if (r < 0) {
                        *ret_why = "expected seconds from 0 to 86400";
                        return -EINVAL;
                }
                *(streq(key, "idle-timeout") ? &c->idle_timeout_sec : &c->write_timeout_sec) = (unsigned) x;
                return 0;
        }
        if (streq(key, "varlink-certification")) {
                r = parse_bool(v, &c->certification);
                if (r < 0)
                        *ret_why = "expected yes or no";
                return r;
        }
        *ret_why = "unknown key";
        return -ENOENT;
}

static int parse_listener_key(ListenerConfig *l, const char *key, const char *v, const char **ret_why) {
        unsigned long long x;
        char *end;
        int r;

        if (streq(key, "socket")) {
                if (v[0] != '/') {
                        *ret_why = "must be an absolute path";
                        return -EINVAL;
                }
                return set_string(&l->socket_path, v);
        }
        if (streq(key, "mode")) {
                errno = 0;
                x = strtoull(v, &end, 8);
                if (errno != 0 || *end != '\0' || !*v || x > 07777) {
                        *ret_why = "expected an octal mode such as 0660";
                        return -EINVAL;
                }
                l->mode = (mode_t) x;
                return 0;
        }
        if (streq(key, "group"))
                return set_string(&l->group, v);
        if (streq(key, "max-message-size") || streq(key, "max-output-bytes")) {
                r = parse_size(v, streq(key, "max-message-size") ? VARLINK_MAX_MESSAGE_CEILING : 1ULL << 32, &x);
                if (r < 0 || x < 1024) {
                        *ret_why = streq(key, "max-message-size") ? "expected a size from 1K to 16M"
                                                                  : "expected a size from 1K to 4G";
                        return -EINVAL;
                }
                *(streq(key, "max-message-size") ? &l->max_message_size : &l->max_output_bytes) = (size_t) x;
                return 0;
        }
        if (streq(key, "max-depth")) {
                r = parse_uint(v, 256, &x);
                if (r < 0 || x < 2) {
                        *ret_why = "expected a number from 2 to 256";
                        return -EINVAL;
                }
                l->max_depth = (int) x;
                return 0;
        }
        if (streq(key, "max-pending-calls")) {
                r = parse_uint(v, 4096, &x);
                if (r < 0 || x == 0) {
                        *ret_why = "expected a number from 1 to 4096";
                        return -EINVAL;
                }
                l->max_pending_calls = (size_t) x;
                return 0;
        }
        *ret_why = "unknown key";
        return -ENOENT;
}

/* libinih callback: returns 0 to flag an error on this line. */
static int config_ini_line(void *user, const char *section, const char *key, const char *value) {
        ParseState *st = user;
        const char *why = NULL;
        int r = -ENOENT;

        if (!key) /* a section header alone */
                return 1;
        if (streq(section, "daemon"))
                r = parse_daemon_key(st, key, value, &why);
        else {
                for (size_t i = 0; i < N_ROLES; i++)
                        if (streq(section, listener_defaults[i].name)) {
                                r = parse_listener_key(&st->config->listeners[i], key, value, &why);
                                break;
                        }
                if (!why)
                        why = "unknown section";
        }
        if (r >= 0)
                return 1;
        if (!st->error) {
                if (r == -ENOMEM)
                        why = "out of memory";
                if (asprintf(&st->error, "[%s] %s = \"%s\": %s", section, key, value, why) < 0)
                        st->error = NULL;
        }
        return 0;
}

static Config *config_new_defaults(const char *runtime_dir) {
        _cleanup_(config_freep) Config *c = calloc(1, sizeof *c);

        if (!c)
                return NULL;
        c->runtime_dir = strdup(runtime_dir ?: DEFAULT_RUNTIME_DIR);
        if (!c->runtime_dir)
                return NULL;
        c->log_level = LOG_LVL_INFO;
        c->max_connections = 4096;
        c->max_connections_per_uid = 1024;
        c->idle_timeout_sec = 600;
        c->write_timeout_sec = 30;
        for (size_t i = 0; i < N_ROLES; i++) {
                ListenerConfig *l = &c->listeners[i];
                l->role = listener_defaults[i].role;
                l->name = listener_defaults[i].name;
                l->mode = 0660;
                l->group = strdup(listener_defaults[i].group);
                if (!l->group)
                        return NULL;
                l->max_message_size = listener_defaults[i].max_message;
                l->max_depth = listener_defaults[i].max_depth;
                l->max_pending_calls = VARLINK_DEFAULT_MAX_PENDING;
                l->max_output_bytes = listener_defaults[i].max_output;
        }
        return TAKE_PTR(c);
}

int config_load(const char *path, const char *runtime_dir_override, Config **ret, char **ret_error) {
        _cleanup_(config_freep) Config *c = config_new_defaults(runtime_dir_override);
        ParseState st = { .runtime_dir_locked = runtime_dir_override != NULL };
        int line;

        if (!c)
                return -ENOMEM;
        st.config = c;
        if (path) {
                _cleanup_free_ char *msg = NULL;
                FILE *f = fopen(path, "re");

                if (!f) {
                        int r = negative_errno();
                        if (asprintf(&msg, "%s: %s", path, strerror(-r)) >= 0 && ret_error)
                                *ret_error = TAKE_PTR(msg);
                        return r;
                }
                line = ini_parse_file(f, config_ini_line, &st);
                fclose(f);
                msg = st.error;
                if (line != 0) {
                        _cleanup_free_ char *full = NULL;
                        if (asprintf(&full, "%s:%d: %s", path, line, msg ?: "syntax error") < 0)
                                return -ENOMEM;
                        if (ret_error)
                                *ret_error = TAKE_PTR(full);
                        return -EINVAL;
                }
                c->path = strdup(path);
                if (!c->path)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < N_ROLES; i++) {
                ListenerConfig *l = &c->listeners[i];
                if (!l->socket_path &&
                    asprintf(&l->socket_path, "%s/%s", c->runtime_dir, listener_defaults[i].socket) < 0) {
                        l->socket_path = NULL;
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(c);
        return 0;
}
