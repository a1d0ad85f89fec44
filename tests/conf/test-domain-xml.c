/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Domain XML round trips and failures, libvirt's genericxml2xmltest style:
 *
 *   XML2XML(name)            tests/data/domain/<name>.xml formats back identically
 *   XML2XML_DIFFERENT(name)  ... formats as <name>.out.xml (defaults filled in)
 *   XML2XML_LIVE(name)       live XML (ids, pty paths, aliases) formats back
 *                            identically, and as <name>.inactive.xml with
 *                            DOMAIN_DEF_FORMAT_INACTIVE
 *   XML_PARSE_FAIL(name, code, message)   fail-<name>.xml is refused with
 *                            exactly that error
 *   XML_RUN_FAIL(name, caps, message)     run-<name>.xml parses but
 *                            domain_def_check_runnable() refuses it
 *
 * Every expected output is also parsed again and must format identically
 * (formatting is a fixed point). VIREO_TEST_REGENERATE=1 rewrites the
 * expected files instead of failing; review the diff line by line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vireo/conf-value.h"
#include "vireo/domain-conf.h"
#include "vireo/util.h"

#ifndef DOMAIN_DATA_DIR
#error "DOMAIN_DATA_DIR must be set by meson"
#endif
#ifndef REFERENCE_DIR
#define REFERENCE_DIR ""
#endif

typedef enum { T_SAME, T_DIFFERENT, T_LIVE, T_FAIL, T_RUN_FAIL } TestKind;

typedef struct XmlCase {
    const char *name;
    TestKind kind;
    int code;
    unsigned caps;
    const char *message;
} XmlCase;

static char *data_path(const char *name, const char *suffix)
{
    return g_strdup_printf("%s/%s%s", DOMAIN_DATA_DIR, name, suffix);
}

static char *read_file(const char *path)
{
    g_autoptr(GError) err = NULL;
    char *s = NULL;

    if (!g_file_get_contents(path, &s, NULL, &err))
        fail_msg("cannot read %s: %s", path, err->message);
    return s;
}

static gboolean regenerate(void)
{
    const char *v = g_getenv("VIREO_TEST_REGENERATE");

    return v && strcmp(v, "1") == 0;
}

/* Compare, or rewrite the expected file under VIREO_TEST_REGENERATE=1. */
static void expect_output(const char *path, const char *actual)
{
    g_autofree char *expected = NULL;

    if (regenerate()) {
        g_autoptr(GError) err = NULL;
        if (!g_file_test(path, G_FILE_TEST_EXISTS) ||
            (expected = read_file(path), strcmp(expected, actual) != 0)) {
            if (!g_file_set_contents(path, actual, -1, &err))
                fail_msg("cannot write %s: %s", path, err->message);
            print_message("regenerated %s\n", path);
        }
        return;
    }
    expected = read_file(path);
    if (strcmp(expected, actual) != 0) {
        g_auto(GStrv) e = g_strsplit(expected, "\n", -1);
        g_auto(GStrv) a = g_strsplit(actual, "\n", -1);
        guint i = 0;

        while (e[i] && a[i] && strcmp(e[i], a[i]) == 0)
            i++;
        fail_msg("%s differs at line %u:\n  expected: %s\n  actual:   %s\n"
                 "(VIREO_TEST_REGENERATE=1 rewrites it)\n--- actual output ---\n%s",
                 path, i + 1, e[i] ? e[i] : "<end>", a[i] ? a[i] : "<end>", actual);
    }
}

static DomainDef *parse_ok(const char *xml, unsigned flags, const char *what)
{
    g_autoptr(GError) err = NULL;
    DomainDef *def = domain_def_parse_string(xml, flags, &err);

    if (!def)
        fail_msg("%s: parse failed: %s", what, err->message);
    return def;
}

/* format(parse(out)) == out */
static void expect_fixed_point(const char *out, unsigned parse_flags, unsigned format_flags,
                               const char *what)
{
    g_autoptr(DomainDef) again = parse_ok(out, parse_flags, what);
    g_autofree char *out2 = domain_def_format(again, format_flags);

    if (strcmp(out, out2) != 0)
        fail_msg("%s: formatting is not a fixed point:\n--- first ---\n%s--- second ---\n%s",
                 what, out, out2);
}

static void test_xml(void **state)
{
    const XmlCase *c = *state;
    g_autofree char *in_path = data_path(c->name, ".xml");
    g_autofree char *in = read_file(in_path);
    unsigned pflags = c->kind == T_LIVE ? 0 : DOMAIN_DEF_PARSE_INACTIVE;
    unsigned fflags = c->kind == T_LIVE ? DOMAIN_DEF_FORMAT_SECURE :
        DOMAIN_DEF_FORMAT_INACTIVE;
    g_autoptr(DomainDef) def = parse_ok(in, pflags, in_path);
    g_autofree char *out = domain_def_format(def, fflags);
    g_autofree char *out_path = c->kind == T_DIFFERENT ? data_path(c->name, ".out.xml") :
        g_strdup(in_path);

    expect_output(out_path, out);
    expect_fixed_point(out, pflags, fflags, out_path);
    if (c->kind == T_LIVE) {
        g_autofree char *inactive = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE);
        g_autofree char *inactive_path = data_path(c->name, ".inactive.xml");
        g_autoptr(DomainDef) redefined = parse_ok(in, DOMAIN_DEF_PARSE_INACTIVE, in_path);
        g_autofree char *redefined_out = domain_def_format(redefined, DOMAIN_DEF_FORMAT_INACTIVE);

        expect_output(inactive_path, inactive);
        /* defining the live XML keeps none of the live data */
        assert_string_equal(inactive, redefined_out);
        expect_fixed_point(inactive, DOMAIN_DEF_PARSE_INACTIVE, DOMAIN_DEF_FORMAT_INACTIVE,
                           inactive_path);
    }
}

static void test_fail(void **state)
{
    const XmlCase *c = *state;
    g_autofree char *name = g_strdup_printf("fail-%s", c->name);
    g_autofree char *path = data_path(name, ".xml");
    g_autofree char *in = read_file(path);
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainDef) def = domain_def_parse_string(in, DOMAIN_DEF_PARSE_INACTIVE, &err);

    if (def)
        fail_msg("%s parsed, but should fail with: %s", path, c->message);
    assert_non_null(err);
    assert_true(err->domain == VIREO_ERROR);
    assert_int_equal(err->code, c->code);
    if (strcmp(err->message, c->message) != 0)
        fail_msg("%s:\n  expected: %s\n  actual:   %s", path, c->message, err->message);
}

static void test_run_fail(void **state)
{
    const XmlCase *c = *state;
    g_autofree char *name = g_strdup_printf("run-%s", c->name);
    g_autofree char *path = data_path(name, ".xml");
    g_autofree char *in = read_file(path);
    g_autoptr(DomainDef) def = parse_ok(in, DOMAIN_DEF_PARSE_INACTIVE, path);
    g_autoptr(GError) err = NULL;
    g_autofree char *out = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE);

    /* kept, formatted back unchanged ... */
    assert_string_equal(in, out);
    /* ... but refused at start, naming the element */
    if (domain_def_check_runnable(def, c->caps, &err))
        fail_msg("%s is runnable, but should be refused with: %s", path, c->message);
    assert_true(err->domain == VIREO_ERROR);
    assert_int_equal(err->code, VIREO_ERROR_UNSUPPORTED);
    if (strcmp(err->message, c->message) != 0)
        fail_msg("%s:\n  expected: %s\n  actual:   %s", path, c->message, err->message);
}

/* cmocka prints label as the test name */
#define CASE(label, fn, ...) \
    { .name = label, .test_func = fn, .initial_state = &((XmlCase){ __VA_ARGS__ }) }
#define XML2XML(n) CASE("xml2xml " n, test_xml, .name = n, .kind = T_SAME)
#define XML2XML_DIFFERENT(n) CASE("xml2xml " n, test_xml, .name = n, .kind = T_DIFFERENT)
#define XML2XML_LIVE(n) CASE("xml2xml-live " n, test_xml, .name = n, .kind = T_LIVE)
#define XML_PARSE_FAIL(n, c, m) \
    CASE("parse-fail " n, test_fail, .name = n, .kind = T_FAIL, .code = c, .message = m)
#define XML_RUN_FAIL(n, caps_, m) \
    CASE("run-fail " n, test_run_fail, .name = n, .kind = T_RUN_FAIL, .caps = caps_, .message = m)

#define INVAL VIREO_ERROR_INVALID_ARGUMENT
#define ALL_CAPS 0xffffffffu

/* ---- tests written in C ---- */

static const char minimal_no_ids[] =
    "<domain type='kvm'><name>gen</name><memory>65536</memory>"
    "<os><type>hvm</type><kernel>/k</kernel></os>"
    "<devices><interface type='network'><source network='default'/></interface></devices>"
    "</domain>";

static void test_uuid_and_mac_generated(void **state)
{
    g_autoptr(DomainDef) a = parse_ok(minimal_no_ids, DOMAIN_DEF_PARSE_INACTIVE, "a");
    g_autoptr(DomainDef) b = parse_ok(minimal_no_ids, DOMAIN_DEF_PARSE_INACTIVE, "b");
    g_autofree char *out = domain_def_format(a, DOMAIN_DEF_FORMAT_INACTIVE);
    DomainNetDef *n = a->nets->pdata[0];
    char uuid[CONF_UUID_STRING_LEN], mac[CONF_MAC_STRING_LEN];

    assert_memory_not_equal(a->uuid, b->uuid, 16);
    assert_int_equal(a->uuid[6] >> 4, 4);                /* version 4 */
    conf_uuid_format(a->uuid, uuid);
    assert_non_null(strstr(out, uuid));
    assert_int_equal(n->mac[0], 0x52);
    assert_int_equal(n->mac[1], 0x54);
    assert_int_equal(n->mac[2], 0x00);
    conf_mac_format(n->mac, mac);
    assert_non_null(strstr(out, mac));
    /* the generated values are kept from then on */
    expect_fixed_point(out, DOMAIN_DEF_PARSE_INACTIVE, DOMAIN_DEF_FORMAT_INACTIVE, "generated");
}

static void test_values(void **state)
{
    uint8_t u[16], m[6];
    guint64 bytes;
    g_autofree char *c1 = conf_cpuset_normalize("0-3,^2,8,9", 64);
    g_autofree char *c2 = conf_cpuset_normalize("^0", 64);

    assert_true(conf_uuid_parse("c7a5fdbd-cdaf-9455-926a-d65c16db1809", u));
    assert_true(conf_uuid_parse("c7a5fdbdcdaf9455926ad65c16db1809", u));
    assert_true(conf_uuid_parse(" c7a5fdbd-cdaf9455-926ad65c16db1809 ", u));
    assert_false(conf_uuid_parse("c7a5fdbd-cdaf-9455-926a-d65c16db180", u));
    assert_false(conf_uuid_parse("c7a5fdbd-cdaf-9455-926a-d65c16db18090", u));
    assert_false(conf_uuid_parse("g7a5fdbd-cdaf-9455-926a-d65c16db1809", u));
    assert_true(conf_mac_parse("52:54:00:ab:cd:ef", m));
    assert_true(conf_mac_parse("2:4:0:a:b:c", m));
    assert_false(conf_mac_parse("52:54:00:ab:cd", m));
    assert_false(conf_mac_parse("52-54-00-ab-cd-ef", m));
    assert_false(conf_mac_parse("52:54:00:ab:cd:ef:", m));
    assert_true(conf_size_to_bytes("1", "GiB", 1024, &bytes));
    assert_true(bytes == 1073741824ULL);
    assert_true(conf_size_to_bytes("1", "G", 1024, &bytes));
    assert_true(bytes == 1073741824ULL);
    assert_true(conf_size_to_bytes("1", "GB", 1024, &bytes));
    assert_true(bytes == 1000000000ULL);
    assert_true(conf_size_to_bytes("3", "bytes", 1024, &bytes));
    assert_true(bytes == 3);
    assert_true(conf_size_to_bytes("7", NULL, 1024, &bytes));
    assert_true(bytes == 7168);
    assert_false(conf_size_to_bytes("16", "EiB", 1024, &bytes));   /* overflow */
    assert_false(conf_size_to_bytes("-1", "KiB", 1024, &bytes));
    assert_false(conf_size_to_bytes("1.5", "KiB", 1024, &bytes));
    assert_false(conf_size_to_bytes("1", "XB", 1024, &bytes));
    assert_string_equal(c1, "0-1,3,8-9");
    assert_null(c2);
    assert_null(conf_cpuset_normalize("3-1", 64));
    assert_null(conf_cpuset_normalize("64", 64));
    assert_null(conf_cpuset_normalize("a", 64));
}

static void test_parse_file(void **state)
{
    g_autofree char *path = data_path("minimal", ".xml");
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainDef) def = domain_def_parse_file(path, DOMAIN_DEF_PARSE_INACTIVE, &err);
    g_autoptr(DomainDef) none = NULL;

    assert_non_null(def);
    assert_string_equal(def->name, "minimal");
    none = domain_def_parse_file(DOMAIN_DATA_DIR "/does-not-exist.xml", 0, &err);
    assert_null(none);
    assert_int_equal(err->code, VIREO_ERROR_IO);
}

static void test_defaults_for_consumers(void **state)
{
    g_autofree char *path = data_path("full", ".xml");
    g_autofree char *in = read_file(path);
    g_autoptr(DomainDef) def = parse_ok(in, DOMAIN_DEF_PARSE_INACTIVE, path);
    g_autoptr(DomainDef) copy = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *a = NULL, *b = NULL;
    DomainDiskDef *vda = domain_def_find_disk(def, "vda");
    const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x11, 0x22, 0x33 };

    assert_non_null(vda);
    assert_int_equal(vda->bus, DOMAIN_DISK_BUS_VIRTIO);
    assert_int_equal(vda->info.addr.type, DOMAIN_ADDR_PCI);
    assert_string_equal(vda->driver.format, "qcow2");
    assert_null(domain_def_find_disk(def, "vdz"));
    assert_non_null(domain_def_find_net(def, mac));
    assert_true(def->memory_kib == 2097152);
    assert_int_equal(def->vcpus, 4);
    assert_int_equal(def->vcpus_current, 2);
    assert_string_equal(domain_disk_bus_to_string(DOMAIN_DISK_BUS_SATA), "sata");
    assert_string_equal(domain_controller_type_to_string(DOMAIN_CONTROLLER_VIRTIO_SERIAL),
                        "virtio-serial");
    assert_string_equal(domain_chr_type_to_string(DOMAIN_CHR_UNIX), "unix");
    copy = domain_def_copy(def, &err);
    assert_non_null(copy);
    a = domain_def_format(def, 0);
    b = domain_def_format(copy, 0);
    assert_string_equal(a, b);
}

static void test_runnable(void **state)
{
    g_autofree char *path = data_path("runnable", ".xml");
    g_autofree char *in = read_file(path);
    g_autoptr(DomainDef) def = parse_ok(in, DOMAIN_DEF_PARSE_INACTIVE, path);
    g_autofree char *full_path = data_path("runnable-virtio", ".xml");
    g_autofree char *full_in = read_file(full_path);
    g_autoptr(DomainDef) full = parse_ok(full_in, DOMAIN_DEF_PARSE_INACTIVE, full_path);
    g_autoptr(GError) err = NULL;

    /* kernel, COM1 on a pty, the i8042: vireo-vmm 0.1 runs this today */
    if (!domain_def_check_runnable(def, DOMAIN_RUN_CAPS_NONE, &err))
        fail_msg("runnable.xml refused: %s", err->message);
    /* virtio devices need the matching capabilities */
    assert_false(domain_def_check_runnable(full, DOMAIN_RUN_CAPS_NONE, &err));
    assert_int_equal(err->code, VIREO_ERROR_UNSUPPORTED);
    g_clear_error(&err);
    if (!domain_def_check_runnable(full, ALL_CAPS, &err))
        fail_msg("runnable-virtio.xml refused with every capability: %s", err->message);
}

static void test_hostile_input(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainDef) def = NULL;
    GString *deep = g_string_new("<domain type='kvm'><name>x</name><metadata><a:x xmlns:a='a'>");

    /* deep nesting inside metadata: libxml2's depth limit, not a crash */
    for (int i = 0; i < 300; i++)
        g_string_append(deep, "<a:y>");
    for (int i = 0; i < 300; i++)
        g_string_append(deep, "</a:y>");
    g_string_append(deep, "</a:x></metadata><memory>1024</memory>"
                    "<os><type>hvm</type></os></domain>");
    def = domain_def_parse_string(deep->str, 0, &err);
    if (!def)
        assert_int_equal(err->code, INVAL);
    g_string_free(deep, TRUE);
    g_clear_pointer(&def, domain_def_free);
    g_clear_error(&err);

    /* an external entity must never be read */
    def = domain_def_parse_string("<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
                                  "<domain type='kvm'><name>&x;</name></domain>", 0, &err);
    assert_null(def);
    assert_string_equal(err->message, "domain XML must not have a DOCTYPE");
}

/* ---- libvirt's own output, recorded in shared/reference/libvirt-rpc ---- */

/* The "xml" string of the DOMAIN_GET_XML_DESC reply's "decoded:" JSON line. */
static char *capture_json_xml(const char *capture)
{
    const char *p = strstr(capture, "decoded: {\"xml\": \"");
    GString *s;

    if (!p)
        return NULL;
    p += strlen("decoded: {\"xml\": \"");
    s = g_string_new(NULL);
    for (; *p && *p != '"'; p++) {
        if (*p != '\\') {
            g_string_append_c(s, *p);
            continue;
        }
        p++;
        switch (*p) {
        case 'n':
            g_string_append_c(s, '\n');
            break;
        case 't':
            g_string_append_c(s, '\t');
            break;
        case 'u': {
            char hex[5] = { 0 };
            memcpy(hex, p + 1, 4);
            g_string_append_unichar(s, (gunichar)g_ascii_strtoull(hex, NULL, 16));
            p += 4;
            break;
        }
        default:
            g_string_append_c(s, *p);
            break;
        }
    }
    return g_string_free(s, FALSE);
}

/* The same reply's bytes on the wire: the "payload hex:" line (XDR string). */
static char *capture_wire_xml(const char *capture)
{
    const char *reply = strstr(capture, "proc=14(DOMAIN_GET_XML_DESC) type=1(REPLY)");
    const char *p = reply ? strstr(reply, "payload hex: ") : NULL;
    GString *bytes;
    guint32 len;

    if (!p)
        return NULL;
    p += strlen("payload hex: ");
    bytes = g_string_new(NULL);
    for (; g_ascii_isxdigit(p[0]) && g_ascii_isxdigit(p[1]); p += 2)
        g_string_append_c(bytes, (char)(g_ascii_xdigit_value(p[0]) << 4 |
                                        g_ascii_xdigit_value(p[1])));
    if (bytes->len < 4) {
        g_string_free(bytes, TRUE);
        return NULL;
    }
    len = (guint32)(guint8)bytes->str[0] << 24 | (guint32)(guint8)bytes->str[1] << 16 |
        (guint32)(guint8)bytes->str[2] << 8 | (guint8)bytes->str[3];
    if (len > bytes->len - 4) {
        g_string_free(bytes, TRUE);
        return NULL;
    }
    {
        char *xml = g_strndup(bytes->str + 4, len);
        g_string_free(bytes, TRUE);
        return xml;
    }
}

static void test_libvirt_reference(void **state)
{
    g_autofree char *dom_path = g_build_filename(REFERENCE_DIR, "tools", "dom.xml", NULL);
    g_autofree char *cap_path = g_build_filename(REFERENCE_DIR, "capture-dumpxml.txt", NULL);
    g_autofree char *dom = NULL, *capture = NULL, *json_xml = NULL, *wire_xml = NULL;
    g_autofree char *out_path = data_path("libvirt-reference-dom", ".out.xml");

    if (!*REFERENCE_DIR || !g_file_test(cap_path, G_FILE_TEST_EXISTS)) {
        print_message("libvirt reference captures not found at '%s'\n", REFERENCE_DIR);
        skip();
    }
    capture = read_file(cap_path);
    json_xml = capture_json_xml(capture);
    wire_xml = capture_wire_xml(capture);
    assert_non_null(json_xml);
    assert_non_null(wire_xml);

    /* libvirt 9.0.0's `virsh dumpxml` output formats back byte for byte */
    {
        g_autoptr(DomainDef) def = parse_ok(json_xml, DOMAIN_DEF_PARSE_INACTIVE, cap_path);
        g_autofree char *out = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE);
        g_autofree char *live = domain_def_format(def, 0);
        assert_string_equal(out, json_xml);
        assert_string_equal(live, json_xml);
    }
    {
        g_autoptr(DomainDef) def = parse_ok(wire_xml, DOMAIN_DEF_PARSE_INACTIVE, cap_path);
        g_autofree char *out = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE);
        assert_string_equal(out, wire_xml);
    }
    /*
     * The definition virsh sent: Vireo fills in its own defaults, not QEMU's
     * (see docs/domain-xml.md); the .out.xml shows exactly which.
     */
    dom = read_file(dom_path);
    {
        g_autoptr(DomainDef) def = parse_ok(dom, DOMAIN_DEF_PARSE_INACTIVE, dom_path);
        g_autofree char *out = domain_def_format(def, DOMAIN_DEF_FORMAT_INACTIVE);
        expect_output(out_path, out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* round trips: top level */
        XML2XML_DIFFERENT("minimal"),
        XML2XML("minimal-canonical"),
        XML2XML("full"),
        XML2XML_DIFFERENT("uuid-no-dashes"),
        XML2XML_DIFFERENT("memory-units"),
        XML2XML_DIFFERENT("memory-current-clamped"),
        XML2XML_DIFFERENT("vcpu-current-cpuset"),
        XML2XML("vcpu-auto-placement"),
        XML2XML_DIFFERENT("os-machine-pc"),
        XML2XML_DIFFERENT("os-machine-q35"),
        XML2XML("os-boot-order"),
        XML2XML("os-uefi"),
        XML2XML("os-kernel-initrd-cmdline"),
        XML2XML("features"),
        XML2XML("cpu-host-passthrough"),
        XML2XML_DIFFERENT("cpu-topology"),
        XML2XML_DIFFERENT("cpu-custom-model"),
        XML2XML("clock-localtime-timers"),
        XML2XML_DIFFERENT("clock-variable"),
        XML2XML("lifecycle-pm"),
        XML2XML("title-description"),
        XML2XML("metadata"),
        XML2XML_DIFFERENT("metadata-sanitize"),
        XML2XML("top-level-kept"),
        /* disks */
        XML2XML_DIFFERENT("disk-file-virtio"),
        XML2XML("disk-block"),
        XML2XML("disk-volume"),
        XML2XML_DIFFERENT("disk-cdrom-sata"),
        XML2XML_DIFFERENT("disk-ide"),
        XML2XML_DIFFERENT("disk-scsi"),
        XML2XML_DIFFERENT("disk-floppy"),
        XML2XML_DIFFERENT("disk-order"),
        XML2XML("disk-driver-options"),
        XML2XML("disk-network-kept"),
        /* controllers */
        XML2XML("controller-virtio-serial"),
        XML2XML("controller-usb-kept"),
        XML2XML_DIFFERENT("controller-index-auto"),
        /* interfaces */
        XML2XML("interface-network"),
        XML2XML("interface-bridge"),
        XML2XML("interface-ethernet"),
        XML2XML_DIFFERENT("interface-models"),
        XML2XML("interface-user-kept"),
        /* serial, console, channel */
        XML2XML_DIFFERENT("serial-pty"),
        XML2XML_DIFFERENT("serial-file-unix-null"),
        XML2XML_DIFFERENT("console-only"),
        XML2XML_DIFFERENT("channel-unix"),
        XML2XML("channel-guestfwd-kept"),
        /* the rest */
        XML2XML_DIFFERENT("input-tablet-virtio"),
        XML2XML("graphics-video-kept"),
        XML2XML_DIFFERENT("graphics-passwd"),
        XML2XML("memballoon"),
        XML2XML("memballoon-none"),
        XML2XML_DIFFERENT("rng"),
        XML2XML_DIFFERENT("watchdog"),
        XML2XML("watchdog-ib700"),
        XML2XML_DIFFERENT("device-order"),
        XML2XML("pci-address-explicit"),
        XML2XML_DIFFERENT("virt-install-q35"),
        XML2XML_LIVE("live-status"),

        /* parse failures: each names the element and the reason */
        XML_PARSE_FAIL("not-well-formed", INVAL,
                       "domain XML is not well-formed: line 4: "
                       "Premature end of data in tag domain line 1"),
        XML_PARSE_FAIL("root-not-domain", INVAL, "expected root element 'domain', found 'network'"),
        XML_PARSE_FAIL("doctype", INVAL, "domain XML must not have a DOCTYPE"),
        XML_PARSE_FAIL("type-missing", INVAL, "domain: attribute 'type' is required"),
        XML_PARSE_FAIL("type-xen", INVAL, "domain: domain type 'xen' is not supported (Vireo runs 'kvm')"),
        XML_PARSE_FAIL("name-missing", INVAL, "domain: element 'name' is required"),
        XML_PARSE_FAIL("name-empty", INVAL, "domain/name: domain name must not be empty"),
        XML_PARSE_FAIL("name-slash", INVAL, "domain/name: domain name 'a/b' must not contain '/'"),
        XML_PARSE_FAIL("name-twice", INVAL, "domain: element 'name' may appear only once"),
        XML_PARSE_FAIL("uuid-bad", INVAL, "domain/uuid: invalid UUID 'c7a5fdbd-cdaf-9455-926a-d65c16db18'"),
        XML_PARSE_FAIL("title-newline", INVAL, "domain/title: a title must not contain a newline"),
        XML_PARSE_FAIL("unknown-element", INVAL, "domain: unknown element 'hypervisor'"),
        XML_PARSE_FAIL("unknown-namespaced-element", INVAL, "domain: unknown element 'qemu:commandline'"),
        XML_PARSE_FAIL("unknown-attribute", INVAL, "domain/memory: unknown attribute 'size'"),
        XML_PARSE_FAIL("memory-missing", INVAL, "domain: element 'memory' is required"),
        XML_PARSE_FAIL("memory-unit", INVAL, "domain/memory: '12 XB' is not a valid size"),
        XML_PARSE_FAIL("memory-not-number", INVAL, "domain/memory: 'lots KiB' is not a valid size"),
        XML_PARSE_FAIL("memory-zero", INVAL, "domain/memory: memory size must be greater than 0"),
        XML_PARSE_FAIL("memory-overflow", INVAL, "domain/memory: '20000000 TiB' is not a valid size"),
        XML_PARSE_FAIL("maxmemory-slots", INVAL, "domain/maxMemory: attribute 'slots' is required"),
        XML_PARSE_FAIL("maxmemory-small", INVAL, "domain/maxMemory: maximum memory (524288 KiB) is less than memory (1048576 KiB)"),
        XML_PARSE_FAIL("vcpu-zero", INVAL, "domain/vcpu: vcpu count '0' must be from 1 to 4096"),
        XML_PARSE_FAIL("vcpu-current", INVAL, "domain/vcpu: current vcpus (4) exceed the maximum (2)"),
        XML_PARSE_FAIL("vcpu-cpuset", INVAL, "domain/vcpu: invalid cpuset '1-x'"),
        XML_PARSE_FAIL("vcpu-placement", INVAL, "domain/vcpu: invalid value 'pinned' for attribute 'placement' (expected one of 'static', 'auto')"),
        XML_PARSE_FAIL("os-missing", INVAL, "domain: element 'os' is required"),
        XML_PARSE_FAIL("os-type", INVAL, "domain/os/type: OS type 'xen' is not supported (Vireo runs 'hvm' guests)"),
        XML_PARSE_FAIL("os-arch", INVAL, "domain/os/type: architecture 'aarch64' is not supported (Vireo runs 'x86_64' guests)"),
        XML_PARSE_FAIL("os-machine", INVAL, "domain/os/type: unknown machine type 'virt' (Vireo runs 'vireo' and accepts 'pc', 'q35', 'pc-i440fx-*' and 'pc-q35-*' for it)"),
        XML_PARSE_FAIL("os-boot-dev", INVAL, "domain/os/boot: unknown boot device 'usb' (expected one of 'hd', 'cdrom', 'network', 'fd')"),
        XML_PARSE_FAIL("boot-os-and-device", INVAL, "domain/os/boot: per-device boot elements cannot be used together with os/boot elements"),
        XML_PARSE_FAIL("boot-order-twice", INVAL, "domain/devices/interface/boot: boot order 1 is already used by domain/devices/disk"),
        XML_PARSE_FAIL("features-unknown", INVAL, "domain/features: unknown element 'turbo'"),
        XML_PARSE_FAIL("cpu-topology", INVAL, "domain/cpu/topology: CPU topology (1 sockets x 1 dies x 2 cores x 2 threads = 4) does not match the vcpu count (2)"),
        XML_PARSE_FAIL("cpu-mode", INVAL, "domain/cpu: invalid value 'host' for attribute 'mode' (expected one of 'custom', 'host-model', 'host-passthrough', 'maximum')"),
        XML_PARSE_FAIL("clock-offset", INVAL, "domain/clock: invalid value 'gmt' for attribute 'offset' (expected one of 'utc', 'localtime', 'timezone', 'variable')"),
        XML_PARSE_FAIL("lifecycle", INVAL, "domain/on_poweroff: invalid action 'reboot'"),
        XML_PARSE_FAIL("devices-unknown", INVAL, "domain/devices: unknown element 'floppy'"),
        XML_PARSE_FAIL("devices-text", INVAL, "domain/devices: unexpected text 'disk'"),
        XML_PARSE_FAIL("disk-target-missing", INVAL, "domain/devices/disk: element 'target' is required"),
        XML_PARSE_FAIL("disk-target-dev", INVAL, "domain/devices/disk[2]/target: attribute 'dev' is required"),
        XML_PARSE_FAIL("disk-target-twice", INVAL, "domain/devices/disk[2]/target: target 'vda' is already used by domain/devices/disk[1]"),
        XML_PARSE_FAIL("disk-bus-mismatch", INVAL, "domain/devices/disk/target: disk target 'vda' does not match bus 'sata' (expected a name starting with 'sd')"),
        XML_PARSE_FAIL("disk-dev-name", INVAL, "domain/devices/disk/target: invalid disk target 'disk0' (expected a name like 'vda', 'sda', 'hda' or 'fda')"),
        XML_PARSE_FAIL("disk-source-attr", INVAL, "domain/devices/disk/source: unknown attribute 'dev'"),
        XML_PARSE_FAIL("disk-no-source", INVAL, "domain/devices/disk: a disk of device 'disk' needs a source file"),
        XML_PARSE_FAIL("disk-cache", INVAL, "domain/devices/disk/driver: invalid value 'fast' for attribute 'cache' (expected one of 'default', 'none', 'writethrough', 'writeback', 'directsync', 'unsafe')"),
        XML_PARSE_FAIL("disk-bus", INVAL, "domain/devices/disk/target: invalid value 'nvme' for attribute 'bus' (expected one of 'ide', 'fdc', 'scsi', 'virtio', 'xen', 'usb', 'uml', 'sata', 'sd')"),
        XML_PARSE_FAIL("disk-volume-pool", INVAL, "domain/devices/disk/source: attribute 'pool' is required"),
        XML_PARSE_FAIL("disk-serial", INVAL, "domain/devices/disk/serial: disk serial 'a/b' contains invalid characters (allowed: letters, digits, '_', ' ', '.', '+', '-')"),
        XML_PARSE_FAIL("disk-address-type", INVAL, "domain/devices/disk/address: an address of type 'drive' is not valid for a disk on bus 'virtio'"),
        XML_PARSE_FAIL("disk-floppy-bus", INVAL, "domain/devices/disk/target: a floppy disk must be on bus 'fdc'"),
        XML_PARSE_FAIL("interface-mac", INVAL, "domain/devices/interface/mac: invalid MAC address '52:54:00:zz:00:01'"),
        XML_PARSE_FAIL("interface-mac-multicast", INVAL, "domain/devices/interface/mac: expected a unicast MAC address, found multicast '01:00:5e:00:00:01'"),
        XML_PARSE_FAIL("interface-source", INVAL, "domain/devices/interface: element 'source' with attribute 'network' is required"),
        XML_PARSE_FAIL("interface-model", INVAL, "domain/devices/interface/model: invalid interface model 'e1000 '"),
        XML_PARSE_FAIL("interface-type", INVAL, "domain/devices/interface: invalid value 'wifi' for attribute 'type' (expected one of 'network', 'bridge', 'ethernet')"),
        XML_PARSE_FAIL("interface-target-twice", INVAL, "domain/devices/interface[2]/target: interface name 'tap0' is already used by domain/devices/interface[1]"),
        XML_PARSE_FAIL("serial-type", INVAL, "domain/devices/serial: invalid value 'socket' for attribute 'type' (expected one of 'null', 'pty', 'file', 'unix')"),
        XML_PARSE_FAIL("serial-port-twice", INVAL, "domain/devices/serial[2]/target: serial port 0 is already used by domain/devices/serial[1]"),
        XML_PARSE_FAIL("serial-file-path", INVAL, "domain/devices/serial/source: attribute 'path' is required"),
        XML_PARSE_FAIL("channel-name-twice", INVAL, "domain/devices/channel[2]/target: channel name 'org.qemu.guest_agent.0' is already used by domain/devices/channel[1]"),
        XML_PARSE_FAIL("channel-target-type", INVAL, "domain/devices/channel/target: attribute 'type' is required"),
        XML_PARSE_FAIL("controller-index-twice", INVAL, "domain/devices/controller[2]: controller 'virtio-serial' index 0 is already used by domain/devices/controller[1]"),
        XML_PARSE_FAIL("controller-root-model", INVAL, "domain/devices/controller: the PCI controller with index 0 must have model 'pci-root' for machine 'pc-i440fx-7.2'"),
        XML_PARSE_FAIL("pci-address-twice", INVAL, "domain/devices/interface/address: PCI address 0000:00:03.0 is already used by domain/devices/disk"),
        XML_PARSE_FAIL("pci-slot-range", INVAL, "domain/devices/disk/address: invalid value '0x20' for attribute 'slot' (expected an integer from 0 to 31)"),
        XML_PARSE_FAIL("pci-host-bridge", INVAL, "domain/devices/disk/address: PCI address 0000:00:00.0 is the host bridge"),
        XML_PARSE_FAIL("address-type", INVAL, "domain/devices/disk/address: unsupported address type 'ccw'"),
        XML_PARSE_FAIL("alias-user", INVAL, "domain/devices/disk/alias: user alias 'ua-my disk' may contain only letters, digits, '_' and '-'"),
        XML_PARSE_FAIL("alias-twice", INVAL, "domain/devices/interface/alias: alias 'ua-x' is already used by domain/devices/disk"),
        XML_PARSE_FAIL("memballoon-twice", INVAL, "domain/devices/memballoon[2]: only one memballoon device is supported"),
        XML_PARSE_FAIL("watchdog-action", INVAL, "domain/devices/watchdog: invalid value 'explode' for attribute 'action' (expected one of 'reset', 'shutdown', 'poweroff', 'pause', 'none', 'dump', 'inject-nmi')"),
        XML_PARSE_FAIL("rng-backend", INVAL, "domain/devices/rng/backend: invalid value 'hwrng' for attribute 'model' (expected one of 'random', 'builtin')"),
        XML_PARSE_FAIL("input-type", INVAL, "domain/devices/input: invalid value 'joystick' for attribute 'type' (expected one of 'mouse', 'tablet', 'keyboard')"),
        XML_PARSE_FAIL("input-ps2-tablet", INVAL, "domain/devices/input: bus 'ps2' does not support a tablet"),
        XML_PARSE_FAIL("pm-enabled", INVAL, "domain/pm/suspend-to-mem: invalid value 'maybe' for attribute 'enabled' (expected one of 'yes', 'no')"),

        /* kept, formatted back, refused at start */
        XML_RUN_FAIL("graphics-vnc", ALL_CAPS, "unsupported configuration: graphics device 'vnc' is not supported by Vireo"),
        XML_RUN_FAIL("video-qxl", ALL_CAPS, "unsupported configuration: video device 'qxl' is not supported by Vireo"),
        XML_RUN_FAIL("usb-controller", ALL_CAPS, "unsupported configuration: controller 'usb' model 'qemu-xhci' is not supported by Vireo"),
        XML_RUN_FAIL("hostdev", ALL_CAPS, "unsupported configuration: hostdev device 'pci' is not supported by Vireo"),
        XML_RUN_FAIL("memtune", ALL_CAPS, "unsupported configuration: element <memtune> is not supported by Vireo"),
        XML_RUN_FAIL("feature-hyperv", ALL_CAPS, "unsupported configuration: feature 'hyperv' is not supported by Vireo"),
        XML_RUN_FAIL("interface-user", ALL_CAPS, "unsupported configuration: interface type 'user' is not supported by Vireo"),
        XML_RUN_FAIL("interface-e1000", ALL_CAPS, "unsupported configuration: interface model 'e1000' (interface '52:54:00:00:00:01') is not supported by Vireo"),
        XML_RUN_FAIL("disk-sata", ALL_CAPS, "unsupported configuration: disk bus 'sata' (disk 'sda') is not supported by Vireo"),
        XML_RUN_FAIL("disk-virtio", DOMAIN_RUN_CAPS_NONE, "unsupported configuration: disk bus 'virtio' (disk 'vda') is not supported by Vireo"),
        XML_RUN_FAIL("no-kernel", DOMAIN_RUN_CAPS_NONE, "unsupported configuration: Vireo boots guests only from a kernel given in <os><kernel> (no BIOS or UEFI firmware)"),
        XML_RUN_FAIL("serial-port1", DOMAIN_RUN_CAPS_NONE, "unsupported configuration: serial port 1 is not supported by Vireo (only port 0, COM1)"),
        XML_RUN_FAIL("qemu-tcg", ALL_CAPS, "unsupported configuration: domain type 'qemu' (emulation without KVM) is not supported by Vireo"),

        cmocka_unit_test(test_uuid_and_mac_generated),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_defaults_for_consumers),
        cmocka_unit_test(test_runnable),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_libvirt_reference),
    };

    return cmocka_run_group_tests_name("domain-xml", tests, NULL, NULL);
}
