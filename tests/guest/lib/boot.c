/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "boot.h"

#include "util.h"

/* struct boot_params offsets (Documentation/x86/zero-page.rst). */
#define BP_ACPI_RSDP_ADDR       0x070
#define BP_EXT_CMD_LINE_PTR     0x0c8
#define BP_E820_ENTRIES         0x1e8
#define BP_CMD_LINE_PTR         0x228
#define BP_E820_TABLE           0x2d0
#define BP_E820_MAX             128

/* struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
#define PVH_MAGIC               0x336ec578
typedef struct __attribute__((packed)) {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;      /* version >= 1 */
    uint32_t memmap_entries;
    uint32_t reserved;
} PvhStartInfo;

typedef struct __attribute__((packed)) {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} E820Entry;

typedef struct __attribute__((packed)) {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} PvhMemmapEntry;

static BootKind boot_kind_value;
static uintptr_t boot_info;

/* Only pointers below 4 GiB are mapped. */
static bool boot_addr_ok(uint64_t a)
{
    return a && a < 0x100000000ULL;
}

void boot_init(unsigned kind, uint64_t info)
{
    boot_kind_value = BOOT_KIND_NONE;
    boot_info = 0;
    if (!boot_addr_ok(info)) {
        return;
    }
    if (kind == BOOT_KIND_PVH &&
        ((const PvhStartInfo *)info)->magic != PVH_MAGIC) {
        return;
    }
    if (kind == BOOT_KIND_LINUX || kind == BOOT_KIND_PVH) {
        boot_kind_value = kind;
        boot_info = info;
    }
}

BootKind boot_kind(void)
{
    return boot_kind_value;
}

const char *boot_kind_name(void)
{
    switch (boot_kind_value) {
    case BOOT_KIND_LINUX:
        return "linux-64bit";
    case BOOT_KIND_PVH:
        return "pvh";
    default:
        return "none";
    }
}

const char *boot_cmdline(void)
{
    uint64_t p = 0;

    if (boot_kind_value == BOOT_KIND_LINUX) {
        const uint8_t *bp = (const uint8_t *)boot_info;
        p = *(const uint32_t *)(bp + BP_CMD_LINE_PTR) |
            (uint64_t)*(const uint32_t *)(bp + BP_EXT_CMD_LINE_PTR) << 32;
    } else if (boot_kind_value == BOOT_KIND_PVH) {
        p = ((const PvhStartInfo *)boot_info)->cmdline_paddr;
    }
    return boot_addr_ok(p) ? (const char *)(uintptr_t)p : "";
}

uint64_t boot_rsdp(void)
{
    if (boot_kind_value == BOOT_KIND_LINUX) {
        return *(const uint64_t *)(boot_info + BP_ACPI_RSDP_ADDR);
    }
    if (boot_kind_value == BOOT_KIND_PVH) {
        return ((const PvhStartInfo *)boot_info)->rsdp_paddr;
    }
    return 0;
}

unsigned boot_mem_count(void)
{
    if (boot_kind_value == BOOT_KIND_LINUX) {
        unsigned n = *(const uint8_t *)(boot_info + BP_E820_ENTRIES);
        return n > BP_E820_MAX ? BP_E820_MAX : n;
    }
    if (boot_kind_value == BOOT_KIND_PVH) {
        const PvhStartInfo *si = (const PvhStartInfo *)boot_info;
        if (si->version >= 1 && boot_addr_ok(si->memmap_paddr)) {
            return si->memmap_entries;
        }
    }
    return 0;
}

bool boot_mem_get(unsigned index, BootMemRegion *r)
{
    if (index >= boot_mem_count()) {
        return false;
    }
    if (boot_kind_value == BOOT_KIND_LINUX) {
        const E820Entry *e =
            (const E820Entry *)(boot_info + BP_E820_TABLE) + index;
        r->addr = e->addr;
        r->size = e->size;
        r->type = e->type;
    } else {
        const PvhStartInfo *si = (const PvhStartInfo *)boot_info;
        const PvhMemmapEntry *e =
            (const PvhMemmapEntry *)(uintptr_t)si->memmap_paddr + index;
        r->addr = e->addr;
        r->size = e->size;
        r->type = e->type;
    }
    return true;
}

bool boot_cmdline_find(const char *key, const char **val, size_t *len)
{
    const char *p = boot_cmdline();
    size_t klen = strlen(key);

    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *word = p;
        while (*p && *p != ' ') {
            p++;
        }
        size_t wlen = p - word;
        if (wlen >= klen && !util_strncmp(word, key, klen)) {
            if (wlen == klen) {
                *val = word + klen;
                *len = 0;
                return true;
            }
            if (word[klen] == '=') {
                *val = word + klen + 1;
                *len = wlen - klen - 1;
                return true;
            }
        }
    }
    return false;
}

uint64_t boot_cmdline_u64(const char *key, uint64_t dflt)
{
    const char *val;
    size_t len;
    uint64_t v;

    if (boot_cmdline_find(key, &val, &len) && util_parse_u64(val, len, &v)) {
        return v;
    }
    return dflt;
}
