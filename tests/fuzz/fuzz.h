/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every harness in tests/fuzz/ shares: the libFuzzer entry point
 * (driven by libFuzzer, or by fuzz-main.c in make check) and a check that
 * stays on under NDEBUG, since the harness's oracles are the point. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                        \
        do {                                                                                    \
                if (!(cond)) {                                                                  \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

/* An error's 1-based line:col points into the text, just past the end of
 * its line, or at min_line_len + 1 (where a parser reports a line that is
 * too long). */
static inline bool fuzz_position_valid(const char *text, unsigned line, unsigned col, size_t min_line_len) {
        const char *s = text;
        size_t len;

        if (line < 1 || col < 1)
                return false;
        for (unsigned l = 1; l < line; l++) {
                s = strchr(s, '\n');
                if (!s)
                        return false;
                s++;
        }
        len = strcspn(s, "\n");
        return col <= (len > min_line_len ? len : min_line_len) + 1;
}
