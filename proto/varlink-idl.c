/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Varlink interface definition parser and JSON validator.
 *
 * The parser is a hand-written recursive descent over a small tokenizer
 * that tracks line/column (1-based, columns count bytes) so every error can
 * point at the offending token.  Named type references are resolved in a
 * second pass once all "type" members are known, so forward references work. */

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "varlink-idl.h"

/* Deep enough for any sane interface, shallow enough that a hostile input
 * (fuzzers, "((((((...") cannot exhaust the stack. */
#define TYPE_DEPTH_MAX 64U

/* ------------------------------------------------------------ helpers */

static bool is_alpha(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_alnum(char c) {
        return is_alpha(c) || is_digit(c);
}

_printf_(1, 0) static char *vformat(const char *fmt, va_list ap) {
        va_list aq;
        char *s;
        int n;

        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n < 0)
                return NULL;

        s = malloc((size_t) n + 1);
        if (!s)
                return NULL;
        (void) vsnprintf(s, (size_t) n + 1, fmt, ap);
        return s;
}

_printf_(1, 2) static char *format(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        s = vformat(fmt, ap);
        va_end(ap);
        return s;
}

/* Returns array grown by one zeroed element, or NULL (array untouched). The
 * interfaces are small, so growing one at a time costs nothing. */
static void *grow_array(void *array, size_t n, size_t size) {
        char *a;

        if (n >= SIZE_MAX / size - 1)
                return NULL;
        a = realloc(array, (n + 1) * size);
        if (!a)
                return NULL;
        memset(a + n * size, 0, size);
        return a;
}

/* ------------------------------------------------------------ names */

/* [A-Z][A-Za-z0-9]* */
static bool is_member_name(const char *s, size_t n) {
        if (n == 0 || !(s[0] >= 'A' && s[0] <= 'Z'))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(s[i]))
                        return false;
        return true;
}

/* [A-Za-z](_?[A-Za-z0-9])* */
static bool is_field_name(const char *s, size_t n) {
        if (n == 0 || !is_alpha(s[0]))
                return false;
        for (size_t i = 1; i < n; i++) {
                if (s[i] == '_') {
                        /* an underscore must be followed by an alphanumeric */
                        i++;
                        if (i >= n || !is_alnum(s[i]))
                                return false;
                } else if (!is_alnum(s[i]))
                        return false;
        }
        return true;
}

/* [A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+ */
static bool is_interface_name(const char *s, size_t n) {
        const char *end = s + n;
        size_t segments = 0;

        for (const char *seg = s;; segments++) {
                const char *dot = memchr(seg, '.', (size_t) (end - seg));
                const char *seg_end = dot ? dot : end;

                if (seg_end == seg)
                        return false;
                if (segments == 0 ? !is_alpha(seg[0]) : !is_alnum(seg[0]))
                        return false;
                if (!is_alnum(seg_end[-1]))
                        return false;
                for (const char *c = seg; c < seg_end; c++)
                        if (!is_alnum(*c) && *c != '-')
                                return false;

                if (!dot)
                        return segments + 1 >= 2;
                seg = dot + 1;
        }
}

/* ------------------------------------------------------------ freeing */

static VarlinkType *varlink_type_free(VarlinkType *t) {
        if (!t)
                return NULL;

        varlink_type_free(t->element);
        free(t->name);
        for (size_t i = 0; i < t->n_fields; i++) {
                free(t->fields[i].name);
                free(t->fields[i].doc);
                varlink_type_free(t->fields[i].type);
        }
        free(t->fields);
        free(t);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkType *, varlink_type_free);

VarlinkInterface *varlink_interface_free(VarlinkInterface *iface) {
        if (!iface)
                return NULL;

        for (size_t i = 0; i < iface->n_types; i++) {
                free(iface->types[i].name);
                free(iface->types[i].doc);
                varlink_type_free(iface->types[i].type);
        }
        for (size_t i = 0; i < iface->n_methods; i++) {
                free(iface->methods[i].name);
                free(iface->methods[i].doc);
                varlink_type_free(iface->methods[i].input);
                varlink_type_free(iface->methods[i].output);
        }
        for (size_t i = 0; i < iface->n_errors; i++) {
                free(iface->errors[i].name);
                free(iface->errors[i].doc);
                varlink_type_free(iface->errors[i].parameters);
        }
        free(iface->types);
        free(iface->methods);
        free(iface->errors);
        free(iface->name);
        free(iface->doc);
        free(iface->description);
        free(iface);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkInterface *, varlink_interface_free);

/* ------------------------------------------------------------ lookups */

const VarlinkMethod *varlink_interface_find_method(const VarlinkInterface *iface, const char *name) {
        if (!iface || !name)
                return NULL;
        for (size_t i = 0; i < iface->n_methods; i++)
                if (streq(iface->methods[i].name, name))
                        return &iface->methods[i];
        return NULL;
}

const VarlinkErrorDef *varlink_interface_find_error(const VarlinkInterface *iface, const char *name) {
        if (!iface || !name)
                return NULL;
        for (size_t i = 0; i < iface->n_errors; i++)
                if (streq(iface->errors[i].name, name))
                        return &iface->errors[i];
        return NULL;
}

const VarlinkTypeDef *varlink_interface_find_type(const VarlinkInterface *iface, const char *name) {
        if (!iface || !name)
                return NULL;
        for (size_t i = 0; i < iface->n_types; i++)
                if (streq(iface->types[i].name, name))
                        return &iface->types[i];
        return NULL;
}

/* ------------------------------------------------------------ tokenizer */

typedef enum TokenKind {
        TOKEN_EOF,
        TOKEN_WORD,
        TOKEN_LPAREN,
        TOKEN_RPAREN,
        TOKEN_LBRACKET,
        TOKEN_RBRACKET,
        TOKEN_COMMA,
        TOKEN_COLON,
        TOKEN_QUESTION,
        TOKEN_ARROW,
} TokenKind;

typedef struct Token {
        TokenKind kind;
        const char *start;       /* points into the source text */
        size_t len;
        unsigned line, col;
        char *doc;               /* comment block directly above, or NULL */
} Token;

/* A NAMED type waiting for resolution, with where it was written. */
typedef struct NamedRef {
        VarlinkType *type;
        unsigned line, col;
} NamedRef;

typedef struct Parser {
        const char *filename;
        const char *pos;
        unsigned line, col;
        bool line_has_code;      /* a token started on the current line */
        bool line_blank;         /* nothing but whitespace so far on this line */
        unsigned depth;
        Token tok;               /* one token of lookahead */
        char *error;
        NamedRef *refs;
        size_t n_refs;
} Parser;

static void parser_done(Parser *p) {
        free(p->tok.doc);
        free(p->error);
        free(p->refs);
}

_printf_(4, 0) static int parse_verror(Parser *p, unsigned line, unsigned col, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;

        msg = vformat(fmt, ap);
        if (!msg)
                return -ENOMEM;

        /* The first error is the interesting one. */
        if (!p->error) {
                p->error = format("%s:%u:%u: %s", p->filename, line, col, msg);
                if (!p->error)
                        return -ENOMEM;
        }
        return -EINVAL;
}

_printf_(4, 5) static int parse_error(Parser *p, unsigned line, unsigned col, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = parse_verror(p, line, col, fmt, ap);
        va_end(ap);
        return r;
}

/* Error at the current token; hitting the end of input trumps whatever was expected. */
_printf_(2, 3) static int tok_error(Parser *p, const char *fmt, ...) {
        va_list ap;
        int r;

        if (p->tok.kind == TOKEN_EOF)
                return parse_error(p, p->tok.line, p->tok.col, "unexpected end of input");

        va_start(ap, fmt);
        r = parse_verror(p, p->tok.line, p->tok.col, fmt, ap);
        va_end(ap);
        return r;
}

static void advance(Parser *p, size_t n) {
        for (size_t i = 0; i < n; i++, p->pos++) {
                if (*p->pos == '\n') {
                        p->line++;
                        p->col = 1;
                        p->line_has_code = false;
                        p->line_blank = true;
                } else
                        p->col++;
        }
}

static int doc_append(char **doc, const char *s, size_t n) {
        size_t old = *doc ? strlen(*doc) : 0;
        size_t sep = *doc ? 1 : 0;
        char *d;

        d = realloc(*doc, old + sep + n + 1);
        if (!d)
                return -ENOMEM;
        if (sep)
                d[old] = '\n';
        memcpy(d + old + sep, s, n);
        d[old + sep + n] = 0;
        *doc = d;
        return 0;
}

/* Skip whitespace and comments.  Comment lines of their own form the doc
 * block of the next token; a blank line in between detaches them (so a file
 * header does not become the interface's doc), and comments trailing code
 * on the same line are never doc. */
static int skip_space(Parser *p, char **ret_doc) {
        _cleanup_free_ char *doc = NULL;
        int r;

        for (;;) {
                char c = *p->pos;

                if (c == '\n') {
                        if (p->line_blank) {
                                free(doc);
                                doc = NULL;
                        }
                        advance(p, 1);
                } else if (c == ' ' || c == '\t' || c == '\r')
                        advance(p, 1);
                else if (c == '#') {
                        size_t n = strcspn(p->pos, "\n");

                        if (!p->line_has_code) {
                                const char *s = p->pos + 1, *e = p->pos + n;

                                if (s < e && *s == ' ')
                                        s++;
                                while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                                        e--;
                                r = doc_append(&doc, s, (size_t) (e - s));
                                if (r < 0)
                                        return r;
                        }
                        p->line_blank = false;
                        advance(p, n);
                } else
                        break;
        }

        *ret_doc = TAKE_PTR(doc);
        return 0;
}

static bool is_word_char(const char *s) {
        /* '-' belongs to interface names, but "->" is the arrow */
        return is_alnum(*s) || *s == '_' || *s == '.' || (*s == '-' && s[1] != '>');
}

static int lex(Parser *p) {
        Token *t = &p->tok;
        int r;

        free(t->doc);
        t->doc = NULL;

        r = skip_space(p, &t->doc);
        if (r < 0)
                return r;

        *t = (Token) {
                .kind = TOKEN_EOF,
                .start = p->pos,
                .line = p->line,
                .col = p->col,
                .doc = t->doc,
        };

        switch (*p->pos) {
        case 0:
                return 0;
        case '(': t->kind = TOKEN_LPAREN; t->len = 1; break;
        case ')': t->kind = TOKEN_RPAREN; t->len = 1; break;
        case '[': t->kind = TOKEN_LBRACKET; t->len = 1; break;
        case ']': t->kind = TOKEN_RBRACKET; t->len = 1; break;
        case ',': t->kind = TOKEN_COMMA; t->len = 1; break;
        case ':': t->kind = TOKEN_COLON; t->len = 1; break;
        case '?': t->kind = TOKEN_QUESTION; t->len = 1; break;
        case '-':
                if (p->pos[1] == '>') {
                        t->kind = TOKEN_ARROW;
                        t->len = 2;
                        break;
                }
                return parse_error(p, t->line, t->col, "unexpected character '-'");
        default:
                if (!is_alnum(*p->pos) && *p->pos != '_') {
                        unsigned char c = (unsigned char) *p->pos;

                        if (c >= 0x20 && c < 0x7f)
                                return parse_error(p, t->line, t->col, "unexpected character '%c'", c);
                        return parse_error(p, t->line, t->col, "unexpected byte 0x%02x", c);
                }
                t->kind = TOKEN_WORD;
                while (is_word_char(p->pos + t->len))
                        t->len++;
        }

        p->line_has_code = true;
        p->line_blank = false;
        advance(p, t->len);
        return 0;
}

static bool tok_is(const Parser *p, const char *word) {
        return p->tok.kind == TOKEN_WORD && strlen(word) == p->tok.len && strneq(p->tok.start, word, p->tok.len);
}

/* For "%.*s": long garbage tokens should not produce novels. */
#define TOK_FMT(len) ((int) MIN((len), (size_t) 64))

/* ------------------------------------------------------------ parser */

static int parse_type(Parser *p, VarlinkType **ret);

static bool has_field(const VarlinkType *t, const char *name, size_t len) {
        for (size_t i = 0; i < t->n_fields; i++)
                if (strlen(t->fields[i].name) == len && strneq(t->fields[i].name, name, len))
                        return true;
        return false;
}

/* Parse "( ... )" starting at '('.  An empty "()" and anything with
 * "name: type" is a struct; a plain list of names is an enum. */
static int parse_struct_or_enum(Parser *p, bool allow_enum, VarlinkType **ret) {
        _cleanup_(varlink_type_freep) VarlinkType *t = NULL;
        bool decided = false;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->kind = VARLINK_STRUCT;

        r = lex(p);
        if (r < 0)
                return r;

        while (p->tok.kind != TOKEN_RPAREN) {
                _cleanup_(varlink_type_freep) VarlinkType *ft = NULL;
                _cleanup_free_ char *doc = NULL, *name = NULL;
                const char *nstart = p->tok.start;
                size_t nlen = p->tok.len;
                unsigned nline = p->tok.line, ncol = p->tok.col;
                bool is_enum;
                VarlinkField *fields;

                if (p->tok.kind != TOKEN_WORD)
                        return tok_error(p, t->kind == VARLINK_ENUM ? "expected enum value" : "expected field name");
                doc = TAKE_PTR(p->tok.doc);

                r = lex(p);
                if (r < 0)
                        return r;

                if (!decided) {
                        if (allow_enum && p->tok.kind != TOKEN_COLON)
                                t->kind = VARLINK_ENUM;
                        decided = true;
                }
                is_enum = t->kind == VARLINK_ENUM;

                if (!is_field_name(nstart, nlen))
                        return parse_error(p, nline, ncol, "invalid %s '%.*s'",
                                           is_enum ? "enum value" : "field name", TOK_FMT(nlen), nstart);
                if (has_field(t, nstart, nlen))
                        return parse_error(p, nline, ncol, "duplicate %s '%.*s'",
                                           is_enum ? "enum value" : "field", TOK_FMT(nlen), nstart);

                if (!is_enum) {
                        if (p->tok.kind != TOKEN_COLON)
                                return tok_error(p, "expected ':' after field name '%.*s'", TOK_FMT(nlen), nstart);
                        r = lex(p);
                        if (r < 0)
                                return r;
                        r = parse_type(p, &ft);
                        if (r < 0)
                                return r;
                }

                name = strndup(nstart, nlen);
                if (!name)
                        return -ENOMEM;
                fields = grow_array(t->fields, t->n_fields, sizeof(*fields));
                if (!fields)
                        return -ENOMEM;
                t->fields = fields;
                fields[t->n_fields++] = (VarlinkField) {
                        .name = TAKE_PTR(name),
                        .doc = TAKE_PTR(doc),
                        .type = TAKE_PTR(ft),
                };

                if (p->tok.kind == TOKEN_COMMA) {
                        unsigned cline = p->tok.line, ccol = p->tok.col;

                        r = lex(p);
                        if (r < 0)
                                return r;
                        if (p->tok.kind == TOKEN_RPAREN)
                                return parse_error(p, cline, ccol, "trailing ',' is not allowed");
                } else if (p->tok.kind != TOKEN_RPAREN)
                        return tok_error(p, "expected ',' or ')' after %s", is_enum ? "enum value" : "field type");
        }

        r = lex(p);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(t);
        return 0;
}

static int parse_named_type(Parser *p, VarlinkType **ret) {
        static const struct {
                const char *name;
                VarlinkTypeKind kind;
        } builtins[] = {
                { "bool",   VARLINK_BOOL   },
                { "int",    VARLINK_INT    },
                { "float",  VARLINK_FLOAT  },
                { "string", VARLINK_STRING },
                { "object", VARLINK_OBJECT },
        };
        _cleanup_(varlink_type_freep) VarlinkType *t = NULL;
        NamedRef *refs;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;

        for (size_t i = 0; i < ELEMENTSOF(builtins); i++)
                if (tok_is(p, builtins[i].name)) {
                        t->kind = builtins[i].kind;
                        r = lex(p);
                        if (r < 0)
                                return r;
                        *ret = TAKE_PTR(t);
                        return 0;
                }

        if (!is_member_name(p->tok.start, p->tok.len))
                return tok_error(p, "unknown type '%.*s'", TOK_FMT(p->tok.len), p->tok.start);

        t->kind = VARLINK_NAMED;
        t->name = strndup(p->tok.start, p->tok.len);
        if (!t->name)
                return -ENOMEM;

        refs = grow_array(p->refs, p->n_refs, sizeof(*refs));
        if (!refs)
                return -ENOMEM;
        p->refs = refs;
        refs[p->n_refs++] = (NamedRef) { .type = t, .line = p->tok.line, .col = p->tok.col };

        r = lex(p);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(t);
        return 0;
}

static int parse_type_inner(Parser *p, VarlinkType **ret) {
        _cleanup_(varlink_type_freep) VarlinkType *t = NULL;
        bool optional = false;
        int r;

        if (p->tok.kind == TOKEN_QUESTION) {
                r = lex(p);
                if (r < 0)
                        return r;
                if (p->tok.kind == TOKEN_QUESTION)
                        return tok_error(p, "'?\?' is not allowed");
                optional = true;
        }

        switch (p->tok.kind) {

        case TOKEN_LPAREN:
                r = parse_struct_or_enum(p, true, &t);
                break;

        case TOKEN_LBRACKET: {
                VarlinkTypeKind kind;

                r = lex(p);
                if (r < 0)
                        return r;
                if (p->tok.kind == TOKEN_RBRACKET)
                        kind = VARLINK_ARRAY;
                else if (tok_is(p, "string")) {
                        r = lex(p);
                        if (r < 0)
                                return r;
                        if (p->tok.kind != TOKEN_RBRACKET)
                                return tok_error(p, "expected ']' after '[string'");
                        kind = VARLINK_MAP;
                } else
                        return tok_error(p, "expected ']' or 'string' after '['");

                r = lex(p);
                if (r < 0)
                        return r;

                t = calloc(1, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                t->kind = kind;
                r = parse_type(p, &t->element);
                break;
        }

        case TOKEN_WORD:
                r = parse_named_type(p, &t);
                break;

        default:
                return tok_error(p, "expected type");
        }
        if (r < 0)
                return r;

        t->optional = optional;
        *ret = TAKE_PTR(t);
        return 0;
}

static int parse_type(Parser *p, VarlinkType **ret) {
        int r;

        if (p->depth >= TYPE_DEPTH_MAX)
                return tok_error(p, "type nested too deeply");

        p->depth++;
        r = parse_type_inner(p, ret);
        p->depth--;
        return r;
}

static bool has_member(const VarlinkInterface *iface, const char *name) {
        return varlink_interface_find_type(iface, name) ||
                varlink_interface_find_method(iface, name) ||
                varlink_interface_find_error(iface, name);
}

static int expect_lparen(Parser *p, const char *after) {
        if (p->tok.kind != TOKEN_LPAREN)
                return tok_error(p, "expected '(' after %s", after);
        return 0;
}

static int parse_member(Parser *p, VarlinkInterface *iface) {
        _cleanup_(varlink_type_freep) VarlinkType *a = NULL, *b = NULL;
        _cleanup_free_ char *doc = NULL, *name = NULL;
        const char *what;
        int r;

        if (tok_is(p, "type"))
                what = "type";
        else if (tok_is(p, "method"))
                what = "method";
        else if (tok_is(p, "error"))
                what = "error";
        else
                return tok_error(p, "expected 'type', 'method' or 'error'");

        doc = TAKE_PTR(p->tok.doc);
        r = lex(p);
        if (r < 0)
                return r;

        if (p->tok.kind != TOKEN_WORD)
                return tok_error(p, "expected %s name", what);
        if (!is_member_name(p->tok.start, p->tok.len))
                return tok_error(p, "invalid %s name '%.*s'", what, TOK_FMT(p->tok.len), p->tok.start);
        name = strndup(p->tok.start, p->tok.len);
        if (!name)
                return -ENOMEM;
        if (has_member(iface, name))
                return tok_error(p, "duplicate member '%s'", name);

        r = lex(p);
        if (r < 0)
                return r;

        if (streq(what, "type")) {
                VarlinkTypeDef *types;

                r = expect_lparen(p, "type name");
                if (r < 0)
                        return r;
                r = parse_struct_or_enum(p, true, &a);
                if (r < 0)
                        return r;

                types = grow_array(iface->types, iface->n_types, sizeof(*types));
                if (!types)
                        return -ENOMEM;
                iface->types = types;
                types[iface->n_types++] = (VarlinkTypeDef) {
                        .name = TAKE_PTR(name),
                        .doc = TAKE_PTR(doc),
                        .type = TAKE_PTR(a),
                };

        } else if (streq(what, "method")) {
                VarlinkMethod *methods;

                r = expect_lparen(p, "method name");
                if (r < 0)
                        return r;
                r = parse_struct_or_enum(p, false, &a);
                if (r < 0)
                        return r;
                if (p->tok.kind != TOKEN_ARROW)
                        return tok_error(p, "expected '->' after method input");
                r = lex(p);
                if (r < 0)
                        return r;
                r = expect_lparen(p, "'->'");
                if (r < 0)
                        return r;
                r = parse_struct_or_enum(p, false, &b);
                if (r < 0)
                        return r;

                methods = grow_array(iface->methods, iface->n_methods, sizeof(*methods));
                if (!methods)
                        return -ENOMEM;
                iface->methods = methods;
                methods[iface->n_methods++] = (VarlinkMethod) {
                        .name = TAKE_PTR(name),
                        .doc = TAKE_PTR(doc),
                        .input = TAKE_PTR(a),
                        .output = TAKE_PTR(b),
                };

        } else {
                VarlinkErrorDef *errors;

                r = expect_lparen(p, "error name");
                if (r < 0)
                        return r;
                r = parse_struct_or_enum(p, false, &a);
                if (r < 0)
                        return r;

                errors = grow_array(iface->errors, iface->n_errors, sizeof(*errors));
                if (!errors)
                        return -ENOMEM;
                iface->errors = errors;
                errors[iface->n_errors++] = (VarlinkErrorDef) {
                        .name = TAKE_PTR(name),
                        .doc = TAKE_PTR(doc),
                        .parameters = TAKE_PTR(a),
                };
        }

        return 0;
}

static int parse_interface(Parser *p, const char *text, VarlinkInterface **ret) {
        _cleanup_(varlink_interface_freep) VarlinkInterface *iface = NULL;
        unsigned name_line, name_col;
        int r;

        iface = calloc(1, sizeof(*iface));
        if (!iface)
                return -ENOMEM;
        iface->description = strdup(text);
        if (!iface->description)
                return -ENOMEM;

        r = lex(p);
        if (r < 0)
                return r;
        if (!tok_is(p, "interface"))
                return tok_error(p, "expected 'interface'");
        iface->doc = TAKE_PTR(p->tok.doc);

        r = lex(p);
        if (r < 0)
                return r;
        if (p->tok.kind != TOKEN_WORD)
                return tok_error(p, "expected interface name");
        if (!is_interface_name(p->tok.start, p->tok.len))
                return tok_error(p, "invalid interface name '%.*s'", TOK_FMT(p->tok.len), p->tok.start);
        iface->name = strndup(p->tok.start, p->tok.len);
        if (!iface->name)
                return -ENOMEM;
        name_line = p->tok.line;
        name_col = p->tok.col;

        r = lex(p);
        if (r < 0)
                return r;

        while (p->tok.kind != TOKEN_EOF) {
                r = parse_member(p, iface);
                if (r < 0)
                        return r;
        }

        if (iface->n_types + iface->n_methods + iface->n_errors == 0)
                return parse_error(p, name_line, name_col, "interface '%s' has no members", iface->name);

        /* Second pass: every type is known now, so forward references resolve. */
        for (size_t i = 0; i < p->n_refs; i++) {
                const VarlinkTypeDef *def = varlink_interface_find_type(iface, p->refs[i].type->name);

                if (!def)
                        return parse_error(p, p->refs[i].line, p->refs[i].col,
                                           "unknown type '%s'", p->refs[i].type->name);
                p->refs[i].type->resolved = def->type;
        }

        *ret = TAKE_PTR(iface);
        return 0;
}

int varlink_idl_parse(const char *text, const char *filename, VarlinkInterface **ret, char **ret_error) {
        _cleanup_(parser_done) Parser p = {
                .filename = filename ?: "<string>",
                .pos = text,
                .line = 1,
                .col = 1,
                .line_blank = true,
        };
        int r;

        if (!text || !ret)
                return -EINVAL;

        r = parse_interface(&p, text, ret);
        if (r == -EINVAL && ret_error)
                *ret_error = TAKE_PTR(p.error);
        return r;
}

/* ------------------------------------------------------------ validator */

/* The path of the value being checked, e.g. "filter.vcpus[3]".  Segments are
 * appended on the way down and truncated on the way back up, so on failure
 * the buffer holds exactly the offending path. */
typedef struct Path {
        char *buf;
        size_t len, cap;
} Path;

static void path_done(Path *p) {
        free(p->buf);
}

_printf_(2, 3) static int path_push(Path *p, const char *fmt, ...) {
        for (;;) {
                size_t avail = p->cap - p->len;
                va_list ap;
                char *b;
                size_t cap;
                int n;

                va_start(ap, fmt);
                n = vsnprintf(p->buf ? p->buf + p->len : NULL, avail, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return -ENOMEM;
                if ((size_t) n < avail) {
                        p->len += (size_t) n;
                        return 0;
                }

                cap = MAX(p->cap * 2, p->len + (size_t) n + 1);
                b = realloc(p->buf, cap);
                if (!b)
                        return -ENOMEM;
                p->buf = b;
                p->cap = cap;
        }
}

static int path_push_name(Path *p, const char *name) {
        return path_push(p, p->len > 0 ? ".%s" : "%s", name);
}

static void path_truncate(Path *p, size_t len) {
        p->len = len;
        if (p->buf)
                p->buf[len] = 0;
}

static const VarlinkField *find_field(const VarlinkType *t, const char *name) {
        for (size_t i = 0; i < t->n_fields; i++)
                if (streq(t->fields[i].name, name))
                        return &t->fields[i];
        return NULL;
}

static int validate_value(const VarlinkType *type, struct json_object *v, unsigned flags, Path *path);

/* v == NULL counts as {} (absent or null parameters). */
static int validate_struct(const VarlinkType *type, struct json_object *v, unsigned flags, Path *path) {
        size_t saved = path->len;
        int r;

        /* Unknown fields first, so a misspelled field is reported as such
         * rather than as the required field it was meant to be. */
        if (v) {
                json_object_object_foreach(v, key, val) {
                        (void) val;
                        if (!find_field(type, key)) {
                                r = path_push_name(path, key);
                                return r < 0 ? r : VARLINK_VALIDATE_UNKNOWN_FIELD;
                        }
                }
        }

        for (size_t i = 0; i < type->n_fields; i++) {
                const VarlinkField *f = &type->fields[i];
                struct json_object *fv = NULL;

                if (v)
                        (void) json_object_object_get_ex(v, f->name, &fv);

                r = path_push_name(path, f->name);
                if (r < 0)
                        return r;

                /* As in varlink generally, null and absent are the same thing. */
                if (!fv) {
                        if (!f->type->optional)
                                return VARLINK_VALIDATE_MISSING_FIELD;
                } else {
                        r = validate_value(f->type, fv, flags, path);
                        if (r != 0)
                                return r;
                }
                path_truncate(path, saved);
        }

        return 0;
}

static int validate_value(const VarlinkType *type, struct json_object *v, unsigned flags, Path *path) {
        size_t saved = path->len;
        int r;

        if (!v)
                return type->optional ? 0 : VARLINK_VALIDATE_WRONG_TYPE;

        if (type->kind == VARLINK_NAMED) {
                if (!type->resolved)
                        return -EINVAL;
                type = type->resolved;
        }

        switch (type->kind) {

        case VARLINK_BOOL:
                return json_object_is_type(v, json_type_boolean) ? 0 : VARLINK_VALIDATE_WRONG_TYPE;

        case VARLINK_INT:
                /* A call's int must fit the int64 its handler reads:
                 * json-c keeps what is above as a uint64 (clamping anything
                 * larger still), which would reach it as INT64_MAX. */
                if (!json_object_is_type(v, json_type_int) ||
                    (!(flags & VARLINK_VALIDATE_UINT64) && json_object_get_uint64(v) > INT64_MAX))
                        return VARLINK_VALIDATE_WRONG_TYPE;
                return 0;

        case VARLINK_FLOAT:
                return json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int) ?
                        0 : VARLINK_VALIDATE_WRONG_TYPE;

        case VARLINK_STRING:
                if (!json_object_is_type(v, json_type_string))
                        return VARLINK_VALIDATE_WRONG_TYPE;
                if ((size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)))
                        return VARLINK_VALIDATE_NUL_IN_STRING;
                return 0;

        case VARLINK_OBJECT:
                return 0;

        case VARLINK_ENUM: {
                const char *s;
                size_t len;

                if (!json_object_is_type(v, json_type_string))
                        return VARLINK_VALIDATE_WRONG_TYPE;
                s = json_object_get_string(v);
                len = (size_t) json_object_get_string_len(v);
                for (size_t i = 0; i < type->n_fields; i++)
                        if (strlen(type->fields[i].name) == len && memcmp(type->fields[i].name, s, len) == 0)
                                return 0;
                return VARLINK_VALIDATE_BAD_ENUM;
        }

        case VARLINK_STRUCT:
                if (!json_object_is_type(v, json_type_object))
                        return VARLINK_VALIDATE_WRONG_TYPE;
                return validate_struct(type, v, flags, path);

        case VARLINK_ARRAY: {
                size_t n;

                if (!json_object_is_type(v, json_type_array))
                        return VARLINK_VALIDATE_WRONG_TYPE;
                n = json_object_array_length(v);
                for (size_t i = 0; i < n; i++) {
                        r = path_push(path, "[%zu]", i);
                        if (r < 0)
                                return r;
                        r = validate_value(type->element, json_object_array_get_idx(v, i), flags, path);
                        if (r != 0)
                                return r;
                        path_truncate(path, saved);
                }
                return 0;
        }

        case VARLINK_MAP: {
                if (!json_object_is_type(v, json_type_object))
                        return VARLINK_VALIDATE_WRONG_TYPE;
                json_object_object_foreach(v, key, val) {
                        r = path_push_name(path, key);
                        if (r < 0)
                                return r;
                        r = validate_value(type->element, val, flags, path);
                        if (r != 0)
                                return r;
                        path_truncate(path, saved);
                }
                return 0;
        }

        case VARLINK_NAMED:
                /* resolved types are always STRUCT or ENUM */
                break;
        }

        return -EINVAL;
}

int varlink_validate(const VarlinkType *type, struct json_object *value, unsigned flags, char **ret_path) {
        _cleanup_(path_done) Path path = {};
        int r;

        if (!type || type->kind != VARLINK_STRUCT)
                return -EINVAL;

        if (value && !json_object_is_type(value, json_type_object))
                r = VARLINK_VALIDATE_WRONG_TYPE;
        else
                r = validate_struct(type, value, flags, &path);
        if (r <= 0)
                return r;

        if (ret_path) {
                char *s = path.buf ? TAKE_PTR(path.buf) : strdup("");

                if (!s)
                        return -ENOMEM;
                *ret_path = s;
        }
        return r;
}

const char *varlink_validate_error_to_string(VarlinkValidateError e) {
        switch (e) {
        case VARLINK_VALIDATE_OK:
                return "ok";
        case VARLINK_VALIDATE_UNKNOWN_FIELD:
                return "unknown field";
        case VARLINK_VALIDATE_MISSING_FIELD:
                return "missing field";
        case VARLINK_VALIDATE_WRONG_TYPE:
                return "wrong type";
        case VARLINK_VALIDATE_BAD_ENUM:
                return "invalid enum value";
        case VARLINK_VALIDATE_NUL_IN_STRING:
                return "NUL character in string";
        }
        return NULL;
}
