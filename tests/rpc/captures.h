/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The reference captures (tests/rpc/data/captures/, one .jsonl each) as packets, and
 * small helpers shared by the rpc tests.
 */
#ifndef VIREO_TESTS_RPC_CAPTURES_H
#define VIREO_TESTS_RPC_CAPTURES_H

#include <glib.h>

#include "vireo/rpc-message.h"

typedef struct CapturePacket {
    char *capture;          /* "version" */
    guint index;            /* 1-based, as in capture-*.txt */
    gboolean to_server;     /* C->S */
    GBytes *bytes;          /* the whole packet */
} CapturePacket;

/* Every packet of every capture in @dir, in file order (sorted by name). */
GPtrArray *captures_load(const char *dir);
/* Packets of one capture. */
GPtrArray *captures_load_one(const char *dir, const char *name);
void capture_packet_free(gpointer p);

/*
 * Decodes a packet's payload with the typed codec and re-encodes the whole
 * packet; returns the new bytes or NULL with @error. Also used by the
 * mutation test and the fuzz target.
 */
GBytes *codec_roundtrip(const guint8 *pkt, gsize len, GError **error);

GBytes *hex_to_bytes(const char *hex);
char *bytes_to_hex(GBytes *b);

#endif /* VIREO_TESTS_RPC_CAPTURES_H */
