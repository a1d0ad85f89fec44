/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bounded write-back caches of L2 tables and refcount blocks, one table
 * (one cluster) per entry, least-recently-used eviction. Tables stay in
 * disk byte order so that writing one back is a plain copy.
 *
 * Write-back order is where crash safety comes from (docs/storage.md):
 * before any L2 table reaches the disk, every dirty refcount block is
 * written and the file is synced, so that (1) no L2 entry on disk points
 * at a cluster whose refcount on disk is still 0, and (2) guest data
 * written to newly allocated clusters (which completes before the L2 entry
 * changes in the cache) is durable before the entry that makes it visible.
 */
#include <string.h>

#include "qcow2-internal.h"
#include "vireo/util.h"

typedef struct CacheEntry {
    uint64_t offset;         /* 0 = free slot */
    uint64_t *table;
    uint64_t lru;
    int pinned;
    gboolean dirty;
} CacheEntry;

struct Qcow2Cache {
    Qcow2State *q;
    gboolean is_l2;
    unsigned n;
    CacheEntry *entries;
    GHashTable *index;       /* offset -> entry index + 1 */
    uint64_t lru_clock;
};

Qcow2Cache *qcow2_cache_new(Qcow2State *q, unsigned entries, gboolean is_l2)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);

    c->q = q;
    c->is_l2 = is_l2;
    c->n = MAX(entries, 4u);
    c->entries = g_new0(CacheEntry, c->n);
    c->index = g_hash_table_new(g_int64_hash, g_int64_equal);
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->n; i++)
        block_file_buf_free(c->entries[i].table);
    g_hash_table_destroy(c->index);
    g_free(c->entries);
    g_free(c);
}

static CacheEntry *find(Qcow2Cache *c, uint64_t offset)
{
    gpointer v = g_hash_table_lookup(c->index, &offset);

    return v ? &c->entries[GPOINTER_TO_UINT(v) - 1] : NULL;
}

static CacheEntry *entry_of(Qcow2Cache *c, uint64_t *table)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->entries[i].table == table)
            return &c->entries[i];
    g_assert_not_reached();
}

static int write_entry(Qcow2Cache *c, CacheEntry *e)
{
    Qcow2State *q = c->q;
    int ret;

    if (!e->dirty)
        return 0;
    if (c->is_l2) {
        /* See the comment at the top: refcounts, then a sync, then L2. */
        if (!q->lazy) {
            ret = qcow2_cache_flush(q->rc_cache);
            if (ret < 0)
                return ret;
        }
        ret = block_file_sync(q->file);
        if (ret < 0)
            return ret;
    }
    ret = block_file_pwrite(q->file, e->table, q->cluster_size, e->offset);
    if (ret < 0)
        return ret;
    e->dirty = FALSE;
    return 0;
}

int qcow2_cache_flush(Qcow2Cache *c)
{
    Qcow2State *q = c->q;
    gboolean any = FALSE;
    int ret;

    for (unsigned i = 0; i < c->n; i++)
        any |= c->entries[i].dirty;
    if (!any)
        return 0;
    if (c->is_l2) {
        /* One sync for the whole batch rather than one per table. */
        if (!q->lazy) {
            ret = qcow2_cache_flush(q->rc_cache);
            if (ret < 0)
                return ret;
        }
        ret = block_file_sync(q->file);
        if (ret < 0)
            return ret;
    }
    for (unsigned i = 0; i < c->n; i++) {
        CacheEntry *e = &c->entries[i];
        if (!e->dirty)
            continue;
        ret = block_file_pwrite(q->file, e->table, q->cluster_size, e->offset);
        if (ret < 0)
            return ret;
        e->dirty = FALSE;
    }
    return 0;
}

gboolean qcow2_cache_is_dirty(Qcow2Cache *c)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->entries[i].dirty)
            return TRUE;
    return FALSE;
}

static int get_slot(Qcow2Cache *c, CacheEntry **out)
{
    CacheEntry *victim = NULL;
    int ret;

    for (unsigned i = 0; i < c->n; i++) {
        CacheEntry *e = &c->entries[i];
        if (e->offset == 0) {
            victim = e;
            break;
        }
        if (e->pinned)
            continue;
        if (!victim || e->lru < victim->lru)
            victim = e;
    }
    /* Every entry pinned would be a bug: no path pins more than a few. */
    g_assert(victim);
    if (victim->offset) {
        ret = write_entry(c, victim);
        if (ret < 0)
            return ret;
        g_hash_table_remove(c->index, &victim->offset);
        victim->offset = 0;
    }
    if (!victim->table)
        victim->table = block_file_buf_alloc(c->q->cluster_size);
    *out = victim;
    return 0;
}

static void insert(Qcow2Cache *c, CacheEntry *e, uint64_t offset)
{
    e->offset = offset;
    e->pinned = 1;
    e->dirty = FALSE;
    e->lru = ++c->lru_clock;
    g_hash_table_insert(c->index, &e->offset, GUINT_TO_POINTER((guint)(e - c->entries) + 1));
}

int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, uint64_t **table)
{
    CacheEntry *e = find(c, offset);
    int ret;

    g_assert(offset != 0);
    if (e) {
        e->pinned++;
        e->lru = ++c->lru_clock;
        *table = e->table;
        return 0;
    }
    ret = get_slot(c, &e);
    if (ret < 0)
        return ret;
    ret = block_file_pread(c->q->file, e->table, c->q->cluster_size, offset);
    if (ret < 0)
        return ret;
    insert(c, e, offset);
    *table = e->table;
    return 0;
}

int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, uint64_t **table)
{
    CacheEntry *e = find(c, offset);
    int ret;

    if (!e) {
        ret = get_slot(c, &e);
        if (ret < 0)
            return ret;
        insert(c, e, offset);
    } else {
        e->pinned++;
    }
    memset(e->table, 0, c->q->cluster_size);
    e->dirty = TRUE;
    *table = e->table;
    return 0;
}

void qcow2_cache_put(Qcow2Cache *c, uint64_t *table)
{
    CacheEntry *e = entry_of(c, table);

    g_assert(e->pinned > 0);
    e->pinned--;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, uint64_t *table)
{
    entry_of(c, table)->dirty = TRUE;
}

uint64_t *qcow2_cache_lookup(Qcow2Cache *c, uint64_t offset)
{
    CacheEntry *e = find(c, offset);

    if (!e)
        return NULL;
    e->lru = ++c->lru_clock;
    return e->table;
}

void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset)
{
    CacheEntry *e = find(c, offset);

    if (!e)
        return;
    g_assert(e->pinned == 0);
    g_hash_table_remove(c->index, &e->offset);
    e->offset = 0;
    e->dirty = FALSE;
}

void qcow2_cache_clear(Qcow2Cache *c)
{
    g_hash_table_remove_all(c->index);
    for (unsigned i = 0; i < c->n; i++) {
        g_assert(c->entries[i].pinned == 0);
        c->entries[i].offset = 0;
        c->entries[i].dirty = FALSE;
    }
}
