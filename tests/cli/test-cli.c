/* SPDX-License-Identifier: GPL-2.0-or-later */
/* cli/'s pure helpers: URIs, command splitting and parsing, sizes, tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vireo/cli-cmd.h"
#include "vireo/cli-conn.h"
#include "vireo/cli-out.h"
#include "vireo/cli-uri.h"
#include "vireo/rpc-error.h"
#include "vireo/rpc-remote.h"
#include "vireo/util.h"

static void test_uri(void **state)
{
    static const struct {
        const char *uri;
        gboolean ro;
        const char *socket, *open_name;
    } ok[] = {
        { "vireo:///system", FALSE, "/run/vireo/vireo-sock", "vireo:///system" },
        { "vireo:///system", TRUE, "/run/vireo/vireo-sock-ro", "vireo:///system" },
        { "vireo+unix:///system?socket=/tmp/s", TRUE, "/tmp/s", "vireo:///system" },
        { "qemu:///system", FALSE, "/run/libvirt/libvirt-sock", "qemu:///system" },
        { "qemu+unix:///system?socket=/a%20b&mode=legacy", FALSE, "/a b", "qemu:///system" },
        { "QEMU:///system", FALSE, "/run/libvirt/libvirt-sock", "qemu:///system" },
    };
    static const char *const bad[] = {
        "foo:///system", "/system", "qemu+ssh://host/system", "qemu://host/system",
        "vireo:///other", "vireo+unix:///system?socket=", "vireo:///system/x?socket=/s",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(ok); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(CliUri) u = cli_uri_parse(ok[i].uri, ok[i].ro, &error);

        assert_non_null(u);
        assert_string_equal(u->socket, ok[i].socket);
        assert_string_equal(u->open_name, ok[i].open_name);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(CliUri) u = cli_uri_parse(bad[i], FALSE, &error);

        assert_null(u);
        assert_true(g_error_matches(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT));
    }
    {
        g_autoptr(GError) error = NULL;
        g_autoptr(CliUri) u = cli_uri_parse("foo:///system", FALSE, &error);

        assert_string_equal(error->message, "no connection driver available for foo:///system");
    }
    g_setenv("XDG_RUNTIME_DIR", "/run/user/7", TRUE);
    {
        g_autoptr(CliUri) u = cli_uri_parse("vireo:///session", FALSE, NULL);

        assert_string_equal(u->socket, "/run/user/7/vireo/vireo-sock");
    }
    g_unsetenv(CLI_URI_ENV);
    assert_string_equal(cli_uri_default(), CLI_URI_DEFAULT);
    g_setenv(CLI_URI_ENV, "qemu:///system", TRUE);
    assert_string_equal(cli_uri_default(), "qemu:///system");
    g_unsetenv(CLI_URI_ENV);
}

/* Remote URIs (rpc-remote.h) and libvirt's TLS file layout (rpc-tls.h). */
static void test_remote_uri(void **state)
{
    static const char *const bad[] = {
        "vireo+tls:///system", "xen+tls://h/system", "vireo+tls://h/system?no_verify=2",
        "vireo+ssh://h/system", "vireo:///system",
    };
    g_autoptr(RpcTlsFiles) f = NULL;

    {
        g_autoptr(RpcRemoteUri) u = rpc_remote_uri_parse("vireo+tls://h1/system", NULL);

        assert_true(u->tls && !u->no_verify && !u->pkipath);
        assert_int_equal(u->port, 16514);
        assert_string_equal(u->host, "h1");
        assert_string_equal(u->local_uri, "vireo:///system");
    }
    {
        g_autoptr(RpcRemoteUri) u =
            rpc_remote_uri_parse("qemu+tls://h1:1234/system?pkipath=/p%20q&no_verify=1", NULL);

        assert_true(u->tls && u->no_verify);
        assert_int_equal(u->port, 1234);
        assert_string_equal(u->pkipath, "/p q");
        assert_string_equal(u->local_uri, "qemu:///system");
    }
    {
        g_autoptr(RpcRemoteUri) u = rpc_remote_uri_parse("vireo+tcp://[::1]/system", NULL);

        assert_false(u->tls);
        assert_int_equal(u->port, 16509);
        assert_string_equal(u->host, "::1");
    }
    {
        g_autoptr(CliUri) u = cli_uri_parse("vireo+tls://h2:99/system?pkipath=/x", FALSE, NULL);

        assert_non_null(u->remote);
        assert_string_equal(u->open_name, "vireo:///system");
        assert_string_equal(u->remote->pkipath, "/x");
    }
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(RpcRemoteUri) u = rpc_remote_uri_parse(bad[i], &error);

        assert_null(u);
        assert_true(g_error_matches(error, RPC_ERROR, RPC_ERROR_INVALID));
    }
    f = rpc_tls_files_new(RPC_TLS_SERVER, "/r", NULL);
    assert_string_equal(f->cacert, "/r/etc/pki/CA/cacert.pem");
    assert_string_equal(f->cert, "/r/etc/pki/vireo/servercert.pem");
    assert_string_equal(f->key, "/r/etc/pki/vireo/private/serverkey.pem");
    rpc_tls_files_free(f);
    f = rpc_tls_files_new(RPC_TLS_CLIENT, "/r", "/d");
    assert_string_equal(f->cacert, "/d/cacert.pem");
    assert_string_equal(f->cert, "/d/clientcert.pem");
    assert_string_equal(f->key, "/d/clientkey.pem");
}

static void test_split(void **state)
{
    g_autoptr(GPtrArray) c = cli_cmd_split("list --all; dominfo 'a b' \"c\\\"d\" e\\ f # x\n"
                                           "  version;;", FALSE);
    char **w;

    assert_non_null(c);
    assert_int_equal(c->len, 3);
    w = g_ptr_array_index(c, 0);
    assert_int_equal(g_strv_length(w), 2);
    w = g_ptr_array_index(c, 1);
    assert_string_equal(w[1], "a b");
    assert_string_equal(w[2], "c\"d");
    assert_string_equal(w[3], "e f");
    assert_null(w[4]);
    w = g_ptr_array_index(c, 2);
    assert_string_equal(w[0], "version");
    assert_null(cli_cmd_split("dominfo \"x", FALSE));
    assert_null(cli_cmd_split("dominfo x\\", FALSE));
    g_ptr_array_unref(c);
    c = cli_cmd_split("   ", FALSE);
    assert_int_equal(c->len, 0);
}

static gboolean handler(CliCtl *ctl, const CliCmd *cmd)
{
    return TRUE;
}

static const CliOptDef opts[] = {
    { "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL, "d", 0 },
    { "count", CLI_OPT_INT, CLI_OPT_POSITIONAL, "c", 0 },
    { "flag", CLI_OPT_BOOL, 0, "f", 0 },
    { "mode", CLI_OPT_STRING, 0, "m", 0 },
    { NULL, 0, 0, NULL, 0 },
};
static const CliCmdDef cmds[] = {
    { "cmd", handler, opts, "h", "d", 0 },
    { NULL, NULL, NULL, NULL, NULL, 0 },
};
static const CliCmdGroup groups[] = { { "G", "g", cmds }, { NULL, NULL, NULL } };

static CliCmd *parse(const char *line)
{
    g_autoptr(GPtrArray) c = cli_cmd_split(line, FALSE);

    return cli_cmd_parse(g_ptr_array_index(c, 0));
}

static void test_parse(void **state)
{
    g_autoptr(CliCmd) a = NULL;
    guint n = 0;
    guint64 sz = 0;

    cli_cmd_set_groups(groups);
    a = parse("cmd dom 5 --flag --mode=x");
    assert_non_null(a);
    assert_string_equal(cli_cmd_get(a, "domain"), "dom");
    assert_int_equal(cli_cmd_get_uint(a, "count", &n), 1);
    assert_int_equal(n, 5);
    assert_true(cli_cmd_has(a, "flag"));
    assert_string_equal(cli_cmd_get(a, "mode"), "x");
    cli_cmd_free(g_steal_pointer(&a));
    a = parse("cmd --mode y -- --flag");
    assert_non_null(a);
    assert_string_equal(cli_cmd_get(a, "domain"), "--flag");
    assert_false(cli_cmd_has(a, "flag"));
    cli_cmd_free(g_steal_pointer(&a));
    a = parse("cmd d -3");
    assert_int_equal(cli_cmd_get_uint(a, "count", &n), -1);
    assert_null(parse("cmd"));                  /* requires <domain> */
    assert_null(parse("cmd a b c"));            /* unexpected data */
    assert_null(parse("cmd a --nope"));         /* unknown option */
    assert_null(parse("cmd a --mode"));         /* value missing */
    assert_null(parse("cmd a --flag=1"));
    assert_null(parse("cmd a --flag --flag"));  /* already seen */
    assert_null(parse("nocmd"));

    assert_true(cli_scale_integer("32M", 1024, G_MAXUINT64, &sz, NULL));
    assert_int_equal(sz, 32 << 20);
    assert_true(cli_scale_integer("16384", 1024, G_MAXUINT64, &sz, NULL));
    assert_int_equal(sz, 16384 * 1024);
    assert_true(cli_scale_integer("1KB", 1024, G_MAXUINT64, &sz, NULL));
    assert_int_equal(sz, 1000);
    assert_true(cli_scale_integer("2GiB", 1, G_MAXUINT64, &sz, NULL));
    assert_int_equal(sz, 2ull << 30);
    assert_true(cli_scale_integer("7bytes", 1024, G_MAXUINT64, &sz, NULL));
    assert_int_equal(sz, 7);
    assert_false(cli_scale_integer("-5", 1024, G_MAXUINT64, &sz, NULL));
    assert_false(cli_scale_integer("1x", 1024, G_MAXUINT64, &sz, NULL));
    assert_false(cli_scale_integer("17E", 1024, G_MAXUINT64, &sz, NULL));
    assert_false(cli_scale_integer("", 1024, G_MAXUINT64, &sz, NULL));
    {
        g_autofree char *d1 = NULL, *d2 = NULL;

        assert_false(cli_scale_integer("1x", 1024, G_MAXUINT64, &sz, &d1));
        assert_string_equal(d1, "invalid argument: unknown suffix 'x'");
        assert_false(cli_scale_integer("16EiB", 1024, G_MAXUINT64, &sz, &d2));
        assert_string_equal(d2, "numerical overflow: value too large: 16EiB");
    }
}

static void test_misc(void **state)
{
    g_autoptr(CliCtl) ctl = cli_ctl_new();
    guint8 u[16];
    char s[CLI_UUID_STRING_LEN];

    assert_true(cli_uuid_parse("c7a5fdbd-cdaf-9455-926a-d65c16db1809", u));
    cli_uuid_format(u, s);
    assert_string_equal(s, "c7a5fdbd-cdaf-9455-926a-d65c16db1809");
    assert_true(cli_uuid_parse("c7a5fdbdcdaf9455926ad65c16db1809", u));
    assert_false(cli_uuid_parse("c7a5fdbd-cdaf-9455-926a-d65c16db180", u));
    assert_false(cli_uuid_parse("g7a5fdbd-cdaf-9455-926a-d65c16db1809", u));

    assert_true(cli_ctl_set_escape(ctl, "^a"));
    assert_int_equal(ctl->escape_char, 1);
    assert_true(cli_ctl_set_escape(ctl, "^]"));
    assert_int_equal(ctl->escape_char, 0x1d);
    assert_true(cli_ctl_set_escape(ctl, "~"));
    assert_int_equal(ctl->escape_char, '~');
    assert_false(cli_ctl_set_escape(ctl, "^"));
    assert_false(cli_ctl_set_escape(ctl, "ab"));
    assert_false(cli_ctl_set_escape(ctl, "^1"));

    assert_string_equal(cli_state_to_string(5), "shut off");
    assert_string_equal(cli_state_to_string(42), "no state");
    assert_string_equal(cli_state_reason_to_string(1, 1), "booted");
    assert_string_equal(cli_state_reason_to_string(3, 1), "user");
    assert_string_equal(cli_state_reason_to_string(5, 99), "unknown");
    assert_int_equal(cli_display_width("abc"), 3);
    assert_int_equal(cli_display_width("\xe6\x97\xa5"), 2);     /* a wide CJK character */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_remote_uri),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_misc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
