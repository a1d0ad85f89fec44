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
 */
#include "lib/guest.h"

const char test_name[] = "virtio-net";

#define VIRTIO_NET_ID 0x10411af4u       /* device << 16 | vendor */
#define CAP_VNDR 0x09
#define CAP_MSIX 0x11
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
/* struct virtio_pci_common_cfg */
#define DFSELECT 0
#define DF 4
#define GFSELECT 8
#define GF 12
#define MSIX_CONFIG 16
#define NUM_QUEUES 18
#define STATUS 20
#define Q_SELECT 22
#define Q_SIZE 24
#define Q_MSIX 26
#define Q_ENABLE 28
#define Q_NOFF 30
#define Q_DESC 32
#define Q_AVAIL 40
#define Q_USED 48
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define F_MAC (1u << 5)
#define F_STATUS (1u << 16)
#define VERSION_1_HI 1
#define DESC_F_WRITE 2
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY 1
#define NO_VECTOR 0xffff
#define MSIX_VECTOR 0x60                /* CPU vectors 0x60 (config), 0x61 (receive) */
#define BAR2_ADDR 0xd0000000u

#define QSIZE 256
#define BUF_SIZE 2048
#define HDR 12
/* Rings and buffers outside the image (which must end below 2 MiB): 4 MiB on. */
#define MEM_BASE 0x400000ul

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct avail {
    uint16_t flags, idx, ring[QSIZE], used_event;
};

struct used {
    uint16_t flags, idx;
    struct {
        uint32_t id, len;
    } ring[QSIZE];
    uint16_t avail_event;
};

typedef struct Queue {
    unsigned index;
    struct desc *desc;
    struct avail *avail;
    volatile struct used *used;
    uint8_t *bufs;                      /* QSIZE buffers of BUF_SIZE */
    uintptr_t notify;
    uint16_t last_used;
} Queue;

static uintptr_t ecam, common;
static volatile unsigned rx_irqs, config_irqs;
static Queue rxq, txq;
static uint8_t mac[6];
static const uint8_t my_ip[4] = { 10, 0, 2, 15 }, host_ip[4] = { 10, 0, 2, 2 };

static uint32_t cfg_read(unsigned slot, unsigned reg)
{
    return mmio_read32(ecam + (slot << 15) + reg);
}

static void cfg_write(unsigned slot, unsigned reg, uint32_t v)
{
    mmio_write32(ecam + (slot << 15) + reg, v);
}

static void msix_handler(TrapFrame *tf, void *opaque)
{
    (void)opaque;
    if (tf->vector == MSIX_VECTOR)
        config_irqs++;
    else
        rx_irqs++;
    lapic_eoi();
}

static void barrier(void)
{
    __asm__ volatile("mfence" ::: "memory");
}

static void queue_setup(Queue *q, unsigned index, uintptr_t mem, uint16_t vector)
{
    q->index = index;
    q->desc = (struct desc *)mem;
    q->avail = (struct avail *)(mem + 0x1000);
    q->used = (volatile struct used *)(mem + 0x2000);
    q->bufs = (uint8_t *)(mem + 0x4000);
    mmio_write16(common + Q_SELECT, index);
    if (mmio_read16(common + Q_SIZE) < QSIZE)
        test_fail("queue %u offers %u entries", index, mmio_read16(common + Q_SIZE));
    mmio_write16(common + Q_SIZE, QSIZE);
    mmio_write16(common + Q_MSIX, vector);
    if (mmio_read16(common + Q_MSIX) != vector)
        test_fail("queue %u: vector %u refused", index, vector);
    mmio_write64(common + Q_DESC, (uintptr_t)q->desc);
    mmio_write64(common + Q_AVAIL, (uintptr_t)q->avail);
    mmio_write64(common + Q_USED, (uintptr_t)q->used);
    mmio_write16(common + Q_ENABLE, 1);
    if (mmio_read16(common + Q_ENABLE) != 1)
        test_fail("queue %u did not enable (status 0x%x)", index, mmio_read8(common + STATUS));
}

/* Descriptor i always describes buffer i: receive buffers device-writable. */
static uint64_t queue_init_descs(uint64_t qp)
{
    Queue *q = (Queue *)qp;

    for (unsigned i = 0; i < QSIZE; i++)
        q->desc[i] = (struct desc){ (uintptr_t)(q->bufs + i * BUF_SIZE), BUF_SIZE,
                                    q == &rxq ? DESC_F_WRITE : 0, 0 };
    return 0;
}

static void queue_publish(Queue *q, uint16_t id)
{
    q->avail->ring[q->avail->idx % QSIZE] = id;
    __asm__ volatile("" ::: "memory");  /* x86: stores stay in order; the compiler must too */
    q->avail->idx++;
}

static void queue_kick(Queue *q)
{
    barrier();                          /* the index, then the device's flag */
    if (!(q->used->flags & USED_F_NO_NOTIFY))
        mmio_write16(q->notify, q->index);
}

/* Makes descriptor @id available; kicks if the device asks. */
static void queue_add(Queue *q, uint16_t id, int kick)
{
    queue_publish(q, id);
    if (kick)
        queue_kick(q);
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
    uint64_t deadline = cpu_rdtsc() + 3000000000ULL;

    for (unsigned i = 0; i < HDR; i++)
        b[i] = 0;
    for (unsigned i = 0; i < len; i++)
        b[HDR + i] = frame[i];
    txq.desc[0] = (struct desc){ (uintptr_t)b, HDR + len, 0, 0 };
    queue_add(&txq, 0, 1);
    while (txq.used->idx == txq.last_used) {
        if (cpu_rdtsc() > deadline)
            test_fail("transmit: no used buffer within ~1 s");
        __asm__ volatile("pause");
    }
    txq.last_used++;
}

/*
 * The next received frame for which @match says yes (others are
 * skipped): its length, with the frame copied to @out. Fails after ~1 s.
 */
static unsigned recv_frame(int (*match)(const uint8_t *f, unsigned len), uint8_t *out,
                           const char *what)
{
    uint64_t deadline = cpu_rdtsc() + 3000000000ULL;

    for (;;) {
        while (rxq.used->idx == rxq.last_used) {
            if (cpu_rdtsc() > deadline)
                test_fail("%s: nothing within ~1 s (%u receive interrupts)", what, rx_irqs);
            cpu_sti();
            __asm__ volatile("pause");
            cpu_cli();
        }
        {
            uint16_t slot = rxq.last_used++ % QSIZE;
            uint32_t id = rxq.used->ring[slot].id, len = rxq.used->ring[slot].len;
            const uint8_t *b = rxq.bufs + id * BUF_SIZE;
            unsigned n = len - HDR, ok;

            if (id >= QSIZE || len < HDR + 14 || len > BUF_SIZE)
                test_fail("%s: used entry id %u len %u", what, id, len);
            if (b[10] != 1 || b[11] != 0)
                test_fail("%s: num_buffers %u, expected 1", what, b[10] | b[11] << 8);
            ok = match(b + HDR, n);
            if (ok)
                for (unsigned i = 0; i < n; i++)
                    out[i] = b[HDR + i];
            queue_add(&rxq, id, 1);
            if (ok)
                return n;
        }
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
    {
        uint64_t deadline = cpu_rdtsc() + 3000000000ULL;

        cpu_sti();
        while (rx_irqs < 1 && cpu_rdtsc() < deadline)
            __asm__ volatile("pause");
        cpu_cli();
    }
    if (!rx_irqs)
        test_fail("no receive interrupt (MSI-X) for %u frames", rxq.last_used);
    test_log("virtio-net: ping 10.0.2.2: %u-byte reply, %u receive interrupts", n, rx_irqs);
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
        txq.desc[i].len = HDR + bench_size;
    }
    return 0;
}

static uint64_t tx_loop(uint64_t n)
{
    uint64_t t0 = cpu_rdtsc();
    uint16_t head = txq.avail->idx;

    for (uint64_t sent = 0; sent < n;) {
        unsigned batch = 0;

        /* Refill what the device completed; one kick for the batch, if wanted. */
        while (sent < n && (uint16_t)(head - txq.used->idx) < QSIZE) {
            txq.avail->ring[head % QSIZE] = head % QSIZE;
            head++;
            sent++;
            batch++;
        }
        if (batch) {
            __asm__ volatile("" ::: "memory");
            txq.avail->idx = head;
            queue_kick(&txq);
        } else {
            __asm__ volatile("pause");
        }
    }
    while (txq.used->idx != head)
        __asm__ volatile("pause");
    return cpu_rdtsc() - t0;
}

static uint64_t rx_first, rx_last;

static uint64_t rx_loop(uint64_t n)
{
    uint64_t count = 0, idle_limit = 3000000000ULL, last = cpu_rdtsc();

    rx_first = 0;
    while (count < n) {
        uint16_t idx = rxq.used->idx;
        uint64_t now = cpu_rdtsc();

        if (idx == rxq.last_used) {
            if (now - last > (count ? idle_limit : 10 * idle_limit))
                break;
            __asm__ volatile("pause");
            continue;
        }
        if (!count)
            rx_first = now;
        while (rxq.last_used != idx) {
            uint16_t id = rxq.used->ring[rxq.last_used % QSIZE].id;

            rxq.last_used++;
            count++;
            rxq.avail->ring[rxq.avail->idx % QSIZE] = id;
            __asm__ volatile("" ::: "memory");
            rxq.avail->idx++;
        }
        queue_kick(&rxq);
        last = rx_last = cpu_rdtsc();
    }
    return count;
}

int main(void)
{
    const AcpiHeader *mcfg = acpi_find_table("MCFG");
    uintptr_t notify = 0, isr = 0, device = 0, table;
    uint32_t mult = 0, cap, msix_cap = 0;
    unsigned slot = 32;
    const char *mode = "";
    size_t mode_len = 0;
    uint16_t status;

    if (!mcfg)
        test_fail("no MCFG table");
    lapic_enable();
    ecam = *(const uint64_t *)((const uint8_t *)mcfg + 44);
    for (unsigned s = 0; s < 32 && slot == 32; s++) {
        if (cfg_read(s, 0) == VIRTIO_NET_ID)
            slot = s;
    }
    if (slot == 32)
        test_fail("no virtio-net (1af4:1041) on bus 0 (run with --net)");
    boot_cmdline_find("mode", &mode, &mode_len);
    bench_frames = boot_cmdline_u64("frames", 1000000);
    bench_size = boot_cmdline_u64("size", 64);
    if (bench_size < 60 || bench_size > BUF_SIZE - HDR)
        test_fail("size=%lu: from 60 to %u", (unsigned long)bench_size, BUF_SIZE - HDR);

    /* BAR2 (64-bit, above RAM) moved below 4 GiB; BAR0 holds the MSI-X table. */
    table = cfg_read(slot, 0x10) & ~0xfu;
    cfg_write(slot, 0x18, BAR2_ADDR | 0x4);
    cfg_write(slot, 0x1c, 0);
    cfg_write(slot, 0x04, 0x6);
    for (cap = cfg_read(slot, 0x34) & 0xff; cap; cap = (cfg_read(slot, cap) >> 8) & 0xff) {
        uint32_t head = cfg_read(slot, cap);
        uint32_t type = (head >> 24) & 0xff, bar = cfg_read(slot, cap + 4) & 0xff;
        uintptr_t addr = BAR2_ADDR + cfg_read(slot, cap + 8);

        if ((head & 0xff) == CAP_MSIX)
            msix_cap = cap;
        if ((head & 0xff) != CAP_VNDR || bar != 2)
            continue;
        if (type == CAP_COMMON && !common)
            common = addr;
        if (type == CAP_NOTIFY && !notify) {
            notify = addr;
            mult = cfg_read(slot, cap + 16);
        }
        if (type == CAP_ISR && !isr)
            isr = addr;
        if (type == CAP_DEVICE && !device)
            device = addr;
    }
    if (!common || !notify || !isr || !device || !msix_cap)
        test_fail("capabilities: common %lx notify %lx isr %lx device %lx msix %x",
                  (unsigned long)common, (unsigned long)notify, (unsigned long)isr,
                  (unsigned long)device, msix_cap);

    /* Reset, ACKNOWLEDGE, DRIVER, features (VERSION_1, MAC, STATUS), FEATURES_OK. */
    mmio_write8(common + STATUS, 0);
    mmio_write8(common + STATUS, S_ACK);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER);
    mmio_write32(common + DFSELECT, 0);
    if ((mmio_read32(common + DF) & (F_MAC | F_STATUS)) != (F_MAC | F_STATUS))
        test_fail("MAC or STATUS not offered (0x%x)", mmio_read32(common + DF));
    mmio_write32(common + GFSELECT, 0);
    mmio_write32(common + GF, F_MAC | F_STATUS);
    mmio_write32(common + GFSELECT, 1);
    mmio_write32(common + GF, VERSION_1_HI);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(mmio_read8(common + STATUS) & S_FEATURES_OK))
        test_fail("FEATURES_OK refused");
    /* Receive, transmit, control: more with queues=N, which this driver leaves alone. */
    if (mmio_read16(common + NUM_QUEUES) < 3 || mmio_read16(common + NUM_QUEUES) % 2 == 0)
        test_fail("%u queues, expected 2N + 1", mmio_read16(common + NUM_QUEUES));

    /* MSI-X: entry 0 configuration changes, entry 1 the receive queue. */
    for (unsigned v = 0; v < 2; v++) {
        cpu_set_handler(MSIX_VECTOR + v, msix_handler, NULL);
        mmio_write32(table + 16 * v, 0xfee00000u | (lapic_id() << 12));
        mmio_write32(table + 16 * v + 4, 0);
        mmio_write32(table + 16 * v + 8, MSIX_VECTOR + v);
        mmio_write32(table + 16 * v + 12, 0);
    }
    cfg_write(slot, msix_cap, 0x80000000u);
    mmio_write16(common + MSIX_CONFIG, 0);

    queue_setup(&rxq, 0, MEM_BASE, mode_len ? NO_VECTOR : 1);
    queue_setup(&txq, 1, MEM_BASE + 0x100000, NO_VECTOR);
    rxq.notify = notify;
    txq.notify = notify + mult;
    user_run(queue_init_descs, (uintptr_t)&rxq);
    user_run(queue_init_descs, (uintptr_t)&txq);
    /* Completions are polled where no interrupt is wanted. */
    txq.avail->flags = AVAIL_F_NO_INTERRUPT;
    if (mode_len)
        rxq.avail->flags = AVAIL_F_NO_INTERRUPT;
    for (unsigned i = 0; i < (mode_len ? QSIZE : 32u); i++)
        queue_publish(&rxq, i);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

    for (unsigned i = 0; i < 6; i++)
        mac[i] = mmio_read8(device + i);
    status = mmio_read16(device + 6);
    test_log("virtio-net: slot %u, MAC %02x:%02x:%02x:%02x:%02x:%02x, link %s", slot, mac[0],
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
    if (config_irqs)
        test_fail("%u configuration interrupts (status 0x%x)", config_irqs,
                  mmio_read8(common + STATUS));
    return 0;
}
