/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ACPI PM1a fixed-hardware registers ("acpi-pm"), a 16-byte window:
 *
 *   0  PM1a_STS  2 bytes, write 1 to clear: TMR_STS 0, PWRBTN_STS 8, WAK_STS 15
 *   2  PM1a_EN   2 bytes: TMR_EN 0, PWRBTN_EN 8 (every bit reads back)
 *   4  PM1a_CNT  2 bytes: SCI_EN 0 (always 1), SLP_TYP 10-12, SLP_EN 13
 *   8  PM_TMR    4 bytes, read-only: 24-bit counter at 3.579545 MHz
 *
 * Any access of 1, 2 or 4 bytes works at any offset: each byte reaches the
 * register it lies in, so an access may also span registers.
 *
 * SCI_EN reads 1 because there is no SMI_CMD port to hand ACPI over with:
 * the machine is always in ACPI mode. The SCI (env->irq, GSI 9,
 * level-triggered) is high while an enabled status bit is set.
 *
 * The PM timer counts env->timers' monotonic clock, so it needs no timer
 * to run. TMR_STS is set lazily, whenever bit 23 of the counter has
 * toggled since we last looked; a timer wakes us at the next toggle only
 * while TMR_EN is set and TMR_STS clear, so that the SCI comes on time.
 *
 * Locking: dev->lock covers everything below the immutable fields; the
 * timer callback and acpi_pm_press_power_button() take it.
 */
#include <stddef.h>
#include <string.h>

#include "vireo/acpi-pm.h"
#include "vireo/device.h"
#include "vireo/layout.h"
#include "vireo/util.h"

#define ACPI_PM_WINDOW_LEN      LAYOUT_PORT_PM_LEN
#define ACPI_PM_STATE_VERSION   1

#define ACPI_PM_STS             0
#define ACPI_PM_EN              2
#define ACPI_PM_CNT             4
#define ACPI_PM_TMR             8

#define ACPI_PM_TMR_STS         0x0001
#define ACPI_PM_PWRBTN_STS      0x0100
#define ACPI_PM_WAK_STS         0x8000
#define ACPI_PM_STS_BITS        (ACPI_PM_TMR_STS | ACPI_PM_PWRBTN_STS | ACPI_PM_WAK_STS)

#define ACPI_PM_TMR_EN          0x0001
#define ACPI_PM_PWRBTN_EN       0x0100
/* Status bits that raise the SCI when enabled; WAK_STS has no enable. */
#define ACPI_PM_SCI_EVENTS      (ACPI_PM_TMR_STS | ACPI_PM_PWRBTN_STS)

#define ACPI_PM_CNT_SCI_EN      0x0001
#define ACPI_PM_CNT_BM_RLD      0x0002
#define ACPI_PM_CNT_SLP_TYP     0x1c00
#define ACPI_PM_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM_CNT_SLP_EN      0x2000
/* GBL_RLS and SLP_EN are write-only and SCI_EN is fixed; these read back. */
#define ACPI_PM_CNT_STORED      (ACPI_PM_CNT_BM_RLD | ACPI_PM_CNT_SLP_TYP)

#define ACPI_PM_TMR_HZ          3579545LL
#define ACPI_PM_TMR_MASK        0xffffffULL
#define ACPI_PM_TMR_STS_SHIFT   23
#define ACPI_PM_NS_PER_SEC      1000000000LL

/* Guest-visible state: what save/load and reset deal with. */
typedef struct AcpiPmRegs {
    uint16_t sts;
    uint16_t en;
    uint16_t cnt;               /* ACPI_PM_CNT_STORED bits */
    uint64_t tmr_checked;       /* counter value up to which TMR_STS is current */
} AcpiPmRegs;

typedef struct AcpiPm {
    Device dev;
    IrqLine *irq;               /* immutable after create */
    MachineControl *machine;    /* immutable after create */
    TimerService *timers;       /* immutable after create */
    Timer *timer;               /* immutable after create */
    /* Everything below: dev->lock. */
    AcpiPmRegs r;
    /*
     * Monotonic time at which the counter was 0. The counter is a pure
     * function of the time since then, so a saved elapsed time restores it
     * exactly, sub-tick phase and all (a tick is 279.4 ns, not whole ns).
     */
    int64_t tmr_origin_ns;
    /* What the timer is armed for, or -1: saves timer calls on every register read. */
    int64_t timer_deadline;
    gboolean irq_level;
} AcpiPm;

G_STATIC_ASSERT(offsetof(AcpiPm, dev) == 0);

static const DeviceType acpi_pm_type;

static AcpiPm *acpi_pm_from_dev(Device *dev)
{
    g_assert(dev->type == &acpi_pm_type);
    return (AcpiPm *)dev;
}

/* --- PM timer --- */

/* The counter @elapsed ns after it started: floor(elapsed * HZ / 1e9). */
static uint64_t acpi_pm_ticks_after(int64_t elapsed)
{
    uint64_t d = MAX(elapsed, 0);

    /* Split so that d * 3.58e6 cannot overflow. */
    return d / ACPI_PM_NS_PER_SEC * ACPI_PM_TMR_HZ +
           d % ACPI_PM_NS_PER_SEC * ACPI_PM_TMR_HZ / ACPI_PM_NS_PER_SEC;
}

/* The first elapsed time at which the counter reads @ticks: the inverse of the above. */
static int64_t acpi_pm_elapsed_at(uint64_t ticks)
{
    return ticks / ACPI_PM_TMR_HZ * ACPI_PM_NS_PER_SEC +
           (ticks % ACPI_PM_TMR_HZ * ACPI_PM_NS_PER_SEC + ACPI_PM_TMR_HZ - 1) / ACPI_PM_TMR_HZ;
}

/* The full counter (we keep 64 bits; the guest sees 24) at monotonic time @now. */
static uint64_t acpi_pm_ticks(const AcpiPm *s, int64_t now)
{
    return acpi_pm_ticks_after(now - s->tmr_origin_ns);
}

static void acpi_pm_update_tmr_sts(AcpiPm *s, uint64_t ticks)
{
    if ((ticks >> ACPI_PM_TMR_STS_SHIFT) != (s->r.tmr_checked >> ACPI_PM_TMR_STS_SHIFT))
        s->r.sts |= ACPI_PM_TMR_STS;
    s->r.tmr_checked = ticks;
}

static void acpi_pm_drive_sci(AcpiPm *s, gboolean force)
{
    gboolean level = (s->r.sts & s->r.en & ACPI_PM_SCI_EVENTS) != 0;

    if (force || level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(s->irq, level);
    }
}

/* Wakes us exactly when bit 23 next toggles, if that would raise the SCI. */
static void acpi_pm_rearm(AcpiPm *s, int64_t now)
{
    uint64_t next;
    int64_t deadline;

    if (!(s->r.en & ACPI_PM_TMR_EN) || (s->r.sts & ACPI_PM_TMR_STS)) {
        if (s->timer_deadline >= 0)
            timer_cancel(s->timer);
        s->timer_deadline = -1;
        return;
    }
    next = ((acpi_pm_ticks(s, now) >> ACPI_PM_TMR_STS_SHIFT) + 1) << ACPI_PM_TMR_STS_SHIFT;
    deadline = s->tmr_origin_ns + acpi_pm_elapsed_at(next);
    if (deadline != s->timer_deadline)
        timer_arm(s->timer, deadline);
    s->timer_deadline = deadline;
}

static void acpi_pm_timer_fire(void *opaque)
{
    AcpiPm *s = opaque;
    int64_t now;

    g_mutex_lock(&s->dev.lock);
    s->timer_deadline = -1;             /* it fired */
    now = timer_service_now(s->timers);
    acpi_pm_update_tmr_sts(s, acpi_pm_ticks(s, now));
    acpi_pm_drive_sci(s, FALSE);
    acpi_pm_rearm(s, now);
    g_mutex_unlock(&s->dev.lock);
}

/* --- registers --- */

static void acpi_pm_sleep(AcpiPm *s, uint16_t cnt)
{
    unsigned typ = (cnt & ACPI_PM_CNT_SLP_TYP) >> ACPI_PM_CNT_SLP_TYP_SHIFT;

    if (typ == LAYOUT_ACPI_S5_SLP_TYP) {
        g_debug("%s: guest entered S5, powering off", s->dev.id);
        machine_control_request(s->machine, MACHINE_REQUEST_POWEROFF, 0);
        return;
    }
    vireo_guest_warn("%s: sleep type %u requested; only S5 (type %u) is supported",
                     s->dev.id, typ, LAYOUT_ACPI_S5_SLP_TYP);
    /*
     * Report an immediate wake-up, so that the guest's loop waiting for
     * WAK_STS (ACPICA's acpi_hw_legacy_sleep()) ends instead of spinning.
     */
    s->r.sts |= ACPI_PM_WAK_STS;
}

/* Applies the bytes in @mask of @val to the 16-bit register at @reg. */
static void acpi_pm_write_reg(AcpiPm *s, unsigned reg, uint32_t val, uint32_t mask)
{
    AcpiPmRegs *r = &s->r;

    switch (reg) {
    case ACPI_PM_STS:
        r->sts &= ~(val & mask);
        break;
    case ACPI_PM_EN:
        r->en = (r->en & ~mask) | (val & mask);
        break;
    case ACPI_PM_CNT:
        r->cnt = (r->cnt & ~mask) | (val & mask & ACPI_PM_CNT_STORED);
        if (val & mask & ACPI_PM_CNT_SLP_EN)
            acpi_pm_sleep(s, r->cnt);
        break;
    case ACPI_PM_TMR:
        vireo_guest_warn("%s: write to the read-only PM timer ignored", s->dev.id);
        break;
    default:
        g_assert_not_reached();
    }
}

static const struct {
    unsigned off;
    unsigned len;
} acpi_pm_regs[] = {
    { ACPI_PM_STS, 2 },
    { ACPI_PM_EN, 2 },
    { ACPI_PM_CNT, 2 },
    { ACPI_PM_TMR, 4 },
};

static void acpi_pm_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    AcpiPm *s = acpi_pm_from_dev(dev);
    uint8_t regs[ACPI_PM_WINDOW_LEN] = { 0 };
    uint8_t *out = buf;
    gboolean known = FALSE;
    int64_t now = timer_service_now(s->timers);
    uint64_t ticks = acpi_pm_ticks(s, now);

    /* One snapshot, so a 4-byte PM_TMR read is consistent. */
    acpi_pm_update_tmr_sts(s, ticks);
    vireo_le_store(regs + ACPI_PM_STS, 2, s->r.sts);
    vireo_le_store(regs + ACPI_PM_EN, 2, s->r.en);
    vireo_le_store(regs + ACPI_PM_CNT, 2, s->r.cnt | ACPI_PM_CNT_SCI_EN);
    vireo_le_store(regs + ACPI_PM_TMR, 4, ticks & ACPI_PM_TMR_MASK);
    for (size_t i = 0; i < len; i++) {
        uint64_t b = off + i;

        out[i] = b < ACPI_PM_WINDOW_LEN ? regs[b] : 0xff;
        for (size_t k = 0; k < G_N_ELEMENTS(acpi_pm_regs); k++)
            known |= b >= acpi_pm_regs[k].off && b < acpi_pm_regs[k].off + acpi_pm_regs[k].len;
    }
    if (!known)
        vireo_guest_warn("%s: read of reserved offset 0x%" G_GINT64_MODIFIER "x", dev->id, off);
    acpi_pm_drive_sci(s, FALSE);
    acpi_pm_rearm(s, now);
}

static void acpi_pm_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    AcpiPm *s = acpi_pm_from_dev(dev);
    const uint8_t *in = buf;
    gboolean known = FALSE;
    int64_t now = timer_service_now(s->timers);

    /* TMR_STS must be current before a write-1-to-clear can clear it. */
    acpi_pm_update_tmr_sts(s, acpi_pm_ticks(s, now));
    for (size_t k = 0; k < G_N_ELEMENTS(acpi_pm_regs); k++) {
        unsigned roff = acpi_pm_regs[k].off, rlen = acpi_pm_regs[k].len;
        uint32_t val = 0, mask = 0;

        for (size_t i = 0; i < len; i++) {
            uint64_t b = off + i;

            if (b >= roff && b < roff + rlen) {
                val |= (uint32_t)in[i] << (8 * (b - roff));
                mask |= 0xffu << (8 * (b - roff));
            }
        }
        if (mask) {
            known = TRUE;
            acpi_pm_write_reg(s, roff, val, mask);
        }
    }
    if (!known)
        vireo_guest_warn("%s: write to reserved offset 0x%" G_GINT64_MODIFIER "x ignored",
                         dev->id, off);
    acpi_pm_drive_sci(s, FALSE);
    acpi_pm_rearm(s, now);
}

void acpi_pm_press_power_button(Device *dev)
{
    AcpiPm *s = acpi_pm_from_dev(dev);

    g_mutex_lock(&dev->lock);
    s->r.sts |= ACPI_PM_PWRBTN_STS;
    acpi_pm_drive_sci(s, FALSE);
    g_mutex_unlock(&dev->lock);
}

/* --- lifecycle --- */

/* The counter runs on through a reset, as the chipset's does. */
static void acpi_pm_reset(Device *dev)
{
    AcpiPm *s = acpi_pm_from_dev(dev);
    int64_t now = timer_service_now(s->timers);

    s->r.sts = 0;
    s->r.en = 0;
    s->r.cnt = 0;
    s->r.tmr_checked = acpi_pm_ticks(s, now);
    acpi_pm_drive_sci(s, FALSE);
    acpi_pm_rearm(s, now);
}

static gboolean acpi_pm_save(Device *dev, StateWriter *w, GError **error)
{
    AcpiPm *s = acpi_pm_from_dev(dev);

    state_writer_begin_section(w, dev->id, ACPI_PM_STATE_VERSION);
    state_write_u16(w, "sts", s->r.sts);
    state_write_u16(w, "en", s->r.en);
    state_write_u16(w, "cnt", s->r.cnt);
    /* The counter stands still while the VM is saved, as QEMU's does. */
    state_write_u64(w, "tmr-elapsed-ns", timer_service_now(s->timers) - s->tmr_origin_ns);
    state_write_u64(w, "tmr-checked", s->r.tmr_checked);
    state_writer_end_section(w);
    return TRUE;
}

static gboolean acpi_pm_load(Device *dev, StateReader *r, GError **error)
{
    AcpiPm *s = acpi_pm_from_dev(dev);
    AcpiPmRegs n = { 0 };
    uint64_t elapsed;
    uint32_t version;
    int64_t now;

    if (!state_reader_begin_section(r, dev->id, ACPI_PM_STATE_VERSION, &version, error))
        return FALSE;
    if (!state_read_u16(r, "sts", &n.sts, error) ||
        !state_read_u16(r, "en", &n.en, error) ||
        !state_read_u16(r, "cnt", &n.cnt, error) ||
        !state_read_u64(r, "tmr-elapsed-ns", &elapsed, error) ||
        !state_read_u64(r, "tmr-checked", &n.tmr_checked, error) ||
        !state_reader_end_section(r, error))
        return FALSE;
    /* 2^61 ns is 73 years of uptime: anything above is corrupt. */
    if ((n.sts & ~ACPI_PM_STS_BITS) || (n.cnt & ~ACPI_PM_CNT_STORED) ||
        elapsed > (1ULL << 61) || n.tmr_checked > acpi_pm_ticks_after(elapsed)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': register values out of range "
                    "(sts 0x%04x, cnt 0x%04x, timer %" G_GUINT64_FORMAT " ns, %" G_GUINT64_FORMAT
                    " ticks checked)", dev->id, n.sts, n.cnt, elapsed, n.tmr_checked);
        return FALSE;
    }

    now = timer_service_now(s->timers);
    s->r = n;
    s->tmr_origin_ns = now - (int64_t)elapsed;
    acpi_pm_drive_sci(s, TRUE);
    acpi_pm_rearm(s, now);
    return TRUE;
}

static void acpi_pm_free(Device *dev)
{
    AcpiPm *s = acpi_pm_from_dev(dev);

    /* Waits for a running callback, which needs dev->lock: not held here. */
    timer_free(s->timer);
    device_cleanup(dev);
    g_free(s);
}

static Device *acpi_pm_create(const DeviceEnv *env, const char *options, GError **error)
{
    static const char *const known[] = { NULL };
    g_autoptr(GHashTable) opts = device_options_parse(options, error);
    AcpiPm *s;

    if (!opts || !device_options_check_known(opts, known, acpi_pm_type.name, error))
        return NULL;
    if (!env->timers) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s needs a timer service for the PM timer", acpi_pm_type.name);
        return NULL;
    }

    s = g_new0(AcpiPm, 1);
    device_init(&s->dev, &acpi_pm_type, env->id);
    s->irq = env->irq;
    s->machine = env->machine;
    s->timers = env->timers;
    s->timer = timer_new(s->timers, acpi_pm_timer_fire, s);
    s->timer_deadline = -1;
    s->tmr_origin_ns = timer_service_now(s->timers);
    return &s->dev;
}

static const DeviceOps acpi_pm_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
    .reset = acpi_pm_reset,
    .save = acpi_pm_save,
    .load = acpi_pm_load,
    .free = acpi_pm_free,
};

static const DeviceType acpi_pm_type = {
    .name = "acpi-pm",
    .description = "ACPI PM1a event/control registers and PM timer (16-byte I/O window)",
    .ops = &acpi_pm_ops,
    .create = acpi_pm_create,
};
DEVICE_TYPE_REGISTER(acpi_pm_type);
