/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Saving and loading a vCPU's architectural state: registers, segment and
 * control registers, FPU/XSAVE, XCRs, MSRs, local APIC, pending events,
 * MP state and debug registers. Reset reuses it: a vCPU goes back to the
 * state captured right after it was created.
 */
#include <string.h>

#include "vireo/kvm.h"
#include "vireo/machine-internal.h"
#include "vireo/util.h"
#include "vireo/vcpu.h"

#define VCPU_STATE_VERSION 1
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define VCPU_MAX_MSRS 1024

/* The MSRs KVM lets us both read and write back, found once per process. */
typedef struct MsrList {
    guint32 count;
    guint32 index[VCPU_MAX_MSRS];
} MsrList;

static MsrList *msr_list;

/*
 * Reads (or writes) @list's MSRs in one ioctl; KVM stops at the first it
 * refuses and returns how many it did.
 */
static int msrs_ioctl(int fd, unsigned long cmd, struct kvm_msrs *msrs)
{
    return kvm_ioctl_raw(fd, cmd, (unsigned long)msrs);
}

/*
 * Keeps the MSRs of KVM's list that can be read and written back, in as
 * few ioctls as there are refusals (usually two in all): probing one MSR
 * at a time cost ~3 ms of start-up.
 */
static void probe_msrs(int fd, const struct kvm_msr_list *all, MsrList *list)
{
    g_autofree struct kvm_msrs *msrs =
        g_malloc0(sizeof(*msrs) + VCPU_MAX_MSRS * sizeof(struct kvm_msr_entry));
    guint32 n = MIN(all->nmsrs, VCPU_MAX_MSRS);

    for (guint32 i = 0; i < n; i++)
        msrs->entries[i].index = all->indices[i];
    msrs->nmsrs = n;
    for (;;) {
        int got = msrs_ioctl(fd, KVM_GET_MSRS, msrs);
        if (got < 0)
            got = 0;
        if ((guint32)got >= msrs->nmsrs)
            break;
        /* Drop the one KVM refused and try the rest again. */
        memmove(&msrs->entries[got], &msrs->entries[got + 1],
                (msrs->nmsrs - got - 1) * sizeof(msrs->entries[0]));
        msrs->nmsrs--;
    }
    for (;;) {
        int put = msrs_ioctl(fd, KVM_SET_MSRS, msrs);
        if (put < 0)
            put = 0;
        if ((guint32)put >= msrs->nmsrs)
            break;
        memmove(&msrs->entries[put], &msrs->entries[put + 1],
                (msrs->nmsrs - put - 1) * sizeof(msrs->entries[0]));
        msrs->nmsrs--;
    }
    for (guint32 i = 0; i < msrs->nmsrs; i++)
        list->index[list->count++] = msrs->entries[i].index;
}

static const MsrList *get_msr_list(Vcpu *vcpu)
{
    static gsize once;

    if (g_once_init_enter(&once)) {
        g_autoptr(GError) err = NULL;
        g_autofree struct kvm_msr_list *all = kvm_get_msr_index_list(machine_kvm(vcpu->machine),
                                                                     &err);
        MsrList *list = g_new0(MsrList, 1);

        if (all)
            probe_msrs(vcpu->fd, all, list);
        else
            g_warning("no MSR list, MSRs will not be saved: %s", err->message);
        msr_list = list;
        g_once_init_leave(&once, 1);
    }
    return msr_list;
}

static gboolean get_msrs(Vcpu *vcpu, const MsrList *list, struct kvm_msrs **out,
                         GError **error)
{
    g_autofree struct kvm_msrs *msrs =
        g_malloc0(sizeof(*msrs) + list->count * sizeof(struct kvm_msr_entry));
    int n;

    msrs->nmsrs = list->count;
    for (guint32 i = 0; i < list->count; i++)
        msrs->entries[i].index = list->index[i];
    n = KVM_IOCTL(vcpu->fd, KVM_GET_MSRS, msrs, error);
    if (n < 0)
        return FALSE;
    if ((guint32)n != list->count) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM,
                    "KVM_GET_MSRS: read %d of %u MSRs (stopped at 0x%x)", n, list->count,
                    list->index[n]);
        return FALSE;
    }
    *out = g_steal_pointer(&msrs);
    return TRUE;
}

/* Sets the MSRs in @data (u32 index, u64 value pairs), all but or only TSC_DEADLINE. */
static gboolean set_msrs(Vcpu *vcpu, const uint8_t *data, size_t len, gboolean deadline_only,
                         GError **error)
{
    size_t count = len / 12;
    g_autofree struct kvm_msrs *msrs =
        g_malloc0(sizeof(*msrs) + count * sizeof(struct kvm_msr_entry));
    int n;

    for (size_t i = 0; i < count; i++) {
        uint32_t index = vireo_le_load(data + i * 12, 4);
        if ((index == MSR_IA32_TSC_DEADLINE) != deadline_only)
            continue;
        msrs->entries[msrs->nmsrs].index = index;
        msrs->entries[msrs->nmsrs].data = vireo_le_load(data + i * 12 + 4, 8);
        msrs->nmsrs++;
    }
    if (msrs->nmsrs == 0)
        return TRUE;
    n = KVM_IOCTL(vcpu->fd, KVM_SET_MSRS, msrs, error);
    if (n < 0)
        return FALSE;
    if ((guint32)n != msrs->nmsrs) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_KVM,
                    "KVM_SET_MSRS: wrote %d of %u MSRs (stopped at 0x%x)", n, msrs->nmsrs,
                    msrs->entries[n].index);
        return FALSE;
    }
    return TRUE;
}

static gboolean use_xsave(const Kvm *kvm)
{
    return kvm_check_extension(kvm, KVM_CAP_XSAVE) > 0;
}

gboolean vcpu_save(Vcpu *vcpu, StateWriter *w, GError **error)
{
    const Kvm *kvm = machine_kvm(vcpu->machine);
    g_autofree char *section = g_strdup_printf("cpu%u", vcpu->index);
    g_autofree struct kvm_msrs *msrs = NULL;
    g_autofree uint8_t *msr_bytes = NULL;
    const MsrList *list = get_msr_list(vcpu);
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp;
    struct kvm_debugregs debugregs;
    struct kvm_xcrs xcrs = { 0 };

    if (!get_msrs(vcpu, list, &msrs, error))
        return FALSE;
    if (KVM_IOCTL(vcpu->fd, KVM_GET_REGS, &regs, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_GET_SREGS, &sregs, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_GET_LAPIC, &lapic, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_GET_VCPU_EVENTS, &events, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_GET_MP_STATE, &mp, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_GET_DEBUGREGS, &debugregs, error) < 0)
        return FALSE;
    if (kvm->has_xcrs && KVM_IOCTL(vcpu->fd, KVM_GET_XCRS, &xcrs, error) < 0)
        return FALSE;

    state_writer_begin_section(w, section, VCPU_STATE_VERSION);
    state_write_bytes(w, "regs", &regs, sizeof(regs));
    state_write_bytes(w, "sregs", &sregs, sizeof(sregs));
    if (use_xsave(kvm)) {
        g_autofree struct kvm_xsave *xsave = g_malloc0(kvm->xsave_size);
        int ret = kvm->has_xsave2 ? KVM_IOCTL(vcpu->fd, KVM_GET_XSAVE2, xsave, error)
                                  : KVM_IOCTL(vcpu->fd, KVM_GET_XSAVE, xsave, error);
        if (ret < 0)
            return FALSE;
        state_write_bytes(w, "xsave", xsave, kvm->xsave_size);
    } else {
        struct kvm_fpu fpu;
        if (KVM_IOCTL(vcpu->fd, KVM_GET_FPU, &fpu, error) < 0)
            return FALSE;
        state_write_bytes(w, "fpu", &fpu, sizeof(fpu));
    }
    state_write_bytes(w, "xcrs", &xcrs, sizeof(xcrs));
    msr_bytes = g_malloc(msrs->nmsrs * 12 + 1);
    for (guint32 i = 0; i < msrs->nmsrs; i++) {
        vireo_le_store(msr_bytes + i * 12, 4, msrs->entries[i].index);
        vireo_le_store(msr_bytes + i * 12 + 4, 8, msrs->entries[i].data);
    }
    state_write_bytes(w, "msrs", msr_bytes, msrs->nmsrs * 12);
    state_write_bytes(w, "lapic", &lapic, sizeof(lapic));
    state_write_bytes(w, "events", &events, sizeof(events));
    state_write_u32(w, "mp_state", mp.mp_state);
    state_write_bytes(w, "debugregs", &debugregs, sizeof(debugregs));
    state_writer_end_section(w);
    return TRUE;
}

gboolean vcpu_load(Vcpu *vcpu, StateReader *r, GError **error)
{
    const Kvm *kvm = machine_kvm(vcpu->machine);
    g_autofree char *section = g_strdup_printf("cpu%u", vcpu->index);
    g_autofree uint8_t *msr_bytes = g_malloc(VCPU_MAX_MSRS * 12);
    g_autofree struct kvm_xsave *xsave = NULL;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_xcrs xcrs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp;
    struct kvm_debugregs debugregs;
    uint32_t version;
    size_t msr_len;
    gboolean xs = use_xsave(kvm);

    if (!state_reader_begin_section(r, section, VCPU_STATE_VERSION, &version, error))
        return FALSE;
    if (xs)
        xsave = g_malloc0(kvm->xsave_size);
    if (!state_read_bytes(r, "regs", &regs, sizeof(regs), error) ||
        !state_read_bytes(r, "sregs", &sregs, sizeof(sregs), error) ||
        (xs && !state_read_bytes(r, "xsave", xsave, kvm->xsave_size, error)) ||
        (!xs && !state_read_bytes(r, "fpu", &fpu, sizeof(fpu), error)) ||
        !state_read_bytes(r, "xcrs", &xcrs, sizeof(xcrs), error) ||
        !state_read_bytes_var(r, "msrs", msr_bytes, VCPU_MAX_MSRS * 12, &msr_len, error) ||
        !state_read_bytes(r, "lapic", &lapic, sizeof(lapic), error) ||
        !state_read_bytes(r, "events", &events, sizeof(events), error) ||
        !state_read_u32(r, "mp_state", &mp.mp_state, error) ||
        !state_read_bytes(r, "debugregs", &debugregs, sizeof(debugregs), error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    if (msr_len % 12) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': msrs has %zu bytes, not a multiple of 12",
                    section, msr_len);
        return FALSE;
    }

    /* The order QEMU uses, with the TSC deadline after the LAPIC that arms it. */
    if (KVM_IOCTL(vcpu->fd, KVM_SET_REGS, &regs, error) < 0)
        return FALSE;
    if (xs) {
        if (KVM_IOCTL(vcpu->fd, KVM_SET_XSAVE, xsave, error) < 0)
            return FALSE;
    } else if (KVM_IOCTL(vcpu->fd, KVM_SET_FPU, &fpu, error) < 0) {
        return FALSE;
    }
    if (kvm->has_xcrs && xcrs.nr_xcrs && KVM_IOCTL(vcpu->fd, KVM_SET_XCRS, &xcrs, error) < 0)
        return FALSE;
    if (KVM_IOCTL(vcpu->fd, KVM_SET_SREGS, &sregs, error) < 0 ||
        !set_msrs(vcpu, msr_bytes, msr_len, FALSE, error) ||
        KVM_IOCTL(vcpu->fd, KVM_SET_MP_STATE, &mp, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_SET_LAPIC, &lapic, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_SET_VCPU_EVENTS, &events, error) < 0 ||
        KVM_IOCTL(vcpu->fd, KVM_SET_DEBUGREGS, &debugregs, error) < 0 ||
        !set_msrs(vcpu, msr_bytes, msr_len, TRUE, error)) {
        g_prefix_error(error, "loading %s: ", section);
        return FALSE;
    }
    return TRUE;
}

gboolean vcpu_capture_initial_state(Vcpu *vcpu, GError **error)
{
    g_autoptr(StateWriter) w = state_writer_new();

    if (!vcpu_save(vcpu, w, error))
        return FALSE;
    g_clear_pointer(&vcpu->initial_state, g_bytes_unref);
    vcpu->initial_state = state_writer_steal_bytes(w);
    return TRUE;
}

gboolean vcpu_reset(Vcpu *vcpu, GError **error)
{
    gsize len;
    const void *data = g_bytes_get_data(vcpu->initial_state, &len);
    g_autoptr(StateReader) r = state_reader_new(data, len);

    return vcpu_load(vcpu, r, error);
}
