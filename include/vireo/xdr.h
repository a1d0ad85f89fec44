/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * XDR (RFC 4506) as libvirt's remote protocol uses it: big-endian 4-byte
 * units, 8-byte hypers, length-prefixed strings and opaques padded to 4
 * bytes, "pointer" optionals as a 0/1 word, arrays as count + elements.
 *
 * Decoding treats the input as hostile: every length is checked against the
 * bytes left in the packet *before* anything is allocated, and against the
 * protocol's maximum, so a peer can make us allocate at most about as much
 * as it actually sent. Failures set RPC_ERROR_DECODE (malformed) or
 * RPC_ERROR_LIMIT (over a protocol maximum); nothing is read past the end.
 *
 * Stricter than glibc's xdr_* (and so libvirt) on purpose, so that what we
 * decode re-encodes to the same bytes: a bool or optional discriminant
 * must be 0 or 1, an unsigned char/short must fit, a string must not
 * contain NUL. Padding bytes are not checked (libvirt does not either).
 *
 * Encoding appends to a GByteArray and fails only on a protocol maximum or
 * a NULL where a value is required.
 */
#ifndef VIREO_XDR_H
#define VIREO_XDR_H

#include <glib.h>
#include <stdint.h>

#include "vireo/rpc-error.h"

#define XDR_UNIT 4
#define XDR_PAD(n) (((n) + 3u) & ~(gsize)3u)

typedef struct XdrReader {
    const guint8 *data;
    gsize len;
    gsize pos;
} XdrReader;

typedef struct XdrWriter {
    GByteArray *buf;     /* output, appended to */
    gsize start;         /* buf->len when the writer was set up */
    gsize limit;         /* most bytes this writer may append */
} XdrWriter;

void xdr_reader_init(XdrReader *r, const void *data, gsize len);
static inline gsize xdr_reader_remaining(const XdrReader *r)
{
    return r->len - r->pos;
}
/* Fails (RPC_ERROR_DECODE) when bytes are left over. */
gboolean xdr_reader_finish(const XdrReader *r, GError **error);

gboolean xdr_read_int(XdrReader *r, gint32 *v, GError **error);
gboolean xdr_read_uint(XdrReader *r, guint32 *v, GError **error);
gboolean xdr_read_hyper(XdrReader *r, gint64 *v, GError **error);
gboolean xdr_read_uhyper(XdrReader *r, guint64 *v, GError **error);
gboolean xdr_read_double(XdrReader *r, gdouble *v, GError **error);
/* 0 or 1. */
gboolean xdr_read_bool(XdrReader *r, gboolean *v, GError **error);
/* An enum: any value in [min, max]. */
gboolean xdr_read_enum(XdrReader *r, gint32 *v, gint32 min, gint32 max, GError **error);
gboolean xdr_read_uchar(XdrReader *r, guint8 *v, GError **error);
gboolean xdr_read_ushort(XdrReader *r, guint16 *v, GError **error);
/*
 * XDR "char": one 4-byte int per char. libvirt writes a sign-extended
 * C char; we also accept 128..255 from peers that write it unsigned.
 */
gboolean xdr_read_char(XdrReader *r, char *v, GError **error);
gboolean xdr_read_opaque_fixed(XdrReader *r, void *buf, gsize n, GError **error);
/* Variable opaque of at most @max bytes; *buf is NULL when empty. */
gboolean xdr_read_opaque(XdrReader *r, guint8 **buf, guint *len, guint max,
                         GError **error);
/* String of at most @max bytes, NUL-terminated on return. */
gboolean xdr_read_string(XdrReader *r, char **s, guint max, GError **error);
/* The discriminant of an optional ("pointer") value. */
gboolean xdr_read_optional(XdrReader *r, gboolean *present, GError **error);
/*
 * The count of a variable array: at most @max, and at most what fits in
 * the rest of the input at @min_elem_size bytes per element.
 */
gboolean xdr_read_array_count(XdrReader *r, guint *count, guint max,
                              gsize min_elem_size, GError **error);

void xdr_writer_init(XdrWriter *w, GByteArray *buf, gsize limit);
static inline gsize xdr_writer_length(const XdrWriter *w)
{
    return w->buf->len - w->start;
}

gboolean xdr_write_int(XdrWriter *w, gint32 v, GError **error);
gboolean xdr_write_uint(XdrWriter *w, guint32 v, GError **error);
gboolean xdr_write_hyper(XdrWriter *w, gint64 v, GError **error);
gboolean xdr_write_uhyper(XdrWriter *w, guint64 v, GError **error);
gboolean xdr_write_double(XdrWriter *w, gdouble v, GError **error);
gboolean xdr_write_bool(XdrWriter *w, gboolean v, GError **error);
gboolean xdr_write_char(XdrWriter *w, char v, GError **error);
gboolean xdr_write_opaque_fixed(XdrWriter *w, const void *buf, gsize n, GError **error);
gboolean xdr_write_opaque(XdrWriter *w, const void *buf, guint len, guint max,
                          GError **error);
/* @s must not be NULL (use xdr_write_optional() for optional strings). */
gboolean xdr_write_string(XdrWriter *w, const char *s, guint max, GError **error);
gboolean xdr_write_optional(XdrWriter *w, gboolean present, GError **error);
gboolean xdr_write_array_count(XdrWriter *w, guint count, guint max, GError **error);

#endif /* VIREO_XDR_H */
