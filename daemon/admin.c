/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io.kvmid.Admin: what operators ask kvmid through kvmictl. */

#include "kvmid.h"

static struct json_object *listener_status(Server *s, Role role) {
        const ListenerStats *st = &s->stats[__builtin_ctz((unsigned) role)];
        struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(role_to_string(role)));
        json_object_object_add(o, "socket", json_object_new_string(server_listener_path(s, role)));
        json_object_object_add(o, "active", json_object_new_int64((int64_t) st->active));
        json_object_object_add(o, "accepted", json_object_new_int64((int64_t) st->accepted));
        json_object_object_add(o, "rejected", json_object_new_int64((int64_t) st->rejected));
        json_object_object_add(o, "calls", json_object_new_int64((int64_t) st->calls));
        json_object_object_add(o, "errors", json_object_new_int64((int64_t) st->errors));
        json_object_object_add(o, "bytes_in", json_object_new_int64((int64_t) st->bytes_in));
        json_object_object_add(o, "bytes_out", json_object_new_int64((int64_t) st->bytes_out));
        return o;
}

static int admin_get_status(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        _cleanup_json_ struct json_object *reply = json_object_new_object();
        struct json_object *list = json_object_new_array();

        if (!reply || !list) {
                json_object_put(list);
                return -ENOMEM;
        }
        json_object_object_add(reply, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(reply, "uptime_usec",
                               json_object_new_int64((int64_t) (now_usec(CLOCK_MONOTONIC) - s->start_usec)));
        json_object_object_add(reply, "config", s->config->path ? json_object_new_string(s->config->path) : NULL);
        json_object_object_add(reply, "connections", json_object_new_int64(s->n_connections));
        json_object_object_add(reply, "max_connections", json_object_new_int64(s->config->max_connections));
        json_object_object_add(reply, "max_connections_per_uid",
                               json_object_new_int64(s->config->max_connections_per_uid));
        json_object_object_add(reply, "listeners", list);
        for (unsigned i = 0; i < N_ROLES; i++) {
                struct json_object *o = listener_status(s, (Role) (1U << i));
                if (!o)
                        return -ENOMEM;
                json_object_array_add(list, o);
        }
        return call_reply(call, TAKE_PTR(reply));
}

static const MethodEntry admin_methods[] = {
        { "GetStatus", admin_get_status, ROLE_ADMIN, CONN_STATE_ANY, false },
};

const InterfaceTable admin_interface = {
        "io.kvmid.Admin", admin_methods, ELEMENTSOF(admin_methods), ROLE_ADMIN,
};
