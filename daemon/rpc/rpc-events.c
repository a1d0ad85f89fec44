/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Domain event registrations and delivery.
 *
 * Clients since libvirt 1.2.1 register one callback per event ID with
 * CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY (optionally for one domain)
 * and get a callbackID back; events then arrive as MESSAGEs that start
 * with that callbackID (DOMAIN_EVENT_CALLBACK_LIFECYCLE, 318). Older
 * clients use CONNECT_DOMAIN_EVENT_REGISTER and get DOMAIN_EVENT_LIFECYCLE
 * (107) without one. callbackIDs count from 0 on each connection.
 */
#include <string.h>

#include "rpc-server-priv.h"

static void callback_register_any(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectDomainEventCallbackRegisterAnyArgs *a = args;
    RpcServerClient *c = rpc_call_get_client(call);
    RemoteConnectDomainEventCallbackRegisterAnyRet ret;
    RpcEventReg reg = { 0 };

    if (a->eventID < 0 || a->eventID >= RPC_DOMAIN_EVENT_ID_LAST) {
        rpc_call_reply_error(call, rpc_remote_error_new(RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                             "unsupported event ID %d", a->eventID));
        return;
    }
    reg.callback_id = c->next_callback_id++;
    reg.event_id = a->eventID;
    reg.any_domain = a->dom == NULL;
    if (a->dom)
        memcpy(reg.uuid, a->dom->uuid, sizeof(reg.uuid));
    g_array_append_val(c->event_regs, reg);
    ret.callbackID = reg.callback_id;
    rpc_call_reply(call, &ret);
}

static void callback_deregister_any(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectDomainEventCallbackDeregisterAnyArgs *a = args;
    RpcServerClient *c = rpc_call_get_client(call);

    for (guint i = 0; i < c->event_regs->len; i++) {
        if (g_array_index(c->event_regs, RpcEventReg, i).callback_id == a->callbackID) {
            g_array_remove_index(c->event_regs, i);
            rpc_call_reply(call, NULL);
            return;
        }
    }
    rpc_call_reply_error(call, rpc_remote_error_new(RPC_ERR_INTERNAL_ERROR, RPC_FROM_RPC,
                         "domain event %d not registered", a->callbackID));
}

static void legacy_register(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectDomainEventRegisterRet ret = { .cb_registered = 1 };

    rpc_call_get_client(call)->legacy_lifecycle = TRUE;
    rpc_call_reply(call, &ret);
}

static void legacy_deregister(RpcCall *call, gpointer args, gpointer opaque)
{
    RemoteConnectDomainEventDeregisterRet ret = { .cb_registered = 0 };

    rpc_call_get_client(call)->legacy_lifecycle = FALSE;
    rpc_call_reply(call, &ret);
}

void rpc_events_register(RpcServer *srv)
{
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                           callback_register_any, NULL);
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
                           callback_deregister_any, NULL);
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_DOMAIN_EVENT_REGISTER,
                           legacy_register, NULL);
    rpc_server_set_handler(srv, REMOTE_PROGRAM, REMOTE_PROC_CONNECT_DOMAIN_EVENT_DEREGISTER,
                           legacy_deregister, NULL);
}

void rpc_events_client_clear(RpcServerClient *c)
{
    g_array_set_size(c->event_regs, 0);
    c->legacy_lifecycle = FALSE;
}

typedef struct LifecycleEvent {
    RpcServer *srv;
    RemoteDomainEventLifecycleMsg msg;
} LifecycleEvent;

static void domain_copy(RemoteNonnullDomain *dst, const RemoteNonnullDomain *src)
{
    dst->name = g_strdup(src->name);
    memcpy(dst->uuid, src->uuid, sizeof(dst->uuid));
    dst->id = src->id;
}

/* Sending may drop a slow client: deliveries work on a referenced copy of the list. */
static GPtrArray *clients_snapshot(RpcServer *srv)
{
    GPtrArray *clients = g_ptr_array_new_with_free_func((GDestroyNotify)rpc_server_client_unref);

    for (guint i = 0; i < srv->clients->len; i++)
        g_ptr_array_add(clients, rpc_server_client_ref(g_ptr_array_index(srv->clients, i)));
    return clients;
}

/* A registration for @event_id of all domains, or of @dom's. */
static gboolean reg_matches(const RpcEventReg *reg, int event_id, const RemoteNonnullDomain *dom)
{
    return reg->event_id == event_id &&
           (reg->any_domain || !memcmp(reg->uuid, dom->uuid, sizeof(reg->uuid)));
}

static gboolean lifecycle_deliver(gpointer data)
{
    LifecycleEvent *ev = data;
    g_autoptr(GPtrArray) clients = clients_snapshot(ev->srv);

    for (guint i = 0; i < clients->len; i++) {
        RpcServerClient *c = g_ptr_array_index(clients, i);

        if (!c->opened || g_atomic_int_get(&c->closed))
            continue;
        if (c->legacy_lifecycle)
            rpc_server_client_send_message(c, REMOTE_PROGRAM, REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE,
                                           &ev->msg);
        for (guint j = 0; j < c->event_regs->len && !g_atomic_int_get(&c->closed); j++) {
            RpcEventReg *reg = &g_array_index(c->event_regs, RpcEventReg, j);
            RemoteDomainEventCallbackLifecycleMsg cb;

            if (!reg_matches(reg, RPC_DOMAIN_EVENT_ID_LIFECYCLE, &ev->msg.dom))
                continue;
            cb.callbackID = reg->callback_id;
            cb.msg = ev->msg;
            rpc_server_client_send_message(c, REMOTE_PROGRAM,
                                           REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE, &cb);
        }
    }
    return G_SOURCE_REMOVE;
}

static void lifecycle_free(gpointer data)
{
    LifecycleEvent *ev = data;

    remote_domain_event_lifecycle_msg_clear(&ev->msg);
    rpc_server_unref_internal(ev->srv);
    g_free(ev);
}

void rpc_server_emit_domain_lifecycle(RpcServer *srv, const RemoteNonnullDomain *dom,
                                      int event, int detail)
{
    LifecycleEvent *ev = g_new0(LifecycleEvent, 1);

    ev->srv = rpc_server_ref_internal(srv);
    domain_copy(&ev->msg.dom, dom);
    ev->msg.event = event;
    ev->msg.detail = detail;
    g_main_context_invoke_full(srv->ctx, G_PRIORITY_DEFAULT, lifecycle_deliver, ev,
                               lifecycle_free);
}

typedef struct IterationEvent {
    RpcServer *srv;
    RemoteDomainEventCallbackMigrationIterationMsg msg;
} IterationEvent;

/* Callback registrations only: no legacy procedure carries this event. */
static gboolean iteration_deliver(gpointer data)
{
    IterationEvent *ev = data;
    g_autoptr(GPtrArray) clients = clients_snapshot(ev->srv);

    for (guint i = 0; i < clients->len; i++) {
        RpcServerClient *c = g_ptr_array_index(clients, i);

        if (!c->opened)
            continue;
        for (guint j = 0; j < c->event_regs->len && !g_atomic_int_get(&c->closed); j++) {
            RpcEventReg *reg = &g_array_index(c->event_regs, RpcEventReg, j);

            if (!reg_matches(reg, RPC_DOMAIN_EVENT_ID_MIGRATION_ITERATION, &ev->msg.dom))
                continue;
            ev->msg.callbackID = reg->callback_id;
            rpc_server_client_send_message(c, REMOTE_PROGRAM,
                                           REMOTE_PROC_DOMAIN_EVENT_CALLBACK_MIGRATION_ITERATION,
                                           &ev->msg);
        }
    }
    return G_SOURCE_REMOVE;
}

static void iteration_free(gpointer data)
{
    IterationEvent *ev = data;

    remote_domain_event_callback_migration_iteration_msg_clear(&ev->msg);
    rpc_server_unref_internal(ev->srv);
    g_free(ev);
}

void rpc_server_emit_domain_migration_iteration(RpcServer *srv, const RemoteNonnullDomain *dom,
                                                int iteration)
{
    IterationEvent *ev = g_new0(IterationEvent, 1);

    ev->srv = rpc_server_ref_internal(srv);
    domain_copy(&ev->msg.dom, dom);
    ev->msg.iteration = iteration;
    g_main_context_invoke_full(srv->ctx, G_PRIORITY_DEFAULT, iteration_deliver, ev,
                               iteration_free);
}
