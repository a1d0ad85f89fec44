/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libvirt's remote protocol: the procedure table and typed payloads.
 *
 * The types and their codecs are generated (rpc-protocol-gen.h, from
 * daemon/rpc/protocol.def). This header adds the table that maps a
 * (program, procedure) to its name, the public API libvirt runs for it,
 * its flags and its payload types, plus libvirt's constants that are not
 * types (auth types, features, event IDs, domain states).
 *
 * Everything here is pure data and pure functions: safe from any thread.
 */
#ifndef VIREO_RPC_PROTOCOL_H
#define VIREO_RPC_PROTOCOL_H

#include <glib.h>

#include "vireo/xdr.h"
#include "vireo/rpc-protocol-gen.h"

typedef gboolean (*RpcEncodeFunc)(XdrWriter *w, const void *v, GError **error);
typedef gboolean (*RpcDecodeFunc)(XdrReader *r, void *v, GError **error);
typedef void (*RpcClearFunc)(void *v);

/* One payload type; size 0 means void (an empty payload). */
typedef struct RpcPayloadType {
    gsize size;
    const char *name;            /* e.g. "remote_domain_get_info_ret" */
    RpcEncodeFunc encode;
    RpcDecodeFunc decode;
    RpcClearFunc clear;
} RpcPayloadType;

typedef enum {
    RPC_PROC_RO = 1 << 0,        /* allowed on a read-only connection */
    RPC_PROC_NOAUTH = 1 << 1,    /* allowed before authentication */
    RPC_PROC_NOOPEN = 1 << 2,    /* allowed before CONNECT_OPEN */
    RPC_PROC_EVENT = 1 << 3,     /* a MESSAGE from the server; args = the message */
    RPC_PROC_STREAM = 1 << 4,    /* a successful reply opens a stream */
} RpcProcFlags;

typedef struct RpcProcedure {
    guint32 prog;
    guint32 vers;
    gint32 proc;
    const char *name;            /* "DOMAIN_GET_INFO" */
    const char *api;             /* "virDomainGetInfo"; NULL for events */
    guint flags;                 /* RpcProcFlags */
    RpcPayloadType args;         /* CALL payload (MESSAGE payload for events) */
    RpcPayloadType ret;          /* REPLY payload */
} RpcProcedure;

/* Generated tables (rpc-protocol-gen.c). */
extern const RpcProcedure rpc_protocol_procedures[];
extern const gsize rpc_protocol_n_procedures;
extern const char *const rpc_remote_proc_names[REMOTE_PROC_LAST + 1];
extern const char *const rpc_remote_proc_apis[REMOTE_PROC_LAST + 1];

/* The typed procedure, or NULL when Vireo has no types for it. */
const RpcProcedure *rpc_protocol_find(guint32 prog, gint32 proc);
/*
 * Name ("DOMAIN_GET_INFO") and public API ("virDomainGetInfo") of any
 * procedure libvirt 9.0.0 knows, typed here or not; NULL when unknown.
 * API names of untyped procedures are derived from the name and may
 * differ from libvirt's in rare cases; they only appear in error messages.
 */
const char *rpc_protocol_proc_name(guint32 prog, gint32 proc);
const char *rpc_protocol_api_name(guint32 prog, gint32 proc);

/* Payload helpers: encode/decode/free a payload of type @t. */
gboolean rpc_payload_encode(const RpcPayloadType *t, XdrWriter *w, const void *v,
                            GError **error);
/* Decodes all of @data into @v (t->size bytes); trailing bytes are an error. */
gboolean rpc_payload_decode(const RpcPayloadType *t, const void *data, gsize len,
                            void *v, GError **error);
/* Heap-allocated variants; rpc_payload_free() clears and frees. */
gpointer rpc_payload_decode_new(const RpcPayloadType *t, const void *data, gsize len,
                                GError **error);
void rpc_payload_free(const RpcPayloadType *t, gpointer v);

/* remote_auth_type */
enum {
    REMOTE_AUTH_NONE = 0,
    REMOTE_AUTH_SASL = 1,
    REMOTE_AUTH_POLKIT = 2,
};

/* virDrvFeature numbers asked with CONNECT_SUPPORTS_FEATURE. */
enum {
    RPC_FEATURE_MIGRATION_V1 = 1,
    RPC_FEATURE_REMOTE = 2,
    RPC_FEATURE_MIGRATION_V2 = 3,
    RPC_FEATURE_MIGRATION_P2P = 4,
    RPC_FEATURE_MIGRATION_DIRECT = 5,
    RPC_FEATURE_MIGRATION_V3 = 6,
    RPC_FEATURE_MIGRATE_CHANGE_PROTECTION = 7,
    RPC_FEATURE_FD_PASSING = 8,
    RPC_FEATURE_TYPED_PARAM_STRING = 9,
    RPC_FEATURE_PROGRAM_KEEPALIVE = 10,
    RPC_FEATURE_XML_MIGRATABLE = 11,
    RPC_FEATURE_MIGRATION_OFFLINE = 12,
    RPC_FEATURE_MIGRATION_PARAMS = 13,
    RPC_FEATURE_REMOTE_EVENT_CALLBACK = 14,
    RPC_FEATURE_REMOTE_CLOSE_CALLBACK = 15,
    RPC_FEATURE_NETWORK_UPDATE_HAS_CORRECT_ORDER = 16,
};

/* virDomainEventID: 0 LIFECYCLE ... 26 MEMORY_DEVICE_SIZE_CHANGE in 9.0.0. */
#define RPC_DOMAIN_EVENT_ID_LIFECYCLE 0
#define RPC_DOMAIN_EVENT_ID_MIGRATION_ITERATION 20
#define RPC_DOMAIN_EVENT_ID_LAST 27

/* virDomainEventType (lifecycle "event") */
enum {
    RPC_DOMAIN_EVENT_DEFINED = 0,
    RPC_DOMAIN_EVENT_UNDEFINED = 1,
    RPC_DOMAIN_EVENT_STARTED = 2,
    RPC_DOMAIN_EVENT_SUSPENDED = 3,
    RPC_DOMAIN_EVENT_RESUMED = 4,
    RPC_DOMAIN_EVENT_STOPPED = 5,
    RPC_DOMAIN_EVENT_SHUTDOWN = 6,
    RPC_DOMAIN_EVENT_PMSUSPENDED = 7,
    RPC_DOMAIN_EVENT_CRASHED = 8,
};

/* virDomainState */
enum {
    RPC_DOMAIN_NOSTATE = 0,
    RPC_DOMAIN_RUNNING = 1,
    RPC_DOMAIN_BLOCKED = 2,
    RPC_DOMAIN_PAUSED = 3,
    RPC_DOMAIN_SHUTDOWN = 4,
    RPC_DOMAIN_SHUTOFF = 5,
    RPC_DOMAIN_CRASHED = 6,
    RPC_DOMAIN_PMSUSPENDED = 7,
};

/* virConnectFlags VIR_CONNECT_RO, in CONNECT_OPEN's flags */
#define RPC_CONNECT_RO 1u

/*
 * A libvirt-style remote_error, as libvirt's virReportError() builds it:
 * message = template(code) with the detail, str1 = the template, str2 =
 * the detail, int1 = int2 = -1, level ERROR. @fmt may be NULL (no detail).
 */
RemoteError *rpc_remote_error_new(int code, int domain, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
RemoteError *rpc_remote_error_newv(int code, int domain, const char *fmt, va_list ap)
    G_GNUC_PRINTF(3, 0);
void rpc_remote_error_free(RemoteError *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RemoteError, rpc_remote_error_free)

/*
 * GError -> remote_error, from @domain. The GError's message becomes the
 * detail. RPC_REMOTE_ERROR keeps its code (so a handler can answer
 * g_set_error(error, RPC_REMOTE_ERROR, RPC_ERR_NO_DOMAIN, "no domain with
 * matching name '%s'", name) and virsh prints "Domain not found: no domain
 * with matching name ..."); VIREO_ERROR_INVALID_ARGUMENT, _UNSUPPORTED and
 * _INVALID_STATE map to VIR_ERR_INVALID_ARG, _OPERATION_UNSUPPORTED and
 * _OPERATION_INVALID; G_FILE_ERROR to VIR_ERR_SYSTEM_ERROR;
 * anything else to VIR_ERR_INTERNAL_ERROR.
 */
RemoteError *rpc_remote_error_from_gerror(const GError *err, int domain);
/* RPC_REMOTE_ERROR with the remote message (or a generic one when absent). */
void rpc_remote_error_to_gerror(const RemoteError *e, GError **error);

#endif /* VIREO_RPC_PROTOCOL_H */
