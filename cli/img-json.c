/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON output in qemu-img's layout: four-space indentation, one member per
 * line, "key": value, non-ASCII escaped as \uXXXX. Callers emit members in
 * qemu-img's order themselves, so diffs against qemu-img stay empty.
 */
#include <inttypes.h>

#include "vireo/img.h"

static void member(ImgJson *j, const char *key)
{
    if (j->depth > 0) {
        fputs(j->first ? "\n" : ",\n", j->out);
        for (int i = 0; i < j->depth; i++)
            fputs("    ", j->out);
    }
    j->first = FALSE;
    if (key)
        fprintf(j->out, "\"%s\": ", key);
}

static void put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const char *p = s; *p; ) {
        gunichar c = g_utf8_get_char_validated(p, -1);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            /* Not UTF-8 (a file name can be anything): U+FFFD, like qemu. */
            fputs("\\uFFFD", out);
            p++;
            continue;
        }
        p = g_utf8_next_char(p);
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                fputc((int)c, out);
            } else if (c < 0x10000) {
                fprintf(out, "\\u%04X", (unsigned)c);
            } else {
                c -= 0x10000;
                fprintf(out, "\\u%04X\\u%04X", 0xd800 | (unsigned)(c >> 10),
                        0xdc00 | (unsigned)(c & 0x3ff));
            }
        }
    }
    fputc('"', out);
}

void img_json_open(ImgJson *j, const char *key, char bracket)
{
    member(j, key);
    fputc(bracket, j->out);
    j->depth++;
    j->first = TRUE;
}

void img_json_close(ImgJson *j, char bracket)
{
    gboolean empty = j->first;

    j->depth--;
    if (!empty) {
        fputc('\n', j->out);
        for (int i = 0; i < j->depth; i++)
            fputs("    ", j->out);
    }
    fputc(bracket == '{' ? '}' : ']', j->out);
    j->first = FALSE;
}

void img_json_int(ImgJson *j, const char *key, int64_t value)
{
    member(j, key);
    fprintf(j->out, "%" PRId64, value);
}

void img_json_uint(ImgJson *j, const char *key, uint64_t value)
{
    member(j, key);
    fprintf(j->out, "%" PRIu64, value);
}

void img_json_bool(ImgJson *j, const char *key, gboolean value)
{
    member(j, key);
    fputs(value ? "true" : "false", j->out);
}

void img_json_str(ImgJson *j, const char *key, const char *value)
{
    member(j, key);
    put_string(j->out, value);
}

void img_json_end(ImgJson *j)
{
    fputc('\n', j->out);
}
