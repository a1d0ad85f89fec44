/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Workarounds for instructions some KVM hosts cannot emulate.
 *
 * On a nested, paravirtual KVM (kvm_pvm) guest kernel code runs in KVM's
 * instruction emulator, which fails on a few instructions with
 * KVM_INTERNAL_ERROR_EMULATION. Linux executes three of them while it boots:
 * int3 (alternatives self-test), fwait and ldmxcsr. We finish them here the
 * way the processor would. On hardware-assisted KVM these exits never
 * happen, so none of this runs there.
 */
#include <inttypes.h>
#include <string.h>

#include "vireo/machine-internal.h"
#include "vireo/util.h"
#include "vireo/vcpu.h"

#define X86_MAX_INSN_LEN 15
#define X86_VECTOR_BP 3
#define FXSAVE_MXCSR_OFFSET 24
#define MXCSR_RESERVED_MASK 0xffff0000u

/* Reads instruction bytes at CS:RIP; returns how many could be read. */
static size_t fetch(Vcpu *vcpu, const struct kvm_regs *regs, const struct kvm_sregs *sregs,
                    uint8_t *buf, size_t len)
{
    const GuestMemory *mem = machine_memory(vcpu->machine);
    uint64_t linear = sregs->cs.base + regs->rip;
    size_t got = 0;

    /* Byte by byte: the instruction may cross into an unmapped page. */
    while (got < len) {
        uint64_t gpa;
        if (!vcpu_translate(vcpu, linear + got, &gpa) ||
            !guest_memory_read(mem, gpa, buf + got, 1))
            break;
        got++;
    }
    return got;
}

static uint64_t *gpr(struct kvm_regs *r, unsigned n)
{
    uint64_t *regs[16] = {
        (uint64_t *)&r->rax, (uint64_t *)&r->rcx, (uint64_t *)&r->rdx, (uint64_t *)&r->rbx,
        (uint64_t *)&r->rsp, (uint64_t *)&r->rbp, (uint64_t *)&r->rsi, (uint64_t *)&r->rdi,
        (uint64_t *)&r->r8, (uint64_t *)&r->r9, (uint64_t *)&r->r10, (uint64_t *)&r->r11,
        (uint64_t *)&r->r12, (uint64_t *)&r->r13, (uint64_t *)&r->r14, (uint64_t *)&r->r15,
    };
    return regs[n & 15];
}

/*
 * Decodes a ModRM memory operand in 64-bit mode starting at @p; returns the
 * bytes consumed (ModRM, SIB, displacement) or 0 if it is not a memory
 * operand we handle. @rip_next is the address after the whole instruction,
 * needed for RIP-relative operands, so the caller passes its length budget.
 */
static size_t decode_modrm_mem(struct kvm_regs *regs, const uint8_t *p, size_t avail,
                               unsigned rex, uint64_t insn_addr, size_t prefix_len,
                               uint64_t *ea, unsigned *reg_field)
{
    size_t n = 1;
    unsigned mod, rm;
    int64_t disp = 0;
    uint64_t base = 0;
    gboolean rip_relative = FALSE;

    if (avail < 1)
        return 0;
    mod = p[0] >> 6;
    *reg_field = (p[0] >> 3) & 7;
    rm = p[0] & 7;
    if (mod == 3)
        return 0;
    if (rm == 4) {
        unsigned scale, index, sbase;
        if (avail < 2)
            return 0;
        scale = p[1] >> 6;
        index = ((p[1] >> 3) & 7) | ((rex & 2) << 2);
        sbase = (p[1] & 7) | ((rex & 1) << 3);
        n = 2;
        if (index != 4)
            base += *gpr(regs, index) << scale;
        if ((sbase & 7) == 5 && mod == 0) {
            if (avail < n + 4)
                return 0;
            disp = (int32_t)vireo_le_load(p + n, 4);
            n += 4;
        } else {
            base += *gpr(regs, sbase);
        }
    } else if (rm == 5 && mod == 0) {
        rip_relative = TRUE;
        if (avail < n + 4)
            return 0;
        disp = (int32_t)vireo_le_load(p + n, 4);
        n += 4;
    } else {
        base += *gpr(regs, rm | ((rex & 1) << 3));
    }
    if (mod == 1) {
        if (avail < n + 1)
            return 0;
        disp = (int8_t)p[n];
        n += 1;
    } else if (mod == 2) {
        if (avail < n + 4)
            return 0;
        disp = (int32_t)vireo_le_load(p + n, 4);
        n += 4;
    }
    if (rip_relative)
        base = insn_addr + prefix_len + n;
    *ea = base + disp;
    return n;
}

static gboolean set_mxcsr(Vcpu *vcpu, uint32_t mxcsr)
{
    const Kvm *kvm = machine_kvm(vcpu->machine);
    g_autofree struct kvm_xsave *xsave = g_malloc0(MAX(kvm->xsave_size,
                                                        (int)sizeof(struct kvm_xsave)));

    /* KVM_SET_FPU ignores MXCSR on some hosts; KVM_SET_XSAVE does not. */
    if (kvm_ioctl_raw(vcpu->fd, KVM_GET_XSAVE, (unsigned long)xsave) < 0)
        return FALSE;
    vireo_le_store((uint8_t *)xsave->region + FXSAVE_MXCSR_OFFSET, 4, mxcsr);
    return kvm_ioctl_raw(vcpu->fd, KVM_SET_XSAVE, (unsigned long)xsave) >= 0;
}

static gboolean inject_breakpoint(Vcpu *vcpu)
{
    struct kvm_vcpu_events ev;

    if (kvm_ioctl_raw(vcpu->fd, KVM_GET_VCPU_EVENTS, (unsigned long)&ev) < 0)
        return FALSE;
    ev.exception.injected = 1;
    ev.exception.nr = X86_VECTOR_BP;
    ev.exception.has_error_code = 0;
    ev.exception.error_code = 0;
    ev.flags = 0;
    return kvm_ioctl_raw(vcpu->fd, KVM_SET_VCPU_EVENTS, (unsigned long)&ev) >= 0;
}

gboolean vcpu_fixup_emulation_failure(Vcpu *vcpu)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    uint8_t insn[X86_MAX_INSN_LEN];
    size_t len, i = 0;
    unsigned rex = 0;
    uint64_t insn_addr;

    if (kvm_ioctl_raw(vcpu->fd, KVM_GET_REGS, (unsigned long)&regs) < 0 ||
        kvm_ioctl_raw(vcpu->fd, KVM_GET_SREGS, (unsigned long)&sregs) < 0)
        return FALSE;
    len = fetch(vcpu, &regs, &sregs, insn, sizeof(insn));
    insn_addr = sregs.cs.base + regs.rip;
    if (len == 0)
        return FALSE;

    if (insn[0] == 0xcc) {
        /* int3 is a trap: the handler sees RIP after the instruction. */
        regs.rip += 1;
        if (kvm_ioctl_raw(vcpu->fd, KVM_SET_REGS, (unsigned long)&regs) < 0 ||
            !inject_breakpoint(vcpu))
            return FALSE;
        goto handled;
    }
    if (insn[0] == 0x9b) {
        /* fwait: no x87 exception can be pending, it is a no-op. */
        regs.rip += 1;
        if (kvm_ioctl_raw(vcpu->fd, KVM_SET_REGS, (unsigned long)&regs) < 0)
            return FALSE;
        goto handled;
    }

    /* ldmxcsr m32: [REX] 0f ae /2, or vldmxcsr: c5 f8 ae /2. */
    if (sregs.cs.l) {
        if (i < len && (insn[i] & 0xf0) == 0x40)
            rex = insn[i++];
        if (i + 2 < len && insn[i] == 0x0f && insn[i + 1] == 0xae) {
            i += 2;
        } else if (i == 0 && len > 3 && insn[0] == 0xc5 && insn[1] == 0xf8 && insn[2] == 0xae) {
            i = 3;
        } else {
            return FALSE;
        }
        {
            uint64_t ea, gpa;
            unsigned reg_field;
            uint8_t val[4];
            size_t n = decode_modrm_mem(&regs, insn + i, len - i, rex, insn_addr, i, &ea,
                                        &reg_field);
            uint32_t mxcsr;

            if (n == 0 || reg_field != 2)
                return FALSE;
            if (!vcpu_translate(vcpu, ea, &gpa) ||
                !guest_memory_read(machine_memory(vcpu->machine), gpa, val, sizeof(val)))
                return FALSE;
            mxcsr = vireo_le_load(val, 4);
            if (mxcsr & MXCSR_RESERVED_MASK)
                return FALSE;       /* would be #GP: let the fatal path report it */
            regs.rip += i + n;
            if (!set_mxcsr(vcpu, mxcsr) ||
                kvm_ioctl_raw(vcpu->fd, KVM_SET_REGS, (unsigned long)&regs) < 0)
                return FALSE;
            goto handled;
        }
    }
    return FALSE;

handled:
    if (vcpu->fixups++ == 0)
        g_info("vCPU %u: finishing instructions this KVM cannot emulate (0x%02x at 0x%"
               PRIx64 ")", vcpu->index, insn[0], insn_addr);
    return TRUE;
}
