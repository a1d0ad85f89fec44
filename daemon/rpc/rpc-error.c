/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote_error as libvirt fills it: the message is a per-code template
 * with the detail in it, str1 the template, str2 the detail. Clients show
 * only the message, but keep all fields, so we fill them the same way.
 */
#include <string.h>

#include "vireo/rpc-protocol.h"
#include "vireo/util.h"

typedef struct ErrTemplate {
    int code;
    const char *bare;     /* no detail */
    const char *detail;   /* one %s */
} ErrTemplate;

/* libvirt's wording (virerror.c), for the numbers in RpcErrNumber. */
static const ErrTemplate templates[] = {
    { RPC_ERR_INTERNAL_ERROR, "internal error", "internal error: %s" },
    { RPC_ERR_NO_MEMORY, "out of memory", "out of memory: %s" },
    { RPC_ERR_NO_SUPPORT, "this function is not supported by the connection driver",
      "this function is not supported by the connection driver: %s" },
    { RPC_ERR_NO_CONNECT, "no connection driver available",
      "no connection driver available for %s" },
    { RPC_ERR_INVALID_CONN, "invalid connection pointer in", "invalid connection pointer in %s" },
    { RPC_ERR_INVALID_DOMAIN, "invalid domain pointer in", "invalid domain pointer in %s" },
    { RPC_ERR_INVALID_ARG, "invalid argument", "invalid argument: %s" },
    { RPC_ERR_OPERATION_FAILED, "operation failed", "operation failed: %s" },
    { RPC_ERR_XML_ERROR, "XML description is invalid or not well formed", "XML error: %s" },
    { RPC_ERR_DOM_EXIST, "this domain exists already", "domain %s exists already" },
    { RPC_ERR_OPERATION_DENIED, "operation forbidden for read only access",
      "operation forbidden: %s" },
    { RPC_ERR_SYSTEM_ERROR, "system call error", "%s" },
    { RPC_ERR_RPC, "RPC error", "%s" },
    { RPC_ERR_NO_DOMAIN, "Domain not found", "Domain not found: %s" },
    { RPC_ERR_AUTH_FAILED, "authentication failed", "authentication failed: %s" },
    { RPC_ERR_OPERATION_INVALID, "Requested operation is not valid",
      "Requested operation is not valid: %s" },
    { RPC_ERR_CONFIG_UNSUPPORTED, "unsupported configuration", "unsupported configuration: %s" },
    { RPC_ERR_OPERATION_TIMEOUT, "Timed out during operation",
      "Timed out during operation: %s" },
    { RPC_ERR_OPERATION_ABORTED, "operation aborted", "operation aborted: %s" },
    { RPC_ERR_OVERFLOW, "numerical overflow", "numerical overflow: %s" },
    { RPC_ERR_OPERATION_UNSUPPORTED, "Operation not supported", "Operation not supported: %s" },
    { RPC_ERR_RESOURCE_BUSY, "resource busy", "resource busy: %s" },
    { RPC_ERR_ACCESS_DENIED, "access denied", "access denied: %s" },
    { RPC_ERR_AUTH_UNAVAILABLE, "authentication unavailable", "authentication unavailable: %s" },
    { RPC_ERR_MULTIPLE_DOMAINS, "multiple matching domains found",
      "multiple matching domains found: %s" },
};

const char *rpc_err_template(int code, gboolean with_detail)
{
    for (gsize i = 0; i < G_N_ELEMENTS(templates); i++) {
        if (templates[i].code == code)
            return with_detail ? templates[i].detail : templates[i].bare;
    }
    return NULL;
}

RemoteError *rpc_remote_error_newv(int code, int domain, const char *fmt, va_list ap)
{
    RemoteError *e = g_new0(RemoteError, 1);
    g_autofree char *detail = fmt ? g_strdup_vprintf(fmt, ap) : NULL;
    const char *tmpl;

    if (detail && !*detail)
        g_clear_pointer(&detail, g_free);
    tmpl = rpc_err_template(code, detail != NULL);
    e->code = code;
    e->domain = domain;
    e->level = RPC_ERR_LEVEL_ERROR;
    e->int1 = -1;
    e->int2 = -1;
    if (tmpl) {
        e->str1 = g_strdup(tmpl);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        e->message = detail ? g_strdup_printf(tmpl, detail) : g_strdup(tmpl);
#pragma GCC diagnostic pop
    } else {
        e->message = g_strdup(detail ? detail : "unknown error");
    }
    /* libvirt always sends the detail, empty when there is none. */
    e->str2 = detail ? g_steal_pointer(&detail) : g_strdup("");
    return e;
}

RemoteError *rpc_remote_error_new(int code, int domain, const char *fmt, ...)
{
    va_list ap;
    RemoteError *e;

    va_start(ap, fmt);
    e = rpc_remote_error_newv(code, domain, fmt, ap);
    va_end(ap);
    return e;
}

void rpc_remote_error_free(RemoteError *e)
{
    if (!e)
        return;
    remote_error_clear(e);
    g_free(e);
}

RemoteError *rpc_remote_error_from_gerror(const GError *err, int domain)
{
    int code = RPC_ERR_INTERNAL_ERROR;

    if (err->domain == RPC_REMOTE_ERROR) {
        code = err->code;
    } else if (err->domain == VIREO_ERROR) {
        switch (err->code) {
        case VIREO_ERROR_INVALID_ARGUMENT:
            code = RPC_ERR_INVALID_ARG;
            break;
        case VIREO_ERROR_UNSUPPORTED:
            code = RPC_ERR_OPERATION_UNSUPPORTED;
            break;
        case VIREO_ERROR_INVALID_STATE:
            code = RPC_ERR_OPERATION_INVALID;
            break;
        default:
            break;
        }
    } else if (err->domain == G_FILE_ERROR) {
        code = RPC_ERR_SYSTEM_ERROR;
    }
    return rpc_remote_error_new(code, domain, "%s", err->message);
}

void rpc_remote_error_to_gerror(const RemoteError *e, GError **error)
{
    const char *msg = e->message;

    if (!msg)
        msg = rpc_err_template(e->code, FALSE);
    g_set_error_literal(error, RPC_REMOTE_ERROR, e->code,
                        msg ? msg : "unknown error from the remote side");
}
