/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-blk (virtio 1.2, 5.2): the guest-visible layout of the device in
 * devices/virtio/blk.c, shared with the device tests, the fuzz target and
 * the benchmark. The device's options and data path are described at the
 * top of blk.c.
 */
#ifndef VIREO_VIRTIO_BLK_H
#define VIREO_VIRTIO_BLK_H

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX           1
#define VIRTIO_BLK_F_SEG_MAX            2
#define VIRTIO_BLK_F_GEOMETRY           4
#define VIRTIO_BLK_F_RO                 5
#define VIRTIO_BLK_F_BLK_SIZE           6
#define VIRTIO_BLK_F_FLUSH              9
#define VIRTIO_BLK_F_TOPOLOGY           10
#define VIRTIO_BLK_F_CONFIG_WCE         11
#define VIRTIO_BLK_F_MQ                 12
#define VIRTIO_BLK_F_DISCARD            13
#define VIRTIO_BLK_F_WRITE_ZEROES       14

/* Configuration space (5.2.4): the fields up to write_zeroes_may_unmap. */
#define VIRTIO_BLK_CFG_CAPACITY         0       /* le64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX         8       /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX          12      /* le32 */
#define VIRTIO_BLK_CFG_GEOMETRY         16      /* le16 cylinders, u8 heads, u8 sectors */
#define VIRTIO_BLK_CFG_BLK_SIZE         20      /* le32 */
#define VIRTIO_BLK_CFG_TOPOLOGY         24      /* 8 bytes */
#define VIRTIO_BLK_CFG_WRITEBACK        32      /* u8 */
#define VIRTIO_BLK_CFG_NUM_QUEUES       34      /* le16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS      36      /* le32 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG          40      /* le32 */
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT        44      /* le32, sectors */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS 48      /* le32 */
#define VIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG     52      /* le32 */
#define VIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP   56      /* u8 */
#define VIRTIO_BLK_CFG_SIZE             60

/*
 * A request (5.2.6): a 16-byte header the device reads (le32 type,
 * le32 reserved, le64 sector), data, and one status byte the device
 * writes, last of the device-writable part.
 */
#define VIRTIO_BLK_HDR_SIZE             16
#define VIRTIO_BLK_T_IN                 0
#define VIRTIO_BLK_T_OUT                1
#define VIRTIO_BLK_T_FLUSH              4
#define VIRTIO_BLK_T_GET_ID             8
#define VIRTIO_BLK_T_GET_LIFETIME       10
#define VIRTIO_BLK_T_DISCARD            11
#define VIRTIO_BLK_T_WRITE_ZEROES       13
#define VIRTIO_BLK_T_SECURE_ERASE       14
#define VIRTIO_BLK_S_OK                 0
#define VIRTIO_BLK_S_IOERR              1
#define VIRTIO_BLK_S_UNSUPP             2
/* GET_ID answers with up to 20 bytes, not NUL-terminated when all are used. */
#define VIRTIO_BLK_ID_BYTES             20
/* A discard or write-zeroes segment: le64 sector, le32 num_sectors, le32 flags. */
#define VIRTIO_BLK_DWZ_SIZE             16
#define VIRTIO_BLK_WRITE_ZEROES_F_UNMAP 1

/* This device's limits. */
#define VIRTIO_BLK_QUEUE_SIZE           256
#define VIRTIO_BLK_MAX_QUEUES           64
#define VIRTIO_BLK_SEG_MAX              (VIRTIO_BLK_QUEUE_SIZE - 2)     /* header, status */
#define VIRTIO_BLK_MAX_DWZ_SECTORS      0x3fffffu       /* 2 GiB - 512 per request */

#endif
