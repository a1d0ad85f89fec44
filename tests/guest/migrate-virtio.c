/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device writes during live migration (run with --device virtio-rng, or
 * with blk=1 and a --disk whose 4 KiB block b holds blk_pattern(b, w)
 * in word w): keeps the device's queue full of 4 KiB requests into pages=N
 * pages from 8 MiB up, for seconds=S, all at CPL3 (doorbells are MMIO
 * writes, used entries are polled; no interrupts). virtio-rng fills pages
 * with random bytes; virtio-blk reads into page p block (p + 7 * pass) mod
 * N, so a page's content changes from pass to pass (and is checked
 * against the pattern when it arrives). Each completed page's hash goes
 * into a table the vCPU writes; four times a pass over the pages, each
 * finished page is checked against its hash.
 *
 * The device, not the vCPU, writes the pages, so only the VMM's own dirty
 * tracking tells a migration to send them again. A device write lost on
 * the way leaves a page whose content is older than its hash: a mismatch.
 */
#include "lib/guest.h"

const char test_name[] = "migrate-virtio";

#define VIRTIO_RNG_ID 0x10441af4u       /* device << 16 | vendor */
#define VIRTIO_BLK_ID 0x10421af4u
#define BLK_T_IN 0
#define DESC_F_NEXT 1
#define CAP_VNDR 0x09
#define CAP_COMMON 1
#define CAP_NOTIFY 2
/* struct virtio_pci_common_cfg */
#define DFSELECT 0
#define DF 4
#define GFSELECT 8
#define GF 12
#define MSIX_CONFIG 16
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
#define VERSION_1_HI 1
#define DESC_F_WRITE 2
#define NO_VECTOR 0xffff
#define QSIZE 64
#define BAR2_ADDR 0xd0000000u

#define PAGE 4096u
#define DATA_START 0x800000ul
#define HASH_TABLE 0x600000ul           /* one u64 per page */
#define STATE_TABLE 0x700000ul          /* one u8 per page */
#define BLOCK_TABLE 0x500000ul          /* blk: one u64 per page, the block it holds */
#define ST_EMPTY 0
#define ST_IN_FLIGHT 1
#define ST_DONE 2

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static struct desc ring_desc[QSIZE] __attribute__((aligned(16)));
static struct {
    uint16_t flags, idx, ring[QSIZE], used_event;
} ring_avail __attribute__((aligned(2)));
static volatile struct {
    uint16_t flags, idx;
    struct {
        uint32_t id, len;
    } ring[QSIZE];
    uint16_t avail_event;
} ring_used __attribute__((aligned(4)));

static uintptr_t ecam, notify;
static uint64_t nr_pages, tsc_khz, run_seconds;
static uint64_t slot_page[QSIZE];
static int blk;                         /* dev=blk: three descriptors per request */
static unsigned nr_slots;
static uint64_t passes;
static struct {
    uint32_t type, reserved;
    uint64_t sector;
} blk_hdr[QSIZE];
static volatile uint8_t blk_status[QSIZE];

/* Word @w of disk block @b, as the host test wrote the image. */
static uint64_t blk_pattern(uint64_t b, uint64_t w)
{
    return ((b + 1) << 32) ^ (w * 0x9e3779b9ull);
}

static uint32_t cfg_read(unsigned slot, unsigned reg)
{
    return mmio_read32(ecam + (slot << 15) + reg);
}

static void cfg_write(unsigned slot, unsigned reg, uint32_t v)
{
    mmio_write32(ecam + (slot << 15) + reg, v);
}

static uint64_t hash_page(uint64_t i)
{
    const uint64_t *p = (const uint64_t *)(DATA_START + i * PAGE);
    uint64_t h = 0xcbf29ce484222325ull;

    for (unsigned w = 0; w < PAGE / 8; w++)
        h = (h ^ p[w]) * 0x100000001b3ull;
    return h;
}

/* 0 if every finished page matches its hash, else 1 + the first bad page. */
static uint64_t verify(void)
{
    volatile uint8_t *state = (volatile uint8_t *)STATE_TABLE;
    const uint64_t *hashes = (const uint64_t *)HASH_TABLE;

    for (uint64_t i = 0; i < nr_pages; i++) {
        if (state[i] == ST_DONE && hash_page(i) != hashes[i])
            return 1 + i;
    }
    return 0;
}

static void post(uint16_t slot, uint64_t page)
{
    volatile uint8_t *state = (volatile uint8_t *)STATE_TABLE;
    uint64_t *blocks = (uint64_t *)BLOCK_TABLE;
    uint16_t idx = ring_avail.idx, head = slot;

    state[page] = ST_IN_FLIGHT;
    slot_page[slot] = page;
    if (blk) {
        uint64_t block = (page + 7 * passes) % nr_pages;

        blocks[page] = block;
        head = 3 * slot;
        blk_hdr[slot].type = BLK_T_IN;
        blk_hdr[slot].sector = block * (PAGE / 512);
        blk_status[slot] = 0xff;
        ring_desc[head] = (struct desc){ (uintptr_t)&blk_hdr[slot], 16, DESC_F_NEXT, head + 1 };
        ring_desc[head + 1] = (struct desc){ DATA_START + page * PAGE, PAGE,
                                             DESC_F_WRITE | DESC_F_NEXT, head + 2 };
        ring_desc[head + 2] = (struct desc){ (uintptr_t)&blk_status[slot], 1, DESC_F_WRITE, 0 };
    } else {
        ring_desc[slot] = (struct desc){ DATA_START + page * PAGE, PAGE, DESC_F_WRITE, 0 };
    }
    ring_avail.ring[idx % QSIZE] = head;
    __asm__ volatile("" ::: "memory");  /* x86 keeps stores in order; the compiler must too */
    ring_avail.idx = idx + 1;
    __asm__ volatile("" ::: "memory");
}

static uint64_t workload(uint64_t arg)
{
    volatile uint8_t *state = (volatile uint8_t *)STATE_TABLE;
    uint64_t *hashes = (uint64_t *)HASH_TABLE;
    uint64_t second = tsc_khz * 1000, start, last_report, done = 0, cursor = 0;
    uint16_t last_used = 0, in_flight = 0;
    int stopping = 0;

    (void)arg;
    for (uint16_t s = 0; s < nr_slots; s++) {
        post(s, cursor);
        cursor = (cursor + 1) % nr_pages;
    }
    in_flight = nr_slots;
    mmio_write16(notify, 0);
    start = last_report = cpu_rdtsc();
    while (in_flight) {
        uint16_t used = ring_used.idx, posted = 0;
        uint64_t now = cpu_rdtsc();

        __asm__ volatile("" ::: "memory");
        while (last_used != used) {
            uint32_t id = ring_used.ring[last_used % QSIZE].id;
            uint32_t len = ring_used.ring[last_used % QSIZE].len;
            uint64_t page;

            if (blk && id % 3 == 0 && id / 3 < nr_slots && len == PAGE + 1 &&
                blk_status[id / 3] == 0) {
                id /= 3;
            } else if (blk || id >= QSIZE || len != PAGE) {
                user_log("error: used entry %u: id %u len %u", last_used, id, len);
                return 0;
            }
            page = slot_page[id];
            if (blk) {
                const uint64_t *p = (const uint64_t *)(DATA_START + page * PAGE);
                uint64_t block = ((const uint64_t *)BLOCK_TABLE)[page];

                for (unsigned w = 0; w < PAGE / 8; w++) {
                    if (p[w] != blk_pattern(block, w)) {
                        user_log("error: page %lu: word %u of block %lu is 0x%lx", page, w,
                                 block, p[w]);
                        return 0;
                    }
                }
            }
            hashes[page] = hash_page(page);
            state[page] = ST_DONE;
            last_used++;
            in_flight--;
            done++;
            if (stopping)
                continue;
            /* The next page not in flight (the ring is smaller than the pages). */
            while (state[cursor] == ST_IN_FLIGHT)
                cursor = (cursor + 1) % nr_pages;
            post((uint16_t)id, cursor);
            if (++cursor == nr_pages) {
                cursor = 0;
                passes++;
            }
            /*
             * Four times a pass: a page whose write was lost must be seen
             * before the device overwrites it again.
             */
            if (cursor % (nr_pages / 4) == 0) {
                uint64_t bad = verify();

                if (bad) {
                    user_log("error: pass %lu: page %lu (0x%lx) differs from its hash",
                             passes, bad - 1, DATA_START + (bad - 1) * PAGE);
                    return 0;
                }
            }
            in_flight++;
            posted++;
        }
        if (posted)
            mmio_write16(notify, 0);    /* the queue index: the doorbell */
        if (now - last_report >= second) {
            user_log("progress: %lu pages filled, %lu passes", done, passes);
            last_report = now;
        }
        if (!stopping && now - start >= run_seconds * second)
            stopping = 1;
        if (now - start >= (run_seconds + 5) * second) {
            user_log("error: %u requests still in flight", in_flight);
            return 0;
        }
    }
    if (verify()) {
        user_log("error: final check failed");
        return 0;
    }
    return done;
}

static void setup(void)
{
    const AcpiHeader *mcfg = acpi_find_table("MCFG");
    uintptr_t common = 0;
    uint32_t mult = 0, cap;
    unsigned slot = 32;

    if (!mcfg)
        test_fail("no MCFG table");
    ecam = *(const uint64_t *)((const uint8_t *)mcfg + 44);
    for (unsigned s = 0; s < 32 && slot == 32; s++) {
        if (cfg_read(s, 0) == (blk ? VIRTIO_BLK_ID : VIRTIO_RNG_ID))
            slot = s;
    }
    if (slot == 32)
        test_fail("no %s", blk ? "virtio-blk (run with --disk)" :
                                 "virtio-rng (run with --device virtio-rng)");
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
        if (type == CAP_NOTIFY && !notify) {
            notify = addr;
            mult = cfg_read(slot, cap + 16);
        }
    }
    if (!common || !notify)
        test_fail("virtio capabilities not found");
    mmio_write8(common + STATUS, 0);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER);
    mmio_write32(common + GFSELECT, 0);
    mmio_write32(common + GF, 0);
    mmio_write32(common + GFSELECT, 1);
    mmio_write32(common + GF, VERSION_1_HI);
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if (!(mmio_read8(common + STATUS) & S_FEATURES_OK))
        test_fail("FEATURES_OK refused");
    /* No MSI-X: completions are polled at CPL3. */
    mmio_write16(common + MSIX_CONFIG, NO_VECTOR);
    mmio_write16(common + Q_SELECT, 0);
    if (mmio_read16(common + Q_SIZE) < QSIZE)
        test_fail("queue 0 offers %u entries", mmio_read16(common + Q_SIZE));
    mmio_write16(common + Q_SIZE, QSIZE);
    mmio_write16(common + Q_MSIX, NO_VECTOR);
    mmio_write64(common + Q_DESC, (uintptr_t)ring_desc);
    mmio_write64(common + Q_AVAIL, (uintptr_t)&ring_avail);
    mmio_write64(common + Q_USED, (uintptr_t)&ring_used);
    mmio_write16(common + Q_ENABLE, 1);
    notify += mmio_read16(common + Q_NOFF) * mult;
    mmio_write8(common + STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

int main(void)
{
    uint64_t done;

    nr_pages = boot_cmdline_u64("pages", 1024);
    blk = boot_cmdline_u64("blk", 0) != 0;
    nr_slots = blk ? QSIZE / 3 : QSIZE;
    run_seconds = boot_cmdline_u64("seconds", 8);
    tsc_khz = cpu_tsc_khz();
    if (nr_pages <= QSIZE || nr_pages > 16384)
        test_fail("pages must be %u..%u", QSIZE + 1, 16384);
    setup();
    test_log("migrate-virtio: %s, %lu pages from 0x%lx, %u requests in flight, %lu s",
             blk ? "virtio-blk" : "virtio-rng", nr_pages, DATA_START, nr_slots, run_seconds);
    done = user_run(workload, 0);
    if (!done)
        test_fail("a page written by the device was lost");
    test_log("migrate-virtio: %lu pages filled by the device", done);
    test_pass();
}
