/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Direct boot: ELF and bzImage parsing with well-formed and hostile files,
 * and the boot_params, command line, initrd and page tables written to RAM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <elf.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "vireo/boot.h"
#include "vireo/layout.h"
#include "vireo/util.h"

#include "test-ram.h"

#define RAM_SIZE (64 * LAYOUT_MIB)

/* An ELF with two PT_LOADs: code at 1 MiB, a .bss-like segment after it. */
static GByteArray *make_elf(void)
{
    GByteArray *f = g_byte_array_new();
    Elf64_Ehdr eh = { 0 };
    Elf64_Phdr ph[2] = { 0 };
    uint8_t code[64];

    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = 0x100010;
    eh.e_phoff = sizeof(eh);
    eh.e_ehsize = sizeof(eh);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = 2;
    ph[0].p_type = PT_LOAD;
    ph[0].p_offset = 0x1000;
    ph[0].p_paddr = ph[0].p_vaddr = 0x100000;
    ph[0].p_filesz = sizeof(code);
    ph[0].p_memsz = sizeof(code);
    ph[1].p_type = PT_LOAD;
    ph[1].p_offset = 0x1000;
    ph[1].p_paddr = ph[1].p_vaddr = 0x200000;
    ph[1].p_filesz = 0;
    ph[1].p_memsz = 0x3000;
    g_byte_array_append(f, (uint8_t *)&eh, sizeof(eh));
    g_byte_array_append(f, (uint8_t *)ph, sizeof(ph));
    g_byte_array_set_size(f, 0x1000);
    memset(f->data + sizeof(eh) + sizeof(ph), 0, 0x1000 - sizeof(eh) - sizeof(ph));
    for (size_t i = 0; i < sizeof(code); i++)
        code[i] = 0x90 + (i & 1);
    g_byte_array_append(f, code, sizeof(code));
    return f;
}

static Elf64_Ehdr *ehdr(GByteArray *f)
{
    return (Elf64_Ehdr *)f->data;
}

static Elf64_Phdr *phdr(GByteArray *f, int i)
{
    return (Elf64_Phdr *)(f->data + sizeof(Elf64_Ehdr)) + i;
}

static void expect_bad(GByteArray *f, const char *needle)
{
    g_autoptr(GError) err = NULL;

    assert_false(boot_elf_check(f->data, f->len, RAM_SIZE, &err));
    assert_int_equal(err->code, VIREO_ERROR_INVALID_ARGUMENT);
    if (!strstr(err->message, needle))
        fail_msg("error '%s' does not mention '%s'", err->message, needle);
    g_byte_array_unref(f);
}

static void test_elf_load(void **unused)
{
    GByteArray *f = make_elf();
    TestRam *r = test_ram_new(RAM_SIZE);
    BootLoaded out;

    memset(r->buf + 0x200000, 0xee, 0x3000);
    assert_true(boot_elf_check(f->data, f->len, RAM_SIZE, NULL));
    assert_true(boot_elf_load(f->data, f->len, &r->mem, &out, NULL));
    assert_int_equal(out.entry, 0x100010);
    assert_int_equal(out.end, 0x203000);
    assert_memory_equal(r->buf + 0x100000, f->data + 0x1000, 64);
    /* memsz beyond filesz is zeroed (.bss). */
    for (int i = 0; i < 0x3000; i++)
        assert_int_equal(r->buf[0x200000 + i], 0);
    g_byte_array_unref(f);
    test_ram_free(r);
}

static void test_elf_hostile(void **unused)
{
    GByteArray *f;

    f = make_elf();
    ehdr(f)->e_ident[EI_CLASS] = ELFCLASS32;
    expect_bad(f, "EI_CLASS");
    f = make_elf();
    ehdr(f)->e_machine = EM_AARCH64;
    expect_bad(f, "e_machine");
    f = make_elf();
    ehdr(f)->e_phnum = 0xffff;
    expect_bad(f, "outside");
    f = make_elf();
    ehdr(f)->e_phoff = UINT64_MAX - 8;
    expect_bad(f, "outside");
    f = make_elf();
    ehdr(f)->e_phentsize = 32;
    expect_bad(f, "e_phentsize");
    f = make_elf();
    phdr(f, 0)->p_offset = UINT64_MAX - 10;
    expect_bad(f, "outside the");
    f = make_elf();
    phdr(f, 0)->p_filesz = 0x100000;
    expect_bad(f, "outside the");
    f = make_elf();
    phdr(f, 0)->p_filesz = 32;
    phdr(f, 0)->p_memsz = 16;
    expect_bad(f, "p_filesz");
    f = make_elf();
    phdr(f, 1)->p_paddr = RAM_SIZE - 0x1000;
    expect_bad(f, "inside guest RAM");
    f = make_elf();
    phdr(f, 1)->p_memsz = UINT64_MAX - 0x100000;
    expect_bad(f, "inside guest RAM");
    f = make_elf();
    phdr(f, 0)->p_paddr = 0x7000;       /* would overwrite boot_params */
    expect_bad(f, "inside guest RAM");
    f = make_elf();
    ehdr(f)->e_entry = 0xffffffff81000000ULL;
    expect_bad(f, "entry point");
    f = make_elf();
    phdr(f, 0)->p_type = PT_NOTE;
    phdr(f, 1)->p_type = PT_NOTE;
    expect_bad(f, "no PT_LOAD");
    f = make_elf();
    g_byte_array_set_size(f, 20);
    expect_bad(f, "shorter");
}

static void test_elf_truncations(void **unused)
{
    g_autoptr(GByteArray) f = make_elf();

    /* No prefix of the file is accepted, and checking one never reads past it. */
    for (guint len = 0; len < f->len; len++) {
        g_autofree uint8_t *copy = g_memdup2(f->data, len);
        if (!boot_elf_probe(copy, len))
            continue;
        assert_false(boot_elf_check(copy, len, RAM_SIZE, NULL));
    }
}

static GByteArray *make_bzimage(unsigned version, uint16_t xloadflags)
{
    GByteArray *f = g_byte_array_new();

    g_byte_array_set_size(f, 5 * 512 + 4096);
    memset(f->data, 0, f->len);
    f->data[BP_SETUP_SECTS] = 4;
    vireo_le_store(f->data + BP_BOOT_FLAG, 2, BOOT_FLAG_MAGIC);
    f->data[BP_JUMP] = 0xeb;
    f->data[BP_JUMP + 1] = 0x6a;                /* header ends at 0x26c */
    vireo_le_store(f->data + BP_HEADER, 4, BOOT_HDRS_MAGIC);
    vireo_le_store(f->data + BP_VERSION, 2, version);
    vireo_le_store(f->data + BP_XLOADFLAGS, 2, xloadflags);
    vireo_le_store(f->data + BP_CMDLINE_SIZE, 4, 2047);
    vireo_le_store(f->data + BP_INITRD_ADDR_MAX, 4, 0x7fffffff);
    vireo_le_store(f->data + BP_INIT_SIZE, 4, 0x10000);
    memset(f->data + 5 * 512, 0xab, 4096);       /* the protected-mode kernel */
    return f;
}

static void test_bzimage(void **unused)
{
    g_autoptr(GByteArray) f = make_bzimage(0x020f, BOOT_XLF_KERNEL_64);
    TestRam *r = test_ram_new(RAM_SIZE);
    uint8_t bp[BP_SIZE] = { 0 };
    BootLoaded out;
    g_autoptr(GError) err = NULL;

    assert_true(boot_bzimage_probe(f->data, f->len));
    assert_true(boot_bzimage_check(f->data, f->len, NULL));
    assert_true(boot_bzimage_load(f->data, f->len, &r->mem, bp, &out, NULL));
    assert_int_equal(out.entry, 0x100200);
    assert_int_equal(out.end, 0x100000 + 0x10000);      /* init_size wins */
    assert_int_equal(r->buf[0x100000], 0xab);
    assert_int_equal(vireo_le_load(bp + BP_VERSION, 2), 0x020f);
    assert_int_equal(vireo_le_load(bp + BP_CMDLINE_SIZE, 4), 2047);

    g_byte_array_unref(g_steal_pointer(&f));
    f = make_bzimage(0x020a, BOOT_XLF_KERNEL_64);
    assert_false(boot_bzimage_check(f->data, f->len, &err));
    assert_non_null(strstr(err->message, "2.12"));
    g_clear_error(&err);
    g_byte_array_unref(g_steal_pointer(&f));
    f = make_bzimage(0x020f, 0);
    assert_false(boot_bzimage_check(f->data, f->len, &err));
    assert_non_null(strstr(err->message, "XLF_KERNEL_64"));
    g_clear_error(&err);
    /* setup_sects pointing past the end of the file. */
    f->data[BP_SETUP_SECTS] = 0xff;
    vireo_le_store(f->data + BP_XLOADFLAGS, 2, BOOT_XLF_KERNEL_64);
    assert_false(boot_bzimage_check(f->data, f->len, &err));
    g_clear_error(&err);
    test_ram_free(r);
}

static char *write_temp(const void *data, size_t len)
{
    g_autoptr(GError) err = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("vireo-boot-XXXXXX", &path, &err);

    assert_true(fd >= 0);
    close(fd);
    assert_true(g_file_set_contents(path, data, len, NULL));
    return path;
}

static void test_boot_params(void **unused)
{
    g_autoptr(GByteArray) elf = make_elf();
    g_autofree char *kernel = write_temp(elf->data, elf->len);
    g_autofree uint8_t *initrd_data = g_malloc(300000);
    g_autofree char *initrd = NULL;
    g_autoptr(BootImage) img = NULL;
    TestRam *r = test_ram_new(RAM_SIZE);
    BootEntry entry;
    const uint8_t *bp;
    uint32_t rd_addr, rd_size;
    uint64_t pde;

    for (int i = 0; i < 300000; i++)
        initrd_data[i] = i * 7;
    initrd = write_temp(initrd_data, 300000);
    img = boot_image_open(kernel, initrd, "console=ttyS0 vireo.test=1", NULL);
    assert_non_null(img);
    assert_string_equal(boot_image_format(img), "ELF64");
    assert_true(boot_image_load(img, &r->mem, RAM_SIZE, 0xe0000, &entry, NULL));
    assert_int_equal(entry.rip, 0x100010);
    assert_int_equal(entry.boot_params, LAYOUT_BOOT_PARAMS);
    bp = r->buf + LAYOUT_BOOT_PARAMS;
    assert_int_equal(vireo_le_load(bp + BP_BOOT_FLAG, 2), BOOT_FLAG_MAGIC);
    assert_int_equal(vireo_le_load(bp + BP_ACPI_RSDP_ADDR, 8), 0xe0000);
    assert_string_equal((char *)r->buf + vireo_le_load(bp + BP_CMD_LINE_PTR, 4),
                        "console=ttyS0 vireo.test=1");
    /* The initrd sits at the top of RAM, page aligned, intact. */
    rd_addr = vireo_le_load(bp + BP_RAMDISK_IMAGE, 4);
    rd_size = vireo_le_load(bp + BP_RAMDISK_SIZE, 4);
    assert_int_equal(rd_size, 300000);
    assert_int_equal(rd_addr % 4096, 0);
    assert_true(rd_addr + rd_size <= RAM_SIZE && rd_addr + rd_size > RAM_SIZE - 4096);
    assert_memory_equal(r->buf + rd_addr, initrd_data, 300000);
    /* e820: at least low RAM, the legacy hole and RAM from 1 MiB. */
    assert_true(bp[BP_E820_ENTRIES] >= 3);
    assert_int_equal(vireo_le_load(bp + BP_E820_TABLE + 16, 4), LAYOUT_E820_RAM);
    /* RNG seed in setup_data. */
    assert_int_equal(vireo_le_load(bp + BP_SETUP_DATA, 8), LAYOUT_BOOT_SETUP_DATA);
    assert_int_equal(vireo_le_load(r->buf + LAYOUT_BOOT_SETUP_DATA + 8, 4), BOOT_SETUP_RNG_SEED);
    /* Identity map: the PDE for 3 GiB points at 3 GiB. */
    pde = vireo_le_load(r->buf + LAYOUT_BOOT_PD + 3 * 4096, 8);
    assert_int_equal(pde & ~0xfffULL, 3 * LAYOUT_GIB);
    assert_int_equal(pde & 0x81, 0x81);
    test_ram_free(r);
    g_unlink(kernel);
    g_unlink(initrd);
}

static void test_initrd_too_big(void **unused)
{
    g_autoptr(GByteArray) elf = make_elf();
    g_autofree char *kernel = write_temp(elf->data, elf->len);
    g_autofree uint8_t *big = g_malloc0(RAM_SIZE);
    g_autofree char *initrd = write_temp(big, RAM_SIZE);
    g_autoptr(BootImage) img = boot_image_open(kernel, initrd, NULL, NULL);
    TestRam *r = test_ram_new(RAM_SIZE);
    BootEntry entry;
    g_autoptr(GError) err = NULL;

    assert_non_null(img);
    assert_false(boot_image_load(img, &r->mem, RAM_SIZE, 0, &entry, &err));
    assert_non_null(strstr(err->message, "--memory"));
    test_ram_free(r);
    g_unlink(kernel);
    g_unlink(initrd);
}

static void test_open_errors(void **unused)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *junk = write_temp("hello world, not a kernel", 25);

    assert_null(boot_image_open("/nonexistent/kernel", NULL, NULL, &err));
    assert_non_null(strstr(err->message, "kernel"));
    g_clear_error(&err);
    assert_null(boot_image_open(junk, NULL, NULL, &err));
    assert_non_null(strstr(err->message, "not an ELF64 kernel or a bzImage"));
    g_unlink(junk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elf_load),
        cmocka_unit_test(test_elf_hostile),
        cmocka_unit_test(test_elf_truncations),
        cmocka_unit_test(test_bzimage),
        cmocka_unit_test(test_boot_params),
        cmocka_unit_test(test_initrd_too_big),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
