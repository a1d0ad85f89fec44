/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net as a minimal virtio 1.x driver uses it, against vireo-vmm run
 * with --net on a tap whose host side is 10.0.2.2/24
 * (tests/integration/net_test.py sets that up in a network namespace):
 * the device found by ECAM, features VERSION_1, MAC and STATUS, the MAC
 * and link state read from configuration space, a receive queue (MSI-X)
 * and a transmit queue. The guest, 10.0.2.15, asks for 10.0.2.2 with ARP
 * and pings it; the host's own network stack answers both. Every frame
 * goes through the tap: transmit by ioeventfd doorbell and writev, receive
 * by readv into this program's buffers and an MSI-X interrupt.
 *
 * Benchmark modes (kernel command line `mode=tx` or `mode=rx`, with
 * `frames=N` and `size=BYTES`): the hot loop runs at CPL3, which this
 * host runs natively (CPL0 is emulated). tx: sends N frames of SIZE bytes
 * (to a MAC nobody has, so the host drops them after counting them on the
 * tap), refilling the ring as the device completes, kicking only when the
 * device asks. rx: keeps 256 buffers posted and counts frames until N
 * arrived or none came for a second. Each prints its count and TSC cycles.
 * The driver itself is lib/virtio.c.
 */
#include "lib/guest.h"

const char test_name[] = "virtio-net";

#define F_MAC (1u << 5)
#define F_STATUS (1u << 16)
#define MSIX_VECTOR 0x60                /* CPU vectors 0x60 (config), 0x61 (receive) */

#define QSIZE 256
#define BUF_SIZE 2048
#define HDR 12
/* Rings and buffers outside the image (which must end below 2 MiB): 4 MiB on. */
#define MEM_BASE 0x400000ul
#define BUFS_OFF 0x4000                 /* past VIRTIO_QUEUE_MEM(QSIZE) */

typedef struct {
    VirtioQueue vq;
    uint8_t *bufs;                      /* QSIZE buffers of BUF_SIZE */
} Queue;

static VirtioDev dev;
static Queue rxq, txq;
static uint8_t mac[6];
static const uint8_t my_ip[4] = { 10, 0, 2, 15 }, host_ip[4] = { 10, 0, 2, 2 };

static void queue_setup(Queue *q, unsigned index, uintptr_t mem, uint16_t msix)
{
    _Static_assert(VIRTIO_QUEUE_MEM(QSIZE) <= BUFS_OFF, "rings overlap the buffers");
    virtio_queue_setup(&dev, &q->vq, index, QSIZE, (void *)mem, msix);
    q->bufs = (uint8_t *)(mem + BUFS_OFF);
}

/* Descriptor i always describes buffer i: receive buffers device-writable. */
static uint64_t queue_init_descs(uint64_t qp)
{
    Queue *q = (Queue *)qp;

    for (unsigned i = 0; i < QSIZE; i++)
        q->vq.desc[i] = (VirtioDesc){ (uintptr_t)(q->bufs + i * BUF_SIZE), BUF_SIZE,
                                      q == &rxq ? VIRTIO_DESC_F_WRITE : 0, 0 };
    return 0;
}

/* Makes descriptor @id available; kicks if the device asks. */
static void queue_add(Queue *q, uint16_t id)
{
    virtio_queue_publish(&q->vq, id);
    virtio_queue_kick(&q->vq);
}

/* --- frames --- */

static uint16_t csum(const uint8_t *p, unsigned len)
{
    uint32_t s = 0;

    for (unsigned i = 0; i + 1 < len; i += 2)
        s += (uint32_t)p[i] << 8 | p[i + 1];
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return ~s;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v;
}

/* Transmits @len bytes of frame through TX buffer 0 and waits for its completion. */
static void send_frame(const uint8_t *frame, unsigned len)
{
    uint8_t *b = txq.bufs;
    uint32_t id, used_len;

    for (unsigned i = 0; i < HDR; i++)
        b[i] = 0;
    for (unsigned i = 0; i < len; i++)
        b[HDR + i] = frame[i];
    txq.vq.desc[0] = (VirtioDesc){ (uintptr_t)b, HDR + len, 0, 0 };
    queue_add(&txq, 0);
    virtio_queue_wait_used(&txq.vq, &id, &used_len, "transmit");
}

/*
 * The next received frame for which @match says yes (others are
 * skipped): its length, with the frame copied to @out. Fails after ~1 s.
 */
static unsigned recv_frame(int (*match)(const uint8_t *f, unsigned len), uint8_t *out,
                           const char *what)
{
    uint64_t deadline = cpu_rdtsc() + PCI_WAIT_CYCLES;

    for (;;) {
        uint32_t id, len;
        const uint8_t *b;
        unsigned n, ok;

        virtio_queue_wait_used(&rxq.vq, &id, &len, what);
        if (id >= QSIZE || len < HDR + 14 || len > BUF_SIZE)
            test_fail("%s: used entry id %u len %u", what, id, len);
        b = rxq.bufs + id * BUF_SIZE;
        n = len - HDR;
        if (b[10] != 1 || b[11] != 0)
            test_fail("%s: num_buffers %u, expected 1", what, b[10] | b[11] << 8);
        ok = match(b + HDR, n);
        if (ok)
            for (unsigned i = 0; i < n; i++)
                out[i] = b[HDR + i];
        queue_add(&rxq, id);
        if (ok)
            return n;
        if (cpu_rdtsc() > deadline)
            test_fail("%s: only other frames within ~1 s", what);
    }
}

static int is_arp_reply(const uint8_t *f, unsigned len)
{
    return len >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2 &&
           f[28] == host_ip[0] && f[29] == host_ip[1] && f[30] == host_ip[2] &&
           f[31] == host_ip[3];
}

static int is_echo_reply(const uint8_t *f, unsigned len)
{
    return len >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 1 && f[34] == 0 &&
           f[38] == 0x12 && f[39] == 0x34;
}

static void functional_test(void)
{
    static uint8_t frame[128], reply[BUF_SIZE];
    uint8_t host_mac[6];
    unsigned n;

    /* ARP: who has 10.0.2.2? tell 10.0.2.15. */
    for (unsigned i = 0; i < 6; i++) {
        frame[i] = 0xff;
        frame[6 + i] = mac[i];
        frame[22 + i] = mac[i];
        frame[32 + i] = 0;
    }
    put16(frame + 12, 0x0806);
    put16(frame + 14, 1);               /* Ethernet */
    put16(frame + 16, 0x0800);          /* IPv4 */
    frame[18] = 6;
    frame[19] = 4;
    put16(frame + 20, 1);               /* request */
    for (unsigned i = 0; i < 4; i++) {
        frame[28 + i] = my_ip[i];
        frame[38 + i] = host_ip[i];
    }
    send_frame(frame, 60);
    recv_frame(is_arp_reply, reply, "ARP reply");
    for (unsigned i = 0; i < 6; i++)
        host_mac[i] = reply[22 + i];
    test_log("virtio-net: 10.0.2.2 is at %02x:%02x:%02x:%02x:%02x:%02x", host_mac[0],
             host_mac[1], host_mac[2], host_mac[3], host_mac[4], host_mac[5]);

    /* ICMP echo request, id 0x1234, seq 1, 32 bytes of data. */
    for (unsigned i = 0; i < 6; i++) {
        frame[i] = host_mac[i];
        frame[6 + i] = mac[i];
    }
    put16(frame + 12, 0x0800);
    frame[14] = 0x45;
    frame[15] = 0;
    put16(frame + 16, 20 + 8 + 32);
    put16(frame + 18, 1);
    put16(frame + 20, 0x4000);          /* don't fragment */
    frame[22] = 64;
    frame[23] = 1;                      /* ICMP */
    put16(frame + 24, 0);
    for (unsigned i = 0; i < 4; i++) {
        frame[26 + i] = my_ip[i];
        frame[30 + i] = host_ip[i];
    }
    put16(frame + 24, csum(frame + 14, 20));
    frame[34] = 8;                      /* echo request */
    frame[35] = 0;
    put16(frame + 36, 0);
    put16(frame + 38, 0x1234);
    put16(frame + 40, 1);
    for (unsigned i = 0; i < 32; i++)
        frame[42 + i] = 'a' + i % 26;
    put16(frame + 36, csum(frame + 34, 8 + 32));
    send_frame(frame, 14 + 20 + 8 + 32);
    n = recv_frame(is_echo_reply, reply, "ICMP echo reply");
    if (n < 74 || csum(reply + 34, 8 + 32) != 0 || reply[40] != 0 || reply[41] != 1)
        test_fail("echo reply of %u bytes: bad checksum or sequence", n);
    for (unsigned i = 0; i < 32; i++) {
        if (reply[42 + i] != 'a' + i % 26)
            test_fail("echo reply: payload differs at byte %u", i);
    }
    /* Frames were polled; their MSI-X interrupts must have come too. */
    pci_wait_count(&dev.irqs[1], 1, "receive (MSI-X)");
    test_log("virtio-net: ping 10.0.2.2: %u-byte reply, %u receive interrupts", n, dev.irqs[1]);
}

/* --- benchmarks, at CPL3 --- */

static uint64_t bench_frames, bench_size;

/* Fills every transmit buffer with a frame of bench_size bytes to a MAC nobody has. */
static uint64_t tx_prepare(uint64_t unused)
{
    (void)unused;
    for (unsigned i = 0; i < QSIZE; i++) {
        uint8_t *b = txq.bufs + i * BUF_SIZE;

        for (unsigned k = 0; k < HDR; k++)
            b[k] = 0;
        for (unsigned k = 0; k < bench_size; k++)
            b[HDR + k] = (uint8_t)k;
        b[HDR + 0] = 0x02;              /* locally administered, unicast */
        b[HDR + 1] = 0xbe;
        b[HDR + 2] = 0xef;
        b[HDR + 3] = 0;
        b[HDR + 4] = 0;
        b[HDR + 5] = 1;
        for (unsigned k = 0; k < 6; k++)
            b[HDR + 6 + k] = mac[k];
        b[HDR + 12] = 0x88;             /* local experimental ethertype */
        b[HDR + 13] = 0xb5;
        txq.vq.desc[i].len = HDR + bench_size;
    }
    return 0;
}

static uint64_t tx_loop(uint64_t n)
{
    uint64_t t0 = cpu_rdtsc();
    uint16_t head = txq.vq.avail->idx;

    for (uint64_t sent = 0; sent < n;) {
        unsigned batch = 0;

        /* Refill what the device completed; one kick for the batch, if wanted. */
        while (sent < n && (uint16_t)(head - txq.vq.used->idx) < QSIZE) {
            txq.vq.avail->ring[head % QSIZE] = head % QSIZE;
            head++;
            sent++;
            batch++;
        }
        if (batch) {
            __asm__ volatile("" ::: "memory");
            txq.vq.avail->idx = head;
            virtio_queue_kick(&txq.vq);
        } else {
            __asm__ volatile("pause");
        }
    }
    while (txq.vq.used->idx != head)
        __asm__ volatile("pause");
    return cpu_rdtsc() - t0;
}

static uint64_t rx_first, rx_last;

static uint64_t rx_loop(uint64_t n)
{
    uint64_t count = 0, idle_limit = 3000000000ULL, last = cpu_rdtsc();

    rx_first = 0;
    while (count < n) {
        uint16_t idx = rxq.vq.used->idx;
        uint64_t now = cpu_rdtsc();

        if (idx == rxq.vq.last_used) {
            if (now - last > (count ? idle_limit : 10 * idle_limit))
                break;
            __asm__ volatile("pause");
            continue;
        }
        if (!count)
            rx_first = now;
        while (rxq.vq.last_used != idx) {
            uint16_t id = rxq.vq.used->ring[rxq.vq.last_used % QSIZE].id;

            rxq.vq.last_used++;
            count++;
            virtio_queue_publish(&rxq.vq, id);
        }
        virtio_queue_kick(&rxq.vq);
        last = rx_last = cpu_rdtsc();
    }
    return count;
}

int main(void)
{
    int slot = pci_find_slot(VIRTIO_PCI_ID(VIRTIO_ID_NET));
    const char *mode = "";
    size_t mode_len = 0;
    uint16_t status;

    if (slot < 0)
        test_fail("no virtio-net (1af4:1041) on bus 0 (run with --net)");
    lapic_enable();
    boot_cmdline_find("mode", &mode, &mode_len);
    bench_frames = boot_cmdline_u64("frames", 1000000);
    bench_size = boot_cmdline_u64("size", 64);
    if (bench_size < 60 || bench_size > BUF_SIZE - HDR)
        test_fail("size=%lu: from 60 to %u", (unsigned long)bench_size, BUF_SIZE - HDR);

    virtio_pci_init(&dev, slot, VIRTIO_NEED_ISR | VIRTIO_NEED_DEVICE | VIRTIO_NEED_MSIX);
    virtio_negotiate(&dev, F_MAC | F_STATUS);
    /* Receive, transmit, control: more with queues=N, which this driver leaves alone. */
    if (virtio_num_queues(&dev) < 3 || virtio_num_queues(&dev) % 2 == 0)
        test_fail("%u queues, expected 2N + 1", virtio_num_queues(&dev));

    /* MSI-X: entry 0 configuration changes, entry 1 the receive queue. */
    virtio_msix_setup(&dev, MSIX_VECTOR, 2);
    queue_setup(&rxq, 0, MEM_BASE, mode_len ? VIRTIO_NO_VECTOR : 1);
    queue_setup(&txq, 1, MEM_BASE + 0x100000, VIRTIO_NO_VECTOR);
    user_run(queue_init_descs, (uintptr_t)&rxq);
    user_run(queue_init_descs, (uintptr_t)&txq);
    /* Completions are polled where no interrupt is wanted. */
    txq.vq.avail->flags = VIRTIO_AVAIL_F_NO_INTERRUPT;
    if (mode_len)
        rxq.vq.avail->flags = VIRTIO_AVAIL_F_NO_INTERRUPT;
    for (unsigned i = 0; i < (mode_len ? QSIZE : 32u); i++)
        virtio_queue_publish(&rxq.vq, i);
    virtio_driver_ok(&dev);

    for (unsigned i = 0; i < 6; i++)
        mac[i] = mmio_read8(dev.device + i);
    status = mmio_read16(dev.device + 6);
    test_log("virtio-net: slot %u, MAC %02x:%02x:%02x:%02x:%02x:%02x, link %s", dev.slot, mac[0],
             mac[1], mac[2], mac[3], mac[4], mac[5], status & 1 ? "up" : "down");
    if (!(status & 1))
        test_fail("link down");

    if (mode_len == 2 && mode[0] == 't' && mode[1] == 'x') {
        uint64_t cycles;

        user_run(tx_prepare, 0);
        cycles = user_run(tx_loop, bench_frames);
        test_log("virtio-net: bench tx frames=%lu size=%lu cycles=%lu tsc_khz=%lu",
                 (unsigned long)bench_frames, (unsigned long)bench_size,
                 (unsigned long)cycles, (unsigned long)cpu_tsc_khz());
    } else if (mode_len == 2 && mode[0] == 'r' && mode[1] == 'x') {
        uint64_t count;

        test_log("virtio-net: bench rx ready");
        count = user_run(rx_loop, bench_frames);
        test_log("virtio-net: bench rx frames=%lu cycles=%lu tsc_khz=%lu",
                 (unsigned long)count, (unsigned long)(rx_last - rx_first),
                 (unsigned long)cpu_tsc_khz());
    } else {
        functional_test();
    }
    if (dev.irqs[0])
        test_fail("%u configuration interrupts (status 0x%x)", dev.irqs[0], virtio_status(&dev));
    return 0;
}
