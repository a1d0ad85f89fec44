/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Fixed numbers of the guest runtime, shared by start.S and the C code.
 * Only plain #defines here: start.S includes this file.
 */
#ifndef GUEST_LAYOUT_H
#define GUEST_LAYOUT_H

/* Where guest.ld links every program (a physical address, p_paddr == p_vaddr). */
#define LAYOUT_IMAGE_BASE       0x100000

/* GDT selectors (gdt in start.S). */
#define LAYOUT_SEL_CODE32       0x08
#define LAYOUT_SEL_CODE64       0x10
#define LAYOUT_SEL_DATA         0x18
#define LAYOUT_SEL_USER_CODE    0x23    /* 0x20 | RPL 3 */
#define LAYOUT_SEL_USER_DATA    0x2b    /* 0x28 | RPL 3 */
#define LAYOUT_SEL_TSS0         0x30    /* one 16-byte TSS descriptor per CPU */
#define LAYOUT_GDT_FIXED        6       /* descriptors before the first TSS */

#define LAYOUT_MAX_CPUS         16

/*
 * Every CPU's kernel stack is LAYOUT_STACK_SIZE bytes, aligned to its size,
 * and its lowest bytes hold that CPU's struct Cpu: cpu_self() masks RSP.
 * No MSR (GS base) is needed, so nothing depends on how IRET to CPL3
 * treats segment bases.
 */
#define LAYOUT_STACK_SIZE       0x4000
#define LAYOUT_USER_STACK_SIZE  0x4000

/* Offset of tss.rsp0 in struct Cpu (the TSS is its first member). */
#define LAYOUT_CPU_TSS_RSP0     4

/* Real-mode AP trampoline: copied here, SIPI vector = address >> 12. */
#define LAYOUT_TRAMPOLINE       0x8000

/* Software interrupt vectors with DPL 3, usable from CPL3. */
#define LAYOUT_VEC_SYSCALL      0x80    /* rax = number, see user.h */
#define LAYOUT_VEC_USER_RETURN  0x81    /* leave user_call(), rax = result */
#define LAYOUT_VEC_SPURIOUS     0xff

#endif
