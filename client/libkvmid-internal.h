/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The pieces of libkvmid that need no daemon, for tests/unit/check-libkvmid.c.
 * Hidden: not part of the library's ABI. */

#include <stdint.h>
#include <json-c/json.h>

#include "libkvmid.h"

#define LIBKVMID_KEY_MIN 32
#define LIBKVMID_KEY_MAX 1024
#define LIBKVMID_NONCE_SIZE 32

/* hex(HMAC-SHA256(key, "kvmid-auth-v1" 0x00 || nonce || name || 0x00 || binding)),
 * the proof io.kvmid.Introspector.Authenticate expects. */
int libkvmid_proof(const void *key, size_t key_len, const uint8_t nonce[LIBKVMID_NONCE_SIZE], const char *name,
                   const char *binding, char ret_hex[2 * 32 + 1]);

/* Reads a key file with kvmid's rules: regular file, no group/other
 * access, 32 to 1024 bytes used as they are.  On failure *ret_why says
 * why in words.  *ret_key is malloc()ed: wipe and free it. */
int libkvmid_read_key_file(const char *path, uint8_t **ret_key, size_t *ret_len, const char **ret_why);

/* The GuestRequest object of a Subscribe reply.  Strings borrow from o.
 * -EBADMSG with *ret_field naming a missing or mistyped field. */
int libkvmid_parse_guest_request(struct json_object *o, KvmidGuestRequest *ret, const char **ret_field);

/* GetMapToken reply parameters. */
int libkvmid_parse_token(struct json_object *parameters, KvmidToken *ret, const char **ret_field);

/* The negative errno a varlink error name stands for (-EREMOTEIO if unknown). */
int libkvmid_error_errno(const char *name);

/* "NAME: message" for a varlink error and its parameters (may be NULL);
 * malloc()ed, NULL only without memory. */
char *libkvmid_format_error(const char *name, struct json_object *parameters);
