/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Migration stream framing: header, records, END with a checksum. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "vireo/migration-stream.h"
#include "vireo/migration-tls.h"
#include "vireo/util.h"

#define STREAM_BUF_SIZE (512 * 1024)
#define HEADER_LEN MIG_STREAM_HEADER_LEN

struct MigStream {
    int fd;
    MigTlsLink *tls;            /* or NULL; borrowed: the stream goes through it, not fd */
    gboolean writer;
    uint32_t version;           /* of the header, once read or written */
    uint8_t *buf;
    size_t fill;                /* writer: bytes queued; reader: bytes buffered */
    size_t pos;                 /* reader: next byte in buf */
    MigHasher hash;             /* over everything before the END payload */
    uint64_t bytes;             /* atomic: on the wire so far */
    uint8_t *payload;           /* reader: the current record */
    size_t payload_cap;
};

static inline uint64_t rotl64(uint64_t v, unsigned r)
{
    return (v << r) | (v >> (64 - r));
}

#define HASH_K1 0x9e3779b185ebca87ULL
#define HASH_K2 0xc2b2ae3d27d4eb4fULL

void mig_hasher_init(MigHasher *h, uint64_t seed)
{
    memset(h, 0, sizeof(*h));
    h->lane[0] = seed ^ HASH_K1;
    h->lane[1] = seed + HASH_K2;
    h->lane[2] = rotl64(seed, 17);
    h->lane[3] = seed - HASH_K1;
}

static inline void hash_block(MigHasher *h, const uint8_t *p)
{
    uint64_t w[4];

    memcpy(w, p, 32);
    for (unsigned i = 0; i < 4; i++)
        h->lane[i] = rotl64(h->lane[i] + w[i] * HASH_K2, 31) * HASH_K1;
}

/*
 * Four independent lanes of multiply-rotate over 32-byte blocks: several
 * GB/s, so the checksum costs little next to copying the pages, and the
 * result does not depend on how the data was split into calls. Not
 * cryptographic: it catches corruption and truncation, not an attacker.
 */
void mig_hasher_update(MigHasher *h, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!len)
        return;     /* @data may be NULL then */
    h->total += len;
    if (h->tail_len) {
        size_t n = MIN(len, 32 - h->tail_len);
        memcpy(h->tail + h->tail_len, p, n);
        h->tail_len += n;
        p += n;
        len -= n;
        if (h->tail_len < 32)
            return;
        hash_block(h, h->tail);
        h->tail_len = 0;
    }
    while (len >= 32) {
        hash_block(h, p);
        p += 32;
        len -= 32;
    }
    memcpy(h->tail, p, len);
    h->tail_len = len;
}

uint64_t mig_hasher_final(const MigHasher *h)
{
    uint64_t v = rotl64(h->lane[0], 1) + rotl64(h->lane[1], 7) + rotl64(h->lane[2], 12) +
                 rotl64(h->lane[3], 18) + h->total * HASH_K2;

    for (unsigned i = 0; i < h->tail_len; i++) {
        v ^= (uint64_t)h->tail[i] * 0x27d4eb2f165667c5ULL;
        v = rotl64(v, 11) * HASH_K1;
    }
    v ^= v >> 33;
    v *= HASH_K2;
    v ^= v >> 29;
    return v;
}

uint64_t mig_hash(uint64_t seed, const void *data, size_t len)
{
    MigHasher h;

    mig_hasher_init(&h, seed);
    mig_hasher_update(&h, data, len);
    return mig_hasher_final(&h);
}

static MigStream *stream_new(int fd, gboolean writer)
{
    MigStream *s = g_new0(MigStream, 1);

    s->fd = fd;
    s->writer = writer;
    s->buf = g_malloc(STREAM_BUF_SIZE);
    mig_hasher_init(&s->hash, 0);
    return s;
}

MigStream *mig_stream_new_writer(int fd)
{
    return stream_new(fd, TRUE);
}

MigStream *mig_stream_new_reader(int fd)
{
    return stream_new(fd, FALSE);
}

void mig_stream_set_tls(MigStream *s, MigTlsLink *link)
{
    s->tls = link;
}

void mig_stream_free(MigStream *s)
{
    if (!s)
        return;
    g_free(s->buf);
    g_free(s->payload);
    g_free(s);
}

uint64_t mig_stream_get_bytes(const MigStream *s)
{
    return __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
}

static gboolean write_all(MigStream *s, const void *data, size_t len, GError **error)
{
    const uint8_t *p = data;

    if (s->tls) {
        if (!mig_tls_link_write(s->tls, data, len, error)) {
            g_prefix_error(error, "cannot write the migration stream: ");
            return FALSE;
        }
        __atomic_add_fetch(&s->bytes, len, __ATOMIC_RELAXED);
        return TRUE;
    }
    while (len) {
        ssize_t n = write(s->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EPIPE;
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "cannot write the migration stream: %s", g_strerror(saved));
            return FALSE;
        }
        p += n;
        len -= n;
        __atomic_add_fetch(&s->bytes, n, __ATOMIC_RELAXED);
    }
    return TRUE;
}

gboolean mig_stream_flush(MigStream *s, GError **error)
{
    size_t n = s->fill;

    g_assert(s->writer);
    s->fill = 0;
    return write_all(s, s->buf, n, error);
}

/*
 * Queues @len bytes. The data is copied first and the copy hashed: guest
 * RAM changes under us while the VM runs, and the checksum must match the
 * bytes that go out (a page changed meanwhile is dirty and sent again).
 */
static gboolean put(MigStream *s, const void *data, size_t len, GError **error)
{
    const uint8_t *p = data;

    while (len) {
        size_t n = MIN(len, STREAM_BUF_SIZE - s->fill);

        memcpy(s->buf + s->fill, p, n);
        mig_hasher_update(&s->hash, s->buf + s->fill, n);
        s->fill += n;
        p += n;
        len -= n;
        if (s->fill == STREAM_BUF_SIZE && !mig_stream_flush(s, error))
            return FALSE;
    }
    return TRUE;
}

gboolean mig_stream_write_header_version(MigStream *s, uint32_t version, uint64_t ram_size,
                                         GError **error)
{
    uint8_t h[HEADER_LEN];

    memcpy(h, MIG_STREAM_MAGIC, 8);
    vireo_le_store(h + 8, 4, version);
    vireo_le_store(h + 12, 8, ram_size);
    s->version = version;
    return put(s, h, sizeof(h), error);
}

gboolean mig_stream_write_header(MigStream *s, uint64_t ram_size, GError **error)
{
    return mig_stream_write_header_version(s, MIG_STREAM_VERSION, ram_size, error);
}

uint32_t mig_stream_get_version(const MigStream *s)
{
    return s->version;
}

gboolean mig_stream_write_record(MigStream *s, MigRecordType type, const void *head,
                                 size_t head_len, const void *body, size_t body_len,
                                 GError **error)
{
    uint8_t h[MIG_RECORD_HEADER_LEN];

    g_assert(head_len + body_len <= UINT32_MAX);
    h[0] = type;
    vireo_le_store(h + 1, 4, head_len + body_len);
    return put(s, h, sizeof(h), error) && (!head_len || put(s, head, head_len, error)) &&
           (!body_len || put(s, body, body_len, error));
}

gboolean mig_stream_write_end(MigStream *s, GError **error)
{
    uint8_t h[MIG_RECORD_HEADER_LEN], sum[8];

    h[0] = MIG_RECORD_END;
    vireo_le_store(h + 1, 4, sizeof(sum));
    if (!put(s, h, sizeof(h), error))
        return FALSE;
    vireo_le_store(sum, 8, mig_hasher_final(&s->hash));
    return put(s, sum, sizeof(sum), error) && mig_stream_flush(s, error);
}

/* --- reader --- */

static gboolean read_exact(MigStream *s, void *data, size_t len, GError **error)
{
    uint8_t *p = data;

    while (len) {
        size_t avail = s->fill - s->pos;
        if (avail) {
            size_t n = MIN(avail, len);
            memcpy(p, s->buf + s->pos, n);
            s->pos += n;
            p += n;
            len -= n;
            continue;
        }
        /* Large reads go straight to their destination. */
        uint8_t *into = len >= STREAM_BUF_SIZE ? p : s->buf;
        size_t want = len >= STREAM_BUF_SIZE ? len : STREAM_BUF_SIZE;
        ssize_t n = s->tls ? mig_tls_link_read(s->tls, into, want, error)
                           : read(s->fd, into, want);

        if (n < 0 && !s->tls && errno == EINTR)
            continue;
        if (n < 0 && s->tls) {
            g_prefix_error(error, "cannot read the migration stream: ");
            return FALSE;
        }
        if (n < 0) {
            int saved = errno;
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_IO,
                        "cannot read the migration stream: %s", g_strerror(saved));
            return FALSE;
        }
        if (n == 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "migration stream truncated after %" G_GUINT64_FORMAT " bytes",
                        (guint64)mig_stream_get_bytes(s));
            return FALSE;
        }
        __atomic_add_fetch(&s->bytes, n, __ATOMIC_RELAXED);
        if (len >= STREAM_BUF_SIZE) {
            p += n;
            len -= n;
        } else {
            s->fill = n;
            s->pos = 0;
        }
    }
    return TRUE;
}

gboolean mig_stream_read_header(MigStream *s, uint64_t *ram_size, GError **error)
{
    uint8_t h[HEADER_LEN];
    uint32_t version;

    if (!read_exact(s, h, sizeof(h), error))
        return FALSE;
    if (memcmp(h, MIG_STREAM_MAGIC, 8) != 0) {
        /* A TLS record header: handshake (0x16), version 3.x. */
        gboolean tls = h[0] == 0x16 && h[1] == 0x03;

        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "not a vireo migration stream (bad magic)%s",
                    tls ? ": the source speaks TLS, and this destination has no "
                          "tls-creds" : "");
        return FALSE;
    }
    version = vireo_le_load(h + 8, 4);
    if (version != MIG_STREAM_VERSION && version != MIG_STREAM_VERSION_MULTIFD) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream version %u, this build reads %u and %u", version,
                    MIG_STREAM_VERSION, MIG_STREAM_VERSION_MULTIFD);
        return FALSE;
    }
    s->version = version;
    mig_hasher_update(&s->hash, h, sizeof(h));
    *ram_size = vireo_le_load(h + 12, 8);
    return TRUE;
}

static uint32_t record_max(uint8_t type)
{
    switch (type) {
    case MIG_RECORD_RAM: return MIG_RAM_RECORD_MAX;
    case MIG_RECORD_STATE: return MIG_STATE_MAX;
    case MIG_RECORD_END: return 8;
    case MIG_RECORD_DISCARD: return MIG_DISCARD_LEN;
    case MIG_RECORD_POSTCOPY: return MIG_STATE_MAX;
    /* Exact lengths are for the parsers (migration-multifd.h) to check. */
    case MIG_RECORD_MULTIFD: return 64;
    case MIG_RECORD_HELLO: return 64;
    case MIG_RECORD_SYNC: return 64;
    default: return 0;
    }
}

gboolean mig_stream_read_record(MigStream *s, MigRecord *rec, GError **error)
{
    uint8_t h[MIG_RECORD_HEADER_LEN];
    uint64_t offset = mig_stream_get_bytes(s) - (s->fill - s->pos);
    uint32_t len, max;

    if (!read_exact(s, h, sizeof(h), error))
        return FALSE;
    len = vireo_le_load(h + 1, 4);
    max = record_max(h[0]);
    if (!max) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "unknown migration stream section type 0x%02x at offset %" G_GUINT64_FORMAT,
                    h[0], (guint64)offset);
        return FALSE;
    }
    if (len > max || (h[0] == MIG_RECORD_END && len != 8)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "migration stream section '%c' at offset %" G_GUINT64_FORMAT
                    " claims %u bytes (at most %u)", h[0], (guint64)offset, len, max);
        return FALSE;
    }
    mig_hasher_update(&s->hash, h, sizeof(h));
    if (len > s->payload_cap) {
        g_free(s->payload);
        s->payload_cap = MAX(len, 4096);
        s->payload = g_malloc(s->payload_cap);
    }
    if (!read_exact(s, s->payload, len, error))
        return FALSE;
    if (h[0] == MIG_RECORD_END) {
        uint64_t want = vireo_le_load(s->payload, 8);
        uint64_t got = mig_hasher_final(&s->hash);
        if (want != got) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                        "migration stream checksum mismatch (stream says %016" G_GINT64_MODIFIER
                        "x, data gives %016" G_GINT64_MODIFIER "x)", (guint64)want,
                        (guint64)got);
            return FALSE;
        }
    } else {
        mig_hasher_update(&s->hash, s->payload, len);
    }
    rec->type = h[0];
    rec->len = len;
    rec->data = s->payload;
    return TRUE;
}
