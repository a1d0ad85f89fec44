/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The only code that calls ioctl() on /dev/kvm and its VM and vCPU fds.
 *
 * KVM_IOCTL() checks at compile time that the argument's type has the size
 * the ioctl number encodes, and its errors name the ioctl: "KVM_SET_SREGS:
 * Invalid argument".
 */
#ifndef VIREO_KVM_H
#define VIREO_KVM_H

#include <glib.h>
#include <linux/kvm.h>
#include <stdint.h>

/* Returns the ioctl's non-negative result, or -errno. */
int kvm_ioctl_raw(int fd, unsigned long cmd, unsigned long arg);
/* Returns the non-negative result, or -1 with @error naming the ioctl. */
int kvm_ioctl(int fd, unsigned long cmd, const char *name, unsigned long arg, GError **error);

#define KVM_IOCTL(fd, cmd, ptr, error) ({                                   \
        G_STATIC_ASSERT(sizeof(*(ptr)) == _IOC_SIZE(cmd));                  \
        kvm_ioctl((fd), (cmd), #cmd, (unsigned long)(ptr), (error));        \
    })
/* For ioctls that take an integer or nothing. */
#define KVM_IOCTL_VAL(fd, cmd, val, error) \
    kvm_ioctl((fd), (cmd), #cmd, (unsigned long)(val), (error))

typedef struct Kvm {
    int fd;                     /* /dev/kvm */
    int vcpu_mmap_size;
    int max_vcpus;
    gboolean has_xsave2;
    int xsave_size;             /* bytes of KVM_GET_XSAVE(2) data */
    gboolean has_sregs2;
    gboolean has_vcpu_events;
    gboolean has_xcrs;
} Kvm;

/* Opens /dev/kvm and checks the capabilities vireo-vmm cannot run without. */
Kvm *kvm_open(GError **error);
void kvm_close(Kvm *kvm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Kvm, kvm_close)

int kvm_check_extension(const Kvm *kvm, int cap);

/* KVM_GET_SUPPORTED_CPUID; free with g_free. */
struct kvm_cpuid2 *kvm_get_supported_cpuid(const Kvm *kvm, GError **error);
/* KVM_GET_MSR_INDEX_LIST; free with g_free. */
struct kvm_msr_list *kvm_get_msr_index_list(const Kvm *kvm, GError **error);

/* VM fd operations */
int kvm_create_vm(const Kvm *kvm, GError **error);
gboolean kvm_set_memory_region(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size,
                               void *host, uint32_t flags, GError **error);
gboolean kvm_irq_line(int vm_fd, uint32_t gsi, gboolean level, GError **error);

/* KVM_RUN: 0, or -errno (-EINTR when kicked). */
int kvm_vcpu_run(int vcpu_fd);

#endif
