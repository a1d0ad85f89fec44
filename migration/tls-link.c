/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TLS under a migration connection: handshake, bulk I/O and a pump thread (migration-tls.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vireo/migration-tls.h"
#include "vireo/util.h"

/* Per direction: big enough that a pass of the pump moves a lot, small enough to stay in cache. */
#define PUMP_BUF_SIZE (256 * 1024)
#define TLS_CONTENT_HANDSHAKE 0x16  /* the first byte of every TLS ClientHello */
#define EXPLAIN_WAIT_US (G_USEC_PER_SEC / 2)

/*
 * gnutls lets one thread send and another receive on a session. The
 * stream's thread does the bulk direction (a source sends, a destination
 * receives); the pump does the other one, and only that.
 */
struct MigTlsLink {
    TlsSession *session;
    gboolean server;            /* a destination: the pump sends, else it receives */
    int sock;                   /* the connection (owned), non-blocking */
    int pump_fd;                /* the pump's end of the socketpair (owned) */
    int stop;                   /* eventfd: mig_tls_link_free() wants the pump gone */
    GThread *thread;

    GMutex lock;                /* protects error, done */
    GCond cond;
    GError *error;              /* the first TLS failure */
    gboolean done;              /* the pump has ended */
};

static const char *peer_name(MigTlsLink *link)
{
    return link->server ? "the source" : "the destination";
}

static void set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* --- the pump --- */

/* A reason of TLS's own; a connection merely gone is said by whoever uses it. */
static void record_error(MigTlsLink *link, GError *err)
{
    g_mutex_lock(&link->lock);
    if (!link->error && !g_error_matches(err, TLS_ERROR, TLS_ERROR_CLOSED)) {
        g_prefix_error(&err, "TLS with %s: ", peer_name(link));
        link->error = err;
        err = NULL;
    }
    g_mutex_unlock(&link->lock);
    g_clear_error(&err);
}

typedef struct Buf {
    uint8_t *data;
    size_t len;                 /* bytes in data */
    size_t pos;                 /* of which sent on */
} Buf;

static void buf_consumed(Buf *b, size_t n)
{
    b->pos += n;
    if (b->pos == b->len)
        b->pos = b->len = 0;
}

/*
 * Moves the small direction until one side is gone: on a source, TLS ->
 * stream code (in: acks, page requests, the resume bitmap); on a
 * destination, stream code -> TLS (out). Both sockets are non-blocking;
 * poll() waits for whatever keeps the direction from going on, and for
 * the stream code's end of the socketpair to close.
 */
static gpointer pump_thread(gpointer opaque)
{
    MigTlsLink *link = opaque;
    gboolean pump_in = !link->server, pump_out = link->server;
    g_autofree uint8_t *out_data = g_malloc(PUMP_BUF_SIZE);
    g_autofree uint8_t *in_data = g_malloc(PUMP_BUF_SIZE);
    Buf out = { .data = out_data }, in = { .data = in_data };
    gboolean tls_up = TRUE;     /* the connection still carries data */
    gboolean send_blocked;

    for (;;) {
        struct pollfd p[3];
        GError *err = NULL;
        gssize n;

        /* TLS -> stream code: decrypt while there is room. */
        while (pump_in && tls_up && in.len < PUMP_BUF_SIZE) {
            n = tls_session_recv(link->session, in.data + in.len, PUMP_BUF_SIZE - in.len, &err);
            if (n == TLS_AGAIN)
                break;
            if (n > 0) {
                in.len += n;
                continue;
            }
            /* The peer is gone (0) or broke the session. */
            if (err)
                record_error(link, g_steal_pointer(&err));
            tls_up = FALSE;
            /* Writes of the stream code fail from now on; what arrived is still read. */
            shutdown(link->pump_fd, SHUT_RD);
        }
        if (in.pos < in.len) {
            n = send(link->pump_fd, in.data + in.pos, in.len - in.pos,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                buf_consumed(&in, n);
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                break;          /* the stream code closed its end */
        }
        if (!tls_up && in.pos == in.len)
            break;              /* everything delivered: the stream code reads the end */

        /* Stream code -> TLS; on a source, only the end of the socketpair comes this way. */
        if (tls_up && out.len == 0) {
            n = recv(link->pump_fd, out.data, PUMP_BUF_SIZE, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (n > 0 && !pump_out))
                break;          /* closed or shut down: give up the connection */
            if (n > 0)
                out.len = n;
        }
        send_blocked = FALSE;
        while (tls_up && out.pos < out.len) {
            /* After TLS_AGAIN, gnutls wants the same data again: it is still there. */
            n = tls_session_send(link->session, out.data + out.pos, out.len - out.pos, &err);
            if (n == TLS_AGAIN) {
                send_blocked = TRUE;
                break;
            }
            if (n < 0) {
                record_error(link, g_steal_pointer(&err));
                tls_up = FALSE;
                shutdown(link->pump_fd, SHUT_RD);
                break;
            }
            buf_consumed(&out, n);
        }
        if (!tls_up && in.pos == in.len)
            break;

        /*
         * The decrypting stopped at a full buffer, which may have taken only
         * part of a record: the rest is in gnutls, where poll() cannot see
         * it, and the peer may have nothing more to send. Take it first.
         */
        if (pump_in && tls_up && in.len < PUMP_BUF_SIZE &&
            tls_session_pending(link->session) > 0)
            continue;

        /* Wait for what keeps each direction from going on; unused fds left out (POLLHUP). */
        p[0] = (struct pollfd){ .fd = link->sock };
        if (pump_in && tls_up && in.len < PUMP_BUF_SIZE)
            p[0].events |= POLLIN;
        if (tls_up && send_blocked)
            p[0].events |= POLLOUT;
        p[1] = (struct pollfd){ .fd = link->pump_fd };
        if (tls_up && out.len == 0)
            p[1].events |= POLLIN;
        if (in.pos < in.len)
            p[1].events |= POLLOUT;
        for (int i = 0; i < 2; i++) {
            if (!p[i].events)
                p[i].fd = -1;
        }
        p[2] = (struct pollfd){ .fd = link->stop, .events = POLLIN };
        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[2].revents)
            break;
    }
    /* Both ways: the peer sees the end at once, and so does the stream code. */
    shutdown(link->sock, SHUT_RDWR);
    shutdown(link->pump_fd, SHUT_RDWR);
    g_mutex_lock(&link->lock);
    link->done = TRUE;
    g_cond_broadcast(&link->cond);
    g_mutex_unlock(&link->lock);
    return NULL;
}

/* --- the bulk direction, on the stream's thread --- */

/* Waits for the socket; its shutdown (by the pump, when the stream code gives up) wakes us. */
static void wait_sock(MigTlsLink *link, short events)
{
    struct pollfd p = { .fd = link->sock, .events = events };

    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
}

gboolean mig_tls_link_write(MigTlsLink *link, const void *buf, size_t len, GError **error)
{
    const uint8_t *p = buf;
    GError *err = NULL;

    g_assert(!link->server);
    while (len) {
        gssize n = tls_session_send(link->session, p, len, &err);

        if (n == TLS_AGAIN) {
            wait_sock(link, POLLOUT);
            continue;
        }
        if (n < 0) {
            g_prefix_error(&err, "TLS with %s: ", peer_name(link));
            g_propagate_error(error, err);
            return FALSE;
        }
        p += n;
        len -= n;
    }
    return TRUE;
}

gssize mig_tls_link_read(MigTlsLink *link, void *buf, size_t len, GError **error)
{
    GError *err = NULL;

    g_assert(link->server);
    for (;;) {
        /* Decrypted bytes left from a record come first: poll() would not see them. */
        gssize n = tls_session_recv(link->session, buf, len, &err);

        if (n != TLS_AGAIN) {
            if (n < 0) {
                g_prefix_error(&err, "TLS with %s: ", peer_name(link));
                g_propagate_error(error, err);
            }
            return n;
        }
        wait_sock(link, POLLIN);
    }
}

/* --- set-up --- */

/*
 * A server's first look at the connection: a source without TLS starts
 * with its stream header, not a ClientHello; say so rather than let
 * gnutls report a bad record.
 */
static gboolean expect_client_hello(int fd, gint64 deadline, GError **error)
{
    uint8_t first;
    ssize_t n;

    if (!tls_wait_fd(fd, FALSE, deadline, "waiting for the source's TLS handshake", error))
        return FALSE;
    do {
        n = recv(fd, &first, 1, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && first != TLS_CONTENT_HANDSHAKE) {
        g_set_error(error, TLS_ERROR, TLS_ERROR_FAILED,
                    "the source does not speak TLS (a plain-text migration stream?); "
                    "this destination expects TLS: give the source tls-creds too");
        return FALSE;
    }
    return TRUE;                /* the end of the stream or an error: the handshake tells */
}

MigTlsLink *mig_tls_link_new(TlsCreds *creds, int fd, const char *hostname, int *inner_fd,
                             GError **error)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)MIG_TLS_HANDSHAKE_TIMEOUT_MS * 1000;
    gboolean server = tls_creds_get_endpoint(creds) == TLS_ENDPOINT_SERVER;
    const char *peer = server ? "the source" : "the destination";
    g_autoptr(TlsSession) session = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *desc = NULL;
    MigTlsLink *link;
    int pair[2];

    if (!server && tls_creds_get_verify_peer(creds) && !hostname) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "TLS: no host name to check the destination's certificate against; "
                    "set tls-hostname");
        return NULL;
    }
    set_nonblock(fd);
    if ((server && !expect_client_hello(fd, deadline, &err)) ||
        !(session = tls_session_new(creds, fd, hostname, &err)) ||
        !tls_session_handshake_sync(session, deadline, &err)) {
        /* gnutls's messages end with a full stop, ours do not. */
        if (g_error_matches(err, TLS_ERROR, TLS_ERROR_CLOSED))
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "TLS with %s: %s%s %s", peer, err->message,
                        g_str_has_suffix(err->message, ".") ? "" : ".",
                        server ? "The source gave up."
                               : "Does the destination expect TLS (tls-creds)?");
        else
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "TLS with %s: %s", peer,
                        err->message);
        return NULL;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "socketpair: %s", g_strerror(saved));
        return NULL;
    }
    link = g_new0(MigTlsLink, 1);
    link->stop = eventfd(0, EFD_CLOEXEC);
    if (link->stop < 0) {
        int saved = errno;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO, "eventfd: %s", g_strerror(saved));
        close(pair[0]);
        close(pair[1]);
        g_free(link);
        return NULL;
    }
    desc = tls_session_get_desc(session);
    g_debug("TLS with %s: %s", peer, desc);
    link->session = g_steal_pointer(&session);
    link->server = server;
    link->sock = fd;
    link->pump_fd = pair[1];
    set_nonblock(pair[1]);
    g_mutex_init(&link->lock);
    g_cond_init(&link->cond);
    link->thread = g_thread_new("migration-tls", pump_thread, link);
    *inner_fd = pair[0];
    return link;
}

GError *mig_tls_link_get_error(MigTlsLink *link)
{
    GError *err;

    g_mutex_lock(&link->lock);
    err = link->error ? g_error_copy(link->error) : NULL;
    g_mutex_unlock(&link->lock);
    return err;
}

void mig_tls_link_explain(MigTlsLink *link, GError **error)
{
    gint64 deadline = g_get_monotonic_time() + EXPLAIN_WAIT_US;
    g_autoptr(GError) why = NULL;
    GError *err;

    if (!error || !*error)
        return;
    /*
     * The stream broke; a source's pump, which reads, may not have read
     * why yet (the writes can fail before it reads the destination's
     * alert). It ends soon after the connection does.
     */
    g_mutex_lock(&link->lock);
    while (!link->server && !link->done &&
           g_cond_wait_until(&link->cond, &link->lock, deadline))
        ;
    g_mutex_unlock(&link->lock);
    why = mig_tls_link_get_error(link);
    if (!why)
        return;
    /* What the stream code saw (a broken pipe, an invalidated session) follows from it. */
    g_debug("%s, hence: %s", why->message, (*error)->message);
    err = g_error_new_literal(VIREO_ERROR, VIREO_ERROR_IO, why->message);
    g_error_free(*error);
    *error = err;
}

void mig_tls_link_free(MigTlsLink *link)
{
    uint64_t one = 1;

    if (!link)
        return;
    if (write(link->stop, &one, sizeof(one)) != sizeof(one))
        shutdown(link->sock, SHUT_RDWR);    /* wakes the pump too */
    g_thread_join(link->thread);
    tls_session_free(link->session);
    close(link->sock);
    close(link->pump_fd);
    close(link->stop);
    g_clear_error(&link->error);
    g_cond_clear(&link->cond);
    g_mutex_clear(&link->lock);
    g_free(link);
}
