/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bzImage kernels through the 64-bit entry point (boot protocol 2.12+,
 * XLF_KERNEL_64). The protected-mode part goes to 1 MiB, where a
 * non-relocatable kernel expects it, and runs its decompressor from there.
 */
#include <inttypes.h>
#include <string.h>

#include "vireo/boot.h"
#include "vireo/layout.h"
#include "vireo/util.h"

#define BZIMAGE_WHAT "bzImage"
#define BZIMAGE_MIN_VERSION 0x020c     /* 2.12: xloadflags, 64-bit entry */
#define BZIMAGE_ENTRY64_OFFSET 0x200
#define BZIMAGE_SECTOR 512


gboolean boot_bzimage_probe(const uint8_t *data, size_t len)
{
    return len > BP_HEADER + 4 && vireo_le_load(data + BP_BOOT_FLAG, 2) == BOOT_FLAG_MAGIC &&
           vireo_le_load(data + BP_HEADER, 4) == BOOT_HDRS_MAGIC;
}

static size_t setup_size(const uint8_t *data)
{
    unsigned sects = data[BP_SETUP_SECTS];
    /* "If this field is 0, the real value is 4." */
    return ((sects ? sects : 4) + 1) * BZIMAGE_SECTOR;
}

/* The setup header ends at 0x202 plus the byte at 0x201 (the jump offset). */
static size_t header_end(const uint8_t *data)
{
    return BP_HEADER + data[BP_JUMP + 1];
}

gboolean boot_bzimage_check(const uint8_t *data, size_t len, GError **error)
{
    unsigned version;

    if (!boot_bzimage_probe(data, len))
        return boot_bad_kernel(error, BZIMAGE_WHAT,
                               "no boot sector signature (0xaa55 at 0x1fe) or \"HdrS\" at 0x202");
    version = vireo_le_load(data + BP_VERSION, 2);
    if (version < BZIMAGE_MIN_VERSION)
        return boot_bad_kernel(error, BZIMAGE_WHAT,
                               "boot protocol %u.%02u is older than 2.12, which the 64-bit entry "
                               "needs", version >> 8, version & 0xff);
    if (!(vireo_le_load(data + BP_XLOADFLAGS, 2) & BOOT_XLF_KERNEL_64))
        return boot_bad_kernel(error, BZIMAGE_WHAT,
                               "xloadflags lacks XLF_KERNEL_64: no 64-bit entry point");
    if (header_end(data) > BP_SIZE || header_end(data) > len)
        return boot_bad_kernel(error, BZIMAGE_WHAT,
                               "setup header end 0x%zx lies outside the file", header_end(data));
    if (setup_size(data) >= len)
        return boot_bad_kernel(error, BZIMAGE_WHAT,
                               "setup_sects %u leaves no protected-mode kernel in %zu bytes",
                               data[BP_SETUP_SECTS], len);
    return TRUE;
}

gboolean boot_bzimage_load(const uint8_t *data, size_t len, const GuestMemory *mem,
                           uint8_t *boot_params, BootLoaded *out, GError **error)
{
    size_t setup = setup_size(data);
    size_t kernel_len = len - setup;
    uint64_t init_size = vireo_le_load(data + BP_INIT_SIZE, 4);
    uint64_t need = MAX(kernel_len, init_size);
    uint8_t *dst = guest_memory_ptr(mem, LAYOUT_KERNEL_DEFAULT, need);

    if (!dst)
        return boot_bad_kernel(error, BZIMAGE_WHAT,
                               "kernel needs 0x%" PRIx64 " bytes at 1 MiB, more than guest RAM "
                               "has (more --memory?)", need);
    memcpy(dst, data + setup, kernel_len);
    memcpy(boot_params + BP_HDR, data + BP_HDR, header_end(data) - BP_HDR);
    vireo_le_store(boot_params + BP_CODE32_START, 4, LAYOUT_KERNEL_DEFAULT);
    out->entry = LAYOUT_KERNEL_DEFAULT + BZIMAGE_ENTRY64_OFFSET;
    out->end = LAYOUT_KERNEL_DEFAULT + need;
    return TRUE;
}
