/* SPDX-License-Identifier: GPL-2.0-or-later */
/* ACPI table construction (ACPI 6.4). */
#include <string.h>

#include "vireo/acpi.h"
#include "vireo/aml.h"
#include "vireo/layout.h"
#include "vireo/pci-host.h"
#include "vireo/util.h"

#define ACPI_HEADER_LEN 36
#define ACPI_RSDP_LEN 36
#define ACPI_FACS_LEN 64
#define ACPI_OEM_ID "VIREO "
#define ACPI_OEM_TABLE_ID "VIREOVMM"
#define ACPI_CREATOR_ID "VIRE"

/* FADT fixed feature flags */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5)     /* set: no fixed sleep button */
#define FADT_F_FIXED_RTC (1u << 6)      /* set: no RTC wake status in PM1 */
#define FADT_F_RESET_REG_SUP (1u << 10)
/* IA-PC boot architecture flags */
#define FADT_IAPC_LEGACY_DEVICES (1u << 0)
#define FADT_IAPC_8042 (1u << 1)
#define FADT_IAPC_VGA_NOT_PRESENT (1u << 2)

/* Generic Address Structure */
#define GAS_SPACE_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* MADT */
#define MADT_LOCAL_APIC 0
#define MADT_IO_APIC 1
#define MADT_INT_OVERRIDE 2
#define MADT_LOCAL_APIC_NMI 4
#define MADT_PCAT_COMPAT 1
#define MADT_ENABLED 1
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_LEVEL 0xc

typedef struct TableBuf {
    GByteArray *data;           /* everything from LAYOUT_ACPI_START */
} TableBuf;

static size_t tb_alloc(TableBuf *tb, size_t len, size_t align)
{
    size_t old = tb->data->len;
    size_t off = VIREO_ALIGN_UP(old, align);

    g_byte_array_set_size(tb->data, off + len);
    memset(tb->data->data + old, 0, off + len - old);
    return off;
}

static uint8_t *at(TableBuf *tb, size_t off)
{
    return tb->data->data + off;
}

static void put(TableBuf *tb, size_t off, unsigned len, uint64_t v)
{
    vireo_le_store(at(tb, off), len, v);
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    return -sum;
}

static void header(TableBuf *tb, size_t off, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(at(tb, off), sig, 4);
    put(tb, off + 4, 4, len);
    at(tb, off)[8] = rev;
    memcpy(at(tb, off) + 10, ACPI_OEM_ID, 6);
    memcpy(at(tb, off) + 16, ACPI_OEM_TABLE_ID, 8);
    put(tb, off + 24, 4, 1);                    /* OEM revision */
    memcpy(at(tb, off) + 28, ACPI_CREATOR_ID, 4);
    put(tb, off + 32, 4, 1);                    /* creator revision */
}

static void finish(TableBuf *tb, size_t off)
{
    uint32_t len = vireo_le_load(at(tb, off) + 4, 4);
    at(tb, off)[9] = 0;
    at(tb, off)[9] = checksum(at(tb, off), len);
}

static void gas(TableBuf *tb, size_t off, uint8_t width, uint8_t access, uint64_t addr)
{
    at(tb, off)[0] = GAS_SPACE_IO;
    at(tb, off)[1] = width;
    at(tb, off)[2] = 0;
    at(tb, off)[3] = access;
    put(tb, off + 4, 8, addr);
}

/* One ISA device with a fixed I/O window and IRQ, described as firmware does. */
static Aml *isa_device(const char *name, const char *hid, Aml *resources)
{
    Aml *dev = aml_new();

    aml_append(dev, aml_name_decl("_HID", aml_eisaid(hid)));
    aml_append(dev, aml_name_decl("_CRS", aml_resource_template(resources)));
    return aml_device(name, dev);
}

/*
 * The legacy devices, so an OS enumerates them from ACPI rather than by
 * probing: Linux binds its 8250, RTC and i8042 drivers through these, and
 * with no PS/2 mouse described it does not probe for one.
 */
static Aml *legacy_devices(void)
{
    Aml *sb = aml_new();
    Aml *res;

    res = aml_append(aml_io(LAYOUT_PORT_COM1, LAYOUT_PORT_COM1, 1, LAYOUT_PORT_UART_LEN),
                     aml_irq_no_flags(LAYOUT_IRQ_COM1));
    aml_append(sb, isa_device("COM1", "PNP0501", res));
    res = aml_append(aml_io(LAYOUT_PORT_RTC, LAYOUT_PORT_RTC, 1, LAYOUT_PORT_RTC_LEN),
                     aml_irq_no_flags(LAYOUT_IRQ_RTC));
    aml_append(sb, isa_device("RTC", "PNP0B00", res));
    res = aml_append(aml_io(LAYOUT_PORT_I8042_DATA, LAYOUT_PORT_I8042_DATA, 1, 1),
                     aml_io(LAYOUT_PORT_I8042_CMD, LAYOUT_PORT_I8042_CMD, 1, 1));
    aml_append(res, aml_irq_no_flags(LAYOUT_IRQ_I8042));
    aml_append(sb, isa_device("KBD", "PNP0303", res));
    return sb;
}

/* _PRT: each slot's INTA#-INTD# on the GSI pci_host_intx_gsi() chooses. */
static Aml *pci_routing_table(void)
{
    g_autoptr(GPtrArray) entries = g_ptr_array_new();

    for (unsigned slot = 1; slot < PCI_HOST_SLOTS; slot++) {
        for (unsigned pin = 0; pin < 4 && entries->len < 0xff; pin++) {
            g_ptr_array_add(entries, aml_package(4, aml_int((slot << 16) | 0xffff),
                                                 aml_int(pin), aml_int(0),
                                                 aml_int(pci_host_intx_gsi(slot, pin))));
        }
    }
    return aml_package_from(entries);
}

/* The PCI Express root bridge: bus 0, its windows, and INTx routing. */
static Aml *pci_root_bridge(const AcpiConfig *cfg)
{
    Aml *dev = aml_new();
    Aml *crs = aml_new();
    uint64_t mem64 = layout_pci_mmio64_start(cfg->ram_size);

    aml_append(dev, aml_name_decl("_HID", aml_eisaid("PNP0A08")));
    aml_append(dev, aml_name_decl("_CID", aml_eisaid("PNP0A03")));
    aml_append(dev, aml_name_decl("_SEG", aml_int(0)));
    aml_append(dev, aml_name_decl("_BBN", aml_int(0)));
    aml_append(dev, aml_name_decl("_UID", aml_int(0)));
    aml_append(crs, aml_word_bus_number(0, 0));
    /* The configuration ports, then I/O below and above them. */
    aml_append(crs, aml_io(0xcf8, 0xcf8, 1, 8));
    aml_append(crs, aml_word_io(0x0000, 0x0cf7));
    aml_append(crs, aml_word_io(0x0d00, 0xffff));
    aml_append(crs, aml_dword_memory(LAYOUT_PCI_MMIO32_START, LAYOUT_PCI_MMIO32_END - 1));
    aml_append(crs, aml_qword_memory(mem64, mem64 + LAYOUT_PCI_MMIO64_LEN - 1));
    aml_append(dev, aml_name_decl("_CRS", aml_resource_template(crs)));
    aml_append(dev, aml_name_decl("_PRT", pci_routing_table()));
    return aml_device("PCI0", dev);
}

static size_t build_dsdt(TableBuf *tb, const AcpiConfig *cfg)
{
    Aml *body = aml_new();
    Aml *sb;
    size_t off;

    /* SLP_TYPa/SLP_TYPb for S5: what the guest writes to PM1a_CNT to power off. */
    aml_append(body, aml_name_decl("\\_S5", aml_package(4, aml_int(LAYOUT_ACPI_S5_SLP_TYP),
                                                         aml_int(LAYOUT_ACPI_S5_SLP_TYP),
                                                         aml_int(0), aml_int(0))));
    sb = legacy_devices();
    aml_append(sb, pci_root_bridge(cfg));
    aml_append(body, aml_scope("\\_SB", sb));
    off = tb_alloc(tb, ACPI_HEADER_LEN + body->len, 16);
    header(tb, off, "DSDT", ACPI_HEADER_LEN + body->len, 2);
    memcpy(at(tb, off + ACPI_HEADER_LEN), body->data, body->len);
    finish(tb, off);
    g_byte_array_unref(body);
    return off;
}

static size_t build_facs(TableBuf *tb)
{
    size_t off = tb_alloc(tb, ACPI_FACS_LEN, 64);

    memcpy(at(tb, off), "FACS", 4);
    put(tb, off + 4, 4, ACPI_FACS_LEN);
    at(tb, off)[32] = 2;                        /* version */
    return off;
}

static size_t build_fadt(TableBuf *tb, uint64_t facs, uint64_t dsdt)
{
    size_t off = tb_alloc(tb, ACPI_FADT_LEN, 16);

    header(tb, off, "FACP", ACPI_FADT_LEN, ACPI_FADT_REVISION);
    put(tb, off + 40, 4, dsdt);
    put(tb, off + ACPI_FADT_SCI_INT, 2, LAYOUT_IRQ_SCI);
    /* SMI_CMD 0: ACPI is always enabled, there is no mode switch. */
    put(tb, off + ACPI_FADT_PM1A_EVT_BLK, 4, LAYOUT_PORT_PM1A_EVT);
    put(tb, off + ACPI_FADT_PM1A_CNT_BLK, 4, LAYOUT_PORT_PM1A_CNT);
    put(tb, off + ACPI_FADT_PM_TMR_BLK, 4, LAYOUT_PORT_PM_TMR);
    at(tb, off)[88] = 4;                        /* PM1_EVT_LEN */
    at(tb, off)[89] = 2;                        /* PM1_CNT_LEN */
    at(tb, off)[91] = 4;                        /* PM_TMR_LEN */
    put(tb, off + 96, 2, 0xfff);                /* P_LVL2_LAT: C2 not supported */
    put(tb, off + 98, 2, 0xfff);                /* P_LVL3_LAT: C3 not supported */
    at(tb, off)[108] = 0x32;                    /* CENTURY: CMOS register */
    put(tb, off + 109, 2, FADT_IAPC_LEGACY_DEVICES | FADT_IAPC_8042 |
        FADT_IAPC_VGA_NOT_PRESENT);
    /* PWR_BUTTON clear: the power button is the fixed-feature one in PM1. */
    put(tb, off + ACPI_FADT_FLAGS, 4, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON |
        FADT_F_FIXED_RTC | FADT_F_RESET_REG_SUP);
    gas(tb, off + ACPI_FADT_RESET_REG, 8, GAS_ACCESS_BYTE, LAYOUT_PORT_RESET);
    at(tb, off)[ACPI_FADT_RESET_VALUE] = 0x06;  /* full reset */
    at(tb, off)[131] = 4;                       /* FADT minor version: 6.4 */
    put(tb, off + ACPI_FADT_X_FIRMWARE_CTRL, 8, facs);
    put(tb, off + ACPI_FADT_X_DSDT, 8, dsdt);
    gas(tb, off + 148, 32, GAS_ACCESS_WORD, LAYOUT_PORT_PM1A_EVT);   /* X_PM1a_EVT_BLK */
    gas(tb, off + 172, 16, GAS_ACCESS_WORD, LAYOUT_PORT_PM1A_CNT);   /* X_PM1a_CNT_BLK */
    gas(tb, off + 208, 32, GAS_ACCESS_DWORD, LAYOUT_PORT_PM_TMR);    /* X_PM_TMR_BLK */
    finish(tb, off);
    return off;
}

/* MCFG: where ECAM is (segment 0, bus 0 only). */
static size_t build_mcfg(TableBuf *tb)
{
    size_t len = ACPI_HEADER_LEN + 8 + 16;
    size_t off = tb_alloc(tb, len, 16);
    size_t p = off + ACPI_HEADER_LEN + 8;

    header(tb, off, "MCFG", len, 1);
    put(tb, p, 8, LAYOUT_PCI_ECAM);
    put(tb, p + 8, 2, 0);                       /* segment */
    at(tb, p)[10] = 0;                          /* first bus */
    at(tb, p)[11] = 0;                          /* last bus */
    finish(tb, off);
    return off;
}

static size_t build_madt(TableBuf *tb, unsigned nr_cpus)
{
    size_t len = ACPI_HEADER_LEN + 8 + nr_cpus * 8 + 12 + 2 * 10 + 6;
    size_t off = tb_alloc(tb, len, 16);
    size_t p = off + ACPI_HEADER_LEN;

    header(tb, off, "APIC", len, 5);
    put(tb, p, 4, LAYOUT_LAPIC_BASE);
    put(tb, p + 4, 4, MADT_PCAT_COMPAT);        /* 8259s present */
    p += 8;
    for (unsigned i = 0; i < nr_cpus; i++, p += 8) {
        at(tb, p)[0] = MADT_LOCAL_APIC;
        at(tb, p)[1] = 8;
        at(tb, p)[2] = i;                       /* ACPI processor UID */
        at(tb, p)[3] = i;                       /* APIC ID */
        put(tb, p + 4, 4, MADT_ENABLED);
    }
    at(tb, p)[0] = MADT_IO_APIC;
    at(tb, p)[1] = 12;
    at(tb, p)[2] = 0;                           /* IOAPIC ID */
    put(tb, p + 4, 4, LAYOUT_IOAPIC_BASE);
    put(tb, p + 8, 4, 0);                       /* GSI base */
    p += 12;
    /* ISA IRQ 0 (the PIT) arrives on IOAPIC pin 2, as on every PC. */
    at(tb, p)[0] = MADT_INT_OVERRIDE;
    at(tb, p)[1] = 10;
    at(tb, p)[2] = 0;
    at(tb, p)[3] = 0;
    put(tb, p + 4, 4, 2);
    put(tb, p + 8, 2, 0);
    p += 10;
    /* The SCI is level-triggered, active high. */
    at(tb, p)[0] = MADT_INT_OVERRIDE;
    at(tb, p)[1] = 10;
    at(tb, p)[2] = 0;
    at(tb, p)[3] = LAYOUT_IRQ_SCI;
    put(tb, p + 4, 4, LAYOUT_IRQ_SCI);
    put(tb, p + 8, 2, MPS_INTI_ACTIVE_HIGH | MPS_INTI_LEVEL);
    p += 10;
    at(tb, p)[0] = MADT_LOCAL_APIC_NMI;
    at(tb, p)[1] = 6;
    at(tb, p)[2] = 0xff;                        /* all processors */
    put(tb, p + 3, 2, 0);
    at(tb, p)[5] = 1;                           /* LINT1 */
    finish(tb, off);
    return off;
}

gboolean acpi_build(const GuestMemory *mem, const AcpiConfig *cfg, uint64_t *rsdp,
                    GError **error)
{
    TableBuf tb = { .data = g_byte_array_new() };
    size_t rsdp_off, xsdt, fadt, facs, dsdt, madt, mcfg;
    uint64_t base = LAYOUT_ACPI_START;
    gboolean ok;

    rsdp_off = tb_alloc(&tb, ACPI_RSDP_LEN, 16);
    dsdt = build_dsdt(&tb, cfg);
    facs = build_facs(&tb);
    fadt = build_fadt(&tb, base + facs, base + dsdt);
    madt = build_madt(&tb, cfg->nr_cpus);
    mcfg = build_mcfg(&tb);
    xsdt = tb_alloc(&tb, ACPI_HEADER_LEN + 3 * 8, 16);
    header(&tb, xsdt, "XSDT", ACPI_HEADER_LEN + 3 * 8, 1);
    put(&tb, xsdt + ACPI_HEADER_LEN, 8, base + fadt);
    put(&tb, xsdt + ACPI_HEADER_LEN + 8, 8, base + madt);
    put(&tb, xsdt + ACPI_HEADER_LEN + 16, 8, base + mcfg);
    finish(&tb, xsdt);

    memcpy(at(&tb, rsdp_off), "RSD PTR ", 8);
    memcpy(at(&tb, rsdp_off) + 9, ACPI_OEM_ID, 6);
    at(&tb, rsdp_off)[15] = 2;                  /* revision: ACPI 2.0+ */
    put(&tb, rsdp_off + 20, 4, ACPI_RSDP_LEN);
    put(&tb, rsdp_off + 24, 8, base + xsdt);
    at(&tb, rsdp_off)[8] = checksum(at(&tb, rsdp_off), 20);
    at(&tb, rsdp_off)[32] = checksum(at(&tb, rsdp_off), ACPI_RSDP_LEN);

    ok = tb.data->len <= LAYOUT_ACPI_END - LAYOUT_ACPI_START &&
         guest_memory_write(mem, base, tb.data->data, tb.data->len);
    if (!ok)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "ACPI tables (%u bytes) do not fit at 0x%llx", tb.data->len,
                    LAYOUT_ACPI_START);
    g_byte_array_unref(tb.data);
    *rsdp = base + rsdp_off;
    return ok;
}
