/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * i8042 keyboard controller ("i8042") with a PS/2 keyboard that has no
 * keys, mainly so that the guest finds a controller and can reset the
 * machine through it. A 5-byte window based at port 0x60: offset 0 is the
 * data port (0x60), offset 4 the status/command port (0x64); offsets 1-3
 * are other devices' ports and read as 0xff.
 *
 * The controller answers at once, so the input buffer is never full. Its
 * replies and the keyboard's wait in two queues and move into the
 * one-byte output buffer as the guest reads it; the controller's go
 * first, the keyboard's only while the keyboard interface is enabled.
 * There is no mouse: aux loopback (0xd3) echoes as the controller does,
 * bytes sent to the mouse (0xd4) come back as 0xfe with the time-out bit,
 * and nothing raises IRQ 12.
 *
 * IRQ 1 (env->irq) is a level: output buffer full with keyboard data and
 * the command byte's keyboard interrupt enabled. Reading the data port
 * drops it before the next byte moves up, so each byte is a new edge.
 *
 * Locking: dev->lock covers everything below the immutable fields.
 */
#include <stddef.h>
#include <string.h>

#include "vireo/device.h"
#include "vireo/util.h"

#define I8042_WINDOW_LEN        5
#define I8042_DATA              0       /* port 0x60 */
#define I8042_COMMAND           4       /* port 0x64 */
#define I8042_QUEUE_LEN         16
#define I8042_RAM_LEN           32
#define I8042_STATE_VERSION     1

#define I8042_STR_OBF           0x01
#define I8042_STR_IBF           0x02
#define I8042_STR_SYS           0x04
#define I8042_STR_CMD           0x08    /* last write went to the command port */
#define I8042_STR_UNLOCKED      0x10    /* keyboard not inhibited by the keylock */
#define I8042_STR_AUXDATA       0x20
#define I8042_STR_TIMEOUT       0x40
#define I8042_STR_STORED        (I8042_STR_SYS | I8042_STR_CMD)

#define I8042_CTR_KBDINT        0x01
#define I8042_CTR_AUXINT        0x02
#define I8042_CTR_SYS           0x04
#define I8042_CTR_KBDDIS        0x10
#define I8042_CTR_AUXDIS        0x20
#define I8042_CTR_XLATE         0x40
/* After power-on without firmware, as QEMU's controller starts. */
#define I8042_CTR_DEFAULT       (I8042_CTR_KBDINT | I8042_CTR_AUXINT)

/* Output port: bit 0 low holds the CPU in reset, bit 1 is the A20 gate. */
#define I8042_OUT_RESET         0x01
#define I8042_OUT_A20           0x02
#define I8042_OUT_KBD_OBF       0x10
#define I8042_OUT_AUX_OBF       0x20
#define I8042_OUT_DEFAULT       0xcf

/* Where a byte in the output buffer came from. */
#define I8042_BYTE_AUX          0x01
#define I8042_BYTE_TIMEOUT      0x02
#define I8042_BYTE_FLAGS        (I8042_BYTE_AUX | I8042_BYTE_TIMEOUT)

#define I8042_CMD_READ_RAM      0x20    /* 0x20-0x3f; 0x20 is the command byte */
#define I8042_CMD_WRITE_RAM     0x60    /* 0x60-0x7f; 0x60 is the command byte */
#define I8042_CMD_PASSWORD_TEST 0xa4
#define I8042_CMD_AUX_DISABLE   0xa7
#define I8042_CMD_AUX_ENABLE    0xa8
#define I8042_CMD_AUX_TEST      0xa9
#define I8042_CMD_SELF_TEST     0xaa
#define I8042_CMD_KBD_TEST      0xab
#define I8042_CMD_KBD_DISABLE   0xad
#define I8042_CMD_KBD_ENABLE    0xae
#define I8042_CMD_READ_INPUT    0xc0
#define I8042_CMD_READ_OUTPUT   0xd0
#define I8042_CMD_WRITE_OUTPUT  0xd1
#define I8042_CMD_WRITE_KBD_OUT 0xd2
#define I8042_CMD_WRITE_AUX_OUT 0xd3
#define I8042_CMD_WRITE_AUX     0xd4
#define I8042_CMD_DISABLE_A20   0xdd
#define I8042_CMD_ENABLE_A20    0xdf
#define I8042_CMD_READ_TEST     0xe0
#define I8042_CMD_PULSE         0xf0    /* 0xf0-0xff: pulse output port bits 0-3 low */

#define I8042_RET_SELF_TEST     0x55
#define I8042_RET_PORT_OK       0x00
#define I8042_RET_NO_PASSWORD   0xf1
#define I8042_INPUT_PORT        0x80    /* keyboard not inhibited */

#define KBD_CMD_SET_LEDS        0xed
#define KBD_CMD_ECHO            0xee
#define KBD_CMD_SCANCODE        0xf0
#define KBD_CMD_GET_ID          0xf2
#define KBD_CMD_SET_RATE        0xf3
#define KBD_CMD_ENABLE          0xf4
#define KBD_CMD_DISABLE         0xf5
#define KBD_CMD_DEFAULTS        0xf6
#define KBD_CMD_RESEND          0xfe
#define KBD_CMD_RESET           0xff

#define KBD_REPLY_ACK           0xfa
#define KBD_REPLY_POR           0xaa    /* self-test passed */
#define KBD_REPLY_RESEND        0xfe
#define KBD_REPLY_ID            0xab
#define KBD_ID_MF2              0x83
/* What the controller's translation to set 1 makes of 0x83, 1, 2 and 3. */
#define KBD_ID_MF2_XLATE        0x41
#define KBD_DEFAULT_RATE        0x2b    /* 10.9 characters/s after 500 ms */

typedef struct I8042Queue {
    uint8_t data[I8042_QUEUE_LEN];
    uint8_t flags[I8042_QUEUE_LEN];
    uint8_t head;
    uint8_t count;
} I8042Queue;

/* Guest-visible state: what save/load and reset deal with. */
typedef struct I8042Regs {
    uint8_t ram[I8042_RAM_LEN];         /* ram[0] is the command byte */
    uint8_t status;                     /* I8042_STR_STORED bits */
    uint8_t outport;
    uint8_t pending_cmd;                /* command waiting for its data byte, or 0 */
    gboolean obf;                       /* output buffer full */
    uint8_t out_data;
    uint8_t out_flags;
    I8042Queue ctrl_q;                  /* controller replies */
    I8042Queue kbd_q;                   /* keyboard replies */
    /* The keyboard */
    uint8_t kbd_pending;                /* command waiting for its argument, or 0 */
    gboolean kbd_scanning;
    uint8_t kbd_leds;
    uint8_t kbd_rate;
    uint8_t kbd_scanset;
    uint8_t kbd_last;                   /* for KBD_CMD_RESEND */
} I8042Regs;

typedef struct I8042 {
    Device dev;
    IrqLine *irq;                       /* immutable after create */
    MachineControl *machine;            /* immutable after create */
    /* Everything below: dev->lock. */
    I8042Regs r;
    gboolean irq_level;
} I8042;

G_STATIC_ASSERT(offsetof(I8042, dev) == 0);

static const DeviceType i8042_type;

static I8042 *i8042_from_dev(Device *dev)
{
    g_assert(dev->type == &i8042_type);
    return (I8042 *)dev;
}

/* --- queues and the output buffer --- */

static void i8042_queue_push(I8042 *s, I8042Queue *q, uint8_t b, uint8_t flags)
{
    unsigned i;

    if (q->count >= I8042_QUEUE_LEN) {
        /* Only a guest that never reads the data port gets here. */
        vireo_guest_warn("%s: output queue full; reply 0x%02x dropped", s->dev.id, b);
        return;
    }
    i = (q->head + q->count) % I8042_QUEUE_LEN;
    q->data[i] = b;
    q->flags[i] = flags;
    q->count++;
}

static gboolean i8042_queue_pop(I8042Queue *q, uint8_t *b, uint8_t *flags)
{
    if (!q->count)
        return FALSE;
    *b = q->data[q->head];
    *flags = q->flags[q->head];
    q->head = (q->head + 1) % I8042_QUEUE_LEN;
    q->count--;
    return TRUE;
}

static void i8042_queue_clear(I8042Queue *q)
{
    q->head = 0;
    q->count = 0;
}

static void i8042_drive_irq(I8042 *s, gboolean force)
{
    const I8042Regs *r = &s->r;
    gboolean level = r->obf && !(r->out_flags & I8042_BYTE_AUX) &&
                     (r->ram[0] & I8042_CTR_KBDINT);

    if (force || level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(s->irq, level);
    }
}

/* Moves the next byte into an empty output buffer. */
static void i8042_refill(I8042 *s)
{
    I8042Regs *r = &s->r;

    if (r->obf)
        return;
    if (i8042_queue_pop(&r->ctrl_q, &r->out_data, &r->out_flags) ||
        (!(r->ram[0] & I8042_CTR_KBDDIS) &&
         i8042_queue_pop(&r->kbd_q, &r->out_data, &r->out_flags)))
        r->obf = TRUE;
}

static void i8042_reply(I8042 *s, uint8_t b)
{
    i8042_queue_push(s, &s->r.ctrl_q, b, 0);
}

/* --- the keyboard --- */

static void i8042_kbd_send(I8042 *s, uint8_t b)
{
    s->r.kbd_last = b;
    i8042_queue_push(s, &s->r.kbd_q, b, 0);
}

static void i8042_kbd_defaults(I8042Regs *r)
{
    r->kbd_leds = 0;
    r->kbd_rate = KBD_DEFAULT_RATE;
    r->kbd_scanset = 2;
}

static gboolean i8042_translating(const I8042 *s)
{
    return s->r.ram[0] & I8042_CTR_XLATE;
}

/* An argument byte for the command that asked for one. */
static void i8042_kbd_argument(I8042 *s, uint8_t cmd, uint8_t val)
{
    static const uint8_t xlate_set[4] = { 0, 0x43, KBD_ID_MF2_XLATE, 0x3f };
    I8042Regs *r = &s->r;

    switch (cmd) {
    case KBD_CMD_SET_LEDS:
        r->kbd_leds = val & 0x07;
        i8042_kbd_send(s, KBD_REPLY_ACK);
        break;
    case KBD_CMD_SET_RATE:
        r->kbd_rate = val & 0x7f;
        i8042_kbd_send(s, KBD_REPLY_ACK);
        break;
    case KBD_CMD_SCANCODE:
        if (val == 0) {
            i8042_kbd_send(s, KBD_REPLY_ACK);
            i8042_kbd_send(s, i8042_translating(s) ? xlate_set[r->kbd_scanset] : r->kbd_scanset);
        } else if (val <= 3) {
            r->kbd_scanset = val;
            i8042_kbd_send(s, KBD_REPLY_ACK);
        } else {
            i8042_kbd_send(s, KBD_REPLY_RESEND);
        }
        break;
    default:
        g_assert_not_reached();
    }
}

static void i8042_kbd_write(I8042 *s, uint8_t val)
{
    I8042Regs *r = &s->r;

    /* A command byte where an argument was expected starts a new command. */
    if (r->kbd_pending && val < KBD_CMD_SET_LEDS) {
        uint8_t cmd = r->kbd_pending;

        r->kbd_pending = 0;
        i8042_kbd_argument(s, cmd, val);
        return;
    }
    r->kbd_pending = 0;
    switch (val) {
    case KBD_CMD_SET_LEDS:
    case KBD_CMD_SET_RATE:
    case KBD_CMD_SCANCODE:
        i8042_kbd_send(s, KBD_REPLY_ACK);
        r->kbd_pending = val;
        break;
    case KBD_CMD_ECHO:
        i8042_kbd_send(s, KBD_CMD_ECHO);
        break;
    case KBD_CMD_GET_ID:
        /* An MF2 keyboard; the controller translates its second ID byte. */
        i8042_kbd_send(s, KBD_REPLY_ACK);
        i8042_kbd_send(s, KBD_REPLY_ID);
        i8042_kbd_send(s, i8042_translating(s) ? KBD_ID_MF2_XLATE : KBD_ID_MF2);
        break;
    case KBD_CMD_ENABLE:
        r->kbd_scanning = TRUE;
        i8042_kbd_send(s, KBD_REPLY_ACK);
        break;
    case KBD_CMD_DISABLE:
        r->kbd_scanning = FALSE;
        i8042_kbd_defaults(r);
        i8042_kbd_send(s, KBD_REPLY_ACK);
        break;
    case KBD_CMD_DEFAULTS:
        i8042_kbd_defaults(r);
        i8042_kbd_send(s, KBD_REPLY_ACK);
        break;
    case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
        /* Scan set 3 key attributes: nothing to change without keys. */
        i8042_kbd_send(s, KBD_REPLY_ACK);
        break;
    case KBD_CMD_RESEND:
        i8042_queue_push(s, &r->kbd_q, r->kbd_last, 0);
        break;
    case KBD_CMD_RESET:
        i8042_queue_clear(&r->kbd_q);
        i8042_kbd_defaults(r);
        r->kbd_scanning = TRUE;
        i8042_kbd_send(s, KBD_REPLY_ACK);
        i8042_kbd_send(s, KBD_REPLY_POR);
        break;
    default:
        i8042_kbd_send(s, KBD_REPLY_RESEND);
        break;
    }
}

/* --- the controller --- */

static void i8042_request_reset(I8042 *s)
{
    g_debug("%s: guest requested a system reset", s->dev.id);
    machine_control_request(s->machine, MACHINE_REQUEST_RESET, 0);
}

static void i8042_write_outport(I8042 *s, uint8_t val)
{
    /* Bits 4 and 5 mirror the output buffer; they are not stored. */
    s->r.outport = val & ~(I8042_OUT_KBD_OBF | I8042_OUT_AUX_OBF);
    if (!(val & I8042_OUT_RESET))
        i8042_request_reset(s);
}

static uint8_t i8042_read_outport(const I8042 *s)
{
    const I8042Regs *r = &s->r;
    uint8_t v = r->outport;

    if (r->obf)
        v |= (r->out_flags & I8042_BYTE_AUX) ? I8042_OUT_AUX_OBF : I8042_OUT_KBD_OBF;
    return v;
}

static void i8042_write_ctr(I8042 *s, uint8_t val)
{
    s->r.ram[0] = val;
    /* The status register's system flag follows the command byte. */
    s->r.status = (s->r.status & ~I8042_STR_SYS) | (val & I8042_CTR_SYS);
}

static void i8042_command(I8042 *s, uint8_t cmd)
{
    I8042Regs *r = &s->r;

    r->status |= I8042_STR_CMD;
    /* A new command abandons one still waiting for its data byte. */
    r->pending_cmd = 0;

    if (cmd >= I8042_CMD_READ_RAM && cmd < I8042_CMD_READ_RAM + I8042_RAM_LEN) {
        i8042_reply(s, r->ram[cmd - I8042_CMD_READ_RAM]);
        return;
    }
    if (cmd >= I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + I8042_RAM_LEN) {
        r->pending_cmd = cmd;
        return;
    }
    if (cmd >= I8042_CMD_PULSE) {
        /* A 0 bit pulses that output port line; line 0 is the CPU reset. */
        if (!(cmd & I8042_OUT_RESET))
            i8042_request_reset(s);
        return;
    }
    switch (cmd) {
    case I8042_CMD_PASSWORD_TEST:
        i8042_reply(s, I8042_RET_NO_PASSWORD);
        break;
    case I8042_CMD_AUX_DISABLE:
        r->ram[0] |= I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_ENABLE:
        r->ram[0] &= ~I8042_CTR_AUXDIS;
        break;
    case I8042_CMD_AUX_TEST:
    case I8042_CMD_KBD_TEST:
        i8042_reply(s, I8042_RET_PORT_OK);
        break;
    case I8042_CMD_SELF_TEST:
        r->status |= I8042_STR_SYS;
        i8042_reply(s, I8042_RET_SELF_TEST);
        break;
    case I8042_CMD_KBD_DISABLE:
        r->ram[0] |= I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_KBD_ENABLE:
        r->ram[0] &= ~I8042_CTR_KBDDIS;
        break;
    case I8042_CMD_READ_INPUT:
        i8042_reply(s, I8042_INPUT_PORT);
        break;
    case I8042_CMD_READ_OUTPUT:
        i8042_reply(s, i8042_read_outport(s));
        break;
    case I8042_CMD_WRITE_OUTPUT:
    case I8042_CMD_WRITE_KBD_OUT:
    case I8042_CMD_WRITE_AUX_OUT:
    case I8042_CMD_WRITE_AUX:
        r->pending_cmd = cmd;
        break;
    case I8042_CMD_DISABLE_A20:
        r->outport &= ~I8042_OUT_A20;
        break;
    case I8042_CMD_ENABLE_A20:
        r->outport |= I8042_OUT_A20;
        break;
    case I8042_CMD_READ_TEST:
        i8042_reply(s, 0);
        break;
    default:
        vireo_guest_warn("%s: unknown controller command 0x%02x ignored", s->dev.id, cmd);
        break;
    }
}

/* The data byte of a controller command. */
static void i8042_command_data(I8042 *s, uint8_t cmd, uint8_t val)
{
    I8042Regs *r = &s->r;

    if (cmd == I8042_CMD_WRITE_RAM) {
        i8042_write_ctr(s, val);
        return;
    }
    if (cmd > I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + I8042_RAM_LEN) {
        r->ram[cmd - I8042_CMD_WRITE_RAM] = val;
        return;
    }
    switch (cmd) {
    case I8042_CMD_WRITE_OUTPUT:
        i8042_write_outport(s, val);
        break;
    case I8042_CMD_WRITE_KBD_OUT:
        i8042_queue_push(s, &r->ctrl_q, val, 0);
        break;
    case I8042_CMD_WRITE_AUX_OUT:
        i8042_queue_push(s, &r->ctrl_q, val, I8042_BYTE_AUX);
        break;
    case I8042_CMD_WRITE_AUX:
        /* No mouse answers: the controller times out and says "resend". */
        i8042_queue_push(s, &r->ctrl_q, KBD_REPLY_RESEND, I8042_BYTE_AUX | I8042_BYTE_TIMEOUT);
        break;
    default:
        g_assert_not_reached();
    }
}

static uint8_t i8042_read_status(const I8042 *s)
{
    const I8042Regs *r = &s->r;
    uint8_t v = (r->status & I8042_STR_STORED) | I8042_STR_UNLOCKED;

    if (r->obf) {
        v |= I8042_STR_OBF;
        if (r->out_flags & I8042_BYTE_AUX)
            v |= I8042_STR_AUXDATA;
        if (r->out_flags & I8042_BYTE_TIMEOUT)
            v |= I8042_STR_TIMEOUT;
    }
    return v;
}

static uint8_t i8042_read_data(I8042 *s)
{
    I8042Regs *r = &s->r;
    /* An empty output buffer still reads as the last byte, as on hardware. */
    uint8_t v = r->out_data;

    if (r->obf) {
        r->obf = FALSE;
        /* Lower the line before the next byte moves up, so it makes a new edge. */
        i8042_drive_irq(s, FALSE);
        i8042_refill(s);
    }
    return v;
}

static void i8042_write_data(I8042 *s, uint8_t val)
{
    I8042Regs *r = &s->r;

    r->status &= ~I8042_STR_CMD;
    if (r->pending_cmd) {
        uint8_t cmd = r->pending_cmd;

        r->pending_cmd = 0;
        i8042_command_data(s, cmd, val);
        return;
    }
    /* Sending to the keyboard enables its interface again (QEMU does so too). */
    r->ram[0] &= ~I8042_CTR_KBDDIS;
    i8042_kbd_write(s, val);
}

static void i8042_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    I8042 *s = i8042_from_dev(dev);
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++) {
        switch (off + i) {
        case I8042_DATA:
            out[i] = i8042_read_data(s);
            break;
        case I8042_COMMAND:
            out[i] = i8042_read_status(s);
            break;
        default:
            vireo_guest_warn("%s: read of unknown offset %" G_GUINT64_FORMAT, dev->id, off + i);
            out[i] = 0xff;
            break;
        }
    }
    i8042_refill(s);
    i8042_drive_irq(s, FALSE);
}

static void i8042_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    I8042 *s = i8042_from_dev(dev);
    const uint8_t *in = buf;

    for (size_t i = 0; i < len; i++) {
        switch (off + i) {
        case I8042_DATA:
            i8042_write_data(s, in[i]);
            break;
        case I8042_COMMAND:
            i8042_command(s, in[i]);
            break;
        default:
            vireo_guest_warn("%s: write 0x%02x to unknown offset %" G_GUINT64_FORMAT " ignored",
                             dev->id, in[i], off + i);
            break;
        }
        i8042_refill(s);
    }
    i8042_drive_irq(s, FALSE);
}

/* --- lifecycle --- */

static void i8042_regs_init(I8042Regs *r)
{
    memset(r, 0, sizeof(*r));
    r->ram[0] = I8042_CTR_DEFAULT;
    r->outport = I8042_OUT_DEFAULT;
    r->kbd_scanning = TRUE;
    i8042_kbd_defaults(r);
}

static void i8042_reset(Device *dev)
{
    I8042 *s = i8042_from_dev(dev);

    i8042_regs_init(&s->r);
    i8042_drive_irq(s, FALSE);
}

static void i8042_save_queue(StateWriter *w, const char *data_name, const char *flags_name,
                             const I8042Queue *q)
{
    uint8_t data[I8042_QUEUE_LEN], flags[I8042_QUEUE_LEN];

    for (unsigned i = 0; i < q->count; i++) {
        data[i] = q->data[(q->head + i) % I8042_QUEUE_LEN];
        flags[i] = q->flags[(q->head + i) % I8042_QUEUE_LEN];
    }
    state_write_bytes(w, data_name, data, q->count);
    state_write_bytes(w, flags_name, flags, q->count);
}

static gboolean i8042_load_queue(StateReader *r, const char *data_name, const char *flags_name,
                                 I8042Queue *q, GError **error)
{
    size_t len, flags_len;

    if (!state_read_bytes_var(r, data_name, q->data, I8042_QUEUE_LEN, &len, error) ||
        !state_read_bytes_var(r, flags_name, q->flags, I8042_QUEUE_LEN, &flags_len, error))
        return FALSE;
    if (flags_len != len) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "fields '%s' and '%s' differ in length (%zu, %zu)",
                    data_name, flags_name, len, flags_len);
        return FALSE;
    }
    for (size_t i = 0; i < len; i++) {
        if (q->flags[i] & ~I8042_BYTE_FLAGS) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "field '%s' has unknown flags 0x%02x", flags_name, q->flags[i]);
            return FALSE;
        }
    }
    q->head = 0;
    q->count = len;
    return TRUE;
}

static gboolean i8042_save(Device *dev, StateWriter *w, GError **error)
{
    I8042 *s = i8042_from_dev(dev);
    const I8042Regs *r = &s->r;

    state_writer_begin_section(w, dev->id, I8042_STATE_VERSION);
    state_write_bytes(w, "ram", r->ram, I8042_RAM_LEN);
    state_write_u8(w, "status", r->status);
    state_write_u8(w, "outport", r->outport);
    state_write_u8(w, "pending-cmd", r->pending_cmd);
    state_write_u8(w, "obf", r->obf);
    state_write_u8(w, "out-data", r->out_data);
    state_write_u8(w, "out-flags", r->out_flags);
    i8042_save_queue(w, "ctrl-queue", "ctrl-queue-flags", &r->ctrl_q);
    i8042_save_queue(w, "kbd-queue", "kbd-queue-flags", &r->kbd_q);
    state_write_u8(w, "kbd-pending", r->kbd_pending);
    state_write_u8(w, "kbd-scanning", r->kbd_scanning);
    state_write_u8(w, "kbd-leds", r->kbd_leds);
    state_write_u8(w, "kbd-rate", r->kbd_rate);
    state_write_u8(w, "kbd-scanset", r->kbd_scanset);
    state_write_u8(w, "kbd-last", r->kbd_last);
    state_writer_end_section(w);
    return TRUE;
}

/* Commands that wait for a data byte, as i8042_command() leaves them. */
static gboolean i8042_valid_pending_cmd(uint8_t cmd)
{
    return cmd == 0 ||
           (cmd >= I8042_CMD_WRITE_RAM && cmd < I8042_CMD_WRITE_RAM + I8042_RAM_LEN) ||
           (cmd >= I8042_CMD_WRITE_OUTPUT && cmd <= I8042_CMD_WRITE_AUX);
}

static gboolean i8042_load(Device *dev, StateReader *r, GError **error)
{
    I8042 *s = i8042_from_dev(dev);
    I8042Regs n;
    uint8_t obf, scanning;
    uint32_t version;

    memset(&n, 0, sizeof(n));
    if (!state_reader_begin_section(r, dev->id, I8042_STATE_VERSION, &version, error))
        return FALSE;
    if (!state_read_bytes(r, "ram", n.ram, I8042_RAM_LEN, error) ||
        !state_read_u8(r, "status", &n.status, error) ||
        !state_read_u8(r, "outport", &n.outport, error) ||
        !state_read_u8(r, "pending-cmd", &n.pending_cmd, error) ||
        !state_read_u8(r, "obf", &obf, error) ||
        !state_read_u8(r, "out-data", &n.out_data, error) ||
        !state_read_u8(r, "out-flags", &n.out_flags, error) ||
        !i8042_load_queue(r, "ctrl-queue", "ctrl-queue-flags", &n.ctrl_q, error) ||
        !i8042_load_queue(r, "kbd-queue", "kbd-queue-flags", &n.kbd_q, error) ||
        !state_read_u8(r, "kbd-pending", &n.kbd_pending, error) ||
        !state_read_u8(r, "kbd-scanning", &scanning, error) ||
        !state_read_u8(r, "kbd-leds", &n.kbd_leds, error) ||
        !state_read_u8(r, "kbd-rate", &n.kbd_rate, error) ||
        !state_read_u8(r, "kbd-scanset", &n.kbd_scanset, error) ||
        !state_read_u8(r, "kbd-last", &n.kbd_last, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    if ((n.status & ~I8042_STR_STORED) || !i8042_valid_pending_cmd(n.pending_cmd) ||
        obf > 1 || (n.out_flags & ~I8042_BYTE_FLAGS) || scanning > 1 ||
        (n.kbd_pending && n.kbd_pending != KBD_CMD_SET_LEDS &&
         n.kbd_pending != KBD_CMD_SET_RATE && n.kbd_pending != KBD_CMD_SCANCODE) ||
        n.kbd_scanset < 1 || n.kbd_scanset > 3) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': register values out of range "
                    "(status 0x%02x, pending 0x%02x/0x%02x, scan set %u)",
                    dev->id, n.status, n.pending_cmd, n.kbd_pending, n.kbd_scanset);
        return FALSE;
    }
    n.obf = obf;
    n.kbd_scanning = scanning;

    s->r = n;
    i8042_drive_irq(s, TRUE);
    return TRUE;
}

static void i8042_free(Device *dev)
{
    I8042 *s = i8042_from_dev(dev);

    device_cleanup(dev);
    g_free(s);
}

static Device *i8042_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    I8042 *s;

    if (!opts || !device_options_check_known(opts, known, i8042_type.name, error))
        return NULL;

    s = g_new0(I8042, 1);
    device_init(&s->dev, &i8042_type, env->id);
    s->irq = env->irq;
    s->machine = env->machine;
    i8042_regs_init(&s->r);
    return &s->dev;
}

static const DeviceOps i8042_ops = {
    .read = i8042_read,
    .write = i8042_write,
    .reset = i8042_reset,
    .save = i8042_save,
    .load = i8042_load,
    .free = i8042_free,
};

static const DeviceType i8042_type = {
    .name = "i8042",
    .description = "i8042 keyboard controller with a keyless PS/2 keyboard "
                   "(5-byte I/O window at 0x60: data at 0, status/command at 4)",
    .ops = &i8042_ops,
    .create = i8042_create,
};
DEVICE_TYPE_REGISTER(i8042_type);
