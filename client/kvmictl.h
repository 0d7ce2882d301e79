/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* kvmictl's internal header. */

#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>

#include "macro.h"

/* Documented exit codes (kvmictl(1)). */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_DENIED = 3,
        EXIT_NOTFOUND = 4,
};

/* table.c: aligned text tables with an optional legend. */
typedef struct Table Table;

/* Column headers, NULL-terminated. */
Table *table_new(const char *header, ...);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
/* Exactly as many cells as headers; NULL prints as "-". */
int table_add_row(Table *t, ...);
size_t table_rows(const Table *t);
/* legend: headers and a "N entries." footer. */
void table_print(const Table *t, FILE *f, bool legend, const char *noun);
