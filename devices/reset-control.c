/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reset control register ("reset-control"), one byte at port 0xcf9 as in
 * the PIIX/ICH chipsets; the FADT's RESET_REG points here too. Writing
 * bit 2 (RST_CPU) asks the machine for a reset. Reads give the last value
 * written without bit 2, which the chipset does not keep either.
 */
#include <stddef.h>

#include "vireo/device.h"
#include "vireo/util.h"

#define RESET_CONTROL_WINDOW_LEN        1
#define RESET_CONTROL_STATE_VERSION     1
#define RESET_CONTROL_RST_CPU           0x04

typedef struct ResetControl {
    Device dev;
    MachineControl *machine;    /* immutable after create */
    uint8_t value;              /* dev->lock; without RST_CPU */
} ResetControl;

G_STATIC_ASSERT(offsetof(ResetControl, dev) == 0);

static const DeviceType reset_control_type;

static ResetControl *reset_control_from_dev(Device *dev)
{
    g_assert(dev->type == &reset_control_type);
    return (ResetControl *)dev;
}

static void reset_control_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    ResetControl *s = reset_control_from_dev(dev);
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++) {
        if (off + i < RESET_CONTROL_WINDOW_LEN) {
            out[i] = s->value;
        } else {
            vireo_guest_warn("%s: read beyond the register at offset %" G_GUINT64_FORMAT,
                             dev->id, off + i);
            out[i] = 0xff;
        }
    }
}

static void reset_control_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    ResetControl *s = reset_control_from_dev(dev);
    const uint8_t *in = buf;

    for (size_t i = 0; i < len; i++) {
        if (off + i >= RESET_CONTROL_WINDOW_LEN) {
            vireo_guest_warn("%s: write beyond the register at offset %" G_GUINT64_FORMAT,
                             dev->id, off + i);
            continue;
        }
        s->value = in[i] & ~RESET_CONTROL_RST_CPU;
        if (in[i] & RESET_CONTROL_RST_CPU) {
            g_debug("%s: guest requested a system reset (0x%02x)", dev->id, in[i]);
            machine_control_request(s->machine, MACHINE_REQUEST_RESET, 0);
        }
    }
}

static void reset_control_reset(Device *dev)
{
    reset_control_from_dev(dev)->value = 0;
}

static gboolean reset_control_save(Device *dev, StateWriter *w, GError **error)
{
    ResetControl *s = reset_control_from_dev(dev);

    state_writer_begin_section(w, dev->id, RESET_CONTROL_STATE_VERSION);
    state_write_u8(w, "value", s->value);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean reset_control_load(Device *dev, StateReader *r, GError **error)
{
    ResetControl *s = reset_control_from_dev(dev);
    uint32_t version;
    uint8_t value;

    if (!state_reader_begin_section(r, dev->id, RESET_CONTROL_STATE_VERSION, &version, error) ||
        !state_read_u8(r, "value", &value, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    if (value & RESET_CONTROL_RST_CPU) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': value 0x%02x has RST_CPU set", dev->id, value);
        return FALSE;
    }
    s->value = value;
    return TRUE;
}

static void reset_control_free(Device *dev)
{
    ResetControl *s = reset_control_from_dev(dev);

    device_cleanup(dev);
    g_free(s);
}

static Device *reset_control_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    ResetControl *s;

    if (!opts || !device_options_check_known(opts, known, reset_control_type.name, error))
        return NULL;
    s = g_new0(ResetControl, 1);
    device_init(&s->dev, &reset_control_type, env->id);
    s->machine = env->machine;
    return &s->dev;
}

static const DeviceOps reset_control_ops = {
    .read = reset_control_read,
    .write = reset_control_write,
    .reset = reset_control_reset,
    .save = reset_control_save,
    .load = reset_control_load,
    .free = reset_control_free,
};

static const DeviceType reset_control_type = {
    .name = "reset-control",
    .description = "Reset control register, port 0xcf9 (1-byte I/O window)",
    .ops = &reset_control_ops,
    .create = reset_control_create,
};
DEVICE_TYPE_REGISTER(reset_control_type);
