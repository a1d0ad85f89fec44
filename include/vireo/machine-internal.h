/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the parts of vmm/ (vCPUs, boot, emulation workarounds) need from the
 * machine. Not for use outside vmm/.
 */
#ifndef VIREO_MACHINE_INTERNAL_H
#define VIREO_MACHINE_INTERNAL_H

#include "vireo/bus.h"
#include "vireo/guest-memory.h"
#include "vireo/kvm.h"
#include "vireo/machine.h"
#include "vireo/vcpu.h"

const Kvm *machine_kvm(const Machine *m);
Bus *machine_pio_bus(Machine *m);
Bus *machine_mmio_bus(Machine *m);
const GuestMemory *machine_memory(const Machine *m);
/* For migration's dirty logging and RAM walk (vmm/migrate.c). */
int machine_vm_fd(const Machine *m);
int machine_ram_fd(const Machine *m);
/* Guest RAM with its device-side dirty tracking switches (guest-memory.h). */
GuestMemory *machine_dma_memory(Machine *m);
/*
 * Stops device emulation from touching guest RAM (no new virtqueue
 * requests) while a stopped VM's RAM and state are captured; the next
 * machine_cont() lets the devices go on and kicks every queue. Loop thread.
 */
void machine_quiesce_devices(Machine *m);

/*
 * Migration's hand-over of the disk images (DeviceOps.set_active): all
 * devices or none. An incoming machine starts inactive; machine_cont()
 * activates, so a VM only runs with its images in hand. Loop thread.
 */
gboolean machine_set_devices_active(Machine *m, gboolean active, GError **error);

/*
 * vCPU thread side of the run control. vcpu_wait_runnable() parks the
 * calling vCPU while the machine is paused; it returns FALSE when the
 * thread must exit.
 */
gboolean machine_vcpu_wait_runnable(Machine *m, Vcpu *vcpu);
void machine_vcpu_thread_exit(Machine *m, Vcpu *vcpu);
/* Whether vCPUs were asked to leave the guest (checked after clearing immediate_exit). */
gboolean machine_vcpus_should_stop(Machine *m);

/*
 * Auto-converge: every vCPU gets (100 - @percent)% of its time from now
 * on (0: all of it); the running ones are kicked to see it. Any thread.
 */
void machine_set_cpu_throttle(Machine *m, int percent);
int machine_cpu_throttle(Machine *m);

/*
 * A vCPU hit something it cannot continue from (triple fault, unhandled
 * exit). @what describes it; the machine prints the registers and ends
 * with status 2. Any thread.
 */
void machine_vcpu_fatal(Machine *m, Vcpu *vcpu, const char *what);
/* The guest reset the machine in a way only the vCPU sees (KVM system event). */
void machine_vcpu_request_reset(Machine *m);

/* Exit status for a guest crash (triple fault, unhandled exit). */
#define MACHINE_EXIT_GUEST_CRASH 2

#endif
