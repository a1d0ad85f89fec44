/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The state section format described in include/vireo/state.h. */
#include <string.h>

#include "vireo/state.h"
#include "vireo/util.h"

#define STATE_SECTION_TAG 'S'

struct StateWriter {
    GByteArray *buf;
    gssize section_len_at;      /* offset of the open section's length, or -1 */
};

struct StateReader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    size_t section_end;         /* 0 when outside a section */
    char *section;              /* name of the open section, for messages */
};

StateWriter *state_writer_new(void)
{
    StateWriter *w = g_new0(StateWriter, 1);
    w->buf = g_byte_array_new();
    w->section_len_at = -1;
    return w;
}

void state_writer_free(StateWriter *w)
{
    if (!w)
        return;
    g_byte_array_unref(w->buf);
    g_free(w);
}

static void put_le(StateWriter *w, uint64_t v, size_t len)
{
    uint8_t b[8];
    vireo_le_store(b, len, v);
    g_byte_array_append(w->buf, b, len);
}

static void put_name(StateWriter *w, const char *name)
{
    size_t n = strlen(name);
    g_assert(n > 0 && n <= STATE_MAX_NAME);
    put_le(w, n, 1);
    g_byte_array_append(w->buf, (const guint8 *)name, n);
}

void state_writer_begin_section(StateWriter *w, const char *name, uint32_t version)
{
    g_assert(w->section_len_at < 0);
    g_assert(version > 0);
    put_le(w, STATE_SECTION_TAG, 1);
    put_name(w, name);
    put_le(w, version, 4);
    w->section_len_at = w->buf->len;
    put_le(w, 0, 4);
}

void state_writer_end_section(StateWriter *w)
{
    g_assert(w->section_len_at >= 0);
    size_t body = w->buf->len - w->section_len_at - 4;
    g_assert(body <= UINT32_MAX);
    vireo_le_store(w->buf->data + w->section_len_at, 4, body);
    w->section_len_at = -1;
}

static void put_field(StateWriter *w, StateFieldType type, const char *field)
{
    g_assert(w->section_len_at >= 0);
    put_le(w, type, 1);
    put_name(w, field);
}

void state_write_u8(StateWriter *w, const char *field, uint8_t v)
{
    put_field(w, STATE_FIELD_U8, field);
    put_le(w, v, 1);
}

void state_write_u16(StateWriter *w, const char *field, uint16_t v)
{
    put_field(w, STATE_FIELD_U16, field);
    put_le(w, v, 2);
}

void state_write_u32(StateWriter *w, const char *field, uint32_t v)
{
    put_field(w, STATE_FIELD_U32, field);
    put_le(w, v, 4);
}

void state_write_u64(StateWriter *w, const char *field, uint64_t v)
{
    put_field(w, STATE_FIELD_U64, field);
    put_le(w, v, 8);
}

void state_write_bytes(StateWriter *w, const char *field, const void *buf, size_t len)
{
    g_assert(len <= UINT32_MAX);
    put_field(w, STATE_FIELD_BYTES, field);
    put_le(w, len, 4);
    g_byte_array_append(w->buf, buf, len);
}

const uint8_t *state_writer_data(const StateWriter *w, size_t *len)
{
    *len = w->buf->len;
    return w->buf->data;
}

GBytes *state_writer_steal_bytes(StateWriter *w)
{
    GBytes *b = g_byte_array_free_to_bytes(w->buf);
    w->buf = g_byte_array_new();
    return b;
}

StateReader *state_reader_new(const void *data, size_t len)
{
    StateReader *r = g_new0(StateReader, 1);
    r->data = data;
    r->len = len;
    return r;
}

void state_reader_free(StateReader *r)
{
    if (!r)
        return;
    g_free(r->section);
    g_free(r);
}

gboolean state_reader_at_end(const StateReader *r)
{
    return r->pos >= r->len;
}

static const char *where(const StateReader *r)
{
    return r->section ? r->section : "(stream)";
}

/* Bounded by the open section, or by the stream outside one. */
static size_t limit(const StateReader *r)
{
    return r->section_end ? r->section_end : r->len;
}

static gboolean get_le(StateReader *r, size_t len, uint64_t *v, GError **error)
{
    if (limit(r) - r->pos < len) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s' is truncated at offset %zu", where(r), r->pos);
        return FALSE;
    }
    *v = vireo_le_load(r->data + r->pos, len);
    r->pos += len;
    return TRUE;
}

/* Reads a length-prefixed name into @name (STATE_MAX_NAME + 1 bytes). */
static gboolean get_name(StateReader *r, char *name, GError **error)
{
    uint64_t n;

    if (!get_le(r, 1, &n, error))
        return FALSE;
    if (n == 0 || limit(r) - r->pos < n) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s' has a bad name at offset %zu", where(r), r->pos);
        return FALSE;
    }
    memcpy(name, r->data + r->pos, n);
    name[n] = '\0';
    r->pos += n;
    return TRUE;
}

char *state_reader_peek_section(const StateReader *r)
{
    StateReader copy = *r;
    char name[STATE_MAX_NAME + 1];
    uint64_t tag;

    copy.section = NULL;
    if (copy.section_end || !get_le(&copy, 1, &tag, NULL) || tag != STATE_SECTION_TAG ||
        !get_name(&copy, name, NULL))
        return NULL;
    return g_strdup(name);
}

static gboolean enter_section(StateReader *r, char *name, uint32_t *version, GError **error)
{
    uint64_t tag, ver, body;

    if (r->section_end) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s' is still open", where(r));
        return FALSE;
    }
    if (!get_le(r, 1, &tag, error))
        return FALSE;
    if (tag != STATE_SECTION_TAG) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "no state section at offset %zu", r->pos - 1);
        return FALSE;
    }
    if (!get_name(r, name, error) || !get_le(r, 4, &ver, error) || !get_le(r, 4, &body, error))
        return FALSE;
    if (r->len - r->pos < body) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s' claims %" G_GUINT64_FORMAT " bytes, %zu are left",
                    name, body, r->len - r->pos);
        return FALSE;
    }
    *version = ver;
    r->section_end = r->pos + body;
    return TRUE;
}

gboolean state_reader_begin_section(StateReader *r, const char *name, uint32_t max_version,
                                    uint32_t *version, GError **error)
{
    char found[STATE_MAX_NAME + 1];
    size_t start = r->pos;

    if (!enter_section(r, found, version, error)) {
        g_prefix_error(error, "expected state section '%s': ", name);
        return FALSE;
    }
    if (strcmp(found, name) != 0) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "expected state section '%s', found '%s'", name, found);
        goto fail;
    }
    if (*version == 0 || *version > max_version) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s' has version %u, this build reads 1 to %u",
                    name, *version, max_version);
        goto fail;
    }
    g_free(r->section);
    r->section = g_strdup(name);
    return TRUE;

fail:
    r->pos = start;
    r->section_end = 0;
    return FALSE;
}

gboolean state_reader_end_section(StateReader *r, GError **error)
{
    g_assert(r->section_end);
    if (r->pos != r->section_end) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s' has %zu bytes of fields this build does not know",
                    where(r), r->section_end - r->pos);
        return FALSE;
    }
    r->section_end = 0;
    g_clear_pointer(&r->section, g_free);
    return TRUE;
}

gboolean state_reader_skip_section(StateReader *r, GError **error)
{
    char name[STATE_MAX_NAME + 1];
    uint32_t version;

    if (!enter_section(r, name, &version, error))
        return FALSE;
    r->pos = r->section_end;
    r->section_end = 0;
    return TRUE;
}

static const char *type_name(uint64_t type)
{
    switch (type) {
    case STATE_FIELD_U8: return "u8";
    case STATE_FIELD_U16: return "u16";
    case STATE_FIELD_U32: return "u32";
    case STATE_FIELD_U64: return "u64";
    case STATE_FIELD_BYTES: return "bytes";
    default: return "unknown";
    }
}

static gboolean get_field_header(StateReader *r, const char *field, StateFieldType want,
                                 GError **error)
{
    char found[STATE_MAX_NAME + 1];
    uint64_t type;

    g_assert(r->section_end);
    if (!get_le(r, 1, &type, error) || !get_name(r, found, error)) {
        g_prefix_error(error, "reading field '%s': ", field);
        return FALSE;
    }
    if (strcmp(found, field) != 0 || type != want) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': expected field '%s' (%s), found '%s' (%s)",
                    where(r), field, type_name(want), found, type_name(type));
        return FALSE;
    }
    return TRUE;
}

static gboolean read_uint(StateReader *r, const char *field, StateFieldType type, size_t len,
                          uint64_t *v, GError **error)
{
    return get_field_header(r, field, type, error) && get_le(r, len, v, error);
}

gboolean state_read_u8(StateReader *r, const char *field, uint8_t *v, GError **error)
{
    uint64_t x;
    if (!read_uint(r, field, STATE_FIELD_U8, 1, &x, error))
        return FALSE;
    *v = x;
    return TRUE;
}

gboolean state_read_u16(StateReader *r, const char *field, uint16_t *v, GError **error)
{
    uint64_t x;
    if (!read_uint(r, field, STATE_FIELD_U16, 2, &x, error))
        return FALSE;
    *v = x;
    return TRUE;
}

gboolean state_read_u32(StateReader *r, const char *field, uint32_t *v, GError **error)
{
    uint64_t x;
    if (!read_uint(r, field, STATE_FIELD_U32, 4, &x, error))
        return FALSE;
    *v = x;
    return TRUE;
}

gboolean state_read_u64(StateReader *r, const char *field, uint64_t *v, GError **error)
{
    return read_uint(r, field, STATE_FIELD_U64, 8, v, error);
}

gboolean state_read_bytes_var(StateReader *r, const char *field, void *buf, size_t max,
                              size_t *len, GError **error)
{
    uint64_t n;

    if (!read_uint(r, field, STATE_FIELD_BYTES, 4, &n, error))
        return FALSE;
    if (n > max || limit(r) - r->pos < n) {
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': field '%s' has %" G_GUINT64_FORMAT
                    " bytes, at most %zu expected", where(r), field, n, max);
        return FALSE;
    }
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    *len = n;
    return TRUE;
}

gboolean state_read_bytes(StateReader *r, const char *field, void *buf, size_t len,
                          GError **error)
{
    size_t got;
    size_t start = r->pos;

    if (!state_read_bytes_var(r, field, buf, len, &got, error))
        return FALSE;
    if (got != len) {
        r->pos = start;
        g_set_error(error, VIREO_ERROR, VIREO_ERROR_INVALID_STATE,
                    "state section '%s': field '%s' has %zu bytes, %zu expected",
                    where(r), field, got, len);
        return FALSE;
    }
    return TRUE;
}
