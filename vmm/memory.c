/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Guest RAM backed by a memfd. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vireo/kvm.h"
#include "vireo/layout.h"
#include "vireo/memory.h"
#include "vireo/util.h"

static void add_region(GuestRam *ram, uint64_t gpa, uint64_t size, uint64_t file_offset)
{
    GuestRegion *r = &ram->mem.regions[ram->mem.nr_regions++];

    r->gpa = gpa;
    r->size = size;
    r->host = ram->base + file_offset;
    r->file_offset = file_offset;
    ram->mem.ram_size += size;
}

GuestRam *guest_ram_new(uint64_t size, GError **error)
{
    g_autoptr(GuestRam) ram = g_new0(GuestRam, 1);
    uint64_t low, high;

    ram->memfd = -1;
    ram->base = MAP_FAILED;
    if (size < LAYOUT_MIN_MEMORY || size > LAYOUT_MAX_MEMORY || size % LAYOUT_MIB) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "memory size must be a whole number of MiB from %llu MiB to %llu GiB",
                    LAYOUT_MIN_MEMORY / LAYOUT_MIB, LAYOUT_MAX_MEMORY / LAYOUT_GIB);
        return NULL;
    }
    ram->memfd = memfd_create("vireo-guest-ram", MFD_CLOEXEC);
    if (ram->memfd < 0 || ftruncate(ram->memfd, size) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "cannot create guest RAM (%" G_GUINT64_FORMAT " MiB): %s",
                    (guint64)(size / LAYOUT_MIB), g_strerror(saved));
        return NULL;
    }
    /* MAP_NORESERVE: pages are only committed when the guest touches them. */
    ram->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                     ram->memfd, 0);
    if (ram->base == MAP_FAILED) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot map guest RAM: %s",
                    g_strerror(saved));
        return NULL;
    }
    ram->size = size;
    /* Guest RAM must not be in a core dump of the VMM or be copied to a child. */
    madvise(ram->base, size, MADV_DONTDUMP);
    madvise(ram->base, size, MADV_DONTFORK);
    low = layout_low_ram(size);
    high = layout_high_ram(size);
    add_region(ram, 0, low, 0);
    if (high)
        add_region(ram, LAYOUT_4G, high, low);
    return g_steal_pointer(&ram);
}

void guest_ram_free(GuestRam *ram)
{
    if (!ram)
        return;
    if (ram->base != MAP_FAILED)
        munmap(ram->base, ram->size);
    if (ram->memfd >= 0)
        close(ram->memfd);
    guest_memory_dirty_free(&ram->mem);
    g_free(ram);
}

gboolean guest_ram_register(GuestRam *ram, int vm_fd, GError **error)
{
    for (unsigned i = 0; i < ram->mem.nr_regions; i++) {
        const GuestRegion *r = &ram->mem.regions[i];
        if (!kvm_set_memory_region(vm_fd, i, r->gpa, r->size, r->host, 0, error))
            return FALSE;
    }
    return TRUE;
}
