/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Audit records: canonical JSON, the hash chain, the writer's view of a
 * file's end and the offline verifier.  The canonical form is our own
 * printer over json-c trees because json-c has none (its output order is
 * insertion order and it escapes '/'); it is the same form as Python's
 * json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
 * for the values records hold, so third parties can check the chain. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "audit-record.h"
#include "macro.h"

/* Containers a record may nest: the record itself, then data. */
#define RECORD_MAX_DEPTH (AUDIT_DATA_MAX_DEPTH + 1)
#define DATA_KEY_MAX 64

/* ---- Names -------------------------------------------------------------- */

#define D_NONE  (1U << AUDIT_DECISION_NONE)
#define D_ALLOW (1U << AUDIT_DECISION_ALLOW)
#define D_DENY  (1U << AUDIT_DECISION_DENY)

static const struct {
        const char *name;
        unsigned decisions;
} kind_table[_AUDIT_KIND_MAX] = {
        [AUDIT_KIND_AUTH_OK]             = { "auth-ok", D_ALLOW },
        [AUDIT_KIND_AUTH_FAIL]           = { "auth-fail", D_DENY },
        [AUDIT_KIND_SESSION_OPEN]        = { "session-open", D_ALLOW | D_DENY },
        [AUDIT_KIND_SESSION_CLOSE]       = { "session-close", D_NONE },
        [AUDIT_KIND_SUBSCRIBE]           = { "subscribe", D_ALLOW | D_DENY },
        [AUDIT_KIND_UNSUBSCRIBE]         = { "unsubscribe", D_NONE },
        [AUDIT_KIND_TOKEN_MINT]          = { "token-mint", D_ALLOW },
        [AUDIT_KIND_TOKEN_DENY]          = { "token-deny", D_DENY },
        [AUDIT_KIND_TOKEN_REVOKE]        = { "token-revoke", D_NONE },
        [AUDIT_KIND_TOKEN_EXPIRE]        = { "token-expire", D_NONE },
        [AUDIT_KIND_MAP_ALLOW]           = { "map-allow", D_ALLOW },
        [AUDIT_KIND_MAP_DENY]            = { "map-deny", D_DENY },
        [AUDIT_KIND_UNMAP_ALLOW]         = { "unmap-allow", D_ALLOW },
        [AUDIT_KIND_UNMAP_DENY]          = { "unmap-deny", D_DENY },
        [AUDIT_KIND_POLICY_RELOAD_OK]    = { "policy-reload-ok", D_NONE },
        [AUDIT_KIND_POLICY_RELOAD_FAIL]  = { "policy-reload-fail", D_NONE },
        [AUDIT_KIND_DOMAIN_UP]           = { "domain-up", D_NONE },
        [AUDIT_KIND_DOMAIN_DOWN]         = { "domain-down", D_NONE },
        [AUDIT_KIND_KVMI_HANDSHAKE_OK]   = { "kvmi-handshake-ok", D_ALLOW },
        [AUDIT_KIND_KVMI_HANDSHAKE_FAIL] = { "kvmi-handshake-fail", D_DENY },
        [AUDIT_KIND_DAEMON_START]        = { "daemon-start", D_NONE },
        [AUDIT_KIND_DAEMON_STOP]         = { "daemon-stop", D_NONE },
        [AUDIT_KIND_ROTATE]              = { "rotate", D_NONE },
        [AUDIT_KIND_RECOVERED]           = { "recovered", D_NONE },
};

static const char *const decision_names[_AUDIT_DECISION_MAX] = {
        [AUDIT_DECISION_NONE] = "none",
        [AUDIT_DECISION_ALLOW] = "allow",
        [AUDIT_DECISION_DENY] = "deny",
};

static const char *const break_names[_AUDIT_BREAK_MAX] = {
        [AUDIT_BREAK_NONE] = "none",
        [AUDIT_BREAK_IO] = "io-error",
        [AUDIT_BREAK_BAD_JSON] = "bad-json",
        [AUDIT_BREAK_NOT_CANONICAL] = "not-canonical",
        [AUDIT_BREAK_BAD_FIELD] = "bad-field",
        [AUDIT_BREAK_HASH] = "hash-mismatch",
        [AUDIT_BREAK_PREV] = "prev-mismatch",
        [AUDIT_BREAK_SEQ_GAP] = "seq-gap",
        [AUDIT_BREAK_SWAPPED] = "swapped",
        [AUDIT_BREAK_SEQ_ORDER] = "seq-order",
        [AUDIT_BREAK_RESTART] = "chain-restart",
        [AUDIT_BREAK_TORN_TAIL] = "torn-tail",
        [AUDIT_BREAK_WITNESS] = "bad-witness",
        [AUDIT_BREAK_EMPTY] = "empty-file",
};

const char *audit_kind_to_string(AuditKind k) {
        if (k < 0 || k >= _AUDIT_KIND_MAX)
                return NULL;
        return kind_table[k].name;
}

AuditKind audit_kind_from_string(const char *s) {
        if (!s)
                return _AUDIT_KIND_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(kind_table); i++)
                if (streq(kind_table[i].name, s))
                        return (AuditKind) i;
        return _AUDIT_KIND_INVALID;
}

unsigned audit_kind_decisions(AuditKind k) {
        if (k < 0 || k >= _AUDIT_KIND_MAX)
                return 0;
        return kind_table[k].decisions;
}

const char *audit_decision_to_string(AuditDecision d) {
        if (d < 0 || d >= _AUDIT_DECISION_MAX)
                return NULL;
        return decision_names[d];
}

AuditDecision audit_decision_from_string(const char *s) {
        if (!s)
                return _AUDIT_DECISION_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(decision_names); i++)
                if (streq(decision_names[i], s))
                        return (AuditDecision) i;
        return _AUDIT_DECISION_INVALID;
}

const char *audit_break_to_string(AuditBreak b) {
        if (b >= _AUDIT_BREAK_MAX)
                return NULL;
        return break_names[b];
}

void audit_link_init(AuditLink *l) {
        l->seq = 0;
        memcpy(l->digest, AUDIT_ZERO_HASH, AUDIT_HEX_SIZE);
}

void audit_record_done(AuditRecord *r) {
        if (!r)
                return;
        if (r->root)
                json_object_put(r->root);
        r->root = NULL;
}

_printf_(3, 4) static int set_error(AuditError *e, AuditBreak kind, const char *fmt, ...) {
        va_list ap;

        if (e) {
                e->kind = kind;
                va_start(ap, fmt);
                vsnprintf(e->message, sizeof e->message, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

/* ---- SHA-256 ------------------------------------------------------------ */

static void hex_encode(const unsigned char *p, size_t n, char *out) {
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[p[i] >> 4];
                out[2 * i + 1] = hex[p[i] & 15];
        }
        out[2 * n] = 0;
}

static int sha256_hex(const void *data, size_t len, char out[static AUDIT_HEX_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;

        if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
                return -ENOMEM;
        hex_encode(md, 32, out);
        return 0;
}

static bool is_hash_hex(const char *s, size_t len) {
        if (len != AUDIT_HEX_SIZE - 1)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* ---- Canonical JSON ----------------------------------------------------- */

typedef struct Buf {
        char *p;
        size_t len, cap;
} Buf;

static int buf_put(Buf *b, const void *data, size_t n) {
        if (n >= SIZE_MAX - b->len)
                return -ENOMEM;
        if (b->len + n + 1 > b->cap) {
                size_t cap = MAX(b->cap * 2, b->len + n + 1);
                cap = MAX(cap, (size_t) 256);
                char *p = realloc(b->p, cap);
                if (!p)
                        return -ENOMEM;
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, data, n);
        b->len += n;
        b->p[b->len] = 0;
        return 0;
}

static int buf_puts(Buf *b, const char *s) {
        return buf_put(b, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
        unsigned char c = s[0];
        unsigned char lo = 0x80, hi = 0xBF;
        size_t len;

        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF)
                len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
                len = 3;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                len = 4;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
        } else
                return 0;
        if (n < len)
                return 0;
        if (s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if (s[i] < 0x80 || s[i] > 0xBF)
                        return 0;
        return len;
}

static int put_string(Buf *b, const char *str, size_t n) {
        const unsigned char *s = (const unsigned char *) str;
        size_t i = 0, run = 0;
        int r;

        r = buf_put(b, "\"", 1);
        if (r < 0)
                return r;
        while (i < n) {
                unsigned char c = s[i];
                char esc[7];
                const char *e = NULL;
                size_t elen = 2, l;

                if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
                        i++;
                        run++;
                        continue;
                }
                if (c >= 0x80) {
                        l = utf8_seq_len(s + i, n - i);
                        if (l > 0) {
                                i += l;
                                run += l;
                                continue;
                        }
                }
                /* flush the plain run before the byte needing work */
                r = buf_put(b, s + i - run, run);
                if (r < 0)
                        return r;
                run = 0;
                switch (c) {
                case '"':  e = "\\\""; break;
                case '\\': e = "\\\\"; break;
                case '\b': e = "\\b"; break;
                case '\t': e = "\\t"; break;
                case '\n': e = "\\n"; break;
                case '\f': e = "\\f"; break;
                case '\r': e = "\\r"; break;
                default:
                        if (c < 0x20) {
                                snprintf(esc, sizeof esc, "\\u%04x", c);
                                e = esc;
                                elen = 6;
                        } else {
                                e = "\xEF\xBF\xBD";     /* U+FFFD for a byte that is not UTF-8 */
                                elen = 3;
                        }
                }
                r = buf_put(b, e, elen);
                if (r < 0)
                        return r;
                i++;
        }
        r = buf_put(b, s + i - run, run);
        if (r < 0)
                return r;
        return buf_put(b, "\"", 1);
}

typedef struct Member {
        const char *key;
        struct json_object *value;
} Member;

static int member_cmp(const void *a, const void *b) {
        /* strcmp compares as unsigned char: UTF-8 byte order = code point order */
        return strcmp(((const Member *) a)->key, ((const Member *) b)->key);
}

static int put_value(Buf *b, struct json_object *o, const char *skip_key, int depth, int max_depth);

static int put_object(Buf *b, struct json_object *o, const char *skip_key, int depth, int max_depth) {
        _cleanup_free_ Member *m = NULL;
        size_t n = 0, cap = (size_t) json_object_object_length(o);
        bool first = true;
        int r;

        if (cap > 0) {
                m = calloc(cap, sizeof *m);
                if (!m)
                        return -ENOMEM;
        }
        json_object_object_foreach(o, key, val) {
                if (skip_key && streq(key, skip_key))
                        continue;
                if (n >= cap)
                        return -ENOMEM;         /* json-c lied about the length */
                m[n++] = (Member) { key, val };
        }
        if (n > 1)
                qsort(m, n, sizeof *m, member_cmp);

        r = buf_put(b, "{", 1);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (!first) {
                        r = buf_put(b, ",", 1);
                        if (r < 0)
                                return r;
                }
                first = false;
                r = put_string(b, m[i].key, strlen(m[i].key));
                if (r < 0)
                        return r;
                r = buf_put(b, ":", 1);
                if (r < 0)
                        return r;
                r = put_value(b, m[i].value, NULL, depth + 1, max_depth);
                if (r < 0)
                        return r;
        }
        return buf_put(b, "}", 1);
}

static int put_value(Buf *b, struct json_object *o, const char *skip_key, int depth, int max_depth) {
        char num[32];
        int64_t v;
        int r;

        switch (json_object_get_type(o)) {
        case json_type_null:
                return buf_puts(b, "null");
        case json_type_boolean:
                return buf_puts(b, json_object_get_boolean(o) ? "true" : "false");
        case json_type_int:
                v = json_object_get_int64(o);
                /* json-c keeps integers above INT64_MAX as uint64 and clamps here */
                if (v == INT64_MAX && json_object_get_uint64(o) != (uint64_t) INT64_MAX)
                        return -ERANGE;
                snprintf(num, sizeof num, "%" PRId64, v);
                return buf_puts(b, num);
        case json_type_double:
                return -EINVAL;
        case json_type_string:
                return put_string(b, json_object_get_string(o), (size_t) json_object_get_string_len(o));
        case json_type_object:
                if (depth > max_depth)
                        return -ELOOP;
                return put_object(b, o, skip_key, depth, max_depth);
        case json_type_array: {
                size_t n = json_object_array_length(o);
                if (depth > max_depth)
                        return -ELOOP;
                r = buf_put(b, "[", 1);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        if (i > 0) {
                                r = buf_put(b, ",", 1);
                                if (r < 0)
                                        return r;
                        }
                        r = put_value(b, json_object_array_get_idx(o, i), NULL, depth + 1, max_depth);
                        if (r < 0)
                                return r;
                }
                return buf_put(b, "]", 1);
        }
        }
        return -EINVAL;
}

int audit_json_canonical(struct json_object *o, const char *skip_key, int max_depth, char **ret, size_t *ret_len) {
        Buf b = {};
        int r;

        assert(ret);

        r = put_value(&b, o, skip_key, 1, max_depth);
        if (r >= 0 && !b.p)
                r = buf_put(&b, "", 0);
        if (r < 0) {
                free(b.p);
                return r;
        }
        *ret = b.p;
        if (ret_len)
                *ret_len = b.len;
        return 0;
}

/* ---- Time --------------------------------------------------------------- */

#define NSEC_PER_SEC 1000000000ULL

int audit_time_format(uint64_t realtime_ns, char buf[static AUDIT_TIME_SIZE]) {
        time_t secs = (time_t) (realtime_ns / NSEC_PER_SEC);
        unsigned nsec = (unsigned) (realtime_ns % NSEC_PER_SEC);
        struct tm tm;
        int n;

        if (!gmtime_r(&secs, &tm) || tm.tm_year + 1900 > 9999)
                return -ERANGE;
        n = snprintf(buf, AUDIT_TIME_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nsec);
        if (n != AUDIT_TIME_SIZE - 1)
                return -ERANGE;
        return 0;
}

static bool digits(const char *s, size_t n, unsigned *ret) {
        unsigned v = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        *ret = v;
        return true;
}

/* Exactly the form audit_time_format() writes; anything else (another
 * offset, fewer digits, 24:00, Feb 30) is refused. */
int audit_time_parse(const char *s, uint64_t *ret_ns) {
        unsigned year, mon, day, hour, min, sec, nsec;
        char back[AUDIT_TIME_SIZE];
        struct tm tm = {};
        time_t t;
        uint64_t ns;

        if (!s || strlen(s) != AUDIT_TIME_SIZE - 1)
                return -EINVAL;
        if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' ||
            s[29] != 'Z')
                return -EINVAL;
        if (!digits(s, 4, &year) || !digits(s + 5, 2, &mon) || !digits(s + 8, 2, &day) ||
            !digits(s + 11, 2, &hour) || !digits(s + 14, 2, &min) || !digits(s + 17, 2, &sec) ||
            !digits(s + 20, 9, &nsec))
                return -EINVAL;
        if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 59)
                return -EINVAL;
        tm.tm_year = (int) year - 1900;
        tm.tm_mon = (int) mon - 1;
        tm.tm_mday = (int) day;
        tm.tm_hour = (int) hour;
        tm.tm_min = (int) min;
        tm.tm_sec = (int) sec;
        t = timegm(&tm);
        if (t < 0 || (uint64_t) t > (UINT64_MAX - nsec) / NSEC_PER_SEC)
                return -ERANGE;
        ns = (uint64_t) t * NSEC_PER_SEC + nsec;
        if (audit_time_format(ns, back) < 0 || !streq(back, s))
                return -EINVAL;
        *ret_ns = ns;
        return 0;
}

/* ---- Building ----------------------------------------------------------- */

static bool data_key_valid(const char *k) {
        size_t n = strlen(k);

        if (n < 1 || n > DATA_KEY_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                      (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-'))
                        return false;
        return true;
}

/* Keys in ASCII keep "sorted by key" the same in every language's sense
 * (bytes, code points, UTF-16 units). */
static int check_data(struct json_object *o, int depth) {
        int r;

        if (depth > AUDIT_DATA_MAX_DEPTH)
                return -ELOOP;
        if (json_object_is_type(o, json_type_object)) {
                json_object_object_foreach(o, key, val) {
                        if (!data_key_valid(key))
                                return -EINVAL;
                        r = check_data(val, depth + 1);
                        if (r < 0)
                                return r;
                }
        } else if (json_object_is_type(o, json_type_array)) {
                size_t n = json_object_array_length(o);
                for (size_t i = 0; i < n; i++) {
                        r = check_data(json_object_array_get_idx(o, i), depth + 1);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int resolve_decision(AuditKind kind, AuditDecision d) {
        unsigned mask = audit_kind_decisions(kind);

        if (d < 0 || d >= _AUDIT_DECISION_MAX || mask == 0)
                return -EINVAL;
        if (mask & (1U << d))
                return d;
        if (d == AUDIT_DECISION_NONE && mask == D_ALLOW)
                return AUDIT_DECISION_ALLOW;
        if (d == AUDIT_DECISION_NONE && mask == D_DENY)
                return AUDIT_DECISION_DENY;
        return -EINVAL;
}

/* Members are written in canonical order by hand (the record's shape is
 * fixed), "data" through the generic printer; the parser re-serializes
 * generically and compares, so the two cannot drift apart unnoticed. */
static int put_member(Buf *b, bool *first, const char *key) {
        int r;

        if (!*first) {
                r = buf_put(b, ",", 1);
                if (r < 0)
                        return r;
        }
        *first = false;
        r = buf_put(b, "\"", 1);
        if (r >= 0)
                r = buf_puts(b, key);
        if (r >= 0)
                r = buf_put(b, "\":", 2);
        return r;
}

static int put_int_member(Buf *b, bool *first, const char *key, int64_t v) {
        char num[24];
        int r = put_member(b, first, key);

        if (r < 0)
                return r;
        snprintf(num, sizeof num, "%" PRId64, v);
        return buf_puts(b, num);
}

static int put_str_member(Buf *b, bool *first, const char *key, const char *v) {
        int r = put_member(b, first, key);

        if (r < 0)
                return r;
        if (!v)
                return buf_puts(b, "null");
        return put_string(b, v, strlen(v));
}

/* The record without "hash"; *ret_hash_at is where "hash" goes (before
 * "kind"). */
static int build_hashless(const AuditEvent *ev, int decision, const AuditLink *prev, const char *time,
                          uint64_t mono_ns, Buf *b, size_t *ret_hash_at) {
        bool first = true, f;
        int r;

        r = buf_put(b, "{", 1);
        if (r >= 0)
                r = put_member(b, &first, "data");
        if (r >= 0)
                r = ev->data ? put_value(b, ev->data, NULL, 2, RECORD_MAX_DEPTH) : buf_puts(b, "{}");
        if (r >= 0)
                r = put_str_member(b, &first, "decision", decision_names[decision]);
        if (r >= 0)
                r = buf_put(b, ",", 1);
        if (r < 0)
                return r;
        *ret_hash_at = b->len;
        first = true;
        r = put_str_member(b, &first, "kind", kind_table[ev->kind].name);
        if (r >= 0)
                r = put_int_member(b, &first, "mono_ns", (int64_t) mono_ns);

        /* object: target, uuid */
        if (r >= 0)
                r = put_member(b, &first, "object");
        if (r >= 0)
                r = buf_put(b, "{", 1);
        f = true;
        if (r >= 0 && ev->target)
                r = put_str_member(b, &f, "target", ev->target);
        if (r >= 0 && ev->uuid)
                r = put_str_member(b, &f, "uuid", ev->uuid);
        if (r >= 0)
                r = buf_put(b, "}", 1);

        if (r >= 0)
                r = put_str_member(b, &first, "prev", prev->digest);
        if (r >= 0)
                r = put_str_member(b, &first, "reason", ev->reason);
        if (r >= 0)
                r = put_str_member(b, &first, "rule", ev->rule);
        if (r >= 0)
                r = put_int_member(b, &first, "seq", (int64_t) (prev->seq + 1));

        /* subject: cid, gid, introspector, pid, uid */
        if (r >= 0)
                r = put_member(b, &first, "subject");
        if (r >= 0)
                r = buf_put(b, "{", 1);
        f = true;
        if (r >= 0 && ev->cid)
                r = put_int_member(b, &f, "cid", (int64_t) ev->cid);
        if (r >= 0 && ev->peer)
                r = put_int_member(b, &f, "gid", (int64_t) ev->peer->gid);
        if (r >= 0 && ev->introspector)
                r = put_str_member(b, &f, "introspector", ev->introspector);
        if (r >= 0 && ev->peer)
                r = put_int_member(b, &f, "pid", (int64_t) ev->peer->pid);
        if (r >= 0 && ev->peer)
                r = put_int_member(b, &f, "uid", (int64_t) ev->peer->uid);
        if (r >= 0)
                r = buf_put(b, "}", 1);

        if (r >= 0)
                r = put_str_member(b, &first, "time", time);
        if (r >= 0)
                r = put_int_member(b, &first, "v", AUDIT_FORMAT_VERSION);
        if (r >= 0)
                r = buf_put(b, "}", 1);
        return r;
}

int audit_record_build(const AuditEvent *ev, const AuditLink *prev, uint64_t realtime_ns, uint64_t mono_ns,
                       char **ret_line, size_t *ret_len, AuditLink *ret_link) {
        _cleanup_free_ char *hashless = NULL, *line = NULL;
        char tbuf[AUDIT_TIME_SIZE], hash[AUDIT_HEX_SIZE];
        Buf b = {};
        AuditLink link;
        size_t hash_at = 0, len;
        int decision, r;

        assert(ev);
        assert(prev);
        assert(ret_line);
        assert(ret_link);

        if (ev->kind < 0 || ev->kind >= _AUDIT_KIND_MAX)
                return -EINVAL;
        decision = resolve_decision(ev->kind, ev->decision);
        if (decision < 0)
                return decision;
        if (prev->seq >= (uint64_t) INT64_MAX || mono_ns > (uint64_t) INT64_MAX)
                return -ERANGE;
        if (!is_hash_hex(prev->digest, strlen(prev->digest)))
                return -EINVAL;
        if (ev->data) {
                if (!json_object_is_type(ev->data, json_type_object))
                        return -EINVAL;
                r = check_data(ev->data, 1);
                if (r < 0)
                        return r;
        }
        r = audit_time_format(realtime_ns, tbuf);
        if (r < 0)
                return r;

        r = build_hashless(ev, decision, prev, tbuf, mono_ns, &b, &hash_at);
        hashless = b.p;
        if (r < 0)
                return r;
        r = sha256_hex(hashless, b.len, hash);
        if (r < 0)
                return r;

        /* the line: "hash" spliced in at its sorted place */
        len = b.len + strlen("\"hash\":\"\",") + AUDIT_HEX_SIZE - 1;
        if (len > AUDIT_LINE_MAX)
                return -E2BIG;
        line = malloc(len + 1);
        if (!line)
                return -ENOMEM;
        memcpy(line, hashless, hash_at);
        snprintf(line + hash_at, len + 1 - hash_at, "\"hash\":\"%s\",%s", hash, hashless + hash_at);

        link.seq = prev->seq + 1;
        r = sha256_hex(line, len, link.digest);
        if (r < 0)
                return r;

        *ret_line = TAKE_PTR(line);
        if (ret_len)
                *ret_len = len;
        *ret_link = link;
        return 0;
}

/* ---- Parsing ------------------------------------------------------------ */

static const char *const record_keys[] = {
        "data", "decision", "hash", "kind", "mono_ns", "object", "prev",
        "reason", "rule", "seq", "subject", "time", "v",
};

static bool get_uint(struct json_object *o, uint64_t max, uint64_t *ret) {
        int64_t v;

        if (!json_object_is_type(o, json_type_int))
                return false;
        v = json_object_get_int64(o);
        if (v < 0 || (uint64_t) v > max)
                return false;
        *ret = (uint64_t) v;
        return true;
}

static int check_members(struct json_object *o, const char *what, const char *const *keys, size_t n_keys,
                         AuditError *error) {
        json_object_object_foreach(o, key, val) {
                bool known = false;
                (void) val;
                for (size_t i = 0; i < n_keys; i++)
                        if (streq(keys[i], key))
                                known = true;
                if (!known)
                        return set_error(error, AUDIT_BREAK_BAD_FIELD, "unknown member \"%s\" in %s", key, what);
        }
        return 0;
}

static int check_subject_object(struct json_object *root, AuditError *error) {
        static const char *const subject_keys[] = { "cid", "gid", "introspector", "pid", "uid" };
        static const char *const object_keys[] = { "target", "uuid" };
        struct json_object *s = json_object_object_get(root, "subject");
        struct json_object *o = json_object_object_get(root, "object");
        uint64_t u;
        int r;

        if (!json_object_is_type(s, json_type_object))
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"subject\" is not an object");
        r = check_members(s, "subject", subject_keys, ELEMENTSOF(subject_keys), error);
        if (r < 0)
                return r;
        json_object_object_foreach(s, key, val) {
                if (streq(key, "introspector")) {
                        if (!json_object_is_type(val, json_type_string))
                                return set_error(error, AUDIT_BREAK_BAD_FIELD, "subject.introspector is not a string");
                } else if (!get_uint(val, UINT32_MAX, &u))
                        return set_error(error, AUDIT_BREAK_BAD_FIELD, "subject.%s is not an unsigned 32-bit integer", key);
        }
        if (!json_object_is_type(o, json_type_object))
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"object\" is not an object");
        r = check_members(o, "object", object_keys, ELEMENTSOF(object_keys), error);
        if (r < 0)
                return r;
        json_object_object_foreach(o, okey, oval)
                if (!json_object_is_type(oval, json_type_string))
                        return set_error(error, AUDIT_BREAK_BAD_FIELD, "object.%s is not a string", okey);
        return 0;
}

static int get_hex_member(struct json_object *root, const char *key, char out[static AUDIT_HEX_SIZE],
                          AuditError *error) {
        struct json_object *v = json_object_object_get(root, key);

        if (!json_object_is_type(v, json_type_string) ||
            !is_hash_hex(json_object_get_string(v), (size_t) json_object_get_string_len(v)))
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"%s\" is not 64 lowercase hex digits", key);
        memcpy(out, json_object_get_string(v), AUDIT_HEX_SIZE);
        return 0;
}

static int check_fields(struct json_object *root, AuditRecord *rec, AuditError *error) {
        struct json_object *v;
        uint64_t u;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(record_keys); i++)
                if (!json_object_object_get_ex(root, record_keys[i], NULL))
                        return set_error(error, AUDIT_BREAK_BAD_FIELD, "member \"%s\" is missing", record_keys[i]);
        r = check_members(root, "the record", record_keys, ELEMENTSOF(record_keys), error);
        if (r < 0)
                return r;

        if (!get_uint(json_object_object_get(root, "v"), UINT32_MAX, &u) || u != AUDIT_FORMAT_VERSION)
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"v\" is not %d (unsupported format version)",
                                 AUDIT_FORMAT_VERSION);
        if (!get_uint(json_object_object_get(root, "seq"), INT64_MAX, &rec->seq) || rec->seq == 0)
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"seq\" is not a positive integer");
        if (!get_uint(json_object_object_get(root, "mono_ns"), INT64_MAX, &rec->mono_ns))
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"mono_ns\" is not a non-negative integer");
        v = json_object_object_get(root, "time");
        if (!json_object_is_type(v, json_type_string) || audit_time_parse(json_object_get_string(v), &rec->realtime_ns) < 0)
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"time\" is not YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ");
        v = json_object_object_get(root, "kind");
        rec->kind = json_object_is_type(v, json_type_string) ? audit_kind_from_string(json_object_get_string(v))
                                                             : _AUDIT_KIND_INVALID;
        if (rec->kind < 0)
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"kind\" is not a known event kind");
        v = json_object_object_get(root, "decision");
        rec->decision = json_object_is_type(v, json_type_string) ? audit_decision_from_string(json_object_get_string(v))
                                                                 : _AUDIT_DECISION_INVALID;
        if (rec->decision < 0)
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"decision\" is not allow, deny or none");
        if (!(audit_kind_decisions(rec->kind) & (1U << rec->decision)))
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "decision \"%s\" is not possible for kind \"%s\"",
                                 decision_names[rec->decision], kind_table[rec->kind].name);
        r = check_subject_object(root, error);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 2; i++) {
                const char *k = i == 0 ? "rule" : "reason";
                v = json_object_object_get(root, k);
                if (v && !json_object_is_type(v, json_type_string))
                        return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"%s\" is neither a string nor null", k);
        }
        v = json_object_object_get(root, "data");
        if (!json_object_is_type(v, json_type_object))
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "\"data\" is not an object");
        /* The builder's rule, so a record it could not have written is refused. */
        if (check_data(v, 1) < 0)
                return set_error(error, AUDIT_BREAK_BAD_FIELD,
                                 "a key in \"data\" is not 1 to 64 characters from [A-Za-z0-9_-]");
        r = get_hex_member(root, "prev", rec->prev, error);
        if (r < 0)
                return r;
        r = get_hex_member(root, "hash", rec->hash, error);
        if (r < 0)
                return r;
        if ((rec->seq == 1) != streq(rec->prev, AUDIT_ZERO_HASH))
                return set_error(error, AUDIT_BREAK_BAD_FIELD,
                                 rec->seq == 1 ? "seq 1 must have prev 0...0" : "only seq 1 may have prev 0...0");
        return 0;
}

int audit_record_parse(const char *line, size_t len, AuditRecord *ret, AuditError *error) {
        _cleanup_json_ struct json_object *o = NULL;
        _cleanup_free_ char *canon = NULL, *hashless = NULL;
        AuditRecord rec = {};
        char hash[AUDIT_HEX_SIZE];
        struct json_tokener *tok;
        enum json_tokener_error e;
        size_t clen, hlen, end;
        int r;

        assert(line || len == 0);
        assert(ret);

        if (len == 0)
                return set_error(error, AUDIT_BREAK_BAD_JSON, "empty line");
        if (len > AUDIT_LINE_MAX)
                return set_error(error, AUDIT_BREAK_BAD_JSON, "line longer than %u bytes", AUDIT_LINE_MAX);
        if (memchr(line, '\n', len) || memchr(line, 0, len))
                return set_error(error, AUDIT_BREAK_BAD_JSON, "line contains a newline or NUL byte");

        tok = json_tokener_new_ex(RECORD_MAX_DEPTH + 2);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, line, (int) len);
        e = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!o || e != json_tokener_success || end != len)
                return set_error(error, AUDIT_BREAK_BAD_JSON, "not one JSON value: %s",
                                 e == json_tokener_continue ? "unexpected end of line"
                                 : e != json_tokener_success ? json_tokener_error_desc(e) : "trailing characters");
        if (!json_object_is_type(o, json_type_object))
                return set_error(error, AUDIT_BREAK_BAD_JSON, "not a JSON object");

        r = audit_json_canonical(o, NULL, RECORD_MAX_DEPTH, &canon, &clen);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return set_error(error, AUDIT_BREAK_BAD_FIELD, "%s",
                                 r == -ELOOP ? "nested too deeply" : "a number is not a 64-bit integer");
        if (clen != len || memcmp(canon, line, len) != 0) {
                size_t i = 0;
                while (i < len && i < clen && canon[i] == line[i])
                        i++;
                return set_error(error, AUDIT_BREAK_NOT_CANONICAL,
                                 "not in canonical form from byte %zu "
                                 "(spacing, member order, escaping or a duplicate member)",
                                 i + 1);
        }

        r = check_fields(o, &rec, error);
        if (r < 0)
                return r;

        r = audit_json_canonical(o, "hash", RECORD_MAX_DEPTH, &hashless, &hlen);
        if (r < 0)
                return r;
        r = sha256_hex(hashless, hlen, hash);
        if (r < 0)
                return r;
        if (!streq(hash, rec.hash))
                return set_error(error, AUDIT_BREAK_HASH, "\"hash\" does not match the record's contents (edited)");
        r = sha256_hex(line, len, rec.digest);
        if (r < 0)
                return r;

        rec.root = TAKE_PTR(o);
        *ret = rec;
        return 0;
}

/* ---- The end of a file, for resuming ------------------------------------ */

int audit_tail_scan(const char *buf, size_t len, bool at_start, AuditTail *ret, AuditError *error,
                    size_t *error_offset) {
        AuditTail t = {};
        AuditRecord rec;
        const char *nl;
        size_t u_start, u_len;
        int r;

        assert(buf || len == 0);
        assert(ret);

        audit_link_init(&t.link);
        nl = len > 0 ? memrchr(buf, '\n', len) : NULL;
        if (!nl && !at_start) {
                if (error_offset)
                        *error_offset = 0;
                return set_error(error, AUDIT_BREAK_BAD_JSON, "no line ends in the last %zu bytes", len);
        }
        u_start = nl ? (size_t) (nl - buf) + 1 : 0;
        u_len = len - u_start;

        if (u_len > 0) {
                /* A valid record missing only its newline is kept: once the
                 * writer appends "\n" it is an ordinary line, as the verifier
                 * will see it. */
                r = audit_record_parse(buf + u_start, u_len, &rec, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0) {
                        t.link.seq = rec.seq;
                        memcpy(t.link.digest, rec.digest, AUDIT_HEX_SIZE);
                        audit_record_done(&rec);
                        t.have_record = t.unterminated = true;
                        *ret = t;
                        return 0;
                }
                if (u_len > AUDIT_LINE_MAX) {
                        if (error_offset)
                                *error_offset = u_start;
                        return set_error(error, AUDIT_BREAK_BAD_JSON,
                                         "the unterminated last line is longer than a record (%zu bytes)", u_len);
                }
                t.torn = true;
                t.torn_offset = u_start;
                t.torn_bytes = u_len;
                r = sha256_hex(buf + u_start, u_len, t.torn_sha256);
                if (r < 0)
                        return r;
        }

        if (nl) {
                size_t end = u_start - 1, ls;
                const char *p = end > 0 ? memrchr(buf, '\n', end) : NULL;
                AuditError e;

                ls = p ? (size_t) (p - buf) + 1 : 0;
                if (!p && !at_start) {
                        if (error_offset)
                                *error_offset = 0;
                        return set_error(error, AUDIT_BREAK_BAD_JSON, "the last complete line is longer than a record");
                }
                /* Only the unterminated tail is what a crash leaves; a bad
                 * complete line is damage or tampering, not ours to paper over. */
                r = audit_record_parse(buf + ls, end - ls, &rec, &e);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        if (error_offset)
                                *error_offset = ls;
                        return set_error(error, e.kind, "the last complete line is not a valid record: %s", e.message);
                }
                t.link.seq = rec.seq;
                memcpy(t.link.digest, rec.digest, AUDIT_HEX_SIZE);
                t.have_record = true;
                audit_record_done(&rec);
        }
        *ret = t;
        return 0;
}

/* ---- Verification ------------------------------------------------------- */

typedef struct LineReader {
        int fd;
        char *buf;
        size_t cap, start, end;
        bool eof;
} LineReader;

/* 1 and a line (terminated or, at the end, not), 0 at the end, -E2BIG for
 * a line longer than AUDIT_LINE_MAX, -errno. */
static int reader_next(LineReader *r, const char **ret_line, size_t *ret_len, bool *ret_terminated) {
        for (;;) {
                char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
                ssize_t n;

                if (nl) {
                        *ret_line = r->buf + r->start;
                        *ret_len = (size_t) (nl - (r->buf + r->start));
                        *ret_terminated = true;
                        r->start = (size_t) (nl - r->buf) + 1;
                        return 1;
                }
                if (r->end - r->start > AUDIT_LINE_MAX)
                        return -E2BIG;
                if (r->eof) {
                        if (r->end == r->start)
                                return 0;
                        *ret_line = r->buf + r->start;
                        *ret_len = r->end - r->start;
                        *ret_terminated = false;
                        r->start = r->end;
                        return 1;
                }
                if (r->start > 0) {
                        memmove(r->buf, r->buf + r->start, r->end - r->start);
                        r->end -= r->start;
                        r->start = 0;
                }
                n = read(r->fd, r->buf + r->end, r->cap - r->end);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        r->eof = true;
                else
                        r->end += (size_t) n;
        }
}

typedef struct Verifier {
        AuditVerifyResult *res;
        const char *const *paths;
        bool have_last;
        AuditLink last;
        /* an invalid line, waiting for the next line to witness it */
        bool torn;
        size_t torn_file;
        uint64_t torn_line;
        size_t torn_bytes;
        char torn_sha256[AUDIT_HEX_SIZE];
        AuditError torn_error;
        /* a seq jump, waiting for the next line to tell deletion from a swap */
        bool gap;
        size_t gap_file;
        uint64_t gap_line, gap_expected, gap_found;
} Verifier;

_printf_(5, 6) static int verify_break(Verifier *v, AuditBreak kind, size_t file, uint64_t line, const char *fmt, ...) {
        va_list ap;

        v->res->error = kind;
        v->res->file_index = file;
        v->res->file = v->paths[file];
        v->res->line = line;
        va_start(ap, fmt);
        vsnprintf(v->res->message, sizeof v->res->message, fmt, ap);
        va_end(ap);
        return AUDIT_VERIFY_BROKEN;
}

static int report_gap(Verifier *v, bool next_is_missing) {
        uint64_t missing = v->gap_found - v->gap_expected;

        if (next_is_missing)
                return verify_break(v, AUDIT_BREAK_SWAPPED, v->gap_file, v->gap_line,
                                    "seq %" PRIu64 " comes before seq %" PRIu64 ": lines swapped", v->gap_found,
                                    v->gap_expected);
        if (v->gap_line == 1 && v->gap_file > 0)
                return verify_break(v, AUDIT_BREAK_SEQ_GAP, v->gap_file, v->gap_line,
                                    "%" PRIu64 " record(s) missing (seq %" PRIu64 "..%" PRIu64 ") "
                                    "between %s and this file: "
                                    "a file truncated or left out", missing, v->gap_expected, v->gap_found - 1,
                                    v->paths[v->gap_file - 1]);
        return verify_break(v, AUDIT_BREAK_SEQ_GAP, v->gap_file, v->gap_line,
                            "%" PRIu64 " record(s) missing before this line (seq %" PRIu64 " expected, found %" PRIu64
                            "): deleted", missing, v->gap_expected, v->gap_found);
}

static int report_torn(Verifier *v, const char *why) {
        return verify_break(v, v->torn_error.kind, v->torn_file, v->torn_line, "%s; %s", v->torn_error.message, why);
}

static bool record_witness(const AuditRecord *rec, uint64_t *ret_bytes, const char **ret_sha) {
        struct json_object *data = json_object_object_get(rec->root, "data"), *b, *s;

        if (!json_object_object_get_ex(data, AUDIT_DATA_TORN_SHA256, &s))
                return false;
        b = json_object_object_get(data, AUDIT_DATA_TORN_BYTES);
        *ret_bytes = json_object_is_type(b, json_type_int) && json_object_get_int64(b) >= 0
                ? (uint64_t) json_object_get_int64(b) : UINT64_MAX;
        *ret_sha = json_object_is_type(s, json_type_string) ? json_object_get_string(s) : "";
        return true;
}

/* One line of paths[file]. Returns 0 to go on, AUDIT_VERIFY_BROKEN, -ENOMEM. */
static int verify_line(Verifier *v, size_t file, uint64_t ln, const char *line, size_t len, bool terminated,
                       bool last_file) {
        AuditRecord rec;
        AuditError e;
        uint64_t wbytes;
        const char *wsha;
        bool witness;
        int r;

        r = audit_record_parse(line, len, &rec, &e);
        if (r == -ENOMEM)
                return r;

        if (v->gap) {
                bool swapped = r >= 0 && rec.seq == v->gap_expected;
                if (r >= 0)
                        audit_record_done(&rec);
                return report_gap(v, swapped);
        }

        if (!terminated && last_file) {
                if (r >= 0)
                        audit_record_done(&rec);
                if (v->torn)
                        return report_torn(v, "not followed by a record that witnesses it");
                return verify_break(v, AUDIT_BREAK_TORN_TAIL, file, ln,
                                    "the last line has no newline: a torn write "
                                    "(kvmid recovers it when it next opens the file)");
        }

        if (r < 0) {
                if (v->torn)
                        return report_torn(v, "not followed by a record that witnesses it");
                v->torn = true;
                v->torn_file = file;
                v->torn_line = ln;
                v->torn_bytes = len;
                v->torn_error = e;
                r = sha256_hex(line, len, v->torn_sha256);
                if (r < 0)
                        return r;
                return 0;
        }

        witness = record_witness(&rec, &wbytes, &wsha);
        if (v->torn) {
                if (!witness || (rec.kind != AUDIT_KIND_RECOVERED && rec.kind != AUDIT_KIND_ROTATE)) {
                        audit_record_done(&rec);
                        return report_torn(v, "not followed by a recovered record that witnesses it");
                }
                if (wbytes != v->torn_bytes || !streq(wsha, v->torn_sha256)) {
                        audit_record_done(&rec);
                        return report_torn(v, "the recovered record after it describes other bytes");
                }
                v->torn = false;
                v->res->torn++;
        } else if (witness) {
                audit_record_done(&rec);
                return verify_break(v, AUDIT_BREAK_WITNESS, file, ln,
                                    "witnesses a torn line before it, but there is none (a line removed?)");
        }

        if (!v->have_last) {
                /* The writer starts every file with seq 1 (a new chain, or a
                 * recovered record after a torn first line) or a rotate
                 * record: anything else had records before it. */
                if (rec.seq != 1 && rec.kind != AUDIT_KIND_ROTATE) {
                        uint64_t s = rec.seq;
                        AuditKind k = rec.kind;

                        audit_record_done(&rec);
                        return verify_break(v, AUDIT_BREAK_SEQ_GAP, file, ln,
                                            "the first record is seq %" PRIu64 " (%s), neither the start of a chain "
                                            "(seq 1) nor a rotate record: the records before it are missing",
                                            s, audit_kind_to_string(k));
                }
                v->res->first_seq = rec.seq;
                memcpy(v->res->first_prev, rec.prev, AUDIT_HEX_SIZE);
        } else if (rec.seq == 1) {
                audit_record_done(&rec);
                return verify_break(v, AUDIT_BREAK_RESTART, file, ln,
                                    "a new chain starts here after seq %" PRIu64 ": the log was restarted from "
                                    "scratch%s", v->last.seq, ln == 1 ? ", or the files are out of order" : "");
        } else if (rec.seq < v->last.seq + 1) {
                uint64_t s = rec.seq;
                audit_record_done(&rec);
                if (ln == 1 && file > 0)
                        return verify_break(v, AUDIT_BREAK_SEQ_ORDER, file, ln,
                                            "seq %" PRIu64 " at the start of this file is not after seq %" PRIu64
                                            " at the end of %s: files out of order?", s, v->last.seq, v->paths[file - 1]);
                return verify_break(v, AUDIT_BREAK_SEQ_ORDER, file, ln,
                                    "seq %" PRIu64 " after seq %" PRIu64 ": a line duplicated or moved", s, v->last.seq);
        } else if (rec.seq > v->last.seq + 1) {
                v->gap = true;
                v->gap_file = file;
                v->gap_line = ln;
                v->gap_expected = v->last.seq + 1;
                v->gap_found = rec.seq;
                audit_record_done(&rec);
                return 0;
        } else if (!streq(rec.prev, v->last.digest)) {
                audit_record_done(&rec);
                if (ln == 1 && file > 0)
                        return verify_break(v, AUDIT_BREAK_PREV, file, ln,
                                            "\"prev\" does not match the last line of %s: that line was modified, "
                                            "or this file belongs to another chain", v->paths[file - 1]);
                return verify_break(v, AUDIT_BREAK_PREV, file, ln,
                                    "\"prev\" does not match the line before: that line was modified, or a record "
                                    "replaced or inserted");
        }

        v->have_last = true;
        v->last.seq = rec.seq;
        memcpy(v->last.digest, rec.digest, AUDIT_HEX_SIZE);
        v->res->records++;
        v->res->last_seq = rec.seq;
        memcpy(v->res->last_digest, rec.digest, AUDIT_HEX_SIZE);
        audit_record_done(&rec);
        return 0;
}

static int verify_file(Verifier *v, LineReader *rd, size_t file, bool last_file) {
        uint64_t ln = 0;
        int r;

        for (;;) {
                const char *line = NULL;
                size_t len = 0;
                bool terminated = false;

                r = reader_next(rd, &line, &len, &terminated);
                if (r == -E2BIG) {
                        if (v->gap)
                                return report_gap(v, false);
                        if (v->torn)
                                return report_torn(v, "not followed by a record that witnesses it");
                        return verify_break(v, AUDIT_BREAK_BAD_JSON, file, ln + 1, "line longer than %u bytes",
                                            AUDIT_LINE_MAX);
                }
                if (r < 0) {
                        v->res->io_error = r;
                        return verify_break(v, AUDIT_BREAK_IO, file, ln + 1, "cannot read: %s", strerror(-r));
                }
                if (r == 0) {
                        if (ln > 0)
                                return 0;
                        /* kvmid writes daemon-start right after creating the
                         * log, and a rotated file before it gets its name */
                        if (v->gap)
                                return report_gap(v, false);
                        if (v->torn)
                                return report_torn(v, "not followed by a record that witnesses it");
                        return verify_break(v, AUDIT_BREAK_EMPTY, file, 0,
                                            "empty file: no records (emptied, or not an audit log)");
                }
                ln++;
                r = verify_line(v, file, ln, line, len, terminated, last_file);
                if (r != 0)
                        return r;
        }
}

int audit_verify_files(const char *const *paths, size_t n, AuditVerifyResult *ret) {
        AuditVerifyResult res = {};
        Verifier v = { .res = &res, .paths = paths };
        LineReader rd = {};
        int r = 0;

        assert(paths || n == 0);
        assert(ret);

        memcpy(res.first_prev, AUDIT_ZERO_HASH, AUDIT_HEX_SIZE);
        memcpy(res.last_digest, AUDIT_ZERO_HASH, AUDIT_HEX_SIZE);
        audit_link_init(&v.last);
        rd.cap = 2 * ((size_t) AUDIT_LINE_MAX + 1);
        rd.buf = malloc(rd.cap);
        if (!rd.buf)
                return -ENOMEM;

        for (size_t i = 0; i < n && r == 0; i++) {
                _cleanup_close_ int fd = open(paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        res.io_error = -errno;
                        r = verify_break(&v, AUDIT_BREAK_IO, i, 0, "cannot open: %s", strerror(errno));
                        break;
                }
                rd.fd = fd;
                rd.start = rd.end = 0;
                rd.eof = false;
                r = verify_file(&v, &rd, i, i + 1 == n);
                if (r == 0)
                        res.files++;
        }
        if (r == 0 && v.gap)
                r = report_gap(&v, false);
        if (r == 0 && v.torn)
                r = report_torn(&v, "at the end of the log, not witnessed by a recovered record");
        free(rd.buf);
        if (r < 0)
                return r;
        *ret = res;
        return r;
}
