/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for devices/virtio/virtqueue.c: the input is guest
 * memory (rings, descriptor and indirect tables) plus a sequence of driver
 * and device actions; the target plays the device and checks what the
 * library promises whatever the guest wrote:
 *
 * - every iovec lies inside one region of guest memory, with a non-zero
 *   length, and the lengths add up to out_len/in_len (< 4 GiB);
 * - no more elements are in flight than the queue size, and no entry is
 *   taken that the driver never made available;
 * - once broken, the queue only returns -1 and never writes the used ring;
 * - save/load gives back the same state, and damaged state is refused or
 *   loads into a queue that still keeps all of the above.
 *
 * Guest memory is three heap blocks (so ASan catches any access outside
 * them): region 0 at 0 (16 KiB) and region 1 right after it (4 KiB), and
 * region 2 at 64 KiB (4 KiB), past a hole.
 *
 * Input layout (tests/fuzz/gen-virtqueue-seeds.py writes the same):
 *   u8  size      bit 7 clear: queue size 1 << (size % 9); set: size = low 7 bits
 *   u8  flags     bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 drop VERSION_1,
 *                 bit 3 rings at the addresses below (else packed from 0),
 *                 bit 4 those addresses unaligned
 *   u16 desc, avail, used   ring addresses (x16, x2, x4 unless bit 4)
 *   u16 image length, then that many bytes copied to guest memory from 0
 *   then operations, one byte each plus their arguments (see enum Op)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "vireo/state.h"
#include "vireo/util.h"
#include "vireo/virtqueue.h"

#define MAX_SIZE 256
#define MAX_OPS 4096

#define R0_SIZE 0x4000
#define R1_GPA R0_SIZE
#define R1_SIZE 0x1000
#define R2_GPA 0x10000
#define R2_SIZE 0x1000
#define LINEAR_SIZE (R0_SIZE + R1_SIZE)  /* regions 0 and 1 are contiguous */
#define ADDR_SPACE 0x12000               /* addresses the input can name */

#define F_V1 (1ULL << VIRTQ_F_VERSION_1)

typedef enum {
    OP_POP,
    OP_PUSH,            /* u8 which, u32 written, u8 flush */
    OP_FLUSH,
    OP_AVAIL_SET,       /* u16 */
    OP_AVAIL_ADD,       /* u8 */
    OP_POKE,            /* u16 gpa, u8 len, bytes */
    OP_DISABLE_NOTIFY,
    OP_ENABLE_NOTIFY,
    OP_NEEDS_NOTIFY,
    OP_SAVE_LOAD,
    OP_LOAD_DAMAGED,    /* u8 n, then n (u8 offset, u8 xor) */
    OP_RESET,
    OP_UNPOP,
    OP_ELEMENT_IO,      /* u8 which, u16 offset, u16 len */
    OP_COUNT,
} Op;

typedef struct Fuzz {
    GuestMemory mem;
    uint8_t *ram[3];
    VirtQueue *vq;
    VirtqConfig cfg;            /* what the input asked for */
    uint16_t size;              /* the queue's size now (0: disabled) */
    gboolean rings_known;       /* enabled with cfg's rings (not after a damaged load) */
    VirtqElement *held[MAX_SIZE];       /* popped, not pushed: held[0..nheld) */
    unsigned nheld;
    VirtqElement *spare[MAX_SIZE];      /* the rest of the pool */
    unsigned nspare;
    gboolean just_popped;       /* the previous operation popped held[nheld - 1] */
    /* What the driver made available, as far as the target can know. */
    gboolean tracking;
    uint16_t consumed;
    unsigned allowance;
    /* The used ring as it was when the queue broke. */
    gboolean broken_seen;
    uint8_t used_snapshot[6 + 8 * MAX_SIZE];
} Fuzz;

/* Elements, allocated once: MAX_SIZE to hold, one more for pops that must fail. */
static VirtqElement *pool[MAX_SIZE + 1];

static uint8_t *gpa_ptr(Fuzz *z, uint64_t gpa, uint64_t len)
{
    return guest_memory_ptr(&z->mem, gpa, len);
}

static uint64_t used_bytes(const Fuzz *z)
{
    return 6 + 8 * (uint64_t)z->size;
}

static void check_range(const Fuzz *z, const struct iovec *v)
{
    for (unsigned i = 0; i < z->mem.nr_regions; i++) {
        const GuestRegion *r = &z->mem.regions[i];
        const uint8_t *p = v->iov_base;
        if (p >= r->host && p < r->host + r->size && v->iov_len <= (size_t)(r->host + r->size - p))
            return;
    }
    abort();
}

static void check_element(const Fuzz *z, const VirtqElement *e)
{
    uint64_t out = 0, in = 0;

    if (e->head >= z->size || e->out_num + e->in_num > MAX_SIZE)
        abort();
    if (e->out_sg != e->iov || e->in_sg != e->iov + e->out_num)
        abort();
    for (unsigned i = 0; i < e->out_num + e->in_num; i++) {
        if (e->iov[i].iov_len == 0)
            abort();
        check_range(z, &e->iov[i]);
        if (i < e->out_num)
            out += e->iov[i].iov_len;
        else
            in += e->iov[i].iov_len;
    }
    if (out != e->out_len || in != e->in_len || out + in > UINT32_MAX)
        abort();
}

/*
 * What virtq_pop() may take: it reads avail->idx only while popping, and
 * may use any value it finds within the queue size of what it has taken
 * (a value written earlier and overwritten before a pop was never seen).
 */
static void track_avail(Fuzz *z)
{
    const uint8_t *p;
    uint16_t d;

    if (!z->tracking || !z->rings_known)
        return;
    p = gpa_ptr(z, z->cfg.avail_addr + 2, 2);
    if (!p)
        return;
    d = (uint16_t)(vireo_le_load(p, 2) - z->consumed);
    if (d <= z->size && d > z->allowance)
        z->allowance = d;
}

static void snapshot_used(Fuzz *z)
{
    const uint8_t *u = gpa_ptr(z, z->cfg.used_addr, used_bytes(z));

    if (u)
        memcpy(z->used_snapshot, u, used_bytes(z));
}

/*
 * After the driver wrote to guest memory: it may have written into the
 * used ring (rings can overlap), which is not the device writing to it.
 */
static void driver_wrote(Fuzz *z)
{
    if (z->broken_seen)
        snapshot_used(z);
}

/* A broken queue writes nothing to the used ring. */
static void check_broken(Fuzz *z)
{
    const uint8_t *u;

    if (!z->rings_known || !virtq_is_broken(z->vq))
        return;
    u = gpa_ptr(z, z->cfg.used_addr, used_bytes(z));
    if (!u)
        abort();            /* enable checked it */
    if (!z->broken_seen) {
        z->broken_seen = TRUE;
        memcpy(z->used_snapshot, u, used_bytes(z));
    } else if (memcmp(z->used_snapshot, u, used_bytes(z)) != 0) {
        abort();
    }
}

/* Takes held[i] out, back to the spare elements. */
static VirtqElement *release(Fuzz *z, unsigned i)
{
    VirtqElement *e = z->held[i];

    z->held[i] = z->held[--z->nheld];
    z->spare[z->nspare++] = e;
    return e;
}

/* Elements of a queue that started over: pushing them must do nothing. */
static void drop_held(Fuzz *z, gboolean push_stale)
{
    while (z->nheld) {
        VirtqElement *e = release(z, z->nheld - 1);
        if (push_stale)
            virtq_push(z->vq, e, 1);
    }
    z->just_popped = FALSE;
}

/* Enables the queue with the input's configuration and starts checking. */
static void start(Fuzz *z)
{
    z->rings_known = virtq_enable(z->vq, &z->cfg);
    if (z->rings_known != virtq_is_enabled(z->vq))
        abort();
    z->size = virtq_get_size(z->vq);
    z->tracking = TRUE;
    z->consumed = 0;
    z->allowance = 0;
    z->broken_seen = FALSE;
}

static void op_pop(Fuzz *z)
{
    VirtqElement *e = z->nspare ? z->spare[z->nspare - 1] : pool[MAX_SIZE];
    int r;

    track_avail(z);
    r = virtq_pop(z->vq, e);

    if (r == 1) {
        check_element(z, e);
        /* Never more in flight than the queue holds. */
        if (z->nheld >= z->size || !z->nspare)
            abort();
        if (z->tracking) {
            if (z->allowance == 0)
                abort();        /* took an entry the driver never offered */
            z->allowance--;
            z->consumed++;
        }
        z->held[z->nheld++] = z->spare[--z->nspare];
        z->just_popped = TRUE;
        return;
    }
    if (r == -1 && !virtq_is_broken(z->vq))
        abort();
    if (r == 0 && virtq_is_broken(z->vq))
        abort();
    if (r != 0 && r != -1)
        abort();
}

static void op_push(Fuzz *z, FuzzInput *in)
{
    unsigned which = fuzz_take(in, 1);
    uint32_t written = fuzz_take(in, 4);
    gboolean flush = fuzz_take(in, 1) & 1;

    if (!z->nheld)
        return;
    virtq_fill(z->vq, release(z, which % z->nheld), written);
    if (flush)
        virtq_flush(z->vq);
}

/* The device quiesces: everything it holds goes back to the driver. */
static void complete_all(Fuzz *z)
{
    while (z->nheld)
        virtq_fill(z->vq, release(z, z->nheld - 1), 0);
    virtq_flush(z->vq);
}

static void save(VirtQueue *vq, StateWriter *w)
{
    state_writer_begin_section(w, "vq", 1);
    virtq_save(vq, w, "q.");
    state_writer_end_section(w);
}

static gboolean load(VirtQueue *vq, const uint8_t *data, size_t len)
{
    g_autoptr(StateReader) r = state_reader_new(data, len);
    uint32_t version;

    return state_reader_begin_section(r, "vq", 1, &version, NULL) &&
           virtq_load(vq, r, "q.", NULL) && state_reader_end_section(r, NULL) &&
           state_reader_at_end(r);
}

/* Save, load into a new queue as migration would, and compare. */
static void op_save_load(Fuzz *z)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(StateWriter) w2 = state_writer_new();
    g_autoptr(VirtQueue) dst = virtq_new(&z->mem, "fuzz/dst", MAX_SIZE);
    const uint8_t *a, *b;
    size_t alen, blen;

    complete_all(z);
    save(z->vq, w);
    a = state_writer_data(w, &alen);
    if (!load(dst, a, alen))
        abort();
    save(dst, w2);
    b = state_writer_data(w2, &blen);
    if (alen != blen || memcmp(a, b, alen) != 0)
        abort();
    if (virtq_is_enabled(dst) != virtq_is_enabled(z->vq) ||
        virtq_is_broken(dst) != virtq_is_broken(z->vq))
        abort();
    virtq_free(z->vq);
    z->vq = g_steal_pointer(&dst);
}

/* Saved state with bytes flipped: refused, or a queue that still behaves. */
static void op_load_damaged(Fuzz *z, FuzzInput *in)
{
    g_autoptr(StateWriter) w = state_writer_new();
    g_autoptr(VirtQueue) dst = virtq_new(&z->mem, "fuzz/damaged", MAX_SIZE);
    g_autofree uint8_t *copy = NULL;
    unsigned n = fuzz_take(in, 1) % 8;
    const uint8_t *a;
    size_t len;

    complete_all(z);
    save(z->vq, w);
    a = state_writer_data(w, &len);
    copy = g_memdup2(a, len);
    for (unsigned i = 0; i < n; i++) {
        unsigned at = fuzz_take(in, 1);
        copy[at % len] ^= fuzz_take(in, 1);
    }
    if (!load(dst, copy, len))
        return;
    virtq_free(z->vq);
    z->vq = g_steal_pointer(&dst);
    /*
     * The rings and indices are now whatever loaded: keep checking the
     * elements, not the ring contents, until the next reset.
     */
    z->size = virtq_get_size(z->vq);
    z->rings_known = FALSE;
    z->tracking = FALSE;
    z->broken_seen = FALSE;
}

static void op_element_io(Fuzz *z, FuzzInput *in)
{
    static uint8_t buf[0x10000];
    unsigned which = fuzz_take(in, 1);
    size_t off = fuzz_take(in, 2), len = fuzz_take(in, 2), n;
    const VirtqElement *e;

    if (!z->nheld)
        return;
    e = z->held[which % z->nheld];
    if (which & 0x80) {
        memset(buf, 0x5a, len);
        n = virtq_element_write(e, off, buf, len);
        if (n > len || n != (off < e->in_len ? MIN(len, e->in_len - off) : 0))
            abort();
    } else {
        n = virtq_element_read(e, off, buf, len);
        if (n > len || n != (off < e->out_len ? MIN(len, e->out_len - off) : 0))
            abort();
    }
}

static void run(Fuzz *z, FuzzInput *in)
{
    for (unsigned ops = 0; in->left && ops < MAX_OPS; ops++) {
        Op op = fuzz_take(in, 1) % OP_COUNT;
        gboolean popped = z->just_popped;

        z->just_popped = FALSE;
        switch (op) {
        case OP_POP:
            op_pop(z);
            break;
        case OP_PUSH:
            op_push(z, in);
            break;
        case OP_FLUSH:
            virtq_flush(z->vq);
            break;
        case OP_AVAIL_SET:
        case OP_AVAIL_ADD: {
            uint8_t *p = z->rings_known ? gpa_ptr(z, z->cfg.avail_addr + 2, 2) : NULL;
            uint16_t v = op == OP_AVAIL_SET ? fuzz_take(in, 2) : fuzz_take(in, 1);

            if (p)
                vireo_le_store(p, 2, op == OP_AVAIL_SET ? v : vireo_le_load(p, 2) + v);
            driver_wrote(z);
            break;
        }
        case OP_POKE: {
            uint64_t gpa = fuzz_take(in, 2) % ADDR_SPACE;
            unsigned len = fuzz_take(in, 1) % 16 + 1;

            for (unsigned i = 0; i < len; i++) {
                uint8_t v = fuzz_take(in, 1);
                uint8_t *p = gpa_ptr(z, gpa + i, 1);
                if (p)
                    *p = v;
            }
            driver_wrote(z);
            break;
        }
        case OP_DISABLE_NOTIFY:
            virtq_disable_notification(z->vq);
            break;
        case OP_ENABLE_NOTIFY:
            virtq_enable_notification(z->vq);
            break;
        case OP_NEEDS_NOTIFY:
            virtq_needs_notification(z->vq);
            break;
        case OP_SAVE_LOAD:
            op_save_load(z);
            break;
        case OP_LOAD_DAMAGED:
            op_load_damaged(z, in);
            break;
        case OP_RESET:
            /*
             * Driver reset and set-up again; elements completed late by the
             * device must not reach the new ring.
             */
            virtq_reset(z->vq);
            start(z);
            if (z->rings_known)
                snapshot_used(z);
            drop_held(z, TRUE);
            if (z->rings_known && memcmp(z->used_snapshot, gpa_ptr(z, z->cfg.used_addr,
                                                                   used_bytes(z)),
                                         used_bytes(z)) != 0)
                abort();
            break;
        case OP_UNPOP:
            if (popped) {
                virtq_unpop(z->vq, release(z, z->nheld - 1));
                if (z->tracking) {
                    z->allowance++;
                    z->consumed--;
                }
            }
            break;
        case OP_ELEMENT_IO:
            op_element_io(z, in);
            break;
        default:
            abort();
        }
        check_broken(z);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzInput in = { data, size };
    Fuzz z = { 0 };
    unsigned size_byte, flags, image;
    uint16_t addr[3];

    if (!pool[0]) {
        g_autoptr(VirtQueue) sizing = NULL;

        fuzz_quiet_logs();
        sizing = virtq_new(&z.mem, "sizing", MAX_SIZE);
        for (unsigned i = 0; i <= MAX_SIZE; i++)
            pool[i] = virtq_element_new(sizing);
    }
    if (size < 10)
        return 0;
    size_byte = fuzz_take(&in, 1);
    flags = fuzz_take(&in, 1);
    for (unsigned i = 0; i < 3; i++)
        addr[i] = fuzz_take(&in, 2);
    image = fuzz_take(&in, 2);

    z.ram[0] = calloc(1, R0_SIZE);
    z.ram[1] = calloc(1, R1_SIZE);
    z.ram[2] = calloc(1, R2_SIZE);
    z.mem.regions[0] = (GuestRegion){ .gpa = 0, .size = R0_SIZE, .host = z.ram[0] };
    z.mem.regions[1] = (GuestRegion){ .gpa = R1_GPA, .size = R1_SIZE, .host = z.ram[1] };
    z.mem.regions[2] = (GuestRegion){ .gpa = R2_GPA, .size = R2_SIZE, .host = z.ram[2] };
    z.mem.nr_regions = 3;
    z.mem.ram_size = R0_SIZE + R1_SIZE + R2_SIZE;
    /* The image fills regions 0 and 1, which are contiguous. */
    image = MIN(image, MIN(in.left, LINEAR_SIZE));
    memcpy(z.ram[0], in.p, MIN(image, R0_SIZE));
    if (image > R0_SIZE)
        memcpy(z.ram[1], in.p + R0_SIZE, image - R0_SIZE);
    in.p += image;
    in.left -= image;

    z.cfg.size = size_byte & 0x80 ? size_byte & 0x7f : 1u << (size_byte % 9);
    z.cfg.features = (flags & 1 ? 1ULL << VIRTQ_F_RING_INDIRECT_DESC : 0) |
                     (flags & 2 ? 1ULL << VIRTQ_F_RING_EVENT_IDX : 0) | (flags & 4 ? 0 : F_V1);
    if (flags & 8) {
        static const unsigned scale[3] = { 16, 2, 4 };
        uint64_t a[3];

        for (unsigned i = 0; i < 3; i++)
            a[i] = (flags & 16 ? addr[i] : (uint64_t)addr[i] * scale[i]) % ADDR_SPACE;
        z.cfg.desc_addr = a[0];
        z.cfg.avail_addr = a[1];
        z.cfg.used_addr = a[2];
    } else {
        z.cfg.desc_addr = 0;
        z.cfg.avail_addr = 16ULL * z.cfg.size;
        z.cfg.used_addr = VIREO_ALIGN_UP(z.cfg.avail_addr + 6 + 2ULL * z.cfg.size, 4);
    }
    for (unsigned i = 0; i < MAX_SIZE; i++)
        z.spare[z.nspare++] = pool[i];
    z.vq = virtq_new(&z.mem, "fuzz/0", MAX_SIZE);
    start(&z);

    run(&z, &in);

    drop_held(&z, TRUE);
    virtq_free(z.vq);
    for (unsigned i = 0; i < 3; i++)
        free(z.ram[i]);
    return 0;
}
