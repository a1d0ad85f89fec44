/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small command-line front end to the storage library for the Python
 * compatibility tests (the .py scripts beside it). Not a user tool: vireo-img is.
 *
 *   blocktool [open options] COMMAND IMAGE [ARGS]
 *   open options: --format F --ro --cache none|writeback|unsafe -U --no-backing
 *                 --discard
 *   create-qcow2 IMG SIZE [cluster_size=N] [compat=0.10|1.1] [lazy] [zstd]
 *                [backing=F] [backing_fmt=F] [prealloc]
 *   create-raw IMG SIZE
 *   info IMG                       key=value lines
 *   dump IMG OUT                   the whole virtual disk as raw bytes
 *   write IMG OFF LEN BYTE [fua]   fill with BYTE (hex)
 *   writefile IMG OFF FILE
 *   zero IMG OFF LEN [unmap]       discard IMG OFF LEN
 *   compress IMG RAWFILE           compressed clusters from RAWFILE
 *   check IMG [leaks|all]          key=value lines
 *   snapshot IMG create|apply|delete NAME ; snapshot IMG list
 *   map IMG                        one extent per line
 *   resize IMG SIZE ; rebase IMG BACKING|"" [FMT] ; commit IMG
 *   hold IMG SECONDS               keep the image open (locking tests)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/block.h"
#include "vireo/qcow2.h"
#include "vireo/util.h"

static int die(GError *err)
{
    fprintf(stderr, "blocktool: %s\n", err ? err->message : "failed");
    return 1;
}

static uint64_t num(const char *s)
{
    return g_ascii_strtoull(s, NULL, 0);
}

static int cmd_create_qcow2(int argc, char **argv)
{
    Qcow2CreateOptions o = { .size = num(argv[1]) };
    g_autoptr(GError) err = NULL;

    for (int i = 2; i < argc; i++) {
        if (g_str_has_prefix(argv[i], "cluster_size="))
            o.cluster_size = num(argv[i] + 13);
        else if (strcmp(argv[i], "compat=0.10") == 0)
            o.version = 2;
        else if (strcmp(argv[i], "compat=1.1") == 0)
            o.version = 3;
        else if (strcmp(argv[i], "lazy") == 0)
            o.lazy_refcounts = TRUE;
        else if (strcmp(argv[i], "zstd") == 0)
            o.compression_type = QCOW2_COMPRESSION_ZSTD;
        else if (g_str_has_prefix(argv[i], "backing="))
            o.backing_file = argv[i] + 8;
        else if (g_str_has_prefix(argv[i], "backing_fmt="))
            o.backing_format = argv[i] + 12;
        else if (strcmp(argv[i], "prealloc") == 0)
            o.preallocation = QCOW2_PREALLOC_METADATA;
        else
            return fprintf(stderr, "unknown option %s\n", argv[i]), 2;
    }
    if (!qcow2_create(argv[0], &o, &err))
        return die(err);
    return 0;
}

int main(int argc, char **argv)
{
    BlockOpenOptions o = { .cache = BLOCK_CACHE_WRITEBACK };
    g_autoptr(GError) err = NULL;
    g_autoptr(BlockDev) bs = NULL;
    const char *cmd;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
            o.format = argv[++i];
        else if (strcmp(argv[i], "--ro") == 0)
            o.read_only = TRUE;
        else if (strcmp(argv[i], "-U") == 0)
            o.force_share = o.read_only = TRUE;
        else if (strcmp(argv[i], "--no-backing") == 0)
            o.no_backing = TRUE;
        else if (strcmp(argv[i], "--discard") == 0)
            o.discard = TRUE;
        else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            i++;
            o.cache = strcmp(argv[i], "none") == 0 ? BLOCK_CACHE_NONE :
                      strcmp(argv[i], "unsafe") == 0 ? BLOCK_CACHE_UNSAFE :
                      BLOCK_CACHE_WRITEBACK;
        } else
            return fprintf(stderr, "unknown option %s\n", argv[i]), 2;
    }
    if (argc - i < 2)
        return fprintf(stderr, "usage: see the comment in blocktool.c\n"), 2;
    cmd = argv[i++];
    argc -= i;
    argv += i;
    if (strcmp(cmd, "create-qcow2") == 0 && argc >= 2)
        return cmd_create_qcow2(argc, argv);
    if (strcmp(cmd, "create-raw") == 0 && argc >= 2)
        return block_create_raw(argv[0], num(argv[1]), &err) ? 0 : die(err);
    if (strcmp(cmd, "info") == 0 || strcmp(cmd, "dump") == 0 || strcmp(cmd, "map") == 0 ||
        (strcmp(cmd, "check") == 0 && argc < 2) ||
        (strcmp(cmd, "snapshot") == 0 && argc >= 2 && strcmp(argv[1], "list") == 0))
        o.read_only = TRUE;
    bs = block_open(argv[0], &o, &err);
    if (!bs)
        return die(err);

    if (strcmp(cmd, "info") == 0) {
        g_autoptr(BlockInfo) info = block_get_info(bs, &err);
        if (!info)
            return die(err);
        printf("format=%s\nvirtual_size=%" G_GUINT64_FORMAT "\ncluster_size=%u\n",
               info->format, info->virtual_size, info->cluster_size);
        printf("backing_filename=%s\nfull_backing_filename=%s\nbacking_format=%s\n",
               info->backing_filename ? info->backing_filename : "",
               info->full_backing_filename ? info->full_backing_filename : "",
               info->backing_format ? info->backing_format : "");
        printf("compat=%s\nlazy_refcounts=%d\ndirty=%d\ncorrupt=%d\ncompression_type=%s\n",
               info->compat ? info->compat : "", info->lazy_refcounts, info->dirty,
               info->corrupt, info->compression_type ? info->compression_type : "");
        printf("engine=%s\n", block_engine_get_backend(block_get_engine(bs)));
        for (guint k = 0; k < info->snapshots->len; k++) {
            BlockSnapshotInfo *sn = info->snapshots->pdata[k];
            printf("snapshot=%s %s %" G_GUINT64_FORMAT "\n", sn->id, sn->name, sn->disk_size);
        }
        return 0;
    }
    if (strcmp(cmd, "dump") == 0 && argc >= 2) {
        FILE *out = fopen(argv[1], "wb");
        const size_t chunk = 1 << 20;
        g_autofree uint8_t *buf = g_malloc(chunk);
        if (!out)
            return perror(argv[1]), 1;
        for (uint64_t off = 0; off < block_get_size(bs); off += chunk) {
            size_t n = MIN(chunk, block_get_size(bs) - off);
            if (!block_pread(bs, off, buf, n, &err))
                return die(err);
            if (fwrite(buf, 1, n, out) != n)
                return perror(argv[1]), 1;
        }
        return fclose(out) == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "write") == 0 && argc >= 4) {
        uint64_t off = num(argv[1]), len = num(argv[2]);
        g_autofree uint8_t *buf = g_malloc(len);
        memset(buf, (int)g_ascii_strtoull(argv[3], NULL, 16), len);
        if (!block_pwrite(bs, off, buf, len, argc > 4 ? BLOCK_REQ_FUA : 0, &err) ||
            !block_flush_sync(bs, &err))
            return die(err);
        return 0;
    }
    if (strcmp(cmd, "writefile") == 0 && argc >= 3) {
        g_autofree char *data = NULL;
        gsize len;
        if (!g_file_get_contents(argv[2], &data, &len, &err) ||
            !block_pwrite(bs, num(argv[1]), data, len, 0, &err) ||
            !block_flush_sync(bs, &err))
            return die(err);
        return 0;
    }
    if (strcmp(cmd, "zero") == 0 && argc >= 3) {
        if (!block_write_zeroes_sync(bs, num(argv[1]), num(argv[2]),
                                     argc > 3 ? BLOCK_REQ_MAY_UNMAP : 0, &err) ||
            !block_flush_sync(bs, &err))
            return die(err);
        return 0;
    }
    if (strcmp(cmd, "discard") == 0 && argc >= 3) {
        if (!block_discard_sync(bs, num(argv[1]), num(argv[2]), &err) ||
            !block_flush_sync(bs, &err))
            return die(err);
        return 0;
    }
    if (strcmp(cmd, "compress") == 0 && argc >= 2) {
        g_autofree char *data = NULL;
        gsize len;
        uint32_t cs = block_get_cluster_size(bs);
        if (!g_file_get_contents(argv[1], &data, &len, &err))
            return die(err);
        for (uint64_t off = 0; off < len && off < block_get_size(bs); off += cs) {
            size_t n = MIN((uint64_t)cs, block_get_size(bs) - off);
            g_autofree uint8_t *c = g_malloc0(n);
            memcpy(c, data + off, MIN((uint64_t)n, len - off));
            if (!block_write_compressed(bs, off, c, n, &err))
                return die(err);
        }
        return block_flush_sync(bs, &err) ? 0 : die(err);
    }
    if (strcmp(cmd, "check") == 0) {
        BlockCheckResult r;
        BlockCheckFix fix = argc < 2 ? 0 : strcmp(argv[1], "all") == 0 ?
                            BLOCK_CHECK_FIX_ERRORS | BLOCK_CHECK_FIX_LEAKS :
                            BLOCK_CHECK_FIX_LEAKS;
        if (!block_check(bs, fix, &r, &err))
            return die(err);
        printf("corruptions=%" G_GUINT64_FORMAT "\nleaks=%" G_GUINT64_FORMAT
               "\ncheck_errors=%" G_GUINT64_FORMAT "\ncorruptions_fixed=%" G_GUINT64_FORMAT
               "\nleaks_fixed=%" G_GUINT64_FORMAT "\nimage_end_offset=%" G_GUINT64_FORMAT
               "\nallocated_clusters=%" G_GUINT64_FORMAT "\ncompressed_clusters=%"
               G_GUINT64_FORMAT "\n", r.corruptions, r.leaks, r.check_errors,
               r.corruptions_fixed, r.leaks_fixed, r.image_end_offset, r.allocated_clusters,
               r.compressed_clusters);
        return r.corruptions || r.check_errors ? 2 : r.leaks ? 3 : 0;
    }
    if (strcmp(cmd, "snapshot") == 0 && argc >= 2) {
        gboolean ok;
        if (strcmp(argv[1], "list") == 0) {
            g_autoptr(GPtrArray) l = block_snapshot_list(bs, &err);
            if (!l)
                return die(err);
            for (guint k = 0; k < l->len; k++) {
                BlockSnapshotInfo *sn = l->pdata[k];
                printf("%s %s\n", sn->id, sn->name);
            }
            return 0;
        }
        if (argc < 3)
            return 2;
        ok = strcmp(argv[1], "create") == 0 ? block_snapshot_create(bs, argv[2], &err) :
             strcmp(argv[1], "apply") == 0 ? block_snapshot_apply(bs, argv[2], &err) :
             strcmp(argv[1], "delete") == 0 ? block_snapshot_delete(bs, argv[2], &err) : FALSE;
        return ok ? 0 : die(err);
    }
    if (strcmp(cmd, "map") == 0) {
        uint64_t off = 0;
        while (off < block_get_size(bs)) {
            BlockStatus st;
            if (!block_get_status(bs, off, block_get_size(bs) - off, &st, &err))
                return die(err);
            printf("start=%" G_GUINT64_FORMAT " length=%" G_GUINT64_FORMAT " depth=%u "
                   "present=%d zero=%d data=%d compressed=%d offset=%" G_GINT64_FORMAT "\n",
                   off, st.length, st.depth, !!(st.flags & BLOCK_STATUS_ALLOCATED),
                   !!(st.flags & BLOCK_STATUS_ZERO), !!(st.flags & BLOCK_STATUS_DATA),
                   !!(st.flags & BLOCK_STATUS_COMPRESSED),
                   st.flags & BLOCK_STATUS_OFFSET_VALID ? (gint64)st.host_offset : -1);
            off += st.length;
        }
        return 0;
    }
    if (strcmp(cmd, "resize") == 0 && argc >= 2)
        return block_truncate(bs, num(argv[1]), &err) ? 0 : die(err);
    if (strcmp(cmd, "rebase") == 0 && argc >= 2)
        return block_change_backing_file(bs, *argv[1] ? argv[1] : NULL,
                                         argc > 2 ? argv[2] : NULL, &err) ? 0 : die(err);
    if (strcmp(cmd, "commit") == 0)
        return block_commit(bs, TRUE, &err) ? 0 : die(err);
    if (strcmp(cmd, "hold") == 0 && argc >= 2) {
        printf("holding\n");
        fflush(stdout);
        g_usleep(num(argv[1]) * G_USEC_PER_SEC);
        return 0;
    }
    fprintf(stderr, "blocktool: unknown command or missing arguments: %s\n", cmd);
    return 2;
}
