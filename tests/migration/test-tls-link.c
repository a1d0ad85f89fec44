/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * TLS under a migration connection (migration/tls-link.c) without KVM:
 * two links over a socketpair, as source (client) and destination
 * (server). The bulk direction (straight through gnutls) and the small
 * one (through the pumps and their socketpairs) at full load at once
 * arrive intact; odd-sized messages the small way all arrive; a shutdown
 * on one side ends the other; a client certificate of another CA, a
 * plain-text peer and a client without a host name are refused with
 * errors that say why. Run by tls_pki.py, which makes the certificates
 * with certtool:
 *
 *   test-tls-link PKI_DIR FOREIGN_DIR
 *
 * (QEMU's file names in each; FOREIGN_DIR's client certificate comes from
 * another CA, and its ca-cert.pem holds both CAs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vireo/migration-tls.h"
#include "vireo/util.h"

#define BULK_BYTES (48 * 1024 * 1024)

static const char *pki_dir;
static const char *foreign_dir;

static TlsCreds *creds(const char *dir, TlsEndpoint endpoint)
{
    const char *who = endpoint == TLS_ENDPOINT_SERVER ? "server" : "client";
    g_autofree char *ca = g_build_filename(dir, "ca-cert.pem", NULL);
    g_autofree char *cert = g_strdup_printf("%s/%s-cert.pem", dir, who);
    g_autofree char *key = g_strdup_printf("%s/%s-key.pem", dir, who);
    g_autoptr(GError) err = NULL;
    TlsCreds *c = tls_creds_new(endpoint, ca, cert, key, TRUE, &err);

    if (!c)
        fail_msg("%s", err->message);
    return c;
}

/* One side's handshake, on a thread so that both run at once. */
typedef struct Side {
    TlsCreds *creds;
    int fd;
    const char *hostname;
    MigTlsLink *link;
    int inner;
    GError *error;
} Side;

static gpointer side_thread(gpointer opaque)
{
    Side *s = opaque;

    s->link = mig_tls_link_new(s->creds, s->fd, s->hostname, &s->inner, &s->error);
    return NULL;
}

/* Handshakes over a socketpair; both Sides filled in (link NULL and error set on failure). */
static void connect_pair(Side *client, Side *server)
{
    int sv[2];
    GThread *t;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client->fd = sv[0];
    server->fd = sv[1];
    client->inner = server->inner = -1;
    t = g_thread_new("client", side_thread, client);
    side_thread(server);
    /* A refused client may wait for a server that has given up: close the server's end. */
    if (!server->link)
        shutdown(server->fd, SHUT_RDWR);
    g_thread_join(t);
}

static void side_clear(Side *s)
{
    if (s->inner >= 0)
        close(s->inner);
    if (s->link)
        mig_tls_link_free(s->link);     /* closes fd */
    else
        close(s->fd);
    g_clear_error(&s->error);
    tls_creds_unref(s->creds);
}

typedef struct Bulk {
    int fd;                     /* the small direction's socket, or -1 */
    MigTlsLink *link;           /* else the bulk direction */
    uint32_t seed;
    gboolean ok;
} Bulk;

static uint8_t pattern(uint32_t seed, size_t i)
{
    return (uint8_t)(seed + i * 131 + (i >> 12));
}

static gpointer writer(gpointer opaque)
{
    Bulk *b = opaque;
    g_autofree uint8_t *buf = g_malloc(1 << 20);

    b->ok = TRUE;
    for (size_t off = 0; off < BULK_BYTES; off += 1 << 20) {
        for (size_t i = 0; i < 1 << 20; i++)
            buf[i] = pattern(b->seed, off + i);
        if (b->link) {
            if (!mig_tls_link_write(b->link, buf, 1 << 20, NULL)) {
                b->ok = FALSE;
                return NULL;
            }
            continue;
        }
        for (size_t done = 0; done < 1 << 20;) {
            ssize_t n = write(b->fd, buf + done, (1 << 20) - done);
            if (n <= 0) {
                b->ok = FALSE;
                return NULL;
            }
            done += n;
        }
    }
    return NULL;
}

struct WriteLen {
    Bulk *bulk;
    size_t len;
};

/* Writes @len bytes at once (one write() call may be cut by the socket, so loop). */
static gpointer writer_len(gpointer opaque)
{
    struct WriteLen *wl = opaque;
    g_autofree uint8_t *buf = g_malloc(wl->len);

    wl->bulk->ok = TRUE;
    for (size_t i = 0; i < wl->len; i++)
        buf[i] = pattern(wl->bulk->seed, i);
    for (size_t done = 0; done < wl->len;) {
        ssize_t n = write(wl->bulk->fd, buf + done, wl->len - done);
        if (n <= 0) {
            wl->bulk->ok = FALSE;
            return NULL;
        }
        done += n;
    }
    return NULL;
}

static gpointer reader(gpointer opaque)
{
    Bulk *b = opaque;
    g_autofree uint8_t *buf = g_malloc(1 << 16);
    size_t off = 0;

    b->ok = TRUE;
    while (off < BULK_BYTES) {
        ssize_t n = b->link ? mig_tls_link_read(b->link, buf, 1 << 16, NULL)
                            : read(b->fd, buf, 1 << 16);
        if (n <= 0) {
            b->ok = FALSE;
            return NULL;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern(b->seed, off + i)) {
                b->ok = FALSE;
                return NULL;
            }
        }
        off += n;
    }
    return NULL;
}

/*
 * Both ways at once, as the return path runs beside the stream: the bulk
 * direction on its own threads, the small one through the pumps. No byte
 * lost, no stall.
 */
static void test_bulk_both_ways(void **state)
{
    Side client = { .creds = creds(pki_dir, TLS_ENDPOINT_CLIENT), .hostname = "localhost" };
    Side server = { .creds = creds(pki_dir, TLS_ENDPOINT_SERVER) };
    Bulk w1, w2, r1, r2;
    GThread *t[4];
    char byte;

    (void)state;
    connect_pair(&client, &server);
    assert_non_null(client.link);
    assert_non_null(server.link);
    w1 = (Bulk){ .fd = -1, .link = client.link, .seed = 1 };
    r1 = (Bulk){ .fd = -1, .link = server.link, .seed = 1 };
    w2 = (Bulk){ .fd = server.inner, .seed = 2 };
    r2 = (Bulk){ .fd = client.inner, .seed = 2 };
    t[0] = g_thread_new("w1", writer, &w1);
    t[1] = g_thread_new("r1", reader, &r1);
    t[2] = g_thread_new("w2", writer, &w2);
    t[3] = g_thread_new("r2", reader, &r2);
    for (int i = 0; i < 4; i++)
        g_thread_join(t[i]);
    assert_true(w1.ok && r1.ok && w2.ok && r2.ok);

    /* The source gives up its end: the destination reads the end, its writes fail. */
    shutdown(client.inner, SHUT_RDWR);
    assert_int_equal(mig_tls_link_read(server.link, &byte, 1, NULL), 0);
    for (int i = 0; i < 1000 && write(server.inner, "x", 1) == 1; i++)
        g_usleep(1000);
    assert_int_equal(write(server.inner, "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    assert_null(mig_tls_link_get_error(server.link));
    side_clear(&client);
    side_clear(&server);
}

/*
 * Messages of odd sizes the small way (destination to source), each read
 * only once it is all sent, with a deadline: the source pump's buffer
 * fills in the middle of a record, whose rest gnutls keeps where poll()
 * does not see it, and nothing follows to wake the pump.
 */
static void test_odd_tails(void **state)
{
    Side client = { .creds = creds(pki_dir, TLS_ENDPOINT_CLIENT), .hostname = "localhost" };
    Side server = { .creds = creds(pki_dir, TLS_ENDPOINT_SERVER) };
    struct timeval tv = { .tv_sec = 5 };
    g_autofree uint8_t *buf = g_malloc(1 << 20);
    guint32 rnd = 12345;

    (void)state;
    connect_pair(&client, &server);
    assert_non_null(client.link);
    assert_non_null(server.link);
    setsockopt(client.inner, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int m = 0; m < 40; m++) {
        size_t len, got = 0;
        Bulk w;
        GThread *t;

        rnd = rnd * 1103515245 + 12345;
        len = 300 * 1024 + rnd % (600 * 1024);
        w = (Bulk){ .fd = server.inner, .seed = m };
        /* One message: the writer's last MiB holds it (the pattern is per offset). */
        t = g_thread_new("w", writer_len, &(struct WriteLen){ &w, len });
        g_usleep(20000);
        while (got < len) {
            ssize_t n = read(client.inner, buf, MIN(len - got, 1 << 20));

            if (n <= 0)
                fail_msg("message %d: %zu of %zu bytes, then %s", m, got, len,
                         n < 0 ? g_strerror(errno) : "the end");
            got += n;
        }
        g_thread_join(t);
        assert_true(w.ok);
    }
    side_clear(&client);
    side_clear(&server);
}

/* A client certificate of another CA: the destination says so, the source learns why. */
static void test_foreign_client(void **state)
{
    Side client = { .creds = creds(foreign_dir, TLS_ENDPOINT_CLIENT), .hostname = "localhost" };
    Side server = { .creds = creds(pki_dir, TLS_ENDPOINT_SERVER) };
    g_autoptr(GError) why = NULL;
    char byte;

    (void)state;
    connect_pair(&client, &server);
    assert_null(server.link);
    assert_non_null(strstr(server.error->message, "not issued by our CA"));
    /* TLS 1.3: the client's handshake ends before the server's verdict, which follows. */
    if (client.link) {
        assert_true(read(client.inner, &byte, 1) <= 0);
        why = mig_tls_link_get_error(client.link);
        assert_non_null(why);
        assert_non_null(strstr(why->message, "the peer refused"));
    } else {
        assert_non_null(strstr(client.error->message, "TLS with the destination"));
    }
    side_clear(&client);
    side_clear(&server);
}

/* A source without TLS starts with its stream header: the destination says what it saw. */
static void test_plain_source(void **state)
{
    Side server = { .creds = creds(pki_dir, TLS_ENDPOINT_SERVER) };
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[0], "VIREOMIG\1\0\0\0", 12), 12);
    server.fd = sv[1];
    server.inner = -1;
    side_thread(&server);
    assert_null(server.link);
    assert_non_null(strstr(server.error->message, "does not speak TLS"));
    close(sv[0]);
    side_clear(&server);
}

/* A client that checks the server needs a name to check it against. */
static void test_client_needs_hostname(void **state)
{
    Side client = { .creds = creds(pki_dir, TLS_ENDPOINT_CLIENT) };
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client.fd = sv[0];
    client.inner = -1;
    side_thread(&client);
    assert_null(client.link);
    assert_non_null(strstr(client.error->message, "tls-hostname"));
    close(sv[1]);
    side_clear(&client);
}

/* A server whose certificate names another host. */
static void test_wrong_host(void **state)
{
    Side client = { .creds = creds(pki_dir, TLS_ENDPOINT_CLIENT), .hostname = "elsewhere" };
    Side server = { .creds = creds(pki_dir, TLS_ENDPOINT_SERVER) };

    (void)state;
    connect_pair(&client, &server);
    assert_null(client.link);
    assert_non_null(strstr(client.error->message, "host name mismatch"));
    side_clear(&client);
    side_clear(&server);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_both_ways),
        cmocka_unit_test(test_odd_tails),
        cmocka_unit_test(test_foreign_client),
        cmocka_unit_test(test_plain_source),
        cmocka_unit_test(test_client_needs_hostname),
        cmocka_unit_test(test_wrong_host),
    };

    if (argc != 3) {
        fprintf(stderr, "usage: %s PKI_DIR FOREIGN_DIR (tls_pki.py makes them)\n", argv[0]);
        return 77;
    }
    pki_dir = argv[1];
    foreign_dir = argv[2];
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
