/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small blocking varlink client for kvmictl, libkvmid, kvmi-sim and tests.
 * No event loop: one call at a time, replies read synchronously. */

#include <stdbool.h>
#include <json-c/json.h>
#include "varlink-wire.h"

typedef struct VarlinkClient VarlinkClient;

/* address: "unix:/path", "unix:@abstract", or a plain path.  Returns -errno. */
int varlink_client_connect(const char *address, VarlinkClient **ret);
/* Takes ownership of a connected stream fd. */
int varlink_client_new_from_fd(int fd, VarlinkClient **ret);
VarlinkClient *varlink_client_free(VarlinkClient *c);
int varlink_client_fd(const VarlinkClient *c);
/* Receive timeout in milliseconds for every reply read (0 = none). */
void varlink_client_set_timeout(VarlinkClient *c, unsigned timeout_ms);
void varlink_client_set_max_message(VarlinkClient *c, size_t max_message_size);

/* Called once per reply; 'reply' is borrowed.  Return <0 to stop reading
 * (that value is returned from varlink_client_call_more). */
typedef int (*varlink_reply_cb)(VarlinkClient *c, const VarlinkReply *reply, void *userdata);

/* Simple call.  Returns 0 once a reply arrived: *ret_parameters is set (owned,
 * never NULL) and *ret_error to the owned error name, or NULL for success.
 * -ETIMEDOUT, -ECONNRESET (server hung up), -EBADMSG (malformed reply), or
 * another -errno from I/O. */
int varlink_client_call(VarlinkClient *c, const char *method, struct json_object *parameters,
                        struct json_object **ret_parameters, char **ret_error);

/* Call with "more": cb runs for each reply until one without continues, an
 * error reply, or cb returns <0. Returns 0 or -errno / cb's value. */
int varlink_client_call_more(VarlinkClient *c, const char *method, struct json_object *parameters,
                             varlink_reply_cb cb, void *userdata);

/* Fire and forget. */
int varlink_client_call_oneway(VarlinkClient *c, const char *method, struct json_object *parameters);
