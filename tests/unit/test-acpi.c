/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI tables, e820 map and AML encoding, parsed back the way a guest
 * would: from the RSDP through the XSDT to each table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <glib/gstdio.h>
#include <string.h>

#include "vireo/acpi.h"
#include "vireo/aml.h"
#include "vireo/layout.h"
#include "vireo/util.h"

#include "test-ram.h"

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    while (len--)
        s += *p++;
    return s;
}

static const uint8_t *table(TestRam *r, uint64_t addr, const char *sig)
{
    const uint8_t *t = guest_memory_ptr(&r->mem, addr, 36);
    uint32_t len;

    assert_non_null(t);
    assert_memory_equal(t, sig, 4);
    len = vireo_le_load(t + 4, 4);
    assert_non_null(guest_memory_ptr(&r->mem, addr, len));
    assert_int_equal(sum(t, len), 0);
    return t;
}

static void check_tables(unsigned cpus)
{
    TestRam *r = test_ram_new(2 * LAYOUT_MIB);
    AcpiConfig cfg = { .nr_cpus = cpus };
    uint64_t rsdp_addr;
    const uint8_t *rsdp, *xsdt, *fadt = NULL, *madt = NULL, *dsdt, *facs;
    uint32_t xsdt_len;
    unsigned lapics = 0, overrides = 0;

    assert_true(acpi_build(&r->mem, &cfg, &rsdp_addr, NULL));
    /* Where a guest scanning for it would find it. */
    assert_true(rsdp_addr >= LAYOUT_ACPI_START && rsdp_addr < LAYOUT_ACPI_END);
    assert_int_equal(rsdp_addr % 16, 0);
    rsdp = r->buf + rsdp_addr;
    assert_memory_equal(rsdp, "RSD PTR ", 8);
    assert_int_equal(sum(rsdp, 20), 0);
    assert_int_equal(sum(rsdp, 36), 0);
    assert_int_equal(rsdp[15], 2);

    xsdt = table(r, vireo_le_load(rsdp + 24, 8), "XSDT");
    xsdt_len = vireo_le_load(xsdt + 4, 4);
    for (uint32_t off = 36; off < xsdt_len; off += 8) {
        uint64_t addr = vireo_le_load(xsdt + off, 8);
        const uint8_t *t = guest_memory_ptr(&r->mem, addr, 4);
        if (memcmp(t, "FACP", 4) == 0)
            fadt = table(r, addr, "FACP");
        else if (memcmp(t, "APIC", 4) == 0)
            madt = table(r, addr, "APIC");
    }
    assert_non_null(fadt);
    assert_non_null(madt);

    /* FADT: what the guest needs to power off, reset and see the power button. */
    assert_int_equal(vireo_le_load(fadt + 4, 4), ACPI_FADT_LEN);
    assert_int_equal(fadt[8], ACPI_FADT_REVISION);
    assert_int_equal(vireo_le_load(fadt + ACPI_FADT_SCI_INT, 2), LAYOUT_IRQ_SCI);
    assert_int_equal(vireo_le_load(fadt + ACPI_FADT_PM1A_EVT_BLK, 4), LAYOUT_PORT_PM1A_EVT);
    assert_int_equal(vireo_le_load(fadt + ACPI_FADT_PM1A_CNT_BLK, 4), LAYOUT_PORT_PM1A_CNT);
    assert_int_equal(vireo_le_load(fadt + ACPI_FADT_PM_TMR_BLK, 4), LAYOUT_PORT_PM_TMR);
    assert_int_equal(vireo_le_load(fadt + ACPI_FADT_FLAGS, 4) & (1u << 4), 0); /* power button */
    assert_int_equal(fadt[ACPI_FADT_RESET_REG], 1);                            /* I/O space */
    assert_int_equal(vireo_le_load(fadt + ACPI_FADT_RESET_REG + 4, 8), LAYOUT_PORT_RESET);
    assert_int_equal(fadt[ACPI_FADT_RESET_VALUE], 6);
    dsdt = table(r, vireo_le_load(fadt + ACPI_FADT_X_DSDT, 8), "DSDT");
    assert_int_equal(vireo_le_load(fadt + 40, 4), vireo_le_load(fadt + ACPI_FADT_X_DSDT, 8));
    facs = r->buf + vireo_le_load(fadt + ACPI_FADT_X_FIRMWARE_CTRL, 8);
    assert_memory_equal(facs, "FACS", 4);
    assert_int_equal((facs - r->buf) % 64, 0);

    /* DSDT: \_S5 = Package(4) { 5, 5, 0, 0 } */
    {
        static const uint8_t s5[] = { 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04,
                                      0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
        uint32_t len = vireo_le_load(dsdt + 4, 4);
        assert_non_null(memmem(dsdt + 36, len - 36, s5, sizeof(s5)));
    }

    /* MADT: one enabled local APIC per vCPU with IDs 0..n-1, overrides for IRQ 0 and 9. */
    assert_int_equal(vireo_le_load(madt + 36, 4), LAYOUT_LAPIC_BASE);
    for (uint32_t off = 44; off < vireo_le_load(madt + 4, 4); off += madt[off + 1]) {
        assert_true(madt[off + 1] >= 2);
        if (madt[off] == 0) {
            assert_int_equal(madt[off + 3], lapics);
            assert_int_equal(vireo_le_load(madt + off + 4, 4) & 1, 1);
            lapics++;
        } else if (madt[off] == 1) {
            assert_int_equal(vireo_le_load(madt + off + 4, 4), LAYOUT_IOAPIC_BASE);
        } else if (madt[off] == 2) {
            if (madt[off + 3] == 0)
                assert_int_equal(vireo_le_load(madt + off + 4, 4), 2);
            if (madt[off + 3] == 9)
                assert_int_equal(vireo_le_load(madt + off + 8, 2), 0xd);
            overrides++;
        }
    }
    assert_int_equal(lapics, cpus);
    assert_int_equal(overrides, 2);
    test_ram_free(r);
}

static void test_tables_1cpu(void **unused)
{
    check_tables(1);
}

static void test_tables_64cpus(void **unused)
{
    check_tables(64);
}

/*
 * ACPICA's own disassembler (iasl, Debian's acpica-tools) must read every
 * table without complaint and see the devices we describe.
 */
static void test_tables_iasl(void **unused)
{
    g_autofree char *iasl = g_find_program_in_path("iasl");
    g_autofree char *dir = NULL;
    TestRam *r;
    AcpiConfig cfg = { .nr_cpus = 2 };
    uint64_t rsdp_addr;
    const uint8_t *xsdt, *fadt = NULL;
    g_autoptr(GPtrArray) tables = g_ptr_array_new();
    g_autoptr(GString) all = g_string_new(NULL);

    if (!iasl)
        skip();
    dir = g_dir_make_tmp("vireo-acpi-XXXXXX", NULL);
    r = test_ram_new(2 * LAYOUT_MIB);
    assert_true(acpi_build(&r->mem, &cfg, &rsdp_addr, NULL));
    xsdt = r->buf + vireo_le_load(r->buf + rsdp_addr + 24, 8);
    for (uint32_t off = 36; off < vireo_le_load(xsdt + 4, 4); off += 8) {
        const uint8_t *t = r->buf + vireo_le_load(xsdt + off, 8);
        g_ptr_array_add(tables, (gpointer)t);
        if (memcmp(t, "FACP", 4) == 0)
            fadt = t;
    }
    g_ptr_array_add(tables, r->buf + vireo_le_load(fadt + ACPI_FADT_X_DSDT, 8));
    for (guint i = 0; i < tables->len; i++) {
        const uint8_t *t = g_ptr_array_index(tables, i);
        g_autofree char *name = g_strdup_printf("%s/%.4s.dat", dir, (const char *)t);
        g_autofree char *dsl = g_strdup_printf("%s/%.4s.dsl", dir, (const char *)t);
        g_autofree char *out = NULL, *text = NULL;
        const char *argv[] = { iasl, "-d", name, NULL };
        int status;

        assert_true(g_file_set_contents(name, (const char *)t, vireo_le_load(t + 4, 4), NULL));
        assert_true(g_spawn_sync(dir, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                                 NULL, &out, NULL, &status, NULL));
        if (!g_spawn_check_wait_status(status, NULL))
            fail_msg("iasl -d %.4s failed:\n%s", (const char *)t, out);
        assert_true(g_file_get_contents(dsl, &text, NULL, NULL));
        g_string_append(all, text);
        g_unlink(name);
        g_unlink(dsl);
    }
    g_rmdir(dir);
    for (const char *const *want = (const char *const[]){
             "PNP0501", "PNP0B00", "PNP0303", "Package (0x04)", "Reset Register Supported (V2) : 1",
             "PM1A Control Block Address : 00000604", "Local Apic ID : 01", "[I/O APIC]",
             NULL };
         *want; want++) {
        if (!strstr(all->str, *want))
            fail_msg("iasl's view of the tables lacks '%s'", *want);
    }
    assert_null(strstr(all->str, "**** "));     /* iasl's marker for bad fields */
    test_ram_free(r);
}

static void test_tables_no_room(void **unused)
{
    /* RAM that ends before the ACPI area: a clear error, no write outside RAM. */
    TestRam *r = test_ram_new(0x80000);
    AcpiConfig cfg = { .nr_cpus = 1 };
    uint64_t rsdp;
    g_autoptr(GError) err = NULL;

    assert_false(acpi_build(&r->mem, &cfg, &rsdp, &err));
    assert_non_null(err);
    test_ram_free(r);
}

static void test_e820(void **unused)
{
    LayoutE820Entry map[LAYOUT_E820_MAX];
    unsigned n;
    uint64_t ram = 0;

    n = layout_e820(128 * LAYOUT_MIB, map);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            assert_true(map[i].addr >= map[i - 1].addr + map[i - 1].size);
        if (map[i].type == LAYOUT_E820_RAM)
            ram += map[i].size;
    }
    /* Everything but the legacy hole is usable RAM. */
    assert_int_equal(ram, 128 * LAYOUT_MIB - (LAYOUT_HIGH_MEMORY - LAYOUT_EBDA_START));

    n = layout_e820(4 * LAYOUT_GIB, map);
    assert_int_equal(map[n - 1].type, LAYOUT_E820_RAM);
    assert_int_equal(map[n - 1].addr, LAYOUT_4G);
    assert_int_equal(map[n - 1].size, LAYOUT_GIB);
    assert_int_equal(layout_low_ram(4 * LAYOUT_GIB), 3 * LAYOUT_GIB);
}

static void test_aml_pkglength(void **unused)
{
    /* Bodies around each PkgLength encoding boundary. */
    static const size_t sizes[] = { 0, 10, 61, 62, 63, 64, 4000, 4093, 4094, 5000, 70000 };

    for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
        Aml *body = aml_new();
        Aml *scope;
        size_t total, hdr, bytes;
        uint8_t lead;

        g_byte_array_set_size(body, sizes[i]);
        if (sizes[i])
            memset(body->data, 0xa3, sizes[i]);
        scope = aml_scope("\\_SB", body);
        /* Opcode, PkgLength, 5-byte name, body; PkgLength counts itself on. */
        lead = scope->data[1];
        bytes = (lead >> 6) + 1;
        if (bytes == 1) {
            total = lead & 0x3f;
        } else {
            total = lead & 0xf;
            for (size_t b = 1; b < bytes; b++)
                total |= (size_t)scope->data[1 + b] << (4 + 8 * (b - 1));
        }
        hdr = 1 + bytes;
        assert_int_equal(total, scope->len - 1);
        assert_int_equal(scope->len, hdr + 5 + sizes[i]);
        g_byte_array_unref(scope);
    }
}

static void test_aml_terms(void **unused)
{
    Aml *a = aml_int(0x1234);
    assert_int_equal(a->len, 3);
    assert_int_equal(a->data[0], 0x0b);
    g_byte_array_unref(a);
    a = aml_int(0x100000000ULL);
    assert_int_equal(a->data[0], 0x0e);
    g_byte_array_unref(a);
    a = aml_namestring("\\_SB.PCI0");
    assert_int_equal(a->len, 10);
    assert_int_equal(a->data[1], 0x2e);
    g_byte_array_unref(a);
    /* PNP0A08 as the ACPI spec encodes it: 0x080AD041. */
    a = aml_eisaid("PNP0A08");
    assert_int_equal(vireo_le_load(a->data + 1, 4), 0x080ad041);
    g_byte_array_unref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_1cpu),
        cmocka_unit_test(test_tables_64cpus),
        cmocka_unit_test(test_tables_no_room),
        cmocka_unit_test(test_tables_iasl),
        cmocka_unit_test(test_e820),
        cmocka_unit_test(test_aml_pkglength),
        cmocka_unit_test(test_aml_terms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
