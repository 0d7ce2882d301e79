/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The domain registry: every VM kvmid knows, by name and UUID, with the
 * state of its KVMI channel and what that channel has done.  Sources today:
 * kvmid.conf [domain] entries; the KVMI handshake only ever attaches to a
 * known domain (an unknown UUID has no cookie, so it is refused). */

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
        if (!d->channel) {
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
        for (tail = &s->domains; *tail;) {
                Domain *d = *tail;
                if (!d->configured && !d->channel) {
                        *tail = d->next;
                        log_info("domain \"%s\" removed", d->name);
                        domain_free(d);
                } else
                        tail = &d->next;
        }
        return 0;
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
        Server *s = d->server;

        d->channel = NULL;
        d->kvmi_state = DOMAIN_KVMI_DISCONNECTED;
        if (d->configured)
                return;
        for (Domain **p = &s->domains; *p; p = &(*p)->next)
                if (*p == d) {
                        *p = d->next;
                        log_info("domain \"%s\" removed", d->name);
                        domain_free(d);
                        return;
                }
}

void domain_guest_request(Domain *d, const KvmiEvent *e, uint64_t time_usec) {
        GuestRequest g = {
                .seq = d->next_request_seq++,
                .time_usec = time_usec,
                .vcpu = e->vcpu,
                .mode = e->mode,
                .regs = e->regs,
        };

        d->guest_requests++;
        session_publish(d, &g, d->uuid_str);
        if (d->recent_size == 0)
                return;
        d->recent[d->recent_next] = g;
        d->recent_next = (d->recent_next + 1) % d->recent_size;
        if (d->recent_count < d->recent_size)
                d->recent_count++;
}

size_t domain_recent_start(const Domain *d) {
        if (d->recent_size == 0)
                return 0;
        return (d->recent_next + d->recent_size - d->recent_count) % d->recent_size;
}
