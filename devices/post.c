/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * POST code sink ("post-sink"), port 0x80. Firmware writes progress codes
 * here, and Linux writes it as an I/O delay (outb_p() and io_delay), so it
 * is busy: writes are kept and dropped silently, never logged. Reads give
 * the last value, like a POST card's display.
 */
#include <stddef.h>

#include "vireo/device.h"
#include "vireo/util.h"

#define POST_STATE_VERSION  1

typedef struct Post {
    Device dev;
    uint8_t code;               /* dev->lock */
} Post;

G_STATIC_ASSERT(offsetof(Post, dev) == 0);

static const DeviceType post_type;

static Post *post_from_dev(Device *dev)
{
    g_assert(dev->type == &post_type);
    return (Post *)dev;
}

static void post_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    Post *s = post_from_dev(dev);
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++)
        out[i] = s->code;
}

static void post_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    Post *s = post_from_dev(dev);

    /* The last byte written is what a POST card would show. */
    s->code = ((const uint8_t *)buf)[len - 1];
}

static void post_reset(Device *dev)
{
    post_from_dev(dev)->code = 0;
}

static gboolean post_save(Device *dev, StateWriter *w, GError **error)
{
    state_writer_begin_section(w, dev->id, POST_STATE_VERSION);
    state_write_u8(w, "code", post_from_dev(dev)->code);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean post_load(Device *dev, StateReader *r, GError **error)
{
    uint32_t version;
    uint8_t code;

    if (!state_reader_begin_section(r, dev->id, POST_STATE_VERSION, &version, error) ||
        !state_read_u8(r, "code", &code, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    post_from_dev(dev)->code = code;
    return TRUE;
}

static void post_free(Device *dev)
{
    Post *s = post_from_dev(dev);

    device_cleanup(dev);
    g_free(s);
}

static Device *post_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    Post *s;

    if (!opts || !device_options_check_known(opts, known, post_type.name, error))
        return NULL;
    s = g_new0(Post, 1);
    device_init(&s->dev, &post_type, env->id);
    return &s->dev;
}

static const DeviceOps post_ops = {
    .read = post_read,
    .write = post_write,
    .reset = post_reset,
    .save = post_save,
    .load = post_load,
    .free = post_free,
};

static const DeviceType post_type = {
    .name = "post-sink",
    .description = "POST code port 0x80; writes are kept and dropped silently "
                   "(1-byte I/O window)",
    .ops = &post_ops,
    .create = post_create,
};
DEVICE_TYPE_REGISTER(post_type);
