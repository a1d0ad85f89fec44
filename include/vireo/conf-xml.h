/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * XML helpers shared by the daemon's configuration parsers (daemon/conf/):
 * a safe reader, strict attribute/child checking with element paths in
 * error messages, and a writer that formats the way libvirt does
 * (2-space indentation, single-quoted attributes, libvirt's escaping).
 *
 * Every error is VIREO_ERROR_INVALID_ARGUMENT with a message of the form
 * "<element path>: <reason>", the path as libxml2's xmlGetNodePath() gives
 * it without the leading '/', e.g. "domain/devices/disk[2]/target".
 */
#ifndef VIREO_CONF_XML_H
#define VIREO_CONF_XML_H

#include <glib.h>
#include <libxml/tree.h>

/* yes/no or on/off attributes that may be absent. */
typedef enum {
    CONF_ABSENT = 0,
    CONF_ON,      /* 'yes' or 'on' */
    CONF_OFF,     /* 'no' or 'off' */
} ConfTristate;

/* Element path of node, "domain/devices/disk[2]". Caller frees. */
char *conf_xml_path(xmlNodePtr node);

/* Sets error to "<path of node>: <message>". Always returns FALSE. */
gboolean conf_xml_error(GError **error, xmlNodePtr node, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/*
 * Parses a whole document from memory. Refuses a DOCTYPE (no entities,
 * no external anything), documents over 16 MiB and a root element other
 * than root_name. Blank text between elements is dropped
 * (XML_PARSE_NOBLANKS), so kept subtrees can be re-indented.
 */
xmlDocPtr conf_xml_read(const char *xml, size_t len, const char *root_name,
                        GError **error);

/*
 * Strict shape check of one element: every attribute must be in attrs,
 * every child element in children (both NULL-terminated, NULL = none
 * allowed), and non-blank text is allowed only if text is TRUE.
 * Elements and attributes in a namespace are never allowed here.
 * Each name in children may appear at most once unless it is listed
 * with a leading '*' ("*boot").
 */
extern const char *const conf_xml_any_child[];  /* children: anything goes */

gboolean conf_xml_check(xmlNodePtr node, const char *const *attrs,
                        const char *const *children, gboolean text,
                        GError **error);

/* First child element called name, or NULL. */
xmlNodePtr conf_xml_child(xmlNodePtr node, const char *name);

/* Attribute value (g_malloc'd) or NULL if absent. */
char *conf_xml_prop(xmlNodePtr node, const char *name);

/* Same, but an absent or empty attribute is an error. */
char *conf_xml_prop_required(xmlNodePtr node, const char *name, GError **error);

/* Text content (g_malloc'd, never NULL). */
char *conf_xml_text(xmlNodePtr node);

/*
 * Attribute that must be one of table (NULL-terminated). Absent: *out is
 * left alone and TRUE is returned. The value is stored as an index.
 */
gboolean conf_xml_prop_enum(xmlNodePtr node, const char *name,
                            const char *const *table, int *out, GError **error);

/*
 * Same, but stores a g_malloc'd copy of the value (NULL if absent), for
 * attributes the daemon passes on rather than acts on.
 */
gboolean conf_xml_prop_choice(xmlNodePtr node, const char *name,
                              const char *const *table, char **out,
                              GError **error);

/*
 * Unsigned integer attribute, base 0 (decimal, 0x hex), at most max.
 * Absent: *present (if given) is FALSE and *out untouched.
 */
gboolean conf_xml_prop_uint(xmlNodePtr node, const char *name, guint64 max,
                            guint64 *out, gboolean *present, GError **error);

/* yes/no (onoff FALSE) or on/off (onoff TRUE) attribute. */
gboolean conf_xml_prop_tristate(xmlNodePtr node, const char *name,
                                gboolean onoff, ConfTristate *out,
                                GError **error);

/* Parses a decimal unsigned integer without sign, spaces or overflow. */
gboolean conf_parse_uint(const char *s, int base, guint64 max, guint64 *out);

/* Index of s in a NULL-terminated table, or -1. */
int conf_enum_from_string(const char *const *table, const char *s);

/* ---- output ---- */

void conf_buf_indent(GString *buf, int indent);

/*
 * libvirt's virBufferEscapeString(): & < > ' " become entities, control
 * characters other than tab, LF and CR are dropped.
 */
void conf_buf_escape(GString *buf, const char *s);

/* Appends " name='value'" (escaped) if value is not NULL. */
void conf_buf_attr(GString *buf, const char *name, const char *value);

/* Appends "<name>text</name>\n" at indent if text is not NULL. */
void conf_buf_text_element(GString *buf, int indent, const char *name,
                           const char *text);

const char *conf_tristate_str(ConfTristate t, gboolean onoff);

/*
 * Formats a kept subtree the way libvirt formats its own elements:
 * single-quoted attributes, namespace declarations kept, element-only
 * content indented by two spaces per level, text content inline,
 * comments dropped. Starts at indent and ends with a newline. When
 * drop_attr is not NULL, that attribute of the top element is left out
 * (used to hide graphics passwords).
 */
void conf_xml_format_node(GString *buf, int indent, xmlNodePtr node,
                          const char *drop_attr);

#endif
