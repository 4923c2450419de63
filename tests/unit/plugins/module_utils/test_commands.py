# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure logic of cloud_assistant_command: validation, batching and merging of results, idempotency decisions for
saved commands and scheduled runs, guards and check mode - against a fake API object (no network)."""

from __future__ import annotations

import base64
import itertools
import json
import threading
from types import SimpleNamespace as NS

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _claims as CL
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _frequency as F
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _guards as G
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _limits as L
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _results as R
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _runner as RUN
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _schedules as SCH
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _status as S
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import describe_invocation, stop_live
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import module_argument_spec
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_command as M

MUTATING = {'RunCommand', 'InvokeCommand', 'CreateCommand', 'ModifyCommand', 'DeleteCommand', 'StopInvocation'}


# ---------------------------------------------------------------------------------------------------------------
# A fake ECS API: enough of the Cloud Assistant actions for the workflow, answers shaped like the SDK's models
# ---------------------------------------------------------------------------------------------------------------

def _tag_pairs(tags):
    return [(t.key, t.value) for t in (tags or [])]


class FakeCloud:
    region_id = 'cn-test'

    def __init__(self, linux=3, windows=0, stopped=(), offline=(), tags=None):
        self.instances = {}
        for n in range(linux):
            self.instances['i-l%03d' % n] = {'status': 'Running', 'ostype': 'linux', 'tags': {}, 'agent': True}
        for n in range(windows):
            self.instances['i-w%03d' % n] = {'status': 'Running', 'ostype': 'windows', 'tags': {}, 'agent': True}
        for i in stopped:
            self.instances[i]['status'] = 'Stopped'
        for i in offline:
            self.instances[i]['agent'] = False
        for i, t in (tags or {}).items():
            self.instances[i]['tags'] = t
        self.commands = {}
        self.invocations = {}
        self.calls = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.tokens = {}
        # (instance_id, content) -> (status, exit_code, output bytes, error_code)
        self.behaviour = lambda instance_id, content: ('Success', 0, b'ok\n', '')
        self.refuse = {}     # action -> CloudAssistantError raised for batches containing a given instance
        self.hang = False     # invocations never finish

    # -- plumbing ------------------------------------------------------------------------------------------------
    def call(self, action, request):
        with self.lock:
            self.calls.append((action, request))
        return getattr(self, action)(request)

    def paginate(self, action, request, extract):
        yield from extract(self.call(action, request)) or ()

    def count(self, action):
        return sum(1 for a, _r in self.calls if a == action)

    def mutating_calls(self):
        return [a for a, _r in self.calls if a in MUTATING]

    def _new(self, prefix):
        return '%s-%06d' % (prefix, next(self.ids))

    # -- instances -----------------------------------------------------------------------------------------------
    def DescribeInstances(self, request):
        ids = json.loads(request.instance_ids) if getattr(request, 'instance_ids', None) else None
        assert ids is None or len(ids) <= 100
        found = []
        for iid, info in self.instances.items():
            if ids is not None and iid not in ids:
                continue
            wanted = _tag_pairs(getattr(request, 'tag', None))
            if any(info['tags'].get(k) is None or (v not in (None, '') and info['tags'][k] != v) for k, v in wanted):
                continue
            found.append(NS(instance_id=iid, status=info['status'], ostype=info['ostype']))
        return NS(instances=NS(instance=found), next_token='')

    def DescribeCloudAssistantStatus(self, request):
        assert len(request.instance_id) <= 100
        items = [NS(instance_id=i, cloud_assistant_status='true' if self.instances[i]['agent'] else 'false')
                 for i in request.instance_id]
        return NS(instance_cloud_assistant_status_set=NS(instance_cloud_assistant_status=items))

    # -- runs ----------------------------------------------------------------------------------------------------
    def _start(self, request, command_id, content, repeat_mode):
        token = getattr(request, 'client_token', None)
        if token and token in self.tokens:
            return self.tokens[token]
        for iid in request.instance_id:
            if iid in self.refuse.get(type(request).__name__, {}):
                raise self.refuse[type(request).__name__][iid]
        assert len(request.instance_id) <= 100
        invoke_id = self._new('t')
        rows = {}
        for iid in request.instance_id:
            if repeat_mode != 'Once':
                rows[iid] = {'status': 'Scheduled', 'exit': None, 'out': b'', 'err': ''}
            elif self.hang:
                rows[iid] = {'status': 'Running', 'exit': None, 'out': b'', 'err': ''}
            else:
                status, code, out, err = self.behaviour(iid, content)
                rows[iid] = {'status': status, 'exit': code, 'out': out, 'err': err}
        self.invocations[invoke_id] = {'command_id': command_id, 'rows': rows, 'repeat_mode': repeat_mode,
                                       'tags': dict(_tag_pairs(getattr(request, 'tag', None))),
                                       'request': request}
        answer = NS(invoke_id=invoke_id, command_id=command_id)
        if token:
            self.tokens[token] = answer
        return answer

    def RunCommand(self, request):
        content = base64.b64decode(request.command_content).decode('utf-8')
        return self._start(request, self._new('c'), content, getattr(request, 'repeat_mode', 'Once') or 'Once')

    def InvokeCommand(self, request):
        command = self.commands[request.command_id]
        return self._start(request, request.command_id, command['content'],
                           getattr(request, 'repeat_mode', 'Once') or 'Once')

    def _invocation_model(self, invoke_id, include_output):
        inv = self.invocations[invoke_id]
        items = []
        for iid, row in inv['rows'].items():
            items.append(NS(instance_id=iid, invocation_status=row['status'], exit_code=row['exit'], dropped=0,
                            error_code=row['err'], error_info='', start_time='2026-01-01T00:00:00Z',
                            finish_time='2026-01-01T00:00:01Z',
                            output=base64.b64encode(row['out']).decode('ascii') if include_output else None))
        tags = NS(tag=[NS(tag_key=k, tag_value=v) for k, v in inv['tags'].items()])
        return NS(invoke_id=invoke_id, command_id=inv['command_id'], invocation_status=None, tags=tags,
                  repeat_mode=inv['repeat_mode'],
                  invoke_instances=NS(invoke_instance=items))

    def DescribeInvocations(self, request):
        if getattr(request, 'invoke_id', None):
            ids = [request.invoke_id]
        else:
            ids = list(self.invocations)
        wanted = _tag_pairs(getattr(request, 'tag', None))
        command_id = getattr(request, 'command_id', None)
        found = []
        for invoke_id in ids:
            inv = self.invocations[invoke_id]
            if any(inv['tags'].get(k) != v for k, v in wanted):
                continue
            if bool(getattr(request, 'timed', None)) != self.timed(inv):
                continue  # Timed defaults to false: schedules that will run again only with Timed=true
            if command_id and inv['command_id'] != command_id:
                continue
            found.append(self._invocation_model(invoke_id, bool(getattr(request, 'include_output', False))))
        return NS(invocations=NS(invocation=found), next_token='')

    @staticmethod
    def timed(inv):
        """Will the invocation run again (the sandbox's and the API's rule for Timed)?"""
        return any((row['status'] == 'Scheduled' and inv['repeat_mode'] != 'Once')
                   or (row['status'] in ('Pending', 'Running') and inv['repeat_mode'] in ('Period', 'EveryReboot'))
                   for row in inv['rows'].values())

    def StopInvocation(self, request):
        assert len(request.instance_id) <= 50
        for iid in request.instance_id:
            row = self.invocations[request.invoke_id]['rows'][iid]
            row['status'] = 'Cancelled' if row['status'] in ('Pending', 'Scheduled') else 'Terminated'
        return NS()

    # -- saved commands ------------------------------------------------------------------------------------------
    def DescribeCommands(self, request):
        found = []
        for cid, cmd in self.commands.items():
            if getattr(request, 'command_id', None) and cid != request.command_id:
                continue
            if getattr(request, 'name', None) and cmd['name'] != request.name:
                continue
            found.append(NS(command_id=cid, name=cmd['name'], type=cmd['type'], command_content=cmd['content'],
                            description=cmd['description'], working_dir=cmd['working_dir'],
                            timeout=cmd['timeout'], enable_parameter=cmd['enable_parameter'],
                            launcher=cmd['launcher'], provider=None))
        return NS(commands=NS(command=found), next_token='')

    def CreateCommand(self, request):
        cid = self._new('c')
        self.commands[cid] = {
            'name': request.name, 'type': request.type,
            'content': base64.b64decode(request.command_content).decode('utf-8'),
            'description': getattr(request, 'description', None) or '',
            'working_dir': getattr(request, 'working_dir', None) or '',
            'timeout': getattr(request, 'timeout', None) or 60,
            'enable_parameter': bool(getattr(request, 'enable_parameter', False)),
            'launcher': getattr(request, 'launcher', None) or '',
        }
        return NS(command_id=cid)

    def ModifyCommand(self, request):
        cmd = self.commands[request.command_id]
        for field in ('description', 'working_dir', 'timeout', 'launcher'):
            if getattr(request, field, None) is not None:
                cmd[field] = getattr(request, field)
        return NS()

    def DeleteCommand(self, request):
        del self.commands[request.command_id]
        return NS()

    def add_command(self, name, content='echo hi', **fields):
        cid = self._new('c')
        cmd = {'name': name, 'type': 'RunShellScript', 'content': content, 'description': '', 'working_dir': '',
               'timeout': 60, 'enable_parameter': False, 'launcher': ''}
        cmd.update(fields)
        self.commands[cid] = cmd
        return cid


class ExplodingApi:
    """Any API use is a test failure (validation must come first)."""

    region_id = 'cn-test'

    def call(self, action, request):
        raise AssertionError('API called: %s' % action)

    def paginate(self, action, request, extract):
        raise AssertionError('API called: %s' % action)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


DEFAULTS = dict((name, spec.get('default')) for name, spec in module_argument_spec(M.ARGUMENT_SPEC).items())


def module(api, check_mode=False, diff=False, started=None, **params):
    values = dict(DEFAULTS)
    values.update(params)
    warnings = []
    return NS(params=values, check_mode=check_mode, _diff=diff, warn=warnings.append, warnings=warnings,
              started=started, api=lambda deadline: api)


def run(api, check_mode=False, diff=False, **params):
    clock = Clock()
    mod = module(api, check_mode=check_mode, diff=diff, started=clock(), **params)
    result = M.CloudAssistantCommand(mod, clock=clock, sleep=clock.sleep).run()
    result['_warnings'] = mod.warnings
    return result


def error_of(api=None, **params):
    with pytest.raises(CloudAssistantError) as info:
        run(api or ExplodingApi(), **params)
    return info.value.msg


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('frequency', [
    'rate(5m)', 'rate(2h)', 'rate(1d)', 'rate(120s)', 'at(2030-01-01 10:00:00)', 'at(2030-01-01 10:00:00 Asia/Shanghai)',
    'at(2030-01-01 10:00:00 GMT+8:00)', '0 */20 * * * ?', '0 15 10 ? * * 2030 Asia/Shanghai', '0 0 3 * * ? UTC',
    '0 0 3 * * ? 2031', '0 0 3 L * ?', '0 0 3 ? * 6#3',
])
def test_frequency_accepted(frequency):
    F.check_frequency(frequency, 60)


@pytest.mark.parametrize('frequency, words', [
    ('rate(5)', 'malformed'),
    ('rate(30s)', 'between 60 seconds and 7 days'),
    ('rate(8d)', 'between 60 seconds and 7 days'),
    ('rate(1m)', 'longer than timeout'),
    ('at(2030-01-01)', 'malformed'),
    ('at(2030-01-01 10:00:00 Mars/Olympus Mons)', 'time zone'),
    ('0 0 3 * *', '6 fields'),
    ('every day', '6 fields'),
    ('0 0 3 * * ? 2030 Nowhere', 'time zone'),
    ('0 0 3 * * $', 'day-of-week field'),
    ('', 'empty'),
    # the forms the service refuses (reference section 2.1.1), checked here so that check mode sees them too
    ('0 0 3 * * ? GMT+08:00', 'without a leading zero'),
    ('at(2030-01-01 10:00:00 GMT-07:00)', 'without a leading zero'),
    ('0 0 3 * * ? GMT', 'needs an offset'),
    ('0 0 3 ? * 0', 'the day-of-week field has 0, outside 1-7'),
    ('0 0 24 * * ?', 'the hours field has 24, outside 0-23'),
    ('0 60 3 * * ?', 'the minutes field has 60, outside 0-59'),
    ('0 0 3 32 * ?', 'the day-of-month field has 32, outside 1-31'),
    ('0 0 3 ? 13 *', 'the month field has 13, outside 1-12'),
    ('0 0 3 * * ? 1969', 'the year field has 1969, outside 1970-2099'),
    ('0 0 3 ? * 6#6', 'week of the month must be 1-5'),
    ('0 0 3 ? * 5-2', 'runs backwards'),
    ('0 0 3 ? * MON-FRY', 'not a number or a name'),
    ('0 0 3 * * ? Asia/Nowhere', 'unknown time zone'),
    ('at(2030-02-30 10:00:00)', 'not a valid date'),
    ('0 ? 3 * * *', '? is only allowed in the day-of-month and day-of-week fields'),
])
def test_frequency_rejected(frequency, words):
    with pytest.raises(CloudAssistantError) as info:
        F.check_frequency(frequency, 60)
    assert words in info.value.msg and frequency in info.value.msg


def test_content_size_counts_base64_of_content_and_parameters():
    limit_text = 'x' * (L.CONTENT_LIMIT // 4 * 3)          # exactly 24576 bytes after Base64
    assert L.content_size(limit_text) == L.CONTENT_LIMIT
    L.check_content_size(limit_text)
    with pytest.raises(CloudAssistantError) as info:
        L.check_content_size(limit_text + 'x')
    assert 'command_content is 24580 bytes after Base64 encoding, over the limit of 24576 bytes' in info.value.msg
    with pytest.raises(CloudAssistantError) as info:
        L.check_content_size(limit_text[:-10] + '{{a}}', {'a': 'y' * 100})
    assert 'plus parameters' in info.value.msg
    # multi-byte characters count in UTF-8
    assert L.content_size('é') == 4


def test_placeholders():
    content = 'echo {{ name }} {{Name}} {{ACS::InstanceId}} {{other-1}} {{ x_y }}'
    assert L.placeholder_names(content) == ['name', 'other-1', 'x_y']
    L.check_placeholders(content)
    with pytest.raises(CloudAssistantError, match='not a valid parameter name'):
        L.check_placeholders('docker inspect -f {{.State.Running}} x')
    with pytest.raises(CloudAssistantError, match='reserved for the built-in'):
        L.check_placeholders('{{ACS::Nope}}')
    with pytest.raises(CloudAssistantError, match='defines 21 custom parameters, more than the limit of 20'):
        L.check_placeholders(' '.join('{{p%d}}' % n for n in range(21)))


def test_parameters_checks():
    L.check_parameters({'Name': 'x', 'n': 1, 'flag': True}, 'echo {{name}} {{N}} {{flag}}', True)
    with pytest.raises(CloudAssistantError, match='parameters: other not used by command_content'):
        L.check_parameters({'name': 1, 'other': 2}, 'echo {{name}}', True)
    with pytest.raises(CloudAssistantError, match='gives no value'):
        L.check_parameters({'name': 1}, 'echo {{name}} {{missing}}', True)
    with pytest.raises(CloudAssistantError, match='gives no value'):
        L.check_parameters({}, 'echo {{name}}', True)
    L.check_parameters({}, 'echo {{name}}', True, require_all=False)
    with pytest.raises(CloudAssistantError, match='11 entries, more than the limit of 10'):
        L.check_parameters(dict(('p%d' % n, n) for n in range(11)), None, True)
    with pytest.raises(CloudAssistantError, match='enable_parameter=false'):
        L.check_parameters({'a': 1}, 'echo {{a}}', False)
    with pytest.raises(CloudAssistantError, match='string, number or boolean'):
        L.check_parameters({'a': [1]}, 'echo {{a}}', True)
    with pytest.raises(CloudAssistantError, match='given twice'):
        L.check_parameters({'a': 1, 'A': 2}, 'echo {{a}}', True)


def test_tags_checks():
    L.check_tags({'team': 'ops', 'empty': ''})
    with pytest.raises(CloudAssistantError, match='reserved for this collection'):
        L.check_tags({'ansible:cloud-assistant:key': 'x'})
    with pytest.raises(CloudAssistantError, match='not allowed'):
        L.check_tags({'acs:rm': 'x'})
    L.check_tags(dict(('k%d' % n, 'v') for n in range(20)))
    with pytest.raises(CloudAssistantError, match='at most 18 are allowed'):
        L.check_tags(dict(('k%d' % n, 'v') for n in range(19)), reserved=2)


def test_guard_script_quotes_paths():
    script = G.guard_script("/tmp/it's here", None)
    assert "'/tmp/it'\"'\"'s here'" in script
    assert script.endswith('exit 1\n')
    both = G.guard_script('/a', '/b')
    assert 'echo creates' in both and 'echo removes' in both


def test_failure_message_names_the_first_five():
    entries = [R.instance_entry('i-%d' % n, status='Success') for n in range(50)]
    entries[3].update(invocation_status='Failed', error_code='ExitCodeNonzero', exit_code=1)
    entries[7].update(invocation_status='Timeout', error_code='ExecutionTimeout')
    assert R.failure_message(entries) == ('2 of 50 instances did not succeed: i-3 (Failed, ExitCodeNonzero, exit 1), '
                                          'i-7 (Timeout, ExecutionTimeout)')
    for n in range(10, 20):
        entries[n].update(invocation_status='Aborted', error_code='ClientNotRunning')
    message = R.failure_message(entries)
    assert message.startswith('12 of 50 instances did not succeed: i-3 (')
    assert message.endswith('i-12 (Aborted, ClientNotRunning) and 7 more')
    skipped = [R.instance_entry('i-x', status='Skipped', skipped=True)]
    assert R.failure_message(skipped) is None
    assert R.failure_message([R.instance_entry('i-1', status='Success')]) is None


# ---------------------------------------------------------------------------------------------------------------
# CommandRunner: batching, tokens, merging
# ---------------------------------------------------------------------------------------------------------------

def runner_for(api, salt='salt'):
    clock = Clock()
    return RUN.CommandRunner(api, clock=clock, sleep=clock.sleep, token_salt=salt), clock


def test_runner_batches_of_100_and_merges_in_target_order():
    api = FakeCloud(linux=250)
    api.behaviour = lambda iid, content: (('Failed', 2, b'bad', 'ExitCodeNonzero') if iid == 'i-l120'
                                          else ('Success', 0, iid.encode() + b'\n', ''))
    runner, clock = runner_for(api)
    targets = sorted(api.instances, reverse=True)
    result = runner.run(RUN.CommandSpec(content='echo hi', timeout=60), targets, clock() + 100)
    runs = [r for a, r in api.calls if a == 'RunCommand']
    # Batches are sent concurrently: the log has them in whatever order the threads ran.
    assert sorted((len(r.instance_id) for r in runs), reverse=True) == [100, 100, 50]
    assert len(set(r.client_token for r in runs)) == 3
    assert all(r.keep_command is False and r.content_encoding == 'Base64' for r in runs)
    assert [i['instance_id'] for i in result.instances] == targets
    assert len(result.invoke_ids) == 3
    assert result.invocation_status == 'PartialFailed'
    bad = [i for i in result.instances if i['invocation_status'] != 'Success']
    assert bad == [dict(bad[0], instance_id='i-l120', exit_code=2, output='bad', error_code='ExitCodeNonzero')]
    assert result.instances[0]['output'] == targets[0] + '\n'
    # the three batches share one run tag: one tag-filtered status poll for all, then one output fetch each
    run_tags = set(dict(_tag_pairs(r.tag)).get(RUN.RUN_TAG) for r in runs)
    assert len(run_tags) == 1 and None not in run_tags
    assert api.count('DescribeInvocations') == 1 + 3


def test_runner_single_batch_has_no_run_tag_and_polls_by_invoke_id():
    api = FakeCloud(linux=3)
    runner, clock = runner_for(api)
    runner.run(RUN.CommandSpec(content='echo hi'), sorted(api.instances), clock() + 10)
    (run,) = [r for a, r in api.calls if a == 'RunCommand']
    assert RUN.RUN_TAG not in dict(_tag_pairs(getattr(run, 'tag', None)))
    polls = [r for a, r in api.calls if a == 'DescribeInvocations']
    assert all(getattr(r, 'invoke_id', None) for r in polls)


def test_runner_tokens_are_stable_for_the_same_salt_and_differ_across_runs():
    def tokens(salt):
        api = FakeCloud(linux=3)
        runner, clock = runner_for(api, salt)
        runner.run(RUN.CommandSpec(content='echo hi'), sorted(api.instances), clock() + 10)
        return [r.client_token for a, r in api.calls if a == 'RunCommand']

    assert tokens('a') == tokens('a')
    assert tokens('a') != tokens('b')
    assert all(len(t) <= 64 for t in tokens('a'))


def test_runner_reports_a_refused_batch_and_keeps_the_others():
    api = FakeCloud(linux=150)
    api.refuse['RunCommandRequest'] = {'i-l120': CloudAssistantError('RunCommand failed: InvalidInstance.NotMatch',
                                                                     code='InvalidInstance.NotMatch')}
    runner, clock = runner_for(api)
    result = runner.run(RUN.CommandSpec(content='echo'), sorted(api.instances), clock() + 10)
    rejected = [i for i in result.instances if i['invocation_status'] == S.REJECTED]
    assert len(rejected) == 50 and rejected[0]['error_code'] == 'InvalidInstance.NotMatch'
    assert len(result.invoke_ids) == 1
    assert R.overall_status(result.instances) == 'PartialFailed'
    assert result.invocation_status == 'PartialFailed'  # the runner's own summary agrees


def test_runner_raises_when_every_batch_is_refused():
    api = FakeCloud(linux=2)
    api.refuse['RunCommandRequest'] = {'i-l000': CloudAssistantError('nope', code='X')}
    runner, clock = runner_for(api)
    with pytest.raises(CloudAssistantError, match='nope'):
        runner.run(RUN.CommandSpec(content='echo'), ['i-l000'], clock() + 10)


def test_runner_without_wait_returns_at_once():
    api = FakeCloud(linux=2)
    runner, clock = runner_for(api)
    result = runner.run(RUN.CommandSpec(content='echo'), sorted(api.instances), clock() + 10, wait=False)
    assert api.count('DescribeInvocations') == 0
    assert [i['invocation_status'] for i in result.instances] == ['Submitted', 'Submitted']
    assert result.invocation_status == 'Submitted'


def test_runner_timeout_stops_unfinished_instances_in_chunks_of_50():
    api = FakeCloud(linux=120)
    api.hang = True
    runner, clock = runner_for(api)
    result = runner.run(RUN.CommandSpec(content='sleep 99'), sorted(api.instances), clock() + 30, stop_on_timeout=True)
    assert result.timed_out and result.stopped
    stops = [r for a, r in api.calls if a == 'StopInvocation']
    assert sorted(len(r.instance_id) for r in stops) == [20, 50, 50]
    assert set(i['invocation_status'] for i in result.instances) == {'Terminated'}


def test_invoke_command_spec_uses_invoke_command():
    api = FakeCloud(linux=2)
    cid = api.add_command('saved', 'echo {{a}}', enable_parameter=True)
    runner, clock = runner_for(api)
    result = runner.run(RUN.CommandSpec(command_id=cid, parameters={'a': 1}), sorted(api.instances), clock() + 10)
    calls = [a for a, _r in api.calls]
    assert 'InvokeCommand' in calls and 'RunCommand' not in calls
    assert result.command_id == cid
    request = [r for a, r in api.calls if a == 'InvokeCommand'][0]
    assert request.parameters == {'a': '1'} and request.client_token  # the API types values as strings


# ---------------------------------------------------------------------------------------------------------------
# The module logic: validation before any API call
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('params, words', [
    (dict(instance_ids=[], command_content='echo'), 'instance_ids must not be empty'),
    (dict(instance_ids=['i-1', ''], command_content='echo'), 'must not contain empty entries'),
    (dict(instance_tags={}, command_content='echo'), 'instance_tags must not be empty'),
    (dict(command_content='echo'), 'give instance_ids or instance_tags'),
    (dict(name='x'), 'give instance_ids or instance_tags'),
    (dict(instance_ids=['i-1'], command_content='x' * 20000), 'over the limit of 24576 bytes'),
    (dict(instance_ids=['i-1'], command_content='echo', timeout=5), 'timeout must be between 10 and 86400'),
    (dict(instance_ids=['i-1'], command_content='echo', timeout=86401), 'timeout must be between 10 and 86400'),
    (dict(instance_ids=['i-1'], command_content='echo {{a}}', parameters={'a': 1, 'b': 2}), 'b not used'),
    (dict(instance_ids=['i-1'], command_content='echo', parameters=dict(('p%d' % n, n) for n in range(11))),
     'more than the limit of 10'),
    (dict(instance_ids=['i-1'], command_content='echo {{a}}', parameters={'a': 1}, enable_parameter=False),
     'enable_parameter=false'),
    (dict(instance_ids=['i-1'], command_content='echo', frequency='rate(5m)'), 'only used with repeat_mode=Period'),
    (dict(instance_ids=['i-1'], command_content='echo', repeat_mode='Period', frequency='0 0 3 * *'), 'malformed'),
    (dict(instance_ids=['i-1'], command_content='echo', creates='/x', type='RunBatScript'), 'need a Linux shell'),
    (dict(instance_ids=['i-1'], command_content='echo', creates='/x', repeat_mode='EveryReboot'),
     'only work with repeat_mode=Once'),
    (dict(instance_ids=['i-1'], command_content='  '), 'must not be empty'),
    (dict(instance_ids=['i-1'], command_content='echo', tags={'acs:x': '1'}), 'not allowed'),
    (dict(state='absent', name='x', instance_ids=['i-1']), 'does not take instance_ids'),
    (dict(instance_ids=['i-1'], command_content='echo', wait_timeout=0), 'wait_timeout must be at least 1'),
    (dict(instance_ids=['i-1'], command_content='echo', name='n' * 129), 'name is 129 characters long'),
])
def test_bad_input_fails_before_any_api_call(params, words):
    assert words in error_of(**params)


@pytest.mark.parametrize('params, words', [
    (dict(), 'one of the following is required: command_content, name, command_id'),
    (dict(instance_ids=['i-1'], command_content='echo', repeat_mode='Period'),
     'repeat_mode is Period but all of the following are missing: frequency'),
    (dict(state='absent'), 'state is absent but any of the following are missing: name, command_id'),
    (dict(instance_ids=['i-1'], instance_tags={'a': 'b'}, command_content='echo'),
     'parameters are mutually exclusive: instance_ids|instance_tags'),
    (dict(command_id='c-1', name='x', instance_ids=['i-1']), 'parameters are mutually exclusive: name|command_id'),
])
def test_argument_rules_are_declared(params, words):
    validated = ArgumentSpecValidator(module_argument_spec(M.ARGUMENT_SPEC), **M.RULES).validate(params)
    assert words in ' '.join(str(e) for e in validated.errors)


# ---------------------------------------------------------------------------------------------------------------
# The module logic: targets, check mode, runs
# ---------------------------------------------------------------------------------------------------------------

def test_one_instance_returns_rc_and_stdout_like_command():
    api = FakeCloud(linux=1)
    api.behaviour = lambda iid, content: ('Success', 0, b'line1\nline2\n', '')
    result = run(api, instance_ids=['i-l000'], command_content='echo')
    assert result['changed'] and not result.get('failed')
    assert result['rc'] == 0
    assert result['stdout'] == 'line1\nline2'
    assert result['stdout_lines'] == ['line1', 'line2']
    assert result['instances'][0]['output'] == 'line1\nline2\n'
    assert result['invoke_id'] == result['invoke_ids'][0]
    assert result['invocation_status'] == 'Success'
    assert set(result['instances'][0]) == {'instance_id', 'invoke_id', 'invocation_status', 'exit_code', 'output',
                                           'dropped', 'error_code', 'error_info', 'start_time', 'finish_time',
                                           'skipped'}


def test_failed_instance_fails_the_task_with_the_full_list():
    api = FakeCloud(linux=3)
    api.behaviour = lambda iid, content: (('Failed', 1, b'', 'ExitCodeNonzero') if iid == 'i-l001'
                                          else ('Success', 0, b'', ''))
    result = run(api, instance_ids=sorted(api.instances), command_content='false')
    assert result['failed'] is True
    assert result['msg'] == '1 of 3 instances did not succeed: i-l001 (Failed, ExitCodeNonzero, exit 1)'
    assert len(result['instances']) == 3
    assert result['invocation_status'] == 'PartialFailed'
    assert 'rc' not in result


def test_unknown_stopped_and_wrong_os_instances_fail_before_running():
    api = FakeCloud(linux=2, windows=1, stopped=['i-l001'])
    msg = error_of(api, instance_ids=['i-l000', 'i-nope'], command_content='echo')
    assert 'not found in region cn-test: i-nope' in msg
    assert 'not Running: i-l001 (Stopped)' in error_of(api, instance_ids=['i-l001'], command_content='echo')
    msg = error_of(api, instance_ids=['i-l000', 'i-w000'], command_content='echo')
    assert 'type RunShellScript needs Linux instances' in msg and 'i-w000 (windows)' in msg
    msg = error_of(api, instance_ids=['i-l000'], command_content='dir', type='RunBatScript')
    assert 'needs Windows instances' in msg
    assert api.mutating_calls() == []


def test_instance_ids_are_deduplicated_and_described_in_chunks():
    api = FakeCloud(linux=230)
    ids = sorted(api.instances)
    result = run(api, instance_ids=ids + ids[:5], command_content='echo')
    # Chunks and batches are sent concurrently: the log has them in whatever order the threads ran.
    assert sorted((len(json.loads(r.instance_ids)) for a, r in api.calls if a == 'DescribeInstances'), reverse=True) == [100, 100, 30]
    assert len(result['instances']) == 230
    assert sorted((len(r.instance_id) for a, r in api.calls if a == 'RunCommand'), reverse=True) == [100, 100, 30]


def test_instance_tags_resolve_past_100_and_leave_stopped_out():
    tagged = dict(('i-l%03d' % n, {'role': 'web'}) for n in range(150))
    api = FakeCloud(linux=160, stopped=['i-l005'], tags=tagged)
    result = run(api, instance_tags={'role': 'web'}, command_content='echo')
    assert len(result['instances']) == 149
    assert 'i-l005 (Stopped)' in result['_warnings'][0]
    # The two batches are sent concurrently: the log has them in whatever order the threads ran.
    assert sorted((len(r.instance_id) for a, r in api.calls if a == 'RunCommand'), reverse=True) == [100, 49]
    assert all(getattr(r, 'resource_tag', None) is None for a, r in api.calls if a == 'RunCommand')
    assert 'no instance in region' in error_of(api, instance_tags={'role': 'db'}, command_content='echo')


def test_check_mode_validates_and_changes_nothing():
    api = FakeCloud(linux=3)
    result = run(api, check_mode=True, instance_ids=sorted(api.instances), command_content='echo')
    assert result['changed'] is True
    assert result['would_run_on'] == sorted(api.instances)
    assert set(i['invocation_status'] for i in result['instances']) == {'NotRun'}
    assert api.mutating_calls() == []
    assert api.count('DescribeCloudAssistantStatus') == 1


def test_check_mode_reports_offline_agents():
    api = FakeCloud(linux=3, offline=['i-l002'])
    assert 'agent is not online on 1 instance(s): i-l002' in error_of(
        api, check_mode=True, instance_ids=sorted(api.instances), command_content='echo')
    assert api.mutating_calls() == []


def test_wait_false_returns_the_invoke_id_only():
    api = FakeCloud(linux=2)
    result = run(api, instance_ids=sorted(api.instances), command_content='echo', wait=False)
    assert result['changed'] and result['invoke_id'].startswith('t-')
    assert result['invocation_status'] == 'Submitted'
    assert api.count('DescribeInvocations') == 0
    single = run(api, instance_ids=['i-l000'], command_content='echo', wait=False)
    assert 'rc' not in single and 'stdout' not in single


def test_wait_timeout_fails_with_known_statuses_and_stops_when_asked():
    api = FakeCloud(linux=2)
    api.hang = True
    result = run(api, instance_ids=sorted(api.instances), command_content='sleep 999', wait_timeout=20)
    assert result['failed'] and 'wait_timeout (20 s) expired: 2 of 2 instances had not finished' in result['msg']
    assert [i['invocation_status'] for i in result['instances']] == ['Running', 'Running']
    assert api.count('StopInvocation') == 0
    result = run(api, instance_ids=sorted(api.instances), command_content='sleep 999', wait_timeout=20,
                 stop_on_timeout=True)
    assert '(StopInvocation sent)' in result['msg']
    assert [i['invocation_status'] for i in result['instances']] == ['Terminated', 'Terminated']


def test_default_wait_timeout_is_the_run_timeout_plus_margin():
    api = FakeCloud(linux=1)
    api.hang = True
    result = run(api, instance_ids=['i-l000'], command_content='sleep 999', timeout=100)
    assert 'wait_timeout (220 s) expired' in result['msg']


def saved_command(api, timeout):
    api.commands['c-saved'] = {'name': 'saved', 'type': 'RunShellScript', 'content': 'sleep 999', 'description': '',
                               'working_dir': '', 'timeout': timeout, 'enable_parameter': False, 'launcher': ''}


@pytest.mark.parametrize('by', [dict(command_id='c-saved'), dict(name='saved')])
def test_default_wait_timeout_of_a_saved_command_is_its_own_timeout_plus_margin(by):
    api = FakeCloud(linux=1)
    api.hang = True
    saved_command(api, timeout=300)
    result = run(api, instance_ids=['i-l000'], **by)
    assert 'wait_timeout (420 s) expired' in result['msg'], result['msg']
    # a timeout given on the task wins over the saved command's
    result = run(api, instance_ids=['i-l000'], timeout=30, **by)
    assert 'wait_timeout (150 s) expired' in result['msg'], result['msg']


# ---------------------------------------------------------------------------------------------------------------
# Guards
# ---------------------------------------------------------------------------------------------------------------

def guarded_cloud(has_file):
    api = FakeCloud(linux=3)

    def behaviour(iid, content):
        if 'exit 1' in content and 'test' not in content:  # the guard script
            if ('creates' in content and iid in has_file) or ('removes' in content and iid not in has_file):
                return 'Success', 0, (b'creates\n' if 'creates' in content else b'removes\n'), ''
            return 'Failed', 1, b'', 'ExitCodeNonzero'
        return 'Success', 0, b'ran\n', ''
    api.behaviour = behaviour
    return api


def test_creates_skips_where_the_file_exists():
    api = guarded_cloud({'i-l000'})
    result = run(api, instance_ids=sorted(api.instances), command_content='make install', creates='/opt/x')
    skipped = [i['instance_id'] for i in result['instances'] if i['skipped']]
    assert skipped == ['i-l000']
    assert result['instances'][0]['invocation_status'] == 'Skipped'
    runs = [r for a, r in api.calls if a == 'RunCommand']
    assert len(runs) == 2                            # the guard, then the real run on the other two
    assert runs[1].instance_id == ['i-l001', 'i-l002']
    assert result['changed'] and result['invocation_status'] == 'Success'


@pytest.mark.parametrize('by', ['inline', 'saved'])
def test_the_guard_is_checked_as_username_in_working_dir(by):
    """Relative guard paths are relative to working_dir, and the check runs as the run's user (a saved command's
    working_dir when the task gives none)."""
    api = guarded_cloud({'i-l000'})
    if by == 'saved':
        saved_command(api, timeout=60)
        api.commands['c-saved']['working_dir'] = '/srv/app'
        how = dict(command_id='c-saved')
    else:
        how = dict(command_content='make install', working_dir='/srv/app')
    run(api, instance_ids=['i-l000'], creates='build/done', username='deploy', **how)
    guard = [r for a, r in api.calls if a == 'RunCommand'][0]
    assert 'build/done' in base64.b64decode(guard.command_content).decode('utf-8')
    assert guard.working_dir == '/srv/app'
    assert guard.username == 'deploy'


def test_everything_skipped_is_unchanged_and_single_instance_looks_like_command():
    api = guarded_cloud({'i-l000'})
    result = run(api, instance_ids=['i-l000'], command_content='make install', creates='/opt/x')
    assert result['changed'] is False
    assert result['rc'] == 0 and result['stdout'] == 'skipped, since /opt/x exists'
    assert result['invocation_status'] == 'Skipped'
    assert result['invoke_id'] is None
    result = run(api, instance_ids=['i-l001'], command_content='rm x', removes='/opt/x')
    assert result['changed'] is False and result['stdout'] == 'skipped, since /opt/x does not exist'


def test_guards_are_not_run_in_check_mode():
    api = guarded_cloud({'i-l000'})
    result = run(api, check_mode=True, instance_ids=sorted(api.instances), command_content='x', creates='/opt/x')
    assert api.mutating_calls() == []
    assert 'not checked in check mode' in result['msg']


# ---------------------------------------------------------------------------------------------------------------
# Saved commands
# ---------------------------------------------------------------------------------------------------------------

def test_saved_command_create_then_unchanged():
    api = FakeCloud()
    result = run(api, diff=True, name='deploy', command_content='echo v1', description='d')
    assert result['changed'] and result['command_action'] == 'created'
    assert result['diff']['before'] == {}
    assert result['diff']['after']['command_content'] == 'echo v1'
    create = [r for a, r in api.calls if a == 'CreateCommand'][0]
    assert create.content_encoding == 'Base64' and create.client_token
    api.calls[:] = []
    again = run(api, name='deploy', command_content='echo v1', description='d')
    assert again['changed'] is False and again['command_action'] == 'unchanged'
    assert again['command_id'] == result['command_id']
    assert api.mutating_calls() == []


def test_saved_command_modifiable_fields_use_modify_command():
    api = FakeCloud()
    cid = api.add_command('deploy', 'echo v1', timeout=60, description='old')
    result = run(api, diff=True, name='deploy', command_content='echo v1', timeout=300, description='new')
    assert result['command_action'] == 'modified' and result['command_id'] == cid
    assert api.mutating_calls() == ['ModifyCommand']
    modify = [r for a, r in api.calls if a == 'ModifyCommand'][0]
    assert (modify.timeout, modify.description) == (300, 'new')
    assert getattr(modify, 'working_dir', None) is None
    assert result['diff']['before']['timeout'] == 60 and result['diff']['after']['timeout'] == 300


def test_saved_command_options_not_given_are_not_compared():
    api = FakeCloud()
    api.add_command('deploy', 'echo v1', timeout=999, working_dir='/srv', description='keep')
    result = run(api, name='deploy', command_content='echo v1')
    assert result['changed'] is False


@pytest.mark.parametrize('change', [dict(command_content='echo v2'), dict(type='RunPowerShellScript'),
                                    dict(enable_parameter=True)])
def test_saved_command_unmodifiable_fields_recreate(change):
    api = FakeCloud()
    old = api.add_command('deploy', 'echo v1', description='keep me')
    params = dict(name='deploy', command_content='echo v1')
    params.update(change)
    result = run(api, **params)
    assert result['command_action'] == 'recreated'
    assert api.mutating_calls() == ['DeleteCommand', 'CreateCommand']
    assert result['command_id'] != old and old not in api.commands
    assert api.commands[result['command_id']]['description'] == 'keep me'


def test_saved_command_check_mode_reports_without_changing():
    api = FakeCloud()
    api.add_command('deploy', 'echo v1')
    result = run(api, check_mode=True, diff=True, name='deploy', command_content='echo v2')
    assert result['changed'] and result['command_action'] == 'recreated'
    assert result['command_id'] is None
    assert result['diff']['before']['command_content'] == 'echo v1'
    assert api.mutating_calls() == []


def test_saved_command_duplicates_are_an_error():
    api = FakeCloud()
    api.add_command('dup')
    api.add_command('dup')
    assert '2 saved commands have this name' in error_of(api, name='dup', command_content='echo')


def test_state_absent_deletes_and_is_idempotent():
    api = FakeCloud()
    cid = api.add_command('old')
    result = run(api, diff=True, name='old', state='absent')
    assert result['changed'] and result['deleted_command_ids'] == [cid]
    assert result['diff']['after'] == {}
    again = run(api, name='old', state='absent')
    assert again['changed'] is False and again['deleted_command_ids'] == []
    cid = api.add_command('other')
    check = run(api, check_mode=True, command_id=cid, state='absent')
    assert check['changed'] and cid in api.commands


def test_invoke_saved_command_by_name_validates_parameters_against_its_content():
    api = FakeCloud(linux=2)
    api.add_command('greet', 'echo {{who}}', enable_parameter=True)
    result = run(api, name='greet', instance_ids=sorted(api.instances), parameters={'who': 'me'})
    assert result['changed'] and not result.get('failed')
    assert api.count('InvokeCommand') == 1
    assert 'nope not used by the saved command greet' in error_of(
        api, name='greet', instance_ids=['i-l000'], parameters={'who': 1, 'nope': 2})
    assert 'no saved command has this name' in error_of(api, name='missing', instance_ids=['i-l000'])
    assert 'no such command' in error_of(api, command_id='c-missing', instance_ids=['i-l000'])
    api.add_command('plain', 'echo')
    assert 'enable_parameter=false on the saved command plain' in error_of(
        api, name='plain', instance_ids=['i-l000'], parameters={'a': 1})


# ---------------------------------------------------------------------------------------------------------------
# Scheduled runs
# ---------------------------------------------------------------------------------------------------------------

SCHEDULE = dict(command_content='date', repeat_mode='Period', frequency='rate(5m)')
SCHEDULE_10M = dict(command_content='date', repeat_mode='Period', frequency='rate(10m)')


def test_schedule_is_created_once_and_found_again():
    api = FakeCloud(linux=3)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    assert first['changed'] and len(first['invoke_ids']) == 1
    request = [r for a, r in api.calls if a == 'RunCommand'][0]
    tags = dict(_tag_pairs(request.tag))
    assert set(tags) == {SCH.KEY_TAG, SCH.SPEC_TAG, CL.CLAIM_TAG} and request.repeat_mode == 'Period'
    # the lookup, and the check that the accepted schedule is live: scheduled runs are not waited for
    assert api.count('DescribeInvocations') == 2
    assert all(r.timed for a, r in api.calls if a == 'DescribeInvocations')  # scheduled runs are listed with Timed
    api.calls[:] = []
    second = run(api, instance_ids=list(reversed(ids)), **SCHEDULE)
    assert second['changed'] is False
    assert second['invoke_ids'] == first['invoke_ids']
    assert second['invocation_status'] == 'Scheduled'
    assert api.mutating_calls() == []


def test_schedule_with_new_settings_replaces_the_old_one():
    api = FakeCloud(linux=3)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    check = run(api, check_mode=True, instance_ids=ids, **SCHEDULE_10M)
    assert check['changed'] and check['would_stop'] == first['invoke_ids']
    assert api.count('StopInvocation') == 0
    second = run(api, instance_ids=ids, **SCHEDULE_10M)
    assert second['changed'] and second['stopped_invoke_ids'] == first['invoke_ids']
    old_rows = api.invocations[first['invoke_id']]['rows'].values()
    assert set(r['status'] for r in old_rows) == {'Cancelled'}
    third = run(api, instance_ids=ids, **SCHEDULE_10M)
    assert third['changed'] is False and third['invoke_ids'] == second['invoke_ids']


def test_schedule_on_other_targets_replaces_and_user_tags_count():
    api = FakeCloud(linux=3)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids[:2], **SCHEDULE)
    second = run(api, instance_ids=ids, **SCHEDULE)
    # a different target list is a different key: the first schedule stays (it is another schedule)
    assert second['changed'] and second.get('stopped_invoke_ids') == []
    assert first['invoke_id'] != second['invoke_id']
    third = run(api, instance_ids=ids, tags={'team': 'ops'}, **SCHEDULE)
    assert third['changed'] and third['stopped_invoke_ids'] == second['invoke_ids']


def test_schedule_by_tags_follows_the_fleet():
    tagged = dict(('i-l%03d' % n, {'role': 'batch'}) for n in range(2))
    api = FakeCloud(linux=3, tags=tagged)
    first = run(api, instance_tags={'role': 'batch'}, **SCHEDULE)
    api.instances['i-l002']['tags'] = {'role': 'batch'}
    second = run(api, instance_tags={'role': 'batch'}, **SCHEDULE)
    assert second['changed'] and second['stopped_invoke_ids'] == first['invoke_ids']
    assert len(second['instances']) == 3


def test_inline_schedule_with_new_content_is_another_schedule():
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    params = dict((k, v) for k, v in SCHEDULE.items() if k != 'command_content')
    first = run(api, instance_ids=ids, command_content='echo a', **params)
    second = run(api, instance_ids=ids, command_content='echo b', **params)
    assert second['changed'] and second['stopped_invoke_ids'] == []
    assert first['invoke_id'] != second['invoke_id'] and api.count('StopInvocation') == 0
    # each content is found again as its own schedule: nothing changes on a rerun of either
    assert run(api, instance_ids=ids, command_content='echo a', **params)['changed'] is False
    assert run(api, instance_ids=ids, command_content='echo b', **params)['changed'] is False


def test_named_schedule_survives_a_content_change():
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    params = dict(name='nightly', instance_ids=ids, repeat_mode='EveryReboot')
    first = run(api, command_content='echo v1', **params)
    assert first['command_action'] == 'created' and api.count('InvokeCommand') == 1
    second = run(api, command_content='echo v2', **params)
    assert second['command_action'] == 'recreated'
    assert second['stopped_invoke_ids'] == first['invoke_ids']
    assert api.mutating_calls().index('StopInvocation') < api.mutating_calls().index('DeleteCommand')
    third = run(api, command_content='echo v2', **params)
    assert third['changed'] is False


def test_state_absent_stops_the_command_schedules_first():
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, name='nightly', command_content='date', instance_ids=ids, repeat_mode='EveryReboot')
    cid = first['command_id']
    once = run(api, name='nightly', instance_ids=ids)          # a finished one-time run is left alone
    check = run(api, check_mode=True, name='nightly', state='absent')
    assert check['changed'] and check['stopped_invoke_ids'] == first['invoke_ids'] and cid in api.commands
    assert api.count('StopInvocation') == 0
    result = run(api, name='nightly', state='absent')
    assert result['deleted_command_ids'] == [cid] and result['stopped_invoke_ids'] == first['invoke_ids']
    assert api.mutating_calls()[-2:] == ['StopInvocation', 'DeleteCommand']
    assert once['invoke_id'] not in result['stopped_invoke_ids']


def test_client_token_makes_a_run_repeatable():
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, command_content='echo', client_token='release-42')
    second = run(api, instance_ids=ids, command_content='echo', client_token='release-42')
    third = run(api, instance_ids=ids, command_content='echo')
    assert first['invoke_id'] == second['invoke_id'] != third['invoke_id']


def test_stop_live_skips_finished_and_already_stopping_instances():
    invocation = NS(invoke_id='t-x', invoke_instances=NS(invoke_instance=[
        NS(instance_id='a', invocation_status='Running'), NS(instance_id='b', invocation_status='Stopping'),
        NS(instance_id='c', invocation_status='Success'), NS(instance_id='d', invocation_status='Scheduled')]))
    api = FakeCloud(linux=1)
    sent = []
    api.StopInvocation = lambda request: sent.append((request.invoke_id, list(request.instance_id)))
    assert stop_live(api, invocation) == ['a', 'd']
    assert sent == [('t-x', ['a', 'd'])]
    done = NS(invoke_id='t-y', invoke_instances=NS(invoke_instance=[NS(instance_id='c', invocation_status='Failed')]))
    assert stop_live(api, done) == [] and len(sent) == 1


# ---------------------------------------------------------------------------------------------------------------
# Where the module differed from the real API, and the defects a probe of the main job found
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('frequency', ['0 0 3 ? * 7', '0 0 3 ? * SUN-SAT', '0 0 3 ? * 2#1 GMT-7:00',
                                       '0 0 3 L * ? 2030 GMT+14:00', '0 0 3 15W JAN-DEC ?', '0 0 3 ? * 6L UTC'])
def test_frequency_edge_forms_are_accepted(frequency):
    F.check_frequency(frequency, 60)


def test_check_mode_refuses_a_frequency_the_service_would_refuse():
    api = FakeCloud(linux=1)
    with pytest.raises(CloudAssistantError, match='leading zero'):
        run(api, check_mode=True, instance_ids=['i-l000'], command_content='date', repeat_mode='Period',
            frequency='0 0 3 * * ? GMT+08:00')
    assert api.calls == []


@pytest.mark.parametrize('params', [
    dict(type='RunPowerShellScript', username='deploy'),
    dict(type='RunBatScript', username='Administrator'),
])
def test_windows_user_other_than_system_needs_a_password_name(params):
    msg = error_of(instance_ids=['i-w000'], command_content='echo', **params)
    assert 'needs windows_password_name' in msg and params['username'] in msg


def test_windows_password_name_is_sent_and_system_needs_none():
    api = FakeCloud(windows=1)
    run(api, instance_ids=['i-w000'], command_content='echo', type='RunPowerShellScript', username='SYSTEM')
    run(api, instance_ids=['i-w000'], command_content='echo', type='RunPowerShellScript', username='deploy',
        windows_password_name='axt-deploy-password')
    sent = [r for a, r in api.calls if a == 'RunCommand']
    assert getattr(sent[0], 'windows_password_name', None) is None
    assert sent[1].windows_password_name == 'axt-deploy-password' and sent[1].username == 'deploy'
    assert 'only for Windows' in error_of(instance_ids=['i-1'], command_content='echo', windows_password_name='x')


def test_saved_windows_command_checks_the_user_rule_against_its_type():
    api = FakeCloud(windows=1)
    api.add_command('win', content='dir', type='RunBatScript')
    with pytest.raises(CloudAssistantError, match='needs windows_password_name'):
        run(api, name='win', instance_ids=['i-w000'], username='deploy')
    assert api.mutating_calls() == []


def test_parameter_values_go_on_the_wire_as_strings():
    api = FakeCloud(linux=1)
    run(api, instance_ids=['i-l000'], command_content='echo {{port}} {{debug}} {{name}} {{ratio}}',
        parameters={'port': 8080, 'debug': True, 'name': 'web', 'ratio': 0.5})
    request = [r for a, r in api.calls if a == 'RunCommand'][0]
    assert request.parameters == {'port': '8080', 'debug': 'true', 'name': 'web', 'ratio': '0.5'}
    assert request.to_map()['Parameters'] == {'port': '8080', 'debug': 'true', 'name': 'web', 'ratio': '0.5'}


def test_saved_content_over_18_kb_warns_and_over_24_kb_fails():
    api = FakeCloud(linux=1)
    big = 'x' * 15000  # 20,000 bytes after Base64
    result = run(api, name='big', command_content=big)
    assert result['changed'] and any('18432' in w and 'may refuse' in w for w in result['_warnings'])
    inline = run(api, instance_ids=['i-l000'], command_content=big)
    assert not any('may refuse' in w for w in inline['_warnings'])  # RunCommand's limit is 24 KB
    assert 'over the limit of 24576' in error_of(name='big', command_content='x' * 19000)


def test_a_refused_replacement_keeps_the_live_schedule():
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    api.refuse['RunCommandRequest'] = dict((i, CloudAssistantError(
        'RunCommand failed: InvalidParam.Frequency: refused', code='InvalidParam.Frequency', action='RunCommand'))
        for i in ids)
    with pytest.raises(CloudAssistantError, match='InvalidParam.Frequency'):
        run(api, instance_ids=ids, **SCHEDULE_10M)
    assert api.count('StopInvocation') == 0
    rows = api.invocations[first['invoke_id']]['rows']
    assert [row['status'] for row in rows.values()] == ['Scheduled', 'Scheduled']


def test_overlapping_runs_of_one_schedule_submit_identical_requests(monkeypatch):
    """Two runs that both looked before either submitted (two CI jobs at the same moment): the ClientTokens come
    from the schedule alone, so the service hands the second run the first run's invocation."""
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    monkeypatch.setattr(M, 'find_schedules', lambda api_, key: [])  # the second run looked before the first sent
    second = run(api, instance_ids=ids, **SCHEDULE)
    assert second['invoke_id'] == first['invoke_id'] and len(api.invocations) == 1


def test_a_remembered_token_of_a_stopped_schedule_is_not_taken_for_a_live_one():
    api = FakeCloud(linux=1)
    first = run(api, instance_ids=['i-l000'], **SCHEDULE)
    api.invocations[first['invoke_id']]['rows']['i-l000']['status'] = 'Cancelled'  # stopped by hand
    second = run(api, instance_ids=['i-l000'], **SCHEDULE)
    assert second['changed'] and second['invoke_id'] != first['invoke_id']
    assert api.invocations[second['invoke_id']]['rows']['i-l000']['status'] == 'Scheduled'


def test_saved_command_tokens_do_not_depend_on_the_run():
    api_a, api_b = FakeCloud(linux=1), FakeCloud(linux=1)
    run(api_a, name='n', command_content='echo 1')
    run(api_b, name='n', command_content='echo 1')
    token_a = [r for a, r in api_a.calls if a == 'CreateCommand'][0].client_token
    token_b = [r for a, r in api_b.calls if a == 'CreateCommand'][0].client_token
    assert token_a == token_b


def test_one_time_run_tokens_still_differ_per_run():
    api = FakeCloud(linux=1)
    run(api, instance_ids=['i-l000'], command_content='echo')
    run(api, instance_ids=['i-l000'], command_content='echo')
    tokens = [r.client_token for a, r in api.calls if a == 'RunCommand']
    assert len(set(tokens)) == 2 and len(api.invocations) == 2


def test_api_failing_mid_wait_keeps_the_invoke_id_and_last_states():
    api = FakeCloud(linux=2)
    api.hang = True
    polls = []
    original = api.DescribeInvocations

    def dying(request):
        polls.append(request)
        if len(polls) > 2:
            raise CloudAssistantError('DescribeInvocations failed: could not reach the endpoint: [Errno 111] '
                                      'Connection refused', action='DescribeInvocations', kind='connection')
        return original(request)

    api.DescribeInvocations = dying
    result = run(api, instance_ids=sorted(api.instances), command_content='sleep 100', wait_timeout=60)
    assert result['failed'] and result['invoke_id'] and result['invoke_ids'] == [result['invoke_id']]
    assert [i['invocation_status'] for i in result['instances']] == ['Running', 'Running']
    assert 'Connection refused' in result['msg'] and result['invoke_id'] in result['msg']
    assert result['error']['action'] == 'DescribeInvocations'


def test_twenty_tags_fit_a_run_of_up_to_100_instances():
    tags = dict(('k%d' % n, 'v') for n in range(20))
    api = FakeCloud(linux=101)
    ids = sorted(api.instances)
    assert not run(api, instance_ids=ids[:1], command_content='echo', tags=tags).get('failed')
    with pytest.raises(CloudAssistantError) as info:
        run(api, instance_ids=ids, command_content='echo', tags=tags)
    assert 'at most 19 are allowed' in info.value.msg and 'more than 100 instances (here 101)' in info.value.msg


def test_system_tags_may_select_instances():
    api = FakeCloud(linux=2, tags={'i-l000': {'acs:autoscaling:scalingGroupId': 'asg-1'}})
    result = run(api, instance_tags={'acs:autoscaling:scalingGroupId': 'asg-1'}, command_content='echo')
    assert [i['instance_id'] for i in result['instances']] == ['i-l000']
    assert 'system tags' in error_of(instance_ids=['i-1'], command_content='echo', tags={'acs:x': '1'})


def test_replacing_a_schedule_keeps_the_new_ids_when_stopping_the_old_fails():
    api = FakeCloud(linux=2)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)

    def failing_stop(request):
        raise CloudAssistantError('StopInvocation failed: ServiceUnavailable', code='ServiceUnavailable',
                                  action='StopInvocation')

    api.StopInvocation = failing_stop
    result = run(api, instance_ids=ids, **SCHEDULE_10M)
    assert result['failed'] and result['invoke_id'] and result['invoke_id'] != first['invoke_id']
    assert result['error']['action'] == 'StopInvocation'
    assert 'still to stop: %s' % first['invoke_id'] in result['msg']


def test_a_partly_refused_replacement_stops_its_accepted_part_and_keeps_the_old():
    api = FakeCloud(linux=150)
    ids = sorted(api.instances)
    first = run(api, instance_ids=ids, **SCHEDULE)
    api.refuse['RunCommandRequest'] = {ids[120]: CloudAssistantError(
        'RunCommand failed: InvalidInstance.NotMatch', code='InvalidInstance.NotMatch', action='RunCommand')}
    result = run(api, instance_ids=ids, **SCHEDULE_10M)
    assert result['failed'] and 'stopped again' in result['msg']
    accepted = [i for i in result['invoke_ids'] if i not in first['invoke_ids']]
    assert len(accepted) == 1
    assert set(r['status'] for r in api.invocations[accepted[0]]['rows'].values()) == {'Cancelled'}
    for invoke_id in first['invoke_ids']:
        assert set(r['status'] for r in api.invocations[invoke_id]['rows'].values()) == {'Scheduled'}


def test_deleting_a_command_waits_for_runs_left_stopping_and_gives_up_in_time():
    api = FakeCloud(linux=1)
    cid = api.add_command('left-stopping')
    api.invocations['t-old'] = {'command_id': cid, 'repeat_mode': 'Period', 'tags': {}, 'request': None,
                                'rows': {'i-l000': {'status': 'Stopping', 'exit': None, 'out': b'', 'err': ''}}}
    with pytest.raises(CloudAssistantError, match='t-old.*did not end in time'):
        run(api, name='left-stopping', state='absent', wait_timeout=30)
    assert api.count('DeleteCommand') == 0


def test_deleting_a_command_with_only_scheduled_runs_does_not_wait():
    api = FakeCloud(linux=2)
    run(api, name='nightly', command_content='date')
    run(api, name='nightly', instance_ids=sorted(api.instances), repeat_mode='Period', frequency='rate(5m)')
    api.calls[:] = []
    result = run(api, name='nightly', state='absent')
    assert result['changed'] and len(result['stopped_invoke_ids']) == 1
    assert not [r for a, r in api.calls if a == 'DescribeInvocations' and getattr(r, 'invoke_id', None)]


def test_an_invocation_is_found_by_id_whether_or_not_it_will_run_again():
    api = FakeCloud(linux=1)
    scheduled = run(api, instance_ids=['i-l000'], **SCHEDULE)
    once = run(api, instance_ids=['i-l000'], command_content='echo', wait=False)
    assert describe_invocation(api, scheduled['invoke_id']).invoke_id == scheduled['invoke_id']
    assert describe_invocation(api, once['invoke_id']).invoke_id == once['invoke_id']
    assert describe_invocation(api, scheduled['invoke_id'], timed=False) is None


def test_secret_parameters_are_merged_into_parameters():
    api = FakeCloud(linux=1)
    run(api, instance_ids=['i-l000'], command_content='login {{user}} {{password}}',
        parameters={'user': 'backup'}, secret_parameters={'password': 's3cret!'})
    request = [r for a, r in api.calls if a == 'RunCommand'][0]
    assert request.enable_parameter is True
    assert request.parameters == {'user': 'backup', 'password': 's3cret!'}
    alone = FakeCloud(linux=1)
    run(alone, instance_ids=['i-l000'], command_content='login {{password}}', secret_parameters={'password': 'x'})
    assert [r for a, r in alone.calls if a == 'RunCommand'][0].parameters == {'password': 'x'}


@pytest.mark.parametrize('params, words', [
    (dict(parameters={'Password': 'plain-V4lue'}, secret_parameters={'password': 'S3cret-V4lue'}),
     'parameters and secret_parameters both give password'),
    (dict(secret_parameters={'password': 'S3cret-V4lue', 'extra': 'S3cret-V4lue'}),
     'secret_parameters: extra not used by command_content'),
    (dict(secret_parameters={'password': 'S3cret-V4lue'}, enable_parameter=False),
     'secret_parameters is given but custom parameters are disabled'),
    (dict(secret_parameters={'password': ['S3cret-V4lue']}), "secret_parameters: the value of 'password' must be"),
    (dict(secret_parameters={'bad name': 'S3cret-V4lue'}), "secret_parameters: the name 'bad name' is not valid"),
    (dict(parameters={'user': 'V4lue'}, secret_parameters={'password': 'S3cret-V4lue', 'extra': 'S3cret-V4lue'}),
     'parameters and secret_parameters: extra, user not used by command_content'),
    (dict(parameters={'user': 'V4lue'}), 'parameters: user not used by command_content'),
])
def test_secret_parameters_follow_the_rules_of_parameters(params, words):
    msg = error_of(instance_ids=['i-l000'], command_content='login {{password}}', **params)
    assert words in msg
    assert 'V4lue' not in msg  # names are shown, never values


def test_secret_parameters_are_no_log():
    assert M.ARGUMENT_SPEC['secret_parameters'] == dict(type='dict', no_log=True)


def test_oos_parameter_store_references_need_no_value_and_enable_parameters():
    api = FakeCloud(linux=1)
    run(api, instance_ids=['i-l000'], command_content='connect {{ oos-secret:prod/db-password }} {{oos:region.name}}')
    request = [r for a, r in api.calls if a == 'RunCommand'][0]
    assert request.enable_parameter is True and not request.parameters
    assert L.placeholder_names('{{oos:a}} {{OOS-Secret:b}} {{c}} {{ACS::InstanceId}}') == ['c']
    L.check_placeholders('{{oos-secret:prod/db.password_1}}')
    with pytest.raises(CloudAssistantError, match='not a valid parameter name'):
        L.check_placeholders('{{oos-secret:}}')
    plain = FakeCloud(linux=1)
    run(plain, instance_ids=['i-l000'], command_content='echo {{not a parameter}}')
    assert [r for a, r in plain.calls if a == 'RunCommand'][0].enable_parameter in (False, None)


@pytest.mark.parametrize('params, words', [
    (dict(name='backup', command_content='echo', max_concurrency=5),
     'max_concurrency ignored: it shapes a run on instances, and this task only saves the command'),
    (dict(name='backup', command_content='echo', max_errors=0),  # 0 is a value, not "not given"
     'max_errors ignored: it shapes'),
    (dict(name='old', state='absent', max_errors='10%', stop_on_error=True),
     'max_errors, stop_on_error ignored: they shape a run on instances, and this task deletes a saved command'),
])
def test_rolling_options_without_targets_are_ignored_with_a_warning(params, words):
    # a warning rather than a failure: module_defaults may give them to every task of a play
    api = FakeCloud()
    api.add_command('old')
    result = run(api, **params)
    assert result['changed']
    assert any(words in w for w in result['_warnings']), result['_warnings']
    assert not any('ignored' in w for w in run(FakeCloud(), name='other', command_content='echo')['_warnings'])
