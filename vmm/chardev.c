/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Character backends: stdio, pty, file, unix socket, none. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "vireo/chardev-host.h"
#include "vireo/util.h"

#define CHARDEV_RING_SIZE (64 * 1024)
#define CHARDEV_READ_CHUNK 256
/* How soon output reaches someone who opens the pty (QEMU looks once a second). */
#define CHARDEV_PTY_POLL_NS (200 * 1000 * 1000LL)
#define CHARDEV_PTY_LINGER_US (100 * 1000)

typedef enum {
    CHARDEV_NONE,
    CHARDEV_STDIO,
    CHARDEV_PTY,
    CHARDEV_FILE,
    CHARDEV_UNIX,
} ChardevKind;

struct Chardev {
    CharBackend base;
    ChardevKind kind;
    char *label;
    char *path;                 /* pty name or socket path */
    Loop *loop;

    int in_fd;                  /* -1: no input */
    int out_fd;                 /* -1: output dropped */
    gboolean out_is_socket;
    gboolean out_blocking;      /* regular file: write directly, never EAGAIN */
    int listen_fd;
    LoopSource *in_src;
    LoopSource *out_src;        /* only while output is pending */
    LoopSource *listen_src;
    Timer *pty_timer;           /* pty: looks for a reader */

    GMutex lock;                /* protects the fields below */
    uint8_t *ring;
    size_t ring_head;
    size_t ring_len;
    gboolean connected;         /* FALSE: output is dropped */
    gboolean drain_scheduled;
    gboolean frontend_waiting;  /* write() accepted less than asked */
    gboolean input_paused;
    const CharFrontendOps *fe;
    void *fe_opaque;

    gboolean termios_saved;
    struct termios saved_termios;
};

static void watch_output(Chardev *chr);

static gboolean is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Makes a private, non-blocking file description for a tty or pipe. */
static int reopen_nonblocking(int fd, int flags)
{
    struct stat st;
    g_autofree char *proc = NULL;
    int nfd;

    if (fstat(fd, &st) < 0)
        return -1;
    if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode))
        return fcntl(fd, F_DUPFD_CLOEXEC, 3);
    /*
     * O_NONBLOCK on the inherited description would also hit the shell that
     * started us; /proc/self/fd gives us a description of our own.
     */
    proc = g_strdup_printf("/proc/self/fd/%d", fd);
    nfd = open(proc, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (nfd < 0) {
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (nfd >= 0)
            g_debug("cannot reopen fd %d, writes to it may block", fd);
    }
    return nfd;
}

static ssize_t out_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    ssize_t n;

    do {
        if (chr->out_is_socket)
            n = send(chr->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        else
            n = write(chr->out_fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Output can go nowhere now: drop it (pty without reader, socket without client). */
static gboolean drops_output_locked(Chardev *chr)
{
    return chr->out_fd < 0 || !chr->connected;
}

static void ring_push_locked(Chardev *chr, const uint8_t *buf, size_t len)
{
    size_t tail = (chr->ring_head + chr->ring_len) % CHARDEV_RING_SIZE;
    size_t first = MIN(len, CHARDEV_RING_SIZE - tail);

    memcpy(chr->ring + tail, buf, first);
    memcpy(chr->ring, buf + first, len - first);
    chr->ring_len += len;
}

/*
 * Writes what the ring holds; returns FALSE when the fd would block or
 * failed. A broken reader disconnects (the buffered output is dropped).
 */
static gboolean drain_locked(Chardev *chr)
{
    while (chr->ring_len) {
        size_t chunk = MIN(chr->ring_len, CHARDEV_RING_SIZE - chr->ring_head);
        ssize_t n = out_write(chr, chr->ring + chr->ring_head, chunk);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return FALSE;
        if (n <= 0) {
            g_debug("%s: output failed (%s), dropping it", chr->label,
                    n < 0 ? g_strerror(errno) : "closed");
            chr->ring_len = 0;
            chr->ring_head = 0;
            if (chr->kind != CHARDEV_STDIO && chr->kind != CHARDEV_FILE)
                chr->connected = FALSE;
            return TRUE;
        }
        chr->ring_head = (chr->ring_head + n) % CHARDEV_RING_SIZE;
        chr->ring_len -= n;
    }
    chr->ring_head = 0;
    return TRUE;
}

static void notify_frontend_writable(Chardev *chr)
{
    const CharFrontendOps *fe;
    void *opaque;
    gboolean notify;

    g_mutex_lock(&chr->lock);
    notify = chr->frontend_waiting && chr->ring_len < CHARDEV_RING_SIZE;
    if (notify)
        chr->frontend_waiting = FALSE;
    fe = chr->fe;
    opaque = chr->fe_opaque;
    g_mutex_unlock(&chr->lock);
    /* Without our lock: the frontend takes its device lock. */
    if (notify && fe && fe->writable)
        fe->writable(opaque);
}

static void on_output_ready(int fd, uint32_t events, void *opaque)
{
    Chardev *chr = opaque;
    gboolean done;

    g_mutex_lock(&chr->lock);
    done = drops_output_locked(chr) || drain_locked(chr);
    if (done && chr->out_src) {
        loop_source_remove(chr->out_src);
        chr->out_src = NULL;
    }
    g_mutex_unlock(&chr->lock);
    notify_frontend_writable(chr);
}

/* Loop thread: start draining what write() queued. */
static void start_drain(void *opaque)
{
    Chardev *chr = opaque;

    g_mutex_lock(&chr->lock);
    chr->drain_scheduled = FALSE;
    g_mutex_unlock(&chr->lock);
    watch_output(chr);
    on_output_ready(chr->out_fd, EPOLLOUT, chr);
}

static void watch_output(Chardev *chr)
{
    g_autoptr(GError) err = NULL;

    if (chr->out_src || chr->out_fd < 0 || chr->out_blocking)
        return;
    chr->out_src = loop_add_fd(chr->loop, chr->out_fd, EPOLLOUT, on_output_ready, chr, &err);
    if (!chr->out_src)
        g_warning("%s: %s", chr->label, err->message);
}

static size_t chardev_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    Chardev *chr = (Chardev *)be;
    size_t taken = 0;

    g_mutex_lock(&chr->lock);
    if (drops_output_locked(chr)) {
        g_mutex_unlock(&chr->lock);
        return len;
    }
    /* Fast path: nothing queued, so write straight through. */
    if (chr->ring_len == 0) {
        ssize_t n = out_write(chr, buf, len);
        if (n > 0)
            taken = n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            taken = len;    /* reader gone: same as dropping */
    }
    if (taken < len) {
        size_t room = CHARDEV_RING_SIZE - chr->ring_len;
        size_t n = MIN(room, len - taken);

        ring_push_locked(chr, buf + taken, n);
        taken += n;
        if (taken < len)
            chr->frontend_waiting = TRUE;
        if (chr->out_blocking) {
            drain_locked(chr);
        } else if (!chr->drain_scheduled) {
            chr->drain_scheduled = TRUE;
            loop_call(chr->loop, start_drain, chr);
        }
    }
    g_mutex_unlock(&chr->lock);
    return taken;
}

/*
 * The reader went away: drop what is buffered and what comes, and let a
 * waiting device go on. A socket client's fd is closed by the caller once
 * nothing can write to it.
 */
static void disconnect(Chardev *chr)
{
    g_mutex_lock(&chr->lock);
    chr->connected = FALSE;
    chr->ring_len = 0;
    if (chr->kind == CHARDEV_UNIX)
        chr->out_fd = -1;
    g_mutex_unlock(&chr->lock);
    if (chr->out_src) {
        loop_source_remove(chr->out_src);
        chr->out_src = NULL;
    }
    notify_frontend_writable(chr);
}

static void on_input(int fd, uint32_t events, void *opaque);

static void pause_input(Chardev *chr, gboolean pause)
{
    if (chr->in_src)
        loop_source_set_events(chr->in_src, pause ? 0 : EPOLLIN);
}

static void on_input(int fd, uint32_t events, void *opaque)
{
    Chardev *chr = opaque;
    uint8_t buf[CHARDEV_READ_CHUNK];
    const CharFrontendOps *fe;
    void *fe_opaque;
    size_t room;
    ssize_t n;

    /*
     * Marked paused before asking: if the device drains its FIFO right
     * after saying it is full, its accept_input() sees the mark and
     * schedules resume_input(), so the wakeup is not lost.
     */
    g_mutex_lock(&chr->lock);
    fe = chr->fe;
    fe_opaque = chr->fe_opaque;
    chr->input_paused = TRUE;
    g_mutex_unlock(&chr->lock);
    room = fe ? fe->can_receive(fe_opaque) : sizeof(buf);
    if (room == 0) {
        pause_input(chr, TRUE);
        return;
    }
    g_mutex_lock(&chr->lock);
    chr->input_paused = FALSE;
    g_mutex_unlock(&chr->lock);
    do {
        n = read(fd, buf, MIN(room, sizeof(buf)));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        /* EOF or error: stdin closed, socket client gone, pty hung up. */
        loop_source_remove(chr->in_src);
        chr->in_src = NULL;
        if (chr->kind == CHARDEV_UNIX) {
            disconnect(chr);
            close(chr->in_fd);
            chr->in_fd = -1;
            loop_source_set_events(chr->listen_src, EPOLLIN);
        } else if (chr->kind == CHARDEV_PTY) {
            /* Output is dropped until someone opens the pty again. */
            disconnect(chr);
            timer_arm(chr->pty_timer, loop_now_ns() + CHARDEV_PTY_POLL_NS);
        }
        return;
    }
    if (fe)
        fe->receive(fe_opaque, buf, n);
}

static void resume_input(void *opaque)
{
    Chardev *chr = opaque;
    gboolean was_paused;

    g_mutex_lock(&chr->lock);
    was_paused = chr->input_paused;
    chr->input_paused = FALSE;
    g_mutex_unlock(&chr->lock);
    if (was_paused)
        pause_input(chr, FALSE);
}

static void chardev_accept_input(CharBackend *be)
{
    Chardev *chr = (Chardev *)be;
    gboolean paused;

    g_mutex_lock(&chr->lock);
    paused = chr->input_paused;
    g_mutex_unlock(&chr->lock);
    if (paused)
        loop_call(chr->loop, resume_input, chr);
}

static void chardev_set_frontend(CharBackend *be, const CharFrontendOps *ops, void *opaque)
{
    Chardev *chr = (Chardev *)be;

    g_mutex_lock(&chr->lock);
    chr->fe = ops;
    chr->fe_opaque = opaque;
    g_mutex_unlock(&chr->lock);
}

static const CharBackendOps chardev_ops = {
    .write = chardev_write,
    .set_frontend = chardev_set_frontend,
    .accept_input = chardev_accept_input,
};

static gboolean watch_input(Chardev *chr, GError **error)
{
    chr->in_src = loop_add_fd(chr->loop, chr->in_fd, EPOLLIN, on_input, chr, error);
    return chr->in_src != NULL;
}

static void on_accept(int fd, uint32_t events, void *opaque)
{
    Chardev *chr = opaque;
    g_autoptr(GError) err = NULL;
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (client < 0)
        return;
    if (chr->in_fd >= 0) {
        /* One client at a time, as with QEMU's socket chardev. */
        close(client);
        return;
    }
    chr->in_fd = client;
    if (!watch_input(chr, &err)) {
        g_warning("%s: %s", chr->label, err->message);
        close(client);
        chr->in_fd = -1;
        return;
    }
    /* out_fd is read by vCPU threads: it changes under the lock only. */
    g_mutex_lock(&chr->lock);
    chr->out_fd = client;
    chr->connected = TRUE;
    g_mutex_unlock(&chr->lock);
    loop_source_set_events(chr->listen_src, 0);
}

static gboolean open_unix(Chardev *chr, const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "socket path '%s' is too long", path);
        return FALSE;
    }
    strcpy(addr.sun_path, path);
    chr->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    unlink(path);
    if (chr->listen_fd < 0 || bind(chr->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(chr->listen_fd, 1) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot listen on '%s': %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    chr->path = g_strdup(path);
    chr->out_is_socket = TRUE;
    chr->connected = FALSE;
    chr->listen_src = loop_add_fd(chr->loop, chr->listen_fd, EPOLLIN, on_accept, chr, error);
    return chr->listen_src != NULL;
}

static void set_raw(int fd, gboolean keep_signals)
{
    struct termios t;

    if (tcgetattr(fd, &t) < 0)
        return;
    cfmakeraw(&t);
    if (keep_signals)
        t.c_lflag |= ISIG;
    tcsetattr(fd, TCSANOW, &t);
}

/* epoll cannot watch regular files (nor /dev/null): they never block anyway. */
static gboolean pollable(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
           !(S_ISCHR(st.st_mode) && major(st.st_rdev) == 1);
}

static gboolean open_stdio(Chardev *chr, GError **error)
{
    chr->out_fd = reopen_nonblocking(STDOUT_FILENO, O_WRONLY);
    if (chr->out_fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot use stdout: %s",
                    g_strerror(saved));
        return FALSE;
    }
    chr->out_blocking = !pollable(chr->out_fd);
    chr->out_is_socket = is_socket(chr->out_fd);
    /* stdin from a file or /dev/null: no input, as there is nothing to wait for. */
    if (pollable(STDIN_FILENO))
        chr->in_fd = reopen_nonblocking(STDIN_FILENO, O_RDONLY);
    if (chr->in_fd >= 0 && isatty(STDIN_FILENO) &&
        tcgetattr(STDIN_FILENO, &chr->saved_termios) == 0) {
        chr->termios_saved = TRUE;
        set_raw(STDIN_FILENO, TRUE);
    }
    return TRUE;
}

static void pty_check(void *opaque);

static gboolean open_pty(Chardev *chr, GError **error)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    int slave;
    const char *name;

    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || !(name = ptsname(master))) {
        int saved = errno;
        if (master >= 0)
            close(master);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot create a pty: %s",
                    g_strerror(saved));
        return FALSE;
    }
    chr->path = g_strdup(name);
    chr->in_fd = chr->out_fd = master;
    /* Raw, so the guest's bytes reach the reader unchanged. */
    slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave >= 0) {
        set_raw(slave, FALSE);
        close(slave);
    }
    /* Nobody has the pty open yet: drop output until someone does. */
    chr->connected = FALSE;
    chr->pty_timer = timer_new(loop_timer_service(chr->loop), pty_check, chr);
    pty_check(chr);
    g_printerr("vireo-vmm: %s redirected to %s\n", chr->label, name);
    return TRUE;
}

/*
 * While no process has the slave open, the master reports a permanent
 * EPOLLHUP, so watching it would spin. Instead look for a reader every
 * CHARDEV_PTY_POLL_NS and watch the master only while one is there.
 */
static void pty_check(void *opaque)
{
    Chardev *chr = opaque;
    struct pollfd p = { .fd = chr->in_fd, .events = POLLIN };
    g_autoptr(GError) err = NULL;

    if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP)) {
        g_mutex_lock(&chr->lock);
        chr->connected = TRUE;
        g_mutex_unlock(&chr->lock);
        if (watch_input(chr, &err))
            return;
        g_warning("%s: %s", chr->label, err->message);
    }
    timer_arm(chr->pty_timer, loop_now_ns() + CHARDEV_PTY_POLL_NS);
}

static gboolean open_file(Chardev *chr, const char *path, GError **error)
{
    chr->out_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (chr->out_fd < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "cannot open '%s': %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    chr->path = g_strdup(path);
    chr->out_blocking = TRUE;
    return TRUE;
}

Chardev *chardev_new(const char *spec, const char *label, Loop *loop, GError **error)
{
    g_autoptr(Chardev) chr = g_new0(Chardev, 1);
    gboolean ok;

    chr->base.ops = &chardev_ops;
    chr->label = g_strdup(label);
    chr->loop = loop;
    chr->in_fd = chr->out_fd = chr->listen_fd = -1;
    chr->connected = TRUE;
    g_mutex_init(&chr->lock);
    chr->ring = g_malloc(CHARDEV_RING_SIZE);

    if (strcmp(spec, "none") == 0) {
        chr->kind = CHARDEV_NONE;
        ok = TRUE;
    } else if (strcmp(spec, "stdio") == 0) {
        chr->kind = CHARDEV_STDIO;
        ok = open_stdio(chr, error);
    } else if (strcmp(spec, "pty") == 0) {
        chr->kind = CHARDEV_PTY;
        ok = open_pty(chr, error);
    } else if (g_str_has_prefix(spec, "file:") && spec[5]) {
        chr->kind = CHARDEV_FILE;
        ok = open_file(chr, spec + 5, error);
    } else if (g_str_has_prefix(spec, "unix:") && spec[5]) {
        chr->kind = CHARDEV_UNIX;
        ok = open_unix(chr, spec + 5, error);
    } else {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s: unknown backend '%s' (expected stdio, pty, file:PATH, unix:PATH "
                    "or none)", label, spec);
        return NULL;
    }
    if (!ok)
        return NULL;
    if (chr->in_fd >= 0 && chr->kind != CHARDEV_UNIX && chr->kind != CHARDEV_PTY &&
        !watch_input(chr, error))
        return NULL;
    return g_steal_pointer(&chr);
}

void chardev_flush(Chardev *chr, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    g_mutex_lock(&chr->lock);
    while (!drops_output_locked(chr) && chr->ring_len && !drain_locked(chr)) {
        struct pollfd p = { .fd = chr->out_fd, .events = POLLOUT };
        gint64 left = deadline - g_get_monotonic_time();

        if (left <= 0)
            break;
        g_mutex_unlock(&chr->lock);
        poll(&p, 1, MAX(1, left / 1000));
        g_mutex_lock(&chr->lock);
    }
    g_mutex_unlock(&chr->lock);
}

void chardev_free(Chardev *chr)
{
    if (!chr)
        return;
    loop_source_remove(chr->in_src);
    loop_source_remove(chr->out_src);
    loop_source_remove(chr->listen_src);
    timer_free(chr->pty_timer);
    /*
     * Closing the master hangs up the other side, which throws away what
     * its reader has not read yet: the guest's last words. Give a
     * connected reader a moment to take them.
     */
    if (chr->kind == CHARDEV_PTY && chr->connected)
        g_usleep(CHARDEV_PTY_LINGER_US);
    if (chr->termios_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &chr->saved_termios);
    if (chr->in_fd >= 0)
        close(chr->in_fd);
    if (chr->out_fd >= 0 && chr->out_fd != chr->in_fd)
        close(chr->out_fd);
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        if (chr->path)
            unlink(chr->path);
    }
    g_free(chr->ring);
    g_free(chr->path);
    g_free(chr->label);
    g_mutex_clear(&chr->lock);
    g_free(chr);
}

CharBackend *chardev_backend(Chardev *chr)
{
    return &chr->base;
}

const char *chardev_path(const Chardev *chr)
{
    return chr->path;
}
