/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small JSON library for QMP: a value tree, a strict RFC 8259 parser, a
 * compact serializer in QEMU's QMP output style, and a splitter that finds
 * complete top-level values in a socket byte stream.
 *
 * We do not use json-glib: it costs about 1.1 ms of startup and 200 KiB of
 * private memory in vireo-vmm, whose targets are a few ms and < 2 MiB.
 *
 * Everything parsed may come from a hostile peer, so the parser and the
 * streamer bound nesting (JSON_MAX_DEPTH: recursion never goes deeper) and
 * size (JSON_MAX_PARSE_SIZE, the streamer's max_size), and never trust a
 * length they have not checked. Strings are NUL-terminated valid UTF-8
 * without U+0000 once parsed; "\u0000" is refused, as QEMU does.
 *
 * Values are single-owner trees: a container owns its members; the
 * builders take ownership of what they are given.
 */
#ifndef VIREO_JSON_H
#define VIREO_JSON_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays and objects the parser and streamer accept. */
#define JSON_MAX_DEPTH 128
/* Largest buffer json_parse() accepts. */
#define JSON_MAX_PARSE_SIZE (16 * 1024 * 1024)

#define JSON_ERROR json_error_quark()
GQuark json_error_quark(void);

typedef enum {
    JSON_ERROR_SYNTAX,          /* not RFC 8259 JSON */
    JSON_ERROR_ENCODING,        /* invalid UTF-8, lone surrogate, \u0000 */
    JSON_ERROR_RANGE,           /* number that is not a finite double */
    JSON_ERROR_DEPTH,           /* nested deeper than JSON_MAX_DEPTH */
    JSON_ERROR_TOO_BIG,         /* input or message over the size limit */
} JsonErrorCode;

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_INT,                   /* integer literal that fits int64_t */
    JSON_DOUBLE,                /* fraction, exponent or beyond int64_t */
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,                /* members keep their insertion order */
} JsonType;

typedef struct JsonValue JsonValue;

/* Constructors: each returns a new value the caller owns. */
JsonValue *json_new_null(void);
JsonValue *json_new_bool(gboolean v);
JsonValue *json_new_int(int64_t v);
JsonValue *json_new_double(double v);
/* Any bytes: invalid UTF-8 is written out as U+FFFD by the serializer. */
JsonValue *json_new_string(const char *s);
JsonValue *json_new_string_take(char *s);
JsonValue *json_new_array(void);
JsonValue *json_new_object(void);
JsonValue *json_copy(const JsonValue *v);
void json_free(JsonValue *v);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JsonValue, json_free)

gboolean json_equal(const JsonValue *a, const JsonValue *b);

/* Typed getters; calling one on a value of another type is a bug (asserted). */
JsonType json_get_type(const JsonValue *v);
const char *json_type_name(JsonType type);
gboolean json_get_bool(const JsonValue *v);
int64_t json_get_int(const JsonValue *v);
/* JSON_DOUBLE, or a JSON_INT converted. */
double json_get_double(const JsonValue *v);
const char *json_get_string(const JsonValue *v);

/* Arrays. json_array_append() takes ownership of @item. */
void json_array_append(JsonValue *array, JsonValue *item);
size_t json_array_get_length(const JsonValue *array);
JsonValue *json_array_get_item(const JsonValue *array, size_t index);

/*
 * Objects. json_object_set() takes ownership of @value; a member with the
 * same key is replaced where it stands, so the order stays stable.
 */
void json_object_set(JsonValue *obj, const char *key, JsonValue *value);
void json_object_set_null(JsonValue *obj, const char *key);
void json_object_set_bool(JsonValue *obj, const char *key, gboolean v);
void json_object_set_int(JsonValue *obj, const char *key, int64_t v);
void json_object_set_double(JsonValue *obj, const char *key, double v);
void json_object_set_string(JsonValue *obj, const char *key, const char *v);
/* Removes @key and hands its value to the caller (NULL: absent). */
JsonValue *json_object_steal(JsonValue *obj, const char *key);
gboolean json_object_remove(JsonValue *obj, const char *key);

size_t json_object_get_size(const JsonValue *obj);
/* Members in insertion order, for 0 <= @index < size. */
const char *json_object_get_key(const JsonValue *obj, size_t index);
JsonValue *json_object_get_value(const JsonValue *obj, size_t index);
/* Lookups return NULL/FALSE when @key is absent or has another type. */
JsonValue *json_object_get(const JsonValue *obj, const char *key);
gboolean json_object_has(const JsonValue *obj, const char *key);
const char *json_object_get_string(const JsonValue *obj, const char *key);
gboolean json_object_get_int(const JsonValue *obj, const char *key, int64_t *out);
gboolean json_object_get_bool(const JsonValue *obj, const char *key, gboolean *out);
/* Accepts JSON_INT too. */
gboolean json_object_get_double(const JsonValue *obj, const char *key, double *out);
JsonValue *json_object_get_object(const JsonValue *obj, const char *key);
JsonValue *json_object_get_array(const JsonValue *obj, const char *key);

/*
 * Parses exactly one value (whitespace around it allowed) from @len bytes
 * of @buf, which need not be NUL-terminated. Errors say what was wrong and
 * at which byte offset.
 */
JsonValue *json_parse(const char *buf, size_t len, GError **error);

/*
 * Compact serializer in QEMU's QMP style: ", " between members, ": " after
 * keys, no newlines. Output is ASCII: control characters, DEL and every
 * non-ASCII character are \uXXXX escapes (surrogate pairs above U+FFFF), as
 * QEMU writes them. Non-finite doubles, which JSON cannot express, become
 * null.
 */
char *json_to_string(const JsonValue *v);
void json_append_to(GString *out, const JsonValue *v);

/*
 * Splits a byte stream (a socket) into complete top-level JSON values, the
 * way QEMU's json-streamer does, without parsing them: it tracks strings,
 * escapes and bracket depth, so values may arrive in any chunks. A scalar
 * at top level ends at the first delimiter after it. Whitespace between
 * values is dropped. Messages over @max_size bytes or nested deeper than
 * JSON_MAX_DEPTH are errors, after which the streamer stays failed (the
 * peer should be dropped: there is no way to resynchronise reliably).
 */
typedef struct JsonStreamer JsonStreamer;

JsonStreamer *json_streamer_new(size_t max_size);
void json_streamer_free(JsonStreamer *js);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JsonStreamer, json_streamer_free)

/*
 * Scans @len more bytes. Returns FALSE once a limit is exceeded; complete
 * messages found before that are still returned by json_streamer_pop().
 * Memory use stays below @max_size plus the complete messages not popped
 * yet.
 */
gboolean json_streamer_feed(JsonStreamer *js, const void *buf, size_t len, GError **error);
/*
 * Next complete message (NUL-terminated, owned by the caller; its length
 * in *@len), or NULL when there is none.
 */
char *json_streamer_pop(JsonStreamer *js, size_t *len);
/* TRUE when a limit was exceeded; the error was returned by feed(). */
gboolean json_streamer_failed(const JsonStreamer *js);

#endif
