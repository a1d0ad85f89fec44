/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net (virtio 1.2, 5.1): the device (devices/virtio/net.c) and its
 * packet backend (devices/virtio/net-tap.c).
 *
 * The device is a virtio-pci type, "virtio-net"; its options, features and
 * data path are described at the top of net.c. What other code needs is
 * here: the guest-visible layout (shared with the device tests, the fuzz
 * target and the guest programs' expectations), the link state for a
 * management command, and the backend the device reads and writes frames
 * through.
 */
#ifndef VIREO_VIRTIO_NET_H
#define VIREO_VIRTIO_NET_H

#include <glib.h>
#include <stdint.h>

#include "vireo/device.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM                   0
#define VIRTIO_NET_F_GUEST_CSUM             1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS    2
#define VIRTIO_NET_F_MTU                    3
#define VIRTIO_NET_F_MAC                    5
#define VIRTIO_NET_F_GUEST_TSO4             7
#define VIRTIO_NET_F_GUEST_TSO6             8
#define VIRTIO_NET_F_GUEST_ECN              9
#define VIRTIO_NET_F_GUEST_UFO              10
#define VIRTIO_NET_F_HOST_TSO4              11
#define VIRTIO_NET_F_HOST_TSO6              12
#define VIRTIO_NET_F_HOST_ECN               13
#define VIRTIO_NET_F_HOST_UFO               14
#define VIRTIO_NET_F_MRG_RXBUF              15
#define VIRTIO_NET_F_STATUS                 16
#define VIRTIO_NET_F_CTRL_VQ                17
#define VIRTIO_NET_F_CTRL_RX                18
#define VIRTIO_NET_F_CTRL_VLAN              19
#define VIRTIO_NET_F_CTRL_RX_EXTRA          20
#define VIRTIO_NET_F_GUEST_ANNOUNCE         21
#define VIRTIO_NET_F_MQ                     22
#define VIRTIO_NET_F_CTRL_MAC_ADDR          23

/* Configuration space (5.1.4): the fields this device has. */
#define VIRTIO_NET_CFG_MAC                  0       /* u8[6] */
#define VIRTIO_NET_CFG_STATUS               6       /* le16 */
#define VIRTIO_NET_CFG_MAX_PAIRS            8       /* le16 max_virtqueue_pairs */
#define VIRTIO_NET_CFG_MTU                  10      /* le16 */
#define VIRTIO_NET_CFG_SIZE                 12
#define VIRTIO_NET_S_LINK_UP                1
#define VIRTIO_NET_S_ANNOUNCE               2

/*
 * struct virtio_net_hdr_v1 (5.1.6): with VERSION_1 every packet in either
 * direction starts with these 12 bytes, num_buffers included.
 */
#define VIRTIO_NET_HDR_SIZE                 12
#define VIRTIO_NET_HDR_FLAGS                0       /* u8 */
#define VIRTIO_NET_HDR_GSO_TYPE             1       /* u8 */
#define VIRTIO_NET_HDR_HDR_LEN              2       /* le16 */
#define VIRTIO_NET_HDR_GSO_SIZE             4       /* le16 */
#define VIRTIO_NET_HDR_CSUM_START           6       /* le16 */
#define VIRTIO_NET_HDR_CSUM_OFFSET          8       /* le16 */
#define VIRTIO_NET_HDR_NUM_BUFFERS          10      /* le16 */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM         1
#define VIRTIO_NET_HDR_F_DATA_VALID         2
#define VIRTIO_NET_HDR_GSO_NONE             0
#define VIRTIO_NET_HDR_GSO_TCPV4            1
#define VIRTIO_NET_HDR_GSO_UDP              3
#define VIRTIO_NET_HDR_GSO_TCPV6            4
#define VIRTIO_NET_HDR_GSO_ECN              0x80

/* Control queue (5.1.6.5): class, command, data, then one device-written ack byte. */
#define VIRTIO_NET_OK                       0
#define VIRTIO_NET_ERR                      1
#define VIRTIO_NET_CTRL_RX                  0
#define  VIRTIO_NET_CTRL_RX_PROMISC         0
#define  VIRTIO_NET_CTRL_RX_ALLMULTI        1
#define  VIRTIO_NET_CTRL_RX_ALLUNI          2
#define  VIRTIO_NET_CTRL_RX_NOMULTI         3
#define  VIRTIO_NET_CTRL_RX_NOUNI           4
#define  VIRTIO_NET_CTRL_RX_NOBCAST         5
#define VIRTIO_NET_CTRL_MAC                 1
#define  VIRTIO_NET_CTRL_MAC_TABLE_SET      0
#define  VIRTIO_NET_CTRL_MAC_ADDR_SET       1
#define VIRTIO_NET_CTRL_VLAN                2
#define  VIRTIO_NET_CTRL_VLAN_ADD           0
#define  VIRTIO_NET_CTRL_VLAN_DEL           1
#define VIRTIO_NET_CTRL_ANNOUNCE            3
#define  VIRTIO_NET_CTRL_ANNOUNCE_ACK       0
#define VIRTIO_NET_CTRL_MQ                  4
#define  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET    0
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS      5
#define  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0

/* This device's limits. */
#define VIRTIO_NET_MAX_PAIRS                256     /* a tap has at most 256 queues */
#define VIRTIO_NET_QUEUE_SIZE               256
#define VIRTIO_NET_MAC_TABLE_ENTRIES        64      /* unicast + multicast, as QEMU */
#define VIRTIO_NET_MAX_VLAN                 4096
/* The largest frame either way, without the header: a 64 KiB GSO packet. */
#define VIRTIO_NET_MAX_FRAME                (65562 - VIRTIO_NET_HDR_SIZE)

/*
 * The link state a management command sets (QMP set_link, later): with
 * the link down no frame passes either way, and a driver that negotiated
 * VIRTIO_NET_F_STATUS gets a configuration change notification. Takes
 * the device's lock; any thread. @dev must be a virtio-net device.
 */
void virtio_net_set_link(Device *dev, gboolean up);
gboolean virtio_net_get_link(Device *dev);

/* --- the backend: devices/virtio/net-tap.c --- */

/*
 * One fd per queue pair: queues of a Linux tap device, or packet sockets
 * (AF_UNIX SOCK_DGRAM or SOCK_SEQPACKET, one frame per datagram), opened
 * non-blocking. With a vnet header (IFF_VNET_HDR, size set to 12 with
 * TUNSETVNETHDRSZ; for a socket, 12 bytes in front of each frame) the
 * header travels with every frame as the guest sees it, so offloads
 * pass through; without one, frames are bare and no offload is offered.
 *
 * The device does the frame I/O on these fds itself (readv/writev, or
 * recvmsg with MSG_TRUNC on a socket, which says a datagram was cut);
 * this file does the control side: opening, probing, ioctls. All of it
 * may take the kernel's RTNL lock, so it runs on the loop thread or
 * before the VM starts, never on a vCPU thread.
 */
typedef struct NetTap NetTap;

/*
 * Opens (and if it does not exist, creates) tap @ifname with @queues
 * queues: IFF_TAP | IFF_NO_PI, IFF_VNET_HDR unless !@vnet_hdr,
 * IFF_MULTI_QUEUE when @queues > 1. Needs CAP_NET_ADMIN to create the
 * device or to use one owned by another user.
 */
NetTap *net_tap_open_name(const char *ifname, unsigned queues, gboolean vnet_hdr,
                          GError **error);
/*
 * Takes @n already open fds, each a tap queue (a vnet header is used if
 * the tap was opened with IFF_VNET_HDR) or a packet socket (with a vnet
 * header if @socket_vnet_hdr). On success the NetTap owns them; on
 * failure the caller still does.
 */
NetTap *net_tap_open_fds(const int *fds, unsigned n, gboolean socket_vnet_hdr, GError **error);
void net_tap_free(NetTap *tap);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetTap, net_tap_free)

unsigned net_tap_get_queues(const NetTap *tap);
int net_tap_get_fd(const NetTap *tap, unsigned queue);
/* "tap NAME" or "fd N", for messages. */
const char *net_tap_get_name(const NetTap *tap);
/* The tap's interface name, or NULL for sockets. */
const char *net_tap_get_ifname(const NetTap *tap);
gboolean net_tap_is_socket(const NetTap *tap);
/* VIRTIO_NET_HDR_SIZE or 0. */
size_t net_tap_get_vnet_hdr_len(const NetTap *tap);

/* Receive offloads (TUN_F_* of <linux/if_tun.h>) the backend can hand us; 0 without a header. */
unsigned net_tap_get_offloads(const NetTap *tap);
/* TUNSETOFFLOAD with @tun_flags (a subset of net_tap_get_offloads()); no-op for sockets. */
gboolean net_tap_set_offloads(NetTap *tap, unsigned tun_flags, GError **error);
/* Attaches or detaches queue @queue of a multiqueue tap (TUNSETQUEUE); no-op otherwise. */
gboolean net_tap_enable_queue(NetTap *tap, unsigned queue, gboolean on, GError **error);

#endif
