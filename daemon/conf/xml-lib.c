/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libxml2, loaded with the first parse (xml-lib.h). */
#include <dlfcn.h>

#include "vireo/util.h"
#include "xml-lib.h"

XmlLib xml_lib;

static gpointer load_once(gpointer unused)
{
    void *lib = dlopen(XML_LIB_SONAME, RTLD_NOW | RTLD_LOCAL);
    xmlFreeFunc *free_fn;

    (void)unused;
    if (!lib)
        return g_strdup_printf("cannot load %s: %s", XML_LIB_SONAME, dlerror());
#define XML_LIB_RESOLVE(f) \
    if (!(*(void **)&xml_lib.f = dlsym(lib, #f))) \
        return g_strdup_printf("%s has no %s", XML_LIB_SONAME, #f);
    XML_LIB_FUNCTIONS(XML_LIB_RESOLVE)
#undef XML_LIB_RESOLVE
    free_fn = dlsym(lib, "xmlFree");
    if (!free_fn)
        return g_strdup_printf("%s has no xmlFree", XML_LIB_SONAME);
    xml_lib.xmlFree = *free_fn;
    /* libxml2 2.9's own lazy initialisation is not thread-safe; g_once is */
    xml_lib.xmlInitParser();
    return NULL;                    /* the library stays loaded for the process */
}

gboolean xml_lib_load(GError **error)
{
    static GOnce once = G_ONCE_INIT;
    const char *failure = g_once(&once, load_once, NULL);

    if (failure)
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_FAILED, "%s", failure);
    return failure == NULL;
}
