/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Entry points of every guest test program.
 *
 * _start        64-bit entry of vireo-vmm (Linux 64-bit boot protocol):
 *               long mode, CS=0x10, first 4 GiB identity mapped, RSI =
 *               &boot_params, interrupts off, no stack.
 * pvh_start32   PVH entry (XEN_ELFNOTE_PHYS32_ENTRY), used by QEMU -kernel:
 *               32-bit protected mode, paging off, EBX = &hvm_start_info.
 *
 * Both switch to this image's own GDT and page tables (the pages must be
 * user-accessible for user_call(), and APs need tables anyway), take the
 * boot CPU's stack and call runtime_start(kind, boot_info).
 *
 * With -DGUEST_FIRST_INSN_MARK (bench-first-insn only) the first
 * instructions at both entries write '!' to COM1, so a benchmark can time
 * exec -> first guest instruction.
 */
#include "layout.h"

#define MSR_EFER        0xc0000080
#define EFER_LME        (1 << 8)
#define CR0_PE          (1 << 0)
#define CR0_NW          (1 << 29)
#define CR0_CD          (1 << 30)
#define CR0_PG          (1 << 31)
#define CR4_PAE         (1 << 5)

/* Page table entry bits: present, writable, user, 2 MiB page, PWT|PCD. */
#define PTE_P           0x001
#define PTE_RW          0x002
#define PTE_US          0x004
#define PTE_PWT_PCD     0x018
#define PTE_PS          0x080

#define BOOT_KIND_LINUX 1
#define BOOT_KIND_PVH   2

.macro FIRST_INSN_MARK
#ifdef GUEST_FIRST_INSN_MARK
        mov     $0x3f8, %dx
        mov     $'!', %al
        outb    %al, %dx
#endif
.endm

/* ---------------------------------------------------------------------- */
        .section .text.entry, "ax"
        .code64
        .globl  _start
_start:
        FIRST_INSN_MARK
        cli
        cld
        mov     $BOOT_KIND_LINUX, %edi
        /* RSI = &boot_params, passed through unchanged. */
        lea     cpu_stacks + LAYOUT_STACK_SIZE(%rip), %rsp
        lgdt    gdt_desc(%rip)
        mov     $boot_pml4, %eax
        mov     %rax, %cr3
        pushq   $LAYOUT_SEL_CODE64
        lea     entry64_common(%rip), %rax
        pushq   %rax
        lretq

        .code32
        .globl  pvh_start32
pvh_start32:
        FIRST_INSN_MARK
        cli
        cld
        mov     %ebx, %esi                      /* &hvm_start_info */
        lgdt    gdt_desc
        mov     $LAYOUT_SEL_DATA, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     %cr4, %eax
        or      $CR4_PAE, %eax
        mov     %eax, %cr4
        mov     $boot_pml4, %eax
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $EFER_LME, %eax
        wrmsr
        mov     %cr0, %eax
        or      $(CR0_PG | CR0_PE), %eax
        mov     %eax, %cr0
        ljmp    $LAYOUT_SEL_CODE64, $pvh_entry64

        .code64
pvh_entry64:
        mov     %esi, %esi                      /* upper half is undefined */
        mov     $BOOT_KIND_PVH, %edi
        /* fall through */

entry64_common:                                 /* EDI = kind, RSI = info */
        mov     $LAYOUT_SEL_DATA, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        xor     %eax, %eax
        mov     %eax, %fs
        mov     %eax, %gs
        /*
         * Every page is user-accessible (user_call() runs code of this
         * image at CPL3), so supervisor-mode execution/access protection
         * must be off.
         */
        mov     %cr4, %rax
        and     $~((1 << 20) | (1 << 21)), %rax
        mov     %rax, %cr4
        lea     cpu_stacks + LAYOUT_STACK_SIZE(%rip), %rsp
        xor     %ebp, %ebp
        call    runtime_start
1:      cli
        hlt
        jmp     1b

/*
 * AP landing in long mode (from the trampoline), RDI = struct Cpu *,
 * RSP = top of that CPU's stack.
 */
        .globl  ap_entry64
ap_entry64:
        lgdt    gdt_desc(%rip)
        pushq   $LAYOUT_SEL_CODE64
        lea     1f(%rip), %rax
        pushq   %rax
        lretq
1:      mov     $LAYOUT_SEL_DATA, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        xor     %eax, %eax
        mov     %eax, %fs
        mov     %eax, %gs
        xor     %ebp, %ebp
        call    smp_ap_main
2:      cli
        hlt
        jmp     2b

/* ---------------------------------------------------------------------- */
/*
 * Interrupt stubs: 256 of them, 16 bytes apart (cpu.c computes addresses
 * as isr_stubs + 16 * vector). Each pushes a zero error code where the CPU
 * does not push one, then the vector, and joins isr_common, which builds
 * a TrapFrame (cpu.h) and calls cpu_trap_dispatch(frame).
 */
        .text
        .balign 16
        .globl  isr_stubs
isr_stubs:
        .set    vec, 0
        .rept   256
        .balign 16
        .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
        pushq   $0
        .endif
        pushq   $vec
        jmp     isr_common
        .set    vec, vec + 1
        .endr

isr_common:
        push    %rax
        push    %rcx
        push    %rdx
        push    %rbx
        push    %rbp
        push    %rsi
        push    %rdi
        push    %r8
        push    %r9
        push    %r10
        push    %r11
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        mov     %rsp, %rdi
        cld
        call    cpu_trap_dispatch
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %r11
        pop     %r10
        pop     %r9
        pop     %r8
        pop     %rdi
        pop     %rsi
        pop     %rbp
        pop     %rbx
        pop     %rdx
        pop     %rcx
        pop     %rax
        add     $16, %rsp
        iretq

/* ---------------------------------------------------------------------- */
/*
 * uint64_t user_call(uint64_t (*fn)(uint64_t), uint64_t arg, void *stack_top)
 *
 * Runs fn(arg) at CPL3 on stack_top (16-byte aligned) with interrupts
 * enabled, and returns its result once fn returns: user_entry then raises
 * vector LAYOUT_VEC_USER_RETURN, whose handler (user.c) calls
 * user_resume_kernel(). The callee-saved registers and RFLAGS are pushed
 * on this CPU's kernel stack and TSS.RSP0 points just below them, so
 * every entry from CPL3 lands under them and the saved state is found at
 * TSS.RSP0 again.
 */
        .globl  user_call
user_call:
        pushfq
        push    %rbp
        push    %rbx
        push    %r12
        push    %r13
        push    %r14
        push    %r15
        /* RSP is 16-byte aligned here (entry RSP was 8 mod 16). */
        mov     %rsp, %rcx
        and     $-LAYOUT_STACK_SIZE, %rcx
        mov     %rsp, LAYOUT_CPU_TSS_RSP0(%rcx)
        mov     %rdi, %rax
        mov     %rsi, %rdi
        pushq   $LAYOUT_SEL_USER_DATA
        pushq   %rdx
        pushq   $0x202                          /* IF */
        pushq   $LAYOUT_SEL_USER_CODE
        lea     user_entry(%rip), %rcx
        pushq   %rcx
        xor     %ebx, %ebx
        xor     %ecx, %ecx
        xor     %edx, %edx
        xor     %esi, %esi
        xor     %ebp, %ebp
        xor     %r8d, %r8d
        xor     %r9d, %r9d
        xor     %r10d, %r10d
        xor     %r11d, %r11d
        iretq

user_entry:                                     /* CPL3 */
        call    *%rax
        int     $LAYOUT_VEC_USER_RETURN         /* RAX = result */
        ud2

/*
 * void user_resume_kernel(void *saved, uint64_t result): back to
 * user_call()'s caller; saved is the TSS.RSP0 that user_call() set.
 */
        .globl  user_resume_kernel
user_resume_kernel:
        mov     %rdi, %rsp
        mov     %rsi, %rax
        mov     $LAYOUT_SEL_DATA, %ecx
        mov     %ecx, %ss
        mov     %ecx, %ds
        mov     %ecx, %es
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbx
        pop     %rbp
        popfq
        ret

/* ---------------------------------------------------------------------- */
/*
 * AP trampoline, copied to LAYOUT_TRAMPOLINE by smp.c. Starts in real mode
 * at CS:IP = (LAYOUT_TRAMPOLINE >> 4):0 and reaches ap_entry64 with the
 * stack, page tables and Cpu pointer that smp.c put in trampoline_params.
 * Position-dependent only on LAYOUT_TRAMPOLINE.
 */
#define T(sym)  (LAYOUT_TRAMPOLINE + (sym) - trampoline_start)

        .section .rodata.trampoline, "a"
        .balign 16
        .globl  trampoline_start, trampoline_end, trampoline_params
        .code16
trampoline_start:
        cli
        cld
        xor     %ax, %ax
        mov     %ax, %ds
        lgdtl   T(tp_gdt_limit)
        mov     %cr0, %eax
        and     $~(CR0_CD | CR0_NW), %eax
        or      $CR0_PE, %eax
        mov     %eax, %cr0
        ljmpl   $LAYOUT_SEL_CODE32, $T(trampoline32)

        .code32
trampoline32:
        mov     $LAYOUT_SEL_DATA, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     %cr4, %eax
        or      $CR4_PAE, %eax
        mov     %eax, %cr4
        mov     T(tp_cr3), %eax
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $EFER_LME, %eax
        wrmsr
        mov     %cr0, %eax
        or      $CR0_PG, %eax
        mov     %eax, %cr0
        ljmp    $LAYOUT_SEL_CODE64, $T(trampoline64)

        .code64
trampoline64:
        mov     T(tp_stack), %rsp
        mov     T(tp_cpu), %rdi
        mov     T(tp_entry), %rax
        jmp     *%rax

        /* Filled in by smp.c (struct TrampolineParams). */
        .balign 8
trampoline_params:
        .word   0
tp_gdt_limit:
        .word   0                               /* limit, then 32-bit base */
tp_gdt_base:
        .long   0
tp_cr3:
        .long   0
        .long   0
tp_stack:
        .quad   0
tp_cpu:
        .quad   0
tp_entry:
        .quad   0
trampoline_end:

/* ---------------------------------------------------------------------- */
        .section .data.boot, "aw"
        .balign 16
        .globl  gdt, gdt_desc
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff              /* 0x08 code, 32-bit */
        .quad   0x00af9a000000ffff              /* 0x10 code, 64-bit */
        .quad   0x00cf92000000ffff              /* 0x18 data */
        .quad   0x00affa000000ffff              /* 0x20 user code, 64-bit */
        .quad   0x00cff2000000ffff              /* 0x28 user data */
        .fill   2 * LAYOUT_MAX_CPUS, 8, 0       /* 0x30 TSS descriptors */
gdt_end:

        .balign 8
        .word   0
gdt_desc:
        .word   gdt_end - gdt - 1
        .quad   gdt

/*
 * Identity map of 0-4 GiB with 2 MiB pages, all user-accessible; 3-4 GiB
 * (PCI hole, IOAPIC, local APIC) uncached. Static, so no CPL0 loop builds it.
 */
        .section .data.pagetables, "aw"
        .balign 4096
        .globl  boot_pml4
boot_pml4:
        .quad   boot_pdpt + (PTE_P | PTE_RW | PTE_US)
        .fill   511, 8, 0
boot_pdpt:
        .quad   boot_pd + 0x0000 + (PTE_P | PTE_RW | PTE_US)
        .quad   boot_pd + 0x1000 + (PTE_P | PTE_RW | PTE_US)
        .quad   boot_pd + 0x2000 + (PTE_P | PTE_RW | PTE_US)
        .quad   boot_pd + 0x3000 + (PTE_P | PTE_RW | PTE_US)
        .fill   508, 8, 0
boot_pd:
        .set    pde, 0
        .rept   2048
        .if pde >= 1536
        .quad   (pde << 21) | (PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_PWT_PCD)
        .else
        .quad   (pde << 21) | (PTE_P | PTE_RW | PTE_US | PTE_PS)
        .endif
        .set    pde, pde + 1
        .endr

/*
 * PVH entry note, read by QEMU (and Xen). The descriptor is 8 bytes
 * (QEMU reads a size_t); the section stays 4-byte aligned because QEMU
 * rounds the name size up to the PT_NOTE alignment.
 */
        .section .note.Xen, "a", @note
        .balign 4
        .long   4                               /* namesz ("Xen\0") */
        .long   8                               /* descsz */
        .long   18                              /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz  "Xen"
        .balign 4
        .quad   pvh_start32
        .balign 4

        .section .note.GNU-stack, "", @progbits
