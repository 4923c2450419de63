#!/usr/bin/python
# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: cloud_assistant_agent
short_description: Report, install and wait for the Cloud Assistant agent on Alibaba Cloud ECS instances
version_added: 0.1.0
description:
  - Reports the Cloud Assistant agent of every target instance (C(DescribeCloudAssistantStatus), 100 instances per
    call) - whether it is installed and online, its version, last heartbeat, active task count and OS type, and
    whether its version supports what this collection uses.
  - O(state=present) installs the agent where it is missing (C(InstallCloudAssistant), 50 instances per call). The
    service documents that an installation takes effect only after the instance restarts; with O(reboot=true) the
    module restarts the instances it installed on (C(RebootInstance)), and with O(wait=true) it waits until every
    instance reports online.
  - O(state=online) only waits until every agent reports online - for example for instances just created - and
    fails with the list of instances still offline when O(wait_timeout) passes.
  - O(state=query) (the default) only reports.
  - Every result carries RV(instances), one entry per instance with the same keys as the entries of
    M(alicloud_ops.cloud_assistant.cloud_assistant_command) plus the agent's fields, so a playbook can treat the
    results of every module of the collection alike.
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
      - Reports the agents as they are and which instances would be installed (RV(would_install)) and restarted
        (RV(would_reboot)). O(state=online) does not wait in check mode; it reports the instances still offline.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - O(state=present) installs only where the agent is missing; once every instance has it, the task reports no
        change. O(state=query) and O(state=online) never change anything.
      - Until the restart, an instance the agent was installed on still reports no agent (the API cannot tell an
        installation waiting for a restart), so O(state=present) without O(reboot) installs there again on the
        next run and reports a change again.
options:
  instance_ids:
    description:
      - The instances whose agent to report, install or wait for. Any number; duplicates are removed.
      - Every instance must exist in the region and be C(Running), else the task fails before anything changes.
        With O(state=online) an instance in any other status (C(Pending) or C(Starting) after a create or a start)
        is waited for like an offline agent; the failure at O(wait_timeout) names it with its status.
      - Mutually exclusive with O(instance_tags). One of them is required.
    type: list
    elements: str
  instance_tags:
    description:
      - Act on every instance of the region that has all these tags (an empty value matches any value of the key).
      - Matching instances that are not C(Running) are left out with a warning (with O(state=online) they are waited
        for like offline agents). No match is an error.
      - Mutually exclusive with O(instance_ids).
    type: dict
  state:
    description:
      - V(query) reports the agents and changes nothing.
      - V(present) installs the agent on the instances that do not have it (see RV(instances[].installed)), in
        batches of 50 instances per C(InstallCloudAssistant) call; a batch the service refuses because of one of its
        instances (for example C(InvalidInstanceId.OSTypeUnsupported)) is sent again one instance per call, so the
        others still get the agent. With O(reboot=true) those instances are then restarted; with O(wait=true) the
        module then waits for every instance to report online.
      - V(online) waits until the agent of every instance reports online (a heartbeat within the last two minutes)
        and fails with the instances still offline when O(wait_timeout) passes. It installs and restarts nothing.
    type: str
    default: query
    choices: [query, present, online]
  reboot:
    description:
      - With O(state=present), restart the instances the agent was installed on (C(RebootInstance), one call per
        instance, at most 8 at a time), so that the installation takes effect. Instances that already had the
        agent are never restarted.
      - Only used with O(state=present).
    type: bool
    default: false
  wait:
    description:
      - With O(state=present), wait until the agent of every instance reports online (see O(wait_timeout)).
      - Needs O(reboot=true) when the agent is to be installed anywhere, because the installation only takes
        effect after a restart; the module refuses the task before installing anything otherwise.
      - Only used with O(state=present); O(state=online) always waits.
    type: bool
    default: false
  wait_timeout:
    description:
      - How long the module waits for the agents, in seconds, counted from the start of the task.
      - Polling starts at once a second and slows down to every tenth of the time already waited (at most every
        5 seconds); each poll is one C(DescribeCloudAssistantStatus) per 100 instances still offline.
      - API calls are retried (throttling, server errors, lost connections) only within this deadline, plus a few
        seconds.
    type: int
    default: 300
notes:
  - C(InstallCloudAssistant) and C(RebootInstance) take no ClientToken, and an installation shows only after the
    restart, so two tasks with O(state=present) at the same moment both install, both report C(changed), and
    with O(reboot=true) an instance may be restarted twice. A restart refused with C(IncorrectInstanceStatus)
    (the instance is no longer C(Running) - the other task's restart is under way) is taken as that restart - RV(msg)
    says so and the task waits for the agent like the others. The agent ends installed and online either way;
    install from one place (one job, or C(run_once)) to restart each instance once.
  - C(CloudAssistantStatus) is true when the service saw a heartbeat of the agent in the last two minutes; agents
    send one about every minute, so an agent that just stopped may be reported online for up to two minutes, and
    one that just started may take a minute to be seen.
  - The API reports no version for an agent that is installed but not running. The module counts an agent as
    installed when it is online, reports a version, or a heartbeat of it was ever seen; O(state=present) does not
    re-install an agent that is only stopped (start it on the instance, or restart the instance), and with
    O(wait=true) such an instance makes the task fail at O(wait_timeout) with the instances still offline.
  - A brand-new instance has no agent version and no heartbeat yet, so O(state=present) takes it for one without
    an agent and, with O(reboot=true), installs on and restarts it needlessly. For instances just created or
    started, run O(state=online) first (see the examples) and O(state=present) only for those still offline.
  - Two overlapping runs of O(state=present) with O(reboot=true) on the same instances may both install and both
    restart an instance that lacked the agent; the agent ends up installed and online either way.
  - Bad input fails the task before any API call, with the option and the limit in the message.
seealso:
  - name: DescribeCloudAssistantStatus API reference
    description: The status the module reports.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-describecloudassistantstatus
  - name: InstallCloudAssistant API reference
    description: The installation O(state=present) requests.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-installcloudassistant
  - module: alicloud_ops.cloud_assistant.cloud_assistant_command
    description: Runs commands once the agents are online.
'''

EXAMPLES = r'''
- name: Report the agents of the web servers
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    region_id: cn-hangzhou
    instance_tags:
      role: web
  register: agents

- name: Show the instances whose agent is offline or too old to receive files
  ansible.builtin.debug:
    msg: >-
      offline {{ agents.instances | rejectattr('online') | map(attribute='instance_id') | list }},
      no SendFile {{ agents.instances | selectattr('supports.send_file', 'false') | map(attribute='instance_id') | list }}

- name: Wait for the agents of instances created a moment ago
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    instance_ids: "{{ new_instance_ids }}"
    state: online
    wait_timeout: 600

- name: Fresh instances - wait for their own agents first (images ship it), then install where it is still missing
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    instance_ids: "{{ new_instance_ids }}"
    state: online
    wait_timeout: 300
  register: fresh
  ignore_errors: true

- name: Install and restart only on the fresh instances still offline
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    instance_ids: "{{ fresh.offline }}"
    state: present
    reboot: true
    wait: true
  when: fresh.offline | default([]) | length > 0

- name: Install the agent where it is missing, restart those instances and wait until every agent is online
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    instance_tags:
      env: prod
    state: present
    reboot: true
    wait: true
    wait_timeout: 900

- name: Install without restarting now (the agent starts at the next restart, for example in a maintenance window)
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa, i-bp1bbbbbbbbbbbbbbbbb]
    state: present

- name: See which instances would be installed and restarted
  alicloud_ops.cloud_assistant.cloud_assistant_agent:
    instance_tags:
      env: prod
    state: present
    reboot: true
  check_mode: true
  register: plan

- name: Same connection settings for every task of the collection; make sure agents are up before running commands
  module_defaults:
    group/alicloud_ops.cloud_assistant.cloud_assistant:
      region_id: cn-hangzhou
      access_key_id: "{{ vault_alibaba_access_key_id }}"
      access_key_secret: "{{ vault_alibaba_access_key_secret }}"
  block:
    - name: Wait for the agents
      alicloud_ops.cloud_assistant.cloud_assistant_agent:
        instance_tags:
          role: batch
        state: online

    - name: Run the job
      alicloud_ops.cloud_assistant.cloud_assistant_command:
        instance_tags:
          role: batch
        command_content: /opt/jobs/nightly.sh
'''

RETURN = r'''
instances:
  description:
    - One entry per target instance, in the order of O(instance_ids) (or of C(DescribeInstances) for
      O(instance_tags)), as the agent is at the end of the task.
    - The keys of M(alicloud_ops.cloud_assistant.cloud_assistant_command)'s entries are all there (no command runs
      here, so RV(instances[].invoke_id), RV(instances[].invocation_status) and RV(instances[].exit_code) are
      V(null)), plus the agent's fields.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
      sample: i-bp1aaaaaaaaaaaaaaaaa
    installed:
      description:
        - Whether the agent is installed - it is online, reports a version, or a heartbeat of it was ever seen.
        - An installation waiting for the restart does not count.
        - V(null) when the status is unknown (see RV(unknown)).
      type: bool
      sample: true
    online:
      description: Whether the agent is online (C(CloudAssistantStatus) - a heartbeat within the last two minutes).
      type: bool
      sample: true
    agent_version:
      description: The agent's version; V(null) when the API reports none (no agent, or an agent that is not running).
      type: str
      sample: 2.2.3.857
    os_type:
      description:
        - The OS type the agent reports, in lower case (V(linux), V(windows), V(freebsd)).
        - When the agent status has none (no agent), the OS type C(DescribeInstances) reports.
      type: str
      sample: linux
    last_heartbeat:
      description: The time of the agent's last heartbeat (UTC, ISO 8601); V(null) when none was ever seen.
      type: str
      sample: "2026-11-22T01:32:50Z"
    last_invoked:
      description: The time a command last ran on the instance (UTC, ISO 8601); V(null) when none did.
      type: str
      sample: "2026-11-22T01:30:00Z"
    active_task_count:
      description: The number of commands running on the instance (C(ActiveTaskCount)).
      type: int
      sample: 0
    invocation_count:
      description: The number of commands run on the instance so far (C(InvocationCount)).
      type: int
      sample: 12
    supports:
      description:
        - What the agent's version supports.
        - V(send_file) - files can be sent (C(SendFile) needs an agent newer than 1.0.2.569 on Linux and
          1.0.0.149 on Windows).
        - V(builtin_parameters) - built-in parameters such as C({{ACS::InstanceId}}) work (agent 2.2.3.309 or
          later on Linux, 2.1.3.309 or later on Windows).
        - V(rate_at_schedules) - C(rate()) and C(at()) schedules work (agent 2.2.3.282 or later on Linux,
          2.1.3.282 or later on Windows).
        - V(null) for a feature when the version is not known (no agent, or an agent that is not running).
        - V(session_manager) - the session manager can be used (C(SupportSessionManager)).
      type: dict
      sample:
        send_file: true
        builtin_parameters: true
        rate_at_schedules: true
        session_manager: true
    install_sent:
      description: Whether C(InstallCloudAssistant) was sent for this instance (in check mode, would be sent).
      type: bool
      sample: false
    reboot_sent:
      description: Whether the instance was restarted (C(RebootInstance) accepted; in check mode, would be).
      type: bool
      sample: false
    invoke_id:
      description: Always V(null) - kept for the shape shared with the other modules.
      type: str
      sample: null
    invocation_status:
      description: Always V(null) - kept for the shape shared with the other modules.
      type: str
      sample: null
    exit_code:
      description: Always V(null) - kept for the shape shared with the other modules.
      type: int
      sample: null
    output:
      description: Always empty - kept for the shape shared with the other modules.
      type: str
      sample: ""
    dropped:
      description: Always V(0) - kept for the shape shared with the other modules.
      type: int
      sample: 0
    error_code:
      description: The API's error code when installing on or restarting this instance failed; V(null) otherwise.
      type: str
      sample: InvalidInstanceId.OSTypeUnsupported
    error_info:
      description: The API's error message for RV(instances[].error_code); V(null) otherwise.
      type: str
      sample: The operating system of the instance is not supported.
    start_time:
      description: Always V(null) - kept for the shape shared with the other modules.
      type: str
      sample: null
    finish_time:
      description: Always V(null) - kept for the shape shared with the other modules.
      type: str
      sample: null
    skipped:
      description: Always V(false) - kept for the shape shared with the other modules.
      type: bool
      sample: false
offline:
  description: The instances whose agent is not online at the end of the task (in check mode, now).
  returned: always
  type: list
  elements: str
  sample: [i-bp1bbbbbbbbbbbbbbbbb]
unknown:
  description:
    - The instances C(DescribeCloudAssistantStatus) left out of its answer, at the end of the task. Nothing is
      known of their agent (RV(instances[].installed) is V(null)); O(state=present) neither installs on nor
      restarts an instance whose status is unknown, and says so in RV(msg).
  returned: always
  type: list
  elements: str
  sample: []
installed_on:
  description: The instances C(InstallCloudAssistant) was sent for and accepted.
  returned: with O(state=present), outside check mode
  type: list
  elements: str
  sample: [i-bp1bbbbbbbbbbbbbbbbb]
rebooted:
  description: The instances restarted (C(RebootInstance) accepted).
  returned: with O(state=present), outside check mode
  type: list
  elements: str
  sample: [i-bp1bbbbbbbbbbbbbbbbb]
would_install:
  description: The instances the agent would be installed on.
  returned: in check mode, with O(state=present)
  type: list
  elements: str
  sample: [i-bp1bbbbbbbbbbbbbbbbb]
would_reboot:
  description: The instances that would be restarted (with O(reboot=true), the ones in RV(would_install)).
  returned: in check mode, with O(state=present)
  type: list
  elements: str
  sample: [i-bp1bbbbbbbbbbbbbbbbb]
msg:
  description: A summary; on failure, what failed and on which instances.
  returned: always
  type: str
  sample: "3 of 3 agent(s) online"
error:
  description: The API error behind a failure - code, message, request ID, diagnosis link and action.
  returned: when an API call failed
  type: dict
  sample:
    code: InvalidInstanceId.OSTypeUnsupported
    message: The operating system of the instance is not supported.
    request_id: 1B2C3D4E-0000-0000-0000-000000000000
    recommend: https://api.aliyun.com/troubleshoot?q=InvalidInstanceId.OSTypeUnsupported&product=Ecs
    action: InstallCloudAssistant
'''

import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import make_request
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import (
    BATCH_LIMITS,
    chunks,
    run_concurrently,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import check_target_selection, invalid
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import CloudAssistantModule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule, poll
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import instance_entry, listing
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._targets import (
    agent_status,
    resolve_targets,
)

ARGUMENT_SPEC = dict(
    instance_ids=dict(type='list', elements='str'),
    instance_tags=dict(type='dict'),
    state=dict(type='str', default='query', choices=['query', 'present', 'online']),
    reboot=dict(type='bool', default=False),
    wait=dict(type='bool', default=False),
    wait_timeout=dict(type='int', default=300),
)
RULES = dict(
    mutually_exclusive=[('instance_ids', 'instance_tags')],
    required_one_of=[('instance_ids', 'instance_tags')],
)
# InstallCloudAssistant refuses a whole batch for one instance with these codes (ref §2.13 and the common table):
# such a batch is sent again one instance per call, so that one instance does not hold back the others.
PER_INSTANCE_CODES = frozenset(['InvalidInstanceId.OSTypeUnsupported', 'InvalidInstance.NotFound',
                                'InvalidInstanceId.NotFound', 'InvalidInstance.NotMatch', 'IncorrectInstanceStatus'])
RETRY_GRACE = 5      # API retries may run this long past the deadline (the last poll)
REBOOT_WORKERS = 8   # RebootInstance takes one instance per call: at most this many at a time
# Agents heartbeat about once a minute: a poll a second at first is plenty, then the poller's 10 % rule and cap.
AGENT_POLL = PollSchedule(floor=1.0, ratio=0.1, cap=5.0)


class CloudAssistantAgent(object):
    """Reports the agents of the targets; installs, restarts and waits for them (``state``).

    ``module`` needs ``params``, ``check_mode``, ``warn()``, ``started`` and ``api(deadline)``.
    """

    def __init__(self, module, clock=time.monotonic, sleep=time.sleep, schedule=None, max_workers=8):
        self.module = module
        self.params = module.params
        self.check_mode = bool(module.check_mode)
        self.clock, self.sleep, self.max_workers = clock, sleep, max_workers
        self.schedule = schedule or AGENT_POLL
        self.started = getattr(module, 'started', None) or clock()
        self.deadline = self.started + self.params['wait_timeout']
        self.api = None  # built once the input is valid
        self.errors = {}      # instance_id -> CloudAssistantError of its install or restart
        self.install_sent = []
        self.rebooted = []
        self.restarting = []  # RebootInstance refused as the instance was no longer Running: a restart under way
        self.infos = {}       # instance_id -> DescribeInstances model (status, OS type)

    # -- validation: everything that needs no API call ----------------------------------------------------------
    def validate(self):
        p = self.params
        check_target_selection(p.get('instance_ids'), p.get('instance_tags'))
        if p['wait_timeout'] < 1:
            raise invalid('wait_timeout must be at least 1 second, got %d' % p['wait_timeout'])
        if p['state'] != 'present':
            for option in ('reboot', 'wait'):
                if p[option]:
                    raise invalid('%s is only used with state=present (state is %s%s)' % (
                        option, p['state'], '; state=online always waits' if option == 'wait' else ''))

    # -- entry point ----------------------------------------------------------------------------------------------
    def run(self):
        self.validate()
        self.api = self.module.api(self.deadline + RETRY_GRACE)
        p = self.params
        # state=online waits for instances that are not Running yet (just created or started): they are offline
        targets = resolve_targets(self.api, p.get('instance_ids'), p.get('instance_tags'), warn=self.module.warn,
                                  max_workers=self.max_workers, running_only=p['state'] != 'online')
        ids, self.infos = targets.ids, targets.infos
        status = agent_status(self.api, ids, max_workers=self.max_workers)
        if p['state'] == 'present':
            return self.present(ids, status)
        if p['state'] == 'online' and not self.check_mode:
            return self.await_online(ids, status, {'changed': False})
        result = self.report(ids, status, {'changed': False})
        offline = result['offline']
        if p['state'] == 'online':
            result['msg'] = ('check mode: would wait for %d offline agent(s): %s' % (len(offline), listing(offline))
                             if offline else 'check mode: %d agent(s) already online' % len(ids))
        else:
            result['msg'] = '%d of %d agent(s) online%s%s' % (len(ids) - len(offline), len(ids),
                                                              '; offline: %s' % listing(offline) if offline else '',
                                                              self.unknown_note(result))
        return result

    @staticmethod
    def unknown_note(result):
        unknown = result.get('unknown')
        return ('; status unknown (left out of the DescribeCloudAssistantStatus answer, so neither installed on nor '
                'restarted): %s' % listing(unknown)) if unknown else ''

    # -- state=present --------------------------------------------------------------------------------------------
    def present(self, ids, status):
        p = self.params
        # an instance the status answer left out is neither installed nor missing: never installed on or restarted
        missing = [i for i in ids if status[i].installed is False]
        if missing and p['wait'] and not p['reboot']:
            raise invalid('wait=true needs reboot=true here: the agent is missing on %d instance(s) (%s) and an '
                          'installation only takes effect after a restart' % (len(missing), listing(missing)))
        result = {'changed': bool(missing)}
        if self.check_mode:
            would_reboot = list(missing) if p['reboot'] else []
            result = self.report(ids, status, result, install=set(missing), reboot=set(would_reboot))
            result.update(would_install=missing, would_reboot=would_reboot)
            result['msg'] = ('check mode: would install the agent on %d instance(s)%s: %s'
                             % (len(missing), ' and restart them' if p['reboot'] else '', listing(missing))
                             if missing else 'check mode: nothing to install on %d instance(s)' % len(ids))
            result['msg'] += self.unknown_note(result)
            return result
        if missing:
            self.install(missing)
            if p['reboot']:
                sent = set(self.install_sent)
                self.reboot([i for i in missing if i in sent])
        # what really changed: an install the service refused changed nothing
        result.update(changed=bool(self.install_sent or self.rebooted), installed_on=list(self.install_sent),
                      rebooted=list(self.rebooted))
        if p['wait']:
            result = self.await_online(ids, status, result)
            result['msg'] = '%s; %s' % (self.present_message(ids), result['msg'])
        else:
            # what the API says now (an installation does not show before the restart); after a change nothing
            # raises, so that a failure still returns the instances installed on and restarted
            try:
                now = agent_status(self.api, ids, max_workers=self.max_workers) if missing else status
            except CloudAssistantError as exc:
                result = self.report(ids, status, result)
                result.update(exc.result(), failed=True, msg='%s; then %s' % (self.present_message(ids), exc.msg))
            else:
                result = self.report(ids, now, result)
                result['msg'] = self.present_message(ids)
                if result['offline']:
                    result['msg'] += '; offline: %s' % listing(result['offline'])
        result['msg'] += self.unknown_note(dict(unknown=[i for i in ids if not status[i].known]))
        if self.errors:
            result['failed'] = True
            result['msg'] = '%s; %s' % (self.error_message(), result['msg'])
            first = self.errors[next(i for i in ids if i in self.errors)]
            result.update(first.result())
        return result

    def present_message(self, ids):
        done = []
        if self.install_sent:
            done.append('installed the agent on %d instance(s)' % len(self.install_sent))
        if self.rebooted:
            done.append('restarted %d instance(s)' % len(self.rebooted))
        if self.restarting:
            done.append('%d instance(s) were restarting already (another task at the same moment?): %s'
                        % (len(self.restarting), listing(self.restarting)))
        elif self.install_sent and not self.rebooted:
            done.append('it takes effect after the next restart (reboot=true restarts them)')
        if not done:
            done.append('installed nothing' if self.errors else 'the agent is installed on all %d instance(s)' % len(ids))
        return '; '.join(done)

    def install(self, missing):
        """InstallCloudAssistant, 50 instances per call, the batches concurrently. A batch refused for one of its
        instances (``PER_INSTANCE_CODES``) is sent again one instance per call; any other refusal is recorded on
        the batch's instances, and the other batches go on."""
        def send(batch):
            try:
                self.api.call('InstallCloudAssistant', make_request('InstallCloudAssistantRequest',
                                                                    instance_id=list(batch)))
            except CloudAssistantError as exc:
                return exc
            return None

        batches = chunks(missing, BATCH_LIMITS['InstallCloudAssistant'])
        singles = []
        for batch, error in zip(batches, run_concurrently(send, batches, max_workers=self.max_workers)):
            if error is None:
                self.install_sent.extend(batch)
            elif len(batch) > 1 and error.code in PER_INSTANCE_CODES:
                singles.extend(batch)
            else:
                self.errors.update((i, error) for i in batch)
        if singles:
            alone = [[i] for i in singles]
            for (instance_id,), error in zip(alone, run_concurrently(send, alone, max_workers=self.max_workers)):
                if error is None:
                    self.install_sent.append(instance_id)
                else:
                    self.errors[instance_id] = error
        order = dict((i, n) for n, i in enumerate(missing))
        self.install_sent.sort(key=order.get)

    def reboot(self, ids):
        """RebootInstance (one instance per call), at most REBOOT_WORKERS at a time; failures are recorded."""
        def send(instance_id):
            try:
                self.api.call('RebootInstance', make_request('RebootInstanceRequest', instance_id=instance_id))
            except CloudAssistantError as exc:
                return exc
            return None

        workers = min(REBOOT_WORKERS, self.max_workers)
        for instance_id, error in zip(ids, run_concurrently(send, ids, max_workers=workers)):
            if error is None:
                self.rebooted.append(instance_id)
            elif error.code == 'IncorrectInstanceStatus':
                # it was Running a moment ago: another restart (another task at the same moment) is under way; the
                # wait tells whether it comes back
                self.restarting.append(instance_id)
            else:
                self.errors[instance_id] = error

    def error_message(self):
        failed = list(self.errors)
        shown = ', '.join('%s (%s %s)' % (i, self.errors[i].action, self.errors[i].code or self.errors[i].kind)
                          for i in failed[:5])
        more = ' and %d more' % (len(failed) - 5) if len(failed) > 5 else ''
        return 'installing or restarting failed on %d instance(s): %s%s' % (len(failed), shown, more)

    # -- waiting ----------------------------------------------------------------------------------------------------
    def await_online(self, ids, status, result):
        """Poll the agents still offline (but those whose installation or restart failed: they cannot come up)
        until all are online or the deadline passes; the task fails with the instances still offline. At least one
        status call is made after any install or restart, even when they used up the time."""
        known = dict(status)
        pending = [i for i in ids if not known[i].online and i not in self.errors]

        def fetch():
            known.update(agent_status(self.api, [i for i in pending if not known[i].online],
                                      max_workers=self.max_workers))
            return known

        def finished(value):
            return all(value[i].online for i in pending)

        error = None
        if pending:
            outcome = poll(fetch, finished, self.deadline, schedule=self.schedule, clock=self.clock, sleep=self.sleep,
                           started=self.started)
            error = outcome.error
            if error is None and not outcome.polls and (self.install_sent or self.rebooted):
                try:   # the deadline passed before the first poll: one last look
                    fetch()
                except CloudAssistantError as exc:
                    error = exc
        result = self.report(ids, known, result)
        waited = [i for i in pending if not known[i].online]   # offline and not failed: what the wait is about
        failed = [i for i in result['offline'] if i in self.errors]
        if error is not None:
            result.update(error.result(), failed=True,
                          msg='%s - while waiting for the agents; still offline: %s' % (error.msg, listing(waited)))
        elif waited:
            idle = ['%s (%s)' % (i, self.instance_status(i)) for i in waited if self.instance_status(i) != 'Running']
            # an agent that stopped on a running instance (not one whose instance is not running)
            stopped = [i for i in waited if known[i].installed and self.instance_status(i) == 'Running']
            result.update(failed=True, msg='wait_timeout (%d s) expired: %d of %d agent(s) still offline: %s%s%s'
                          % (self.params['wait_timeout'], len(waited), len(ids), listing(waited),
                             ' (%d of them installed but not running - start the agent or restart the instance)'
                             % len(stopped) if stopped else '',
                             '; not Running at the start of the task: %s' % listing(idle) if idle else ''))
        else:
            result['msg'] = '%d of %d agent(s) online%s' % (
                len(ids) - len(failed), len(ids), ' after %.0f s' % (self.clock() - self.started) if pending else '')
            if failed:
                result['msg'] += '; not waited for (installing or restarting failed): %s' % listing(failed)
        return result

    def instance_status(self, instance_id):
        return getattr(self.infos.get(instance_id), 'status', None) or 'Running'

    # -- the result -------------------------------------------------------------------------------------------------
    def report(self, ids, status, result, install=None, reboot=None):
        """``result`` with ``instances`` (one entry per ID) and ``offline``."""
        install = set(self.install_sent) if install is None else install
        reboot = set(self.rebooted) if reboot is None else reboot
        instances = []
        for instance_id in ids:
            error = self.errors.get(instance_id)
            fields = status[instance_id].fields()
            # without an agent the status has no OS type; DescribeInstances knows it
            fields['os_type'] = fields['os_type'] or (
                getattr(self.infos.get(instance_id), 'ostype', None) or '').lower() or None
            instances.append(instance_entry(
                instance_id, install_sent=instance_id in install, reboot_sent=instance_id in reboot,
                error_code=(error.code or error.kind) if error else None,
                error_info=(error.message or error.msg) if error else None, **fields))
        result.update(instances=instances, offline=[e['instance_id'] for e in instances if not e['online']],
                      unknown=[i for i in ids if not status[i].known])
        return result


def main():
    module = CloudAssistantModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **RULES)
    module.run_resource(CloudAssistantAgent)


if __name__ == '__main__':
    main()
