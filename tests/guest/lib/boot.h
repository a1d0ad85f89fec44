/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Boot information from either entry: Linux boot_params (vireo-vmm's
 * 64-bit entry, RSI) or PVH hvm_start_info (QEMU -kernel, EBX). Both are
 * optional: without them the command line is empty, there is no memory
 * map and acpi.c scans for the RSDP.
 */
#ifndef GUEST_BOOT_H
#define GUEST_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    BOOT_KIND_NONE = 0,
    BOOT_KIND_LINUX = 1,        /* struct boot_params */
    BOOT_KIND_PVH = 2,          /* struct hvm_start_info */
} BootKind;

typedef struct {
    uint64_t addr;
    uint64_t size;
    uint32_t type;              /* 1 = RAM (e820 and PVH agree) */
} BootMemRegion;

/* Called once by runtime.c with what the entry code found. */
void boot_init(unsigned kind, uint64_t info);

BootKind boot_kind(void);
const char *boot_kind_name(void);
const char *boot_cmdline(void);         /* never NULL */
uint64_t boot_rsdp(void);               /* 0 if not given */
unsigned boot_mem_count(void);
bool boot_mem_get(unsigned index, BootMemRegion *r);

/*
 * Command-line parameters: "key=value" or a bare "key", separated by
 * spaces. boot_cmdline_find() points *val at the value (length *len, 0
 * for a bare key).
 */
bool boot_cmdline_find(const char *key, const char **val, size_t *len);
uint64_t boot_cmdline_u64(const char *key, uint64_t dflt);

#endif
