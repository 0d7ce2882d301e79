/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The domain registry: every VM kvmid knows, by name and UUID, with the
 * state of its KVMI channel and what that channel has done.  Sources:
 * kvmid.conf [domain] entries and libvirt; a KVMI handshake attaches to a
 * known domain and adds what QEMU says (its name, start time, the
 * channel's capabilities).  An unknown UUID has no cookie, so it is
 * refused: channel.c remembers the last few for ListDomains, apart. */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kvmid.h"

static void domain_free_labels(Domain *d) {
        for (size_t i = 0; i < d->n_labels; i++)
                free(d->labels[i]);
        d->labels = mfree(d->labels);
        d->n_labels = 0;
}

static Domain *domain_free(Domain *d) {
        if (!d)
                return NULL;
        domain_free_labels(d);
        free(d->name);
        free(d->cookie_file);
        free(d->qemu_name);
        free(d->last_error);
        free(d->recent);
        free(d);
        return NULL;
}

static int domain_configure(Domain *d, const DomainConfig *dc, unsigned recent_events) {
        char *cookie = NULL;

        if (dc->cookie_file) {
                cookie = strdup(dc->cookie_file);
                if (!cookie)
                        return -ENOMEM;
        }
        if (recent_events != d->recent_size) {
                GuestRequest *ring = recent_events ? calloc(recent_events, sizeof *ring) : NULL;
                if (recent_events && !ring) {
                        free(cookie);
                        return -ENOMEM;
                }
                free(d->recent);
                d->recent = ring;
                d->recent_size = recent_events;
                d->recent_count = d->recent_next = 0;
        }
        char **labels = dc->n_labels ? calloc(dc->n_labels, sizeof *labels) : NULL;
        if (dc->n_labels && !labels) {
                free(cookie);
                return -ENOMEM;
        }
        for (size_t i = 0; i < dc->n_labels; i++)
                if (!(labels[i] = strdup(dc->labels[i]))) {
                        while (i > 0)
                                free(labels[--i]);
                        free(labels);
                        free(cookie);
                        return -ENOMEM;
                }
        domain_free_labels(d);
        d->labels = labels;
        d->n_labels = dc->n_labels;
        free(d->cookie_file);
        d->cookie_file = cookie;
        d->cookie_none = dc->cookie_none;
        d->role = dc->role;
        d->configured = true;
        d->config_cid = dc->vsock_cid;
        /* libvirt's UUID is the one QEMU presents: it wins over the file's. */
        if (!d->channel && !d->from_libvirt) {
                memcpy(d->uuid, dc->uuid, 16);
                uuid_to_string(d->uuid, d->uuid_str);
        }
        return 0;
}

static int domain_new(Server *s, const DomainConfig *dc, unsigned recent_events, Domain **ret) {
        Domain *d = calloc(1, sizeof *d);
        int r;

        if (!d)
                return -ENOMEM;
        d->server = s;
        d->name = strdup(dc->name);
        d->next_request_seq = 1;
        d->libvirt_id = -1;
        if (!d->name) {
                domain_free(d);
                return -ENOMEM;
        }
        r = domain_configure(d, dc, recent_events);
        if (r < 0) {
                domain_free(d);
                return r;
        }
        *ret = d;
        return 0;
}

/* Unlink d from the registry and free it.  Operators watching it are told
 * why first: their subscriptions point at d. */
static void domain_drop(Domain *d, const char *reason) {
        Server *s = d->server;

        session_unwatch_target(d, reason);
        for (Domain **p = &s->domains; *p; p = &(*p)->next)
                if (*p == d) {
                        *p = d->next;
                        break;
                }
        log_info("domain \"%s\" removed", d->name);
        domain_free(d);
}

static Domain *find_name(Server *s, const char *name) {
        for (Domain *d = s->domains; d; d = d->next)
                if (streq(d->name, name))
                        return d;
        return NULL;
}

int domain_registry_apply(Server *s, const Config *c) {
        Domain **tail;
        int r;

        for (Domain *d = s->domains; d; d = d->next)
                d->configured = false;
        for (const DomainConfig *dc = c->domains; dc; dc = dc->next) {
                Domain *d = find_name(s, dc->name);
                if (d) {
                        if (d->channel && memcmp(d->uuid, dc->uuid, 16) != 0)
                                log_warning("domain \"%s\": new uuid takes effect when its KVMI channel closes",
                                            d->name);
                        r = domain_configure(d, dc, c->kvmi.recent_events);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = domain_new(s, dc, c->kvmi.recent_events, &d);
                if (r < 0)
                        return r;
                for (tail = &s->domains; *tail; tail = &(*tail)->next)
                        ;
                *tail = d;
        }
        /* Gone from the configuration: drop now unless a channel holds it. */
        for (Domain *d = s->domains, *next; d; d = next) {
                next = d->next;
                if (!d->configured && !d->channel && !d->from_libvirt)
                        domain_drop(d, "removed from the configuration");
        }
        return 0;
}

void domain_registry_retire(Server *s, const Config *c) {
        for (Domain *d = s->domains; d; d = d->next)
                /* Still configured until domain_registry_apply(c), so
                 * domain_gone() closes its channel but keeps d. */
                if (d->configured && !d->from_libvirt && !config_find_domain(c, d->name))
                        domain_gone(d, "removed from the configuration");
}

int domain_registry_load(Server *s, const Config *c) {
        return domain_registry_apply(s, c);
}

void domain_registry_free(Server *s) {
        while (s->domains) {
                Domain *d = s->domains;
                s->domains = d->next;
                domain_free(d);
        }
}

Domain *domain_find_uuid(Server *s, const uint8_t uuid[16]) {
        for (Domain *d = s->domains; d; d = d->next)
                if (memcmp(d->uuid, uuid, 16) == 0)
                        return d;
        return NULL;
}

Domain *domain_find(Server *s, const char *name_or_uuid) {
        uint8_t uuid[16];
        Domain *d = find_name(s, name_or_uuid);

        if (d || uuid_from_string(name_or_uuid, uuid) < 0)
                return d;
        return domain_find_uuid(s, uuid);
}

size_t domain_count(const Server *s) {
        size_t n = 0;

        for (const Domain *d = s->domains; d; d = d->next)
                n++;
        return n;
}

void domain_set_error(Domain *d, const char *fmt, ...) {
        char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        if (msg) {
                free(d->last_error);
                d->last_error = msg;
        }
}

void domain_channel_closed(Domain *d) {
        d->channel = NULL;
        d->kvmi_state = DOMAIN_KVMI_DISCONNECTED;
        if (d->configured || d->from_libvirt)
                return;
        domain_drop(d, "its KVMI channel closed and no source defines it");
}

size_t domain_guest_request(Domain *d, const KvmiEvent *e, uint64_t time_usec) {
        GuestRequest g = {
                .seq = d->next_request_seq++,
                .time_usec = time_usec,
                .vcpu = e->vcpu,
                .mode = e->mode,
                .regs = e->regs,
        };

        d->guest_requests++;
        size_t queued = session_publish(d, &g, d->uuid_str);
        if (d->recent_size == 0)
                return queued;
        d->recent[d->recent_next] = g;
        d->recent_next = (d->recent_next + 1) % d->recent_size;
        if (d->recent_count < d->recent_size)
                d->recent_count++;
        return queued;
}

size_t domain_recent_start(const Domain *d) {
        if (d->recent_size == 0)
                return 0;
        return (d->recent_next + d->recent_size - d->recent_count) % d->recent_size;
}

/* ---- libvirt-sourced domains (libvirt.c) ---------------------------------- */

static const char *const state_names[_DOMAIN_STATE_MAX] = {
        [DOMAIN_STATE_UNKNOWN] = "unknown",   [DOMAIN_STATE_NOSTATE] = "nostate",
        [DOMAIN_STATE_RUNNING] = "running",   [DOMAIN_STATE_BLOCKED] = "blocked",
        [DOMAIN_STATE_PAUSED] = "paused",     [DOMAIN_STATE_SHUTDOWN] = "shutdown",
        [DOMAIN_STATE_SHUTOFF] = "shutoff",   [DOMAIN_STATE_CRASHED] = "crashed",
        [DOMAIN_STATE_PMSUSPENDED] = "pmsuspended",
};

const char *domain_state_to_string(DomainRunState st) {
        return st < _DOMAIN_STATE_MAX ? state_names[st] : "unknown";
}

const char *domain_source_to_string(const Domain *d) {
        return d->configured && d->from_libvirt ? "both" : d->from_libvirt ? "libvirt" : "config";
}

uint32_t domain_vsock_cid(const Domain *d) {
        return d->libvirt_cid ? d->libvirt_cid : d->config_cid;
}

int domain_upsert_libvirt(Server *s, const DomainLibvirtInfo *info, Domain **ret) {
        Domain *d = domain_find_uuid(s, info->uuid);
        int r;

        if (!d)
                d = find_name(s, info->name);
        if (!d) {
                d = calloc(1, sizeof *d);
                if (!d)
                        return -ENOMEM;
                d->server = s;
                d->next_request_seq = 1;
                d->libvirt_id = -1;
                d->name = strdup(info->name);
                if (!d->name) {
                        free(d);
                        return -ENOMEM;
                }
                unsigned n = s->config->kvmi.recent_events;
                if (n && !(d->recent = calloc(n, sizeof *d->recent))) {
                        domain_free(d);
                        return -ENOMEM;
                }
                d->recent_size = n;
                Domain **tail;
                for (tail = &s->domains; *tail; tail = &(*tail)->next)
                        ;
                *tail = d;
                log_info("domain \"%s\" added from libvirt", info->name);
        } else if (!streq(d->name, info->name)) {
                /* renamed in libvirt (same UUID) */
                char *n = strdup(info->name);
                if (!n)
                        return -ENOMEM;
                free(d->name);
                d->name = n;
        }
        if (!d->channel && memcmp(d->uuid, info->uuid, 16) != 0) {
                if (d->configured && !d->from_libvirt)
                        log_warning("domain \"%s\": libvirt's UUID replaces the configured one", d->name);
                memcpy(d->uuid, info->uuid, 16);
                uuid_to_string(d->uuid, d->uuid_str);
        }
        d->from_libvirt = true;
        d->libvirt_seen = true;
        d->libvirt_id = info->id;
        d->state = info->state;
        d->libvirt_cid = info->vsock_cid;
        /* The configuration wins for role, cookie and labels. */
        if (!d->configured) {
                char *cookie = NULL;
                char **labels = info->n_labels ? calloc(info->n_labels, sizeof *labels) : NULL;
                if (info->n_labels && !labels)
                        return -ENOMEM;
                r = 0;
                for (size_t i = 0; i < info->n_labels; i++)
                        if (!(labels[i] = strdup(info->labels[i])))
                                r = -ENOMEM;
                if (info->cookie_file && !(cookie = strdup(info->cookie_file)))
                        r = -ENOMEM;
                if (r < 0) {
                        for (size_t i = 0; i < info->n_labels; i++)
                                free(labels[i]);
                        free(labels);
                        free(cookie);
                        return r;
                }
                domain_free_labels(d);
                d->labels = labels;
                d->n_labels = info->n_labels;
                free(d->cookie_file);
                d->cookie_file = cookie;
                d->cookie_none = info->has_metadata && info->cookie_none;
                d->role = info->has_metadata ? info->role : DOMAIN_ROLE_TARGET;
        }
        if (ret)
                *ret = d;
        return 0;
}

void domain_up(Domain *d) {
        _cleanup_json_ struct json_object *data = json_object_new_object();

        if (data) {
                json_object_object_add(data, "id", json_object_new_int64(d->libvirt_id));
                json_object_object_add(data, "role", json_object_new_string(domain_role_to_string(d->role)));
                if (domain_vsock_cid(d))
                        json_object_object_add(data, "cid", json_object_new_int64(domain_vsock_cid(d)));
        }
        d->down_recorded = false;
        log_info("domain \"%s\" is up (id %d)", d->name, d->libvirt_id);
        server_audit(d->server, &(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_UP, .target = d->name,
                                                .uuid = d->uuid_str, .data = data });
}

void domain_gone(Domain *d, const char *reason) {
        Server *s = d->server;

        /* The teardown below is idempotent and always runs; the record
         * and the log line only once per time the domain was up. */
        if (d->down_recorded)
                log_debug("domain \"%s\" is down (already recorded): %s", d->name, reason);
        else {
                log_info("domain \"%s\" is down: %s", d->name, reason);
                server_audit(s, &(AuditEvent) { .kind = AUDIT_KIND_DOMAIN_DOWN, .target = d->name,
                                                .uuid = d->uuid_str, .reason = reason });
                d->down_recorded = true;
        }
        /* As target: its tokens, sessions (with their mappings) and watchers. */
        token_target_gone(s->tokens, d);
        session_end_target(s, d, reason);
        session_unwatch_target(d, reason);
        /* As introspector: the identities bound to this VM. */
        for (const IdentityConfig *id = s->config->identities; id; id = id->next)
                if (id->domain && streq(id->domain, d->name))
                        session_end_introspector(s, id->name, reason);
        d->libvirt_id = -1;
        if (d->channel)
                channel_close(d->channel, reason); /* may free d: see domain_channel_closed() */
}

void domain_libvirt_undefined(Domain *d) {
        d->from_libvirt = false;
        d->libvirt_cid = 0;
        d->state = DOMAIN_STATE_UNKNOWN;
        if (!d->configured && !d->channel)
                domain_drop(d, "undefined in libvirt");
}
