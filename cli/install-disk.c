/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Disk images for vireo-install: a new qcow2 through the storage library
 * (qcow2_create, include/vireo/qcow2.h), a new raw image as a sparse file,
 * and the format of an existing image from its first bytes. Built without
 * storage/, qcow2 images come from `qemu-img create -f qcow2` instead.
 *
 * The images are made on this host: with a UNIX socket the daemon runs
 * here too, so the paths are the same for both.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vireo/install-config.h"
#include "vireo/util.h"
#ifdef HAVE_STORAGE_QCOW2
#include "vireo/qcow2.h"
#endif

static const guint8 qcow2_magic[4] = { 'Q', 'F', 'I', 0xfb };

char *install_disk_detect_format(const char *path, GError **error)
{
    autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    guint8 buf[4] = { 0 };
    ssize_t n;

    if (fd < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot open disk image '%s': %s", path, g_strerror(saved));
        return NULL;
    }
    n = read(fd, buf, sizeof(buf));
    return g_strdup(n == 4 && !memcmp(buf, qcow2_magic, 4) ? "qcow2" : "raw");
}

static gboolean create_raw(const char *path, guint64 size, GError **error)
{
    autoclose int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot create disk image '%s': %s", path, g_strerror(saved));
        if (fd >= 0)
            unlink(path);
        return FALSE;
    }
    return TRUE;
}

static gboolean create_qcow2(const char *path, guint64 size, GError **error)
{
#ifdef HAVE_STORAGE_QCOW2
    Qcow2CreateOptions opts = { .size = size };

    if (!qcow2_create(path, &opts, error)) {
        g_prefix_error(error, "cannot create disk image '%s': ", path);
        return FALSE;
    }
    return TRUE;
#else
    g_autofree char *sz = g_strdup_printf("%" G_GUINT64_FORMAT, size);
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", path, sz, NULL };
    g_autofree char *err = NULL;
    int status = 0;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH |
                      G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err, &status, error))
        return FALSE;
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot create disk image '%s': %s",
                    path, g_strstrip(err));
        return FALSE;
    }
    return TRUE;
#endif
}

gboolean install_disk_create(const InstallDisk *disk, GError **error)
{
    g_autofree char *dir = g_path_get_dirname(disk->path);

    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                    "cannot create disk image '%s': directory '%s' does not exist",
                    disk->path, dir);
        return FALSE;
    }
    if (!strcmp(disk->format, "raw"))
        return create_raw(disk->path, disk->size_bytes, error);
    return create_qcow2(disk->path, disk->size_bytes, error);
}
