#!/usr/bin/python
# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: cloud_assistant_invocation_info
short_description: List Cloud Assistant invocations, their per-instance results, output and history
version_added: 0.1.0
description:
  - Lists the invocations (command runs) of Cloud Assistant on ECS instances with C(DescribeInvocations), reading
    every page, and returns each with its overall fields and one entry per instance - the same entries as the
    RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:instances).
  - With O(wait=true) and O(invoke_id), waits until the invocations are finished on every instance and returns
    them. Together with
    O(alicloud_ops.cloud_assistant.cloud_assistant_command#module:wait=false) of
    M(alicloud_ops.cloud_assistant.cloud_assistant_command), this starts a long run on many instances, lets the
    play do other work, and collects the results later.
  - Never changes anything.
author:
  - alicloud_ops maintainers (@alicloud-ops)
extends_documentation_fragment:
  - alicloud_ops.cloud_assistant.common.modules
  - alicloud_ops.cloud_assistant.attributes
  - alicloud_ops.cloud_assistant.attributes.action_group
  - alicloud_ops.cloud_assistant.attributes.info_module
options:
  invoke_id:
    description:
      - The invocations to return, by ID. A list is accepted, such as the RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:invoke_ids)
        of a run on more than 100 instances (one invocation per batch of 100).
      - Each is asked for on its own (C(DescribeInvocations) with C(InvokeId)), scheduled or not. IDs the API does
        not know are left out of RV(invocations), except with O(wait=true), which fails naming them.
      - The other filters apply to these invocations too.
    type: list
    elements: str
    aliases: [invoke_ids]
  command_id:
    description: Only invocations of this command (saved, or the one-time command of a C(RunCommand)).
    type: str
  command_name:
    description: Only invocations of the command with exactly this name.
    type: str
  instance_id:
    description:
      - Only invocations that ran on this instance. Their RV(invocations[].instances) then hold this instance only.
    type: str
  invocation_status:
    description:
      - Only invocations whose overall status is one of these.
      - Compared by the module with each invocation's C(InvocationStatus). The API's own status filter
        (C(InvokeStatus)) matches the legacy overall status, whose values mean other things (for example
        C(Finished)), so it is not used.
    type: list
    elements: str
    choices: [Pending, Scheduled, Running, Stopping, Success, Failed, PartialFailed, Stopped]
  repeat_mode:
    description: Only invocations with this repeat mode.
    type: str
    choices: [Once, Period, NextRebootOnly, EveryReboot]
  tags:
    description:
      - Only invocations that have all these tags (an empty value matches only an empty value), at most 20. A key
        has 1 to 64 characters, a value at most 128, neither may contain C(http://) or C(https://).
      - The API returns at most 1,000 invocations for a tag-filtered listing (C(DescribeInvocations) with C(Tag)),
        without saying that it left some out. When a listing returns 1,000 or more, the module warns that the
        result may be incomplete; narrow it with other filters (for example O(command_id) or O(instance_id)).
    type: dict
  timed:
    description:
      - V(true) - only invocations that will run again (scheduled ones still live); V(false) - only the others
        (one-time runs, and schedules that ended or were stopped).
      - If not set, both. The API lists one kind per call (its C(Timed) filter defaults to V(false)), so the module
        then makes two listings.
    type: bool
  created_after:
    description:
      - Only invocations created at or after this time - an ISO 8601 date or date and time, such as
        V(2026-11-22), V(2026-11-22T01:30:00Z) or V(2026-11-22 09:30:00+08:00). Without a time zone, UTC.
      - C(DescribeInvocations) has no time filter, so the module compares each listed invocation's C(CreationTime);
        every page of the other filters is still read. The service keeps the invocations of the last 4 weeks (the
        newest API reference says 30 days, at most 10,000).
    type: str
  created_before:
    description:
      - Only invocations created before this time; the same forms as O(created_after).
    type: str
  include_output:
    description:
      - Return each instance's output (the combined stdout and stderr, the last 24 KB, decoded to text) in
        RV(invocations[].instances[].output), and in the history records with O(include_history).
      - Costs one more C(DescribeInvocations) per invocation (the API returns output only for a query by
        invocation or instance).
    type: bool
    default: false
  include_history:
    description:
      - Return every past run of each scheduled invocation (O(repeat_mode=Period) or V(EveryReboot)), per instance,
        newest first, in RV(invocations[].instances[].history) - the per-run records the API keeps
        (C(DescribeInvocationResults) with C(IncludeHistory), all pages, one listing per invocation).
      - Other invocations run at most once per instance; their history is empty (the entry itself is the run).
    type: bool
    default: false
  wait:
    description:
      - Wait until every instance of the O(invoke_id) invocations is finished (a terminal status - C(Success),
        C(Failed), C(Timeout), C(Cancelled), C(Terminated), ...), then return them. Needs O(invoke_id).
      - Polls like M(alicloud_ops.cloud_assistant.cloud_assistant_command) - every 0.2 seconds at first, then
        every tenth of the time already waited, at most every 5 seconds; one C(DescribeInvocations) per unfinished
        invocation per poll. Output is fetched once at the end.
      - A live schedule finishes only when it ends or is stopped
        (M(alicloud_ops.cloud_assistant.cloud_assistant_invocation)).
      - The task does not fail because instances failed; check RV(invocation_status) or RV(instances).
    type: bool
    default: false
  wait_timeout:
    description:
      - How long O(wait) waits, in seconds, counted from the start of the task, from 1 to 86,520 (the longest
        run timeout, 86,400 seconds, plus 120) - the same limit as the other modules' O(wait_timeout). When it
        expires the task fails with the statuses known so far (and their output with O(include_output)).
      - If not set, the longest C(Timeout) of the invocations plus 120 seconds.
      - Only with O(wait=true).
    type: int
notes:
  - Without O(invoke_id), the region's invocations are listed with the filters the API has (O(command_id),
    O(command_name), O(instance_id), O(repeat_mode), O(tags), O(timed)), 50 per call; the others are applied by
    the module. The API ignores O(command_name) and O(repeat_mode) together with O(instance_id); the module
    still applies them.
  - An invocation ID the API does not know - a typing error, or older than the service keeps - is simply not
    returned (with O(wait=true) the task fails naming it).
seealso:
  - module: alicloud_ops.cloud_assistant.cloud_assistant_command
    description: Runs the commands this module reports on.
  - module: alicloud_ops.cloud_assistant.cloud_assistant_invocation
    description: Stops invocations.
  - name: DescribeInvocations API reference
    description: The API behind the listing.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-describeinvocations
  - name: DescribeInvocationResults API reference
    description: The API behind O(include_history).
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-describeinvocationresults
'''

EXAMPLES = r'''
- name: Start a long job on the whole fleet without waiting
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_tags:
      role: batch
    command_content: /opt/jobs/reindex.sh
    timeout: 7200
    wait: false
  register: job

# ... other tasks ...

- name: Collect the results (every batch of 100 instances is one invocation)
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    invoke_id: "{{ job.invoke_ids }}"
    wait: true
    wait_timeout: 7500
    include_output: true
  register: done

- name: Fail when an instance did not succeed
  ansible.builtin.assert:
    that: done.invocation_status == 'Success'
    fail_msg: "{{ done.instances | rejectattr('invocation_status', 'eq', 'Success') | map(attribute='instance_id') | list }}"

- name: The same with Ansible's own async, so the playbook moves on at once
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    invoke_id: "{{ job.invoke_ids }}"
    wait: true
    wait_timeout: 7500
  async: 7600
  poll: 0
  register: collector

- name: Wait for the collector
  ansible.builtin.async_status:
    jid: "{{ collector.ansible_job_id }}"
  register: collected
  until: collected is finished
  retries: 760
  delay: 10

- name: What is running on an instance right now
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    instance_id: i-bp1aaaaaaaaaaaaaaaaa
    invocation_status: [Pending, Running, Stopping]
  register: busy

- name: Every live schedule of a saved command
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    command_name: rotate-logs
    timed: true
  register: schedules

- name: The last runs of a scheduled invocation, with their output
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    invoke_id: t-hz0jdfwcsr1abc
    include_history: true
    include_output: true
  register: nightly

- ansible.builtin.debug:
    msg: "{{ item.instance_id }}: {{ (item.history | first).output | default('no run yet') }}"
  loop: "{{ nightly.invocations[0].instances }}"

- name: Failed runs of the last day, by tag
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    tags:
      team: payments
    invocation_status: [Failed, PartialFailed]
    created_after: "{{ '%Y-%m-%dT%H:%M:%SZ' | strftime(now(utc=true).timestamp() - 86400, utc=true) }}"
  register: failures
'''

RETURN = r'''
invocations:
  description:
    - The invocations that match, newest first (by creation time); an empty list when none does.
  returned: always
  type: list
  elements: dict
  contains:
    invoke_id:
      description: The invocation's ID.
      type: str
      sample: t-hz0jdfwcsr1abc
    command_id:
      description: The command's ID.
      type: str
      sample: c-hz0jdfwcsr1abc
    command_name:
      description: The command's name (empty for most one-time commands).
      type: str
      sample: rotate-logs
    command_type:
      description: C(RunShellScript), C(RunBatScript) or C(RunPowerShellScript).
      type: str
      sample: RunShellScript
    command_description:
      description: The command's description.
      type: str
      sample: Rotate application logs
    command_content:
      description: The script, decoded to text.
      type: str
      sample: "uptime\n"
    parameters:
      description: The custom parameter values of this run.
      type: dict
      sample: {version: 2.4.1}
    repeat_mode:
      description: C(Once), C(Period), C(NextRebootOnly) or C(EveryReboot).
      type: str
      sample: Once
    frequency:
      description: The schedule of a C(Period) invocation (empty for others).
      type: str
      sample: 0 0 3 * * ? Asia/Shanghai
    timed:
      description: Whether the invocation will run again (a live schedule).
      type: bool
      sample: false
    timeout:
      description: The run's time limit on the instance, in seconds.
      type: int
      sample: 60
    working_dir:
      description: The directory the script runs in.
      type: str
      sample: /root
    username:
      description: The user that runs the script.
      type: str
      sample: root
    launcher:
      description: The launcher of the script (empty for none).
      type: str
      sample: ''
    creation_time:
      description: When the invocation was created (UTC, ISO 8601).
      type: str
      sample: "2026-11-22T01:32:50Z"
    invocation_status:
      description:
        - The API's overall status - C(Pending), C(Scheduled), C(Running), C(Stopping), C(Success), C(Failed),
          C(PartialFailed) or C(Stopped).
      type: str
      sample: Success
    tags:
      description: The invocation's tags.
      type: dict
      sample: {team: payments}
    instances:
      description:
        - One entry per instance of the invocation (only O(instance_id) when it is given) - the same keys as the
          RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:instances).
      type: list
      elements: dict
      contains:
        instance_id:
          description: The instance ID.
          type: str
          sample: i-bp1aaaaaaaaaaaaaaaaa
        invoke_id:
          description: The invocation's ID.
          type: str
          sample: t-hz0jdfwcsr1abc
        invocation_status:
          description:
            - The instance's status - C(Pending), C(Scheduled), C(Running), C(Stopping), C(Success), C(Failed),
              C(Invalid), C(Aborted), C(Error), C(Timeout), C(Cancelled) or C(Terminated).
            - For a schedule, the status of its latest run, or C(Scheduled) between runs.
          type: str
          sample: Success
        exit_code:
          description: The script's exit code (of the latest run of a schedule); V(null) before a run finished.
          type: int
          sample: 0
        output:
          description: The output decoded to text (the last 24 KB) with O(include_output), else empty.
          type: str
          sample: "hello\n"
        dropped:
          description: Bytes the service cut off the start of the output because it was longer than 24 KB.
          type: int
          sample: 0
        error_code:
          description: The API's error code for this instance, such as C(ExitCodeNonzero); V(null) when none.
          type: str
          sample: ExitCodeNonzero
        error_info:
          description: The API's error message for this instance; V(null) when none.
          type: str
          sample: the command execution exit code is not zero
        start_time:
          description: When the (latest) run started on the instance (UTC, ISO 8601); V(null) before it started.
          type: str
          sample: "2026-11-22T01:32:50Z"
        finish_time:
          description: When the (latest) run ended on the instance (UTC, ISO 8601); V(null) before it ended.
          type: str
          sample: "2026-11-22T01:32:52Z"
        skipped:
          description: Always V(false) here (the key of M(alicloud_ops.cloud_assistant.cloud_assistant_command)'s guards).
          type: bool
          sample: false
        history:
          description:
            - With O(include_history), every run of a scheduled invocation on this instance, newest first, each
              with the keys of an instance entry (RV(invocations[].instances[].output) only with
              O(include_output)) plus C(repeats), the run's number. A run in progress is included; the
              placeholder of the next run is not.
            - Empty for invocations other than O(repeat_mode=Period) and V(EveryReboot).
          type: list
          elements: dict
          returned: with O(include_history)
          sample:
            - instance_id: i-bp1aaaaaaaaaaaaaaaaa
              invoke_id: t-hz0jdfwcsr1abc
              invocation_status: Success
              exit_code: 0
              output: ''
              dropped: 0
              error_code: null
              error_info: null
              start_time: "2026-11-22T03:00:00Z"
              finish_time: "2026-11-22T03:00:02Z"
              skipped: false
              repeats: 2
invoke_id:
  description: The first of the O(invoke_id) invocations that was found; V(null) when none was.
  returned: when O(invoke_id) is given
  type: str
  sample: t-hz0jdfwcsr1abc
invoke_ids:
  description: The O(invoke_id) invocations that were found, in the order given.
  returned: when O(invoke_id) is given
  type: list
  elements: str
  sample: [t-hz0jdfwcsr1abc, t-hz0jdfwcsr1abd]
instances:
  description:
    - The RV(invocations[].instances) of every returned invocation, in one list, in the order of O(invoke_id) - a
      run split into batches reads like one run, as in M(alicloud_ops.cloud_assistant.cloud_assistant_command).
  returned: when O(invoke_id) is given
  type: list
  elements: dict
  sample:
    - instance_id: i-bp1aaaaaaaaaaaaaaaaa
      invoke_id: t-hz0jdfwcsr1abc
      invocation_status: Success
      exit_code: 0
      output: "hello\n"
      dropped: 0
      error_code: null
      error_info: null
      start_time: "2026-11-22T01:32:50Z"
      finish_time: "2026-11-22T01:32:52Z"
      skipped: false
invocation_status:
  description:
    - The overall status of RV(instances), derived as in M(alicloud_ops.cloud_assistant.cloud_assistant_command).
      V(null) when nothing was found.
  returned: when O(invoke_id) is given
  type: str
  sample: Success
missing_invoke_ids:
  description: The O(invoke_id) values the API does not list.
  returned: when O(invoke_id) is given
  type: list
  elements: str
  sample: []
msg:
  description: A summary; on failure, why (for example the instances still running when O(wait_timeout) expired).
  returned: always
  type: str
  sample: 2 invocation(s)
error:
  description: The API error behind a failure - code, message, request ID, diagnosis link and action.
  returned: when an API call failed
  type: dict
  sample:
    code: InvalidParameter.NextToken
    message: The specified NextToken is invalid.
    request_id: 1B2C3D4E-0000-0000-0000-000000000000
    recommend: https://api.aliyun.com/troubleshoot?q=InvalidParameter.NextToken&product=Ecs
    action: DescribeInvocations
'''

import json
import re
import time
from datetime import datetime, timedelta, timezone

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import invoke_instances, tags_of
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import run_concurrently
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import (
    TAG_FILTER_CAP,
    decode_output,
    describe_many,
    invocation_finished,
    invocation_history,
    list_invocations,
    runs_by_instance,
    wait_for_invocations,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import (
    DEFAULT_TIMEOUT,
    MAX_TAGS,
    REPEAT_MODES,
    check_tag_selector,
    invalid,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import CloudAssistantModule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import (
    RETRY_GRACE,
    WAIT_MARGIN,
    check_wait_timeout,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import (
    instance_entry,
    listing,
    run_fields,
    wait_expired_message,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import is_terminal

OVERALL_STATUSES = ('Pending', 'Scheduled', 'Running', 'Stopping', 'Success', 'Failed', 'PartialFailed', 'Stopped')
HISTORY_MODES = ('Period', 'EveryReboot')

ARGUMENT_SPEC = dict(
    invoke_id=dict(type='list', elements='str', aliases=['invoke_ids']),
    command_id=dict(type='str'),
    command_name=dict(type='str'),
    instance_id=dict(type='str'),
    invocation_status=dict(type='list', elements='str', choices=list(OVERALL_STATUSES)),
    repeat_mode=dict(type='str', choices=list(REPEAT_MODES)),
    tags=dict(type='dict'),
    timed=dict(type='bool'),
    created_after=dict(type='str'),
    created_before=dict(type='str'),
    include_output=dict(type='bool', default=False),
    include_history=dict(type='bool', default=False),
    wait=dict(type='bool', default=False),
    wait_timeout=dict(type='int'),
)
RULES = dict(
    required_if=[('wait', True, ('invoke_id',))],
)

_TIME_RE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?'
                      r'\s*(Z|[+-]\d{2}:?\d{2})?$', re.IGNORECASE)


def parse_time(value, option):
    """An ISO 8601 date or date and time (UTC without a zone) -> an aware datetime; CloudAssistantError naming
    ``option`` otherwise."""
    match = _TIME_RE.match((value or '').strip())
    if not match:
        raise invalid('%s: %r is not an ISO 8601 date or date and time (for example 2026-11-22T01:30:00Z)'
                      % (option, value))
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        offset = timezone.utc
        if zone and zone.upper() != 'Z':
            sign = -1 if zone[0] == '-' else 1
            digits = zone[1:].replace(':', '')
            if int(digits[2:]) > 59:
                raise ValueError('the minutes of the UTC offset must be below 60')
            # timezone() refuses offsets of 24 hours or more (ValueError)
            offset = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                        tzinfo=offset)
    except ValueError as exc:
        raise invalid('%s: %r is not a valid time (%s)' % (option, value, exc))


def api_time(value):
    """The API's UTC time text (``2026-11-22T01:32:50Z``, or minute precision) -> aware datetime, or None."""
    if not value:
        return None
    try:
        return parse_time(value, 'CreationTime')
    except Exception:  # pylint: disable=broad-except
        return None


def parameters_of(text):
    """The invocation's ``Parameters`` (JSON text) as a dict ({} when empty or not an object)."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def invocation_fields(invocation):
    """The overall fields of an invocation model (without ``instances``)."""
    def get(name):
        return getattr(invocation, name, None)

    return {
        'invoke_id': get('invoke_id'),
        'command_id': get('command_id'),
        'command_name': get('command_name') or '',
        'command_type': get('command_type'),
        'command_description': get('command_description') or '',
        'command_content': decode_output(get('command_content')),
        'parameters': parameters_of(get('parameters')),
        'repeat_mode': get('repeat_mode'),
        'frequency': get('frequency') or '',
        'timed': bool(get('timed')),
        'timeout': get('timeout'),
        'working_dir': get('working_dir') or '',
        'username': get('username') or '',
        'launcher': get('launcher') or '',
        'creation_time': get('creation_time'),
        'invocation_status': get('invocation_status'),
        'tags': tags_of(invocation),
    }


def history_entry(record, include_output):
    """One run of a scheduled invocation (a DescribeInvocationResults record) in the shape of an instance entry."""
    return instance_entry(record.instance_id, invoke_id=record.invoke_id, model=record,
                          finish_time=getattr(record, 'finished_time', None) or None,
                          output=(record.output or '') if include_output else '',
                          repeats=getattr(record, 'repeats', None))


class CloudAssistantInvocationInfo(object):
    """Lists invocations (or waits for some by ID) and shapes them; changes nothing."""

    def __init__(self, module, max_workers=8, clock=time.monotonic, sleep=time.sleep, schedule=None):
        self.module = module
        self.clock = clock
        self.sleep = sleep
        self.schedule = schedule
        self.params = module.params
        self.max_workers = max_workers
        self.started = module.started
        self.after = self.before = None
        self.api = None

    # -- validation: everything that needs no API call ----------------------------------------------------------
    def validate(self):
        p = self.params
        if p.get('invoke_id') is not None:
            if not p['invoke_id'] or any(not str(i).strip() for i in p['invoke_id']):
                raise invalid('invoke_id must not be empty nor contain empty entries')
        if p.get('tags') is not None:
            if len(p['tags']) > MAX_TAGS:
                raise invalid('tags has %d entries; at most %d are allowed' % (len(p['tags']), MAX_TAGS))
            check_tag_selector(p['tags'], 'tags')   # selecting by a system or collection tag only reads it
        for option in ('command_id', 'command_name', 'instance_id'):
            if p.get(option) is not None and not p[option].strip():
                raise invalid('%s must not be empty' % option)
        if p.get('created_after'):
            self.after = parse_time(p['created_after'], 'created_after')
        if p.get('created_before'):
            self.before = parse_time(p['created_before'], 'created_before')
        if self.after and self.before and self.after >= self.before:
            raise invalid('created_after (%s) must be earlier than created_before (%s)'
                          % (p['created_after'], p['created_before']))
        if p.get('wait_timeout') is not None and not p['wait']:
            raise invalid('wait_timeout needs wait=true')
        check_wait_timeout(p.get('wait_timeout'))

    # -- filters --------------------------------------------------------------------------------------------------
    def matches(self, invocation, check_timed=False):
        """The module's side of every filter (the API applies some, ignores some with InstanceId, lacks others).
        ``check_timed``: compare O(timed) too (an invocation asked for by ID; a listing already filters by it)."""
        p = self.params

        def get(name):
            return getattr(invocation, name, None)

        for option, field in (('command_id', 'command_id'), ('command_name', 'command_name'),
                              ('repeat_mode', 'repeat_mode')):
            if p.get(option) is not None and get(field) != p[option]:
                return False
        if check_timed and p.get('timed') is not None and bool(get('timed')) != p['timed']:
            return False
        if p.get('invocation_status') and get('invocation_status') not in p['invocation_status']:
            return False
        if p.get('instance_id') and p['instance_id'] not in [i.instance_id for i in invoke_instances(invocation)]:
            return False
        if p.get('tags'):
            have = tags_of(invocation)
            if any(have.get(k) != ('' if v is None else str(v)) for k, v in p['tags'].items()):
                return False
        if self.after or self.before:
            created = api_time(get('creation_time'))
            if created is None or (self.after and created < self.after) or (self.before and created >= self.before):
                return False
        return True

    # -- entry point ----------------------------------------------------------------------------------------------
    def run(self):
        self.validate()
        p = self.params
        self.api = self.module.api(self.started + (p.get('wait_timeout') or DEFAULT_TIMEOUT + WAIT_MARGIN) + RETRY_GRACE)
        result = {'changed': False}
        ids = list(dict.fromkeys(i.strip() for i in p['invoke_id'])) if p.get('invoke_id') else None
        if ids is None:
            found = self.listed()
        else:
            known = describe_many(self.api, ids, include_output=p['include_output'] and not p['wait'],
                                  max_workers=self.max_workers)
            missing = [i for i in ids if known.get(i) is None]
            result['missing_invoke_ids'] = missing
            if p['wait'] and missing:
                result.update(self.shape([], ids, result), failed=True,
                              msg='invoke_id: the API does not list %s (a wrong ID, or older than the service keeps)'
                              % listing(missing))
                return result
            if p['wait']:
                failed, latest = self.wait(ids, known, result)
                if failed is not None:
                    return failed
                # the output is fetched once, at the end
                known = (self.with_output(ids, latest) if p['include_output']
                         else dict(known, **dict((i, m) for i, m in latest.items() if m)))
            found = [known[i] for i in ids if known.get(i) is not None and self.matches(known[i], check_timed=True)]
        shaped = self.shape(found, ids, result)
        result.update(shaped)
        result['msg'] = result.get('msg') or '%d invocation(s)' % len(result['invocations'])
        return result

    def listed(self):
        """The invocations the filters select, without O(invoke_id): every page of the API's listing."""
        p = self.params
        # IncludeOutput needs InvokeId or InstanceId: with instance_id the listing brings the output itself
        in_listing = bool(p['include_output'] and p.get('instance_id'))
        passes = []
        found = [inv for inv in list_invocations(self.api, timed=p.get('timed'), tags=p.get('tags'), passes=passes,
                                                 include_output=in_listing or None,
                                                 content_encoding='Base64' if in_listing else None,
                                                 **self.api_filters()) if self.matches(inv)]
        if p.get('tags') and any(count >= TAG_FILTER_CAP for dummy, count in passes):
            self.module.warn('tags: the API lists at most %d invocations for a tag filter and returned %d; the result '
                             'may be incomplete - narrow it with other filters (command_id, instance_id, ...)'
                             % (TAG_FILTER_CAP, max(count for dummy, count in passes)))
        if in_listing:
            for item in (i for inv in found for i in invoke_instances(inv)):
                item.output = decode_output(item.output)
        elif p['include_output'] and found:
            # the listing has no output: ask again per invocation (IncludeOutput needs InvokeId or InstanceId); the
            # invocation may have changed since (a schedule that ended), so the filters are applied again
            again = describe_many(self.api, [inv.invoke_id for inv in found], include_output=True,
                                  max_workers=self.max_workers,
                                  likely_timed=[inv.invoke_id for inv in found if getattr(inv, 'timed', None)])
            found = [again[inv.invoke_id] if again.get(inv.invoke_id) is not None else inv for inv in found]
            found = [inv for inv in found if self.matches(inv, check_timed=p.get('timed') is not None)]
        return found

    def with_output(self, ids, latest):
        """{invoke_id: model} with the output decoded, asked for once at the end of a wait."""
        timed = [i for i, m in latest.items() if m is not None and getattr(m, 'timed', None)]
        return describe_many(self.api, ids, include_output=True, max_workers=self.max_workers, likely_timed=timed)

    def api_filters(self):
        p = self.params
        return dict(command_id=p.get('command_id'), command_name=p.get('command_name'),
                    instance_id=p.get('instance_id'), repeat_mode=p.get('repeat_mode'))

    def wait(self, ids, known, result):
        """Wait for the invocations: (None, {invoke_id: model}) when they finished, else (the failed result, ...).
        With O(instance_id), only that instance of each invocation is waited for."""
        p = self.params
        timeout = p.get('wait_timeout') or max((getattr(inv, 'timeout', None) or DEFAULT_TIMEOUT)
                                               for inv in known.values()) + WAIT_MARGIN
        scope = dict((iid, [p['instance_id']]) for iid in ids) if p.get('instance_id') else None
        if all(invocation_finished(known[iid], (scope or {}).get(iid)) for iid in ids):
            return None, known   # finished already: no poll
        deadline = self.started + timeout
        self.api = self.module.api(deadline + RETRY_GRACE)
        waited = wait_for_invocations(self.api, ids, deadline, max_workers=self.max_workers, started=self.started,
                                      scope=scope, clock=self.clock, sleep=self.sleep, schedule=self.schedule)
        if not waited.timed_out and waited.error is None:
            return None, waited.invocations
        latest = dict((i, waited.invocations.get(i) or known[i]) for i in ids)
        notes = []
        if p['include_output']:
            # the output so far, as cloud_assistant_command returns it on a timeout
            try:
                with_output = self.with_output(ids, latest)
                latest.update((i, m) for i, m in with_output.items() if m is not None)
            except CloudAssistantError as exc:
                notes.append('the output could not be read (%s)' % exc.msg)
        result.update(self.shape([latest[i] for i in ids], ids, result), failed=True)
        if waited.error is not None:
            result.update(waited.error.result())
            msg = '%s - while waiting for %s' % (waited.error.msg, ', '.join(ids))
        else:
            unfinished = [e['instance_id'] for e in result['instances'] if not is_terminal(e['invocation_status'])]
            msg = wait_expired_message(timeout, unfinished, len(result['instances']))
        result['msg'] = '; '.join([msg] + notes + ([result['msg']] if result.get('msg') else []))
        return result, waited.invocations

    # -- shaping --------------------------------------------------------------------------------------------------
    def histories(self, found, result):
        """{invoke_id: {instance_id: [record]}} of the scheduled invocations in ``found``. A failed read fails the
        task (``result`` gets the error and a message) but keeps the statuses: those invocations get no history."""
        p = self.params
        scheduled = [inv.invoke_id for inv in found if getattr(inv, 'repeat_mode', None) in HISTORY_MODES]

        def read(iid):
            try:
                return runs_by_instance(invocation_history(self.api, iid, instance_id=p.get('instance_id'))), None
            except CloudAssistantError as exc:
                return {}, exc

        answers = run_concurrently(read, scheduled, max_workers=self.max_workers)
        errors = [(iid, exc) for iid, (dummy, exc) in zip(scheduled, answers) if exc is not None]
        if errors:
            result.update(errors[0][1].result(), failed=True)
            result['msg'] = 'include_history: %s - while reading the history of %s; the statuses are shown without it' % (
                errors[0][1].msg, listing(iid for iid, dummy in errors))
        return dict((iid, runs) for iid, (runs, dummy) in zip(scheduled, answers))

    def shape(self, found, ids, result):
        """``invocations`` (newest first) and, when ``ids`` were given, the run keys over all of them."""
        p = self.params
        histories = self.histories(found, result) if p['include_history'] else {}
        invocations = []
        for inv in found:
            entries = []
            for item in invoke_instances(inv):
                if p.get('instance_id') and item.instance_id != p['instance_id']:
                    continue
                extra = {}
                if p['include_history']:
                    extra['history'] = [history_entry(r, p['include_output'])
                                        for r in histories.get(inv.invoke_id, {}).get(item.instance_id, [])]
                entries.append(instance_entry(item.instance_id, invoke_id=inv.invoke_id, model=item, **extra))
            invocations.append(dict(invocation_fields(inv), instances=entries))
        shaped = {'invocations': sorted(invocations, key=lambda i: i['creation_time'] or '', reverse=True)}
        if ids is not None:
            shaped.update(run_fields([e for inv in invocations for e in inv['instances']],
                                     [inv['invoke_id'] for inv in invocations]))
        return shaped


def main():
    module = CloudAssistantModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **RULES)
    module.run_resource(CloudAssistantInvocationInfo)


if __name__ == '__main__':
    main()
