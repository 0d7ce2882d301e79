/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* proto/varlink-idl.c: the interface parser, then the validator on what
 * it built.  Input: the interface text, a NUL, a JSON value (without a
 * NUL, the second half of the input is the JSON).  Checked: errors are
 * "FILE:LINE:COL: message"; what parses has names that proto/varlink-wire.c
 * agrees are valid, every named type resolved, lookups that find each
 * member; the validator's result and path agree, and a minimal value
 * built from each struct type passes it. */

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "varlink-idl.h"
#include "varlink-wire.h"

#define FILENAME "fuzz.varlink"
#define JSON_DEPTH 24
#define EXAMPLE_DEPTH 16

static void check_type(const VarlinkType *t, unsigned depth) {
        FUZZ_CHECK(t);
        FUZZ_CHECK(depth <= 70);
        switch (t->kind) {
        case VARLINK_NAMED:
                FUZZ_CHECK(t->name && t->resolved);
                FUZZ_CHECK(t->resolved->kind == VARLINK_STRUCT || t->resolved->kind == VARLINK_ENUM);
                break;
        case VARLINK_ARRAY:
        case VARLINK_MAP:
                check_type(t->element, depth + 1);
                break;
        case VARLINK_STRUCT:
                for (size_t i = 0; i < t->n_fields; i++) {
                        FUZZ_CHECK(t->fields[i].name);
                        check_type(t->fields[i].type, depth + 1);
                }
                break;
        case VARLINK_ENUM:
                FUZZ_CHECK(t->n_fields > 0);
                for (size_t i = 0; i < t->n_fields; i++)
                        FUZZ_CHECK(t->fields[i].name && !t->fields[i].type);
                break;
        default:
                FUZZ_CHECK(!t->element && t->n_fields == 0);
        }
}

/* The smallest value of type t (absent optional fields, empty arrays and
 * maps), or NULL where none is within reach: a struct that requires itself. */
static struct json_object *example(const VarlinkType *t, unsigned depth) {
        struct json_object *o;

        if (depth > EXAMPLE_DEPTH)
                return NULL;
        if (t->kind == VARLINK_NAMED)
                t = t->resolved;
        switch (t->kind) {
        case VARLINK_BOOL:
                return json_object_new_boolean(1);
        case VARLINK_INT:
                return json_object_new_int64(-1);
        case VARLINK_FLOAT:
                return json_object_new_double(0.5);
        case VARLINK_STRING:
                return json_object_new_string("s");
        case VARLINK_OBJECT:
                return json_object_new_array();
        case VARLINK_ENUM:
                return json_object_new_string(t->fields[t->n_fields - 1].name);
        case VARLINK_ARRAY:
                return json_object_new_array();
        case VARLINK_MAP:
                return json_object_new_object();
        case VARLINK_STRUCT:
                o = json_object_new_object();
                FUZZ_CHECK(o);
                for (size_t i = 0; i < t->n_fields; i++) {
                        struct json_object *v;

                        if (t->fields[i].type->optional)
                                continue;
                        v = example(t->fields[i].type, depth + 1);
                        if (!v) {
                                json_object_put(o);
                                return NULL;
                        }
                        FUZZ_CHECK(json_object_object_add(o, t->fields[i].name, v) == 0);
                }
                return o;
        case VARLINK_NAMED:
                break;
        }
        FUZZ_CHECK(!"unreachable");
        return NULL;
}

static void check_validate(const VarlinkType *t, struct json_object *value) {
        _cleanup_json_ struct json_object *ex = NULL;

        FUZZ_CHECK(t && t->kind == VARLINK_STRUCT);
        check_type(t, 0);

        for (unsigned flags = 0; flags <= VARLINK_VALIDATE_UINT64; flags++) {
                char *path = NULL;
                int r = varlink_validate(t, value, flags, &path);

                FUZZ_CHECK(r == -ENOMEM || (r >= VARLINK_VALIDATE_OK && r <= VARLINK_VALIDATE_NUL_IN_STRING));
                FUZZ_CHECK(varlink_validate_error_to_string(r > 0 ? r : 0));
                FUZZ_CHECK((r > 0) == !!path);
                free(path);
        }
        FUZZ_CHECK(varlink_validate(t, NULL, 0, NULL) == VARLINK_VALIDATE_OK ||
                   varlink_validate(t, NULL, 0, NULL) == VARLINK_VALIDATE_MISSING_FIELD);

        ex = example(t, 0);
        if (ex)
                FUZZ_CHECK(varlink_validate(t, ex, 0, NULL) == VARLINK_VALIDATE_OK);
}

static void check_interface(const VarlinkInterface *iface, const char *text, struct json_object *value) {
        FUZZ_CHECK(streq(iface->description, text));
        /* the two grammars for interface and member names must agree */
        FUZZ_CHECK(varlink_interface_name_valid(iface->name));
        FUZZ_CHECK(iface->n_types + iface->n_methods + iface->n_errors > 0);

        for (size_t i = 0; i < iface->n_types; i++) {
                const VarlinkTypeDef *d = &iface->types[i];

                FUZZ_CHECK(varlink_interface_find_type(iface, d->name) == d);
                FUZZ_CHECK(d->type->kind == VARLINK_STRUCT || d->type->kind == VARLINK_ENUM);
                if (d->type->kind == VARLINK_STRUCT)
                        check_validate(d->type, value);
                else
                        check_type(d->type, 0);
        }
        for (size_t i = 0; i < iface->n_methods; i++) {
                const VarlinkMethod *m = &iface->methods[i];
                _cleanup_free_ char *full = NULL;

                FUZZ_CHECK(varlink_interface_find_method(iface, m->name) == m);
                FUZZ_CHECK(asprintf(&full, "%s.%s", iface->name, m->name) >= 0);
                FUZZ_CHECK(varlink_method_name_valid(full));
                check_validate(m->input, value);
                check_validate(m->output, value);
        }
        for (size_t i = 0; i < iface->n_errors; i++) {
                const VarlinkErrorDef *e = &iface->errors[i];
                _cleanup_free_ char *full = NULL;

                FUZZ_CHECK(varlink_interface_find_error(iface, e->name) == e);
                FUZZ_CHECK(asprintf(&full, "%s.%s", iface->name, e->name) >= 0);
                FUZZ_CHECK(varlink_method_name_valid(full));
                check_validate(e->parameters, value);
        }
}

static struct json_object *parse_json(const uint8_t *data, size_t size) {
        struct json_tokener *tok;
        struct json_object *o;

        if (size == 0 || size > INT32_MAX)
                return NULL;
        tok = json_tokener_new_ex(JSON_DEPTH);
        FUZZ_CHECK(tok);
        o = json_tokener_parse_ex(tok, (const char *) data, (int) size);
        json_tokener_free(tok);
        return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_json_ struct json_object *value = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL;
        VarlinkInterface *iface = NULL;
        const uint8_t *nul = memchr(data, 0, size);
        size_t text_len = nul ? (size_t) (nul - data) : size;
        int r;

        text = strndup((const char *) data, text_len);
        FUZZ_CHECK(text);
        value = nul ? parse_json(nul + 1, size - text_len - 1) : parse_json(data + size / 2, size - size / 2);

        r = varlink_idl_parse(text, FILENAME, &iface, &error);
        if (r < 0) {
                unsigned line, col;

                FUZZ_CHECK(r == -EINVAL || r == -ENOMEM);
                FUZZ_CHECK(!iface);
                if (r == -EINVAL) {
                        FUZZ_CHECK(error);
                        FUZZ_CHECK(sscanf(error, FILENAME ":%u:%u: ", &line, &col) == 2);
                        FUZZ_CHECK(fuzz_position_valid(text, line, col, 0));
                }
                return 0;
        }
        FUZZ_CHECK(r == 0 && iface && !error);
        check_interface(iface, text, value);
        varlink_interface_free(iface);
        return 0;
}
