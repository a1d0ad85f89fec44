/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Device type registry and the parts every device shares. */
#include <string.h>

#include "vireo/device.h"
#include "vireo/util.h"

static GPtrArray *device_types;

void device_type_register(const DeviceType *type)
{
    if (!device_types)
        device_types = g_ptr_array_new();
    g_assert(!device_type_find(type->name));
    g_ptr_array_add(device_types, (gpointer)type);
}

const DeviceType *device_type_find(const char *name)
{
    if (!device_types)
        return NULL;
    for (guint i = 0; i < device_types->len; i++) {
        const DeviceType *t = g_ptr_array_index(device_types, i);
        if (strcmp(t->name, name) == 0)
            return t;
    }
    return NULL;
}

static gint compare_type_names(gconstpointer a, gconstpointer b)
{
    const DeviceType *ta = *(const DeviceType *const *)a;
    const DeviceType *tb = *(const DeviceType *const *)b;
    return strcmp(ta->name, tb->name);
}

GPtrArray *device_type_list(void)
{
    GPtrArray *list = g_ptr_array_new();
    for (guint i = 0; device_types && i < device_types->len; i++)
        g_ptr_array_add(list, g_ptr_array_index(device_types, i));
    g_ptr_array_sort(list, compare_type_names);
    return list;
}

void device_init(Device *dev, const DeviceType *type, const char *id)
{
    dev->type = type;
    dev->id = g_strdup(id ? id : type->name);
    g_mutex_init(&dev->lock);
}

void device_cleanup(Device *dev)
{
    g_clear_pointer(&dev->id, g_free);
    g_mutex_clear(&dev->lock);
}

Device *device_create(const char *type_name, const DeviceEnv *env, const char *options,
                      GError **error)
{
    const DeviceType *type = device_type_find(type_name);
    Device *dev;

    if (!type) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                    "unknown device type '%s'", type_name);
        return NULL;
    }
    dev = type->create(env, options, error);
    if (!dev)
        g_prefix_error(error, "device '%s': ", env->id ? env->id : type_name);
    return dev;
}

void device_free(Device *dev)
{
    if (dev)
        dev->type->ops->free(dev);
}

void device_reset(Device *dev)
{
    if (!dev->type->ops->reset)
        return;
    g_mutex_lock(&dev->lock);
    dev->type->ops->reset(dev);
    g_mutex_unlock(&dev->lock);
}

gboolean device_save(Device *dev, StateWriter *w, GError **error)
{
    gboolean ok;

    if (!dev->type->ops->save) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "device '%s' (%s) cannot save its state", dev->id, dev->type->name);
        return FALSE;
    }
    g_mutex_lock(&dev->lock);
    ok = dev->type->ops->save(dev, w, error);
    g_mutex_unlock(&dev->lock);
    return ok;
}

gboolean device_set_active(Device *dev, gboolean active, GError **error)
{
    gboolean ok;

    if (!dev->type->ops->set_active)
        return TRUE;
    g_mutex_lock(&dev->lock);
    ok = dev->type->ops->set_active(dev, active, error);
    g_mutex_unlock(&dev->lock);
    return ok;
}

gboolean device_load(Device *dev, StateReader *r, GError **error)
{
    gboolean ok;

    if (!dev->type->ops->load) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "device '%s' (%s) cannot load state", dev->id, dev->type->name);
        return FALSE;
    }
    g_mutex_lock(&dev->lock);
    ok = dev->type->ops->load(dev, r, error);
    g_mutex_unlock(&dev->lock);
    if (!ok)
        g_prefix_error(error, "device '%s': ", dev->id);
    return ok;
}

void device_read(Device *dev, uint64_t off, void *buf, size_t len)
{
    g_mutex_lock(&dev->lock);
    dev->type->ops->read(dev, off, buf, len);
    g_mutex_unlock(&dev->lock);
}

void device_write(Device *dev, uint64_t off, const void *buf, size_t len)
{
    g_mutex_lock(&dev->lock);
    dev->type->ops->write(dev, off, buf, len);
    g_mutex_unlock(&dev->lock);
}

GHashTable *device_options_parse(const char *options, GError **error)
{
    g_autoptr(GHashTable) opts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    const char *p = options;

    while (p && *p) {
        g_autoptr(GString) key = g_string_new(NULL);
        g_autoptr(GString) value = g_string_new(NULL);

        while (*p && *p != '=' && *p != ',')
            g_string_append_c(key, *p++);
        if (*p != '=') {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "option '%s' has no value (expected key=value)", key->str);
            return NULL;
        }
        p++;
        /* ",," stands for a literal comma, as in QEMU's option syntax. */
        while (*p) {
            if (*p == ',' && p[1] == ',') {
                g_string_append_c(value, ',');
                p += 2;
            } else if (*p == ',') {
                break;
            } else {
                g_string_append_c(value, *p++);
            }
        }
        if (*p == ',')
            p++;
        if (key->len == 0) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "empty option name in '%s'", options);
            return NULL;
        }
        if (g_hash_table_contains(opts, key->str)) {
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "option '%s' given twice", key->str);
            return NULL;
        }
        g_hash_table_insert(opts, g_string_free(g_steal_pointer(&key), FALSE),
                            g_string_free(g_steal_pointer(&value), FALSE));
    }
    return g_steal_pointer(&opts);
}

gboolean device_options_check_known(GHashTable *opts, const char *const *known,
                                    const char *what, GError **error)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, opts);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_strv_contains(known, key)) {
            g_autofree char *list = g_strjoinv(", ", (char **)known);
            g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_ARGUMENT,
                        "%s: unknown option '%s' (known: %s)", what, (char *)key, list);
            return FALSE;
        }
    }
    return TRUE;
}
