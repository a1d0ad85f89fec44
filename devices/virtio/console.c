/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-console (virtio 1.2, 5.3) with VIRTIO_CONSOLE_F_MULTIPORT: the
 * console port 0 and named ports, each bound to a CharBackend. Options and
 * the host side are described in include/vireo/virtio-console.h.
 *
 * Ports and backends: port 0 uses the device's character backend
 * (DeviceEnv.chr, which may be any vireo-vmm backend: stdio, pty, file,
 * unix, none) or a socket of its own (socket0=); named ports always use a
 * socket of their own (virtio_console_socket_*), because only those say
 * when a client connects or leaves, which the guest must learn (PORT_OPEN).
 * A port whose backend is env.chr counts as always connected.
 *
 * The control handshake, as Linux's drivers/char/virtio_console.c does
 * it: the driver fills the control receiveq and sends DEVICE_READY 1; the
 * device answers with PORT_ADD for every port it has; the driver creates
 * each and answers PORT_READY 1; the device then sends CONSOLE_PORT 1
 * (port 0), PORT_NAME (named ports) and PORT_OPEN 1 if the host side is
 * connected. The driver reports opens and closes of a port by the guest
 * with PORT_OPEN. What the device still owes the driver is kept as flags
 * per port, not as a queue of messages, so a guest that gives no control
 * buffers cannot make it grow, and repeated events coalesce.
 *
 * Flow control, both ways, without ever holding a popped element across
 * a release of the lock (so save and reset find none in flight):
 * - Output (transmitq): each chain's bytes go to the backend's write();
 *   when it takes less, the chain is given back to the ring (unpop) with
 *   tx_skip saying how much of it was sent, and the port waits for the
 *   backend's writable() before it looks at the queue again. The guest
 *   gets the buffer back only once all of it went out. Without a client,
 *   the backend drops output and nothing blocks.
 * - Input (receiveq): can_receive() offers the size of the next receive
 *   buffer (popped and given back), 0 if there is none, if the port is
 *   not open in the guest (multiport), or the driver is not running; the
 *   backend then pauses, and the device calls accept_input() when the
 *   driver adds receive buffers or opens the port.
 *
 * A guest can send anything: control messages are checked (length, port
 * id, that the port was added, event, value) and wrong ones ignored with
 * a rate-limited guest warning; each pass over a queue stops after
 * CONSOLE_BUDGET chains and carries on in a later pass of the loop.
 *
 * Threads: queue work, backend callbacks and socket events run on the
 * event loop thread and take the device lock; reset runs on a vCPU thread
 * (status 0) with the lock held and touches no backend.
 *
 * Learned from, not copied: the spec, Linux's driver (what it sends and
 * expects), QEMU's hw/char/virtio-serial-bus.c (its behaviour only: a
 * port not open in the guest takes no input).
 */
#include <inttypes.h>
#include <string.h>

#include "vireo/util.h"
#include "vireo/virtio-console.h"
#include "vireo/virtio-pci.h"

#define CONSOLE_QUEUE_SIZE 64
#define CONSOLE_BUDGET 64               /* chains per queue and pass of the loop */
#define CONSOLE_MSG_MAX (VIRTIO_CONSOLE_CTRL_SIZE + VIRTIO_CONSOLE_MAX_NAME)
#define CONSOLE_FIELD_LEN 48

/* Messages a port is still owed, in the order they are sent. */
#define CONSOLE_PENDING_ADD     0x01
#define CONSOLE_PENDING_CONSOLE 0x02
#define CONSOLE_PENDING_NAME    0x04
#define CONSOLE_PENDING_OPEN    0x08
#define CONSOLE_PENDING_ALL     0x0f

/* A port's guest-visible state, as saved. */
#define CONSOLE_STATE_ADDED     0x01
#define CONSOLE_STATE_READY     0x02
#define CONSOLE_STATE_OPEN      0x04
#define CONSOLE_STATE_TOLD_OPEN 0x08
#define CONSOLE_STATE_ALL       0x0f

typedef struct VirtioConsole VirtioConsole;

typedef struct VirtioConsolePort {
    VirtioConsole *con;
    unsigned id;
    /* Fixed at creation. */
    char *name;                 /* named ports */
    CharBackend *chr;           /* NULL: no such port */
    VirtioConsoleSocket *sock;  /* owned, when chr is one */
    /* Under the device lock. */
    gboolean host_open;         /* a client is connected (env.chr: always) */
    gboolean added;             /* PORT_ADD delivered */
    gboolean ready;             /* PORT_READY 1 received */
    gboolean guest_open;        /* PORT_OPEN 1 received */
    gboolean told_open;         /* the value of the last PORT_OPEN delivered */
    uint8_t pending;            /* CONSOLE_PENDING_* */
    gboolean tx_blocked;        /* waiting for the backend's writable() */
    uint32_t tx_skip;           /* bytes of the chain at the head of transmitq already sent */
} VirtioConsolePort;

struct VirtioConsole {
    VirtioDevice vdev;          /* first: the transport holds &vdev */
    unsigned max_ports;
    VirtioConsolePort *ports;   /* max_ports of them */
    VirtqElement *elem;         /* scratch: never held across a release of the lock */
    gboolean driver_ready;      /* DEVICE_READY 1 received (under the lock) */
};

static const DeviceType virtio_console_type;

static VirtioConsole *virtio_console_from_vdev(VirtioDevice *vdev)
{
    return (VirtioConsole *)vdev;
}

static gboolean virtio_console_multiport(const VirtioConsole *con)
{
    return virtio_has_feature(&con->vdev, VIRTIO_CONSOLE_F_MULTIPORT);
}

static gboolean virtio_console_running(const VirtioConsole *con)
{
    return con->vdev.status & VIRTIO_STATUS_DRIVER_OK;
}

static VirtQueue *virtio_console_vq(VirtioConsole *con, unsigned index)
{
    return con->vdev.queues[index].vq;
}

/* The rest of a long pass, on a later turn of the loop. */
static void virtio_console_defer(VirtioConsole *con, unsigned index)
{
    event_loop_call(con->vdev.loop, virtio_queue_kick, &con->vdev.queues[index]);
}

static const char *virtio_console_event_name(uint16_t event)
{
    static const char *const names[] = {
        "DEVICE_READY", "PORT_ADD", "PORT_REMOVE", "PORT_READY",
        "CONSOLE_PORT", "RESIZE", "PORT_OPEN", "PORT_NAME",
    };

    return event < G_N_ELEMENTS(names) ? names[event] : "unknown";
}

/* --- control receiveq: what the device tells the driver --- */

/*
 * The next message @con owes the driver into @msg (CONSOLE_MSG_MAX bytes):
 * returns its length and which port and flag it is for, or 0.
 */
static size_t virtio_console_ctrl_next(VirtioConsole *con, uint8_t *msg, VirtioConsolePort **pp,
                                       uint8_t *flag)
{
    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePort *p = &con->ports[i];
        uint16_t event, value = 1;
        size_t len = VIRTIO_CONSOLE_CTRL_SIZE;

        if (!p->pending)
            continue;
        *pp = p;
        *flag = p->pending & -p->pending;       /* the lowest: ADD comes first */
        switch (*flag) {
        case CONSOLE_PENDING_ADD:
            event = VIRTIO_CONSOLE_PORT_ADD;
            value = 0;
            break;
        case CONSOLE_PENDING_CONSOLE:
            event = VIRTIO_CONSOLE_CONSOLE_PORT;
            break;
        case CONSOLE_PENDING_NAME:
            /* The name without its NUL: Linux takes the buffer's length as the name's. */
            event = VIRTIO_CONSOLE_PORT_NAME;
            value = 0;
            len += strlen(p->name);
            memcpy(msg + VIRTIO_CONSOLE_CTRL_SIZE, p->name, len - VIRTIO_CONSOLE_CTRL_SIZE);
            break;
        default:
            event = VIRTIO_CONSOLE_PORT_OPEN;
            value = p->host_open;
            break;
        }
        vireo_le_store(msg, 4, p->id);
        vireo_le_store(msg + 4, 2, event);
        vireo_le_store(msg + 6, 2, value);
        return len;
    }
    return 0;
}

/* Sends what is owed, as far as the driver gave control receive buffers. */
static void virtio_console_ctrl_flush(VirtioConsole *con)
{
    VirtQueue *vq = virtio_console_vq(con, VIRTIO_CONSOLE_Q_CTRL_RX);
    VirtqElement *elem = con->elem;
    uint8_t msg[CONSOLE_MSG_MAX];
    unsigned done = 0;
    VirtioConsolePort *p;
    uint8_t flag;
    size_t len;
    int r = 0;

    if (!virtio_console_running(con) || !virtio_console_multiport(con) ||
        !virtq_is_enabled(vq))
        return;
    while ((len = virtio_console_ctrl_next(con, msg, &p, &flag))) {
        if (done == CONSOLE_BUDGET) {
            virtio_console_defer(con, VIRTIO_CONSOLE_Q_CTRL_RX);
            break;
        }
        r = virtq_pop(vq, elem);
        if (r != 1)
            break;
        done++;
        if (elem->in_len < VIRTIO_CONSOLE_CTRL_SIZE) {
            vireo_guest_warn("%s: control receive buffer of %u bytes, less than a message; "
                             "returned empty", con->vdev.id, elem->in_len);
            virtq_push(vq, elem, 0);
            continue;
        }
        /* A name longer than the buffer is cut short: the driver chose the size. */
        virtq_push(vq, elem, virtq_element_write(elem, 0, msg, len));
        p->pending &= ~flag;
        if (flag == CONSOLE_PENDING_ADD)
            p->added = TRUE;
        if (flag == CONSOLE_PENDING_OPEN)
            p->told_open = vireo_le_load(msg + 6, 2) != 0;
    }
    if (r < 0)
        virtio_set_needs_reset(&con->vdev, NULL);
    if (done)
        virtio_notify_queue(&con->vdev, VIRTIO_CONSOLE_Q_CTRL_RX);
}

/* The guest should learn the host side's state (PORT_OPEN), once it has the port. */
static void virtio_console_tell_host_state(VirtioConsolePort *p)
{
    if (!p->ready)
        return;
    p->pending |= CONSOLE_PENDING_OPEN;
    virtio_console_ctrl_flush(p->con);
}

/* --- control transmitq: what the driver tells the device --- */

static void virtio_console_ctrl_handle(VirtioConsole *con, uint32_t id, uint16_t event,
                                       uint16_t value)
{
    VirtioConsolePort *p;

    if (event == VIRTIO_CONSOLE_DEVICE_READY) {
        /* Linux puts VIRTIO_CONSOLE_BAD_ID in id; nothing depends on it. */
        if (value != 1) {
            vireo_guest_warn("%s: DEVICE_READY %u: the driver could not set the device up",
                             con->vdev.id, value);
            return;
        }
        if (con->driver_ready)
            return;                     /* nothing new to tell */
        con->driver_ready = TRUE;
        for (unsigned i = 0; i < con->max_ports; i++) {
            if (con->ports[i].chr)
                con->ports[i].pending |= CONSOLE_PENDING_ADD;
        }
        return;
    }
    if (event != VIRTIO_CONSOLE_PORT_READY && event != VIRTIO_CONSOLE_PORT_OPEN) {
        vireo_guest_warn("%s: control event %u (%s) for port %u is not one a driver sends; "
                         "ignored", con->vdev.id, event, virtio_console_event_name(event), id);
        return;
    }
    if (id >= con->max_ports || !con->ports[id].added) {
        vireo_guest_warn("%s: %s for port %u, which the device did not add; ignored",
                         con->vdev.id, virtio_console_event_name(event), id);
        return;
    }
    if (value > 1) {
        vireo_guest_warn("%s: %s for port %u with value %u (0 or 1); ignored", con->vdev.id,
                         virtio_console_event_name(event), id, value);
        return;
    }
    p = &con->ports[id];
    if (event == VIRTIO_CONSOLE_PORT_READY) {
        if (!value) {
            vireo_guest_warn("%s: the driver could not add port %u", con->vdev.id, id);
            p->ready = p->guest_open = p->told_open = FALSE;
            p->pending = 0;
            return;
        }
        /* Again after a PORT_ADD it knew, or after a resume: the answers are the same. */
        p->ready = TRUE;
        if (id == 0)
            p->pending |= CONSOLE_PENDING_CONSOLE;
        if (p->name)
            p->pending |= CONSOLE_PENDING_NAME;
        /* Linux starts with the host side closed: say so only when it is open. */
        if (p->host_open)
            p->pending |= CONSOLE_PENDING_OPEN;
        return;
    }
    if (p->guest_open != value) {
        static RateLimit rl;
        int suppressed;

        if (ratelimit_allow(&rl, &suppressed))
            g_debug("%s: the guest %s port %u", con->vdev.id, value ? "opened" : "closed", id);
    }
    p->guest_open = value;
    /* Input waited in the backend while the port was closed. */
    if (value)
        char_backend_accept_input(p->chr);
}

static void virtio_console_ctrl_tx(VirtioConsole *con)
{
    VirtQueue *vq = virtio_console_vq(con, VIRTIO_CONSOLE_Q_CTRL_TX);
    VirtqElement *elem = con->elem;
    unsigned done = 0;
    int r = 0;

    do {
        virtq_disable_notification(vq);
        for (;;) {
            uint8_t msg[VIRTIO_CONSOLE_CTRL_SIZE];
            size_t n;

            if (done == CONSOLE_BUDGET) {
                virtio_console_defer(con, VIRTIO_CONSOLE_Q_CTRL_TX);
                goto out;
            }
            r = virtq_pop(vq, elem);
            if (r != 1)
                break;
            /* Copied before use: the guest may change the buffer meanwhile. */
            n = virtq_element_read(elem, 0, msg, sizeof(msg));
            virtq_push(vq, elem, 0);
            done++;
            if (n < sizeof(msg)) {
                vireo_guest_warn("%s: control message of %zu bytes (a message has %u); "
                                 "ignored", con->vdev.id, n, VIRTIO_CONSOLE_CTRL_SIZE);
                continue;
            }
            virtio_console_ctrl_handle(con, vireo_le_load(msg, 4), vireo_le_load(msg + 4, 2),
                                       vireo_le_load(msg + 6, 2));
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&con->vdev, NULL);
out:
    if (done)
        virtio_notify_queue(&con->vdev, VIRTIO_CONSOLE_Q_CTRL_TX);
    virtio_console_ctrl_flush(con);
}

/* --- port data --- */

/* The port exchanges data with the guest now. */
static gboolean virtio_console_port_active(const VirtioConsolePort *p)
{
    const VirtioConsole *con = p->con;

    if (!virtio_console_running(con))
        return FALSE;
    return virtio_console_multiport(con) ? p->guest_open : p->id == 0;
}

/*
 * Writes the device-readable bytes of @elem from byte tx_skip on to the
 * backend; TRUE once all of them went.
 */
static gboolean virtio_console_tx_chain(VirtioConsolePort *p, const VirtqElement *elem)
{
    size_t skip = p->tx_skip;

    for (unsigned i = 0; i < elem->out_num; i++) {
        const uint8_t *base = elem->out_sg[i].iov_base;
        size_t len = elem->out_sg[i].iov_len, n;

        if (skip >= len) {
            skip -= len;
            continue;
        }
        base += skip;
        len -= skip;
        skip = 0;
        n = char_backend_write(p->chr, base, len);
        n = MIN(n, len);
        p->tx_skip += n;
        if (n < len)
            return FALSE;
    }
    return TRUE;
}

/* Guest output of port @p to its backend, until the queue is empty or the backend full. */
static void virtio_console_tx(VirtioConsolePort *p)
{
    VirtioConsole *con = p->con;
    unsigned index = virtio_console_tx_queue(p->id);
    VirtQueue *vq = virtio_console_vq(con, index);
    unsigned done = 0;
    int r = 0;

    if (p->tx_blocked)
        return;                         /* writable() brings us back */
    do {
        virtq_disable_notification(vq);
        for (;;) {
            if (done == CONSOLE_BUDGET) {
                virtio_console_defer(con, index);
                goto out;
            }
            r = virtq_pop(vq, con->elem);
            if (r != 1)
                break;
            if (!virtio_console_tx_chain(p, con->elem)) {
                /* The rest stays in the ring; notifications stay off until writable(). */
                virtq_unpop(vq, con->elem);
                p->tx_blocked = TRUE;
                goto out;
            }
            /* Device-writable buffers in the chain get nothing: 0 bytes used. */
            virtq_push(vq, con->elem, 0);
            p->tx_skip = 0;
            done++;
        }
    } while (r == 0 && virtq_enable_notification(vq));
    if (r < 0)
        virtio_set_needs_reset(&con->vdev, NULL);
out:
    if (done)
        virtio_notify_queue(&con->vdev, index);
}

/*
 * Room in the next receive buffer of @p (given back to the ring), or 0.
 * Buffers with nothing to write into are returned empty on the way.
 */
static size_t virtio_console_rx_room(VirtioConsolePort *p)
{
    VirtioConsole *con = p->con;
    unsigned index = virtio_console_rx_queue(p->id);
    VirtQueue *vq = virtio_console_vq(con, index);
    size_t room = 0;
    unsigned pushed = 0;
    int r = 0;

    if (!virtio_console_port_active(p))
        return 0;
    while (pushed < CONSOLE_QUEUE_SIZE && (r = virtq_pop(vq, con->elem)) == 1) {
        if (con->elem->in_len) {
            room = con->elem->in_len;
            virtq_unpop(vq, con->elem);
            break;
        }
        vireo_guest_warn("%s: receive buffer of port %u has no device-writable bytes; "
                         "returned empty", con->vdev.id, p->id);
        virtq_push(vq, con->elem, 0);
        pushed++;
    }
    if (r < 0)
        virtio_set_needs_reset(&con->vdev, NULL);
    if (pushed)
        virtio_notify_queue(&con->vdev, index);
    return room;
}

/* Host input into the receive buffers of @p (at most what rx_room offered). */
static void virtio_console_rx(VirtioConsolePort *p, const uint8_t *buf, size_t len)
{
    VirtioConsole *con = p->con;
    unsigned index = virtio_console_rx_queue(p->id);
    VirtQueue *vq = virtio_console_vq(con, index);
    size_t done = 0;
    unsigned pushed = 0;
    int r = 0;

    if (!virtio_console_port_active(p))
        goto out;
    while (done < len && pushed < CONSOLE_QUEUE_SIZE && (r = virtq_pop(vq, con->elem)) == 1) {
        size_t n = virtq_element_write(con->elem, 0, buf + done, len - done);

        virtq_push(vq, con->elem, n);
        done += n;
        pushed++;
    }
    if (r < 0)
        virtio_set_needs_reset(&con->vdev, NULL);
    if (pushed)
        virtio_notify_queue(&con->vdev, index);
out:
    /* Only when the driver took buffers back (a reset) between can_receive and now. */
    if (done < len)
        vireo_guest_warn("%s: %zu bytes of input for port %u lost: the receive buffers went",
                         con->vdev.id, len - done, p->id);
}

/* --- backend callbacks (loop thread, no lock held) --- */

static size_t virtio_console_chr_can_receive(void *opaque)
{
    VirtioConsolePort *p = opaque;
    size_t room;

    virtio_device_lock(&p->con->vdev);
    room = virtio_console_rx_room(p);
    virtio_device_unlock(&p->con->vdev);
    return room;
}

static void virtio_console_chr_receive(void *opaque, const uint8_t *buf, size_t len)
{
    VirtioConsolePort *p = opaque;

    virtio_device_lock(&p->con->vdev);
    virtio_console_rx(p, buf, len);
    virtio_device_unlock(&p->con->vdev);
}

static void virtio_console_chr_writable(void *opaque)
{
    VirtioConsolePort *p = opaque;
    VirtioConsole *con = p->con;

    virtio_device_lock(&con->vdev);
    p->tx_blocked = FALSE;
    if (virtio_console_running(con) && virtio_queue_is_enabled(&con->vdev,
                                                               virtio_console_tx_queue(p->id)))
        virtio_console_tx(p);
    virtio_device_unlock(&con->vdev);
}

static const CharFrontendOps virtio_console_chr_ops = {
    .can_receive = virtio_console_chr_can_receive,
    .receive = virtio_console_chr_receive,
    .writable = virtio_console_chr_writable,
};

static void virtio_console_socket_event(void *opaque, gboolean connected)
{
    VirtioConsolePort *p = opaque;

    virtio_device_lock(&p->con->vdev);
    p->host_open = connected;
    virtio_console_tell_host_state(p);
    virtio_device_unlock(&p->con->vdev);
}

/* --- VirtioDeviceOps --- */

static void virtio_console_config_read(VirtioDevice *vdev, uint32_t off, void *buf, size_t len)
{
    VirtioConsole *con = virtio_console_from_vdev(vdev);
    uint8_t cfg[VIRTIO_CONSOLE_CFG_SIZE] = { 0 };

    /* No F_SIZE (cols, rows) and no EMERG_WRITE: only max_nr_ports means anything. */
    vireo_le_store(cfg + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4, con->max_ports);
    memcpy(buf, cfg + off, len);
}

static void virtio_console_queue_notify(VirtioDevice *vdev, unsigned index)
{
    VirtioConsole *con = virtio_console_from_vdev(vdev);
    VirtioConsolePort *p;
    unsigned port;

    if (index >= VIRTIO_CONSOLE_Q_CTRL_RX && !virtio_console_multiport(con)) {
        vireo_guest_warn("%s: notification for queue %u, which is not used without "
                         "MULTIPORT; ignored", vdev->id, index);
        return;
    }
    if (index == VIRTIO_CONSOLE_Q_CTRL_TX) {
        virtio_console_ctrl_tx(con);
        return;
    }
    if (index == VIRTIO_CONSOLE_Q_CTRL_RX) {
        virtio_console_ctrl_flush(con);
        return;
    }
    port = index < 2 ? 0 : (index - 2) / 2;
    p = &con->ports[port];
    if (index == virtio_console_rx_queue(port)) {
        /* New receive buffers: a backend that paused for lack of them goes on. */
        if (virtio_console_port_active(p))
            char_backend_accept_input(p->chr);
        return;
    }
    virtio_console_tx(p);
}

static void virtio_console_reset(VirtioDevice *vdev)
{
    VirtioConsole *con = virtio_console_from_vdev(vdev);

    con->driver_ready = FALSE;
    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePort *p = &con->ports[i];

        p->added = p->ready = p->guest_open = p->told_open = FALSE;
        p->pending = 0;
        p->tx_blocked = FALSE;
        p->tx_skip = 0;
    }
}

static const char *virtio_console_field(char *buf, unsigned port, const char *name)
{
    g_snprintf(buf, CONSOLE_FIELD_LEN, "console-p%u-%s", port, name);
    return buf;
}

static gboolean virtio_console_save(VirtioDevice *vdev, StateWriter *w, GError **error)
{
    VirtioConsole *con = virtio_console_from_vdev(vdev);
    char f[CONSOLE_FIELD_LEN];

    state_write_u32(w, "console-max-ports", con->max_ports);
    state_write_u8(w, "console-driver-ready", con->driver_ready);
    for (unsigned i = 0; i < con->max_ports; i++) {
        const VirtioConsolePort *p = &con->ports[i];
        uint8_t st = (p->added ? CONSOLE_STATE_ADDED : 0) | (p->ready ? CONSOLE_STATE_READY : 0) |
                     (p->guest_open ? CONSOLE_STATE_OPEN : 0) |
                     (p->told_open ? CONSOLE_STATE_TOLD_OPEN : 0);

        state_write_u8(w, virtio_console_field(f, i, "state"), st);
        state_write_u8(w, virtio_console_field(f, i, "pending"), p->pending);
        state_write_u32(w, virtio_console_field(f, i, "tx-skip"), p->tx_skip);
        /* The port as the guest may know it, for the destination to compare. */
        state_write_u8(w, virtio_console_field(f, i, "present"), p->chr != NULL);
        state_write_bytes(w, virtio_console_field(f, i, "name"), p->name ? p->name : "",
                          p->name ? strlen(p->name) : 0);
    }
    return TRUE;
}

typedef struct VirtioConsolePortState {
    uint8_t state;
    uint8_t pending;
    uint32_t tx_skip;
    uint8_t present;
    char name[VIRTIO_CONSOLE_MAX_NAME + 1];
} VirtioConsolePortState;

static gboolean G_GNUC_PRINTF(3, 4) virtio_console_state_error(VirtioConsole *con,
                                                               GError **error,
                                                               const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE, "virtio-console %s: %s",
                con->vdev.id, msg);
    return FALSE;
}

/* Checks one port's saved state against this device; says why not. */
static gboolean virtio_console_check_port(VirtioConsole *con, unsigned i,
                                          const VirtioConsolePortState *s, uint8_t driver_ready,
                                          GError **error)
{
    const VirtioConsolePort *p = &con->ports[i];
    gboolean added = !!(s->state & CONSOLE_STATE_ADDED);
    gboolean known = added || (s->pending & CONSOLE_PENDING_ADD);

    if ((s->state & ~CONSOLE_STATE_ALL) || (s->pending & ~CONSOLE_PENDING_ALL) ||
        s->present > 1)
        return virtio_console_state_error(con, error, "port %u: state 0x%x, pending 0x%x, "
                                          "present %u", i, s->state, s->pending, s->present);
    if (!virtio_console_multiport(con) && (driver_ready || s->state || s->pending))
        return virtio_console_state_error(con, error, "port %u: control state without "
                                          "MULTIPORT", i);
    if ((s->state & (CONSOLE_STATE_READY | CONSOLE_STATE_OPEN)) && !added)
        return virtio_console_state_error(con, error, "port %u ready or open but not added", i);
    if ((s->state & CONSOLE_STATE_TOLD_OPEN) && !(s->state & CONSOLE_STATE_READY))
        return virtio_console_state_error(con, error, "port %u told open before it is ready", i);
    if (known && (!driver_ready || !s->present))
        return virtio_console_state_error(con, error, "port %u added before DEVICE_READY or "
                                          "without a backend", i);
    if (added && (s->pending & CONSOLE_PENDING_ADD))
        return virtio_console_state_error(con, error, "port %u added twice", i);
    if ((s->pending & ~CONSOLE_PENDING_ADD) && !(s->state & CONSOLE_STATE_READY))
        return virtio_console_state_error(con, error, "port %u owed messages before it is "
                                          "ready", i);
    if ((s->pending & CONSOLE_PENDING_CONSOLE) && i != 0)
        return virtio_console_state_error(con, error, "port %u owed CONSOLE_PORT", i);
    if ((s->pending & CONSOLE_PENDING_NAME) && !s->name[0])
        return virtio_console_state_error(con, error, "port %u owed a name it has not", i);
    /* The guest knows the port: this device must have it, with that name. */
    if (known && (!p->chr || strcmp(s->name, p->name ? p->name : "") != 0))
        return virtio_console_state_error(con, error, "port %u ('%s' for the guest) is %s here",
                                          i, s->name, !p->chr ? "missing"
                                                              : p->name ? p->name : "unnamed");
    if (s->tx_skip && !virtio_queue_is_enabled(&con->vdev, virtio_console_tx_queue(i)))
        return virtio_console_state_error(con, error, "port %u: %u bytes sent of a chain in "
                                          "a queue that is not enabled", i, s->tx_skip);
    return TRUE;
}

static gboolean virtio_console_load(VirtioDevice *vdev, StateReader *r, GError **error)
{
    VirtioConsole *con = virtio_console_from_vdev(vdev);
    g_autofree VirtioConsolePortState *ps = g_new0(VirtioConsolePortState, con->max_ports);
    char f[CONSOLE_FIELD_LEN];
    uint32_t max_ports;
    uint8_t driver_ready;

    if (!state_read_u32(r, "console-max-ports", &max_ports, error) ||
        !state_read_u8(r, "console-driver-ready", &driver_ready, error))
        return FALSE;
    if (max_ports != con->max_ports)
        return virtio_console_state_error(con, error, "%u ports saved, this device has %u",
                                          max_ports, con->max_ports);
    if (driver_ready > 1)
        return virtio_console_state_error(con, error, "driver-ready flag %u", driver_ready);
    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePortState *s = &ps[i];
        size_t name_len = 0;

        if (!state_read_u8(r, virtio_console_field(f, i, "state"), &s->state, error) ||
            !state_read_u8(r, virtio_console_field(f, i, "pending"), &s->pending, error) ||
            !state_read_u32(r, virtio_console_field(f, i, "tx-skip"), &s->tx_skip, error) ||
            !state_read_u8(r, virtio_console_field(f, i, "present"), &s->present, error) ||
            !state_read_bytes_var(r, virtio_console_field(f, i, "name"), s->name,
                                  VIRTIO_CONSOLE_MAX_NAME, &name_len, error))
            return FALSE;
        s->name[name_len] = '\0';
        if (strlen(s->name) != name_len)
            return virtio_console_state_error(con, error, "port %u: name with a NUL", i);
        if (!virtio_console_check_port(con, i, s, driver_ready, error))
            return FALSE;
    }

    con->driver_ready = driver_ready;
    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePort *p = &con->ports[i];

        p->added = !!(ps[i].state & CONSOLE_STATE_ADDED);
        p->ready = !!(ps[i].state & CONSOLE_STATE_READY);
        p->guest_open = !!(ps[i].state & CONSOLE_STATE_OPEN);
        p->told_open = !!(ps[i].state & CONSOLE_STATE_TOLD_OPEN);
        p->pending = ps[i].pending;
        p->tx_skip = ps[i].tx_skip;
        p->tx_blocked = FALSE;
        /*
         * This host's side of the port is not the source's (a new socket,
         * nobody connected yet): the guest hears of it if that differs
         * from what it was told. A port the source did not have is
         * offered now. Neither changes anything when the state is this
         * device's own (the transport's restore after a failed load).
         */
        if (p->ready && p->told_open != p->host_open)
            p->pending |= CONSOLE_PENDING_OPEN;
        if (con->driver_ready && p->chr && !p->added)
            p->pending |= CONSOLE_PENDING_ADD;
    }
    return TRUE;
}

static void virtio_console_free(VirtioDevice *vdev)
{
    VirtioConsole *con = virtio_console_from_vdev(vdev);

    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePort *p = &con->ports[i];

        char_backend_set_frontend(p->chr, NULL, NULL);
        virtio_console_socket_free(p->sock);
        g_free(p->name);
    }
    g_free(con->ports);
    virtq_element_free(con->elem);
    g_free(con);
}

static const VirtioDeviceOps virtio_console_ops = {
    .device_id = VIRTIO_ID_CONSOLE,
    .config_read = virtio_console_config_read,
    .queue_notify = virtio_console_queue_notify,
    .reset = virtio_console_reset,
    .save = virtio_console_save,
    .load = virtio_console_load,
    .free = virtio_console_free,
};

/* --- for tests and debugging --- */

static VirtioConsole *virtio_console_from_dev(Device *dev)
{
    g_assert(dev->type == &virtio_console_type);
    return virtio_console_from_vdev(virtio_pci_get_device(dev));
}

gboolean virtio_console_get_port(Device *dev, unsigned port, VirtioConsolePortInfo *info)
{
    VirtioConsole *con = virtio_console_from_dev(dev);
    const VirtioConsolePort *p;

    if (port >= con->max_ports)
        return FALSE;
    p = &con->ports[port];
    virtio_device_lock(&con->vdev);
    *info = (VirtioConsolePortInfo){
        .present = p->chr != NULL,
        .console = port == 0,
        .added = p->added,
        .ready = p->ready,
        .guest_open = p->guest_open,
        .host_open = p->host_open,
        .tx_blocked = p->tx_blocked,
        .tx_skip = p->tx_skip,
    };
    virtio_device_unlock(&con->vdev);
    return TRUE;
}

unsigned virtio_console_max_ports(Device *dev)
{
    return virtio_console_from_dev(dev)->max_ports;
}

/* --- creation --- */

static Device *virtio_console_create(const DeviceEnv *env, const char *options, GError **error);

VIRTIO_PCI_DEVICE_TYPE(virtio_console_type, "virtio-console",
                       "virtio console port and named ports on UNIX sockets "
                       "(socket0=PATH,nameN=NAME,socketN=PATH,max-ports=N)",
                       virtio_console_create)

/* The configuration from the options. */
typedef struct VirtioConsoleConfig {
    unsigned max_ports;                             /* 0: not given */
    const char *name[VIRTIO_CONSOLE_MAX_PORTS];
    const char *socket[VIRTIO_CONSOLE_MAX_PORTS];
} VirtioConsoleConfig;

static gboolean G_GNUC_PRINTF(2, 3) virtio_console_option_error(GError **error,
                                                                const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "%s: %s",
                virtio_console_type.name, msg);
    return FALSE;
}

/* "<prefix>N" with N a decimal port number (no sign, no leading zero): TRUE and N. */
static gboolean virtio_console_port_key(const char *key, const char *prefix, unsigned *port)
{
    const char *d = key + strlen(prefix);
    uint64_t v;

    if (!g_str_has_prefix(key, prefix) || !g_ascii_isdigit(*d) || (d[0] == '0' && d[1]) ||
        !g_ascii_string_to_unsigned(d, 10, 0, G_MAXUINT, &v, NULL))
        return FALSE;
    *port = v;
    return TRUE;
}

/* Port names reach the guest's sysfs and udev's /dev/virtio-ports/NAME. */
static gboolean virtio_console_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > VIRTIO_CONSOLE_MAX_NAME)
        return FALSE;
    for (size_t i = 0; i < len; i++) {
        if (name[i] <= ' ' || name[i] > '~' || name[i] == '/')
            return FALSE;
    }
    return TRUE;
}

static gboolean virtio_console_parse(const DeviceEnv *env, const char *options,
                                     VirtioConsoleConfig *cfg, GHashTable **table,
                                     GError **error)
{
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    GHashTableIter it;
    gpointer k, v;
    unsigned highest = 0;

    if (!opts)
        return FALSE;
    g_hash_table_iter_init(&it, opts);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const char *key = k, *value = v;
        unsigned port;
        uint64_t n;

        if (strcmp(key, "max-ports") == 0) {
            if (!g_ascii_isdigit(*value) ||
                !g_ascii_string_to_unsigned(value, 10, 1, VIRTIO_CONSOLE_MAX_PORTS, &n, NULL))
                return virtio_console_option_error(error, "max-ports=%s: expected 1 to %u",
                                                   value, VIRTIO_CONSOLE_MAX_PORTS);
            cfg->max_ports = n;
        } else if (virtio_console_port_key(key, "name", &port)) {
            if (port == 0 || port >= VIRTIO_CONSOLE_MAX_PORTS)
                return virtio_console_option_error(error, "%s: named ports are 1 to %u (port 0 "
                                                   "is the console)", key,
                                                   VIRTIO_CONSOLE_MAX_PORTS - 1);
            if (!virtio_console_name_ok(value))
                return virtio_console_option_error(error, "%s=%s: a port name has 1 to %u "
                                                   "printable characters, no space or '/'",
                                                   key, value, VIRTIO_CONSOLE_MAX_NAME);
            cfg->name[port] = value;
            highest = MAX(highest, port);
        } else if (virtio_console_port_key(key, "socket", &port)) {
            if (port >= VIRTIO_CONSOLE_MAX_PORTS)
                return virtio_console_option_error(error, "%s: ports are 0 to %u", key,
                                                   VIRTIO_CONSOLE_MAX_PORTS - 1);
            if (!*value)
                return virtio_console_option_error(error, "%s: empty path", key);
            cfg->socket[port] = value;
            highest = MAX(highest, port);
        } else {
            return virtio_console_option_error(error, "unknown option '%s' (known: socket0, "
                                               "nameN, socketN, max-ports)", key);
        }
    }
    for (unsigned i = 0; i < VIRTIO_CONSOLE_MAX_PORTS; i++) {
        if (i > 0 && !cfg->name[i] != !cfg->socket[i])
            return virtio_console_option_error(error, "port %u needs both name%u and socket%u",
                                               i, i, i);
        for (unsigned j = 1; j < i; j++) {
            if (cfg->name[i] && cfg->name[j] && strcmp(cfg->name[i], cfg->name[j]) == 0)
                return virtio_console_option_error(error, "ports %u and %u are both called "
                                                   "'%s'", j, i, cfg->name[i]);
        }
        for (unsigned j = 0; j < i; j++) {
            if (cfg->socket[i] && cfg->socket[j] && strcmp(cfg->socket[i], cfg->socket[j]) == 0)
                return virtio_console_option_error(error, "ports %u and %u both on socket "
                                                   "'%s'", j, i, cfg->socket[i]);
        }
    }
    if (env->chr && cfg->socket[0])
        return virtio_console_option_error(error, "port 0 has the device's character backend "
                                           "(vireo-vmm: --console virtio); socket0 cannot "
                                           "be used as well");
    if (cfg->max_ports && highest >= cfg->max_ports)
        return virtio_console_option_error(error, "port %u does not fit max-ports=%u",
                                           highest, cfg->max_ports);
    if (!cfg->max_ports)
        cfg->max_ports = highest + 1;
    *table = g_steal_pointer(&opts);
    return TRUE;
}

static Device *virtio_console_create(const DeviceEnv *env, const char *options, GError **error)
{
    VirtioConsoleConfig cfg = { 0 };
    g_autoptr(GHashTable) opts = NULL;      /* cfg's strings point into it */
    VirtioConsole *con;
    Device *dev;

    if (!virtio_console_parse(env, options, &cfg, &opts, error))
        return NULL;
    if (!env->mem || !env->loop) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs guest memory and an event loop", virtio_console_type.name);
        return NULL;
    }

    con = g_new0(VirtioConsole, 1);
    virtio_device_init(&con->vdev, &virtio_console_ops, env,
                       VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT), VIRTIO_CONSOLE_CFG_SIZE);
    con->max_ports = cfg.max_ports;
    con->ports = g_new0(VirtioConsolePort, con->max_ports);
    /* Port 0's two queues, the control pair, then two per further port. */
    for (unsigned i = 0; i < 2 * (con->max_ports + 1); i++)
        virtio_device_add_queue(&con->vdev, CONSOLE_QUEUE_SIZE);
    con->elem = virtq_element_new(virtio_console_vq(con, 0));
    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePort *p = &con->ports[i];

        p->con = con;
        p->id = i;
        p->name = g_strdup(cfg.name[i]);
        if (i == 0 && env->chr) {
            p->chr = env->chr;
            p->host_open = TRUE;
        } else if (cfg.socket[i]) {
            g_autofree char *label = g_strdup_printf("%s port %u", con->vdev.id, i);

            p->sock = virtio_console_socket_new(env->loop, cfg.socket[i], label, error);
            if (!p->sock) {
                virtio_device_free(&con->vdev);
                return NULL;
            }
            p->chr = virtio_console_socket_backend(p->sock);
        }
    }
    dev = virtio_pci_device_new(&virtio_console_type, env, &con->vdev, error);
    if (!dev)
        return NULL;
    /* Only now: callbacks take the transport's lock. */
    for (unsigned i = 0; i < con->max_ports; i++) {
        VirtioConsolePort *p = &con->ports[i];

        char_backend_set_frontend(p->chr, &virtio_console_chr_ops, p);
        if (p->sock)
            virtio_console_socket_set_connect_handler(p->sock, virtio_console_socket_event, p);
    }
    return dev;
}
