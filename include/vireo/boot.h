/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Direct kernel boot (docs/machine.md, "Direct boot ABI"): an ELF64
 * (Linux vmlinux or a guest test program) or a bzImage, entered in 64-bit
 * mode with boot_params, plus an initrd and a command line.
 *
 * The files are opened and checked once (boot_image_open) and copied into
 * guest RAM at every start and reset (boot_image_load), so a reset gets a
 * pristine kernel even if the guest overwrote its own image.
 */
#ifndef VIREO_BOOT_H
#define VIREO_BOOT_H

#include <glib.h>
#include <stdint.h>

#include "vireo/guest-memory.h"

typedef struct BootImage BootImage;

typedef struct BootEntry {
    uint64_t rip;
    uint64_t boot_params;
} BootEntry;

BootImage *boot_image_open(const char *kernel, const char *initrd, const char *cmdline,
                           GError **error);
void boot_image_free(BootImage *img);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BootImage, boot_image_free)

/* "ELF64" or "bzImage" */
const char *boot_image_format(const BootImage *img);

/*
 * Copies the kernel and initrd into @mem and writes boot_params (e820 for
 * @ram_size, command line, initrd, @rsdp, a fresh RNG seed), the boot GDT
 * and page tables.
 */
gboolean boot_image_load(const BootImage *img, const GuestMemory *mem, uint64_t ram_size,
                         uint64_t rsdp, BootEntry *entry, GError **error);

/* Register state for the bootstrap processor at @entry (64-bit mode). */
struct kvm_regs;
struct kvm_sregs;
void boot_bsp_registers(const BootEntry *entry, struct kvm_regs *regs,
                        struct kvm_sregs *sregs);

/* --- internal to vmm/boot*.c --- */

/* Offsets in struct boot_params (Documentation/x86/zero-page.rst, boot.rst). */
#define BP_ACPI_RSDP_ADDR      0x070
#define BP_EXT_RAMDISK_IMAGE   0x0c0
#define BP_EXT_RAMDISK_SIZE    0x0c4
#define BP_EXT_CMD_LINE_PTR    0x0c8
#define BP_E820_ENTRIES        0x1e8
#define BP_HDR                 0x1f1   /* struct setup_header starts here */
#define BP_SETUP_SECTS         0x1f1
#define BP_BOOT_FLAG           0x1fe
#define BP_JUMP                0x200
#define BP_HEADER              0x202
#define BP_VERSION             0x206
#define BP_TYPE_OF_LOADER      0x210
#define BP_LOADFLAGS           0x211
#define BP_CODE32_START        0x214
#define BP_RAMDISK_IMAGE       0x218
#define BP_RAMDISK_SIZE        0x21c
#define BP_HEAP_END_PTR        0x224
#define BP_CMD_LINE_PTR        0x228
#define BP_INITRD_ADDR_MAX     0x22c
#define BP_KERNEL_ALIGNMENT    0x230
#define BP_RELOCATABLE_KERNEL  0x234
#define BP_XLOADFLAGS          0x236
#define BP_CMDLINE_SIZE        0x238
#define BP_SETUP_DATA          0x250
#define BP_PREF_ADDRESS        0x258
#define BP_INIT_SIZE           0x260
#define BP_E820_TABLE          0x2d0
#define BP_E820_MAX            128
#define BP_SIZE                0x1000

#define BOOT_FLAG_MAGIC        0xaa55
#define BOOT_HDRS_MAGIC        0x53726448  /* "HdrS" */
#define BOOT_LOADER_UNDEFINED  0xff
#define BOOT_LOADFLAGS_LOADED_HIGH 0x01
#define BOOT_LOADFLAGS_CAN_USE_HEAP 0x80
#define BOOT_XLF_KERNEL_64     0x01
#define BOOT_SETUP_RNG_SEED    9
#define BOOT_RNG_SEED_LEN      32



/* Sets @error to "@format: <message>" (invalid kernel file); returns FALSE. */
gboolean boot_bad_kernel(GError **error, const char *format, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Format loaders (vmm/boot-elf.c, vmm/boot-bzimage.c). */
typedef struct BootLoaded {
    uint64_t entry;             /* 64-bit entry point */
    uint64_t end;               /* first byte above everything loaded */
} BootLoaded;

gboolean boot_elf_probe(const uint8_t *data, size_t len);
/* Checks every header field against the file size before anything is used. */
gboolean boot_elf_check(const uint8_t *data, size_t len, uint64_t ram_limit, GError **error);
gboolean boot_elf_load(const uint8_t *data, size_t len, const GuestMemory *mem,
                       BootLoaded *out, GError **error);

gboolean boot_bzimage_probe(const uint8_t *data, size_t len);
gboolean boot_bzimage_check(const uint8_t *data, size_t len, GError **error);
/* Also copies the setup header into @boot_params (BP_SIZE bytes). */
gboolean boot_bzimage_load(const uint8_t *data, size_t len, const GuestMemory *mem,
                           uint8_t *boot_params, BootLoaded *out, GError **error);
#endif
