/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Packets of libvirt's RPC (virnetprotocol): a 4-byte big-endian length
 * that counts itself, a 24-byte header, then the XDR payload.
 *
 *   u32 len | u32 prog | u32 vers | i32 proc | u32 type | u32 serial | u32 status | payload
 *
 * type: CALL (args), REPLY (ret, or remote_error when status is ERROR),
 * MESSAGE (event, or keepalive PING/PONG), STREAM (raw data with CONTINUE,
 * empty with OK to finish, remote_error with ERROR), CALL_WITH_FDS /
 * REPLY_WITH_FDS (unsupported here), STREAM_HOLE (rpc_stream_hole).
 *
 * Pure functions; safe from any thread.
 */
#ifndef VIREO_RPC_MESSAGE_H
#define VIREO_RPC_MESSAGE_H

#include <glib.h>

#include "vireo/rpc-protocol.h"

#define RPC_LEN_SIZE 4
#define RPC_HEADER_SIZE 24
/* An empty-payload packet: the smallest valid one. */
#define RPC_PACKET_MIN (RPC_LEN_SIZE + RPC_HEADER_SIZE)
/* VIR_NET_MESSAGE_MAX: header + payload; the length word is not counted. */
#define RPC_MESSAGE_MAX 33554432u
#define RPC_PACKET_MAX (RPC_LEN_SIZE + RPC_MESSAGE_MAX)
/* VIR_NET_MESSAGE_PAYLOAD_MAX */
#define RPC_PAYLOAD_MAX (RPC_MESSAGE_MAX - RPC_HEADER_SIZE)
/* Stream data per packet we send (VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX). */
#define RPC_STREAM_CHUNK 262120u

typedef enum {
    RPC_CALL = 0,
    RPC_REPLY = 1,
    RPC_MESSAGE = 2,
    RPC_STREAM = 3,
    RPC_CALL_WITH_FDS = 4,
    RPC_REPLY_WITH_FDS = 5,
    RPC_STREAM_HOLE = 6,
} RpcType;

typedef enum {
    RPC_STATUS_OK = 0,
    RPC_STATUS_ERROR = 1,
    RPC_STATUS_CONTINUE = 2,
} RpcStatus;

typedef struct RpcHeader {
    guint32 prog;
    guint32 vers;
    gint32 proc;
    guint32 type;       /* RpcType, as received: not validated */
    guint32 serial;
    guint32 status;     /* RpcStatus, as received: not validated */
} RpcHeader;

/*
 * Checks a length word: at least RPC_PACKET_MIN, at most RPC_PACKET_MAX.
 * Anything else cannot be framed, so the connection must be closed.
 */
gboolean rpc_packet_check_length(guint32 len, GError **error);

/* A whole packet (length word included) with @v encoded as payload type @t. */
GBytes *rpc_packet_build(const RpcHeader *hdr, const RpcPayloadType *t, const void *v,
                         GError **error);
/* A whole packet with @len raw payload bytes (stream data). */
GBytes *rpc_packet_build_raw(const RpcHeader *hdr, const void *data, gsize len,
                             GError **error);
/* A REPLY/STREAM with status ERROR and @err as payload, answering @call. */
GBytes *rpc_packet_build_error(const RpcHeader *call, guint32 type, const RemoteError *err,
                               GError **error);
/* Keepalive PING or PONG. */
GBytes *rpc_packet_keepalive(gint32 proc);

/*
 * Splits a whole packet. The length word must equal @len. @payload points
 * into @pkt.
 */
gboolean rpc_packet_parse(const guint8 *pkt, gsize len, RpcHeader *hdr,
                          const guint8 **payload, gsize *payload_len, GError **error);

/*
 * Reassembles packets from a byte stream. Memory grows only with bytes
 * actually received, whatever length a peer announces.
 */
typedef struct RpcFramer {
    guint8 lenbuf[RPC_LEN_SIZE];
    gsize have_len;
    guint32 total;
    GByteArray *pkt;
} RpcFramer;

void rpc_framer_init(RpcFramer *f);
void rpc_framer_clear(RpcFramer *f);
/*
 * Takes bytes from @data up to the end of the current packet and returns
 * how many it took; sets *packet (owned by the caller) when one is
 * complete. Returns -1 with RPC_ERROR_PROTOCOL on an invalid length word.
 */
gssize rpc_framer_push(RpcFramer *f, const guint8 *data, gsize len, GBytes **packet,
                       GError **error);
/* TRUE while a packet is partially received. */
gboolean rpc_framer_busy(const RpcFramer *f);

const char *rpc_type_name(guint32 type);
const char *rpc_status_name(guint32 status);

#endif /* VIREO_RPC_MESSAGE_H */
