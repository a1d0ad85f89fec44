/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Migration URIs and the sockets and files they name. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/migration-channel.h"
#include "vireo/util.h"

/*
 * A multifd source connects its channels one after the other while the
 * destination accepts them one after the other: room for all of them, so
 * that no TCP SYN is dropped (and retried a second later).
 */
#define LISTEN_BACKLOG 16

static gboolean bad_uri(const char *uri, const char *why, GError **error)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                "migration URI '%s': %s", uri, why);
    return FALSE;
}

MigUri *mig_uri_parse(const char *uri, GError **error)
{
    g_autoptr(MigUri) u = g_new0(MigUri, 1);

    u->fd = -1;
    if (g_str_has_prefix(uri, "unix:")) {
        u->kind = MIG_CHANNEL_UNIX;
        u->path = g_strdup(uri + 5);
        if (!*u->path || strlen(u->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            bad_uri(uri, "expected unix:PATH (a path of at most 107 bytes)", error);
            return NULL;
        }
    } else if (g_str_has_prefix(uri, "file:")) {
        const char *opt = g_strrstr(uri + 5, ",offset=");

        u->kind = MIG_CHANNEL_FILE;
        u->path = opt ? g_strndup(uri + 5, opt - (uri + 5)) : g_strdup(uri + 5);
        if (opt) {
            const char *num = opt + strlen(",offset=");
            char *end;

            errno = 0;
            u->offset = g_ascii_strtoull(num, &end, 0);
            if (end == num || *end || errno || u->offset > G_MAXINT64) {
                bad_uri(uri, "expected file:PATH,offset=N", error);
                return NULL;
            }
        }
        if (!*u->path) {
            bad_uri(uri, "expected file:PATH", error);
            return NULL;
        }
    } else if (g_str_has_prefix(uri, "tcp:")) {
        const char *hp = uri + 4;
        const char *colon = strrchr(hp, ':');

        u->kind = MIG_CHANNEL_TCP;
        if (!colon || !colon[1]) {
            bad_uri(uri, "expected tcp:HOST:PORT", error);
            return NULL;
        }
        u->host = g_strndup(hp, colon - hp);
        /* [v6addr]:port */
        if (u->host[0] == '[' && u->host[strlen(u->host) - 1] == ']') {
            char *h = g_strndup(u->host + 1, strlen(u->host) - 2);
            g_free(u->host);
            u->host = h;
        }
        u->port = g_strdup(colon + 1);
    } else if (g_str_has_prefix(uri, "fd:")) {
        char *end;
        guint64 v;

        u->kind = MIG_CHANNEL_FD;
        errno = 0;
        v = g_ascii_strtoull(uri + 3, &end, 10);
        if (end == uri + 3 || *end || errno || v > G_MAXINT) {
            bad_uri(uri, "expected fd:N, the number of an open file descriptor", error);
            return NULL;
        }
        u->fd = v;
        if (fcntl(u->fd, F_GETFD) < 0) {
            bad_uri(uri, "no such open file descriptor", error);
            return NULL;
        }
    } else {
        bad_uri(uri, "expected unix:PATH, tcp:HOST:PORT, fd:N or file:PATH", error);
        return NULL;
    }
    return g_steal_pointer(&u);
}

void mig_uri_free(MigUri *uri)
{
    if (!uri)
        return;
    g_free(uri->path);
    g_free(uri->host);
    g_free(uri->port);
    g_free(uri);
}

gboolean mig_uri_is_bidirectional(const MigUri *uri)
{
    struct stat st;

    if (uri->kind == MIG_CHANNEL_FILE)
        return FALSE;
    if (uri->kind == MIG_CHANNEL_FD)
        return fstat(uri->fd, &st) == 0 && S_ISSOCK(st.st_mode);
    return TRUE;
}

static int io_error(const char *what, const char *name, GError **error)
{
    int saved = errno;
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s '%s': %s", what, name,
                g_strerror(saved));
    return -1;
}

static void unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    g_strlcpy(sa->sun_path, path, sizeof(sa->sun_path));
}

/*
 * A link that dies silently (a cable, a switch, an interface down) must
 * fail the stream rather than block it for the kernel's 15 minutes of
 * retransmissions: a post-copy destination then pauses and waits for a
 * recovery instead of hanging, and a pre-copy source resumes its VM.
 * Data unacknowledged for MIG_LINK_TIMEOUT_S, or an idle peer that
 * answers no keepalive probe within about as long, breaks the connection.
 */
#define MIG_LINK_TIMEOUT_S 10
#define MIG_KEEPALIVE_IDLE_S 5
#define MIG_KEEPALIVE_INTERVAL_S 1
#define MIG_KEEPALIVE_COUNT 5

static void tcp_watch_link(int fd)
{
    int one = 1, idle = MIG_KEEPALIVE_IDLE_S, intvl = MIG_KEEPALIVE_INTERVAL_S;
    int cnt = MIG_KEEPALIVE_COUNT;
    unsigned int user_timeout = MIG_LINK_TIMEOUT_S * 1000;

    /* Best effort: a socket without them works as before. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

void mig_channel_watch_link(int fd)
{
    tcp_watch_link(fd);
}

/*
 * A UNIX stream socket holds only its send buffer in flight (about
 * 200 KiB by default): sender and receiver then take turns rather than
 * run side by side. 4 MiB lets both work at once (1 GiB idle over one
 * connection: about 1.7 s instead of 2.5-3 s on the test host). Beyond
 * net.core.wmem_max only a privileged process gets it (SO_SNDBUFFORCE);
 * otherwise the kernel's cap applies. TCP tunes its buffers itself.
 */
#define MIG_UNIX_SNDBUF (4 * 1024 * 1024)

static void unix_widen(int fd)
{
    int size = MIG_UNIX_SNDBUF;

    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

static int tcp_socket(const MigUri *uri, gboolean listening, GError **error)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = listening ? AI_PASSIVE : 0 };
    struct addrinfo *res = NULL;
    int ret, fd = -1, saved = 0;

    ret = getaddrinfo(*uri->host ? uri->host : NULL, uri->port, &hints, &res);
    if (ret != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot resolve '%s:%s': %s",
                    uri->host, uri->port, gai_strerror(ret));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (listening) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
                break;
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            tcp_watch_link(fd);
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = saved;
        return io_error(listening ? "cannot listen on" : "cannot connect to", uri->host, error);
    }
    return fd;
}

int mig_channel_connect(const MigUri *uri, GError **error)
{
    struct sockaddr_un sa;
    int fd;

    switch (uri->kind) {
    case MIG_CHANNEL_UNIX:
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return io_error("cannot create a socket for", uri->path, error);
        unix_addr(uri->path, &sa);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            io_error("cannot connect to", uri->path, error);
            close(fd);
            return -1;
        }
        unix_widen(fd);
        return fd;
    case MIG_CHANNEL_TCP:
        return tcp_socket(uri, FALSE, error);
    case MIG_CHANNEL_FILE:
        if (!uri->offset) {
            fd = open(uri->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            return fd < 0 ? io_error("cannot create", uri->path, error) : fd;
        }
        /* The bytes before the offset belong to whoever wrote them. */
        fd = open(uri->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return io_error("cannot create", uri->path, error);
        if (ftruncate(fd, uri->offset) < 0 || lseek(fd, uri->offset, SEEK_SET) < 0) {
            io_error("cannot position", uri->path, error);
            close(fd);
            return -1;
        }
        return fd;
    case MIG_CHANNEL_FD:
        fd = fcntl(uri->fd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? io_error("cannot use", "fd", error) : fd;
    }
    g_assert_not_reached();
}

int mig_channel_listen(const MigUri *uri, gboolean *needs_accept, GError **error)
{
    struct sockaddr_un sa;
    int fd;

    *needs_accept = uri->kind == MIG_CHANNEL_UNIX || uri->kind == MIG_CHANNEL_TCP;
    switch (uri->kind) {
    case MIG_CHANNEL_UNIX:
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return io_error("cannot create a socket for", uri->path, error);
        unix_addr(uri->path, &sa);
        unlink(uri->path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
            io_error("cannot listen on", uri->path, error);
            close(fd);
            return -1;
        }
        return fd;
    case MIG_CHANNEL_TCP:
        return tcp_socket(uri, TRUE, error);
    case MIG_CHANNEL_FILE:
        fd = open(uri->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return io_error("cannot open", uri->path, error);
        if (uri->offset && lseek(fd, uri->offset, SEEK_SET) < 0) {
            io_error("cannot position", uri->path, error);
            close(fd);
            return -1;
        }
        return fd;
    case MIG_CHANNEL_FD:
        return uri->fd;
    }
    g_assert_not_reached();
}

int mig_channel_accept(int listen_fd, GError **error)
{
    int fd;

    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                    "waiting for the migration stream: %s", g_strerror(saved));
        return -1;
    }
    /* A UNIX socket refuses the TCP options: harmless. */
    tcp_watch_link(fd);
    return fd;
}
