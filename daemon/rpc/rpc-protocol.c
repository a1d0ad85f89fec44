/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Procedure table lookups and type-erased payload helpers. */
#include <string.h>

#include "vireo/rpc-protocol.h"

static int proc_cmp(const void *key, const void *elem)
{
    const RpcProcedure *k = key, *e = elem;

    if (k->prog != e->prog)
        return k->prog < e->prog ? -1 : 1;
    if (k->proc != e->proc)
        return k->proc < e->proc ? -1 : 1;
    return 0;
}

const RpcProcedure *rpc_protocol_find(guint32 prog, gint32 proc)
{
    RpcProcedure key = { .prog = prog, .proc = proc };

    return bsearch(&key, rpc_protocol_procedures, rpc_protocol_n_procedures,
                   sizeof(RpcProcedure), proc_cmp);
}

const char *rpc_protocol_proc_name(guint32 prog, gint32 proc)
{
    const RpcProcedure *p;

    if (prog == REMOTE_PROGRAM && proc > 0 && proc <= REMOTE_PROC_LAST)
        return rpc_remote_proc_names[proc];
    p = rpc_protocol_find(prog, proc);
    return p ? p->name : NULL;
}

const char *rpc_protocol_api_name(guint32 prog, gint32 proc)
{
    const RpcProcedure *p;

    if (prog == REMOTE_PROGRAM && proc > 0 && proc <= REMOTE_PROC_LAST)
        return rpc_remote_proc_apis[proc];
    p = rpc_protocol_find(prog, proc);
    return p ? p->api : NULL;
}

gboolean rpc_payload_encode(const RpcPayloadType *t, XdrWriter *w, const void *v,
                            GError **error)
{
    if (!t->size)
        return TRUE;
    if (!v) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID, "no value for %s", t->name);
        return FALSE;
    }
    return t->encode(w, v, error);
}

gboolean rpc_payload_decode(const RpcPayloadType *t, const void *data, gsize len,
                            void *v, GError **error)
{
    XdrReader r;

    xdr_reader_init(&r, data, len);
    if (t->size) {
        if (!t->decode(&r, v, error))
            return FALSE;
    }
    if (!xdr_reader_finish(&r, error)) {
        if (t->size)
            t->clear(v);
        return FALSE;
    }
    return TRUE;
}

gpointer rpc_payload_decode_new(const RpcPayloadType *t, const void *data, gsize len,
                                GError **error)
{
    gpointer v = t->size ? g_malloc0(t->size) : NULL;

    if (!rpc_payload_decode(t, data, len, v, error)) {
        g_free(v);
        return NULL;
    }
    /* A void payload decodes to NULL; callers check the error, not the value. */
    return v;
}

void rpc_payload_free(const RpcPayloadType *t, gpointer v)
{
    if (!v)
        return;
    if (t->size)
        t->clear(v);
    g_free(v);
}
