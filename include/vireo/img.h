/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img, the qemu-img work-alike (cli/vireo-img.c, cli/img-*.c):
 * subcommand entry points and what they share.
 *
 * Every subcommand gets argv with argv[0] set to "vireo-img" (so getopt's
 * messages name the tool) and optind reset, and returns the process exit
 * status. Output and exit codes follow qemu-img 7.2 so that scripts
 * written for it work unchanged; errors go to stderr as
 * "vireo-img: FILE: what went wrong".
 */
#ifndef VIREO_IMG_H
#define VIREO_IMG_H

#include <glib.h>
#include <stdint.h>
#include <stdio.h>

#include "vireo/block.h"

/* ---- subcommands, one file each ---- */
int img_create_run(int argc, char **argv);
int img_info_run(int argc, char **argv);
int img_check_run(int argc, char **argv);
int img_convert_run(int argc, char **argv);
int img_snapshot_run(int argc, char **argv);
int img_map_run(int argc, char **argv);
int img_bench_run(int argc, char **argv);
int img_compare_run(int argc, char **argv);
int img_resize_run(int argc, char **argv);
int img_chain_rebase_run(int argc, char **argv);   /* img-chain.c */
int img_chain_commit_run(int argc, char **argv);

/* img-create.c, also used by convert for its target. */
typedef struct ImgCreateRequest {
    const char *file;
    const char *fmt;
    GPtrArray *optlists;      /* -o strings (char *), may be NULL */
    const char *backing;
    const char *backing_fmt;
    gboolean have_size;
    uint64_t size;
    gboolean unsafe;          /* -u: do not open the backing file */
    gboolean quiet;           /* no "Formatting ..." line */
} ImgCreateRequest;

/* 0 created, 1 error (printed), 2 option help printed instead. */
int img_create_image(const ImgCreateRequest *req);

/* Snapshot table of info and snapshot -l (img-info.c); prints nothing when empty. */
void img_info_print_snapshots(GPtrArray *snapshots);

/* ---- img-util.c ---- */

/* Long options that several subcommands share (values above any char). */
enum {
    IMG_OPT_OUTPUT = 0x100,
    IMG_OPT_BACKING_CHAIN,
    IMG_OPT_PATTERN,
    IMG_OPT_FLUSH_INTERVAL,
    IMG_OPT_NO_DRAIN,
    IMG_OPT_SHRINK,
    IMG_OPT_START_OFFSET,
    IMG_OPT_MAX_LENGTH,
};

typedef enum {
    IMG_OUTPUT_HUMAN,
    IMG_OUTPUT_JSON,
} ImgOutput;

/* "vireo-img: FILE: message" (or without FILE when it is NULL). */
void img_util_error(const char *file, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Same, with a GError's message. */
void img_util_error_gerror(const char *file, const GError *err);
/* For a missing or surplus argument: names the subcommand, points at --help. */
int img_util_usage_error(const char *cmd, const char *what);

/*
 * Sizes as qemu-img takes them: a decimal number (a fraction is allowed
 * with a suffix) and an optional suffix b, k, M, G, T, P, E (powers of
 * 1024, any case), or a 0x hexadecimal byte count.
 */
gboolean img_util_parse_size(const char *s, uint64_t *out);
/* qemu's human sizes: three significant digits and a binary unit, "204 KiB". */
char *img_util_size_to_str(uint64_t bytes);

/* --output human|json; FALSE (after an error message) for anything else. */
gboolean img_util_parse_output(const char *s, ImgOutput *out);
/* -t/-T: none, writeback, unsafe, writethrough, directsync. */
gboolean img_util_parse_cache(const char *s, BlockCacheMode *out);
/* -f/-F/-O: "raw" or "qcow2". */
gboolean img_util_check_format(const char *file, const char *fmt);

/*
 * block_open() with the tool's error reporting. @opts->format is checked
 * first; NULL is returned after the message was printed.
 */
BlockDev *img_util_open(const char *path, const BlockOpenOptions *opts);

/*
 * Progress as qemu-img -p prints it ("    (42.00/100%)" rewritten in
 * place), shown only when asked for and stdout is a terminal, since
 * scripts capture stdout.
 */
typedef struct ImgProgress {
    gboolean enabled;
    double last;
} ImgProgress;

void img_util_progress_start(ImgProgress *p, gboolean requested);
void img_util_progress_update(ImgProgress *p, uint64_t done, uint64_t total);
/* The newline after the line; 100% first only if @completed. */
void img_util_progress_end(ImgProgress *p, gboolean completed);

/* ---- img-json.c: JSON laid out exactly as qemu-img prints it ---- */

typedef struct ImgJson {
    FILE *out;
    int depth;
    gboolean first;   /* nothing printed yet at this depth */
} ImgJson;

/* @key is NULL for the top level and inside arrays. @bracket is '{' or '['. */
void img_json_open(ImgJson *j, const char *key, char bracket);
void img_json_close(ImgJson *j, char bracket);
void img_json_int(ImgJson *j, const char *key, int64_t value);
void img_json_uint(ImgJson *j, const char *key, uint64_t value);
void img_json_bool(ImgJson *j, const char *key, gboolean value);
void img_json_str(ImgJson *j, const char *key, const char *value);
/* Ends the document (closing newline). */
void img_json_end(ImgJson *j);

#endif
