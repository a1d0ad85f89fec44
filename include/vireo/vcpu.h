/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One virtual CPU: its KVM fd, its thread, and the handling of its exits.
 *
 * Lifecycle (anti-pattern 4 in STYLE.md): pausing and kicking go through
 * the machine's run lock, which also records whether the thread is alive,
 * so a thread that has exited is never signalled.
 */
#ifndef VIREO_VCPU_H
#define VIREO_VCPU_H

#include <glib.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "vireo/kvm.h"
#include "vireo/state.h"

typedef struct Machine Machine;
typedef struct Vcpu Vcpu;

/* Signal that pulls a vCPU thread out of KVM_RUN. */
#define VCPU_KICK_SIGNAL SIGUSR1

/* Auto-converge's slowing down (vmm/vcpu-throttle.c); vCPU thread only. */
typedef struct VcpuThrottle {
    timer_t timer;              /* kicks the thread out of KVM_RUN every slice */
    gboolean has_timer;
    gboolean armed;
    int64_t ran_since;          /* CLOCK_MONOTONIC ns: start of the current slice */
} VcpuThrottle;

struct Vcpu {
    Machine *machine;           /* immutable */
    unsigned index;             /* immutable; also the APIC ID */
    int fd;                     /* immutable after vcpu_new() */
    struct kvm_run *run;        /* vCPU thread, or anyone while it is parked */
    size_t run_size;
    pthread_t thread;           /* valid while alive */
    pid_t tid;                  /* set by the thread itself */
    gboolean alive;             /* under the machine's run lock */
    gboolean parked;            /* under the machine's run lock */
    GBytes *initial_state;      /* power-on state, for reset */
    unsigned fixups;            /* emulation workarounds applied (vCPU thread) */
    VcpuThrottle throttle;
};

Vcpu *vcpu_new(Machine *m, const Kvm *kvm, int vm_fd, unsigned index,
               const struct kvm_cpuid2 *cpuid, GError **error);
void vcpu_free(Vcpu *vcpu);

/* Records the current state as the one reset returns to. */
gboolean vcpu_capture_initial_state(Vcpu *vcpu, GError **error);
/* Back to the power-on state (vCPU parked or not started). */
gboolean vcpu_reset(Vcpu *vcpu, GError **error);

/* Full architectural state as one section "cpu<index>"; vCPU must be parked. */
gboolean vcpu_save(Vcpu *vcpu, StateWriter *w, GError **error);
gboolean vcpu_load(Vcpu *vcpu, StateReader *r, GError **error);

/* Registers in the style of QEMU's "info registers", for fatal exits. */
char *vcpu_describe(Vcpu *vcpu);

/*
 * On the vCPU's thread, between two KVM_RUNs: sleeps as long as @percent
 * (0-99, auto-converge) asks for the time the vCPU ran, and keeps a timer
 * that brings it back from the guest to do so. 0 disarms it.
 */
void vcpu_throttle(Vcpu *vcpu, int percent);
void vcpu_throttle_cleanup(Vcpu *vcpu);

/* The thread body; @opaque is the Vcpu. */
void *vcpu_thread_main(void *opaque);

/* Emulation workarounds (vmm/emulate.c): TRUE when the exit was handled. */
gboolean vcpu_fixup_emulation_failure(Vcpu *vcpu);

/* Guest linear address -> guest physical, through the vCPU's page tables. */
gboolean vcpu_translate(Vcpu *vcpu, uint64_t linear, uint64_t *gpa);

/* Sets up a vCPU's CPUID from KVM's supported list (vmm/cpuid.c). */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported, unsigned index,
                                  unsigned nr_cpus);

#endif
