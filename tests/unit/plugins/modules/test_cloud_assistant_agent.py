# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic of cloud_assistant_agent and of the agent status in _targets: the version rule, reading the status,
batching of InstallCloudAssistant, which instances are restarted, waiting and its deadline, check mode - against
a fake API object and a fake clock (no network)."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace as NS

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _agent as A
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _targets as T
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import module_argument_spec
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import instance_entry
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_agent as M

CHANGING = {'InstallCloudAssistant', 'RebootInstance'}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeFleet:
    """Instances with an agent that is 'online', 'stopped' (installed, not running) or 'none'. An installation
    takes effect at the next RebootInstance; the agent then comes online ``boot_seconds`` later. A restart does not
    bring a stopped agent back (so that a test sees a restart the module must not make)."""

    region_id = 'cn-test'

    def __init__(self, clock, agents, ostype='linux', version='2.2.3.857', boot_seconds=10.0):
        self.clock = clock
        self.boot_seconds = boot_seconds
        self.instances = {}
        for iid, state in agents.items():
            self.instances[iid] = {'agent': state, 'ostype': ostype, 'version': version, 'pending': False,
                                   'status': 'Running',
                                   'online_at': None, 'heartbeat': None if state == 'none' else '2026-11-22T01:00:00Z'}
        self.calls = []
        self.lock = threading.Lock()
        self.refuse = {}   # action -> {instance_id: CloudAssistantError}
        self.hidden = set()  # instances DescribeCloudAssistantStatus leaves out of its answer

    def call(self, action, request):
        with self.lock:
            self.calls.append((action, request))
        return getattr(self, action)(request)

    def paginate(self, action, request, extract):
        yield from extract(self.call(action, request)) or ()

    def count(self, action):
        return sum(1 for a, _r in self.calls if a == action)

    def requests(self, action):
        return [r for a, r in self.calls if a == action]

    def _refused(self, action, ids):
        for iid in ids:
            if iid in self.refuse.get(action, {}):
                raise self.refuse[action][iid]

    def _online(self, info):
        if info['online_at'] is not None and self.clock() >= info['online_at']:
            info.update(agent='online', online_at=None, heartbeat='2026-11-22T02:00:00Z')
        return info['agent'] == 'online'

    def DescribeInstances(self, request):
        ids = json.loads(request.instance_ids)
        return NS(instances=NS(instance=[NS(instance_id=i, status=self.instances[i]['status'],
                                            ostype=self.instances[i]['ostype'])
                                         for i in ids if i in self.instances]), next_token='')

    def DescribeCloudAssistantStatus(self, request):
        assert len(request.instance_id) <= 100
        items = []
        for iid in request.instance_id:
            if iid in self.hidden:
                continue
            info = self.instances[iid]
            online = self._online(info)
            items.append(NS(instance_id=iid, cloud_assistant_status='true' if online else 'false',
                            cloud_assistant_version=info['version'] if online else '',
                            ostype=info['ostype'].capitalize(), last_heartbeat_time=info['heartbeat'] or '',
                            last_invoked_time='', active_task_count=0, invocation_count=0,
                            support_session_manager=info['agent'] != 'none'))
        return NS(instance_cloud_assistant_status_set=NS(instance_cloud_assistant_status=items))

    def InstallCloudAssistant(self, request):
        assert 1 <= len(request.instance_id) <= 50
        self._refused('InstallCloudAssistant', request.instance_id)
        for iid in request.instance_id:
            if self.instances[iid]['agent'] == 'none':
                self.instances[iid]['pending'] = True
        return NS(request_id='r')

    def RebootInstance(self, request):
        self._refused('RebootInstance', [request.instance_id])
        info = self.instances[request.instance_id]
        if info['pending']:
            info.update(pending=False, online_at=self.clock() + self.boot_seconds)
        return NS(request_id='r')


class ExplodingApi:
    """Any API use is a test failure (validation must come first)."""

    region_id = 'cn-test'

    def call(self, action, request):
        raise AssertionError('API called: %s' % action)

    def paginate(self, action, request, extract):
        raise AssertionError('API called: %s' % action)


DEFAULTS = dict((name, spec.get('default')) for name, spec in module_argument_spec(M.ARGUMENT_SPEC).items())


def run(api, clock=None, check_mode=False, max_workers=8, **params):
    clock = clock or Clock()
    values = dict(DEFAULTS)
    values.update(params)
    warnings = []
    mod = NS(params=values, check_mode=check_mode, warn=warnings.append, started=clock(), api=lambda deadline: api)
    return M.CloudAssistantAgent(mod, clock=clock, sleep=clock.sleep, max_workers=max_workers).run()


def error_of(api=None, **params):
    with pytest.raises(CloudAssistantError) as info:
        run(api or ExplodingApi(), **params)
    return info.value.msg


def fleet(n_online=0, n_none=0, n_stopped=0, **kwargs):
    clock = Clock()
    agents = {}
    for prefix, count, state in (('i-on', n_online, 'online'), ('i-no', n_none, 'none'), ('i-st', n_stopped, 'stopped')):
        agents.update(('%s%03d' % (prefix, n), state) for n in range(count))
    return FakeFleet(clock, agents, **kwargs), clock, list(agents)


# -- the version rule and the status model (_targets) -------------------------------------------------------------

@pytest.mark.parametrize('version, os_type, expected', [
    ('1.0.2.570', 'linux', True),
    ('1.0.2.569', 'linux', False),      # "greater than", not "at least"
    ('1.0.2.100', 'linux', False),
    ('2.2.3.857', 'linux', True),
    ('1.0.0.150', 'windows', True),
    ('1.0.0.149', 'windows', False),
    ('1.0.1', 'windows', True),         # fewer parts compare as tuples
    ('', 'linux', None),                # no version: unknown
    (None, 'windows', None),
    ('x.y', 'linux', None),
    ('2.2.3.857', 'freebsd', None),     # no rule for the OS
])
def test_send_file_version_rule(version, os_type, expected):
    assert A.agent_supports(version, os_type)['send_file'] is expected


@pytest.mark.parametrize('feature, version, os_type, expected', [
    # "at least" versions: the minimum itself is enough
    ('builtin_parameters', '2.2.3.309', 'linux', True),
    ('builtin_parameters', '2.2.3.308', 'linux', False),
    ('builtin_parameters', '2.1.3.309', 'windows', True),
    ('builtin_parameters', '2.1.3.308', 'windows', False),
    ('builtin_parameters', '2.2.3.309', 'windows', True),
    ('rate_at_schedules', '2.2.3.282', 'linux', True),
    ('rate_at_schedules', '2.2.3.281', 'linux', False),
    ('rate_at_schedules', '2.1.3.282', 'windows', True),
    ('rate_at_schedules', '2.1.3.281', 'windows', False),
    ('rate_at_schedules', '1.0.2.570', 'linux', False),
    ('rate_at_schedules', None, 'linux', None),
])
def test_at_least_version_rules(feature, version, os_type, expected):
    assert A.agent_supports(version, os_type)[feature] is expected


def test_every_feature_rule_has_a_known_operator_and_a_valid_version():
    for feature, rules in A.AGENT_FEATURES.items():
        assert set(rules) == {'linux', 'windows'}, feature
        for op, version in rules.values():
            assert op in ('>', '>=') and A.version_tuple(version), feature


def test_status_of_a_stopped_agent_counts_as_installed_and_an_unknown_instance_as_neither():
    stopped = T.AgentStatus('i-a', NS(cloud_assistant_status='false', cloud_assistant_version='', ostype='Linux',
                                      last_heartbeat_time='2026-11-22T01:00:00Z', last_invoked_time='',
                                      active_task_count=0, invocation_count=3, support_session_manager=True))
    assert (stopped.online, stopped.installed, stopped.version, stopped.os_type) == (False, True, None, 'linux')
    assert stopped.fields()['supports'] == {'send_file': None, 'builtin_parameters': None, 'rate_at_schedules': None,
                                            'session_manager': True}
    unknown = T.AgentStatus('i-b')
    assert (unknown.online, unknown.installed, unknown.last_heartbeat, unknown.active_task_count) == (False, None, None, 0)
    never = T.AgentStatus('i-d', NS(cloud_assistant_status='false', cloud_assistant_version='', ostype='Linux',
                                    last_heartbeat_time=''))
    assert never.known and never.installed is False
    online = T.AgentStatus('i-c', NS(cloud_assistant_status=True, cloud_assistant_version='2.1.3.857',
                                     ostype='Windows', active_task_count='2'))
    assert online.online and online.installed and online.active_task_count == 2
    assert online.supports()['send_file'] is True


def test_agent_status_asks_100_at_a_time_and_keeps_order():
    api, _clock, ids = fleet(n_online=150, n_none=60)
    status = T.agent_status(api, ids, max_workers=1)
    assert list(status) == ids
    assert [len(r.instance_id) for r in api.requests('DescribeCloudAssistantStatus')] == [100, 100, 10]
    assert T.offline_agents(api, ids) == ids[150:]


def test_an_instance_left_out_of_the_status_answer_is_unknown_not_missing():
    api, _clock, ids = fleet(n_online=1, n_none=1)
    api.hidden.add(ids[1])
    status = T.agent_status(api, ids)
    assert status[ids[0]].known and status[ids[0]].installed is True
    assert not status[ids[1]].known and status[ids[1]].installed is None and not status[ids[1]].online
    assert status[ids[1]].fields()['installed'] is None


def test_agent_status_reads_the_next_page_when_an_answer_holds_fewer_items_than_asked_for():
    api, _clock, ids = fleet(n_online=3)
    real = api.DescribeCloudAssistantStatus

    def paged(request):
        body = real(request)
        items = body.instance_cloud_assistant_status_set.instance_cloud_assistant_status
        start = int(getattr(request, 'next_token', None) or 0)
        body.instance_cloud_assistant_status_set.instance_cloud_assistant_status = items[start:start + 2]
        body.next_token = str(start + 2) if start + 2 < len(items) else ''
        return body

    api.DescribeCloudAssistantStatus = paged
    status = T.agent_status(api, ids)
    assert all(status[i].known and status[i].online for i in ids)
    assert api.count('DescribeCloudAssistantStatus') == 2


# -- validation before any call -----------------------------------------------------------------------------------

@pytest.mark.parametrize('params, says', [
    (dict(instance_ids=[]), 'instance_ids must not be empty'),
    (dict(instance_ids=['i-a', ' ']), 'instance_ids must not contain empty entries'),
    (dict(instance_tags={}), 'instance_tags must not be empty'),
    (dict(instance_tags={'a' * 129: 'x'}), 'instance_tags'),
    (dict(instance_ids=['i-a'], wait_timeout=0), 'wait_timeout must be at least 1 second'),
    (dict(instance_ids=['i-a'], reboot=True), 'reboot is only used with state=present'),
    (dict(instance_ids=['i-a'], state='online', wait=True), 'state=online always waits'),
])
def test_bad_input_is_refused_before_any_call(params, says):
    assert says in error_of(**params)


# -- query ---------------------------------------------------------------------------------------------------------

def test_query_reports_every_instance_with_the_shared_entry_shape():
    api, clock, ids = fleet(n_online=2, n_none=1, n_stopped=1)
    result = run(api, clock, instance_ids=ids)
    assert not result['changed'] and 'failed' not in result
    assert [e['instance_id'] for e in result['instances']] == ids
    assert set(instance_entry('x')) <= set(result['instances'][0])
    assert result['offline'] == ids[2:]
    by_id = dict((e['instance_id'], e) for e in result['instances'])
    assert by_id['i-st000']['installed'] and not by_id['i-st000']['online']
    assert not by_id['i-no000']['installed']
    assert result['msg'] == '2 of 4 agent(s) online; offline: i-no000, i-st000'
    assert not CHANGING & set(a for a, _r in api.calls)


# -- state=present -------------------------------------------------------------------------------------------------

def test_present_installs_in_batches_of_50_only_where_missing_and_does_not_restart_without_reboot():
    api, clock, ids = fleet(n_online=3, n_none=120, n_stopped=2)
    result = run(api, clock, instance_ids=ids, state='present')
    assert result['changed'] and 'failed' not in result
    batches = [list(r.instance_id) for r in api.requests('InstallCloudAssistant')]
    assert sorted(len(b) for b in batches) == [20, 50, 50]
    assert sorted(sum(batches, [])) == sorted(ids[3:123])     # a stopped agent is installed: not re-installed
    assert result['installed_on'] == ids[3:123] and result['rebooted'] == []
    assert api.count('RebootInstance') == 0
    assert 'after the next restart' in result['msg']


def test_present_with_reboot_and_wait_restarts_only_the_installed_ones_and_waits_until_online():
    api, clock, ids = fleet(n_online=2, n_none=3, boot_seconds=12.0)
    start = clock()
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=60)
    assert result['changed'] and 'failed' not in result, result['msg']
    assert sorted(r.instance_id for r in api.requests('RebootInstance')) == ids[2:]
    assert result['rebooted'] == ids[2:] and result['offline'] == []
    assert [e['reboot_sent'] for e in result['instances']] == [False, False, True, True, True]
    assert all(e['online'] and e['installed'] and e['agent_version'] for e in result['instances'])
    assert 12.0 <= clock() - start < 20.0                      # seen soon after the agents came up
    # the wait only asks for the agents still offline
    assert all(set(r.instance_id) <= set(ids[2:]) for r in api.requests('DescribeCloudAssistantStatus')[1:])


def test_present_never_restarts_an_instance_whose_agent_is_only_stopped_and_fails_at_the_timeout_naming_it():
    api, clock, ids = fleet(n_online=1, n_none=1, n_stopped=2, boot_seconds=5.0)
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=30)
    assert [r.instance_id for r in api.requests('RebootInstance')] == [ids[1]]
    assert [list(r.instance_id) for r in api.requests('InstallCloudAssistant')] == [[ids[1]]]
    assert result['failed'] and result['changed']
    assert result['rebooted'] == [ids[1]] and result['offline'] == ids[2:]
    assert [e['reboot_sent'] for e in result['instances']] == [False, True, False, False]
    assert result['msg'] == ('installed the agent on 1 instance(s); restarted 1 instance(s); wait_timeout (30 s) '
                             'expired: 2 of 4 agent(s) still offline: i-st000, i-st001 (2 of them installed but not '
                             'running - start the agent or restart the instance)')
    assert 30.0 <= clock() - 1000.0 <= 31.0


def test_present_is_idempotent_when_every_agent_is_there():
    api, clock, ids = fleet(n_online=4)
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True)
    assert not result['changed'] and 'failed' not in result
    assert result['installed_on'] == [] and result['rebooted'] == []
    assert not CHANGING & set(a for a, _r in api.calls)


def test_present_wait_without_reboot_is_refused_before_anything_changes():
    api, clock, ids = fleet(n_online=1, n_none=1)
    assert 'wait=true needs reboot=true' in error_of(api, instance_ids=ids, state='present', wait=True)
    assert not CHANGING & set(a for a, _r in api.calls)


def test_check_mode_reports_what_would_be_installed_and_restarted():
    api, clock, ids = fleet(n_online=1, n_none=2)
    result = run(api, clock, check_mode=True, instance_ids=ids, state='present', reboot=True, wait=True)
    assert result['changed']
    assert result['would_install'] == ids[1:] and result['would_reboot'] == ids[1:]
    assert [e['install_sent'] for e in result['instances']] == [False, True, True]
    assert not CHANGING & set(a for a, _r in api.calls)
    no_reboot = run(api, clock, check_mode=True, instance_ids=ids, state='present')
    assert no_reboot['would_reboot'] == [] and not any(e['reboot_sent'] for e in no_reboot['instances'])


def test_present_never_installs_on_or_restarts_an_instance_of_unknown_status():
    api, clock, ids = fleet(n_online=1, n_none=2)
    api.hidden.add(ids[2])
    check = run(api, clock, check_mode=True, instance_ids=ids, state='present', reboot=True)
    assert check['would_install'] == [ids[1]] and check['would_reboot'] == [ids[1]]
    assert check['unknown'] == [ids[2]]
    assert check['msg'] == ('check mode: would install the agent on 1 instance(s) and restart them: %s; status unknown '
                            '(left out of the DescribeCloudAssistantStatus answer, so neither installed on nor '
                            'restarted): %s' % (ids[1], ids[2]))
    result = run(api, clock, instance_ids=ids, state='present', reboot=True)
    assert [list(r.instance_id) for r in api.requests('InstallCloudAssistant')] == [[ids[1]]]
    assert [r.instance_id for r in api.requests('RebootInstance')] == [ids[1]]
    assert result['unknown'] == [ids[2]] and result['installed_on'] == [ids[1]]
    entry = result['instances'][2]
    assert entry['installed'] is None and not entry['online'] and not entry['install_sent']
    assert result['msg'].endswith('neither installed on nor restarted): %s' % ids[2])


def test_a_refused_batch_fails_the_task_naming_its_instances_and_the_others_go_on():
    api, clock, ids = fleet(n_none=60)
    api.refuse['InstallCloudAssistant'] = {ids[0]: CloudAssistantError(
        'InstallCloudAssistant failed: InvalidInstanceId.OSTypeUnsupported', action='InstallCloudAssistant',
        code='InvalidInstanceId.OSTypeUnsupported', message='unsupported', kind='api')}
    api.refuse['InstallCloudAssistant'].update((i, api.refuse['InstallCloudAssistant'][ids[0]]) for i in ids[1:50])
    api.refuse['RebootInstance'] = {ids[55]: CloudAssistantError(
        'RebootInstance failed: InvalidInstanceId.NotFound', action='RebootInstance', code='InvalidInstanceId.NotFound',
        message='released', kind='api')}
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=60)
    assert result['failed'] and result['changed']
    assert result['installed_on'] == ids[50:]                  # each of the first 50 is refused, alone too
    assert result['rebooted'] == [i for i in ids[50:] if i != ids[55]]
    failed = ids[:50] + [ids[55]]
    refused = ' (InstallCloudAssistant InvalidInstanceId.OSTypeUnsupported)'
    assert result['msg'] == (
        'installing or restarting failed on 51 instance(s): %s and 46 more; installed the agent on 10 instance(s); '
        'restarted 9 instance(s); 9 of 60 agent(s) online after 10 s; not waited for (installing or restarting '
        'failed): %s' % (', '.join(i + refused for i in ids[:5]), ', '.join(failed[:10]) + ' and 41 more'))
    assert result['error']['code'] == 'InvalidInstanceId.OSTypeUnsupported'
    entries = dict((e['instance_id'], e) for e in result['instances'])
    assert entries[ids[0]]['error_code'] == 'InvalidInstanceId.OSTypeUnsupported'
    assert entries[ids[55]]['error_code'] == 'InvalidInstanceId.NotFound'
    assert entries[ids[56]]['online'] and entries[ids[56]]['error_code'] is None
    # instances that failed are not waited for: the task ends as soon as the others are online
    assert clock() - 1000.0 < 20.0


def test_a_batch_refused_for_one_instance_is_sent_again_one_by_one():
    api, clock, ids = fleet(n_none=60)
    unsupported = CloudAssistantError('InstallCloudAssistant failed: InvalidInstanceId.OSTypeUnsupported',
                                      action='InstallCloudAssistant', code='InvalidInstanceId.OSTypeUnsupported',
                                      message='unsupported', kind='api')
    api.refuse['InstallCloudAssistant'] = {ids[3]: unsupported, ids[52]: unsupported}
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=60)
    assert result['failed'] and result['changed']
    assert result['installed_on'] == [i for i in ids if i not in (ids[3], ids[52])]
    assert result['rebooted'] == result['installed_on'] and result['offline'] == [ids[3], ids[52]]
    sizes = sorted(len(r.instance_id) for r in api.requests('InstallCloudAssistant'))
    assert sizes == [1] * 60 + [10, 50]                         # both batches again, one instance per call
    assert result['msg'].startswith('installing or restarting failed on 2 instance(s): %s (InstallCloudAssistant '
                                    'InvalidInstanceId.OSTypeUnsupported), %s (' % (ids[3], ids[52]))
    entries = dict((e['instance_id'], e) for e in result['instances'])
    assert entries[ids[3]]['error_code'] == 'InvalidInstanceId.OSTypeUnsupported'
    assert entries[ids[4]]['error_code'] is None and entries[ids[4]]['online']


def test_a_batch_refused_for_another_reason_is_not_sent_again():
    api, clock, ids = fleet(n_none=3)
    api.refuse['InstallCloudAssistant'] = {ids[0]: CloudAssistantError(
        'InstallCloudAssistant failed: Operation.Forbidden', action='InstallCloudAssistant', code='Operation.Forbidden',
        message='forbidden', kind='api')}
    result = run(api, clock, instance_ids=ids, state='present')
    assert api.count('InstallCloudAssistant') == 1 and result['installed_on'] == [] and result['failed']


def test_every_batch_refused_changes_nothing_and_says_so():
    api, clock, ids = fleet(n_online=1, n_none=3)
    api.refuse['InstallCloudAssistant'] = dict((i, CloudAssistantError(
        'InstallCloudAssistant failed: Operation.Forbidden', action='InstallCloudAssistant', code='Operation.Forbidden',
        message='forbidden', kind='api')) for i in ids[1:])
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=60)
    assert result['failed'] and not result['changed']
    assert result['installed_on'] == [] and result['rebooted'] == [] and api.count('RebootInstance') == 0
    assert result['msg'] == ('installing or restarting failed on 3 instance(s): %s; installed nothing; 1 of 4 agent(s) '
                             'online; not waited for (installing or restarting failed): %s'
                             % (', '.join('%s (InstallCloudAssistant Operation.Forbidden)' % i for i in ids[1:]),
                                ', '.join(ids[1:])))
    assert clock() == 1000.0                                   # nothing to wait for: no time spent
    without_wait = run(api, clock, instance_ids=ids, state='present')
    assert without_wait['failed'] and not without_wait['changed']
    assert 'installed on all' not in without_wait['msg'] and 'installed nothing' in without_wait['msg']


def test_a_wait_whose_time_went_on_install_and_restart_still_looks_once_more():
    api, clock, ids = fleet(n_online=1, n_none=2, boot_seconds=0.0)
    real = api.RebootInstance

    def slow_reboot(request):
        clock.now += 40.0                                      # two restarts use up the 60 s
        return real(request)

    api.RebootInstance = slow_reboot
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=60,
                 max_workers=1)
    assert 'failed' not in result, result['msg']
    assert result['offline'] == [] and result['changed']
    assert result['msg'] == 'installed the agent on 2 instance(s); restarted 2 instance(s); 3 of 3 agent(s) online after 80 s'


# -- state=online --------------------------------------------------------------------------------------------------

def test_online_fails_at_the_deadline_naming_the_offline_agents():
    api, clock, ids = fleet(n_online=2, n_stopped=1, n_none=1)
    result = run(api, clock, instance_ids=ids, state='online', wait_timeout=30)
    assert result['failed'] and not result['changed']
    assert result['offline'] == ids[2:]
    assert result['msg'] == ('wait_timeout (30 s) expired: 2 of 4 agent(s) still offline: i-no000, i-st000 (1 of them '
                             'installed but not running - start the agent or restart the instance)')
    assert 30.0 <= clock() - 1000.0 <= 31.0
    polls = api.count('DescribeCloudAssistantStatus')
    assert 6 <= polls <= 32                                   # a poll a second at first, then slower
    assert not CHANGING & set(a for a, _r in api.calls)


def test_online_waits_for_agents_that_come_up():
    api, clock, ids = fleet(n_online=1, n_stopped=1, boot_seconds=5.0)
    api.instances[ids[1]]['online_at'] = clock() + 5.0
    result = run(api, clock, instance_ids=ids, state='online')
    assert 'failed' not in result and not result['changed']
    assert result['msg'].startswith('2 of 2 agent(s) online after')
    assert result['offline'] == []


def test_online_waits_for_an_instance_that_is_still_starting():
    api, clock, ids = fleet(n_online=1, n_stopped=1)
    api.instances[ids[1]].update(status='Starting', online_at=clock() + 5.0)
    result = run(api, clock, instance_ids=ids, state='online', wait_timeout=30)
    assert 'failed' not in result, result['msg']
    assert result['offline'] == [] and result['msg'] == '2 of 2 agent(s) online after 5 s'
    # present still needs Running instances (InstallCloudAssistant and RebootInstance do)
    api.instances[ids[1]]['status'] = 'Pending'
    assert 'instance_ids: 1 instance(s) are not Running: %s (Pending)' % ids[1] in error_of(
        api, instance_ids=ids, state='present')


def test_online_fails_at_the_deadline_naming_an_instance_that_never_started():
    api, clock, ids = fleet(n_online=1, n_stopped=1)
    api.instances[ids[1]]['status'] = 'Stopped'
    result = run(api, clock, instance_ids=ids, state='online', wait_timeout=10)
    assert result['failed'] and result['offline'] == [ids[1]]
    assert result['msg'] == ('wait_timeout (10 s) expired: 1 of 2 agent(s) still offline: i-st000; not Running at the '
                             'start of the task: i-st000 (Stopped)')


def test_an_instance_without_agent_status_gets_its_os_type_from_describe_instances():
    api, clock, ids = fleet(n_online=1, n_none=1, ostype='windows')
    api.hidden.add(ids[1])
    result = run(api, clock, instance_ids=ids)
    assert [e['os_type'] for e in result['instances']] == ['windows', 'windows']


def test_online_in_check_mode_does_not_wait():
    api, clock, ids = fleet(n_online=1, n_stopped=1)
    result = run(api, clock, check_mode=True, instance_ids=ids, state='online')
    assert 'failed' not in result and clock() == 1000.0
    assert result['msg'] == 'check mode: would wait for 1 offline agent(s): i-st000'


def test_an_api_error_while_waiting_fails_with_what_is_known():
    api, clock, ids = fleet(n_online=1, n_stopped=1)
    real = api.DescribeCloudAssistantStatus
    seen = []

    def flaky(request):
        seen.append(1)
        if len(seen) > 1:
            raise CloudAssistantError('DescribeCloudAssistantStatus failed: Forbidden.RAM', code='Forbidden.RAM',
                                      action='DescribeCloudAssistantStatus', kind='api')
        return real(request)

    api.DescribeCloudAssistantStatus = flaky
    result = run(api, clock, instance_ids=ids, state='online')
    assert result['failed'] and result['offline'] == ids[1:]
    assert result['error']['code'] == 'Forbidden.RAM'
    assert 'while waiting for the agents; still offline: i-st000' in result['msg']


def test_an_api_error_after_the_installation_still_returns_where_it_was_installed():
    api, clock, ids = fleet(n_online=1, n_none=2)
    real = api.DescribeCloudAssistantStatus

    def after_install(request):
        if api.count('InstallCloudAssistant'):
            raise CloudAssistantError('DescribeCloudAssistantStatus failed: ServiceUnavailable', kind='api',
                                      code='ServiceUnavailable', action='DescribeCloudAssistantStatus')
        return real(request)

    api.DescribeCloudAssistantStatus = after_install
    result = run(api, clock, instance_ids=ids, state='present')
    assert result['failed'] and result['changed']
    assert result['installed_on'] == ids[1:]
    assert result['error']['code'] == 'ServiceUnavailable'
    assert result['msg'].startswith('installed the agent on 2 instance(s)')


def test_a_restart_refused_while_another_task_restarts_the_instance_is_waited_for():
    """Two tasks at the same moment: the other one's RebootInstance came first, so this one's is refused with
    IncorrectInstanceStatus (the instance is Stopping or Starting); the agent comes up from that restart."""
    api, clock, ids = fleet(n_online=1, n_none=2)
    refused = CloudAssistantError('RebootInstance failed: IncorrectInstanceStatus', action='RebootInstance',
                                  code='IncorrectInstanceStatus', message='bad status', kind='api')
    api.refuse['RebootInstance'] = {ids[2]: refused}
    original = api.InstallCloudAssistant

    def install_and_restart_elsewhere(request):
        answer = original(request)
        api.instances[ids[2]].update(pending=False, online_at=clock() + api.boot_seconds)  # the other task's restart
        return answer

    api.InstallCloudAssistant = install_and_restart_elsewhere
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=60)
    assert result['changed'] and 'failed' not in result and result['offline'] == []
    assert result['rebooted'] == [ids[1]] and result['installed_on'] == ids[1:]
    assert '1 instance(s) were restarting already (another task at the same moment?): %s' % ids[2] in result['msg']
    # without that other restart the task fails at its wait_timeout, naming the instance
    api, clock, ids = fleet(n_none=1)
    api.refuse['RebootInstance'] = {ids[0]: refused}
    result = run(api, clock, instance_ids=ids, state='present', reboot=True, wait=True, wait_timeout=20)
    assert result['failed'] and result['offline'] == ids
