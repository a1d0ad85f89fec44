/* SPDX-License-Identifier: GPL-2.0-or-later */
/* State files of running domains (include/vireo/domain-status.h). */
#include <string.h>

#include "vireo/atomic-file.h"
#include "vireo/conf-value.h"
#include "vireo/domain-status.h"
#include "vireo/util.h"

#define GROUP "domain"

DomainStatus *domain_status_new(void)
{
    DomainStatus *st = g_new0(DomainStatus, 1);

    st->id = -1;
    return st;
}

void domain_status_free(DomainStatus *st)
{
    if (!st)
        return;
    g_free(st->name);
    g_free(st->live_xml);
    g_free(st);
}

char *domain_status_format(const DomainStatus *st)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    char uuid[CONF_UUID_STRING_LEN];

    conf_uuid_format(st->uuid, uuid);
    g_key_file_set_integer(kf, GROUP, "version", DOMAIN_STATUS_VERSION);
    g_key_file_set_string(kf, GROUP, "name", st->name);
    g_key_file_set_string(kf, GROUP, "uuid", uuid);
    g_key_file_set_integer(kf, GROUP, "id", st->id);
    g_key_file_set_integer(kf, GROUP, "pid", st->pid);
    g_key_file_set_uint64(kf, GROUP, "start-ticks", st->start_ticks);
    g_key_file_set_int64(kf, GROUP, "started-at", st->started_at);
    g_key_file_set_boolean(kf, GROUP, "persistent", st->persistent);
    g_key_file_set_integer(kf, GROUP, "state", st->state);
    g_key_file_set_integer(kf, GROUP, "reason", st->reason);
    g_key_file_set_boolean(kf, GROUP, "start-complete", st->start_complete);
    if (st->migration_out)
        g_key_file_set_integer(kf, GROUP, "migration-out", st->migration_out);
    g_key_file_set_string(kf, GROUP, "live-xml", st->live_xml ? st->live_xml : "");
    return g_key_file_to_data(kf, NULL, NULL);
}

static gboolean bad(GError **error, const char *key, const GError *cause)
{
    g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE, "state file: key '%s': %s", key,
                cause ? cause->message : "invalid value");
    return FALSE;
}

DomainStatus *domain_status_parse(const char *text, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(DomainStatus) st = domain_status_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *uuid = NULL;
    gint64 pid;
    int version;

    if (!g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, &err)) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE, "state file: %s",
                    err->message);
        return NULL;
    }
#define GET(key, expr)                                      \
    do {                                                    \
        expr;                                               \
        if (err) {                                          \
            bad(error, key, err);                           \
            return NULL;                                    \
        }                                                   \
    } while (0)
    GET("version", version = g_key_file_get_integer(kf, GROUP, "version", &err));
    if (version != DOMAIN_STATUS_VERSION) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state file: version %d, expected %d", version, DOMAIN_STATUS_VERSION);
        return NULL;
    }
    GET("name", st->name = g_key_file_get_string(kf, GROUP, "name", &err));
    GET("uuid", uuid = g_key_file_get_string(kf, GROUP, "uuid", &err));
    if (!conf_uuid_parse(uuid, st->uuid)) {
        bad(error, "uuid", NULL);
        return NULL;
    }
    GET("id", st->id = g_key_file_get_integer(kf, GROUP, "id", &err));
    GET("pid", pid = g_key_file_get_int64(kf, GROUP, "pid", &err));
    if (pid <= 0 || pid > G_MAXINT) {
        bad(error, "pid", NULL);
        return NULL;
    }
    st->pid = pid;
    GET("start-ticks", st->start_ticks = g_key_file_get_uint64(kf, GROUP, "start-ticks", &err));
    GET("started-at", st->started_at = g_key_file_get_int64(kf, GROUP, "started-at", &err));
    GET("persistent", st->persistent = g_key_file_get_boolean(kf, GROUP, "persistent", &err));
    GET("state", st->state = g_key_file_get_integer(kf, GROUP, "state", &err));
    GET("reason", st->reason = g_key_file_get_integer(kf, GROUP, "reason", &err));
    GET("start-complete",
        st->start_complete = g_key_file_get_boolean(kf, GROUP, "start-complete", &err));
    GET("live-xml", st->live_xml = g_key_file_get_string(kf, GROUP, "live-xml", &err));
    if (g_key_file_has_key(kf, GROUP, "migration-out", NULL))
        GET("migration-out",
            st->migration_out = g_key_file_get_integer(kf, GROUP, "migration-out", &err));
#undef GET
    if (!*st->name || !*st->live_xml || st->id < 0) {
        bad(error, !*st->name ? "name" : !*st->live_xml ? "live-xml" : "id", NULL);
        return NULL;
    }
    if (st->migration_out < DOMAIN_MIGRATION_OUT_NONE ||
        st->migration_out > DOMAIN_MIGRATION_OUT_FINISHING) {
        bad(error, "migration-out", NULL);
        return NULL;
    }
    return g_steal_pointer(&st);
}

gboolean domain_status_save(const DomainStatus *st, const char *path, GError **error)
{
    g_autofree char *text = domain_status_format(st);

    return atomic_file_write(path, text, strlen(text), 0600, error);
}

DomainStatus *domain_status_load(const char *path, GError **error)
{
    g_autofree char *text = NULL;
    DomainStatus *st;

    if (!g_file_get_contents(path, &text, NULL, error))
        return NULL;
    st = domain_status_parse(text, error);
    if (!st)
        g_prefix_error(error, "%s: ", path);
    return st;
}
