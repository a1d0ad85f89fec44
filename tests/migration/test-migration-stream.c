/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The migration stream without KVM: framing round trip, checksum, a
 * truncated stream, an unknown section, hostile lengths (never a crash or
 * a huge allocation), and RAM pages with zero runs and zstd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vireo/migration-ram.h"
#include "vireo/migration-stream.h"
#include "vireo/util.h"

#define RAM_SIZE (4 * 1024 * 1024)

/* A memfd holding a stream, rewound for reading. */
static int new_buffer(void)
{
    int fd = memfd_create("stream", MFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static GBytes *read_all(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    uint8_t *buf = g_malloc(size);

    assert_int_equal(pread(fd, buf, size, 0), size);
    return g_bytes_new_take(buf, size);
}

static int fd_with(const void *data, size_t len)
{
    int fd = new_buffer();
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* RAM with a pattern in some pages, zero elsewhere, one compressible page. */
static uint8_t *make_ram(void)
{
    uint8_t *ram = g_malloc0(RAM_SIZE);

    for (size_t p = 0; p < RAM_SIZE / MIG_PAGE_SIZE; p += 3) {
        for (size_t i = 0; i < MIG_PAGE_SIZE; i++)
            ram[p * MIG_PAGE_SIZE + i] = (uint8_t)(p * 7 + i * 13 + (i >> 5));
    }
    memset(ram + 5 * MIG_PAGE_SIZE, 'x', MIG_PAGE_SIZE);
    return ram;
}

/* Writes a whole stream of @ram (and a state blob) into a memfd. */
static int write_stream(const uint8_t *ram, int zstd_level, MigRamStats *stats)
{
    int fd = new_buffer();
    g_autoptr(MigStream) s = mig_stream_new_writer(fd);
    g_autoptr(MigRamEncoder) e = mig_ram_encoder_new(zstd_level);
    g_autoptr(GError) err = NULL;
    uint8_t flags = MIG_STATE_FLAG_RUNNING;

    assert_true(mig_stream_write_header(s, RAM_SIZE, &err));
    assert_true(mig_ram_send(e, s, 0, ram, RAM_SIZE / MIG_PAGE_SIZE, stats, &err));
    assert_true(mig_stream_write_record(s, MIG_RECORD_STATE, &flags, 1, "state", 5, &err));
    assert_true(mig_stream_write_end(s, &err));
    return fd;
}

/* Reads a stream into fresh RAM; returns FALSE with @error on a bad one. */
static gboolean read_stream(int fd, uint8_t *ram, GError **error)
{
    g_autoptr(MigStream) s = mig_stream_new_reader(fd);
    g_autoptr(MigRamDecoder) d = mig_ram_decoder_new(ram, RAM_SIZE, TRUE);
    uint64_t size;

    lseek(fd, 0, SEEK_SET);
    if (!mig_stream_read_header(s, &size, error))
        return FALSE;
    assert_int_equal(size, RAM_SIZE);
    for (;;) {
        MigRecord rec;
        if (!mig_stream_read_record(s, &rec, error))
            return FALSE;
        if (rec.type == MIG_RECORD_END)
            return TRUE;
        if (rec.type == MIG_RECORD_RAM && !mig_ram_decoder_apply(d, rec.data, rec.len, error))
            return FALSE;
        if (rec.type == MIG_RECORD_STATE && (rec.len != 6 || memcmp(rec.data + 1, "state", 5))) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE, "unexpected state");
            return FALSE;
        }
    }
}

static void round_trip(int level)
{
    g_autofree uint8_t *ram = make_ram();
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autoptr(GError) err = NULL;
    MigRamStats st = { 0 };
    int fd = write_stream(ram, level, &st);

    assert_true(st.zero_pages > 0 && st.pages > 0);
    assert_int_equal(st.zero_pages + st.pages, RAM_SIZE / MIG_PAGE_SIZE);
    if (level)
        assert_true(st.wire_bytes < st.data_bytes);
    else
        assert_int_equal(st.wire_bytes, st.data_bytes);
    if (!read_stream(fd, out, &err))
        fail_msg("%s", err->message);
    assert_memory_equal(ram, out, RAM_SIZE);
    close(fd);
}

static void test_round_trip_raw(void **state)
{
    round_trip(0);
}

static void test_round_trip_zstd(void **state)
{
    round_trip(3);
}

/* ZERO runs clear pages written earlier in the stream (pre-copy resends). */
static void test_zero_after_data(void **state)
{
    g_autofree uint8_t *ram = make_ram();
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autoptr(MigRamEncoder) e = mig_ram_encoder_new(0);
    g_autoptr(GError) err = NULL;
    MigRamStats st = { 0 };
    int fd = new_buffer();
    g_autoptr(MigStream) s = mig_stream_new_writer(fd);

    assert_true(mig_stream_write_header(s, RAM_SIZE, &err));
    assert_true(mig_ram_send(e, s, 0, ram, RAM_SIZE / MIG_PAGE_SIZE, &st, &err));
    memset(ram, 0, MIG_PAGE_SIZE);
    assert_true(mig_ram_send(e, s, 0, ram, 1, &st, &err));
    assert_true(mig_stream_write_record(s, MIG_RECORD_STATE, "\0", 1, NULL, 0, &err));
    assert_true(mig_stream_write_end(s, &err));
    memset(out, 0xff, MIG_PAGE_SIZE);
    {
        g_autoptr(MigStream) r = mig_stream_new_reader(fd);
        g_autoptr(MigRamDecoder) d = mig_ram_decoder_new(out, RAM_SIZE, FALSE);
        uint64_t size;
        MigRecord rec;

        lseek(fd, 0, SEEK_SET);
        assert_true(mig_stream_read_header(r, &size, &err));
        while (mig_stream_read_record(r, &rec, &err) && rec.type != MIG_RECORD_END) {
            if (rec.type == MIG_RECORD_RAM)
                assert_true(mig_ram_decoder_apply(d, rec.data, rec.len, &err));
        }
        assert_null(err);
    }
    assert_memory_equal(ram, out, RAM_SIZE);
    close(fd);
}

static void expect_failure(GBytes *bytes, const char *text)
{
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autoptr(GError) err = NULL;
    gsize len;
    const void *data = g_bytes_get_data(bytes, &len);
    int fd = fd_with(data, len);

    assert_false(read_stream(fd, out, &err));
    assert_non_null(err);
    if (!strstr(err->message, text))
        fail_msg("error '%s' lacks '%s'", err->message, text);
    close(fd);
}

static void test_bad_checksum(void **state)
{
    g_autofree uint8_t *ram = make_ram();
    MigRamStats st = { 0 };
    int fd = write_stream(ram, 0, &st);
    g_autoptr(GBytes) b = read_all(fd);
    gsize len = g_bytes_get_size(b);
    uint8_t *copy = g_memdup2(g_bytes_get_data(b, NULL), len);
    g_autoptr(GBytes) bad = NULL;

    /* A byte inside page data: framing stays valid, the checksum does not. */
    copy[20 + 5 + 13 + 100] ^= 1;
    bad = g_bytes_new_take(copy, len);
    expect_failure(bad, "checksum mismatch");
    close(fd);
}

static void test_truncated(void **state)
{
    g_autofree uint8_t *ram = make_ram();
    MigRamStats st = { 0 };
    int fd = write_stream(ram, 0, &st);
    g_autoptr(GBytes) b = read_all(fd);
    gsize len = g_bytes_get_size(b);

    /* Cut everywhere interesting: header, record headers, payloads, END. */
    for (gsize cut = 0; cut < len; cut += (cut < 64 ? 1 : 4093)) {
        g_autoptr(GBytes) part = g_bytes_new_from_bytes(b, 0, cut);
        expect_failure(part, cut < 8 ? "truncated" : "");
    }
    {
        g_autoptr(GBytes) part = g_bytes_new_from_bytes(b, 0, len - 1);
        expect_failure(part, "truncated");
    }
    close(fd);
}

static GBytes *header_plus(const void *rec, size_t len)
{
    GByteArray *a = g_byte_array_new();
    uint8_t h[20];

    memcpy(h, MIG_STREAM_MAGIC, 8);
    vireo_le_store(h + 8, 4, MIG_STREAM_VERSION);
    vireo_le_store(h + 12, 8, RAM_SIZE);
    g_byte_array_append(a, h, sizeof(h));
    g_byte_array_append(a, rec, len);
    return g_byte_array_free_to_bytes(a);
}

static void test_unknown_section(void **state)
{
    static const uint8_t rec[] = { 'Q', 1, 0, 0, 0, 0 };
    g_autoptr(GBytes) b = header_plus(rec, sizeof(rec));

    expect_failure(b, "unknown migration stream section type 0x51");
}

static void test_bad_magic_and_version(void **state)
{
    g_autoptr(GBytes) b = g_bytes_new_static("VIREOMIX\1\0\0\0\0\0\0\0\0\0\0\0", 20);
    g_autoptr(GBytes) v = g_bytes_new_static("VIREOMIG\7\0\0\0\0\0\0\0\0\0\0\0", 20);

    /* A TLS ClientHello's record header, where a plain destination expects ours. */
    g_autoptr(GBytes) t = g_bytes_new_static("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
                                             "\0\0\0\0\0\0\0\0\0", 20);

    expect_failure(b, "bad magic");
    expect_failure(v, "version 7");
    expect_failure(t, "the source speaks TLS");
}

/* Lengths and RAM fields from a hostile peer: clear errors only. */
static void test_hostile(void **state)
{
    static const uint8_t huge_state[] = { 'S', 0xff, 0xff, 0xff, 0x7f };
    static const uint8_t huge_ram[] = { 'R', 0x00, 0x00, 0x00, 0x10 };
    static const uint8_t long_end[] = { 'E', 9, 0, 0, 0 };
    static const uint8_t long_discard[] = { 'D', 13, 0, 0, 0 };
    static const uint8_t huge_postcopy[] = { 'P', 0xff, 0xff, 0xff, 0x7f };
    uint8_t ram_rec[5 + 13];
    uint8_t rnd[5 + 64];

    expect_failure(g_bytes_new_static(NULL, 0), "truncated");
    {
        g_autoptr(GBytes) b = header_plus(huge_state, sizeof(huge_state));
        expect_failure(b, "claims");
    }
    {
        g_autoptr(GBytes) b = header_plus(huge_ram, sizeof(huge_ram));
        expect_failure(b, "claims");
    }
    {
        g_autoptr(GBytes) b = header_plus(long_end, sizeof(long_end));
        expect_failure(b, "claims");
    }
    {
        g_autoptr(GBytes) b = header_plus(long_discard, sizeof(long_discard));
        expect_failure(b, "claims");
    }
    {
        g_autoptr(GBytes) b = header_plus(huge_postcopy, sizeof(huge_postcopy));
        expect_failure(b, "claims");
    }
    /* RAM records pointing outside RAM, odd sizes and encodings. */
    const struct { uint64_t off; uint32_t n; uint8_t enc; } cases[] = {
        { RAM_SIZE, 1, MIG_RAM_ZERO }, { RAM_SIZE - 4096, 2, MIG_RAM_ZERO },
        { ~0ull & ~4095ull, 1, MIG_RAM_ZERO }, { 1, 1, MIG_RAM_ZERO },
        { 0, 0, MIG_RAM_ZERO }, { 0, 100000, MIG_RAM_ZERO }, { 0, 1, 9 },
        { 0, 1, MIG_RAM_RAW }, { 0, 1, MIG_RAM_ZSTD },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GBytes) b = NULL;

        ram_rec[0] = 'R';
        vireo_le_store(ram_rec + 1, 4, 13);
        vireo_le_store(ram_rec + 5, 8, cases[i].off);
        vireo_le_store(ram_rec + 13, 4, cases[i].n);
        ram_rec[17] = cases[i].enc;
        b = header_plus(ram_rec, sizeof(ram_rec));
        expect_failure(b, cases[i].enc == MIG_RAM_ZSTD ? "bad zstd data" : "bad RAM section");
    }
    /* Random records: any error, no crash. */
    for (unsigned seed = 1; seed < 500; seed++) {
        g_autoptr(GRand) r = g_rand_new_with_seed(seed);
        g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
        g_autoptr(GError) err = NULL;
        g_autoptr(GBytes) b = NULL;
        gsize len;
        int fd;

        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = g_rand_int(r);
        rnd[0] = "RSEQ"[seed % 4];
        rnd[1] = g_rand_int_range(r, 0, 80);
        rnd[2] = rnd[3] = rnd[4] = 0;
        b = header_plus(rnd, sizeof(rnd));
        len = g_bytes_get_size(b);
        fd = fd_with(g_bytes_get_data(b, NULL), len);
        assert_false(read_stream(fd, out, &err));
        close(fd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_raw),
        cmocka_unit_test(test_round_trip_zstd),
        cmocka_unit_test(test_zero_after_data),
        cmocka_unit_test(test_bad_checksum),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_bad_magic_and_version),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
