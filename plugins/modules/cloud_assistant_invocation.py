#!/usr/bin/python
# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: cloud_assistant_invocation
short_description: Stop Cloud Assistant invocations on ECS instances
version_added: 0.1.0
description:
  - Stops an invocation (a command run) on all its instances or on some of them (C(StopInvocation), 50 instances
    per call), waits until none of them is C(Running) or C(Stopping) any more, and returns the result of every
    instance - the same entries as the
    RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:instances).
  - A run that has not started yet ends C(Cancelled). A running one is stopped and normally ends C(Terminated);
    the C(StopInvocation) reference says in one place that a run already started is not interrupted, so a run
    may also finish by itself (the task then waits for it and reports its own status).
  - Stopping a scheduled invocation (O(alicloud_ops.cloud_assistant.cloud_assistant_command#module:repeat_mode)
    other than V(Once)) also ends its future runs.
  - Only the instances that may still run (C(Pending), C(Scheduled) or C(Running)) are stopped; the task reports
    no change when there were none.
author:
  - alicloud_ops maintainers (@alicloud-ops)
extends_documentation_fragment:
  - alicloud_ops.cloud_assistant.common.modules
  - alicloud_ops.cloud_assistant.attributes
  - alicloud_ops.cloud_assistant.attributes.action_group
attributes:
  check_mode:
    support: full
    details:
      - Reads the invocations and reports what would be stopped (RV(would_stop)) without stopping anything.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - An invocation already stopped or finished everywhere is left alone (C(changed=false)).
options:
  invoke_id:
    description:
      - The invocation to stop. A list is accepted, such as the
        RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:invoke_ids) of a run on more than 100
        instances (one invocation per batch of 100).
      - Every ID must be known to the API, else the task fails before anything is stopped.
    type: list
    elements: str
    required: true
    aliases: [invoke_ids]
  instance_ids:
    description:
      - Stop only on these instances. Each must belong to one of the O(invoke_id) invocations, else the task
        fails before anything is stopped.
      - If not set, every instance of the invocations.
    type: list
    elements: str
  state:
    description:
      - V(stopped) - the invocation does not run (any more) on the instances.
    type: str
    default: stopped
    choices: [stopped]
  wait:
    description:
      - Wait until none of the instances is C(Pending), C(Scheduled), C(Running) or C(Stopping), then return
        their final status and output.
      - With V(false), returns right after C(StopInvocation), with the statuses of that moment (often
        C(Stopping)).
    type: bool
    default: true
  wait_timeout:
    description:
      - How long O(wait) waits, in seconds, counted from the start of the task, from 1 to 86,520 (the longest
        run timeout, 86,400 seconds, plus 120) - the same limit as the other modules' O(wait_timeout). When it
        expires the task fails with the statuses known so far.
      - Polls like M(alicloud_ops.cloud_assistant.cloud_assistant_command) - every 0.2 seconds at first, then every
        tenth of the time already waited, at most every 5 seconds.
    type: int
    default: 60
notes:
  - Two tasks stopping the same invocation at the same time are safe - an instance already C(Stopping) is not
    stopped again, only waited for. When both read the instances before either call was made, both send
    C(StopInvocation) and both report C(changed) - the call takes no ClientToken and answers with a request ID
    only, so nothing tells the two apart; the instances end C(Terminated) (or C(Cancelled)) either way.
  - When a C(StopInvocation) call fails (they go 50 instances at a time), the task fails; RV(stopped) still
    lists the instances the calls before it stopped, and the instances it did not stop are not waited for.
seealso:
  - module: alicloud_ops.cloud_assistant.cloud_assistant_command
    description: Starts the runs this module stops.
  - module: alicloud_ops.cloud_assistant.cloud_assistant_invocation_info
    description: Lists invocations and their status.
  - name: StopInvocation API reference
    description: The API behind this module.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-stopinvocation
'''

EXAMPLES = r'''
- name: Stop a run everywhere
  alicloud_ops.cloud_assistant.cloud_assistant_invocation:
    invoke_id: t-hz0jdfwcsr1abc
    state: stopped

- name: Start a long job without waiting; stop it on one instance that must keep its capacity
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_tags:
      role: batch
    command_content: /opt/jobs/reindex.sh
    timeout: 7200
    wait: false
  register: job

- name: Stop it there (the run may be split in several invocations; give them all)
  alicloud_ops.cloud_assistant.cloud_assistant_invocation:
    invoke_id: "{{ job.invoke_ids }}"
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa]
  register: stopped

- name: Find the live schedules of a saved command
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    command_name: rotate-logs
    timed: true
  register: schedules

- name: End them (no more runs)
  alicloud_ops.cloud_assistant.cloud_assistant_invocation:
    invoke_id: "{{ schedules.invocations | map(attribute='invoke_id') | list }}"
  when: schedules.invocations | length > 0

- name: Which runs of a command would be stopped
  alicloud_ops.cloud_assistant.cloud_assistant_invocation:
    invoke_id: t-hz0jdfwcsr1abc
  check_mode: true
  register: preview
'''

RETURN = r'''
instances:
  description:
    - One entry per instance of the invocations (only O(instance_ids) when given), in the invocations' order -
      the same keys as the RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:instances).
    - RV(instances[].invocation_status) is C(Terminated) for a run killed, C(Cancelled) for one that had not
      started, and the run's own status for one that had ended before.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
    invoke_id:
      description: The invocation this instance belongs to.
      type: str
    invocation_status:
      description: The instance's status after the stop.
      type: str
    exit_code:
      description: The script's exit code; V(null) when it did not finish by itself.
      type: int
    output:
      description: The output so far, decoded to text (the last 24 KB); empty in check mode and with O(wait=false).
      type: str
    dropped:
      description: Bytes the service cut off the start of the output because it was longer than 24 KB.
      type: int
    error_code:
      description: The API's error code for this instance, such as C(ExecutionInterrupted); V(null) when none.
      type: str
    error_info:
      description: The API's error message for this instance; V(null) when none.
      type: str
    start_time:
      description: When the run started on the instance (UTC, ISO 8601); V(null) when it did not start.
      type: str
    finish_time:
      description: When the run ended on the instance (UTC, ISO 8601); V(null) when it did not end.
      type: str
    skipped:
      description: Always V(false) here.
      type: bool
  sample:
    - instance_id: i-bp1aaaaaaaaaaaaaaaaa
      invoke_id: t-hz0jdfwcsr1abc
      invocation_status: Terminated
      exit_code: null
      output: "started\n"
      dropped: 0
      error_code: ExecutionInterrupted
      error_info: the command execution has been interrupted
      start_time: "2026-11-22T01:32:50Z"
      finish_time: "2026-11-22T01:33:20Z"
      skipped: false
invoke_id:
  description: The first of the O(invoke_id) invocations.
  returned: always
  type: str
  sample: t-hz0jdfwcsr1abc
invoke_ids:
  description: The O(invoke_id) invocations, in the order given.
  returned: always
  type: list
  elements: str
  sample: [t-hz0jdfwcsr1abc]
invocation_status:
  description:
    - The overall status of RV(instances), derived as in M(alicloud_ops.cloud_assistant.cloud_assistant_command)
      (C(Stopped) when every instance was stopped).
  returned: always
  type: str
  sample: Stopped
stopped:
  description:
    - The instances this task stopped, per invocation (empty in check mode). When a C(StopInvocation) call
      failed, the instances the earlier calls for that invocation stopped.
  returned: always
  type: dict
  sample: {t-hz0jdfwcsr1abc: [i-bp1aaaaaaaaaaaaaaaaa]}
would_stop:
  description: The instances that would be stopped, per invocation.
  returned: in check mode
  type: dict
  sample: {t-hz0jdfwcsr1abc: [i-bp1aaaaaaaaaaaaaaaaa]}
msg:
  description: A summary; on failure, why.
  returned: always
  type: str
  sample: stopped t-hz0jdfwcsr1abc on 2 instance(s)
error:
  description: The API error behind a failure - code, message, request ID, diagnosis link and action.
  returned: when an API call failed
  type: dict
  sample:
    code: InvalidInvokeId.NotFound
    message: The specified invocation does not exist.
    request_id: 1B2C3D4E-0000-0000-0000-000000000000
    recommend: https://api.aliyun.com/troubleshoot?q=InvalidInvokeId.NotFound&product=Ecs
    action: StopInvocation
'''

import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import invoke_instances
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import run_concurrently
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import (
    describe_many,
    invocation_finished,
    live_instances,
    stop_instances,
    wait_for_invocations,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import invalid
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import CloudAssistantModule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import RETRY_GRACE, check_wait_timeout
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import (
    instance_entry,
    listing,
    run_fields,
    wait_expired_message,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import is_terminal

ARGUMENT_SPEC = dict(
    invoke_id=dict(type='list', elements='str', required=True, aliases=['invoke_ids']),
    instance_ids=dict(type='list', elements='str'),
    state=dict(type='str', default='stopped', choices=['stopped']),
    wait=dict(type='bool', default=True),
    wait_timeout=dict(type='int', default=60),
)
NOT_INTERRUPTED = ('; the StopInvocation reference says a run that had started may not be interrupted, '
                   'so it may still end by itself')


class CloudAssistantInvocation(object):
    """Stops invocations on all or some of their instances and waits until they no longer run."""

    def __init__(self, module, max_workers=8, clock=time.monotonic, sleep=time.sleep, schedule=None):
        self.module = module
        self.clock = clock
        self.sleep = sleep
        self.schedule = schedule
        self.params = module.params
        self.check_mode = bool(module.check_mode)
        self.max_workers = max_workers
        self.started = module.started
        self.deadline = self.started + self.params['wait_timeout']
        self.api = None
        self.partial_result = None   # what a failed task returns however early it failed (_module.run_resource)

    def validate(self):
        p = self.params
        if not p['invoke_id'] or any(not str(i).strip() for i in p['invoke_id']):
            raise invalid('invoke_id must not be empty nor contain empty entries')
        if p.get('instance_ids') is not None:
            if not p['instance_ids'] or any(not str(i).strip() for i in p['instance_ids']):
                raise invalid('instance_ids must not be empty nor contain empty entries')
        check_wait_timeout(p['wait_timeout'])

    def run(self):
        self.validate()
        p = self.params
        self.api = self.module.api(self.deadline + RETRY_GRACE)
        ids = list(dict.fromkeys(i.strip() for i in p['invoke_id']))
        self.partial_result = {'invoke_ids': ids, 'invoke_id': ids[0]}   # returned even when the API fails
        known = describe_many(self.api, ids, max_workers=self.max_workers)
        missing = [i for i in ids if known.get(i) is None]
        if missing:
            raise invalid('invoke_id: the API does not list %s (a wrong ID, or older than the service keeps); '
                          'nothing was stopped' % listing(missing))
        scope = self.scope(ids, known)
        to_stop = dict((iid, [i for i in live_instances(known[iid]) if i in scope[iid]]) for iid in ids)
        to_stop = dict((iid, live) for iid, live in to_stop.items() if live)
        result = {'changed': bool(to_stop), 'stopped': {}}
        if self.check_mode:
            result.update(self.entries(ids, known, scope), would_stop=to_stop,
                          msg=self.summary('would stop', to_stop))
            return result
        errors = self.stop(to_stop, result)
        result['changed'] = bool(result['stopped'])
        # the instances a failed StopInvocation did not stop are not waited for: they would run on to the deadline
        not_stopped = dict((iid, set(live) - set(result['stopped'].get(iid, ()))) for iid, live in to_stop.items())
        wait_scope = dict((iid, scope[iid] - not_stopped.get(iid, set())) for iid in ids)
        latest = known
        failure = None
        if p['wait'] and (result['stopped'] or not all(invocation_finished(known[iid], wait_scope[iid]) for iid in ids)):
            waited = wait_for_invocations(self.api, ids, self.deadline, max_workers=self.max_workers,
                                          started=self.started, scope=wait_scope, clock=self.clock,
                                          sleep=self.sleep, schedule=self.schedule)
            latest = dict(known, **dict((i, m) for i, m in waited.invocations.items() if m is not None))
            if waited.error is not None:
                result.update(waited.error.result())
                failure = '%s - while waiting for %s to stop' % (waited.error.msg, ', '.join(ids))
        try:
            # the final states, with the output the runs had produced
            final = describe_many(self.api, ids, include_output=p['wait'], max_workers=self.max_workers)
            latest = dict(latest, **dict((i, m) for i, m in final.items() if m is not None))
        except CloudAssistantError as exc:
            failure = failure or '%s - after StopInvocation; the statuses shown may be older' % exc.msg
            result.update(exc.result())
        result.update(self.entries(ids, latest, scope))
        unfinished = [e['instance_id'] for e in result['instances'] if not is_terminal(e['invocation_status'])]
        if errors:
            failure = '; '.join(errors)
        elif failure is None and p['wait'] and unfinished:
            failure = wait_expired_message(p['wait_timeout'], unfinished, len(result['instances']), what='stopped',
                                           note='') + NOT_INTERRUPTED
        result['msg'] = failure or self.summary('stopped', result['stopped'])
        result['failed'] = failure is not None
        return result

    def scope(self, ids, known):
        """{invoke_id: set of its instance IDs this task is about}; every given instance must be in one."""
        members = dict((iid, [i.instance_id for i in invoke_instances(known[iid])]) for iid in ids)
        wanted = self.params.get('instance_ids')
        if wanted is None:
            return dict((iid, set(m)) for iid, m in members.items())
        wanted = [i.strip() for i in wanted]
        everywhere = set(i for m in members.values() for i in m)
        strangers = [i for i in dict.fromkeys(wanted) if i not in everywhere]
        if strangers:
            raise invalid('instance_ids: %s %s not part of %s; nothing was stopped'
                          % (listing(strangers), 'is' if len(strangers) == 1 else 'are', ', '.join(ids)))
        return dict((iid, set(m) & set(wanted)) for iid, m in members.items())

    def stop(self, to_stop, result):
        """StopInvocation per invocation (50 instances per call), the invocations in parallel; the error messages."""
        def send(item):
            iid, live = item
            done = []
            try:
                stop_instances(self.api, iid, live, done=done)
            except CloudAssistantError as exc:
                return done, exc
            return done, None

        items = list(to_stop.items())
        errors = []
        for (iid, live), (done, exc) in zip(items, run_concurrently(send, items, max_workers=self.max_workers)):
            if done:
                result['stopped'][iid] = done
            if exc is not None:
                result.update(exc.result())
                errors.append('%s: %s (%d of %d instance(s) stopped before it)' % (iid, exc.msg, len(done), len(live)))
        return errors

    @staticmethod
    def entries(ids, known, scope):
        instances = [instance_entry(i.instance_id, invoke_id=iid, model=i)
                     for iid in ids for i in invoke_instances(known[iid]) if i.instance_id in scope[iid]]
        return run_fields(instances, ids)

    @staticmethod
    def summary(verb, per_invocation):
        if not per_invocation:
            return 'nothing to stop: no instance was still pending, scheduled or running'
        return '; '.join('%s %s on %d instance(s)' % (verb, iid, len(live)) for iid, live in per_invocation.items())


def main():
    module = CloudAssistantModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.run_resource(CloudAssistantInvocation)


if __name__ == '__main__':
    main()
