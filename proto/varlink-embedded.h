/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The proto/ .varlink files, compiled in (generated at build time). */

typedef struct VarlinkEmbeddedIDL {
        const char *filename;
        const char *text;
} VarlinkEmbeddedIDL;

/* Terminated by { NULL, NULL }. */
extern const VarlinkEmbeddedIDL varlink_embedded_idl[];
