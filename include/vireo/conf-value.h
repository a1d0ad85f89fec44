/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Value syntaxes of libvirt's XML formats: UUIDs, MACs, sizes, CPU sets. */
#ifndef VIREO_CONF_VALUE_H
#define VIREO_CONF_VALUE_H

#include <glib.h>
#include <stdint.h>

#define CONF_UUID_STRING_LEN 37   /* 36 characters and a NUL */
#define CONF_MAC_STRING_LEN 18

/*
 * libvirt's UUID syntax: 32 hex digits; dashes may appear anywhere
 * between pairs of digits (so with or without the usual 8-4-4-4-12
 * dashes), leading and trailing spaces are ignored.
 */
gboolean conf_uuid_parse(const char *s, uint8_t uuid[16]);
void conf_uuid_format(const uint8_t uuid[16], char out[CONF_UUID_STRING_LEN]);
void conf_uuid_generate(uint8_t uuid[16]);          /* random, version 4 */

/* "52:54:00:12:34:56": six hex octets (one or two digits) separated by ':'. */
gboolean conf_mac_parse(const char *s, uint8_t mac[6]);
void conf_mac_format(const uint8_t mac[6], char out[CONF_MAC_STRING_LEN]);
void conf_mac_generate(uint8_t mac[6]);             /* 52:54:00:xx:xx:xx */
static inline gboolean conf_mac_is_multicast(const uint8_t mac[6])
{
    return mac[0] & 1;
}

/*
 * A size with libvirt's units: b/bytes, k/KiB, KB, M/MiB, MB, ... E/EiB,
 * EB (case-insensitive; the one-letter forms are powers of 1024). unit NULL
 * or "" means default_scale bytes per unit. Fails on overflow or junk.
 */
gboolean conf_size_to_bytes(const char *number, const char *unit,
                            guint64 default_scale, guint64 *bytes);

/*
 * libvirt's CPU list syntax ("0-3,^2,8"), returned in the canonical form
 * libvirt prints ("0-1,3,8"), or NULL if invalid or empty. CPUs must be
 * below max_cpus.
 */
char *conf_cpuset_normalize(const char *s, guint max_cpus);

#endif
