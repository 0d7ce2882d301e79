/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Varlink transport: framing, output queue, message (de)serialization. */

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "macro.h"
#include "varlink-wire.h"

/* ---- Input: incremental framer ---------------------------------------- */

/* Start small: most connections only ever see short messages. */
#define READER_INITIAL_SIZE 4096U

struct VarlinkReader {
        char *buf;
        size_t allocated;       /* never more than max_message + 1 */
        size_t start;           /* first byte not yet returned as a message */
        size_t end;             /* one past the last byte read */
        size_t scanned;         /* [start, scanned) is known to hold no NUL */
        size_t max_message;
};

/* 0 picks the default; anything above the ceiling is clamped to it. */
VarlinkReader *varlink_reader_new(size_t max_message_size) {
        VarlinkReader *r;

        if (max_message_size == 0)
                max_message_size = VARLINK_DEFAULT_MAX_MESSAGE;
        max_message_size = MIN(max_message_size, (size_t) VARLINK_MAX_MESSAGE_CEILING);

        r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        /* The buffer is allocated on first use: idle connections cost little. */
        r->max_message = max_message_size;
        return r;
}

VarlinkReader *varlink_reader_free(VarlinkReader *r) {
        if (!r)
                return NULL;
        free(r->buf);
        free(r);
        return NULL;
}

/* The buffer never holds more than one maximal message plus the byte that
 * proves it is too long, so a peer cannot make us buffer more than that.
 * Returns -ENOBUFS when it is full of complete messages the caller has not
 * taken with varlink_reader_next() yet. */
int varlink_reader_get_space(VarlinkReader *r, size_t want, void **ret_ptr, size_t *ret_len) {
        size_t limit, pending, target;

        assert(r);

        limit = r->max_message + 1;
        pending = r->end - r->start;
        if (pending >= limit)
                return -ENOBUFS;

        want = MAX(want, (size_t) 1);
        want = MIN(want, limit - pending);
        target = pending + want;

        if (r->allocated - r->end < want && r->start > 0) {
                /* Compact: move the unreturned tail to the front. */
                memmove(r->buf, r->buf + r->start, pending);
                r->scanned = r->scanned > r->start ? r->scanned - r->start : 0;
                r->end = pending;
                r->start = 0;
        }

        if (r->allocated - r->end < want) {
                size_t n = MAX(r->allocated, (size_t) READER_INITIAL_SIZE);
                char *p;

                while (n < target)
                        n = n > SIZE_MAX / 2 ? SIZE_MAX : n * 2;
                n = MIN(n, limit);

                p = realloc(r->buf, n);
                if (!p)
                        return -ENOMEM;
                r->buf = p;
                r->allocated = n;
        }

        *ret_ptr = r->buf + r->end;
        *ret_len = r->allocated - r->end;
        return 0;
}

void varlink_reader_advance(VarlinkReader *r, size_t n) {
        assert(r);
        assert(n <= r->allocated - r->end);

        r->end += MIN(n, r->allocated - r->end);
}

/* All or nothing: -ENOBUFS if the data does not fit below the limit. */
int varlink_reader_feed(VarlinkReader *r, const void *data, size_t len) {
        size_t n, pending;
        void *p;
        int k;

        assert(r);
        assert(data || len == 0);

        if (len == 0)
                return 0;
        pending = r->end - r->start;
        if (pending > r->max_message || len > r->max_message + 1 - pending)
                return -ENOBUFS;

        k = varlink_reader_get_space(r, len, &p, &n);
        if (k < 0)
                return k;
        assert(n >= len);

        memcpy(p, data, len);
        varlink_reader_advance(r, len);
        return 0;
}

/* The message handed out is NUL-terminated in place (msg[len] == '\0'). */
int varlink_reader_next(VarlinkReader *r, const char **ret_msg, size_t *ret_len) {
        const char *nul;

        assert(r);

        if (r->start == r->end) {
                /* Everything consumed: rewind for free instead of compacting later. */
                r->start = r->end = r->scanned = 0;
                return 0;
        }

        r->scanned = MAX(r->scanned, r->start);
        nul = memchr(r->buf + r->scanned, 0, r->end - r->scanned);
        if (!nul) {
                r->scanned = r->end;
                /* Don't wait for the NUL: once past the limit the message can
                 * only be rejected, and waiting would mean buffering it. */
                if (r->end - r->start > r->max_message)
                        return -EMSGSIZE;
                return 0;
        }

        /* A message may also be too big when its NUL arrived in the same read. */
        if ((size_t) (nul - (r->buf + r->start)) > r->max_message)
                return -EMSGSIZE;

        if (ret_msg)
                *ret_msg = r->buf + r->start;
        if (ret_len)
                *ret_len = (size_t) (nul - (r->buf + r->start));
        r->start = (size_t) (nul - r->buf) + 1;
        r->scanned = r->start;
        return 1;
}

size_t varlink_reader_pending(const VarlinkReader *r) {
        return r ? r->end - r->start : 0;
}

/* ---- Output: refcounted blobs ----------------------------------------- */

struct VarlinkBlob {
        unsigned n_ref;
        size_t size;            /* including the trailing NUL */
        char data[];
};

/* Returns NULL with errno set: ENOMEM, or EINVAL if json contains a NUL
 * byte (it would split the message on the wire). */
VarlinkBlob *varlink_blob_new(const char *json, size_t len) {
        VarlinkBlob *b;

        assert(json || len == 0);

        if (len > 0 && memchr(json, 0, len)) {
                errno = EINVAL;
                return NULL;
        }
        if (len > SIZE_MAX - sizeof(*b) - 1) {
                errno = ENOMEM;
                return NULL;
        }

        b = malloc(sizeof(*b) + len + 1);
        if (!b)
                return NULL;
        b->n_ref = 1;
        b->size = len + 1;
        if (len > 0)
                memcpy(b->data, json, len);
        b->data[len] = 0;
        return b;
}

VarlinkBlob *varlink_blob_ref(VarlinkBlob *b) {
        if (!b)
                return NULL;
        assert(b->n_ref > 0);
        b->n_ref++;
        return b;
}

VarlinkBlob *varlink_blob_unref(VarlinkBlob *b) {
        if (!b)
                return NULL;
        assert(b->n_ref > 0);
        if (--b->n_ref == 0)
                free(b);
        return NULL;
}

size_t varlink_blob_size(const VarlinkBlob *b) {
        return b ? b->size : 0;
}

const char *varlink_blob_data(const VarlinkBlob *b) {
        return b ? b->data : NULL;
}

/* ---- Output: queue ----------------------------------------------------- */

/* A ring of blob references; grows by doubling. */
struct VarlinkOutQueue {
        VarlinkBlob **items;
        size_t allocated;
        size_t head;            /* index of the oldest blob */
        size_t n;               /* blobs queued */
        size_t offset;          /* bytes of items[head] already written */
        size_t bytes;           /* unwritten bytes in the whole queue */
        size_t max_bytes;
};

/* 0 picks the default limit. */
VarlinkOutQueue *varlink_outq_new(size_t max_bytes) {
        VarlinkOutQueue *q;

        q = calloc(1, sizeof(*q));
        if (!q)
                return NULL;
        q->max_bytes = max_bytes > 0 ? max_bytes : VARLINK_DEFAULT_MAX_OUTPUT;
        return q;
}

VarlinkOutQueue *varlink_outq_free(VarlinkOutQueue *q) {
        if (!q)
                return NULL;
        for (size_t i = 0; i < q->n; i++)
                varlink_blob_unref(q->items[(q->head + i) % q->allocated]);
        free(q->items);
        free(q);
        return NULL;
}

static int outq_grow(VarlinkOutQueue *q) {
        VarlinkBlob **items;
        size_t n;

        n = q->allocated > 0 ? q->allocated * 2 : 8;
        if (n > SIZE_MAX / sizeof(*items))
                return -ENOMEM;

        /* Unwrap into a fresh array instead of realloc: keeps the ring simple. */
        items = malloc(n * sizeof(*items));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < q->n; i++)
                items[i] = q->items[(q->head + i) % q->allocated];

        free(q->items);
        q->items = items;
        q->allocated = n;
        q->head = 0;
        return 0;
}

int varlink_outq_push(VarlinkOutQueue *q, VarlinkBlob *b, bool force) {
        int r;

        assert(q);
        assert(b);

        if (!force && (q->bytes > q->max_bytes || b->size > q->max_bytes - q->bytes))
                return -ENOBUFS;
        if (b->size > SIZE_MAX - q->bytes)
                return -ENOBUFS;

        if (q->n == q->allocated) {
                r = outq_grow(q);
                if (r < 0)
                        return r;
        }

        q->items[(q->head + q->n) % q->allocated] = varlink_blob_ref(b);
        q->n++;
        q->bytes += b->size;
        return 0;
}

size_t varlink_outq_peek(const VarlinkOutQueue *q, struct iovec *iov, size_t n) {
        size_t i;

        assert(q);
        assert(iov || n == 0);

        for (i = 0; i < MIN(n, q->n); i++) {
                VarlinkBlob *b = q->items[(q->head + i) % q->allocated];
                size_t skip = i == 0 ? q->offset : 0;

                iov[i] = (struct iovec) {
                        .iov_base = b->data + skip,
                        .iov_len = b->size - skip,
                };
        }
        return i;
}

void varlink_outq_consume(VarlinkOutQueue *q, size_t n) {
        assert(q);
        assert(n <= q->bytes);

        n = MIN(n, q->bytes);
        q->bytes -= n;

        while (n > 0) {
                VarlinkBlob *b = q->items[q->head];
                size_t left = b->size - q->offset;

                if (n < left) {
                        q->offset += n;
                        break;
                }

                n -= left;
                varlink_blob_unref(b);
                q->items[q->head] = NULL;
                q->head = (q->head + 1) % q->allocated;
                q->n--;
                q->offset = 0;
        }
}

size_t varlink_outq_bytes(const VarlinkOutQueue *q) {
        return q ? q->bytes : 0;
}

size_t varlink_outq_count(const VarlinkOutQueue *q) {
        return q ? q->n : 0;
}

/* ---- Messages: parsing ------------------------------------------------ */

/* Generous, but bounds the parser stack and the recursion in check_tree(). */
#define MAX_DEPTH_CEILING 1024

/* Outside strings JSON has only structure, whitespace, numbers and the
 * literals true/false/null.  json-c's strict mode still takes 'quoted'
 * keys and NaN/Infinity, so filter before it sees them. */
static bool is_json_bare_char(unsigned char c) {
        return c != 0 && strchr(" \t\n\r{}[],:" "+-.0123456789eE" "truefalsn", c);
}

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF); json-c's own check lets all three through.  While at it, reject
 * NUL bytes and unescaped control characters in strings, which json-c's
 * strict mode also accepts. */
static bool message_text_valid(const unsigned char *s, size_t len) {
        bool in_string = false, escaped = false;

        for (size_t i = 0; i < len;) {
                unsigned char c = s[i];
                uint32_t cp, min;
                size_t n;

                if (c < 0x80) {
                        if (c == 0)
                                return false;
                        if (in_string) {
                                if (c < 0x20)
                                        return false;
                                if (escaped)
                                        escaped = false;
                                else if (c == '\\')
                                        escaped = true;
                                else if (c == '"')
                                        in_string = false;
                        } else if (c == '"')
                                in_string = true;
                        else if (!is_json_bare_char(c))
                                return false;
                        i++;
                        continue;
                }

                if ((c & 0xe0) == 0xc0) {
                        n = 2, cp = c & 0x1f, min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 3, cp = c & 0x0f, min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 4, cp = c & 0x07, min = 0x10000;
                } else
                        return false;   /* continuation byte or 0xf8..0xff */

                if (len - i < n)
                        return false;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;

                /* An escape must be followed by ASCII; let json-c report it. */
                escaped = false;
                i += n;
        }

        return true;
}

/* json-c counts nesting differently (every value, scalars included, takes a
 * level); here depth is the number of nested objects/arrays: {} is 1,
 * {"a":[1]} is 2.  Also rejects NaN/Infinity, which json-c accepts even in
 * strict mode and which cannot be re-encoded as JSON. */
static int check_tree(struct json_object *o, int depth_left) {
        switch (json_object_get_type(o)) {

        case json_type_object:
                if (depth_left <= 0)
                        return -ELOOP;
                json_object_object_foreach(o, key, value) {
                        int r;

                        (void) key;
                        r = check_tree(value, depth_left - 1);
                        if (r < 0)
                                return r;
                }
                return 0;

        case json_type_array:
                if (depth_left <= 0)
                        return -ELOOP;
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        int r = check_tree(json_object_array_get_idx(o, i), depth_left - 1);
                        if (r < 0)
                                return r;
                }
                return 0;

        case json_type_double:
                return isfinite(json_object_get_double(o)) ? 0 : -EBADMSG;

        default:
                return 0;
        }
}

static bool is_json_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns -EINVAL for max_depth outside 1..1024, -EMSGSIZE if len does not
 * fit json-c's int length, -ENOMEM, or the errors documented in the header. */
int varlink_message_parse(const char *msg, size_t len, int max_depth, struct json_object **ret) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_tokener *tok;
        enum json_tokener_error e;
        size_t end;
        int r;

        assert(msg || len == 0);
        assert(ret);

        if (max_depth < 1 || max_depth > MAX_DEPTH_CEILING)
                return -EINVAL;
        if (len == 0)
                return -EBADMSG;
        if (len > INT_MAX)
                return -EMSGSIZE;
        if (!message_text_valid((const unsigned char *) msg, len))
                return -EBADMSG;

        /* One more level than ours, since json-c counts the innermost
         * scalar too; check_tree() then applies the exact limit. */
        tok = json_tokener_new_ex(max_depth + 1);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

        o = json_tokener_parse_ex(tok, msg, (int) len);
        e = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);

        if (e == json_tokener_error_depth)
                return -ELOOP;
        /* json_tokener_continue means the input ended inside the value. */
        if (!o || e != json_tokener_success)
                return -EBADMSG;

        /* Strict mode already refuses most trailing data; be sure anyway,
         * since a NUL or anything json-c stops at must not slip through. */
        for (size_t i = end; i < len; i++)
                if (!is_json_space(msg[i]))
                        return -EBADMSG;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;

        r = check_tree(o, max_depth);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}

/* Makes msg[key] an empty object, owned by msg, and returns it borrowed. */
static int add_empty_object(struct json_object *msg, const char *key, struct json_object **ret) {
        struct json_object *o;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (json_object_object_add(msg, key, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

/* A "\u0000" escape decodes to a NUL that would cut the C string short:
 * "a.b.C\u0000junk" must not pass as the valid name "a.b.C". */
static bool string_has_no_nul(struct json_object *s) {
        return (size_t) json_object_get_string_len(s) == strlen(json_object_get_string(s));
}

/* The one failure with an out-param: it says which key to blame (or NULL). */
static int bad_field(const char **ret_bad_field, const char *key) {
        if (ret_bad_field)
                *ret_bad_field = key;
        return -EBADMSG;
}

int varlink_call_from_json(struct json_object *msg, VarlinkCall *ret, const char **ret_bad_field) {
        struct json_object *parameters = NULL;
        const char *method = NULL;
        unsigned flags = 0;
        int r;

        assert(ret);

        if (!json_object_is_type(msg, json_type_object))
                return bad_field(ret_bad_field, NULL);

        json_object_object_foreach(msg, key, value) {
                unsigned flag;

                if (streq(key, "method")) {
                        if (!json_object_is_type(value, json_type_string) || !string_has_no_nul(value))
                                return bad_field(ret_bad_field, key);
                        method = json_object_get_string(value);
                        continue;
                }

                if (streq(key, "parameters")) {
                        /* null means "no parameters", same as absent. */
                        if (value && !json_object_is_type(value, json_type_object))
                                return bad_field(ret_bad_field, key);
                        parameters = value;
                        continue;
                }

                if (streq(key, "more"))
                        flag = VARLINK_CALL_MORE;
                else if (streq(key, "oneway"))
                        flag = VARLINK_CALL_ONEWAY;
                else if (streq(key, "upgrade"))
                        flag = VARLINK_CALL_UPGRADE;
                else
                        return bad_field(ret_bad_field, key);

                if (!json_object_is_type(value, json_type_boolean))
                        return bad_field(ret_bad_field, key);
                if (json_object_get_boolean(value))
                        flags |= flag;
        }

        if (!method || !varlink_method_name_valid(method))
                return bad_field(ret_bad_field, "method");

        if (!parameters) {
                r = add_empty_object(msg, "parameters", &parameters);
                if (r < 0)
                        return r;
        }

        *ret = (VarlinkCall) {
                .method = method,
                .parameters = parameters,
                .flags = flags,
        };
        return 0;
}

bool varlink_message_is_oneway(struct json_object *msg) {
        struct json_object *v;

        return json_object_is_type(msg, json_type_object) && json_object_object_get_ex(msg, "oneway", &v) &&
               json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

int varlink_reply_from_json(struct json_object *msg, VarlinkReply *ret) {
        struct json_object *parameters = NULL, *v;
        const char *error = NULL;
        bool continues = false;
        int r;

        assert(ret);

        if (!json_object_is_type(msg, json_type_object))
                return -EBADMSG;

        /* Liberal on the client side: unknown keys are ignored and null is
         * taken as absent, but a present key of the wrong type is an error. */
        if (json_object_object_get_ex(msg, "parameters", &v) && v) {
                if (!json_object_is_type(v, json_type_object))
                        return -EBADMSG;
                parameters = v;
        }
        if (json_object_object_get_ex(msg, "error", &v) && v) {
                if (!json_object_is_type(v, json_type_string) || !string_has_no_nul(v))
                        return -EBADMSG;
                error = json_object_get_string(v);
        }
        if (json_object_object_get_ex(msg, "continues", &v) && v) {
                if (!json_object_is_type(v, json_type_boolean))
                        return -EBADMSG;
                continues = json_object_get_boolean(v);
        }

        if (!parameters) {
                r = add_empty_object(msg, "parameters", &parameters);
                if (r < 0)
                        return r;
        }

        *ret = (VarlinkReply) {
                .parameters = parameters,
                .error = error,
                .continues = continues,
        };
        return 0;
}

/* ---- Names ------------------------------------------------------------- */

static bool is_alpha(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_alnum(char c) {
        return is_alpha(c) || (c >= '0' && c <= '9');
}

/* One interface segment, [A-Za-z0-9]([-]*[A-Za-z0-9])*, over [s, s+n):
 * alphanumerics with inner dashes, never a dash at either end. */
static bool segment_valid(const char *s, size_t n) {
        if (n == 0 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

/* [A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+ over [s, s+n) */
static bool interface_valid_n(const char *s, size_t n) {
        size_t segments = 0;

        if (n == 0 || !is_alpha(s[0]))
                return false;

        for (size_t i = 0; i <= n;) {
                const char *dot = memchr(s + i, '.', n - i);
                size_t seg = dot ? (size_t) (dot - (s + i)) : n - i;

                if (!segment_valid(s + i, seg))
                        return false;
                segments++;
                i += seg + 1;
        }

        return segments >= 2;
}

bool varlink_interface_name_valid(const char *name) {
        return name && interface_valid_n(name, strlen(name));
}

/* Where the method part starts, or NULL if the name is not valid. */
static const char *method_name_split(const char *name) {
        const char *dot;

        if (!name)
                return NULL;

        dot = strrchr(name, '.');
        if (!dot || !interface_valid_n(name, (size_t) (dot - name)))
                return NULL;

        /* [A-Z][A-Za-z0-9]* */
        if (!(dot[1] >= 'A' && dot[1] <= 'Z'))
                return NULL;
        for (const char *p = dot + 2; *p; p++)
                if (!is_alnum(*p))
                        return NULL;

        return dot + 1;
}

bool varlink_method_name_valid(const char *name) {
        return method_name_split(name) != NULL;
}

/* -EINVAL if full is not a valid method name, -ENOMEM. */
int varlink_method_split(const char *full, char **ret_interface, char **ret_method) {
        _cleanup_free_ char *interface = NULL, *method = NULL;
        const char *m;

        m = method_name_split(full);
        if (!m)
                return -EINVAL;

        if (ret_interface) {
                interface = strndup(full, (size_t) (m - 1 - full));
                if (!interface)
                        return -ENOMEM;
        }
        if (ret_method) {
                method = strdup(m);
                if (!method)
                        return -ENOMEM;
        }

        if (ret_interface)
                *ret_interface = TAKE_PTR(interface);
        if (ret_method)
                *ret_method = TAKE_PTR(method);
        return 0;
}

/* ---- Messages: encoding ----------------------------------------------- */

static int encode_object(struct json_object *o, VarlinkBlob **ret) {
        VarlinkBlob *b;
        const char *s;
        size_t len;

        s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!s)
                return -ENOMEM;

        b = varlink_blob_new(s, len);
        if (!b)
                return negative_errno();

        *ret = b;
        return 0;
}

static int add_bool(struct json_object *o, const char *key) {
        struct json_object *v;

        v = json_object_new_boolean(1);
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* Adds a reference to parameters (borrowed: the caller keeps its own), or
 * a fresh {} when NULL. */
static int add_parameters(struct json_object *o, struct json_object *parameters) {
        struct json_object *v;

        if (parameters && !json_object_is_type(parameters, json_type_object))
                return -EINVAL;

        v = parameters ? json_object_get(parameters) : json_object_new_object();
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, "parameters", v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* parameters is borrowed (may be NULL) and must be an object; -EINVAL for
 * a bad method name or non-object parameters. */
int varlink_call_encode(const char *method, struct json_object *parameters, unsigned flags, VarlinkBlob **ret) {
        _cleanup_json_ struct json_object *o = NULL;
        struct json_object *m;
        int r;

        assert(ret);

        if (!varlink_method_name_valid(method))
                return -EINVAL;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        m = json_object_new_string(method);
        if (!m)
                return -ENOMEM;
        if (json_object_object_add(o, "method", m) < 0) {
                json_object_put(m);
                return -ENOMEM;
        }

        r = add_parameters(o, parameters);
        if (r < 0)
                return r;

        if (flags & VARLINK_CALL_MORE) {
                r = add_bool(o, "more");
                if (r < 0)
                        return r;
        }
        if (flags & VARLINK_CALL_ONEWAY) {
                r = add_bool(o, "oneway");
                if (r < 0)
                        return r;
        }
        if (flags & VARLINK_CALL_UPGRADE) {
                r = add_bool(o, "upgrade");
                if (r < 0)
                        return r;
        }

        return encode_object(o, ret);
}

/* Key order is fixed: parameters, continues, error.  parameters is borrowed;
 * -EINVAL for non-object parameters or an error that is not a valid
 * qualified name. */
int varlink_reply_encode(struct json_object *parameters, const char *error, bool continues, VarlinkBlob **ret) {
        _cleanup_json_ struct json_object *o = NULL;
        int r;

        assert(ret);

        if (error && !varlink_method_name_valid(error))
                return -EINVAL;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;

        r = add_parameters(o, parameters);
        if (r < 0)
                return r;

        if (continues) {
                r = add_bool(o, "continues");
                if (r < 0)
                        return r;
        }

        if (error) {
                struct json_object *e = json_object_new_string(error);
                if (!e)
                        return -ENOMEM;
                if (json_object_object_add(o, "error", e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }

        return encode_object(o, ret);
}
