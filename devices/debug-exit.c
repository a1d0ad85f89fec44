/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QEMU's isa-debug-exit ("debug-exit"), one byte at port 0x501: a write of
 * v asks the machine to end with exit status (v << 1) | 1, so a test can
 * never be mistaken for a clean exit of 0. Reads return all ones. There is
 * no state, but save/load still exist (with an empty section) so that a
 * VM with the device can migrate.
 */
#include <stddef.h>

#include "vireo/device.h"
#include "vireo/util.h"

#define DEBUG_EXIT_WINDOW_LEN       1
#define DEBUG_EXIT_STATE_VERSION    1

typedef struct DebugExit {
    Device dev;
    MachineControl *machine;    /* immutable after create */
} DebugExit;

G_STATIC_ASSERT(offsetof(DebugExit, dev) == 0);

static const DeviceType debug_exit_type;

static DebugExit *debug_exit_from_dev(Device *dev)
{
    g_assert(dev->type == &debug_exit_type);
    return (DebugExit *)dev;
}

static void debug_exit_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++)
        out[i] = 0xff;
}

static void debug_exit_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    DebugExit *s = debug_exit_from_dev(dev);
    /* QEMU takes the whole access as the value; ours is one byte wide. */
    uint64_t v = vireo_le_load(buf, len) & 0x3fffffff;

    if (off >= DEBUG_EXIT_WINDOW_LEN) {
        vireo_guest_warn("%s: write beyond the register at offset %" G_GUINT64_FORMAT,
                         dev->id, off);
        return;
    }
    g_debug("%s: guest wrote 0x%" G_GINT64_MODIFIER "x, exit status %d", dev->id, v,
            (int)((v << 1) | 1));
    machine_control_request(s->machine, MACHINE_REQUEST_EXIT, (int)((v << 1) | 1));
}

static gboolean debug_exit_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, DEBUG_EXIT_STATE_VERSION);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean debug_exit_load(Device *dev, StateReader *r, GError **error)
{
    uint32_t version;

    return state_reader_begin_section(r, dev->id, DEBUG_EXIT_STATE_VERSION, &version, error) &&
           state_reader_end_section(r, error);
}

static void debug_exit_free(Device *dev)
{
    DebugExit *s = debug_exit_from_dev(dev);

    device_cleanup(dev);
    g_free(s);
}

static Device *debug_exit_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    DebugExit *s;

    if (!opts || !device_options_check_known(opts, known, debug_exit_type.name, error))
        return NULL;
    s = g_new0(DebugExit, 1);
    device_init(&s->dev, &debug_exit_type, env->id);
    s->machine = env->machine;
    return &s->dev;
}

static const DeviceOps debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
    .save = debug_exit_save,
    .load = debug_exit_load,
    .free = debug_exit_free,
};

static const DeviceType debug_exit_type = {
    .name = "debug-exit",
    .description = "isa-debug-exit: a write of v exits with status (v << 1) | 1 "
                   "(1-byte I/O window)",
    .ops = &debug_exit_ops,
    .create = debug_exit_create,
};
DEVICE_TYPE_REGISTER(debug_exit_type);
