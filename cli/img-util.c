/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What vireo-img's subcommands share: error messages, sizes (parsing and
 * qemu's human form), option values, opening images, the progress line.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "vireo/img.h"

void img_util_error(const char *file, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (file)
        fprintf(stderr, "vireo-img: %s: %s\n", file, msg);
    else
        fprintf(stderr, "vireo-img: %s\n", msg);
}

void img_util_error_gerror(const char *file, const GError *err)
{
    img_util_error(file, "%s", err ? err->message : "failed");
}

int img_util_usage_error(const char *cmd, const char *what)
{
    img_util_error(NULL, "%s: %s", cmd, what);
    fprintf(stderr, "Try 'vireo-img --help' for more information\n");
    return 1;
}

gboolean img_util_parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "bkmgtpe";
    const char *p = s;
    char *end = NULL;
    double frac = 0;
    uint64_t whole;
    const char *u;
    int shift = 0;

    if (!s || !g_ascii_isdigit(*s))
        return FALSE;           /* also refuses "-1" and " 1" */
    if (g_str_has_prefix(s, "0x") || g_str_has_prefix(s, "0X")) {
        errno = 0;
        whole = g_ascii_strtoull(s + 2, &end, 16);
        if (errno || end == s + 2 || *end)
            return FALSE;
        *out = whole;
        return TRUE;
    }
    errno = 0;
    whole = g_ascii_strtoull(p, &end, 10);
    if (errno)
        return FALSE;
    p = end;
    if (*p == '.') {
        const char *f = ++p;
        double scale = 0.1;
        if (!g_ascii_isdigit(*f))
            return FALSE;
        for (; g_ascii_isdigit(*p); p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    if (*p) {
        u = strchr(units, g_ascii_tolower(*p));
        if (!u || p[1])
            return FALSE;
        shift = (int)(u - units) * 10;
    } else if (frac > 0) {
        return FALSE;           /* "1.5" bytes means nothing */
    }
    if (shift && whole > (G_MAXUINT64 >> shift))
        return FALSE;
    *out = (whole << shift) + (uint64_t)(frac * (double)(1ull << shift));
    return TRUE;
}

char *img_util_size_to_str(uint64_t bytes)
{
    static const char *const units[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    unsigned k = 0;

    /*
     * qemu switches to the next unit once the number would reach 1000 in
     * the current one, so that "%.3g" never needs an exponent.
     */
    while (k + 1 < G_N_ELEMENTS(units) && (double)bytes >= 1000.0 * ldexp(1.0, 10 * k))
        k++;
    return g_strdup_printf("%0.3g %sB", (double)bytes / ldexp(1.0, 10 * k), units[k]);
}

gboolean img_util_parse_output(const char *s, ImgOutput *out)
{
    if (strcmp(s, "human") == 0)
        *out = IMG_OUTPUT_HUMAN;
    else if (strcmp(s, "json") == 0)
        *out = IMG_OUTPUT_JSON;
    else {
        img_util_error(NULL, "--output must be used with human or json as argument.");
        return FALSE;
    }
    return TRUE;
}

gboolean img_util_parse_cache(const char *s, BlockCacheMode *out)
{
    /* Without a separate FUA path, writethrough behaves as writeback and
     * directsync as none: what matters to a tool is the page cache. */
    if (strcmp(s, "none") == 0 || strcmp(s, "directsync") == 0)
        *out = BLOCK_CACHE_NONE;
    else if (strcmp(s, "writeback") == 0 || strcmp(s, "writethrough") == 0)
        *out = BLOCK_CACHE_WRITEBACK;
    else if (strcmp(s, "unsafe") == 0)
        *out = BLOCK_CACHE_UNSAFE;
    else {
        img_util_error(NULL, "Invalid cache option: %s", s);
        return FALSE;
    }
    return TRUE;
}

gboolean img_util_check_format(const char *file, const char *fmt)
{
    if (!fmt || strcmp(fmt, "raw") == 0 || strcmp(fmt, "qcow2") == 0)
        return TRUE;
    img_util_error(file, "Unknown file format '%s' (supported: raw, qcow2)", fmt);
    return FALSE;
}

BlockDev *img_util_open(const char *path, const BlockOpenOptions *opts)
{
    g_autoptr(GError) err = NULL;
    BlockDev *bs;

    if (!img_util_check_format(path, opts->format))
        return NULL;
    bs = block_open(path, opts, &err);
    if (!bs)
        img_util_error_gerror(path, err);
    return bs;
}

void img_util_progress_start(ImgProgress *p, gboolean requested)
{
    p->enabled = requested && isatty(STDOUT_FILENO);
    p->last = -1;
    img_util_progress_update(p, 0, 1);
}

void img_util_progress_update(ImgProgress *p, uint64_t done, uint64_t total)
{
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;

    if (!p->enabled)
        return;
    /* Like qemu, redraw only when a whole percent more is done. */
    if (p->last >= 0 && pct < p->last + 1.0 && pct < 100.0)
        return;
    p->last = pct;
    printf("    (%3.2f/100%%)\r", pct);
    fflush(stdout);
}

void img_util_progress_end(ImgProgress *p, gboolean completed)
{
    if (!p->enabled)
        return;
    /* A failed or stopped operation keeps the figure it reached, as qemu-img's does. */
    if (completed && p->last < 100.0)
        printf("    (%3.2f/100%%)\r", 100.0);
    printf("\n");
    fflush(stdout);
}
