/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vmm/bus.c with a recording device: dispatch, offsets, bounds, overlaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "vireo/bus.h"
#include "vireo/util.h"

typedef struct RecordingDevice {
    Device dev;
    uint64_t last_off;
    size_t last_len;
    uint64_t last_value;
    unsigned reads, writes;
} RecordingDevice;

static void rec_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    RecordingDevice *d = (RecordingDevice *)dev;
    d->reads++;
    d->last_off = off;
    d->last_len = len;
    /* Reads return the offset, so a test can see where it landed. */
    vireo_le_store(buf, len, 0x1000 + off);
}

static void rec_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    RecordingDevice *d = (RecordingDevice *)dev;
    d->writes++;
    d->last_off = off;
    d->last_len = len;
    d->last_value = vireo_le_load(buf, len);
}

static void rec_free(Device *dev)
{
    device_cleanup(dev);
    g_free(dev);
}

static const DeviceOps rec_ops = { .read = rec_read, .write = rec_write, .free = rec_free };
static const DeviceType rec_type = { .name = "recording", .ops = &rec_ops };

static RecordingDevice *rec_new(const char *id)
{
    RecordingDevice *d = g_new0(RecordingDevice, 1);
    device_init(&d->dev, &rec_type, id);
    return d;
}

static void test_dispatch_offsets(void **unused)
{
    g_autoptr(Bus) bus = bus_new("test", 1);
    RecordingDevice *a = rec_new("a"), *b = rec_new("b");
    uint8_t buf[8];

    assert_true(bus_add(bus, 0x100, 8, &a->dev, 0, NULL));
    /* A second window of the same device, reaching it at offset 4. */
    assert_true(bus_add(bus, 0x200, 1, &a->dev, 4, NULL));
    assert_true(bus_add(bus, 0x108, 8, &b->dev, 0, NULL));

    assert_true(bus_read(bus, 0x103, buf, 2));
    assert_int_equal(vireo_le_load(buf, 2), 0x1003);
    assert_int_equal(a->last_off, 3);
    assert_true(bus_write(bus, 0x200, "\x5a", 1));
    assert_int_equal(a->last_off, 4);
    assert_int_equal(a->last_value, 0x5a);
    assert_true(bus_write(bus, 0x10c, "\x01\x02\x03\x04", 4));
    assert_int_equal(b->last_off, 4);
    assert_int_equal(b->last_value, 0x04030201);
    device_free(&a->dev);
    device_free(&b->dev);
}

static void test_unassigned_and_straddling(void **unused)
{
    g_autoptr(Bus) bus = bus_new("test", 1);
    RecordingDevice *a = rec_new("a");
    uint8_t buf[8];

    assert_true(bus_add(bus, 0x100, 4, &a->dev, 0, NULL));
    /* Nothing there: all ones, like a PC. */
    assert_false(bus_read(bus, 0x50, buf, 4));
    assert_int_equal(vireo_le_load(buf, 4), 0xffffffff);
    /* Crossing the end of the window never reaches the device. */
    assert_false(bus_read(bus, 0x102, buf, 4));
    assert_false(bus_write(bus, 0x103, "\0\0", 2));
    /* Odd lengths are refused. */
    assert_false(bus_read(bus, 0x100, buf, 3));
    assert_int_equal(a->reads, 0);
    assert_int_equal(a->writes, 0);
    /* Last byte of the window still works. */
    assert_true(bus_read(bus, 0x103, buf, 1));
    device_free(&a->dev);
}

static void test_overlap_refused(void **unused)
{
    g_autoptr(Bus) bus = bus_new("test", 1);
    RecordingDevice *a = rec_new("a");
    g_autoptr(GError) err = NULL;

    assert_true(bus_add(bus, 0x100, 0x10, &a->dev, 0, NULL));
    assert_false(bus_add(bus, 0x10f, 1, &a->dev, 0, &err));
    assert_non_null(strstr(err->message, "overlaps"));
    g_clear_error(&err);
    assert_false(bus_add(bus, 0xf0, 0x11, &a->dev, 0, &err));
    g_clear_error(&err);
    assert_false(bus_add(bus, UINT64_MAX - 1, 4, &a->dev, 0, &err));
    g_clear_error(&err);
    assert_true(bus_add(bus, 0x110, 1, &a->dev, 0, NULL));
    /* Only the owner's region goes. */
    assert_false(bus_remove(bus, 0x110, NULL));
    assert_true(bus_remove(bus, 0x110, &a->dev));
    assert_false(bus_remove(bus, 0x110, &a->dev));
    device_free(&a->dev);
}

static void test_many_regions(void **unused)
{
    g_autoptr(Bus) bus = bus_new("test", 1);
    RecordingDevice *a = rec_new("a");
    uint8_t buf[1];

    /* Inserted out of order; lookups must still find each one. */
    for (int i = 99; i >= 0; i--)
        assert_true(bus_add(bus, i * 16, 8, &a->dev, i, NULL));
    for (int i = 0; i < 100; i++) {
        assert_true(bus_read(bus, i * 16 + 7, buf, 1));
        assert_int_equal(a->last_off, i + 7);
        assert_false(bus_read(bus, i * 16 + 8, buf, 1));
    }
    device_free(&a->dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_offsets),
        cmocka_unit_test(test_unassigned_and_straddling),
        cmocka_unit_test(test_overlap_refused),
        cmocka_unit_test(test_many_regions),
    };
    /* The bus logs guest mistakes; keep the output for real failures. */
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
