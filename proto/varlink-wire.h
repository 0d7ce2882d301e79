/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Varlink transport: NUL-terminated JSON messages over a byte stream.
 * Pure buffer logic; the caller does the read()/writev() on its own fd. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <json-c/json.h>

/* Hard limits; every one is configurable per listener. */
#define VARLINK_DEFAULT_MAX_MESSAGE     (64U * 1024U)
#define VARLINK_DEFAULT_MAX_DEPTH       32
#define VARLINK_DEFAULT_MAX_PENDING     64
#define VARLINK_DEFAULT_MAX_OUTPUT      (4U * 1024U * 1024U)
#define VARLINK_MAX_MESSAGE_CEILING     (16U * 1024U * 1024U)

/* ---- Input: incremental framer ---------------------------------------- */

typedef struct VarlinkReader VarlinkReader;

VarlinkReader *varlink_reader_new(size_t max_message_size);
VarlinkReader *varlink_reader_free(VarlinkReader *r);

/* Space to read() into: at least 'want' bytes (or what remains before the
 * message limit plus one byte, so oversize is detectable). */
int varlink_reader_get_space(VarlinkReader *r, size_t want, void **ret_ptr, size_t *ret_len);
/* Account for n bytes just written into the space. */
void varlink_reader_advance(VarlinkReader *r, size_t n);
/* Copying variant of the two calls above. */
int varlink_reader_feed(VarlinkReader *r, const void *data, size_t len);

/* Next complete message (without its NUL).  Returns 1 and sets the out
 * pointers (valid until the next reader call), 0 if none is complete yet,
 * -EMSGSIZE if the pending message exceeds the limit (the stream is then
 * unusable: close after replying). */
int varlink_reader_next(VarlinkReader *r, const char **ret_msg, size_t *ret_len);
/* Bytes buffered but not yet returned as messages. */
size_t varlink_reader_pending(const VarlinkReader *r);

/* ---- Output: queue of refcounted blobs, flushed with writev ----------- */

/* An immutable, NUL-terminated encoded message, shared between queues so an
 * event serialized once can be queued to many peers. */
typedef struct VarlinkBlob VarlinkBlob;

VarlinkBlob *varlink_blob_new(const char *json, size_t len);   /* copies, appends NUL */
VarlinkBlob *varlink_blob_ref(VarlinkBlob *b);
VarlinkBlob *varlink_blob_unref(VarlinkBlob *b);
size_t varlink_blob_size(const VarlinkBlob *b);                 /* including the NUL */
const char *varlink_blob_data(const VarlinkBlob *b);

typedef struct VarlinkOutQueue VarlinkOutQueue;

VarlinkOutQueue *varlink_outq_new(size_t max_bytes);
VarlinkOutQueue *varlink_outq_free(VarlinkOutQueue *q);
/* Queue a reference to b.  -ENOBUFS if it would exceed max_bytes (unless
 * 'force': the final error reply before a disconnect is always queued). */
int varlink_outq_push(VarlinkOutQueue *q, VarlinkBlob *b, bool force);
/* Fill up to n iovecs with queued bytes; returns the count filled. */
size_t varlink_outq_peek(const VarlinkOutQueue *q, struct iovec *iov, size_t n);
/* Drop n bytes written from the front. */
void varlink_outq_consume(VarlinkOutQueue *q, size_t n);
size_t varlink_outq_bytes(const VarlinkOutQueue *q);
size_t varlink_outq_count(const VarlinkOutQueue *q);

/* ---- Messages --------------------------------------------------------- */

/* Parse one message: must be exactly one JSON object (no trailing bytes
 * other than whitespace), valid UTF-8, nesting <= max_depth.  On failure
 * returns -EBADMSG (syntax/UTF-8/trailing data), -ELOOP (too deep) or -ENOMEM, and never sets *ret. */
int varlink_message_parse(const char *msg, size_t len, int max_depth, struct json_object **ret);

typedef enum VarlinkCallFlags {
        VARLINK_CALL_MORE    = 1 << 0,
        VARLINK_CALL_ONEWAY  = 1 << 1,
        VARLINK_CALL_UPGRADE = 1 << 2,
} VarlinkCallFlags;

typedef struct VarlinkCall {
        const char *method;                /* "iface.Method", validated */
        struct json_object *parameters;    /* never NULL: {} when absent or null */
        unsigned flags;                    /* VarlinkCallFlags */
} VarlinkCall;

/* Interpret a parsed message as a call.  Pointers borrow from msg.  Unknown
 * top-level keys, wrong types or a bad method name -> -EBADMSG with
 * *ret_bad_field naming the key when one is to blame. */
int varlink_call_from_json(struct json_object *msg, VarlinkCall *ret, const char **ret_bad_field);
/* True if msg says "oneway": true, whatever else is wrong with it: such a
 * call gets no reply at all, not even an error. */
bool varlink_message_is_oneway(struct json_object *msg);

/* "a.b.c.Method": interface part is reverse-domain per the spec, method is
 * CamelCase.  Splits on success (ret_* may be NULL). */
bool varlink_method_name_valid(const char *name);
bool varlink_interface_name_valid(const char *name);
int varlink_method_split(const char *full, char **ret_interface, char **ret_method);

/* Encode a call (client side). */
int varlink_call_encode(const char *method, struct json_object *parameters, unsigned flags, VarlinkBlob **ret);

/* Encode a reply: only "parameters", "continues" (when true) and "error"
 * keys, as every implementation expects.  parameters may be NULL ({}). */
int varlink_reply_encode(struct json_object *parameters, const char *error, bool continues, VarlinkBlob **ret);

typedef struct VarlinkReply {
        struct json_object *parameters;    /* never NULL */
        const char *error;                 /* NULL on success */
        bool continues;
} VarlinkReply;

/* Interpret a parsed message as a reply (client side). */
int varlink_reply_from_json(struct json_object *msg, VarlinkReply *ret);
