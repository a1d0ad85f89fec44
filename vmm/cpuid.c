/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Each vCPU's CPUID: what KVM supports, with the topology made to match
 * the machine (one socket, one core per vCPU, APIC ID = vCPU index).
 */
#include <string.h>

#include "vireo/vcpu.h"

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)

static unsigned order_base_2(unsigned n)
{
    unsigned bits = 0;
    while ((1u << bits) < n)
        bits++;
    return bits;
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned index,
                                  unsigned nr_cpus)
{
    size_t size = sizeof(*supported) + supported->nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = g_memdup2(supported, size);
    unsigned core_bits = order_base_2(nr_cpus);

    for (uint32_t i = 0; i < cpuid->nent; i++) {
        struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((nr_cpus & 0xff) << 16);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            if (nr_cpus > 1)
                e->edx |= CPUID_1_EDX_HTT;
            else
                e->edx &= ~CPUID_1_EDX_HTT;
            break;
        case 4:
            /* Cores per package - 1, and threads sharing this cache - 1 (none). */
            e->eax = (e->eax & 0x3ff) | ((nr_cpus - 1) << 26);
            break;
        case 6:
            /* No thermal or power management to offer. */
            e->eax = e->ebx = e->ecx = e->edx = 0;
            break;
        case 0xb:
        case 0x1f:
            /* Level 0: SMT, one thread per core. Level 1: cores. Then the end. */
            if (e->index == 0) {
                e->eax = 0;
                e->ebx = 1;
                e->ecx = (1u << 8) | 0;
            } else if (e->index == 1) {
                e->eax = core_bits;
                e->ebx = nr_cpus;
                e->ecx = (2u << 8) | 1;
            } else {
                e->eax = e->ebx = 0;
                e->ecx = e->index;
            }
            e->edx = index;
            break;
        case 0x80000008:
            /* AMD: number of cores - 1 and the APIC ID size. */
            e->ecx = (e->ecx & ~0xf0ffu) | (core_bits << 12) | (nr_cpus - 1);
            break;
        default:
            break;
        }
    }
    return cpuid;
}
