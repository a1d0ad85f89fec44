/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Multifd without KVM (migration-multifd.h): the MULTIFD and HELLO
 * records against hostile input; a sender and a receiver over a UNIX
 * socket, several passes into fresh RAM; the per-pass barrier against a
 * channel whose older copy of a page arrives late; hostile channel
 * streams and stray connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vireo/migration-multifd.h"
#include "vireo/migration-stream.h"
#include "vireo/util.h"

#define RAM_SIZE (4 * 1024 * 1024)
#define PAGES (RAM_SIZE / MIG_PAGE_SIZE)

static const uint8_t SESSION[MIG_MULTIFD_SESSION_LEN] = "0123456789abcdef";

static void expect_error(GError *err, const char *text)
{
    assert_non_null(err);
    if (!strstr(err->message, text))
        fail_msg("error '%s' lacks '%s'", err->message, text);
}

/* --- records --- */

static void test_announce(void **state)
{
    MigMultifdAnnounce a = { .channels = 4 }, b;
    uint8_t buf[MIG_MULTIFD_ANNOUNCE_LEN + 8] = { 0 };
    g_autoptr(GError) err = NULL;

    memcpy(a.session, SESSION, sizeof(a.session));
    mig_multifd_announce_encode(&a, buf);
    assert_true(mig_multifd_announce_parse(buf, MIG_MULTIFD_ANNOUNCE_LEN, &b, &err));
    assert_int_equal(b.channels, 4);
    assert_memory_equal(b.session, SESSION, sizeof(SESSION));
    /* Every other length. */
    for (size_t len = 0; len < sizeof(buf); len++) {
        if (len == MIG_MULTIFD_ANNOUNCE_LEN)
            continue;
        g_clear_error(&err);
        assert_false(mig_multifd_announce_parse(buf, len, &b, &err));
        expect_error(err, "bad MULTIFD");
    }
    /* Channel counts out of range. */
    for (unsigned n = 0; n < 3; n++) {
        static const unsigned bad[] = { 0, MIG_MULTIFD_MAX_CHANNELS + 1, 0xffff };

        vireo_le_store(buf, 2, bad[n]);
        g_clear_error(&err);
        assert_false(mig_multifd_announce_parse(buf, MIG_MULTIFD_ANNOUNCE_LEN, &b, &err));
        expect_error(err, "multifd channels");
    }
    vireo_le_store(buf, 2, MIG_MULTIFD_MAX_CHANNELS);
    assert_true(mig_multifd_announce_parse(buf, MIG_MULTIFD_ANNOUNCE_LEN, &b, NULL));
}

static void test_hello(void **state)
{
    MigMultifdAnnounce a = { .channels = 3 };
    MigMultifdHello h = { .index = 2, .channels = 3 }, g;
    uint8_t buf[MIG_MULTIFD_HELLO_LEN + 8] = { 0 };
    uint8_t seen[3] = { 0 };
    g_autoptr(GError) err = NULL;

    memcpy(a.session, SESSION, sizeof(SESSION));
    memcpy(h.session, SESSION, sizeof(SESSION));
    mig_multifd_hello_encode(&h, buf);
    assert_true(mig_multifd_hello_parse(buf, MIG_MULTIFD_HELLO_LEN, &g, &err));
    assert_int_equal(g.index, 2);
    assert_int_equal(g.channels, 3);
    assert_true(mig_multifd_hello_check(&a, &g, seen, &err));
    for (size_t len = 0; len < sizeof(buf); len++) {
        if (len == MIG_MULTIFD_HELLO_LEN)
            continue;
        g_clear_error(&err);
        assert_false(mig_multifd_hello_parse(buf, len, &g, &err));
        expect_error(err, "bad multifd HELLO");
    }
    /* Index and count out of range. */
    const struct { unsigned index, channels; } bad[] = {
        { 3, 3 }, { 0, 0 }, { 0xffff, 3 }, { 0, 256 }, { 0xffff, 0xffff },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        vireo_le_store(buf + MIG_MULTIFD_SESSION_LEN, 2, bad[i].index);
        vireo_le_store(buf + MIG_MULTIFD_SESSION_LEN + 2, 2, bad[i].channels);
        g_clear_error(&err);
        assert_false(mig_multifd_hello_parse(buf, MIG_MULTIFD_HELLO_LEN, &g, &err));
        expect_error(err, "bad multifd HELLO");
    }
    /* Well-formed, but not one of ours. */
    g = h;
    g.session[5] ^= 1;
    g_clear_error(&err);
    assert_false(mig_multifd_hello_check(&a, &g, seen, &err));
    expect_error(err, "another migration");
    g = h;
    g.channels = 4;
    g.index = 3;
    g_clear_error(&err);
    assert_false(mig_multifd_hello_check(&a, &g, seen, &err));
    expect_error(err, "announced 3");
    seen[2] = 1;
    g_clear_error(&err);
    assert_false(mig_multifd_hello_check(&a, &h, seen, &err));
    expect_error(err, "channel 2 connected twice");
    /* Random bytes: an error or a valid hello, never anything else. */
    for (unsigned seed = 1; seed < 2000; seed++) {
        g_autoptr(GRand) r = g_rand_new_with_seed(seed);
        size_t len = g_rand_int_range(r, 0, sizeof(buf) + 1);

        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = g_rand_int(r);
        if (seed % 2)
            buf[MIG_MULTIFD_SESSION_LEN + 3] = 0;     /* small counts, more often valid */
        g_clear_error(&err);
        if (mig_multifd_hello_parse(buf, len, &g, &err)) {
            assert_int_equal(len, MIG_MULTIFD_HELLO_LEN);
            assert_true(g.index < g.channels && g.channels <= MIG_MULTIFD_MAX_CHANNELS);
            assert_false(mig_multifd_hello_check(&a, &g, seen, NULL));  /* another session */
        } else {
            assert_non_null(err);
        }
        g_clear_error(&err);
        if (mig_multifd_announce_parse(buf, len % (MIG_MULTIFD_ANNOUNCE_LEN + 2), &a, &err))
            assert_true(a.channels >= 1 && a.channels <= MIG_MULTIFD_MAX_CHANNELS);
        a.channels = 3;
        memcpy(a.session, SESSION, sizeof(SESSION));
    }
}

/* --- sender and receiver over a UNIX socket --- */

typedef struct Dest {
    MigMultifdReceiver *r;
    int listen_fd;
    gint failures;
} Dest;

static void on_failure(void *opaque)
{
    Dest *d = opaque;

    g_atomic_int_inc(&d->failures);
}

static char *socket_path(void)
{
    char *dir = g_dir_make_tmp("test-multifd-XXXXXX", NULL);
    char *path = g_build_filename(dir, "sock", NULL);

    g_free(dir);
    return path;
}

static void remove_socket(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);

    unlink(path);
    rmdir(dir);
}

static int listen_at(const char *path)
{
    g_autoptr(MigUri) u = NULL;
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    gboolean needs_accept;
    int fd;

    u = mig_uri_parse(uri, NULL);
    assert_non_null(u);
    fd = mig_channel_listen(u, &needs_accept, NULL);
    assert_true(fd >= 0 && needs_accept);
    return fd;
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void fill_page(uint8_t *ram, uint64_t page, unsigned gen)
{
    for (size_t i = 0; i < MIG_PAGE_SIZE; i += 8)
        vireo_le_store(ram + page * MIG_PAGE_SIZE + i, 8, (page << 20) ^ (gen << 8) ^ i ^ 1);
}

static gboolean queue_pages(MigMultifdSender *s, const uint64_t *pages, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!mig_multifd_sender_queue(s, pages[i], 1, NULL))
            return FALSE;
    }
    return TRUE;
}

/*
 * Three passes: all of RAM (zero pages included), then pages rewritten,
 * then some of those pages zeroed (a ZERO run on one channel must clear
 * what another wrote) and others rewritten again. The destination's RAM
 * must end equal to the source's.
 */
static void test_end_to_end(void **state)
{
    g_autofree char *path = socket_path();
    g_autofree uint8_t *ram = g_malloc0(RAM_SIZE);
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autofree char *uri_str = g_strdup_printf("unix:%s", path);
    g_autoptr(MigUri) uri = mig_uri_parse(uri_str, NULL);
    MigMultifdAnnounce a = { .channels = 3 };
    MigRam mram = { .base = ram, .size = RAM_SIZE, .memfd = -1 };
    Dest d = { 0 };
    g_autoptr(GError) err = NULL;
    MigRamStats stats = { 0 };
    uint64_t some[64];
    MigMultifdSender *s;

    memcpy(a.session, SESSION, sizeof(SESSION));
    for (uint64_t p = 0; p < PAGES; p += 2)
        fill_page(ram, p, 1);
    d.listen_fd = listen_at(path);
    d.r = mig_multifd_receiver_new(&a, out, RAM_SIZE, on_failure, &d);
    mig_multifd_receiver_start(d.r, d.listen_fd, NULL);
    s = mig_multifd_sender_new(&mram, &a, 0);
    assert_true(mig_multifd_sender_connect(s, uri, NULL, NULL, &err));

    for (uint64_t p = 0; p < PAGES; p += MIG_RAM_MAX_RUN)
        assert_true(mig_multifd_sender_queue(s, p, MIN(MIG_RAM_MAX_RUN, PAGES - p), &err));
    assert_true(mig_multifd_sender_sync(s, &err));
    for (size_t i = 0; i < G_N_ELEMENTS(some); i++) {
        some[i] = (i * 97) % PAGES;
        fill_page(ram, some[i], 2);
    }
    assert_true(queue_pages(s, some, G_N_ELEMENTS(some)));
    assert_true(mig_multifd_sender_sync(s, &err));
    for (size_t i = 0; i < G_N_ELEMENTS(some); i++) {
        if (i % 2)
            memset(ram + some[i] * MIG_PAGE_SIZE, 0, MIG_PAGE_SIZE);
        else
            fill_page(ram, some[i], 3);
    }
    /* Backwards this time: other pages land on other channels. */
    for (size_t i = G_N_ELEMENTS(some); i-- > 0;)
        assert_true(mig_multifd_sender_queue(s, some[i], 1, &err));
    assert_true(mig_multifd_sender_finish(s, &err));
    assert_true(mig_multifd_receiver_wait(d.r, &err));
    assert_memory_equal(ram, out, RAM_SIZE);
    mig_multifd_sender_add_stats(s, &stats);
    assert_int_equal(stats.pages + stats.zero_pages, PAGES + 2 * G_N_ELEMENTS(some));
    assert_true(mig_multifd_sender_get_bytes(s) > RAM_SIZE / 2);
    assert_int_equal(mig_multifd_sender_get_bytes(s), mig_multifd_receiver_get_bytes(d.r));
    assert_int_equal(g_atomic_int_get(&d.failures), 0);
    mig_multifd_sender_free(s);
    mig_multifd_receiver_free(d.r);
    close(d.listen_fd);
    remove_socket(path);
}

/* --- hand-made channel streams --- */

typedef struct HandChannel {
    int fd;
    MigStream *s;
} HandChannel;

static void hand_open(HandChannel *c, const char *path, const uint8_t *session, unsigned index,
                      unsigned channels)
{
    MigMultifdHello h = { .index = index, .channels = channels };
    uint8_t rec[MIG_MULTIFD_HELLO_LEN];

    memcpy(h.session, session, MIG_MULTIFD_SESSION_LEN);
    mig_multifd_hello_encode(&h, rec);
    c->fd = connect_to(path);
    c->s = mig_stream_new_writer(c->fd);
    assert_true(mig_stream_write_header_version(c->s, MIG_STREAM_VERSION_MULTIFD, RAM_SIZE, NULL));
    assert_true(mig_stream_write_record(c->s, MIG_RECORD_HELLO, rec, sizeof(rec), NULL, 0, NULL));
    assert_true(mig_stream_flush(c->s, NULL));
}

static void hand_page(HandChannel *c, uint64_t page, uint8_t byte)
{
    uint8_t head[MIG_RAM_RECORD_HEAD];
    g_autofree uint8_t *data = g_malloc(MIG_PAGE_SIZE);

    memset(data, byte, MIG_PAGE_SIZE);
    vireo_le_store(head, 8, page * MIG_PAGE_SIZE);
    vireo_le_store(head + 8, 4, 1);
    head[12] = MIG_RAM_RAW;
    assert_true(mig_stream_write_record(c->s, MIG_RECORD_RAM, head, sizeof(head), data,
                                        MIG_PAGE_SIZE, NULL));
}

static void hand_sync(HandChannel *c, uint64_t pass, size_t len)
{
    uint8_t rec[16] = { 0 };

    vireo_le_store(rec, 8, pass);
    assert_true(mig_stream_write_record(c->s, MIG_RECORD_SYNC, rec, len, NULL, 0, NULL));
}

static void hand_close(HandChannel *c)
{
    mig_stream_free(c->s);
    close(c->fd);
}

static MigMultifdReceiver *receiver(Dest *d, uint8_t *out, unsigned channels, const char *path)
{
    MigMultifdAnnounce a = { .channels = channels };

    memcpy(a.session, SESSION, sizeof(SESSION));
    memset(d, 0, sizeof(*d));
    d->listen_fd = listen_at(path);
    d->r = mig_multifd_receiver_new(&a, out, RAM_SIZE, on_failure, d);
    return d->r;
}

/*
 * Page 7 is sent in pass 1 on channel 0 ('A') and again in pass 2 on
 * channel 1 ('B'), but channel 1's whole stream is there first: channel
 * 1 must wait at its SYNC(1) until channel 0 has applied its copy.
 */
static void test_barrier(void **state)
{
    g_autofree char *path = socket_path();
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autofree uint8_t *want = g_malloc(MIG_PAGE_SIZE);
    g_autoptr(GError) err = NULL;
    HandChannel c0, c1;
    Dest d;
    MigMultifdReceiver *r = receiver(&d, out, 2, path);

    mig_multifd_receiver_start(r, d.listen_fd, NULL);
    hand_open(&c0, path, SESSION, 0, 2);
    hand_open(&c1, path, SESSION, 1, 2);
    hand_sync(&c1, 1, 8);
    hand_page(&c1, 7, 'B');
    hand_sync(&c1, 2, 8);
    assert_true(mig_stream_write_end(c1.s, NULL));
    g_usleep(200 * 1000);
    hand_page(&c0, 7, 'A');
    hand_sync(&c0, 1, 8);
    hand_sync(&c0, 2, 8);
    assert_true(mig_stream_write_end(c0.s, NULL));
    assert_true(mig_multifd_receiver_wait(r, &err));
    memset(want, 'B', MIG_PAGE_SIZE);
    assert_memory_equal(out + 7 * MIG_PAGE_SIZE, want, MIG_PAGE_SIZE);
    hand_close(&c0);
    hand_close(&c1);
    mig_multifd_receiver_free(r);
    close(d.listen_fd);
    remove_socket(path);
}

typedef enum {
    BAD_SYNC_ORDER,             /* SYNC(2) first */
    BAD_SYNC_LEN,
    BAD_SECTION,                /* a STATE on a channel */
    BAD_ENDS_EARLY,             /* one channel ends, the other waits at pass 1 */
    BAD_TRUNCATED,              /* the connection closes mid-stream */
    BAD_RAM,                    /* a RAM record outside RAM */
} BadKind;

static void hostile_channel(BadKind kind, const char *text)
{
    g_autofree char *path = socket_path();
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autoptr(GError) err = NULL;
    HandChannel c0, c1;
    Dest d;
    MigMultifdReceiver *r = receiver(&d, out, 2, path);

    mig_multifd_receiver_start(r, d.listen_fd, NULL);
    hand_open(&c0, path, SESSION, 0, 2);
    hand_open(&c1, path, SESSION, 1, 2);
    switch (kind) {
    case BAD_SYNC_ORDER:
        hand_sync(&c0, 2, 8);
        break;
    case BAD_SYNC_LEN:
        hand_sync(&c0, 1, 9);
        break;
    case BAD_SECTION:
        assert_true(mig_stream_write_record(c0.s, MIG_RECORD_STATE, "\0", 1, NULL, 0, NULL));
        break;
    case BAD_ENDS_EARLY:
        hand_sync(&c0, 1, 8);
        hand_sync(&c1, 1, 8);
        hand_sync(&c1, 2, 8);
        assert_true(mig_stream_flush(c1.s, NULL));
        g_usleep(50 * 1000);
        assert_true(mig_stream_write_end(c0.s, NULL));
        break;
    case BAD_TRUNCATED:
        hand_page(&c0, 1, 'x');
        assert_true(mig_stream_flush(c0.s, NULL));
        shutdown(c0.fd, SHUT_WR);
        break;
    case BAD_RAM: {
        uint8_t head[MIG_RAM_RECORD_HEAD];

        vireo_le_store(head, 8, RAM_SIZE);
        vireo_le_store(head + 8, 4, 1);
        head[12] = MIG_RAM_ZERO;
        assert_true(mig_stream_write_record(c0.s, MIG_RECORD_RAM, head, sizeof(head), NULL, 0,
                                            NULL));
        break;
    }
    }
    assert_true(mig_stream_flush(c0.s, NULL));
    assert_false(mig_multifd_receiver_wait(r, &err));
    expect_error(err, text);
    /* Called once, right after the failure is recorded. */
    for (int i = 0; i < 200 && !g_atomic_int_get(&d.failures); i++)
        g_usleep(10 * 1000);
    assert_int_equal(g_atomic_int_get(&d.failures), 1);
    /* What the main channel saw becomes the channel's reason. */
    g_clear_error(&err);
    g_set_error(&err, VIREO_ERROR, VIREO_ERROR_IO, "main channel shut down");
    mig_multifd_receiver_explain(r, &err);
    expect_error(err, "multifd channel");
    hand_close(&c0);
    hand_close(&c1);
    mig_multifd_receiver_free(r);
    close(d.listen_fd);
    remove_socket(path);
}

static void test_hostile_channels(void **state)
{
    hostile_channel(BAD_SYNC_ORDER, "multifd channel 0: SYNC for pass 2 after pass 0");
    hostile_channel(BAD_SYNC_LEN, "bad SYNC");
    hostile_channel(BAD_SECTION, "unexpected 'S' section");
    hostile_channel(BAD_ENDS_EARLY, "another channel ended before pass 2");
    hostile_channel(BAD_TRUNCATED, "truncated");
    hostile_channel(BAD_RAM, "bad RAM section");
}

/*
 * Connections that are not channels of this migration are refused (one
 * that stalls after a valid start only after MIG_MULTIFD_HELLO_TIMEOUT_MS);
 * the real ones still come.
 */
static void test_strays(void **state)
{
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    g_autofree char *path = socket_path();
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autoptr(GError) err = NULL;
    uint8_t other[MIG_MULTIFD_SESSION_LEN];
    HandChannel c0, dup, wrong, c1;
    int junk, early, old, slow;
    Dest d;
    MigMultifdReceiver *r = receiver(&d, out, 2, path);

    mig_multifd_receiver_start(r, d.listen_fd, NULL);
    junk = connect_to(path);
    assert_int_equal(write(junk, garbage, sizeof(garbage) - 1), sizeof(garbage) - 1);
    early = connect_to(path);                   /* closes after a few bytes */
    assert_int_equal(write(early, "VIREOMIG", 8), 8);
    close(early);
    /* A version 1 stream: a main channel, not one of ours. */
    old = connect_to(path);
    {
        g_autoptr(MigStream) s = mig_stream_new_writer(old);

        assert_true(mig_stream_write_header(s, RAM_SIZE, NULL) && mig_stream_flush(s, NULL));
    }
    /* A valid start that stalls: dropped after MIG_MULTIFD_HELLO_TIMEOUT_MS. */
    slow = connect_to(path);
    assert_int_equal(write(slow, "VIREOMIG\2\0\0\0", 12), 12);
    memcpy(other, SESSION, sizeof(other));
    other[0] ^= 0xff;
    hand_open(&wrong, path, other, 0, 2);
    hand_open(&c0, path, SESSION, 0, 2);
    hand_open(&dup, path, SESSION, 0, 2);
    hand_open(&c1, path, SESSION, 1, 2);
    hand_page(&c0, 3, 'z');
    hand_sync(&c0, 1, 8);
    hand_sync(&c1, 1, 8);
    assert_true(mig_stream_write_end(c0.s, NULL) && mig_stream_write_end(c1.s, NULL));
    if (!mig_multifd_receiver_wait(r, &err))
        fail_msg("%s", err->message);
    assert_int_equal(out[3 * MIG_PAGE_SIZE + 100], 'z');
    assert_int_equal(g_atomic_int_get(&d.failures), 0);
    hand_close(&c0);
    hand_close(&c1);
    hand_close(&dup);
    hand_close(&wrong);
    close(junk);
    close(old);
    close(slow);
    mig_multifd_receiver_free(r);
    close(d.listen_fd);
    remove_socket(path);
}

/* A shutdown (cancel) ends the wait for channels that never come. */
static void test_shutdown_while_accepting(void **state)
{
    g_autofree char *path = socket_path();
    g_autofree uint8_t *out = g_malloc0(RAM_SIZE);
    g_autoptr(GError) err = NULL;
    HandChannel c0;
    Dest d;
    MigMultifdReceiver *r = receiver(&d, out, 2, path);

    mig_multifd_receiver_start(r, d.listen_fd, NULL);
    hand_open(&c0, path, SESSION, 0, 2);
    g_usleep(100 * 1000);
    mig_multifd_receiver_shutdown(r);
    assert_false(mig_multifd_receiver_wait(r, &err));
    expect_error(err, "cancelled");
    assert_int_equal(g_atomic_int_get(&d.failures), 0);
    hand_close(&c0);
    mig_multifd_receiver_free(r);
    close(d.listen_fd);
    remove_socket(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announce),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_end_to_end),
        cmocka_unit_test(test_barrier),
        cmocka_unit_test(test_hostile_channels),
        cmocka_unit_test(test_strays),
        cmocka_unit_test(test_shutdown_while_accepting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
