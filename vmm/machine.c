/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The machine: builds the KVM VM, RAM, interrupt controllers, the fixed
 * legacy devices and the vCPUs from a MachineConfig, boots it, and runs its
 * life cycle (pause, resume, reset, power off, fatal errors).
 *
 * Run control: vCPU threads park when stop_vcpus is set. Only the loop
 * thread changes the run state; vCPU threads (through device requests or
 * fatal exits) only set a pending request and kick everyone, and the loop
 * acts on it in process_requests().
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "vireo/acpi.h"
#include "vireo/acpi-pm.h"
#include "vireo/boot.h"
#include "vireo/chardev-host.h"
#include "vireo/ioevent-kvm.h"
#include "vireo/irq-routing.h"
#include "vireo/pci-host.h"
#include "vireo/layout.h"
#include "vireo/machine-internal.h"
#include "vireo/memory.h"
#include "vireo/util.h"

#define MACHINE_NR_GSIS IRQ_ROUTING_PC_GSIS

typedef struct KvmIrqLine {
    IrqLine base;
    Machine *machine;
    unsigned gsi;
} KvmIrqLine;

/* Pending requests, in rising priority: a higher one replaces a lower one. */
typedef enum {
    REQUEST_NONE,
    REQUEST_RESET,
    REQUEST_POWEROFF,
    REQUEST_EXIT,
    REQUEST_FATAL,
} RequestKind;

typedef struct Listener {
    MachineEventFn fn;
    void *opaque;
} Listener;

struct Machine {
    MachineConfig *cfg;
    Loop *loop;
    Kvm *kvm;
    int vm_fd;
    GuestRam *ram;
    Bus *pio;
    Bus *mmio;
    struct kvm_cpuid2 *cpuid;
    Vcpu **vcpus;
    unsigned nr_vcpus;
    KvmIrqLine irq[MACHINE_NR_GSIS];
    IrqRouting *routing;
    KvmIoEvents *ioevents;
    PciHost *pci;
    MachineControl control;
    GPtrArray *devices;         /* Device*, reset and save order; not owned */
    GPtrArray *owned_devices;   /* Device*, the ones the machine created */
    Device *pm;
    Device *reset_control;
    Chardev *serial_chr;
    GPtrArray *chardevs;        /* Chardev*, of the user's devices */
    BootImage *boot;
    /* In-kernel irqchip and PIT state at power-on, for reset. */
    struct kvm_irqchip irqchip_initial[3];
    struct kvm_pit_state2 pit_initial;
    struct kvm_clock_data clock_at_stop;
    gboolean clock_saved;
    gboolean devices_inactive;  /* loop thread: disk images handed to another VMM */

    RunState state;             /* loop thread */
    GArray *listeners;          /* Listener, loop thread */

    GMutex run_lock;            /* protects the vCPU thread fields below */
    GCond run_cond;
    gint stop_vcpus;            /* atomic: vCPUs must leave the guest and park */
    gint cpu_throttle;          /* atomic: auto-converge percentage */
    gboolean vcpus_exit;        /* vCPU threads must end */
    unsigned nr_alive;
    unsigned nr_parked;

    GMutex req_lock;            /* protects the request fields */
    RequestKind request;
    int request_status;
    gboolean request_by_guest;
    const char *request_reason;
    gboolean request_scheduled;
};

const char *run_state_name(RunState state)
{
    switch (state) {
    case RUN_STATE_PRELAUNCH: return "prelaunch";
    case RUN_STATE_RUNNING: return "running";
    case RUN_STATE_PAUSED: return "paused";
    case RUN_STATE_SHUTDOWN: return "shutdown";
    case RUN_STATE_INTERNAL_ERROR: return "internal-error";
    case RUN_STATE_INMIGRATE: return "inmigrate";
    case RUN_STATE_FINISH_MIGRATE: return "finish-migrate";
    case RUN_STATE_POSTMIGRATE: return "postmigrate";
    }
    return "unknown";
}

MachineConfig *machine_config_new(void)
{
    MachineConfig *cfg = g_new0(MachineConfig, 1);

    cfg->memory = 128 * LAYOUT_MIB;
    cfg->cpus = 1;
    cfg->serial = g_strdup("stdio");
    cfg->devices = g_ptr_array_new_with_free_func((GDestroyNotify)machine_device_spec_free);
    return cfg;
}

void machine_device_spec_free(MachineDeviceSpec *spec)
{
    if (!spec)
        return;
    g_free(spec->type);
    g_free(spec->id);
    g_free(spec->options);
    g_free(spec->chardev);
    g_free(spec);
}

MachineDeviceSpec *machine_config_add_device(MachineConfig *cfg, const char *type,
                                             const char *id, const char *options)
{
    MachineDeviceSpec *spec = g_new0(MachineDeviceSpec, 1);

    spec->type = g_strdup(type);
    spec->id = g_strdup(id);
    spec->options = g_strdup(options);
    g_ptr_array_add(cfg->devices, spec);
    return spec;
}

void machine_config_free(MachineConfig *cfg)
{
    if (!cfg)
        return;
    g_free(cfg->name);
    g_free(cfg->kernel);
    g_free(cfg->initrd);
    g_free(cfg->cmdline);
    g_free(cfg->serial);
    g_ptr_array_unref(cfg->devices);
    g_free(cfg);
}

static MachineConfig *config_copy(const MachineConfig *src)
{
    MachineConfig *cfg = g_memdup2(src, sizeof(*src));

    cfg->name = g_strdup(src->name);
    cfg->kernel = g_strdup(src->kernel);
    cfg->initrd = g_strdup(src->initrd);
    cfg->cmdline = g_strdup(src->cmdline);
    cfg->serial = g_strdup(src->serial);
    cfg->devices = g_ptr_array_new_with_free_func((GDestroyNotify)machine_device_spec_free);
    for (guint i = 0; i < src->devices->len; i++) {
        const MachineDeviceSpec *d = g_ptr_array_index(src->devices, i);
        MachineDeviceSpec *copy = machine_config_add_device(cfg, d->type, d->id, d->options);
        copy->chardev = g_strdup(d->chardev);
    }
    return cfg;
}

/* --- accessors for the rest of vmm/ --- */

const Kvm *machine_kvm(const Machine *m)
{
    return m->kvm;
}

Bus *machine_pio_bus(Machine *m)
{
    return m->pio;
}

Bus *machine_mmio_bus(Machine *m)
{
    return m->mmio;
}

const GuestMemory *machine_memory(const Machine *m)
{
    return &m->ram->mem;
}

GuestMemory *machine_dma_memory(Machine *m)
{
    return &m->ram->mem;
}

void machine_quiesce_devices(Machine *m)
{
    guest_memory_set_quiesced(&m->ram->mem, TRUE);
}

int machine_vm_fd(const Machine *m)
{
    return m->vm_fd;
}

int machine_ram_fd(const Machine *m)
{
    return m->ram->memfd;
}

unsigned machine_kvm_fds(const Machine *m, int *fds, unsigned max)
{
    unsigned n = 0;

    if (n < max && m->kvm)
        fds[n++] = m->kvm->fd;
    if (n < max && m->vm_fd >= 0)
        fds[n++] = m->vm_fd;
    for (unsigned i = 0; i < m->nr_vcpus && n < max; i++)
        fds[n++] = m->vcpus[i]->fd;
    return n;
}

unsigned machine_nr_cpus(const Machine *m)
{
    return m->cfg->cpus;
}

pid_t machine_vcpu_thread_id(const Machine *m, unsigned index)
{
    return index < m->nr_vcpus ? m->vcpus[index]->tid : 0;
}

const char *machine_name(const Machine *m)
{
    return m->cfg->name;
}

Device *machine_find_device(Machine *m, const char *type_name)
{
    for (guint i = 0; i < m->devices->len; i++) {
        Device *dev = g_ptr_array_index(m->devices, i);

        if (strcmp(dev->type->name, type_name) == 0)
            return dev;
    }
    return NULL;
}

RunState machine_run_state(const Machine *m)
{
    return m->state;
}

void machine_add_listener(Machine *m, MachineEventFn fn, void *opaque)
{
    Listener l = { .fn = fn, .opaque = opaque };
    g_array_append_val(m->listeners, l);
}

static void emit(Machine *m, MachineEventKind kind, gboolean guest, const char *reason)
{
    MachineEvent ev = { .kind = kind, .guest = guest, .reason = reason };

    for (guint i = 0; i < m->listeners->len; i++) {
        Listener *l = &g_array_index(m->listeners, Listener, i);
        l->fn(&ev, l->opaque);
    }
}

/* --- vCPU run control --- */

/*
 * Caller holds run_lock. Brings every vCPU out of KVM_RUN to look at the
 * run control again: immediate_exit first, so a signal that lands just
 * before KVM_RUN is not lost.
 */
static void kick_alive_vcpus_locked(Machine *m)
{
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        Vcpu *vcpu = m->vcpus[i];
        if (!vcpu->alive)
            continue;
        __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
    }
}

/* Caller holds run_lock. */
static void kick_vcpus_locked(Machine *m)
{
    g_atomic_int_set(&m->stop_vcpus, 1);
    kick_alive_vcpus_locked(m);
}

static void pause_vcpus(Machine *m)
{
    g_mutex_lock(&m->run_lock);
    kick_vcpus_locked(m);
    while (m->nr_parked < m->nr_alive)
        g_cond_wait(&m->run_cond, &m->run_lock);
    g_mutex_unlock(&m->run_lock);
}

static void resume_vcpus(Machine *m)
{
    g_mutex_lock(&m->run_lock);
    g_atomic_int_set(&m->stop_vcpus, 0);
    g_cond_broadcast(&m->run_cond);
    g_mutex_unlock(&m->run_lock);
}

void machine_set_cpu_throttle(Machine *m, int percent)
{
    g_atomic_int_set(&m->cpu_throttle, CLAMP(percent, 0, 99));
    g_mutex_lock(&m->run_lock);
    /* A parked vCPU sees the new figure when it runs again; the kick is harmless there. */
    kick_alive_vcpus_locked(m);
    g_mutex_unlock(&m->run_lock);
}

int machine_cpu_throttle(Machine *m)
{
    return g_atomic_int_get(&m->cpu_throttle);
}

gboolean machine_vcpus_should_stop(Machine *m)
{
    return g_atomic_int_get(&m->stop_vcpus);
}

gboolean machine_vcpu_wait_runnable(Machine *m, Vcpu *vcpu)
{
    gboolean run;

    g_mutex_lock(&m->run_lock);
    if (g_atomic_int_get(&m->stop_vcpus) && !m->vcpus_exit) {
        vcpu->parked = TRUE;
        m->nr_parked++;
        g_cond_broadcast(&m->run_cond);
        while (g_atomic_int_get(&m->stop_vcpus) && !m->vcpus_exit)
            g_cond_wait(&m->run_cond, &m->run_lock);
        m->nr_parked--;
        vcpu->parked = FALSE;
    }
    run = !m->vcpus_exit;
    g_mutex_unlock(&m->run_lock);
    return run;
}

void machine_vcpu_thread_exit(Machine *m, Vcpu *vcpu)
{
    g_mutex_lock(&m->run_lock);
    vcpu->alive = FALSE;
    m->nr_alive--;
    g_cond_broadcast(&m->run_cond);
    g_mutex_unlock(&m->run_lock);
}

/* --- requests (any thread) --- */

static void process_requests(void *opaque);

static void request(Machine *m, RequestKind kind, int status, gboolean guest, const char *reason)
{
    gboolean schedule;

    g_mutex_lock(&m->req_lock);
    if (kind > m->request) {
        m->request = kind;
        m->request_status = status;
        m->request_by_guest = guest;
        m->request_reason = reason;
    }
    schedule = !m->request_scheduled;
    m->request_scheduled = TRUE;
    g_mutex_unlock(&m->req_lock);

    /* Stop the guest now; the loop decides what happens next. */
    g_mutex_lock(&m->run_lock);
    kick_vcpus_locked(m);
    g_mutex_unlock(&m->run_lock);
    if (schedule)
        loop_call(m->loop, process_requests, m);
}

static void control_request(MachineControl *mc, MachineRequest req, int status)
{
    Machine *m = VIREO_CONTAINER_OF(mc, Machine, control);

    switch (req) {
    case MACHINE_REQUEST_RESET:
        request(m, REQUEST_RESET, 0, TRUE, "guest-reset");
        break;
    case MACHINE_REQUEST_POWEROFF:
        request(m, REQUEST_POWEROFF, 0, TRUE, "guest-shutdown");
        break;
    case MACHINE_REQUEST_EXIT:
        request(m, REQUEST_EXIT, status, TRUE, "guest-shutdown");
        break;
    }
}

void machine_vcpu_request_reset(Machine *m)
{
    request(m, REQUEST_RESET, 0, TRUE, "guest-reset");
}

void machine_vcpu_fatal(Machine *m, Vcpu *vcpu, const char *what)
{
    g_autofree char *regs = vcpu_describe(vcpu);

    /* Straight to stderr: this is the report the user needs, even without logging. */
    fprintf(stderr, "vireo-vmm: vCPU %u: %s\n%s", vcpu->index, what, regs);
    fflush(stderr);
    request(m, REQUEST_FATAL, MACHINE_EXIT_GUEST_CRASH, TRUE, "guest-panic");
}

/* --- interrupts --- */

static void kvm_irq_set_level(IrqLine *line, gboolean level)
{
    KvmIrqLine *l = (KvmIrqLine *)line;
    g_autoptr(GError) err = NULL;

    if (!kvm_irq_line(l->machine->vm_fd, l->gsi, level, &err))
        g_warning("GSI %u: %s", l->gsi, err->message);
}

static gboolean create_irqchip(Machine *m, GError **error)
{
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

    if (KVM_IOCTL_VAL(m->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ LAYOUT_KVM_IDENTITY_MAP },
                      error) < 0 ||
        KVM_IOCTL_VAL(m->vm_fd, KVM_SET_TSS_ADDR, LAYOUT_KVM_TSS, error) < 0 ||
        KVM_IOCTL_VAL(m->vm_fd, KVM_CREATE_IRQCHIP, 0, error) < 0 ||
        KVM_IOCTL(m->vm_fd, KVM_CREATE_PIT2, &pit, error) < 0)
        return FALSE;
    m->routing = irq_routing_new(m->vm_fd, error);
    if (!m->routing)
        return FALSE;
    m->ioevents = kvm_ioevents_new(m->vm_fd, m->loop);
    for (unsigned i = 0; i < MACHINE_NR_GSIS; i++) {
        m->irq[i].base.set_level = kvm_irq_set_level;
        m->irq[i].machine = m;
        m->irq[i].gsi = i;
    }
    return TRUE;
}

static gboolean save_irqchip(Machine *m, struct kvm_irqchip chips[3],
                             struct kvm_pit_state2 *pit, GError **error)
{
    for (unsigned i = 0; i < 3; i++) {
        memset(&chips[i], 0, sizeof(chips[i]));
        chips[i].chip_id = i;
        if (KVM_IOCTL(m->vm_fd, KVM_GET_IRQCHIP, &chips[i], error) < 0)
            return FALSE;
    }
    return KVM_IOCTL(m->vm_fd, KVM_GET_PIT2, pit, error) >= 0;
}

static gboolean restore_irqchip(Machine *m, const struct kvm_irqchip chips[3],
                                const struct kvm_pit_state2 *pit, GError **error)
{
    for (unsigned i = 0; i < 3; i++) {
        if (KVM_IOCTL(m->vm_fd, KVM_SET_IRQCHIP, &chips[i], error) < 0)
            return FALSE;
    }
    return KVM_IOCTL(m->vm_fd, KVM_SET_PIT2, pit, error) >= 0;
}

/* --- devices --- */

static Device *add_device(Machine *m, const char *type, const char *id, int gsi,
                          CharBackend *chr, const char *options, GError **error)
{
    DeviceEnv env = {
        .id = id,
        .irq = gsi >= 0 ? &m->irq[gsi].base : NULL,
        .chr = chr,
        .machine = &m->control,
        .timers = loop_timer_service(m->loop),
        .loop = loop_event_loop(m->loop),
        .mem = &m->ram->mem,
        .msi = irq_routing_msi_controller(m->routing),
        .ioevents = kvm_ioevents_service(m->ioevents),
        /* The source VMM still has the disks until this VM first runs. */
        .inactive = m->cfg->incoming,
    };
    Device *dev = device_create(type, &env, options, error);

    if (dev) {
        g_ptr_array_add(m->owned_devices, dev);
        g_ptr_array_add(m->devices, dev);
    }
    return dev;
}

static gboolean map_pio(Machine *m, Device *dev, uint64_t port, uint64_t len, uint64_t dev_off,
                        GError **error)
{
    return dev && bus_add(m->pio, port, len, dev, dev_off, error);
}

static IrqLine *pci_intx_line(void *opaque, unsigned gsi)
{
    Machine *m = opaque;
    return gsi < MACHINE_NR_GSIS ? &m->irq[gsi].base : NULL;
}

/*
 * The PCI host, then the user's devices in command-line order: the same
 * command line always gives the same slots and BAR addresses.
 */
static gboolean create_pci(Machine *m, GError **error)
{
    PciHostWindows win = {
        .io_base = LAYOUT_PCI_IO_START,
        .io_end = LAYOUT_PCI_IO_END,
        .mem32_base = LAYOUT_PCI_MMIO32_START,
        .mem32_end = LAYOUT_PCI_MMIO32_END,
        .mem64_base = layout_pci_mmio64_start(m->cfg->memory),
        .mem64_end = layout_pci_mmio64_start(m->cfg->memory) + LAYOUT_PCI_MMIO64_LEN,
    };

    m->pci = pci_host_new(m->pio, m->mmio, LAYOUT_PCI_ECAM, &win, pci_intx_line, m, error);
    if (!m->pci)
        return FALSE;
    pci_host_set_reset_register(m->pci, m->reset_control);
    g_ptr_array_add(m->devices, pci_host_config_device(m->pci));
    g_ptr_array_add(m->devices, pci_host_bridge_device(m->pci));
    for (guint i = 0; i < m->cfg->devices->len; i++) {
        const MachineDeviceSpec *spec = g_ptr_array_index(m->cfg->devices, i);
        g_autofree char *id = spec->id ? g_strdup(spec->id)
                                       : g_strdup_printf("%s%u", spec->type, i);
        CharBackend *chr = NULL;
        Device *dev;

        if (spec->chardev) {
            Chardev *c = chardev_new(spec->chardev, id, m->loop, error);
            if (!c)
                return FALSE;
            g_ptr_array_add(m->chardevs, c);
            chr = chardev_backend(c);
        }
        dev = add_device(m, spec->type, id, -1, chr, spec->options, error);
        if (!dev)
            return FALSE;
        if (dev->type->pci && !pci_host_attach(m->pci, pci_device_from_dev(dev), error))
            return FALSE;
    }
    return TRUE;
}

static gboolean create_devices(Machine *m, GError **error)
{
    g_autofree char *rtc_opts = g_strdup_printf("ram-below-4g=%" PRIu64 ",ram-above-4g=%" PRIu64,
                                                layout_low_ram(m->cfg->memory),
                                                layout_high_ram(m->cfg->memory));
    Device *dev;

    m->serial_chr = chardev_new(m->cfg->serial, "serial0", m->loop, error);
    if (!m->serial_chr) {
        g_prefix_error(error, "--serial: ");
        return FALSE;
    }
    dev = add_device(m, "uart-16550a", "serial0", LAYOUT_IRQ_COM1,
                     chardev_backend(m->serial_chr), NULL, error);
    if (!map_pio(m, dev, LAYOUT_PORT_COM1, LAYOUT_PORT_UART_LEN, 0, error))
        return FALSE;
    dev = add_device(m, "rtc-mc146818", "rtc", LAYOUT_IRQ_RTC, NULL, rtc_opts, error);
    if (!map_pio(m, dev, LAYOUT_PORT_RTC, LAYOUT_PORT_RTC_LEN, 0, error))
        return FALSE;
    /* Port 0x61 between the two i8042 ports belongs to the in-kernel PIT. */
    dev = add_device(m, "i8042", "i8042", LAYOUT_IRQ_I8042, NULL, NULL, error);
    if (!map_pio(m, dev, LAYOUT_PORT_I8042_DATA, 1, 0, error) ||
        !map_pio(m, dev, LAYOUT_PORT_I8042_CMD, 1, LAYOUT_PORT_I8042_CMD - LAYOUT_PORT_I8042_DATA,
                 error))
        return FALSE;
    m->pm = add_device(m, "acpi-pm", "pm", LAYOUT_IRQ_SCI, NULL, NULL, error);
    if (!map_pio(m, m->pm, LAYOUT_PORT_PM_BASE, LAYOUT_PORT_PM_LEN, 0, error))
        return FALSE;
    /* Port 0xcf9 lies in the PCI address register: the PCI host forwards it. */
    m->reset_control = add_device(m, "reset-control", "reset", -1, NULL, NULL, error);
    if (!m->reset_control)
        return FALSE;
    dev = add_device(m, "post-sink", "post", -1, NULL, NULL, error);
    if (!map_pio(m, dev, LAYOUT_PORT_POST, 1, 0, error))
        return FALSE;
    if (m->cfg->debug_exit) {
        dev = add_device(m, "debug-exit", "debug-exit", -1, NULL, NULL, error);
        if (!map_pio(m, dev, LAYOUT_PORT_DEBUG_EXIT, 1, 0, error))
            return FALSE;
    }
    return create_pci(m, error);
}

/* --- creation, boot, reset --- */

static gboolean create_vcpus(Machine *m, GError **error)
{
    if (m->cfg->cpus < 1 || m->cfg->cpus > LAYOUT_MAX_CPUS ||
        m->cfg->cpus > (unsigned)m->kvm->max_vcpus) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "--cpus %u: this host supports 1 to %d", m->cfg->cpus,
                    MIN(LAYOUT_MAX_CPUS, m->kvm->max_vcpus));
        return FALSE;
    }
    m->cpuid = kvm_get_supported_cpuid(m->kvm, error);
    if (!m->cpuid)
        return FALSE;
    m->vcpus = g_new0(Vcpu *, m->cfg->cpus);
    for (unsigned i = 0; i < m->cfg->cpus; i++) {
        m->vcpus[i] = vcpu_new(m, m->kvm, m->vm_fd, i, m->cpuid, error);
        if (!m->vcpus[i])
            return FALSE;
        m->nr_vcpus++;
    }
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!vcpu_capture_initial_state(m->vcpus[i], error))
            return FALSE;
    }
    return TRUE;
}

Machine *machine_new(const MachineConfig *cfg, Loop *loop, GError **error)
{
    g_autoptr(Machine) m = g_new0(Machine, 1);

    m->cfg = config_copy(cfg);
    m->loop = loop;
    m->devices_inactive = cfg->incoming;
    m->vm_fd = -1;
    m->state = RUN_STATE_PRELAUNCH;
    m->listeners = g_array_new(FALSE, FALSE, sizeof(Listener));
    m->devices = g_ptr_array_new();
    m->owned_devices = g_ptr_array_new_with_free_func((GDestroyNotify)device_free);
    m->chardevs = g_ptr_array_new_with_free_func((GDestroyNotify)chardev_free);
    m->control.request = control_request;
    m->pio = bus_new("port I/O", 1);
    m->mmio = bus_new("MMIO", 0x1000);
    g_mutex_init(&m->run_lock);
    g_cond_init(&m->run_cond);
    g_mutex_init(&m->req_lock);
    g_atomic_int_set(&m->stop_vcpus, 1);

    if (!cfg->kernel) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "no --kernel given");
        return NULL;
    }
    /* Check the kernel first: a bad file should fail before anything starts. */
    m->boot = boot_image_open(cfg->kernel, cfg->initrd, cfg->cmdline, error);
    if (!m->boot)
        return NULL;
    m->kvm = kvm_open(error);
    if (!m->kvm)
        return NULL;
    m->vm_fd = kvm_create_vm(m->kvm, error);
    if (m->vm_fd < 0)
        return NULL;
    m->ram = guest_ram_new(cfg->memory, error);
    if (!m->ram) {
        g_prefix_error(error, "--memory: ");
        return NULL;
    }
    /*
     * RAM first: with the irqchip already there, registering a memory slot
     * took 5-10 ms instead of 0.1 ms on the nested KVM we measured.
     */
    if (!guest_ram_register(m->ram, m->vm_fd, error) || !create_irqchip(m, error) ||
        !create_devices(m, error) || !create_vcpus(m, error) ||
        !save_irqchip(m, m->irqchip_initial, &m->pit_initial, error))
        return NULL;
    return g_steal_pointer(&m);
}

/* Loads the kernel and tables into RAM and points the BSP at the entry. */
static gboolean load_boot(Machine *m, GError **error)
{
    AcpiConfig acpi = { .nr_cpus = m->nr_vcpus, .ram_size = m->cfg->memory };
    BootEntry entry;
    uint64_t rsdp;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    Vcpu *bsp = m->vcpus[0];

    if (!acpi_build(&m->ram->mem, &acpi, &rsdp, error) ||
        !boot_image_load(m->boot, &m->ram->mem, m->cfg->memory, rsdp, &entry, error))
        return FALSE;
    if (KVM_IOCTL(bsp->fd, KVM_GET_SREGS, &sregs, error) < 0)
        return FALSE;
    boot_bsp_registers(&entry, &regs, &sregs);
    return KVM_IOCTL(bsp->fd, KVM_SET_SREGS, &sregs, error) >= 0 &&
           KVM_IOCTL(bsp->fd, KVM_SET_REGS, &regs, error) >= 0;
}

gboolean machine_start(Machine *m, GError **error)
{
    /* An incoming machine gets RAM and registers from the stream. */
    if (!m->cfg->incoming && !load_boot(m, error))
        return FALSE;
    g_mutex_lock(&m->run_lock);
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        Vcpu *vcpu = m->vcpus[i];
        int ret;

        vcpu->alive = TRUE;
        m->nr_alive++;
        ret = pthread_create(&vcpu->thread, NULL, vcpu_thread_main, vcpu);
        if (ret != 0) {
            vcpu->alive = FALSE;
            m->nr_alive--;
            g_mutex_unlock(&m->run_lock);
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                        "cannot start the thread of vCPU %u: %s", i, g_strerror(ret));
            return FALSE;
        }
    }
    g_mutex_unlock(&m->run_lock);
    if (m->cfg->incoming) {
        m->state = RUN_STATE_INMIGRATE;
    } else if (!m->cfg->start_paused) {
        m->state = RUN_STATE_RUNNING;
        resume_vcpus(m);
    }
    return TRUE;
}

/* Everything back to power-on state, kernel reloaded. vCPUs are parked. */
static gboolean reset_machine(Machine *m, GError **error)
{
    for (guint i = 0; i < m->devices->len; i++)
        device_reset(g_ptr_array_index(m->devices, i));
    pci_host_reset(m->pci);
    if (!restore_irqchip(m, m->irqchip_initial, &m->pit_initial, error))
        return FALSE;
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!vcpu_reset(m->vcpus[i], error))
            return FALSE;
    }
    return load_boot(m, error);
}

static void finish(Machine *m, RunState state, int status)
{
    m->state = state;
    loop_quit(m->loop, status);
}

static void process_requests(void *opaque)
{
    Machine *m = opaque;
    g_autoptr(GError) err = NULL;
    RequestKind kind;
    int status;
    gboolean guest;
    const char *reason;

    g_mutex_lock(&m->req_lock);
    kind = m->request;
    status = m->request_status;
    guest = m->request_by_guest;
    reason = m->request_reason;
    m->request = REQUEST_NONE;
    m->request_scheduled = FALSE;
    g_mutex_unlock(&m->req_lock);

    if (m->state == RUN_STATE_SHUTDOWN || m->state == RUN_STATE_INTERNAL_ERROR)
        return;
    pause_vcpus(m);
    switch (kind) {
    case REQUEST_NONE:
        break;
    case REQUEST_FATAL:
        emit(m, MACHINE_EVENT_SHUTDOWN, TRUE, reason);
        finish(m, RUN_STATE_INTERNAL_ERROR, status);
        return;
    case REQUEST_EXIT:
        /* isa-debug-exit ends the process at once, without a SHUTDOWN event (QEMU). */
        finish(m, RUN_STATE_SHUTDOWN, status);
        return;
    case REQUEST_POWEROFF:
        emit(m, MACHINE_EVENT_SHUTDOWN, guest, reason);
        finish(m, RUN_STATE_SHUTDOWN, 0);
        return;
    case REQUEST_RESET:
        if (m->cfg->no_reboot) {
            emit(m, MACHINE_EVENT_SHUTDOWN, guest, reason);
            finish(m, RUN_STATE_SHUTDOWN, 0);
            return;
        }
        if (!reset_machine(m, &err)) {
            fprintf(stderr, "vireo-vmm: reset failed: %s\n", err->message);
            emit(m, MACHINE_EVENT_SHUTDOWN, FALSE, "host-error");
            finish(m, RUN_STATE_INTERNAL_ERROR, MACHINE_EXIT_GUEST_CRASH);
            return;
        }
        emit(m, MACHINE_EVENT_RESET, guest, reason);
        break;
    }
    if (m->state == RUN_STATE_RUNNING)
        resume_vcpus(m);
}

/* --- whole-machine state --- */

#define MACHINE_STATE_VERSION 1

static void save_kvm_state(Machine *m, StateWriter *w, const struct kvm_irqchip chips[3],
                           const struct kvm_pit_state2 *pit, uint64_t clock)
{
    state_writer_begin_section(w, "kvm", MACHINE_STATE_VERSION);
    state_write_bytes(w, "pic-master", &chips[0].chip, sizeof(chips[0].chip));
    state_write_bytes(w, "pic-slave", &chips[1].chip, sizeof(chips[1].chip));
    state_write_bytes(w, "ioapic", &chips[2].chip, sizeof(chips[2].chip));
    state_write_bytes(w, "pit", pit, sizeof(*pit));
    state_write_u64(w, "clock", clock);
    state_writer_end_section(w);
}

gboolean machine_save_state(Machine *m, StateWriter *w, GError **error)
{
    struct kvm_irqchip chips[3];
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = { 0 };

    if (m->state == RUN_STATE_RUNNING) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "the machine must be stopped to save its state");
        return FALSE;
    }
    if (!save_irqchip(m, chips, &pit, error) ||
        KVM_IOCTL(m->vm_fd, KVM_GET_CLOCK, &clock, error) < 0)
        return FALSE;
    state_writer_begin_section(w, "machine", MACHINE_STATE_VERSION);
    state_write_u32(w, "cpus", m->nr_vcpus);
    state_write_u64(w, "memory", m->cfg->memory);
    state_writer_end_section(w);
    save_kvm_state(m, w, chips, &pit,
                   m->clock_saved ? m->clock_at_stop.clock : clock.clock);
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!vcpu_save(m->vcpus[i], w, error))
            return FALSE;
    }
    for (guint i = 0; i < m->devices->len; i++) {
        if (!device_save(g_ptr_array_index(m->devices, i), w, error))
            return FALSE;
    }
    return TRUE;
}

gboolean machine_load_state(Machine *m, StateReader *r, GError **error)
{
    struct kvm_irqchip chips[3] = { { .chip_id = 0 }, { .chip_id = 1 }, { .chip_id = 2 } };
    struct kvm_pit_state2 pit;
    uint32_t version, cpus;
    uint64_t memory, clock;

    if (m->state != RUN_STATE_PRELAUNCH && m->state != RUN_STATE_INMIGRATE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "state can only be loaded into a machine that has not run");
        return FALSE;
    }
    if (!state_reader_begin_section(r, "machine", MACHINE_STATE_VERSION, &version, error) ||
        !state_read_u32(r, "cpus", &cpus, error) || !state_read_u64(r, "memory", &memory, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    if (cpus != m->nr_vcpus || memory != m->cfg->memory) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "saved state is for %u vCPUs and %" G_GUINT64_FORMAT " MiB, this machine "
                    "has %u and %" G_GUINT64_FORMAT " MiB", cpus, (guint64)(memory / LAYOUT_MIB),
                    m->nr_vcpus, (guint64)(m->cfg->memory / LAYOUT_MIB));
        return FALSE;
    }
    if (!state_reader_begin_section(r, "kvm", MACHINE_STATE_VERSION, &version, error) ||
        !state_read_bytes(r, "pic-master", &chips[0].chip, sizeof(chips[0].chip), error) ||
        !state_read_bytes(r, "pic-slave", &chips[1].chip, sizeof(chips[1].chip), error) ||
        !state_read_bytes(r, "ioapic", &chips[2].chip, sizeof(chips[2].chip), error) ||
        !state_read_bytes(r, "pit", &pit, sizeof(pit), error) ||
        !state_read_u64(r, "clock", &clock, error) || !state_reader_end_section(r, error))
        return FALSE;
    if (!restore_irqchip(m, chips, &pit, error))
        return FALSE;
    m->clock_at_stop.clock = clock;
    m->clock_saved = TRUE;
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (!vcpu_load(m->vcpus[i], r, error))
            return FALSE;
    }
    for (guint i = 0; i < m->devices->len; i++) {
        if (!device_load(g_ptr_array_index(m->devices, i), r, error))
            return FALSE;
    }
    return TRUE;
}

/* --- host commands (QMP) --- */

void machine_stop(Machine *m)
{
    if (m->state != RUN_STATE_RUNNING)
        return;
    pause_vcpus(m);
    /* Freeze guest time while stopped, as QEMU does for kvmclock. */
    m->clock_saved = kvm_ioctl_raw(m->vm_fd, KVM_GET_CLOCK, (unsigned long)&m->clock_at_stop) >= 0;
    m->state = RUN_STATE_PAUSED;
    emit(m, MACHINE_EVENT_STOP, FALSE, NULL);
}

gboolean machine_cont(Machine *m, GError **error)
{
    if (m->state == RUN_STATE_RUNNING)
        return TRUE;
    if (m->state == RUN_STATE_INMIGRATE || m->state == RUN_STATE_FINISH_MIGRATE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "a migration is in progress; the guest cannot be resumed now");
        return FALSE;
    }
    if (m->state != RUN_STATE_PAUSED && m->state != RUN_STATE_PRELAUNCH &&
        m->state != RUN_STATE_POSTMIGRATE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "the guest has %s; it cannot be resumed",
                    m->state == RUN_STATE_SHUTDOWN ? "shut down" : "crashed");
        return FALSE;
    }
    if (m->devices_inactive && !machine_set_devices_active(m, TRUE, error)) {
        g_prefix_error(error, "cannot resume: ");
        return FALSE;
    }
    if (m->clock_saved) {
        struct kvm_clock_data clock = { .clock = m->clock_at_stop.clock };
        kvm_ioctl_raw(m->vm_fd, KVM_SET_CLOCK, (unsigned long)&clock);
        m->clock_saved = FALSE;
    }
    m->state = RUN_STATE_RUNNING;
    if (guest_memory_is_quiesced(&m->ram->mem)) {
        guest_memory_set_quiesced(&m->ram->mem, FALSE);
        /* Work that arrived while quiesced waits in the rings: a kick finds it. */
        kvm_ioevents_ring_all(m->ioevents);
    }
    resume_vcpus(m);
    emit(m, MACHINE_EVENT_RESUME, FALSE, NULL);
    return TRUE;
}

gboolean machine_set_devices_active(Machine *m, gboolean active, GError **error)
{
    guint i;

    for (i = 0; i < m->devices->len; i++) {
        if (!device_set_active(g_ptr_array_index(m->devices, i), active, error))
            break;
    }
    if (i == m->devices->len) {
        m->devices_inactive = !active;
        return TRUE;
    }
    /* All or none: give back what was taken, take back what was given. */
    while (i-- > 0) {
        Device *dev = g_ptr_array_index(m->devices, i);
        g_autoptr(GError) err = NULL;

        if (!device_set_active(dev, !active, &err))
            g_warning("%s: %s", dev->id, err->message);
    }
    return FALSE;
}

gboolean machine_check_migratable(Machine *m, GError **error)
{
    for (guint i = 0; i < m->devices->len; i++) {
        Device *dev = g_ptr_array_index(m->devices, i);

        if (!dev->type->ops->save) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "device '%s' (%s) cannot save its state, so the VM cannot migrate",
                        dev->id, dev->type->name);
            return FALSE;
        }
    }
    return TRUE;
}

void machine_set_migration_state(Machine *m, RunState state)
{
    g_assert((m->state == RUN_STATE_PAUSED && state == RUN_STATE_FINISH_MIGRATE) ||
             (m->state == RUN_STATE_FINISH_MIGRATE && state == RUN_STATE_POSTMIGRATE) ||
             (m->state == RUN_STATE_FINISH_MIGRATE && state == RUN_STATE_PAUSED) ||
             (m->state == RUN_STATE_INMIGRATE && state == RUN_STATE_PAUSED));
    m->state = state;
}

void machine_powerdown(Machine *m)
{
    emit(m, MACHINE_EVENT_POWERDOWN, FALSE, NULL);
    acpi_pm_press_power_button(m->pm);
}

void machine_system_reset(Machine *m)
{
    request(m, REQUEST_RESET, 0, FALSE, "host-qmp-system-reset");
}

void machine_quit(Machine *m, const char *reason)
{
    if (m->state == RUN_STATE_SHUTDOWN || m->state == RUN_STATE_INTERNAL_ERROR)
        return;
    if (m->state == RUN_STATE_RUNNING)
        pause_vcpus(m);
    emit(m, MACHINE_EVENT_SHUTDOWN, FALSE, reason);
    finish(m, RUN_STATE_SHUTDOWN, 0);
}

static void stop_vcpu_threads(Machine *m)
{
    g_mutex_lock(&m->run_lock);
    m->vcpus_exit = TRUE;
    kick_vcpus_locked(m);
    g_cond_broadcast(&m->run_cond);
    g_mutex_unlock(&m->run_lock);
    for (unsigned i = 0; i < m->nr_vcpus; i++) {
        if (m->vcpus[i]->thread)
            pthread_join(m->vcpus[i]->thread, NULL);
    }
}

void machine_free(Machine *m)
{
    if (!m)
        return;
    stop_vcpu_threads(m);
    if (m->serial_chr)
        chardev_flush(m->serial_chr, 1000);
    /* With --console virtio the guest console's last output is in one of these. */
    for (guint i = 0; i < m->chardevs->len; i++)
        chardev_flush(g_ptr_array_index(m->chardevs, i), 1000);
    for (unsigned i = 0; i < m->nr_vcpus; i++)
        vcpu_free(m->vcpus[i]);
    g_free(m->vcpus);
    g_ptr_array_unref(m->devices);
    /* Devices free their MSI routes and doorbells, so before those services. */
    g_ptr_array_unref(m->owned_devices);
    pci_host_free(m->pci);
    chardev_free(m->serial_chr);
    g_ptr_array_unref(m->chardevs);
    kvm_ioevents_free(m->ioevents);
    irq_routing_free(m->routing);
    bus_free(m->pio);
    bus_free(m->mmio);
    if (m->vm_fd >= 0)
        close(m->vm_fd);
    guest_ram_free(m->ram);
    kvm_close(m->kvm);
    boot_image_free(m->boot);
    g_free(m->cpuid);
    g_array_unref(m->listeners);
    g_mutex_clear(&m->run_lock);
    g_cond_clear(&m->run_cond);
    g_mutex_clear(&m->req_lock);
    machine_config_free(m->cfg);
    g_free(m);
}
