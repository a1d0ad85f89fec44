/* SPDX-License-Identifier: GPL-2.0-or-later */
/* No storage pools yet (include/vireo/storage-driver.h). */
#include "vireo/rpc-error.h"
#include "vireo/storage-driver.h"

static void h_list_all(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectListAllStoragePoolsRet ret = { 0 };

    rpc_call_reply(call, &ret);
}

static void h_num_of(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectNumOfStoragePoolsRet ret = { .num = 0 };

    rpc_call_reply(call, &ret);
}

void storage_driver_register(RpcServer *srv)
{
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_LIST_ALL_STORAGE_POOLS,
                           h_list_all, NULL);
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_NUM_OF_STORAGE_POOLS,
                           h_num_of, NULL);
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_NUM_OF_DEFINED_STORAGE_POOLS,
                           h_num_of, NULL);
}
