# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""cloud_assistant_file's pure parts: input checks (before any API call), the per-instance decision, the diff."""

from __future__ import annotations

import os
from types import SimpleNamespace as NS

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import PART_BYTES
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_file import CloudAssistantFile
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.fake_sendfile import FakeSendApi  # noqa: E402


class Module:
    def __init__(self, **params):
        self.params = dict(src=None, content='x', dest='/etc/motd', mode=None, owner=None, group=None,
                           overwrite=True, instance_ids=['i-1'], instance_tags=None, wait_timeout=300)
        self.params.update(params)
        self.check_mode = False
        self._diff = True
        self.started = 100.0

    def api(self, deadline):
        raise AssertionError('no API call expected')


@pytest.mark.parametrize('params, option', [
    (dict(dest='etc/motd'), 'dest'),
    (dict(dest='/etc/'), 'dest'),
    (dict(dest='/' + 'd' * 201 + '/f'), 'dest'),
    (dict(dest='/d/' + 'f' * 256), 'dest'),
    (dict(mode='u+x'), 'mode'),
    (dict(owner='a:b'), 'owner'),
    (dict(group='x' * 65), 'group'),
    (dict(owner='-1'), 'owner'),
    (dict(group='--help'), 'group'),
    (dict(instance_ids=['']), 'instance_ids'),
    (dict(instance_tags={}, instance_ids=None), 'instance_tags'),
    (dict(wait_timeout=5), 'wait_timeout'),
    (dict(src='/no/such/file', content=None), 'src'),
])
def test_bad_input_is_refused_before_any_call(params, option):
    with pytest.raises(CloudAssistantError) as caught:
        CloudAssistantFile(Module(**params)).run()
    assert caught.value.kind == 'config' and option in caught.value.msg


STATE = {'exists': True, 'checksum': 'a' * 64, 'mode': '0644', 'owner': 'root', 'group': 'root', 'uid': '0',
         'gid': '0', 'gzip': True, 'content': b'old\n'}


@pytest.mark.parametrize('params, state, action', [
    ({}, {'exists': False}, 'created'),
    ({}, dict(STATE, checksum='b' * 64), 'replaced'),
    ({}, STATE, 'unchanged'),
    (dict(mode='0600'), STATE, 'attributes'),
    (dict(owner='0'), STATE, 'unchanged'),
    (dict(overwrite=False, mode='0600'), dict(STATE, checksum='b' * 64), 'kept'),
    (dict(overwrite=False), {'exists': False}, 'created'),
])
def test_decide(params, state, action):
    resource = CloudAssistantFile(Module(**params))
    resource.validate()
    assert resource.decide(state, 'a' * 64) == action


def test_diff_groups_instances_with_the_same_content_before():
    resource = CloudAssistantFile(Module())
    states = {'i-1': STATE, 'i-2': STATE, 'i-3': {'exists': False}, 'i-4': dict(STATE, content=b'\xff\x00'),
              'i-5': STATE}
    actions = {'i-1': 'replaced', 'i-2': 'replaced', 'i-3': 'created', 'i-4': 'replaced', 'i-5': 'unchanged'}
    diffs = resource.diffs(b'new\n', states, actions)
    assert [(d['before_header'], d['before'], d['after']) for d in diffs] == [
        ('i-1, i-2:/etc/motd', 'old\n', 'new\n'),
        ('i-3:/etc/motd', '', 'new\n'),
        ('i-4:/etc/motd', '(binary or larger than 16384 bytes)\n', 'new\n'),
    ]
    assert resource.diffs(b'\x00bin', states, {'i-3': 'created'})[0]['after'].startswith('(binary')


# -- the transfer against a fake API (review finding 10) -------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Runner:
    """Stands in for CommandRunner: every finalize succeeds; records the instances it ran on."""

    def __init__(self):
        self.ran = []

    def run(self, spec, ids, deadline):
        self.ran.append(list(ids))
        return NS(invoke_ids=['t-final'], error=None, timed_out=False, instances=[
            dict(instance_id=i, invoke_id='t-final', invocation_status='Success', exit_code=0, start_time=None,
                 finish_time=None, error_code=None, error_info=None, output='CAFILE done\n') for i in ids])


def transfer(api, data, actions, clock=None, **params):
    clock = clock or Clock()
    resource = CloudAssistantFile(Module(**params), clock=clock, sleep=clock.sleep, schedule=PollSchedule())
    resource.validate()
    resource.api = api
    states = dict((i, {'exists': a != 'created', 'gzip': True}) for i, a in actions.items())
    entries = dict((i, resource.entry(dict(instance_id=i, invoke_id='t-cmp', invocation_status='Success',
                                           exit_code=0, error_code=None, error_info=None, start_time=None,
                                           finish_time=None), a)) for i, a in actions.items())
    result = {'send_calls': 0}
    runner = Runner()
    resource.transfer(runner, data, sorted(actions), states, actions, entries, result)
    return resource, entries, result, runner


def test_a_direct_send_missing_from_the_listing_is_an_error():
    api = FakeSendApi(drop={'i-2'})
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'created', 'i-2': 'created'})
    assert entries['i-1']['invocation_status'] == 'Success' and entries['i-1']['invoke_id'] == 'f-0001'
    assert entries['i-2']['invocation_status'] == 'Error' and entries['i-2']['error_code'] == 'SendFileUnknown'
    assert result['send_calls'] == 1 and runner.ran == []


def test_a_direct_send_waits_for_a_lagging_listing_and_reads_results_by_id():
    api = FakeSendApi(lag_polls=3, fail={'i-2': 'UserGroupNotExists'})
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'created', 'i-2': 'created'})
    assert entries['i-1']['invocation_status'] == 'Success'
    assert (entries['i-2']['invocation_status'], entries['i-2']['error_code']) == ('Failed', 'UserGroupNotExists')
    assert any(r.invoke_id == 'f-0001' for r in api.actions('DescribeSendFileResults'))


def test_a_refused_batch_and_a_failed_part_map_to_their_instances():
    ids = ['i-%03d' % n for n in range(60)]
    api = FakeSendApi(refuse={'p000001'}, fail={'i-055': 'FileCreateFail'})
    data = os.urandom(3 * PART_BYTES)
    resource, entries, result, runner = transfer(api, data, dict((i, 'created') for i in ids), instance_ids=ids)
    assert result['send_calls'] == 6 and result['parts'] == 3
    # the refused part (both batches) fails every instance with the API's code; the finalize does not overrule it
    assert set(e['error_code'] for e in entries.values()) == {'FileSize.ExceedLimit'}
    assert set(e['invocation_status'] for e in entries.values()) == {'Rejected'}
    api = FakeSendApi(fail={'i-055': 'FileCreateFail'})
    resource, entries, result, runner = transfer(api, data, dict((i, 'created') for i in ids), instance_ids=ids)
    assert (entries['i-055']['invocation_status'], entries['i-055']['error_code']) == ('Failed', 'FileCreateFail')
    assert entries['i-055']['invoke_id'].startswith('f-')
    assert all(entries[i]['invocation_status'] == 'Success' for i in ids if i != 'i-055')


def test_replacing_a_small_file_or_a_numeric_owner_goes_through_the_checked_assembly():
    """Review finding 6: only new files with named owners are sent straight to dest."""
    api = FakeSendApi()
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'replaced', 'i-2': 'created'})
    assert runner.ran == [['i-1', 'i-2']] and api.actions('SendFile')[0].name == 'p000000'
    api = FakeSendApi()
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'created'}, owner='1000')
    assert runner.ran == [['i-1']] and api.actions('SendFile')[0].file_owner is None
    api = FakeSendApi()
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'created'}, owner='web')
    assert runner.ran == [] and api.actions('SendFile')[0].file_owner == 'web'


def test_an_agent_too_old_for_sendfile_fails_before_anything_is_sent():
    """Review finding 8: the shared agent-version rule; an unknown version does not hold the send back."""
    api = FakeSendApi(versions={'i-1': '1.0.2.500', 'i-3': ''})
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'created', 'i-2': 'created',
                                                                   'i-3': 'created'})
    assert (entries['i-1']['invocation_status'], entries['i-1']['error_code']) == ('Failed', 'ClientNeedUpgrade')
    assert api.actions('SendFile')[0].instance_id == ['i-2', 'i-3']
    assert entries['i-2']['invocation_status'] == entries['i-3']['invocation_status'] == 'Success'


def test_the_wait_ends_a_reserve_before_the_deadline():
    """Review finding 5: SendFile tasks that never finish leave the assembly its reserve (30 s of 300)."""
    api = FakeSendApi(busy_polls=10 ** 6)
    clock = Clock()
    resource, entries, result, runner = transfer(api, os.urandom(2 * PART_BYTES), {'i-1': 'created'}, clock=clock)
    assert resource.deadline - 30 <= clock.now < resource.deadline - 25
    assert runner.ran == [['i-1']]


def test_calls_never_made_are_not_counted():
    """Review finding 12: send_calls counts the calls made."""
    api = FakeSendApi()
    clock = Clock()
    resource = CloudAssistantFile(Module(), clock=clock, sleep=clock.sleep)
    resource.validate()
    resource.api = api
    clock.now = resource.deadline       # no time left: nothing is sent
    entries = {'i-1': resource.entry(dict(instance_id='i-1', invoke_id='t-cmp', invocation_status='Success',
                                          exit_code=0, error_code=None, error_info=None, start_time=None,
                                          finish_time=None), 'created')}
    result = {'send_calls': 0}
    resource.transfer(Runner(), b'x', ['i-1'], {'i-1': {'exists': False, 'gzip': True}}, {'i-1': 'created'},
                      entries, result)
    assert result['send_calls'] == 0 and entries['i-1']['error_code'] == 'NotSent'


def test_two_runs_to_the_same_dest_use_different_transfer_ids():
    assert CloudAssistantFile(Module()).transfer_id != CloudAssistantFile(Module()).transfer_id


@pytest.mark.parametrize('action', ['unchanged', 'attributes'])
def test_a_run_that_sends_nothing_does_not_gzip_the_file(monkeypatch, tmp_path, action):
    """Review finding 13: only the checksum is needed when no content is sent."""
    import gzip
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.modules import cloud_assistant_file as mod

    data = b'compressible line\n' * 10000
    src = tmp_path / 'big.txt'
    src.write_bytes(data)
    line = 'CAFILE file %s %s %d 0 0\nCAFILE owner root\nCAFILE group root\n' % (
        __import__('hashlib').sha256(data).hexdigest(), '644' if action == 'unchanged' else '600', len(data))

    class CompareRunner(Runner):
        def __init__(self, *args, **kwargs):
            Runner.__init__(self)

        def run(self, spec, ids, deadline):
            done = Runner.run(self, spec, ids, deadline)
            for entry in done.instances:
                entry['output'] = line
            return done

    monkeypatch.setattr(mod, 'CommandRunner', CompareRunner)
    monkeypatch.setattr(mod, 'resolve_targets', lambda *args, **kwargs: NS(ids=['i-1']))
    monkeypatch.setattr(gzip, 'compress', lambda *args, **kwargs: pytest.fail('gzip.compress called'))
    module = Module(src=str(src), content=None, mode='0644')
    module.api = lambda deadline: FakeSendApi()
    module.warn = lambda msg: None
    result = CloudAssistantFile(module).run()
    assert result['instances'][0]['action'] == action and not result['failed']
    assert result['send_calls'] == 0 and result['checksum'] == __import__('hashlib').sha256(data).hexdigest()


def test_unreadable_results_fail_only_the_instances_sent_to():
    class Broken(FakeSendApi):
        def DescribeSendFileResults(self, request):
            raise CloudAssistantError('boom', action='DescribeSendFileResults', code='InternalError')

    api = Broken(versions={'i-1': '1.0.2.500'})
    resource, entries, result, runner = transfer(api, b'small\n', {'i-1': 'created', 'i-2': 'created',
                                                                   'i-3': 'attributes'})
    assert entries['i-1']['error_code'] == 'ClientNeedUpgrade'
    assert (entries['i-2']['invocation_status'], entries['i-2']['error_code']) == ('Error', 'InternalError')
    assert entries['i-3']['invocation_status'] == 'Success' and runner.ran == [['i-3']]
