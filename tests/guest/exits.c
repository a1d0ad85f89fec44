/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Accesses nobody claims: PIO to ports 0x2f0-0x2ff (1, 2 and 4 bytes,
 * aligned and not) and MMIO to 0xd0000000 in the PCI hole (1-8 bytes).
 * Reads must return all ones, as on real hardware, writes must be
 * dropped, and the guest must keep running.
 *
 * Parameter "mmio-any": report unassigned MMIO reads but accept any value
 * (QEMU 7.2 returns 0 for them; vireo-vmm, like real hardware, all ones).
 */
#include "lib/guest.h"

const char test_name[] = "exits";

#define EXITS_PORT_FIRST        0x2f0
#define EXITS_PORT_END          0x300
#define EXITS_MMIO              0xd0000000UL

static unsigned exits_bad;
static unsigned exits_mmio_bad;
static bool exits_mmio_any;
static unsigned exits_reads;
static unsigned exits_writes;

static void exits_check(const char *what, uint64_t addr, unsigned size,
                        uint64_t got)
{
    uint64_t want = size == 8 ? ~0ULL : (1ULL << (8 * size)) - 1;

    exits_reads++;
    if (got == want) {
        return;
    }
    if (exits_bad + exits_mmio_bad < 8) {
        test_log("exits: %s read of %u bytes at 0x%lx returned 0x%lx",
                 what, size, addr, got);
    }
    if (exits_mmio_any && what[0] == 'M') {
        exits_mmio_bad++;
    } else {
        exits_bad++;
    }
}

static void exits_pio_reads(void)
{
    for (uint16_t p = EXITS_PORT_FIRST; p < EXITS_PORT_END; p++) {
        exits_check("PIO", p, 1, io_in8(p));
    }
    for (uint16_t p = EXITS_PORT_FIRST; p < EXITS_PORT_END - 1; p += 3) {
        exits_check("PIO", p, 2, io_in16(p));
    }
    for (uint16_t p = EXITS_PORT_FIRST; p < EXITS_PORT_END - 3; p += 5) {
        exits_check("PIO", p, 4, io_in32(p));
    }
}

int main(void)
{
    const char *val;
    size_t len;

    exits_mmio_any = boot_cmdline_find("mmio-any", &val, &len);
    exits_pio_reads();

    for (uint16_t p = EXITS_PORT_FIRST; p < EXITS_PORT_END; p += 4) {
        io_out8(p, 0x5a);
        io_out16(p + 1, 0xa55a);
        io_out32(p, 0x12345678);
        exits_writes += 3;
    }
    /* Writes must not have made anything appear. */
    exits_pio_reads();

    uintptr_t m = EXITS_MMIO;
    exits_check("MMIO", m, 1, mmio_read8(m));
    exits_check("MMIO", m + 1, 1, mmio_read8(m + 1));
    exits_check("MMIO", m + 2, 2, mmio_read16(m + 2));
    exits_check("MMIO", m + 4, 4, mmio_read32(m + 4));
    exits_check("MMIO", m + 8, 8, mmio_read64(m + 8));
    exits_check("MMIO", m + 0xffc, 4, mmio_read32(m + 0xffc));
    mmio_write8(m, 0x5a);
    mmio_write16(m + 2, 0xa55a);
    mmio_write32(m + 4, 0x12345678);
    mmio_write64(m + 8, 0x0123456789abcdefULL);
    exits_writes += 4;
    exits_check("MMIO", m, 1, mmio_read8(m));
    exits_check("MMIO", m + 4, 4, mmio_read32(m + 4));
    exits_check("MMIO", m + 8, 8, mmio_read64(m + 8));

    test_log("exits: %u reads, %u writes to unassigned PIO/MMIO, "
             "%u reads not all-ones", exits_reads, exits_writes,
             exits_bad + exits_mmio_bad);
    if (exits_mmio_bad) {
        test_log("exits: %u MMIO reads not all-ones accepted (mmio-any)",
                 exits_mmio_bad);
    }
    if (exits_bad) {
        test_fail("%u unassigned reads did not return all ones", exits_bad);
    }
    return 0;
}
