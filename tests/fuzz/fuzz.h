/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What every harness in tests/fuzz/ shares: the libFuzzer entry point
 * (driven by libFuzzer, or by fuzz-main.c in make check) and a check that
 * stays on under NDEBUG, since the harness's oracles are the point. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                        \
        do {                                                                                    \
                if (!(cond)) {                                                                  \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        abort();                                                                \
                }                                                                               \
        } while (0)
