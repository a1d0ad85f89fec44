/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Three resets, one per method, counted in RAM that survives a reset
 * (physical 0x300000, outside every PT_LOAD segment: the image itself is
 * reloaded): boot 1 writes 0x06 to port 0xcf9, boot 2 sends 0xfe to the
 * i8042 (port 0x64), boot 3 writes the FADT's RESET_VALUE to RESET_REG,
 * boot 4 clears the counter and passes.
 */
#include "lib/guest.h"

const char test_name[] = "reset";

#define RESET_RECORD_ADDR       0x300000UL
#define RESET_MAGIC             0x5453525f4f524956ULL   /* "VIRO_RST" */

typedef struct {
    uint64_t magic;
    uint32_t boots;
} ResetRecord;

extern const uint8_t _image_start[], _image_end[];

static volatile ResetRecord *const reset_rec =
    (volatile ResetRecord *)RESET_RECORD_ADDR;

static void reset_fail(const char *how)
{
    reset_rec->magic = 0;
    test_fail("still running 1 s after reset via %s (boot %u)", how,
              reset_rec->boots);
}

static void reset_i8042(void)
{
    /* Wait (bounded) for the input buffer to drain, then pulse reset. */
    for (unsigned i = 0; i < 10000 && (io_in8(0x64) & 0x02); i++) {
        util_pause();
    }
    io_out8(0x64, 0xfe);
}

int main(void)
{
    if ((uintptr_t)_image_end > RESET_RECORD_ADDR &&
        (uintptr_t)_image_start < RESET_RECORD_ADDR + sizeof(ResetRecord)) {
        test_fail("boot counter 0x%lx lies inside the image", RESET_RECORD_ADDR);
    }
    if (reset_rec->magic != RESET_MAGIC) {
        reset_rec->magic = RESET_MAGIC;
        reset_rec->boots = 0;
    }
    unsigned boot = ++reset_rec->boots;

    cpu_cli();
    switch (boot) {
    case 1:
        test_log("reset: boot 1, resetting via port 0xcf9");
        io_out8(0xcf9, 0x06);
        cpu_delay_us(1000000);
        reset_fail("port 0xcf9");
        break;
    case 2:
        test_log("reset: boot 2, resetting via the i8042 (0xfe to port 0x64)");
        reset_i8042();
        cpu_delay_us(1000000);
        reset_fail("i8042");
        break;
    case 3: {
        const AcpiFadt *f = acpi_fadt();
        if (!f) {
            reset_rec->magic = 0;
            test_fail("boot 3: no FADT");
        }
        test_log("reset: boot 3, resetting via FADT RESET_REG (%s 0x%lx <- 0x%x)",
                 f->reset_reg.space == ACPI_GAS_IO ? "port" : "address",
                 f->reset_reg.address, f->reset_value);
        if (!acpi_reset()) {
            reset_rec->magic = 0;
            test_fail("boot 3: FADT has no RESET_REG (flags 0x%x)", f->flags);
        }
        cpu_delay_us(1000000);
        reset_fail("FADT RESET_REG");
        break;
    }
    case 4:
        reset_rec->magic = 0;
        test_log("reset: boot 4, survived 3 resets (boot count %u)", boot);
        return 0;
    default:
        reset_rec->magic = 0;
        test_fail("unexpected boot count %u", boot);
    }
    return 1;
}
