/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host side of the hybrid virtio-vsock: UNIX socket helpers and the
 * "CONNECT <port>\n" command (see include/vireo/virtio-vsock.h). Nothing
 * here blocks: every socket is non-blocking, and writes never raise
 * SIGPIPE.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/util.h"
#include "vireo/virtio-vsock.h"

static gboolean vsock_uds_addr(struct sockaddr_un *addr, const char *path)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path))
        return FALSE;
    strcpy(addr->sun_path, path);
    return TRUE;
}

/* TRUE if a server accepts connections at @addr (so it is not stale). */
static gboolean vsock_uds_in_use(const struct sockaddr_un *addr)
{
    autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return FALSE;
    /* EAGAIN: a full backlog, so someone listens. */
    return connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 || errno == EAGAIN;
}

int vsock_uds_listen(const char *path, dev_t *dev, ino_t *ino, GError **error)
{
    struct sockaddr_un addr;
    autoclose int fd = -1;
    struct stat st;

    if (!vsock_uds_addr(&addr, path)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "vsock socket path '%s' is too long (at most %zu bytes)", path,
                    sizeof(addr.sun_path) - 1);
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "cannot use '%s' as vsock socket: the file exists and is not a socket",
                        path);
            return -1;
        }
        if (vsock_uds_in_use(&addr)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "cannot use '%s' as vsock socket: another process listens on it", path);
            return -1;
        }
        /* Left behind by a process that died: replace it. */
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(fd, 64) < 0 || stat(path, &st) < 0) {
        int saved = errno;

        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot listen on vsock socket '%s': %s",
                    path, g_strerror(saved));
        return -1;
    }
    *dev = st.st_dev;
    *ino = st.st_ino;
    return vireo_steal_fd(&fd);
}

void vsock_uds_unlink(const char *path, dev_t dev, ino_t ino)
{
    struct stat st;

    /* Someone may have put another file there since. */
    if (lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
        unlink(path);
}

int vsock_uds_connect(const char *path, uint32_t port)
{
    g_autofree char *full = g_strdup_printf("%s_%u", path, port);
    struct sockaddr_un addr;
    autoclose int fd = -1;

    if (!vsock_uds_addr(&addr, full)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* A UNIX socket connects at once or fails (EAGAIN: the listener's backlog is full). */
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return vireo_steal_fd(&fd);
}

gboolean vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port)
{
    static const char cmd[] = "CONNECT ";
    uint64_t v = 0;
    size_t i = sizeof(cmd) - 1, digits = 0;

    if (len > VSOCK_UDS_CONNECT_MAX || len < i + 2 || memcmp(line, cmd, i) != 0)
        return FALSE;
    for (; i < len && g_ascii_isdigit(line[i]); i++, digits++) {
        v = v * 10 + (line[i] - '0');
        if (v > UINT32_MAX)
            return FALSE;
    }
    if (!digits || digits > 10)
        return FALSE;
    if (i < len && line[i] == '\r')
        i++;
    if (i + 1 != len || line[i] != '\n')
        return FALSE;
    *port = v;
    return TRUE;
}

ssize_t vsock_uds_send(int fd, const struct iovec *iov, unsigned n)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };

    for (;;) {
        ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -1;
    }
}
