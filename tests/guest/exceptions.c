/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Exception delivery at CPL0 and CPL3 through the IDT (#UD, #PF, #DE,
 * #GP), and the CPL3 -> CPL0 system call gate. Catches wrong initial CPU
 * state (IDT/TSS/paging) in a VMM early.
 */
#include "lib/guest.h"

const char test_name[] = "exceptions";

#define EXC_UNMAPPED    0x100000000ULL  /* first byte above the 4 GiB map */

static volatile unsigned exc_seen[32];
static volatile uint64_t exc_last_cs;
static volatile uint64_t exc_last_cr2;

/* Each faulting instruction below is followed by a 2-byte "jmp 1f; ... 1:" skip. */
static void exc_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    exc_seen[tf->vector]++;
    exc_last_cs = tf->cs;
    exc_last_cr2 = tf->vector == 14 ? cpu_read_cr2() : 0;
    tf->rip = tf->rcx;          /* resume address, set up by the caller */
}

#define EXC_TRY(insn, ...)                                              \
    __asm__ volatile("lea 1f(%%rip), %%rcx\n\t" insn "\n1:"             \
                     : : __VA_ARGS__ : "rcx", "rax", "rdx", "memory", "cc")

static uint64_t exc_user(uint64_t arg)
{
    (void)arg;
    EXC_TRY("xor %%edx, %%edx\n\txor %%eax, %%eax\n\tdivl %%edx", "i"(0));
    EXC_TRY("cli", "i"(0));
    EXC_TRY("movb (%0), %%al", "r"(EXC_UNMAPPED));
    EXC_TRY("ud2", "i"(0));
    return user_syscall2(USER_SYS_WRITE, (uintptr_t)TEST_PREFIX
                         "exceptions: syscall from CPL3\n",
                         sizeof(TEST_PREFIX "exceptions: syscall from CPL3\n") - 1);
}

static void exc_expect(unsigned vec, unsigned n, const char *what)
{
    if (exc_seen[vec] != n) {
        test_fail("%s: vector %u seen %u times, expected %u", what, vec,
                  exc_seen[vec], n);
    }
}

int main(void)
{
    const unsigned vecs[] = { 0, 6, 13, 14 };

    for (unsigned i = 0; i < UTIL_ARRAY_SIZE(vecs); i++) {
        cpu_set_handler(vecs[i], exc_handler, NULL);
    }

    EXC_TRY("ud2", "i"(0));
    exc_expect(6, 1, "#UD at CPL0");
    EXC_TRY("movb (%0), %%al", "r"(EXC_UNMAPPED));
    exc_expect(14, 1, "#PF at CPL0");
    if (exc_last_cr2 != EXC_UNMAPPED || (exc_last_cs & 3) != 0) {
        test_fail("#PF at CPL0: cr2 0x%lx cs 0x%lx", exc_last_cr2, exc_last_cs);
    }

    uint64_t r = user_run(exc_user, 0);
    exc_expect(0, 1, "#DE at CPL3");
    exc_expect(13, 1, "#GP (cli) at CPL3");
    exc_expect(14, 2, "#PF at CPL3");
    exc_expect(6, 2, "#UD at CPL3");
    if ((exc_last_cs & 3) != 3) {
        test_fail("last CPL3 exception had cs 0x%lx", exc_last_cs);
    }
    if (r != 0) {
        test_fail("syscall returned 0x%lx", r);
    }
    test_log("exceptions: #UD #PF at CPL0, #DE #GP #PF #UD at CPL3, "
             "syscall gate: all delivered");
    return 0;
}
