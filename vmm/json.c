/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * JSON values, a strict RFC 8259 parser, QMP-style serializer and a stream
 * splitter (see json.h).
 *
 * Why not json-glib: it costs about 1.1 ms of startup and 200 KiB of
 * private memory in vireo-vmm, whose targets are a few ms and < 2 MiB, and
 * QMP needs only this much.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vireo/json.h"

/*
 * Objects look members up by scanning; from this many members on they
 * also keep a balanced tree, so hostile input with many keys stays
 * O(n log n) (a hash table could be flooded with colliding keys).
 */
#define JSON_OBJECT_INDEX_MIN 16

typedef struct JsonMember {
    char *key;
    JsonValue *value;
} JsonMember;

struct JsonValue {
    JsonType type;
    union {
        gboolean b;
        int64_t i;
        double d;
        char *s;
        GPtrArray *array;           /* JsonValue, owned */
        struct {
            GArray *members;        /* JsonMember, owned, insertion order */
            GTree *index;           /* key -> position + 1; NULL when small */
        } obj;
    } u;
};

G_DEFINE_QUARK(vireo-json-error-quark, json_error)

static const char *const json_type_names[] = {
    [JSON_NULL] = "null",
    [JSON_BOOL] = "boolean",
    [JSON_INT] = "integer",
    [JSON_DOUBLE] = "number",
    [JSON_STRING] = "string",
    [JSON_ARRAY] = "array",
    [JSON_OBJECT] = "object",
};

const char *json_type_name(JsonType type)
{
    g_assert((unsigned)type < G_N_ELEMENTS(json_type_names));
    return json_type_names[type];
}

/* --- values --- */

static JsonValue *value_new(JsonType type)
{
    JsonValue *v = g_new0(JsonValue, 1);

    v->type = type;
    return v;
}

JsonValue *json_new_null(void)
{
    return value_new(JSON_NULL);
}

JsonValue *json_new_bool(gboolean b)
{
    JsonValue *v = value_new(JSON_BOOL);

    v->u.b = !!b;
    return v;
}

JsonValue *json_new_int(int64_t i)
{
    JsonValue *v = value_new(JSON_INT);

    v->u.i = i;
    return v;
}

JsonValue *json_new_double(double d)
{
    JsonValue *v = value_new(JSON_DOUBLE);

    v->u.d = d;
    return v;
}

JsonValue *json_new_string_take(char *s)
{
    JsonValue *v = value_new(JSON_STRING);

    g_assert(s);
    v->u.s = s;
    return v;
}

JsonValue *json_new_string(const char *s)
{
    return json_new_string_take(g_strdup(s));
}

JsonValue *json_new_array(void)
{
    JsonValue *v = value_new(JSON_ARRAY);

    v->u.array = g_ptr_array_new_with_free_func((GDestroyNotify)json_free);
    return v;
}

static void member_clear(JsonMember *m)
{
    g_free(m->key);
    json_free(m->value);
}

JsonValue *json_new_object(void)
{
    JsonValue *v = value_new(JSON_OBJECT);

    v->u.obj.members = g_array_new(FALSE, FALSE, sizeof(JsonMember));
    g_array_set_clear_func(v->u.obj.members, (GDestroyNotify)member_clear);
    return v;
}

void json_free(JsonValue *v)
{
    if (!v)
        return;
    switch (v->type) {
    case JSON_STRING:
        g_free(v->u.s);
        break;
    case JSON_ARRAY:
        g_ptr_array_unref(v->u.array);
        break;
    case JSON_OBJECT:
        if (v->u.obj.index)
            g_tree_destroy(v->u.obj.index);
        g_array_unref(v->u.obj.members);
        break;
    default:
        break;
    }
    g_free(v);
}

JsonValue *json_copy(const JsonValue *v)
{
    JsonValue *c;

    switch (v->type) {
    case JSON_NULL:
        return json_new_null();
    case JSON_BOOL:
        return json_new_bool(v->u.b);
    case JSON_INT:
        return json_new_int(v->u.i);
    case JSON_DOUBLE:
        return json_new_double(v->u.d);
    case JSON_STRING:
        return json_new_string(v->u.s);
    case JSON_ARRAY:
        c = json_new_array();
        for (guint i = 0; i < v->u.array->len; i++)
            json_array_append(c, json_copy(g_ptr_array_index(v->u.array, i)));
        return c;
    case JSON_OBJECT:
        c = json_new_object();
        for (guint i = 0; i < v->u.obj.members->len; i++) {
            JsonMember *m = &g_array_index(v->u.obj.members, JsonMember, i);
            json_object_set(c, m->key, json_copy(m->value));
        }
        return c;
    }
    g_assert_not_reached();
}

JsonType json_get_type(const JsonValue *v)
{
    return v->type;
}

gboolean json_get_bool(const JsonValue *v)
{
    g_assert(v->type == JSON_BOOL);
    return v->u.b;
}

int64_t json_get_int(const JsonValue *v)
{
    g_assert(v->type == JSON_INT);
    return v->u.i;
}

double json_get_double(const JsonValue *v)
{
    g_assert(v->type == JSON_DOUBLE || v->type == JSON_INT);
    return v->type == JSON_INT ? (double)v->u.i : v->u.d;
}

const char *json_get_string(const JsonValue *v)
{
    g_assert(v->type == JSON_STRING);
    return v->u.s;
}

/* --- arrays --- */

void json_array_append(JsonValue *array, JsonValue *item)
{
    g_assert(array->type == JSON_ARRAY && item);
    g_ptr_array_add(array->u.array, item);
}

size_t json_array_get_length(const JsonValue *array)
{
    g_assert(array->type == JSON_ARRAY);
    return array->u.array->len;
}

JsonValue *json_array_get_item(const JsonValue *array, size_t index)
{
    g_assert(array->type == JSON_ARRAY && index < array->u.array->len);
    return g_ptr_array_index(array->u.array, index);
}

/* --- objects --- */

static int key_compare(gconstpointer a, gconstpointer b, gpointer unused)
{
    return strcmp(a, b);
}

static void object_reindex(JsonValue *obj)
{
    GArray *members = obj->u.obj.members;

    if (obj->u.obj.index) {
        g_tree_destroy(obj->u.obj.index);
        obj->u.obj.index = NULL;
    }
    if (members->len < JSON_OBJECT_INDEX_MIN)
        return;
    /* Keys are borrowed from the members, which outlive the index. */
    obj->u.obj.index = g_tree_new_full(key_compare, NULL, NULL, NULL);
    for (guint i = 0; i < members->len; i++) {
        JsonMember *m = &g_array_index(members, JsonMember, i);
        g_tree_insert(obj->u.obj.index, m->key, GUINT_TO_POINTER(i + 1));
    }
}

/* Position of @key, or -1. */
static gssize object_find(const JsonValue *obj, const char *key)
{
    GArray *members = obj->u.obj.members;

    g_assert(obj->type == JSON_OBJECT);
    if (obj->u.obj.index) {
        guint pos = GPOINTER_TO_UINT(g_tree_lookup(obj->u.obj.index, key));
        return (gssize)pos - 1;
    }
    for (guint i = 0; i < members->len; i++) {
        if (strcmp(g_array_index(members, JsonMember, i).key, key) == 0)
            return i;
    }
    return -1;
}

static void object_append(JsonValue *obj, char *key, JsonValue *value)
{
    JsonMember m = { .key = key, .value = value };
    GArray *members = obj->u.obj.members;

    g_array_append_val(members, m);
    if (obj->u.obj.index)
        g_tree_insert(obj->u.obj.index, key, GUINT_TO_POINTER(members->len));
    else if (members->len >= JSON_OBJECT_INDEX_MIN)
        object_reindex(obj);
}

void json_object_set(JsonValue *obj, const char *key, JsonValue *value)
{
    gssize pos = object_find(obj, key);

    g_assert(value);
    if (pos >= 0) {
        JsonMember *m = &g_array_index(obj->u.obj.members, JsonMember, pos);
        json_free(m->value);
        m->value = value;
        return;
    }
    object_append(obj, g_strdup(key), value);
}

void json_object_set_null(JsonValue *obj, const char *key)
{
    json_object_set(obj, key, json_new_null());
}

void json_object_set_bool(JsonValue *obj, const char *key, gboolean v)
{
    json_object_set(obj, key, json_new_bool(v));
}

void json_object_set_int(JsonValue *obj, const char *key, int64_t v)
{
    json_object_set(obj, key, json_new_int(v));
}

void json_object_set_double(JsonValue *obj, const char *key, double v)
{
    json_object_set(obj, key, json_new_double(v));
}

void json_object_set_string(JsonValue *obj, const char *key, const char *v)
{
    json_object_set(obj, key, json_new_string(v));
}

JsonValue *json_object_steal(JsonValue *obj, const char *key)
{
    gssize pos = object_find(obj, key);
    JsonMember *m;
    JsonValue *value;

    if (pos < 0)
        return NULL;
    m = &g_array_index(obj->u.obj.members, JsonMember, pos);
    value = m->value;
    m->value = NULL;
    /* The tree borrows the key being freed: drop it first. */
    if (obj->u.obj.index) {
        g_tree_destroy(obj->u.obj.index);
        obj->u.obj.index = NULL;
    }
    g_array_remove_index(obj->u.obj.members, pos);
    object_reindex(obj);
    return value;
}

gboolean json_object_remove(JsonValue *obj, const char *key)
{
    JsonValue *v = json_object_steal(obj, key);

    json_free(v);
    return v != NULL;
}

size_t json_object_get_size(const JsonValue *obj)
{
    g_assert(obj->type == JSON_OBJECT);
    return obj->u.obj.members->len;
}

const char *json_object_get_key(const JsonValue *obj, size_t index)
{
    g_assert(obj->type == JSON_OBJECT && index < obj->u.obj.members->len);
    return g_array_index(obj->u.obj.members, JsonMember, index).key;
}

JsonValue *json_object_get_value(const JsonValue *obj, size_t index)
{
    g_assert(obj->type == JSON_OBJECT && index < obj->u.obj.members->len);
    return g_array_index(obj->u.obj.members, JsonMember, index).value;
}

JsonValue *json_object_get(const JsonValue *obj, const char *key)
{
    gssize pos = object_find(obj, key);

    return pos < 0 ? NULL : g_array_index(obj->u.obj.members, JsonMember, pos).value;
}

gboolean json_object_has(const JsonValue *obj, const char *key)
{
    return object_find(obj, key) >= 0;
}

static JsonValue *object_get_typed(const JsonValue *obj, const char *key, JsonType type)
{
    JsonValue *v = json_object_get(obj, key);

    return v && v->type == type ? v : NULL;
}

const char *json_object_get_string(const JsonValue *obj, const char *key)
{
    JsonValue *v = object_get_typed(obj, key, JSON_STRING);

    return v ? v->u.s : NULL;
}

gboolean json_object_get_int(const JsonValue *obj, const char *key, int64_t *out)
{
    JsonValue *v = object_get_typed(obj, key, JSON_INT);

    if (v)
        *out = v->u.i;
    return v != NULL;
}

gboolean json_object_get_bool(const JsonValue *obj, const char *key, gboolean *out)
{
    JsonValue *v = object_get_typed(obj, key, JSON_BOOL);

    if (v)
        *out = v->u.b;
    return v != NULL;
}

gboolean json_object_get_double(const JsonValue *obj, const char *key, double *out)
{
    JsonValue *v = json_object_get(obj, key);

    if (!v || (v->type != JSON_DOUBLE && v->type != JSON_INT))
        return FALSE;
    *out = json_get_double(v);
    return TRUE;
}

JsonValue *json_object_get_object(const JsonValue *obj, const char *key)
{
    return object_get_typed(obj, key, JSON_OBJECT);
}

JsonValue *json_object_get_array(const JsonValue *obj, const char *key)
{
    return object_get_typed(obj, key, JSON_ARRAY);
}

gboolean json_equal(const JsonValue *a, const JsonValue *b)
{
    if (a->type != b->type)
        return FALSE;
    switch (a->type) {
    case JSON_NULL:
        return TRUE;
    case JSON_BOOL:
        return a->u.b == b->u.b;
    case JSON_INT:
        return a->u.i == b->u.i;
    case JSON_DOUBLE:
        return a->u.d == b->u.d;
    case JSON_STRING:
        return strcmp(a->u.s, b->u.s) == 0;
    case JSON_ARRAY:
        if (a->u.array->len != b->u.array->len)
            return FALSE;
        for (guint i = 0; i < a->u.array->len; i++) {
            if (!json_equal(g_ptr_array_index(a->u.array, i), g_ptr_array_index(b->u.array, i)))
                return FALSE;
        }
        return TRUE;
    case JSON_OBJECT:
        /* Member order carries no meaning in JSON. */
        if (a->u.obj.members->len != b->u.obj.members->len)
            return FALSE;
        for (guint i = 0; i < a->u.obj.members->len; i++) {
            JsonMember *m = &g_array_index(a->u.obj.members, JsonMember, i);
            JsonValue *other = json_object_get(b, m->key);
            if (!other || !json_equal(m->value, other))
                return FALSE;
        }
        return TRUE;
    }
    g_assert_not_reached();
}

/* --- UTF-8 --- */

/*
 * Length of the well-formed UTF-8 sequence at @p (of @len bytes), with its
 * code point in *@cp; 0 for anything RFC 3629 forbids: stray continuation
 * bytes, overlong forms, UTF-16 surrogates, code points past U+10FFFF and
 * truncated sequences.
 */
static size_t utf8_decode(const uint8_t *p, size_t len, uint32_t *cp)
{
    uint8_t c = p[0];
    size_t need;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) {
        return 0;               /* continuation byte, or C0/C1 (overlong) */
    } else if (c < 0xE0) {
        need = 1;
        min = 0x80;
        v = c & 0x1F;
    } else if (c < 0xF0) {
        need = 2;
        min = 0x800;
        v = c & 0x0F;
    } else if (c < 0xF5) {
        need = 3;
        min = 0x10000;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (len < need + 1)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return need + 1;
}

/* --- parser --- */

typedef struct Parser {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    unsigned depth;
    GError **error;
} Parser;

static void parse_fail(Parser *p, size_t at, JsonErrorCode code, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static void parse_fail(Parser *p, size_t at, JsonErrorCode code, const char *fmt, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(p->error, JSON_ERROR, code, "%s at byte %zu", what, at);
}

/* Names the byte at @at for an error message. */
static void fail_unexpected(Parser *p, const char *expected)
{
    if (p->pos >= p->len) {
        parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "unexpected end of input, expected %s",
                   expected);
    } else {
        uint8_t c = p->buf[p->pos];
        if (c > 0x20 && c < 0x7F)
            parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "unexpected '%c', expected %s", c,
                       expected);
        else
            parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "unexpected byte 0x%02X, expected %s", c,
                       expected);
    }
}

static void skip_ws(Parser *p)
{
    while (p->pos < p->len) {
        uint8_t c = p->buf[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p->pos (after "\u"); -1 on error. */
static int32_t parse_hex4(Parser *p)
{
    int32_t v = 0;

    if (p->len - p->pos < 4) {
        parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "truncated \\u escape");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->buf[p->pos + i]);
        if (d < 0) {
            parse_fail(p, p->pos + i, JSON_ERROR_SYNTAX, "invalid hex digit in \\u escape");
            return -1;
        }
        v = (v << 4) | d;
    }
    p->pos += 4;
    return v;
}

/* A \uXXXX escape (or a surrogate pair of them) starting at the backslash. */
static gboolean parse_unicode_escape(Parser *p, GString *out)
{
    size_t start = p->pos;
    int32_t cp, lo;

    p->pos += 2;
    cp = parse_hex4(p);
    if (cp < 0)
        return FALSE;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        parse_fail(p, start, JSON_ERROR_ENCODING, "lone low surrogate \\u%04X", (unsigned)cp);
        return FALSE;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->len - p->pos < 2 || p->buf[p->pos] != '\\' || p->buf[p->pos + 1] != 'u') {
            parse_fail(p, start, JSON_ERROR_ENCODING, "high surrogate \\u%04X not followed "
                       "by a low surrogate", (unsigned)cp);
            return FALSE;
        }
        p->pos += 2;
        lo = parse_hex4(p);
        if (lo < 0)
            return FALSE;
        if (lo < 0xDC00 || lo > 0xDFFF) {
            parse_fail(p, start, JSON_ERROR_ENCODING, "high surrogate \\u%04X not followed "
                       "by a low surrogate", (unsigned)cp);
            return FALSE;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) {
        /* Strings are C strings: a NUL would silently truncate them. */
        parse_fail(p, start, JSON_ERROR_ENCODING, "\\u0000 is not supported");
        return FALSE;
    }
    g_string_append_unichar(out, cp);
    return TRUE;
}

/* A string starting at the opening quote; returns it without quotes. */
static char *parse_string(Parser *p)
{
    g_autoptr(GString) out = g_string_new(NULL);

    g_assert(p->buf[p->pos] == '"');
    p->pos++;
    for (;;) {
        size_t start = p->pos;
        uint8_t c;

        /* Copy a run of plain ASCII at once. */
        while (p->pos < p->len) {
            c = p->buf[p->pos];
            if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80)
                break;
            p->pos++;
        }
        g_string_append_len(out, (const char *)p->buf + start, p->pos - start);
        if (p->pos >= p->len) {
            parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "unterminated string");
            return NULL;
        }
        c = p->buf[p->pos];
        if (c == '"') {
            p->pos++;
            return g_string_free(g_steal_pointer(&out), FALSE);
        }
        if (c < 0x20) {
            parse_fail(p, p->pos, JSON_ERROR_SYNTAX,
                       "control character 0x%02X in string (must be escaped)", c);
            return NULL;
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t n = utf8_decode(p->buf + p->pos, p->len - p->pos, &cp);
            if (!n) {
                parse_fail(p, p->pos, JSON_ERROR_ENCODING, "invalid UTF-8 in string");
                return NULL;
            }
            g_string_append_len(out, (const char *)p->buf + p->pos, n);
            p->pos += n;
            continue;
        }
        /* A backslash. */
        if (p->len - p->pos < 2) {
            parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "unterminated string");
            return NULL;
        }
        switch (p->buf[p->pos + 1]) {
        case '"':  g_string_append_c(out, '"');  break;
        case '\\': g_string_append_c(out, '\\'); break;
        case '/':  g_string_append_c(out, '/');  break;
        case 'b':  g_string_append_c(out, '\b'); break;
        case 'f':  g_string_append_c(out, '\f'); break;
        case 'n':  g_string_append_c(out, '\n'); break;
        case 'r':  g_string_append_c(out, '\r'); break;
        case 't':  g_string_append_c(out, '\t'); break;
        case 'u':
            if (!parse_unicode_escape(p, out))
                return NULL;
            continue;
        default:
            parse_fail(p, p->pos, JSON_ERROR_SYNTAX, "invalid escape sequence");
            return NULL;
        }
        p->pos += 2;
    }
}

static gboolean is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Digits at p->pos; FALSE if there is none. */
static gboolean skip_digits(Parser *p)
{
    size_t start = p->pos;

    while (p->pos < p->len && is_digit(p->buf[p->pos]))
        p->pos++;
    return p->pos > start;
}

/* number = [ minus ] int [ frac ] [ exp ]  (RFC 8259, section 6) */
static JsonValue *parse_number(Parser *p)
{
    size_t start = p->pos;
    gboolean integer = TRUE;
    g_autofree char *text = NULL;
    char *end;
    double d;

    if (p->buf[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && p->buf[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && is_digit(p->buf[p->pos])) {
            parse_fail(p, start, JSON_ERROR_SYNTAX, "number with a leading zero");
            return NULL;
        }
    } else if (!skip_digits(p)) {
        parse_fail(p, start, JSON_ERROR_SYNTAX, "invalid number");
        return NULL;
    }
    if (p->pos < p->len && p->buf[p->pos] == '.') {
        integer = FALSE;
        p->pos++;
        if (!skip_digits(p)) {
            parse_fail(p, start, JSON_ERROR_SYNTAX, "invalid number: no digit after '.'");
            return NULL;
        }
    }
    if (p->pos < p->len && (p->buf[p->pos] == 'e' || p->buf[p->pos] == 'E')) {
        integer = FALSE;
        p->pos++;
        if (p->pos < p->len && (p->buf[p->pos] == '+' || p->buf[p->pos] == '-'))
            p->pos++;
        if (!skip_digits(p)) {
            parse_fail(p, start, JSON_ERROR_SYNTAX, "invalid number: no digit in exponent");
            return NULL;
        }
    }
    text = g_strndup((const char *)p->buf + start, p->pos - start);
    if (integer) {
        int64_t i;

        errno = 0;
        i = g_ascii_strtoll(text, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_new_int(i);
        /* Beyond int64_t: keep it as a double, as QEMU does past uint64_t. */
    }
    errno = 0;
    d = g_ascii_strtod(text, &end);
    if (*end != '\0' || !isfinite(d)) {
        parse_fail(p, start, JSON_ERROR_RANGE, "number out of range");
        return NULL;
    }
    return json_new_double(d);
}

static gboolean match_literal(Parser *p, const char *word)
{
    size_t n = strlen(word);

    if (p->len - p->pos < n || memcmp(p->buf + p->pos, word, n) != 0)
        return FALSE;
    p->pos += n;
    return TRUE;
}

static JsonValue *parse_value(Parser *p);

static gboolean enter(Parser *p)
{
    if (++p->depth > JSON_MAX_DEPTH) {
        parse_fail(p, p->pos, JSON_ERROR_DEPTH, "nesting deeper than %d levels",
                   JSON_MAX_DEPTH);
        return FALSE;
    }
    return TRUE;
}

static JsonValue *parse_array(Parser *p)
{
    g_autoptr(JsonValue) array = json_new_array();

    if (!enter(p))
        return NULL;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->buf[p->pos] == ']') {
        p->pos++;
        p->depth--;
        return g_steal_pointer(&array);
    }
    for (;;) {
        JsonValue *item = parse_value(p);

        if (!item)
            return NULL;
        json_array_append(array, item);
        skip_ws(p);
        if (p->pos < p->len && p->buf[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->buf[p->pos] == ']') {
            p->pos++;
            p->depth--;
            return g_steal_pointer(&array);
        }
        fail_unexpected(p, "',' or ']'");
        return NULL;
    }
}

static JsonValue *parse_object(Parser *p)
{
    g_autoptr(JsonValue) obj = json_new_object();

    if (!enter(p))
        return NULL;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->buf[p->pos] == '}') {
        p->pos++;
        p->depth--;
        return g_steal_pointer(&obj);
    }
    for (;;) {
        g_autofree char *key = NULL;
        size_t key_pos;
        JsonValue *value;

        skip_ws(p);
        if (p->pos >= p->len || p->buf[p->pos] != '"') {
            fail_unexpected(p, "a string as object key");
            return NULL;
        }
        key_pos = p->pos;
        key = parse_string(p);
        if (!key)
            return NULL;
        if (json_object_has(obj, key)) {
            /* RFC 8259 leaves duplicates undefined; QEMU refuses them too. */
            parse_fail(p, key_pos, JSON_ERROR_SYNTAX, "duplicate key");
            return NULL;
        }
        skip_ws(p);
        if (p->pos >= p->len || p->buf[p->pos] != ':') {
            fail_unexpected(p, "':' after object key");
            return NULL;
        }
        p->pos++;
        value = parse_value(p);
        if (!value)
            return NULL;
        object_append(obj, g_steal_pointer(&key), value);
        skip_ws(p);
        if (p->pos < p->len && p->buf[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->buf[p->pos] == '}') {
            p->pos++;
            p->depth--;
            return g_steal_pointer(&obj);
        }
        fail_unexpected(p, "',' or '}'");
        return NULL;
    }
}

static JsonValue *parse_value(Parser *p)
{
    char *s;

    skip_ws(p);
    if (p->pos >= p->len) {
        fail_unexpected(p, "a value");
        return NULL;
    }
    switch (p->buf[p->pos]) {
    case '{':
        return parse_object(p);
    case '[':
        return parse_array(p);
    case '"':
        s = parse_string(p);
        return s ? json_new_string_take(s) : NULL;
    case '-':
    case '0' ... '9':
        return parse_number(p);
    case 't':
        if (match_literal(p, "true"))
            return json_new_bool(TRUE);
        break;
    case 'f':
        if (match_literal(p, "false"))
            return json_new_bool(FALSE);
        break;
    case 'n':
        if (match_literal(p, "null"))
            return json_new_null();
        break;
    default:
        break;
    }
    fail_unexpected(p, "a value");
    return NULL;
}

JsonValue *json_parse(const char *buf, size_t len, GError **error)
{
    Parser p = { .buf = (const uint8_t *)buf, .len = len, .error = error };
    g_autoptr(JsonValue) v = NULL;

    if (len > JSON_MAX_PARSE_SIZE) {
        g_set_error(error, JSON_ERROR, JSON_ERROR_TOO_BIG,
                    "input of %zu bytes exceeds the limit of %d", len, JSON_MAX_PARSE_SIZE);
        return NULL;
    }
    v = parse_value(&p);
    if (!v)
        return NULL;
    skip_ws(&p);
    if (p.pos < p.len) {
        fail_unexpected(&p, "the end of input");
        return NULL;
    }
    return g_steal_pointer(&v);
}

/* --- serializer --- */

static void append_string(GString *out, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s);

    g_string_append_c(out, '"');
    while (len) {
        uint32_t cp;
        size_t n = utf8_decode(p, len, &cp);

        if (!n) {
            cp = 0xFFFD;        /* not UTF-8 (a builder was given raw bytes) */
            n = 1;
        }
        p += n;
        len -= n;
        switch (cp) {
        case '"':  g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (cp >= 0x10000) {
                cp -= 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X", 0xD800 | (cp >> 10),
                                       0xDC00 | (cp & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(out, "\\u%04X", cp);
            } else {
                g_string_append_c(out, cp);
            }
        }
    }
    g_string_append_c(out, '"');
}

/*
 * The shortest text that reads back as the same double, positional for
 * decimal exponents in [-4, 16) as Python writes them, and always with a
 * '.' or an exponent, so that it reads back as a double and not an integer.
 */
static void append_double(GString *out, double d)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];
    char fmt[16];
    const char *e;
    int prec, exp10;

    if (!isfinite(d)) {
        g_string_append(out, "null");
        return;
    }
    /* 17 significant digits always read back exactly. */
    for (prec = 1; prec < 17; prec++) {
        g_snprintf(fmt, sizeof(fmt), "%%.%de", prec - 1);
        g_ascii_formatd(buf, sizeof(buf), fmt, d);
        if (g_ascii_strtod(buf, NULL) == d)
            break;
    }
    g_snprintf(fmt, sizeof(fmt), "%%.%de", prec - 1);
    g_ascii_formatd(buf, sizeof(buf), fmt, d);
    e = strchr(buf, 'e');
    exp10 = e ? atoi(e + 1) : 0;
    if (exp10 >= -4 && exp10 < 16) {
        g_snprintf(fmt, sizeof(fmt), "%%.%df", MAX(prec - 1 - exp10, 0));
        g_ascii_formatd(buf, sizeof(buf), fmt, d);
    } else {
        g_snprintf(fmt, sizeof(fmt), "%%.%dg", prec);
        g_ascii_formatd(buf, sizeof(buf), fmt, d);
    }
    g_string_append(out, buf);
    if (!strpbrk(buf, ".e"))
        g_string_append(out, ".0");
}

void json_append_to(GString *out, const JsonValue *v)
{
    switch (v->type) {
    case JSON_NULL:
        g_string_append(out, "null");
        break;
    case JSON_BOOL:
        g_string_append(out, v->u.b ? "true" : "false");
        break;
    case JSON_INT:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, (gint64)v->u.i);
        break;
    case JSON_DOUBLE:
        append_double(out, v->u.d);
        break;
    case JSON_STRING:
        append_string(out, v->u.s);
        break;
    case JSON_ARRAY:
        g_string_append_c(out, '[');
        for (guint i = 0; i < v->u.array->len; i++) {
            if (i)
                g_string_append(out, ", ");
            json_append_to(out, g_ptr_array_index(v->u.array, i));
        }
        g_string_append_c(out, ']');
        break;
    case JSON_OBJECT:
        g_string_append_c(out, '{');
        for (guint i = 0; i < v->u.obj.members->len; i++) {
            JsonMember *m = &g_array_index(v->u.obj.members, JsonMember, i);
            if (i)
                g_string_append(out, ", ");
            append_string(out, m->key);
            g_string_append(out, ": ");
            json_append_to(out, m->value);
        }
        g_string_append_c(out, '}');
        break;
    }
}

char *json_to_string(const JsonValue *v)
{
    GString *out = g_string_new(NULL);

    json_append_to(out, v);
    return g_string_free(out, FALSE);
}

/* --- streamer --- */

typedef enum {
    SCAN_IDLE,                  /* between values */
    SCAN_CONTAINER,             /* inside { } or [ ] */
    SCAN_STRING,                /* a string at top level */
    SCAN_SCALAR,                /* number, literal or garbage at top level */
} ScanState;

struct JsonStreamer {
    size_t max_size;
    GString *cur;               /* the message being collected */
    GQueue done;                /* GString: complete messages */
    ScanState state;
    unsigned depth;
    gboolean in_string;         /* SCAN_CONTAINER: inside a string */
    gboolean escape;            /* the previous byte was a backslash in a string */
    gboolean failed;
};

JsonStreamer *json_streamer_new(size_t max_size)
{
    JsonStreamer *js = g_new0(JsonStreamer, 1);

    js->max_size = max_size;
    js->cur = g_string_new(NULL);
    g_queue_init(&js->done);
    return js;
}

static void free_gstring(gpointer s)
{
    g_string_free(s, TRUE);
}

void json_streamer_free(JsonStreamer *js)
{
    if (!js)
        return;
    g_string_free(js->cur, TRUE);
    g_queue_clear_full(&js->done, free_gstring);
    g_free(js);
}

static gboolean is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void streamer_complete(JsonStreamer *js)
{
    g_queue_push_tail(&js->done, js->cur);
    js->cur = g_string_new(NULL);
    js->state = SCAN_IDLE;
    js->depth = 0;
    js->in_string = js->escape = FALSE;
}

/* A string's closing quote, honouring backslash escapes; TRUE at the quote. */
static gboolean string_byte(JsonStreamer *js, uint8_t c)
{
    if (js->escape)
        js->escape = FALSE;
    else if (c == '\\')
        js->escape = TRUE;
    else if (c == '"')
        return TRUE;
    return FALSE;
}

gboolean json_streamer_feed(JsonStreamer *js, const void *buf, size_t len, GError **error)
{
    const uint8_t *p = buf;

    if (js->failed) {
        g_set_error(error, JSON_ERROR, JSON_ERROR_SYNTAX, "JSON stream already failed");
        return FALSE;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];

        switch (js->state) {
        case SCAN_IDLE:
            if (is_ws(c))
                continue;
            g_string_append_c(js->cur, c);
            if (c == '{' || c == '[') {
                js->state = SCAN_CONTAINER;
                js->depth = 1;
            } else if (c == '"') {
                js->state = SCAN_STRING;
            } else if (c == '}' || c == ']' || c == ',' || c == ':') {
                /* Cannot start a value: hand it over for the parser to reject. */
                streamer_complete(js);
            } else {
                js->state = SCAN_SCALAR;
            }
            break;
        case SCAN_SCALAR:
            /* c != 0: strchr() would match the terminating NUL. */
            if (is_ws(c) || (c && strchr("{}[]\",:", c))) {
                streamer_complete(js);
                i--;            /* the delimiter starts what follows */
                continue;
            }
            g_string_append_c(js->cur, c);
            break;
        case SCAN_STRING:
            g_string_append_c(js->cur, c);
            if (string_byte(js, c))
                streamer_complete(js);
            break;
        case SCAN_CONTAINER:
            g_string_append_c(js->cur, c);
            if (js->in_string) {
                if (string_byte(js, c))
                    js->in_string = FALSE;
            } else if (c == '"') {
                js->in_string = TRUE;
            } else if (c == '{' || c == '[') {
                if (++js->depth > JSON_MAX_DEPTH) {
                    js->failed = TRUE;
                    g_set_error(error, JSON_ERROR, JSON_ERROR_DEPTH,
                                "JSON nesting deeper than %d levels", JSON_MAX_DEPTH);
                    return FALSE;
                }
            } else if (c == '}' || c == ']') {
                if (--js->depth == 0)
                    streamer_complete(js);
            }
            break;
        }
        if (js->cur->len > js->max_size) {
            js->failed = TRUE;
            g_set_error(error, JSON_ERROR, JSON_ERROR_TOO_BIG,
                        "JSON message longer than %zu bytes", js->max_size);
            return FALSE;
        }
    }
    return TRUE;
}

char *json_streamer_pop(JsonStreamer *js, size_t *len)
{
    GString *s = g_queue_pop_head(&js->done);

    if (!s)
        return NULL;
    if (len)
        *len = s->len;
    return g_string_free(s, FALSE);
}

gboolean json_streamer_failed(const JsonStreamer *js)
{
    return js->failed;
}
