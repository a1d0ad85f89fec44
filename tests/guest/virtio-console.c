/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-console as a minimal driver uses it, against vireo-vmm (run
 * with --device virtio-console,... or --console virtio / --channel), and
 * an echo of whatever the host sends on each port:
 *
 * Phase A, MULTIPORT: the device found by ECAM enumeration, features
 * VERSION_1 and MULTIPORT, port 0's queues, the control queues and port
 * 1's (if max_nr_ports allows), the handshake as Linux does it
 * (DEVICE_READY; PORT_ADD -> receive buffers, PORT_READY; CONSOLE_PORT
 * -> PORT_OPEN; PORT_NAME -> PORT_OPEN), then every byte a port receives
 * goes back out on the same port. It ends once a whole line went back on
 * port 0 and, if there is a port 1, on port 1 too and the host then
 * closed port 1 (PORT_OPEN 0 from the device).
 * Phase B, single port: a device reset, VERSION_1 only (no MULTIPORT),
 * queues 0 and 1; "B-ready\n" goes out on port 0, and the echo goes on
 * until another whole line went back. Then PASS.
 *
 * Everything is polled (no interrupts): the host's test decides the pace.
 * Notifications are 16-bit writes to each queue's notify address
 * (ioeventfd doorbells in vireo-vmm).
 */
#include "lib/guest.h"

const char test_name[] = "virtio-console";

#define VIRTIO_CONSOLE_ID 0x10431af4u   /* device << 16 | vendor */
#define CAP_VNDR 0x09
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_DEVICE 4
/* struct virtio_pci_common_cfg */
#define DFSELECT 0
#define DF 4
#define GFSELECT 8
#define GF 12
#define NUM_QUEUES 18
#define STATUS 20
#define Q_SELECT 22
#define Q_SIZE 24
#define Q_ENABLE 28
#define Q_NOFF 30
#define Q_DESC 32
#define Q_AVAIL 40
#define Q_USED 48
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define VERSION_1_HI 1                  /* bit 32: bit 0 of the high word */
#define F_MULTIPORT 2                   /* bit 1 */
#define DESC_F_WRITE 2
#define BAR2_ADDR 0xd0000000u           /* below 4 GiB, where our page tables reach */
/* Control messages (virtio 1.2, 5.3.6.2). */
#define DEVICE_READY 0
#define PORT_ADD 1
#define PORT_READY 3
#define CONSOLE_PORT 4
#define PORT_OPEN 6
#define PORT_NAME 7

#define QSIZE 8
#define NQ 6                            /* port 0, control, port 1 */
#define BUF 320                         /* a control message with a 255-byte name fits */
#define WAIT_CYCLES 60000000000ULL      /* ~20 s of TSC: the host test sets the pace */

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* One queue, one descriptor per buffer: descriptor i always holds buf[i]. */
struct vq {
    struct desc desc[QSIZE] __attribute__((aligned(16)));
    struct {
        uint16_t flags, idx, ring[QSIZE], used_event;
    } avail __attribute__((aligned(2)));
    volatile struct {
        uint16_t flags, idx;
        struct {
            uint32_t id, len;
        } ring[QSIZE];
        uint16_t avail_event;
    } used __attribute__((aligned(4)));
    uint8_t buf[QSIZE][BUF];
    uint16_t last_used;
    uintptr_t notify;
    unsigned index;
    bool on;
};

static struct vq vqs[NQ];
static uintptr_t ecam, common, notify_base, devcfg;
static uint32_t notify_mult;
static unsigned nr_ports;               /* ports this program drives: 1 or 2 */
static bool added[2], host_open[2], line_done[2], host_closed_1;
static unsigned echoed[2];

static uint32_t cfg_read(unsigned slot, unsigned reg)
{
    return mmio_read32(ecam + (slot << 15) + reg);
}

static void cfg_write(unsigned slot, unsigned reg, uint32_t v)
{
    mmio_write32(ecam + (slot << 15) + reg, v);
}

static void barrier(void)
{
    __asm__ volatile("" ::: "memory");  /* x86 keeps stores in order; the compiler must too */
}

static void vq_setup(unsigned index)
{
    struct vq *q = &vqs[index];

    memset(q, 0, sizeof(*q));
    q->index = index;
    mmio_write16(common + Q_SELECT, index);
    if (mmio_read16(common + Q_SIZE) < QSIZE)
        test_fail("queue %u offers %u entries", index, mmio_read16(common + Q_SIZE));
    mmio_write16(common + Q_SIZE, QSIZE);
    mmio_write64(common + Q_DESC, (uintptr_t)q->desc);
    mmio_write64(common + Q_AVAIL, (uintptr_t)&q->avail);
    mmio_write64(common + Q_USED, (uintptr_t)&q->used);
    mmio_write16(common + Q_ENABLE, 1);
    if (mmio_read16(common + Q_ENABLE) != 1)
        test_fail("queue %u did not enable (status 0x%x)", index, mmio_read8(common + STATUS));
    q->notify = notify_base + mmio_read16(common + Q_NOFF) * notify_mult;
    q->on = true;
}

/* Buffer @slot of @q to the device: @len bytes, device-writable if @in. */
static void vq_add(struct vq *q, unsigned slot, uint32_t len, bool in)
{
    uint16_t idx = q->avail.idx;

    q->desc[slot] = (struct desc){ (uintptr_t)q->buf[slot], len, in ? DESC_F_WRITE : 0, 0 };
    q->avail.ring[idx % QSIZE] = slot;
    barrier();
    q->avail.idx = idx + 1;
    barrier();
    mmio_write16(q->notify, q->index);
}

/* The next used buffer of @q: its slot, or -1 if none. */
static int vq_used(struct vq *q, uint32_t *len)
{
    unsigned slot;

    if (q->used.idx == q->last_used)
        return -1;
    barrier();
    slot = q->used.ring[q->last_used % QSIZE].id;
    *len = q->used.ring[q->last_used % QSIZE].len;
    q->last_used++;
    if (slot >= QSIZE || *len > BUF)
        test_fail("queue %u: used entry slot %u, %u bytes", q->index, slot, *len);
    return slot;
}

static void check_device(void)
{
    if (mmio_read8(common + STATUS) & S_NEEDS_RESET)
        test_fail("the device needs a reset (status 0x%x)", mmio_read8(common + STATUS));
}

/* Sends @len bytes from @data on queue @index (slot 0) and waits until the device took them. */
static void vq_send(unsigned index, const void *data, uint32_t len)
{
    struct vq *q = &vqs[index];
    uint64_t deadline = cpu_rdtsc() + WAIT_CYCLES;
    uint32_t used_len;

    memcpy(q->buf[0], data, len);
    vq_add(q, 0, len, false);
    while (vq_used(q, &used_len) < 0) {
        if (cpu_rdtsc() > deadline)
            test_fail("queue %u: %u bytes not taken (the host does not read?)", index, len);
        check_device();
        util_pause();
    }
}

static void ctrl_send(uint32_t id, uint16_t event, uint16_t value)
{
    uint8_t msg[8];

    memcpy(msg, &id, 4);
    memcpy(msg + 4, &event, 2);
    memcpy(msg + 6, &value, 2);
    vq_send(3, msg, sizeof(msg));
}

static unsigned rx_queue(unsigned port)
{
    return port == 0 ? 0 : 2 + 2 * port;
}

static void fill_rx(unsigned index)
{
    for (unsigned slot = 0; slot < QSIZE; slot++)
        vq_add(&vqs[index], slot, BUF, true);
}

/* One control message from the device, handled as Linux does. */
static void ctrl_handle(const uint8_t *m, uint32_t len)
{
    uint32_t id;
    uint16_t event, value;

    if (len < 8)
        test_fail("control message of %u bytes", len);
    memcpy(&id, m, 4);
    memcpy(&event, m + 4, 2);
    memcpy(&value, m + 6, 2);
    if (id >= nr_ports && event != PORT_ADD)
        test_fail("control event %u for port %u", event, id);
    switch (event) {
    case PORT_ADD:
        if (id >= nr_ports) {
            test_log("note: port %u not driven (max_nr_ports allows %u)", id, nr_ports);
            break;
        }
        if (added[id])
            test_fail("port %u added twice", id);
        added[id] = true;
        fill_rx(rx_queue(id));
        ctrl_send(id, PORT_READY, 1);
        break;
    case CONSOLE_PORT:
        if (id != 0 || value != 1)
            test_fail("CONSOLE_PORT %u for port %u", value, id);
        test_log("port 0 is the console");
        ctrl_send(0, PORT_OPEN, 1);
        break;
    case PORT_NAME: {
        char name[BUF];

        memcpy(name, m + 8, len - 8);
        name[len - 8] = 0;
        test_log("port %u is named %s", id, name);
        ctrl_send(id, PORT_OPEN, 1);
        break;
    }
    case PORT_OPEN:
        test_log("host side of port %u %s", id, value ? "open" : "closed");
        if (id == 1 && host_open[1] && !value && line_done[1])
            host_closed_1 = true;
        host_open[id] = value;
        break;
    default:
        test_fail("control event %u from the device", event);
    }
}

/* Sends back what port @port received; returns whether anything came. */
static bool echo(unsigned port)
{
    struct vq *q = &vqs[rx_queue(port)];
    uint32_t len;
    int slot = vq_used(q, &len);

    if (slot < 0)
        return false;
    if (len) {
        vq_send(rx_queue(port) + 1, q->buf[slot], len);
        echoed[port] += len;
        if (q->buf[slot][len - 1] == '\n')
            line_done[port] = true;
    }
    vq_add(q, slot, BUF, true);
    return true;
}

static void reset_and_negotiate(uint32_t features_lo)
{
    mmio_write8(common + STATUS, 0);
    if (mmio_read8(common + STATUS) != 0)
        test_fail("status not 0 after reset");
    mmio_write8(common + STATUS, S_ACK);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER);
    mmio_write32(common + DFSELECT, 0);
    if (features_lo && !(mmio_read32(common + DF) & features_lo))
        test_fail("features 0x%x not offered", features_lo);
    mmio_write32(common + DFSELECT, 1);
    if (!(mmio_read32(common + DF) & VERSION_1_HI))
        test_fail("VIRTIO_F_VERSION_1 not offered");
    mmio_write32(common + GFSELECT, 0);
    mmio_write32(common + GF, features_lo);
    mmio_write32(common + GFSELECT, 1);
    mmio_write32(common + GF, VERSION_1_HI);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(mmio_read8(common + STATUS) & S_FEATURES_OK))
        test_fail("FEATURES_OK refused");
}

static unsigned find_device(void)
{
    for (unsigned slot = 0; slot < 32; slot++) {
        if (cfg_read(slot, 0) == VIRTIO_CONSOLE_ID)
            return slot;
    }
    test_fail("no virtio-console (1af4:1043) on bus 0");
}

static void phase_multiport(void)
{
    uint32_t max_ports, len;
    uint64_t deadline;

    reset_and_negotiate(F_MULTIPORT);
    max_ports = mmio_read32(devcfg + 4);
    if (max_ports < 1 || max_ports > 32)
        test_fail("max_nr_ports %u", max_ports);
    if (mmio_read16(common + NUM_QUEUES) != 2 * (max_ports + 1))
        test_fail("%u queues for %u ports", mmio_read16(common + NUM_QUEUES), max_ports);
    nr_ports = max_ports >= 2 ? 2 : 1;
    for (unsigned i = 0; i < 2 * (nr_ports + 1); i++)
        vq_setup(i);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    fill_rx(2);
    ctrl_send(0xffffffffu, DEVICE_READY, 1);
    test_log("multiport: %u ports, handshake", max_ports);

    deadline = cpu_rdtsc() + 3 * WAIT_CYCLES;
    for (;;) {
        bool busy = false;
        int slot;

        while ((slot = vq_used(&vqs[2], &len)) >= 0) {
            ctrl_handle(vqs[2].buf[slot], len);
            vq_add(&vqs[2], slot, BUF, true);
            busy = true;
        }
        for (unsigned p = 0; p < nr_ports; p++)
            busy |= added[p] && echo(p);
        if (line_done[0] && (!added[1] || host_closed_1))
            break;
        if (cpu_rdtsc() > deadline)
            test_fail("phase A: echoed %u/%u bytes, port 1 %s", echoed[0], echoed[1],
                      !added[1] ? "absent" : host_closed_1 ? "closed" : "still open");
        check_device();
        if (!busy)
            util_pause();
    }
    if (!added[0])
        test_fail("port 0 never added");
    test_log("multiport: echoed %u bytes on port 0, %u on port 1%s", echoed[0], echoed[1],
             added[1] ? ", host closed port 1" : "");
}

static void phase_single(void)
{
    uint64_t deadline = cpu_rdtsc() + 3 * WAIT_CYCLES;

    line_done[0] = false;
    echoed[0] = 0;
    reset_and_negotiate(0);
    vq_setup(0);
    vq_setup(1);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    fill_rx(0);
    vq_send(1, "B-ready\n", 8);
    while (!line_done[0]) {
        if (!echo(0))
            util_pause();
        if (cpu_rdtsc() > deadline)
            test_fail("phase B: echoed %u bytes, no whole line", echoed[0]);
        check_device();
    }
    test_log("single port: echoed %u bytes on port 0", echoed[0]);
}

int main(void)
{
    const AcpiHeader *mcfg = acpi_find_table("MCFG");
    uint32_t cap;
    unsigned slot;

    if (!mcfg)
        test_fail("no MCFG table");
    ecam = *(const uint64_t *)((const uint8_t *)mcfg + 44);
    slot = find_device();

    /* BAR2 (64-bit, above RAM) moved below 4 GiB. */
    cfg_write(slot, 0x18, BAR2_ADDR | 0x4);
    cfg_write(slot, 0x1c, 0);
    cfg_write(slot, 0x04, 0x6);         /* memory decoding, bus mastering */
    for (cap = cfg_read(slot, 0x34) & 0xff; cap; cap = (cfg_read(slot, cap) >> 8) & 0xff) {
        uint32_t head = cfg_read(slot, cap);
        uint32_t type = (head >> 24) & 0xff, bar = cfg_read(slot, cap + 4) & 0xff;
        uintptr_t addr = BAR2_ADDR + cfg_read(slot, cap + 8);

        if ((head & 0xff) != CAP_VNDR || bar != 2)
            continue;
        if (type == CAP_COMMON && !common)
            common = addr;
        if (type == CAP_NOTIFY && !notify_base) {
            notify_base = addr;
            notify_mult = cfg_read(slot, cap + 16);
        }
        if (type == CAP_DEVICE && !devcfg)
            devcfg = addr;
    }
    if (!common || !notify_base || !devcfg)
        test_fail("capabilities: common %lx notify %lx device %lx", (unsigned long)common,
                  (unsigned long)notify_base, (unsigned long)devcfg);
    test_log("virtio-console at slot %u", slot);
    phase_multiport();
    phase_single();
    return 0;
}
