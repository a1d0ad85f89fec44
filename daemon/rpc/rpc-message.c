/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Packet framing; see include/vireo/rpc-message.h. */
#include <string.h>

#include "vireo/rpc-message.h"

gboolean rpc_packet_check_length(guint32 len, GError **error)
{
    if (len < RPC_PACKET_MIN) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL,
                    "packet of %u bytes is shorter than a header (%u)", len, RPC_PACKET_MIN);
        return FALSE;
    }
    if (len > RPC_PACKET_MAX) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL,
                    "packet of %u bytes is over the limit of %u", len, RPC_PACKET_MAX);
        return FALSE;
    }
    return TRUE;
}

static GByteArray *start_packet(const RpcHeader *hdr, XdrWriter *w)
{
    GByteArray *buf = g_byte_array_sized_new(RPC_PACKET_MIN);
    XdrWriter hw;

    xdr_writer_init(&hw, buf, RPC_PACKET_MIN);
    /* Cannot fail: 28 bytes into a 28-byte allowance. */
    xdr_write_uint(&hw, 0, NULL);
    xdr_write_uint(&hw, hdr->prog, NULL);
    xdr_write_uint(&hw, hdr->vers, NULL);
    xdr_write_int(&hw, hdr->proc, NULL);
    xdr_write_uint(&hw, hdr->type, NULL);
    xdr_write_uint(&hw, hdr->serial, NULL);
    xdr_write_uint(&hw, hdr->status, NULL);
    xdr_writer_init(w, buf, RPC_PAYLOAD_MAX);
    return buf;
}

static GBytes *finish_packet(GByteArray *buf)
{
    guint32 be = GUINT32_TO_BE(buf->len);

    memcpy(buf->data, &be, 4);
    return g_byte_array_free_to_bytes(buf);
}

GBytes *rpc_packet_build(const RpcHeader *hdr, const RpcPayloadType *t, const void *v,
                         GError **error)
{
    XdrWriter w;
    GByteArray *buf = start_packet(hdr, &w);

    if (t && !rpc_payload_encode(t, &w, v, error)) {
        g_byte_array_unref(buf);
        return NULL;
    }
    return finish_packet(buf);
}

GBytes *rpc_packet_build_raw(const RpcHeader *hdr, const void *data, gsize len,
                             GError **error)
{
    XdrWriter w;
    GByteArray *buf;

    if (len > RPC_PAYLOAD_MAX) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_LIMIT,
                    "payload of %zu bytes is over the limit of %u", len, RPC_PAYLOAD_MAX);
        return NULL;
    }
    buf = start_packet(hdr, &w);
    if (len)
        g_byte_array_append(buf, data, len);
    return finish_packet(buf);
}

GBytes *rpc_packet_build_error(const RpcHeader *call, guint32 type, const RemoteError *err,
                               GError **error)
{
    RpcHeader h = *call;
    XdrWriter w;
    GByteArray *buf;

    h.type = type;
    h.status = RPC_STATUS_ERROR;
    buf = start_packet(&h, &w);
    if (!remote_error_encode(&w, err, error)) {
        g_byte_array_unref(buf);
        return NULL;
    }
    return finish_packet(buf);
}

GBytes *rpc_packet_keepalive(gint32 proc)
{
    RpcHeader h = {
        .prog = KEEPALIVE_PROGRAM, .vers = KEEPALIVE_PROTOCOL_VERSION, .proc = proc,
        .type = RPC_MESSAGE, .serial = 0, .status = RPC_STATUS_OK,
    };

    return rpc_packet_build(&h, NULL, NULL, NULL);
}

gboolean rpc_packet_parse(const guint8 *pkt, gsize len, RpcHeader *hdr,
                          const guint8 **payload, gsize *payload_len, GError **error)
{
    XdrReader r;
    guint32 total;
    guint32 proc;

    xdr_reader_init(&r, pkt, len);
    if (len < RPC_PACKET_MIN) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL,
                    "packet of %zu bytes is shorter than a header", len);
        return FALSE;
    }
    /* Cannot fail: 28 bytes are there. */
    xdr_read_uint(&r, &total, NULL);
    if (total != len) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL,
                    "length word says %u bytes, packet has %zu", total, len);
        return FALSE;
    }
    if (!rpc_packet_check_length(total, error))
        return FALSE;
    xdr_read_uint(&r, &hdr->prog, NULL);
    xdr_read_uint(&r, &hdr->vers, NULL);
    xdr_read_uint(&r, &proc, NULL);
    hdr->proc = (gint32)proc;
    xdr_read_uint(&r, &hdr->type, NULL);
    xdr_read_uint(&r, &hdr->serial, NULL);
    xdr_read_uint(&r, &hdr->status, NULL);
    *payload = pkt + RPC_PACKET_MIN;
    *payload_len = len - RPC_PACKET_MIN;
    return TRUE;
}

void rpc_framer_init(RpcFramer *f)
{
    memset(f, 0, sizeof(*f));
}

void rpc_framer_clear(RpcFramer *f)
{
    if (f->pkt)
        g_byte_array_unref(f->pkt);
    rpc_framer_init(f);
}

gboolean rpc_framer_busy(const RpcFramer *f)
{
    return f->have_len > 0;
}

gssize rpc_framer_push(RpcFramer *f, const guint8 *data, gsize len, GBytes **packet,
                       GError **error)
{
    gsize used = 0;

    *packet = NULL;
    if (f->have_len < RPC_LEN_SIZE) {
        gsize n = MIN(len, RPC_LEN_SIZE - f->have_len);

        memcpy(f->lenbuf + f->have_len, data, n);
        f->have_len += n;
        used = n;
        if (f->have_len < RPC_LEN_SIZE)
            return used;
        f->total = ((guint32)f->lenbuf[0] << 24) | ((guint32)f->lenbuf[1] << 16) |
                   ((guint32)f->lenbuf[2] << 8) | f->lenbuf[3];
        if (!rpc_packet_check_length(f->total, error))
            return -1;
        /* Start small: the peer has not sent the bytes it announced yet. */
        f->pkt = g_byte_array_sized_new(MIN(f->total, 65536u));
        g_byte_array_append(f->pkt, f->lenbuf, RPC_LEN_SIZE);
    }
    {
        gsize n = MIN(len - used, f->total - f->pkt->len);

        g_byte_array_append(f->pkt, data + used, n);
        used += n;
    }
    if (f->pkt->len == f->total) {
        *packet = g_byte_array_free_to_bytes(f->pkt);
        f->pkt = NULL;
        f->have_len = 0;
        f->total = 0;
    }
    return used;
}

const char *rpc_type_name(guint32 type)
{
    static const char *const names[] = {
        "CALL", "REPLY", "MESSAGE", "STREAM", "CALL_WITH_FDS", "REPLY_WITH_FDS", "STREAM_HOLE",
    };

    return type < G_N_ELEMENTS(names) ? names[type] : "?";
}

const char *rpc_status_name(guint32 status)
{
    static const char *const names[] = { "OK", "ERROR", "CONTINUE" };

    return status < G_N_ELEMENTS(names) ? names[status] : "?";
}
