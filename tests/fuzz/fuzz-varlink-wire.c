/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* proto/varlink-wire.c: the NUL framer fed in random-sized chunks and
 * checked against a plain split of the stream at its NULs, every message
 * decoded as a call and as a reply, re-encoded and decoded again to the
 * same values, and the encoded blobs pushed through an output queue that
 * must hand back exactly the bytes queued.
 *
 * Input: byte 0 the message limit (high bit: the default), byte 1 the
 * nesting limit, bytes 2..3 seed the chunk sizes, the rest is the stream. */

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "varlink-wire.h"

#define OUTQ_MODEL_MAX (64U * 1024U)

typedef struct Outq {
        VarlinkOutQueue *q;
        uint8_t model[OUTQ_MODEL_MAX];   /* the unwritten bytes, in order */
        size_t len;
        uint32_t rng;
} Outq;

static uint32_t next_rand(uint32_t *s) {
        /* xorshift32: the chunking only needs to vary, not to be good */
        *s ^= *s << 13;
        *s ^= *s >> 17;
        *s ^= *s << 5;
        return *s;
}

static void outq_check_peek(Outq *o) {
        struct iovec iov[4];
        size_t n, off = 0;

        n = varlink_outq_peek(o->q, iov, 1 + next_rand(&o->rng) % ELEMENTSOF(iov));
        FUZZ_CHECK(n <= varlink_outq_count(o->q));
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(iov[i].iov_len > 0);
                FUZZ_CHECK(off + iov[i].iov_len <= o->len);
                FUZZ_CHECK(memcmp(iov[i].iov_base, o->model + off, iov[i].iov_len) == 0);
                off += iov[i].iov_len;
        }
        FUZZ_CHECK(varlink_outq_bytes(o->q) == o->len);
}

static void outq_consume_some(Outq *o) {
        size_t n;

        outq_check_peek(o);
        if (o->len == 0)
                return;
        n = next_rand(&o->rng) % (o->len + 1);
        varlink_outq_consume(o->q, n);
        memmove(o->model, o->model + n, o->len - n);
        o->len -= n;
        outq_check_peek(o);
}

static void outq_push(Outq *o, VarlinkBlob *b) {
        size_t size = varlink_blob_size(b);
        bool force = next_rand(&o->rng) % 8 == 0;
        size_t before = varlink_outq_bytes(o->q);
        int r;

        FUZZ_CHECK(size >= 1 && varlink_blob_data(b)[size - 1] == 0);
        if (o->len + size > sizeof(o->model))
                return;
        r = varlink_outq_push(o->q, b, force);
        if (r == -ENOBUFS) {
                FUZZ_CHECK(!force);
                FUZZ_CHECK(varlink_outq_bytes(o->q) == before);
        } else {
                FUZZ_CHECK(r == 0);
                memcpy(o->model + o->len, varlink_blob_data(b), size);
                o->len += size;
        }
        outq_consume_some(o);
}

/* parse(encode(x)) must give x back, at the same nesting limit (or 2: an
 * encoded message always has its "parameters" object). */
static struct json_object *reparse(VarlinkBlob *b, int depth) {
        struct json_object *o = NULL;
        int r;

        r = varlink_message_parse(varlink_blob_data(b), varlink_blob_size(b) - 1, MAX(depth, 2), &o);
        FUZZ_CHECK(r == 0);
        return o;
}

static void check_call(struct json_object *msg, int depth, Outq *outq) {
        _cleanup_json_ struct json_object *again = NULL;
        _cleanup_free_ char *iface = NULL, *method = NULL;
        VarlinkCall call, call2;
        VarlinkBlob *b = NULL;
        struct json_object *m;
        const char *bad = NULL;
        int r;

        r = varlink_call_from_json(msg, &call, &bad);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
                return;
        }
        FUZZ_CHECK(varlink_method_name_valid(call.method));
        /* the name checked is the whole string, not a prefix cut at a NUL */
        FUZZ_CHECK(json_object_object_get_ex(msg, "method", &m));
        FUZZ_CHECK((size_t) json_object_get_string_len(m) == strlen(call.method));
        FUZZ_CHECK(json_object_is_type(call.parameters, json_type_object));
        FUZZ_CHECK(varlink_message_is_oneway(msg) == !!(call.flags & VARLINK_CALL_ONEWAY));

        FUZZ_CHECK(varlink_method_split(call.method, &iface, &method) == 0);
        FUZZ_CHECK(varlink_interface_name_valid(iface));
        FUZZ_CHECK(strlen(iface) + 1 + strlen(method) == strlen(call.method));
        FUZZ_CHECK(strneq(call.method, iface, strlen(iface)) && streq(call.method + strlen(iface) + 1, method));

        FUZZ_CHECK(varlink_call_encode(call.method, call.parameters, call.flags, &b) == 0);
        again = reparse(b, depth);
        FUZZ_CHECK(varlink_call_from_json(again, &call2, &bad) == 0);
        FUZZ_CHECK(streq(call.method, call2.method));
        FUZZ_CHECK(call.flags == call2.flags);
        FUZZ_CHECK(json_object_equal(call.parameters, call2.parameters));
        outq_push(outq, b);
        varlink_blob_unref(b);
}

static void check_reply(struct json_object *msg, int depth, Outq *outq) {
        _cleanup_json_ struct json_object *again = NULL;
        VarlinkReply reply, reply2;
        VarlinkBlob *b = NULL;
        struct json_object *e;
        int r;

        r = varlink_reply_from_json(msg, &reply);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ENOMEM);
                return;
        }
        FUZZ_CHECK(json_object_is_type(reply.parameters, json_type_object));
        if (reply.error) {
                FUZZ_CHECK(json_object_object_get_ex(msg, "error", &e));
                FUZZ_CHECK((size_t) json_object_get_string_len(e) == strlen(reply.error));
        }

        r = varlink_reply_encode(reply.parameters, reply.error, reply.continues, &b);
        if (r == -EINVAL) {
                /* the client takes any error string; only valid names are sent */
                FUZZ_CHECK(reply.error && !varlink_method_name_valid(reply.error));
                return;
        }
        FUZZ_CHECK(r == 0);
        again = reparse(b, depth);
        FUZZ_CHECK(varlink_reply_from_json(again, &reply2) == 0);
        FUZZ_CHECK(!reply.error == !reply2.error);
        FUZZ_CHECK(!reply.error || streq(reply.error, reply2.error));
        FUZZ_CHECK(reply.continues == reply2.continues);
        FUZZ_CHECK(json_object_equal(reply.parameters, reply2.parameters));
        outq_push(outq, b);
        varlink_blob_unref(b);
}

static void check_message(const char *msg, size_t len, int depth, Outq *outq) {
        _cleanup_json_ struct json_object *call = NULL, *reply = NULL, *again = NULL;
        const char *s;
        size_t slen;
        int r;

        r = varlink_message_parse(msg, len, depth, &call);
        if (r < 0) {
                FUZZ_CHECK(r == -EBADMSG || r == -ELOOP || r == -ENOMEM);
                FUZZ_CHECK(!call);
                return;
        }
        FUZZ_CHECK(json_object_is_type(call, json_type_object));

        /* What json-c prints of a message we took must be a message we take. */
        s = json_object_to_json_string_length(call, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &slen);
        FUZZ_CHECK(s);
        FUZZ_CHECK(varlink_message_parse(s, slen, depth, &again) == 0);
        FUZZ_CHECK(json_object_equal(call, again));

        FUZZ_CHECK(varlink_message_parse(msg, len, depth, &reply) == 0);
        check_call(call, depth, outq);
        check_reply(reply, depth, outq);
}

/* One step of the framer against the model: [start, fed) of stream is
 * buffered; returns false once the stream is unusable. */
static bool drain(VarlinkReader *rd, const uint8_t *stream, size_t fed, size_t *start, size_t max, int depth,
                  Outq *outq) {
        for (;;) {
                const uint8_t *nul = memchr(stream + *start, 0, fed - *start);
                const char *msg = NULL;
                size_t len = 0;
                int r;

                r = varlink_reader_next(rd, &msg, &len);
                if (r == -EMSGSIZE) {
                        FUZZ_CHECK(nul ? (size_t) (nul - (stream + *start)) > max : fed - *start > max);
                        return false;
                }
                if (r == 0) {
                        FUZZ_CHECK(!nul);
                        FUZZ_CHECK(fed - *start <= max);
                        FUZZ_CHECK(varlink_reader_pending(rd) == fed - *start);
                        return true;
                }
                FUZZ_CHECK(r == 1);
                FUZZ_CHECK(nul);
                FUZZ_CHECK(len == (size_t) (nul - (stream + *start)));
                FUZZ_CHECK(len <= max);
                FUZZ_CHECK(memcmp(msg, stream + *start, len) == 0 && msg[len] == 0);
                *start += len + 1;
                FUZZ_CHECK(varlink_reader_pending(rd) == fed - *start);
                check_message(msg, len, depth, outq);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Outq outq;
        const uint8_t *stream;
        VarlinkReader *rd;
        size_t max, n, fed = 0, start = 0;
        uint32_t rng;
        int depth;

        if (size < 4)
                return 0;
        max = data[0] & 0x80 ? VARLINK_DEFAULT_MAX_MESSAGE : 1 + (size_t) data[0] * 3;
        depth = 1 + data[1] % 40;
        rng = ((uint32_t) data[2] << 8 | data[3]) + 1;
        stream = data + 4;
        n = size - 4;

        outq = (Outq) { .rng = rng };
        outq.q = varlink_outq_new(data[0] & 0x40 ? 0 : 256 + (size_t) data[0] * 16);
        rd = varlink_reader_new(data[0] & 0x80 ? 0 : max);
        FUZZ_CHECK(rd && outq.q);

        while (fed < n) {
                size_t pending = fed - start, chunk;
                uint32_t x = next_rand(&rng);

                /* mostly short reads, sometimes one big one */
                chunk = x % 8 == 0 ? n - fed : 1 + x / 8 % MIN(n - fed, (size_t) 64);
                chunk = MIN(chunk, n - fed);

                if (x & 0x10000) {
                        int r = varlink_reader_feed(rd, stream + fed, chunk);

                        if (r == 0)
                                fed += chunk;
                        else {
                                FUZZ_CHECK(r == -ENOBUFS);
                                FUZZ_CHECK(pending > max || chunk > max + 1 - pending);
                        }
                } else {
                        void *p;
                        size_t space, take;
                        int r = varlink_reader_get_space(rd, chunk, &p, &space);

                        if (r < 0) {
                                FUZZ_CHECK(r == -ENOBUFS);
                                FUZZ_CHECK(pending >= max + 1);
                                break;
                        }
                        FUZZ_CHECK(space >= MIN(chunk, max + 1 - pending));
                        /* a read() may return less than asked for */
                        take = 1 + next_rand(&rng) % MIN(chunk, space);
                        memcpy(p, stream + fed, take);
                        varlink_reader_advance(rd, take);
                        fed += take;
                }

                if (!drain(rd, stream, fed, &start, max, depth, &outq))
                        break;
        }

        outq_consume_some(&outq);
        varlink_outq_consume(outq.q, outq.len);
        FUZZ_CHECK(varlink_outq_count(outq.q) == 0);
        varlink_outq_free(outq.q);
        varlink_reader_free(rd);
        return 0;
}
