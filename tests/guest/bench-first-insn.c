/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * For timing exec -> first guest instruction: built with start.S's
 * GUEST_FIRST_INSN_MARK, so both entry points begin by writing '!' to
 * COM1. Then "ready" on a line of its own and PASS.
 */
#include "lib/guest.h"

const char test_name[] = "bench-first-insn";

int main(void)
{
    test_write("\n", 1);        /* ends the '!' line */
    test_log("ready");
    return 0;
}
