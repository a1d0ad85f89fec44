/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * i8042, driven as Linux's drivers/input/serio/i8042.c probes it (flush,
 * self-test, command byte, aux checks, keyboard port) and as atkbd talks to
 * the keyboard through it, plus the reset paths, the IRQ 1 rules, reset,
 * save/load and a hostile guest.
 */
#include <string.h>

#include "harness.h"

#define I8042 "i8042"
#define DATA 0
#define CMD 4

#define STR_OBF         0x01
#define STR_IBF         0x02
#define STR_SYS         0x04
#define STR_CMD         0x08
#define STR_UNLOCKED    0x10
#define STR_AUXDATA     0x20
#define STR_TIMEOUT     0x40

#define CTR_KBDINT      0x01
#define CTR_AUXINT      0x02
#define CTR_SYS         0x04
#define CTR_KBDDIS      0x10
#define CTR_AUXDIS      0x20
#define CTR_XLATE       0x40

typedef struct Fixture {
    HarnessEnv *e;
    Device *dev;
} Fixture;

static int fixture_setup(void **state)
{
    Fixture *f = g_new0(Fixture, 1);

    f->e = harness_env_new("i8042", 0);
    f->dev = harness_device_new(f->e, I8042, NULL);
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    Fixture *f = *state;

    device_free(f->dev);
    harness_env_free(f->e);
    g_free(f);
    return 0;
}

static uint8_t status(Device *d)
{
    return harness_read8(d, CMD);
}

static uint8_t data(Device *d)
{
    return harness_read8(d, DATA);
}

/* i8042_wait_write(): the controller never keeps the input buffer full. */
static void wait_write(Device *d)
{
    assert_int_equal(status(d) & STR_IBF, 0);
}

/* i8042_wait_read() then i8042_read_data(). */
static uint8_t read_reply(Device *d)
{
    assert_int_equal(status(d) & STR_OBF, STR_OBF);
    return data(d);
}

/*
 * i8042_command(): @command encodes parameter and result counts as Linux's
 * I8042_CMD_* do (0x1060: one parameter; 0x0120: one result).
 */
static void i8042_command(Device *d, uint8_t *param, unsigned command)
{
    wait_write(d);
    harness_write8(d, CMD, command & 0xff);
    for (unsigned i = 0; i < ((command >> 12) & 0xf); i++) {
        wait_write(d);
        harness_write8(d, DATA, param[i]);
    }
    for (unsigned i = 0; i < ((command >> 8) & 0xf); i++)
        param[i] = read_reply(d);
}

#define I8042_CMD_CTL_RCTR      0x0120
#define I8042_CMD_CTL_WCTR      0x1060
#define I8042_CMD_CTL_TEST      0x01aa
#define I8042_CMD_KBD_DISABLE   0x00ad
#define I8042_CMD_KBD_ENABLE    0x00ae
#define I8042_CMD_KBD_TEST      0x01ab
#define I8042_CMD_AUX_DISABLE   0x00a7
#define I8042_CMD_AUX_ENABLE    0x00a8
#define I8042_CMD_AUX_TEST      0x01a9
#define I8042_CMD_AUX_LOOP      0x11d3

/* i8042_flush(): at most I8042_BUFFER_SIZE bytes, or "no controller". */
static void linux_flush(Device *d)
{
    unsigned count = 0;

    while (status(d) & STR_OBF) {
        assert_true(count++ < 16);
        data(d);
    }
}

/*
 * The keyboard's reply bytes, one interrupt each (IRQ 1 is edge-triggered):
 * @seen is the count of rising edges before the bytes were asked for.
 */
static unsigned kbd_replies(Fixture *f, unsigned seen, uint8_t *buf, unsigned max)
{
    unsigned n = 0;

    /* i8042_interrupt(): status, then data, once per edge. */
    for (;;) {
        if (f->e->irq.rises == seen)
            break;
        seen = f->e->irq.rises;
        uint8_t str = status(f->dev);

        assert_int_equal(str & (STR_OBF | STR_AUXDATA), STR_OBF);
        assert_true(n < max);
        buf[n++] = data(f->dev);
    }
    assert_false(f->e->irq.level);
    return n;
}

/* ps2_command() through i8042_kbd_write(): bytes out, replies by interrupt. */
static unsigned kbd_command(Fixture *f, const uint8_t *out, unsigned nout, uint8_t *in,
                            unsigned max)
{
    unsigned n = 0;

    for (unsigned i = 0; i < nout; i++) {
        unsigned seen = f->e->irq.rises;

        wait_write(f->dev);
        harness_write8(f->dev, DATA, out[i]);
        n += kbd_replies(f, seen, in + n, max - n);
    }
    return n;
}

static void test_linux_probe(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    uint8_t param, ctr[2], ctr_now, buf[8];

    /* i8042_controller_check() and i8042_controller_selftest() */
    linux_flush(d);
    i8042_command(d, &param, I8042_CMD_CTL_TEST);
    assert_int_equal(param, 0x55);
    assert_int_equal(status(d) & STR_SYS, STR_SYS);

    /* i8042_controller_init(): the command byte reads the same twice. */
    i8042_command(d, &ctr[0], I8042_CMD_CTL_RCTR);
    i8042_command(d, &ctr[1], I8042_CMD_CTL_RCTR);
    assert_int_equal(ctr[0], ctr[1]);
    assert_int_equal(status(d) & STR_UNLOCKED, STR_UNLOCKED);     /* no keylock */
    ctr_now = (ctr[0] | CTR_KBDDIS) & ~CTR_KBDINT;
    i8042_command(d, &ctr_now, I8042_CMD_CTL_WCTR);
    linux_flush(d);
    i8042_command(d, &param, I8042_CMD_CTL_RCTR);
    assert_int_equal(param, ctr_now);

    /* i8042_check_aux(): the loopback comes back as aux data. */
    param = 0x5a;
    wait_write(d);
    harness_write8(d, CMD, 0xd3);
    harness_write8(d, DATA, param);
    assert_int_equal(status(d) & (STR_OBF | STR_AUXDATA), STR_OBF | STR_AUXDATA);
    assert_int_equal(data(d), 0x5a);
    i8042_command(d, &param, I8042_CMD_AUX_TEST);
    assert_int_equal(param, 0x00);
    /* Bit assignment test. */
    i8042_command(d, &param, I8042_CMD_AUX_DISABLE);
    i8042_command(d, &param, I8042_CMD_CTL_RCTR);
    assert_int_equal(param & CTR_AUXDIS, CTR_AUXDIS);
    i8042_command(d, &param, I8042_CMD_AUX_ENABLE);
    i8042_command(d, &param, I8042_CMD_CTL_RCTR);
    assert_int_equal(param & CTR_AUXDIS, 0);
    /* IRQ 12 delivery test: aux data never raises the keyboard's IRQ 1. */
    ctr_now = param | CTR_AUXINT | CTR_KBDINT;
    i8042_command(d, &ctr_now, I8042_CMD_CTL_WCTR);
    harness_write8(d, CMD, 0xd3);
    harness_write8(d, DATA, 0xa5);
    assert_false(f->e->irq.level);
    linux_flush(d);
    ctr_now = (ctr_now | CTR_AUXDIS) & ~(CTR_AUXINT | CTR_KBDINT);
    i8042_command(d, &ctr_now, I8042_CMD_CTL_WCTR);

    /* i8042_enable_kbd_port() */
    ctr_now = (ctr_now & ~CTR_KBDDIS) | CTR_KBDINT;
    i8042_command(d, &ctr_now, I8042_CMD_CTL_WCTR);
    assert_false(f->e->irq.level);

    /* atkbd_probe(): GETID answers ACK and an MF2 id, one interrupt per byte. */
    unsigned rises = f->e->irq.rises;
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf2 }, 1, buf, sizeof(buf)), 3);
    assert_int_equal(f->e->irq.rises - rises, 3);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xab, 0x83 }), 3);
    /* atkbd_select_set(), atkbd_activate(): set 2, LEDs, rate, enable. */
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf0, 0x02 }, 2, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xfa }), 2);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf0, 0x00 }, 2, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xfa, 0x02 }), 3);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xed, 0x00 }, 2, buf, sizeof(buf)), 2);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf3, 0x2b }, 2, buf, sizeof(buf)), 2);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf4 }, 1, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 0xfa);
    assert_int_equal(harness_take_guest_warnings(), 0);
}

static void test_keyboard_commands(void **state)
{
    Fixture *f = *state;
    uint8_t buf[8];

    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xff }, 1, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xaa }), 2);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xee }, 1, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 0xee);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf5 }, 1, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 0xfa);
    /* Resend repeats the last byte. */
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xfe }, 1, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 0xfa);
    /* Unknown command: "resend". */
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0x42 }, 1, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 0xfe);
    /* A command where an argument was due starts over. */
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xed, 0xf4 }, 2, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xfa }), 2);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf0, 0x07 }, 2, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xfe }), 2);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf0, 0x01, 0xf0, 0x00 }, 4, buf,
                                 sizeof(buf)), 5);
    assert_int_equal(buf[4], 0x01);
    /* Translated, the identity and the scan set read as set 1 codes. */
    harness_write8(f->dev, CMD, 0x60);
    harness_write8(f->dev, DATA, CTR_KBDINT | CTR_XLATE);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf2 }, 1, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, ((const uint8_t[]){ 0xfa, 0xab, 0x41 }), 3);
    assert_int_equal(kbd_command(f, (const uint8_t[]){ 0xf0, 0x00 }, 2, buf, sizeof(buf)), 3);
    assert_int_equal(buf[2], 0x43);
}

static void test_controller_commands(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    uint8_t param;

    /* Status CMD bit: where the last write went. */
    harness_write8(d, CMD, 0xad);
    assert_int_equal(status(d) & STR_CMD, STR_CMD);
    i8042_command(d, &param, I8042_CMD_KBD_TEST);
    assert_int_equal(param, 0);
    i8042_command(d, &param, I8042_CMD_CTL_RCTR);
    assert_int_equal(param & CTR_KBDDIS, CTR_KBDDIS);
    /* A disabled keyboard's replies wait until it is enabled. */
    harness_write8(d, CMD, 0x60);
    harness_write8(d, DATA, CTR_KBDDIS);
    assert_int_equal(status(d) & STR_CMD, 0);
    /* (Sending to the keyboard enables it, so queue a reply with 0xd2 instead.) */
    harness_write8(d, CMD, 0xd2);
    harness_write8(d, DATA, 0x1c);
    assert_int_equal(read_reply(d), 0x1c);
    assert_int_equal(status(d) & STR_OBF, 0);

    /* Output port: reset and A20 high; bit 4 mirrors a full output buffer. */
    i8042_command(d, &param, 0x01d0);
    assert_int_equal(param, 0xcf);
    harness_write8(d, CMD, 0xd2);
    harness_write8(d, DATA, 0x00);
    harness_write8(d, CMD, 0xd0);
    data(d);
    assert_int_equal(read_reply(d), 0xdf);
    harness_write8(d, CMD, 0xdd);
    i8042_command(d, &param, 0x01d0);
    assert_int_equal(param, 0xcd);

    /* 0xd3 echoes as aux data, 0xd4 finds no mouse. */
    harness_write8(d, CMD, 0xd3);
    harness_write8(d, DATA, 0x77);
    assert_int_equal(status(d) & (STR_AUXDATA | STR_TIMEOUT), STR_AUXDATA);
    assert_int_equal(data(d), 0x77);
    harness_write8(d, CMD, 0xd4);
    harness_write8(d, DATA, 0xff);
    assert_int_equal(status(d) & (STR_OBF | STR_AUXDATA | STR_TIMEOUT),
                     STR_OBF | STR_AUXDATA | STR_TIMEOUT);
    assert_int_equal(data(d), 0xfe);
    assert_int_equal(status(d) & (STR_OBF | STR_TIMEOUT), 0);

    /* Internal RAM beyond the command byte. */
    harness_write8(d, CMD, 0x65);
    harness_write8(d, DATA, 0x99);
    i8042_command(d, &param, 0x0125);
    assert_int_equal(param, 0x99);
    i8042_command(d, &param, 0x01c0);
    assert_int_equal(param, 0x80);
    i8042_command(d, &param, 0x01e0);
    assert_int_equal(param, 0x00);
    i8042_command(d, &param, 0x01a4);
    assert_int_equal(param, 0xf1);
    /* A new command abandons one waiting for its data. */
    harness_write8(d, CMD, 0x60);
    harness_write8(d, CMD, 0xae);
    harness_write8(d, DATA, 0xf4);             /* goes to the keyboard */
    assert_int_equal(read_reply(d), 0xfa);
    /* Unknown commands are ignored with a warning. */
    harness_take_guest_warnings();
    harness_write8(d, CMD, 0x05);
    assert_int_equal(harness_take_guest_warnings(), 1);
    assert_int_equal(status(d) & STR_OBF, 0);
    assert_int_equal(f->e->machine.requests, 0);
}

static void test_system_reset(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    HarnessMachine *m = &f->e->machine;

    /* The common way: pulse output port bit 0. */
    harness_write8(d, CMD, 0xfe);
    assert_int_equal(m->resets, 1);
    assert_int_equal(m->last, MACHINE_REQUEST_RESET);
    /* Any pulse with bit 0 clear resets; with bit 0 set it does not. */
    for (unsigned cmd = 0xf0; cmd <= 0xff; cmd++)
        harness_write8(d, CMD, cmd);
    assert_int_equal(m->resets, 1 + 8);
    /* Writing the output port with bit 0 clear. */
    harness_write8(d, CMD, 0xd1);
    harness_write8(d, DATA, 0xdf);
    assert_int_equal(m->resets, 9);
    harness_write8(d, CMD, 0xd1);
    harness_write8(d, DATA, 0xde);
    assert_int_equal(m->resets, 10);
    assert_int_equal(m->requests, 10);
}

static void test_irq(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    unsigned rises;

    /* Keyboard interrupt enabled: a full output buffer raises IRQ 1. */
    harness_write8(d, CMD, 0xd2);
    harness_write8(d, DATA, 0x01);
    assert_true(f->e->irq.level);
    data(d);
    assert_false(f->e->irq.level);
    /* Two bytes: two edges, as the handler reads one byte per interrupt. */
    rises = f->e->irq.rises;
    harness_write8(d, DATA, 0xff);             /* FA AA */
    assert_int_equal(f->e->irq.rises - rises, 1);
    assert_int_equal(data(d), 0xfa);
    assert_true(f->e->irq.level);
    assert_int_equal(f->e->irq.rises - rises, 2);
    assert_int_equal(data(d), 0xaa);
    assert_false(f->e->irq.level);
    /* Interrupt off: no IRQ; turning it on with a byte waiting raises it. */
    harness_write8(d, CMD, 0x60);
    harness_write8(d, DATA, 0);
    harness_write8(d, CMD, 0xd2);
    harness_write8(d, DATA, 0x02);
    assert_false(f->e->irq.level);
    harness_write8(d, CMD, 0x60);
    harness_write8(d, DATA, CTR_KBDINT);
    assert_true(f->e->irq.level);
    /* The byte stays readable after it was taken, as on hardware. */
    assert_int_equal(data(d), 0x02);
    assert_int_equal(data(d), 0x02);
}

static void test_other_offsets(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;

    /* Ports 0x61-0x63 belong to other devices. */
    harness_take_guest_warnings();
    for (unsigned off = 1; off < 4; off++) {
        assert_int_equal(harness_read8(d, off), 0xff);
        harness_write8(d, off, 0xfe);
    }
    assert_int_equal(harness_take_guest_warnings(), 6);
    assert_int_equal(f->e->machine.requests, 0);
    /* A wide access spanning both ports handles each byte. */
    harness_write8(d, CMD, 0xd2);
    harness_write8(d, DATA, 0x33);
    assert_int_equal(harness_read(d, 1, 4), 0x11ffffff);      /* 3 x 0xff, then OBF | UNLOCKED */
}

static void test_reset(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    uint8_t param;

    harness_write8(d, CMD, 0x60);
    harness_write8(d, DATA, CTR_KBDINT | CTR_XLATE | CTR_KBDDIS);
    harness_write8(d, CMD, 0xaa);
    harness_write8(d, CMD, 0xd2);
    harness_write8(d, DATA, 0x44);
    harness_write8(d, CMD, 0xdd);
    harness_write8(d, CMD, 0x60);              /* waiting for data */
    device_reset(d);
    assert_false(f->e->irq.level);
    assert_int_equal(status(d), STR_UNLOCKED);
    harness_write8(d, DATA, 0xf4);             /* a keyboard command, not a command byte */
    assert_int_equal(read_reply(d), 0xfa);
    i8042_command(d, &param, I8042_CMD_CTL_RCTR);
    assert_int_equal(param, CTR_KBDINT | CTR_AUXINT);
    i8042_command(d, &param, 0x01d0);
    assert_int_equal(param, 0xcf);
}

static void test_save_load(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    g_autoptr(HarnessEnv) e2 = harness_env_new("i8042", 0);
    Device *d2;

    /* Replies queued in both queues, one command and one keyboard argument pending. */
    harness_write8(d, CMD, 0x60);
    harness_write8(d, DATA, CTR_KBDINT | CTR_SYS);
    harness_write8(d, DATA, 0xff);             /* FA AA from the keyboard */
    harness_write8(d, DATA, 0xed);             /* FA, LED argument pending */
    harness_write8(d, CMD, 0x20);              /* the command byte */
    harness_write8(d, CMD, 0xd3);
    harness_write8(d, DATA, 0x5a);             /* aux echo */
    harness_write8(d, CMD, 0x61);              /* RAM write pending */
    assert_true(f->e->irq.level);

    d2 = harness_clone(d, e2, I8042, NULL);
    assert_true(e2->irq.level);
    assert_int_equal(status(d), status(d2));
    /* Finish the pending command and argument on both; then read everything out. */
    harness_write8(d, DATA, 0x12);
    harness_write8(d2, DATA, 0x12);
    harness_write8(d, DATA, 0x03);
    harness_write8(d2, DATA, 0x03);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(status(d), status(d2));
        assert_int_equal(f->e->irq.level, e2->irq.level);
        assert_int_equal(data(d), data(d2));
    }
    harness_write8(d, CMD, 0x21);
    harness_write8(d2, CMD, 0x21);
    assert_int_equal(data(d), 0x12);
    assert_int_equal(data(d2), 0x12);
    device_free(d2);
}

static void test_bad_state(void **state)
{
    Fixture *f = *state;
    Device *d = f->dev;
    static const HarnessPoke pokes[] = {
        { "status", 0, 0xff }, { "pending-cmd", 0, 0x33 }, { "obf", 0, 2 },
        { "out-flags", 0, 0x80 }, { "ctrl-queue", 0, 17 }, { "ctrl-queue-flags", 0, 0 },
        { "ctrl-queue-flags", 4, 0x10 }, { "kbd-pending", 0, 0x42 }, { "kbd-scanset", 0, 0 },
        { "kbd-scanset", 0, 4 }, { "kbd-scanning", 0, 7 }, { "ram", 0, 31 },
    };

    harness_write8(d, CMD, 0xd3);
    harness_write8(d, DATA, 1);
    harness_write8(d, CMD, 0xd3);
    harness_write8(d, DATA, 2);
    harness_check_corrupt_state(d, pokes, G_N_ELEMENTS(pokes), FALSE);
    assert_int_equal(data(d), 1);
    assert_int_equal(data(d), 2);
}

static void test_options(void **state)
{
    g_autoptr(HarnessEnv) e = harness_env_new("i8042", 0);

    g_free(harness_device_new_fail(e, I8042, "mouse=on", VIREO_ERROR_INVALID_ARGUMENT));
}

static void test_hostile_guest(void **state)
{
    Fixture *f = *state;
    uint8_t param;

    harness_hostile(f->dev, f->e, 5, 0x8042, 300000, NULL);
    harness_take_guest_warnings();
    /* Still a working controller. */
    device_reset(f->dev);
    linux_flush(f->dev);
    i8042_command(f->dev, &param, I8042_CMD_CTL_TEST);
    assert_int_equal(param, 0x55);
    assert_true(f->e->machine.resets > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_linux_probe, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_keyboard_commands, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_controller_commands, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_system_reset, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_irq, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_other_offsets, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reset, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_save_load, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_state, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_options),
        cmocka_unit_test_setup_teardown(test_hostile_guest, fixture_setup, fixture_teardown),
    };

    harness_init();
    return cmocka_run_group_tests_name("i8042", tests, NULL, NULL);
}
