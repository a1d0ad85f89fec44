/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A guest that crashes the machine: with an empty IDT, #UD cannot be
 * delivered, nor the #GP and #DF that follow, so the CPU shuts down
 * (triple fault). vireo-vmm must report the registers and exit with 2.
 */
#include "lib/guest.h"

const char test_name[] = "triple-fault";

int main(void)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty = { 0, 0 };

    test_log("triple-fault: loading an empty IDT and executing ud2");
    __asm__ volatile("cli\n\tlidt %0\n\tud2" : : "m"(empty) : "memory");
    test_fail("still running after ud2 with an empty IDT");
}
