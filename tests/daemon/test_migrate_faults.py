#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration between two vireods under faults, and many hops in a row.

The hosts, domains and guest checks of test_migrate.py (two network
namespaces, a vireod each, the migrate-dirty guest checking its RAM):

  back-and-forth  one domain migrated A -> B -> A ... ten times, the guest
                  checked after every hop
  kill-source-vmm the source vireo-vmm killed (-9) mid-migration: the
                  domain is gone on A (crashed), nothing is left on B
  kill-source-vireod  the source vireod killed (-9) mid-migration: once it
                  is back, the domain runs on A and only there, with its
                  guest intact; the destination cleaned up by itself

    test_migrate_faults.py --vireod V --vmm M --vireo C --guest migrate-dirty.elf

Exit status: 0 pass, 1 fail, 77 skipped (not root, no netns, no /dev/kvm).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_vireod import check, wait_for  # noqa: E402
from test_migrate import log, migrate_async, run_suite, wait_transferring  # noqa: E402


def t_back_and_forth(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'bf', mem=32, dirty=64)
    here, there = A, B
    t0 = time.monotonic()
    for hop in range(10):
        here.vireo('migrate', '--live', 'bf', there.tcp_uri)
        check(there.state('bf') == 'running (migrated)',
              'hop %d: %s: bf is %r' % (hop + 1, there.tag, there.state('bf')))
        ctx.one_vmm('bf', there)
        ctx.check_guest('bf', there)
        here, there = there, here
    log('10 hops A <-> B with the guest checked after each: %.1f s' % (time.monotonic() - t0))
    check(A.state('bf') == 'running (migrated)', 'A: bf is %r' % A.state('bf'))
    check(B.state('bf') is None, 'B: transient bf left: %r' % B.state('bf'))
    A.virsh('destroy', 'bf')
    A.virsh('undefine', 'bf')


def t_kill_source_vmm(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'ks', mem=128, dirty=256)
    th, box = migrate_async(A, 'migrate', '--live', '--bandwidth', '8', 'ks', B.tcp_uri)
    wait_transferring(A, 'ks')
    for pid in A.vmm_pids():
        os.kill(pid, signal.SIGKILL)
    th.join(120)
    check(box['p'].returncode != 0, 'migrate succeeded: %s' % box['p'].stdout)
    log('source vireo-vmm killed: migrate said: ' + box['p'].stderr.strip().replace('\n', ' | '))
    wait_for(lambda: (A.state('ks') or '').startswith('shut off'), 15, 'ks shut off on A')
    log('A: ks is %s' % A.state('ks'))
    wait_for(lambda: not B.vmm_pids(), 15, 'no vireo-vmm left on B')
    # The domain goes a moment after its vireo-vmm.
    wait_for(lambda: B.state('ks') is None, 15, 'ks gone from B')
    A.virsh('undefine', 'ks')


def t_kill_source_vireod(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'kd', mem=128, dirty=256)
    th, box = migrate_async(A, 'migrate', '--live', '--bandwidth', '8', 'kd', B.tcp_uri)
    wait_transferring(A, 'kd')
    A.stop(signal.SIGKILL)
    th.join(120)
    check(box['p'].returncode != 0, 'migrate succeeded: %s' % box['p'].stdout)
    # Without the source daemon nobody finishes the migration: the destination gives up.
    wait_for(lambda: not B.vmm_pids(), 60, 'the incoming vireo-vmm on B gone')
    wait_for(lambda: B.state('kd') is None, 15, 'kd gone from B')
    A.start()
    wait_for(lambda: A.state('kd') == 'running (booted)' or
             (A.state('kd') or '').startswith('running'), 30, 'kd running on A again')
    log('source vireod killed mid-migration: after its restart kd is %s on A' % A.state('kd'))
    check(len(A.vmm_pids()) == 1, 'vireo-vmm on A: %s' % A.vmm_pids())
    ctx.check_guest('kd', A)
    # And it migrates again.
    A.vireo('migrate', '--live', 'kd', B.tcp_uri)
    ctx.one_vmm('kd', B)
    ctx.check_guest('kd', B)
    B.virsh('destroy', 'kd')
    A.virsh('undefine', 'kd')


TESTS = [t_back_and_forth, t_kill_source_vmm, t_kill_source_vireod]


if __name__ == '__main__':
    sys.exit(run_suite(TESTS))
