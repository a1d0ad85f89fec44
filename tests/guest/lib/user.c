/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "user.h"

#include <stdarg.h>
#include <stddef.h>

#include "cpu.h"
#include "fmt.h"
#include "test.h"

static uint8_t user_stacks[LAYOUT_MAX_CPUS][LAYOUT_USER_STACK_SIZE]
    __attribute__((aligned(16)));

uint64_t user_run(UserFn fn, uint64_t arg)
{
    unsigned i = cpu_self()->index;

    return user_call(fn, arg, user_stacks[i] + LAYOUT_USER_STACK_SIZE);
}

static void user_syscall_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    switch (tf->rax) {
    case USER_SYS_WRITE:
        /* Every page is this program's own, so the buffer is trusted. */
        test_write((const char *)tf->rdi, tf->rsi);
        tf->rax = 0;
        break;
    default:
        tf->rax = (uint64_t)-1;
        break;
    }
}

static void user_return_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    if ((tf->cs & 3) != 3) {
        cpu_trap_fatal(tf);
    }
    user_resume_kernel((void *)cpu_self()->tss.rsp[0], tf->rax);
}

void user_init(void)
{
    cpu_set_handler(LAYOUT_VEC_SYSCALL, user_syscall_handler, NULL);
    cpu_set_handler(LAYOUT_VEC_USER_RETURN, user_return_handler, NULL);
}

uint64_t user_syscall2(uint64_t nr, uint64_t a0, uint64_t a1)
{
    uint64_t ret;

    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "D"(a0), "S"(a1)
                     : "memory");
    return ret;
}

void user_log(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    size_t n = fmt_snprint(line, sizeof(line), "%s", TEST_PREFIX);

    va_start(ap, fmt);
    n += fmt_vsnprint(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (n > sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    user_syscall2(USER_SYS_WRITE, (uintptr_t)line, n);
}
