/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for the domain XML library (daemon/conf/): the input is
 * a domain XML document, as a client would send to define. Whatever it is,
 * the library must either refuse it with a GError or give a definition
 * that
 *
 * - formats without crashing, live and inactive, with and without secrets;
 * - parses back from its own output (what it accepted, it can read again);
 * - formats identically the second time (formatting is a fixed point);
 * - survives domain_def_check_runnable() with and without capabilities.
 *
 * Seeds: the files in tests/data/domain/ (every round-trip and failure case).
 * Build: tests/fuzz/meson.build (needs libxml2's flags, see docs/domain-xml.md).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/domain-conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const DomainDef *def, unsigned parse_flags, unsigned format_flags)
{
    char *out = domain_def_format(def, format_flags);
    GError *err = NULL;
    DomainDef *again = domain_def_parse_string(out, parse_flags, &err);
    char *out2;

    if (!again) {
        /* the library refused its own output */
        fprintf(stderr, "re-parse failed: %s\n--- output ---\n%s", err->message, out);
        abort();
    }
    out2 = domain_def_format(again, format_flags);
    if (strcmp(out, out2) != 0) {
        fprintf(stderr, "not a fixed point\n--- first ---\n%s--- second ---\n%s", out, out2);
        abort();
    }
    g_free(out2);
    domain_def_free(again);
    g_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml;
    GError *err = NULL;
    DomainDef *def;

    if (size > 64 * 1024)
        return 0;
    xml = g_strndup((const char *)data, size);   /* stops at an embedded NUL */
    for (unsigned flags = 0; flags <= DOMAIN_DEF_PARSE_INACTIVE; flags++) {
        def = domain_def_parse_string(xml, flags, &err);
        if (!def) {
            if (!err || err->domain != g_quark_from_static_string("vireo-error-quark"))
                abort();
            g_clear_error(&err);
            continue;
        }
        check_round_trip(def, flags, DOMAIN_DEF_FORMAT_SECURE);
        check_round_trip(def, DOMAIN_DEF_PARSE_INACTIVE, DOMAIN_DEF_FORMAT_INACTIVE);
        if (!domain_def_check_runnable(def, DOMAIN_RUN_CAPS_NONE, &err))
            g_clear_error(&err);
        if (!domain_def_check_runnable(def, ~0u, &err))
            g_clear_error(&err);
        domain_def_free(def);
    }
    g_free(xml);
    return 0;
}
