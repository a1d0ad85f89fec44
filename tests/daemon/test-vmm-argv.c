/* SPDX-License-Identifier: GPL-2.0-or-later */
/* DomainDef -> vireo-vmm argv (daemon/vmm-argv.c): a pure function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vireo/util.h"
#include "vireo/vmm-argv.h"

static const VmmArgvPaths paths = {
    .vmm = "/usr/bin/vireo-vmm",
    .qmp_socket = "/run/vireo/vm/U/qmp.sock",
    .console_socket = "/run/vireo/vm/U/console.sock",
};

static DomainDef *parse(const char *devices, const char *extra)
{
    g_autofree char *xml = g_strdup_printf(
        "<domain type='kvm'><name>t</name>"
        "<uuid>11111111-2222-3333-4444-555555555555</uuid>"
        "<memory unit='KiB'>%s</memory><vcpu>2</vcpu>"
        "<os><type>hvm</type><kernel>/k</kernel><initrd>/i</initrd>"
        "<cmdline>console=ttyS0 quiet</cmdline></os>%s"
        "<devices>%s</devices></domain>",
        strstr(extra, "MEM") ? "100000" : "131072", strstr(extra, "MEM") ? "" : extra, devices);
    g_autoptr(GError) err = NULL;
    DomainDef *def = domain_def_parse_string(xml, DOMAIN_DEF_PARSE_INACTIVE, &err);

    if (!def)
        fail_msg("parse: %s", err->message);
    return def;
}

static char *joined(char **argv)
{
    return g_strjoinv(" ", argv);
}

static void test_basic(void **state)
{
    g_autoptr(DomainDef) def = parse("<serial type='pty'/>", "");
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) argv = vmm_argv_build(def, &paths, DOMAIN_RUN_CAPS_NONE, &err);
    g_autofree char *s = NULL;

    assert_non_null(argv);
    s = joined(argv);
    assert_string_equal(s, "/usr/bin/vireo-vmm --name t --kernel /k --initrd /i "
                        "--cmdline console=ttyS0 quiet --memory 128 --cpus 2 "
                        "--serial unix:/run/vireo/vm/U/console.sock "
                        "--qmp unix:/run/vireo/vm/U/qmp.sock -S");
    /* The cmdline stays one argument. */
    assert_string_equal(argv[8], "console=ttyS0 quiet");
    assert_true(vmm_argv_console_bridged(def));
}

static void test_serial_kinds(void **state)
{
    static const struct {
        const char *xml;
        const char *arg;
    } cases[] = {
        { "", "none" },
        { "<serial type='null'/>", "none" },
        { "<serial type='file'><source path='/var/log/c.log'/></serial>", "file:/var/log/c.log" },
        { "<serial type='unix'><source mode='bind' path='/tmp/s'/></serial>", "unix:/tmp/s" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(DomainDef) def = parse(cases[i].xml, "");
        g_auto(GStrv) argv = vmm_argv_build(def, &paths, 0, NULL);
        guint n;

        assert_non_null(argv);
        for (n = 0; argv[n] && strcmp(argv[n], "--serial"); n++)
            ;
        assert_non_null(argv[n]);
        assert_string_equal(argv[n + 1], cases[i].arg);
        assert_false(vmm_argv_console_bridged(def));
    }
}

static void test_refusals(void **state)
{
    static const struct {
        const char *devices;
        unsigned caps;
        const char *msg;
    } cases[] = {
        { "<graphics type='vnc'/>", 0, "graphics" },
        { "<serial type='unix'><source mode='connect' path='/tmp/s'/></serial>", 0,
          "mode='connect'" },
        { "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>", 0,
          "rng device" },
        { "<memballoon model='virtio'/>", 0, "memballoon" },
        { "<disk type='file'><source file='/d.img'/><target dev='vda'/></disk>",
          DOMAIN_RUN_RNG | DOMAIN_RUN_MEMBALLOON, "disk" },
        /* A PCI slot vireo-vmm would not give. */
        { "<rng model='virtio'><backend model='random'>/dev/urandom</backend>"
          "<address type='pci' domain='0' bus='0' slot='5' function='0'/></rng>",
          DOMAIN_RUN_RNG, "slot 5" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(DomainDef) def = parse(cases[i].devices, "");
        g_autoptr(GError) err = NULL;
        g_auto(GStrv) argv = vmm_argv_build(def, &paths, cases[i].caps, &err);

        assert_null(argv);
        assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED));
        assert_true(g_str_has_prefix(err->message, "unsupported configuration: "));
        if (!strstr(err->message, cases[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, err->message, cases[i].msg);
    }
}

static void test_devices_and_policies(void **state)
{
    g_autoptr(DomainDef) def = parse(
        "<memballoon model='virtio' autodeflate='on'><stats period='5'/></memballoon>"
        "<rng model='virtio'><rate bytes='1024' period='1000'/>"
        "<backend model='random'>/dev/urandom</backend></rng>",
        "<on_reboot>destroy</on_reboot>");
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) argv = vmm_argv_build(def, &paths, DOMAIN_RUN_RNG | DOMAIN_RUN_MEMBALLOON, &err);
    g_autofree char *s = NULL;

    if (!argv)
        fail_msg("%s", err->message);
    s = joined(argv);
    assert_non_null(strstr(s, " --no-reboot "));
    /* In PCI slot order: the balloon got slot 1, the rng slot 2 (domain-xml.md). */
    assert_non_null(strstr(s, "--device virtio-balloon,stats-interval=5,deflate-on-oom=on "
                              "--device virtio-rng,max-bytes=1024,period=1000"));
}

static void test_memory_rounding(void **state)
{
    g_autoptr(DomainDef) def = parse("", "MEM");
    g_auto(GStrv) argv = vmm_argv_build(def, &paths, 0, NULL);
    g_autofree char *s = joined(argv);

    /* 100000 KiB is 97.66 MiB: rounded up. */
    assert_non_null(strstr(s, "--memory 98 "));
}

static void test_caps_from_help(void **state)
{
    assert_int_equal(vmm_argv_caps_from_device_list(NULL), 0);
    assert_int_equal(vmm_argv_caps_from_device_list(
                         "i8042            i8042 keyboard controller\n"
                         "virtio-balloon   virtio memory balloon\n"
                         "virtio-rng       virtio entropy\n"
                         "virtio-rngx      not this one\n"),
                     DOMAIN_RUN_RNG | DOMAIN_RUN_MEMBALLOON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_serial_kinds),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_devices_and_policies),
        cmocka_unit_test(test_memory_rounding),
        cmocka_unit_test(test_caps_from_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
