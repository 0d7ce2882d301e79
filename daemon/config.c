/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmid.conf: INI via libinih.  Unknown sections and keys are errors, so a
 * typo never silently falls back to a default. */

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <ini.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/crypto.h>

#include "kvmid.h"

#define DEFAULT_RUNTIME_DIR RUNSTATEDIR "/kvmid"
#define DEFAULT_LIBVIRT_URI "qemu:///system"

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

const char *domain_role_to_string(DomainRole role) {
        return role == DOMAIN_ROLE_INTROSPECTOR ? "introspector" : "target";
}

const DomainConfig *config_find_domain(const Config *c, const char *name) {
        for (const DomainConfig *d = c->domains; d; d = d->next)
                if (streq(d->name, name))
                        return d;
        return NULL;
}

int uuid_from_string(const char *s, uint8_t ret[16]) {
        return policy_uuid_from_string(s, ret);
}

void uuid_to_string(const uint8_t u[16], char buf[static 37]) {
        snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

const IdentityConfig *config_find_identity(const Config *c, const char *name) {
        for (const IdentityConfig *i = c->identities; i; i = i->next)
                if (streq(i->name, name))
                        return i;
        return NULL;
}

static IdentityConfig *identity_config_free(IdentityConfig *i) {
        if (!i)
                return NULL;
        if (i->key)
                OPENSSL_cleanse(i->key, i->key_len);
        free(i->key);
        free(i->name);
        free(i->key_file);
        free(i->domain);
        free(i);
        return NULL;
}

static DomainConfig *domain_config_free(DomainConfig *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_labels; i++)
                free(d->labels[i]);
        free(d->labels);
        free(d->name);
        free(d->cookie_file);
        free(d);
        return NULL;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        while (c->domains) {
                DomainConfig *d = c->domains;
                c->domains = d->next;
                domain_config_free(d);
        }
        while (c->identities) {
                IdentityConfig *i = c->identities;
                c->identities = i->next;
                identity_config_free(i);
        }
        free(c->libvirt_uri);
        free(c->audit.file);
        free(c->policy.file);
        free(c->policy.directory);
        free(c->kvmi.socket_path);
        free(c->kvmi.group);
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

/* socket, mode and group: the keys every listener section has.  Returns
 * -ENOENT for another key. */
static int parse_socket_key(char **socket_path, mode_t *mode, char **group, const char *key, const char *v,
                            const char **ret_why) {
        unsigned long long x;
        char *end;

        if (streq(key, "socket")) {
                if (v[0] != '/') {
                        *ret_why = "must be an absolute path";
                        return -EINVAL;
                }
                return set_string(socket_path, v);
        }
        if (streq(key, "mode")) {
                errno = 0;
                x = strtoull(v, &end, 8);
                if (errno != 0 || *end != '\0' || !*v || x > 07777) {
                        *ret_why = "expected an octal mode such as 0660";
                        return -EINVAL;
                }
                *mode = (mode_t) x;
                return 0;
        }
        if (streq(key, "group"))
                return set_string(group, v);
        return -ENOENT;
}

static int parse_number_key(const char *v, unsigned long long min, unsigned long long max, unsigned *ret,
                            const char **ret_why, const char *why) {
        unsigned long long x;

        if (parse_uint(v, max, &x) < 0 || x < min) {
                *ret_why = why;
                return -EINVAL;
        }
        *ret = (unsigned) x;
        return 0;
}

static int parse_kvmi_key(KvmiConfig *k, const char *key, const char *v, const char **ret_why) {
        int r = parse_socket_key(&k->socket_path, &k->mode, &k->group, key, v, ret_why);

        if (r != -ENOENT)
                return r;
        if (streq(key, "vsock-port"))
                return parse_number_key(v, 0, UINT32_MAX - 1, &k->vsock_port, ret_why,
                                        "expected a vsock port number, or 0 for none");
        if (streq(key, "handshake-timeout"))
                return parse_number_key(v, 1, 600, &k->handshake_timeout_sec, ret_why, "expected seconds from 1 to 600");
        if (streq(key, "command-timeout"))
                return parse_number_key(v, 1, 600, &k->command_timeout_sec, ret_why, "expected seconds from 1 to 600");
        if (streq(key, "max-channels"))
                return parse_number_key(v, 1, 65536, &k->max_channels, ret_why, "expected a number from 1 to 65536");
        if (streq(key, "recent-events"))
                return parse_number_key(v, 0, 4096, &k->recent_events, ret_why, "expected a number from 0 to 4096");
        if (streq(key, "numbering")) {
                const KvmiNumbering *n = kvmi_numbering_by_name(v);
                if (!n) {
                        *ret_why = "expected a known KVMI numbering: v7";
                        return -EINVAL;
                }
                k->numbering = n;
                return 0;
        }
        *ret_why = "unknown key";
        return -ENOENT;
}

static int parse_domain_key(DomainConfig *d, const char *key, const char *v, const char **ret_why) {
        if (streq(key, "uuid")) {
                if (uuid_from_string(v, d->uuid) < 0) {
                        *ret_why = "expected a UUID such as 6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f";
                        return -EINVAL;
                }
                d->has_uuid = true;
                return 0;
        }
        if (streq(key, "role")) {
                if (streq(v, "target"))
                        d->role = DOMAIN_ROLE_TARGET;
                else if (streq(v, "introspector"))
                        d->role = DOMAIN_ROLE_INTROSPECTOR;
                else {
                        *ret_why = "expected target or introspector";
                        return -EINVAL;
                }
                return 0;
        }
        if (streq(key, "cookie-file")) {
                if (v[0] != '/') {
                        *ret_why = "must be an absolute path";
                        return -EINVAL;
                }
                d->cookie_none = false;
                return set_string(&d->cookie_file, v);
        }
        if (streq(key, "label")) {
                char **l;
                if (!*v || strlen(v) > 255) {
                        *ret_why = "a label is 1 to 255 characters";
                        return -EINVAL;
                }
                if (d->n_labels >= 64) {
                        *ret_why = "at most 64 labels per domain";
                        return -EINVAL;
                }
                l = realloc(d->labels, (d->n_labels + 1) * sizeof *l);
                if (!l)
                        return -ENOMEM;
                d->labels = l;
                l[d->n_labels] = strdup(v);
                if (!l[d->n_labels])
                        return -ENOMEM;
                d->n_labels++;
                return 0;
        }
        if (streq(key, "vsock-cid")) {
                unsigned long long x;
                /* 0-2 are the hypervisor, local and host addresses, never a guest. */
                if (parse_uint(v, UINT32_MAX - 1, &x) < 0 || x < 3) {
                        *ret_why = "expected a guest vsock CID from 3 to 4294967294";
                        return -EINVAL;
                }
                d->vsock_cid = (uint32_t) x;
                return 0;
        }
        if (streq(key, "cookie")) {
                if (!streq(v, "none")) {
                        *ret_why = "the only value is none (use cookie-file = PATH for a secret)";
                        return -EINVAL;
                }
                d->cookie_none = true;
                d->cookie_file = mfree(d->cookie_file);
                return 0;
        }
        *ret_why = "unknown key";
        return -ENOENT;
}

static int parse_policy_key(PolicyConfig *p, const char *key, const char *v, const char **ret_why) {
        if (!streq(key, "file") && !streq(key, "directory")) {
                *ret_why = "unknown key";
                return -ENOENT;
        }
        if (v[0] != '/') {
                *ret_why = "must be an absolute path";
                return -EINVAL;
        }
        return set_string(streq(key, "file") ? &p->file : &p->directory, v);
}

static int parse_session_key(SessionConfig *sc, const char *key, const char *v, const char **ret_why) {
        unsigned long long x;

        if (streq(key, "max-sessions-per-connection"))
                return parse_number_key(v, 1, 4096, &sc->max_per_connection, ret_why, "expected a number from 1 to 4096");
        if (streq(key, "subscriber-queue-events"))
                return parse_number_key(v, 1, 1000000, &sc->queue_events, ret_why,
                                        "expected a number from 1 to 1000000");
        if (streq(key, "subscriber-queue-bytes")) {
                if (parse_size(v, 1ULL << 30, &x) < 0 || x < 4096) {
                        *ret_why = "expected a size from 4K to 1G";
                        return -EINVAL;
                }
                sc->queue_bytes = (size_t) x;
                return 0;
        }
        if (streq(key, "subscriber-flush-delay"))
                return parse_number_key(v, 0, 100000, &sc->flush_delay_usec, ret_why,
                                        "expected microseconds from 0 to 100000");
        if (streq(key, "token-timeout"))
                return parse_number_key(v, 1, 600000, &sc->token_timeout_msec, ret_why,
                                        "expected milliseconds from 1 to 600000");
        if (streq(key, "token-lifetime"))
                return parse_number_key(v, 100, 600000, &sc->token_lifetime_msec, ret_why,
                                        "expected milliseconds from 100 to 600000");
        if (streq(key, "max-tokens"))
                return parse_number_key(v, 1, 4096, &sc->max_tokens, ret_why, "expected a number from 1 to 4096");
        *ret_why = "unknown key";
        return -ENOENT;
}

static int parse_audit_key(AuditFileConfig *a, const char *key, const char *v, const char **ret_why) {
        if (streq(key, "file")) {
                if (v[0] != '/') {
                        *ret_why = "must be an absolute path";
                        return -EINVAL;
                }
                return set_string(&a->file, v);
        }
        if (streq(key, "sync")) {
                AuditSyncMode m = audit_sync_mode_from_string(v);
                if (m < 0) {
                        *ret_why = "expected always, interval or off";
                        return -EINVAL;
                }
                a->sync = m;
                return 0;
        }
        if (streq(key, "sync-interval"))
                return parse_number_key(v, 1, 60000, &a->interval_msec, ret_why,
                                        "expected milliseconds from 1 to 60000");
        *ret_why = "unknown key";
        return -ENOENT;
}

static int parse_identity_key(IdentityConfig *id, const char *key, const char *v, const char **ret_why) {
        if (streq(key, "key-file")) {
                if (v[0] != '/') {
                        *ret_why = "must be an absolute path";
                        return -EINVAL;
                }
                return set_string(&id->key_file, v);
        }
        if (streq(key, "domain"))
                return set_string(&id->domain, v);
        if (streq(key, "uid")) {
                /* "1000" or "1000 1001": each line adds. */
                _cleanup_free_ char *copy = strdup(v);
                char *save = NULL;
                if (!copy)
                        return -ENOMEM;
                for (char *w = strtok_r(copy, " ,", &save); w; w = strtok_r(NULL, " ,", &save)) {
                        unsigned long long x;
                        if (parse_uint(w, UINT32_MAX - 1, &x) < 0) {
                                *ret_why = "expected numeric uids separated by spaces or commas";
                                return -EINVAL;
                        }
                        if (id->n_uids == IDENTITY_MAX_UIDS) {
                                *ret_why = "at most 16 uids per introspector";
                                return -EINVAL;
                        }
                        id->uids[id->n_uids++] = (uid_t) x;
                }
                return 0;
        }
        *ret_why = "unknown key";
        return -ENOENT;
}

static bool section_name_valid(const char *name) {
        return *name && strlen(name) <= 255 && !strpbrk(name, " \t/");
}

/* "[introspector NAME]": the identity NAME, created at its first key. */
static int identity_section(Config *c, const char *name, IdentityConfig **ret, const char **ret_why) {
        IdentityConfig **tail = &c->identities;

        if (!section_name_valid(name)) {
                *ret_why = "an introspector name must be 1 to 255 characters without spaces or '/'";
                return -EINVAL;
        }
        for (; *tail; tail = &(*tail)->next)
                if (streq((*tail)->name, name)) {
                        *ret = *tail;
                        return 0;
                }
        IdentityConfig *id = calloc(1, sizeof *id);
        if (!id)
                return -ENOMEM;
        id->name = strdup(name);
        if (!id->name) {
                free(id);
                return -ENOMEM;
        }
        *tail = id;
        *ret = id;
        return 0;
}

/* "[domain NAME]": the entry for NAME, created at its first key. */
static int domain_section(Config *c, const char *name, DomainConfig **ret, const char **ret_why) {
        DomainConfig **tail = &c->domains;

        if (!section_name_valid(name)) {
                *ret_why = "a domain name must be 1 to 255 characters without spaces or '/'";
                return -EINVAL;
        }
        for (; *tail; tail = &(*tail)->next)
                if (streq((*tail)->name, name)) {
                        *ret = *tail;
                        return 0;
                }
        DomainConfig *d = calloc(1, sizeof *d);
        if (!d)
                return -ENOMEM;
        d->name = strdup(name);
        if (!d->name) {
                free(d);
                return -ENOMEM;
        }
        *tail = d;
        *ret = d;
        return 0;
}

static int parse_listener_key(ListenerConfig *l, const char *key, const char *v, const char **ret_why) {
        unsigned long long x;
        int r;

        r = parse_socket_key(&l->socket_path, &l->mode, &l->group, key, v, ret_why);
        if (r != -ENOENT)
                return r;
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
        if (streq(key, "vsock-port") && l->role == ROLE_INTROSPECTOR)
                return parse_number_key(v, 0, UINT32_MAX - 1, &l->vsock_port, ret_why,
                                        "expected a vsock port number, or 0 for none");
        *ret_why = "unknown key";
        return -ENOENT;
}

/* [libvirt] uri = URI | none (no libvirt connection); default qemu:///system. */
static int parse_libvirt_key(Config *c, const char *key, const char *v, const char **ret_why) {
        if (streq(key, "uri")) {
                char *u = NULL;
                if (!streq(v, "") && !streq(v, "none") && !(u = strdup(v)))
                        return -ENOMEM;
                free(c->libvirt_uri);
                c->libvirt_uri = u;
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
        else if (streq(section, "session"))
                r = parse_session_key(&st->config->session, key, value, &why);
        else if (streq(section, "audit"))
                r = parse_audit_key(&st->config->audit, key, value, &why);
        else if (streq(section, "policy"))
                r = parse_policy_key(&st->config->policy, key, value, &why);
        else if (streq(section, "kvmi"))
                r = parse_kvmi_key(&st->config->kvmi, key, value, &why);
        else if (streq(section, "libvirt"))
                r = parse_libvirt_key(st->config, key, value, &why);
        else if (strneq(section, "introspector ", 13)) {
                IdentityConfig *id;
                r = identity_section(st->config, section + 13, &id, &why);
                if (r >= 0)
                        r = parse_identity_key(id, key, value, &why);
        } else if (strneq(section, "domain ", 7)) {
                DomainConfig *d;
                r = domain_section(st->config, section + 7, &d, &why);
                if (r >= 0)
                        r = parse_domain_key(d, key, value, &why);
        } else {
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
        c->policy.file = strdup(SYSCONFDIR "/kvmid/policy");
        c->policy.directory = strdup(SYSCONFDIR "/kvmid/policy.d");
        c->libvirt_uri = strdup(DEFAULT_LIBVIRT_URI);
        if (!c->policy.file || !c->policy.directory || !c->libvirt_uri)
                return NULL;
        c->session.max_per_connection = 64;
        c->session.queue_events = 1024;
        c->session.queue_bytes = 512 * 1024;
        c->session.flush_delay_usec = 200;
        c->session.token_timeout_msec = 5000;
        c->session.token_lifetime_msec = 3000;
        c->session.max_tokens = 64;
        c->audit.sync = AUDIT_SYNC_ALWAYS;
        c->audit.interval_msec = 1000;
        c->kvmi.mode = 0660;
        c->kvmi.group = strdup("kvm");
        c->kvmi.handshake_timeout_sec = 10;
        c->kvmi.command_timeout_sec = 5;
        c->kvmi.max_channels = 1024;
        c->kvmi.recent_events = 16;
        c->kvmi.numbering = &kvmi_numbering_v7;
        if (!c->kvmi.group)
                return NULL;
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

/* A key is a secret: refuse a file others could read, or too short to be
 * one, so a misconfigured identity never authenticates anyone. */
static int load_key(IdentityConfig *id, const char **ret_why) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t buf[IDENTITY_KEY_MAX + 1];
        struct stat st;
        size_t len = 0;

        fd = open(id->key_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                *ret_why = "cannot open the key file";
                return negative_errno();
        }
        if (!S_ISREG(st.st_mode)) {
                *ret_why = "the key file is not a regular file";
                return -EINVAL;
        }
        if (st.st_mode & 0077) {
                *ret_why = "the key file is readable or writable by group or others (chmod 0600 it)";
                return -EPERM;
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, sizeof buf - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        *ret_why = "cannot read the key file";
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == sizeof buf)
                        break;
        }
        if (len < IDENTITY_KEY_MIN || len > IDENTITY_KEY_MAX) {
                OPENSSL_cleanse(buf, sizeof buf);
                *ret_why = len < IDENTITY_KEY_MIN ? "the key must be at least 32 bytes"
                                                  : "the key must be at most 1024 bytes";
                return -EINVAL;
        }
        id->key = malloc(len);
        if (!id->key) {
                OPENSSL_cleanse(buf, sizeof buf);
                return -ENOMEM;
        }
        memcpy(id->key, buf, len);
        id->key_len = len;
        OPENSSL_cleanse(buf, sizeof buf);
        return 0;
}

static int check_identities(Config *c, char **ret_error) {
        const char *file = c->path ?: "configuration";

        for (IdentityConfig *id = c->identities; id; id = id->next) {
                const char *why = NULL;
                bool about_key = false;
                int r;

                if (!id->key_file)
                        why = "key-file = is missing";
                else if (id->domain && !config_find_domain(c, id->domain) && !c->libvirt_uri)
                        why = "domain = names no [domain] entry, and without libvirt no VM can match";
                else {
                        r = load_key(id, &why);
                        if (r == -ENOMEM)
                                return r;
                        about_key = true;
                }
                if (!why)
                        continue;
                if (ret_error && asprintf(ret_error, "%s: [introspector %s]: %s%s%s%s", file, id->name, why,
                                          about_key ? " (\"" : "", about_key ? id->key_file : "",
                                          about_key ? "\")" : "") < 0)
                        *ret_error = NULL;
                return -EINVAL;
        }
        return 0;
}

/* What no single line shows: every domain has a UUID, and no two share one. */
static int check_domains(const Config *c, char **ret_error) {
        const char *file = c->path ?: "configuration";
        char *msg = NULL;

        for (const DomainConfig *d = c->domains; d; d = d->next) {
                if (!d->has_uuid) {
                        if (asprintf(&msg, "%s: [domain %s]: uuid = is missing", file, d->name) < 0)
                                return -ENOMEM;
                        break;
                }
                for (const DomainConfig *e = c->domains; e != d; e = e->next)
                        if (memcmp(e->uuid, d->uuid, 16) == 0) {
                                char u[37];
                                uuid_to_string(d->uuid, u);
                                if (asprintf(&msg, "%s: [domain %s]: uuid %s is also the uuid of [domain %s]", file,
                                             d->name, u, e->name) < 0)
                                        return -ENOMEM;
                                break;
                        }
                if (msg)
                        break;
        }
        if (!msg)
                return 0;
        if (ret_error)
                *ret_error = msg;
        else
                free(msg);
        return -EINVAL;
}

typedef struct LineReader {
        FILE *f;
        bool at_line_start;
} LineReader;

/* libinih's reader: fgets, but with the blanks at the start of a line
 * dropped.  libinih would take an indented line as the continuation of
 * the previous value ("max-connections = idle-timeout = 5"); here an
 * indented key is a key, as kvmid.conf(5) says. */
static char *config_read_line(char *str, int num, void *stream) {
        LineReader *lr = stream;
        size_t n, skip;

        if (!fgets(str, num, lr->f))
                return NULL;
        n = strlen(str);
        if (lr->at_line_start) {
                skip = strspn(str, " \t");
                memmove(str, str + skip, n - skip + 1);
                n -= skip;
        }
        lr->at_line_start = n > 0 && str[n - 1] == '\n';
        return str;
}

int config_load(const char *path, const char *runtime_dir_override, Config **ret, char **ret_error) {
        _cleanup_(config_freep) Config *c = config_new_defaults(runtime_dir_override);
        ParseState st = { .runtime_dir_locked = runtime_dir_override != NULL };
        int line, r;

        if (!c)
                return -ENOMEM;
        st.config = c;
        if (path) {
                _cleanup_free_ char *msg = NULL;
                FILE *f = fopen(path, "re");

                if (!f) {
                        r = negative_errno();
                        if (asprintf(&msg, "%s: %s", path, strerror(-r)) >= 0 && ret_error)
                                *ret_error = TAKE_PTR(msg);
                        return r;
                }
                line = ini_parse_stream(config_read_line, &(LineReader) { .f = f, .at_line_start = true },
                                        config_ini_line, &st);
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
        /* A private runtime directory (a test or second instance) keeps its
         * audit log there too, rather than sharing the system's. */
        if (!c->audit.file &&
            (streq(c->runtime_dir, DEFAULT_RUNTIME_DIR)
                     ? !(c->audit.file = strdup(LOCALSTATEDIR "/log/kvmid/audit.log"))
                     : asprintf(&c->audit.file, "%s/audit.log", c->runtime_dir) < 0)) {
                c->audit.file = NULL;
                return -ENOMEM;
        }
        if (!c->kvmi.socket_path && asprintf(&c->kvmi.socket_path, "%s/kvmi", c->runtime_dir) < 0) {
                c->kvmi.socket_path = NULL;
                return -ENOMEM;
        }
        r = check_domains(c, ret_error);
        if (r < 0)
                return r;
        r = check_identities(c, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}
