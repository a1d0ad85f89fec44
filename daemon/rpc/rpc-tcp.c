/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TCP transport of the remote protocol (include/vireo/rpc-tcp.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vireo/rpc-error.h"
#include "vireo/rpc-tcp.h"

gboolean rpc_tcp_parse_address(const char *spec, char **host, guint16 *port, GError **error)
{
    g_autofree char *h = NULL;
    const char *p = NULL;
    guint64 n = RPC_TCP_DEFAULT_PORT;

    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');

        if (!end || (end[1] && end[1] != ':'))
            goto bad;
        h = g_strndup(spec + 1, end - spec - 1);
        p = end[1] ? end + 2 : NULL;
    } else {
        const char *colon = strrchr(spec, ':');

        /* More than one colon without brackets: a bare IPv6 address. */
        if (colon && strchr(spec, ':') == colon) {
            h = g_strndup(spec, colon - spec);
            p = colon + 1;
        } else {
            h = g_strdup(spec);
        }
    }
    if (p && (!g_ascii_string_to_unsigned(p, 10, 1, 65535, &n, NULL)))
        goto bad;
    *host = *h ? g_steal_pointer(&h) : g_strdup("0.0.0.0");
    *port = (guint16)n;
    return TRUE;

bad:
    g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID,
                "invalid address '%s' (expected ADDR:PORT)", spec);
    return FALSE;
}

static struct addrinfo *resolve(const char *host, guint16 port, gboolean passive,
                                GError **error)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = passive ? AI_PASSIVE : 0 };
    struct addrinfo *res = NULL;
    char service[8];
    int rc;

    g_snprintf(service, sizeof(service), "%u", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_IO, "cannot resolve '%s': %s", host,
                    gai_strerror(rc));
        return NULL;
    }
    return res;
}

int rpc_tcp_listen(const char *spec, GError **error)
{
    g_autofree char *host = NULL;
    struct addrinfo *res, *ai;
    guint16 port;
    int fd = -1, saved = 0, one = 1;

    if (!rpc_tcp_parse_address(spec, &host, &port, error))
        return -1;
    res = resolve(host, port, TRUE, error);
    if (!res)
        return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "cannot listen on %s: %s", spec, g_strerror(saved));
    return fd;
}

/* One address: non-blocking connect, then poll, so a dead host does not hang us. */
static int connect_one(const struct addrinfo *ai, guint timeout_ms, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    struct pollfd pfd;
    socklen_t len = sizeof(*err);
    int one = 1;

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return -1;
    }
    pfd = (struct pollfd) { .fd = fd, .events = POLLOUT };
    if (poll(&pfd, 1, (int)timeout_ms) <= 0) {
        *err = ETIMEDOUT;
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) < 0 || *err) {
        if (!*err)
            *err = errno;
        close(fd);
        return -1;
    }
    /* Small request/reply packets: no Nagle delay. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int rpc_tcp_connect(const char *host, guint16 port, guint timeout_ms, GError **error)
{
    struct addrinfo *res = resolve(host, port, FALSE, error);
    int fd = -1, err = 0;

    if (!res)
        return -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = connect_one(ai, timeout_ms, &err);
    freeaddrinfo(res);
    if (fd < 0)
        g_set_error(error, RPC_ERROR, RPC_ERROR_CLOSED,
                    "unable to connect to server at '%s:%u': %s", host, port, g_strerror(err));
    return fd;
}
