/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one place a call is checked before it runs: interface served on this
 * listener, method known, role and connection state allowed, "more" given
 * where required, parameters valid against the embedded IDL. */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kvmid.h"
#include "varlink-embedded.h"

typedef struct Binding {
        const InterfaceTable *table;
        const VarlinkInterface *iface;
        void *userdata;
} Binding;

struct Dispatch {
        VarlinkInterface **idl;
        size_t n_idl;
        Binding *bindings;
        size_t n_bindings;
        bool validate_replies;
};

int dispatch_new(Dispatch **ret) {
        _cleanup_free_ Dispatch *d = calloc(1, sizeof *d);
        size_t n = 0;

        if (!d)
                return -ENOMEM;
        while (varlink_embedded_idl[n].filename)
                n++;
        d->idl = calloc(n, sizeof *d->idl);
        if (!d->idl)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *error = NULL;
                int r = varlink_idl_parse(varlink_embedded_idl[i].text, varlink_embedded_idl[i].filename,
                                          &d->idl[i], &error);
                if (r < 0) {
                        log_error("embedded interface: %s", error ?: "out of memory");
                        d->n_idl = i;
                        dispatch_free(TAKE_PTR(d));
                        return r;
                }
        }
        d->n_idl = n;
        *ret = TAKE_PTR(d);
        return 0;
}

Dispatch *dispatch_free(Dispatch *d) {
        if (!d)
                return NULL;
        for (size_t i = 0; i < d->n_idl; i++)
                varlink_interface_free(d->idl[i]);
        free(d->idl);
        free(d->bindings);
        free(d);
        return NULL;
}

void dispatch_set_validate_replies(Dispatch *d, bool b) {
        d->validate_replies = b;
}

const VarlinkInterface *dispatch_find_interface(const Dispatch *d, const char *name) {
        for (size_t i = 0; i < d->n_idl; i++)
                if (streq(d->idl[i]->name, name))
                        return d->idl[i];
        return NULL;
}

static const MethodEntry *table_find(const InterfaceTable *t, const char *method) {
        for (size_t i = 0; i < t->n_methods; i++)
                if (streq(t->methods[i].name, method))
                        return &t->methods[i];
        return NULL;
}

/* Tables and IDL must agree both ways, or kvmid refuses to start: a method
 * in the IDL without a handler would be advertised but never served. */
int dispatch_add(Dispatch *d, const InterfaceTable *table, void *userdata) {
        const VarlinkInterface *iface = dispatch_find_interface(d, table->name);
        Binding *b;

        if (!iface)
                return log_error_errno(ENOENT, "interface \"%s\" has a dispatch table but no IDL", table->name);
        for (size_t i = 0; i < table->n_methods; i++)
                if (!varlink_interface_find_method(iface, table->methods[i].name))
                        return log_error_errno(EINVAL, "%s.%s has a handler but is not in the IDL",
                                               table->name, table->methods[i].name);
        for (size_t i = 0; i < iface->n_methods; i++)
                if (!table_find(table, iface->methods[i].name))
                        return log_error_errno(EINVAL, "%s.%s is in the IDL but has no handler",
                                               table->name, iface->methods[i].name);

        b = realloc(d->bindings, (d->n_bindings + 1) * sizeof *b);
        if (!b)
                return -ENOMEM;
        d->bindings = b;
        d->bindings[d->n_bindings++] = (Binding) { table, iface, userdata };
        return 0;
}

size_t dispatch_interfaces(const Dispatch *d, Role role, const char **ret_names, size_t max) {
        size_t n = 0;

        for (size_t i = 0; i < d->n_bindings && n < max; i++)
                if (d->bindings[i].table->roles & role)
                        ret_names[n++] = d->bindings[i].table->name;
        return n;
}

static const Binding *find_binding(const Dispatch *d, const char *interface, Role role) {
        for (size_t i = 0; i < d->n_bindings; i++)
                if ((d->bindings[i].table->roles & role) && streq(d->bindings[i].table->name, interface))
                        return &d->bindings[i];
        return NULL;
}

static void reply_error_string(Call *call, const char *error, const char *key, const char *value) {
        struct json_object *p = json_object_new_object();

        if (p && key)
                json_object_object_add(p, key, json_object_new_string(value));
        (void) call_reply_error(call, error, p);
}

void dispatch_call(Dispatch *d, Call *call, struct json_object *parameters) {
        Conn *c = call_conn(call);
        const char *full = call_method(call), *dot = strrchr(full, '.');
        _cleanup_free_ char *interface = NULL, *path = NULL;
        const Binding *b;
        const MethodEntry *m;
        const VarlinkMethod *idl;
        int r;

        /* varlink_call_from_json validated the name, so there is a dot. */
        interface = strndup(full, (size_t) (dot - full));
        if (!interface) {
                reply_error_string(call, "io.kvmid.InternalError", "reason", "out of memory");
                return;
        }
        b = find_binding(d, interface, conn_role(c));
        if (!b) {
                reply_error_string(call, "org.varlink.service.InterfaceNotFound", "interface", interface);
                return;
        }
        m = table_find(b->table, dot + 1);
        if (!m) {
                reply_error_string(call, "org.varlink.service.MethodNotFound", "method", full);
                return;
        }
        /* No method of ours hands the connection over to another protocol. */
        if (call_wants_upgrade(call)) {
                (void) call_reply_invalid_parameter(call, "upgrade");
                return;
        }
        if (!(m->roles & conn_role(c))) {
                (void) call_reply_error(call, "org.varlink.service.PermissionDenied", NULL);
                return;
        }
        if ((m->state & conn_state(c)) != m->state) {
                (void) call_reply_error(call, "org.varlink.service.PermissionDenied", NULL);
                return;
        }
        if (m->needs_more && !call_wants_more(call)) {
                (void) call_reply_error(call, "org.varlink.service.ExpectedMore", NULL);
                return;
        }
        idl = varlink_interface_find_method(b->iface, m->name);
        r = varlink_validate(idl->input, parameters, 0, &path);
        if (r > 0) {
                log_debug("connection %" PRIu64 ": %s: %s \"%s\"", conn_id(c), full,
                          varlink_validate_error_to_string(r), path);
                (void) call_reply_invalid_parameter(call, path);
                return;
        }
        if (r < 0) {
                reply_error_string(call, "io.kvmid.InternalError", "reason", "out of memory");
                return;
        }
        call_set_idl(call, idl);

        r = m->handler(call, parameters, b->userdata);
        if (r < 0 && call_is_alive(call) && !call_is_oneway(call)) {
                log_warning_errno(r, "%s failed: %m", full);
                reply_error_string(call, "io.kvmid.InternalError", "reason", strerror(-r));
        }
}

/* Tests run kvmid with KVMID_VALIDATE_REPLIES=1: a reply that does not
 * match its IDL is a bug, and aborting makes the test fail where it is. */
void dispatch_check_reply(Dispatch *d, const VarlinkMethod *method, const char *error, struct json_object *parameters) {
        _cleanup_free_ char *path = NULL, *iface_name = NULL;
        const VarlinkType *type = NULL;
        int r;

        if (!d->validate_replies)
                return;
        if (!error)
                type = method ? method->output : NULL;
        else {
                const char *dot = strrchr(error, '.');
                const VarlinkInterface *iface;
                const VarlinkErrorDef *e;

                iface_name = dot ? strndup(error, (size_t) (dot - error)) : NULL;
                iface = iface_name ? dispatch_find_interface(d, iface_name) : NULL;
                e = iface ? varlink_interface_find_error(iface, dot + 1) : NULL;
                if (!e) {
                        log_error("reply error \"%s\" is not declared in any interface", error);
                        abort();
                }
                type = e->parameters;
        }
        if (!type)
                return;
        r = varlink_validate(type, parameters, VARLINK_VALIDATE_UINT64, &path);
        if (r != 0) {
                log_error("reply %s%sbreaks its IDL: %s \"%s\"", error ?: "", error ? " " : "",
                          r > 0 ? varlink_validate_error_to_string(r) : "error", path ?: "");
                abort();
        }
}
