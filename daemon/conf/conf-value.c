/* SPDX-License-Identifier: GPL-2.0-or-later */
/* UUIDs, MAC addresses, sizes with units and CPU sets as libvirt writes them. */
#include <string.h>

#include "vireo/conf-value.h"
#include "vireo/conf-xml.h"

static int hexval(char c)
{
    return g_ascii_xdigit_value(c);
}

gboolean conf_uuid_parse(const char *s, uint8_t uuid[16])
{
    const char *p = s;
    int i = 0;

    if (!s)
        return FALSE;
    while (*p == ' ')
        p++;
    while (i < 16) {
        if (*p == '-') {
            p++;
            continue;
        }
        if (hexval(p[0]) < 0 || hexval(p[1]) < 0)
            return FALSE;
        uuid[i++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
        p += 2;
    }
    while (*p == ' ')
        p++;
    return *p == '\0';
}

void conf_uuid_format(const uint8_t u[16], char out[CONF_UUID_STRING_LEN])
{
    g_snprintf(out, CONF_UUID_STRING_LEN,
               "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
               u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
               u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

void conf_uuid_generate(uint8_t uuid[16])
{
    g_autofree char *s = g_uuid_string_random();

    if (!conf_uuid_parse(s, uuid))
        g_assert_not_reached();
}

gboolean conf_mac_parse(const char *s, uint8_t mac[6])
{
    const char *p = s;

    if (!s)
        return FALSE;
    for (int i = 0; i < 6; i++) {
        int v;

        if (hexval(p[0]) < 0)
            return FALSE;
        v = hexval(*p++);
        if (hexval(p[0]) >= 0)
            v = v << 4 | hexval(*p++);
        mac[i] = (uint8_t)v;
        if (i < 5 && *p++ != ':')
            return FALSE;
    }
    return *p == '\0';
}

void conf_mac_format(const uint8_t m[6], char out[CONF_MAC_STRING_LEN])
{
    g_snprintf(out, CONF_MAC_STRING_LEN, "%02x:%02x:%02x:%02x:%02x:%02x",
               m[0], m[1], m[2], m[3], m[4], m[5]);
}

void conf_mac_generate(uint8_t mac[6])
{
    guint32 r = g_random_int();

    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    mac[3] = r >> 16;
    mac[4] = r >> 8;
    mac[5] = r;
}

gboolean conf_size_to_bytes(const char *number, const char *unit,
                            guint64 default_scale, guint64 *bytes)
{
    guint64 v, scale = 1;

    if (!conf_parse_uint(number, 10, G_MAXUINT64, &v))
        return FALSE;
    if (!unit || !*unit) {
        scale = default_scale;
    } else if (g_ascii_strcasecmp(unit, "b") == 0 ||
               g_ascii_strcasecmp(unit, "byte") == 0 ||
               g_ascii_strcasecmp(unit, "bytes") == 0) {
        scale = 1;
    } else {
        static const char powers[] = "kmgtpe";
        const char *pos = strchr(powers, g_ascii_tolower(unit[0]));
        guint64 base;

        if (!pos || unit[0] == '\0')
            return FALSE;
        if (unit[1] == '\0' || g_ascii_strcasecmp(unit + 1, "iB") == 0)
            base = 1024;
        else if (g_ascii_strcasecmp(unit + 1, "B") == 0)
            base = 1000;
        else
            return FALSE;
        for (long i = 0; i <= pos - powers; i++)
            scale *= base;
    }
    if (scale && v > G_MAXUINT64 / scale)
        return FALSE;
    *bytes = v * scale;
    return TRUE;
}

char *conf_cpuset_normalize(const char *s, guint max_cpus)
{
    g_autofree gboolean *set = NULL;
    g_auto(GStrv) items = NULL;
    GString *out;
    gboolean any = FALSE;

    if (!s || !*s)
        return NULL;
    set = g_new0(gboolean, max_cpus);
    items = g_strsplit(s, ",", -1);
    for (int i = 0; items[i]; i++) {
        char *item = g_strstrip(items[i]);
        gboolean neg = item[0] == '^';
        char *dash;
        guint64 a, b;

        if (neg)
            item++;
        dash = strchr(item, '-');
        if (dash)
            *dash = '\0';
        if (!conf_parse_uint(item, 10, max_cpus - 1, &a))
            return NULL;
        b = a;
        if (dash && (neg || !conf_parse_uint(dash + 1, 10, max_cpus - 1, &b) || b < a))
            return NULL;
        for (guint64 c = a; c <= b; c++)
            set[c] = !neg;
    }
    out = g_string_new(NULL);
    for (guint c = 0; c < max_cpus; c++) {
        guint end = c;

        if (!set[c])
            continue;
        while (end + 1 < max_cpus && set[end + 1])
            end++;
        if (any)
            g_string_append_c(out, ',');
        if (end == c)
            g_string_append_printf(out, "%u", c);
        else
            g_string_append_printf(out, "%u-%u", c, end);
        any = TRUE;
        c = end;
    }
    if (!any) {
        g_string_free(out, TRUE);
        return NULL;
    }
    return g_string_free(out, FALSE);
}
