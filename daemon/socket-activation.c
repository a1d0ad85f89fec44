/* SPDX-License-Identifier: GPL-2.0-or-later */
/* systemd socket activation (include/vireo/socket-activation.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/socket-activation.h"
#include "vireo/util.h"

static void clear_socket(gpointer data)
{
    ActivationSocket *s = data;

    g_clear_pointer(&s->name, g_free);
}

static gboolean parse_uint(const char *s, guint64 max, guint64 *out)
{
    return s && g_ascii_string_to_unsigned(s, 10, 1, max, out, NULL);
}

GArray *socket_activation_parse(const char *listen_pid, const char *listen_fds,
                                const char *listen_fdnames, pid_t self, GError **error)
{
    g_autoptr(GArray) socks = g_array_new(FALSE, TRUE, sizeof(ActivationSocket));
    g_auto(GStrv) names = NULL;
    guint64 pid, n;

    g_array_set_clear_func(socks, clear_socket);
    if (!listen_fds)
        return g_steal_pointer(&socks);
    if (!parse_uint(listen_pid, G_MAXINT, &pid)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "socket activation: bad LISTEN_PID '%s'", listen_pid ? listen_pid : "");
        return NULL;
    }
    if ((pid_t)pid != self)
        return g_steal_pointer(&socks);      /* meant for our parent */
    if (!parse_uint(listen_fds, 1024, &n)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "socket activation: bad LISTEN_FDS '%s'", listen_fds);
        return NULL;
    }
    if (listen_fdnames) {
        names = g_strsplit(listen_fdnames, ":", -1);
        if (g_strv_length(names) != n) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "socket activation: LISTEN_FDNAMES has %u names for %u descriptors",
                        g_strv_length(names), (guint)n);
            return NULL;
        }
    }
    for (guint i = 0; i < n; i++) {
        ActivationSocket s = {
            .fd = SOCKET_ACTIVATION_FIRST_FD + i,
            .name = g_strdup(names ? names[i] : ""),
        };

        g_array_append_val(socks, s);
    }
    return g_steal_pointer(&socks);
}

GArray *socket_activation_take(GError **error)
{
    GArray *socks = socket_activation_parse(g_getenv("LISTEN_PID"), g_getenv("LISTEN_FDS"),
                                            g_getenv("LISTEN_FDNAMES"), getpid(), error);

    g_unsetenv("LISTEN_PID");
    g_unsetenv("LISTEN_FDS");
    g_unsetenv("LISTEN_FDNAMES");
    if (!socks)
        return NULL;
    for (guint i = 0; i < socks->len; i++) {
        ActivationSocket *s = &g_array_index(socks, ActivationSocket, i);
        int flags = fcntl(s->fd, F_GETFD);

        if (flags < 0) {
            int saved = errno;

            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "socket activation: descriptor %d: %s", s->fd, g_strerror(saved));
            g_array_unref(socks);
            return NULL;
        }
        fcntl(s->fd, F_SETFD, flags | FD_CLOEXEC);
    }
    return socks;
}

static gboolean ends_with_word(const char *name, const char *word)
{
    g_autofree char *plain = g_str_has_suffix(name, ".socket") ?
                             g_strndup(name, strlen(name) - strlen(".socket")) : g_strdup(name);
    g_autofree char *dashed = g_strconcat("-", word, NULL);

    return !strcmp(plain, word) || g_str_has_suffix(plain, dashed);
}

ActivationSocketKind socket_activation_kind(const ActivationSocket *s, const char *rw_path,
                                            const char *ro_path, const char *admin_path)
{
    struct sockaddr_un addr;
    socklen_t len = sizeof(addr);

    if (s->name && *s->name && strcmp(s->name, "unknown") != 0) {
        if (ends_with_word(s->name, "admin"))
            return ACTIVATION_SOCKET_ADMIN;
        if (ends_with_word(s->name, "ro"))
            return ACTIVATION_SOCKET_RO;
        return ACTIVATION_SOCKET_RW;
    }
    memset(&addr, 0, sizeof(addr));
    if (getsockname(s->fd, (struct sockaddr *)&addr, &len) < 0 || addr.sun_family != AF_UNIX)
        return ACTIVATION_SOCKET_UNKNOWN;
    if (rw_path && !strcmp(addr.sun_path, rw_path))
        return ACTIVATION_SOCKET_RW;
    if (ro_path && !strcmp(addr.sun_path, ro_path))
        return ACTIVATION_SOCKET_RO;
    if (admin_path && !strcmp(addr.sun_path, admin_path))
        return ACTIVATION_SOCKET_ADMIN;
    return ACTIVATION_SOCKET_UNKNOWN;
}
