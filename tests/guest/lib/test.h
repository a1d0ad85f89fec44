/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Test conventions (see ../README.md):
 *   PASS: "VIREO-GUEST: PASS <name>", then debug-exit 0x10 (status 33)
 *   FAIL: "VIREO-GUEST: FAIL <name>: <reason>", then debug-exit 0x11 (35)
 * All functions here are CPL0 only; CPL3 code uses user.h.
 */
#ifndef GUEST_TEST_H
#define GUEST_TEST_H

#include <stddef.h>
#include <stdint.h>

#define TEST_PREFIX             "VIREO-GUEST: "
#define TEST_DEBUG_EXIT_PORT    0x501
#define TEST_PASS_CODE          0x10
#define TEST_FAIL_CODE          0x11

/* Defined by every program: const char test_name[] = "hello"; */
extern const char test_name[];

/* One line "VIREO-GUEST: <formatted>\n", atomic with respect to other CPUs. */
void test_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Raw bytes to the console under the same lock (no prefix, no newline). */
void test_write(const char *s, size_t n);

void test_pass(void) __attribute__((noreturn));
void test_fail(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

/*
 * Write code to the isa-debug-exit port. If the machine has none and the
 * guest keeps running: code TEST_PASS_CODE powers off through ACPI (a VMM
 * then exits 0), anything else triple-faults (vireo-vmm exits 2).
 */
void test_exit(uint8_t code) __attribute__((noreturn));

#endif
