/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Character backends (stdio, pty, file, unix socket, none) as a device such
 * as the UART sees them. The device is the "frontend".
 *
 * Threads: write() is called by the device from a vCPU thread with the
 * device lock held; it only copies into a buffer and never blocks. The
 * frontend callbacks run on the event loop thread, which takes the device
 * lock itself; the backend holds none of its own locks while calling them.
 */
#ifndef VIREO_CHARDEV_H
#define VIREO_CHARDEV_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

typedef struct CharBackend CharBackend;

typedef struct CharFrontendOps {
    /* How many input bytes the device can take now. */
    size_t (*can_receive)(void *opaque);
    /* Input bytes, at most what can_receive() returned. */
    void (*receive)(void *opaque, const uint8_t *buf, size_t len);
    /* Room in the output buffer again after write() accepted less than asked. */
    void (*writable)(void *opaque);
} CharFrontendOps;

typedef struct CharBackendOps {
    /* Queues output; returns how many bytes were taken (less when full). */
    size_t (*write)(CharBackend *be, const uint8_t *buf, size_t len);
    void (*set_frontend)(CharBackend *be, const CharFrontendOps *ops, void *opaque);
    /* The frontend has room again: resume reading input. */
    void (*accept_input)(CharBackend *be);
} CharBackendOps;

struct CharBackend {
    const CharBackendOps *ops;
};

static inline size_t char_backend_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    return be ? be->ops->write(be, buf, len) : len;
}

static inline void char_backend_set_frontend(CharBackend *be, const CharFrontendOps *ops,
                                             void *opaque)
{
    if (be)
        be->ops->set_frontend(be, ops, opaque);
}

static inline void char_backend_accept_input(CharBackend *be)
{
    if (be)
        be->ops->accept_input(be);
}

#endif
