/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Auto-converge: when the guest dirties RAM faster than the link drains
 * it, pre-copy never gets under the downtime limit. After two passes in a
 * row in which the pages dirtied outweigh the threshold share of what was
 * sent, slow the vCPUs down (throttle-initial), then by throttle-increment
 * for every further two such passes, up to max-cpu-throttle.
 */
#include "vireo/migration.h"

int mig_converge_step(MigConverge *c, const MigParams *p, uint64_t dirty_bytes,
                      uint64_t sent_bytes)
{
    uint64_t allowed = sent_bytes / 100 * (uint64_t)p->throttle_trigger_threshold +
                       sent_bytes % 100 * (uint64_t)p->throttle_trigger_threshold / 100;

    if (!p->auto_converge)
        return c->percent;
    if (dirty_bytes <= allowed) {
        c->high_passes = 0;
        return c->percent;
    }
    if (++c->high_passes < 2)
        return c->percent;
    c->high_passes = 0;
    if (c->percent == 0)
        c->percent = p->throttle_initial;
    else
        c->percent += p->throttle_increment;
    c->percent = MIN(c->percent, p->max_throttle);
    return c->percent;
}
