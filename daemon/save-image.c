/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Save image header (include/vireo/save-image.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vireo/save-image.h"
#include "vireo/util.h"

#define HEADER_LEN 32

void save_image_header_free(SaveImageHeader *h)
{
    if (!h)
        return;
    g_free(h->xml);
    g_free(h);
}

static gboolean sys_error(GError **error, const char *what, const char *path)
{
    int saved = errno;

    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "%s '%s': %s", what,
                path, g_strerror(saved));
    return FALSE;
}

static gboolean write_all_at(int fd, const void *buf, gsize len, off_t off)
{
    const guint8 *p = buf;

    while (len) {
        ssize_t n = pwrite(fd, p, len, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        p += n;
        len -= n;
        off += n;
    }
    return TRUE;
}

gboolean save_image_write_header(int fd, const char *xml, gboolean running,
                                 guint64 *data_offset, GError **error)
{
    gsize xml_len = strlen(xml);
    guint8 hdr[HEADER_LEN] = { 0 };
    guint32 v;
    guint64 off;

    if (xml_len > SAVE_IMAGE_XML_MAX) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "domain XML too large for a save image (%zu bytes)", xml_len);
        return FALSE;
    }
    off = (HEADER_LEN + xml_len + SAVE_IMAGE_ALIGN - 1) / SAVE_IMAGE_ALIGN * SAVE_IMAGE_ALIGN;
    memcpy(hdr, SAVE_IMAGE_MAGIC, 8);
    v = GUINT32_TO_LE(SAVE_IMAGE_VERSION);
    memcpy(hdr + 8, &v, 4);
    v = GUINT32_TO_LE(running ? 1 : 0);
    memcpy(hdr + 12, &v, 4);
    v = GUINT32_TO_LE((guint32)xml_len);
    memcpy(hdr + 16, &v, 4);
    off = GUINT64_TO_LE(off);
    memcpy(hdr + 24, &off, 8);
    off = GUINT64_FROM_LE(off);
    /* ftruncate gives the zero padding; the stream overwrites nothing before @off. */
    if (ftruncate(fd, off) < 0 || !write_all_at(fd, hdr, HEADER_LEN, 0) ||
        !write_all_at(fd, xml, xml_len, HEADER_LEN) || fsync(fd) < 0)
        return sys_error(error, "cannot write the save image header to", "fd");
    *data_offset = off;
    return TRUE;
}

static gboolean bad_image(GError **error, const char *path, const char *why)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "'%s' %s", path, why);
    return FALSE;
}

static gboolean read_all_at(int fd, void *buf, gsize len, off_t off)
{
    guint8 *p = buf;

    while (len) {
        ssize_t n = pread(fd, p, len, off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        p += n;
        len -= n;
        off += n;
    }
    return TRUE;
}

SaveImageHeader *save_image_read_header(const char *path, GError **error)
{
    g_autoptr(SaveImageHeader) h = g_new0(SaveImageHeader, 1);
    autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    guint8 hdr[HEADER_LEN];
    guint32 version, flags, xml_len;
    guint64 off;
    struct stat st;

    if (fd < 0) {
        sys_error(error, "Failed to open file", path);
        return NULL;
    }
    if (fstat(fd, &st) < 0) {
        sys_error(error, "cannot stat", path);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < HEADER_LEN || !read_all_at(fd, hdr, HEADER_LEN, 0) ||
        memcmp(hdr, SAVE_IMAGE_MAGIC, 8) != 0) {
        bad_image(error, path, "is not a Vireo save image (image magic is incorrect)");
        return NULL;
    }
    memcpy(&version, hdr + 8, 4);
    memcpy(&flags, hdr + 12, 4);
    memcpy(&xml_len, hdr + 16, 4);
    memcpy(&off, hdr + 24, 8);
    version = GUINT32_FROM_LE(version);
    flags = GUINT32_FROM_LE(flags);
    xml_len = GUINT32_FROM_LE(xml_len);
    off = GUINT64_FROM_LE(off);
    if (version != SAVE_IMAGE_VERSION) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "'%s': save image version %u is not supported (expected %u)", path,
                    version, SAVE_IMAGE_VERSION);
        return NULL;
    }
    if (xml_len == 0 || xml_len > SAVE_IMAGE_XML_MAX || off % SAVE_IMAGE_ALIGN ||
        off < (guint64)HEADER_LEN + xml_len || (guint64)st.st_size <= off) {
        bad_image(error, path, "is a damaged or truncated save image");
        return NULL;
    }
    h->running = flags & 1;
    h->data_offset = off;
    h->xml = g_malloc(xml_len + 1);
    if (!read_all_at(fd, h->xml, xml_len, HEADER_LEN)) {
        bad_image(error, path, "is a truncated save image");
        return NULL;
    }
    h->xml[xml_len] = '\0';
    if (strlen(h->xml) != xml_len || !g_utf8_validate(h->xml, xml_len, NULL)) {
        bad_image(error, path, "has a damaged domain XML");
        return NULL;
    }
    return g_steal_pointer(&h);
}

gboolean save_image_set_running(const char *path, gboolean running, GError **error)
{
    g_autoptr(SaveImageHeader) h = save_image_read_header(path, error);
    autoclose int fd = -1;
    guint32 v = GUINT32_TO_LE(running ? 1 : 0);

    if (!h)
        return FALSE;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || !write_all_at(fd, &v, 4, 12) || fsync(fd) < 0)
        return sys_error(error, "cannot update", path);
    return TRUE;
}
