/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vireo-img: create, inspect, check, convert and modify disk images, with
 * qemu-img's subcommands, options, output and exit codes (docs/vireo-img.1).
 * This file only dispatches; each subcommand lives in cli/img-*.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "vireo/img.h"

typedef struct ImgCommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} ImgCommand;

static const ImgCommand img_commands[] = {
    { "bench", img_bench_run,
      "bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] "
      "[--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] "
      "[-t cache] [-w] [-U] filename" },
    { "check", img_check_run,
      "check [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename" },
    { "commit", img_chain_commit_run,
      "commit [-q] [-f fmt] [-t cache] [-b base] [-d] [-p] filename" },
    { "compare", img_compare_run,
      "compare [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2" },
    { "convert", img_convert_run,
      "convert [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] "
      "[-o options] [-S sparse_size] [-U] filename output_filename" },
    { "create", img_create_run,
      "create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] "
      "filename [size]" },
    { "info", img_info_run,
      "info [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename" },
    { "map", img_map_run,
      "map [-f fmt] [--output=ofmt] [--start-offset=offset] [--max-length=len] [-U] filename" },
    { "rebase", img_chain_rebase_run,
      "rebase [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] [-U] -b backing_file "
      "[-F backing_fmt] filename" },
    { "resize", img_resize_run,
      "resize [-f fmt] [-q] [--shrink] filename [+ | -]size" },
    { "snapshot", img_snapshot_run,
      "snapshot [-q] [-l | -a snapshot | -c snapshot | -d snapshot] [-U] filename" },
};

static void img_help(void)
{
    printf("vireo-img version %s\n"
           "usage: vireo-img [standard options] command [command options]\n"
           "Disk image utility (raw and qcow2), compatible with qemu-img\n\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n\n"
           "Command syntax:\n", VIREO_VERSION);
    for (size_t i = 0; i < G_N_ELEMENTS(img_commands); i++)
        printf("  %s\n", img_commands[i].usage);
    printf("\nSizes take the suffixes k, M, G, T, P and E (powers of 1024).\n"
           "See vireo-img(1) for the details.\n");
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        img_util_error(NULL, "Not enough arguments");
        fprintf(stderr, "Try 'vireo-img --help' for more information\n");
        return 1;
    }
    cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        img_help();
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("vireo-img version %s\n", VIREO_VERSION);
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(img_commands); i++) {
        if (strcmp(cmd, img_commands[i].name) != 0)
            continue;
        if (argc > 2 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            printf("usage: vireo-img %s\n", img_commands[i].usage);
            return 0;
        }
        /* getopt's own messages then read "vireo-img: ...". */
        argv[1] = (char *)"vireo-img";
        optind = 0;
        return img_commands[i].run(argc - 1, argv + 1);
    }
    img_util_error(NULL, "Command not found: %s", cmd);
    fprintf(stderr, "Try 'vireo-img --help' for more information\n");
    return 1;
}
