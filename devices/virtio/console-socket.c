/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host side of a virtio-console port: a listening UNIX socket that
 * is a CharBackend (chardev.h) with connect and disconnect events, which
 * the device turns into PORT_OPEN messages. The contract is in
 * include/vireo/virtio-console.h.
 *
 * vmm/chardev.c has a unix: backend too, but the device layer cannot use
 * vireo-vmm's backends, and those do not say when a client comes or goes.
 * This one is smaller: everything runs on the event loop thread, so it
 * has no lock.
 *
 * The client's fd is watched for EPOLLRDHUP always, EPOLLIN unless the
 * frontend has no room (paused), and EPOLLOUT while output is buffered
 * or after a send failed (the client is then dropped from the loop).
 * A hang-up seen while paused ends the connection at once (unread input
 * is dropped, as when any socket client goes away): watching EPOLLIN
 * instead would make a level-triggered loop spin on data nobody takes.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/util.h"
#include "vireo/virtio-console.h"

#define VIRTIO_CONSOLE_SOCKET_RING (64 * 1024)
#define VIRTIO_CONSOLE_SOCKET_READ 4096

struct VirtioConsoleSocket {
    CharBackend base;           /* first: the frontend hands us back &base */
    EventLoop *loop;
    char *path;
    char *label;
    int listen_fd;
    int client_fd;              /* -1: nobody connected */
    EventSource *listen_src;
    EventSource *client_src;
    uint32_t client_events;     /* what client_src watches */
    gboolean client_dead;       /* a send failed: output dropped until the hang-up */
    gboolean input_paused;      /* can_receive() said 0 */
    gboolean frontend_waiting;  /* write() took less than asked */
    const CharFrontendOps *fe;
    void *fe_opaque;
    VirtioConsoleSocketConnectFn connect_fn;
    void *connect_opaque;
    uint8_t *ring;              /* output for a slow client */
    size_t ring_head;
    size_t ring_len;
};

static void virtio_console_socket_update(VirtioConsoleSocket *s)
{
    uint32_t events = EPOLLRDHUP;

    if (s->client_fd < 0)
        return;
    if (!s->input_paused)
        events |= EPOLLIN;
    /* A dead client is written to no more: EPOLLOUT (or its hang-up) ends it from the loop. */
    if (s->ring_len || s->client_dead)
        events |= EPOLLOUT;
    if (events != s->client_events) {
        s->client_events = events;
        event_source_set_events(s->loop, s->client_src, events);
    }
}

/* The client went away: back to listening, and the frontend hears of it. */
static void virtio_console_socket_disconnect(VirtioConsoleSocket *s)
{
    gboolean waiting = s->frontend_waiting;

    event_source_remove(s->loop, s->client_src);
    s->client_src = NULL;
    close(s->client_fd);
    s->client_fd = -1;
    s->client_dead = FALSE;
    s->input_paused = FALSE;
    s->frontend_waiting = FALSE;
    s->ring_head = s->ring_len = 0;
    event_source_set_events(s->loop, s->listen_src, EPOLLIN);
    g_debug("%s: client of %s disconnected", s->label, s->path);
    /* Output is dropped from now on: a frontend waiting for room may go on. */
    if (waiting && s->fe && s->fe->writable)
        s->fe->writable(s->fe_opaque);
    if (s->connect_fn)
        s->connect_fn(s->connect_opaque, FALSE);
}

static ssize_t virtio_console_socket_send(VirtioConsoleSocket *s, const uint8_t *buf, size_t len)
{
    ssize_t n;

    do {
        n = send(s->client_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* A send error other than a full buffer: the client is gone or broken. */
static gboolean virtio_console_socket_fatal(ssize_t n)
{
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
}

/* Writes out what the ring holds; FALSE when the client turned out to be gone. */
static gboolean virtio_console_socket_drain(VirtioConsoleSocket *s)
{
    while (s->ring_len) {
        size_t chunk = MIN(s->ring_len, VIRTIO_CONSOLE_SOCKET_RING - s->ring_head);
        ssize_t n = virtio_console_socket_send(s, s->ring + s->ring_head, chunk);

        if (n < 0 && !virtio_console_socket_fatal(n))
            return TRUE;
        if (n <= 0)
            return FALSE;
        s->ring_head = (s->ring_head + n) % VIRTIO_CONSOLE_SOCKET_RING;
        s->ring_len -= n;
    }
    s->ring_head = 0;
    return TRUE;
}

/* Reads what the frontend can take now; FALSE at the end of the connection. */
static gboolean virtio_console_socket_read(VirtioConsoleSocket *s)
{
    uint8_t buf[VIRTIO_CONSOLE_SOCKET_READ];
    size_t room = s->fe ? s->fe->can_receive(s->fe_opaque) : sizeof(buf);
    ssize_t n;

    if (room == 0) {
        s->input_paused = TRUE;
        return TRUE;
    }
    do {
        n = recv(s->client_fd, buf, MIN(room, sizeof(buf)), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return TRUE;
    if (n <= 0)
        return FALSE;
    if (s->fe)
        s->fe->receive(s->fe_opaque, buf, n);
    return TRUE;
}

static void virtio_console_socket_on_client(int fd, uint32_t events, void *opaque)
{
    VirtioConsoleSocket *s = opaque;

    if ((events & EPOLLERR) || s->client_dead)
        goto gone;
    if (events & EPOLLOUT) {
        if (!virtio_console_socket_drain(s))
            goto gone;
        virtio_console_socket_update(s);
        if (s->frontend_waiting && s->ring_len < VIRTIO_CONSOLE_SOCKET_RING) {
            s->frontend_waiting = FALSE;
            if (s->fe && s->fe->writable)
                s->fe->writable(s->fe_opaque);
            /* The callback may have written, and the client may have gone meanwhile. */
            if (s->client_fd < 0)
                return;
        }
    }
    if (s->input_paused) {
        /* Only the hang-up is watched while paused. */
        if (events & (EPOLLHUP | EPOLLRDHUP))
            goto gone;
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) && !virtio_console_socket_read(s))
        goto gone;
    virtio_console_socket_update(s);
    return;

gone:
    virtio_console_socket_disconnect(s);
}

static void virtio_console_socket_on_listen(int fd, uint32_t events, void *opaque)
{
    VirtioConsoleSocket *s = opaque;
    g_autoptr(GError) err = NULL;
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (client < 0)
        return;
    if (s->client_fd >= 0) {
        /* Not listened for while connected; a race with the last event at most. */
        close(client);
        return;
    }
    s->client_events = EPOLLIN | EPOLLRDHUP;
    s->client_src = event_loop_add_fd(s->loop, client, s->client_events,
                                      virtio_console_socket_on_client, s, &err);
    if (!s->client_src) {
        g_warning("%s: %s", s->label, err->message);
        close(client);
        return;
    }
    s->client_fd = client;
    s->client_dead = FALSE;
    s->input_paused = FALSE;
    /* One client at a time, as vmm/chardev.c: the next waits in the backlog. */
    event_source_set_events(s->loop, s->listen_src, 0);
    g_debug("%s: client connected to %s", s->label, s->path);
    if (s->connect_fn)
        s->connect_fn(s->connect_opaque, TRUE);
}

/* --- the CharBackend --- */

static size_t virtio_console_socket_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    VirtioConsoleSocket *s = (VirtioConsoleSocket *)be;
    size_t taken = 0, n;

    if (s->client_fd < 0 || s->client_dead)
        return len;                     /* nobody to read it: dropped */
    if (s->ring_len == 0) {
        ssize_t sent = virtio_console_socket_send(s, buf, len);

        if (virtio_console_socket_fatal(sent) || sent == 0) {
            /* The loop ends the connection; never call the frontend from here. */
            s->client_dead = TRUE;
            virtio_console_socket_update(s);
            return len;
        }
        if (sent > 0)
            taken = sent;
    }
    n = MIN(VIRTIO_CONSOLE_SOCKET_RING - s->ring_len, len - taken);
    if (n) {
        size_t tail = (s->ring_head + s->ring_len) % VIRTIO_CONSOLE_SOCKET_RING;
        size_t first = MIN(n, VIRTIO_CONSOLE_SOCKET_RING - tail);

        memcpy(s->ring + tail, buf + taken, first);
        memcpy(s->ring, buf + taken + first, n - first);
        s->ring_len += n;
        taken += n;
    }
    if (taken < len)
        s->frontend_waiting = TRUE;
    virtio_console_socket_update(s);
    return taken;
}

static void virtio_console_socket_set_frontend(CharBackend *be, const CharFrontendOps *ops,
                                               void *opaque)
{
    VirtioConsoleSocket *s = (VirtioConsoleSocket *)be;

    s->fe = ops;
    s->fe_opaque = opaque;
}

/* Reading resumes on the loop's next pass: no frontend call from here. */
static void virtio_console_socket_accept_input(CharBackend *be)
{
    VirtioConsoleSocket *s = (VirtioConsoleSocket *)be;

    if (!s->input_paused)
        return;
    s->input_paused = FALSE;
    virtio_console_socket_update(s);
}

static const CharBackendOps virtio_console_socket_ops = {
    .write = virtio_console_socket_write,
    .set_frontend = virtio_console_socket_set_frontend,
    .accept_input = virtio_console_socket_accept_input,
};

/* --- life cycle --- */

VirtioConsoleSocket *virtio_console_socket_new(EventLoop *loop, const char *path,
                                               const char *label, GError **error)
{
    g_autoptr(VirtioConsoleSocket) s = g_new0(VirtioConsoleSocket, 1);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct stat st;

    s->base.ops = &virtio_console_socket_ops;
    s->loop = loop;
    s->label = g_strdup(label);
    s->listen_fd = s->client_fd = -1;
    if (!*path || strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: socket path '%s' is empty or longer than %zu bytes", label, path,
                    sizeof(addr.sun_path) - 1);
        return NULL;
    }
    strcpy(addr.sun_path, path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* A socket left by an earlier run goes; anything else there makes bind() fail. */
    if (s->listen_fd >= 0 && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(s->listen_fd, 1) < 0) {
        int saved = errno;

        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "%s: cannot listen on '%s': %s", label,
                    path, g_strerror(saved));
        return NULL;
    }
    s->path = g_strdup(path);
    s->listen_src = event_loop_add_fd(loop, s->listen_fd, EPOLLIN,
                                      virtio_console_socket_on_listen, s, error);
    if (!s->listen_src) {
        g_prefix_error(error, "%s: ", label);
        return NULL;
    }
    s->ring = g_malloc(VIRTIO_CONSOLE_SOCKET_RING);
    return g_steal_pointer(&s);
}

void virtio_console_socket_free(VirtioConsoleSocket *s)
{
    if (!s)
        return;
    if (s->client_fd >= 0) {
        event_source_remove(s->loop, s->client_src);
        close(s->client_fd);
    }
    if (s->listen_fd >= 0) {
        event_source_remove(s->loop, s->listen_src);
        close(s->listen_fd);
        if (s->path)
            unlink(s->path);
    }
    g_free(s->ring);
    g_free(s->path);
    g_free(s->label);
    g_free(s);
}

CharBackend *virtio_console_socket_backend(VirtioConsoleSocket *s)
{
    return &s->base;
}

void virtio_console_socket_set_connect_handler(VirtioConsoleSocket *s,
                                               VirtioConsoleSocketConnectFn fn, void *opaque)
{
    s->connect_fn = fn;
    s->connect_opaque = opaque;
}

gboolean virtio_console_socket_connected(const VirtioConsoleSocket *s)
{
    return s->client_fd >= 0;
}

const char *virtio_console_socket_path(const VirtioConsoleSocket *s)
{
    return s->path;
}
