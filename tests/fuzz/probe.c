/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Configure-time check that clang can build a libFuzzer target here. */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return 0;
}
