/* SPDX-License-Identifier: GPL-2.0-or-later */
/* RAM pages in the migration stream: zero-page runs and optional zstd. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "vireo/migration-ram.h"
#include "vireo/migration.h"
#include "vireo/util.h"

struct MigRamEncoder {
    int level;
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;
    size_t zbuf_size;
    uint8_t *copy;              /* MIG_RAM_MAX_RUN pages */
};

struct MigRamDecoder {
    uint8_t *ram;
    uint64_t size;
    gboolean ram_is_zero;
    /* Pages ever written, when ram_is_zero; atomic bit operations (peers share it). */
    unsigned long *written;
    gboolean owns_written;      /* FALSE: a peer's, borrowed */
    int memfd;                  /* the file behind ram (not owned), or -1 */
    uint8_t *bounce;            /* zstd output before it goes to memfd */
    ZSTD_DCtx *dctx;
};

gboolean mig_ram_page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;

    /* OR in blocks: branch once per 64 bytes, not per word. */
    for (unsigned i = 0; i < MIG_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
            return FALSE;
    }
    return TRUE;
}

MigRamEncoder *mig_ram_encoder_new(int zstd_level)
{
    MigRamEncoder *e = g_new0(MigRamEncoder, 1);

    e->level = zstd_level;
    if (zstd_level > 0) {
        e->cctx = ZSTD_createCCtx();
        e->zbuf_size = ZSTD_compressBound(MIG_RAM_MAX_RUN * MIG_PAGE_SIZE);
        e->zbuf = g_malloc(e->zbuf_size);
        e->copy = g_malloc(MIG_RAM_MAX_RUN * MIG_PAGE_SIZE);
    }
    return e;
}

void mig_ram_encoder_free(MigRamEncoder *e)
{
    if (!e)
        return;
    ZSTD_freeCCtx(e->cctx);
    g_free(e->zbuf);
    g_free(e->copy);
    g_free(e);
}

static gboolean send_run(MigRamEncoder *e, MigStream *s, uint64_t offset, const uint8_t *host,
                         uint32_t npages, gboolean zero, MigRamStats *stats, GError **error)
{
    uint8_t head[MIG_RAM_RECORD_HEAD];
    size_t len = (size_t)npages * MIG_PAGE_SIZE;
    const void *body = host;
    size_t body_len = len;
    uint8_t enc = MIG_RAM_RAW;

    if (zero) {
        enc = MIG_RAM_ZERO;
        body_len = 0;
        stats->zero_pages += npages;
    } else {
        if (e->cctx) {
            size_t z;

            /* A stable copy: the guest may write to the pages while we compress. */
            memcpy(e->copy, host, len);
            z = ZSTD_compressCCtx(e->cctx, e->zbuf, e->zbuf_size, e->copy, len, e->level);
            /* Keep it raw when compression does not pay. */
            if (!ZSTD_isError(z) && z < len) {
                enc = MIG_RAM_ZSTD;
                body = e->zbuf;
                body_len = z;
            }
        }
        stats->pages += npages;
        stats->data_bytes += len;
        stats->wire_bytes += body_len;
    }
    vireo_le_store(head, 8, offset);
    vireo_le_store(head + 8, 4, npages);
    head[12] = enc;
    return mig_stream_write_record(s, MIG_RECORD_RAM, head, sizeof(head), body, body_len, error);
}

gboolean mig_ram_send(MigRamEncoder *e, MigStream *s, uint64_t offset, const uint8_t *host,
                      uint64_t npages, MigRamStats *stats, GError **error)
{
    uint64_t i = 0;

    while (i < npages) {
        gboolean zero = mig_ram_page_is_zero(host + i * MIG_PAGE_SIZE);
        uint64_t j = i + 1;

        while (j < npages && j - i < MIG_RAM_MAX_RUN &&
               mig_ram_page_is_zero(host + j * MIG_PAGE_SIZE) == zero)
            j++;
        if (!send_run(e, s, offset + i * MIG_PAGE_SIZE, host + i * MIG_PAGE_SIZE, j - i, zero,
                      stats, error))
            return FALSE;
        i = j;
    }
    return TRUE;
}

MigRamDecoder *mig_ram_decoder_new(uint8_t *ram, uint64_t size, gboolean ram_is_zero)
{
    MigRamDecoder *d = g_new0(MigRamDecoder, 1);
    uint64_t pages = size / MIG_PAGE_SIZE;

    d->ram = ram;
    d->size = size;
    d->ram_is_zero = ram_is_zero;
    d->memfd = -1;
    if (ram_is_zero) {
        d->written = g_new0(unsigned long, (pages + 63) / 64 + 1);
        d->owns_written = TRUE;
    }
    return d;
}

MigRamDecoder *mig_ram_decoder_new_peer(const MigRamDecoder *d)
{
    MigRamDecoder *peer = g_new0(MigRamDecoder, 1);

    peer->ram = d->ram;
    peer->size = d->size;
    peer->ram_is_zero = d->ram_is_zero;
    peer->written = d->written;
    peer->memfd = d->memfd;
    return peer;
}

void mig_ram_decoder_set_memfd(MigRamDecoder *d, int memfd)
{
    d->memfd = memfd;
}

void mig_ram_decoder_free(MigRamDecoder *d)
{
    if (!d)
        return;
    if (d->owns_written)
        g_free(d->written);
    ZSTD_freeDCtx(d->dctx);
    g_free(d->bounce);
    g_free(d);
}

#define BITS_PER_LONG (8 * sizeof(unsigned long))

/*
 * Relaxed atomics: peers on other threads write other bits of the same
 * words; the order between passes comes from the caller's barrier.
 */
static void mark_written(MigRamDecoder *d, uint64_t first, uint64_t n)
{
    if (!d->written)
        return;
    /* A word at a time: one atomic operation for up to 64 pages. */
    for (uint64_t p = first; p < first + n;) {
        unsigned bit = p % BITS_PER_LONG;
        uint64_t k = MIN(BITS_PER_LONG - bit, first + n - p);
        unsigned long mask = (k == BITS_PER_LONG ? ~0UL : ((1UL << k) - 1)) << bit;

        __atomic_fetch_or(&d->written[p / BITS_PER_LONG], mask, __ATOMIC_RELAXED);
        p += k;
    }
}

static void zero_pages(MigRamDecoder *d, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++) {
        if (d->written && !(__atomic_load_n(&d->written[p / BITS_PER_LONG], __ATOMIC_RELAXED) &
                            (1UL << (p % BITS_PER_LONG))))
            continue;
        memset(d->ram + p * MIG_PAGE_SIZE, 0, MIG_PAGE_SIZE);
    }
}

/*
 * Pages into the memfd by pwrite(): the kernel allocates them in the page
 * cache without mapping them here. A memcpy() into the fresh mapping
 * takes a page fault per 4 KiB page instead, which costs more than the
 * copy itself (1 GiB: 1.3 s by memcpy, 0.7 s by pwrite on the nested
 * test host); the guest maps them later, as it touches them.
 */
static gboolean write_pages(MigRamDecoder *d, uint64_t offset, const uint8_t *data,
                            uint64_t bytes, GError **error)
{
    while (bytes) {
        ssize_t n = pwrite(d->memfd, data, bytes, (off_t)offset);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : ENOSPC;

            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "cannot write guest RAM at 0x%" G_GINT64_MODIFIER "x: %s",
                        (guint64)offset, g_strerror(saved));
            return FALSE;
        }
        data += n;
        offset += n;
        bytes -= n;
    }
    return TRUE;
}

gboolean mig_ram_decoder_apply(MigRamDecoder *d, const uint8_t *payload, size_t len,
                               GError **error)
{
    uint64_t offset, bytes;
    uint32_t npages;
    const uint8_t *data = payload + MIG_RAM_RECORD_HEAD;
    size_t data_len;

    if (len < MIG_RAM_RECORD_HEAD)
        goto bad;
    offset = vireo_le_load(payload, 8);
    npages = vireo_le_load(payload + 8, 4);
    data_len = len - MIG_RAM_RECORD_HEAD;
    bytes = (uint64_t)npages * MIG_PAGE_SIZE;
    if (npages == 0 || npages > MIG_RAM_MAX_RUN || offset % MIG_PAGE_SIZE ||
        offset > d->size || bytes > d->size - offset)
        goto bad;
    switch (payload[12]) {
    case MIG_RAM_ZERO:
        if (data_len)
            goto bad;
        zero_pages(d, offset / MIG_PAGE_SIZE, npages);
        return TRUE;
    case MIG_RAM_RAW:
        if (data_len != bytes)
            goto bad;
        if (d->memfd >= 0) {
            if (!write_pages(d, offset, data, bytes, error))
                return FALSE;
        } else {
            memcpy(d->ram + offset, data, bytes);
        }
        break;
    case MIG_RAM_ZSTD: {
        uint8_t *out = d->ram + offset;
        size_t n;

        if (!d->dctx)
            d->dctx = ZSTD_createDCtx();
        if (d->memfd >= 0) {
            if (!d->bounce)
                d->bounce = g_malloc((size_t)MIG_RAM_MAX_RUN * MIG_PAGE_SIZE);
            out = d->bounce;
        }
        n = ZSTD_decompressDCtx(d->dctx, out, bytes, data, data_len);
        if (ZSTD_isError(n) || n != bytes) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "migration stream: bad zstd data for RAM at 0x%" G_GINT64_MODIFIER "x: %s",
                        (guint64)offset, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
            return FALSE;
        }
        if (d->memfd >= 0 && !write_pages(d, offset, out, bytes, error))
            return FALSE;
        break;
    }
    default:
        goto bad;
    }
    mark_written(d, offset / MIG_PAGE_SIZE, npages);
    return TRUE;

bad:
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                "migration stream: bad RAM section (%zu bytes) for a RAM of %" G_GUINT64_FORMAT
                " bytes", len, (guint64)d->size);
    return FALSE;
}

int mig_ram_next_data(const MigRam *ram, off_t pos, off_t *data, off_t *hole)
{
    off_t size = ram->size;

    *data = lseek(ram->memfd, pos, SEEK_DATA);
    if (*data < 0)
        return errno == ENXIO ? 0 : -1;
    *hole = lseek(ram->memfd, *data, SEEK_HOLE);
    if (*hole < 0 || *hole > size)
        *hole = size;
    return 1;
}
