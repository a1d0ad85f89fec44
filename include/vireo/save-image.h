/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireod's save images (virsh save, managedsave): a small header carrying
 * the domain XML, then vireo-vmm's own migration stream.
 *
 *   0  char[8]  "VIREOSAV"
 *   8  u32      version (1)
 *  12  u32      flags: bit 0 = the domain is to run after restore
 *  16  u32      XML length in bytes (no NUL)
 *  20  u32      reserved (0)
 *  24  u64      offset of the stream: a multiple of 4096 after the XML
 *  32  XML, then zeros up to the offset, then the stream
 *
 * Integers are little-endian. The stream starts page-aligned so that
 * vireo-vmm reads and writes it as "file:PATH,offset=N" without knowing
 * the header.
 */
#ifndef VIREO_SAVE_IMAGE_H
#define VIREO_SAVE_IMAGE_H

#include <glib.h>

#define SAVE_IMAGE_MAGIC "VIREOSAV"
#define SAVE_IMAGE_VERSION 1
#define SAVE_IMAGE_ALIGN 4096
#define SAVE_IMAGE_XML_MAX (16 * 1024 * 1024)

typedef struct SaveImageHeader {
    gboolean running;
    char *xml;
    guint64 data_offset;
} SaveImageHeader;

void save_image_header_free(SaveImageHeader *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SaveImageHeader, save_image_header_free)

/*
 * Writes the header and padding at the start of @fd (the stream follows
 * at the returned offset) and fsyncs. *@data_offset: where the stream goes.
 */
gboolean save_image_write_header(int fd, const char *xml, gboolean running,
                                 guint64 *data_offset, GError **error);
/*
 * Reads and checks the header of @path. Errors: G_FILE_ERROR (cannot
 * open or read), VIREO_ERROR_INVALID_ARGUMENT (not a Vireo save image,
 * unknown version, truncated).
 */
SaveImageHeader *save_image_read_header(const char *path, GError **error);
/* Rewrites the running flag in place (save-image-edit --running/--paused). */
gboolean save_image_set_running(const char *path, gboolean running, GError **error);

#endif
