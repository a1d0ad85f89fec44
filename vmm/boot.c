/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The parts of direct boot every kernel format shares: boot_params, command
 * line, initrd placement, RNG seed, and the 64-bit entry state (GDT, page
 * tables, registers).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/random.h>

#include "vireo/boot.h"
#include "vireo/layout.h"
#include "vireo/util.h"

/* Boot protocol version we claim for ELF kernels, which have no header. */
#define BOOT_ELF_PROTOCOL_VERSION 0x020f
#define BOOT_ELF_KERNEL_ALIGNMENT 0x1000000

/* GDT entries: flags/access in the positions the descriptor format uses. */
#define GDT_ENTRY(flags, base, limit)                                    \
    ((((base) & 0xff000000ULL) << 32) | (((flags) & 0xf0ffULL) << 40) | \
     (((limit) & 0x000f0000ULL) << 32) | (((base) & 0x00ffffffULL) << 16) | \
     ((limit) & 0x0000ffffULL))
#define BOOT_GDT_CODE64 GDT_ENTRY(0xa09b, 0, 0xfffff)
#define BOOT_GDT_DATA   GDT_ENTRY(0xc093, 0, 0xfffff)
#define BOOT_GDT_TSS    GDT_ENTRY(0x008b, 0, 0x67)
#define BOOT_CS 0x10
#define BOOT_DS 0x18
#define BOOT_TSS 0x20
#define BOOT_GDT_ENTRIES 5

#define PTE_PRESENT 0x1ULL
#define PTE_WRITE 0x2ULL
#define PTE_LARGE 0x80ULL
#define BOOT_PD_PAGES 4

#define X86_CR0_PE 0x1ULL
#define X86_CR0_MP 0x2ULL
#define X86_CR0_ET 0x10ULL
#define X86_CR0_NE 0x20ULL
#define X86_CR0_PG 0x80000000ULL
#define X86_CR4_PAE 0x20ULL
#define X86_EFER_LME 0x100ULL
#define X86_EFER_LMA 0x400ULL

#define BOOT_STACK_TOP 0x8ff0

struct BootImage {
    GMappedFile *kernel;
    GMappedFile *initrd;
    char *kernel_path;
    char *cmdline;
    gboolean bzimage;
};

gboolean boot_bad_kernel(GError **error, const char *format, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "%s: %s", format, msg);
    return FALSE;
}

void boot_image_free(BootImage *img)
{
    if (!img)
        return;
    g_clear_pointer(&img->kernel, g_mapped_file_unref);
    g_clear_pointer(&img->initrd, g_mapped_file_unref);
    g_free(img->kernel_path);
    g_free(img->cmdline);
    g_free(img);
}

BootImage *boot_image_open(const char *kernel, const char *initrd, const char *cmdline,
                           GError **error)
{
    g_autoptr(BootImage) img = g_new0(BootImage, 1);
    const uint8_t *data;
    size_t len;

    img->kernel_path = g_strdup(kernel);
    img->cmdline = g_strdup(cmdline ? cmdline : "");
    /* Private read-only mappings: page cache, not our anonymous memory. */
    img->kernel = g_mapped_file_new(kernel, FALSE, error);
    if (!img->kernel) {
        g_prefix_error(error, "kernel: ");
        return NULL;
    }
    data = (const uint8_t *)g_mapped_file_get_contents(img->kernel);
    len = g_mapped_file_get_length(img->kernel);
    if (boot_elf_probe(data, len)) {
        /* Segment placement is checked against RAM at load time. */
        if (!boot_elf_check(data, len, UINT64_MAX, error))
            goto bad;
    } else if (boot_bzimage_probe(data, len)) {
        img->bzimage = TRUE;
        if (!boot_bzimage_check(data, len, error))
            goto bad;
    } else {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "not an ELF64 kernel or a bzImage");
        goto bad;
    }
    if (strlen(img->cmdline) >= LAYOUT_CMDLINE_MAX) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "command line is %zu bytes, at most %llu are supported",
                    strlen(img->cmdline), LAYOUT_CMDLINE_MAX - 1);
        return NULL;
    }
    if (initrd) {
        img->initrd = g_mapped_file_new(initrd, FALSE, error);
        if (!img->initrd) {
            g_prefix_error(error, "initrd: ");
            return NULL;
        }
    }
    return g_steal_pointer(&img);

bad:
    g_prefix_error(error, "kernel '%s': ", kernel);
    return NULL;
}

const char *boot_image_format(const BootImage *img)
{
    return img->bzimage ? "bzImage" : "ELF64";
}

static gboolean place_initrd(const BootImage *img, const GuestMemory *mem, uint64_t ram_size,
                             uint64_t kernel_end, uint8_t *bp, GError **error)
{
    size_t size = g_mapped_file_get_length(img->initrd);
    uint64_t limit = layout_low_ram(ram_size);
    uint64_t addr_max = vireo_le_load(bp + BP_INITRD_ADDR_MAX, 4);
    uint64_t addr;
    uint8_t *dst;

    if (addr_max && addr_max + 1 < limit)
        limit = addr_max + 1;
    if (size > limit) {
        addr = 0;
    } else {
        addr = VIREO_ALIGN_DOWN(limit - size, 0x1000);
    }
    if (size > limit || addr < VIREO_ALIGN_UP(kernel_end, 0x1000)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "initrd (%zu KiB) does not fit between the kernel (ends at 0x%" PRIx64
                    ") and 0x%" PRIx64 "; give the guest more --memory", size / 1024,
                    kernel_end, limit);
        return FALSE;
    }
    dst = guest_memory_ptr(mem, addr, size);
    g_assert(dst);
    memcpy(dst, g_mapped_file_get_contents(img->initrd), size);
    vireo_le_store(bp + BP_RAMDISK_IMAGE, 4, addr);
    vireo_le_store(bp + BP_RAMDISK_SIZE, 4, size);
    vireo_le_store(bp + BP_EXT_RAMDISK_IMAGE, 4, addr >> 32);
    vireo_le_store(bp + BP_EXT_RAMDISK_SIZE, 4, (uint64_t)size >> 32);
    return TRUE;
}

static void write_e820(uint8_t *bp, uint64_t ram_size)
{
    LayoutE820Entry map[LAYOUT_E820_MAX];
    unsigned n = layout_e820(ram_size, map);

    for (unsigned i = 0; i < n; i++) {
        uint8_t *e = bp + BP_E820_TABLE + i * 20;
        vireo_le_store(e, 8, map[i].addr);
        vireo_le_store(e + 8, 8, map[i].size);
        vireo_le_store(e + 16, 4, map[i].type);
    }
    bp[BP_E820_ENTRIES] = n;
}

/* SETUP_RNG_SEED: saves the guest from gathering entropy the slow way. */
static void write_rng_seed(const GuestMemory *mem, uint8_t *bp)
{
    uint8_t *sd = guest_memory_ptr(mem, LAYOUT_BOOT_SETUP_DATA, 16 + BOOT_RNG_SEED_LEN);

    memset(sd, 0, 16);
    vireo_le_store(sd + 8, 4, BOOT_SETUP_RNG_SEED);
    vireo_le_store(sd + 12, 4, BOOT_RNG_SEED_LEN);
    if (getrandom(sd + 16, BOOT_RNG_SEED_LEN, GRND_NONBLOCK) != BOOT_RNG_SEED_LEN)
        return;     /* no entropy yet: better no seed than a predictable one */
    vireo_le_store(bp + BP_SETUP_DATA, 8, LAYOUT_BOOT_SETUP_DATA);
}

static void write_gdt_and_page_tables(const GuestMemory *mem)
{
    uint64_t gdt[BOOT_GDT_ENTRIES] = { 0, 0, BOOT_GDT_CODE64, BOOT_GDT_DATA, BOOT_GDT_TSS };
    uint8_t *pml4 = guest_memory_ptr(mem, LAYOUT_BOOT_PML4, 0x1000);
    uint8_t *pdpt = guest_memory_ptr(mem, LAYOUT_BOOT_PDPT, 0x1000);
    uint8_t *pd = guest_memory_ptr(mem, LAYOUT_BOOT_PD, BOOT_PD_PAGES * 0x1000);

    for (unsigned i = 0; i < BOOT_GDT_ENTRIES; i++)
        vireo_le_store(guest_memory_ptr(mem, LAYOUT_BOOT_GDT + i * 8, 8), 8, gdt[i]);
    memset(pml4, 0, 0x1000);
    memset(pdpt, 0, 0x1000);
    vireo_le_store(pml4, 8, LAYOUT_BOOT_PDPT | PTE_PRESENT | PTE_WRITE);
    /* Four page directories of 2 MiB pages: an identity map of 0-4 GiB. */
    for (unsigned i = 0; i < BOOT_PD_PAGES; i++)
        vireo_le_store(pdpt + i * 8, 8,
                       (LAYOUT_BOOT_PD + i * 0x1000) | PTE_PRESENT | PTE_WRITE);
    for (uint64_t i = 0; i < BOOT_PD_PAGES * 512; i++)
        vireo_le_store(pd + i * 8, 8, (i << 21) | PTE_PRESENT | PTE_WRITE | PTE_LARGE);
}

gboolean boot_image_load(const BootImage *img, const GuestMemory *mem, uint64_t ram_size,
                         uint64_t rsdp, BootEntry *entry, GError **error)
{
    const uint8_t *data = (const uint8_t *)g_mapped_file_get_contents(img->kernel);
    size_t len = g_mapped_file_get_length(img->kernel);
    uint8_t *bp = guest_memory_ptr(mem, LAYOUT_BOOT_PARAMS, BP_SIZE);
    char *cmdline = guest_memory_ptr(mem, LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX);
    size_t cmdline_len = strlen(img->cmdline);
    BootLoaded loaded;

    g_assert(bp && cmdline);
    memset(bp, 0, BP_SIZE);
    if (img->bzimage) {
        if (!boot_bzimage_load(data, len, mem, bp, &loaded, error))
            goto fail;
    } else {
        if (!boot_elf_check(data, len, layout_low_ram(ram_size), error) ||
            !boot_elf_load(data, len, mem, &loaded, error))
            goto fail;
        vireo_le_store(bp + BP_BOOT_FLAG, 2, BOOT_FLAG_MAGIC);
        vireo_le_store(bp + BP_HEADER, 4, BOOT_HDRS_MAGIC);
        vireo_le_store(bp + BP_VERSION, 2, BOOT_ELF_PROTOCOL_VERSION);
        vireo_le_store(bp + BP_KERNEL_ALIGNMENT, 4, BOOT_ELF_KERNEL_ALIGNMENT);
        vireo_le_store(bp + BP_XLOADFLAGS, 2, BOOT_XLF_KERNEL_64);
        vireo_le_store(bp + BP_CMDLINE_SIZE, 4, LAYOUT_CMDLINE_MAX - 1);
        vireo_le_store(bp + BP_INITRD_ADDR_MAX, 4, 0x7fffffff);
    }
    bp[BP_TYPE_OF_LOADER] = BOOT_LOADER_UNDEFINED;
    bp[BP_LOADFLAGS] |= BOOT_LOADFLAGS_LOADED_HIGH;

    if (img->bzimage && cmdline_len > vireo_le_load(bp + BP_CMDLINE_SIZE, 4)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "command line is %zu bytes, the kernel takes at most %u", cmdline_len,
                    (unsigned)vireo_le_load(bp + BP_CMDLINE_SIZE, 4));
        goto fail;
    }
    memcpy(cmdline, img->cmdline, cmdline_len + 1);
    vireo_le_store(bp + BP_CMD_LINE_PTR, 4, LAYOUT_CMDLINE);

    if (img->initrd && !place_initrd(img, mem, ram_size, loaded.end, bp, error))
        goto fail;
    write_e820(bp, ram_size);
    vireo_le_store(bp + BP_ACPI_RSDP_ADDR, 8, rsdp);
    write_rng_seed(mem, bp);
    write_gdt_and_page_tables(mem);

    entry->rip = loaded.entry;
    entry->boot_params = LAYOUT_BOOT_PARAMS;
    return TRUE;

fail:
    g_prefix_error(error, "kernel '%s': ", img->kernel_path);
    return FALSE;
}

static void set_segment(struct kvm_segment *seg, uint16_t selector, uint8_t type,
                        gboolean code64)
{
    memset(seg, 0, sizeof(*seg));
    seg->selector = selector;
    seg->base = 0;
    seg->limit = 0xffffffff;
    seg->type = type;
    seg->present = 1;
    seg->s = 1;
    seg->g = 1;
    seg->l = code64;
    seg->db = !code64;
}

void boot_bsp_registers(const BootEntry *entry, struct kvm_regs *regs, struct kvm_sregs *sregs)
{
    memset(regs, 0, sizeof(*regs));
    regs->rflags = 0x2;         /* bit 1 is reserved and always set */
    regs->rip = entry->rip;
    regs->rsi = entry->boot_params;
    regs->rsp = regs->rbp = BOOT_STACK_TOP;

    set_segment(&sregs->cs, BOOT_CS, 0xb, TRUE);
    set_segment(&sregs->ds, BOOT_DS, 0x3, FALSE);
    sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
    memset(&sregs->tr, 0, sizeof(sregs->tr));
    sregs->tr.selector = BOOT_TSS;
    sregs->tr.limit = 0x67;
    sregs->tr.type = 0xb;       /* 64-bit TSS, busy */
    sregs->tr.present = 1;
    sregs->gdt.base = LAYOUT_BOOT_GDT;
    sregs->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;
    sregs->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
    sregs->cr3 = LAYOUT_BOOT_PML4;
    sregs->cr4 = X86_CR4_PAE;
    sregs->efer = X86_EFER_LME | X86_EFER_LMA;
}
