/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The storage driver of vireod and vireo-storaged. Storage pools come with
 * a later issue; until then it answers the pool list and count procedures
 * with empty lists and zeros (virsh pool-list --all), and every other pool
 * or volume procedure gets libvirt's "not supported" error.
 */
#ifndef VIREO_STORAGE_DRIVER_H
#define VIREO_STORAGE_DRIVER_H

#include "vireo/rpc-server.h"

void storage_driver_register(RpcServer *srv);

#endif
