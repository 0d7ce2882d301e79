/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.varlink.certification: the conformance test varlink implementations
 * run against each other.  A client calls Start, Test01 ... Test11, End in
 * this order, feeding each reply back as the next input; the server checks
 * every input and the call flags.  The expected inputs and the replies are
 * data (tests[]), so one handler serves every method but Start. */

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "kvmid.h"

#define CERTIFICATION_MAX_CLIENTS 64
#define CERTIFICATION_ID_BYTES 16

typedef struct CertificationClient {
        char id[CERTIFICATION_ID_BYTES * 2 + 1];
        uint64_t started;          /* Start serial; 0: slot free */
        size_t next;               /* index into tests[] of the next call */
} CertificationClient;

struct Certification {
        CertificationClient clients[CERTIFICATION_MAX_CLIENTS];
        uint64_t n_started;
};

typedef enum CertificationMode {
        MODE_PLAIN,
        MODE_MORE,                 /* stream the replies (the table entry
                                    * makes the dispatcher demand "more") */
        MODE_ONEWAY,               /* caller must have sent "oneway" */
} CertificationMode;

typedef struct CertificationTest {
        const char *method;
        CertificationMode mode;
        const char *wants;         /* expected parameters besides client_id */
        const char *reply;         /* reply parameters, or for MODE_MORE an
                                    * array of the "string" values to stream */
} CertificationTest;

/* The values the reference implementations (varlink/python, varlink/go)
 * use; the client checks what it gets back only by feeding it in again. */
#define PI "3.141592653589793"
#define SCALARS "\"bool\":false,\"int\":2,\"float\":" PI ",\"string\":\"a lot of string\""
#define MAP "{\"foo\":\"Foo\",\"bar\":\"Bar\"}"
#define SET "{\"one\":{},\"two\":{},\"three\":{}}"
#define MYTYPE                                                                              \
        "{\"object\":{\"method\":\"org.varlink.certification.Test09\",\"parameters\":{\"map\":" MAP "}}," \
        "\"enum\":\"two\",\"struct\":{\"first\":1,\"second\":\"2\"},"                         \
        "\"array\":[\"one\",\"two\",\"three\"],\"dictionary\":" MAP ",\"stringset\":" SET "," \
        "\"interface\":{\"foo\":[null,{\"foo\":\"foo\",\"bar\":\"bar\"},null,{\"one\":\"foo\",\"two\":\"bar\"}]," \
        "\"anon\":{\"foo\":true,\"bar\":false}}}"
/* Streamed by Test10, echoed back by Test11. */
#define STREAM                                                                              \
        "[\"Reply number 1\",\"Reply number 2\",\"Reply number 3\",\"Reply number 4\","    \
        "\"Reply number 5\",\"Reply number 6\",\"Reply number 7\",\"Reply number 8\","     \
        "\"Reply number 9\",\"Reply number 10\"]"

static const CertificationTest tests[] = {
        { "Test01", MODE_PLAIN, "{}", "{\"bool\":true}" },
        { "Test02", MODE_PLAIN, "{\"bool\":true}", "{\"int\":1}" },
        { "Test03", MODE_PLAIN, "{\"int\":1}", "{\"float\":1.0}" },
        { "Test04", MODE_PLAIN, "{\"float\":1.0}", "{\"string\":\"ping\"}" },
        { "Test05", MODE_PLAIN, "{\"string\":\"ping\"}", "{" SCALARS "}" },
        { "Test06", MODE_PLAIN, "{" SCALARS "}", "{\"struct\":{" SCALARS "}}" },
        { "Test07", MODE_PLAIN, "{\"struct\":{" SCALARS "}}", "{\"map\":" MAP "}" },
        { "Test08", MODE_PLAIN, "{\"map\":" MAP "}", "{\"set\":" SET "}" },
        { "Test09", MODE_PLAIN, "{\"set\":" SET "}", "{\"mytype\":" MYTYPE "}" },
        { "Test10", MODE_MORE, "{\"mytype\":" MYTYPE "}", STREAM },
        { "Test11", MODE_ONEWAY, "{\"last_more_replies\":" STREAM "}", "{}" },
        { "End", MODE_PLAIN, "{}", "{\"all_ok\":true}" },
};

int certification_new(Certification **ret) {
        Certification *c = calloc(1, sizeof(Certification));

        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

Certification *certification_free(Certification *c) {
        free(c);
        return NULL;
}

static CertificationClient *certification_find(Certification *c, const char *id) {
        for (size_t i = 0; i < ELEMENTSOF(c->clients); i++)
                if (c->clients[i].started != 0 && streq(c->clients[i].id, id))
                        return &c->clients[i];
        return NULL;
}

/* Compare as varlink reads JSON: 1 and 1.0 are the same number (a Go client
 * sends the float 1.0 as "1"), and a null member equals an absent one. */
static bool certification_json_equal(struct json_object *a, struct json_object *b);

static bool certification_json_members_in(struct json_object *a, struct json_object *b) {
        json_object_object_foreach(a, key, value)
                if (value && !certification_json_equal(value, json_object_object_get(b, key)))
                        return false;
        return true;
}

static bool certification_json_equal(struct json_object *a, struct json_object *b) {
        json_type ta = json_object_get_type(a), tb = json_object_get_type(b);
        bool na = ta == json_type_int || ta == json_type_double;
        bool nb = tb == json_type_int || tb == json_type_double;

        if (ta == json_type_int && tb == json_type_int)
                return json_object_get_int64(a) == json_object_get_int64(b);
        if (na && nb)
                return json_object_get_double(a) == json_object_get_double(b);
        if (ta != tb)
                return false;

        switch (ta) {
        case json_type_object:
                return certification_json_members_in(a, b) && certification_json_members_in(b, a);
        case json_type_array: {
                size_t n = json_object_array_length(a);

                if (n != json_object_array_length(b))
                        return false;
                for (size_t i = 0; i < n; i++)
                        if (!certification_json_equal(json_object_array_get_idx(a, i),
                                                      json_object_array_get_idx(b, i)))
                                return false;
                return true;
        }
        default:
                return json_object_equal(a, b);
        }
}

/* { key: value }, taking ownership of value (also on failure). */
static struct json_object *certification_json_pair(const char *key, struct json_object *value) {
        _cleanup_json_ struct json_object *v = value, *o = json_object_new_object();

        if (!v || !o || json_object_object_add(o, key, v) < 0)
                return NULL;
        v = NULL;
        return TAKE_PTR(o);
}

/* A failed run cannot go on: forget the client, so End can never report
 * all_ok for it (the error of a oneway Test11 never reaches the client). */
static int certification_fail(CertificationClient *client, Call *call,
                              struct json_object *wants, struct json_object *got) {
        _cleanup_json_ struct json_object *w = wants, *g = got, *p = json_object_new_object();

        *client = (CertificationClient) {};
        if (!w || !g || !p || json_object_object_add(p, "wants", w) < 0)
                return -ENOMEM;
        w = NULL;
        if (json_object_object_add(p, "got", g) < 0)
                return -ENOMEM;
        g = NULL;
        return call_reply_error(call, "org.varlink.certification.CertificationError", TAKE_PTR(p));
}

static struct json_object *certification_method_json(const char *method) {
        char full[64];   /* method is one of tests[] */

        (void) snprintf(full, sizeof(full), "org.varlink.certification.%s", method);
        return certification_json_pair("method", json_object_new_string(full));
}

/* Send t's reply: one message, or a stream of {"string": value} with
 * continues on all but the last. */
static int certification_reply(Call *call, const CertificationTest *t) {
        _cleanup_json_ struct json_object *reply = json_tokener_parse(t->reply);
        size_t n;

        if (!reply)
                return -ENOMEM;
        if (t->mode != MODE_MORE)
                return call_reply(call, TAKE_PTR(reply));

        n = json_object_array_length(reply);
        for (size_t i = 0; i < n; i++) {
                struct json_object *p = certification_json_pair(
                                "string", json_object_get(json_object_array_get_idx(reply, i)));
                int r;

                if (!p)
                        return -ENOMEM;
                r = i + 1 < n ? call_reply_more(call, p) : call_reply(call, p);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int certification_start(Call *call, struct json_object *parameters _unused_, void *userdata) {
        Certification *c = ((Server *) userdata)->certification;
        static const char hex[] = "0123456789abcdef";
        uint8_t bytes[CERTIFICATION_ID_BYTES];
        CertificationClient *client = &c->clients[0];
        struct json_object *reply;
        ssize_t n;

        n = getrandom(bytes, sizeof(bytes), 0);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != sizeof(bytes))
                return -EIO;

        /* A free slot (started == 0) or else the oldest run: abandoned runs
         * must not pin memory, and a live run is done within a second. */
        for (size_t i = 1; i < ELEMENTSOF(c->clients); i++)
                if (c->clients[i].started < client->started)
                        client = &c->clients[i];

        for (size_t i = 0; i < sizeof(bytes); i++) {
                client->id[2 * i] = hex[bytes[i] >> 4];
                client->id[2 * i + 1] = hex[bytes[i] & 0xf];
        }
        client->id[2 * sizeof(bytes)] = '\0';
        client->started = ++c->n_started;
        client->next = 0;

        reply = certification_json_pair("client_id", json_object_new_string(client->id));
        if (!reply)
                return -ENOMEM;
        return call_reply(call, reply);
}

static int certification_test(Call *call, struct json_object *parameters, void *userdata) {
        Certification *c = ((Server *) userdata)->certification;
        const char *id = json_object_get_string(json_object_object_get(parameters, "client_id"));
        const char *method = strrchr(call_method(call), '.');
        _cleanup_json_ struct json_object *wants = NULL, *wants_id = NULL;
        CertificationClient *client;
        const CertificationTest *t;

        client = certification_find(c, id);
        if (!client)
                return call_reply_error(call, "org.varlink.certification.ClientIdError", NULL);

        method = method ? method + 1 : call_method(call);
        t = &tests[client->next];
        if (!streq(t->method, method))
                return certification_fail(client, call, certification_method_json(t->method),
                                          certification_method_json(method));

        if (t->mode == MODE_ONEWAY && !call_is_oneway(call))
                return certification_fail(client, call,
                                          certification_json_pair("oneway", json_object_new_boolean(true)),
                                          certification_json_pair("oneway", json_object_new_boolean(false)));

        wants = json_tokener_parse(t->wants);
        wants_id = json_object_new_string(id);
        if (!wants || !wants_id || json_object_object_add(wants, "client_id", wants_id) < 0)
                return -ENOMEM;
        wants_id = NULL;
        if (!certification_json_equal(wants, parameters))
                return certification_fail(client, call, TAKE_PTR(wants), json_object_get(parameters));

        if (++client->next == ELEMENTSOF(tests))
                *client = (CertificationClient) {};

        return certification_reply(call, t);
}

static const MethodEntry certification_methods[] = {
        { "Start", certification_start, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test01", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test02", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test03", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test04", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test05", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test06", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test07", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test08", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test09", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "Test10", certification_test, ROLE_ADMIN, CONN_STATE_ANY, true },
        { "Test11", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
        { "End", certification_test, ROLE_ADMIN, CONN_STATE_ANY, false },
};

const InterfaceTable certification_interface = {
        .name = "org.varlink.certification",
        .methods = certification_methods,
        .n_methods = ELEMENTSOF(certification_methods),
        .roles = ROLE_ADMIN,
};
