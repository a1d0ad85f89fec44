/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Error domains of the RPC layer (daemon/rpc/), and the libvirt error
 * numbers that travel in remote_error.
 *
 * Two GError domains:
 * - RPC_ERROR: something went wrong here or on the wire (malformed data from
 *   the peer, a protocol limit, a closed socket).
 * - RPC_REMOTE_ERROR: the peer answered with a remote_error. The GError's
 *   code is the libvirt error number (RPC_ERR_*), its message the
 *   remote_error's message, unchanged, so it can be shown as virsh shows it.
 */
#ifndef VIREO_RPC_ERROR_H
#define VIREO_RPC_ERROR_H

#include <glib.h>

#define RPC_ERROR rpc_error_quark()
GQuark rpc_error_quark(void);

typedef enum {
    RPC_ERROR_DECODE,       /* malformed XDR or packet from the peer */
    RPC_ERROR_LIMIT,        /* a protocol limit (string, array, packet size) */
    RPC_ERROR_PROTOCOL,     /* a packet that makes no sense at this point */
    RPC_ERROR_IO,           /* socket error */
    RPC_ERROR_CLOSED,       /* the connection is closed */
    RPC_ERROR_TIMEOUT,      /* keepalive: the peer stopped answering */
    RPC_ERROR_INVALID,      /* a caller's mistake that is not a bug, e.g. NULL string */
    RPC_ERROR_TLS,          /* TLS: certificate files, handshake, peer refused */
} RpcErrorCode;

#define RPC_REMOTE_ERROR rpc_remote_error_quark()
GQuark rpc_remote_error_quark(void);

/*
 * libvirt's virErrorNumber values (include/libvirt/virterror.h). Only the
 * numbers are protocol; the list holds the ones we send or test for.
 */
typedef enum {
    RPC_ERR_OK = 0,
    RPC_ERR_INTERNAL_ERROR = 1,
    RPC_ERR_NO_MEMORY = 2,
    RPC_ERR_NO_SUPPORT = 3,
    RPC_ERR_NO_CONNECT = 5,
    RPC_ERR_INVALID_CONN = 6,
    RPC_ERR_INVALID_DOMAIN = 7,
    RPC_ERR_INVALID_ARG = 8,
    RPC_ERR_OPERATION_FAILED = 9,
    RPC_ERR_XML_ERROR = 27,
    RPC_ERR_DOM_EXIST = 28,
    RPC_ERR_OPERATION_DENIED = 29,
    RPC_ERR_SYSTEM_ERROR = 38,
    RPC_ERR_RPC = 39,
    RPC_ERR_NO_DOMAIN = 42,
    RPC_ERR_AUTH_FAILED = 45,
    RPC_ERR_OPERATION_INVALID = 55,
    RPC_ERR_CONFIG_UNSUPPORTED = 67,
    RPC_ERR_OPERATION_TIMEOUT = 68,
    RPC_ERR_ARGUMENT_UNSUPPORTED = 74,
    RPC_ERR_OPERATION_ABORTED = 78,
    RPC_ERR_OVERFLOW = 82,
    RPC_ERR_OPERATION_UNSUPPORTED = 84,
    RPC_ERR_RESOURCE_BUSY = 87,
    RPC_ERR_ACCESS_DENIED = 88,
    RPC_ERR_AUTH_UNAVAILABLE = 94,
    RPC_ERR_MULTIPLE_DOMAINS = 110,
} RpcErrNumber;

/* libvirt's virErrorDomain values: where an error comes from. */
typedef enum {
    RPC_FROM_NONE = 0,
    RPC_FROM_RPC = 7,
    RPC_FROM_QEMU = 10,
    RPC_FROM_REMOTE = 13,
    RPC_FROM_DOMAIN = 20,
    RPC_FROM_STREAMS = 38,
    RPC_FROM_AUTH = 46,
    RPC_FROM_ACCESS = 55,
} RpcErrDomain;

/* libvirt's virErrorLevel. */
typedef enum {
    RPC_ERR_LEVEL_NONE = 0,
    RPC_ERR_LEVEL_WARNING = 1,
    RPC_ERR_LEVEL_ERROR = 2,
} RpcErrLevel;

/*
 * libvirt formats a message from a per-number template: "%s" replaced by
 * the detail ("Domain not found: %s"), or the bare text when there is no
 * detail. Returns the template for @code with (@with_detail) or without
 * a "%s", or NULL for numbers this table does not know.
 */
const char *rpc_err_template(int code, gboolean with_detail);

#endif /* VIREO_RPC_ERROR_H */
