/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * uart-16550a, driven as Linux's 8250 driver drives it
 * (drivers/tty/serial/8250/8250_port.c): autoconfig(), size_fifo(),
 * serial8250_do_startup(), set_termios, the interrupt handler's transmit
 * and receive paths and the polled console, plus back-pressure from the
 * backend, loopback, reset, save/load and a hostile guest.
 */
#include <string.h>

#include "harness.h"

#define UART "uart-16550a"

enum {
    RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2,
    LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7,
};

#define IER_RDI         0x01
#define IER_THRI        0x02
#define IER_RLSI        0x04
#define IER_MSI         0x08
#define IIR_NO_INT      0x01
#define IIR_ID          0x0e
#define IIR_MSI         0x00
#define IIR_THRI        0x02
#define IIR_RDI         0x04
#define IIR_RLSI        0x06
#define IIR_CTI         0x0c
#define FCR_ENABLE      0x01
#define FCR_CLEAR_RX    0x02
#define FCR_CLEAR_TX    0x04
#define FCR_TRIG_8      0x80
#define LCR_DLAB        0x80
#define LCR_WLEN8       0x03
#define LCR_CONF_MODE_A 0x80
#define LCR_CONF_MODE_B 0xbf
#define MCR_DTR         0x01
#define MCR_RTS         0x02
#define MCR_OUT1        0x04
#define MCR_OUT2        0x08
#define MCR_LOOP        0x10
#define LSR_DR          0x01
#define LSR_OE          0x02
#define LSR_BI          0x10
#define LSR_THRE        0x20
#define LSR_TEMT        0x40
#define LSR_BOTH_EMPTY  (LSR_THRE | LSR_TEMT)
#define MSR_DCTS        0x01
#define MSR_DDSR        0x02
#define MSR_TERI        0x04
#define MSR_DDCD        0x08
#define MSR_CTS         0x10
#define MSR_DSR         0x20
#define MSR_RI          0x40
#define MSR_DCD         0x80

typedef struct Fixture {
    HarnessEnv *e;
    Device *dev;
} Fixture;

static int fixture_setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->e = harness_env_new("serial0", 0);
    f->dev = harness_device_new(f->e, UART, NULL);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    Fixture *f = *state;

    device_free(f->dev);
    /* The UART must have let go of the backend. */
    assert_false(harness_char_has_frontend(f->e->chr));
    harness_env_free(f->e);
    g_free(f);
    return 0;
}

static uint8_t in8(Device *d, unsigned reg)
{
    return harness_read8(d, reg);
}

static void out8(Device *d, unsigned reg, uint8_t v)
{
    harness_write8(d, reg, v);
}

/* --- a model of Linux's 8250 driver --- */

typedef struct Linux8250 {
    Device *dev;
    HarnessEnv *e;
    uint8_t ier;                /* up->ier */
    GString *xmit;              /* the tty's transmit buffer */
    size_t xmit_tail;
    GString *rx;                /* what reached the tty */
    unsigned seen_rises;        /* interrupts delivered so far */
    unsigned interrupts;
    unsigned max_burst;         /* most bytes written to THR in one tx_chars() */
} Linux8250;

static void linux_init(Linux8250 *l, Device *dev, HarnessEnv *e)
{
    memset(l, 0, sizeof(*l));
    l->dev = dev;
    l->e = e;
    l->xmit = g_string_new(NULL);
    l->rx = g_string_new(NULL);
    l->seen_rises = e->irq.rises;
}

static void linux_cleanup(Linux8250 *l)
{
    g_string_free(l->xmit, TRUE);
    g_string_free(l->rx, TRUE);
}

/* serial8250_clear_fifos() */
static void linux_clear_fifos(Device *d)
{
    out8(d, FCR, FCR_ENABLE);
    out8(d, FCR, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX);
    out8(d, FCR, 0);
}

/* size_fifo(): counts what the receive FIFO keeps of 256 bytes sent in loopback. */
static unsigned linux_size_fifo(Device *d)
{
    uint8_t old_lcr, old_fcr, old_mcr, old_dll, old_dlm;
    unsigned count;

    old_lcr = in8(d, LCR);
    out8(d, LCR, 0);
    old_fcr = in8(d, FCR);      /* really IIR, as in Linux */
    old_mcr = in8(d, MCR);
    out8(d, FCR, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX);
    out8(d, MCR, MCR_LOOP);
    out8(d, LCR, LCR_CONF_MODE_A);
    old_dll = in8(d, DLL);
    old_dlm = in8(d, DLM);
    out8(d, DLL, 1);
    out8(d, DLM, 0);
    out8(d, LCR, LCR_WLEN8);
    for (count = 0; count < 256; count++)
        out8(d, THR, count);
    for (count = 0; (in8(d, LSR) & LSR_DR) && count < 256; count++)
        in8(d, RBR);
    out8(d, FCR, old_fcr);
    out8(d, MCR, old_mcr);
    out8(d, LCR, LCR_CONF_MODE_A);
    out8(d, DLL, old_dll);
    out8(d, DLM, old_dlm);
    out8(d, LCR, old_lcr);
    return count;
}

/* autoconfig() and autoconfig_16550a(): asserts every test ends in "16550A". */
static void linux_autoconfig(Device *d)
{
    uint8_t scratch, scratch2, scratch3, status1, status2, save_lcr, save_mcr, iersave;

    /* IER existence test */
    scratch = in8(d, IER);
    out8(d, IER, 0);
    scratch2 = in8(d, IER) & 0x0f;
    out8(d, IER, 0x0f);
    scratch3 = in8(d, IER) & 0x0f;
    out8(d, IER, scratch);
    assert_int_equal(scratch2, 0);
    assert_int_equal(scratch3, 0x0f);

    save_mcr = in8(d, MCR);
    save_lcr = in8(d, LCR);

    /* Loopback test: RTS and OUT2 come back as CTS and DCD. */
    out8(d, MCR, MCR_LOOP | 0x0a);
    status1 = in8(d, MSR) & 0xf0;
    out8(d, MCR, save_mcr);
    assert_int_equal(status1, 0x90);

    out8(d, LCR, LCR_CONF_MODE_B);
    out8(d, FCR, 0);            /* UART_EFR */
    out8(d, LCR, 0);
    out8(d, FCR, FCR_ENABLE);
    assert_int_equal(in8(d, IIR) >> 6, 3);         /* 16550A or later */

    /* autoconfig_16550a(): no EFR with DLAB set, nor with 0xbf. */
    out8(d, LCR, LCR_CONF_MODE_A);
    assert_int_not_equal(in8(d, IIR), 0);
    out8(d, LCR, LCR_CONF_MODE_B);
    assert_int_not_equal(in8(d, IIR), 0);
    /* Not a National Semiconductor SuperIO. */
    out8(d, LCR, 0);
    status1 = in8(d, MCR);
    out8(d, LCR, 0xe0);
    status2 = in8(d, 0x02);
    assert_int_equal((status2 ^ status1) & MCR_LOOP, 0);
    out8(d, LCR, 0);
    out8(d, MCR, status1 ^ MCR_LOOP);
    out8(d, LCR, 0xe0);
    status2 = in8(d, 0x02);
    out8(d, LCR, 0);
    out8(d, MCR, status1);
    assert_int_equal((status2 ^ status1) & MCR_LOOP, 0);
    /* Not a 16750: IIR bit 5 never follows FCR bit 5. */
    out8(d, LCR, 0);
    out8(d, FCR, FCR_ENABLE | 0x20);
    status1 = in8(d, IIR) >> 5;
    out8(d, FCR, FCR_ENABLE);
    out8(d, LCR, LCR_CONF_MODE_A);
    out8(d, FCR, FCR_ENABLE | 0x20);
    status2 = in8(d, IIR) >> 5;
    out8(d, FCR, FCR_ENABLE);
    out8(d, LCR, 0);
    assert_int_equal(status1, 6);
    assert_int_equal(status2, 6);
    /* Not an XScale: IER bit 6 does not stick. */
    iersave = in8(d, IER);
    out8(d, IER, iersave & ~0x40);
    assert_int_equal(in8(d, IER) & 0x40, 0);
    out8(d, IER, iersave | 0x40);
    assert_int_equal(in8(d, IER) & 0x40, 0);
    out8(d, IER, iersave);
    /* A 16-byte FIFO, not a U6 16550A's 64. */
    assert_int_equal(linux_size_fifo(d), 16);

    /* Back in autoconfig(): restore and reset the UART. */
    out8(d, LCR, save_lcr);
    out8(d, MCR, save_mcr);
    linux_clear_fifos(d);
    in8(d, RBR);
    out8(d, IER, 0);
}

/* serial8250_do_startup() and set_termios for 115200 8N1 with FIFOs. */
static void linux_startup(Linux8250 *l)
{
    Device *d = l->dev;
    uint8_t iir1, iir, lsr;

    linux_clear_fifos(d);
    in8(d, LSR);
    in8(d, RBR);
    in8(d, IIR);
    in8(d, MSR);
    assert_int_not_equal(in8(d, LSR), 0xff);

    /* THRE test: must re-assert THRE when THRI is enabled again. */
    for (unsigned i = 0; i < 10000 && !(in8(d, LSR) & LSR_THRE); i++)
        ;
    out8(d, IER, IER_THRI);
    iir1 = in8(d, IIR);
    out8(d, IER, 0);
    out8(d, IER, IER_THRI);
    iir = in8(d, IIR);
    out8(d, IER, 0);
    assert_false(!(iir1 & IIR_NO_INT) && (iir & IIR_NO_INT));  /* no UART_BUG_THRE */
    assert_int_equal(iir1 & IIR_ID, IIR_THRI);

    out8(d, LCR, LCR_WLEN8);
    out8(d, MCR, MCR_DTR | MCR_RTS | MCR_OUT2);

    /* TXEN test: an interrupt must be pending right after enabling THRI. */
    out8(d, IER, IER_THRI);
    lsr = in8(d, LSR);
    iir = in8(d, IIR);
    out8(d, IER, 0);
    assert_false((lsr & LSR_TEMT) && (iir & IIR_NO_INT));     /* no UART_BUG_TXEN */

    in8(d, LSR);
    in8(d, RBR);
    in8(d, IIR);
    in8(d, MSR);
    l->ier = IER_RLSI | IER_RDI;
    out8(d, IER, l->ier);

    /* set_termios: 115200 baud, 8N1, 16550A FIFO with an 8-byte trigger. */
    out8(d, LCR, LCR_WLEN8 | LCR_DLAB);
    out8(d, DLL, 1);
    out8(d, DLM, 0);
    out8(d, LCR, LCR_WLEN8);
    out8(d, FCR, FCR_ENABLE);
    out8(d, FCR, FCR_ENABLE | FCR_TRIG_8);
    out8(d, IER, l->ier);

    /* Nothing is pending now, so the line must be low. */
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_NO_INT);
    assert_false(l->e->irq.level);
    l->seen_rises = l->e->irq.rises;
}

/* __stop_tx() */
static void linux_stop_tx(Linux8250 *l)
{
    if (l->ier & IER_THRI) {
        l->ier &= ~IER_THRI;
        out8(l->dev, IER, l->ier);
    }
}

/* serial8250_tx_chars(): up to tx_loadsz (16) bytes, without looking at LSR. */
static void linux_tx_chars(Linux8250 *l)
{
    unsigned count = 16, burst = 0;

    if (l->xmit_tail == l->xmit->len) {
        linux_stop_tx(l);
        return;
    }
    do {
        out8(l->dev, THR, l->xmit->str[l->xmit_tail++]);
        burst++;
        if (l->xmit_tail == l->xmit->len)
            break;
    } while (--count > 0);
    l->max_burst = MAX(l->max_burst, burst);
    if (l->xmit_tail == l->xmit->len)
        linux_stop_tx(l);
}

/* serial8250_handle_irq() */
static int linux_handle_irq(Linux8250 *l)
{
    Device *d = l->dev;
    uint8_t iir = in8(d, IIR), lsr;

    if (iir & IIR_NO_INT)
        return 0;
    lsr = in8(d, LSR);
    if ((lsr & (LSR_DR | LSR_BI)) && (iir & IIR_RDI)) {
        /* serial8250_rx_chars() */
        unsigned max_count = 256;

        do {
            g_string_append_c(l->rx, in8(d, RBR));
            if (--max_count == 0)
                break;
            lsr = in8(d, LSR);
        } while (lsr & (LSR_DR | LSR_BI));
    }
    in8(d, MSR);
    if (lsr & LSR_THRE)
        linux_tx_chars(l);
    return 1;
}

/* serial8250_interrupt() for a single port: until a pass handles nothing. */
static void linux_interrupt(Linux8250 *l)
{
    unsigned pass = 0;

    l->interrupts++;
    while (linux_handle_irq(l))
        assert_true(++pass < 512);
}

/*
 * ISA IRQ 4 is edge-triggered: the handler runs once per rising edge. A
 * device that leaves its line high with work pending gets no more interrupts,
 * which this catches as a stall.
 */
static void linux_deliver(Linux8250 *l)
{
    while (l->e->irq.rises > l->seen_rises) {
        l->seen_rises = l->e->irq.rises;
        linux_interrupt(l);
    }
}

/* uart_write() -> serial8250_start_tx() -> __start_tx() */
static void linux_write(Linux8250 *l, const char *s, size_t len)
{
    g_string_append_len(l->xmit, s, len);
    if (!(l->ier & IER_THRI)) {
        l->ier |= IER_THRI;
        out8(l->dev, IER, l->ier);
    }
    linux_deliver(l);
}

/* wait_for_xmitr(): up to 10000 polls of 1 us; the event loop drains meanwhile. */
static gboolean linux_wait_for_xmitr(Linux8250 *l, uint8_t bits, unsigned drain_every)
{
    for (unsigned tmout = 10000; tmout; tmout--) {
        if ((in8(l->dev, LSR) & bits) == bits)
            return TRUE;
        if (drain_every && tmout % drain_every == 0)
            harness_char_drain(l->e->chr);
    }
    return FALSE;
}

/* serial8250_console_write() */
static void linux_console_write(Linux8250 *l, const char *s, unsigned drain_every)
{
    uint8_t ier = in8(l->dev, IER);

    out8(l->dev, IER, 0);
    for (; *s; s++) {
        assert_true(linux_wait_for_xmitr(l, LSR_BOTH_EMPTY, drain_every));
        out8(l->dev, THR, *s);
    }
    assert_true(linux_wait_for_xmitr(l, LSR_BOTH_EMPTY, drain_every));
    out8(l->dev, IER, ier);
}

static void assert_output(HarnessEnv *e, const char *want, size_t len)
{
    const GByteArray *out = harness_char_output(e->chr);

    assert_int_equal(out->len, len);
    assert_memory_equal(out->data, want, len);
}

/* --- tests --- */

static void test_power_on_state(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    assert_int_equal(in8(d, IER), 0);
    assert_int_equal(in8(d, IIR), IIR_NO_INT);
    assert_int_equal(in8(d, LCR), 0);
    assert_int_equal(in8(d, MCR), 0);
    assert_int_equal(in8(d, LSR), LSR_BOTH_EMPTY);
    /* No modem: CTS, DSR and DCD asserted, as QEMU reports. */
    assert_int_equal(in8(d, MSR), MSR_CTS | MSR_DSR | MSR_DCD);
    assert_int_equal(in8(d, SCR), 0);
    assert_false(f->e->irq.level);
}

static void test_linux_autoconfig(void **state)
{
    Fixture *f = *state;
    Linux8250 l;

    linux_autoconfig(f->dev);
    /* 256 bytes went round in loopback; none may reach the backend. */
    assert_int_equal(harness_char_output(f->e->chr)->len, 0);
    assert_false(f->e->irq.level);

    linux_init(&l, f->dev, f->e);
    linux_startup(&l);
    /* 115200 baud stuck. */
    out8(f->dev, LCR, LCR_WLEN8 | LCR_DLAB);
    assert_int_equal(in8(f->dev, DLL), 1);
    assert_int_equal(in8(f->dev, DLM), 0);
    out8(f->dev, LCR, LCR_WLEN8);
    linux_cleanup(&l);
}

static void test_linux_tx_irq(void **state)
{
    Fixture *f = *state;
    g_autoptr(GString) msg = g_string_new(NULL);
    Linux8250 l;

    for (unsigned i = 0; i < 100; i++)
        g_string_append_printf(msg, "line %u of the boot log\n", i);
    linux_init(&l, f->dev, f->e);
    linux_startup(&l);
    linux_write(&l, msg->str, msg->len);

    assert_output(f->e, msg->str, msg->len);
    assert_int_equal(l.max_burst, 16);
    assert_int_equal(l.ier & IER_THRI, 0);
    /* Done: THRI off, line low, transmitter empty. */
    assert_false(f->e->irq.level);
    assert_int_equal(in8(f->dev, LSR) & LSR_BOTH_EMPTY, LSR_BOTH_EMPTY);
    linux_cleanup(&l);
}

static void test_backpressure_irq(void **state)
{
    Fixture *f = *state;
    g_autoptr(GString) msg = g_string_new(NULL);
    unsigned drains = 0;
    Linux8250 l;

    for (unsigned i = 0; i < 300; i++)
        g_string_append_c(msg, 'a' + i % 26);
    linux_init(&l, f->dev, f->e);
    linux_startup(&l);
    harness_char_set_limit(f->e->chr, 5);

    linux_write(&l, msg->str, msg->len);
    /* 16 written, 5 taken: the rest waits in the UART, THRE clear, no interrupt. */
    assert_int_equal(harness_char_output(f->e->chr)->len, 5);
    assert_int_equal(in8(f->dev, LSR) & LSR_BOTH_EMPTY, 0);
    assert_int_equal(in8(f->dev, IIR) & IIR_NO_INT, IIR_NO_INT);
    assert_false(f->e->irq.level);

    /* The event loop drains the backend; writable() brings THRE back. */
    while (l.xmit_tail < l.xmit->len || !(in8(f->dev, LSR) & LSR_TEMT)) {
        assert_true(harness_char_blocked(f->e->chr));
        harness_char_drain(f->e->chr);
        linux_deliver(&l);
        assert_true(++drains < 1000);
    }
    assert_output(f->e, msg->str, msg->len);
    assert_true(drains >= 300 / 5 - 1);
    harness_char_drain(f->e->chr);
    assert_false(f->e->irq.level);
    linux_cleanup(&l);
}

static void test_backpressure_console(void **state)
{
    Fixture *f = *state;
    const char *msg = "[    0.000000] Linux version 6.1.0 (vireo) #1 SMP PREEMPT_DYNAMIC\n";
    Linux8250 l;

    linux_init(&l, f->dev, f->e);
    linux_startup(&l);
    harness_char_set_limit(f->e->chr, 3);
    /* The console polls LSR; the loop thread drains every 50 polls meanwhile. */
    linux_console_write(&l, msg, 50);
    harness_char_drain(f->e->chr);
    assert_output(f->e, msg, strlen(msg));

    /* A stuck backend: the console gives up after 10 ms but the vCPU never blocks. */
    harness_char_clear_output(f->e->chr);
    harness_char_set_limit(f->e->chr, 0);
    harness_char_drain(f->e->chr);
    out8(f->dev, IER, 0);
    out8(f->dev, THR, 'x');
    assert_false(linux_wait_for_xmitr(&l, LSR_BOTH_EMPTY, 0));
    /* The byte is still held, and goes out once the backend has room. */
    harness_char_set_limit(f->e->chr, G_MAXSIZE);
    harness_char_drain(f->e->chr);
    assert_output(f->e, "x", 1);
    assert_int_equal(in8(f->dev, LSR) & LSR_BOTH_EMPTY, LSR_BOTH_EMPTY);
    linux_cleanup(&l);
}

static void test_linux_rx_irq(void **state)
{
    Fixture *f = *state;
    g_autoptr(GString) msg = g_string_new(NULL);
    unsigned pumps = 0, accepts;
    Linux8250 l;

    for (unsigned i = 0; i < 40; i++)
        g_string_append_c(msg, '0' + i % 10);
    linux_init(&l, f->dev, f->e);
    linux_startup(&l);

    /* The backend offers 40 bytes; the FIFO takes 16. */
    assert_int_equal(harness_char_input(f->e->chr, msg->str, msg->len), 16);
    assert_true(f->e->irq.level);
    assert_int_equal(in8(f->dev, IIR), 0xc0 | IIR_RDI);     /* 16 >= trigger 8 */
    accepts = harness_char_accept_input_calls(f->e->chr);
    linux_deliver(&l);
    assert_int_equal(l.rx->len, 16);
    /* Drained: the backend is told to read on. */
    assert_true(harness_char_accept_input_calls(f->e->chr) > accepts);
    assert_false(f->e->irq.level);
    while (harness_char_input_queued(f->e->chr)) {
        assert_true(harness_char_pump(f->e->chr) > 0);
        linux_deliver(&l);
        assert_true(++pumps < 10);
    }
    assert_int_equal(l.rx->len, msg->len);
    assert_memory_equal(l.rx->str, msg->str, msg->len);

    /* Below the trigger level: character timeout, signalled at once. */
    harness_char_input(f->e->chr, "abc", 3);
    assert_int_equal(in8(f->dev, IIR), 0xc0 | IIR_CTI);
    assert_true(f->e->irq.level);
    linux_deliver(&l);
    assert_int_equal(l.rx->len, msg->len + 3);
    assert_false(f->e->irq.level);
    linux_cleanup(&l);
}

static void test_rx_no_fifo(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    char got[8];

    /* FIFOs off, as firmware and early boot code leave them: one byte at a time. */
    out8(d, MCR, MCR_OUT2);
    out8(d, IER, IER_RDI);
    assert_int_equal(harness_char_input(f->e->chr, "ping", 4), 1);
    for (unsigned i = 0; i < 4; i++) {
        assert_true(f->e->irq.level);
        assert_int_equal(in8(d, IIR), IIR_RDI);
        got[i] = in8(d, RBR);
        assert_false(f->e->irq.level);
        assert_int_equal(harness_char_pump(f->e->chr), i < 3 ? 1 : 0);
    }
    assert_memory_equal(got, "ping", 4);
    assert_int_equal(in8(d, LSR) & (LSR_DR | LSR_OE), 0);
}

static void test_thre_interrupt_rules(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    out8(d, FCR, FCR_ENABLE);
    /* Without OUT2 the line stays low although an interrupt is pending. */
    out8(d, IER, IER_THRI);
    assert_false(f->e->irq.level);
    out8(d, MCR, MCR_OUT2);
    assert_true(f->e->irq.level);
    /* Reading IIR acknowledges THRI when it is the source. */
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_THRI);
    assert_false(f->e->irq.level);
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_NO_INT);
    /* Enabling THRI again with THR empty raises it again. */
    out8(d, IER, 0);
    out8(d, IER, IER_THRI);
    assert_true(f->e->irq.level);
    /* Writing THR clears it; with the backend full it stays clear... */
    harness_char_set_limit(f->e->chr, 0);
    out8(d, THR, 'A');
    assert_false(f->e->irq.level);
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_NO_INT);
    assert_int_equal(in8(d, LSR) & LSR_BOTH_EMPTY, 0);
    /* ...until the backend has room and the byte is gone. */
    harness_char_set_limit(f->e->chr, G_MAXSIZE);
    harness_char_drain(f->e->chr);
    assert_true(f->e->irq.level);
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_THRI);
    assert_output(f->e, "A", 1);
    /* With THRI disabled nothing is reported. */
    out8(d, IER, 0);
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_NO_INT);
}

static void test_interrupt_priority(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    /* Non-FIFO loopback: two bytes overrun RBR. */
    out8(d, MCR, MCR_LOOP | MCR_OUT2);
    in8(d, MSR);
    out8(d, THR, 'x');
    out8(d, THR, 'y');
    out8(d, MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);        /* DCTS for MSI */
    out8(d, IER, IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
    assert_true(f->e->irq.level);
    assert_int_equal(in8(d, IIR), IIR_RLSI);
    assert_int_equal(in8(d, LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
    assert_int_equal(in8(d, IIR), IIR_RDI);
    assert_int_equal(in8(d, RBR), 'y');
    assert_int_equal(in8(d, IIR), IIR_THRI);
    assert_int_equal(in8(d, IIR), IIR_MSI);
    assert_int_equal(in8(d, MSR) & MSR_DCTS, MSR_DCTS);
    assert_int_equal(in8(d, IIR), IIR_NO_INT);
    assert_false(f->e->irq.level);
}

static void test_loopback_and_msr(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    unsigned accepts;

    in8(d, MSR);
    out8(d, MCR, MCR_LOOP);
    /* The no-modem inputs drop: deltas for CTS, DSR and DCD. */
    assert_int_equal(in8(d, MSR), MSR_DCTS | MSR_DDSR | MSR_DDCD);
    assert_int_equal(in8(d, MSR), 0);
    out8(d, MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2);
    assert_int_equal(in8(d, MSR), MSR_CTS | MSR_DSR | MSR_RI | MSR_DCD |
                                  MSR_DCTS | MSR_DDSR | MSR_DDCD);
    /* RI's trailing edge sets TERI; its leading edge did not. */
    out8(d, MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2);
    assert_int_equal(in8(d, MSR), MSR_CTS | MSR_DSR | MSR_DCD | MSR_TERI);

    /* In loopback, output comes back as input and the serial input is cut off. */
    out8(d, FCR, FCR_ENABLE);
    out8(d, THR, 'L');
    assert_int_equal(harness_char_output(f->e->chr)->len, 0);
    assert_int_equal(harness_char_input(f->e->chr, "ext", 3), 0);
    assert_int_equal(in8(d, RBR), 'L');
    assert_int_equal(in8(d, LSR) & LSR_DR, 0);
    /* Leaving loopback lets the backend deliver again. */
    accepts = harness_char_accept_input_calls(f->e->chr);
    out8(d, MCR, 0);
    assert_true(harness_char_accept_input_calls(f->e->chr) > accepts);
    assert_int_equal(harness_char_pump(f->e->chr), 3);
    assert_int_equal(in8(d, RBR), 'e');
    /* And output goes to the backend again. */
    out8(d, THR, 'o');
    assert_output(f->e, "o", 1);
}

static void test_registers(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    /* Scratch register: Linux tells an 8250 from a 16450 by it. */
    out8(d, SCR, 0xa5);
    assert_int_equal(in8(d, SCR), 0xa5);
    /* DLAB switches offsets 0 and 1 to the divisor latch. */
    out8(d, IER, 0x05);
    out8(d, LCR, LCR_DLAB | LCR_WLEN8);
    out8(d, DLL, 0x34);
    out8(d, DLM, 0x12);
    assert_int_equal(in8(d, DLL), 0x34);
    assert_int_equal(in8(d, DLM), 0x12);
    assert_int_equal(harness_char_output(f->e->chr)->len, 0);
    out8(d, LCR, LCR_WLEN8);
    assert_int_equal(in8(d, IER), 0x05);
    assert_int_equal(in8(d, LCR), LCR_WLEN8);
    /* IER and MCR keep only the bits a 16550A has. */
    out8(d, IER, 0xff);
    assert_int_equal(in8(d, IER), 0x0f);
    out8(d, MCR, 0xff & ~MCR_LOOP);
    assert_int_equal(in8(d, MCR), 0x0f);
    /* A 2-byte access reaches two registers, as on the ISA bus. */
    out8(d, MCR, 0);
    harness_write(d, SCR - 1, 2, 0x5a00);      /* MSR (ignored), SCR */
    assert_int_equal(in8(d, SCR), 0x5a);
    assert_int_equal(harness_read(d, LCR, 2), LCR_WLEN8);
    /* Writes to the read-only LSR and MSR are ignored with a guest warning. */
    harness_take_guest_warnings();
    out8(d, LSR, 0);
    assert_int_equal(harness_take_guest_warnings(), 1);
    assert_int_equal(in8(d, LSR) & LSR_BOTH_EMPTY, LSR_BOTH_EMPTY);
}

static void test_reset(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    unsigned accepts;

    out8(d, FCR, FCR_ENABLE | FCR_TRIG_8);
    out8(d, LCR, LCR_WLEN8);
    out8(d, MCR, MCR_OUT2 | MCR_DTR);
    out8(d, IER, IER_RDI | IER_THRI);
    out8(d, SCR, 0x77);
    harness_char_input(f->e->chr, "xyz", 3);
    assert_true(f->e->irq.level);

    accepts = harness_char_accept_input_calls(f->e->chr);
    device_reset(d);
    assert_false(f->e->irq.level);
    assert_int_equal(in8(d, IER), 0);
    assert_int_equal(in8(d, IIR), IIR_NO_INT);
    assert_int_equal(in8(d, LCR), 0);
    assert_int_equal(in8(d, MCR), 0);
    assert_int_equal(in8(d, LSR), LSR_BOTH_EMPTY);
    assert_int_equal(in8(d, MSR), MSR_CTS | MSR_DSR | MSR_DCD);
    assert_int_equal(in8(d, SCR), 0);
    out8(d, LCR, LCR_DLAB);
    assert_int_equal(in8(d, DLL), 0x0c);
    out8(d, LCR, 0);
    /* The dropped input room is offered to the backend again. */
    assert_true(harness_char_accept_input_calls(f->e->chr) > accepts);

    /* Linux comes up again after the reset. */
    Linux8250 l;

    linux_init(&l, d, f->e);
    linux_autoconfig(d);
    linux_startup(&l);
    linux_write(&l, "after reset\n", 12);
    assert_output(f->e, "after reset\n", 12);
    linux_cleanup(&l);
}

/* Reads every register of both UARTs, in the same order, and compares. */
static void assert_same_behaviour(Device *a, HarnessEnv *ea, Device *b, HarnessEnv *eb)
{
    static const unsigned order[] = { IIR, LSR, MSR, IER, LCR, MCR, SCR, IIR, LSR };

    for (size_t i = 0; i < G_N_ELEMENTS(order); i++)
        assert_int_equal(in8(a, order[i]), in8(b, order[i]));
    assert_int_equal(ea->irq.level, eb->irq.level);
    out8(a, LCR, in8(a, LCR) | LCR_DLAB);
    out8(b, LCR, in8(b, LCR) | LCR_DLAB);
    assert_int_equal(in8(a, DLL), in8(b, DLL));
    assert_int_equal(in8(a, DLM), in8(b, DLM));
    out8(a, LCR, in8(a, LCR) & ~LCR_DLAB);
    out8(b, LCR, in8(b, LCR) & ~LCR_DLAB);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    g_autoptr(HarnessEnv) e2 = harness_env_new("serial0", 0);
    Device *d2;

    /* A busy UART: input waiting, output held back by the backend, an overrun. */
    out8(d, LCR, LCR_WLEN8 | LCR_DLAB);
    out8(d, DLL, 3);
    out8(d, LCR, LCR_WLEN8);
    out8(d, FCR, FCR_ENABLE | FCR_TRIG_8);
    out8(d, MCR, MCR_OUT2 | MCR_RTS);
    out8(d, IER, IER_RDI | IER_THRI | IER_RLSI);
    out8(d, SCR, 0x42);
    harness_char_input(f->e->chr, "0123456789abcdefXY", 18);
    harness_char_set_limit(f->e->chr, 2);
    for (const char *p = "hello"; *p; p++)
        out8(d, THR, *p);
    assert_int_equal(harness_char_output(f->e->chr)->len, 2);

    d2 = harness_clone(d, e2, UART, NULL);
    /* The new backend gets what the old one never took. */
    assert_output(e2, "llo", 3);
    assert_true(e2->irq.level);
    /* The old backend drains too, so both are at the same point. */
    harness_char_set_limit(f->e->chr, G_MAXSIZE);
    harness_char_drain(f->e->chr);
    assert_output(f->e, "hello", 5);

    assert_same_behaviour(d, f->e, d2, e2);
    /* Follow-up behaviour: the rest of the input, more output. */
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(in8(d, RBR), in8(d2, RBR));
    assert_int_equal(in8(d, LSR), in8(d2, LSR));
    assert_int_equal(harness_char_pump(f->e->chr), harness_char_input(e2->chr, "XY", 2));
    out8(d, THR, '!');
    out8(d2, THR, '!');
    assert_int_equal(in8(d, RBR), in8(d2, RBR));
    assert_same_behaviour(d, f->e, d2, e2);
    assert_int_equal(harness_char_output(e2->chr)->data[3], '!');
    device_free(d2);
}

static void test_bad_state(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    static const HarnessPoke pokes[] = {
        { "ier", 0, 0xf0 }, { "mcr", 0, 0xe0 }, { "fcr", 0, 0x06 }, { "lsr-errors", 0, 0x80 },
        { "msr-deltas", 0, 0x10 }, { "thr-ipending", 0, 2 }, { "rx-fifo", 0, 17 },
        { "tx-fifo", 0, 200 },
        { "fcr", 0, 0x00 },    /* FIFOs off: 3 RX bytes cannot be there */
    };

    out8(d, FCR, FCR_ENABLE);
    out8(d, IER, IER_RDI);
    harness_char_input(f->e->chr, "abc", 3);
    harness_check_corrupt_state(d, pokes, G_N_ELEMENTS(pokes), FALSE);
    /* Same behaviour after the failed loads. */
    assert_int_equal(in8(d, IIR), 0xc0 | IIR_RDI);
    assert_int_equal(in8(d, RBR), 'a');
}

static void test_options(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("serial0", 0);
    g_autofree char *msg = harness_device_new_fail(e, UART, "speed=9600",
                                                   VIREO_ERROR_INVALID_ARGUMENT);

    assert_non_null(strstr(msg, "speed"));
}

static void test_no_backend(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("serial0", 0);
    Device *d;

    /* Without a backend output is dropped and THRE never waits. */
    e->env.chr = NULL;
    d = harness_device_new(e, UART, NULL);
    out8(d, THR, 'x');
    assert_int_equal(in8(d, LSR) & LSR_BOTH_EMPTY, LSR_BOTH_EMPTY);
    device_free(d);
}

static void hostile_extra(Device *dev, HarnessEnv *e, GRand *rand)
{
    /* The loop thread's callbacks at awkward moments. */
    harness_char_drain(e->chr);
    harness_char_pump(e->chr);
}

static void test_hostile_guest(void **state)
{
    Fixture *f = *state;
    Linux8250 l;

    harness_hostile(f->dev, f->e, 8, 0x16550a, 300000, hostile_extra);
    harness_take_guest_warnings();
    /* Still a working UART afterwards. */
    harness_char_set_limit(f->e->chr, G_MAXSIZE);
    harness_char_drain(f->e->chr);
    harness_char_discard_input(f->e->chr);
    device_reset(f->dev);
    harness_char_clear_output(f->e->chr);
    linux_init(&l, f->dev, f->e);
    linux_autoconfig(f->dev);
    linux_startup(&l);
    linux_write(&l, "ok\n", 3);
    assert_output(f->e, "ok\n", 3);
    linux_cleanup(&l);
}

/* --- threads --- */

/*
 * A backend whose callbacks come from another thread, as the event loop's
 * do: input and writable() race with the vCPU's register accesses.
 */
typedef struct ThreadChar {
    CharBackend be;
    GMutex lock;                /* taken inside write(), under dev->lock */
    const CharFrontendOps *fe;
    void *opaque;
    GString *out;
    size_t pending;
    gboolean refused;
    gint stop;
} ThreadChar;

static size_t thread_char_write(CharBackend *be, const uint8_t *buf, size_t len)
{
    ThreadChar *c = (ThreadChar *)be;
    size_t n;

    g_mutex_lock(&c->lock);
    n = MIN(len, 7 - MIN(c->pending, 7));
    g_string_append_len(c->out, (const char *)buf, n);
    c->pending += n;
    if (n < len)
        c->refused = TRUE;
    g_mutex_unlock(&c->lock);
    return n;
}

static void thread_char_set_frontend(CharBackend *be, const CharFrontendOps *ops, void *opaque)
{
    ThreadChar *c = (ThreadChar *)be;

    g_mutex_lock(&c->lock);
    c->fe = ops;
    c->opaque = opaque;
    g_mutex_unlock(&c->lock);
}

static void thread_char_accept_input(CharBackend *be)
{
}

static const CharBackendOps thread_char_ops = {
    .write = thread_char_write,
    .set_frontend = thread_char_set_frontend,
    .accept_input = thread_char_accept_input,
};

static gpointer thread_char_loop(gpointer data)
{
    ThreadChar *c = data;
    unsigned sent = 0;

    while (!g_atomic_int_get(&c->stop)) {
        uint8_t buf[16];
        gboolean notify;
        size_t n;

        g_mutex_lock(&c->lock);
        c->pending = 0;
        notify = c->refused;
        c->refused = FALSE;
        g_mutex_unlock(&c->lock);
        /* Frontend callbacks without our lock, as vmm/chardev.c does. */
        if (notify)
            c->fe->writable(c->opaque);
        n = MIN(c->fe->can_receive(c->opaque), sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = 'a' + (sent + i) % 26;
        if (n) {
            c->fe->receive(c->opaque, buf, n);
            sent += n;
        }
        g_thread_yield();
    }
    return NULL;
}

static void test_threads(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("serial0", 0);
    ThreadChar c = { .be.ops = &thread_char_ops };
    g_autoptr(GString) rx = g_string_new(NULL);
    GThread *loop;
    Device *d;
    unsigned written = 0;

    g_mutex_init(&c.lock);
    c.out = g_string_new(NULL);
    e->env.chr = &c.be;
    d = harness_device_new(e, UART, NULL);
    out8(d, FCR, FCR_ENABLE);
    loop = g_thread_new("loop", thread_char_loop, &c);
    /*
     * Until enough went both ways: bounded in time, not iterations, since
     * on a loaded machine the loop thread may get little CPU.
     */
    for (gint64 end = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
         (rx->len < 2000 || written < 5000) && g_get_monotonic_time() < end;) {
        uint8_t lsr = in8(d, LSR);

        if (lsr & LSR_DR)
            g_string_append_c(rx, in8(d, RBR));
        if ((lsr & LSR_THRE) && written < 5000)
            out8(d, THR, '0' + written++ % 10);
        if (!(lsr & (LSR_DR | LSR_THRE)))
            g_thread_yield();
    }
    /* Let the loop thread take the last of the output before it stops. */
    for (unsigned i = 0; i < 10000000 && !(in8(d, LSR) & LSR_TEMT); i++)
        g_thread_yield();
    g_atomic_int_set(&c.stop, 1);
    g_thread_join(loop);
    device_free(d);

    /* In order and nothing lost, in both directions. */
    for (size_t i = 0; i < rx->len; i++)
        assert_int_equal(rx->str[i], 'a' + i % 26);
    assert_true(rx->len >= 2000);
    assert_int_equal(written, 5000);
    assert_int_equal(c.out->len, written);
    for (size_t i = 0; i < c.out->len; i++)
        assert_int_equal(c.out->str[i], '0' + i % 10);
    g_string_free(c.out, TRUE);
    g_mutex_clear(&c.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_on_state, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_registers, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_linux_autoconfig, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_linux_tx_irq, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_irq, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_console, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_linux_rx_irq, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rx_no_fifo, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_thre_interrupt_rules, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_interrupt_priority, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_loopback_and_msr, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reset, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_save_load, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_state, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_no_backend),
        cmocka_unit_test(test_threads),
        cmocka_unit_test_setup_teardown(test_hostile_guest, fixture_setup, fixture_teardown),
    };

    harness_init();
    return cmocka_run_group_tests_name("uart-16550a", tests, NULL, NULL);
}
