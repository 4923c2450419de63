# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The cloud_assistant connection with the API replaced by a fake: option checks before any API call, the become
password refusal, how invocation statuses map to errors, and whole exec_command / put_file / fetch_file rounds in
which the fake "instance" runs the connection's scripts with /bin/sh in a temporary directory (the real service and
agent are exercised by tests/integration/targets/connection_cloud_assistant)."""

from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
import sys
from types import SimpleNamespace as NS

import pytest

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext

from ansible_collections.alicloud_ops.cloud_assistant.plugins.connection import cloud_assistant
from ansible_collections.alicloud_ops.cloud_assistant.plugins.connection.cloud_assistant import Connection
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._module_times import ModuleTimes
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._run_memory import RunMemory
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._shared_polls import step_tag
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._remote_exec import (
    WORK_PREFIX,
    ansiballz_plan,
    exec_script,
    split_ansiballz,
)
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.ansible_shell import low_level_command, mkdtemp_command
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.ansiballz_payload import PING_DATA, build_ping_payload
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_sendfile import FakeSendApi  # noqa: E402

INSTANCE = 'i-bp1connunit01'
KEPT = 24576    # the output Cloud Assistant keeps (its tail)


class FakeInstanceApi(FakeSendApi):
    """The API object of one instance whose agent runs every RunCommand with /bin/sh here, at once (stdout and
    stderr in one stream, of which only the last 24 KB are kept), and writes every SendFile into the local file
    system. ``verdicts``: (status, error code) the next results report instead of the run's own; ``users``: the
    users that exist."""

    def __init__(self, env, users=('root', None)):
        super(FakeInstanceApi, self).__init__()
        self.region_id = 'cn-test'
        self.env = env
        self.users = set(users)
        self.results = {}
        self.verdicts = []
        self.scripts = []
        self.limit = None           # the longest script RunCommand takes (the service's is 18 KB)

    def with_deadline(self, deadline):
        return self

    def RunCommand(self, request):
        assert request.content_encoding == 'Base64' and request.instance_id == [INSTANCE]
        script = base64.b64decode(request.command_content).decode('utf-8')
        if self.limit is not None and len(script) > self.limit:
            raise CloudAssistantError('RunCommand failed: CmdContent.ExceedLimit', code='CmdContent.ExceedLimit', kind='api')
        self.scripts.append(script)
        invoke_id = 't-%04d' % (len(self.scripts))
        if request.username not in self.users:
            self.results[invoke_id] = NS(invocation_status='Failed', error_code='AccountNotExists', error_info='', output='')
        else:
            done = subprocess.run(['/bin/sh', '-c', script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=self.env, timeout=120, check=False)
            status = 'Success' if done.returncode == 0 else 'Failed'
            self.results[invoke_id] = NS(invocation_status=status, error_code='', error_info='',
                                         output=base64.b64encode(done.stdout[-KEPT:]).decode('ascii'))
        if self.verdicts:
            status, code = self.verdicts.pop(0)
            self.results[invoke_id] = NS(invocation_status=status, error_code=code, error_info='info', output='')
        return NS(invoke_id=invoke_id)

    def DescribeInvocationResults(self, request):
        assert request.instance_id == INSTANCE and request.content_encoding == 'Base64'
        found = self.results.get(request.invoke_id)
        return NS(invocation=NS(invocation_results=NS(invocation_result=[found] if found else [])))

    def StopInvocation(self, request):
        return NS()

    def SendFile(self, request):
        answer = super(FakeInstanceApi, self).SendFile(request)
        if request.file_owner not in self.users:
            self.fail[INSTANCE] = 'AccountNotExists'
            return answer
        os.makedirs(request.target_dir, exist_ok=True)
        path = os.path.join(request.target_dir, request.name)
        with open(path, 'wb') as handle:
            handle.write(base64.b64decode(request.content))
        os.chmod(path, int(request.file_mode, 8))
        return answer


OPTIONS = {'instance_id': None, 'host': INSTANCE, 'remote_user': None, 'command_timeout': 3600, 'poll_interval': 0.1,
           'agent_check_interval': 30, 'api_timeout': 120, 'module_cache': True, 'pipelining': True, 'region_id': 'cn-test',
           'share_polls': True}


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """A connection to a fake instance: {'connection', 'api', 'tmp' (its TMPDIR), 'root' (tmp_path), 'built'}."""
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    api = FakeInstanceApi(env)
    built = []

    def build_api(opts, retry):
        built.append(opts)
        return api

    monkeypatch.setattr(cloud_assistant, 'build_api', build_api)
    monkeypatch.setattr(cloud_assistant, 'resolved_credentials', lambda opts: opts)
    # the module cache and the parts sent in tmp_path, not in /var/tmp and /tmp
    monkeypatch.setattr(cloud_assistant, 'exec_script', functools.partial(exec_script, cache_dir=str(tmp_path / 'cache')))
    monkeypatch.setattr(cloud_assistant, 'INPUT_STAGING', str(tmp_path / 'stage-'))
    # what the connection keeps for the run, in tmp_path instead of Ansible's local temporary directory
    (tmp_path / 'run').mkdir()
    monkeypatch.setattr(cloud_assistant, 'RunMemory', functools.partial(RunMemory, directory=str(tmp_path / 'run')))
    monkeypatch.setattr(cloud_assistant, 'ModuleTimes', functools.partial(ModuleTimes, directory=str(tmp_path / 'run')))
    return {'connection': connection(), 'api': api, 'tmp': tmp, 'root': tmp_path, 'built': built}


def connection(**options):
    conn = Connection(PlayContext())
    conn._options = dict(OPTIONS, **options)
    return conn


def work_dirs(tmp):
    return sorted(name for name in os.listdir(str(tmp)) if name.startswith(WORK_PREFIX))


class FakeBecome(object):
    def __init__(self, password=None, success=None):
        self.password = password
        self.success = success

    def get_option(self, name):
        assert name == 'become_pass'
        return self.password


class SharedPollApi(FakeInstanceApi):
    """The fake instance, answering tag-filtered DescribeInvocationResults too: the tags each RunCommand carried, and
    every DescribeInvocationResults request. ``unlisted``: invoke IDs the tagged answer leaves out."""

    def __init__(self, env):
        super(SharedPollApi, self).__init__(env)
        self.tags = {}
        self.describes = []
        self.unlisted = set()
        self.page_size = 50
        self.refuse_tags = False        # RunCommand with a tag: Forbidden (a RAM policy on tagging)
        self.refuse_all = False         # any RunCommand: Forbidden (no ecs:RunCommand at all)
        self.tagged_error = None        # what a tag-filtered DescribeInvocationResults raises

    def RunCommand(self, request):
        if self.refuse_all or (request.tag and self.refuse_tags):
            raise CloudAssistantError('RunCommand failed: Forbidden.RAM', code='Forbidden.RAM', kind='api')
        answer = super(SharedPollApi, self).RunCommand(request)
        self.tags[answer.invoke_id] = dict((t.key, t.value) for t in request.tag or [])
        return answer

    def DescribeInvocationResults(self, request):
        self.describes.append(request)
        if request.invoke_id is not None:
            return super(SharedPollApi, self).DescribeInvocationResults(request)
        if self.tagged_error is not None:
            raise self.tagged_error
        assert request.instance_id is None and request.max_results == 50
        wanted = dict((t.key, t.value) for t in request.tag)
        listed = [NS(to_map=functools.partial(self._map, invoke_id))
                  for invoke_id, tags in sorted(self.tags.items(), reverse=True)     # newest first
                  if tags == wanted and invoke_id not in self.unlisted]
        start = int(request.next_token or 0)
        following = start + self.page_size
        page = listed[start:following]
        return NS(invocation=NS(invocation_results=NS(invocation_result=page),
                                next_token=str(following) if following < len(listed) else None))

    def _map(self, invoke_id):
        found = self.results[invoke_id]
        return {'InvokeId': invoke_id, 'InstanceId': INSTANCE, 'InvocationStatus': found.invocation_status,
                'ExitCode': 0, 'Output': found.output, 'ErrorCode': found.error_code, 'ErrorInfo': found.error_info}


@pytest.fixture
def shared(instance, monkeypatch):
    """``instance`` with a SharedPollApi, in a worker running the task ``task-uuid-1``."""
    from ansible.executor.process import worker
    env = instance['api'].env
    api = SharedPollApi(env)
    monkeypatch.setattr(cloud_assistant, 'build_api', lambda opts, retry: api)
    monkeypatch.setattr(cloud_assistant, 'run_dir', lambda: str(instance['root'] / 'run'))
    monkeypatch.setattr(worker, 'current_worker', NS(_task=NS(_uuid='task-uuid-1', no_log=False)), raising=False)
    return dict(instance, api=api)


def test_a_tasks_commands_are_tagged_by_step_and_polled_by_tag(shared):
    conn, api = shared['connection'], shared['api']
    assert conn.exec_command('echo one', sudoable=False)[:2] == (0, b'one\n')
    assert conn.exec_command('echo two', sudoable=False)[:2] == (0, b'two\n')
    run = str(shared['root'] / 'run')
    assert [tags['ansible:cloud-assistant:step'] for dummy, tags in sorted(api.tags.items())] == \
        [step_tag(run, 'task-uuid-1', 1), step_tag(run, 'task-uuid-1', 2)]
    assert [r.invoke_id for r in api.describes] == [None, None]           # each poll read its step by tag
    boards = [n for n in os.listdir(str(shared['root'] / 'run')) if n.startswith('cloud_assistant-poll-')]
    assert len(boards) == 4                                                  # two steps: a board and its lock each
    kept = [json.load(open(str(shared['root'] / 'run' / name))) for name in sorted(boards) if name.endswith('.json')]
    assert sorted(map(json.dumps, kept)) == sorted(json.dumps({'runs': {}, 'read': [invoke_id]})   # each result left
                                                   for invoke_id in ('t-0001', 't-0002'))             # once read


def test_a_command_the_tagged_answer_leaves_out_is_polled_by_its_id(shared):
    conn, api = shared['connection'], shared['api']
    api.unlisted.add('t-0001')
    assert conn.exec_command('echo one', sudoable=False)[:2] == (0, b'one\n')
    assert [r.invoke_id for r in api.describes] == [None, 't-0001']
    board = [n for n in os.listdir(str(shared['root'] / 'run')) if n.startswith('cloud_assistant-poll-') and
             n.endswith('.json')]
    with open(str(shared['root'] / 'run' / board[0])) as handle:    # read: never written there again
        assert json.load(handle)['read'] == ['t-0001']


def test_a_shared_poll_reads_only_as_far_as_the_page_that_lists_the_command(shared):
    conn, api = shared['connection'], shared['api']
    api.page_size = 1
    step = step_tag(str(shared['root'] / 'run'), 'task-uuid-1', 1)
    for number in range(1, 4):         # the same step's commands of two earlier batches of hosts, newest first
        api.tags['t-%04d' % number] = {'ansible:cloud-assistant:step': step}
        api.results['t-%04d' % number] = NS(invocation_status='Success', error_code='', error_info='', output='')
        api.scripts.append('earlier')
    assert conn.exec_command('echo one', sudoable=False)[:2] == (0, b'one\n')
    assert [(r.invoke_id, r.next_token) for r in api.describes] == [(None, None)]   # t-0004 was on the first page


def test_a_failed_shared_poll_is_made_again_by_id(shared):
    conn, api = shared['connection'], shared['api']
    api.tagged_error = CloudAssistantError('DescribeInvocationResults failed: Throttling', code='Throttling', kind='api')
    assert conn.exec_command('echo one', sudoable=False)[:2] == (0, b'one\n')
    assert [r.invoke_id for r in api.describes] == [None, 't-0001']


def test_a_refused_tag_runs_the_command_untagged_for_the_rest_of_the_run(shared, monkeypatch):
    conn, api = shared['connection'], shared['api']
    warnings = []
    monkeypatch.setattr(cloud_assistant.display, 'warning', warnings.append)
    api.refuse_tags = True
    assert conn.exec_command('echo one', sudoable=False)[:2] == (0, b'one\n')
    assert len(warnings) == 1 and 'share_polls' in warnings[0]
    later = connection()                # a later task of the run, on another host: not tagged, no second refusal
    api.refuse_tags = False
    assert later.exec_command('echo two', sudoable=False)[:2] == (0, b'two\n')
    assert api.tags == {'t-0001': {}, 't-0002': {}} and len(warnings) == 1
    assert [r.invoke_id for r in api.describes] == ['t-0001', 't-0002']


def test_a_refusal_that_is_not_about_the_tag_stays_the_error(shared, monkeypatch):
    conn, api = shared['connection'], shared['api']
    warnings = []
    monkeypatch.setattr(cloud_assistant.display, 'warning', warnings.append)
    api.refuse_all = True
    with pytest.raises(AnsibleConnectionFailure, match='Forbidden.RAM'):
        conn.exec_command('echo one', sudoable=False)
    assert warnings == [] and not [n for n in os.listdir(str(shared['root'] / 'run')) if 'untagged' in n]


def test_without_share_polls_nothing_is_tagged(shared):
    conn = connection(share_polls=False)
    api = shared['api']
    assert conn.exec_command('echo one', sudoable=False)[:2] == (0, b'one\n')
    assert api.tags == {'t-0001': {}} and [r.invoke_id for r in api.describes] == ['t-0001']


# ----------------------------------------------------------------------------------------------------------------
# Options, checked before any API call

def test_the_host_is_the_instance_id_when_it_looks_like_one(instance):
    conn = instance['connection']
    conn._connect()
    assert conn._instance == INSTANCE and conn._connected
    assert instance['built'][0].region_id == 'cn-test'


def test_instance_id_wins_over_the_host(instance):
    conn = connection(host='web1', instance_id='i-bp1other0002')
    conn._connect()
    assert conn._instance == 'i-bp1other0002'


def test_a_host_that_is_no_instance_id_is_refused(instance):
    conn = connection(host='web1.example.com')
    with pytest.raises(AnsibleConnectionFailure, match="no instance ID for host 'web1.example.com'.*ansible_cloud_assistant_instance_id"):
        conn._connect()
    assert instance['built'] == [] and not conn._connected


def test_a_malformed_instance_id_is_refused(instance):
    with pytest.raises(AnsibleConnectionFailure, match="instance_id must be an ECS instance ID.*'web1'"):
        connection(instance_id='web1')._connect()
    with pytest.raises(AnsibleConnectionFailure, match='instance_id must be'):
        connection(instance_id='i-bp1abc\n')._connect()
    assert instance['built'] == []


@pytest.mark.parametrize('name, value, message', [
    ('command_timeout', 9, 'command_timeout must be between 10 and 86400, not 9'),
    ('command_timeout', 86401, 'command_timeout must be between 10 and 86400'),
    ('command_timeout', 'soon', 'command_timeout must be a number between 10 and 86400'),
    ('command_timeout', None, 'command_timeout must be a number'),
    ('poll_interval', 0.05, 'poll_interval must be between 0.1 and 5, not 0.05'),
    ('poll_interval', 5.5, 'poll_interval must be between 0.1 and 5'),
    ('agent_check_interval', -1, 'agent_check_interval must be between 0 and 3600'),
    ('api_timeout', 4, 'api_timeout must be between 5 and 3600, not 4'),
    ('api_timeout', 3601, 'api_timeout must be between 5 and 3600'),
])
def test_out_of_bounds_options_are_named(instance, name, value, message):
    conn = connection(**{name: value})
    with pytest.raises(AnsibleError, match=message):
        conn._connect()
    assert instance['built'] == [] and instance['api'].requests == []


@pytest.mark.parametrize('name, value', [('command_timeout', 10), ('command_timeout', 86400), ('poll_interval', 0.1),
                                         ('poll_interval', 5), ('agent_check_interval', 0),
                                         ('api_timeout', 5), ('api_timeout', 3600)])
def test_bounds_are_inclusive(instance, name, value):
    conn = connection(**{name: value})
    conn._connect()
    assert conn._connected


def test_an_api_that_cannot_be_set_up_makes_the_host_unreachable(monkeypatch):
    def refuse(opts, retry):
        raise CloudAssistantError('no credentials found', kind='credentials')

    monkeypatch.setattr(cloud_assistant, 'build_api', refuse)
    monkeypatch.setattr(cloud_assistant, 'resolved_credentials', lambda opts: opts)
    with pytest.raises(AnsibleConnectionFailure, match='cannot set up the Cloud Assistant API: no credentials found'):
        connection()._connect()


def test_remote_paths_must_be_absolute(instance):
    conn = instance['connection']
    with pytest.raises(AnsibleError, match='remote paths must be absolute'):
        conn.fetch_file('relative/file', str(instance['root'] / 'x'))
    assert instance['api'].actions('RunCommand') == []


def test_pipelining_follows_its_option_and_never_wraps_async(instance):
    assert connection().is_pipelining_enabled() is True
    assert connection().is_pipelining_enabled(wrap_async=True) is False
    assert connection(pipelining=False).is_pipelining_enabled() is False


# ----------------------------------------------------------------------------------------------------------------
# become

def test_a_become_password_is_refused_before_anything_runs(instance):
    conn = instance['connection']
    conn.become = FakeBecome(password='hunter2')
    with pytest.raises(AnsibleError, match='a become password cannot be sent through Cloud Assistant'):
        conn.exec_command('sudo -S id', sudoable=True)
    assert instance['api'].actions('RunCommand') == []
    # a command that is not run through become is not concerned
    assert conn.exec_command('echo plain', sudoable=False)[:2] == (0, b'plain\n')


def test_become_without_password_runs_and_its_success_line_is_removed(instance):
    conn = instance['connection']
    conn.become = FakeBecome(success='BECOME-SUCCESS-abc')
    rc, out, err = conn.exec_command('echo BECOME-SUCCESS-abc; echo \'{"changed": false}\'')
    assert (rc, out, err) == (0, b'{"changed": false}\n', b'')
    rc, out, err = conn.exec_command('echo BECOME-SUCCESS-abc; echo done', sudoable=False)
    assert out == b'BECOME-SUCCESS-abc\ndone\n'


# ----------------------------------------------------------------------------------------------------------------
# Statuses

def output_of(status, code='', output='', user=None, timeout=600):
    conn = connection(remote_user=user)
    conn._instance = INSTANCE
    return conn._output_of(NS(invocation_status=status, error_code=code, error_info='details', output=output), 't-1',
                           'command_timeout (%d s)' % timeout)


def test_timeout_names_command_timeout():
    with pytest.raises(AnsibleError, match=r'ran longer than command_timeout \(600 s\)') as caught:
        output_of('Timeout', 'ExecutionTimeout')
    assert not isinstance(caught.value, AnsibleConnectionFailure)


@pytest.mark.parametrize('status, code', [('Failed', 'ClientNotRunning'), ('Failed', 'ClientNotOnline'),
                                          ('Failed', 'InstanceNotRunning'), ('Aborted', ''), ('Failed', 'DeliveryTimeout')])
def test_runs_that_never_started_make_the_host_unreachable(status, code):
    with pytest.raises(AnsibleConnectionFailure, match='Cloud Assistant could not run on %s: %s' % (INSTANCE, code or status)):
        output_of(status, code)


def test_a_missing_user_is_named():
    with pytest.raises(AnsibleConnectionFailure, match=r"AccountNotExists the user 'deploy' \(remote_user\) does not exist"):
        output_of('Failed', 'AccountNotExists', user='deploy')


@pytest.mark.parametrize('status', ['Terminated', 'Cancelled'])
def test_stopped_runs_are_errors(status):
    with pytest.raises(AnsibleError, match='was stopped before it ended'):
        output_of(status)


@pytest.mark.parametrize('status, code', [('Invalid', 'InvalidCommand'), ('Error', 'ExecutionException')])
def test_other_ends_are_errors_with_their_code(status, code):
    with pytest.raises(AnsibleError, match='ended with %s %s' % (status, code)):
        output_of(status, code)


@pytest.mark.parametrize('status', ['Success', 'Failed'])
def test_finished_runs_return_their_output(status):
    assert output_of(status, output=base64.b64encode(b'ACA1 R 0 0 0 0\n\n\n').decode()) == b'ACA1 R 0 0 0 0\n\n\n'


# ----------------------------------------------------------------------------------------------------------------
# Whole rounds on the fake instance

def test_exec_command_keeps_streams_and_exit_code(instance):
    conn = instance['connection']
    assert conn.exec_command('echo out; echo err >&2; exit 3') == (3, b'out\n', b'err\n')
    request = instance['api'].actions('RunCommand')[0]
    assert request.timeout == 3600 and request.username is None
    assert work_dirs(instance['tmp']) == []


def test_exec_command_with_stdin(instance):
    data = bytes(bytearray(range(256))) * 4
    assert instance['connection'].exec_command('cat', in_data=data) == (0, data, b'')
    assert instance['api'].actions('SendFile') == []


def test_exec_command_with_stdin_too_large_for_one_command(instance):
    data = os.urandom(40000)
    rc, out, err = instance['connection'].exec_command('cat', in_data=data)
    assert (rc, out, err) == (0, data, b'')
    sent = instance['api'].actions('SendFile')
    assert len(sent) == 2 and sent[0].target_dir.startswith(str(instance['root'] / 'stage-'))
    assert not os.path.exists(sent[0].target_dir)          # the parts are removed once read


def test_output_beyond_what_the_service_keeps_is_read_in_pieces(instance):
    data = os.urandom(60000)
    (instance['root'] / 'data.bin').write_bytes(data)
    rc, out, err = instance['connection'].exec_command('cat %s; echo tail >&2; exit 1' % (instance['root'] / 'data.bin'))
    assert (rc, out, err) == (1, data, b'tail\n')
    assert work_dirs(instance['tmp']) == []


def test_a_user_that_does_not_exist_makes_the_host_unreachable(instance):
    conn = connection(remote_user='deploy')
    with pytest.raises(AnsibleConnectionFailure, match="the user 'deploy' \\(remote_user\\) does not exist"):
        conn.exec_command('id')
    assert instance['api'].actions('RunCommand')[0].username == 'deploy'


def test_a_timeout_reported_by_the_service(instance):
    conn = instance['connection']
    instance['api'].verdicts.append(('Timeout', 'ExecutionTimeout'))
    with pytest.raises(AnsibleError, match='command_timeout'):
        conn.exec_command('sleep 1')


def test_an_answer_without_frame_is_an_error(instance):
    conn = instance['connection']
    instance['api'].verdicts.append(('Success', ''))
    with pytest.raises(AnsibleError, match='the command wrapper printed no result'):
        conn.exec_command('true')


@pytest.fixture(scope='module')
def payload(tmp_path_factory):
    return build_ping_payload(tmp_path_factory.mktemp('ansiballz'))


def test_a_module_sends_its_files_once_then_runs_from_the_cache(instance, payload):
    conn = instance['connection']
    api = instance['api']
    rc, out, err = conn.exec_command(sys.executable, in_data=payload)
    assert (rc, err) == (0, b''), err
    assert json.loads(out)['ping'] == PING_DATA
    first_runs, first_sends = len(api.actions('RunCommand')), len(api.actions('SendFile'))
    assert first_runs == 2 and first_sends >= 1           # X (files missing), then the run with the files sent
    rc, out, err = conn.exec_command(sys.executable, in_data=payload)
    assert json.loads(out)['ping'] == PING_DATA
    assert len(api.actions('RunCommand')) == first_runs + 1 and len(api.actions('SendFile')) == first_sends
    assert work_dirs(instance['tmp']) == []


def script_sizes(payload):
    """Lengths of the first module command with the module's file inline and without, and of the wait for parts
    (without the shell fast path, which the connection leaves out first when a script is too long)."""
    split = split_ansiballz(payload)
    inline = cloud_assistant.exec_script(sys.executable, payload=(ansiballz_plan(split, fast=False), split.interpreter))
    plain = cloud_assistant.exec_script(sys.executable, payload=(ansiballz_plan(split, inline_module=False, fast=False),
                                                                 split.interpreter))
    waiting = cloud_assistant.exec_script(sys.executable, payload=(ansiballz_plan(split, inline_module=False, fast=False),
                                                                   split.interpreter),
                                          parts=(cloud_assistant.INPUT_STAGING + '0' * 16, 999999, '0' * 64))
    return len(inline), len(plain), len(waiting) - len(plain)


def test_a_module_whose_inline_file_fits_only_without_the_wait_for_parts(instance, payload, monkeypatch):
    inline, plain, wait = script_sizes(payload)
    assert plain + wait <= inline < inline + wait
    monkeypatch.setattr(cloud_assistant, 'SCRIPT_BUDGET', inline)
    instance['api'].limit = inline
    rc, out, err = instance['connection'].exec_command(sys.executable, in_data=payload)
    assert (rc, err) == (0, b'') and json.loads(out)['ping'] == PING_DATA
    assert len(instance['api'].actions('RunCommand')) == 2


def test_a_module_too_large_to_carry_inline_keeps_it_out_when_sending_parts(instance, payload, monkeypatch):
    inline, plain, wait = script_sizes(payload)
    assert plain + wait < inline
    monkeypatch.setattr(cloud_assistant, 'SCRIPT_BUDGET', inline - 1)
    instance['api'].limit = inline - 1
    rc, out, err = instance['connection'].exec_command(sys.executable, in_data=payload)
    assert (rc, err) == (0, b'') and json.loads(out)['ping'] == PING_DATA
    assert len(instance['api'].actions('RunCommand')) == 2


def test_a_module_run_before_takes_the_fast_path_before_its_file_inline(instance, payload, monkeypatch):
    split = split_ansiballz(payload)
    conn = instance['connection']
    conn.exec_command(sys.executable, in_data=payload)       # the cache filled and the module's time kept

    def size(inline, fast):
        plan = ansiballz_plan(split, inline_module=inline, fast=fast)
        return len(cloud_assistant.exec_script(sys.executable, payload=(plan, split.interpreter)))

    both, inline, fast = size(True, True), size(True, False), size(False, True)
    assert max(inline, fast) < both
    monkeypatch.setattr(cloud_assistant, 'SCRIPT_BUDGET', both - 1)
    instance['api'].limit = both - 1
    rc, out, err = conn.exec_command(sys.executable, in_data=payload)
    assert (rc, err) == (0, b'') and json.loads(out)['ping'] == PING_DATA
    script = instance['api'].scripts[-1]
    assert '/z-%s-' % ansiballz_plan(split).archive_key in script     # the shell fast path, without the loader's work
    assert len(script) == fast                                          # and without the module's file

    # an instance that has not run the module: its file inline, so that it is never missing from the cache
    monkeypatch.setattr(conn._times, 'seconds', lambda module: None)
    conn.exec_command(sys.executable, in_data=payload)
    assert len(instance['api'].scripts[-1]) == inline


def test_without_module_cache_the_payload_travels_whole(instance, payload):
    conn = connection(module_cache=False)
    rc, out, err = conn.exec_command(sys.executable, in_data=payload)
    assert json.loads(out)['ping'] == PING_DATA
    api = instance['api']
    assert len(api.actions('RunCommand')) == 1
    parts = sorted(api.actions('SendFile'), key=lambda r: r.name)      # sent concurrently: in any order
    assert len(parts) == 8 and b''.join(base64.b64decode(r.content) for r in parts) == payload


@pytest.mark.parametrize('size', [0, 100, 300000])
def test_put_file_then_fetch_file(instance, size):
    conn = instance['connection']
    data = os.urandom(size)
    source = instance['root'] / 'source.bin'
    source.write_bytes(data)
    remote = instance['root'] / 'remote' / 'copy.bin'
    remote.parent.mkdir()
    conn.put_file(str(source), str(remote))
    assert remote.read_bytes() == data
    back = instance['root'] / 'back.bin'
    conn.fetch_file(str(remote), str(back))
    assert back.read_bytes() == data
    assert work_dirs(instance['tmp']) == []


def test_the_fetch_script_time_is_kept_for_its_first_poll(instance, monkeypatch):
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._module_times import FETCH_KEY
    conn = instance['connection']
    remote = instance['root'] / 'data.txt'
    remote.write_bytes(b'x' * 100)
    conn.fetch_file(str(remote), str(instance['root'] / 'back-1'))
    took = ModuleTimes(INSTANCE, str(instance['root'] / 'run')).seconds(FETCH_KEY)
    assert took is not None and 0 <= took < 60
    firsts = []
    real = cloud_assistant.PollSchedule
    monkeypatch.setattr(cloud_assistant, 'PollSchedule', lambda **kwargs: firsts.append(kwargs['first']) or real(**kwargs))
    memory = RunMemory(INSTANCE, str(instance['root'] / 'run'))
    expected = cloud_assistant.first_poll(took, memory.get('lag'), OPTIONS['poll_interval'], pace=memory.get('pace'))
    connection().fetch_file(str(remote), str(instance['root'] / 'back-2'))
    assert firsts == [pytest.approx(expected)]


def test_put_file_of_a_missing_file(instance):
    with pytest.raises(AnsibleFileNotFound):
        instance['connection'].put_file(str(instance['root'] / 'nope'), '/tmp/x')
    assert instance['api'].requests == []


def test_fetch_file_of_a_missing_file(instance):
    with pytest.raises(AnsibleFileNotFound, match='file not found on %s' % INSTANCE):
        instance['connection'].fetch_file(str(instance['root'] / 'nope'), str(instance['root'] / 'back'))
    assert not (instance['root'] / 'back').exists()


# -- commands too long for RunCommand, and staging directories of other users ------------------------------------
def test_a_command_too_long_for_runcommand_travels_as_a_file_read_by_a_shell(instance):
    conn, api = instance['connection'], instance['api']
    long_command = 'echo start; : ' + 'x' * 30000 + '; echo end >&2; exit 4'
    rc, out, err = conn.exec_command(long_command)
    assert (rc, out, err) == (4, b'start\n', b'end\n')
    assert len(api.tasks) == 2                # 30 KB of command: two SendFile parts
    assert all(len(script) <= 18432 for script in api.scripts)


def test_parts_staged_for_another_user_are_removed_as_root(instance):
    conn, api = instance['connection'], instance['api']
    api.users.add('causer')
    conn._options['remote_user'] = 'causer'
    usernames = []
    original = api.RunCommand

    def record(request):
        usernames.append(request.username)
        return original(request)

    api.RunCommand = record
    data = os.urandom(30000)
    rc, out, dummy = conn.exec_command('wc -c', in_data=data)
    assert (rc, out.strip()) == (0, b'30000')
    assert usernames == ['causer', 'root']      # the run, then the removal of its staging directory as root
    assert 'rm -rf --' in api.scripts[-1] and str(instance['root'] / 'stage-') in api.scripts[-1]


def test_parts_staged_for_root_need_no_second_command(instance):
    conn, api = instance['connection'], instance['api']
    rc, out, dummy = conn.exec_command('wc -c', in_data=os.urandom(30000))
    assert (rc, out.strip()) == (0, b'30000')
    assert len(api.scripts) == 1


# -- put_file is awaited by the next command, not by polling ---------------------------------------------------------
def test_the_command_after_put_file_waits_for_the_file_instead_of_polling(instance):
    conn, api = instance['connection'], instance['api']
    data = b'small file\n'
    source = instance['root'] / 'small.txt'
    source.write_bytes(data)
    remote = instance['root'] / 'small-remote.txt'
    conn.put_file(str(source), str(remote))
    rc, out, dummy = conn.exec_command('cat %s' % remote)
    assert (rc, out) == (0, data)
    assert api.actions('DescribeSendFileResults') == []
    assert api.scripts[-1].split('\n', 2)[2].startswith('wf() {') and ('wf %s %d ' % (remote, len(data))) in api.scripts[-1]
    conn.exec_command('true')                      # the next command no longer waits for it
    assert 'wf ' not in api.scripts[-1]


def test_a_file_that_never_arrives_fails_the_next_command_with_the_reason(instance, monkeypatch):
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils import _remote_exec
    monkeypatch.setattr(_remote_exec, 'WAIT_FILES_SECONDS', 1)
    conn, api = instance['connection'], instance['api']
    api.fail[INSTANCE] = 'FileCreateFail'           # the task fails and writes nothing
    api.SendFile = functools.partial(FakeSendApi.SendFile, api)
    source = instance['root'] / 'small.txt'
    source.write_bytes(b'x')
    conn.put_file(str(source), str(instance['root'] / 'never.txt'))
    with pytest.raises(AnsibleError, match='never.txt .*FileCreateFail'):
        conn.exec_command('true', sudoable=False)
    assert len(api.actions('DescribeSendFileResults')) >= 1


def test_fetch_file_after_put_file_awaits_the_send_first(instance):
    conn, api = instance['connection'], instance['api']
    source = instance['root'] / 'small.txt'
    source.write_bytes(b'abc')
    remote = instance['root'] / 'small-remote.txt'
    conn.put_file(str(source), str(remote))
    conn.fetch_file(str(remote), str(instance['root'] / 'back.txt'))
    assert (instance['root'] / 'back.txt').read_bytes() == b'abc'
    assert len(api.actions('DescribeSendFileResults')) >= 1


# -- review findings ------------------------------------------------------------------------------------------------
def test_the_command_runs_with_the_agents_umask_while_the_wrapper_files_stay_private(instance):
    conn = instance['connection']
    target = instance['root'] / 'made'
    rc, out, dummy = conn.exec_command('umask; mkdir %s; touch %s/f; stat -c %%a %s %s/f' % (target, target, target, target))
    assert rc == 0
    lines = out.decode().split()
    assert lines[0] != '0077'
    assert lines[1:] == ['755', '644'] if lines[0] == '0022' else lines[1] != '700'


@pytest.mark.parametrize('kind', ['connection', 'dns', 'tls', 'credentials', 'config'])
def test_an_api_that_cannot_be_reached_makes_the_host_unreachable(instance, kind):
    conn, api = instance['connection'], instance['api']

    def refuse(request):
        raise CloudAssistantError('RunCommand failed: no answer', kind=kind)

    api.RunCommand = refuse
    with pytest.raises(AnsibleConnectionFailure):
        conn.exec_command('true')


def test_a_long_non_ascii_command_is_measured_in_bytes(instance):
    conn, api = instance['connection'], instance['api']
    command = 'echo ' + '\u6587' * 7000 + ' >/dev/null; echo ok'
    rc, out, dummy = conn.exec_command(command)
    assert (rc, out) == (0, b'ok\n')
    assert all(len(script.encode('utf-8')) <= 18432 for script in api.scripts)


def test_new_options_on_a_kept_connection_connect_again(instance, monkeypatch):
    """Ansible keeps the connection across loop items at one address and sets the options again for each item."""
    def plain_set_options(self, task_keys=None, var_options=None, direct=None):
        self._options = dict(direct)  # what Ansible's configuration would resolve, without a loaded plugin
    monkeypatch.setattr(cloud_assistant.ConnectionBase, 'set_options', plain_set_options)
    conn = instance['connection']
    conn.set_options(var_options={}, direct=dict(OPTIONS))
    conn.exec_command('true')
    conn.set_options(var_options={}, direct=dict(OPTIONS))  # the same options: the connection is kept
    conn.exec_command('true')
    assert len(instance['built']) == 1
    conn.set_options(var_options={}, direct=dict(OPTIONS, access_key_secret='other-secret', command_timeout=30))
    assert not conn._connected
    conn.exec_command('true')
    assert len(instance['built']) == 2
    assert instance['built'][1].access_key_secret == 'other-secret' and conn._timeout == 30


# -- Ansible's housekeeping commands --------------------------------------------------------------------------------
def test_the_temporary_directory_and_chmod_run_with_the_next_command(instance):
    conn, api = instance['connection'], instance['api']
    command, made = mkdtemp_command(instance['root'] / 'remote_tmp')
    assert conn.exec_command(command, sudoable=False) == (0, ('ansible-tmp-1.5-7-9=%s\n' % made).encode(), b'')
    assert api.scripts == [] and not os.path.exists(made)          # answered, nothing sent yet
    rc, out, dummy = conn.exec_command('stat -c %%a %s' % made)
    assert (rc, out) == (0, b'700\n') and len(api.scripts) == 1      # made first, in the same RunCommand
    source = instance['root'] / 'module.py'
    source.write_bytes(b'print(1)\n')
    conn.put_file(str(source), made + '/module.py')
    assert len(api.scripts) == 1                                     # nothing deferred to flush
    assert conn.exec_command(low_level_command('chmod u+rwx %s/ %s/module.py' % (made, made)), sudoable=False) == (0, b'', b'')
    rc, out, dummy = conn.exec_command('stat -c %%a %s/module.py' % made)
    assert (rc, out) == (0, b'700\n') and len(api.scripts) == 2
    conn.exec_command('true')
    assert 'chmod' not in api.scripts[-1]                            # ran once


def test_a_deferred_command_that_fails_fails_the_next_one_which_does_not_run(instance):
    conn, api = instance['connection'], instance['api']
    blocker = instance['root'] / 'a-file'
    blocker.write_text('not a directory')
    command, made = mkdtemp_command(blocker)
    conn.exec_command(command, sudoable=False)
    marker = instance['root'] / 'ran'
    with pytest.raises(AnsibleError, match=r'umask 77 && mkdir .*failed with exit code 1: .*(Not a directory|File exists)'):
        conn.exec_command('touch %s' % marker)
    assert not marker.exists()
    conn.exec_command('true')
    assert 'mkdir' not in api.scripts[-1]                            # not run again


def test_put_file_and_fetch_file_run_what_was_deferred_first(instance):
    conn, api = instance['connection'], instance['api']
    command, made = mkdtemp_command(instance['root'] / 'remote_tmp')
    conn.exec_command(command, sudoable=False)
    source = instance['root'] / 'payload.bin'
    source.write_bytes(b'\x00\x01 payload')
    conn.put_file(str(source), made + '/payload.bin')
    assert len(api.scripts) == 1 and 'mkdir' in api.scripts[0]      # the directory before SendFile
    command, other = mkdtemp_command(instance['root'] / 'remote_tmp', 'ansible-tmp-2')
    conn.exec_command(command, sudoable=False)
    conn.fetch_file(made + '/payload.bin', str(instance['root'] / 'back.bin'))
    assert (instance['root'] / 'back.bin').read_bytes() == b'\x00\x01 payload' and os.path.isdir(other)


def test_close_runs_what_is_still_deferred(instance):
    conn = instance['connection']
    command, made = mkdtemp_command(instance['root'] / 'remote_tmp')
    conn.exec_command(command, sudoable=False)
    conn.close()
    assert os.path.isdir(made)


def test_a_home_directory_is_asked_once_per_run_and_user(instance):
    conn, api = instance['connection'], instance['api']
    query = low_level_command('echo ~')
    rc, home, dummy = conn.exec_command(query, sudoable=False)
    assert rc == 0 and home.startswith(b'/') and len(api.scripts) == 1
    later = connection()                                            # the next task: a new connection, same run
    assert later.exec_command(query, sudoable=False) == (0, home, b'')
    assert len(api.scripts) == 1
    other_user = connection(remote_user='root')
    other_user.exec_command(query, sudoable=False)
    assert len(api.scripts) == 2                                     # another user: asked
    failing = connection()
    api.verdicts.append(('Failed', ''))
    with pytest.raises(AnsibleError):
        failing.exec_command(low_level_command('echo ~nosuchuser'), sudoable=False)
    failing.exec_command(low_level_command('echo ~nosuchuser'), sudoable=False)   # a failure is never kept
    assert len(api.scripts) == 4


def test_the_first_command_of_a_run_tells_the_home_so_echo_tilde_needs_no_command(instance):
    conn, api = instance['connection'], instance['api']
    api.env['HOME'] = str(instance['root'])
    conn.exec_command('true')
    assert 'ACA1 H' in api.scripts[-1]
    later = connection()                                            # the next task: a new connection, same run
    assert later.exec_command(low_level_command('echo ~'), sudoable=False) == (0, b'%s\n' % str(instance['root']).encode(), b'')
    later.exec_command('true')
    assert len(api.scripts) == 2 and 'ACA1 H' not in api.scripts[-1]   # known: not asked again
    # another user's home: asked as before
    assert later.exec_command(low_level_command('echo ~root'), sudoable=False)[0] == 0
    assert len(api.scripts) == 3
    # with a remote user, Ansible asks echo ~user: that is what the first command reports
    as_root = connection(remote_user='root')
    as_root.exec_command('true')
    assert "echo ~root'" in api.scripts[-1]
    assert as_root.exec_command(low_level_command('echo ~root'), sudoable=False) == (0, b'/root\n', b'')
    assert len(api.scripts) == 4


def test_without_a_run_directory_no_command_asks_the_home(instance, monkeypatch):
    monkeypatch.setattr(cloud_assistant, 'RunMemory', functools.partial(RunMemory, directory=''))
    conn = connection()
    conn.exec_command('true')
    conn.exec_command('true')
    assert not any('ACA1 H' in script for script in instance['api'].scripts)     # it could not be kept anyway


def test_a_run_starts_from_the_lag_the_last_run_learnt_on_the_instance(instance, monkeypatch):
    instance['connection'].exec_command('true')
    kept = ModuleTimes(INSTANCE, str(instance['root'] / 'run')).lag()
    assert isinstance(kept, float) and kept >= 0
    (instance['root'] / 'next-run').mkdir()
    monkeypatch.setattr(cloud_assistant, 'RunMemory', functools.partial(RunMemory, directory=str(instance['root'] / 'next-run')))
    conn = connection()
    conn._connect()
    assert conn._memory.get('lag') is None and conn._learnt('lag') == kept


def test_the_first_poll_comes_when_the_module_ended_before_and_the_times_are_learnt(instance, payload, monkeypatch):
    conn = instance['connection']
    firsts = []
    real = cloud_assistant.PollSchedule

    def schedule(**kwargs):
        firsts.append(kwargs.get('first'))
        return real(**kwargs)

    monkeypatch.setattr(cloud_assistant, 'PollSchedule', schedule)
    data = payload
    conn.exec_command(sys.executable, in_data=data)            # files sent, then run
    conn.exec_command(sys.executable, in_data=data)
    module = split_ansiballz(data).module_path
    times = ModuleTimes(INSTANCE, str(instance['root'] / 'run'))
    took = times.seconds(module)
    lag = RunMemory(INSTANCE, str(instance['root'] / 'run')).get('lag')
    assert took is not None and 0 < took < 10 and isinstance(lag, float) and lag >= 0
    # the first run of a module not seen before: 1.5 poll intervals; then from what was learnt
    module_runs = [first for first in firsts if first is not None]
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._module_times import UNSEEN_MODULE
    assert module_runs[0] == pytest.approx(OPTIONS['poll_interval'] * UNSEEN_MODULE)
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._module_times import first_poll
    memory = RunMemory(INSTANCE, str(instance['root'] / 'run'))
    assert isinstance(memory.get('pace'), float)     # the second run against the first's time
    expected = first_poll(ModuleTimes(INSTANCE, str(instance['root'] / 'run')).seconds(module), memory.get('lag'),
                          OPTIONS['poll_interval'], module=True, pace=memory.get('pace'))
    conn.exec_command(sys.executable, in_data=data)
    assert firsts[-1] == pytest.approx(expected)
    # a shell command: right after the lag
    conn.exec_command('true')
    assert firsts[-1] < module_runs[0]
