/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "acpi.h"

#include "boot.h"
#include "io.h"
#include "mmio.h"
#include "test.h"
#include "util.h"

typedef struct __attribute__((packed)) {
    char sig[8];
    uint8_t checksum;
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt;
    uint32_t length;
    uint64_t xsdt;
    uint8_t ext_checksum;
    uint8_t reserved[3];
} AcpiRsdp;

/* FADT offsets (ACPI 6.x, table 5.9). */
#define FADT_DSDT               40
#define FADT_SCI_INT            46
#define FADT_SMI_CMD            48
#define FADT_ACPI_ENABLE        52
#define FADT_PM1A_EVT_BLK       56
#define FADT_PM1A_CNT_BLK       64
#define FADT_PM1_EVT_LEN        88
#define FADT_FLAGS              112
#define FADT_RESET_REG          116
#define FADT_RESET_VALUE        128
#define FADT_X_DSDT             140
#define FADT_X_PM1A_EVT_BLK     148
#define FADT_X_PM1A_CNT_BLK     172
#define FADT_SLEEP_CONTROL_REG  244

#define MADT_ENTRIES            44
#define MADT_LAPIC              0
#define MADT_IOAPIC             1
#define MADT_ISO                2
#define MADT_X2APIC             9

#define RSDP_SIG                0x2052545020445352ULL   /* "RSD PTR " */

static bool acpi_scanned;
static uint64_t acpi_rsdp_addr;
static bool acpi_fadt_done;
static bool acpi_fadt_found;
static AcpiFadt acpi_fadt_value;

static uint8_t acpi_sum(const void *p, uint32_t len)
{
    const uint8_t *b = p;
    uint8_t s = 0;

    for (uint32_t i = 0; i < len; i++) {
        s += b[i];
    }
    return s;
}

static bool acpi_rsdp_valid(uint64_t addr)
{
    const AcpiRsdp *r = (const AcpiRsdp *)(uintptr_t)addr;

    return addr && addr < 0x100000000ULL &&
           *(const uint64_t *)r->sig == RSDP_SIG && acpi_sum(r, 20) == 0;
}

uint64_t acpi_rsdp(void)
{
    if (acpi_scanned) {
        return acpi_rsdp_addr;
    }
    acpi_scanned = true;
    uint64_t given = boot_rsdp();
    if (acpi_rsdp_valid(given)) {
        acpi_rsdp_addr = given;
        return given;
    }
    if (given) {
        test_fail("boot info RSDP address 0x%lx holds no valid RSDP", given);
    }
    /* ~8k iterations; only when the boot info has no address. */
    for (uintptr_t a = 0xe0000; a < 0x100000; a += 16) {
        if (*(const uint64_t *)a == RSDP_SIG && acpi_rsdp_valid(a)) {
            acpi_rsdp_addr = a;
            break;
        }
    }
    return acpi_rsdp_addr;
}

static const AcpiHeader *acpi_checked(uint64_t addr, const char *sig)
{
    if (!addr || addr >= 0x100000000ULL) {
        return NULL;
    }
    const AcpiHeader *h = (const AcpiHeader *)(uintptr_t)addr;
    if (sig && memcmp(h->sig, sig, 4)) {
        return NULL;
    }
    if (h->length < sizeof(*h) || acpi_sum(h, h->length) != 0) {
        test_fail("ACPI table %.4s at 0x%lx: bad length %u or checksum",
                  h->sig, addr, h->length);
    }
    return h;
}

const AcpiHeader *acpi_find_table(const char *sig)
{
    uint64_t rsdp_addr = acpi_rsdp();

    if (!rsdp_addr) {
        return NULL;
    }
    const AcpiRsdp *rsdp = (const AcpiRsdp *)(uintptr_t)rsdp_addr;
    const AcpiHeader *root;
    unsigned entry_size;

    if (rsdp->revision >= 2 && rsdp->xsdt) {
        root = acpi_checked(rsdp->xsdt, "XSDT");
        entry_size = 8;
    } else {
        root = acpi_checked(rsdp->rsdt, "RSDT");
        entry_size = 4;
    }
    if (!root) {
        test_fail("RSDP at 0x%lx points at no XSDT/RSDT", rsdp_addr);
    }
    unsigned n = (root->length - sizeof(*root)) / entry_size;
    const uint8_t *entries = (const uint8_t *)(root + 1);
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr = entry_size == 8
            ? *(const uint64_t *)(entries + 8 * i)
            : *(const uint32_t *)(entries + 4 * i);
        if (addr && addr < 0x100000000ULL &&
            !memcmp(((const AcpiHeader *)(uintptr_t)addr)->sig, sig, 4)) {
            return acpi_checked(addr, sig);
        }
    }
    return NULL;
}

static AcpiGas acpi_gas_io(uint32_t port, uint8_t bits)
{
    return (AcpiGas) { .space = ACPI_GAS_IO, .bit_width = bits,
                       .address = port };
}

const AcpiFadt *acpi_fadt(void)
{
    if (acpi_fadt_done) {
        return acpi_fadt_found ? &acpi_fadt_value : NULL;
    }
    acpi_fadt_done = true;
    const AcpiHeader *h = acpi_find_table("FACP");
    if (!h) {
        return NULL;
    }
    const uint8_t *t = (const uint8_t *)h;
    uint32_t len = h->length;
    AcpiFadt *f = &acpi_fadt_value;

#define FADT_HAS(off, size) (len >= (off) + (size))
#define FADT_U8(off) (FADT_HAS(off, 1) ? t[off] : 0)
#define FADT_U16(off) (FADT_HAS(off, 2) ? *(const uint16_t *)(t + (off)) : 0)
#define FADT_U32(off) (FADT_HAS(off, 4) ? *(const uint32_t *)(t + (off)) : 0)
#define FADT_U64(off) (FADT_HAS(off, 8) ? *(const uint64_t *)(t + (off)) : 0)
#define FADT_GAS(off) (FADT_HAS(off, 12) ? *(const AcpiGas *)(t + (off)) \
                                         : (AcpiGas) { 0 })

    f->flags = FADT_U32(FADT_FLAGS);
    f->sci_int = FADT_U16(FADT_SCI_INT);
    f->smi_cmd = FADT_U32(FADT_SMI_CMD);
    f->acpi_enable = FADT_U8(FADT_ACPI_ENABLE);
    f->pm1_evt_len = FADT_U8(FADT_PM1_EVT_LEN);
    f->pm1a_evt = FADT_GAS(FADT_X_PM1A_EVT_BLK);
    if (!f->pm1a_evt.address) {
        f->pm1a_evt = acpi_gas_io(FADT_U32(FADT_PM1A_EVT_BLK), 32);
    }
    f->pm1a_cnt = FADT_GAS(FADT_X_PM1A_CNT_BLK);
    if (!f->pm1a_cnt.address) {
        f->pm1a_cnt = acpi_gas_io(FADT_U32(FADT_PM1A_CNT_BLK), 16);
    }
    f->reset_reg = FADT_GAS(FADT_RESET_REG);
    f->reset_value = FADT_U8(FADT_RESET_VALUE);
    f->sleep_ctl = FADT_GAS(FADT_SLEEP_CONTROL_REG);
    f->dsdt = FADT_U64(FADT_X_DSDT);
    if (!f->dsdt) {
        f->dsdt = FADT_U32(FADT_DSDT);
    }
    acpi_fadt_found = true;
    return f;
}

/* Calls fn for each MADT entry; stops when fn returns true. */
static bool acpi_madt_walk(bool (*fn)(const uint8_t *e, void *opaque),
                           void *opaque)
{
    const AcpiHeader *h = acpi_find_table("APIC");

    if (!h) {
        return false;
    }
    const uint8_t *p = (const uint8_t *)h + MADT_ENTRIES;
    const uint8_t *end = (const uint8_t *)h + h->length;
    while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
        if (fn(p, opaque)) {
            return true;
        }
        p += p[1];
    }
    return false;
}

typedef struct {
    uint32_t *ids;
    unsigned max;
    unsigned n;
} MadtCpus;

static bool acpi_madt_cpu(const uint8_t *e, void *opaque)
{
    MadtCpus *c = opaque;
    uint32_t id, flags;

    if (e[0] == MADT_LAPIC && e[1] >= 8) {
        id = e[3];
        flags = *(const uint32_t *)(e + 4);
    } else if (e[0] == MADT_X2APIC && e[1] >= 16) {
        id = *(const uint32_t *)(e + 4);
        flags = *(const uint32_t *)(e + 8);
    } else {
        return false;
    }
    if (flags & 1) {                    /* enabled */
        if (c->n < c->max) {
            c->ids[c->n] = id;
        }
        c->n++;
    }
    return false;
}

unsigned acpi_madt_cpus(uint32_t *apic_ids, unsigned max)
{
    MadtCpus c = { apic_ids, max, 0 };

    acpi_madt_walk(acpi_madt_cpu, &c);
    return c.n;
}

static bool acpi_madt_ioapic(const uint8_t *e, void *opaque)
{
    if (e[0] == MADT_IOAPIC && e[1] >= 12) {
        *(uint64_t *)opaque = *(const uint32_t *)(e + 4);
        return true;
    }
    return false;
}

uint64_t acpi_ioapic_base(void)
{
    static bool done;
    static uint64_t base;

    if (!done) {
        done = true;
        acpi_madt_walk(acpi_madt_ioapic, &base);
    }
    return base;
}

typedef struct {
    uint8_t irq;
    uint32_t gsi;
    uint16_t flags;
} MadtIso;

static bool acpi_madt_iso(const uint8_t *e, void *opaque)
{
    MadtIso *iso = opaque;

    if (e[0] == MADT_ISO && e[1] >= 10 && e[2] == 0 && e[3] == iso->irq) {
        iso->gsi = *(const uint32_t *)(e + 4);
        iso->flags = *(const uint16_t *)(e + 8);
        return true;
    }
    return false;
}

bool acpi_isa_override(uint8_t irq, uint32_t *gsi, uint16_t *mps_flags)
{
    MadtIso iso = { .irq = irq };

    if (!acpi_madt_walk(acpi_madt_iso, &iso)) {
        return false;
    }
    *gsi = iso.gsi;
    *mps_flags = iso.flags;
    return true;
}

/* AML: DefName := NameOp NameString DataRefObject; DefPackage := 0x12 ... */
#define AML_NAME_OP     0x08
#define AML_PACKAGE_OP  0x12
#define AML_ZERO_OP     0x00
#define AML_ONE_OP      0x01
#define AML_BYTE_PREFIX 0x0a

int acpi_s5_slp_typ(void)
{
    const AcpiFadt *f = acpi_fadt();

    if (!f) {
        return -1;
    }
    const AcpiHeader *dsdt = acpi_checked(f->dsdt, "DSDT");
    if (!dsdt) {
        return -1;
    }
    const uint8_t *aml = (const uint8_t *)(dsdt + 1);
    uint32_t len = dsdt->length - sizeof(*dsdt);

    for (uint32_t i = 1; i + 8 < len; i++) {
        if (aml[i] != '_' || aml[i + 1] != 'S' || aml[i + 2] != '5' ||
            aml[i + 3] != '_') {
            continue;
        }
        /* NameOp "_S5_" or NameOp "\_S5_". */
        bool named = aml[i - 1] == AML_NAME_OP ||
                     (i >= 2 && aml[i - 1] == '\\' &&
                      aml[i - 2] == AML_NAME_OP);
        if (!named || aml[i + 4] != AML_PACKAGE_OP) {
            continue;
        }
        uint32_t p = i + 5;
        p += 1 + (aml[p] >> 6);         /* PkgLength: lead byte + extra bytes */
        p += 1;                         /* NumElements */
        if (p + 1 >= len) {
            return -1;
        }
        switch (aml[p]) {
        case AML_ZERO_OP:
            return 0;
        case AML_ONE_OP:
            return 1;
        case AML_BYTE_PREFIX:
            return aml[p + 1];
        default:
            return -1;
        }
    }
    return -1;
}

uint32_t acpi_gas_read(const AcpiGas *gas, unsigned offset, unsigned bytes)
{
    uint64_t a = gas->address + offset;

    if (gas->space == ACPI_GAS_IO) {
        switch (bytes) {
        case 1:
            return io_in8(a);
        case 2:
            return io_in16(a);
        default:
            return io_in32(a);
        }
    }
    switch (bytes) {
    case 1:
        return mmio_read8(a);
    case 2:
        return mmio_read16(a);
    default:
        return mmio_read32(a);
    }
}

void acpi_gas_write(const AcpiGas *gas, unsigned offset, unsigned bytes,
                    uint32_t v)
{
    uint64_t a = gas->address + offset;

    if (gas->space == ACPI_GAS_IO) {
        switch (bytes) {
        case 1:
            io_out8(a, v);
            break;
        case 2:
            io_out16(a, v);
            break;
        default:
            io_out32(a, v);
            break;
        }
        return;
    }
    switch (bytes) {
    case 1:
        mmio_write8(a, v);
        break;
    case 2:
        mmio_write16(a, v);
        break;
    default:
        mmio_write32(a, v);
        break;
    }
}

bool acpi_enable(void)
{
    const AcpiFadt *f = acpi_fadt();

    if (!f || !f->pm1a_cnt.address) {
        return false;
    }
    if (acpi_gas_read(&f->pm1a_cnt, 0, 2) & ACPI_PM1_CNT_SCI_EN) {
        return true;
    }
    if (!f->smi_cmd || !f->acpi_enable) {
        return false;
    }
    io_out8(f->smi_cmd, f->acpi_enable);
    for (unsigned i = 0; i < 10000; i++) {
        if (acpi_gas_read(&f->pm1a_cnt, 0, 2) & ACPI_PM1_CNT_SCI_EN) {
            return true;
        }
        util_pause();
    }
    return false;
}

void acpi_poweroff(void)
{
    const AcpiFadt *f = acpi_fadt();

    if (!f) {
        return;
    }
    int typ = acpi_s5_slp_typ();
    if (typ < 0) {
        typ = 5;                        /* docs/machine.md */
    }
    if (!(f->flags & ACPI_FADT_HW_REDUCED) && f->pm1a_cnt.address) {
        uint32_t v = acpi_gas_read(&f->pm1a_cnt, 0, 2);
        v &= ~ACPI_PM1_CNT_SLP_TYP(7);
        v |= ACPI_PM1_CNT_SLP_TYP(typ) | ACPI_PM1_CNT_SLP_EN;
        acpi_gas_write(&f->pm1a_cnt, 0, 2, v);
    } else if (f->sleep_ctl.address) {
        /* Sleep control register: SLP_TYP bits 4:2, SLP_EN bit 5. */
        acpi_gas_write(&f->sleep_ctl, 0, 1, ((typ & 7) << 2) | (1 << 5));
    }
}

bool acpi_reset(void)
{
    const AcpiFadt *f = acpi_fadt();

    if (!f || !(f->flags & ACPI_FADT_RESET_REG_SUP) || !f->reset_reg.address) {
        return false;
    }
    acpi_gas_write(&f->reset_reg, 0, 1, f->reset_value);
    return true;
}
