/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-console (devices/virtio/console.c) through the test driver, the
 * way Linux's drivers/char/virtio_console.c drives it: the MULTIPORT
 * handshake message by message, the console port on the harness's
 * back-pressuring backend, named ports on the device's own UNIX sockets
 * with a real client (connect, disconnect, back-pressure both ways), the
 * single-port console without MULTIPORT, hostile control messages and
 * rings, reset, and state saved in the middle of traffic.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "virtio-driver.h"
#include "vireo/virtio-console.h"

#define CON "virtio-console"
#define F(bit) VIRTIO_BIT(bit)
#define MULTIPORT F(VIRTIO_CONSOLE_F_MULTIPORT)
#define CTRL_BUF 512                    /* Linux uses PAGE_SIZE; names fit either way */
#define RX_BUF 256
#define QAGENT "org.qemu.guest_agent.0"

/* --- a driver that does what Linux's does --- */

typedef struct Msg {
    uint32_t id;
    uint16_t event;
    uint16_t value;
    char name[VIRTIO_CONSOLE_MAX_NAME + 1];
} Msg;

static VirtioDriverQueue *q(VirtioDriver *d, unsigned index)
{
    VirtioDriverQueue *vq = virtio_driver_queue(d, index);

    assert_non_null(vq);
    return vq;
}

/* Features, every queue set up (init_vqs), DRIVER_OK (virtio_device_ready). */
static void con_init(VirtioDriver *d, uint64_t features)
{
    unsigned nq;

    assert_true(virtio_driver_init(d, features));
    nq = virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2);
    if (!(virtio_driver_features(d) & MULTIPORT))
        nq = 2;
    for (unsigned i = 0; i < nq; i++)
        virtio_driver_setup_queue(d, i, 0);
    virtio_driver_ok(d);
}

static VirtioDriver *con_start(HarnessEnv *e, const char *options, uint64_t features)
{
    VirtioDriver *d = virtio_driver_new(e, CON, options, NULL);

    con_init(d, features);
    return d;
}

/* Device-writable buffers into queue @index; the buffer's address is the token. */
static void fill(VirtioDriver *d, unsigned index, unsigned n, uint32_t size)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t b = virtio_driver_alloc(d, size, 16);

        assert_true(virtio_driver_add(q(d, index), NULL, 0, &(VirtioDriverBuf){ b, size }, 1,
                                      GUINT_TO_POINTER((guint)b)) >= 0);
    }
    virtio_driver_kick(q(d, index));
    virtio_driver_run(d);
}

/* A control message to the device, waited for as __send_control_msg() does. */
static void ctrl_send_raw(VirtioDriver *d, const void *msg, uint32_t len)
{
    uint64_t b = virtio_driver_alloc(d, MAX(len, 1), 8);

    memcpy(virtio_driver_mem(d, b, MAX(len, 1)), msg, len);
    assert_true(virtio_driver_add(q(d, VIRTIO_CONSOLE_Q_CTRL_TX), &(VirtioDriverBuf){ b, len },
                                  1, NULL, 0, GUINT_TO_POINTER((guint)b)) >= 0);
    virtio_driver_kick(q(d, VIRTIO_CONSOLE_Q_CTRL_TX));
    virtio_driver_run(d);
    assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q(d, VIRTIO_CONSOLE_Q_CTRL_TX),
                                                             NULL)), b);
}

static void ctrl_send(VirtioDriver *d, uint32_t id, uint16_t event, uint16_t value)
{
    uint8_t msg[VIRTIO_CONSOLE_CTRL_SIZE];

    vireo_le_store(msg, 4, id);
    vireo_le_store(msg + 4, 2, event);
    vireo_le_store(msg + 6, 2, value);
    ctrl_send_raw(d, msg, sizeof(msg));
}

/* The next control message from the device, its buffer kept by the driver. */
static gboolean ctrl_take(VirtioDriver *d, Msg *m, uint64_t *buf)
{
    VirtioDriverQueue *cq = q(d, VIRTIO_CONSOLE_Q_CTRL_RX);
    uint32_t len = 0;
    void *token = virtio_driver_get_used(cq, &len);
    uint64_t b = GPOINTER_TO_UINT(token);
    const uint8_t *p;

    if (!token)
        return FALSE;
    assert_true(len >= VIRTIO_CONSOLE_CTRL_SIZE && len <= CTRL_BUF);
    p = virtio_driver_mem(d, b, len);
    m->id = vireo_le_load(p, 4);
    m->event = vireo_le_load(p + 4, 2);
    m->value = vireo_le_load(p + 6, 2);
    memset(m->name, 0, sizeof(m->name));
    memcpy(m->name, p + VIRTIO_CONSOLE_CTRL_SIZE, len - VIRTIO_CONSOLE_CTRL_SIZE);
    /* Only PORT_NAME carries anything after the header. */
    if (m->event != VIRTIO_CONSOLE_PORT_NAME)
        assert_int_equal(len, VIRTIO_CONSOLE_CTRL_SIZE);
    memset(virtio_driver_mem(d, b, CTRL_BUF), 0, CTRL_BUF);
    *buf = b;
    return TRUE;
}

/* The same, the buffer going back to the device (as control_work_handler does). */
static gboolean ctrl_recv(VirtioDriver *d, Msg *m)
{
    VirtioDriverQueue *cq = q(d, VIRTIO_CONSOLE_Q_CTRL_RX);
    uint64_t b;

    if (!ctrl_take(d, m, &b))
        return FALSE;
    assert_true(virtio_driver_add(cq, NULL, 0, &(VirtioDriverBuf){ b, CTRL_BUF }, 1,
                                  GUINT_TO_POINTER((guint)b)) >= 0);
    virtio_driver_kick(cq);
    return TRUE;
}

static void ctrl_expect(VirtioDriver *d, uint32_t id, uint16_t event, uint16_t value,
                        const char *name)
{
    Msg m;

    virtio_driver_run(d);
    if (!ctrl_recv(d, &m))
        fail_msg("no control message; expected event %u for port %u", event, id);
    if (m.id != id || m.event != event || m.value != value)
        fail_msg("control message port %u event %u value %u; expected port %u event %u value %u",
                 m.id, m.event, m.value, id, event, value);
    if (name)
        assert_string_equal(m.name, name);
}

static void ctrl_expect_none(VirtioDriver *d)
{
    Msg m;

    virtio_driver_run(d);
    if (ctrl_recv(d, &m))
        fail_msg("unexpected control message: port %u event %u value %u", m.id, m.event,
                 m.value);
}

/* What the driver learnt in a handshake. */
typedef struct Seen {
    unsigned added;             /* bit per port */
    unsigned consoles;
    unsigned host_open;
    char names[VIRTIO_CONSOLE_MAX_PORTS][VIRTIO_CONSOLE_MAX_NAME + 1];
} Seen;

/*
 * Handles control messages as handle_control_message() does until there
 * are none: PORT_ADD -> receive buffers and PORT_READY 1; CONSOLE_PORT ->
 * hvc and PORT_OPEN 1; PORT_NAME and PORT_OPEN recorded.
 */
static void linux_control(VirtioDriver *d, Seen *s)
{
    Msg m;

    virtio_driver_run(d);
    while (ctrl_recv(d, &m)) {
        assert_true(m.id < VIRTIO_CONSOLE_MAX_PORTS);
        switch (m.event) {
        case VIRTIO_CONSOLE_PORT_ADD:
            assert_false(s->added & (1u << m.id));
            s->added |= 1u << m.id;
            fill(d, virtio_console_rx_queue(m.id), 8, RX_BUF);
            ctrl_send(d, m.id, VIRTIO_CONSOLE_PORT_READY, 1);
            break;
        case VIRTIO_CONSOLE_CONSOLE_PORT:
            assert_true(s->added & (1u << m.id));
            assert_int_equal(m.value, 1);
            s->consoles |= 1u << m.id;
            ctrl_send(d, m.id, VIRTIO_CONSOLE_PORT_OPEN, 1);
            break;
        case VIRTIO_CONSOLE_PORT_NAME:
            assert_true(s->added & (1u << m.id));
            g_strlcpy(s->names[m.id], m.name, sizeof(s->names[m.id]));
            break;
        case VIRTIO_CONSOLE_PORT_OPEN:
            assert_true(s->added & (1u << m.id));
            assert_true(m.value <= 1);
            if (m.value)
                s->host_open |= 1u << m.id;
            else
                s->host_open &= ~(1u << m.id);
            break;
        default:
            fail_msg("control event %u from the device", m.event);
        }
        virtio_driver_run(d);
    }
}

/* virtcons_probe(): control buffers, DEVICE_READY 1, then the messages that follow. */
static void linux_probe(VirtioDriver *d, Seen *s)
{
    memset(s, 0, sizeof(*s));
    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 16, CTRL_BUF);
    ctrl_send(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    linux_control(d, s);
}

/* Guest output on @port: one chain of @len bytes, in @parts buffers. */
static uint64_t port_write(VirtioDriver *d, unsigned port, const void *data, uint32_t len,
                           unsigned parts)
{
    uint64_t b = virtio_driver_alloc(d, MAX(len, 1), 16);
    VirtioDriverBuf bufs[8];
    uint32_t off = 0;

    assert_true(parts >= 1 && parts <= G_N_ELEMENTS(bufs));
    memcpy(virtio_driver_mem(d, b, MAX(len, 1)), data, len);
    for (unsigned i = 0; i < parts; i++) {
        uint32_t n = i + 1 == parts ? len - off : len / parts;

        bufs[i] = (VirtioDriverBuf){ b + off, n };
        off += n;
    }
    assert_true(virtio_driver_add(q(d, virtio_console_tx_queue(port)), bufs, parts, NULL, 0,
                                  GUINT_TO_POINTER((guint)b)) >= 0);
    virtio_driver_kick(q(d, virtio_console_tx_queue(port)));
    virtio_driver_run(d);
    return b;
}

/* Guest input of @port so far, appended to @into; buffers go back to the device if @again. */
static unsigned port_collect(VirtioDriver *d, unsigned port, GByteArray *into, gboolean again)
{
    VirtioDriverQueue *rq = q(d, virtio_console_rx_queue(port));
    unsigned n = 0;
    uint32_t len;
    void *token;

    virtio_driver_run(d);
    while ((token = virtio_driver_get_used(rq, &len))) {
        uint64_t b = GPOINTER_TO_UINT(token);

        g_byte_array_append(into, virtio_driver_mem(d, b, MAX(len, 1)), len);
        if (again)
            assert_true(virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ b, RX_BUF }, 1,
                                          token) >= 0);
        n++;
    }
    if (n && again)
        virtio_driver_kick(rq);
    return n;
}

static unsigned port_read(VirtioDriver *d, unsigned port, GByteArray *into)
{
    return port_collect(d, port, into, TRUE);
}

static VirtioConsolePortInfo port_info(VirtioDriver *d, unsigned port)
{
    VirtioConsolePortInfo info;

    assert_true(virtio_console_get_port(virtio_driver_device(d), port, &info));
    return info;
}

static void pattern(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

/* --- host sockets --- */

static char *tmp_dir(void)
{
    g_autoptr(GError) err = NULL;
    char *dir = g_dir_make_tmp("vireo-console-XXXXXX", &err);

    assert_non_null(dir);
    return dir;
}

static int client_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    g_strlcpy(addr.sun_path, path, sizeof(addr.sun_path));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        fail_msg("connect %s: %s", path, g_strerror(errno));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Everything the client can read now, appended to @into. */
static size_t client_read(int fd, GByteArray *into)
{
    uint8_t buf[65536];
    size_t total = 0;
    ssize_t n;

    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        g_byte_array_append(into, buf, n);
        total += n;
    }
    return total;
}

static void client_send(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), len);
}

/* --- tests --- */

static void test_identity_and_options(void **state)
{
    static const char *const bad[] = {
        "name1=a", "socket1=/x", "name0=a,socket0=/x", "name32=a,socket32=/x",
        "socket32=/x", "name1=,socket1=/x", "name1=a/b,socket1=/x", "name1=a b,socket1=/x",
        "name01=a,socket01=/x", "name1=a,socket1=/x,name2=a,socket2=/y",
        "name1=a,socket1=/x,name2=b,socket2=/x", "max-ports=0", "max-ports=33",
        "max-ports=1,name1=a,socket1=/x", "max-ports=x", "speed=9", "name=a", "socket1=",
        "socket0=/tmp/x",       /* port 0 has env.chr already */
    };
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = virtio_driver_new(e, CON, "max-ports=4", NULL);
    g_autofree char *long_name = g_strnfill(VIRTIO_CONSOLE_MAX_NAME + 1, 'x');
    g_autofree char *long_opt = g_strdup_printf("name1=%s,socket1=/x", long_name);
    const DeviceType *type = device_type_find(CON);
    uint8_t cfg[VIRTIO_CONSOLE_CFG_SIZE];

    assert_non_null(type);
    assert_true(type->pci && type->ops == &virtio_pci_device_ops);
    assert_int_equal(pci_config_read(virtio_driver_pci(d), PCI_VENDOR_ID, 4), 0x10431af4);
    /* MULTIPORT and the ring features; neither SIZE nor EMERG_WRITE. */
    assert_true(virtio_driver_device_features(d) == (VIRTQ_FEATURES | MULTIPORT));
    /* Port 0's pair, the control pair, and a pair for each of ports 1-3. */
    assert_int_equal(virtio_driver_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2), 10);
    assert_int_equal(virtio_driver_layout(d)->device.length, VIRTIO_CONSOLE_CFG_SIZE);
    virtio_driver_config_read(d, 0, cfg, sizeof(cfg));
    assert_int_equal(vireo_le_load(cfg + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4), 4);
    assert_int_equal(vireo_le_load(cfg, 4), 0);                 /* cols, rows */
    assert_int_equal(vireo_le_load(cfg + VIRTIO_CONSOLE_CFG_EMERG_WR, 4), 0);
    /* Not offered, so not writable. */
    virtio_driver_config_write(d, VIRTIO_CONSOLE_CFG_EMERG_WR, 4, 'x');
    assert_int_equal(harness_char_output(e->chr)->len, 0);
    harness_take_guest_warnings();

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *msg = harness_device_new_fail(e, CON, bad[i],
                                                       VIREO_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(msg, CON));
    }
    g_free(harness_device_new_fail(e, CON, long_opt, VIREO_ERROR_INVALID_ARGUMENT));
    /* A socket that cannot be made; a file that is not a socket is left alone. */
    e->env.chr = NULL;
    g_free(harness_device_new_fail(e, CON, "socket0=/nonexistent-dir/x.sock", VIREO_ERROR_IO));
    {
        g_autofree char *dir = tmp_dir();
        g_autofree char *file = g_build_filename(dir, "not-a-socket", NULL);
        g_autofree char *opt = g_strdup_printf("socket0=%s", file);

        assert_true(g_file_set_contents(file, "keep", 4, NULL));
        g_free(harness_device_new_fail(e, CON, opt, VIREO_ERROR_IO));
        assert_true(g_file_test(file, G_FILE_TEST_IS_REGULAR));
        unlink(file);
        rmdir(dir);
    }
    e->env.mem = NULL;
    g_free(harness_device_new_fail(e, CON, NULL, VIREO_ERROR_INVALID_ARGUMENT));
    e->env.mem = &e->mem.mem;
    /* Without a backend nor options: one port slot, which stays empty. */
    {
        Device *dev = harness_device_new(e, CON, NULL);
        VirtioConsolePortInfo info;

        assert_int_equal(virtio_console_max_ports(dev), 1);
        assert_true(virtio_console_get_port(dev, 0, &info));
        assert_false(info.present);
        assert_false(virtio_console_get_port(dev, 1, &info));
        device_free(dev);
    }
}

/* The handshake exactly as Linux does it, with the console and a named port. */
static void test_multiport_handshake(void **state)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "qga.sock", NULL);
    g_autofree char *opts = g_strdup_printf("name2=" QAGENT ",socket2=%s,max-ports=4", path);
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    VirtioConsolePortInfo info;
    Seen s;
    Msg m;

    assert_true(virtio_driver_features(d) & MULTIPORT);
    /* Nothing is said before DEVICE_READY, even with buffers there. */
    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 16, CTRL_BUF);
    ctrl_expect_none(d);
    ctrl_send(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    /* Both ports at once, in order; nothing for the empty slots 1 and 3. */
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
    ctrl_expect(d, 2, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
    ctrl_expect_none(d);
    info = port_info(d, 0);
    assert_true(info.present && info.added && !info.ready && !info.guest_open && info.host_open);
    /* add_port(): receive buffers, then PORT_READY. */
    fill(d, virtio_console_rx_queue(0), 8, RX_BUF);
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    /* The console port; its backend counts as connected. */
    ctrl_expect(d, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    ctrl_expect_none(d);
    /* init_port_console(): the guest has it open. */
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    assert_true(port_info(d, 0).guest_open);
    fill(d, virtio_console_rx_queue(2), 8, RX_BUF);
    ctrl_send(d, 2, VIRTIO_CONSOLE_PORT_READY, 1);
    /* Its name; no PORT_OPEN: nobody is connected to the socket. */
    ctrl_expect(d, 2, VIRTIO_CONSOLE_PORT_NAME, 0, QAGENT);
    ctrl_expect_none(d);
    info = port_info(d, 2);
    assert_true(info.added && info.ready && !info.guest_open && !info.host_open);
    info = port_info(d, 1);
    assert_false(info.present || info.added);

    /* PORT_ADD for a port Linux has already: PORT_READY again, same answers. */
    ctrl_send(d, 2, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_expect(d, 2, VIRTIO_CONSOLE_PORT_NAME, 0, QAGENT);
    ctrl_expect_none(d);
    /* A second DEVICE_READY adds nothing. */
    ctrl_send(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    ctrl_expect_none(d);

    /* The same through the helper after a reset; messages are answered one by one. */
    virtio_driver_free(g_steal_pointer(&d));
    d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    linux_probe(d, &s);
    assert_int_equal(s.added, 0x5);
    assert_int_equal(s.consoles, 0x1);
    assert_int_equal(s.host_open, 0x1);
    assert_string_equal(s.names[2], QAGENT);
    assert_string_equal(s.names[0], "");
    /* Each message went into its own buffer, and nothing is left over. */
    assert_false(ctrl_recv(d, &m));
    assert_int_equal(harness_take_guest_warnings(), 0);
    virtio_driver_free(g_steal_pointer(&d));
    assert_int_equal(rmdir(dir), 0);
}

/* Console output and input on the harness backend, and an echo through it. */
static void test_console_echo(void **state)
{
    static const uint64_t features[] = { VIRTIO_DRIVER_ALL_FEATURES,
                                         F(VIRTIO_F_RING_EVENT_IDX) };

    for (size_t fi = 0; fi < G_N_ELEMENTS(features); fi++) {
        g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
        g_autoptr(VirtioDriver) d = con_start(e, NULL, features[fi]);
        g_autoptr(GByteArray) in = g_byte_array_new();
        gboolean multiport = !!(virtio_driver_features(d) & MULTIPORT);
        uint8_t data[1000];
        Seen s;

        if (multiport) {
            /* Input before the guest has the port open waits in the backend. */
            harness_char_input(e->chr, "early", 5);
            assert_int_equal(harness_char_input_queued(e->chr), 5);
            linux_probe(d, &s);
            assert_int_equal(s.added, 1);
        } else {
            /* Without MULTIPORT port 0 is a console at once: only its two queues. */
            assert_int_equal(virtio_driver_features(d) & MULTIPORT, 0);
            fill(d, 0, 8, RX_BUF);
            harness_char_input(e->chr, "early", 5);
        }
        harness_char_pump(e->chr);
        port_read(d, 0, in);
        assert_int_equal(in->len, 5);
        assert_memory_equal(in->data, "early", 5);
        g_byte_array_set_size(in, 0);

        /* Guest output, in one buffer and split over several. */
        port_write(d, 0, "hello, host\n", 12, 1);
        assert_int_equal(harness_char_output(e->chr)->len, 12);
        assert_memory_equal(harness_char_output(e->chr)->data, "hello, host\n", 12);
        assert_non_null(virtio_driver_get_used(q(d, 1), NULL));
        harness_char_clear_output(e->chr);
        pattern(data, sizeof(data), 1);
        port_write(d, 0, data, sizeof(data), 7);
        assert_int_equal(harness_char_output(e->chr)->len, sizeof(data));
        assert_memory_equal(harness_char_output(e->chr)->data, data, sizeof(data));
        assert_non_null(virtio_driver_get_used(q(d, 1), NULL));
        harness_char_clear_output(e->chr);

        /* Echo: 1000 bytes from the host, over four receive buffers, straight back. */
        pattern(data, sizeof(data), 2);
        harness_char_input(e->chr, data, sizeof(data));
        assert_int_equal(harness_char_input_queued(e->chr), 0);
        assert_int_equal(port_read(d, 0, in), 4);
        assert_int_equal(in->len, sizeof(data));
        port_write(d, 0, in->data, in->len, 1);
        assert_int_equal(harness_char_output(e->chr)->len, sizeof(data));
        assert_memory_equal(harness_char_output(e->chr)->data, data, sizeof(data));
        assert_true(virtio_driver_queue_interrupts(q(d, 0)) >= 1);
        assert_int_equal(harness_take_guest_warnings(), 0);
    }
}

/* Back-pressure both ways on the console's backend. */
static void test_console_flow_control(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    g_autoptr(GByteArray) in = g_byte_array_new();
    uint8_t a[300], b[50], big[5000];
    uint64_t ta, tb;
    VirtioConsolePortInfo info;
    unsigned accepts;
    Seen s;

    linux_probe(d, &s);
    /* The backend takes 64 bytes between drains. */
    harness_char_set_limit(e->chr, 64);
    pattern(a, sizeof(a), 3);
    pattern(b, sizeof(b), 4);
    ta = port_write(d, 0, a, sizeof(a), 3);
    tb = port_write(d, 0, b, sizeof(b), 1);
    /* The first chain is held: 64 bytes out, the buffer not given back. */
    info = port_info(d, 0);
    assert_true(info.tx_blocked);
    assert_int_equal(info.tx_skip, 64);
    assert_null(virtio_driver_get_used(q(d, 1), NULL));
    assert_int_equal(harness_char_output(e->chr)->len, 64);
    /* Kicks change nothing while the backend is full. */
    virtio_driver_notify(q(d, 1));
    virtio_driver_run(d);
    assert_int_equal(harness_char_output(e->chr)->len, 64);
    for (unsigned i = 0; i < 10 && harness_char_output(e->chr)->len < sizeof(a) + sizeof(b); i++) {
        harness_char_drain(e->chr);
        virtio_driver_run(d);
    }
    assert_int_equal(harness_char_output(e->chr)->len, sizeof(a) + sizeof(b));
    assert_memory_equal(harness_char_output(e->chr)->data, a, sizeof(a));
    assert_memory_equal(harness_char_output(e->chr)->data + sizeof(a), b, sizeof(b));
    assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q(d, 1), NULL)), ta);
    assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q(d, 1), NULL)), tb);
    info = port_info(d, 0);
    assert_false(info.tx_blocked);
    assert_int_equal(info.tx_skip, 0);
    harness_char_set_limit(e->chr, G_MAXSIZE);
    harness_char_drain(e->chr);

    /* Input beyond the receive buffers (8 x 256) waits in the backend. */
    pattern(big, sizeof(big), 5);
    assert_int_equal(harness_char_input(e->chr, big, sizeof(big)), 8 * RX_BUF);
    assert_int_equal(harness_char_input_queued(e->chr), sizeof(big) - 8 * RX_BUF);
    accepts = harness_char_accept_input_calls(e->chr);
    /* The guest reads and gives the buffers back: the backend is asked for more. */
    while (in->len < sizeof(big)) {
        gboolean waiting = harness_char_input_queued(e->chr) > 0;

        assert_true(port_read(d, 0, in) > 0);
        /* A backend that paused for lack of buffers is told when they come back. */
        if (waiting)
            assert_true(harness_char_accept_input_calls(e->chr) > accepts);
        accepts = harness_char_accept_input_calls(e->chr);
        harness_char_pump(e->chr);
    }
    assert_int_equal(in->len, sizeof(big));
    assert_memory_equal(in->data, big, sizeof(big));

    /* The guest closes the console: input waits again until it opens it. */
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 0);
    assert_false(port_info(d, 0).guest_open);
    harness_char_input(e->chr, "x", 1);
    assert_int_equal(harness_char_input_queued(e->chr), 1);
    accepts = harness_char_accept_input_calls(e->chr);
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    assert_true(harness_char_accept_input_calls(e->chr) > accepts);
    harness_char_pump(e->chr);
    g_byte_array_set_size(in, 0);
    port_read(d, 0, in);
    assert_int_equal(in->len, 1);
}

/* A named port on the device's socket, with a real client. */
static void test_named_port(void **state)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "p1.sock", NULL);
    g_autofree char *opts = g_strdup_printf("name1=" QAGENT ",socket1=%s", path);
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = NULL;
    g_autoptr(GByteArray) got = g_byte_array_new();
    g_autoptr(GByteArray) in = g_byte_array_new();
    g_autofree uint8_t *big = g_malloc(1 << 20);
    uint64_t area;
    int c, c2;
    Seen s;

    /* No console port: --channel without --console virtio. */
    e->env.chr = NULL;
    d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    linux_probe(d, &s);
    assert_int_equal(s.added, 0x2);
    assert_int_equal(s.consoles, 0);
    assert_string_equal(s.names[1], QAGENT);
    assert_int_equal(s.host_open, 0);

    /* A client connects before the guest opens the port, and talks at once. */
    c = client_connect(path);
    virtio_driver_run(d);
    linux_control(d, &s);
    assert_int_equal(s.host_open, 0x2);
    assert_true(port_info(d, 1).host_open);
    client_send(c, "early bird\n", 11);
    virtio_driver_run(d);
    /* Not delivered while the port is closed in the guest: it waits in the socket. */
    assert_int_equal(port_read(d, 1, in), 0);
    ctrl_send(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    assert_true(port_info(d, 1).guest_open);
    virtio_driver_run(d);
    port_read(d, 1, in);
    assert_int_equal(in->len, 11);
    assert_memory_equal(in->data, "early bird\n", 11);

    /* Guest to host. */
    port_write(d, 1, "{\"return\": {}}\n", 15, 2);
    virtio_driver_run(d);
    client_read(c, got);
    assert_int_equal(got->len, 15);
    assert_memory_equal(got->data, "{\"return\": {}}\n", 15);
    assert_non_null(virtio_driver_get_used(q(d, 5), NULL));
    g_byte_array_set_size(got, 0);

    /*
     * 1 MiB from the guest in 64 chains of 16 KiB to a client that does
     * not read: the socket and the device's buffer fill, the device stops
     * with chains still in the ring, and goes on as the client reads.
     */
    pattern(big, 1 << 20, 6);
    area = virtio_driver_alloc(d, 1 << 20, 4096);
    memcpy(virtio_driver_mem(d, area, 1 << 20), big, 1 << 20);
    for (unsigned i = 0; i < 64; i++)
        assert_true(virtio_driver_add(q(d, 5), &(VirtioDriverBuf){ area + (i << 14), 1 << 14 },
                                      1, NULL, 0, GUINT_TO_POINTER(i + 1)) >= 0);
    virtio_driver_kick(q(d, 5));
    virtio_driver_run(d);
    assert_true(port_info(d, 1).tx_blocked);
    {
        unsigned used = 0, rounds = 0;

        while (virtio_driver_get_used(q(d, 5), NULL))
            used++;
        assert_true(used < 64);

        while (got->len < (1u << 20)) {
            assert_true(++rounds < 10000);
            client_read(c, got);
            virtio_driver_run(d);
            while (virtio_driver_get_used(q(d, 5), NULL))
                used++;
        }
        assert_int_equal(used, 64);
    }
    assert_memory_equal(got->data, big, 1 << 20);
    assert_false(port_info(d, 1).tx_blocked);

    /* 1 MiB from the host with only 8 receive buffers: it waits in the socket. */
    g_byte_array_set_size(in, 0);
    {
        size_t sent = 0;
        unsigned rounds = 0;

        while (in->len < (1u << 20)) {
            ssize_t n = sent < (1u << 20) ? send(c, big + sent, (1 << 20) - sent,
                                                 MSG_DONTWAIT | MSG_NOSIGNAL) : 0;

            assert_true(++rounds < 100000);
            if (n > 0)
                sent += n;
            port_read(d, 1, in);
        }
    }
    assert_memory_equal(in->data, big, 1 << 20);

    /* A second client waits until the first leaves. */
    c2 = client_connect(path);
    virtio_driver_run(d);
    client_send(c2, "second", 6);
    g_byte_array_set_size(in, 0);
    port_read(d, 1, in);
    assert_int_equal(in->len, 0);
    /* The first leaves: the guest hears the host side close, then open again. */
    close(c);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    port_read(d, 1, in);
    assert_int_equal(in->len, 6);
    assert_memory_equal(in->data, "second", 6);
    close(c2);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    assert_false(port_info(d, 1).host_open);

    /* Output without a client is dropped, and the buffers come back. */
    port_write(d, 1, "lost", 4, 1);
    assert_non_null(virtio_driver_get_used(q(d, 5), NULL));
    assert_false(port_info(d, 1).tx_blocked);

    /* A client blocked in the middle of a chain leaves: the chain completes (dropped). */
    c = client_connect(path);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    for (unsigned i = 0; i < 64; i++)
        assert_true(virtio_driver_add(q(d, 5), &(VirtioDriverBuf){ area + (i << 14), 1 << 14 },
                                      1, NULL, 0, GUINT_TO_POINTER(i + 1)) >= 0);
    virtio_driver_kick(q(d, 5));
    virtio_driver_run(d);
    assert_true(port_info(d, 1).tx_blocked);
    close(c);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    while (virtio_driver_get_used(q(d, 5), NULL))
        ;
    assert_int_equal(virtio_driver_queue_inflight(q(d, 5)), 0);
    assert_false(port_info(d, 1).tx_blocked);

    /* The guest closes the port: input from a new client waits again. */
    ctrl_send(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
    assert_false(port_info(d, 1).guest_open);
    c = client_connect(path);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    client_send(c, "later", 5);
    g_byte_array_set_size(in, 0);
    assert_int_equal(port_read(d, 1, in), 0);
    /* The peer hangs up while its input waits: the guest hears it. */
    close(c);
    virtio_driver_run(d);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    assert_int_equal(harness_take_guest_warnings(), 0);

    /* The socket file goes with the device. */
    virtio_driver_free(g_steal_pointer(&d));
    assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    assert_int_equal(rmdir(dir), 0);
}

/* Port 0 on a socket of its own (socket0): the console as a host socket. */
static void test_console_socket(void **state)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "hvc0.sock", NULL);
    g_autofree char *opts = g_strdup_printf("socket0=%s", path);
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = NULL;
    g_autoptr(GByteArray) got = g_byte_array_new();
    g_autoptr(GByteArray) in = g_byte_array_new();
    int c;
    Seen s;

    e->env.chr = NULL;
    d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    linux_probe(d, &s);
    assert_int_equal(s.consoles, 1);
    assert_int_equal(s.host_open, 0);
    c = client_connect(path);
    client_send(c, "ping\n", 5);
    virtio_driver_run(d);
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    port_read(d, 0, in);
    assert_int_equal(in->len, 5);
    port_write(d, 0, in->data, in->len, 1);
    client_read(c, got);
    assert_int_equal(got->len, 5);
    assert_memory_equal(got->data, "ping\n", 5);
    close(c);
    virtio_driver_run(d);
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    virtio_driver_free(g_steal_pointer(&d));
    assert_int_equal(rmdir(dir), 0);
}

/* Control messages no driver should send: ignored, and the device goes on. */
static void test_hostile_control(void **state)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "p1.sock", NULL);
    g_autofree char *opts = g_strdup_printf("name1=a.b,socket1=%s,max-ports=3", path);
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    static const struct { uint32_t id; uint16_t event, value; } early[] = {
        { 0, VIRTIO_CONSOLE_PORT_READY, 1 },            /* before DEVICE_READY */
        { 0, VIRTIO_CONSOLE_PORT_OPEN, 1 },
        { 0, VIRTIO_CONSOLE_DEVICE_READY, 0 },          /* "failed" */
        { 0, VIRTIO_CONSOLE_DEVICE_READY, 7 },
    };
    static const struct { uint32_t id; uint16_t event, value; } late[] = {
        { 3, VIRTIO_CONSOLE_PORT_READY, 1 },            /* beyond max_nr_ports */
        { 2, VIRTIO_CONSOLE_PORT_READY, 1 },            /* an empty slot */
        { VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_PORT_OPEN, 1 },
        { 0x80000000, VIRTIO_CONSOLE_PORT_READY, 1 },
        { 0, VIRTIO_CONSOLE_PORT_READY, 2 },            /* value not 0 or 1 */
        { 1, VIRTIO_CONSOLE_PORT_OPEN, 0xffff },
        { 0, VIRTIO_CONSOLE_PORT_ADD, 0 },              /* device-to-driver events */
        { 1, VIRTIO_CONSOLE_PORT_REMOVE, 0 },
        { 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1 },
        { 0, VIRTIO_CONSOLE_RESIZE, 0 },
        { 1, VIRTIO_CONSOLE_PORT_NAME, 0 },
        { 0, 8, 1 },                                    /* unknown events */
        { 1, 0xffff, 1 },
    };
    uint8_t junk[64];
    Seen s;

    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 16, CTRL_BUF);
    for (size_t i = 0; i < G_N_ELEMENTS(early); i++)
        ctrl_send(d, early[i].id, early[i].event, early[i].value);
    ctrl_expect_none(d);
    assert_false(port_info(d, 0).ready || port_info(d, 0).guest_open);
    /* Short messages: empty, 1, 4 and 7 bytes; a long one is read for its header only. */
    memset(junk, 0, sizeof(junk));
    for (uint32_t len = 0; len < VIRTIO_CONSOLE_CTRL_SIZE; len += 1 + len)
        ctrl_send_raw(d, junk, len);
    ctrl_expect_none(d);
    vireo_le_store(junk + 4, 2, VIRTIO_CONSOLE_DEVICE_READY);
    vireo_le_store(junk + 6, 2, 1);
    memset(junk + 8, 0xee, sizeof(junk) - 8);
    ctrl_send_raw(d, junk, sizeof(junk));
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
    ctrl_expect(d, 1, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
    ctrl_expect_none(d);
    for (size_t i = 0; i < G_N_ELEMENTS(late); i++)
        ctrl_send(d, late[i].id, late[i].event, late[i].value);
    ctrl_expect_none(d);
    assert_false(port_info(d, 0).ready || port_info(d, 1).ready || port_info(d, 1).guest_open);
    assert_true(harness_take_guest_warnings() > 0);

    /* The device still works: the console port... */
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_expect(d, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL);
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    ctrl_expect_none(d);
    /* ...and the named port. */
    memset(&s, 0, sizeof(s));
    s.added = 0x3;
    ctrl_send(d, 1, VIRTIO_CONSOLE_PORT_READY, 1);
    linux_control(d, &s);
    assert_string_equal(s.names[1], "a.b");
    harness_take_guest_warnings();
    virtio_driver_free(g_steal_pointer(&d));
    assert_int_equal(rmdir(dir), 0);
}

/* Tiny and read-only control receive buffers. */
static void test_hostile_control_buffers(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    VirtioDriverQueue *cq = q(d, VIRTIO_CONSOLE_Q_CTRL_RX);
    uint64_t small = virtio_driver_alloc(d, 8, 8), ro = virtio_driver_alloc(d, 64, 8);
    uint32_t len = 99;

    assert_true(virtio_driver_add(cq, NULL, 0, &(VirtioDriverBuf){ small, 4 }, 1,
                                  GUINT_TO_POINTER(1)) >= 0);
    assert_true(virtio_driver_add(cq, &(VirtioDriverBuf){ ro, 64 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(2)) >= 0);
    assert_true(virtio_driver_add(cq, NULL, 0, &(VirtioDriverBuf){ small, 0 }, 1,
                                  GUINT_TO_POINTER(3)) >= 0);
    virtio_driver_kick(cq);
    ctrl_send(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    virtio_driver_run(d);
    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(cq, &len)), i);
        assert_int_equal(len, 0);
    }
    assert_true(harness_take_guest_warnings() > 0);
    /* The message waited for a real buffer. */
    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 1, CTRL_BUF);
    ctrl_expect(d, 0, VIRTIO_CONSOLE_PORT_ADD, 0, NULL);
}

/*
 * The hostile ring cases on this device: a descriptor loop, a
 * buffer outside RAM, zero-length buffers, a queue index beyond the last,
 * a notification for a queue nobody set up, and the control queues of a
 * driver without MULTIPORT.
 */
static void test_hostile_rings(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    PciDevice *pd = virtio_driver_pci(d);
    uint64_t zero = virtio_driver_alloc(d, 16, 16);
    uint8_t *desc;
    uint32_t len = 99;
    Seen s;

    linux_probe(d, &s);
    /* Zero-length buffers: used with 0 bytes, on the way out and in. */
    assert_true(virtio_driver_add(q(d, 1), &(VirtioDriverBuf){ zero, 0 }, 1, NULL, 0,
                                  GUINT_TO_POINTER(1)) >= 0);
    virtio_driver_kick(q(d, 1));
    virtio_driver_run(d);
    assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(q(d, 1), &len)), 1);
    assert_int_equal(len, 0);
    {
        /* The driver takes the 8 receive buffers of the handshake out of the ring... */
        g_autoptr(GByteArray) in = g_byte_array_new();
        g_autofree char *z = g_strnfill(8 * RX_BUF, 'z');
        VirtioDriverQueue *rq = q(d, 0);
        uint64_t good = virtio_driver_alloc(d, 16, 16);

        harness_char_input(e->chr, z, 8 * RX_BUF);
        port_collect(d, 0, in, FALSE);
        assert_int_equal(in->len, 8 * RX_BUF);
        /* ...and gives a zero-length, a device-readable, then a good buffer. */
        assert_true(virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ zero, 0 }, 1,
                                      GUINT_TO_POINTER(10)) >= 0);
        assert_true(virtio_driver_add(rq, &(VirtioDriverBuf){ zero, 16 }, 1, NULL, 0,
                                      GUINT_TO_POINTER(11)) >= 0);
        assert_true(virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ good, 16 }, 1,
                                      GUINT_TO_POINTER(12)) >= 0);
        virtio_driver_kick(rq);
        virtio_driver_run(d);
        harness_char_input(e->chr, "abc", 3);
        virtio_driver_run(d);
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(rq, &len)), 10);
        assert_int_equal(len, 0);
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(rq, &len)), 11);
        assert_int_equal(len, 0);
        assert_int_equal(GPOINTER_TO_UINT(virtio_driver_get_used(rq, &len)), 12);
        assert_int_equal(len, 3);
        assert_memory_equal(virtio_driver_mem(d, good, 3), "abc", 3);
    }
    harness_take_guest_warnings();

    /* Notifications beyond the last queue, and for queues nobody set up (port 1 of 1). */
    harness_write(&pd->dev, PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET + 4 * 4, 2, 4);
    harness_write(&pd->dev, PCI_BAR_OFFSET(2) + VIRTIO_PCI_NOTIFY_OFFSET + 4 * 1000, 2, 1000);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0xffff);
    virtio_driver_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    virtio_driver_run(d);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);

    /* A buffer outside RAM in the receive ring: DEVICE_NEEDS_RESET when input comes. */
    {
        VirtioDriverQueue *rq = q(d, 0);
        uint64_t b = virtio_driver_alloc(d, 16, 16);
        int head = virtio_driver_add(rq, NULL, 0, &(VirtioDriverBuf){ b, 16 }, 1,
                                     GUINT_TO_POINTER(20));

        assert_true(head >= 0);
        desc = virtio_driver_mem(d, virtio_driver_queue_desc(rq) + 16ULL * head, 16);
        vireo_le_store(desc, 8, 0x7fff0000000ULL);
        virtio_driver_kick(rq);
        harness_char_input(e->chr, "x", 1);
        virtio_driver_run(d);
        assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
        assert_true(virtio_driver_config_interrupts(d) >= 1);
    }
    harness_take_guest_warnings();

    /* A descriptor loop in the transmit ring. */
    virtio_driver_free(g_steal_pointer(&d));
    harness_char_discard_input(e->chr);
    d = con_start(e, NULL, VIRTIO_DRIVER_ALL_FEATURES);
    linux_probe(d, &s);
    {
        VirtioDriverQueue *tq = q(d, 1);
        uint64_t b = virtio_driver_alloc(d, 32, 16);
        int head;

        virtio_driver_queue_set_indirect(tq, FALSE);
        head = virtio_driver_add(tq, (VirtioDriverBuf[]){ { b, 16 }, { b + 16, 16 } }, 2, NULL,
                                 0, GUINT_TO_POINTER(1));
        assert_true(head >= 0);
        /* The second descriptor points back at the first. */
        desc = virtio_driver_mem(d, virtio_driver_queue_desc(tq), 16ULL * 64);
        {
            uint16_t second = vireo_le_load(desc + 16 * head + 14, 2);

            vireo_le_store(desc + 16 * second + 12, 2, VIRTQ_DESC_F_NEXT);
            vireo_le_store(desc + 16 * second + 14, 2, head);
        }
        virtio_driver_kick(tq);
        virtio_driver_run(d);
        assert_true(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
        assert_null(virtio_driver_get_used(tq, NULL));
        assert_int_equal(harness_char_output(e->chr)->len, 0);
    }
    harness_take_guest_warnings();

    /* Without MULTIPORT the control queues (set up anyway) are not listened to. */
    virtio_driver_free(g_steal_pointer(&d));
    d = virtio_driver_new(e, CON, NULL, NULL);
    assert_true(virtio_driver_init(d, VIRTIO_BIT(VIRTIO_F_RING_EVENT_IDX)));
    for (unsigned i = 0; i < 4; i++)
        virtio_driver_setup_queue(d, i, 0);
    virtio_driver_ok(d);
    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 2, CTRL_BUF);
    {
        uint8_t msg[8] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0 };
        uint64_t b = virtio_driver_alloc(d, 8, 8);

        memcpy(virtio_driver_mem(d, b, 8), msg, 8);
        assert_true(virtio_driver_add(q(d, 3), &(VirtioDriverBuf){ b, 8 }, 1, NULL, 0,
                                      GUINT_TO_POINTER(1)) >= 0);
        virtio_driver_kick(q(d, 3));
        virtio_driver_run(d);
        assert_null(virtio_driver_get_used(q(d, 3), NULL));
        assert_null(virtio_driver_get_used(q(d, 2), NULL));
    }
    assert_true(harness_take_guest_warnings() > 0);
    /* Port 0 works as the single-port console all the same. */
    port_write(d, 0, "ok", 2, 1);
    assert_int_equal(harness_char_output(e->chr)->len, 2);

    /* Port 1's queues exist (max-ports=2) but nobody set them up: notifications do nothing. */
    virtio_driver_free(g_steal_pointer(&d));
    d = virtio_driver_new(e, CON, "max-ports=2", NULL);
    assert_true(virtio_driver_init(d, VIRTIO_DRIVER_ALL_FEATURES));
    for (unsigned i = 0; i < 4; i++)
        virtio_driver_setup_queue(d, i, 0);
    virtio_driver_ok(d);
    pd = virtio_driver_pci(d);
    for (unsigned i = 4; i < 6; i++) {
        uint64_t at = VIRTIO_PCI_NOTIFY_OFFSET + 4 * i;

        assert_true(harness_ioevents_ring(&e->ioevents, TRUE, pd->bars[2].addr + at, i));
        harness_write(&pd->dev, PCI_BAR_OFFSET(2) + at, 2, i);
    }
    virtio_driver_run(d);
    assert_false(virtio_driver_get_status(d) & VIRTIO_STATUS_NEEDS_RESET);
    linux_probe(d, &s);
    assert_int_equal(s.added, 1);
}

/* A reset forgets the guest's side of every port, not the host's. */
static void test_reset(void **state)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "p1.sock", NULL);
    g_autofree char *opts = g_strdup_printf("name1=n1,socket1=%s", path);
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    VirtioConsolePortInfo info;
    uint8_t a[200];
    int c;
    Seen s;

    linux_probe(d, &s);
    c = client_connect(path);
    virtio_driver_run(d);
    linux_control(d, &s);
    assert_int_equal(s.host_open, 0x3);
    ctrl_send(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    harness_char_set_limit(e->chr, 10);
    pattern(a, sizeof(a), 7);
    port_write(d, 0, a, sizeof(a), 1);
    assert_true(port_info(d, 0).tx_blocked);
    virtio_driver_reset(d);
    for (unsigned i = 0; i < 2; i++) {
        info = port_info(d, i);
        assert_false(info.added || info.ready || info.guest_open || info.tx_blocked ||
                     info.tx_skip);
        assert_true(info.host_open);
    }
    /* The backend's late writable() finds nothing to do. */
    harness_char_drain(e->chr);
    harness_char_set_limit(e->chr, G_MAXSIZE);
    harness_char_clear_output(e->chr);
    /* The driver starts over on the same device; the client is still there. */
    con_init(d, VIRTIO_DRIVER_ALL_FEATURES);
    linux_probe(d, &s);
    assert_int_equal(s.added, 0x3);
    assert_int_equal(s.host_open, 0x3);
    port_write(d, 0, "again", 5, 1);
    assert_int_equal(harness_char_output(e->chr)->len, 5);
    close(c);
    virtio_driver_free(g_steal_pointer(&d));
    rmdir(dir);
}

/*
 * Migration in the middle of traffic: output held part-way through a
 * chain, a control message owed with no buffer to put it in, input
 * waiting in the backend. The destination sends the rest of the chain and
 * not a byte twice, delivers what is owed, and tells the guest the host
 * side of each port as it is there.
 */
static void test_state(void **state)
{
    g_autofree char *dir = tmp_dir();
    g_autofree char *src_path = g_build_filename(dir, "src.sock", NULL);
    g_autofree char *dst_path = g_build_filename(dir, "dst.sock", NULL);
    g_autofree char *extra_path = g_build_filename(dir, "extra.sock", NULL);
    g_autofree char *src_opts = g_strdup_printf("name1=" QAGENT ",socket1=%s,max-ports=3",
                                                src_path);
    g_autofree char *dst_opts = g_strdup_printf("name1=" QAGENT ",socket1=%s,max-ports=3",
                                                dst_path);
    g_autofree char *other_name = g_strdup_printf("name1=other,socket1=%s,max-ports=3",
                                                  dst_path);
    g_autofree char *no_port = g_strdup_printf("name2=x,socket2=%s,max-ports=3", dst_path);
    g_autofree char *more_ports = g_strdup_printf("name1=" QAGENT ",socket1=%s,max-ports=4",
                                                  dst_path);
    g_autofree char *extra_port = g_strdup_printf("name1=" QAGENT ",socket1=%s,name2=extra,"
                                                  "socket2=%s", dst_path, extra_path);
    g_autofree char *in_data = g_strnfill(9 * RX_BUF, 'i');
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(HarnessEnv) e2 = harness_env_new("con", 0);
    g_autoptr(HarnessEnv) e4 = harness_env_new("con", 0);
    g_autoptr(VirtioDriver) d = con_start(e, src_opts, VIRTIO_DRIVER_ALL_FEATURES);
    g_autoptr(VirtioDriver) n = NULL;
    g_autoptr(VirtioDriver) m4 = NULL;
    g_autoptr(GByteArray) in = g_byte_array_new();
    static const HarnessPoke pokes[] = {
        { "console-max-ports", 0, 2 },
        { "console-driver-ready", 0, 2 },
        { "console-driver-ready", 0, 0 },               /* ports added without it */
        { "console-p0-state", 0, 0x10 },                /* an unknown bit */
        { "console-p0-state", 0, 0x02 },                /* ready without added */
        { "console-p0-pending", 0, 0x01 },              /* added twice */
        { "console-p0-pending", 0, 0x10 },
        { "console-p1-pending", 0, 0x0a },              /* CONSOLE_PORT for port 1 */
        { "console-p2-pending", 0, 0x01 },              /* an empty slot added */
        { "console-p2-state", 0, 0x01 },
        { "console-p1-present", 0, 2 },
        { "console-p1-present", 0, 0 },
        { "console-p1-name", 4, 'X' },                  /* another name than this port's */
        { "console-p0-name", 0, 1 },                    /* a console with a name */
        { "console-p1-state", 0, 0x04 },                /* open, not added */
        { "q1-size", 0, 0x80 },
    };
    uint8_t a[300];
    uint64_t b;
    Msg m;
    int c;

    /* The handshake with five control buffers, which it uses up. */
    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 5, CTRL_BUF);
    ctrl_send(d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
    fill(d, virtio_console_rx_queue(0), 8, RX_BUF);
    fill(d, virtio_console_rx_queue(1), 8, RX_BUF);
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_send(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
    ctrl_send(d, 1, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_send(d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    virtio_driver_run(d);
    for (unsigned i = 0; i < 5; i++)
        assert_true(ctrl_take(d, &m, &b));
    assert_int_equal(m.event, VIRTIO_CONSOLE_PORT_NAME);
    /* A client connects: PORT_OPEN is owed, with no buffer to put it in. */
    c = client_connect(src_path);
    virtio_driver_run(d);
    assert_false(ctrl_take(d, &m, &b));
    assert_true(port_info(d, 1).host_open);
    /* Output: 40 of 300 bytes sent when the backend filled. */
    harness_char_set_limit(e->chr, 40);
    pattern(a, sizeof(a), 8);
    port_write(d, 0, a, sizeof(a), 3);
    assert_int_equal(port_info(d, 0).tx_skip, 40);
    /* Input beyond the receive buffers waits in the backend. */
    harness_char_input(e->chr, in_data, 9 * RX_BUF);
    assert_int_equal(harness_char_input_queued(e->chr), RX_BUF);

    harness_check_corrupt_state(virtio_driver_device(d), pokes, G_N_ELEMENTS(pokes), FALSE);
    /* Devices configured otherwise refuse the state. */
    {
        g_autoptr(HarnessEnv) e3 = harness_env_new("con", 0);
        g_autoptr(GBytes) st = harness_save(virtio_driver_device(d));
        const char *bad[] = { other_name, no_port, more_ports };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            g_autoptr(GError) err = NULL;
            Device *dev = harness_device_new(e3, CON, bad[i]);

            assert_false(harness_load(dev, st, &err));
            assert_int_equal(err->code, VIREO_ERROR_INVALID_STATE);
            device_free(dev);
        }
        /* Without a console backend, port 0 is missing. */
        e3->env.chr = NULL;
        {
            g_autoptr(GError) err = NULL;
            Device *dev = harness_device_new(e3, CON, dst_opts);

            assert_false(harness_load(dev, st, &err));
            assert_non_null(strstr(err->message, "port 0"));
            device_free(dev);
        }
    }

    n = virtio_driver_migrate(d, e2, dst_opts);
    /* The rest of the chain, not the 40 bytes the source sent. */
    virtio_driver_run(n);
    assert_int_equal(harness_char_output(e2->chr)->len, sizeof(a) - 40);
    assert_memory_equal(harness_char_output(e2->chr)->data, a + 40, sizeof(a) - 40);
    assert_non_null(virtio_driver_get_used(q(n, 1), NULL));
    assert_false(port_info(n, 0).tx_blocked);
    /*
     * What was owed is delivered, with the host side as it is here (nobody
     * on port 1's socket); port 0's backend is there as it was.
     */
    fill(n, VIRTIO_CONSOLE_Q_CTRL_RX, 4, CTRL_BUF);
    ctrl_expect(n, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    ctrl_expect_none(n);
    /* Input the source delivered is in the guest's buffers; the console goes on. */
    port_read(n, 0, in);
    assert_int_equal(in->len, 8 * RX_BUF);
    harness_char_input(e2->chr, "more", 4);
    port_read(n, 0, in);
    assert_int_equal(in->len, 8 * RX_BUF + 4);
    /* The named port works on the destination's socket. */
    close(c);
    c = client_connect(dst_path);
    virtio_driver_run(n);
    ctrl_expect(n, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    client_send(c, "hi", 2);
    g_byte_array_set_size(in, 0);
    port_read(n, 1, in);
    assert_int_equal(in->len, 2);
    close(c);
    virtio_driver_free(g_steal_pointer(&n));

    /* A destination with one port more offers it to the guest. */
    m4 = virtio_driver_migrate(d, e4, extra_port);
    {
        Seen s2 = { .added = 0x3 };

        fill(m4, VIRTIO_CONSOLE_Q_CTRL_RX, 8, CTRL_BUF);
        linux_control(m4, &s2);
        assert_int_equal(s2.added, 0x7);
        assert_string_equal(s2.names[2], "extra");
    }
    virtio_driver_free(g_steal_pointer(&m4));
    harness_take_guest_warnings();
    virtio_driver_free(g_steal_pointer(&d));
    assert_int_equal(rmdir(dir), 0);
}

/* Random control messages and kicks between real handshakes: no crash, sane answers. */
static void test_random_control(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("con", 0);
    g_autoptr(GRand) r = g_rand_new_with_seed(0xc0501e);
    g_autofree char *dir = tmp_dir();
    g_autofree char *path = g_build_filename(dir, "p.sock", NULL);
    g_autofree char *opts = g_strdup_printf("name3=n3,socket3=%s", path);
    g_autoptr(VirtioDriver) d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
    unsigned handshakes = 0;

    fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 32, CTRL_BUF);
    for (unsigned it = 0; it < 3000; it++) {
        unsigned op = g_rand_int_range(r, 0, 100);
        Msg m;

        if (op < 60) {
            uint8_t msg[12];

            for (unsigned i = 0; i < sizeof(msg); i++)
                msg[i] = g_rand_boolean(r) ? (guint32)g_rand_int_range(r, 0, 9) : g_rand_int(r);
            if (g_rand_boolean(r))
                memset(msg + 1, 0, 3);
            ctrl_send_raw(d, msg, g_rand_int_range(r, 0, sizeof(msg) + 1));
        } else if (op < 80) {
            /* Whatever the device says is something a device may say. */
            virtio_driver_run(d);
            while (ctrl_recv(d, &m)) {
                assert_true(m.id < 4 && m.event >= VIRTIO_CONSOLE_PORT_ADD &&
                            m.event <= VIRTIO_CONSOLE_PORT_NAME &&
                            m.event != VIRTIO_CONSOLE_PORT_READY &&
                            m.event != VIRTIO_CONSOLE_PORT_REMOVE &&
                            m.event != VIRTIO_CONSOLE_RESIZE);
                assert_true(m.id == 0 || m.id == 3);
                if (m.event == VIRTIO_CONSOLE_PORT_NAME)
                    assert_string_equal(m.name, "n3");
                if (m.event == VIRTIO_CONSOLE_CONSOLE_PORT)
                    assert_int_equal(m.id, 0);
            }
        } else if (op < 90) {
            unsigned port = g_rand_boolean(r) ? 0 : 3;

            harness_char_input(e->chr, "data", 4);
            if (port_info(d, port).added)
                port_write(d, port, "out", 3, 1);
            harness_char_clear_output(e->chr);
        } else if (op < 95) {
            /* A full, well-behaved handshake after a reset must still work. */
            Seen s;

            virtio_driver_free(g_steal_pointer(&d));
            harness_char_discard_input(e->chr);
            d = con_start(e, opts, VIRTIO_DRIVER_ALL_FEATURES);
            linux_probe(d, &s);
            assert_int_equal(s.added, 0x9);
            assert_string_equal(s.names[3], "n3");
            handshakes++;
            fill(d, VIRTIO_CONSOLE_Q_CTRL_RX, 16, CTRL_BUF);
        } else {
            g_autoptr(GBytes) st = NULL;
            g_autoptr(GError) err = NULL;

            virtio_driver_run(d);
            st = harness_save(virtio_driver_device(d));
            if (!harness_load(virtio_driver_device(d), st, &err))
                fail_msg("iteration %u: reloading own state: %s", it, err->message);
            virtio_driver_run(d);
        }
    }
    assert_true(handshakes > 50);
    harness_take_guest_warnings();
    virtio_driver_free(g_steal_pointer(&d));
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_and_options),
        cmocka_unit_test(test_multiport_handshake),
        cmocka_unit_test(test_console_echo),
        cmocka_unit_test(test_console_flow_control),
        cmocka_unit_test(test_named_port),
        cmocka_unit_test(test_console_socket),
        cmocka_unit_test(test_hostile_control),
        cmocka_unit_test(test_hostile_control_buffers),
        cmocka_unit_test(test_hostile_rings),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_random_control),
    };

    harness_init();
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
