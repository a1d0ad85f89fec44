/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Paths under --root (include/vireo/daemon-paths.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "vireo/daemon-paths.h"

static const char *const role_names[] = {
    [DAEMON_ROLE_ALL] = "vireod",
    [DAEMON_ROLE_DOMAIN] = "vireo-domaind",
    [DAEMON_ROLE_NETWORK] = "vireo-networkd",
    [DAEMON_ROLE_STORAGE] = "vireo-storaged",
};

const char *daemon_role_name(DaemonRole role)
{
    g_assert((unsigned)role < G_N_ELEMENTS(role_names));
    return role_names[role];
}

gboolean daemon_role_from_name(const char *name, DaemonRole *role)
{
    g_autofree char *base = g_path_get_basename(name);

    for (unsigned i = 0; i < G_N_ELEMENTS(role_names); i++) {
        if (!strcmp(base, role_names[i])) {
            *role = i;
            return TRUE;
        }
    }
    return FALSE;
}

gboolean daemon_role_has_domains(DaemonRole role)
{
    return role == DAEMON_ROLE_ALL || role == DAEMON_ROLE_DOMAIN;
}

DaemonPaths *daemon_paths_new(const char *root, DaemonRole role)
{
    DaemonPaths *p = g_new0(DaemonPaths, 1);
    const char *name = daemon_role_name(role);
    /* vireod keeps libvirtd's "libvirt-sock" shape; modular daemons their name. */
    const char *sock_base = role == DAEMON_ROLE_ALL ? "vireo" : name;
    gsize len;

    p->root = g_strdup(root ? root : "");
    len = strlen(p->root);
    while (len && p->root[len - 1] == '/')
        p->root[--len] = '\0';
    p->config_dir = g_strconcat(p->root, "/etc/vireo", NULL);
    p->state_dir = g_strconcat(p->root, "/var/lib/vireo", NULL);
    p->domains_dir = g_strconcat(p->state_dir, "/domains", NULL);
    p->autostart_dir = g_strconcat(p->domains_dir, "/autostart", NULL);
    p->run_dir = g_strconcat(p->root, "/run/vireo", NULL);
    p->vm_run_dir = g_strconcat(p->run_dir, "/vm", NULL);
    p->log_dir = g_strconcat(p->root, "/var/log/vireo", NULL);
    p->sock = g_strdup_printf("%s/%s-sock", p->run_dir, sock_base);
    p->sock_ro = g_strdup_printf("%s/%s-sock-ro", p->run_dir, sock_base);
    p->sock_admin = g_strdup_printf("%s/%s-admin-sock", p->run_dir, sock_base);
    p->pid_file = g_strdup_printf("%s/%s.pid", p->run_dir, name);
    p->autostarted = g_strdup_printf("%s/autostarted", p->run_dir);
    return p;
}

void daemon_paths_free(DaemonPaths *p)
{
    if (!p)
        return;
    g_free(p->root);
    g_free(p->config_dir);
    g_free(p->state_dir);
    g_free(p->domains_dir);
    g_free(p->autostart_dir);
    g_free(p->run_dir);
    g_free(p->vm_run_dir);
    g_free(p->log_dir);
    g_free(p->sock);
    g_free(p->sock_ro);
    g_free(p->sock_admin);
    g_free(p->pid_file);
    g_free(p->autostarted);
    g_free(p);
}

gboolean daemon_paths_create_dirs(const DaemonPaths *p, GError **error)
{
    const struct {
        const char *path;
        int mode;
    } dirs[] = {
        { p->config_dir, 0755 }, { p->domains_dir, 0700 }, { p->autostart_dir, 0700 },
        { p->run_dir, 0755 }, { p->vm_run_dir, 0700 }, { p->log_dir, 0700 },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
        if (g_mkdir_with_parents(dirs[i].path, dirs[i].mode) < 0) {
            int saved = errno;

            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                        "cannot create directory '%s': %s", dirs[i].path, g_strerror(saved));
            return FALSE;
        }
    }
    return TRUE;
}

char *daemon_paths_vm_dir(const DaemonPaths *p, const char *uuid)
{
    return g_strdup_printf("%s/%s", p->vm_run_dir, uuid);
}

char *daemon_paths_vm_file(const DaemonPaths *p, const char *uuid, const char *file)
{
    return g_strdup_printf("%s/%s/%s", p->vm_run_dir, uuid, file);
}

char *daemon_paths_definition(const DaemonPaths *p, const char *name)
{
    return g_strdup_printf("%s/%s.xml", p->domains_dir, name);
}

char *daemon_paths_autostart_link(const DaemonPaths *p, const char *name)
{
    return g_strdup_printf("%s/%s.xml", p->autostart_dir, name);
}

char *daemon_paths_log(const DaemonPaths *p, const char *name)
{
    return g_strdup_printf("%s/%s.log", p->log_dir, name);
}
