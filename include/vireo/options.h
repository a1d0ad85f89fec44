/* SPDX-License-Identifier: GPL-2.0-or-later */
/* vireo-vmm's command line. */
#ifndef VIREO_OPTIONS_H
#define VIREO_OPTIONS_H

#include <glib.h>

#include "vireo/machine.h"

/* --object tls-creds-x509,id=ID,dir=DIR[,endpoint=server|client][,verify-peer=on|off] */
typedef struct VmmTlsCreds {
    char *id;
    char *dir;
    gboolean server;            /* endpoint=server; QEMU's default is client */
    gboolean verify_peer;       /* default on */
} VmmTlsCreds;

typedef struct VmmOptions {
    MachineConfig *machine;
    char *qmp;                  /* "unix:PATH" or NULL */
    char *incoming;             /* --incoming URI ("defer" included) or NULL */
    GPtrArray *tls_creds;       /* VmmTlsCreds, in command-line order */
    char *migrate_tls_creds;    /* --migrate-tls-creds ID or NULL */
    gboolean help;
    gboolean list_devices;      /* --device help */
    gboolean version;
} VmmOptions;

void vmm_options_free(VmmOptions *opts);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmmOptions, vmm_options_free)

/* Parses argv (not modified); errors name the option and what was expected. */
VmmOptions *vmm_options_parse(int argc, char **argv, GError **error);

/* Parses a size such as "512", "512M", "2G" (no suffix: MiB) into bytes. */
gboolean vmm_parse_memory(const char *s, uint64_t *bytes, GError **error);

extern const char vmm_usage[];

#endif
