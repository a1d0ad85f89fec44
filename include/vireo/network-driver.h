/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The network driver of vireod and vireo-networkd. Virtual networks come
 * with a later issue; until then the driver is honest about having none:
 * it answers the list and count procedures with empty lists and zeros
 * (virsh net-list --all, python's listAllNetworks()), and every other
 * network procedure gets libvirt's "not supported" error from the RPC
 * layer.
 */
#ifndef VIREO_NETWORK_DRIVER_H
#define VIREO_NETWORK_DRIVER_H

#include "vireo/rpc-server.h"

void network_driver_register(RpcServer *srv);

#endif
