/* SPDX-License-Identifier: GPL-2.0-or-later */
/* XML reading, strict checking and libvirt-style writing for daemon/conf. */
#include <stdarg.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "vireo/conf-xml.h"
#include "vireo/util.h"
#include "xml-lib.h"

#define CONF_XML_MAX_SIZE (16 * 1024 * 1024)

char *conf_xml_path(xmlNodePtr node)
{
    xmlChar *p = node ? xml_lib.xmlGetNodePath(node) : NULL;
    char *ret;

    if (!p)
        return g_strdup("?");
    ret = g_strdup((const char *)p + (p[0] == '/' ? 1 : 0));
    xml_lib.xmlFree(p);
    return ret;
}

gboolean conf_xml_error(GError **error, xmlNodePtr node, const char *fmt, ...)
{
    g_autofree char *path = conf_xml_path(node);
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT, "%s: %s", path, msg);
    return FALSE;
}

xmlDocPtr conf_xml_read(const char *xml, size_t len, const char *root_name,
                        GError **error)
{
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;
    xmlNodePtr root;

    if (len > CONF_XML_MAX_SIZE) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s XML is larger than %d bytes", root_name, CONF_XML_MAX_SIZE);
        return NULL;
    }
    if (!xml_lib_load(error))
        return NULL;
    ctxt = xml_lib.xmlNewParserCtxt();
    if (!ctxt) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "out of memory");
        return NULL;
    }
    /*
     * No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading, no
     * network; errors go to ctxt->lastError rather than to stderr.
     */
    doc = xml_lib.xmlCtxtReadMemory(ctxt, xml, (int)len, root_name, NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOBLANKS |
                                    XML_PARSE_NOCDATA | XML_PARSE_NOERROR |
                                    XML_PARSE_NOWARNING);
    if (!doc || !ctxt->wellFormed) {
        xmlErrorPtr e = xml_lib.xmlCtxtGetLastError(ctxt);
        g_autofree char *msg = g_strdup(e && e->message ? e->message : "unknown error");

        g_strchomp(msg);
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s XML is not well-formed: line %d: %s", root_name,
                    e ? e->line : 0, msg);
        xml_lib.xmlFreeDoc(doc);
        xml_lib.xmlFreeParserCtxt(ctxt);
        return NULL;
    }
    xml_lib.xmlFreeParserCtxt(ctxt);

    if (doc->intSubset || doc->extSubset) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "%s XML must not have a DOCTYPE", root_name);
        xml_lib.xmlFreeDoc(doc);
        return NULL;
    }
    root = xml_lib.xmlDocGetRootElement(doc);
    if (!root || root->ns || strcmp((const char *)root->name, root_name) != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "expected root element '%s', found '%s'", root_name,
                    root ? (const char *)root->name : "nothing");
        xml_lib.xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

const char *const conf_xml_any_child[] = { NULL };

static gboolean name_in(const char *const *list, const char *name, gboolean *multi)
{
    if (multi)
        *multi = FALSE;
    for (; list && *list; list++) {
        const char *n = *list;
        gboolean star = n[0] == '*';

        if (strcmp(n + (star ? 1 : 0), name) == 0) {
            if (multi)
                *multi = star;
            return TRUE;
        }
    }
    return FALSE;
}

static gboolean is_blank(const xmlChar *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return FALSE;
    return TRUE;
}

gboolean conf_xml_check(xmlNodePtr node, const char *const *attrs,
                        const char *const *children, gboolean text,
                        GError **error)
{
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (xmlAttrPtr a = node->properties; a; a = a->next) {
        if (a->ns)
            return conf_xml_error(error, node, "unknown attribute '%s:%s'",
                                  (const char *)a->ns->prefix, (const char *)a->name);
        if (!name_in(attrs, (const char *)a->name, NULL))
            return conf_xml_error(error, node, "unknown attribute '%s'",
                                  (const char *)a->name);
    }
    for (xmlNodePtr c = node->children; c; c = c->next) {
        gboolean multi;

        switch (c->type) {
        case XML_ELEMENT_NODE:
            if (children == conf_xml_any_child)
                break;
            if (c->ns)
                return conf_xml_error(error, node, "unknown element '%s:%s'",
                                      c->ns->prefix ? (const char *)c->ns->prefix : "",
                                      (const char *)c->name);
            if (!name_in(children, (const char *)c->name, &multi))
                return conf_xml_error(error, node, "unknown element '%s'",
                                      (const char *)c->name);
            if (!multi) {
                if (g_hash_table_contains(seen, c->name))
                    return conf_xml_error(error, node, "element '%s' may appear only once",
                                          (const char *)c->name);
                g_hash_table_add(seen, (gpointer)c->name);
            }
            break;
        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE:
            if (!text && !is_blank(c->content)) {
                g_autofree char *t = g_strndup((const char *)c->content, 40);
                return conf_xml_error(error, node, "unexpected text '%s'", g_strstrip(t));
            }
            break;
        case XML_COMMENT_NODE:
        case XML_PI_NODE:
            break;
        default:
            return conf_xml_error(error, node, "unexpected XML content (node type %d)",
                                  (int)c->type);
        }
    }
    return TRUE;
}

xmlNodePtr conf_xml_child(xmlNodePtr node, const char *name)
{
    for (xmlNodePtr c = node->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !c->ns &&
            strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

char *conf_xml_prop(xmlNodePtr node, const char *name)
{
    xmlChar *v = xml_lib.xmlHasNsProp(node, BAD_CAST name, NULL) ?
        xml_lib.xmlGetNoNsProp(node, BAD_CAST name) : NULL;
    char *ret;

    if (!v)
        return NULL;
    ret = g_strdup((const char *)v);
    xml_lib.xmlFree(v);
    return ret;
}

char *conf_xml_prop_required(xmlNodePtr node, const char *name, GError **error)
{
    char *v = conf_xml_prop(node, name);

    if (!v || !*v) {
        g_free(v);
        conf_xml_error(error, node, "attribute '%s' is required", name);
        return NULL;
    }
    return v;
}

char *conf_xml_text(xmlNodePtr node)
{
    xmlChar *v = xml_lib.xmlNodeGetContent(node);
    char *ret = g_strdup(v ? (const char *)v : "");

    xml_lib.xmlFree(v);
    return ret;
}

int conf_enum_from_string(const char *const *table, const char *s)
{
    for (int i = 0; s && table[i]; i++)
        if (strcmp(table[i], s) == 0)
            return i;
    return -1;
}

static char *join_table(const char *const *table)
{
    GString *s = g_string_new(NULL);

    for (int i = 0; table[i]; i++) {
        if (!*table[i])
            continue;
        g_string_append_printf(s, "%s'%s'", s->len ? ", " : "", table[i]);
    }
    return g_string_free(s, FALSE);
}

gboolean conf_xml_prop_enum(xmlNodePtr node, const char *name,
                            const char *const *table, int *out, GError **error)
{
    g_autofree char *v = conf_xml_prop(node, name);
    int i;

    if (!v)
        return TRUE;
    i = *v ? conf_enum_from_string(table, v) : -1;
    if (i < 0) {
        g_autofree char *valid = join_table(table);
        return conf_xml_error(error, node, "invalid value '%s' for attribute '%s' "
                              "(expected one of %s)", v, name, valid);
    }
    *out = i;
    return TRUE;
}

gboolean conf_xml_prop_choice(xmlNodePtr node, const char *name,
                              const char *const *table, char **out,
                              GError **error)
{
    int i = -1;

    if (!conf_xml_prop_enum(node, name, table, &i, error))
        return FALSE;
    g_free(*out);
    *out = i >= 0 ? g_strdup(table[i]) : NULL;
    return TRUE;
}

gboolean conf_parse_uint(const char *s, int base, guint64 max, guint64 *out)
{
    if (!s)
        return FALSE;
    if (base == 0) {
        base = 10;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
            s += 2;
            base = 16;
        }
    }
    /* no sign, no spaces: g_ascii_string_to_unsigned() is lax about those */
    if (!g_ascii_isxdigit(s[0]))
        return FALSE;
    return g_ascii_string_to_unsigned(s, (guint)base, 0, max, out, NULL);
}

gboolean conf_xml_prop_uint(xmlNodePtr node, const char *name, guint64 max,
                            guint64 *out, gboolean *present, GError **error)
{
    g_autofree char *v = conf_xml_prop(node, name);

    if (present)
        *present = v != NULL;
    if (!v)
        return TRUE;
    if (!conf_parse_uint(v, 0, max, out))
        return conf_xml_error(error, node, "invalid value '%s' for attribute '%s' "
                              "(expected an integer from 0 to %" G_GUINT64_FORMAT ")",
                              v, name, max);
    return TRUE;
}

gboolean conf_xml_prop_tristate(xmlNodePtr node, const char *name,
                                gboolean onoff, ConfTristate *out,
                                GError **error)
{
    static const char *const yesno[] = { "", "yes", "no", NULL };
    static const char *const onoffs[] = { "", "on", "off", NULL };
    int v = CONF_ABSENT;

    if (!conf_xml_prop_enum(node, name, onoff ? onoffs : yesno, &v, error))
        return FALSE;
    *out = v;
    return TRUE;
}

const char *conf_tristate_str(ConfTristate t, gboolean onoff)
{
    switch (t) {
    case CONF_ON:
        return onoff ? "on" : "yes";
    case CONF_OFF:
        return onoff ? "off" : "no";
    default:
        return NULL;
    }
}

/* ---- output ---- */

void conf_buf_indent(GString *buf, int indent)
{
    for (int i = 0; i < indent; i++)
        g_string_append_c(buf, ' ');
}

void conf_buf_escape(GString *buf, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        switch (*p) {
        case '<':
            g_string_append(buf, "&lt;");
            break;
        case '>':
            g_string_append(buf, "&gt;");
            break;
        case '&':
            g_string_append(buf, "&amp;");
            break;
        case '"':
            g_string_append(buf, "&quot;");
            break;
        case '\'':
            g_string_append(buf, "&apos;");
            break;
        case '\r':
            g_string_append(buf, "&#13;");   /* a parser would read a raw CR as LF */
            break;
        default:
            if (*p >= 0x20 || *p == '\n' || *p == '\t')
                g_string_append_c(buf, (char)*p);
            break;
        }
    }
}

/*
 * An XML parser turns a literal tab, LF or CR in an attribute value into a
 * space, so those are written as character references to read back the
 * same (libvirt writes them raw).
 */
static void escape_attr(GString *buf, const char *s)
{
    for (const char *p = s; p && *p; p++) {
        if (*p == '\n')
            g_string_append(buf, "&#10;");
        else if (*p == '\r')
            g_string_append(buf, "&#13;");
        else if (*p == '\t')
            g_string_append(buf, "&#9;");
        else {
            char one[2] = { *p, 0 };
            conf_buf_escape(buf, one);
        }
    }
}

void conf_buf_attr(GString *buf, const char *name, const char *value)
{
    if (!value)
        return;
    g_string_append_printf(buf, " %s='", name);
    escape_attr(buf, value);
    g_string_append_c(buf, '\'');
}

void conf_buf_text_element(GString *buf, int indent, const char *name,
                           const char *text)
{
    if (!text)
        return;
    conf_buf_indent(buf, indent);
    g_string_append_printf(buf, "<%s>", name);
    conf_buf_escape(buf, text);
    g_string_append_printf(buf, "</%s>\n", name);
}

static void append_qname(GString *buf, xmlNsPtr ns, const xmlChar *name)
{
    if (ns && ns->prefix)
        g_string_append_printf(buf, "%s:", (const char *)ns->prefix);
    g_string_append(buf, (const char *)name);
}

static void format_start_tag(GString *buf, xmlNodePtr node, const char *drop_attr)
{
    g_string_append_c(buf, '<');
    append_qname(buf, node->ns, node->name);
    for (xmlNsPtr ns = node->nsDef; ns; ns = ns->next) {
        if (ns->prefix)
            g_string_append_printf(buf, " xmlns:%s", (const char *)ns->prefix);
        else
            g_string_append(buf, " xmlns");
        g_string_append(buf, "='");
        escape_attr(buf, (const char *)ns->href);
        g_string_append_c(buf, '\'');
    }
    for (xmlAttrPtr a = node->properties; a; a = a->next) {
        xmlChar *v;

        if (drop_attr && !a->ns && strcmp((const char *)a->name, drop_attr) == 0)
            continue;
        v = xml_lib.xmlNodeGetContent((xmlNodePtr)a);
        g_string_append_c(buf, ' ');
        append_qname(buf, a->ns, a->name);
        g_string_append(buf, "='");
        escape_attr(buf, v ? (const char *)v : "");
        g_string_append_c(buf, '\'');
        xml_lib.xmlFree(v);
    }
}

static void format_inline(GString *buf, xmlNodePtr node)
{
    if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
        conf_buf_escape(buf, (const char *)node->content);
        return;
    }
    if (node->type != XML_ELEMENT_NODE)
        return;
    format_start_tag(buf, node, NULL);
    if (!node->children) {
        g_string_append(buf, "/>");
        return;
    }
    g_string_append_c(buf, '>');
    for (xmlNodePtr c = node->children; c; c = c->next)
        format_inline(buf, c);
    g_string_append(buf, "</");
    append_qname(buf, node->ns, node->name);
    g_string_append_c(buf, '>');
}

void conf_xml_format_node(GString *buf, int indent, xmlNodePtr node,
                          const char *drop_attr)
{
    gboolean has_elem = FALSE, has_text = FALSE;

    for (xmlNodePtr c = node->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE)
            has_elem = TRUE;
        else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
                 c->content && *c->content)
            has_text = TRUE;
    }
    conf_buf_indent(buf, indent);
    format_start_tag(buf, node, drop_attr);
    if (!has_elem && !has_text) {
        g_string_append(buf, "/>\n");
        return;
    }
    g_string_append_c(buf, '>');
    if (has_elem && !has_text) {
        g_string_append_c(buf, '\n');
        for (xmlNodePtr c = node->children; c; c = c->next)
            if (c->type == XML_ELEMENT_NODE)
                conf_xml_format_node(buf, indent + 2, c, NULL);
        conf_buf_indent(buf, indent);
    } else {
        for (xmlNodePtr c = node->children; c; c = c->next)
            format_inline(buf, c);
    }
    g_string_append(buf, "</");
    append_qname(buf, node->ns, node->name);
    g_string_append(buf, ">\n");
}
