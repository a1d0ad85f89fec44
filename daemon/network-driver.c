/* SPDX-License-Identifier: GPL-2.0-or-later */
/* No networks yet (include/vireo/network-driver.h). */
#include "vireo/network-driver.h"
#include "vireo/rpc-error.h"

static void h_list_all(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectListAllNetworksRet ret = { 0 };

    rpc_call_reply(call, &ret);
}

static void h_num_of(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectNumOfNetworksRet ret = { .num = 0 };

    rpc_call_reply(call, &ret);
}

void network_driver_register(RpcServer *srv)
{
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_LIST_ALL_NETWORKS,
                           h_list_all, NULL);
    /* Both counts have the same one-int reply. */
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_NUM_OF_NETWORKS, h_num_of,
                           NULL);
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_NUM_OF_DEFINED_NETWORKS,
                           h_num_of, NULL);
}
