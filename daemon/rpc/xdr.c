/* SPDX-License-Identifier: GPL-2.0-or-later */
/* XDR primitives with strict bounds; see include/vireo/xdr.h. */
#include <string.h>

#include "vireo/xdr.h"

G_DEFINE_QUARK(vireo-rpc-error-quark, rpc_error)
G_DEFINE_QUARK(vireo-rpc-remote-error-quark, rpc_remote_error)

void xdr_reader_init(XdrReader *r, const void *data, gsize len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
}

gboolean xdr_reader_finish(const XdrReader *r, GError **error)
{
    if (r->pos != r->len) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "%zu unexpected bytes after the payload", r->len - r->pos);
        return FALSE;
    }
    return TRUE;
}

static gboolean need(XdrReader *r, gsize n, GError **error)
{
    if (n > r->len - r->pos) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "truncated: need %zu bytes at offset %zu, %zu left",
                    n, r->pos, r->len - r->pos);
        return FALSE;
    }
    return TRUE;
}

static guint32 get_be32(const guint8 *p)
{
    return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

gboolean xdr_read_uint(XdrReader *r, guint32 *v, GError **error)
{
    if (!need(r, 4, error))
        return FALSE;
    *v = get_be32(r->data + r->pos);
    r->pos += 4;
    return TRUE;
}

gboolean xdr_read_int(XdrReader *r, gint32 *v, GError **error)
{
    guint32 u;

    if (!xdr_read_uint(r, &u, error))
        return FALSE;
    *v = (gint32)u;
    return TRUE;
}

gboolean xdr_read_uhyper(XdrReader *r, guint64 *v, GError **error)
{
    if (!need(r, 8, error))
        return FALSE;
    *v = ((guint64)get_be32(r->data + r->pos) << 32) | get_be32(r->data + r->pos + 4);
    r->pos += 8;
    return TRUE;
}

gboolean xdr_read_hyper(XdrReader *r, gint64 *v, GError **error)
{
    guint64 u;

    if (!xdr_read_uhyper(r, &u, error))
        return FALSE;
    *v = (gint64)u;
    return TRUE;
}

gboolean xdr_read_double(XdrReader *r, gdouble *v, GError **error)
{
    guint64 u;

    G_STATIC_ASSERT(sizeof(u) == sizeof(*v));
    if (!xdr_read_uhyper(r, &u, error))
        return FALSE;
    memcpy(v, &u, sizeof(*v));
    return TRUE;
}

gboolean xdr_read_bool(XdrReader *r, gboolean *v, GError **error)
{
    guint32 u;
    gsize at = r->pos;

    if (!xdr_read_uint(r, &u, error))
        return FALSE;
    if (u > 1) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "boolean at offset %zu is %u, not 0 or 1", at, u);
        return FALSE;
    }
    *v = u;
    return TRUE;
}

gboolean xdr_read_enum(XdrReader *r, gint32 *v, gint32 min, gint32 max, GError **error)
{
    gint32 i;
    gsize at = r->pos;

    if (!xdr_read_int(r, &i, error))
        return FALSE;
    if (i < min || i > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "enum at offset %zu is %d, outside %d..%d", at, i, min, max);
        return FALSE;
    }
    *v = i;
    return TRUE;
}

static gboolean read_ranged(XdrReader *r, guint32 *v, guint32 max, const char *what,
                            GError **error)
{
    gsize at = r->pos;

    if (!xdr_read_uint(r, v, error))
        return FALSE;
    if (*v > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "%s at offset %zu is %u, over %u", what, at, *v, max);
        return FALSE;
    }
    return TRUE;
}

gboolean xdr_read_uchar(XdrReader *r, guint8 *v, GError **error)
{
    guint32 u;

    if (!read_ranged(r, &u, G_MAXUINT8, "unsigned char", error))
        return FALSE;
    *v = u;
    return TRUE;
}

gboolean xdr_read_ushort(XdrReader *r, guint16 *v, GError **error)
{
    guint32 u;

    if (!read_ranged(r, &u, G_MAXUINT16, "unsigned short", error))
        return FALSE;
    *v = u;
    return TRUE;
}

gboolean xdr_read_char(XdrReader *r, char *v, GError **error)
{
    gint32 i;
    gsize at = r->pos;

    if (!xdr_read_int(r, &i, error))
        return FALSE;
    if (i < -128 || i > 255) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "char at offset %zu is %d, not a byte", at, i);
        return FALSE;
    }
    *v = (char)(guint8)i;
    return TRUE;
}

gboolean xdr_read_opaque_fixed(XdrReader *r, void *buf, gsize n, GError **error)
{
    if (!need(r, XDR_PAD(n), error))
        return FALSE;
    memcpy(buf, r->data + r->pos, n);
    r->pos += XDR_PAD(n);
    return TRUE;
}

/* A length word followed by that many bytes (padded), checked both ways. */
static gboolean read_length(XdrReader *r, guint *len, guint max, const char *what,
                            GError **error)
{
    guint32 n;
    gsize at = r->pos;

    if (!xdr_read_uint(r, &n, error))
        return FALSE;
    if (n > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "%s at offset %zu has length %u, over the limit %u",
                    what, at, n, max);
        return FALSE;
    }
    if (XDR_PAD((gsize)n) > r->len - r->pos) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "%s at offset %zu has length %u, past the end (%zu bytes left)",
                    what, at, n, r->len - r->pos);
        return FALSE;
    }
    *len = n;
    return TRUE;
}

gboolean xdr_read_opaque(XdrReader *r, guint8 **buf, guint *len, guint max,
                         GError **error)
{
    guint n;

    if (!read_length(r, &n, max, "opaque", error))
        return FALSE;
    *buf = n ? g_memdup2(r->data + r->pos, n) : NULL;
    *len = n;
    r->pos += XDR_PAD((gsize)n);
    return TRUE;
}

gboolean xdr_read_string(XdrReader *r, char **s, guint max, GError **error)
{
    guint n;
    gsize at = r->pos;

    if (!read_length(r, &n, max, "string", error))
        return FALSE;
    if (memchr(r->data + r->pos, 0, n)) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "string at offset %zu contains a NUL byte", at);
        return FALSE;
    }
    *s = g_strndup((const char *)r->data + r->pos, n);
    r->pos += XDR_PAD((gsize)n);
    return TRUE;
}

gboolean xdr_read_optional(XdrReader *r, gboolean *present, GError **error)
{
    return xdr_read_bool(r, present, error);
}

gboolean xdr_read_array_count(XdrReader *r, guint *count, guint max,
                              gsize min_elem_size, GError **error)
{
    guint32 n;
    gsize at = r->pos;

    if (!xdr_read_uint(r, &n, error))
        return FALSE;
    if (n > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "array at offset %zu has %u elements, over the limit %u",
                    at, n, max);
        return FALSE;
    }
    if (min_elem_size && n > (r->len - r->pos) / min_elem_size) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_DECODE,
                    "array at offset %zu has %u elements, more than the %zu bytes left hold",
                    at, n, r->len - r->pos);
        return FALSE;
    }
    *count = n;
    return TRUE;
}

void xdr_writer_init(XdrWriter *w, GByteArray *buf, gsize limit)
{
    w->buf = buf;
    w->start = buf->len;
    w->limit = limit;
}

static gboolean room(XdrWriter *w, gsize n, GError **error)
{
    if (n > w->limit - xdr_writer_length(w)) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "encoded message would exceed %zu bytes", w->limit);
        return FALSE;
    }
    return TRUE;
}

gboolean xdr_write_uint(XdrWriter *w, guint32 v, GError **error)
{
    guint8 b[4] = { v >> 24, v >> 16, v >> 8, v };

    if (!room(w, 4, error))
        return FALSE;
    g_byte_array_append(w->buf, b, 4);
    return TRUE;
}

gboolean xdr_write_int(XdrWriter *w, gint32 v, GError **error)
{
    return xdr_write_uint(w, (guint32)v, error);
}

gboolean xdr_write_uhyper(XdrWriter *w, guint64 v, GError **error)
{
    if (!room(w, 8, error))
        return FALSE;
    return xdr_write_uint(w, v >> 32, error) && xdr_write_uint(w, (guint32)v, error);
}

gboolean xdr_write_hyper(XdrWriter *w, gint64 v, GError **error)
{
    return xdr_write_uhyper(w, (guint64)v, error);
}

gboolean xdr_write_double(XdrWriter *w, gdouble v, GError **error)
{
    guint64 u;

    memcpy(&u, &v, sizeof(u));
    return xdr_write_uhyper(w, u, error);
}

gboolean xdr_write_bool(XdrWriter *w, gboolean v, GError **error)
{
    return xdr_write_uint(w, v ? 1 : 0, error);
}

gboolean xdr_write_char(XdrWriter *w, char v, GError **error)
{
    /* Sign-extended, as glibc's xdr_char does with a signed char. */
    return xdr_write_int(w, (gint32)(signed char)v, error);
}

static gboolean write_padded(XdrWriter *w, const void *buf, gsize n, GError **error)
{
    static const guint8 zero[4];

    if (!room(w, XDR_PAD(n), error))
        return FALSE;
    if (n)
        g_byte_array_append(w->buf, buf, n);
    if (XDR_PAD(n) != n)
        g_byte_array_append(w->buf, zero, XDR_PAD(n) - n);
    return TRUE;
}

gboolean xdr_write_opaque_fixed(XdrWriter *w, const void *buf, gsize n, GError **error)
{
    return write_padded(w, buf, n, error);
}

gboolean xdr_write_opaque(XdrWriter *w, const void *buf, guint len, guint max,
                          GError **error)
{
    if (len > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "opaque of %u bytes is over the limit %u", len, max);
        return FALSE;
    }
    if (len && !buf) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_INVALID,
                    "opaque of %u bytes has no data", len);
        return FALSE;
    }
    if (!room(w, 4 + XDR_PAD((gsize)len), error))
        return FALSE;
    return xdr_write_uint(w, len, error) && write_padded(w, buf, len, error);
}

gboolean xdr_write_string(XdrWriter *w, const char *s, guint max, GError **error)
{
    gsize n;

    if (!s) {
        g_set_error_literal(error, RPC_ERROR, RPC_ERROR_INVALID,
                            "NULL where the protocol requires a string");
        return FALSE;
    }
    n = strlen(s);
    if (n > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "string of %zu bytes is over the limit %u", n, max);
        return FALSE;
    }
    if (!room(w, 4 + XDR_PAD(n), error))
        return FALSE;
    return xdr_write_uint(w, n, error) && write_padded(w, s, n, error);
}

gboolean xdr_write_optional(XdrWriter *w, gboolean present, GError **error)
{
    return xdr_write_bool(w, present, error);
}

gboolean xdr_write_array_count(XdrWriter *w, guint count, guint max, GError **error)
{
    if (count > max) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "array of %u elements is over the limit %u", count, max);
        return FALSE;
    }
    return xdr_write_uint(w, count, error);
}
