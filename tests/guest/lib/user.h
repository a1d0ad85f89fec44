/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Running code at CPL3. This host runs guest CPL0 code in an instruction
 * emulator (~2 M instructions/s) and CPL3 code natively, so heavy loops
 * belong here. There is no `syscall` (it does not reach the guest kernel
 * on this host): CPL3 code enters CPL0 through `int $0x80` (DPL 3 gate),
 * and user_run() returns through `int $0x81`. On this host `int $n` at
 * CPL3 raises #UD; cpu.c then does what the gate should have done.
 */
#ifndef GUEST_USER_H
#define GUEST_USER_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t (*UserFn)(uint64_t arg);

/*
 * Run fn(arg) at CPL3 with interrupts enabled, on this CPU's user stack,
 * and return its result. CPL0 only. Interrupts arriving meanwhile are
 * handled normally; an exception at CPL3 fails the test.
 */
uint64_t user_run(UserFn fn, uint64_t arg);

/* start.S: the same on an explicit, 16-byte aligned stack top. */
uint64_t user_call(UserFn fn, uint64_t arg, void *stack_top);

/* start.S: return to user_call()'s caller (vector 0x81's handler). */
void user_resume_kernel(void *saved, uint64_t result)
    __attribute__((noreturn));

/* Register the handlers of 0x80 and 0x81 (runtime.c does it at boot). */
void user_init(void);

/* System calls, from CPL3: rax = number, rdi/rsi = arguments. */
#define USER_SYS_WRITE  1       /* (buf, len): raw bytes to the console */

uint64_t user_syscall2(uint64_t nr, uint64_t a0, uint64_t a1);

/* CPL3: one "VIREO-GUEST: ..." line (formatted at CPL3, one syscall). */
void user_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
