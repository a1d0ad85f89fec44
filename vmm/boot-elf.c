/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ELF64 kernels: Linux's vmlinux and our guest test programs. PT_LOAD
 * segments go to their physical addresses; e_entry is the physical 64-bit
 * entry point. The file is untrusted: every offset and size is checked
 * before use.
 */
#include <elf.h>
#include <inttypes.h>
#include <string.h>

#include "vireo/boot.h"
#include "vireo/layout.h"
#include "vireo/util.h"

#define ELF_WHAT "ELF kernel"

gboolean boot_elf_probe(const uint8_t *data, size_t len)
{
    return len >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0;
}


static const Elf64_Phdr *phdr(const uint8_t *data, const Elf64_Ehdr *eh, unsigned i)
{
    return (const Elf64_Phdr *)(data + eh->e_phoff + (uint64_t)i * sizeof(Elf64_Phdr));
}

gboolean boot_elf_check(const uint8_t *data, size_t len, uint64_t ram_limit, GError **error)
{
    Elf64_Ehdr eh;
    gboolean entry_loaded = FALSE;
    unsigned loads = 0;

    if (len < sizeof(eh))
        return boot_bad_kernel(error, ELF_WHAT,
                               "file is %zu bytes, shorter than an ELF header", len);
    memcpy(&eh, data, sizeof(eh));
    if (eh.e_ident[EI_CLASS] != ELFCLASS64)
        return boot_bad_kernel(error, ELF_WHAT,
                               "e_ident[EI_CLASS] is %u, expected ELFCLASS64",
                               eh.e_ident[EI_CLASS]);
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return boot_bad_kernel(error, ELF_WHAT,
                               "e_ident[EI_DATA] is %u, expected little-endian",
                               eh.e_ident[EI_DATA]);
    if (eh.e_machine != EM_X86_64)
        return boot_bad_kernel(error, ELF_WHAT,
                               "e_machine is %u, expected EM_X86_64 (%u)", eh.e_machine, EM_X86_64);
    if (eh.e_type != ET_EXEC)
        return boot_bad_kernel(error, ELF_WHAT, "e_type is %u, expected ET_EXEC", eh.e_type);
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        return boot_bad_kernel(error, ELF_WHAT,
                               "e_phentsize is %u, expected %zu", eh.e_phentsize,
                               sizeof(Elf64_Phdr));
    if (eh.e_phnum == 0 || eh.e_phoff > len ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
        return boot_bad_kernel(error, ELF_WHAT,
                               "program headers (e_phoff 0x%" PRIx64 ", e_phnum %u) lie outside "
                               "the %zu-byte file", (uint64_t)eh.e_phoff, eh.e_phnum, len);
    if (eh.e_phoff % 8)
        return boot_bad_kernel(error, ELF_WHAT,
                               "e_phoff 0x%" PRIx64 " is not aligned", (uint64_t)eh.e_phoff);

    for (unsigned i = 0; i < eh.e_phnum; i++) {
        const Elf64_Phdr *ph = phdr(data, &eh, i);

        if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
            continue;
        loads++;
        if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
            return boot_bad_kernel(error, ELF_WHAT,
                                   "segment %u (offset 0x%" PRIx64 ", filesz 0x%" PRIx64
                                   ") lies outside the %zu-byte file", i, (uint64_t)ph->p_offset,
                                   (uint64_t)ph->p_filesz, len);
        if (ph->p_filesz > ph->p_memsz)
            return boot_bad_kernel(error, ELF_WHAT,
                                   "segment %u has p_filesz 0x%" PRIx64 " > p_memsz 0x%" PRIx64,
                                   i, (uint64_t)ph->p_filesz, (uint64_t)ph->p_memsz);
        if (ph->p_paddr < LAYOUT_HIGH_MEMORY || ph->p_paddr > ram_limit ||
            ph->p_memsz > ram_limit - ph->p_paddr)
            return boot_bad_kernel(error, ELF_WHAT,
                                   "segment %u at physical 0x%" PRIx64 "+0x%" PRIx64 " is not "
                                   "inside guest RAM from 1 MiB to 0x%" PRIx64
                                   " (more --memory?)", i,
                                   (uint64_t)ph->p_paddr, (uint64_t)ph->p_memsz, ram_limit);
        if (eh.e_entry >= ph->p_paddr && eh.e_entry - ph->p_paddr < ph->p_memsz)
            entry_loaded = TRUE;
    }
    if (loads == 0)
        return boot_bad_kernel(error, ELF_WHAT, "no PT_LOAD segment");
    if (!entry_loaded)
        return boot_bad_kernel(error, ELF_WHAT,
                               "entry point 0x%" PRIx64 " is not inside a loaded segment "
                               "(it must be a physical address)", (uint64_t)eh.e_entry);
    return TRUE;
}

gboolean boot_elf_load(const uint8_t *data, size_t len, const GuestMemory *mem,
                       BootLoaded *out, GError **error)
{
    Elf64_Ehdr eh;

    memcpy(&eh, data, sizeof(eh));
    out->entry = eh.e_entry;
    out->end = 0;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        const Elf64_Phdr *ph = phdr(data, &eh, i);
        uint8_t *dst;

        if (ph->p_type != PT_LOAD || ph->p_memsz == 0)
            continue;
        dst = guest_memory_ptr(mem, ph->p_paddr, ph->p_memsz);
        if (!dst)
            return boot_bad_kernel(error, ELF_WHAT,
                                   "segment %u at 0x%" PRIx64 " is not in one RAM region", i,
                                   (uint64_t)ph->p_paddr);
        memcpy(dst, data + ph->p_offset, ph->p_filesz);
        memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
        out->end = MAX(out->end, ph->p_paddr + ph->p_memsz);
    }
    return TRUE;
}
