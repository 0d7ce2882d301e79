/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The varlink interface definition language: parser, lookup, and the
 * validator every incoming call (and, in tests, every reply) goes through.
 * Grammar: https://varlink.org/Interface-Definition */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

typedef enum VarlinkTypeKind {
        VARLINK_BOOL,
        VARLINK_INT,
        VARLINK_FLOAT,
        VARLINK_STRING,
        VARLINK_OBJECT,        /* "object": any JSON value, unchecked */
        VARLINK_ENUM,          /* ( a, b, c ) */
        VARLINK_STRUCT,        /* ( name: type, ... ) */
        VARLINK_ARRAY,         /* []type */
        VARLINK_MAP,           /* [string]type */
        VARLINK_NAMED,         /* reference to a "type Name ..." */
} VarlinkTypeKind;

typedef struct VarlinkType VarlinkType;
typedef struct VarlinkField VarlinkField;

struct VarlinkField {
        char *name;
        char *doc;               /* doc comment lines joined with '\n', or NULL */
        VarlinkType *type;
};

struct VarlinkType {
        VarlinkTypeKind kind;
        bool optional;           /* ?type: null or absent allowed */
        VarlinkType *element;    /* ARRAY, MAP */
        char *name;              /* NAMED: the referenced type's name */
        const VarlinkType *resolved; /* NAMED: filled after parsing */
        size_t n_fields;         /* STRUCT: fields; ENUM: names in fields[i].name, type NULL */
        VarlinkField *fields;
};

typedef struct VarlinkTypeDef {
        char *name;
        char *doc;
        VarlinkType *type;       /* STRUCT or ENUM */
} VarlinkTypeDef;

typedef struct VarlinkMethod {
        char *name;
        char *doc;
        VarlinkType *input;      /* STRUCT */
        VarlinkType *output;     /* STRUCT */
} VarlinkMethod;

typedef struct VarlinkErrorDef {
        char *name;
        char *doc;
        VarlinkType *parameters; /* STRUCT */
} VarlinkErrorDef;

typedef struct VarlinkInterface {
        char *name;              /* "io.kvmid.Admin" */
        char *doc;
        char *description;       /* the source text, verbatim, for GetInterfaceDescription */
        size_t n_types, n_methods, n_errors;
        VarlinkTypeDef *types;
        VarlinkMethod *methods;
        VarlinkErrorDef *errors;
} VarlinkInterface;

/* Parse a complete interface description.  filename is only used in error
 * messages.  On error returns -EINVAL and, if ret_error is non-NULL, sets it
 * to a malloc'd "file:line:col: message" (1-based line and column).
 * Unresolvable type references, duplicate member names, and names not
 * matching the grammar are errors too. */
int varlink_idl_parse(const char *text, const char *filename, VarlinkInterface **ret, char **ret_error);
VarlinkInterface *varlink_interface_free(VarlinkInterface *iface);

const VarlinkMethod *varlink_interface_find_method(const VarlinkInterface *iface, const char *name);
const VarlinkErrorDef *varlink_interface_find_error(const VarlinkInterface *iface, const char *name);
const VarlinkTypeDef *varlink_interface_find_type(const VarlinkInterface *iface, const char *name);

typedef enum VarlinkValidateError {
        VARLINK_VALIDATE_OK = 0,
        VARLINK_VALIDATE_UNKNOWN_FIELD,
        VARLINK_VALIDATE_MISSING_FIELD,
        VARLINK_VALIDATE_WRONG_TYPE,
        VARLINK_VALIDATE_BAD_ENUM,
        VARLINK_VALIDATE_NUL_IN_STRING,
} VarlinkValidateError;

enum {
        /* An int may also be a uint64 above INT64_MAX, as sd-varlink
         * allows: for replies, whose registers are 64-bit unsigned.
         * Without it (calls), an int is an int64. */
        VARLINK_VALIDATE_UINT64 = 1U << 0,
};

/* Check value against a STRUCT type (method input/output, error params).
 * NULL value counts as {}.  Integers are accepted for float.  Strings may
 * not contain NUL.  Returns 0, or a positive VarlinkValidateError and sets
 * *ret_path (malloc'd) to the offending field path, e.g. "filter.vcpus[3]"
 * or "map[\"key\"]" style "map.key"; for a missing field, the path of the
 * field that is missing. -ENOMEM on allocation failure. */
int varlink_validate(const VarlinkType *type, struct json_object *value, unsigned flags, char **ret_path);

const char *varlink_validate_error_to_string(VarlinkValidateError e);
