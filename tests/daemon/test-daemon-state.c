/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the daemon keeps on disk and reads from the system: state files
 * (daemon/domain-status.c), atomic writes with injected faults
 * (daemon/atomic-file.c), /proc parsing (daemon/proc-stat.c), socket
 * activation's variables (daemon/socket-activation.c) and the paths
 * under --root (daemon/daemon-paths.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>
#include <glib/gstdio.h>

#include "vireo/atomic-file.h"
#include "vireo/daemon-paths.h"
#include "vireo/domain-status.h"
#include "vireo/proc-stat.h"
#include "vireo/socket-activation.h"
#include "vireo/util.h"

static char *tmpdir;

static int setup(void **state)
{
    tmpdir = g_dir_make_tmp("vireo-daemon-test-XXXXXX", NULL);
    return tmpdir ? 0 : -1;
}

static int teardown(void **state)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);

    if (system(cmd) != 0)
        return -1;
    g_free(tmpdir);
    return 0;
}

static DomainStatus *sample(void)
{
    DomainStatus *st = domain_status_new();

    st->name = g_strdup("web 1");
    for (int i = 0; i < 16; i++)
        st->uuid[i] = i * 17;
    st->id = 7;
    st->pid = 4242;
    st->start_ticks = 123456789012ull;
    st->started_at = 1732600000;
    st->persistent = TRUE;
    st->state = 3;
    st->reason = 1;
    st->start_complete = TRUE;
    st->live_xml = g_strdup("<domain type='kvm' id='7'>\n  <name>web 1</name>\n</domain>\n");
    return st;
}

static void test_status_round_trip(void **state)
{
    g_autoptr(DomainStatus) st = sample();
    g_autofree char *path = g_build_filename(tmpdir, "state", NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(DomainStatus) back = NULL;

    assert_true(domain_status_save(st, path, &err));
    back = domain_status_load(path, &err);
    assert_non_null(back);
    assert_string_equal(back->name, st->name);
    assert_memory_equal(back->uuid, st->uuid, 16);
    assert_int_equal(back->id, 7);
    assert_int_equal(back->pid, 4242);
    assert_true(back->start_ticks == st->start_ticks);
    assert_true(back->started_at == st->started_at);
    assert_true(back->persistent && back->start_complete);
    assert_int_equal(back->state, 3);
    assert_int_equal(back->reason, 1);
    assert_int_equal(back->migration_out, DOMAIN_MIGRATION_OUT_NONE);
    assert_string_equal(back->live_xml, st->live_xml);
}

/* How far an outgoing migration got survives the daemon; garbage there is refused. */
static void test_status_migration_out(void **state)
{
    g_autoptr(DomainStatus) st = sample();
    g_autofree char *none = domain_status_format(st);
    g_autofree char *text = NULL;
    g_autoptr(DomainStatus) back = NULL;
    g_autoptr(GError) err = NULL;

    assert_null(strstr(none, "migration-out"));
    st->migration_out = DOMAIN_MIGRATION_OUT_FINISHING;
    text = domain_status_format(st);
    back = domain_status_parse(text, &err);
    assert_non_null(back);
    assert_int_equal(back->migration_out, DOMAIN_MIGRATION_OUT_FINISHING);
    for (const char *bad = "3x"; *bad; bad++) {
        g_autoptr(GError) e = NULL;
        g_autofree char *changed = g_strdup(text);
        char *at = strstr(changed, "migration-out=2");

        assert_non_null(at);
        at[strlen("migration-out=")] = *bad;
        assert_null(domain_status_parse(changed, &e));
        assert_non_null(strstr(e->message, "migration-out"));
    }
}

static void test_status_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "[domain]\nversion=2\n",
        "[domain]\nversion=1\nname=x\n",
    };
    g_autoptr(DomainStatus) st = sample();
    g_autofree char *good = domain_status_format(st);

    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;

        assert_null(domain_status_parse(bad[i], &err));
        assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_STATE));
    }
    /* Each key removed in turn, and a bad pid and uuid. */
    static const char *const keys[] = { "name", "uuid", "id", "pid", "start-ticks", "state",
                                        "reason", "live-xml", "persistent" };
    for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
        g_autofree char *prefix = g_strdup_printf("\n%s=", keys[i]);
        char *at = strstr(good, prefix);
        g_autofree char *text = NULL;
        g_autoptr(GError) err = NULL;
        char *eol;

        assert_non_null(at);
        eol = strchr(at + 1, '\n');
        text = g_strdup_printf("%.*s%s", (int)(at - good), good, eol);
        assert_null(domain_status_parse(text, &err));
        assert_non_null(strstr(err->message, keys[i]));
    }
    {
        g_autofree char *text = g_strjoinv("pid=-3", (char *[]){ good, NULL });
        char *p = strstr(text, "pid=4242");
        g_autoptr(GError) err = NULL;

        memcpy(p, "pid=0000", 8);
        assert_null(domain_status_parse(text, &err));
    }
}

static void test_atomic_faults(void **state)
{
    static const AtomicFileFault faults[] = {
        ATOMIC_FILE_FAULT_OPEN, ATOMIC_FILE_FAULT_WRITE, ATOMIC_FILE_FAULT_FSYNC,
        ATOMIC_FILE_FAULT_RENAME,
    };
    g_autofree char *path = g_build_filename(tmpdir, "def.xml", NULL);
    g_autoptr(GError) err = NULL;
    g_autoptr(GDir) dir = NULL;
    const char *old = "<domain>old</domain>\n";
    const char *new = "<domain>new, and longer than the old one</domain>\n";

    assert_true(atomic_file_write(path, old, strlen(old), 0600, &err));
    for (gsize i = 0; i < G_N_ELEMENTS(faults); i++) {
        g_autoptr(GError) ferr = NULL;
        g_autofree char *text = NULL;

        atomic_file_inject_fault(faults[i]);
        assert_false(atomic_file_write(path, new, strlen(new), 0600, &ferr));
        assert_non_null(ferr);
        /* The old definition survives, whole. */
        assert_true(g_file_get_contents(path, &text, NULL, NULL));
        assert_string_equal(text, old);
    }
    /* No temporary file is left behind. */
    dir = g_dir_open(tmpdir, 0, NULL);
    for (const char *f; (f = g_dir_read_name(dir));)
        assert_false(g_str_has_prefix(f, "."));
    /* And without a fault the new content lands, mode 0600. */
    {
        g_autofree char *text = NULL;
        GStatBuf sb;

        assert_true(atomic_file_write(path, new, strlen(new), 0600, &err));
        assert_true(g_file_get_contents(path, &text, NULL, NULL));
        assert_string_equal(text, new);
        assert_int_equal(g_stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
}

static void test_proc_stat(void **state)
{
    /* A command name with spaces and a ')' of its own. */
    const char *text = "123 (vcpu 0) x)) S 1 123 123 0 -1 4194624 100 0 0 0 "
                       "250 50 0 0 20 0 3 0 987654 1000000 200 18446744073709551615 "
                       "1 1 0 0 0 0 0 0 0 0 0 0 17 5 0 0 0 0 0\n";
    ProcStat ps;

    assert_true(proc_stat_parse(text, &ps));
    assert_int_equal(ps.state, 'S');
    assert_true(ps.start_ticks == 987654);
    assert_int_equal(ps.processor, 5);
    assert_true(ps.cpu_time_ns == 300 * (1000000000ull / sysconf(_SC_CLK_TCK)));
    assert_false(proc_stat_parse("123 (x S 1", &ps));
    assert_false(proc_stat_parse(NULL, &ps));
    /* Ourselves, live. */
    assert_true(proc_stat_read(getpid(), 0, &ps));
    assert_true(proc_stat_read(getpid(), gettid(), &ps));
    assert_false(proc_cmdline_has_arg(getpid(), "--no-such-argument"));
}

static void test_activation_parse(void **state)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) a = NULL;

    /* Not activated. */
    a = socket_activation_parse(NULL, NULL, NULL, 10, &err);
    assert_non_null(a);
    assert_int_equal(a->len, 0);
    g_clear_pointer(&a, g_array_unref);
    /* For another process (our parent, say). */
    a = socket_activation_parse("9", "2", NULL, 10, &err);
    assert_int_equal(a->len, 0);
    g_clear_pointer(&a, g_array_unref);
    a = socket_activation_parse("10", "3", "vireod.socket:vireod-ro.socket:vireod-admin.socket",
                                10, &err);
    assert_non_null(a);
    assert_int_equal(a->len, 3);
    assert_int_equal(g_array_index(a, ActivationSocket, 0).fd, 3);
    assert_int_equal(g_array_index(a, ActivationSocket, 2).fd, 5);
    assert_string_equal(g_array_index(a, ActivationSocket, 1).name, "vireod-ro.socket");
    assert_int_equal(socket_activation_kind(&g_array_index(a, ActivationSocket, 0), NULL, NULL,
                                            NULL), ACTIVATION_SOCKET_RW);
    assert_int_equal(socket_activation_kind(&g_array_index(a, ActivationSocket, 1), NULL, NULL,
                                            NULL), ACTIVATION_SOCKET_RO);
    assert_int_equal(socket_activation_kind(&g_array_index(a, ActivationSocket, 2), NULL, NULL,
                                            NULL), ACTIVATION_SOCKET_ADMIN);
    g_clear_pointer(&a, g_array_unref);
    /* Malformed values. */
    assert_null(socket_activation_parse("x", "1", NULL, 10, &err));
    g_clear_error(&err);
    assert_null(socket_activation_parse("10", "-1", NULL, 10, &err));
    g_clear_error(&err);
    assert_null(socket_activation_parse("10", "2", "one", 10, &err));
    g_clear_error(&err);
    assert_null(socket_activation_parse(NULL, "1", NULL, 10, &err));
}

static void test_activation_kind_by_path(void **state)
{
    g_autofree char *path = g_build_filename(tmpdir, "ro.sock", NULL);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    ActivationSocket s = { .name = (char *)"" };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    strcpy(addr.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    s.fd = fd;
    assert_int_equal(socket_activation_kind(&s, "/a", path, "/c"), ACTIVATION_SOCKET_RO);
    assert_int_equal(socket_activation_kind(&s, "/a", "/b", "/c"), ACTIVATION_SOCKET_UNKNOWN);
    close(fd);
}

static void test_paths(void **state)
{
    g_autoptr(DaemonPaths) p = daemon_paths_new("/tmp/r/", DAEMON_ROLE_ALL);
    g_autoptr(DaemonPaths) q = daemon_paths_new(NULL, DAEMON_ROLE_NETWORK);
    g_autofree char *def = daemon_paths_definition(p, "web");
    g_autofree char *qmp = daemon_paths_vm_file(p, "U", "qmp.sock");
    DaemonRole role;

    assert_string_equal(p->sock, "/tmp/r/run/vireo/vireo-sock");
    assert_string_equal(p->sock_ro, "/tmp/r/run/vireo/vireo-sock-ro");
    assert_string_equal(p->sock_admin, "/tmp/r/run/vireo/vireo-admin-sock");
    assert_string_equal(def, "/tmp/r/var/lib/vireo/domains/web.xml");
    assert_string_equal(qmp, "/tmp/r/run/vireo/vm/U/qmp.sock");
    assert_string_equal(q->sock, "/run/vireo/vireo-networkd-sock");
    assert_string_equal(q->log_dir, "/var/log/vireo");
    assert_true(daemon_role_from_name("/usr/sbin/vireo-storaged", &role));
    assert_int_equal(role, DAEMON_ROLE_STORAGE);
    assert_false(daemon_role_from_name("libvirtd", &role));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_status_migration_out),
        cmocka_unit_test(test_status_bad),
        cmocka_unit_test(test_atomic_faults),
        cmocka_unit_test(test_proc_stat),
        cmocka_unit_test(test_activation_parse),
        cmocka_unit_test(test_activation_kind_by_path),
        cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
