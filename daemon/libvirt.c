/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kvmid's own libvirt connection.  libvirt's event loop runs on kvmid's
 * libevent loop (virEventRegisterImpl: handles and timeouts are libevent
 * events; no thread, no polling).  The connection is read-only; on connect
 * the registry is synced with every domain libvirt defines, then kept in
 * sync by lifecycle events.  Losing the connection (close callback) means
 * reconnecting with exponential back-off, 1 s to 60 s, and a resync.
 *
 * From each domain's XML: the vsock CID (<devices><vsock><cid address=N/>)
 * and kvmid's metadata element:
 *
 *   <metadata>
 *     <kvmid:introspection xmlns:kvmid="http://kvmid.io/xmlns/introspection/1"
 *                          role="target|introspector" cookie-file="/path" | cookie="none"
 *                          required="yes|no">
 *       <kvmid:label>pci</kvmid:label>...
 *     </kvmid:introspection>
 *   </metadata>
 *
 * A [domain NAME] entry in kvmid.conf for the same domain wins for role,
 * cookie and labels; libvirt supplies UUID, id, state and CID.
 *
 * Nothing here that talks to libvirt is ever called from a hook call
 * (io.kvmid.Hypervisor.DomainStarted/DomainStopped): libvirt hooks deadlock
 * if the daemon re-enters libvirt synchronously.  Those calls only use
 * libvirt_domain_xml_parse() (libxml2, no libvirt) on the hook's XML. */

#include <stdio.h>
#include <string.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "kvmid.h"

#define KVMID_XMLNS "http://kvmid.io/xmlns/introspection/1"
#define BACKOFF_MIN_SEC 1
#define BACKOFF_MAX_SEC 60

typedef struct Libvirt {
        Server *server;
        char *uri;
        virConnectPtr conn;
        int lifecycle_id;               /* -1: none */
        bool close_cb;
        bool connected;
        bool failing_logged;            /* one log line per outage */
        unsigned backoff_sec;
        uint64_t connects;
        struct event *ev_retry;         /* reconnect, or tear down after close */
        bool pending_teardown;
} Libvirt;

/* ---- the event loop implementation ---------------------------------------- */

static struct event_base *lv_base;

typedef struct LvWatch {
        int id;
        int fd;
        virEventHandleCallback hcb;
        virEventTimeoutCallback tcb;
        void *opaque;
        virFreeCallback ff;
        struct event *ev;
        int frequency;                  /* timeouts: ms, -1 off */
        struct LvWatch *next;
} LvWatch;

static LvWatch *lv_watches;
static int lv_next_id = 1;

static LvWatch *lv_find(int id) {
        for (LvWatch *w = lv_watches; w; w = w->next)
                if (w->id == id)
                        return w;
        return NULL;
}

static void lv_unlink(LvWatch *w) {
        for (LvWatch **p = &lv_watches; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        return;
                }
}

static int to_vir_events(short what) {
        int e = 0;

        if (what & EV_READ)
                e |= VIR_EVENT_HANDLE_READABLE;
        if (what & EV_WRITE)
                e |= VIR_EVENT_HANDLE_WRITABLE;
        return e;
}

static short to_ev(int events) {
        short what = 0;

        /* libevent reports errors and hang-ups as readable. */
        if (events & (VIR_EVENT_HANDLE_READABLE | VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP))
                what |= EV_READ;
        if (events & VIR_EVENT_HANDLE_WRITABLE)
                what |= EV_WRITE;
        return what;
}

static void lv_on_handle(evutil_socket_t fd, short what, void *userdata) {
        LvWatch *w = userdata;

        w->hcb(w->id, (int) fd, to_vir_events(what), w->opaque); /* may remove w */
}

static void lv_on_timeout(evutil_socket_t fd, short what, void *userdata) {
        LvWatch *w = userdata;

        w->tcb(w->id, w->opaque);
}

/* libvirt: the free callback must not run inside remove; defer it. */
static void lv_deferred_free(evutil_socket_t fd, short what, void *userdata) {
        LvWatch *w = userdata;

        if (w->ff)
                w->ff(w->opaque);
        free(w);
}

static void lv_release(LvWatch *w) {
        static const struct timeval zero = { 0, 0 };

        lv_unlink(w);
        if (w->ev) {
                event_free(w->ev);
                w->ev = NULL;
        }
        if (event_base_once(lv_base, -1, EV_TIMEOUT, lv_deferred_free, w, &zero) < 0)
                free(w); /* leak the opaque rather than run ff re-entrantly */
}

static int lv_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff) {
        LvWatch *w = calloc(1, sizeof *w);

        if (!w)
                return -1;
        w->id = lv_next_id++;
        w->fd = fd;
        w->hcb = cb;
        w->opaque = opaque;
        w->ff = ff;
        w->ev = event_new(lv_base, fd, to_ev(events) | EV_PERSIST, lv_on_handle, w);
        if (!w->ev) {
                free(w);
                return -1;
        }
        if (to_ev(events))
                event_add(w->ev, NULL);
        w->next = lv_watches;
        lv_watches = w;
        return w->id;
}

static void lv_update_handle(int id, int events) {
        LvWatch *w = lv_find(id);

        if (!w || !w->hcb)
                return;
        event_del(w->ev);
        event_assign(w->ev, lv_base, w->fd, to_ev(events) | EV_PERSIST, lv_on_handle, w);
        if (to_ev(events))
                event_add(w->ev, NULL);
}

static int lv_remove_handle(int id) {
        LvWatch *w = lv_find(id);

        if (!w || !w->hcb)
                return -1;
        lv_release(w);
        return 0;
}

static void lv_arm_timeout(LvWatch *w) {
        event_del(w->ev);
        if (w->frequency >= 0) {
                struct timeval tv = { w->frequency / 1000, (w->frequency % 1000) * 1000 };
                event_add(w->ev, &tv);
        }
}

static int lv_add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff) {
        LvWatch *w = calloc(1, sizeof *w);

        if (!w)
                return -1;
        w->id = lv_next_id++;
        w->fd = -1;
        w->tcb = cb;
        w->opaque = opaque;
        w->ff = ff;
        w->frequency = frequency;
        w->ev = event_new(lv_base, -1, EV_PERSIST, lv_on_timeout, w);
        if (!w->ev) {
                free(w);
                return -1;
        }
        lv_arm_timeout(w);
        w->next = lv_watches;
        lv_watches = w;
        return w->id;
}

static void lv_update_timeout(int id, int frequency) {
        LvWatch *w = lv_find(id);

        if (!w || !w->tcb)
                return;
        w->frequency = frequency;
        lv_arm_timeout(w);
}

static int lv_remove_timeout(int id) {
        LvWatch *w = lv_find(id);

        if (!w || !w->tcb)
                return -1;
        lv_release(w);
        return 0;
}

static void lv_error_func(void *userdata, virErrorPtr err) {
        /* Errors are reported where the call failed; keep stderr clean. */
        if (err && err->message)
                log_debug("libvirt: %s", err->message);
}

int libvirt_event_register(struct event_base *base) {
        if (lv_base)
                return lv_base == base ? 0 : -EBUSY;
        if (virInitialize() < 0)
                return -EIO;
        virSetErrorFunc(NULL, lv_error_func);
        lv_base = base;
        virEventRegisterImpl(lv_add_handle, lv_update_handle, lv_remove_handle, lv_add_timeout, lv_update_timeout,
                             lv_remove_timeout);
        return 0;
}

/* ---- domain XML ------------------------------------------------------------ */

static char *xpath_string(xmlXPathContextPtr ctx, const char *expr) {
        xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *) expr, ctx);
        char *r = NULL;

        if (o && o->type == XPATH_NODESET && o->nodesetval && o->nodesetval->nodeNr > 0) {
                xmlChar *c = xmlNodeGetContent(o->nodesetval->nodeTab[0]);
                if (c) {
                        r = strdup((const char *) c);
                        xmlFree(c);
                }
        }
        xmlXPathFreeObject(o);
        return r;
}

typedef struct ParsedXml {
        DomainLibvirtInfo *info;
        char *cookie_file;
        char **labels;
        size_t n_labels;
        bool required;
} ParsedXml;

static void parsed_xml_done(ParsedXml *p) {
        free(p->cookie_file);
        for (size_t i = 0; i < p->n_labels; i++)
                free(p->labels[i]);
        free(p->labels);
}

static void parse_domain_ctx(xmlXPathContextPtr ctx, ParsedXml *p);

static xmlDocPtr read_xml(const char *xml, xmlXPathContextPtr *ret_ctx) {
        xmlDocPtr doc = xmlReadMemory(xml, (int) strlen(xml), "domain.xml", NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);

        *ret_ctx = doc ? xmlXPathNewContext(doc) : NULL;
        return doc;
}

/* Fill the XML-derived members of p->info; a malformed element is logged
 * and treated as absent. */
static void parse_domain_xml(const char *xml, ParsedXml *p) {
        DomainLibvirtInfo *info = p->info;
        xmlXPathContextPtr ctx;
        xmlDocPtr doc = read_xml(xml, &ctx);

        if (!ctx)
                log_warning("libvirt domain \"%s\": cannot parse its XML", info->name);
        else
                parse_domain_ctx(ctx, p);
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
}

int libvirt_domain_xml_parse(const char *xml, DomainXml *x) {
        xmlXPathContextPtr ctx;
        xmlDocPtr doc;
        int r = 0;

        *x = (DomainXml) { .info = { .id = -1 } };
        if (!xml)
                return -EINVAL;
        doc = read_xml(xml, &ctx);
        x->name = ctx ? xpath_string(ctx, "/domain/name") : NULL;
        if (!x->name || !*x->name)
                r = -EINVAL;
        else {
                ParsedXml p = { .info = &x->info };
                _cleanup_free_ char *u = xpath_string(ctx, "/domain/uuid");
                x->has_uuid = u && uuid_from_string(u, x->info.uuid) == 0;
                x->info.name = x->name;
                parse_domain_ctx(ctx, &p);
                x->cookie_file = p.cookie_file;
                x->labels = p.labels;
                x->n_labels = p.n_labels;
                x->required = p.required;
        }
        xmlXPathFreeContext(ctx);
        xmlFreeDoc(doc);
        if (r < 0)
                libvirt_domain_xml_done(x);
        return r;
}

void libvirt_domain_xml_done(DomainXml *x) {
        ParsedXml p = { .info = &x->info, .cookie_file = x->cookie_file, .labels = x->labels, .n_labels = x->n_labels };

        parsed_xml_done(&p);
        free(x->name);
        *x = (DomainXml) { .info = { .id = -1 } };
}

static void parse_domain_ctx(xmlXPathContextPtr ctx, ParsedXml *p) {
        DomainLibvirtInfo *info = p->info;

        xmlXPathRegisterNs(ctx, (const xmlChar *) "k", (const xmlChar *) KVMID_XMLNS);
        _cleanup_free_ char *cid = xpath_string(ctx, "/domain/devices/vsock/cid/@address");
        if (cid) {
                char *end;
                unsigned long v = strtoul(cid, &end, 0);
                if (*cid && *end == '\0' && v > 2 && v < UINT32_MAX)
                        info->vsock_cid = (uint32_t) v;
        }
        xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *) "/domain/metadata/k:introspection", ctx);
        if (o && o->type == XPATH_NODESET && o->nodesetval && o->nodesetval->nodeNr > 0) {
                _cleanup_free_ char *role = xpath_string(ctx, "/domain/metadata/k:introspection/@role");
                _cleanup_free_ char *cookie = xpath_string(ctx, "/domain/metadata/k:introspection/@cookie");
                _cleanup_free_ char *req = xpath_string(ctx, "/domain/metadata/k:introspection/@required");
                info->has_metadata = true;
                info->role = role && streq(role, "introspector") ? DOMAIN_ROLE_INTROSPECTOR : DOMAIN_ROLE_TARGET;
                if (role && !streq(role, "introspector") && !streq(role, "target"))
                        log_warning("libvirt domain \"%s\": unknown kvmid role \"%s\", taken as target", info->name,
                                    role);
                p->cookie_file = xpath_string(ctx, "/domain/metadata/k:introspection/@cookie-file");
                info->cookie_none = !p->cookie_file && cookie && streq(cookie, "none");
                info->cookie_file = p->cookie_file;
                p->required = req && streq(req, "yes");
        }
        xmlXPathFreeObject(o);
        o = xmlXPathEvalExpression((const xmlChar *) "/domain/metadata/k:introspection/k:label", ctx);
        if (o && o->type == XPATH_NODESET && o->nodesetval && o->nodesetval->nodeNr > 0) {
                int n = o->nodesetval->nodeNr;
                p->labels = calloc((size_t) n, sizeof *p->labels);
                for (int i = 0; p->labels && i < n; i++) {
                        xmlChar *c = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
                        if (c && *c && (p->labels[p->n_labels] = strdup((const char *) c)))
                                p->n_labels++;
                        xmlFree(c);
                }
                info->labels = p->labels;
                info->n_labels = p->n_labels;
        }
        xmlXPathFreeObject(o);
}

static DomainRunState state_from_vir(int st) {
        switch (st) {
        case VIR_DOMAIN_NOSTATE: return DOMAIN_STATE_NOSTATE;
        case VIR_DOMAIN_RUNNING: return DOMAIN_STATE_RUNNING;
        case VIR_DOMAIN_BLOCKED: return DOMAIN_STATE_BLOCKED;
        case VIR_DOMAIN_PAUSED: return DOMAIN_STATE_PAUSED;
        case VIR_DOMAIN_SHUTDOWN: return DOMAIN_STATE_SHUTDOWN;
        case VIR_DOMAIN_SHUTOFF: return DOMAIN_STATE_SHUTOFF;
        case VIR_DOMAIN_CRASHED: return DOMAIN_STATE_CRASHED;
        case VIR_DOMAIN_PMSUSPENDED: return DOMAIN_STATE_PMSUSPENDED;
        default: return DOMAIN_STATE_UNKNOWN;
        }
}

bool domain_state_is_up(DomainRunState st) {
        return st == DOMAIN_STATE_RUNNING || st == DOMAIN_STATE_BLOCKED || st == DOMAIN_STATE_PAUSED ||
               st == DOMAIN_STATE_PMSUSPENDED || st == DOMAIN_STATE_SHUTDOWN;
}

/* Read one domain; with_xml false for an undefined domain (no XML left). */
static int read_domain(virDomainPtr dom, bool with_xml, DomainLibvirtInfo *info, ParsedXml *p) {
        int st = VIR_DOMAIN_NOSTATE, reason;

        *info = (DomainLibvirtInfo) { .id = -1 };
        *p = (ParsedXml) { .info = info };
        info->name = virDomainGetName(dom);
        if (!info->name || virDomainGetUUID(dom, info->uuid) < 0)
                return -EIO;
        unsigned id = virDomainGetID(dom);
        info->id = id == (unsigned) -1 ? -1 : (int) id;
        if (!with_xml)
                return 0;
        if (virDomainGetState(dom, &st, &reason, 0) == 0)
                info->state = state_from_vir(st);
        char *xml = virDomainGetXMLDesc(dom, 0);
        if (xml) {
                parse_domain_xml(xml, p);
                free(xml);
        } else
                log_warning("libvirt domain \"%s\": cannot read its XML: %s", info->name, virGetLastErrorMessage());
        return 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

void libvirt_lifecycle(Server *s, const DomainLibvirtInfo *info, int event, int detail) {
        Domain *d = domain_find_uuid(s, info->uuid);
        DomainRunState before = d && d->from_libvirt ? d->state : DOMAIN_STATE_UNKNOWN;
        const char *reason = NULL;
        int r;

        switch (event) {
        case VIR_DOMAIN_EVENT_UNDEFINED:
                if (!d || !d->from_libvirt)
                        return;
                if (domain_state_is_up(d->state))
                        domain_gone(d, "undefined in libvirt");
                log_info("domain \"%s\" undefined in libvirt", d->name);
                domain_libvirt_undefined(d);
                return;
        case VIR_DOMAIN_EVENT_STOPPED:
                reason = detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED   ? "crashed"
                         : detail == VIR_DOMAIN_EVENT_STOPPED_FAILED  ? "stopped: failed"
                         : detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED ? "stopped: destroyed"
                         : detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN  ? "stopped: shut down"
                         : detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED  ? "stopped: migrated"
                         : detail == VIR_DOMAIN_EVENT_STOPPED_SAVED     ? "stopped: saved"
                                                                         : "stopped";
                break;
        case VIR_DOMAIN_EVENT_CRASHED:
                reason = "crashed";
                break;
        case VIR_DOMAIN_EVENT_SHUTDOWN:
                if (detail == VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED)
                        reason = "shut down";
                break;
        default:
                break;
        }
        r = domain_upsert_libvirt(s, info, &d);
        if (r < 0) {
                log_warning_errno(r, "libvirt domain \"%s\": cannot record it: %m", info->name);
                return;
        }
        if (reason) {
                if (event == VIR_DOMAIN_EVENT_SHUTDOWN && d->state != DOMAIN_STATE_SHUTOFF)
                        d->state = DOMAIN_STATE_SHUTOFF;
                if (event == VIR_DOMAIN_EVENT_CRASHED)
                        d->state = DOMAIN_STATE_CRASHED;
                domain_gone(d, reason);
                return;
        }
        if ((event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_RESUMED) && !domain_state_is_up(before) &&
            domain_state_is_up(d->state))
                domain_up(d);
}

static void lv_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque) {
        Libvirt *lv = opaque;
        DomainLibvirtInfo info;
        ParsedXml p;

        if (read_domain(dom, event != VIR_DOMAIN_EVENT_UNDEFINED, &info, &p) < 0) {
                log_warning("libvirt lifecycle event %d: cannot read the domain", event);
                return;
        }
        log_debug("libvirt: domain \"%s\" event %d detail %d", info.name, event, detail);
        libvirt_lifecycle(lv->server, &info, event, detail);
        parsed_xml_done(&p);
}

/* ---- the connection -------------------------------------------------------- */

static void lv_schedule(Libvirt *lv, unsigned sec) {
        struct timeval tv = { sec, 0 };

        event_add(lv->ev_retry, &tv);
}

static void lv_disconnect(Libvirt *lv) {
        if (!lv->conn)
                return;
        if (lv->lifecycle_id >= 0)
                virConnectDomainEventDeregisterAny(lv->conn, lv->lifecycle_id);
        lv->lifecycle_id = -1;
        lv->close_cb = false;
        virConnectClose(lv->conn);
        lv->conn = NULL;
        lv->connected = false;
}

static void lv_on_close(virConnectPtr conn, int reason, void *opaque) {
        Libvirt *lv = opaque;
        static const char *const why[] = { "error", "end of file", "keepalive timeout", "client closed" };

        log_warning("libvirt connection to %s lost (%s); reconnecting", lv->uri,
                    reason >= 0 && reason < 4 ? why[reason] : "unknown");
        lv->connected = false;
        lv->failing_logged = true; /* this was the one line for the outage */
        lv->pending_teardown = true;
        /* Not from inside libvirt's callback: tear down from the loop. */
        lv_schedule(lv, 0);
}

/* Sync the registry with every domain libvirt defines. */
static int lv_resync(Libvirt *lv) {
        Server *s = lv->server;
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(lv->conn, &doms, 0);

        if (n < 0)
                return -EIO;
        for (Domain *d = s->domains; d; d = d->next)
                d->libvirt_seen = false;
        for (int i = 0; i < n; i++) {
                DomainLibvirtInfo info;
                ParsedXml p;
                if (read_domain(doms[i], true, &info, &p) == 0) {
                        Domain *d = domain_find_uuid(s, info.uuid);
                        DomainRunState before = d && d->from_libvirt ? d->state : DOMAIN_STATE_UNKNOWN;
                        if (domain_upsert_libvirt(s, &info, &d) == 0) {
                                if (!domain_state_is_up(before) && domain_state_is_up(d->state))
                                        domain_up(d);
                                else if (domain_state_is_up(before) && !domain_state_is_up(d->state))
                                        domain_gone(d, "stopped while libvirt was disconnected");
                        }
                }
                parsed_xml_done(&p);
                virDomainFree(doms[i]);
        }
        free(doms);
        for (Domain *d = s->domains, *next; d; d = next) {
                next = d->next;
                if (!d->from_libvirt || d->libvirt_seen)
                        continue;
                if (domain_state_is_up(d->state))
                        domain_gone(d, "undefined while libvirt was disconnected");
                domain_libvirt_undefined(d);
        }
        return n;
}

static int lv_connect(Libvirt *lv) {
        lv->conn = virConnectOpenReadOnly(lv->uri);
        if (!lv->conn)
                return -EIO;
        lv->lifecycle_id = virConnectDomainEventRegisterAny(lv->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                            VIR_DOMAIN_EVENT_CALLBACK(lv_on_lifecycle), lv, NULL);
        if (lv->lifecycle_id < 0) {
                lv_disconnect(lv);
                return -EIO;
        }
        /* The test driver has neither; the remote driver has both. */
        lv->close_cb = virConnectRegisterCloseCallback(lv->conn, lv_on_close, lv, NULL) == 0;
        if (!lv->close_cb)
                log_debug("libvirt %s: no close callback: %s", lv->uri, virGetLastErrorMessage());
        if (virConnectSetKeepAlive(lv->conn, 5, 3) < 0)
                log_debug("libvirt %s: no keepalive", lv->uri);
        int n = lv_resync(lv);
        if (n < 0) {
                lv_disconnect(lv);
                return -EIO;
        }
        lv->connected = true;
        lv->connects++;
        lv->backoff_sec = BACKOFF_MIN_SEC;
        lv->failing_logged = false;
        log_info("libvirt: connected to %s, %d domains", lv->uri, n);
        return 0;
}

static void lv_try(Libvirt *lv) {
        if (lv_connect(lv) == 0)
                return;
        if (!lv->failing_logged) {
                log_warning("libvirt: cannot connect to %s: %s; retrying with back-off up to %u s", lv->uri,
                            virGetLastErrorMessage(), BACKOFF_MAX_SEC);
                lv->failing_logged = true;
        } else
                log_debug("libvirt: retry of %s failed: %s; next try in %u s", lv->uri,
                          virGetLastErrorMessage(), lv->backoff_sec);
        lv_schedule(lv, lv->backoff_sec);
        lv->backoff_sec = lv->backoff_sec * 2 > BACKOFF_MAX_SEC ? BACKOFF_MAX_SEC : lv->backoff_sec * 2;
}

static void lv_on_retry(evutil_socket_t fd, short what, void *userdata) {
        Libvirt *lv = userdata;

        if (lv->pending_teardown) {
                lv->pending_teardown = false;
                lv_disconnect(lv);
                lv->backoff_sec = BACKOFF_MIN_SEC;
                lv_schedule(lv, lv->backoff_sec);
                return;
        }
        lv_try(lv);
}

int libvirt_start(Server *s) {
        Libvirt *lv;
        int r;

        if (!s->config->libvirt_uri)
                return 0;
        r = libvirt_event_register(s->base);
        if (r < 0)
                return log_error_errno(r, "libvirt: cannot register the event loop: %m");
        lv = calloc(1, sizeof *lv);
        if (!lv)
                return -ENOMEM;
        lv->server = s;
        lv->lifecycle_id = -1;
        lv->backoff_sec = BACKOFF_MIN_SEC;
        lv->uri = strdup(s->config->libvirt_uri);
        lv->ev_retry = event_new(s->base, -1, 0, lv_on_retry, lv);
        if (!lv->uri || !lv->ev_retry) {
                free(lv->uri);
                if (lv->ev_retry)
                        event_free(lv->ev_retry);
                free(lv);
                return -ENOMEM;
        }
        s->libvirt = lv;
        lv_try(lv);
        return 0;
}

void libvirt_stop(Server *s) {
        Libvirt *lv = s->libvirt;

        if (!lv)
                return;
        lv_disconnect(lv);
        event_free(lv->ev_retry);
        free(lv->uri);
        free(lv);
        s->libvirt = NULL;
}

const char *libvirt_status_word(const Server *s) {
        if (!s->libvirt)
                return NULL;
        return s->libvirt->connected ? "connected" : "disconnected";
}

struct json_object *libvirt_status_json(Server *s) {
        Libvirt *lv = s->libvirt;
        struct json_object *o;
        int64_t n = 0;

        if (!lv)
                return NULL;
        o = json_object_new_object();
        if (!o)
                return NULL;
        for (const Domain *d = s->domains; d; d = d->next)
                n += d->from_libvirt;
        json_object_object_add(o, "uri", json_object_new_string(lv->uri));
        json_object_object_add(o, "connected", json_object_new_boolean(lv->connected));
        json_object_object_add(o, "domains", json_object_new_int64(n));
        return o;
}
