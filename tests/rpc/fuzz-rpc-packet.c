/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for the RPC codec (daemon/rpc/): what a hostile peer can
 * make the framer and the decoders do. The input is a byte stream as it
 * would arrive on a socket; the first byte picks how it is cut into reads.
 * For every packet the framer returns, and for the input itself taken as
 * the payload of every typed procedure (args and ret) and of remote_error,
 * the target checks that:
 *
 * - nothing crashes, overreads or leaks (ASan), whatever the lengths say;
 * - whatever decodes re-encodes, and the re-encoding decodes and encodes
 *   to the same bytes again (decoding loses nothing the encoder needs).
 *
 * Seeds: tests/fuzz/corpus/rpc-packet/, written by tests/rpc/gen-fuzz-seeds.py
 * from the reference captures.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/rpc-message.h"
#include "captures.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_payload(const RpcPayloadType *t, const guint8 *p, gsize n)
{
    gpointer v;
    g_autoptr(GByteArray) b1 = NULL;
    g_autoptr(GByteArray) b2 = NULL;
    gpointer v2;
    XdrWriter w;

    if (!t->size)
        return;
    v = rpc_payload_decode_new(t, p, n, NULL);
    if (!v)
        return;
    b1 = g_byte_array_new();
    xdr_writer_init(&w, b1, RPC_PAYLOAD_MAX);
    if (!t->encode(&w, v, NULL))
        abort();                /* decoded but cannot be encoded again */
    v2 = rpc_payload_decode_new(t, b1->data, b1->len, NULL);
    if (!v2)
        abort();
    b2 = g_byte_array_new();
    xdr_writer_init(&w, b2, RPC_PAYLOAD_MAX);
    if (!t->encode(&w, v2, NULL) || b1->len != b2->len || memcmp(b1->data, b2->data, b1->len))
        abort();
    /* Not b1 == input: padding bytes are not checked (libvirt does not either). */
    rpc_payload_free(t, v);
    rpc_payload_free(t, v2);
}

static void check_packet(GBytes *pkt)
{
    gsize len;
    const guint8 *d = g_bytes_get_data(pkt, &len);
    g_autoptr(GBytes) once = codec_roundtrip(d, len, NULL);
    g_autoptr(GBytes) twice = NULL;

    if (!once)
        return;
    d = g_bytes_get_data(once, &len);
    twice = codec_roundtrip(d, len, NULL);
    if (!twice || !g_bytes_equal(once, twice))
        abort();
}

static gboolean error_decode(XdrReader *r, void *v, GError **error)
{
    return remote_error_decode(r, v, error);
}

static gboolean error_encode(XdrWriter *w, const void *v, GError **error)
{
    return remote_error_encode(w, v, error);
}

static void error_clear(void *v)
{
    remote_error_clear(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const RpcPayloadType remote_error_type = {
        sizeof(RemoteError), "remote_error", error_encode, error_decode, error_clear,
    };
    RpcFramer f;
    gsize off = 1;
    gsize cut;

    if (!size)
        return 0;
    cut = 1 + data[0] % 64;

    /* As a stream of packets. */
    rpc_framer_init(&f);
    while (off < size) {
        GBytes *pkt = NULL;
        gssize n = rpc_framer_push(&f, data + off, MIN(cut, size - off), &pkt, NULL);

        if (n < 0)
            break;
        off += n;
        if (pkt) {
            check_packet(pkt);
            g_bytes_unref(pkt);
        }
    }
    rpc_framer_clear(&f);

    /* As the payload of every typed procedure. */
    for (gsize i = 0; i < rpc_protocol_n_procedures; i++) {
        check_payload(&rpc_protocol_procedures[i].args, data + 1, size - 1);
        check_payload(&rpc_protocol_procedures[i].ret, data + 1, size - 1);
    }
    check_payload(&remote_error_type, data + 1, size - 1);
    return 0;
}
