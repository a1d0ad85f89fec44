/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "test.h"

#include <stdarg.h>

#include "acpi.h"
#include "cpu.h"
#include "fmt.h"
#include "io.h"
#include "serial.h"
#include "util.h"

static Spinlock test_lock;
static volatile uint32_t test_failing;

void test_write(const char *s, size_t n)
{
    uint64_t flags = util_lock_irqsave(&test_lock);

    serial_write(s, n);
    util_unlock_irqrestore(&test_lock, flags);
}

static void test_vline(const char *fmt, va_list ap)
{
    char line[256];
    size_t n = fmt_snprint(line, sizeof(line), "%s", TEST_PREFIX);

    n += fmt_vsnprint(line + n, sizeof(line) - n, fmt, ap);
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    test_write(line, n);
}

void test_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    test_vline(fmt, ap);
    va_end(ap);
}

void test_pass(void)
{
    test_log("PASS %s", test_name);
    test_exit(TEST_PASS_CODE);
}

void test_fail(const char *fmt, ...)
{
    char reason[200];
    va_list ap;

    cpu_cli();
    /* A second failure (say, a fault while failing) just exits. */
    if (__atomic_exchange_n(&test_failing, 1, __ATOMIC_ACQ_REL)) {
        test_exit(TEST_FAIL_CODE);
    }
    va_start(ap, fmt);
    fmt_vsnprint(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    /*
     * The console lock may be held by this CPU (fault inside test_log) or
     * by a CPU that will never let go: wait a little, then take it anyway.
     */
    for (unsigned i = 0; i < 200000 && test_lock.locked; i++) {
        util_pause();
    }
    test_lock.locked = 0;
    test_log("FAIL %s: %s", test_name, reason);
    test_exit(TEST_FAIL_CODE);
}

void test_exit(uint8_t code)
{
    io_out8(TEST_DEBUG_EXIT_PORT, code);
    /* Still here: no debug-exit device. Give the VMM a moment anyway. */
    cpu_delay_us(100000);
    cpu_cli();
    if (code == TEST_PASS_CODE) {
        test_log("no debug-exit device: powering off");
        acpi_poweroff();
        for (;;) {
            cpu_hlt();
        }
    }
    test_log("no debug-exit device: triple fault");
    static const struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty_idt = { 0, 0 };
    __asm__ volatile("lidt %0; ud2" : : "m"(empty_idt));
    for (;;) {
        cpu_hlt();
    }
}
