/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireod: the management daemon (docs/daemon.md, docs/vireod.8). One
 * binary for every role: vireod runs all drivers; started as (or with
 * --role) vireo-domaind, vireo-networkd or vireo-storaged it is one of
 * the modular daemons with its own sockets.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib-unix.h>

#include "vireo/daemon-paths.h"
#include "vireo/domain-driver.h"
#include "vireo/host-driver.h"
#include "vireo/network-driver.h"
#include "vireo/rpc-error.h"
#include "vireo/rpc-server.h"
#include "vireo/rpc-tcp.h"
#include "vireo/rpc-tls.h"
#include "vireo/socket-activation.h"
#include "vireo/storage-driver.h"
#include "vireo/util.h"
#include "vireo/vmm-argv.h"

#ifndef VIREO_VMM_PATH
#define VIREO_VMM_PATH "/usr/local/bin/vireo-vmm"
#endif

typedef struct Daemon {
    DaemonRole role;
    DaemonPaths *paths;
    GMainLoop *loop;
    RpcServer *srv;          /* read-write and read-only sockets */
    RpcServer *admin;
    DomainDriver *domains;
    int timeout;             /* idle exit after this many seconds; 0: never */
    gint64 busy_at;          /* monotonic time we were last busy */
    gboolean activated;
    gboolean own_sockets[3]; /* rw, ro, admin created by us (unlinked at exit) */
    int pid_fd;
    int domains_lock_fd;
} Daemon;

static int listen_unix(const char *path, int mode, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    autoclose int fd = -1;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "socket path too long (%zu bytes, at most %zu): %s", strlen(path),
                    sizeof(addr.sun_path) - 1, path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        chmod(path, mode) < 0 || listen(fd, 128) < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot listen on %s: %s", path, g_strerror(saved));
        return -1;
    }
    return vireo_steal_fd(&fd);
}

/* One daemon of a role per root: the pid file is locked while we run. */
static gboolean lock_pid_file(Daemon *d, GError **error)
{
    g_autofree char *pid = g_strdup_printf("%d\n", getpid());

    d->pid_fd = open(d->paths->pid_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->pid_fd < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "cannot open %s: %s",
                    d->paths->pid_file, g_strerror(saved));
        return FALSE;
    }
    if (flock(d->pid_fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";

        if (pread(d->pid_fd, buf, sizeof(buf) - 1, 0) < 0)
            buf[0] = '\0';
        g_strchomp(buf);
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_EXIST,
                    "%s is already running for this root (pid %s, %s)",
                    daemon_role_name(d->role), *buf ? buf : "?", d->paths->pid_file);
        return FALSE;
    }
    if (ftruncate(d->pid_fd, 0) < 0 || pwrite(d->pid_fd, pid, strlen(pid), 0) < 0)
        g_warning("cannot write %s: %s", d->paths->pid_file, g_strerror(errno));
    return TRUE;
}

/*
 * vireod and vireo-domaind must not both supervise the VMs of one root:
 * whichever comes second stops here (the units also conflict).
 */
static gboolean lock_domains(Daemon *d, GError **error)
{
    g_autofree char *path = g_build_filename(d->paths->run_dir, "domains.lock", NULL);

    d->domains_lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->domains_lock_fd < 0 || flock(d->domains_lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "another daemon manages the domains of this root (%s): %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    return TRUE;
}

static gboolean add_listener(Daemon *d, int fd, ActivationSocketKind kind, GError **error)
{
    switch (kind) {
    case ACTIVATION_SOCKET_RW:
        return rpc_server_add_listener(d->srv, fd, FALSE, error);
    case ACTIVATION_SOCKET_RO:
        return rpc_server_add_listener(d->srv, fd, TRUE, error);
    case ACTIVATION_SOCKET_ADMIN:
        return rpc_server_add_listener(d->admin, fd, FALSE, error);
    default:
        close(fd);
        return TRUE;
    }
}

static gboolean setup_sockets(Daemon *d, GError **error)
{
    g_autoptr(GArray) socks = socket_activation_take(error);
    const char *paths[3] = { d->paths->sock, d->paths->sock_ro, d->paths->sock_admin };
    const int modes[3] = { 0600, 0666, 0600 };
    const ActivationSocketKind kinds[3] = {
        ACTIVATION_SOCKET_RW, ACTIVATION_SOCKET_RO, ACTIVATION_SOCKET_ADMIN,
    };

    if (!socks)
        return FALSE;
    if (socks->len) {
        d->activated = TRUE;
        for (guint i = 0; i < socks->len; i++) {
            ActivationSocket *s = &g_array_index(socks, ActivationSocket, i);
            ActivationSocketKind kind = socket_activation_kind(s, paths[0], paths[1], paths[2]);

            if (kind == ACTIVATION_SOCKET_UNKNOWN)
                g_warning("socket activation: descriptor %d (%s) is not one of ours; closed",
                          s->fd, s->name);
            if (!add_listener(d, s->fd, kind, error))
                return FALSE;
        }
        return TRUE;
    }
    for (int i = 0; i < 3; i++) {
        int fd = listen_unix(paths[i], modes[i], error);

        if (fd < 0 || !add_listener(d, fd, kinds[i], error))
            return FALSE;
        d->own_sockets[i] = TRUE;
    }
    return TRUE;
}

/* Type=notify: tell systemd we serve, without libsystemd (sd_notify(3) is one datagram). */
static void notify_ready(void)
{
    const char *path = g_getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    static const char msg[] = "READY=1";
    autoclose int fd = -1;
    socklen_t len;

    if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(addr.sun_path))
        return;
    strcpy(addr.sun_path, path);
    if (path[0] == '@')
        addr.sun_path[0] = '\0';       /* abstract namespace */
    len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&addr, len) < 0)
        g_warning("cannot notify systemd at %s: %s", path, g_strerror(errno));
    g_unsetenv("NOTIFY_SOCKET");
}

static unsigned probe_vmm_caps(const char *vmm)
{
    const char *argv[] = { vmm, "--device", "help", NULL };
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;
    int status;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                      NULL, &status, &err) || !g_spawn_check_wait_status(status, &err)) {
        g_warning("cannot ask %s for its devices: %s; domains need only the base machine",
                  vmm, err->message);
        return DOMAIN_RUN_CAPS_NONE;
    }
    return vmm_argv_caps_from_device_list(out);
}

static gboolean on_quit_signal(gpointer data)
{
    Daemon *d = data;

    g_info("terminating on signal; running VMs are left running");
    g_main_loop_quit(d->loop);
    return G_SOURCE_CONTINUE;
}

static gboolean on_idle_check(gpointer data)
{
    Daemon *d = data;
    gboolean busy = rpc_server_get_n_clients(d->srv) || rpc_server_get_n_clients(d->admin) ||
                    (d->domains && domain_driver_is_busy(d->domains));
    gint64 now = g_get_monotonic_time();

    if (busy)
        d->busy_at = now;
    if (now - d->busy_at >= (gint64)d->timeout * G_USEC_PER_SEC) {
        g_info("idle for %d s: exiting", d->timeout);
        g_main_loop_quit(d->loop);
    }
    return G_SOURCE_CONTINUE;
}

static void autostart(Daemon *d)
{
    /* Like libvirt: once per boot (the marker lives in /run), not per daemon start. */
    if (g_file_test(d->paths->autostarted, G_FILE_TEST_EXISTS))
        return;
    if (!g_file_set_contents(d->paths->autostarted, "", 0, NULL))
        g_warning("cannot create %s", d->paths->autostarted);
    domain_driver_autostart(d->domains);
}

/* --listen-tls: the certificates are checked once, before the first listener. */
static gboolean listen_on_tls(Daemon *d, char **specs, const char *dir, GError **error)
{
    g_autoptr(RpcTlsFiles) files = rpc_tls_files_new(RPC_TLS_SERVER, d->paths->root, dir);
    g_autoptr(RpcTlsCreds) creds = rpc_tls_creds_new(RPC_TLS_SERVER, files, TRUE, error);

    if (!creds)
        return FALSE;
    for (guint i = 0; specs[i]; i++) {
        const char *colon = strrchr(specs[i], ':');
        g_autofree char *spec = NULL;
        int fd;

        /* A bare address gets libvirtd's tls_port, not the tcp one. */
        if (specs[i][0] == '[' ? !strstr(specs[i], "]:") : !colon)
            spec = g_strdup_printf("%s:%u", specs[i], RPC_TLS_DEFAULT_PORT);
        else if (specs[i][0] != '[' && strchr(specs[i], ':') != colon)
            spec = g_strdup_printf("[%s]:%u", specs[i], RPC_TLS_DEFAULT_PORT);
        else
            spec = g_strdup(specs[i]);
        fd = rpc_tcp_listen(spec, error);
        if (fd < 0 || !rpc_server_add_tls_listener(d->srv, fd, creds, error))
            return FALSE;
        g_info("listening on tls %s (certificate %s)", spec, files->cert);
    }
    return TRUE;
}

int main(int argc, char **argv)
{
    g_autofree char *root = NULL, *vmm = NULL, *role_name = NULL;
    g_auto(GStrv) listen_tcp = NULL;
    g_auto(GStrv) listen_tls = NULL;
    g_autofree char *tls_dir = NULL;
    int timeout = 0;
    gboolean verbose = FALSE, version = FALSE;
    GOptionEntry entries[] = {
        { "root", 'r', 0, G_OPTION_ARG_FILENAME, &root,
          "keep every path (config, state, runtime, sockets, logs) under DIR", "DIR" },
        { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout,
          "exit after SECONDS without clients and without running VMs", "SECONDS" },
        { "vmm", 0, 0, G_OPTION_ARG_FILENAME, &vmm, "the vireo-vmm binary", "PATH" },
        { "role", 0, 0, G_OPTION_ARG_STRING, &role_name,
          "vireod, vireo-domaind, vireo-networkd or vireo-storaged (default: the program "
          "name)", "NAME" },
        { "listen", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &listen_tcp,
          "also serve the remote protocol on TCP ADDR:PORT (port 16509 by default; no "
          "authentication, no TLS: trusted networks only)", "ADDR[:PORT]" },
        { "listen-tls", 0, 0, G_OPTION_ARG_STRING_ARRAY, &listen_tls,
          "also serve the remote protocol over TLS on ADDR:PORT (port 16514 by default; "
          "x509 certificates, see --tls-dir)", "ADDR[:PORT]" },
        { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir,
          "TLS files cacert.pem, servercert.pem, serverkey.pem, clientcert.pem, clientkey.pem "
          "in DIR (default: ROOT/etc/pki/CA/cacert.pem and ROOT/etc/pki/vireo/)", "DIR" },
        { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "informational messages", NULL },
        { "version", 'V', 0, G_OPTION_ARG_NONE, &version, "print the version", NULL },
        { NULL },
    };
    g_autoptr(GOptionContext) oc = g_option_context_new("- Vireo management daemon");
    g_autoptr(GError) err = NULL;
    g_autoptr(DaemonPaths) paths = NULL;
    Daemon d = { .pid_fd = -1, .domains_lock_fd = -1 };
    HostDriver *host;
    DomainDriverConfig dcfg = { 0 };
    const char *sock_paths[3];

    g_option_context_add_main_entries(oc, entries, NULL);
    if (!g_option_context_parse(oc, &argc, &argv, &err)) {
        g_printerr("vireod: %s\n", err->message);
        return 2;
    }
    if (version) {
        printf("vireod %s\n", VIREO_VERSION);
        return 0;
    }
    if (timeout < 0) {
        g_printerr("vireod: --timeout must not be negative\n");
        return 2;
    }
    if (role_name ? !daemon_role_from_name(role_name, &d.role)
                  : !daemon_role_from_name(argv[0], &d.role))
        d.role = role_name ? (g_printerr("vireod: unknown role '%s'\n", role_name), -1)
                           : DAEMON_ROLE_ALL;
    if ((int)d.role < 0)
        return 2;
    if (verbose)
        g_setenv("G_MESSAGES_DEBUG", "vireod", FALSE);
    if (!vmm)
        vmm = g_strdup(g_getenv("VIREO_VMM") ? g_getenv("VIREO_VMM") : VIREO_VMM_PATH);
    signal(SIGPIPE, SIG_IGN);
    umask(022);

    paths = daemon_paths_new(root, d.role);
    d.paths = paths;
    d.timeout = timeout;
    if (!daemon_paths_create_dirs(paths, &err) || !lock_pid_file(&d, &err) ||
        (daemon_role_has_domains(d.role) && !lock_domains(&d, &err))) {
        g_printerr("vireod: %s\n", err->message);
        return 1;
    }
    d.loop = g_main_loop_new(NULL, FALSE);
    d.srv = rpc_server_new(NULL, NULL);
    d.admin = rpc_server_new(NULL, NULL);
    host = host_driver_new(d.srv, d.role, vmm);
    host_driver_register_admin(d.admin);
    if (d.role == DAEMON_ROLE_ALL || d.role == DAEMON_ROLE_NETWORK)
        network_driver_register(d.srv);
    if (d.role == DAEMON_ROLE_ALL || d.role == DAEMON_ROLE_STORAGE)
        storage_driver_register(d.srv);
    if (daemon_role_has_domains(d.role)) {
        dcfg.paths = paths;
        dcfg.vmm_path = vmm;
        dcfg.caps = probe_vmm_caps(vmm);
        dcfg.tls_dir = tls_dir;
        d.domains = domain_driver_new(d.srv, &dcfg, &err);
        if (!d.domains) {
            g_printerr("vireod: %s\n", err->message);
            return 1;
        }
    }
    if (!setup_sockets(&d, &err)) {
        g_printerr("vireod: %s\n", err->message);
        return 1;
    }
    for (guint i = 0; listen_tcp && listen_tcp[i]; i++) {
        int fd = rpc_tcp_listen(listen_tcp[i], &err);

        if (fd < 0 || !rpc_server_add_tcp_listener(d.srv, fd, &err)) {
            g_printerr("vireod: %s\n", err->message);
            return 1;
        }
        g_info("listening on tcp %s (no authentication)", listen_tcp[i]);
    }
    if (listen_tls && !listen_on_tls(&d, listen_tls, tls_dir, &err)) {
        g_printerr("vireod: %s\n", err->message);
        return 1;
    }
    if (d.domains)
        autostart(&d);
    g_unix_signal_add(SIGTERM, on_quit_signal, &d);
    g_unix_signal_add(SIGINT, on_quit_signal, &d);
    d.busy_at = g_get_monotonic_time();
    if (d.timeout)
        g_timeout_add(250, on_idle_check, &d);
    g_info("%s ready (root '%s', %s)", daemon_role_name(d.role), *paths->root ? paths->root : "/",
           d.activated ? "socket-activated" : "own sockets");
    notify_ready();
    g_main_loop_run(d.loop);

    domain_driver_free(d.domains);
    rpc_server_free(d.srv);
    rpc_server_free(d.admin);
    host_driver_free(host);
    sock_paths[0] = paths->sock;
    sock_paths[1] = paths->sock_ro;
    sock_paths[2] = paths->sock_admin;
    for (int i = 0; i < 3; i++)
        if (d.own_sockets[i])
            unlink(sock_paths[i]);
    unlink(paths->pid_file);
    close(d.pid_fd);
    if (d.domains_lock_fd >= 0)
        close(d.domains_lock_fd);
    g_main_loop_unref(d.loop);
    return 0;
}
