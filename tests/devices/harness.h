/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Test doubles for what a device sees of the machine (DeviceEnv), so that
 * device models are tested through DeviceOps without KVM:
 *
 * - HarnessIrq: an IrqLine that records its level and its edges.
 * - HarnessChar: a CharBackend that captures output, can hold at most N
 *   bytes until drain() (then fires writable() as a real backend would),
 *   and injects input honouring can_receive(). Like the VMM's backend it
 *   never calls the frontend from write() or accept_input(): input waits
 *   for harness_char_pump(), which plays the event loop.
 * - HarnessMachine: a MachineControl that records requests.
 * - HarnessTimers: a TimerService on a fake monotonic clock that the test
 *   advances, firing due timers in deadline order.
 *
 * Everything runs on the test's thread; callbacks into the device take
 * dev->lock as they would on the event loop thread.
 */
#ifndef VIREO_TESTS_DEVICES_HARNESS_H
#define VIREO_TESTS_DEVICES_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>

#include "vireo/device.h"
#include "vireo/util.h"

/* --- interrupt line --- */

typedef struct HarnessIrq {
    IrqLine line;
    gboolean level;
    unsigned rises;             /* low -> high transitions */
    unsigned falls;
    unsigned calls;             /* set_level() calls, changing or not */
} HarnessIrq;

void harness_irq_init(HarnessIrq *irq);

/* --- character backend --- */

typedef struct HarnessChar HarnessChar;

HarnessChar *harness_char_new(void);
void harness_char_free(HarnessChar *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HarnessChar, harness_char_free)
CharBackend *harness_char_backend(HarnessChar *c);
/* Room for @limit bytes between drains; G_MAXSIZE (the default) is unlimited. */
void harness_char_set_limit(HarnessChar *c, size_t limit);
/* Empties the buffer; fires writable() if a write was refused since the last drain. */
void harness_char_drain(HarnessChar *c);
/* Everything the backend accepted so far (drained or not). */
const GByteArray *harness_char_output(HarnessChar *c);
void harness_char_clear_output(HarnessChar *c);
/* Bytes accepted but not drained yet. */
size_t harness_char_pending(HarnessChar *c);
/* TRUE when a write was cut short and writable() has not been fired yet. */
gboolean harness_char_blocked(HarnessChar *c);
/* Queues input and delivers what can_receive() allows; returns bytes delivered. */
size_t harness_char_input(HarnessChar *c, const void *buf, size_t len);
/* Delivers queued input as far as can_receive() allows (the loop's job). */
size_t harness_char_pump(HarnessChar *c);
size_t harness_char_input_queued(HarnessChar *c);
void harness_char_discard_input(HarnessChar *c);
unsigned harness_char_accept_input_calls(HarnessChar *c);
gboolean harness_char_has_frontend(HarnessChar *c);

/* --- machine control --- */

typedef struct HarnessMachine {
    MachineControl mc;
    unsigned requests;
    unsigned resets;
    unsigned poweroffs;
    unsigned exits;
    MachineRequest last;
    int last_status;
} HarnessMachine;

void harness_machine_init(HarnessMachine *m);

/* --- timers --- */

typedef struct HarnessTimers HarnessTimers;

HarnessTimers *harness_timers_new(int64_t start_ns);
void harness_timers_free(HarnessTimers *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HarnessTimers, harness_timers_free)
TimerService *harness_timers_service(HarnessTimers *t);
int64_t harness_timers_now(HarnessTimers *t);
/*
 * Moves the clock forward by @ns, stopping at each due deadline (earliest
 * first) to fire it, so a callback sees the clock at its own deadline.
 * Fails the test if timers keep firing without time passing (a device
 * re-arming for "now" would hang the event loop). Returns timers fired.
 */
unsigned harness_timers_advance(HarnessTimers *t, int64_t ns);
/* Deadline of the earliest armed timer, or -1. */
int64_t harness_timers_next(HarnessTimers *t);
unsigned harness_timers_armed(HarnessTimers *t);

/* --- event loop: work queued by devices, run when the test says --- */

typedef struct HarnessLoop HarnessLoop;

HarnessLoop *harness_loop_new(void);
void harness_loop_free(HarnessLoop *l);
EventLoop *harness_loop_event_loop(HarnessLoop *l);
/*
 * Plays the loop: runs queued calls and dispatches watched fds that are
 * ready now (poll with no wait), until nothing is left. Returns how many
 * callbacks ran.
 */
unsigned harness_loop_run(HarnessLoop *l);
unsigned harness_loop_watched(HarnessLoop *l);

/* --- MSI: routes that record what they are programmed with and fired --- */

typedef struct HarnessMsiRoute {
    MsiRoute base;
    uint64_t addr;
    uint32_t data;
    unsigned sets;              /* route_set() calls */
    unsigned fires;
} HarnessMsiRoute;

typedef struct HarnessMsi {
    MsiController ctrl;
    GPtrArray *routes;          /* HarnessMsiRoute*, in creation order */
} HarnessMsi;

void harness_msi_init(HarnessMsi *m);
void harness_msi_cleanup(HarnessMsi *m);
/* Total fires of routes programmed with @data (the guest's vector). */
unsigned harness_msi_fires(HarnessMsi *m, uint32_t data);

/* --- doorbells: registered addresses; ringing one calls its handler --- */

typedef struct HarnessIoEvents {
    IoEventService svc;
    GPtrArray *events;          /* registered, opaque to tests */
} HarnessIoEvents;

void harness_ioevents_init(HarnessIoEvents *io);
void harness_ioevents_cleanup(HarnessIoEvents *io);
unsigned harness_ioevents_count(HarnessIoEvents *io);
/* A guest write of @value to @addr that KVM would turn into a doorbell: TRUE if one matched. */
gboolean harness_ioevents_ring(HarnessIoEvents *io, gboolean mmio, uint64_t addr, uint64_t value);

/* --- guest memory with guard pages: a stray access outside it faults --- */

typedef struct HarnessMem {
    GuestMemory mem;
    uint8_t *map;               /* guard page, RAM, guard page */
    size_t map_len;
} HarnessMem;

/* @size bytes of zeroed guest RAM at guest physical @gpa. */
void harness_mem_init(HarnessMem *m, uint64_t gpa, size_t size);
void harness_mem_cleanup(HarnessMem *m);
void *harness_mem_ptr(HarnessMem *m, uint64_t gpa, size_t len);

/* --- a whole DeviceEnv --- */

typedef struct HarnessEnv {
    HarnessIrq irq;
    HarnessChar *chr;
    HarnessMachine machine;
    HarnessTimers *timers;
    HarnessLoop *loop;
    HarnessMsi msi;
    HarnessIoEvents ioevents;
    HarnessMem mem;             /* 16 MiB at 0 */
    DeviceEnv env;
} HarnessEnv;

/* Clock starts at @start_ns; the id names the state section. */
HarnessEnv *harness_env_new(const char *id, int64_t start_ns);
void harness_env_free(HarnessEnv *e);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HarnessEnv, harness_env_free)

/* Creates a device, failing the test on error. */
Device *harness_device_new(HarnessEnv *e, const char *type, const char *options);
/* Creates a device expecting failure; returns the error message (free it). */
char *harness_device_new_fail(HarnessEnv *e, const char *type, const char *options, int code);

uint64_t harness_read(Device *dev, uint64_t off, size_t len);
void harness_write(Device *dev, uint64_t off, size_t len, uint64_t val);
static inline uint8_t harness_read8(Device *dev, uint64_t off)
{
    return harness_read(dev, off, 1);
}
static inline void harness_write8(Device *dev, uint64_t off, uint8_t val)
{
    harness_write(dev, off, 1, val);
}

/* Saves @dev into a new buffer, failing the test on error. */
GBytes *harness_save(Device *dev);
gboolean harness_load(Device *dev, GBytes *state, GError **error);
/* Saves @src and loads it into a new @type device in @dst, as migration would. */
Device *harness_clone(Device *src, HarnessEnv *dst, const char *type, const char *options);

/*
 * Damaged copies of one saved section: cut short, with another version,
 * renamed, with an extra field at the end, and with byte @at of field
 * @name's value set to @value (for a byte string, bytes 0-3 are its
 * length and its data starts at 4).
 */
GBytes *harness_state_truncated(GBytes *state, size_t keep);
GBytes *harness_state_with_version(GBytes *state, uint32_t version);
GBytes *harness_state_renamed(GBytes *state);
GBytes *harness_state_with_extra_field(GBytes *state);
GBytes *harness_state_poked(GBytes *state, const char *name, size_t at, uint8_t value);

/* Asserts that loading @state into @dev fails with VIREO_ERROR_INVALID_STATE. */
void harness_load_fails(Device *dev, GBytes *state);
/*
 * Loads every generic kind of damaged copy of @good (truncations, wrong
 * versions, wrong name, unknown field) into @dev and asserts each fails
 * with VIREO_ERROR_INVALID_STATE and a message naming the device.
 */
void harness_check_bad_loads(Device *dev, GBytes *good);

/* Byte @at of field @field's saved value set to @value (see harness_state_poked). */
typedef struct HarnessPoke {
    const char *field;
    size_t at;
    uint8_t value;
} HarnessPoke;

/*
 * Saves @dev, then loads the generic damaged copies (harness_check_bad_loads)
 * and one copy per poke into it; each must fail with VIREO_ERROR_INVALID_STATE
 * and leave @dev exactly as it was, which is checked by saving it again
 * unless @real_time says its state follows the host's real time (the RTC),
 * so that no two saves agree; the caller then checks behaviour instead.
 */
void harness_check_corrupt_state(Device *dev, const HarnessPoke *pokes, size_t n,
                                 gboolean real_time);

/*
 * Hostile guest: @iterations random reads and writes of 1, 2, 4 or 8 bytes
 * (only those that fit) at random offsets of a @window-byte window, with a
 * fixed @seed, interleaved with the event loop's work (timers, backend
 * drain and input), resets and save/load round trips. @extra, if set, is
 * called now and then for device-specific events.
 */
typedef void (*HarnessHostileFn)(Device *dev, HarnessEnv *e, GRand *rand);
void harness_hostile(Device *dev, HarnessEnv *e, size_t window, guint32 seed, unsigned iterations,
                     HarnessHostileFn extra);

/* Guest warnings ("guest: ...") logged by devices since the last call. */
unsigned harness_take_guest_warnings(void);
/* Routes the devices' log messages through the harness; call first in main(). */
void harness_init(void);

#endif
