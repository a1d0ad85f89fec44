/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Save image headers (daemon/save-image.c): a round trip, and files a
 * user can hand to restore that are not what they claim: every field
 * of the header bent, truncations at every length, and random bytes.
 * None may crash, read past the file or allocate what the file says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vireo/save-image.h"
#include "vireo/util.h"

#define XML "<domain type='kvm'><name>s</name></domain>"

static char *tmpdir;

static char *path_of(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

/* A valid image of @xml with 100 bytes of "stream" after the header. */
static GBytes *valid_image(const char *xml, gboolean running)
{
    g_autofree char *p = path_of("valid");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    guint64 off = 0;
    char *data;
    gsize len;

    assert_true(fd >= 0);
    assert_true(save_image_write_header(fd, xml, running, &off, NULL));
    assert_int_equal(off % SAVE_IMAGE_ALIGN, 0);
    assert_int_equal(pwrite(fd, "stream", 6, off + 94), 6);
    close(fd);
    assert_true(g_file_get_contents(p, &data, &len, NULL));
    return g_bytes_new_take(data, len);
}

static SaveImageHeader *read_bytes(const void *data, gsize len, GError **error)
{
    g_autofree char *p = path_of("image");

    assert_true(g_file_set_contents(p, data, len, NULL));
    return save_image_read_header(p, error);
}

static void expect_refused(const void *data, gsize len, const char *what)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(SaveImageHeader) h = read_bytes(data, len, &err);

    if (h)
        fail_msg("%s: accepted", what);
    assert_non_null(err);
    assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT));
    assert_non_null(strstr(err->message, tmpdir));     /* names the file */
}

static void test_round_trip(void **unused)
{
    g_autoptr(GBytes) img = valid_image(XML, TRUE);
    g_autofree char *p = path_of("valid");
    g_autoptr(SaveImageHeader) h = NULL;

    (void)unused;
    h = read_bytes(g_bytes_get_data(img, NULL), g_bytes_get_size(img), NULL);
    assert_non_null(h);
    assert_string_equal(h->xml, XML);
    assert_true(h->running);
    assert_int_equal(h->data_offset, SAVE_IMAGE_ALIGN);
    g_clear_pointer(&h, save_image_header_free);
    /* The running flag flips in place and nothing else moves. */
    assert_true(save_image_set_running(p, FALSE, NULL));
    h = save_image_read_header(p, NULL);
    assert_non_null(h);
    assert_false(h->running);
    assert_string_equal(h->xml, XML);
}

static void put32(guint8 *b, size_t at, guint32 v)
{
    v = GUINT32_TO_LE(v);
    memcpy(b + at, &v, 4);
}

static void put64(guint8 *b, size_t at, guint64 v)
{
    v = GUINT64_TO_LE(v);
    memcpy(b + at, &v, 8);
}

static void test_bent_fields(void **unused)
{
    g_autoptr(GBytes) img = valid_image(XML, FALSE);
    gsize len = g_bytes_get_size(img);
    g_autofree guint8 *b = g_memdup2(g_bytes_get_data(img, NULL), len);
    g_autofree guint8 *c = g_malloc(len);
    static const struct { size_t at; int width; guint64 value; const char *what; } bends[] = {
        { 0, 1, 'X', "magic" },
        { 8, 4, 2, "version 2" },
        { 8, 4, 0, "version 0" },
        { 16, 4, 0, "XML length 0" },
        { 16, 4, SAVE_IMAGE_XML_MAX + 1, "XML length over the limit" },
        { 16, 4, G_MAXUINT32, "XML length 4 GiB" },
        { 16, 4, SAVE_IMAGE_ALIGN, "XML running into the padding" },
        { 24, 8, 0, "stream offset 0" },
        { 24, 8, SAVE_IMAGE_ALIGN + 1, "stream offset not aligned" },
        { 24, 8, 2 * SAVE_IMAGE_ALIGN, "stream offset past the end" },
        { 24, 8, G_MAXUINT64 - SAVE_IMAGE_ALIGN + 1, "stream offset near 2^64" },
        { 32 + 5, 1, 0, "NUL inside the XML" },
        { 32 + 5, 1, 0xff, "XML not UTF-8" },
    };

    (void)unused;
    for (size_t i = 0; i < G_N_ELEMENTS(bends); i++) {
        memcpy(c, b, len);
        if (bends[i].width == 1)
            c[bends[i].at] = (guint8)bends[i].value;
        else if (bends[i].width == 4)
            put32(c, bends[i].at, (guint32)bends[i].value);
        else
            put64(c, bends[i].at, bends[i].value);
        expect_refused(c, len, bends[i].what);
    }
}

static void test_truncated(void **unused)
{
    g_autoptr(GBytes) img = valid_image(XML, FALSE);
    const guint8 *b = g_bytes_get_data(img, NULL);

    (void)unused;
    /* Every cut inside the header and the XML, and up to the stream's first byte. */
    for (gsize cut = 0; cut <= 32 + sizeof(XML); cut++)
        expect_refused(b, cut, "truncated header");
    expect_refused(b, SAVE_IMAGE_ALIGN, "no stream");
}

static void test_random(void **unused)
{
    g_autoptr(GRand) rand = g_rand_new_with_seed(42);
    guint8 buf[SAVE_IMAGE_ALIGN + 64];

    (void)unused;
    for (int i = 0; i < 2000; i++) {
        gsize len = g_rand_int_range(rand, 0, sizeof(buf));
        g_autoptr(GError) err = NULL;
        g_autoptr(SaveImageHeader) h = NULL;

        for (gsize k = 0; k < len; k++)
            buf[k] = g_rand_int(rand);
        if (i % 2 && len >= 8)
            memcpy(buf, SAVE_IMAGE_MAGIC, 8);   /* past the magic, into the fields */
        if (i % 4 == 1 && len >= 12)
            put32(buf, 8, SAVE_IMAGE_VERSION);
        h = read_bytes(buf, len, &err);
        /* Whatever it decides, an accepted header must be consistent with the file. */
        if (h) {
            assert_true(h->data_offset < len);
            assert_true(strlen(h->xml) + 32 <= h->data_offset);
        } else {
            assert_non_null(err);
        }
    }
}

static void test_not_a_file(void **unused)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *missing = path_of("missing");

    (void)unused;
    assert_null(save_image_read_header(tmpdir, &err));          /* a directory */
    assert_true(g_error_matches(err, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT));
    g_clear_error(&err);
    assert_null(save_image_read_header(missing, &err));
    assert_true(g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT));
    assert_non_null(strstr(err->message, missing));
}

static void test_xml_too_large(void **unused)
{
    g_autofree char *p = path_of("big");
    g_autofree char *xml = g_malloc(SAVE_IMAGE_XML_MAX + 2);
    g_autoptr(GError) err = NULL;
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    guint64 off = 0;

    (void)unused;
    memset(xml, 'x', SAVE_IMAGE_XML_MAX + 1);
    xml[SAVE_IMAGE_XML_MAX + 1] = '\0';
    assert_true(fd >= 0);
    assert_false(save_image_write_header(fd, xml, FALSE, &off, &err));
    assert_non_null(err);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bent_fields),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_not_a_file),
        cmocka_unit_test(test_xml_too_large),
    };
    g_autofree char *dir = g_dir_make_tmp("vireo-save-image-XXXXXX", NULL);
    g_autofree char *cleanup = g_strdup_printf("rm -rf '%s'", dir);
    int ret;

    tmpdir = dir;
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    (void)!system(cleanup);
    return ret;
}
