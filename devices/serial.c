/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * 16550A UART ("uart-16550a"): the PC's COM port, an 8-byte register window.
 *
 * Transmit: bytes written to THR go into the transmit FIFO (16 bytes with
 * FIFOs on, 1 byte without) and straight on to the character backend. What
 * the backend does not take stays in the FIFO, with LSR.THRE/TEMT clear,
 * until the backend's writable() callback says there is room again; then
 * THRE (and its interrupt) comes back. Nothing is dropped and the vCPU
 * never waits. A byte counts as sent once the backend has it, so there is
 * no separate shift register: TEMT always equals THRE.
 *
 * Receive: can_receive() offers the free room in the receive FIFO (none in
 * loopback mode, where the serial input is disconnected); when the guest
 * has drained the FIFO we call char_backend_accept_input() so a backend
 * that paused reading resumes. The character-timeout interrupt is signalled
 * at once while data sits below the trigger level, instead of after four
 * character times.
 *
 * Interrupts are a level on env->irq, gated by MCR.OUT2 as on a PC.
 *
 * Locking: dev->lock covers everything below the immutable fields. The
 * backend callbacks run on the event loop thread and take it themselves.
 * char_backend_write() and char_backend_accept_input() are called with it
 * held, so a backend must not call back into us synchronously from them.
 */
#include <stddef.h>
#include <string.h>

#include "vireo/device.h"
#include "vireo/util.h"

#define SERIAL_WINDOW_LEN       8
#define SERIAL_FIFO_LEN         16
#define SERIAL_STATE_VERSION    1

/* Register offsets; which one depends on direction and LCR.DLAB. */
#define SERIAL_RBR      0       /* read, DLAB = 0 */
#define SERIAL_THR      0       /* write, DLAB = 0 */
#define SERIAL_DLL      0       /* DLAB = 1 */
#define SERIAL_IER      1       /* DLAB = 0 */
#define SERIAL_DLM      1       /* DLAB = 1 */
#define SERIAL_IIR      2       /* read */
#define SERIAL_FCR      2       /* write */
#define SERIAL_LCR      3
#define SERIAL_MCR      4
#define SERIAL_LSR      5
#define SERIAL_MSR      6
#define SERIAL_SCR      7

#define SERIAL_IER_RDI          0x01
#define SERIAL_IER_THRI         0x02
#define SERIAL_IER_RLSI         0x04
#define SERIAL_IER_MSI          0x08
#define SERIAL_IER_MASK         0x0f

#define SERIAL_IIR_NO_INT       0x01
#define SERIAL_IIR_MSI          0x00
#define SERIAL_IIR_THRI         0x02
#define SERIAL_IIR_RDI          0x04
#define SERIAL_IIR_RLSI         0x06
#define SERIAL_IIR_CTI          0x0c
#define SERIAL_IIR_FIFO         0xc0

#define SERIAL_FCR_ENABLE       0x01
#define SERIAL_FCR_CLEAR_RX     0x02
#define SERIAL_FCR_CLEAR_TX     0x04
#define SERIAL_FCR_DMA          0x08
#define SERIAL_FCR_TRIGGER      0xc0
#define SERIAL_FCR_STORED       (SERIAL_FCR_ENABLE | SERIAL_FCR_DMA | SERIAL_FCR_TRIGGER)

#define SERIAL_LCR_DLAB         0x80

#define SERIAL_MCR_DTR          0x01
#define SERIAL_MCR_RTS          0x02
#define SERIAL_MCR_OUT1         0x04
#define SERIAL_MCR_OUT2         0x08
#define SERIAL_MCR_LOOP         0x10
#define SERIAL_MCR_MASK         0x1f

#define SERIAL_LSR_DR           0x01
#define SERIAL_LSR_OE           0x02
#define SERIAL_LSR_THRE         0x20
#define SERIAL_LSR_TEMT         0x40
/* Error bits that stay set until LSR is read; we only ever produce OE. */
#define SERIAL_LSR_ERRORS       SERIAL_LSR_OE

#define SERIAL_MSR_DCTS         0x01
#define SERIAL_MSR_DDSR         0x02
#define SERIAL_MSR_TERI         0x04
#define SERIAL_MSR_DDCD         0x08
#define SERIAL_MSR_DELTAS       0x0f
#define SERIAL_MSR_CTS          0x10
#define SERIAL_MSR_DSR          0x20
#define SERIAL_MSR_RI           0x40
#define SERIAL_MSR_DCD          0x80

typedef struct SerialFifo {
    uint8_t data[SERIAL_FIFO_LEN];
    uint8_t head;
    uint8_t count;
} SerialFifo;

/* Guest-visible state: what save/load and reset deal with. */
typedef struct SerialRegs {
    uint8_t ier;
    uint8_t lcr;
    uint8_t mcr;
    uint8_t fcr;                /* SERIAL_FCR_STORED bits */
    uint8_t lsr_errors;         /* sticky LSR error bits */
    uint8_t msr_deltas;         /* MSR bits 0-3 */
    uint8_t scr;
    uint8_t dll;
    uint8_t dlm;
    gboolean thr_ipending;      /* THRE interrupt not yet acknowledged */
    SerialFifo rx;
    SerialFifo tx;
} SerialRegs;

typedef struct Serial {
    Device dev;
    IrqLine *irq;               /* immutable after create */
    CharBackend *chr;           /* immutable after create */
    /* Everything below: dev->lock. */
    SerialRegs r;
    gboolean tx_blocked;        /* backend refused output; waiting for writable() */
    gboolean irq_level;         /* what we last drove on irq */
} Serial;

G_STATIC_ASSERT(offsetof(Serial, dev) == 0);

static const DeviceType serial_type;

static Serial *serial_from_dev(Device *dev)
{
    g_assert(dev->type == &serial_type);
    return (Serial *)dev;
}

/* --- FIFOs --- */

static void serial_fifo_clear(SerialFifo *f)
{
    f->head = 0;
    f->count = 0;
}

static void serial_fifo_push(SerialFifo *f, uint8_t b)
{
    g_assert(f->count < SERIAL_FIFO_LEN);
    f->data[(f->head + f->count) % SERIAL_FIFO_LEN] = b;
    f->count++;
}

static uint8_t serial_fifo_pop(SerialFifo *f)
{
    uint8_t b;

    g_assert(f->count > 0);
    b = f->data[f->head];
    f->head = (f->head + 1) % SERIAL_FIFO_LEN;
    f->count--;
    return b;
}

static gboolean serial_fifo_mode(const Serial *s)
{
    return s->r.fcr & SERIAL_FCR_ENABLE;
}

/* Without FIFOs, RBR and THR each hold a single byte. */
static unsigned serial_fifo_capacity(const Serial *s)
{
    return serial_fifo_mode(s) ? SERIAL_FIFO_LEN : 1;
}

static unsigned serial_rx_trigger(const Serial *s)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };

    return levels[(s->r.fcr & SERIAL_FCR_TRIGGER) >> 6];
}

static gboolean serial_loopback(const Serial *s)
{
    return s->r.mcr & SERIAL_MCR_LOOP;
}

/* --- interrupts --- */

/* Interrupt identification by priority: RLS > RDA/CTI > THRI > MSI. */
static uint8_t serial_pending_iir(const Serial *s)
{
    const SerialRegs *r = &s->r;

    if ((r->ier & SERIAL_IER_RLSI) && (r->lsr_errors & SERIAL_LSR_ERRORS))
        return SERIAL_IIR_RLSI;
    if ((r->ier & SERIAL_IER_RDI) && r->rx.count) {
        if (!serial_fifo_mode(s) || r->rx.count >= serial_rx_trigger(s))
            return SERIAL_IIR_RDI;
        return SERIAL_IIR_CTI;
    }
    if ((r->ier & SERIAL_IER_THRI) && r->thr_ipending)
        return SERIAL_IIR_THRI;
    if ((r->ier & SERIAL_IER_MSI) && (r->msr_deltas & SERIAL_MSR_DELTAS))
        return SERIAL_IIR_MSI;
    return SERIAL_IIR_NO_INT;
}

/*
 * On a PC the UART's interrupt output reaches the PIC only through a
 * buffer enabled by OUT2; Linux sets OUT2 for exactly that reason.
 */
static void serial_drive_irq(Serial *s, gboolean force)
{
    gboolean level = serial_pending_iir(s) != SERIAL_IIR_NO_INT &&
                     (s->r.mcr & SERIAL_MCR_OUT2);

    if (force || level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(s->irq, level);
    }
}

static void serial_update_irq(Serial *s)
{
    serial_drive_irq(s, FALSE);
}

/* --- receive --- */

static void serial_rx_byte(Serial *s, uint8_t b)
{
    SerialRegs *r = &s->r;

    if (!serial_fifo_mode(s)) {
        /* A 16450-style RBR: a new byte overwrites an unread one. */
        if (r->rx.count) {
            serial_fifo_clear(&r->rx);
            r->lsr_errors |= SERIAL_LSR_OE;
        }
        serial_fifo_push(&r->rx, b);
    } else if (r->rx.count < SERIAL_FIFO_LEN) {
        serial_fifo_push(&r->rx, b);
    } else {
        /* The byte in the shift register is lost when the FIFO is full. */
        r->lsr_errors |= SERIAL_LSR_OE;
    }
}

/* The receive FIFO became empty: a backend that paused reading may go on. */
static void serial_rx_drained(Serial *s)
{
    if (!serial_loopback(s))
        char_backend_accept_input(s->chr);
}

/* --- transmit --- */

/*
 * Moves the transmit FIFO on: into the receive FIFO in loopback mode,
 * otherwise to the backend until it is empty or the backend is full.
 */
static void serial_tx_flush(Serial *s)
{
    SerialFifo *tx = &s->r.tx;
    gboolean had_data = tx->count > 0;

    if (serial_loopback(s)) {
        while (tx->count)
            serial_rx_byte(s, serial_fifo_pop(tx));
    } else {
        while (tx->count && !s->tx_blocked) {
            size_t chunk = MIN((size_t)tx->count, (size_t)(SERIAL_FIFO_LEN - tx->head));
            size_t taken = char_backend_write(s->chr, &tx->data[tx->head], chunk);

            taken = MIN(taken, chunk);
            tx->head = (tx->head + taken) % SERIAL_FIFO_LEN;
            tx->count -= taken;
            if (taken < chunk)
                s->tx_blocked = TRUE;
        }
    }
    if (had_data && tx->count == 0)
        s->r.thr_ipending = TRUE;
}

static void serial_write_thr(Serial *s, uint8_t b)
{
    SerialRegs *r = &s->r;

    if (r->tx.count >= serial_fifo_capacity(s)) {
        /*
         * The guest did not wait for THRE. Real hardware would overwrite
         * the holding register; we keep what is queued and drop the new byte.
         */
        vireo_guest_warn("%s: THR written while the transmitter is full; byte dropped",
                         s->dev.id);
        return;
    }
    serial_fifo_push(&r->tx, b);
    /* Writing THR acknowledges a THRE interrupt. */
    r->thr_ipending = FALSE;
    serial_tx_flush(s);
}

/* --- registers --- */

/* The modem status inputs: looped back from MCR, or a modem that is always ready. */
static uint8_t serial_modem_inputs(const Serial *s)
{
    uint8_t mcr = s->r.mcr;
    uint8_t v = 0;

    if (!serial_loopback(s))
        return SERIAL_MSR_CTS | SERIAL_MSR_DSR | SERIAL_MSR_DCD;
    if (mcr & SERIAL_MCR_RTS)
        v |= SERIAL_MSR_CTS;
    if (mcr & SERIAL_MCR_DTR)
        v |= SERIAL_MSR_DSR;
    if (mcr & SERIAL_MCR_OUT1)
        v |= SERIAL_MSR_RI;
    if (mcr & SERIAL_MCR_OUT2)
        v |= SERIAL_MSR_DCD;
    return v;
}

static void serial_write_mcr(Serial *s, uint8_t val)
{
    SerialRegs *r = &s->r;
    uint8_t before = serial_modem_inputs(s);
    gboolean was_loop = serial_loopback(s);
    uint8_t after, changed;

    r->mcr = val & SERIAL_MCR_MASK;
    after = serial_modem_inputs(s);
    changed = before ^ after;
    if (changed & SERIAL_MSR_CTS)
        r->msr_deltas |= SERIAL_MSR_DCTS;
    if (changed & SERIAL_MSR_DSR)
        r->msr_deltas |= SERIAL_MSR_DDSR;
    if (changed & SERIAL_MSR_DCD)
        r->msr_deltas |= SERIAL_MSR_DDCD;
    /* TERI reports the trailing edge of RI only. */
    if ((before & SERIAL_MSR_RI) && !(after & SERIAL_MSR_RI))
        r->msr_deltas |= SERIAL_MSR_TERI;

    if (was_loop != serial_loopback(s)) {
        /* Output held back by the backend now goes where the new mode sends it. */
        serial_tx_flush(s);
        if (!serial_loopback(s) && r->rx.count < serial_fifo_capacity(s))
            char_backend_accept_input(s->chr);
    }
}

static void serial_write_ier(Serial *s, uint8_t val)
{
    SerialRegs *r = &s->r;
    uint8_t changed = (r->ier ^ val) & SERIAL_IER_MASK;

    r->ier = val & SERIAL_IER_MASK;
    /*
     * Enabling THRI while the holding register is empty raises the
     * interrupt at once, even if it was acknowledged before. Linux's
     * serial8250_startup() tests for exactly this and, without it, falls
     * back to polling the transmitter from a timer.
     */
    if (changed & SERIAL_IER_THRI)
        r->thr_ipending = (r->ier & SERIAL_IER_THRI) && r->tx.count == 0;
}

static void serial_write_fcr(Serial *s, uint8_t val)
{
    SerialRegs *r = &s->r;

    /* Switching the FIFOs on or off empties both of them. */
    if ((val ^ r->fcr) & SERIAL_FCR_ENABLE)
        val |= SERIAL_FCR_CLEAR_RX | SERIAL_FCR_CLEAR_TX;
    /* The other bits are only programmed together with FIFO enable. */
    if (val & SERIAL_FCR_ENABLE)
        r->fcr = val & SERIAL_FCR_STORED;
    else
        r->fcr &= SERIAL_FCR_STORED & ~SERIAL_FCR_ENABLE;
    if (val & SERIAL_FCR_CLEAR_TX) {
        gboolean had_data = r->tx.count > 0;

        serial_fifo_clear(&r->tx);
        if (had_data)
            r->thr_ipending = TRUE;
    }
    if (val & SERIAL_FCR_CLEAR_RX) {
        serial_fifo_clear(&r->rx);
        serial_rx_drained(s);
    }
}

static uint8_t serial_read_lsr(Serial *s)
{
    SerialRegs *r = &s->r;
    uint8_t v = r->lsr_errors;

    if (r->rx.count)
        v |= SERIAL_LSR_DR;
    if (r->tx.count == 0)
        v |= SERIAL_LSR_THRE | SERIAL_LSR_TEMT;
    /* Reading LSR clears the error bits (and so the RLS interrupt). */
    r->lsr_errors = 0;
    return v;
}

static uint8_t serial_read_reg(Serial *s, unsigned reg)
{
    SerialRegs *r = &s->r;
    gboolean dlab = r->lcr & SERIAL_LCR_DLAB;
    uint8_t v;

    switch (reg) {
    case SERIAL_RBR:
        if (dlab)
            return r->dll;
        if (!r->rx.count)
            return 0;
        v = serial_fifo_pop(&r->rx);
        if (!r->rx.count)
            serial_rx_drained(s);
        return v;
    case SERIAL_IER:
        return dlab ? r->dlm : r->ier;
    case SERIAL_IIR:
        v = serial_pending_iir(s);
        /* Reading IIR acknowledges THRI when it is the one reported. */
        if (v == SERIAL_IIR_THRI)
            r->thr_ipending = FALSE;
        return v | (serial_fifo_mode(s) ? SERIAL_IIR_FIFO : 0);
    case SERIAL_LCR:
        return r->lcr;
    case SERIAL_MCR:
        return r->mcr;
    case SERIAL_LSR:
        return serial_read_lsr(s);
    case SERIAL_MSR:
        v = serial_modem_inputs(s) | r->msr_deltas;
        r->msr_deltas = 0;
        return v;
    case SERIAL_SCR:
        return r->scr;
    default:
        vireo_guest_warn("%s: read of unknown register %u", s->dev.id, reg);
        return 0xff;
    }
}

static void serial_write_reg(Serial *s, unsigned reg, uint8_t val)
{
    SerialRegs *r = &s->r;
    gboolean dlab = r->lcr & SERIAL_LCR_DLAB;

    switch (reg) {
    case SERIAL_THR:
        if (dlab)
            r->dll = val;
        else
            serial_write_thr(s, val);
        break;
    case SERIAL_IER:
        if (dlab)
            r->dlm = val;
        else
            serial_write_ier(s, val);
        break;
    case SERIAL_FCR:
        serial_write_fcr(s, val);
        break;
    case SERIAL_LCR:
        /* Break control (bit 6) has no wire to act on; the bit is kept. */
        r->lcr = val;
        break;
    case SERIAL_MCR:
        serial_write_mcr(s, val);
        break;
    case SERIAL_LSR:
    case SERIAL_MSR:
        /* Factory-test writes on real parts; nothing a driver does. */
        vireo_guest_warn("%s: write 0x%02x to read-only register %u ignored",
                         s->dev.id, val, reg);
        break;
    case SERIAL_SCR:
        /*
         * Linux probes the scratch register to tell an 8250 from a 16450,
         * so it must stay read/write although nothing else uses it.
         */
        r->scr = val;
        break;
    default:
        vireo_guest_warn("%s: write 0x%02x to unknown register %u ignored",
                         s->dev.id, val, reg);
        break;
    }
}

/* Wider accesses reach consecutive byte registers, as on the ISA bus. */
static void serial_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    Serial *s = serial_from_dev(dev);
    uint8_t *out = buf;

    for (size_t i = 0; i < len; i++) {
        if (off + i < SERIAL_WINDOW_LEN) {
            out[i] = serial_read_reg(s, off + i);
        } else {
            vireo_guest_warn("%s: read beyond the register window at %" G_GUINT64_FORMAT,
                             dev->id, off + i);
            out[i] = 0xff;
        }
    }
    serial_update_irq(s);
}

static void serial_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    Serial *s = serial_from_dev(dev);
    const uint8_t *in = buf;

    for (size_t i = 0; i < len; i++) {
        if (off + i < SERIAL_WINDOW_LEN)
            serial_write_reg(s, off + i, in[i]);
        else
            vireo_guest_warn("%s: write beyond the register window at %" G_GUINT64_FORMAT,
                             dev->id, off + i);
    }
    serial_update_irq(s);
}

/* --- backend callbacks (event loop thread) --- */

static size_t serial_chr_can_receive_locked(Serial *s)
{
    if (serial_loopback(s))
        return 0;
    return serial_fifo_capacity(s) - MIN(s->r.rx.count, serial_fifo_capacity(s));
}

static size_t serial_chr_can_receive(void *opaque)
{
    Serial *s = opaque;
    size_t n;

    g_mutex_lock(&s->dev.lock);
    n = serial_chr_can_receive_locked(s);
    g_mutex_unlock(&s->dev.lock);
    return n;
}

static void serial_chr_receive(void *opaque, const uint8_t *buf, size_t len)
{
    Serial *s = opaque;
    size_t room;

    g_mutex_lock(&s->dev.lock);
    room = serial_chr_can_receive_locked(s);
    if (len > room) {
        /*
         * More than we offered: the guest entered loopback or turned the
         * FIFOs off since can_receive(). Like a wire, we lose the excess.
         */
        g_debug("%s: %zu input bytes beyond the receive FIFO dropped", s->dev.id, len - room);
        if (!serial_loopback(s))
            s->r.lsr_errors |= SERIAL_LSR_OE;
        len = room;
    }
    for (size_t i = 0; i < len; i++)
        serial_rx_byte(s, buf[i]);
    serial_update_irq(s);
    g_mutex_unlock(&s->dev.lock);
}

static void serial_chr_writable(void *opaque)
{
    Serial *s = opaque;

    g_mutex_lock(&s->dev.lock);
    s->tx_blocked = FALSE;
    serial_tx_flush(s);
    serial_update_irq(s);
    g_mutex_unlock(&s->dev.lock);
}

static const CharFrontendOps serial_chr_ops = {
    .can_receive = serial_chr_can_receive,
    .receive = serial_chr_receive,
    .writable = serial_chr_writable,
};

/* --- lifecycle --- */

static void serial_regs_init(SerialRegs *r)
{
    memset(r, 0, sizeof(*r));
    /* 9600 baud from the 1.8432 MHz clock, as firmware would leave it. */
    r->dll = 0x0c;
}

static void serial_reset(Device *dev)
{
    Serial *s = serial_from_dev(dev);
    gboolean had_rx = s->r.rx.count > 0;

    serial_regs_init(&s->r);
    if (had_rx)
        serial_rx_drained(s);
    serial_update_irq(s);
}

static gboolean serial_save(Device *dev, StateWriter *w, GError **error)
{
    Serial *s = serial_from_dev(dev);
    const SerialRegs *r = &s->r;
    uint8_t rx[SERIAL_FIFO_LEN], tx[SERIAL_FIFO_LEN];

    for (unsigned i = 0; i < r->rx.count; i++)
        rx[i] = r->rx.data[(r->rx.head + i) % SERIAL_FIFO_LEN];
    for (unsigned i = 0; i < r->tx.count; i++)
        tx[i] = r->tx.data[(r->tx.head + i) % SERIAL_FIFO_LEN];

    state_writer_begin_section(w, dev->id, SERIAL_STATE_VERSION);
    state_write_u8(w, "ier", r->ier);
    state_write_u8(w, "lcr", r->lcr);
    state_write_u8(w, "mcr", r->mcr);
    state_write_u8(w, "fcr", r->fcr);
    state_write_u8(w, "lsr-errors", r->lsr_errors);
    state_write_u8(w, "msr-deltas", r->msr_deltas);
    state_write_u8(w, "scr", r->scr);
    state_write_u8(w, "dll", r->dll);
    state_write_u8(w, "dlm", r->dlm);
    state_write_u8(w, "thr-ipending", r->thr_ipending);
    state_write_bytes(w, "rx-fifo", rx, r->rx.count);
    /* Output the old backend never took; the new one gets it after load. */
    state_write_bytes(w, "tx-fifo", tx, r->tx.count);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean serial_load(Device *dev, StateReader *r, GError **error)
{
    Serial *s = serial_from_dev(dev);
    SerialRegs n;
    uint8_t rx[SERIAL_FIFO_LEN], tx[SERIAL_FIFO_LEN];
    size_t rx_len, tx_len;
    uint8_t thr_ipending;
    uint32_t version;
    unsigned capacity;

    serial_regs_init(&n);
    if (!state_reader_begin_section(r, dev->id, SERIAL_STATE_VERSION, &version, error))
        return FALSE;
    if (!state_read_u8(r, "ier", &n.ier, error) ||
        !state_read_u8(r, "lcr", &n.lcr, error) ||
        !state_read_u8(r, "mcr", &n.mcr, error) ||
        !state_read_u8(r, "fcr", &n.fcr, error) ||
        !state_read_u8(r, "lsr-errors", &n.lsr_errors, error) ||
        !state_read_u8(r, "msr-deltas", &n.msr_deltas, error) ||
        !state_read_u8(r, "scr", &n.scr, error) ||
        !state_read_u8(r, "dll", &n.dll, error) ||
        !state_read_u8(r, "dlm", &n.dlm, error) ||
        !state_read_u8(r, "thr-ipending", &thr_ipending, error) ||
        !state_read_bytes_var(r, "rx-fifo", rx, sizeof(rx), &rx_len, error) ||
        !state_read_bytes_var(r, "tx-fifo", tx, sizeof(tx), &tx_len, error) ||
        !state_reader_end_section(r, error))
        return FALSE;

    capacity = (n.fcr & SERIAL_FCR_ENABLE) ? SERIAL_FIFO_LEN : 1;
    if ((n.ier & ~SERIAL_IER_MASK) || (n.mcr & ~SERIAL_MCR_MASK) ||
        (n.fcr & ~SERIAL_FCR_STORED) || (n.lsr_errors & ~SERIAL_LSR_ERRORS) ||
        (n.msr_deltas & ~SERIAL_MSR_DELTAS) || thr_ipending > 1 ||
        rx_len > capacity || tx_len > capacity) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': register values out of range "
                    "(ier 0x%02x, mcr 0x%02x, fcr 0x%02x, %zu/%zu FIFO bytes)",
                    dev->id, n.ier, n.mcr, n.fcr, rx_len, tx_len);
        return FALSE;
    }
    n.thr_ipending = thr_ipending;
    for (size_t i = 0; i < rx_len; i++)
        serial_fifo_push(&n.rx, rx[i]);
    for (size_t i = 0; i < tx_len; i++)
        serial_fifo_push(&n.tx, tx[i]);

    s->r = n;
    /* A backend of our own: nothing refused yet, so send what is pending. */
    s->tx_blocked = FALSE;
    serial_tx_flush(s);
    /* The line may have been anywhere before; say where it is now. */
    serial_drive_irq(s, TRUE);
    return TRUE;
}

static void serial_free(Device *dev)
{
    Serial *s = serial_from_dev(dev);

    char_backend_set_frontend(s->chr, NULL, NULL);
    device_cleanup(dev);
    g_free(s);
}

static Device *serial_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    Serial *s;

    if (!opts || !device_options_check_known(opts, known, serial_type.name, error))
        return NULL;

    s = g_new0(Serial, 1);
    device_init(&s->dev, &serial_type, env->id);
    s->irq = env->irq;
    s->chr = env->chr;
    serial_regs_init(&s->r);
    char_backend_set_frontend(s->chr, &serial_chr_ops, s);
    return &s->dev;
}

static const DeviceOps serial_ops = {
    .read = serial_read,
    .write = serial_write,
    .reset = serial_reset,
    .save = serial_save,
    .load = serial_load,
    .free = serial_free,
};

static const DeviceType serial_type = {
    .name = "uart-16550a",
    .description = "16550A UART with 16-byte FIFOs (8-byte I/O window)",
    .ops = &serial_ops,
    .create = serial_create,
};
DEVICE_TYPE_REGISTER(serial_type);
