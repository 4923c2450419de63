# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The run engine: send one command to any number of instances and read the results back as one run.

::

    runner = CommandRunner(api)
    run = runner.run(CommandSpec(content='uptime'), targets, deadline)
    result.update(run_fields(run.instances, run.invoke_ids))

- ``CommandSpec``: what to run (inline ``content`` with RunCommand, or a saved ``command_id`` with InvokeCommand)
  and how; ``request()`` builds the SDK request of one batch.
- ``CommandRunner.run``: batches of 100 (``_batching``), all sent concurrently, each with a ClientToken derived
  from the batch, the spec and the runner's ``token_salt`` (``_tokens``), so a retried call never runs twice;
  then ``_invocations.wait_for_invocations`` and one output fetch. The batches of one run share the tag
  ``RUN_TAG``, so that one DescribeInvocations per poll covers them all.
- ``RunResult``: the batches, one entry per target (``_results.instance_entry``), and how the wait ended
  (``timed_out``, ``stopped``, ``error``). Once the API has accepted a batch, failures of the wait or of the output
  fetch do not raise: they end up in ``error`` with the last known statuses, so the caller keeps the IDs.
"""

from __future__ import annotations

import base64
import copy
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    DEFAULT_MAX_PAGE_SIZE,
    MAX_PAGE_SIZE,
    invoke_instances,
    make_request,
    request_tags,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import (
    BATCH_LIMITS,
    chunks,
    run_concurrently,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._claims import claim_tags, is_merged
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import (
    describe_tagged,
    fetch_outputs,
    live_instances,
    stop_instances,
    stop_live,
    wait_for_invocations,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import TAG_PREFIX, parameter_text
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import instance_entry, overall_status
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._rolling import HALT_ERROR, HALT_TIMEOUT, WindowSchedule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import REJECTED, SKIPPED, SUBMITTED, is_terminal
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import (
    client_token,
    fingerprint,
    new_salt,
)

# Tag shared by the invocations (batches) of one run of more than 100 instances.
RUN_TAG = TAG_PREFIX + 'run'


class CommandSpec(object):
    """One command to run: inline ``content`` (RunCommand) or a saved ``command_id`` (InvokeCommand).

    ``enable_parameter`` None means: true when ``parameters`` is not empty. ``tags``: tags put on each
    invocation. ``timeout``/``working_dir``/``username``/``launcher`` None leave the API default (for a saved
    command: its own setting). ``parameters`` values go on the wire as strings.
    """

    def __init__(self, content=None, command_type='RunShellScript', command_id=None, working_dir=None,
                 username=None, timeout=None, parameters=None, enable_parameter=None, description=None,
                 launcher=None, tags=None, repeat_mode='Once', frequency=None, windows_password_name=None):
        if content is None and command_id is None:
            raise ValueError('CommandSpec needs content or command_id')
        self.content = content
        self.command_type = command_type or 'RunShellScript'
        self.command_id = command_id
        self.working_dir = working_dir
        self.username = username
        self.timeout = timeout
        self.parameters = dict((k, parameter_text(v)) for k, v in (parameters or {}).items())
        self.enable_parameter = bool(self.parameters) if enable_parameter is None else bool(enable_parameter)
        self.description = description
        self.launcher = launcher
        self.tags = dict(tags or {})
        self.repeat_mode = repeat_mode or 'Once'
        self.frequency = frequency
        self.windows_password_name = windows_password_name

    @property
    def action(self):
        return 'InvokeCommand' if self.command_id else 'RunCommand'

    def fingerprint(self):
        return fingerprint(self.action, self.command_id, self.command_type, self.content, self.working_dir,
                           self.username, self.timeout, self.parameters, self.enable_parameter, self.description,
                           self.launcher, sorted(self.tags.items()), self.repeat_mode, self.frequency,
                           self.windows_password_name)

    def with_tags(self, tags):
        """A copy of this spec with ``tags`` added to its own."""
        tagged = copy.copy(self)
        tagged.tags = dict(self.tags, **tags)
        return tagged

    def request(self, instance_ids, token, extra_tags=None):
        tag_model = 'InvokeCommandRequestTag' if self.command_id else 'RunCommandRequestTag'
        common = dict(instance_id=list(instance_ids), working_dir=self.working_dir, username=self.username,
                      timeout=self.timeout, parameters=self.parameters or None, launcher=self.launcher,
                      repeat_mode=self.repeat_mode, frequency=self.frequency, client_token=token,
                      windows_password_name=self.windows_password_name,
                      tag=request_tags(tag_model, dict(self.tags, **dict(extra_tags or {}))))
        if self.command_id:
            return make_request('InvokeCommandRequest', command_id=self.command_id, **common)
        encoded = base64.b64encode(self.content.encode('utf-8')).decode('ascii')
        return make_request('RunCommandRequest', type=self.command_type, command_content=encoded,
                            content_encoding='Base64', description=self.description,
                            enable_parameter=self.enable_parameter, keep_command=False, **common)


class Batch(object):
    """One RunCommand/InvokeCommand call: its instances and what came back (``error`` when it was refused)."""

    def __init__(self, instance_ids, invoke_id=None, command_id=None, error=None):
        self.instance_ids = list(instance_ids)
        self.invoke_id = invoke_id
        self.command_id = command_id
        self.error = error
        self.merged = False  # the invocation another request with the same ClientToken created (_claims)


class RunResult(object):
    """``batches``; ``invoke_ids`` (one per accepted batch, in batch order); ``command_id``; ``instances`` (one
    entry per target, in target order); ``timed_out``; ``stopped`` (StopInvocation was sent at the timeout);
    ``error`` (the API error that ended the wait or the output fetch, or None)."""

    def __init__(self, batches, instances, timed_out=False, stopped=False, command_id=None, error=None):
        self.batches = batches
        self.invoke_ids = [b.invoke_id for b in batches if b.invoke_id]
        self.command_id = command_id
        self.instances = instances
        self.timed_out = timed_out
        self.stopped = stopped
        self.error = error

    @property
    def invocation_status(self):
        return overall_status(self.instances)

    @property
    def rejected(self):
        return [i for i in self.instances if i['invocation_status'] == REJECTED]

    @property
    def merged(self):
        """True when every accepted batch is another request's invocation (the same ClientToken, sent first)."""
        accepted = [b for b in self.batches if b.invoke_id]
        return bool(accepted) and all(b.merged for b in accepted)


class CommandRunner(object):
    """Runs a ``CommandSpec`` on any number of instances (see the file's docstring).

    ``token_salt``: random per runner unless given; the same salt and inputs give the same ClientTokens, which
    is how a fixed ``client_token`` and scheduled runs make the service merge repeated submissions. ``progress``:
    passed to ``wait_for_invocations`` (``_progress.progress_reporter()``), or None.
    """

    def __init__(self, api, max_workers=8, schedule=None, clock=time.monotonic, sleep=time.sleep, token_salt=None,
                 progress=None):
        self.api = api
        self.progress = progress
        self.max_workers = max_workers
        self.schedule = schedule if schedule is not None else PollSchedule()
        self.clock = clock
        self.sleep = sleep
        self.token_salt = token_salt or new_salt()
        self.claim = None

    @staticmethod
    def shares_run_tag(spec, count):
        """True when a run of ``spec`` on ``count`` instances is sent in several batches that share RUN_TAG (one of
        the invocation's 20 tags)."""
        return spec.repeat_mode == 'Once' and count > BATCH_LIMITS[spec.action]

    def with_salt(self, token_salt):
        """This runner with another ClientToken salt."""
        other = copy.copy(self)
        other.token_salt = token_salt
        return other

    def with_claim(self, claim):
        """This runner with a claim tag (``_claims``) on every start call, outside the ClientTokens."""
        other = copy.copy(self)
        other.claim = claim
        return other

    def quiet(self):
        """This runner without progress reports: for runs the user does not wait for as such (the guard check)."""
        other = copy.copy(self)
        other.progress = None
        return other

    def run_tag_value(self, spec):
        """RUN_TAG's value for this runner's run of ``spec``: from the salt, so a retried call is identical."""
        return client_token(['run', spec.fingerprint()], self.token_salt)

    def submit(self, spec, targets):
        """One call per batch of 100, concurrently. Returns the batches; a refused batch carries ``error``.
        Raises the first error when every batch was refused (nothing was accepted).

        With a claim (``with_claim``), a one-time run also carries RUN_TAG, whose value comes from the salt: a batch
        the service refuses because another request with the same ClientToken came first is given that request's
        invocation, found by the tag (``Batch.merged``)."""
        batches = chunks(list(targets), BATCH_LIMITS[spec.action])
        once_claimed = bool(self.claim) and spec.repeat_mode == 'Once'
        shared = self.shares_run_tag(spec, len(targets)) or once_claimed
        extra_tags = {RUN_TAG: self.run_tag_value(spec)} if shared else {}
        extra_tags.update(claim_tags(self.claim))
        done = self.send(spec, batches, extra_tags)
        if once_claimed:
            self.take_over(spec, done)
        if done and all(b.error is not None for b in done):
            raise done[0].error
        return done

    def send(self, spec, batches, extra_tags=None):
        """One call per batch (lists of at most 100 instance IDs), concurrently, each with the ClientToken of its
        instances, the spec and the salt. Returns a ``Batch`` per batch, in order; a refused one carries ``error``."""
        action = spec.action
        spec_print = spec.fingerprint()

        def send_one(instance_ids):
            token = client_token([action, spec_print] + list(instance_ids), self.token_salt)
            try:
                body = self.api.call(action, spec.request(instance_ids, token, extra_tags))
            except CloudAssistantError as exc:
                return Batch(instance_ids, error=exc)
            return Batch(instance_ids, invoke_id=getattr(body, 'invoke_id', None),
                         command_id=getattr(body, 'command_id', None) or spec.command_id)

        return run_concurrently(send_one, batches, max_workers=self.max_workers)

    def take_over(self, spec, batches):
        """Batches refused with IdempotentParameterMismatch get the invocation of the same instances that carries
        this run's RUN_TAG value (another task run with the same salt sent it first)."""
        merged = [b for b in batches if is_merged(b.error)]
        if not merged:
            return
        found = {}
        try:
            for invocation in describe_tagged(self.api, (RUN_TAG, self.run_tag_value(spec))).values():
                found[frozenset(i.instance_id for i in invoke_instances(invocation))] = invocation
        except CloudAssistantError:
            return  # those batches stay refused, with the mismatch; the accepted ones are kept
        for batch in merged:
            invocation = found.get(frozenset(batch.instance_ids))
            if invocation is not None:
                batch.invoke_id, batch.error, batch.merged = invocation.invoke_id, None, True
                batch.command_id = getattr(invocation, 'command_id', None) or spec.command_id

    def run(self, spec, targets, deadline, wait=True, stop_on_timeout=False):
        """Submit, then (one-time runs with ``wait``) wait until ``deadline`` and fetch the outputs."""
        started = self.clock()
        batches = self.submit(spec, targets)
        accepted = [b.invoke_id for b in batches if b.invoke_id]
        command_id = next((b.command_id for b in batches if b.command_id), spec.command_id)
        if not wait or spec.repeat_mode != 'Once':
            return RunResult(batches, self._entries(batches, {}), command_id=command_id)
        waited = wait_for_invocations(self.api, accepted, deadline, schedule=self.schedule, clock=self.clock,
                                      sleep=self.sleep, max_workers=self.max_workers, started=started, progress=self.progress,
                                      group_tag=(RUN_TAG, self.run_tag_value(spec)) if self.shares_run_tag(spec, len(targets)) else None)
        known, error, stopped = self._collect(waited, accepted, stop_on_timeout)
        return RunResult(batches, self._entries(batches, known), timed_out=waited.timed_out, stopped=stopped,
                         command_id=command_id, error=error)

    def _collect(self, waited, accepted, stop_on_timeout, stopped_ids=None):
        """After a wait: stop what is unfinished at the timeout (``stop_on_timeout``; the IDs stopped go into
        ``stopped_ids``), fetch the outputs. Returns ({invoke_id: {instance_id: model}}, error, stopped)."""
        known = dict((iid, dict((i.instance_id, i) for i in invoke_instances(inv)))
                     for iid, inv in waited.invocations.items() if inv is not None)
        error, stopped = waited.error, False
        if error is None:
            try:
                if waited.timed_out and stop_on_timeout:
                    for invoke_id in waited.unfinished:
                        if waited.invocations.get(invoke_id) is not None:
                            live = stop_live(self.api, waited.invocations[invoke_id])
                            if stopped_ids is not None:
                                stopped_ids.extend(live)
                    stopped = True
                # after a stop the fetch also brings the newer statuses (Stopping, Terminated, Cancelled)
                known.update(fetch_outputs(self.api, accepted, max_workers=self.max_workers))
            except CloudAssistantError as exc:
                error = exc
        return known, error, stopped

    def run_rolling(self, spec, plan, deadline, stop_on_timeout=False):
        """A one-time run of ``spec`` on ``plan.targets`` (a ``_rolling.RollingPlan``), at most ``plan.window``
        instances at a time: the first groups start at once, and each poll of the one wait
        (``wait_for_invocations``) records the instances that finished and starts the next groups that fit, until
        the plan halts (max_errors, canary) or every group ran. Each group is one RunCommand/InvokeCommand with
        its own ClientToken; every invocation carries ``RUN_TAG``, so one tag-filtered call polls them all. With
        ``plan.stop_on_error`` the instances still running when the plan halts are stopped. The result has an
        entry per target in target order; those never started are ``skipped`` with a ``reason``. Raises only when
        the first start calls were all refused (nothing ran)."""
        started = self.clock()
        run_tag = (RUN_TAG, self.run_tag_value(spec))
        pace = WindowSchedule(self.schedule)
        batches = []
        stopped_ids = []

        def start_next():
            new = []
            while True:
                groups = plan.startable()
                if not groups:
                    return new
                sent = self.send(spec, groups, dict([run_tag]))
                batches.extend(sent)
                pace.restart(self.clock() - started)
                for batch in sent:
                    if batch.error is None:
                        new.append(batch.invoke_id)
                    for instance_id in batch.instance_ids if batch.error is not None else ():
                        plan.record(instance_id, REJECTED)
                if not any(b.error is None for b in batches):
                    # nothing was ever accepted (a permission, a parameter): the next groups would be refused too
                    return new

        def refill(latest):
            for invocation in latest.values():
                for item in invoke_instances(invocation) if invocation is not None else ():
                    if is_terminal(item.invocation_status):
                        plan.record(item.instance_id, item.invocation_status)
            if plan.halted is not None:
                if plan.stop_on_error and not stopped_ids:
                    for invoke_id, invocation in latest.items():
                        if invocation is not None:
                            live = stop_live(self.api, invocation)
                        else:
                            # started but in no listing yet: nothing is known of its instances, so all may run
                            live = [i for b in batches if b.invoke_id == invoke_id for i in b.instance_ids]
                            stop_instances(self.api, invoke_id, live)
                        plan.mark_stopped(live)
                        stopped_ids.extend(live)
                return []
            if self.clock() >= deadline:
                # the wait's last look at its deadline: nothing new may start, and what did not start timed out
                if plan.next_group < len(plan.groups):
                    plan.halt(HALT_TIMEOUT, 'the wait_timeout expired first')
                return []
            return start_next()

        accepted = start_next()
        if not accepted:
            refused = [b for b in batches if b.error is not None]
            if refused and not plan.running():
                raise refused[0].error
        # One tag-filtered listing a poll follows every group while they fit in one page; a longer run (many small
        # groups) asks for its unfinished invocations by ID instead, a few a poll, rather than page through them all.
        listed = run_tag if len(plan.groups) <= MAX_PAGE_SIZE.get('DescribeInvocations', DEFAULT_MAX_PAGE_SIZE) else None
        waited = wait_for_invocations(self.api, accepted, deadline, schedule=pace, clock=self.clock,
                                      sleep=self.sleep, max_workers=self.max_workers, started=started,
                                      group_tag=listed, refill=refill, progress=self.progress)
        accepted = [b.invoke_id for b in batches if b.invoke_id]
        timed_out = waited.timed_out or plan.halted == HALT_TIMEOUT
        if waited.timed_out:
            plan.halt(HALT_TIMEOUT, 'the wait_timeout expired first')
            if stop_on_timeout:
                for invocation in waited.invocations.values():
                    plan.mark_stopped(live_instances(invocation) if invocation is not None else [])
        elif waited.error is not None:
            plan.halt(HALT_ERROR, 'the API failed while the run was being followed (%s)' % waited.error.code)
        known, error, stopped = self._collect(waited, accepted, stop_on_timeout, stopped_ids)
        for models in known.values():
            for instance_id, model in models.items():
                if is_terminal(getattr(model, 'invocation_status', None)):
                    plan.record(instance_id, model.invocation_status)
        by_id = dict((e['instance_id'], e) for e in self._entries(batches, known))
        reason = plan.skip_reason()
        entries = [by_id.get(t) or instance_entry(t, status=SKIPPED, skipped=True, reason=reason) for t in plan.targets]
        result = RunResult(batches, entries, timed_out=timed_out, stopped=stopped or bool(stopped_ids),
                           command_id=next((b.command_id for b in batches if b.command_id), spec.command_id),
                           error=error)
        result.stopped_ids = stopped_ids
        return result

    @staticmethod
    def entries(batches, known=None):
        """One entry per instance of ``batches``, in order: refused (with the error), or submitted with ``known``
        models ({invoke_id: {instance_id: model}})."""
        return CommandRunner._entries(batches, known or {})

    @staticmethod
    def _entries(batches, known):
        entries = []
        for batch in batches:
            for instance_id in batch.instance_ids:
                if batch.error is not None:
                    entries.append(instance_entry(instance_id, status=REJECTED, error_code=batch.error.code,
                                                  error_info=batch.error.msg))
                else:
                    model = (known.get(batch.invoke_id) or {}).get(instance_id)
                    entries.append(instance_entry(instance_id, invoke_id=batch.invoke_id, status=SUBMITTED,
                                                  model=model))
        return entries
