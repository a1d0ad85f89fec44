/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vCPU creation, the KVM_RUN loop and exit dispatch. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vireo/machine-internal.h"
#include "vireo/util.h"
#include "vireo/vcpu.h"

/* Local APIC LVT registers and delivery modes, for virtual wire mode. */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static uint32_t lapic_get(const struct kvm_lapic_state *s, unsigned reg)
{
    return vireo_le_load(&s->regs[reg], 4);
}

static void lapic_set(struct kvm_lapic_state *s, unsigned reg, uint32_t v)
{
    vireo_le_store(&s->regs[reg], 4, v);
}

/*
 * What firmware does on a PC: LINT0 in ExtINT mode so the 8259 reaches the
 * processor before the OS programs the IOAPIC, LINT1 as NMI.
 */
static gboolean setup_lint(Vcpu *vcpu, GError **error)
{
    struct kvm_lapic_state lapic;
    uint32_t lint0, lint1;

    if (KVM_IOCTL(vcpu->fd, KVM_GET_LAPIC, &lapic, error) < 0)
        return FALSE;
    lint0 = lapic_get(&lapic, APIC_LVT_LINT0);
    lint1 = lapic_get(&lapic, APIC_LVT_LINT1);
    lint0 = (lint0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
    lint1 = (lint1 & ~0x700u) | (APIC_MODE_NMI << 8);
    lapic_set(&lapic, APIC_LVT_LINT0, lint0);
    lapic_set(&lapic, APIC_LVT_LINT1, lint1);
    return KVM_IOCTL(vcpu->fd, KVM_SET_LAPIC, &lapic, error) >= 0;
}

Vcpu *vcpu_new(Machine *m, const Kvm *kvm, int vm_fd, unsigned index,
               const struct kvm_cpuid2 *supported, GError **error)
{
    g_autofree struct kvm_cpuid2 *cpuid = NULL;
    Vcpu *vcpu = g_new0(Vcpu, 1);

    vcpu->machine = m;
    vcpu->index = index;
    vcpu->run = MAP_FAILED;
    vcpu->fd = KVM_IOCTL_VAL(vm_fd, KVM_CREATE_VCPU, index, error);
    if (vcpu->fd < 0)
        goto fail;
    vcpu->run_size = kvm->vcpu_mmap_size;
    vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (vcpu->run == MAP_FAILED) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM, "cannot map kvm_run of vCPU %u: %s",
                    index, g_strerror(saved));
        goto fail;
    }
    cpuid = cpuid_for_vcpu(supported, index, machine_nr_cpus(m));
    if (KVM_IOCTL(vcpu->fd, KVM_SET_CPUID2, cpuid, error) < 0 || !setup_lint(vcpu, error))
        goto fail;
    return vcpu;

fail:
    g_prefix_error(error, "vCPU %u: ", index);
    vcpu_free(vcpu);
    return NULL;
}

void vcpu_free(Vcpu *vcpu)
{
    if (!vcpu)
        return;
    if (vcpu->run != MAP_FAILED)
        munmap(vcpu->run, vcpu->run_size);
    if (vcpu->fd >= 0)
        close(vcpu->fd);
    g_clear_pointer(&vcpu->initial_state, g_bytes_unref);
    g_free(vcpu);
}

gboolean vcpu_translate(Vcpu *vcpu, uint64_t linear, uint64_t *gpa)
{
    struct kvm_translation tr = { .linear_address = linear };

    if (kvm_ioctl_raw(vcpu->fd, KVM_TRANSLATE, (unsigned long)&tr) < 0 || !tr.valid)
        return FALSE;
    *gpa = tr.physical_address;
    return TRUE;
}

static void describe_segment(GString *s, const char *name, const struct kvm_segment *seg)
{
    g_string_append_printf(s, "%-3s=%04x %016" PRIx64 " %08x type=%x dpl=%u p=%u s=%u l=%u "
                           "db=%u g=%u\n", name, seg->selector, (uint64_t)seg->base,
                           seg->limit, seg->type, seg->dpl, seg->present, seg->s, seg->l,
                           seg->db, seg->g);
}

char *vcpu_describe(Vcpu *vcpu)
{
    GString *s = g_string_new(NULL);
    struct kvm_regs r;
    struct kvm_sregs sr;
    struct kvm_vcpu_events ev;

    g_string_append_printf(s, "vCPU %u registers:\n", vcpu->index);
    if (kvm_ioctl_raw(vcpu->fd, KVM_GET_REGS, (unsigned long)&r) < 0 ||
        kvm_ioctl_raw(vcpu->fd, KVM_GET_SREGS, (unsigned long)&sr) < 0) {
        g_string_append(s, "(cannot read registers)\n");
        return g_string_free(s, FALSE);
    }
    g_string_append_printf(s,
        "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
        "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
        "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
        "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
        "RIP=%016llx RFL=%08llx CPL=%u\n",
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp,
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
        r.rip, r.rflags, sr.cs.dpl);
    describe_segment(s, "ES", &sr.es);
    describe_segment(s, "CS", &sr.cs);
    describe_segment(s, "SS", &sr.ss);
    describe_segment(s, "DS", &sr.ds);
    describe_segment(s, "FS", &sr.fs);
    describe_segment(s, "GS", &sr.gs);
    describe_segment(s, "LDT", &sr.ldt);
    describe_segment(s, "TR", &sr.tr);
    g_string_append_printf(s, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n",
                           sr.gdt.base, sr.gdt.limit, sr.idt.base, sr.idt.limit);
    g_string_append_printf(s, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\n"
                           "EFER=%016llx APIC_BASE=%016llx\n",
                           sr.cr0, sr.cr2, sr.cr3, sr.cr4, sr.efer, sr.apic_base);
    if (kvm_ioctl_raw(vcpu->fd, KVM_GET_VCPU_EVENTS, (unsigned long)&ev) >= 0)
        g_string_append_printf(s, "exception: injected=%u nr=%u error_code=%x\n",
                               ev.exception.injected, ev.exception.nr,
                               ev.exception.error_code);
    return g_string_free(s, FALSE);
}

static void handle_io(Vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    Bus *bus = machine_pio_bus(vcpu->machine);

    /* count > 1 for rep ins/outs: consecutive elements, same port. */
    for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        if (run->io.direction == KVM_EXIT_IO_OUT)
            bus_write(bus, run->io.port, data, run->io.size);
        else
            bus_read(bus, run->io.port, data, run->io.size);
    }
}

static void handle_mmio(Vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    Bus *bus = machine_mmio_bus(vcpu->machine);

    if (run->mmio.len > sizeof(run->mmio.data)) {
        vireo_guest_warn("MMIO access of %u bytes at 0x%llx", run->mmio.len,
                         run->mmio.phys_addr);
        return;
    }
    if (run->mmio.is_write)
        bus_write(bus, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
    else
        bus_read(bus, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
}

static void handle_exit(Vcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    g_autofree char *what = NULL;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(vcpu);
        return;
    case KVM_EXIT_MMIO:
        handle_mmio(vcpu);
        return;
    case KVM_EXIT_HLT:
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return;
    case KVM_EXIT_SHUTDOWN:
        machine_vcpu_fatal(vcpu->machine, vcpu, "triple fault (KVM_EXIT_SHUTDOWN)");
        return;
    case KVM_EXIT_SYSTEM_EVENT:
        if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
            machine_vcpu_request_reset(vcpu->machine);
            return;
        }
        what = g_strdup_printf("system event %u", run->system_event.type);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
            vcpu_fixup_emulation_failure(vcpu))
            return;
        what = g_strdup_printf("KVM internal error, suberror %u", run->internal.suberror);
        break;
    case KVM_EXIT_FAIL_ENTRY:
        what = g_strdup_printf("VM entry failed, reason 0x%llx",
                               run->fail_entry.hardware_entry_failure_reason);
        break;
    default:
        what = g_strdup_printf("unhandled KVM exit %u", run->exit_reason);
        break;
    }
    machine_vcpu_fatal(vcpu->machine, vcpu, what);
}

static void kick_handler(int sig)
{
    /* Nothing: the signal only makes KVM_RUN return with EINTR. */
}

void *vcpu_thread_main(void *opaque)
{
    Vcpu *vcpu = opaque;
    Machine *m = vcpu->machine;
    sigset_t set;
    struct sigaction sa = { .sa_handler = kick_handler };
    g_autofree char *name = g_strdup_printf("vcpu%u", vcpu->index);

    vcpu->tid = syscall(SYS_gettid);
    pthread_setname_np(pthread_self(), name);
    /* No SA_RESTART: KVM_RUN must come back with EINTR. */
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    while (machine_vcpu_wait_runnable(m, vcpu)) {
        int ret;

        /*
         * A kick sets immediate_exit before signalling: clear it, then look
         * at the stop flag, so a kick between the two is never lost.
         */
        __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (machine_vcpus_should_stop(m))
            continue;
        vcpu_throttle(vcpu, machine_cpu_throttle(m));
        ret = kvm_vcpu_run(vcpu->fd);
        if (ret == -EINTR || ret == -EAGAIN)
            continue;
        if (ret < 0) {
            g_autofree char *what = g_strdup_printf("KVM_RUN: %s", g_strerror(-ret));
            machine_vcpu_fatal(m, vcpu, what);
            continue;
        }
        handle_exit(vcpu);
    }
    vcpu_throttle_cleanup(vcpu);
    machine_vcpu_thread_exit(m, vcpu);
    return NULL;
}
