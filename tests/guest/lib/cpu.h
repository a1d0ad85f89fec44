/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-CPU state (GDT/TSS/IDT), trap dispatch and small CPU instructions.
 */
#ifndef GUEST_CPU_H
#define GUEST_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

typedef struct __attribute__((packed)) {
    uint32_t reserved0;
    uint64_t rsp[3];            /* rsp[0] at offset LAYOUT_CPU_TSS_RSP0 */
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} Tss;

/* Lives at the bottom of the CPU's kernel stack (see layout.h). */
typedef struct {
    Tss tss;                    /* first member: start.S writes tss.rsp0 */
    uint32_t index;             /* 0 = boot CPU, then MADT order */
    uint32_t apic_id;
    volatile uint32_t online;
} Cpu;

/* Pushed by start.S's isr_common; the lowest address is r15. */
typedef struct {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rdi, rsi, rbp, rbx, rdx, rcx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
} TrapFrame;

typedef void (*TrapHandler)(TrapFrame *tf, void *opaque);

/* The CPU this code runs on (CPL0 only: uses the kernel stack). */
static inline Cpu *cpu_self(void)
{
    uintptr_t sp;

    __asm__("mov %%rsp, %0" : "=r"(sp));
    return (Cpu *)(sp & ~(uintptr_t)(LAYOUT_STACK_SIZE - 1));
}

Cpu *cpu_get(unsigned index);
void *cpu_stack_top(unsigned index);

/* Build the IDT (boot CPU, once). */
void cpu_idt_init(void);

/* Load this CPU's TSS (descriptor LAYOUT_SEL_TSS0 + 16 * index) and the IDT. */
void cpu_init(Cpu *cpu, unsigned index);

/*
 * Install a handler for a vector (exceptions included: it replaces the
 * default "print and fail"). Handlers of device interrupts send their own
 * EOI (lapic_eoi()). Vector LAYOUT_VEC_SPURIOUS is ignored by default.
 */
void cpu_set_handler(uint8_t vector, TrapHandler fn, void *opaque);

/* Print the frame and fail the test (the default for unhandled vectors). */
void cpu_trap_fatal(const TrapFrame *tf) __attribute__((noreturn));

static inline void cpu_cli(void)
{
    __asm__ volatile("cli" : : : "memory");
}

static inline void cpu_sti(void)
{
    __asm__ volatile("sti" : : : "memory");
}

/* STI's one-instruction shadow makes "sti; hlt" race-free. */
static inline void cpu_sti_hlt(void)
{
    __asm__ volatile("sti; hlt" : : : "memory");
}

static inline void cpu_hlt(void)
{
    __asm__ volatile("hlt" : : : "memory");
}

static inline uint64_t cpu_rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t cpu_rdmsr(uint32_t msr)
{
    uint32_t lo, hi;

    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v),
                     "d"((uint32_t)(v >> 32)));
}

static inline void cpu_cpuid(uint32_t leaf, uint32_t sub, uint32_t *a,
                             uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
                     : "a"(leaf), "c"(sub));
}

static inline uint64_t cpu_read_cr2(void)
{
    uint64_t v;

    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline uint64_t cpu_read_flags(void)
{
    uint64_t v;

    __asm__ volatile("pushfq; popq %0" : "=r"(v));
    return v;
}

/*
 * TSC frequency from CPUID (0x15, 0x16 or the hypervisor leaf 0x40000010);
 * 3 GHz when none says. Only used for timeouts and reports.
 */
uint64_t cpu_tsc_khz(void);

/* Busy-wait about us microseconds (TSC based). */
void cpu_delay_us(uint64_t us);

#endif
