/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Unit tests for proto/varlink-idl.c: parser, lookups, validator. */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "macro.h"
#include "varlink-idl.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkInterface *, varlink_interface_free);
#define _cleanup_iface_ _cleanup_(varlink_interface_freep)

static VarlinkInterface *parse_ok(const char *text) {
        VarlinkInterface *iface = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = varlink_idl_parse(text, "test.varlink", &iface, &error);
        ck_assert_msg(r == 0, "parse failed (%d): %s", r, error ?: "(no message)");
        ck_assert_ptr_null(error);
        ck_assert_ptr_nonnull(iface);
        return iface;
}

static const VarlinkField *field(const VarlinkType *t, size_t i, const char *name) {
        ck_assert_int_eq(t->kind, VARLINK_STRUCT);
        ck_assert_uint_gt(t->n_fields, i);
        ck_assert_str_eq(t->fields[i].name, name);
        ck_assert_ptr_nonnull(t->fields[i].type);
        return &t->fields[i];
}

/* ------------------------------------------------------------ parsing */

static const char service_idl[] =
        "# The Varlink Service Interface is provided by every varlink service. It\n"
        "# describes the service and the interfaces it implements.\n"
        "interface org.varlink.service\n"
        "\n"
        "# Get a list of all the interfaces a service provides and information\n"
        "# about the implementation.\n"
        "method GetInfo() -> (\n"
        "  vendor: string,\n"
        "  product: string,\n"
        "  version: string,\n"
        "  url: string,\n"
        "  interfaces: []string\n"
        ")\n"
        "\n"
        "# Get the description of an interface that is implemented by this service.\n"
        "method GetInterfaceDescription(interface: string) -> (description: string)\n"
        "\n"
        "# The requested interface was not found.\n"
        "error InterfaceNotFound (interface: string)\n"
        "\n"
        "# The requested method was not found\n"
        "error MethodNotFound (method: string)\n"
        "\n"
        "# The interface defines the requested method, but the service does not\n"
        "# implement it.\n"
        "error MethodNotImplemented (method: string)\n"
        "\n"
        "# One of the passed parameters is invalid.\n"
        "error InvalidParameter (parameter: string)\n"
        "\n"
        "# Client is denied access\n"
        "error PermissionDenied ()\n"
        "\n"
        "# Method is expected to be called with 'more' set to true, but wasn't\n"
        "error ExpectedMore ()\n";

START_TEST(test_parse_service) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(service_idl);
        const VarlinkMethod *m;
        const VarlinkErrorDef *e;
        const VarlinkField *f;

        ck_assert_str_eq(iface->name, "org.varlink.service");
        ck_assert_str_eq(iface->doc,
                         "The Varlink Service Interface is provided by every varlink service. It\n"
                         "describes the service and the interfaces it implements.");
        ck_assert_str_eq(iface->description, service_idl);
        ck_assert_uint_eq(iface->n_types, 0);
        ck_assert_uint_eq(iface->n_methods, 2);
        ck_assert_uint_eq(iface->n_errors, 6);

        m = &iface->methods[0];
        ck_assert_str_eq(m->name, "GetInfo");
        ck_assert_str_eq(m->doc, "Get a list of all the interfaces a service provides and information\n"
                                 "about the implementation.");
        ck_assert_int_eq(m->input->kind, VARLINK_STRUCT);
        ck_assert_uint_eq(m->input->n_fields, 0);
        ck_assert_uint_eq(m->output->n_fields, 5);
        field(m->output, 0, "vendor");
        field(m->output, 3, "url");
        f = field(m->output, 4, "interfaces");
        ck_assert_int_eq(f->type->kind, VARLINK_ARRAY);
        ck_assert(!f->type->optional);
        ck_assert_int_eq(f->type->element->kind, VARLINK_STRING);
        ck_assert_ptr_null(f->doc);

        m = &iface->methods[1];
        ck_assert_str_eq(m->name, "GetInterfaceDescription");
        f = field(m->input, 0, "interface");
        ck_assert_int_eq(f->type->kind, VARLINK_STRING);
        field(m->output, 0, "description");

        e = &iface->errors[4];
        ck_assert_str_eq(e->name, "PermissionDenied");
        ck_assert_str_eq(e->doc, "Client is denied access");
        ck_assert_int_eq(e->parameters->kind, VARLINK_STRUCT);
        ck_assert_uint_eq(e->parameters->n_fields, 0);
        ck_assert_str_eq(iface->errors[5].doc, "Method is expected to be called with 'more' set to true, but wasn't");
}
END_TEST

static const char kitchen_sink_idl[] =
        "# Everything the grammar has.\n"
        "#Second line, no space after the hash.\n"
        "interface org.example.kitchen-sink\n"
        "\n"
        "# Colors.\n"
        "type Color (red, green, blue)\n"
        "\n"
        "# A tree node; refers to itself.\n"
        "type Node (\n"
        "  # The node's name.\n"
        "  name: string,\n"
        "  children: []Node,   # trailing comment, not doc\n"
        "  parent: ?Node\n"
        ")\n"
        "\n"
        "type Everything (\n"
        "  b: bool, i: int, f: float, s: string, o: object,\n"
        "  maybe_int: ?int,\n"
        "  list: []string,\n"
        "  dict: [string]int,\n"
        "  nested: []?[string](x: int, y: ?(p, q)),\n"
        "  color: Color,\n"
        "  colors: ?[]Color,\n"
        "  anon_enum: (\n"
        "    # first\n"
        "    one,\n"
        "    two\n"
        "  ),\n"
        "  empty: (),\n"
        "  matrix: [][]float,\n"
        "  later: Later\n"
        ")\n"
        "\n"
        "method Get(id: int, filter: ?Everything) -> (thing: Everything, node: ?Node)\n"
        "method Nothing()->()\n"
        "\tmethod   Spaced  (\ta :int ,b:\n?\nstring )\n->\n(\n)\n"
        "\n"
        "# Something failed.\n"
        "error Failed (reason: Color, detail: ?string)\n"
        "error Plain ()\n"
        "\n"
        "# Defined after its first use.\n"
        "type Later (v1: int)\n";

START_TEST(test_parse_kitchen_sink) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(kitchen_sink_idl);
        const VarlinkTypeDef *color, *node, *everything, *later;
        const VarlinkType *t, *e;
        const VarlinkMethod *m;
        const VarlinkField *f;

        ck_assert_str_eq(iface->name, "org.example.kitchen-sink");
        ck_assert_str_eq(iface->doc, "Everything the grammar has.\nSecond line, no space after the hash.");
        ck_assert_str_eq(iface->description, kitchen_sink_idl);
        ck_assert_uint_eq(iface->n_types, 4);
        ck_assert_uint_eq(iface->n_methods, 3);
        ck_assert_uint_eq(iface->n_errors, 2);

        color = varlink_interface_find_type(iface, "Color");
        ck_assert_ptr_nonnull(color);
        ck_assert_str_eq(color->doc, "Colors.");
        ck_assert_int_eq(color->type->kind, VARLINK_ENUM);
        ck_assert_uint_eq(color->type->n_fields, 3);
        ck_assert_str_eq(color->type->fields[0].name, "red");
        ck_assert_str_eq(color->type->fields[2].name, "blue");
        ck_assert_ptr_null(color->type->fields[1].type);

        node = varlink_interface_find_type(iface, "Node");
        ck_assert_ptr_nonnull(node);
        ck_assert_str_eq(node->doc, "A tree node; refers to itself.");
        f = field(node->type, 0, "name");
        ck_assert_str_eq(f->doc, "The node's name.");
        f = field(node->type, 1, "children");
        ck_assert_ptr_null(f->doc);
        ck_assert_int_eq(f->type->kind, VARLINK_ARRAY);
        ck_assert_int_eq(f->type->element->kind, VARLINK_NAMED);
        ck_assert_str_eq(f->type->element->name, "Node");
        ck_assert_ptr_eq(f->type->element->resolved, node->type);
        f = field(node->type, 2, "parent");
        ck_assert_ptr_null(f->doc);
        ck_assert(f->type->optional);
        ck_assert_int_eq(f->type->kind, VARLINK_NAMED);
        ck_assert_ptr_eq(f->type->resolved, node->type);

        everything = varlink_interface_find_type(iface, "Everything");
        ck_assert_ptr_nonnull(everything);
        ck_assert_ptr_null(everything->doc);
        t = everything->type;
        ck_assert_uint_eq(t->n_fields, 15);
        ck_assert_int_eq(field(t, 0, "b")->type->kind, VARLINK_BOOL);
        ck_assert_int_eq(field(t, 1, "i")->type->kind, VARLINK_INT);
        ck_assert_int_eq(field(t, 2, "f")->type->kind, VARLINK_FLOAT);
        ck_assert_int_eq(field(t, 3, "s")->type->kind, VARLINK_STRING);
        ck_assert_int_eq(field(t, 4, "o")->type->kind, VARLINK_OBJECT);
        for (size_t i = 0; i < 5; i++)
                ck_assert(!t->fields[i].type->optional);

        f = field(t, 5, "maybe_int");
        ck_assert_int_eq(f->type->kind, VARLINK_INT);
        ck_assert(f->type->optional);

        f = field(t, 6, "list");
        ck_assert_int_eq(f->type->kind, VARLINK_ARRAY);
        ck_assert_int_eq(f->type->element->kind, VARLINK_STRING);

        f = field(t, 7, "dict");
        ck_assert_int_eq(f->type->kind, VARLINK_MAP);
        ck_assert_int_eq(f->type->element->kind, VARLINK_INT);

        /* nested: []?[string](x: int, y: ?(p, q)) */
        f = field(t, 8, "nested");
        ck_assert_int_eq(f->type->kind, VARLINK_ARRAY);
        ck_assert(!f->type->optional);
        e = f->type->element;
        ck_assert_int_eq(e->kind, VARLINK_MAP);
        ck_assert(e->optional);
        e = e->element;
        ck_assert_int_eq(e->kind, VARLINK_STRUCT);
        ck_assert(!e->optional);
        ck_assert_int_eq(field(e, 0, "x")->type->kind, VARLINK_INT);
        f = field(e, 1, "y");
        ck_assert_int_eq(f->type->kind, VARLINK_ENUM);
        ck_assert(f->type->optional);
        ck_assert_uint_eq(f->type->n_fields, 2);
        ck_assert_str_eq(f->type->fields[0].name, "p");
        ck_assert_str_eq(f->type->fields[1].name, "q");

        f = field(t, 9, "color");
        ck_assert_int_eq(f->type->kind, VARLINK_NAMED);
        ck_assert_str_eq(f->type->name, "Color");
        ck_assert_ptr_eq(f->type->resolved, color->type);

        f = field(t, 10, "colors");
        ck_assert(f->type->optional);
        ck_assert_int_eq(f->type->kind, VARLINK_ARRAY);
        ck_assert_ptr_eq(f->type->element->resolved, color->type);

        f = field(t, 11, "anon_enum");
        ck_assert_int_eq(f->type->kind, VARLINK_ENUM);
        ck_assert_str_eq(f->type->fields[0].name, "one");
        ck_assert_str_eq(f->type->fields[0].doc, "first");
        ck_assert_ptr_null(f->type->fields[1].doc);

        f = field(t, 12, "empty");
        ck_assert_int_eq(f->type->kind, VARLINK_STRUCT);
        ck_assert_uint_eq(f->type->n_fields, 0);

        f = field(t, 13, "matrix");
        ck_assert_int_eq(f->type->kind, VARLINK_ARRAY);
        ck_assert_int_eq(f->type->element->kind, VARLINK_ARRAY);
        ck_assert_int_eq(f->type->element->element->kind, VARLINK_FLOAT);

        later = varlink_interface_find_type(iface, "Later");
        ck_assert_ptr_nonnull(later);
        ck_assert_str_eq(later->doc, "Defined after its first use.");
        f = field(t, 14, "later");
        ck_assert_ptr_eq(f->type->resolved, later->type);
        field(later->type, 0, "v1");

        m = varlink_interface_find_method(iface, "Get");
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_null(m->doc);
        f = field(m->input, 0, "id");
        f = field(m->input, 1, "filter");
        ck_assert(f->type->optional);
        ck_assert_ptr_eq(f->type->resolved, everything->type);
        f = field(m->output, 0, "thing");
        ck_assert(!f->type->optional);
        ck_assert_ptr_eq(f->type->resolved, everything->type);
        f = field(m->output, 1, "node");
        ck_assert_ptr_eq(f->type->resolved, node->type);

        m = varlink_interface_find_method(iface, "Nothing");
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(m->input->n_fields, 0);
        ck_assert_uint_eq(m->output->n_fields, 0);

        m = varlink_interface_find_method(iface, "Spaced");
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(field(m->input, 0, "a")->type->kind, VARLINK_INT);
        f = field(m->input, 1, "b");
        ck_assert_int_eq(f->type->kind, VARLINK_STRING);
        ck_assert(f->type->optional);

        ck_assert_str_eq(iface->errors[0].name, "Failed");
        ck_assert_str_eq(iface->errors[0].doc, "Something failed.");
        ck_assert_ptr_eq(field(iface->errors[0].parameters, 0, "reason")->type->resolved, color->type);
        ck_assert_str_eq(iface->errors[1].name, "Plain");
}
END_TEST

START_TEST(test_parse_docs) {
        static const char text[] =
                "# License header, detached by the blank line.\n"
                "\n"
                "# Interface doc.\n"
                "#\n"
                "#   Indented.\r\n"
                "interface a.b\n"
                "\n"
                "# Detached comment.\n"
                "\n"
                "# Method doc.   \n"
                "method M(\n"
                "  # Field doc\n"
                "  # two lines\n"
                "  x: int, # trailing, not doc\n"
                "  y: int\n"
                ") -> ()\n"
                "# Error doc.\n"
                "error E ()\n";
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(text);
        const VarlinkMethod *m;

        ck_assert_str_eq(iface->doc, "Interface doc.\n\n  Indented.");
        m = varlink_interface_find_method(iface, "M");
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m->doc, "Method doc.");
        ck_assert_str_eq(field(m->input, 0, "x")->doc, "Field doc\ntwo lines");
        ck_assert_ptr_null(field(m->input, 1, "y")->doc);
        ck_assert_str_eq(iface->errors[0].doc, "Error doc.");
}
END_TEST

START_TEST(test_parse_names) {
        static const char *const good[] = {
                "interface a.b\nmethod M() -> ()",
                "interface a-b.c-d.e1\nmethod M() -> ()",
                "interface A.0b\nmethod M() -> ()",
                "interface a--b.c---1.d\nmethod M() -> ()",
                "interface io.kvmid.Admin\nmethod M() -> ()",
                "interface a.b\nmethod M2x() -> (a_b: int, a1_2: int, A: int, aB9: int)",
                "interface a.b type T(a:int)", /* newlines are not required */
                "interface a.b\r\nmethod M() -> ()\r\n", /* CRLF */
        };
        VarlinkInterface *iface;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                iface = parse_ok(good[i]);
                varlink_interface_free(iface);
        }
}
END_TEST

START_TEST(test_parse_crlf_doc) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok("# doc\r\ninterface a.b\r\n# m\r\nmethod M() -> ()\r\n");

        ck_assert_str_eq(iface->doc, "doc");
        ck_assert_str_eq(iface->methods[0].doc, "m");
}
END_TEST

START_TEST(test_parse_ret_untouched) {
        VarlinkInterface dummy = {}, *sentinel = &dummy, *iface = sentinel;
        char *error = NULL;

        ck_assert_int_eq(varlink_idl_parse("interface a.b", "x", &iface, NULL), -EINVAL);
        ck_assert_ptr_eq(iface, sentinel);
        ck_assert_int_eq(varlink_idl_parse("interface a.b", "x", &iface, &error), -EINVAL);
        ck_assert_ptr_eq(iface, sentinel);
        ck_assert_str_eq(error, "x:1:11: interface 'a.b' has no members");
        free(error);

        /* filename is optional */
        error = NULL;
        ck_assert_int_eq(varlink_idl_parse("interface", NULL, &iface, &error), -EINVAL);
        ck_assert_str_eq(error, "<string>:1:10: unexpected end of input");
        free(error);

        ck_assert_int_eq(varlink_idl_parse(NULL, "x", &iface, NULL), -EINVAL);
        ck_assert_int_eq(varlink_idl_parse("interface a.b method M()->()", "x", NULL, NULL), -EINVAL);
        ck_assert_ptr_eq(iface, sentinel);
}
END_TEST

START_TEST(test_parse_too_deep) {
        char text[1024] = "interface a.b\ntype T (a: ";
        _cleanup_free_ char *error = NULL;
        VarlinkInterface *iface = NULL;
        size_t n = strlen(text);

        for (size_t i = 0; i < 100; i++) {
                text[n++] = '[';
                text[n++] = ']';
        }
        strcpy(text + n, "int)");

        ck_assert_int_eq(varlink_idl_parse(text, "x", &iface, &error), -EINVAL);
        /* 64 levels accepted, the 65th "[]" (at column 12 + 2*64) is refused */
        ck_assert_str_eq(error, "x:2:140: type nested too deeply");
        ck_assert_ptr_null(iface);
}
END_TEST

static const struct {
        const char *text;
        const char *error;
} bad_inputs[] = {
        { "",
          "x.varlink:1:1: unexpected end of input" },
        { "# only a comment\n",
          "x.varlink:2:1: unexpected end of input" },
        { "interfac foo.bar\n",
          "x.varlink:1:1: expected 'interface'" },
        { "interface foo\nmethod M() -> ()\n",
          "x.varlink:1:11: invalid interface name 'foo'" },
        { "interface  foo.-bar\nmethod M() -> ()\n",
          "x.varlink:1:12: invalid interface name 'foo.-bar'" },
        { "interface foo.bar-\nmethod M() -> ()\n",
          "x.varlink:1:11: invalid interface name 'foo.bar-'" },
        { "interface 1a.b\nmethod M() -> ()\n",
          "x.varlink:1:11: invalid interface name '1a.b'" },
        { "interface a..b\nmethod M() -> ()\n",
          "x.varlink:1:11: invalid interface name 'a..b'" },
        { "interface a_b.c\nmethod M() -> ()\n",
          "x.varlink:1:11: invalid interface name 'a_b.c'" },
        { "interface (\n",
          "x.varlink:1:11: expected interface name" },
        { "# doc\ninterface foo.bar\n\n",
          "x.varlink:2:11: interface 'foo.bar' has no members" },
        { "interface a.b\n\nmethod Foo -> ()\n",
          "x.varlink:3:12: expected '(' after method name" },
        { "interface a.b\ntype T\n",
          "x.varlink:3:1: unexpected end of input" },
        { "interface a.b\ntype T [string]int\n",
          "x.varlink:2:8: expected '(' after type name" },
        { "interface a.b\nerror E\n(a: int)\nerror F int\n",
          "x.varlink:4:9: expected '(' after error name" },
        { "interface a.b\nmethod M () ()\n",
          "x.varlink:2:13: expected '->' after method input" },
        { "interface a.b\nmethod M () -> int\n",
          "x.varlink:2:16: expected '(' after '->'" },
        { "interface a.b\nmethod M () - ()\n",
          "x.varlink:2:13: unexpected character '-'" },
        { "interface a.b\ntype T (a: Foo)\n",
          "x.varlink:2:12: unknown type 'Foo'" },
        { "interface a.b\ntype T (\n\ta: int,\n\tb: []?Missing\n)\nmethod M(x: Missing2) -> ()\n",
          "x.varlink:4:8: unknown type 'Missing'" },
        { "interface a.b\nerror E ()\ntype T (e: E)\n",
          "x.varlink:3:12: unknown type 'E'" },
        { "interface a.b\ntype T (a: integer)\n",
          "x.varlink:2:12: unknown type 'integer'" },
        { "interface a.b\ntype Bar (a: int)\nmethod Bar () -> ()\n",
          "x.varlink:3:8: duplicate member 'Bar'" },
        { "interface a.b\nerror X ()\nerror X ()\n",
          "x.varlink:3:7: duplicate member 'X'" },
        { "interface a.b\nmethod M (a: int, a: string) -> ()\n",
          "x.varlink:2:19: duplicate field 'a'" },
        { "interface a.b\ntype E (x, y, x)\n",
          "x.varlink:2:15: duplicate enum value 'x'" },
        { "interface a.b\nmethod M (a: int",
          "x.varlink:2:17: unexpected end of input" },
        { "interface a.b\nmethod M (a: int) -> (\n",
          "x.varlink:3:1: unexpected end of input" },
        { "interface a.b\ntype T (a: ?\?int)\n",
          "x.varlink:2:13: '?\?' is not allowed" },
        { "interface a.b\ntype T (a: ? ?int)\n",
          "x.varlink:2:14: '?\?' is not allowed" },
        { "interface a.b\ntype T (a: []?\?int)\n",
          "x.varlink:2:15: '?\?' is not allowed" },
        { "interface a.b\ntype T (a: int,)\n",
          "x.varlink:2:15: trailing ',' is not allowed" },
        { "interface a.b\ntype E (a, b, )\n",
          "x.varlink:2:13: trailing ',' is not allowed" },
        { "interface a.b\nmethod foo() -> ()\n",
          "x.varlink:2:8: invalid method name 'foo'" },
        { "interface a.b\ntype my_type ()\n",
          "x.varlink:2:6: invalid type name 'my_type'" },
        { "interface a.b\nerror Foo-Bar ()\n",
          "x.varlink:2:7: invalid error name 'Foo-Bar'" },
        { "interface a.b\nmethod M(a__b: int) -> ()\n",
          "x.varlink:2:10: invalid field name 'a__b'" },
        { "interface a.b\nmethod M(x: int, a_: int) -> ()\n",
          "x.varlink:2:18: invalid field name 'a_'" },
        { "interface a.b\nmethod M(_a: int) -> ()\n",
          "x.varlink:2:10: invalid field name '_a'" },
        { "interface a.b\ntype E (ok, 1bad)\n",
          "x.varlink:2:13: invalid enum value '1bad'" },
        { "interface a.b\nmethod M(a, b) -> ()\n",
          "x.varlink:2:11: expected ':' after field name 'a'" },
        { "interface a.b\nerror E (a)\n",
          "x.varlink:2:11: expected ':' after field name 'a'" },
        { "interface a.b\ntype T (a: int, b)\n",
          "x.varlink:2:18: expected ':' after field name 'b'" },
        { "interface a.b\ntype E (a, b: int)\n",
          "x.varlink:2:13: expected ',' or ')' after enum value" },
        { "interface a.b\ntype T (a: int b: int)\n",
          "x.varlink:2:16: expected ',' or ')' after field type" },
        { "interface a.b\ntype T (a: )\n",
          "x.varlink:2:12: expected type" },
        { "interface a.b\ntype T (a: ?)\n",
          "x.varlink:2:13: expected type" },
        { "interface a.b\ntype T (, a: int)\n",
          "x.varlink:2:9: expected field name" },
        { "interface a.b\ntype T (a: [int]string)\n",
          "x.varlink:2:13: expected ']' or 'string' after '['" },
        { "interface a.b\ntype T (a: [string int)\n",
          "x.varlink:2:20: expected ']' after '[string'" },
        { "interface a.b\nfunction F() -> ()\n",
          "x.varlink:2:1: expected 'type', 'method' or 'error'" },
        { "interface a.b\nmethod M() -> ()\ninterface c.d\n",
          "x.varlink:3:1: expected 'type', 'method' or 'error'" },
        { "interface a.b\ntype T (a: int) @\n",
          "x.varlink:2:17: unexpected character '@'" },
        { "interface a.b\n# \xc3\xa4 in a comment is fine\ntype T (\xc3\xa4: int)\n",
          "x.varlink:3:9: unexpected byte 0xc3" },
        { "interface a.b\ntype T {a: int}\n",
          "x.varlink:2:8: unexpected character '{'" },
        { "interface a.b\nmethod M(a: int) -> (b: string))\n",
          "x.varlink:2:32: expected 'type', 'method' or 'error'" },
};

START_TEST(test_parse_bad) {
        VarlinkInterface *iface = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = varlink_idl_parse(bad_inputs[_i].text, "x.varlink", &iface, &error);
        ck_assert_msg(r == -EINVAL, "input #%d parsed (r=%d) but should fail with: %s", _i, r, bad_inputs[_i].error);
        ck_assert_ptr_null(iface);
        ck_assert_ptr_nonnull(error);
        ck_assert_str_eq(error, bad_inputs[_i].error);
}
END_TEST

/* Every interface shipped in proto/ must parse, and be named after its file. */
START_TEST(test_parse_shipped_files) {
#ifdef TOP_SRCDIR
        DIR *d = opendir(TOP_SRCDIR "/proto");
        struct dirent *de;
        unsigned n = 0;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d))) {
                _cleanup_free_ char *text = NULL, *error = NULL;
                VarlinkInterface *iface = NULL;
                size_t len = strlen(de->d_name);
                char path[4096];
                FILE *f;
                long size;
                int r;

                if (len <= strlen(".varlink") || !streq(de->d_name + len - strlen(".varlink"), ".varlink"))
                        continue;
                ck_assert_int_lt(snprintf(path, sizeof(path), "%s/proto/%s", TOP_SRCDIR, de->d_name),
                                 (int) sizeof(path));
                f = fopen(path, "re");
                ck_assert_ptr_nonnull(f);
                ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
                size = ftell(f);
                ck_assert_int_ge(size, 0);
                rewind(f);
                text = calloc(1, (size_t) size + 1);
                ck_assert_ptr_nonnull(text);
                ck_assert_uint_eq(fread(text, 1, (size_t) size, f), (size_t) size);
                fclose(f);

                r = varlink_idl_parse(text, path, &iface, &error);
                ck_assert_msg(r == 0, "%s", error ?: path);
                ck_assert_uint_eq(strlen(iface->name), len - strlen(".varlink"));
                ck_assert(strneq(iface->name, de->d_name, strlen(iface->name)));
                ck_assert_str_eq(iface->description, text);
                varlink_interface_free(iface);
                n++;
        }
        closedir(d);
        /* at least org.varlink.service */
        ck_assert_uint_ge(n, 1);
#endif
}
END_TEST

START_TEST(test_lookups) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(kitchen_sink_idl);

        ck_assert_ptr_eq(varlink_interface_find_method(iface, "Get"), &iface->methods[0]);
        ck_assert_ptr_eq(varlink_interface_find_method(iface, "Spaced"), &iface->methods[2]);
        ck_assert_ptr_eq(varlink_interface_find_error(iface, "Plain"), &iface->errors[1]);
        ck_assert_ptr_eq(varlink_interface_find_type(iface, "Color"), &iface->types[0]);
        ck_assert_ptr_eq(varlink_interface_find_type(iface, "Later"), &iface->types[3]);

        /* names do not leak across member kinds */
        ck_assert_ptr_null(varlink_interface_find_method(iface, "Color"));
        ck_assert_ptr_null(varlink_interface_find_method(iface, "Failed"));
        ck_assert_ptr_null(varlink_interface_find_error(iface, "Get"));
        ck_assert_ptr_null(varlink_interface_find_type(iface, "Failed"));

        /* exact, case-sensitive matches only */
        ck_assert_ptr_null(varlink_interface_find_method(iface, "get"));
        ck_assert_ptr_null(varlink_interface_find_method(iface, "Ge"));
        ck_assert_ptr_null(varlink_interface_find_method(iface, "GetX"));
        ck_assert_ptr_null(varlink_interface_find_method(iface, ""));

        ck_assert_ptr_null(varlink_interface_find_method(iface, NULL));
        ck_assert_ptr_null(varlink_interface_find_method(NULL, "Get"));
        ck_assert_ptr_null(varlink_interface_find_error(NULL, "Plain"));
        ck_assert_ptr_null(varlink_interface_find_type(NULL, "Color"));

        ck_assert_ptr_null(varlink_interface_free(NULL));
}
END_TEST

/* ------------------------------------------------------------ validator */

static const char validate_idl[] =
        "interface a.b\n"
        "type Inner (x: int, tag: ?string)\n"
        "type Mode (fast, slow)\n"
        "type Tree (name: string, kids: ?[]Tree)\n"
        "method V(\n"
        "  i: int, f: float, s: string, b: bool, o: object,\n"
        "  opt: ?int,\n"
        "  mode: Mode,\n"
        "  inner: Inner,\n"
        "  list: []int,\n"
        "  optlist: ?[]?int,\n"
        "  map: [string]Inner,\n"
        "  deep: [][string][]Inner,\n"
        "  anon: ?(k: (p, q))\n"
        ") -> ()\n"
        "method Empty() -> ()\n"
        "method Opt(a: ?int) -> (tree: Tree)\n";

static const char validate_base[] =
        "{ \"i\": 1, \"f\": 1.5, \"s\": \"x\", \"b\": true, \"o\": [1, \"y\"],"
        "  \"mode\": \"fast\", \"inner\": { \"x\": 1 }, \"list\": [1, 2],"
        "  \"map\": { \"k\": { \"x\": 2, \"tag\": \"t\" } },"
        "  \"deep\": [ {}, { \"a\": [ { \"x\": 1 } ] } ] }";

static const char DELETE[] = "<delete>";

/* Validate validate_base against V's input with key set to value_json
 * (DELETE removes it, "null" sets an explicit null). */
static void check_patched(const VarlinkInterface *iface, const char *key, const char *value_json,
                          int expected, const char *expected_path) {
        _cleanup_json_ struct json_object *obj = json_tokener_parse(validate_base);
        _cleanup_free_ char *path = NULL;
        const VarlinkMethod *m = varlink_interface_find_method(iface, "V");
        int r;

        ck_assert_ptr_nonnull(obj);
        ck_assert_ptr_nonnull(m);
        if (key) {
                if (value_json == DELETE)
                        json_object_object_del(obj, key);
                else {
                        struct json_object *v = json_tokener_parse(value_json);

                        ck_assert_msg(v || streq(value_json, "null"), "bad test JSON: %s", value_json);
                        ck_assert_int_eq(json_object_object_add(obj, key, v), 0);
                }
        }

        r = varlink_validate(m->input, obj, 0, &path);
        ck_assert_msg(r == expected, "%s=%s: expected %d, got %d (path %s)",
                      key ?: "-", value_json == DELETE ? "DELETE" : value_json ?: "-", expected, r, path ?: "-");
        if (expected == 0)
                ck_assert_ptr_null(path);
        else
                ck_assert_str_eq(path, expected_path);
}

START_TEST(test_validate_fields) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(validate_idl);

        check_patched(iface, NULL, NULL, 0, NULL);

        /* unknown / missing / null */
        check_patched(iface, "bogus", "1", VARLINK_VALIDATE_UNKNOWN_FIELD, "bogus");
        check_patched(iface, "i", DELETE, VARLINK_VALIDATE_MISSING_FIELD, "i");
        check_patched(iface, "mode", DELETE, VARLINK_VALIDATE_MISSING_FIELD, "mode");
        check_patched(iface, "i", "null", VARLINK_VALIDATE_MISSING_FIELD, "i");
        check_patched(iface, "opt", "null", 0, NULL);
        check_patched(iface, "opt", DELETE, 0, NULL);
        check_patched(iface, "opt", "2", 0, NULL);
        check_patched(iface, "opt", "\"2\"", VARLINK_VALIDATE_WRONG_TYPE, "opt");

        /* int: no doubles, no strings, no bools */
        check_patched(iface, "i", "-9223372036854775808", 0, NULL);
        check_patched(iface, "i", "9223372036854775807", 0, NULL);
        check_patched(iface, "i", "9223372036854775808", VARLINK_VALIDATE_WRONG_TYPE, "i");
        check_patched(iface, "i", "100000000000000000000", VARLINK_VALIDATE_WRONG_TYPE, "i");
        check_patched(iface, "i", "1.0", VARLINK_VALIDATE_WRONG_TYPE, "i");
        check_patched(iface, "i", "\"1\"", VARLINK_VALIDATE_WRONG_TYPE, "i");
        check_patched(iface, "i", "true", VARLINK_VALIDATE_WRONG_TYPE, "i");

        /* float: ints are fine */
        check_patched(iface, "f", "1", 0, NULL);
        check_patched(iface, "f", "1e300", 0, NULL);
        check_patched(iface, "f", "\"1.5\"", VARLINK_VALIDATE_WRONG_TYPE, "f");

        check_patched(iface, "s", "\"\"", 0, NULL);
        check_patched(iface, "s", "1", VARLINK_VALIDATE_WRONG_TYPE, "s");
        check_patched(iface, "s", "\"a\\u0000b\"", VARLINK_VALIDATE_NUL_IN_STRING, "s");

        check_patched(iface, "b", "false", 0, NULL);
        check_patched(iface, "b", "0", VARLINK_VALIDATE_WRONG_TYPE, "b");

        /* object: anything but null */
        check_patched(iface, "o", "1", 0, NULL);
        check_patched(iface, "o", "\"x\"", 0, NULL);
        check_patched(iface, "o", "{ \"any\": [null] }", 0, NULL);
        check_patched(iface, "o", "null", VARLINK_VALIDATE_MISSING_FIELD, "o");

        /* enums */
        check_patched(iface, "mode", "\"slow\"", 0, NULL);
        check_patched(iface, "mode", "\"medium\"", VARLINK_VALIDATE_BAD_ENUM, "mode");
        check_patched(iface, "mode", "\"Fast\"", VARLINK_VALIDATE_BAD_ENUM, "mode");
        check_patched(iface, "mode", "\"fast\\u0000\"", VARLINK_VALIDATE_BAD_ENUM, "mode");
        check_patched(iface, "mode", "1", VARLINK_VALIDATE_WRONG_TYPE, "mode");
        check_patched(iface, "anon", "{ \"k\": \"q\" }", 0, NULL);
        check_patched(iface, "anon", "{ \"k\": \"r\" }", VARLINK_VALIDATE_BAD_ENUM, "anon.k");
        check_patched(iface, "anon", "{}", VARLINK_VALIDATE_MISSING_FIELD, "anon.k");
}
END_TEST

START_TEST(test_validate_nested) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(validate_idl);

        /* structs */
        check_patched(iface, "inner", "{ \"x\": 1, \"tag\": null }", 0, NULL);
        check_patched(iface, "inner", "{ \"x\": 1, \"y\": 2 }", VARLINK_VALIDATE_UNKNOWN_FIELD, "inner.y");
        check_patched(iface, "inner", "{}", VARLINK_VALIDATE_MISSING_FIELD, "inner.x");
        check_patched(iface, "inner", "{ \"x\": \"1\" }", VARLINK_VALIDATE_WRONG_TYPE, "inner.x");
        check_patched(iface, "inner", "{ \"x\": 1, \"tag\": 5 }", VARLINK_VALIDATE_WRONG_TYPE, "inner.tag");
        check_patched(iface, "inner", "[]", VARLINK_VALIDATE_WRONG_TYPE, "inner");
        /* an unknown field wins over a missing one */
        check_patched(iface, "inner", "{ \"X\": 1 }", VARLINK_VALIDATE_UNKNOWN_FIELD, "inner.X");

        /* arrays */
        check_patched(iface, "list", "[]", 0, NULL);
        check_patched(iface, "list", "[1, 2, 3, \"4\"]", VARLINK_VALIDATE_WRONG_TYPE, "list[3]");
        check_patched(iface, "list", "[1, null]", VARLINK_VALIDATE_WRONG_TYPE, "list[1]");
        check_patched(iface, "list", "{}", VARLINK_VALIDATE_WRONG_TYPE, "list");
        check_patched(iface, "optlist", "[1, null, 3]", 0, NULL);
        check_patched(iface, "optlist", "[1, null, 1.5]", VARLINK_VALIDATE_WRONG_TYPE, "optlist[2]");

        /* maps */
        check_patched(iface, "map", "{}", 0, NULL);
        check_patched(iface, "map", "{ \"k\": { \"x\": 1 }, \"bad\": { \"x\": \"no\" } }",
                      VARLINK_VALIDATE_WRONG_TYPE, "map.bad.x");
        check_patched(iface, "map", "{ \"k\": null }", VARLINK_VALIDATE_WRONG_TYPE, "map.k");
        check_patched(iface, "map", "{ \"k\": { \"z\": 1 } }", VARLINK_VALIDATE_UNKNOWN_FIELD, "map.k.z");
        check_patched(iface, "map", "{ \"k\": {} }", VARLINK_VALIDATE_MISSING_FIELD, "map.k.x");
        check_patched(iface, "map", "[]", VARLINK_VALIDATE_WRONG_TYPE, "map");

        /* deep: [][string][]Inner */
        check_patched(iface, "deep", "[[]]", VARLINK_VALIDATE_WRONG_TYPE, "deep[0]");
        check_patched(iface, "deep", "[ {}, { \"a\": [ { \"x\": 1 }, { \"x\": 1, \"tag\": 5 } ] } ]",
                      VARLINK_VALIDATE_WRONG_TYPE, "deep[1].a[1].tag");
        check_patched(iface, "deep", "[ { \"a\": [], \"b\": [ {}, {} ] } ]",
                      VARLINK_VALIDATE_MISSING_FIELD, "deep[0].b[0].x");
        check_patched(iface, "deep", "[ { \"a\": [ { \"x\": 1, \"s\": \"\\u0000\" } ] } ]",
                      VARLINK_VALIDATE_UNKNOWN_FIELD, "deep[0].a[0].s");
}
END_TEST

/* Replies may carry a uint64 where the IDL says int (registers), as
 * sd-varlink allows; nothing else gets through with that flag. */
START_TEST(test_validate_uint64_replies) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(validate_idl);
        const VarlinkType *t = varlink_interface_find_method(iface, "V")->input;
        static const struct {
                const char *value;
                int expected;
        } cases[] = {
                { "18446744073709551615", 0 },
                { "9223372036854775808", 0 },
                { "-9223372036854775808", 0 },
                { "1.5", VARLINK_VALIDATE_WRONG_TYPE },
                { "\"1\"", VARLINK_VALIDATE_WRONG_TYPE },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_json_ struct json_object *obj = json_tokener_parse(validate_base);
                _cleanup_free_ char *path = NULL;

                ck_assert_int_eq(json_object_object_add(obj, "i", json_tokener_parse(cases[i].value)), 0);
                ck_assert_msg(varlink_validate(t, obj, VARLINK_VALIDATE_UINT64, &path) == cases[i].expected,
                              "i=%s", cases[i].value);
        }
}
END_TEST

static int validate_json(const VarlinkType *type, const char *json, char **ret_path) {
        _cleanup_json_ struct json_object *v = NULL;

        if (json) {
                v = json_tokener_parse(json);
                ck_assert_msg(v || streq(json, "null"), "bad test JSON: %s", json);
        }
        return varlink_validate(type, v, 0, ret_path);
}

START_TEST(test_validate_toplevel) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(validate_idl);
        const VarlinkType *empty = varlink_interface_find_method(iface, "Empty")->input;
        const VarlinkType *opt = varlink_interface_find_method(iface, "Opt")->input;
        const VarlinkType *v = varlink_interface_find_method(iface, "V")->input;
        char *path = NULL;

        /* absent or null parameters count as {} */
        ck_assert_int_eq(validate_json(empty, NULL, &path), 0);
        ck_assert_int_eq(validate_json(empty, "null", &path), 0);
        ck_assert_int_eq(validate_json(empty, "{}", &path), 0);
        ck_assert_int_eq(validate_json(opt, NULL, &path), 0);
        ck_assert_int_eq(validate_json(opt, "null", &path), 0);
        ck_assert_int_eq(validate_json(opt, "{ \"a\": null }", &path), 0);
        ck_assert_ptr_null(path);

        ck_assert_int_eq(validate_json(v, NULL, &path), VARLINK_VALIDATE_MISSING_FIELD);
        ck_assert_str_eq(path, "i");
        free(path);
        path = NULL;

        ck_assert_int_eq(validate_json(empty, "{ \"a\": 1 }", &path), VARLINK_VALIDATE_UNKNOWN_FIELD);
        ck_assert_str_eq(path, "a");
        free(path);
        path = NULL;

        /* a non-object has no field to blame */
        ck_assert_int_eq(validate_json(empty, "[]", &path), VARLINK_VALIDATE_WRONG_TYPE);
        ck_assert_str_eq(path, "");
        free(path);
        path = NULL;
        ck_assert_int_eq(validate_json(opt, "1", &path), VARLINK_VALIDATE_WRONG_TYPE);
        ck_assert_str_eq(path, "");
        free(path);
        path = NULL;

        /* ret_path is optional */
        ck_assert_int_eq(validate_json(opt, "{ \"a\": 1.5 }", NULL), VARLINK_VALIDATE_WRONG_TYPE);

        /* only structs can be validated against */
        ck_assert_int_eq(validate_json(varlink_interface_find_type(iface, "Mode")->type, "\"fast\"", &path), -EINVAL);
        ck_assert_int_eq(validate_json(NULL, "{}", &path), -EINVAL);
        ck_assert_ptr_null(path);
}
END_TEST

START_TEST(test_validate_recursive) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok(validate_idl);
        const VarlinkType *out = varlink_interface_find_method(iface, "Opt")->output;
        _cleanup_free_ char *path = NULL;

        ck_assert_int_eq(validate_json(out,
                "{ \"tree\": { \"name\": \"r\", \"kids\": [ { \"name\": \"a\" },"
                "  { \"name\": \"b\", \"kids\": [ { \"name\": \"c\", \"kids\": null } ] } ] } }", &path), 0);
        ck_assert_int_eq(validate_json(out,
                "{ \"tree\": { \"name\": \"r\", \"kids\": [ { \"name\": \"a\" },"
                "  { \"name\": \"b\", \"kids\": [ { \"kids\": [] } ] } ] } }", &path),
                VARLINK_VALIDATE_MISSING_FIELD);
        ck_assert_str_eq(path, "tree.kids[1].kids[0].name");
}
END_TEST

START_TEST(test_validate_nul_constructed) {
        _cleanup_iface_ VarlinkInterface *iface = parse_ok("interface a.b\nmethod M(s: string) -> ()\n");
        _cleanup_json_ struct json_object *obj = json_object_new_object();
        _cleanup_free_ char *path = NULL;

        ck_assert_ptr_nonnull(obj);
        json_object_object_add(obj, "s", json_object_new_string_len("ab\0c", 4));
        ck_assert_int_eq(varlink_validate(iface->methods[0].input, obj, 0, &path), VARLINK_VALIDATE_NUL_IN_STRING);
        ck_assert_str_eq(path, "s");

        json_object_object_add(obj, "s", json_object_new_string_len("abc", 3));
        ck_assert_int_eq(varlink_validate(iface->methods[0].input, obj, 0, NULL), 0);
}
END_TEST

START_TEST(test_validate_error_strings) {
        ck_assert_str_eq(varlink_validate_error_to_string(VARLINK_VALIDATE_UNKNOWN_FIELD), "unknown field");
        ck_assert_str_eq(varlink_validate_error_to_string(VARLINK_VALIDATE_MISSING_FIELD), "missing field");
        ck_assert_str_eq(varlink_validate_error_to_string(VARLINK_VALIDATE_WRONG_TYPE), "wrong type");
        ck_assert_str_eq(varlink_validate_error_to_string(VARLINK_VALIDATE_BAD_ENUM), "invalid enum value");
        ck_assert_str_eq(varlink_validate_error_to_string(VARLINK_VALIDATE_NUL_IN_STRING), "NUL character in string");
        ck_assert_str_eq(varlink_validate_error_to_string(VARLINK_VALIDATE_OK), "ok");
        ck_assert_ptr_null(varlink_validate_error_to_string((VarlinkValidateError) 1000));
}
END_TEST

static Suite *varlink_idl_suite(void) {
        Suite *s = suite_create("varlink-idl");
        TCase *tc;

        tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_service);
        tcase_add_test(tc, test_parse_kitchen_sink);
        tcase_add_test(tc, test_parse_docs);
        tcase_add_test(tc, test_parse_names);
        tcase_add_test(tc, test_parse_crlf_doc);
        tcase_add_test(tc, test_parse_ret_untouched);
        tcase_add_test(tc, test_parse_too_deep);
        tcase_add_loop_test(tc, test_parse_bad, 0, (int) ELEMENTSOF(bad_inputs));
        tcase_add_test(tc, test_parse_shipped_files);
        suite_add_tcase(s, tc);

        tc = tcase_create("lookup");
        tcase_add_test(tc, test_lookups);
        suite_add_tcase(s, tc);

        tc = tcase_create("validate");
        tcase_add_test(tc, test_validate_fields);
        tcase_add_test(tc, test_validate_uint64_replies);
        tcase_add_test(tc, test_validate_nested);
        tcase_add_test(tc, test_validate_toplevel);
        tcase_add_test(tc, test_validate_recursive);
        tcase_add_test(tc, test_validate_nul_constructed);
        tcase_add_test(tc, test_validate_error_strings);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(varlink_idl_suite());
        int failed;

        /* CK_ENV: honours CK_VERBOSITY; CK_FORK=no runs in-process (valgrind, gdb) */
        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
