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
 * (ioeventfd doorbells in vireo-vmm). The driver itself is lib/virtio.c.
 */
#include "lib/guest.h"

const char test_name[] = "virtio-console";

#define F_MULTIPORT 2                   /* bit 1 */
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

/* One queue, one descriptor per buffer: descriptor i always holds buf[i]. */
struct vq {
    VirtioQueue q;
    uint8_t ring[VIRTIO_QUEUE_MEM(QSIZE)] __attribute__((aligned(VIRTIO_QUEUE_ALIGN)));
    uint8_t buf[QSIZE][BUF];
};

static struct vq vqs[NQ];
static VirtioDev dev;
static unsigned nr_ports;               /* ports this program drives: 1 or 2 */
static bool added[2], host_open[2], line_done[2], host_closed_1;
static unsigned echoed[2];

/* No MSI-X vector: everything is polled. */
static void vq_setup(unsigned index)
{
    virtio_queue_setup(&dev, &vqs[index].q, index, QSIZE, vqs[index].ring, VIRTIO_NO_VECTOR);
}

/* Buffer @slot of @q to the device: @len bytes, device-writable if @in. */
static void vq_add(struct vq *q, unsigned slot, uint32_t len, bool in)
{
    q->q.desc[slot] = (VirtioDesc){ (uintptr_t)q->buf[slot], len,
                                    in ? VIRTIO_DESC_F_WRITE : 0, 0 };
    virtio_queue_publish(&q->q, slot);
    virtio_queue_notify(&q->q);
}

/* The next used buffer of @q: its slot, or -1 if none. */
static int vq_used(struct vq *q, uint32_t *len)
{
    uint32_t slot;

    if (!virtio_queue_next_used(&q->q, &slot, len))
        return -1;
    if (slot >= QSIZE || *len > BUF)
        test_fail("queue %u: used entry slot %u, %u bytes", q->q.index, slot, *len);
    return slot;
}

static void check_device(void)
{
    if (virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET)
        test_fail("the device needs a reset (status 0x%x)", virtio_status(&dev));
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

static void phase_multiport(void)
{
    uint32_t max_ports, len;
    uint64_t deadline;

    virtio_negotiate(&dev, F_MULTIPORT);
    max_ports = mmio_read32(dev.device + 4);
    if (max_ports < 1 || max_ports > 32)
        test_fail("max_nr_ports %u", max_ports);
    if (virtio_num_queues(&dev) != 2 * (max_ports + 1))
        test_fail("%u queues for %u ports", virtio_num_queues(&dev), max_ports);
    nr_ports = max_ports >= 2 ? 2 : 1;
    for (unsigned i = 0; i < 2 * (nr_ports + 1); i++)
        vq_setup(i);
    virtio_driver_ok(&dev);
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
    virtio_negotiate(&dev, 0);
    vq_setup(0);
    vq_setup(1);
    virtio_driver_ok(&dev);
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
    int slot = pci_find_slot(VIRTIO_PCI_ID(VIRTIO_ID_CONSOLE));

    if (slot < 0)
        test_fail("no virtio-console (1af4:1043) on bus 0");
    virtio_pci_init(&dev, slot, VIRTIO_NEED_DEVICE);
    test_log("virtio-console at slot %u", dev.slot);
    phase_multiport();
    phase_single();
    return 0;
}
