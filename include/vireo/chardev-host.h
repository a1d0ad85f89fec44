/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host side of character backends: creates a CharBackend (chardev.h) from a
 * spec such as "stdio", "pty", "file:PATH", "unix:PATH" or "none".
 *
 * - stdio: output to stdout, input from stdin. A terminal is put in raw mode
 *   (Ctrl-C still ends vireo-vmm, as with QEMU's default) and restored.
 * - pty: a new pseudo-terminal; its name is reported on stderr. Output is
 *   dropped while nobody has it open.
 * - file:PATH: output appended to PATH (created 0600 if missing); no input.
 * - unix:PATH: a listening UNIX socket; one client at a time gets output and
 *   sends input. Output is dropped while no client is connected.
 * - none: output dropped, no input.
 * Output waiting for a slow reader is buffered (64 KiB); beyond that the
 * device is told to wait (back-pressure), except where output is dropped.
 */
#ifndef VIREO_CHARDEV_HOST_H
#define VIREO_CHARDEV_HOST_H

#include <glib.h>

#include "vireo/chardev.h"
#include "vireo/loop.h"

typedef struct Chardev Chardev;

Chardev *chardev_new(const char *spec, const char *label, Loop *loop, GError **error);
void chardev_free(Chardev *chr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Chardev, chardev_free)

CharBackend *chardev_backend(Chardev *chr);
/* Path of the pty or socket, or NULL. */
const char *chardev_path(const Chardev *chr);
/* Writes out what is buffered, waiting at most @timeout_ms (at exit). */
void chardev_flush(Chardev *chr, int timeout_ms);

#endif
