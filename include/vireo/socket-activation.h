/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * systemd socket activation without libsystemd: the protocol is three
 * environment variables (sd_listen_fds(3)). LISTEN_PID must be our pid,
 * LISTEN_FDS the number of descriptors passed from fd 3 on, and the
 * optional LISTEN_FDNAMES a colon-separated name per descriptor (the
 * socket unit's FileDescriptorName=, by default the unit's name).
 */
#ifndef VIREO_SOCKET_ACTIVATION_H
#define VIREO_SOCKET_ACTIVATION_H

#include <glib.h>
#include <sys/types.h>

#define SOCKET_ACTIVATION_FIRST_FD 3

typedef struct ActivationSocket {
    int fd;
    char *name;             /* "" when LISTEN_FDNAMES gave none */
} ActivationSocket;

/*
 * Pure parsing of the three values (any may be NULL) for process @self.
 * Returns an array of ActivationSocket (empty when not activated: no
 * LISTEN_FDS, or LISTEN_PID names another process), or NULL with @error
 * when the values are malformed.
 */
GArray *socket_activation_parse(const char *listen_pid, const char *listen_fds,
                                const char *listen_fdnames, pid_t self, GError **error);

/*
 * Reads and unsets the variables, marks the descriptors close-on-exec so
 * that vireo-vmm never inherits them. The array frees names on clear.
 */
GArray *socket_activation_take(GError **error);

/*
 * What the daemon uses a descriptor for, from its name ("vireod-ro.socket",
 * "vireo-domaind-admin.socket", or a bare "ro"/"admin"/"rw") or, without
 * a name, from the path it is bound to compared with the daemon's paths.
 */
typedef enum {
    ACTIVATION_SOCKET_UNKNOWN,
    ACTIVATION_SOCKET_RW,
    ACTIVATION_SOCKET_RO,
    ACTIVATION_SOCKET_ADMIN,
} ActivationSocketKind;

ActivationSocketKind socket_activation_kind(const ActivationSocket *s, const char *rw_path,
                                            const char *ro_path, const char *admin_path);

#endif
