/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where a migration stream goes or comes from, as QEMU spells it:
 * "unix:PATH", "tcp:HOST:PORT", "fd:N" (an inherited file descriptor,
 * by number) and "file:PATH[,offset=N]" (QEMU 8.2's spelling: the stream
 * starts N bytes in, after a header someone else owns, e.g. vireod's save
 * image header).
 */
#ifndef VIREO_MIGRATION_CHANNEL_H
#define VIREO_MIGRATION_CHANNEL_H

#include <glib.h>

typedef enum {
    MIG_CHANNEL_UNIX,
    MIG_CHANNEL_TCP,
    MIG_CHANNEL_FD,
    MIG_CHANNEL_FILE,
} MigChannelKind;

typedef struct MigUri {
    MigChannelKind kind;
    char *path;                 /* UNIX, FILE */
    char *host;                 /* TCP */
    char *port;                 /* TCP */
    int fd;                     /* FD */
    guint64 offset;             /* FILE: "file:PATH,offset=N", where the stream starts */
} MigUri;

MigUri *mig_uri_parse(const char *uri, GError **error);
void mig_uri_free(MigUri *uri);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigUri, mig_uri_free)

/*
 * Source side: a connected socket, the file created (truncated) for
 * writing -- with an offset, truncated to it and positioned there, the
 * bytes before it kept --, or a duplicate of the fd. Blocks while
 * connecting.
 */
int mig_channel_connect(const MigUri *uri, GError **error);

/*
 * Destination side, step one: a listening socket (unix, tcp; an old
 * socket file at PATH is replaced), the file opened for reading (and
 * positioned at its offset), or the
 * fd itself. Returns the fd; *@needs_accept tells whether step two
 * (mig_channel_accept) must follow.
 */
int mig_channel_listen(const MigUri *uri, gboolean *needs_accept, GError **error);
/* Step two: blocks until the source connects. */
int mig_channel_accept(int listen_fd, GError **error);
/*
 * What mig_channel_connect() and mig_channel_accept() do to every
 * connection (TCP keepalive and a limit for unacknowledged data; nothing
 * on other sockets), for connections accepted elsewhere: multifd channels.
 */
void mig_channel_watch_link(int fd);

/* Whether the peer can answer (sockets): the source waits for its ack. */
gboolean mig_uri_is_bidirectional(const MigUri *uri);

#endif
