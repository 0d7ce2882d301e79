/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Policy loader and parser.
 *
 * The language is line oriented: each line is split into words at blanks
 * (double quotes group blanks into a word), "#" at the start of a word
 * begins a comment.  The first word is the keyword (allow, deny, default),
 * the others are KEY=VALUE.  kvmid.policy(5) is the reference.
 *
 * Every error names FILE:LINE:COL of the offending byte (1-based, columns
 * count bytes) and parsing stops at the first one: an operator fixes one
 * thing at a time, and a reload either takes the whole policy or nothing. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy-internal.h"

/* ------------------------------------------------------------ parser state */

typedef struct Word {
        size_t off, len;                 /* unquoted content in Parser.buf, NUL-terminated */
        unsigned col;                    /* column of the word's first byte */
        unsigned end_col;                /* column just past its last byte */
} Word;

typedef struct Parser {
        Policy *policy;                  /* being built */
        size_t rules_cap;
        bool have_default;
        PolicyIndexTable seen;           /* (introspector, target) → first rule per perm */

        const char *file;                /* current file, owned by policy->files */
        unsigned line;

        /* Per line: the content of every word, with the column of every
         * content byte (quotes and escapes make them differ). */
        char *buf;
        unsigned *cols;
        size_t buf_len;
        Word *words;
        size_t n_words;

        char *error;
} Parser;

/* Each word adds at most its raw length plus a NUL, and there are at most
 * POLICY_LINE_MAX / 2 + 1 words. */
#define BUF_SIZE (2U * POLICY_LINE_MAX + 2U)
#define WORDS_MAX (POLICY_LINE_MAX / 2U + 1U)

static int parser_init(Parser *p) {
        *p = (Parser) {};
        p->policy = policy_new();
        p->buf = malloc(BUF_SIZE);
        p->cols = malloc(BUF_SIZE * sizeof(unsigned));
        p->words = malloc(WORDS_MAX * sizeof(Word));
        if (!p->policy || !p->buf || !p->cols || !p->words)
                return -ENOMEM;
        return 0;
}

static void parser_done(Parser *p) {
        policy_free(p->policy);
        policy_index_done(&p->seen);
        free(p->buf);
        free(p->cols);
        free(p->words);
        free(p->error);
}

static const char *word_str(const Parser *p, const Word *w) {
        return p->buf + w->off;
}

/* Column of byte off of a word's content; the end of the word past it. */
static unsigned word_col(const Parser *p, const Word *w, size_t off) {
        return off < w->len ? p->cols[w->off + off] : w->end_col;
}

/* ------------------------------------------------------------ errors */

_printf_(1, 0) static char *vformat(const char *fmt, va_list ap) {
        char *s;

        if (vasprintf(&s, fmt, ap) < 0)
                return NULL;
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

/* Records the first error; returns r (or -ENOMEM). */
_printf_(4, 5) static int parser_error(Parser *p, int r, unsigned col, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = vformat(fmt, ap);
        va_end(ap);
        if (!msg)
                return -ENOMEM;
        if (!p->error) {
                p->error = format("%s:%u:%u: %s", p->file, p->line, col, msg);
                if (!p->error)
                        return -ENOMEM;
        }
        return r;
}

/* Errors about a whole file, without a position. */
_printf_(4, 5) static int file_error(char **error, int r, const char *path, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        msg = vformat(fmt, ap);
        va_end(ap);
        if (!msg)
                return -ENOMEM;
        if (!*error) {
                *error = format("%s: %s", path, msg);
                if (!*error)
                        return -ENOMEM;
        }
        return r;
}

/* A peer-or-operator string for a message: quoted, escaped, at most 64
 * bytes of it.  out must hold QUOTE_SIZE. */
#define QUOTE_MAX 64U
#define QUOTE_SIZE (QUOTE_MAX * 4U + 8U)

static const char *quote(char out[static QUOTE_SIZE], const char *s, size_t n) {
        size_t o = 0;

        out[o++] = '"';
        for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '"' || c == '\\') {
                        out[o++] = '\\';
                        out[o++] = (char) c;
                } else if (c < 0x20 || c >= 0x7f)  /* a non-ASCII look-alike must show */
                        o += (size_t) snprintf(out + o, 5, "\\x%02x", c);
                else
                        out[o++] = (char) c;
        }
        out[o++] = '"';
        if (n > QUOTE_MAX) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = 0;
        return out;
}

/* ------------------------------------------------------------ lexer */

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* Characters an editor shows as a blank, or not at all, that are bytes of
 * a word here: a name with one never matches what it seems to say. */
static const struct {
        uint32_t code;
        const char *name;
} odd_spaces[] = {
        { 0x00a0, "non-breaking space" },
        { 0x2000, "en quad" },
        { 0x2001, "em quad" },
        { 0x2002, "en space" },
        { 0x2003, "em space" },
        { 0x2004, "three-per-em space" },
        { 0x2005, "four-per-em space" },
        { 0x2006, "six-per-em space" },
        { 0x2007, "figure space" },
        { 0x2008, "punctuation space" },
        { 0x2009, "thin space" },
        { 0x200a, "hair space" },
        { 0x200b, "zero-width space" },
        { 0x202f, "narrow no-break space" },
        { 0x3000, "ideographic space" },
        { 0xfeff, "zero-width no-break space" },
};

/* The odd space a UTF-8 sequence at s encodes, or -1. */
static int odd_space(const char *s, size_t n) {
        const unsigned char *u = (const unsigned char *) s;
        uint32_t code;

        if (n >= 2 && (u[0] & 0xe0) == 0xc0 && (u[1] & 0xc0) == 0x80)
                code = (uint32_t) (u[0] & 0x1f) << 6 | (u[1] & 0x3f);
        else if (n >= 3 && (u[0] & 0xf0) == 0xe0 && (u[1] & 0xc0) == 0x80 && (u[2] & 0xc0) == 0x80)
                code = (uint32_t) (u[0] & 0x0f) << 12 | (uint32_t) (u[1] & 0x3f) << 6 | (u[2] & 0x3f);
        else
                return -1;
        for (size_t i = 0; i < ELEMENTSOF(odd_spaces); i++)
                if (odd_spaces[i].code == code)
                        return (int) i;
        return -1;
}

static int odd_space_error(Parser *p, unsigned col, int k) {
        uint32_t code = odd_spaces[k].code;

        if (code == 0xfeff && p->line == 1 && col == 1)
                return parser_error(p, -EINVAL, 1, "byte order mark U+FEFF at the start of the file; "
                                    "save it as UTF-8 without a BOM");
        return parser_error(p, -EINVAL, col, "%s U+%04" PRIX32 "; %s", odd_spaces[k].name, code,
                            code == 0x200b || code == 0xfeff ? "remove it" : "use an ASCII space");
}

/* An odd space that ends with the word's last content byte.  Checked on the
 * content rather than the line, so that quotes cannot split one into
 * bytes that pass one by one: a"\xe2""\x80\x8b" is a, U+200B. */
static int check_odd_space(Parser *p, const Word *w) {
        size_t have = p->buf_len - w->off;

        for (size_t n = 2; n <= 3 && n <= have; n++) {
                size_t at = p->buf_len - n;
                int k = odd_space(p->buf + at, n);

                if (k >= 0)
                        return odd_space_error(p, p->cols[at], k);
        }
        return 0;
}

static int lex_line(Parser *p, const char *line, size_t len) {
        size_t i = 0;

        p->buf_len = 0;
        p->n_words = 0;

        for (;;) {
                Word *w;
                bool in_quote = false;
                unsigned quote_col = 0;

                while (i < len && is_blank(line[i]))
                        i++;
                if (i >= len || line[i] == '#')
                        return 0;

                w = &p->words[p->n_words++];
                *w = (Word) { .off = p->buf_len, .col = (unsigned) i + 1 };

                while (i < len && (in_quote || !is_blank(line[i]))) {
                        unsigned char c = (unsigned char) line[i];

                        if (c == '"') {
                                in_quote = !in_quote;
                                quote_col = (unsigned) i + 1;
                                i++;
                                continue;
                        }
                        if (c == 0)
                                return parser_error(p, -EINVAL, (unsigned) i + 1, "NUL byte");
                        if (c == '\r')
                                return parser_error(p, -EINVAL, (unsigned) i + 1, "carriage return inside a line "
                                                    "(a CR is only allowed right before the newline)");
                        /* a tab only gets here inside quotes, where it is a blank like a space */
                        if ((c < 0x20 && c != '\t') || c == 0x7f)
                                return parser_error(p, -EINVAL, (unsigned) i + 1, "control character 0x%02x", c);
                        if (in_quote && c == '\\' && i + 1 < len && (line[i + 1] == '"' || line[i + 1] == '\\'))
                                i++;
                        p->cols[p->buf_len] = (unsigned) i + 1;
                        p->buf[p->buf_len++] = line[i++];
                        if (c >= 0x80) {
                                int r = check_odd_space(p, w);

                                if (r < 0)
                                        return r;
                        }
                }
                if (in_quote)
                        return parser_error(p, -EINVAL, quote_col, "unterminated quote");

                w->len = p->buf_len - w->off;
                w->end_col = (unsigned) i + 1;
                p->cols[p->buf_len] = w->end_col;
                p->buf[p->buf_len++] = 0;
        }
}

/* ------------------------------------------------------------ values */

typedef enum Key {
        KEY_INTROSPECTOR,
        KEY_TARGET,
        KEY_PERM,
        KEY_MAX_MAPPINGS,
        KEY_GPA,
        KEY_RATE,
        _KEY_MAX,
} Key;

static const char *const key_names[_KEY_MAX] = {
        [KEY_INTROSPECTOR] = "introspector",
        [KEY_TARGET] = "target",
        [KEY_PERM] = "perm",
        [KEY_MAX_MAPPINGS] = "max-mappings",
        [KEY_GPA] = "gpa",
        [KEY_RATE] = "rate",
};

/* A value: a slice of a word's content. */
typedef struct Value {
        const Word *word;
        size_t off, len;                 /* within the word's content */
} Value;

static const char *value_str(const Parser *p, const Value *v) {
        return word_str(p, v->word) + v->off;
}

static unsigned value_col(const Parser *p, const Value *v, size_t at) {
        return word_col(p, v->word, v->off + at);
}

static bool value_is(const Parser *p, const Value *v, const char *s) {
        return v->len == strlen(s) && strneq(value_str(p, v), s, v->len);
}

/* Split v at the first c; false if there is none. */
static bool value_split(const Parser *p, const Value *v, char c, Value *ret_head, Value *ret_tail) {
        const char *s = value_str(p, v), *at = memchr(s, c, v->len);

        if (!at)
                return false;
        *ret_head = (Value) { v->word, v->off, (size_t) (at - s) };
        *ret_tail = (Value) { v->word, v->off + (size_t) (at - s) + 1, v->len - (size_t) (at - s) - 1 };
        return true;
}

/* The classes POSIX defines in every locale; fnmatch(3) matches nothing
 * for any other name. */
static const char *const char_classes[] = {
        "alnum", "alpha", "blank", "cntrl", "digit", "graph",
        "lower", "print", "punct", "space", "upper", "xdigit",
};

static bool is_char_class(const char *s, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(char_classes); i++)
                if (strlen(char_classes[i]) == n && strneq(char_classes[i], s, n))
                        return true;
        return false;
}

/* One element of a bracket expression at s[j] (not its closing ']'), as
 * glibc's fnmatch(3) reads it with flags 0 in the C locale: "[:class:]",
 * "[=c=]" and "[.c.]" are single elements (a ']' inside them does not end
 * the bracket), '\' takes the next byte literally.  *ret_byte is the byte
 * an element that can start or end a range stands for, -1 for a class or
 * an equivalence class (a '-' after them is a member). */
static int check_bracket_element(Parser *p, const Value *v, size_t open, size_t j, const char *what,
                                 int *ret_byte, size_t *ret_next) {
        const char *s = value_str(p, v);
        size_t n = v->len;
        char q[QUOTE_SIZE];

        if (s[j] == '\\') {
                if (j + 1 >= n)
                        return parser_error(p, -EINVAL, value_col(p, v, open), "unterminated '[' in %s", what);
                *ret_byte = (unsigned char) s[j + 1];
                *ret_next = j + 2;
                return 0;
        }
        if (s[j] == '[' && j + 1 < n && s[j + 1] == ':') {
                const char *name = s + j + 2, *end = memmem(name, n - (j + 2), ":]", 2);

                if (!end)
                        return parser_error(p, -EINVAL, value_col(p, v, j),
                                            "unterminated character class in %s (write [:NAME:] inside the "
                                            "brackets, such as [[:digit:]]; \\[ for a literal '[')", what);
                if (!is_char_class(name, (size_t) (end - name)))
                        return parser_error(p, -EINVAL, value_col(p, v, j + 2),
                                            "unknown character class %s in %s (expected alnum, alpha, blank, cntrl, "
                                            "digit, graph, lower, print, punct, space, upper or xdigit)",
                                            quote(q, name, (size_t) (end - name)), what);
                *ret_byte = -1;
                *ret_next = (size_t) (end - s) + 2;
                return 0;
        }
        if (s[j] == '[' && j + 1 < n && (s[j + 1] == '=' || s[j + 1] == '.')) {
                char d = s[j + 1];

                /* only single bytes: the C locale has no multi-character collating elements */
                if (j + 4 >= n || s[j + 3] != d || s[j + 4] != ']')
                        return parser_error(p, -EINVAL, value_col(p, v, j),
                                            "expected [%cC%c] with a single character C in %s (\\[ for a literal '[')",
                                            d, d, what);
                *ret_byte = d == '=' ? -1 : (unsigned char) s[j + 2];
                *ret_next = j + 5;
                return 0;
        }
        *ret_byte = (unsigned char) s[j];
        *ret_next = j + 1;
        return 0;
}

/* The bracket expression opened at s[open]; *ret_close is its ']'.
 * fnmatch(3) reads an unterminated bracket as a literal '[', and matches
 * nothing with an unknown class or a reversed range: a rule that silently
 * never matches (a deny that never fires), so all are errors. */
static int check_bracket(Parser *p, const Value *v, size_t open, const char *what, size_t *ret_close) {
        const char *s = value_str(p, v);
        size_t n = v->len, j = open + 1, first;
        char q[QUOTE_SIZE];
        int r;

        if (j < n && (s[j] == '!' || s[j] == '^'))
                j++;
        first = j;
        for (;;) {
                size_t el = j, next;
                int lo, hi;

                if (j >= n)
                        return parser_error(p, -EINVAL, value_col(p, v, open), "unterminated '[' in %s", what);
                if (s[j] == ']' && j > first)  /* a leading ']' is a member */
                        break;
                r = check_bracket_element(p, v, open, j, what, &lo, &next);
                if (r < 0)
                        return r;
                j = next;
                if (lo < 0 || j + 1 >= n || s[j] != '-' || s[j + 1] == ']')
                        continue;
                r = check_bracket_element(p, v, open, j + 1, what, &hi, &next);
                if (r < 0)
                        return r;
                if (hi < 0)
                        return parser_error(p, -EINVAL, value_col(p, v, j + 1),
                                            "a range in %s cannot end in [:class:] or [=c=]", what);
                if (lo > hi)
                        return parser_error(p, -EINVAL, value_col(p, v, el), "range %s in %s is reversed and "
                                            "matches nothing", quote(q, s + el, next - el), what);
                j = next;
        }

        /* grep(1)'s classic: [:digit:] is the set of ':', 'd', 'i', 'g', 't' */
        if (j - first >= 3 && s[first] == ':' && s[j - 1] == ':' && is_char_class(s + first + 1, j - first - 2))
                return parser_error(p, -EINVAL, value_col(p, v, open),
                                    "%s in %s matches one of its characters; a class goes inside the brackets, "
                                    "such as [[:%.*s:]]", quote(q, s + open, j + 1 - open), what,
                                    (int) (j - first - 2), s + first + 1);
        *ret_close = j;
        return 0;
}

/* fnmatch(3) pattern checks: it would treat these as literals or match
 * nothing, which is never what the author meant. */
static int check_pattern(Parser *p, const Value *v, const char *what, bool *ret_glob) {
        const char *s = value_str(p, v);
        char q[QUOTE_SIZE];
        int r;

        if (v->len == 0)
                return parser_error(p, -EINVAL, value_col(p, v, 0), "empty %s", what);
        if (v->len > POLICY_PATTERN_MAX)
                return parser_error(p, -EINVAL, value_col(p, v, 0), "%s %s is longer than %u bytes", what,
                                    quote(q, s, v->len), POLICY_PATTERN_MAX);

        for (size_t i = 0; i < v->len; i++) {
                if (s[i] == '\\') {
                        if (i + 1 >= v->len)
                                return parser_error(p, -EINVAL, value_col(p, v, i),
                                                    "backslash at the end of %s (write \\\\ for a backslash)", what);
                        i++;
                } else if (s[i] == '[') {
                        r = check_bracket(p, v, i, what, &i);
                        if (r < 0)
                                return r;
                }
        }
        *ret_glob = false;
        for (size_t i = 0; i < v->len; i++)
                if (strchr("*?[\\", s[i]))
                        *ret_glob = true;
        return 0;
}

static int dup_value(const Parser *p, const Value *v, char **ret) {
        char *s = strndup(value_str(p, v), v->len);

        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int parse_introspector(Parser *p, PolicyRule *rule, const Value *v) {
        int r;

        if (value_is(p, v, "any"))
                return 0;
        r = check_pattern(p, v, "introspector name", &rule->introspector_glob);
        if (r < 0)
                return r;
        return dup_value(p, v, &rule->introspector);
}

static int parse_target(Parser *p, PolicyRule *rule, const Value *v) {
        Value kind, rest;
        char q[QUOTE_SIZE];
        int r;

        if (value_is(p, v, "any")) {
                rule->target_kind = POLICY_TARGET_ANY;
                return 0;
        }
        if (!value_split(p, v, ':', &kind, &rest)) {
                rule->target_kind = POLICY_TARGET_NAME;
                rest = *v;
        } else if (value_is(p, &kind, "name"))
                rule->target_kind = POLICY_TARGET_NAME;
        else if (value_is(p, &kind, "label"))
                rule->target_kind = POLICY_TARGET_LABEL;
        else if (value_is(p, &kind, "uuid")) {
                _cleanup_free_ char *s = NULL;

                rule->target_kind = POLICY_TARGET_UUID;
                r = dup_value(p, &rest, &s);
                if (r < 0)
                        return r;
                if (policy_uuid_from_string(s, rule->target_uuid) < 0)
                        return parser_error(p, -EINVAL, value_col(p, &rest, 0),
                                            "invalid uuid %s (expected 32 hex digits as 8-4-4-4-12, such as "
                                            "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6f)", quote(q, s, rest.len));
                return 0;
        } else
                return parser_error(p, -EINVAL, value_col(p, v, 0),
                                    "unknown target kind %s (expected any, a name glob, name:GLOB, uuid:UUID or "
                                    "label:GLOB)", quote(q, value_str(p, &kind), kind.len + 1));

        r = check_pattern(p, &rest, rule->target_kind == POLICY_TARGET_LABEL ? "label" : "target name",
                          &rule->target_glob);
        if (r < 0)
                return r;
        return dup_value(p, &rest, &rule->target);
}

static int parse_perm(Parser *p, PolicyRule *rule, const Value *v) {
        Value rest = *v;
        unsigned all_col = 0;
        char q[QUOTE_SIZE];

        for (bool more = true; more;) {
                Value item, tail = {};
                PolicyPermission perm;
                unsigned col;

                more = value_split(p, &rest, ',', &item, &tail);
                if (!more)
                        item = rest;
                col = value_col(p, &item, 0);

                if (item.len == 0)
                        return parser_error(p, -EINVAL, col, "empty permission in perm= (write perm=attach,events)");
                if (value_is(p, &item, "all"))
                        perm = POLICY_PERM_ALL;
                else if (value_is(p, &item, "attach"))
                        perm = POLICY_PERM_ATTACH;
                else if (value_is(p, &item, "events"))
                        perm = POLICY_PERM_EVENTS;
                else if (value_is(p, &item, "map"))
                        perm = POLICY_PERM_MAP;
                else
                        return parser_error(p, -EINVAL, col,
                                            "unknown permission %s (expected attach, events, map or all)",
                                            quote(q, value_str(p, &item), item.len));

                if (all_col > 0 || (perm == POLICY_PERM_ALL && rule->perms != 0))
                        return parser_error(p, -EINVAL, col, "perm=all already includes every permission; "
                                            "list no other next to it");
                if (rule->perms & (unsigned) perm)
                        return parser_error(p, -EINVAL, col, "duplicate permission %s",
                                            quote(q, value_str(p, &item), item.len));
                if (perm == POLICY_PERM_ALL)
                        all_col = col;
                rule->perms |= (unsigned) perm;
                rest = tail;
        }
        return 0;
}

/* Decimal, digits only, at most max; false on anything else. */
static bool parse_decimal(const char *s, size_t n, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;

        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                if (v > (max - (uint64_t) (s[i] - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return true;
}

static int parse_max_mappings(Parser *p, PolicyRule *rule, const Value *v) {
        uint64_t n;
        char q[QUOTE_SIZE];

        if (value_is(p, v, "0"))
                return parser_error(p, -EINVAL, value_col(p, v, 0),
                                    "max-mappings=0 would allow no mapping; take map out of perm= instead");
        if (!parse_decimal(value_str(p, v), v->len, POLICY_MAX_MAPPINGS_MAX, &n) || n == 0)
                return parser_error(p, -EINVAL, value_col(p, v, 0),
                                    "invalid max-mappings %s (expected a number from 1 to %u)",
                                    quote(q, value_str(p, v), v->len), POLICY_MAX_MAPPINGS_MAX);
        rule->max_mappings = (unsigned) n;
        return 0;
}

/* 0x followed by 1 to 16 hex digits. */
static int parse_gpa_address(Parser *p, const Value *v, uint64_t *ret) {
        const char *s = value_str(p, v);
        uint64_t a = 0;
        char q[QUOTE_SIZE];

        if (v->len < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
                return parser_error(p, -EINVAL, value_col(p, v, 0),
                                    "invalid address %s (expected hexadecimal with 0x, such as 0x100000)",
                                    quote(q, s, v->len));
        for (size_t i = 2; i < v->len; i++) {
                char c = s[i];
                unsigned d;

                if (c >= '0' && c <= '9')
                        d = (unsigned) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        d = (unsigned) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        d = (unsigned) (c - 'A' + 10);
                else
                        return parser_error(p, -EINVAL, value_col(p, v, i), "invalid hex digit '%c' in address %s",
                                            c, quote(q, s, v->len));
                a = a << 4 | d;
        }
        /* leading zeros count: a digit too many is a typo, not padding */
        if (v->len - 2 > 16)
                return parser_error(p, -EINVAL, value_col(p, v, 0),
                                    "address %s has %zu hex digits; at most 16 fit in 64 bits", quote(q, s, v->len),
                                    v->len - 2);
        *ret = a;
        return 0;
}

static int gpa_compare(const void *a, const void *b) {
        const PolicyGpaRange *x = a, *y = b;

        return x->start < y->start ? -1 : x->start > y->start;
}

static int parse_gpa(Parser *p, PolicyRule *rule, const Value *v) {
        PolicyGpaRange ranges[POLICY_GPA_RANGES_MAX];
        unsigned cols[POLICY_GPA_RANGES_MAX];
        Value rest = *v;
        size_t n = 0;
        int r;

        for (bool more = true; more;) {
                Value item, tail = {}, lo, hi;
                PolicyGpaRange g;
                unsigned col;

                more = value_split(p, &rest, ',', &item, &tail);
                if (!more)
                        item = rest;
                col = value_col(p, &item, 0);

                if (n == POLICY_GPA_RANGES_MAX)
                        return parser_error(p, -EINVAL, col, "more than %u ranges in gpa=", POLICY_GPA_RANGES_MAX);
                if (item.len == 0)
                        return parser_error(p, -EINVAL, col, "empty range in gpa= (write gpa=0x0-0xfffff,0x100000-0x1fffff)");
                if (!value_split(p, &item, '-', &lo, &hi))
                        return parser_error(p, -EINVAL, col,
                                            "expected a range START-END such as 0x0-0xfffff (both ends inclusive)");
                r = parse_gpa_address(p, &lo, &g.start);
                if (r < 0)
                        return r;
                r = parse_gpa_address(p, &hi, &g.end);
                if (r < 0)
                        return r;
                if (g.start > g.end)
                        return parser_error(p, -EINVAL, col, "range start 0x%" PRIx64 " is above its end 0x%" PRIx64,
                                            g.start, g.end);
                if (g.start % POLICY_PAGE_SIZE != 0)
                        return parser_error(p, -EINVAL, value_col(p, &lo, 0),
                                            "range start 0x%" PRIx64 " is not page aligned (4 KiB); did you mean 0x%" PRIx64 "?",
                                            g.start, g.start & ~(uint64_t) (POLICY_PAGE_SIZE - 1));
                if (g.end % POLICY_PAGE_SIZE != POLICY_PAGE_SIZE - 1) {
                        /* most often an exclusive end: 0x100000 for 0xfffff */
                        uint64_t hint = g.end < POLICY_PAGE_SIZE ? POLICY_PAGE_SIZE - 1 :
                                ((g.end + 1) & ~(uint64_t) (POLICY_PAGE_SIZE - 1)) - 1;

                        return parser_error(p, -EINVAL, value_col(p, &hi, 0),
                                            "range end 0x%" PRIx64 " is not the last byte of a page (ends are "
                                            "inclusive); did you mean 0x%" PRIx64 "?", g.end, hint);
                }
                for (size_t i = 0; i < n; i++)
                        if (g.start <= ranges[i].end && ranges[i].start <= g.end)
                                return parser_error(p, -EINVAL, col,
                                                    "range 0x%" PRIx64 "-0x%" PRIx64 " overlaps 0x%" PRIx64 "-0x%" PRIx64
                                                    " at column %u", g.start, g.end, ranges[i].start, ranges[i].end, cols[i]);
                cols[n] = col;
                ranges[n++] = g;
                rest = tail;
        }

        qsort(ranges, n, sizeof(ranges[0]), gpa_compare);
        rule->gpa = malloc(n * sizeof(ranges[0]));
        if (!rule->gpa)
                return -ENOMEM;
        memcpy(rule->gpa, ranges, n * sizeof(ranges[0]));
        rule->n_gpa = n;
        return 0;
}

static int parse_rate(Parser *p, PolicyRule *rule, const Value *v) {
        static const struct {
                const char *unit;
                unsigned sec;
        } units[] = { { "s", 1 }, { "min", 60 }, { "h", 3600 } };
        Value count, unit;
        uint64_t n;
        char q[QUOTE_SIZE];

        if (!value_split(p, v, '/', &count, &unit))
                return parser_error(p, -EINVAL, value_col(p, v, 0),
                                    "invalid rate %s (expected COUNT/UNIT such as 20/s, 100/min or 1000/h)",
                                    quote(q, value_str(p, v), v->len));
        if (value_is(p, &count, "0"))
                return parser_error(p, -EINVAL, value_col(p, &count, 0),
                                    "rate=0 would allow no map token; take map out of perm= instead");
        if (!parse_decimal(value_str(p, &count), count.len, POLICY_RATE_MAX, &n) || n == 0)
                return parser_error(p, -EINVAL, value_col(p, &count, 0),
                                    "invalid rate count %s (expected a number from 1 to %u)",
                                    quote(q, value_str(p, &count), count.len), POLICY_RATE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (value_is(p, &unit, units[i].unit)) {
                        rule->rate_count = (unsigned) n;
                        rule->rate_period_sec = units[i].sec;
                        return 0;
                }
        return parser_error(p, -EINVAL, value_col(p, &unit, 0), "unknown rate unit %s (expected s, min or h)",
                            quote(q, value_str(p, &unit), unit.len));
}

/* ------------------------------------------------------------ lines */

static void rule_clear(PolicyRule *rule) {
        free(rule->introspector);
        free(rule->target);
        free(rule->gpa);
        *rule = (PolicyRule) {};
}

/* A rule that an earlier rule with the same introspector= and target=
 * already decides, for every permission it lists, can never match: almost
 * always a drop-in that meant to override the main file. */
static int check_shadowed(Parser *p, const PolicyRule *rule) {
        PolicyBuf key = {}, why = {};
        PolicyIndexEntry *e;
        unsigned covered = 0;
        int r;

        /* \x01 and \x02 cannot occur in a pattern (control characters are errors) */
        if (rule->introspector)
                policy_buf_puts(&key, rule->introspector);
        else
                policy_buf_puts(&key, "\x01");
        policy_buf_printf(&key, "\x02%d\x02", (int) rule->target_kind);
        if (rule->target_kind == POLICY_TARGET_UUID) {
                char u[37];

                policy_uuid_to_string(rule->target_uuid, u);
                policy_buf_puts(&key, u);
        } else if (rule->target)
                policy_buf_puts(&key, rule->target);
        if (key.oom) {
                policy_buf_done(&key);
                return -ENOMEM;
        }

        r = policy_index_put(&p->seen, key.s, key.len, &e);
        policy_buf_done(&key);
        if (r < 0)
                return r;

        for (unsigned b = 0; b < POLICY_N_PERMS; b++)
                if ((rule->perms & (1U << b)) && e->perm[b].n > 0)
                        covered |= 1U << b;

        if (covered == rule->perms) {
                for (unsigned b = 0; b < POLICY_N_PERMS; b++)
                        if (covered & (1U << b)) {
                                const PolicyRule *earlier = &p->policy->rules[e->perm[b].v[0]];

                                policy_buf_printf(&why, "%s%s at %s:%u", why.len > 0 ? ", " : "",
                                                  policy_perm_to_string(1U << b), earlier->file, earlier->line);
                        }
                if (why.oom) {
                        policy_buf_done(&why);
                        return -ENOMEM;
                }
                r = parser_error(p, -EINVAL, p->words[0].col,
                                 "this rule can never match: earlier rules with the same introspector= and target= "
                                 "already decide %s", why.s);
                policy_buf_done(&why);
                return r;
        }

        for (unsigned b = 0; b < POLICY_N_PERMS; b++)
                if ((rule->perms & (1U << b)) && e->perm[b].n == 0) {
                        r = policy_rule_list_append(&e->perm[b], (uint32_t) p->policy->n_rules);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static int add_rule(Parser *p, PolicyRule *rule) {
        Policy *pol = p->policy;
        int r;

        if (pol->n_rules >= POLICY_RULES_MAX)
                return parser_error(p, -E2BIG, p->words[0].col, "too many rules (the limit is %u)", POLICY_RULES_MAX);

        r = check_shadowed(p, rule);
        if (r < 0)
                return r;

        if (pol->n_rules == p->rules_cap) {
                size_t cap = p->rules_cap ? p->rules_cap * 2 : 16;
                PolicyRule *rules = realloc(pol->rules, cap * sizeof(*rules));

                if (!rules)
                        return -ENOMEM;
                pol->rules = rules;
                p->rules_cap = cap;
        }
        rule->file = p->file;
        rule->line = p->line;
        pol->rules[pol->n_rules++] = *rule;
        *rule = (PolicyRule) {};
        return 0;
}

static int parse_rule(Parser *p, PolicyVerdict verdict) {
        static int (*const parsers[_KEY_MAX])(Parser *, PolicyRule *, const Value *) = {
                [KEY_INTROSPECTOR] = parse_introspector,
                [KEY_TARGET] = parse_target,
                [KEY_PERM] = parse_perm,
                [KEY_MAX_MAPPINGS] = parse_max_mappings,
                [KEY_GPA] = parse_gpa,
                [KEY_RATE] = parse_rate,
        };
        _cleanup_(rule_clear) PolicyRule rule = { .verdict = verdict };
        unsigned seen[_KEY_MAX] = {};
        const char *kw = word_str(p, &p->words[0]);
        char q[QUOTE_SIZE];
        int r;

        for (size_t i = 1; i < p->n_words; i++) {
                const Word *w = &p->words[i];
                const char *s = word_str(p, w), *eq = memchr(s, '=', w->len);
                size_t klen;
                Value v;
                Key k;

                if (!eq) {
                        bool spaced = i + 1 < p->n_words && word_str(p, &p->words[i + 1])[0] == '=';

                        return parser_error(p, -EINVAL, w->col, "expected KEY=VALUE, found %s%s", quote(q, s, w->len),
                                            spaced ? " (no blanks around \"=\")" : "");
                }
                klen = (size_t) (eq - s);
                if (klen == 0)
                        return parser_error(p, -EINVAL, w->col, "expected KEY=VALUE, found %s (no blanks around \"=\")",
                                            quote(q, s, w->len));
                for (k = 0; k < _KEY_MAX; k++)
                        if (strlen(key_names[k]) == klen && strneq(key_names[k], s, klen))
                                break;
                if (k == _KEY_MAX)
                        return parser_error(p, -EINVAL, w->col,
                                            "unknown option %s (expected introspector=, target=, perm=, max-mappings=, "
                                            "gpa= or rate=)", quote(q, s, klen));
                if (seen[k])
                        return parser_error(p, -EINVAL, w->col, "duplicate %s= (already given at column %u)",
                                            key_names[k], seen[k]);
                seen[k] = w->col;

                v = (Value) { w, klen + 1, w->len - klen - 1 };
                if (v.len == 0)
                        return parser_error(p, -EINVAL, w->end_col, "%s= needs a value", key_names[k]);
                r = parsers[k](p, &rule, &v);
                if (r < 0)
                        return r;
        }

        if (!seen[KEY_INTROSPECTOR])
                return parser_error(p, -EINVAL, p->words[0].col,
                                    "%s rule without introspector= (write introspector=any to match every introspector)", kw);
        if (!seen[KEY_TARGET])
                return parser_error(p, -EINVAL, p->words[0].col,
                                    "%s rule without target= (write target=any to match every target)", kw);
        if (!seen[KEY_PERM])
                return parser_error(p, -EINVAL, p->words[0].col,
                                    "%s rule without perm= (write perm=all for every permission)", kw);

        for (Key k = KEY_MAX_MAPPINGS; k < _KEY_MAX; k++) {
                if (!seen[k])
                        continue;
                if (verdict == POLICY_DENY)
                        return parser_error(p, -EINVAL, seen[k], "%s= limits what a rule allows; a deny rule takes no limits",
                                            key_names[k]);
                if (!(rule.perms & POLICY_PERM_MAP))
                        return parser_error(p, -EINVAL, seen[k], "%s= limits mappings, but this rule does not allow map",
                                            key_names[k]);
        }

        return add_rule(p, &rule);
}

static int parse_default(Parser *p) {
        const Word *w0 = &p->words[0];
        char q[QUOTE_SIZE];
        PolicyVerdict v;

        if (p->n_words < 2)
                return parser_error(p, -EINVAL, w0->end_col, "expected allow or deny after default");
        if (streq(word_str(p, &p->words[1]), "allow"))
                v = POLICY_ALLOW;
        else if (streq(word_str(p, &p->words[1]), "deny"))
                v = POLICY_DENY;
        else
                return parser_error(p, -EINVAL, p->words[1].col, "expected allow or deny after default, found %s",
                                    quote(q, word_str(p, &p->words[1]), p->words[1].len));
        if (p->n_words > 2)
                return parser_error(p, -EINVAL, p->words[2].col, "unexpected %s after default %s",
                                    quote(q, word_str(p, &p->words[2]), p->words[2].len), policy_verdict_to_string(v));
        if (p->have_default)
                return parser_error(p, -EINVAL, w0->col, "duplicate default (the default is already set at %s:%u)",
                                    p->policy->default_file, p->policy->default_line);

        p->have_default = true;
        p->policy->default_verdict = v;
        p->policy->default_file = p->file;
        p->policy->default_line = p->line;
        return 0;
}

static int parse_line(Parser *p, const char *line, size_t len) {
        const char *kw;
        char q[QUOTE_SIZE];
        int r;

        if (len > POLICY_LINE_MAX)
                return parser_error(p, -EINVAL, POLICY_LINE_MAX + 1, "line is longer than %u bytes", POLICY_LINE_MAX);

        r = lex_line(p, line, len);
        if (r < 0)
                return r;
        if (p->n_words == 0)
                return 0;

        kw = word_str(p, &p->words[0]);
        if (streq(kw, "allow"))
                return parse_rule(p, POLICY_ALLOW);
        if (streq(kw, "deny"))
                return parse_rule(p, POLICY_DENY);
        if (streq(kw, "default"))
                return parse_default(p);
        return parser_error(p, -EINVAL, p->words[0].col, "unknown keyword %s (expected allow, deny or default)",
                            quote(q, kw, p->words[0].len));
}

/* ------------------------------------------------------------ files */

static int parser_add_file(Parser *p, const char *name) {
        Policy *pol = p->policy;
        char **files, *s;

        s = strdup(name);
        if (!s)
                return -ENOMEM;
        files = realloc(pol->files, (pol->n_files + 1) * sizeof(*files));
        if (!files) {
                free(s);
                return -ENOMEM;
        }
        pol->files = files;
        pol->files[pol->n_files++] = s;
        p->file = s;
        return 0;
}

/* Where "end of file" is, for errors only the whole text shows. */
typedef struct Eof {
        const char *file;
        unsigned line, col;
} Eof;

static int parse_text(Parser *p, const char *name, const char *text, size_t size, Eof *eof) {
        const char *pos = text, *end = text + size;
        int r;

        r = parser_add_file(p, name);
        if (r < 0)
                return r;

        for (p->line = 1;; p->line++) {
                const char *nl = memchr(pos, '\n', (size_t) (end - pos));
                size_t len = (size_t) ((nl ? nl : end) - pos);

                if (nl && len > 0 && pos[len - 1] == '\r')  /* CR LF; any other CR is an error */
                        len--;

                r = parse_line(p, pos, len);
                if (r < 0)
                        return r;
                if (!nl) {
                        *eof = (Eof) { p->file, p->line, (unsigned) MIN(len, (size_t) POLICY_LINE_MAX) + 1 };
                        return 0;
                }
                pos = nl + 1;
        }
}

static int parser_finish(Parser *p, const Eof *eof, Policy **ret) {
        int r;

        if (!p->have_default) {
                p->file = eof->file;
                p->line = eof->line;
                return parser_error(p, -EINVAL, eof->col,
                                    "no default: add a line \"default deny\" (or \"default allow\")");
        }
        r = policy_finalize(p->policy);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p->policy);
        return 0;
}

static void hand_error(Parser *p, char **ret_error) {
        if (ret_error && p->error)
                *ret_error = TAKE_PTR(p->error);
}

static int parse_string_impl(Parser *p, const char *filename, const char *text, Policy **ret) {
        Eof eof = {};
        size_t size = 0;
        int r;

        r = parser_init(p);
        if (r < 0)
                return r;
        size = strlen(text);
        if (size > POLICY_FILE_SIZE_MAX)
                return file_error(&p->error, -EFBIG, filename, "too large (%zu bytes; the limit is %u)", size,
                                  POLICY_FILE_SIZE_MAX);
        r = parse_text(p, filename, text, size, &eof);
        if (r < 0)
                return r;
        return parser_finish(p, &eof, ret);
}

int policy_parse_string(const char *filename, const char *text, Policy **ret, char **ret_error) {
        Parser p = {};
        int r;

        if (!text || !ret)
                return -EINVAL;
        r = parse_string_impl(&p, filename ?: "<string>", text, ret);
        if (r < 0)
                hand_error(&p, ret_error);
        parser_done(&p);
        return r;
}

/* Read a whole regular file, bounded. */
static int read_text(int dir_fd, const char *name, const char *path, char **ret, size_t *ret_size, char **error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t size = 0;

        /* O_NONBLOCK: a FIFO planted in policy.d must not hang the loader */
        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int r = -errno;
                return file_error(error, r, path, "%s", strerror(-r));
        }
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                return file_error(error, r, path, "%s", strerror(-r));
        }
        if (S_ISDIR(st.st_mode))
                return file_error(error, -EISDIR, path, "%s", strerror(EISDIR));
        if (!S_ISREG(st.st_mode))
                return file_error(error, -EINVAL, path, "not a regular file");
        if (st.st_size > (off_t) POLICY_FILE_SIZE_MAX)
                return file_error(error, -EFBIG, path, "too large (%jd bytes; the limit is %u)", (intmax_t) st.st_size,
                                  POLICY_FILE_SIZE_MAX);

        text = malloc(POLICY_FILE_SIZE_MAX + 2);
        if (!text)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, text + size, POLICY_FILE_SIZE_MAX + 1 - size);

                if (n < 0) {
                        int r = -errno;

                        if (r == -EINTR)
                                continue;
                        return file_error(error, r, path, "%s", strerror(-r));
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > POLICY_FILE_SIZE_MAX)  /* grew while we read it */
                        return file_error(error, -EFBIG, path, "too large (more than %u bytes)", POLICY_FILE_SIZE_MAX);
        }
        text[size] = 0;
        *ret = TAKE_PTR(text);
        *ret_size = size;
        return 0;
}

static int parse_file(Parser *p, int dir_fd, const char *name, const char *path, Eof *eof) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = read_text(dir_fd, name, path, &text, &size, &p->error);
        if (r < 0)
                return r;
        return parse_text(p, path, text, size, eof);
}

static bool is_dropin_name(const char *name) {
        size_t n = strlen(name);

        return name[0] != '.' && n > strlen(".policy") && streq(name + n - strlen(".policy"), ".policy");
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

typedef struct NameList {
        char **v;
        size_t n;
} NameList;

static void name_list_done(NameList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
}

static int list_dropins(const char *dir, int *ret_fd, NameList *ret, char **error) {
        _cleanup_(name_list_done) NameList l = {};
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        int r = 0;

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT) {
                        *ret_fd = -EBADF;
                        *ret = (NameList) {};
                        return 0;
                }
                return file_error(error, r, dir, "%s", strerror(-r));
        }
        d = fdopendir(fcntl(fd, F_DUPFD_CLOEXEC, 3));
        if (!d) {
                r = -errno;
                return file_error(error, r, dir, "%s", strerror(-r));
        }

        for (;;) {
                struct dirent *de;
                char **v;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0) {
                                r = -errno;
                                r = file_error(error, r, dir, "%s", strerror(-r));
                        }
                        break;
                }
                if (!is_dropin_name(de->d_name))
                        continue;
                if (l.n >= POLICY_DROPINS_MAX) {
                        r = file_error(error, -E2BIG, dir, "more than %u *.policy files", POLICY_DROPINS_MAX);
                        break;
                }
                v = realloc(l.v, (l.n + 1) * sizeof(*v));
                if (!v) {
                        r = -ENOMEM;
                        break;
                }
                l.v = v;
                l.v[l.n] = strdup(de->d_name);
                if (!l.v[l.n]) {
                        r = -ENOMEM;
                        break;
                }
                l.n++;
        }
        (void) closedir(d);
        if (r < 0)
                return r;

        qsort(l.v, l.n, sizeof(*l.v), strcmp_ptr);
        *ret_fd = TAKE_FD(fd);
        *ret = l;
        l = (NameList) {};
        return 0;
}

static int load_dropins(Parser *p, const char *dropin_dir, Eof *eof) {
        _cleanup_(name_list_done) NameList dropins = {};
        _cleanup_close_ int dir_fd = -EBADF;
        size_t dlen = strlen(dropin_dir);
        bool slash = dlen > 0 && dropin_dir[dlen - 1] == '/';
        int r;

        r = list_dropins(dropin_dir, &dir_fd, &dropins, &p->error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < dropins.n; i++) {
                _cleanup_free_ char *path = format("%s%s%s", dropin_dir, slash ? "" : "/", dropins.v[i]);

                if (!path)
                        return -ENOMEM;
                r = parse_file(p, dir_fd, dropins.v[i], path, eof);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* main_file (if any), then dropin_dir's drop-ins (if any), then each path
 * in order: a directory means its drop-ins, and the first plain file is
 * the main one, at whose end a missing default is reported. */
static int load_impl(Parser *p, const char *main_file, const char *dropin_dir, const char *const *paths,
                     size_t n_paths, Policy **ret) {
        Eof eof = {}, main_eof = {};
        bool have_main = false;
        int r;

        r = parser_init(p);
        if (r < 0)
                return r;

        if (main_file) {
                r = parse_file(p, AT_FDCWD, main_file, main_file, &main_eof);
                if (r < 0)
                        return r;
                have_main = true;
        }
        if (dropin_dir) {
                r = load_dropins(p, dropin_dir, &eof);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n_paths; i++) {
                struct stat st;

                if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
                        r = load_dropins(p, paths[i], &eof);
                else {
                        r = parse_file(p, AT_FDCWD, paths[i], paths[i], have_main ? &eof : &main_eof);
                        have_main = true;
                }
                if (r < 0)
                        return r;
        }

        if (p->policy->n_files == 0)
                return file_error(&p->error, -ENOENT, dropin_dir ?: n_paths > 0 ? paths[n_paths - 1] : "policy",
                                  "no main policy file and no *.policy files");
        return parser_finish(p, have_main ? &main_eof : &eof, ret);
}

static int load(const char *main_file, const char *dropin_dir, const char *const *paths, size_t n_paths,
                Policy **ret, char **ret_error) {
        Parser p = {};
        int r;

        r = load_impl(&p, main_file, dropin_dir, paths, n_paths, ret);
        if (r < 0)
                hand_error(&p, ret_error);
        parser_done(&p);
        return r;
}

int policy_load(const char *main_file, const char *dropin_dir, Policy **ret, char **ret_error) {
        if (!ret || (!main_file && !dropin_dir))
                return -EINVAL;
        return load(main_file, dropin_dir, NULL, 0, ret, ret_error);
}

int policy_load_paths(const char *const *paths, size_t n, Policy **ret, char **ret_error) {
        if (!ret || !paths || n == 0)
                return -EINVAL;
        return load(NULL, NULL, paths, n, ret, ret_error);
}
