/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-console (virtio 1.2, 5.3): the console port and named ports
 * ("virtio-serial" channels such as the QEMU guest agent's
 * org.qemu.guest_agent.0), in devices/virtio/console.c, and the listening
 * UNIX sockets that carry named ports on the host (console-socket.c).
 *
 * One device, VIRTIO_CONSOLE_F_MULTIPORT offered. Port 0 is the console
 * port (Linux's /dev/hvc0); ports 1 to max-ports - 1 are named ports
 * (/dev/vportNpM, with the name in /sys/class/virtio-ports/vportNpM/name).
 * A driver that does not accept MULTIPORT sees port 0 alone, on queues 0
 * and 1, as the spec's single-port console.
 *
 * Device options:
 *   socket0=PATH     port 0 on a listening UNIX socket of its own
 *   nameN=NAME       port N (1 to max-ports - 1) is a named port called NAME...
 *   socketN=PATH     ...carried by a listening UNIX socket at PATH (both needed)
 *   max-ports=N      ports the guest may have (the config's max_nr_ports, 1 to
 *                    VIRTIO_CONSOLE_MAX_PORTS); default: the highest port + 1
 * Port 0 exists when the device has a character backend (DeviceEnv.chr;
 * vireo-vmm gives it one for `--console virtio`) or socket0 is given, not
 * both; without either the guest gets no console port.
 *
 * A socket takes one client at a time. The guest sees it as the host side
 * of the port being open (PORT_OPEN to the guest on connect and
 * disconnect); output for a port without a client is dropped, as the UART
 * does on a unix: backend. Input waits in the socket (or the backend)
 * until the guest has the port open and has given receive buffers.
 */
#ifndef VIREO_VIRTIO_CONSOLE_H
#define VIREO_VIRTIO_CONSOLE_H

#include <glib.h>
#include <stdint.h>

#include "vireo/chardev.h"
#include "vireo/device.h"
#include "vireo/event-loop.h"

/* Feature bits (5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE           0
#define VIRTIO_CONSOLE_F_MULTIPORT      1
#define VIRTIO_CONSOLE_F_EMERG_WRITE    2

/* Configuration space (5.3.4): cols, rows, max_nr_ports, emerg_wr. */
#define VIRTIO_CONSOLE_CFG_COLS         0
#define VIRTIO_CONSOLE_CFG_ROWS         2
#define VIRTIO_CONSOLE_CFG_MAX_NR_PORTS 4
#define VIRTIO_CONSOLE_CFG_EMERG_WR     8
#define VIRTIO_CONSOLE_CFG_SIZE         12

/*
 * Queues (5.3.2): port 0's receiveq and transmitq, the control receiveq
 * (device to driver) and transmitq (driver to device), then a pair per
 * further port.
 */
#define VIRTIO_CONSOLE_Q_CTRL_RX        2
#define VIRTIO_CONSOLE_Q_CTRL_TX        3
static inline unsigned virtio_console_rx_queue(unsigned port)
{
    return port == 0 ? 0 : 2 + 2 * port;
}

static inline unsigned virtio_console_tx_queue(unsigned port)
{
    return virtio_console_rx_queue(port) + 1;
}

/* struct virtio_console_control: le32 id, le16 event, le16 value (5.3.6.2). */
#define VIRTIO_CONSOLE_CTRL_SIZE        8
/* Events. The driver sends DEVICE_READY, PORT_READY and PORT_OPEN; the device the rest. */
#define VIRTIO_CONSOLE_DEVICE_READY     0
#define VIRTIO_CONSOLE_PORT_ADD         1
#define VIRTIO_CONSOLE_PORT_REMOVE      2
#define VIRTIO_CONSOLE_PORT_READY       3
#define VIRTIO_CONSOLE_CONSOLE_PORT     4
#define VIRTIO_CONSOLE_RESIZE           5
#define VIRTIO_CONSOLE_PORT_OPEN        6
#define VIRTIO_CONSOLE_PORT_NAME        7
/* The id Linux puts in DEVICE_READY. */
#define VIRTIO_CONSOLE_BAD_ID           0xffffffffu

/* Limits of this device. */
#define VIRTIO_CONSOLE_MAX_PORTS        32
#define VIRTIO_CONSOLE_MAX_NAME         255

/* --- the device --- */

/* One port as the device sees it (a copy, for tests and debugging). */
typedef struct VirtioConsolePortInfo {
    gboolean present;           /* configured: it has a backend (console or name) */
    gboolean console;           /* port 0 */
    gboolean added;             /* PORT_ADD sent to the driver */
    gboolean ready;             /* the driver answered PORT_READY 1 */
    gboolean guest_open;        /* the guest has it open (PORT_OPEN from the driver) */
    gboolean host_open;         /* a client is connected (a socket) or a backend is there */
    gboolean tx_blocked;        /* output waits for the backend's writable() */
    uint32_t tx_skip;           /* bytes of the next transmit chain already sent */
} VirtioConsolePortInfo;

/*
 * Port @port of virtio-console @dev (a "virtio-console" Device) into @info
 * (the device lock is taken); FALSE beyond max-ports.
 */
gboolean virtio_console_get_port(Device *dev, unsigned port, VirtioConsolePortInfo *info);
/* The config's max_nr_ports. */
unsigned virtio_console_max_ports(Device *dev);

/* --- a port's host side: a listening UNIX socket (console-socket.c) --- */

/*
 * A CharBackend on a listening UNIX socket: one client at a time (others
 * wait in the listen backlog until it leaves), output dropped while nobody
 * is connected, output buffered (64 KiB) for a slow client and back-pressure
 * beyond that (write() takes less; writable() once there is room again),
 * input read only as far as the frontend's can_receive() allows, and
 * paused (only a hang-up is watched) while it allows nothing.
 *
 * Threads: everything, the CharBackend calls included, runs on @loop's
 * thread (or while the loop does not run). The frontend callbacks and the
 * connect handler are called without any lock of ours and never from
 * inside write() or accept_input(), so the frontend may hold its own lock
 * around those.
 */
typedef struct VirtioConsoleSocket VirtioConsoleSocket;
/* A client connected (TRUE) or left (FALSE). */
typedef void (*VirtioConsoleSocketConnectFn)(void *opaque, gboolean connected);

/*
 * Listens on @path (a socket left there is replaced; any other file makes
 * it fail); @label names it in messages.
 */
VirtioConsoleSocket *virtio_console_socket_new(EventLoop *loop, const char *path,
                                               const char *label, GError **error);
/* Closes the client and the listener and removes the socket file. */
void virtio_console_socket_free(VirtioConsoleSocket *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VirtioConsoleSocket, virtio_console_socket_free)
CharBackend *virtio_console_socket_backend(VirtioConsoleSocket *s);
void virtio_console_socket_set_connect_handler(VirtioConsoleSocket *s,
                                               VirtioConsoleSocketConnectFn fn, void *opaque);
gboolean virtio_console_socket_connected(const VirtioConsoleSocket *s);
const char *virtio_console_socket_path(const VirtioConsoleSocket *s);

#endif
