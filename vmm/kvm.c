/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Thin, checked wrappers around the KVM ioctls. */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vireo/kvm.h"
#include "vireo/util.h"

int kvm_ioctl_raw(int fd, unsigned long cmd, unsigned long arg)
{
    int ret;

    do {
        ret = ioctl(fd, cmd, arg);
    } while (ret < 0 && errno == EINTR && cmd != KVM_RUN);
    return ret < 0 ? -errno : ret;
}

int kvm_ioctl(int fd, unsigned long cmd, const char *name, unsigned long arg, GError **error)
{
    int ret = kvm_ioctl_raw(fd, cmd, arg);

    if (ret < 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM, "%s: %s", name, g_strerror(-ret));
        return -1;
    }
    return ret;
}

int kvm_check_extension(const Kvm *kvm, int cap)
{
    int ret = kvm_ioctl_raw(kvm->fd, KVM_CHECK_EXTENSION, cap);
    return ret < 0 ? 0 : ret;
}

Kvm *kvm_open(GError **error)
{
    static const struct {
        int cap;
        const char *name;
    } required[] = {
        { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
        { KVM_CAP_PIT2, "KVM_CAP_PIT2" },
        { KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
        { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
        { KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
        { KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
        { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
        { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
        { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
        { KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK" },
    };
    g_autoptr(Kvm) kvm = g_new0(Kvm, 1);
    int version;

    kvm->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm->fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM, "cannot open /dev/kvm: %s",
                    g_strerror(saved));
        return NULL;
    }
    version = KVM_IOCTL_VAL(kvm->fd, KVM_GET_API_VERSION, 0, error);
    if (version < 0)
        return NULL;
    if (version != KVM_API_VERSION) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM,
                    "KVM API version %d, vireo-vmm needs %d", version, KVM_API_VERSION);
        return NULL;
    }
    for (size_t i = 0; i < VIREO_ARRAY_SIZE(required); i++) {
        if (!kvm_check_extension(kvm, required[i].cap)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM,
                        "KVM lacks %s, which vireo-vmm needs", required[i].name);
            return NULL;
        }
    }
    kvm->vcpu_mmap_size = KVM_IOCTL_VAL(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0, error);
    if (kvm->vcpu_mmap_size < 0)
        return NULL;
    kvm->max_vcpus = kvm_check_extension(kvm, KVM_CAP_MAX_VCPUS);
    if (kvm->max_vcpus <= 0)
        kvm->max_vcpus = kvm_check_extension(kvm, KVM_CAP_NR_VCPUS);
    if (kvm->max_vcpus <= 0)
        kvm->max_vcpus = 4;     /* the documented default when the cap is absent */
    kvm->has_xsave2 = kvm_check_extension(kvm, KVM_CAP_XSAVE2) > 0;
    kvm->xsave_size = kvm->has_xsave2 ? kvm_check_extension(kvm, KVM_CAP_XSAVE2)
                                      : (int)sizeof(struct kvm_xsave);
    if (kvm->xsave_size < (int)sizeof(struct kvm_xsave))
        kvm->xsave_size = sizeof(struct kvm_xsave);
    kvm->has_sregs2 = kvm_check_extension(kvm, KVM_CAP_SREGS2) > 0;
    kvm->has_vcpu_events = kvm_check_extension(kvm, KVM_CAP_VCPU_EVENTS) > 0;
    kvm->has_xcrs = kvm_check_extension(kvm, KVM_CAP_XCRS) > 0;
    return g_steal_pointer(&kvm);
}

void kvm_close(Kvm *kvm)
{
    if (!kvm)
        return;
    if (kvm->fd >= 0)
        close(kvm->fd);
    g_free(kvm);
}

struct kvm_cpuid2 *kvm_get_supported_cpuid(const Kvm *kvm, GError **error)
{
    /*
     * Grow until KVM stops saying E2BIG. Start above what hosts report
     * (about 80 entries): each call runs every CPUID leaf, which traps when
     * the host is itself a guest, so a probe that fails costs as much as
     * one that succeeds.
     */
    for (unsigned n = 256; n <= 4096; n *= 2) {
        g_autofree struct kvm_cpuid2 *cpuid =
            g_malloc0(sizeof(*cpuid) + n * sizeof(struct kvm_cpuid_entry2));
        int ret;

        cpuid->nent = n;
        ret = kvm_ioctl_raw(kvm->fd, KVM_GET_SUPPORTED_CPUID, (unsigned long)cpuid);
        if (ret == -E2BIG)
            continue;
        if (ret < 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM, "KVM_GET_SUPPORTED_CPUID: %s",
                        g_strerror(-ret));
            return NULL;
        }
        return g_steal_pointer(&cpuid);
    }
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM, "KVM_GET_SUPPORTED_CPUID: too many entries");
    return NULL;
}

struct kvm_msr_list *kvm_get_msr_index_list(const Kvm *kvm, GError **error)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    g_autofree struct kvm_msr_list *list = NULL;
    int ret;

    /* The first call fails with E2BIG and tells how many there are. */
    ret = kvm_ioctl_raw(kvm->fd, KVM_GET_MSR_INDEX_LIST, (unsigned long)&probe);
    if (ret < 0 && ret != -E2BIG) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM, "KVM_GET_MSR_INDEX_LIST: %s",
                    g_strerror(-ret));
        return NULL;
    }
    list = g_malloc0(sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
    list->nmsrs = probe.nmsrs;
    if (KVM_IOCTL(kvm->fd, KVM_GET_MSR_INDEX_LIST, list, error) < 0)
        return NULL;
    return g_steal_pointer(&list);
}

int kvm_create_vm(const Kvm *kvm, GError **error)
{
    return KVM_IOCTL_VAL(kvm->fd, KVM_CREATE_VM, 0, error);
}

gboolean kvm_set_memory_region(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size,
                               void *host, uint32_t flags, GError **error)
{
    struct kvm_userspace_memory_region region = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uintptr_t)host,
    };
    return KVM_IOCTL(vm_fd, KVM_SET_USER_MEMORY_REGION, &region, error) >= 0;
}

gboolean kvm_irq_line(int vm_fd, uint32_t gsi, gboolean level, GError **error)
{
    struct kvm_irq_level irq = { .irq = gsi, .level = level ? 1 : 0 };
    return KVM_IOCTL(vm_fd, KVM_IRQ_LINE, &irq, error) >= 0;
}

int kvm_vcpu_run(int vcpu_fd)
{
    return kvm_ioctl_raw(vcpu_fd, KVM_RUN, 0);
}
