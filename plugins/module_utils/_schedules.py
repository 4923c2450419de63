# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Scheduled runs (``RepeatMode`` Period, NextRebootOnly, EveryReboot): found again, compared, replaced, stopped.

A schedule this collection creates carries two tags: ``KEY_TAG`` (which command, on which targets, how it
repeats: ``schedule_key``) and ``SPEC_TAG`` (every setting: ``schedule_hash``). The next run of the task lists
the live invocations with its key (``find_schedules``, ``Timed=true``: the API's default leaves scheduled
invocations out) and keeps them when the hash and the instances match.

``submit_schedule`` sends a replacement with ClientTokens derived from the key, the hash and the schedules it
replaces (never a per-run salt), so two runs of the same task at the same moment submit identical requests and
the service keeps one schedule. It checks that what came back is live: a token the service remembers from a
schedule stopped since would hand back that dead invocation; such batches are submitted again with a new token.
``replace_schedules`` stops the old schedules only after every batch of the replacement was accepted.
"""

from __future__ import annotations

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    invocations_of,
    invoke_instances,
    make_request,
    tags_of,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._claims import is_merged
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import (
    describe_invocation,
    describe_tagged,
    live_instances,
    stop_instances,
    stop_live,
    wait_for_invocations,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import TAG_PREFIX
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import RunResult
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import RUNNING, STOPPING
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import fingerprint

KEY_TAG = TAG_PREFIX + 'key'
SPEC_TAG = TAG_PREFIX + 'spec'
# Tags a scheduled run carries besides the user's.
RESERVED_TAGS = 3  # KEY_TAG, SPEC_TAG and the claim tag (_claims)
# How long stopped runs of a saved command may take to end before the command can be deleted.
SETTLE_SECONDS = 60


def schedule_key(identity, selector, repeat_mode):
    """The key of a schedule: ``identity`` (the command), ``selector`` (the targets), the repeat mode."""
    return fingerprint(identity, selector, repeat_mode)[:32]


def schedule_hash(*settings):
    return fingerprint(*settings)[:32]


def find_schedules(api, key):
    """Live invocations tagged with ``key`` (an instance Pending, Scheduled or Running), sorted by invoke ID."""
    found = describe_tagged(api, (KEY_TAG, key), timed=True)
    return [inv for iid, inv in sorted(found.items()) if tags_of(inv).get(KEY_TAG) == key and live_instances(inv)]


def matches(existing, spec_hash, targets):
    """True when ``existing`` schedules have this hash and cover exactly ``targets``, each once."""
    seen = [i.instance_id for inv in existing for i in invoke_instances(inv)]
    return (bool(existing) and all(tags_of(inv).get(SPEC_TAG) == spec_hash for inv in existing)
            and len(seen) == len(set(seen)) and set(seen) == set(targets))


class Merged(Exception):
    """Raised by ``submit_schedule`` when another run submitted the same schedule first (``live``: its invocations)."""

    def __init__(self, live):
        Exception.__init__(self, ', '.join(inv.invoke_id for inv in live))
        self.live = live


def _merged_batches(runner, run, key, spec_hash, replaces):
    """Batches the service refused because another run sent the same request first (``_claims.is_merged``): each
    gets that run's live invocation of the same instances. Returns the batches with none (a token remembered from
    an earlier request instead)."""
    merged = [b for b in run.batches if is_merged(b.error)]
    if not merged:
        return []
    live = dict((frozenset(i.instance_id for i in invoke_instances(inv)), inv) for inv in find_schedules(runner.api, key)
                if inv.invoke_id not in replaces and tags_of(inv).get(SPEC_TAG) == spec_hash)
    missing = []
    for batch in merged:
        inv = live.get(frozenset(batch.instance_ids))
        if inv is None:
            missing.append(batch)
        else:
            batch.invoke_id, batch.error = inv.invoke_id, None
    return missing


def submit_schedule(runner, spec, targets, key, spec_hash, replaces=(), salt=None, claim=None):
    """Submit ``spec`` (tagged with key and hash) on ``targets`` with deterministic ClientTokens; returns the
    ``RunResult``. ``replaces``: the invoke IDs of the schedules this one replaces (part of the tokens). ``claim``
    (``_claims``): when another run at the same moment submitted every batch first, raises ``Merged`` with its
    invocations; batches it submitted first are taken over into the result."""
    tagged = spec.with_tags({KEY_TAG: key, SPEC_TAG: spec_hash})
    stale = []
    for dummy in range(3):
        sender = runner.with_salt(fingerprint('schedule', key, spec_hash, sorted(replaces), salt, stale)).with_claim(claim)
        try:
            run = sender.run(tagged, targets, deadline=None, wait=False)
        except CloudAssistantError as exc:
            if not is_merged(exc):
                raise
            live = [inv for inv in find_schedules(runner.api, key) if inv.invoke_id not in replaces]
            if matches(live, spec_hash, targets):
                raise Merged(live)
            stale.append('mismatch')  # a token the service remembers from an earlier request
            continue
        if _merged_batches(runner, run, key, spec_hash, replaces):
            stale.append('mismatch')
            continue
        run = RunResult(run.batches, runner.entries(run.batches), command_id=run.command_id)
        # a remembered token hands back what it created then: a schedule stopped since is not live any more
        dead = [iid for iid in run.invoke_ids if iid in replaces
                or not live_instances(describe_invocation(runner.api, iid, timed=True))]
        if not dead:
            return run
        stale.extend(dead)
    raise CloudAssistantError('RunCommand/InvokeCommand kept returning scheduled runs that are no longer live (%s)'
                              % ', '.join(stale))


def replace_schedules(runner, spec, targets, key, spec_hash, existing, salt=None, claim=None):
    """Submit the replacement of the ``existing`` schedules, then stop them: ``(run, stopped)``.

    Nothing is stopped unless every batch of the replacement was accepted: when some were refused, the accepted
    ones are stopped again, so that no instance runs two schedules, and the old schedules stay. A failure after
    the replacement was accepted is kept in ``run.error`` (with the invoke IDs), not raised. Raises when every
    batch was refused (nothing changed)."""
    replaced = [inv.invoke_id for inv in existing]
    run = submit_schedule(runner, spec, targets, key, spec_hash, replaces=replaced, salt=salt, claim=claim)
    stopped = []
    try:
        if run.rejected:
            for batch in run.batches:
                if batch.invoke_id:
                    stop_instances(runner.api, batch.invoke_id, batch.instance_ids)
        else:
            for invocation in existing:
                stop_live(runner.api, invocation)
                stopped.append(invocation.invoke_id)
    except CloudAssistantError as exc:
        run.error = exc
    return run, stopped


def stop_schedules_of_command(runner, command_id, deadline, check_mode=False):
    """Before a saved command is deleted or re-created (the API refuses to delete a command with runs pending or
    ending): stop its scheduled runs that will run again, then wait until the runs that were executing, and any
    left Stopping before, have ended - at most SETTLE_SECONDS, and not past ``deadline``. Nothing is stopped in
    check mode. Returns the invoke IDs stopped (or to stop)."""
    api = runner.api
    stopped, unsettled = [], []
    for timed in (True, None):  # schedules that will run again; then runs that are ending (Stopping)
        request = make_request('DescribeInvocationsRequest', command_id=command_id, timed=timed)
        for invocation in api.paginate('DescribeInvocations', request, invocations_of):
            statuses = set(i.invocation_status for i in invoke_instances(invocation))
            if timed and (getattr(invocation, 'repeat_mode', None) or 'Once') != 'Once' \
                    and live_instances(invocation):
                if not check_mode:
                    stop_live(api, invocation)
                stopped.append(invocation.invoke_id)
            if statuses & set((RUNNING, STOPPING)) and invocation.invoke_id not in unsettled:
                unsettled.append(invocation.invoke_id)
    if unsettled and not check_mode:
        waited = wait_for_invocations(api, unsettled, min(deadline, runner.clock() + SETTLE_SECONDS),
                                      schedule=runner.schedule, clock=runner.clock, sleep=runner.sleep)
        if waited.error is not None:
            raise waited.error
        if waited.timed_out:
            raise CloudAssistantError('command %s: its stopped runs (%s) did not end in time, so it cannot be '
                                      'deleted yet' % (command_id, ', '.join(waited.unfinished)))
    return stopped
