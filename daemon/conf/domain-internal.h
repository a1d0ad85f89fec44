/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared between domain-conf.c, domain-device.c and domain-post.c only. */
#ifndef VIREO_DOMAIN_INTERNAL_H
#define VIREO_DOMAIN_INTERNAL_H

#include "vireo/domain-conf.h"

/* State of one parse; nodes maps a device struct to the element it came from. */
typedef struct DomainParseCtx {
    DomainDef *def;
    unsigned flags;
    GHashTable *nodes;           /* gpointer -> xmlNodePtr */
    xmlNodePtr root;             /* <domain> */
    xmlNodePtr devices;          /* <devices> or NULL */
    xmlNodePtr os_node;
} DomainParseCtx;

/* The element a device came from, or the best parent for implicit ones. */
xmlNodePtr domain_parse_node(DomainParseCtx *ctx, gconstpointer dev);

/* Copies node into def->raw_doc; the copy lives as long as def. */
xmlNodePtr domain_raw_keep(DomainDef *def, xmlNodePtr node);
DomainRawDef *domain_raw_new(DomainDef *def, xmlNodePtr node, const char *what);
void domain_raw_free(gpointer p);

/* domain-device.c */
gboolean domain_device_parse_all(DomainParseCtx *ctx, xmlNodePtr devices, GError **error);
void domain_device_format_all(const DomainDef *def, GString *buf, int indent, unsigned flags);
void domain_device_disk_free(gpointer p);
void domain_device_controller_free(gpointer p);
void domain_device_net_free(gpointer p);
void domain_device_chr_free(gpointer p);
void domain_device_input_free(gpointer p);
void domain_device_rng_free(gpointer p);
void domain_device_memballoon_free(DomainMemballoonDef *m);
void domain_device_watchdog_free(DomainWatchdogDef *w);
DomainControllerDef *domain_device_controller_new(DomainControllerType type, int index,
                                                  const char *model);
void domain_device_controller_insert(DomainDef *def, DomainControllerDef *cont);
DomainChrDef *domain_device_chr_copy(const DomainChrDef *chr);
DomainInputDef *domain_device_input_new(const char *type, const char *bus);
int domain_device_disk_name_index(const char *dst);
gboolean domain_device_disk_name_valid(const char *dst, const char **prefix);

/* domain-post.c: defaults, address assignment, cross-element checks */
gboolean domain_post_parse(DomainParseCtx *ctx, GError **error);

extern const char *const domain_disk_bus_names[];
extern const char *const domain_controller_type_names[];
extern const char *const domain_chr_type_names[];

#endif
