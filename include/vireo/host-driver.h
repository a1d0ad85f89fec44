/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every vireod role answers about the connection and the host:
 * CONNECT_OPEN (which URIs a role accepts), type, versions, hostname, URI,
 * capabilities, max vCPUs, node info, security model, sysinfo; and the
 * admin program (virt-admin) for the admin socket.
 *
 * Type and versions: clients connect with qemu:///system, so the type is
 * "QEMU" (what virsh, virt-install and python3-libvirt expect behind that
 * URI); the hypervisor version is Vireo's (0.1.0 -> 1000) and the library
 * version libvirt 9.0.0's, whose protocol Vireo speaks.
 */
#ifndef VIREO_HOST_DRIVER_H
#define VIREO_HOST_DRIVER_H

#include <glib.h>

#include "vireo/daemon-paths.h"
#include "vireo/rpc-server.h"

#define HOST_DRIVER_LIB_VERSION 9000000

typedef struct HostDriver HostDriver;

/*
 * Registers the connection procedures and the open hook on @srv. Free the
 * driver after the server.
 */
HostDriver *host_driver_new(RpcServer *srv, DaemonRole role, const char *vmm_path);
void host_driver_free(HostDriver *hd);
/* Serves the ADMIN program (open, close, lib version) on @srv. */
void host_driver_register_admin(RpcServer *srv);
/* "0.1.0" -> 1000 (major * 1000000 + minor * 1000 + micro). */
guint64 host_driver_version_number(const char *version);

#endif
