/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Connection-level procedures the RPC layer answers itself, as libvirtd's
 * remote driver does: authentication, feature probes, open and close, the
 * close callback. Every virsh command starts with AUTH_LIST,
 * SUPPORTS_FEATURE(keepalive), CONNECT_OPEN, SUPPORTS_FEATURE(event
 * callbacks, close callback), REGISTER_CLOSE_CALLBACK and ends with
 * UNREGISTER_CLOSE_CALLBACK, CONNECT_CLOSE (docs/rpc.md). virt-admin's
 * program has its own CONNECT_OPEN and CONNECT_CLOSE, answered here too.
 */
#include "rpc-server-priv.h"

static void auth_list(RpcCall *call, gpointer args, gpointer opaque)
{
    RpcServerClient *c = rpc_call_get_client(call);
    /* Unauthorized peers are offered polkit, which we do not have: see auth_polkit(). */
    RemoteAuthType type = c->authenticated ? REMOTE_AUTH_NONE : REMOTE_AUTH_POLKIT;
    RemoteAuthListRet ret = { .n_types = 1, .types = &type };

    rpc_call_reply(call, &ret);
}

static void auth_polkit(RpcCall *call, gpointer args, gpointer opaque)
{
    RpcServerClient *c = rpc_call_get_client(call);
    RemoteAuthPolkitRet ret = { .complete = 1 };

    if (c->authenticated) {
        rpc_call_reply(call, &ret);
        return;
    }
    rpc_call_reply_error(call, rpc_remote_error_new(RPC_ERR_AUTH_FAILED, RPC_FROM_AUTH,
                         "access to the read-write socket is limited to root"));
}

static void supports_feature(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectSupportsFeatureArgs *a = args;
    RpcServerClient *c = rpc_call_get_client(call);
    RpcServer *srv = c->srv;
    RemoteConnectSupportsFeatureRet ret = { 0 };

    /* Asked before CONNECT_OPEN; the answer also turns our pings on. */
    if (a->feature == RPC_FEATURE_PROGRAM_KEEPALIVE) {
        rpc_server_client_start_keepalive(c);
        ret.supported = 1;
        rpc_call_reply(call, &ret);
        return;
    }
    if (!c->opened) {
        rpc_call_reply_error(call, rpc_remote_error_new(RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                             "hypervisor connection not open"));
        return;
    }
    switch (a->feature) {
    case RPC_FEATURE_REMOTE:
    case RPC_FEATURE_TYPED_PARAM_STRING:
    case RPC_FEATURE_REMOTE_EVENT_CALLBACK:
    case RPC_FEATURE_REMOTE_CLOSE_CALLBACK:
    case RPC_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER:
        ret.supported = 1;
        break;
    case RPC_FEATURE_FD_PASSING:
        /* libvirtd says yes; we take no file descriptors (docs/rpc.md). */
        ret.supported = 0;
        break;
    default:
        ret.supported = srv->hooks.supports_feature ?
            srv->hooks.supports_feature(c, a->feature, srv->hooks_opaque) : 0;
        break;
    }
    rpc_call_reply(call, &ret);
}

/* Both programs' CONNECT_OPEN: a second one on the same connection is refused. */
static gboolean refuse_reopen(RpcCall *call, RpcServerClient *c)
{
    if (!c->opened)
        return FALSE;
    rpc_call_reply_error(call, rpc_remote_error_new(RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                         "connection already open"));
    return TRUE;
}

static void connect_open(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectOpenArgs *a = args;
    RpcServerClient *c = rpc_call_get_client(call);
    RpcServer *srv = c->srv;
    g_autoptr(GError) error = NULL;

    if (refuse_reopen(call, c))
        return;
    if (srv->hooks.open &&
        !srv->hooks.open(c, a->name, a->flags, srv->hooks_opaque, &error)) {
        rpc_call_fail_gerror(call, error);
        return;
    }
    c->opened = TRUE;
    if (a->flags & RPC_CONNECT_RO)
        c->readonly = TRUE;
    rpc_call_reply(call, NULL);
}

static void connect_close(RpcCall *call, gpointer args, gpointer opaque)
{
    RpcServerClient *c = rpc_call_get_client(call);

    /* libvirtd drops the connection once this reply is out. */
    c->opened = FALSE;
    rpc_call_reply(call, NULL);
    rpc_server_client_close(c, TRUE);
}

/* virt-admin's program opens and closes its connection the same way, but its
 * open takes only flags. Without the open, every other admin call is refused. */
static void admin_open(RpcCall *call, gpointer args, gpointer opaque)
{
    RpcServerClient *c = rpc_call_get_client(call);

    if (refuse_reopen(call, c))
        return;
    c->opened = TRUE;
    rpc_call_reply(call, NULL);
}

static void register_close_callback(RpcCall *call, gpointer args, gpointer opaque)
{
    rpc_call_get_client(call)->close_callback = TRUE;
    rpc_call_reply(call, NULL);
}

static void unregister_close_callback(RpcCall *call, gpointer args, gpointer opaque)
{
    rpc_call_get_client(call)->close_callback = FALSE;
    rpc_call_reply(call, NULL);
}

void rpc_builtin_register(RpcServer *srv)
{
    static const struct {
        gint32 proc;
        RpcHandlerFunc fn;
    } builtins[] = {
        { REMOTE_PROC_AUTH_LIST, auth_list },
        { REMOTE_PROC_AUTH_POLKIT, auth_polkit },
        { REMOTE_PROC_CONNECT_SUPPORTS_FEATURE, supports_feature },
        { REMOTE_PROC_CONNECT_OPEN, connect_open },
        { REMOTE_PROC_CONNECT_CLOSE, connect_close },
        { REMOTE_PROC_CONNECT_REGISTER_CLOSE_CALLBACK, register_close_callback },
        { REMOTE_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK, unregister_close_callback },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(builtins); i++)
        rpc_server_set_handler(srv, REMOTE_PROGRAM, builtins[i].proc, builtins[i].fn, NULL);
    /* Only answered where the admin program is served (rpc_server_add_program). */
    rpc_server_set_handler(srv, ADMIN_PROGRAM, ADMIN_PROC_CONNECT_OPEN, admin_open, NULL);
    rpc_server_set_handler(srv, ADMIN_PROGRAM, ADMIN_PROC_CONNECT_CLOSE, connect_close, NULL);
}
