/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-vsock, the socket device (virtio 1.2, 5.10), in the "hybrid"
 * style of Firecracker's docs/vsock.md: no vhost, the host side is UNIX
 * sockets (devices/virtio/vsock.c, and devices/virtio/vsock-uds.c for the
 * socket helpers below).
 *
 * With uds-path=PATH:
 *   - host-initiated: the device listens on PATH. A host program connects,
 *     writes "CONNECT <port>\n" and, once the guest accepted (its listener
 *     on <port> answered the request), reads "OK <hostport>\n", where
 *     <hostport> is the host-side port the device picked; then the stream
 *     is the guest connection's. No listener in the guest: the host
 *     connection is closed.
 *   - guest-initiated: a guest connect() to CID 2 (the host), port P,
 *     becomes a connection to the UNIX socket PATH_P (decimal P); nobody
 *     listening there: the guest gets a reset (ECONNRESET).
 */
#ifndef VIREO_VIRTIO_VSOCK_H
#define VIREO_VIRTIO_VSOCK_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define VIRTIO_VSOCK_TYPE_NAME "virtio-vsock"

/* Feature bits (5.10.3). */
#define VIRTIO_VSOCK_F_STREAM               0
#define VIRTIO_VSOCK_F_SEQPACKET            1
#define VIRTIO_VSOCK_F_NO_IMPLIED_STREAM    2

/* Queues (5.10.2). */
#define VIRTIO_VSOCK_Q_RX       0
#define VIRTIO_VSOCK_Q_TX       1
#define VIRTIO_VSOCK_Q_EVENT    2

/* Configuration: le64 guest_cid. */
#define VIRTIO_VSOCK_CONFIG_SIZE    8
#define VIRTIO_VSOCK_HOST_CID       2

/*
 * The packet header (5.10.6), little-endian, packed:
 *   le64 src_cid, le64 dst_cid, le32 src_port, le32 dst_port, le32 len,
 *   le16 type, le16 op, le32 flags, le32 buf_alloc, le32 fwd_cnt
 */
#define VIRTIO_VSOCK_HDR_SIZE           44
#define VIRTIO_VSOCK_HDR_SRC_CID        0
#define VIRTIO_VSOCK_HDR_DST_CID        8
#define VIRTIO_VSOCK_HDR_SRC_PORT       16
#define VIRTIO_VSOCK_HDR_DST_PORT       20
#define VIRTIO_VSOCK_HDR_LEN            24
#define VIRTIO_VSOCK_HDR_TYPE           28
#define VIRTIO_VSOCK_HDR_OP             30
#define VIRTIO_VSOCK_HDR_FLAGS          32
#define VIRTIO_VSOCK_HDR_BUF_ALLOC      36
#define VIRTIO_VSOCK_HDR_FWD_CNT        40

#define VIRTIO_VSOCK_TYPE_STREAM        1
#define VIRTIO_VSOCK_TYPE_SEQPACKET     2

#define VIRTIO_VSOCK_OP_INVALID         0
#define VIRTIO_VSOCK_OP_REQUEST         1
#define VIRTIO_VSOCK_OP_RESPONSE        2
#define VIRTIO_VSOCK_OP_RST             3
#define VIRTIO_VSOCK_OP_SHUTDOWN        4
#define VIRTIO_VSOCK_OP_RW              5
#define VIRTIO_VSOCK_OP_CREDIT_UPDATE   6
#define VIRTIO_VSOCK_OP_CREDIT_REQUEST  7

/* SHUTDOWN flags: the sender will receive / send no more. */
#define VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE 1
#define VIRTIO_VSOCK_SHUTDOWN_F_SEND    2

/* Events (5.10.6.7): le32 id. */
#define VIRTIO_VSOCK_EVENT_SIZE             4
#define VIRTIO_VSOCK_EVENT_TRANSPORT_RESET  0

/*
 * Limits of this device. Each connection may have up to
 * VIRTIO_VSOCK_BUF_ALLOC bytes from the guest that the host socket has not
 * taken yet (that is the buf_alloc the device advertises: a guest sending
 * more gets a reset), at most VIRTIO_VSOCK_MAX_CONNS connections exist at
 * once, and VIRTIO_VSOCK_TIMEOUT_MS bounds a host's CONNECT, the guest's
 * answer to a host-initiated request and a clean close.
 */
#define VIRTIO_VSOCK_BUF_ALLOC          (256 * 1024)
#define VIRTIO_VSOCK_MAX_CONNS          256
#define VIRTIO_VSOCK_TIMEOUT_MS         2000
/* Host-side ports the device gives host-initiated connections: from 2^30 up. */
#define VIRTIO_VSOCK_LOCAL_PORT_BASE    (1u << 30)

/* --- host side: UNIX sockets (vsock-uds.c), for vsock.c and its tests --- */

/* Longest "CONNECT <port>\n" line accepted, newline included. */
#define VSOCK_UDS_CONNECT_MAX   32

/*
 * A non-blocking listening socket at @path. A stale socket there (nobody
 * listens) is replaced; any other file, or a socket in use, is an error.
 * @dev and @ino identify the file for vsock_uds_unlink().
 */
int vsock_uds_listen(const char *path, dev_t *dev, ino_t *ino, GError **error);
/* Removes @path if it is still the socket vsock_uds_listen() made. */
void vsock_uds_unlink(const char *path, dev_t dev, ino_t ino);
/*
 * A non-blocking connection to "@path_@port", or -1 with errno set
 * (ENOENT, ECONNREFUSED, EAGAIN for a full backlog, ENAMETOOLONG...).
 */
int vsock_uds_connect(const char *path, uint32_t port);
/*
 * Parses a host's command line, newline included: exactly
 * "CONNECT <decimal port>\n" ("\r\n" allowed), port up to 2^32 - 1.
 */
gboolean vsock_uds_parse_connect(const char *line, size_t len, uint32_t *port);
/*
 * Writes @iov (@n entries) without blocking and without SIGPIPE; returns
 * the bytes written, 0 if the socket is full, -1 with errno on an error.
 */
ssize_t vsock_uds_send(int fd, const struct iovec *iov, unsigned n);

#endif
