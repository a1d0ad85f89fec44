/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whole-machine state on real KVM: vCPUs (registers, segments, FPU/XSAVE,
 * MSRs, LAPIC, events, MP state), the in-kernel irqchip, PIT and clock,
 * and every device.
 *
 * A guest program runs until it idles with interrupts set up, the machine
 * is stopped and saved, and a second machine loads that state (and a copy
 * of RAM). The second machine must save the same state back, and when
 * resumed it must carry on where the first stopped: the power button
 * reaches the guest's SCI handler, which powers the machine off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vireo/loop.h"
#include "vireo/machine-internal.h"
#include "vireo/util.h"

static const char *program;    /* the powerbutton guest program */

static MachineConfig *config(void)
{
    MachineConfig *cfg = machine_config_new();

    cfg->kernel = g_strdup(program);
    cfg->cpus = 2;
    cfg->memory = 64 * 1024 * 1024;
    g_free(cfg->serial);
    cfg->serial = g_strdup("none");
    return cfg;
}

typedef struct StopCtx {
    Machine *m;
    Loop *loop;
    GBytes *state;
} StopCtx;

static void stop_and_save(void *opaque)
{
    StopCtx *c = opaque;
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(GError) err = NULL;

    machine_stop(c->m);
    assert_int_equal(machine_run_state(c->m), RUN_STATE_PAUSED);
    if (!machine_save_state(c->m, w, &err))
        fail_msg("save: %s", err->message);
    c->state = state_writer_steal_bytes(w);
    loop_quit(c->loop, 0);
}

#define MSR_IA32_TSC 0x10
#define APIC_TMCCT 0x390

/* Fields that change by themselves between two saves: time. */
static gboolean volatile_field(const char *section, const char *field)
{
    return (strcmp(section, "kvm") == 0 && (strcmp(field, "pit") == 0 ||
                                            strcmp(field, "clock") == 0)) ||
           strcmp(section, "pm") == 0 || strcmp(section, "rtc") == 0;
}

/* Compares a field's value, leaving out the parts that are time. */
static gboolean same_value(const char *field, const uint8_t *a, const uint8_t *b, size_t len)
{
    if (strcmp(field, "lapic") == 0) {
        /* The timer's current count runs down between the two saves. */
        return memcmp(a, b, 4 + APIC_TMCCT) == 0 &&
               memcmp(a + 4 + APIC_TMCCT + 4, b + 4 + APIC_TMCCT + 4,
                      len - 4 - APIC_TMCCT - 4) == 0;
    }
    if (strcmp(field, "msrs") == 0) {
        /* Value: u32 length, then (u32 index, u64 value) pairs. */
        for (size_t off = 4; off + 12 <= len; off += 12) {
            if (vireo_le_load(a + off, 4) != vireo_le_load(b + off, 4))
                return FALSE;
            if (vireo_le_load(a + off, 4) != MSR_IA32_TSC &&
                vireo_le_load(a + off + 4, 8) != vireo_le_load(b + off + 4, 8)) {
                print_message("MSR 0x%x differs\n", (unsigned)vireo_le_load(a + off, 4));
                return FALSE;
            }
        }
        return TRUE;
    }
    return memcmp(a, b, len) == 0;
}

/*
 * Walks two streams section by section and field by field with the raw
 * format from state.h, comparing everything that is not time-dependent.
 */
static void compare_streams(GBytes *a, GBytes *b, unsigned *compared)
{
    gsize la, lb;
    const uint8_t *pa = g_bytes_get_data(a, &la), *pb = g_bytes_get_data(b, &lb);
    size_t ia = 0, ib = 0;

    *compared = 0;
    while (ia < la && ib < lb) {
        char section[256];
        uint32_t body;
        size_t end_a;

        assert_int_equal(pa[ia], 'S');
        assert_int_equal(pa[ia + 1], pb[ib + 1]);
        memcpy(section, pa + ia + 2, pa[ia + 1]);
        section[pa[ia + 1]] = 0;
        assert_memory_equal(pa + ia, pb + ib, 2 + pa[ia + 1] + 4);  /* name, version */
        ia += 2 + pa[ia + 1] + 4;
        ib += 2 + pb[ib + 1] + 4;
        body = vireo_le_load(pa + ia, 4);
        ia += 4;
        ib += 4;
        end_a = ia + body;
        while (ia < end_a) {
            char field[256];
            uint8_t type = pa[ia];
            size_t vlen, hdr = 2 + pa[ia + 1];

            memcpy(field, pa + ia + 2, pa[ia + 1]);
            field[pa[ia + 1]] = 0;
            assert_memory_equal(pa + ia, pb + ib, hdr);
            if (type == 5) {
                vlen = 4 + vireo_le_load(pa + ia + hdr, 4);
                assert_int_equal(vireo_le_load(pa + ia + hdr, 4), vireo_le_load(pb + ib + hdr, 4));
            } else {
                vlen = type == 1 ? 1 : type == 2 ? 2 : type == 3 ? 4 : 8;
            }
            if (!volatile_field(section, field)) {
                if (!same_value(field, pa + ia + hdr, pb + ib + hdr, vlen))
                    fail_msg("section %s field %s differs after load and save", section, field);
                (*compared)++;
            }
            ia += hdr + vlen;
            ib += hdr + vlen;
        }
    }
    assert_int_equal(ia, la);
    assert_int_equal(ib, lb);
}

static void test_save_load_resume(void **unused)
{
    g_autoptr(MachineConfig) cfg = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(Loop) loop_a = NULL, loop_b = NULL;
    g_autoptr(Machine) a = NULL, b = NULL;
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(GBytes) state_b = NULL;
    g_autoptr(StateReader) r = NULL;
    StopCtx ctx = { 0 };
    Timer *t;
    const GuestMemory *ma, *mb;
    unsigned compared;
    gsize len;
    const void *data;

    if (access("/dev/kvm", R_OK | W_OK) != 0)
        skip();
    cfg = config();
    loop_a = loop_new(&err);
    a = machine_new(cfg, loop_a, &err);
    if (!a)
        fail_msg("machine A: %s", err->message);
    assert_true(machine_start(a, &err));
    /* Long enough for the program to set up its IDT, IOAPIC and LAPIC and idle. */
    ctx.m = a;
    ctx.loop = loop_a;
    t = timer_new(loop_timer_service(loop_a), stop_and_save, &ctx);
    timer_arm(t, loop_now_ns() + 1500 * 1000000LL);
    assert_int_equal(loop_run(loop_a), 0);
    timer_free(t);
    assert_non_null(ctx.state);

    cfg->start_paused = TRUE;
    loop_b = loop_new(&err);
    b = machine_new(cfg, loop_b, &err);
    assert_non_null(b);
    assert_true(machine_start(b, &err));
    data = g_bytes_get_data(ctx.state, &len);
    r = state_reader_new(data, len);
    if (!machine_load_state(b, r, &err))
        fail_msg("load: %s", err->message);
    assert_true(state_reader_at_end(r));
    if (!machine_save_state(b, w, &err))
        fail_msg("save B: %s", err->message);
    state_b = state_writer_steal_bytes(w);
    compare_streams(ctx.state, state_b, &compared);
    assert_true(compared > 20);

    /* Carry on from A's RAM and state: B must answer the power button. */
    ma = machine_memory(a);
    mb = machine_memory(b);
    for (unsigned i = 0; i < ma->nr_regions; i++)
        memcpy(mb->regions[i].host, ma->regions[i].host, ma->regions[i].size);
    assert_true(machine_cont(b, &err));
    machine_powerdown(b);
    assert_int_equal(loop_run(loop_b), 0);
    assert_int_equal(machine_run_state(b), RUN_STATE_SHUTDOWN);
    g_bytes_unref(ctx.state);
}

static void test_load_rejects_mismatch(void **unused)
{
    g_autoptr(MachineConfig) cfg = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(Loop) loop = NULL;
    g_autoptr(Machine) m = NULL;
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(StateReader) r = NULL;
    size_t len;
    const uint8_t *data;

    if (access("/dev/kvm", R_OK | W_OK) != 0)
        skip();
    cfg = config();
    cfg->start_paused = TRUE;
    loop = loop_new(&err);
    m = machine_new(cfg, loop, &err);
    assert_non_null(m);
    assert_true(machine_start(m, &err));
    /* A stream for another machine shape is refused before anything is touched. */
    state_writer_begin_section(w, "machine", 1);
    state_write_u32(w, "cpus", 3);
    state_write_u64(w, "memory", cfg->memory);
    state_writer_end_section(w);
    data = state_writer_data(w, &len);
    r = state_reader_new(data, len);
    assert_false(machine_load_state(m, r, &err));
    assert_non_null(strstr(err->message, "3 vCPUs"));
    g_clear_error(&err);
    /* Garbage: a clean error. */
    state_reader_free(g_steal_pointer(&r));
    r = state_reader_new("\x53\x07machine\x01\x00\x00\x00\xff\xff\xff\x7f", 17);
    assert_false(machine_load_state(m, r, &err));
    assert_non_null(err);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_resume),
        cmocka_unit_test(test_load_rejects_mismatch),
    };
    if (argc != 2) {
        g_printerr("usage: %s POWERBUTTON_PROGRAM\n", argv[0]);
        return 2;
    }
    program = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
