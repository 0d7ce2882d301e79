/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io.kvmid.Introspector: the nonce half of challenge-response
 * authentication.  A nonce lives on its connection, is valid once, and
 * expires, so a captured proof cannot be replayed anywhere else. */

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>

#include "kvmid.h"

#define NONCE_BYTES 32
#define NONCE_LIFETIME_SEC 30

typedef struct Nonce {
        uint8_t bytes[NONCE_BYTES];
        uint64_t expires_usec;
} Nonce;

static void nonce_free(void *p) {
        if (p)
                OPENSSL_cleanse(p, sizeof(Nonce));
        free(p);
}

static int introspector_hello(Call *call, struct json_object *parameters, void *userdata) {
        _cleanup_free_ Nonce *n = calloc(1, sizeof *n);
        char hex[NONCE_BYTES * 2 + 1];
        struct json_object *reply;
        int r;

        if (!n)
                return -ENOMEM;
        if (RAND_bytes(n->bytes, sizeof n->bytes) != 1)
                return -EIO;
        n->expires_usec = now_usec(CLOCK_MONOTONIC) + NONCE_LIFETIME_SEC * 1000000ULL;
        for (size_t i = 0; i < NONCE_BYTES; i++)
                snprintf(hex + 2 * i, 3, "%02x", n->bytes[i]);

        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "nonce", json_object_new_string(hex));
        json_object_object_add(reply, "expires_in", json_object_new_int(NONCE_LIFETIME_SEC));
        /* A new Hello replaces any earlier nonce on this connection. */
        r = conn_set_data(call_conn(call), "introspector.nonce", n, nonce_free);
        if (r < 0) {
                json_object_put(reply);
                return r;
        }
        TAKE_PTR(n);
        return call_reply(call, reply);
}

static const MethodEntry introspector_methods[] = {
        { "Hello", introspector_hello, ROLE_INTROSPECTOR, CONN_STATE_ANY, false },
};

const InterfaceTable introspector_interface = {
        "io.kvmid.Introspector", introspector_methods, ELEMENTSOF(introspector_methods), ROLE_INTROSPECTOR,
};
