/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Unit tests for proto/varlink-wire.c: framing, output queue, parsing,
 * call/reply interpretation, names and encoding. */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "varlink-wire.h"

/* String literal with its exact length, embedded NULs included. */
#define LIT(s) (s), (sizeof(s) - 1)

static void feed_ok(VarlinkReader *r, const char *data, size_t len) {
        ck_assert_int_eq(varlink_reader_feed(r, data, len), 0);
}

static void expect_msg(VarlinkReader *r, const char *expected) {
        const char *msg = NULL;
        size_t len = 0;

        ck_assert_int_eq(varlink_reader_next(r, &msg, &len), 1);
        ck_assert_uint_eq(len, strlen(expected));
        ck_assert(memcmp(msg, expected, len) == 0);
        ck_assert_int_eq(msg[len], 0);
}

static void expect_none(VarlinkReader *r) {
        const char *msg = NULL;
        size_t len = 0;

        ck_assert_int_eq(varlink_reader_next(r, &msg, &len), 0);
}

/* ---- reader ------------------------------------------------------------ */

START_TEST(reader_byte_by_byte) {
        static const char wire[] = "{\"method\":\"a.b.C\"}";
        VarlinkReader *r = varlink_reader_new(0);

        ck_assert_ptr_nonnull(r);
        expect_none(r);
        for (size_t i = 0; i < sizeof(wire) - 1; i++) {
                feed_ok(r, wire + i, 1);
                expect_none(r);
                ck_assert_uint_eq(varlink_reader_pending(r), i + 1);
        }
        feed_ok(r, "", 1);     /* the NUL */
        expect_msg(r, wire);
        expect_none(r);
        ck_assert_uint_eq(varlink_reader_pending(r), 0);
        varlink_reader_free(r);
}
END_TEST

START_TEST(reader_several_per_feed) {
        VarlinkReader *r = varlink_reader_new(0);

        feed_ok(r, LIT("a\0bb\0\0ccc"));
        expect_msg(r, "a");
        expect_msg(r, "bb");
        expect_msg(r, "");              /* empty message: framing is not parsing */
        expect_none(r);
        ck_assert_uint_eq(varlink_reader_pending(r), 3);
        feed_ok(r, LIT("d\0e"));
        expect_msg(r, "cccd");
        expect_none(r);
        ck_assert_uint_eq(varlink_reader_pending(r), 1);
        varlink_reader_free(r);
}
END_TEST

START_TEST(reader_oversize) {
        char big[32];
        VarlinkReader *r;

        memset(big, 'x', sizeof(big));

        /* Exactly at the limit: fine. */
        r = varlink_reader_new(16);
        feed_ok(r, big, 16);
        expect_none(r);
        feed_ok(r, "", 1);
        ck_assert_int_eq(varlink_reader_next(r, NULL, NULL), 1);
        expect_none(r);

        /* One byte more, no NUL in sight: rejected right away. */
        feed_ok(r, big, 16);
        expect_none(r);
        feed_ok(r, big, 1);
        ck_assert_int_eq(varlink_reader_next(r, NULL, NULL), -EMSGSIZE);
        ck_assert_int_eq(varlink_reader_next(r, NULL, NULL), -EMSGSIZE);   /* sticky */
        varlink_reader_free(r);

        /* Same in a single feed. */
        r = varlink_reader_new(16);
        feed_ok(r, big, 17);
        ck_assert_int_eq(varlink_reader_next(r, NULL, NULL), -EMSGSIZE);
        /* Never buffers beyond limit + 1. */
        ck_assert_int_eq(varlink_reader_feed(r, big, 1), -ENOBUFS);
        varlink_reader_free(r);

        /* A feed that cannot fit is refused as a whole. */
        r = varlink_reader_new(16);
        feed_ok(r, "ab", 2);
        ck_assert_int_eq(varlink_reader_feed(r, big, 16), -ENOBUFS);
        ck_assert_uint_eq(varlink_reader_pending(r), 2);
        varlink_reader_free(r);
}
END_TEST

START_TEST(reader_oversize_after_small) {
        char big[20];
        VarlinkReader *r = varlink_reader_new(16);

        /* A good message followed by an oversize one in the same buffer. */
        memset(big, 'y', sizeof(big));
        feed_ok(r, LIT("ok\0"));
        ck_assert_int_eq(varlink_reader_feed(r, big, 14), 0);
        expect_msg(r, "ok");
        expect_none(r);
        feed_ok(r, big, 3);
        ck_assert_int_eq(varlink_reader_next(r, NULL, NULL), -EMSGSIZE);
        varlink_reader_free(r);
}
END_TEST

START_TEST(reader_get_space) {
        VarlinkReader *r = varlink_reader_new(100);
        void *p;
        size_t len;

        ck_assert_int_eq(varlink_reader_get_space(r, 10, &p, &len), 0);
        ck_assert_uint_ge(len, 10);
        ck_assert_uint_le(len, 101);
        memcpy(p, "hello\0wor", 9);
        varlink_reader_advance(r, 9);
        expect_msg(r, "hello");
        expect_none(r);

        ck_assert_int_eq(varlink_reader_get_space(r, 1, &p, &len), 0);
        ck_assert_uint_ge(len, 1);
        memcpy(p, "ld", 3);
        varlink_reader_advance(r, 3);
        expect_msg(r, "world");
        expect_none(r);

        /* Capped at what remains before the limit plus one. */
        ck_assert_int_eq(varlink_reader_get_space(r, 100000, &p, &len), 0);
        ck_assert_uint_eq(len, 101);
        varlink_reader_free(r);
}
END_TEST

START_TEST(reader_full_of_complete_messages) {
        VarlinkReader *r = varlink_reader_new(8);
        void *p;
        size_t len;

        /* 9 bytes = limit + 1, holding one complete message: drain first. */
        feed_ok(r, LIT("1234567\0x"));
        ck_assert_int_eq(varlink_reader_get_space(r, 1, &p, &len), -ENOBUFS);
        expect_msg(r, "1234567");
        ck_assert_int_eq(varlink_reader_get_space(r, 1, &p, &len), 0);
        ck_assert_uint_ge(len, 1);
        varlink_reader_free(r);
}
END_TEST

START_TEST(reader_compaction) {
        VarlinkReader *r = varlink_reader_new(16);

        feed_ok(r, LIT("0123456789\0abc"));
        expect_msg(r, "0123456789");
        expect_none(r);
        /* 3 pending + 13 new = 16, only possible after moving "abc" down. */
        feed_ok(r, LIT("defghijklmnop"));
        expect_none(r);
        feed_ok(r, LIT("\0"));
        expect_msg(r, "abcdefghijklmnop");
        expect_none(r);
        ck_assert_uint_eq(varlink_reader_pending(r), 0);
        varlink_reader_free(r);
}
END_TEST

/* Many messages through get_space/advance in pseudo-random chunks, the
 * buffer growing from its initial size and compacting along the way. */
START_TEST(reader_stream) {
        enum { N = 2000, MAX = 9000 };
        VarlinkReader *r = varlink_reader_new(MAX);
        unsigned seed = 12345;
        size_t total = 0, off = 0, got = 0;
        char *stream;

        stream = malloc((size_t) N * (MAX + 1));
        ck_assert_ptr_nonnull(stream);
        for (unsigned i = 0; i < N; i++) {
                size_t n;

                seed = seed * 1103515245U + 12345U;
                n = (seed >> 8) % (i % 50 == 0 ? MAX + 1 : 200);
                memset(stream + total, 'a' + (int) (i % 26), n);
                total += n;
                stream[total++] = 0;
        }

        while (off < total) {
                size_t chunk, space;
                const char *msg;
                size_t len;
                void *p;
                int k;

                seed = seed * 1103515245U + 12345U;
                chunk = 1 + (seed >> 8) % 5000;
                ck_assert_int_eq(varlink_reader_get_space(r, chunk, &p, &space), 0);
                chunk = MIN(MIN(chunk, space), total - off);
                memcpy(p, stream + off, chunk);
                varlink_reader_advance(r, chunk);
                off += chunk;

                while ((k = varlink_reader_next(r, &msg, &len)) > 0) {
                        ck_assert_uint_eq(len, strlen(stream + got));
                        ck_assert(memcmp(msg, stream + got, len + 1) == 0);
                        got += len + 1;
                }
                ck_assert_int_eq(k, 0);
        }
        ck_assert_uint_eq(got, total);
        free(stream);
        varlink_reader_free(r);
}
END_TEST

/* ---- blobs and output queue -------------------------------------------- */

START_TEST(blob_basics) {
        VarlinkBlob *b = varlink_blob_new("abc", 3), *b2;

        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(varlink_blob_size(b), 4);
        ck_assert(memcmp(varlink_blob_data(b), "abc", 4) == 0);

        b2 = varlink_blob_ref(b);
        ck_assert_ptr_eq(b, b2);
        ck_assert_ptr_null(varlink_blob_unref(b));
        /* Still alive through the second reference (ASan/valgrind watch). */
        ck_assert_str_eq(varlink_blob_data(b2), "abc");
        ck_assert_ptr_null(varlink_blob_unref(b2));

        ck_assert_ptr_null(varlink_blob_ref(NULL));
        ck_assert_ptr_null(varlink_blob_unref(NULL));

        b = varlink_blob_new("", 0);
        ck_assert_uint_eq(varlink_blob_size(b), 1);
        varlink_blob_unref(b);

        /* A NUL inside would split the message on the wire. */
        errno = 0;
        ck_assert_ptr_null(varlink_blob_new("a\0b", 3));
        ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(outq_across_blobs) {
        VarlinkOutQueue *q = varlink_outq_new(0);
        VarlinkBlob *a = varlink_blob_new("aaa", 3);        /* 4 bytes */
        VarlinkBlob *b = varlink_blob_new("bbbbb", 5);      /* 6 bytes */
        VarlinkBlob *c = varlink_blob_new("cc", 2);         /* 3 bytes */
        struct iovec iov[8];

        ck_assert_uint_eq(varlink_outq_peek(q, iov, ELEMENTSOF(iov)), 0);
        ck_assert_int_eq(varlink_outq_push(q, a, false), 0);
        ck_assert_int_eq(varlink_outq_push(q, b, false), 0);
        ck_assert_int_eq(varlink_outq_push(q, c, false), 0);
        /* The queue holds its own references. */
        varlink_blob_unref(a);
        varlink_blob_unref(b);
        ck_assert_uint_eq(varlink_outq_bytes(q), 13);
        ck_assert_uint_eq(varlink_outq_count(q), 3);

        ck_assert_uint_eq(varlink_outq_peek(q, iov, 0), 0);
        ck_assert_uint_eq(varlink_outq_peek(q, iov, 2), 2);
        ck_assert_uint_eq(iov[0].iov_len, 4);
        ck_assert(memcmp(iov[0].iov_base, "aaa", 4) == 0);
        ck_assert_uint_eq(iov[1].iov_len, 6);
        ck_assert(memcmp(iov[1].iov_base, "bbbbb", 6) == 0);

        varlink_outq_consume(q, 2);
        ck_assert_uint_eq(varlink_outq_bytes(q), 11);
        ck_assert_uint_eq(varlink_outq_count(q), 3);
        ck_assert_uint_eq(varlink_outq_peek(q, iov, ELEMENTSOF(iov)), 3);
        ck_assert_uint_eq(iov[0].iov_len, 2);
        ck_assert(memcmp(iov[0].iov_base, "a", 2) == 0);

        /* Finishes a and eats into b. */
        varlink_outq_consume(q, 5);
        ck_assert_uint_eq(varlink_outq_bytes(q), 6);
        ck_assert_uint_eq(varlink_outq_count(q), 2);
        ck_assert_uint_eq(varlink_outq_peek(q, iov, ELEMENTSOF(iov)), 2);
        ck_assert_uint_eq(iov[0].iov_len, 3);
        ck_assert(memcmp(iov[0].iov_base, "bb", 3) == 0);
        ck_assert_uint_eq(iov[1].iov_len, 3);
        ck_assert_ptr_eq(iov[1].iov_base, varlink_blob_data(c));

        /* Exactly to a boundary. */
        varlink_outq_consume(q, 3);
        ck_assert_uint_eq(varlink_outq_count(q), 1);
        varlink_outq_consume(q, 3);
        ck_assert_uint_eq(varlink_outq_count(q), 0);
        ck_assert_uint_eq(varlink_outq_bytes(q), 0);
        ck_assert_uint_eq(varlink_outq_peek(q, iov, ELEMENTSOF(iov)), 0);

        /* Usable again after draining; c is still referenced by us. */
        ck_assert_int_eq(varlink_outq_push(q, c, false), 0);
        ck_assert_uint_eq(varlink_outq_bytes(q), 3);
        varlink_blob_unref(c);
        ck_assert_ptr_null(varlink_outq_free(q));   /* drops the last ref */
        ck_assert_ptr_null(varlink_outq_free(NULL));
}
END_TEST

START_TEST(outq_limit_and_force) {
        VarlinkOutQueue *q = varlink_outq_new(10);
        VarlinkBlob *four = varlink_blob_new("abc", 3), *six = varlink_blob_new("abcde", 5);

        ck_assert_int_eq(varlink_outq_push(q, four, false), 0);
        ck_assert_int_eq(varlink_outq_push(q, six, false), 0);     /* exactly 10 */
        ck_assert_int_eq(varlink_outq_push(q, four, false), -ENOBUFS);
        ck_assert_uint_eq(varlink_outq_bytes(q), 10);
        ck_assert_uint_eq(varlink_outq_count(q), 2);

        ck_assert_int_eq(varlink_outq_push(q, four, true), 0);
        ck_assert_uint_eq(varlink_outq_bytes(q), 14);
        ck_assert_uint_eq(varlink_outq_count(q), 3);
        ck_assert_int_eq(varlink_outq_push(q, four, false), -ENOBUFS);

        varlink_outq_consume(q, 14);
        ck_assert_int_eq(varlink_outq_push(q, six, false), 0);

        varlink_outq_free(q);
        varlink_blob_unref(four);
        varlink_blob_unref(six);
}
END_TEST

START_TEST(outq_shared_blob_and_growth) {
        VarlinkOutQueue *q1 = varlink_outq_new(0), *q2 = varlink_outq_new(0);
        VarlinkBlob *b = varlink_blob_new("event", 5);
        struct iovec iov[4];

        /* One blob queued many times to two peers; the ring grows and wraps. */
        for (int i = 0; i < 100; i++) {
                ck_assert_int_eq(varlink_outq_push(q1, b, false), 0);
                ck_assert_int_eq(varlink_outq_push(q2, b, false), 0);
                if (i % 3 == 0)
                        varlink_outq_consume(q1, 6);
        }
        varlink_blob_unref(b);
        ck_assert_uint_eq(varlink_outq_count(q1), 66);
        ck_assert_uint_eq(varlink_outq_count(q2), 100);
        ck_assert_uint_eq(varlink_outq_bytes(q2), 600);
        ck_assert_uint_eq(varlink_outq_peek(q1, iov, ELEMENTSOF(iov)), 4);
        for (size_t i = 0; i < 4; i++)
                ck_assert_str_eq(iov[i].iov_base, "event");

        varlink_outq_free(q1);
        ck_assert_uint_eq(varlink_outq_peek(q2, iov, 1), 1);
        ck_assert_str_eq(iov[0].iov_base, "event");
        varlink_outq_free(q2);
}
END_TEST

/* ---- message parsing ----------------------------------------------------- */

static int parse(const char *s, size_t len, int depth) {
        struct json_object *o = NULL;
        int r;

        r = varlink_message_parse(s, len, depth, &o);
        if (r < 0)
                ck_assert_ptr_null(o);
        else
                ck_assert(json_object_is_type(o, json_type_object));
        json_object_put(o);
        return r;
}

#define PARSE(s) parse(LIT(s), VARLINK_DEFAULT_MAX_DEPTH)

START_TEST(parse_valid) {
        struct json_object *o = NULL, *v;

        ck_assert_int_eq(varlink_message_parse(LIT("{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":1.5}}"),
                                               VARLINK_DEFAULT_MAX_DEPTH, &o), 0);
        ck_assert(json_object_object_get_ex(o, "b", &v));
        ck_assert_uint_eq(json_object_array_length(v), 3);
        json_object_put(o);

        ck_assert_int_eq(PARSE("{}"), 0);
        ck_assert_int_eq(PARSE(" \t\r\n{ } \n\t\r "), 0);      /* whitespace around */
        ck_assert_int_eq(PARSE("{\"s\":\"\\n\\t\\\"\\\\\\/\\u00e9\"}"), 0);
        ck_assert_int_eq(PARSE("{\"s\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9\"}"), 0);
        ck_assert_int_eq(PARSE("{\"n\":-1.5e3}"), 0);
}
END_TEST

START_TEST(parse_invalid_json) {
        static const char *const bad[] = {
                "", "{", "}", "{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":1,}", "{\"a\":[1,]}",
                "{\"a\":01}", "{\"a\":True}", "{\"a\":\"\\x41\"}", "{/*c*/}", "{\"a\" 1}",
                "{\"a\":NaN}", "{\"a\":-Infinity}", "{\"a\":1e999}", "{\"a\":nul}", "{\"a\":x}",
                "{\"a\":1}\f", "{\"a\":[\"x\",'y']}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(parse(bad[i], strlen(bad[i]), 32) == -EBADMSG, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(parse_invalid_utf8) {
        static const char *const bad[] = {
                "{\"a\":\"\xff\"}",                     /* never valid */
                "{\"a\":\"\xc0\x80\"}",                 /* overlong NUL */
                "{\"a\":\"\xc1\xbf\"}",                 /* overlong 2-byte */
                "{\"a\":\"\xe0\x80\xaf\"}",             /* overlong 3-byte '/' */
                "{\"a\":\"\xf0\x80\x80\xaf\"}",         /* overlong 4-byte */
                "{\"a\":\"\xed\xa0\x80\"}",             /* UTF-16 surrogate */
                "{\"a\":\"\xf4\x90\x80\x80\"}",         /* above U+10FFFF */
                "{\"a\":\"\xe2\x82\"}",                 /* truncated */
                "{\"a\":\"\x80\"}",                     /* lone continuation */
                "{\"\xfe\":1}",                         /* in a key */
                "{\"a\":\"x\x01y\"}",                   /* raw control character */
                "{\"a\":\"\n\"}",
                "\xef\xbb\xbf{}",                       /* BOM */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ck_assert_msg(parse(bad[i], strlen(bad[i]), 32) == -EBADMSG, "accepted #%zu", i);

        /* Truncated right at the end of the input. */
        ck_assert_int_eq(parse(LIT("{\"a\":\"x\"}\xe2"), 32), -EBADMSG);
}
END_TEST

START_TEST(parse_nul) {
        struct json_object *o = NULL, *v;

        /* An escaped NUL parses; rejecting it is the IDL validator's job. */
        ck_assert_int_eq(varlink_message_parse(LIT("{\"s\":\"a\\u0000b\"}"), 32, &o), 0);
        ck_assert(json_object_object_get_ex(o, "s", &v));
        ck_assert_int_eq(json_object_get_string_len(v), 3);
        json_object_put(o);

        /* A raw NUL byte never does, wherever it is. */
        ck_assert_int_eq(PARSE("{\"s\":\"a\0b\"}"), -EBADMSG);
        ck_assert_int_eq(PARSE("{}\0"), -EBADMSG);
        ck_assert_int_eq(PARSE("\0{}"), -EBADMSG);
}
END_TEST

/* {"a":{"a":...{}...}} with 'depth' objects, or arrays inside one object. */
static char *nested(unsigned depth, bool arrays, const char *inner) {
        size_t size = depth * 8 + strlen(inner) + 1, n = 0;
        char *s = malloc(size);

        ck_assert_ptr_nonnull(s);
        if (arrays) {
                n += (size_t) sprintf(s + n, "{\"a\":");
                for (unsigned i = 1; i < depth; i++)
                        s[n++] = '[';
                n += (size_t) sprintf(s + n, "%s", inner);
                for (unsigned i = 1; i < depth; i++)
                        s[n++] = ']';
                s[n++] = '}';
        } else {
                for (unsigned i = 1; i < depth; i++)
                        n += (size_t) sprintf(s + n, "{\"a\":");
                n += (size_t) sprintf(s + n, "{%s}", inner);
                for (unsigned i = 1; i < depth; i++)
                        s[n++] = '}';
        }
        s[n] = 0;
        return s;
}

START_TEST(parse_depth) {
        static const struct {
                bool arrays;
                const char *inner;
        } shapes[] = {
                { false, "" },
                { false, "\"x\":1" },
                { true, "" },
                { true, "1" },
                { true, "{}" },
        };

        /* Depth = nested objects/arrays: at the limit fine, one more not. */
        for (size_t i = 0; i < ELEMENTSOF(shapes); i++)
                for (int limit = 1; limit <= 40; limit += 13) {
                        /* An array shape needs the enclosing object. */
                        unsigned extra = shapes[i].inner[0] == '{' ? 1 : 0;
                        _cleanup_free_ char *at = NULL, *over = NULL;

                        if (shapes[i].arrays && limit < 2 + (int) extra)
                                continue;
                        at = nested((unsigned) limit - extra, shapes[i].arrays, shapes[i].inner);
                        over = nested((unsigned) limit - extra + 1, shapes[i].arrays, shapes[i].inner);
                        ck_assert_msg(parse(at, strlen(at), limit) == 0, "limit %d: %s", limit, at);
                        ck_assert_msg(parse(over, strlen(over), limit) == -ELOOP, "limit %d: %s", limit, over);
                }

        ck_assert_int_eq(parse(LIT("{\"a\":[1]}"), 2), 0);
        ck_assert_int_eq(parse(LIT("{\"a\":[1]}"), 1), -ELOOP);
        ck_assert_int_eq(parse(LIT("{\"a\":1}"), 1), 0);
        ck_assert_int_eq(parse(LIT("{}"), 1), 0);

        /* Very deep input must fail early, not blow the stack. */
        {
                size_t n = 200000;
                _cleanup_free_ char *s = malloc(n + 8);

                ck_assert_ptr_nonnull(s);
                strcpy(s, "{\"a\":");
                memset(s + 5, '[', n);
                s[n + 5] = 0;
                ck_assert_int_eq(parse(s, n + 5, 32), -ELOOP);
        }

        ck_assert_int_eq(parse(LIT("{}"), 0), -EINVAL);
}
END_TEST

START_TEST(parse_trailing) {
        ck_assert_int_eq(PARSE("{} x"), -EBADMSG);
        ck_assert_int_eq(PARSE("{}{}"), -EBADMSG);
        ck_assert_int_eq(PARSE("{}}"), -EBADMSG);
        ck_assert_int_eq(PARSE("{} 1"), -EBADMSG);
        ck_assert_int_eq(PARSE("{}\v"), -EBADMSG);
        ck_assert_int_eq(PARSE("{}  \n"), 0);
}
END_TEST

START_TEST(parse_not_object) {
        ck_assert_int_eq(PARSE("[]"), -EBADMSG);
        ck_assert_int_eq(PARSE("[{}]"), -EBADMSG);
        ck_assert_int_eq(PARSE("1"), -EBADMSG);
        ck_assert_int_eq(PARSE("\"s\""), -EBADMSG);
        ck_assert_int_eq(PARSE("null"), -EBADMSG);
        ck_assert_int_eq(PARSE("true"), -EBADMSG);
}
END_TEST

/* ---- calls ---------------------------------------------------------------- */

static struct json_object *parse_ok(const char *s) {
        struct json_object *o = NULL;

        ck_assert_msg(varlink_message_parse(s, strlen(s), 32, &o) == 0, "parse failed: %s", s);
        return o;
}

START_TEST(call_flags) {
        struct json_object *msg, *v;
        VarlinkCall call;

        msg = parse_ok("{\"method\":\"org.example.Foo\",\"parameters\":{\"x\":1},"
                       "\"more\":true,\"oneway\":true,\"upgrade\":true}");
        ck_assert_int_eq(varlink_call_from_json(msg, &call, NULL), 0);
        ck_assert_str_eq(call.method, "org.example.Foo");
        ck_assert_uint_eq(call.flags, VARLINK_CALL_MORE | VARLINK_CALL_ONEWAY | VARLINK_CALL_UPGRADE);
        ck_assert(json_object_object_get_ex(call.parameters, "x", &v));
        ck_assert_int_eq(json_object_get_int(v), 1);
        json_object_put(msg);

        msg = parse_ok("{\"oneway\":false,\"method\":\"org.example.Foo\",\"more\":true,\"upgrade\":false}");
        ck_assert_int_eq(varlink_call_from_json(msg, &call, NULL), 0);
        ck_assert_uint_eq(call.flags, VARLINK_CALL_MORE);
        json_object_put(msg);

        msg = parse_ok("{\"method\":\"org.example.Foo\"}");
        ck_assert_int_eq(varlink_call_from_json(msg, &call, NULL), 0);
        ck_assert_uint_eq(call.flags, 0);
        json_object_put(msg);
}
END_TEST

/* A broken oneway call still must not be answered. */
START_TEST(call_oneway_when_bad) {
        static const struct {
                const char *msg;
                bool oneway;
        } cases[] = {
                { "{\"method\":\"org.example.Foo\",\"oneway\":true,\"bogus\":1}", true },
                { "{\"method\":\"not valid\",\"oneway\":true}", true },
                { "{\"oneway\":true}", true },
                { "{\"method\":\"org.example.Foo\",\"oneway\":1}", false },
                { "{\"method\":\"org.example.Foo\",\"oneway\":false,\"bogus\":1}", false },
                { "{\"method\":\"org.example.Foo\",\"bogus\":1}", false },
        };

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                struct json_object *msg = parse_ok(cases[i].msg);
                ck_assert_msg(varlink_message_is_oneway(msg) == cases[i].oneway, "%s", cases[i].msg);
                json_object_put(msg);
        }
        ck_assert(!varlink_message_is_oneway(NULL));
}
END_TEST

START_TEST(call_parameters_default) {
        static const char *const msgs[] = {
                "{\"method\":\"org.example.Foo\",\"parameters\":null}",
                "{\"method\":\"org.example.Foo\"}",
                "{\"method\":\"org.example.Foo\",\"parameters\":{}}",
        };

        for (size_t i = 0; i < ELEMENTSOF(msgs); i++) {
                struct json_object *msg = parse_ok(msgs[i]), *v = NULL;
                VarlinkCall call = {};

                ck_assert_int_eq(varlink_call_from_json(msg, &call, NULL), 0);
                ck_assert_ptr_nonnull(call.parameters);
                ck_assert(json_object_is_type(call.parameters, json_type_object));
                ck_assert_int_eq(json_object_object_length(call.parameters), 0);
                /* Owned by msg: the pointer stays valid exactly as long. */
                ck_assert(json_object_object_get_ex(msg, "parameters", &v));
                ck_assert_ptr_eq(v, call.parameters);
                json_object_put(msg);
        }
}
END_TEST

static void call_bad(const char *json, const char *field) {
        struct json_object *msg = parse_ok(json);
        const char *bad = "unset";
        VarlinkCall call;

        ck_assert_msg(varlink_call_from_json(msg, &call, &bad) == -EBADMSG, "accepted: %s", json);
        if (field)
                ck_assert_msg(bad && streq(bad, field), "%s: blamed %s", json, bad ? bad : "(null)");
        else
                ck_assert_ptr_null(bad);
        json_object_put(msg);
}

START_TEST(call_errors) {
        call_bad("{}", "method");
        call_bad("{\"parameters\":{}}", "method");
        call_bad("{\"method\":\"Foo\"}", "method");
        call_bad("{\"method\":\"org.example.foo\"}", "method");
        call_bad("{\"method\":\"org..example.Foo\"}", "method");
        call_bad("{\"method\":\"1org.example.Foo\"}", "method");
        call_bad("{\"method\":\"\"}", "method");
        call_bad("{\"method\":\"org.example.Foo\",\"foo\":1}", "foo");
        call_bad("{\"method\":\"org.example.Foo\",\"Method\":\"x\"}", "Method");
        call_bad("{\"method\":1}", "method");
        call_bad("{\"method\":null}", "method");
        call_bad("{\"method\":\"org.example.Foo\",\"parameters\":[]}", "parameters");
        call_bad("{\"method\":\"org.example.Foo\",\"parameters\":\"x\"}", "parameters");
        call_bad("{\"method\":\"org.example.Foo\",\"more\":\"yes\"}", "more");
        call_bad("{\"method\":\"org.example.Foo\",\"oneway\":1}", "oneway");
        call_bad("{\"method\":\"org.example.Foo\",\"upgrade\":null}", "upgrade");
        /* An escaped NUL would leave the valid prefix as the method (fuzz-varlink-wire). */
        call_bad("{\"method\":\"org.example.Foo\\u0000Bar\"}", "method");
        call_bad("{\"method\":\"org.example.Foo\\u0000\"}", "method");

        /* Not an object at all: nobody to blame. */
        {
                struct json_object *a = json_object_new_array();
                const char *bad = "unset";
                VarlinkCall call;

                ck_assert_int_eq(varlink_call_from_json(a, &call, &bad), -EBADMSG);
                ck_assert_ptr_null(bad);
                ck_assert_int_eq(varlink_call_from_json(NULL, &call, NULL), -EBADMSG);
                json_object_put(a);
        }
}
END_TEST

/* ---- names ---------------------------------------------------------------- */

START_TEST(names) {
        static const struct {
                const char *name;
                bool interface, method;
        } table[] = {
                { "org.varlink.service", true, false },
                { "org.varlink.service.GetInfo", true, true },
                { "io.kvmid.Admin", true, true },
                { "a.b", true, false },
                { "a.b.C", true, true },
                { "a.b.C1x9", true, true },
                { "A.B", true, false },
                { "a.1b", true, false },
                { "a.1b.X", true, true },
                { "org.example-x.a1", true, false },
                { "a--b.c", true, false },
                { "xn--abc.de.Do", true, true },
                { "", false, false },
                { "a", false, false },
                { "Foo", false, false },
                { "a.", false, false },
                { ".a", false, false },
                { "a..b", false, false },
                { "a..b.C", false, false },
                { "1a.b", false, false },
                { "1a.b.C", false, false },
                { "-a.b", false, false },
                { "a-.b", false, false },
                { "a.-b", false, false },
                { "a.b-", false, false },
                { "a.b-.C", false, false },
                { "a_b.c", false, false },
                { "a.b.", false, false },
                { "a b.c", false, false },
                { "a.b/c", false, false },
                { "a.b.c", true, false },
                { "a.b.1C", true, false },
                { "a.B", true, false },         /* interface "a" is one segment */
                { "a.b.C-d", true, false },
                { "a.b.C_d", false, false },
                { "a.b._C", false, false },
                { "a.b.C.", false, false },
                { "a.b.\xc3\x89t", false, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                ck_assert_msg(varlink_interface_name_valid(table[i].name) == table[i].interface,
                              "interface %s", table[i].name);
                ck_assert_msg(varlink_method_name_valid(table[i].name) == table[i].method,
                              "method %s", table[i].name);
        }
        ck_assert(!varlink_interface_name_valid(NULL));
        ck_assert(!varlink_method_name_valid(NULL));
}
END_TEST

START_TEST(method_split) {
        char *iface = NULL, *method = NULL;

        ck_assert_int_eq(varlink_method_split("org.varlink.service.GetInfo", &iface, &method), 0);
        ck_assert_str_eq(iface, "org.varlink.service");
        ck_assert_str_eq(method, "GetInfo");
        free(iface);
        free(method);

        iface = method = NULL;
        ck_assert_int_eq(varlink_method_split("a.b.C", NULL, &method), 0);
        ck_assert_str_eq(method, "C");
        free(method);
        ck_assert_int_eq(varlink_method_split("a.b.C", &iface, NULL), 0);
        ck_assert_str_eq(iface, "a.b");
        free(iface);

        iface = method = NULL;
        ck_assert_int_eq(varlink_method_split("a.b.c", &iface, &method), -EINVAL);
        ck_assert_int_eq(varlink_method_split(NULL, &iface, &method), -EINVAL);
        ck_assert_ptr_null(iface);
        ck_assert_ptr_null(method);
}
END_TEST

/* ---- encoding ------------------------------------------------------------- */

static void expect_blob(VarlinkBlob *b, const char *expected) {
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(varlink_blob_size(b), strlen(expected) + 1);
        ck_assert_str_eq(varlink_blob_data(b), expected);
        varlink_blob_unref(b);
}

START_TEST(reply_encode) {
        struct json_object *p;
        VarlinkBlob *b = NULL;

        ck_assert_int_eq(varlink_reply_encode(NULL, NULL, false, &b), 0);
        expect_blob(b, "{\"parameters\":{}}");

        p = parse_ok("{\"a\":\"x/y\",\"n\":[1,2],\"u\":\"\xc3\xa9\"}");
        ck_assert_int_eq(varlink_reply_encode(p, NULL, true, &b), 0);
        expect_blob(b, "{\"parameters\":{\"a\":\"x/y\",\"n\":[1,2],\"u\":\"\xc3\xa9\"},\"continues\":true}");

        ck_assert_int_eq(varlink_reply_encode(p, "org.varlink.service.InvalidParameter", false, &b), 0);
        expect_blob(b, "{\"parameters\":{\"a\":\"x/y\",\"n\":[1,2],\"u\":\"\xc3\xa9\"},"
                       "\"error\":\"org.varlink.service.InvalidParameter\"}");

        ck_assert_int_eq(varlink_reply_encode(NULL, "org.varlink.service.MethodNotFound", true, &b), 0);
        expect_blob(b, "{\"parameters\":{},\"continues\":true,\"error\":\"org.varlink.service.MethodNotFound\"}");

        /* Borrowed: our single reference is still the only one. */
        ck_assert_int_eq(json_object_put(p), 1);

        p = json_object_new_array();
        b = NULL;
        ck_assert_int_eq(varlink_reply_encode(p, NULL, false, &b), -EINVAL);
        ck_assert_int_eq(varlink_reply_encode(NULL, "nope", false, &b), -EINVAL);
        ck_assert_ptr_null(b);
        json_object_put(p);

        /* Strings with a NUL are escaped, never break the framing. */
        p = parse_ok("{\"s\":\"a\\u0000b\"}");
        ck_assert_int_eq(varlink_reply_encode(p, NULL, false, &b), 0);
        expect_blob(b, "{\"parameters\":{\"s\":\"a\\u0000b\"}}");
        json_object_put(p);
}
END_TEST

START_TEST(call_encode) {
        struct json_object *p = parse_ok("{\"x\":1}");
        VarlinkBlob *b = NULL;

        ck_assert_int_eq(varlink_call_encode("a.b.C", NULL, 0, &b), 0);
        expect_blob(b, "{\"method\":\"a.b.C\",\"parameters\":{}}");
        ck_assert_int_eq(varlink_call_encode("a.b.C", p, VARLINK_CALL_MORE, &b), 0);
        expect_blob(b, "{\"method\":\"a.b.C\",\"parameters\":{\"x\":1},\"more\":true}");
        ck_assert_int_eq(varlink_call_encode("a.b.C", p, VARLINK_CALL_ONEWAY, &b), 0);
        expect_blob(b, "{\"method\":\"a.b.C\",\"parameters\":{\"x\":1},\"oneway\":true}");
        ck_assert_int_eq(varlink_call_encode("a.b.C", NULL, VARLINK_CALL_UPGRADE, &b), 0);
        expect_blob(b, "{\"method\":\"a.b.C\",\"parameters\":{},\"upgrade\":true}");

        b = NULL;
        ck_assert_int_eq(varlink_call_encode("a.b.c", NULL, 0, &b), -EINVAL);
        ck_assert_int_eq(varlink_call_encode(NULL, NULL, 0, &b), -EINVAL);
        ck_assert_ptr_null(b);
        ck_assert_int_eq(json_object_put(p), 1);
}
END_TEST

START_TEST(reply_from_json) {
        struct json_object *msg, *v;
        VarlinkReply reply;

        msg = parse_ok("{\"parameters\":{\"a\":1},\"continues\":true}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), 0);
        ck_assert(reply.continues);
        ck_assert_ptr_null(reply.error);
        ck_assert(json_object_object_get_ex(reply.parameters, "a", &v));
        json_object_put(msg);

        msg = parse_ok("{\"error\":\"org.example.Failed\",\"parameters\":null,\"continues\":false}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), 0);
        ck_assert(!reply.continues);
        ck_assert_str_eq(reply.error, "org.example.Failed");
        ck_assert_int_eq(json_object_object_length(reply.parameters), 0);
        ck_assert(json_object_object_get_ex(msg, "parameters", &v));
        ck_assert_ptr_eq(v, reply.parameters);
        json_object_put(msg);

        /* Liberal: no parameters, unknown keys, nulls. */
        msg = parse_ok("{\"future\":[1],\"error\":null,\"continues\":null}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), 0);
        ck_assert_ptr_nonnull(reply.parameters);
        ck_assert_ptr_null(reply.error);
        ck_assert(!reply.continues);
        json_object_put(msg);

        msg = parse_ok("{\"parameters\":[]}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), -EBADMSG);
        json_object_put(msg);
        msg = parse_ok("{\"error\":1}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), -EBADMSG);
        json_object_put(msg);
        msg = parse_ok("{\"continues\":\"yes\"}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), -EBADMSG);
        json_object_put(msg);
        msg = parse_ok("{\"error\":\"org.example.Failed\\u0000x\"}");
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), -EBADMSG);
        json_object_put(msg);
        ck_assert_int_eq(varlink_reply_from_json(NULL, &reply), -EBADMSG);
}
END_TEST

/* Encode -> frame -> parse -> interpret. */
START_TEST(round_trip) {
        VarlinkReader *r = varlink_reader_new(0);
        struct json_object *p = parse_ok("{\"k\":\"v\"}"), *msg = NULL;
        VarlinkBlob *b1 = NULL, *b2 = NULL;
        VarlinkReply reply;
        const char *m;
        size_t len;

        ck_assert_int_eq(varlink_reply_encode(p, NULL, true, &b1), 0);
        ck_assert_int_eq(varlink_reply_encode(NULL, "a.b.Err", false, &b2), 0);
        feed_ok(r, varlink_blob_data(b1), varlink_blob_size(b1));
        feed_ok(r, varlink_blob_data(b2), varlink_blob_size(b2));

        ck_assert_int_eq(varlink_reader_next(r, &m, &len), 1);
        ck_assert_int_eq(varlink_message_parse(m, len, 32, &msg), 0);
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), 0);
        ck_assert(reply.continues);
        ck_assert_str_eq(json_object_to_json_string_ext(reply.parameters, JSON_C_TO_STRING_PLAIN), "{\"k\":\"v\"}");
        json_object_put(msg);

        ck_assert_int_eq(varlink_reader_next(r, &m, &len), 1);
        ck_assert_int_eq(varlink_message_parse(m, len, 32, &msg), 0);
        ck_assert_int_eq(varlink_reply_from_json(msg, &reply), 0);
        ck_assert(!reply.continues);
        ck_assert_str_eq(reply.error, "a.b.Err");
        json_object_put(msg);

        varlink_blob_unref(b1);
        varlink_blob_unref(b2);
        json_object_put(p);
        varlink_reader_free(r);
}
END_TEST

static Suite *wire_suite(void) {
        Suite *s = suite_create("varlink-wire");
        TCase *tc;

        tc = tcase_create("reader");
        tcase_add_test(tc, reader_byte_by_byte);
        tcase_add_test(tc, reader_several_per_feed);
        tcase_add_test(tc, reader_oversize);
        tcase_add_test(tc, reader_oversize_after_small);
        tcase_add_test(tc, reader_get_space);
        tcase_add_test(tc, reader_full_of_complete_messages);
        tcase_add_test(tc, reader_compaction);
        tcase_add_test(tc, reader_stream);
        suite_add_tcase(s, tc);

        tc = tcase_create("outq");
        tcase_add_test(tc, blob_basics);
        tcase_add_test(tc, outq_across_blobs);
        tcase_add_test(tc, outq_limit_and_force);
        tcase_add_test(tc, outq_shared_blob_and_growth);
        suite_add_tcase(s, tc);

        tc = tcase_create("parse");
        tcase_add_test(tc, parse_valid);
        tcase_add_test(tc, parse_invalid_json);
        tcase_add_test(tc, parse_invalid_utf8);
        tcase_add_test(tc, parse_nul);
        tcase_add_test(tc, parse_depth);
        tcase_add_test(tc, parse_trailing);
        tcase_add_test(tc, parse_not_object);
        suite_add_tcase(s, tc);

        tc = tcase_create("call");
        tcase_add_test(tc, call_flags);
        tcase_add_test(tc, call_parameters_default);
        tcase_add_test(tc, call_oneway_when_bad);
        tcase_add_test(tc, call_errors);
        suite_add_tcase(s, tc);

        tc = tcase_create("names");
        tcase_add_test(tc, names);
        tcase_add_test(tc, method_split);
        suite_add_tcase(s, tc);

        tc = tcase_create("encode");
        tcase_add_test(tc, reply_encode);
        tcase_add_test(tc, call_encode);
        tcase_add_test(tc, reply_from_json);
        tcase_add_test(tc, round_trip);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        SRunner *sr = srunner_create(wire_suite());
        int failed;

        srunner_run_all(sr, CK_ENV);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
