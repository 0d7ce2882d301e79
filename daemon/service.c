/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.varlink.service, answered from the embedded IDL: each listener
 * describes exactly the interfaces it serves. */

#include "kvmid.h"

static int service_get_info(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *names[16];
        size_t n = dispatch_interfaces(s->dispatch, conn_role(call_conn(call)), names, ELEMENTSOF(names));
        struct json_object *reply = json_object_new_object(), *list = json_object_new_array();

        if (!reply || !list) {
                json_object_put(reply);
                json_object_put(list);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                json_object_array_add(list, json_object_new_string(names[i]));
        json_object_object_add(reply, "vendor", json_object_new_string("kvmid project"));
        json_object_object_add(reply, "product", json_object_new_string("kvmid"));
        json_object_object_add(reply, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(reply, "url", json_object_new_string(PACKAGE_URL));
        json_object_object_add(reply, "interfaces", list);
        return call_reply(call, reply);
}

static int service_get_interface_description(Call *call, struct json_object *parameters, void *userdata) {
        Server *s = userdata;
        const char *want = json_object_get_string(json_object_object_get(parameters, "interface"));
        const char *names[16];
        size_t n = dispatch_interfaces(s->dispatch, conn_role(call_conn(call)), names, ELEMENTSOF(names));
        struct json_object *reply;

        for (size_t i = 0; i < n; i++) {
                if (!streq(names[i], want))
                        continue;
                reply = json_object_new_object();
                if (!reply)
                        return -ENOMEM;
                json_object_object_add(reply, "description",
                                       json_object_new_string(dispatch_find_interface(s->dispatch, want)->description));
                return call_reply(call, reply);
        }
        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "interface", json_object_new_string(want));
        return call_reply_error(call, "org.varlink.service.InterfaceNotFound", reply);
}

static const MethodEntry service_methods[] = {
        { "GetInfo", service_get_info, ROLE_ANY, CONN_STATE_ANY, false },
        { "GetInterfaceDescription", service_get_interface_description, ROLE_ANY, CONN_STATE_ANY, false },
};

const InterfaceTable service_interface = {
        "org.varlink.service", service_methods, ELEMENTSOF(service_methods), ROLE_ANY,
};

/* io.kvmid: shared errors only, no methods. */
const InterfaceTable kvmid_errors_interface = { "io.kvmid", NULL, 0, ROLE_ANY };
