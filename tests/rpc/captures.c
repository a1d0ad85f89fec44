/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Loading the reference captures; the decode/re-encode round trip. */
#include <string.h>

#include "captures.h"

GBytes *hex_to_bytes(const char *hex)
{
    gsize n = strlen(hex) / 2;
    guint8 *b = g_malloc(n ? n : 1);

    for (gsize i = 0; i < n; i++) {
        int hi = g_ascii_xdigit_value(hex[2 * i]);
        int lo = g_ascii_xdigit_value(hex[2 * i + 1]);

        g_assert(hi >= 0 && lo >= 0);
        b[i] = (guint8)(hi << 4 | lo);
    }
    return g_bytes_new_take(b, n);
}

char *bytes_to_hex(GBytes *b)
{
    gsize n;
    const guint8 *p = g_bytes_get_data(b, &n);
    GString *s = g_string_sized_new(2 * n + 1);

    for (gsize i = 0; i < n; i++)
        g_string_append_printf(s, "%02x", p[i]);
    return g_string_free(s, FALSE);
}

void capture_packet_free(gpointer data)
{
    CapturePacket *p = data;

    if (!p)
        return;
    g_free(p->capture);
    g_bytes_unref(p->bytes);
    g_free(p);
}

GPtrArray *captures_load_one(const char *dir, const char *name)
{
    g_autofree char *path = g_strdup_printf("%s/%s.jsonl", dir, name);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GRegex) re = g_regex_new("\"dir\": \"(C->S|S->C)\".*\"hex\": \"([0-9a-f]+)\"",
                                       0, 0, NULL);
    GPtrArray *out = g_ptr_array_new_with_free_func(capture_packet_free);
    guint index = 0;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        g_autoptr(GMatchInfo) m = NULL;
        CapturePacket *p;
        g_autofree char *d = NULL;
        g_autofree char *hex = NULL;

        if (!g_regex_match(re, lines[i], 0, &m))
            continue;
        d = g_match_info_fetch(m, 1);
        hex = g_match_info_fetch(m, 2);
        p = g_new0(CapturePacket, 1);
        p->capture = g_strdup(name);
        p->index = ++index;
        p->to_server = strcmp(d, "C->S") == 0;
        p->bytes = hex_to_bytes(hex);
        g_ptr_array_add(out, p);
    }
    return out;
}

static int cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

GPtrArray *captures_load(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *out = g_ptr_array_new_with_free_func(capture_packet_free);
    const char *n;

    g_assert_nonnull(d);
    while ((n = g_dir_read_name(d))) {
        if (g_str_has_suffix(n, ".jsonl"))
            g_ptr_array_add(names, g_strndup(n, strlen(n) - 6));
    }
    g_ptr_array_sort(names, cmp_str);
    for (guint i = 0; i < names->len; i++) {
        g_autoptr(GPtrArray) one = captures_load_one(dir, g_ptr_array_index(names, i));

        for (guint j = 0; j < one->len; j++)
            g_ptr_array_add(out, g_steal_pointer(&one->pdata[j]));
    }
    return out;
}

GBytes *codec_roundtrip(const guint8 *pkt, gsize len, GError **error)
{
    RpcHeader h;
    const guint8 *payload;
    gsize plen;
    const RpcProcedure *p;
    const RpcPayloadType *t = NULL;
    gpointer v;
    GBytes *out;
    GError *local = NULL;

    if (!rpc_packet_parse(pkt, len, &h, &payload, &plen, error))
        return NULL;
    p = rpc_protocol_find(h.prog, h.proc);
    if (!p) {
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL, "no types for program 0x%x proc %d",
                    h.prog, h.proc);
        return NULL;
    }
    if (h.status == RPC_STATUS_ERROR && (h.type == RPC_REPLY || h.type == RPC_STREAM)) {
        g_auto(RemoteError) e = { 0 };
        XdrReader r;

        xdr_reader_init(&r, payload, plen);
        if (!remote_error_decode(&r, &e, error) || !xdr_reader_finish(&r, error))
            return NULL;
        return rpc_packet_build_error(&h, h.type, &e, error);
    }
    switch (h.type) {
    case RPC_CALL:
    case RPC_MESSAGE:
        t = &p->args;
        break;
    case RPC_REPLY:
        t = &p->ret;
        break;
    case RPC_STREAM:
        return rpc_packet_build_raw(&h, payload, plen, error);
    default:
        g_set_error(error, RPC_ERROR, RPC_ERROR_PROTOCOL, "packet type %u", h.type);
        return NULL;
    }
    v = rpc_payload_decode_new(t, payload, plen, &local);
    if (local) {
        g_propagate_error(error, local);
        return NULL;
    }
    out = rpc_packet_build(&h, t, v, error);
    rpc_payload_free(t, v);
    return out;
}
