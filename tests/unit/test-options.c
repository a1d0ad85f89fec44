/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vireo-vmm's command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "vireo/layout.h"
#include "vireo/options.h"
#include "vireo/util.h"

static VmmOptions *parse(GError **error, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    va_list ap;
    const char *a;

    g_ptr_array_add(argv, "vireo-vmm");
    va_start(ap, error);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    return vmm_options_parse(argv->len - 1, (char **)argv->pdata, error);
}

static void test_full(void **unused)
{
    g_autoptr(VmmOptions) o = parse(NULL, "--kernel", "k", "--initrd", "i", "--cmdline",
                                    "console=ttyS0", "--memory", "2G", "--cpus", "4",
                                    "--serial", "none", "--qmp", "unix:/tmp/q",
                                    "--debug-exit", "--name", "vm1", "--no-reboot", "-S",
                                    NULL);
    assert_non_null(o);
    assert_string_equal(o->machine->kernel, "k");
    assert_string_equal(o->machine->initrd, "i");
    assert_string_equal(o->machine->cmdline, "console=ttyS0");
    assert_true(o->machine->memory == 2 * LAYOUT_GIB);
    assert_int_equal(o->machine->cpus, 4);
    assert_string_equal(o->machine->serial, "none");
    assert_string_equal(o->qmp, "unix:/tmp/q");
    assert_true(o->machine->debug_exit && o->machine->no_reboot && o->machine->start_paused);
    assert_string_equal(o->machine->name, "vm1");
}

static void test_devices(void **unused)
{
    g_autoptr(VmmOptions) o = parse(NULL, "--kernel", "k", "--device", "pci-testdev,id=t0",
                                    "--rng", "--rng=max-bytes=1K,period=500",
                                    "--device", "virtio-rng,max-bytes=64", NULL);
    const MachineDeviceSpec *d;

    assert_non_null(o);
    assert_int_equal(o->machine->devices->len, 4);
    /* In command-line order: that order is the PCI slot order. */
    d = g_ptr_array_index(o->machine->devices, 0);
    assert_string_equal(d->type, "pci-testdev");
    assert_string_equal(d->id, "t0");
    assert_null(d->options);
    d = g_ptr_array_index(o->machine->devices, 1);
    assert_string_equal(d->type, "virtio-rng");
    assert_null(d->options);
    d = g_ptr_array_index(o->machine->devices, 2);
    assert_string_equal(d->options, "max-bytes=1K,period=500");
    d = g_ptr_array_index(o->machine->devices, 3);
    assert_null(d->id);
    assert_string_equal(d->options, "max-bytes=64");
}

static void test_defaults(void **unused)
{
    g_autoptr(VmmOptions) o = parse(NULL, "--kernel=k", NULL);
    assert_non_null(o);
    assert_true(o->machine->memory == 128 * LAYOUT_MIB);
    assert_int_equal(o->machine->cpus, 1);
    assert_string_equal(o->machine->serial, "stdio");
    assert_null(o->qmp);
    assert_false(o->machine->debug_exit);
}

static void expect_error(const char *needle, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(VmmOptions) o = NULL;
    va_list ap;
    const char *a;

    g_ptr_array_add(argv, "vireo-vmm");
    va_start(ap, needle);
    while ((a = va_arg(ap, const char *)))
        g_ptr_array_add(argv, (gpointer)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    o = vmm_options_parse(argv->len - 1, (char **)argv->pdata, &err);
    assert_null(o);
    if (!strstr(err->message, needle))
        fail_msg("'%s' does not mention '%s'", err->message, needle);
}

static void test_errors(void **unused)
{
    expect_error("--kernel FILE is required", NULL);
    expect_error("--memory 'lots'", "--kernel", "k", "--memory", "lots", NULL);
    expect_error("--memory '0'", "--kernel", "k", "--memory", "0", NULL);
    expect_error("--memory '12T'", "--kernel", "k", "--memory", "12T", NULL);
    expect_error("--cpus '0'", "--kernel", "k", "--cpus", "0", NULL);
    expect_error("--cpus '2x'", "--kernel", "k", "--cpus", "2x", NULL);
    expect_error("--cpus '1000'", "--kernel", "k", "--cpus", "1000", NULL);
    expect_error("unknown option '--frobnicate'", "--kernel", "k", "--frobnicate", NULL);
    expect_error("needs a value", "--kernel", NULL);
    expect_error("expected unix:PATH", "--kernel", "k", "--qmp", "tcp:1:2", NULL);
    expect_error("unexpected argument 'extra'", "--kernel", "k", "extra", NULL);
    expect_error("--device ',x=1'", "--kernel", "k", "--device", ",x=1", NULL);
    expect_error("id must be", "--kernel", "k", "--device", "virtio-rng,id=a/b", NULL);
}

static void test_memory_units(void **unused)
{
    uint64_t b;
    assert_true(vmm_parse_memory("512", &b, NULL));
    assert_true(b == 512 * LAYOUT_MIB);
    assert_true(vmm_parse_memory("512M", &b, NULL));
    assert_true(b == 512 * LAYOUT_MIB);
    assert_true(vmm_parse_memory("3g", &b, NULL));
    assert_true(b == 3 * LAYOUT_GIB);
    assert_false(vmm_parse_memory("-1", &b, NULL));
    assert_false(vmm_parse_memory("", &b, NULL));
    assert_false(vmm_parse_memory("99999999999999999999", &b, NULL));
}

/* --balloon and --vsock spell --device virtio-balloon and virtio-vsock, as --rng does. */
static void test_balloon_vsock(void **unused)
{
    g_autoptr(VmmOptions) o = parse(NULL, "--kernel", "k", "--balloon",
                                    "--balloon=deflate-on-oom=on", "--vsock",
                                    "cid=3,socket=/tmp/v.sock", NULL);
    const MachineDeviceSpec *d;

    assert_non_null(o);
    assert_int_equal(o->machine->devices->len, 3);
    d = g_ptr_array_index(o->machine->devices, 0);
    assert_string_equal(d->type, "virtio-balloon");
    assert_null(d->options);
    d = g_ptr_array_index(o->machine->devices, 1);
    assert_string_equal(d->options, "deflate-on-oom=on");
    d = g_ptr_array_index(o->machine->devices, 2);
    assert_string_equal(d->type, "virtio-vsock");
    assert_string_equal(d->options, "cid=3,socket=/tmp/v.sock");
    expect_error("needs a value", "--kernel", "k", "--vsock", NULL);
}

/* --disk spells --device virtio-blk; disks keep their order among the other devices. */
static void test_disk(void **unused)
{
    g_autoptr(VmmOptions) o = parse(NULL, "--kernel", "k", "--disk", "path=/a.img", "--rng",
                                    "--disk", "path=/b.qcow2,format=qcow2,readonly=on,queues=2",
                                    NULL);
    const MachineDeviceSpec *d;

    assert_non_null(o);
    assert_int_equal(o->machine->devices->len, 3);
    d = g_ptr_array_index(o->machine->devices, 0);
    assert_string_equal(d->type, "virtio-blk");
    assert_string_equal(d->options, "path=/a.img");
    d = g_ptr_array_index(o->machine->devices, 1);
    assert_string_equal(d->type, "virtio-rng");
    d = g_ptr_array_index(o->machine->devices, 2);
    assert_string_equal(d->type, "virtio-blk");
    assert_string_equal(d->options, "path=/b.qcow2,format=qcow2,readonly=on,queues=2");
    expect_error("needs a value", "--kernel", "k", "--disk", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_balloon_vsock),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_memory_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
