/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libxml2 for daemon/conf/, loaded (dlopen) by the first parse rather than
 * at start. Debian's libxml2 brings ICU, libstdc++, zlib and liblzma:
 * linked in, their loading and relocation cost about 2 MiB of vireod's
 * idle RSS (5.3 MiB instead of 3.3), whether or not there is a definition
 * to parse.
 *
 * Files in daemon/conf/ call libxml2 only through this table
 * (xml_lib.xmlFreeDoc(doc)), and only on objects libxml2 made: those come
 * from conf_xml_read(), the one caller of xml_lib_load(), so the table is
 * filled whenever there is such an object. Anything else needs its own
 * xml_lib_load() first.
 */
#ifndef VIREO_XML_LIB_H
#define VIREO_XML_LIB_H

#include <glib.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#define XML_LIB_SONAME "libxml2.so.2"
#define XML_LIB_FUNCTIONS(X) \
    X(xmlAddChild) \
    X(xmlBufferContent) \
    X(xmlBufferCreate) \
    X(xmlBufferFree) \
    X(xmlCtxtGetLastError) \
    X(xmlCtxtReadMemory) \
    X(xmlDocCopyNode) \
    X(xmlDocGetRootElement) \
    X(xmlDocSetRootElement) \
    X(xmlFreeDoc) \
    X(xmlFreeNode) \
    X(xmlFreeParserCtxt) \
    X(xmlGetNoNsProp) \
    X(xmlGetNodePath) \
    X(xmlHasNsProp) \
    X(xmlInitParser) \
    X(xmlNewDoc) \
    X(xmlNewDocNode) \
    X(xmlNewParserCtxt) \
    X(xmlNodeDump) \
    X(xmlNodeGetContent) \
    X(xmlUnlinkNode) \
    X(__xmlIndentTreeOutput)    /* this thread's xmlIndentTreeOutput */

typedef struct {
#define XML_LIB_FIELD(f) __typeof__(&f) f;
    XML_LIB_FUNCTIONS(XML_LIB_FIELD)
#undef XML_LIB_FIELD
    xmlFreeFunc xmlFree;        /* a variable in libxml2, not a function */
} XmlLib;

extern XmlLib xml_lib;          /* written once, by the first xml_lib_load() */

/*
 * Loads libxml2 and initialises it (xmlInitParser()) the first time, in
 * whichever thread; later calls only return the first outcome. The error
 * (VIREO_ERROR_FAILED) names the library and what is missing.
 */
gboolean xml_lib_load(GError **error);

#endif
