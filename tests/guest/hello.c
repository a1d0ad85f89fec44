/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The smallest test: one line on COM1, then PASS through debug-exit. */
#include "lib/guest.h"

const char test_name[] = "hello";

int main(void)
{
    test_log("hello");
    return 0;
}
