# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Running a module of this collection from its installed location: when, and what the launcher does."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from unittest.mock import MagicMock

import pytest

from ansible.plugins.action import ActionBase

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils import _in_place
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._in_place import (
    InPlaceModuleMixin,
    collection_root,
    launcher,
    module_fqn,
    opted_out,
    same_python,
)

MODULE = 'alicloud_ops.cloud_assistant.fake_echo'

# A module of the collection that returns its own parameters, with one no_log option and one default.
FAKE_MODULE = '''#!/usr/bin/python
import json
import resource

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._fake_util import WHERE


def main():
    module = AnsibleModule(argument_spec=dict(text=dict(type='str'), secret=dict(type='str', no_log=True),
                                              count=dict(type='int', default=3)), supports_check_mode=True)
    if module.params['text'] == 'fail':
        module.fail_json(msg='asked to fail', secret_echo=module.params['secret'])
    if module.params['text'] == 'raise':
        raise RuntimeError('unexpected')
    module.exit_json(changed=not module.check_mode, params=module.params, name=__name__,
                     secret_reversed=(module.params['secret'] or '')[::-1], util=WHERE, json_from=json.__file__,
                     nofile=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


if __name__ == '__main__':
    main()
'''


pytestmark = pytest.mark.skipif(not (_in_place.HAS_LOADER and _in_place.core_tested()),
                                reason='the launcher is used with ansible-core %s only' % ', '.join(_in_place.TESTED_CORE))


def make_collection(root, where):
    plugins = root / 'ansible_collections' / 'alicloud_ops' / 'cloud_assistant' / 'plugins'
    (plugins / 'modules').mkdir(parents=True)
    (plugins / 'module_utils').mkdir(parents=True)
    (plugins / 'modules' / 'fake_echo.py').write_text(FAKE_MODULE)
    (plugins / 'module_utils' / '_fake_util.py').write_text('WHERE = %r\n' % where)
    return str(plugins / 'modules' / 'fake_echo.py')


@pytest.fixture
def fake_collection(tmp_path):
    return tmp_path, make_collection(tmp_path, 'the chosen copy')


class FakeBase(object):
    """Stands for ActionBase: records when Ansible's own packaging would have been used."""

    def _configure_module(self, module_name, module_args, task_vars):
        return 'ansiballz', None


class Action(InPlaceModuleMixin, FakeBase):

    def __init__(self, module_path, transport='local', async_val=0, become=False, delegate_to=None):
        self._connection = MagicMock()
        self._connection.transport = transport
        self._connection._remote_is_local = False
        self._connection.become = MagicMock() if become else None
        self._play_context = MagicMock()
        self._play_context.become = become
        self._task = MagicMock()
        self._task.async_val = async_val
        self._task.delegate_to = delegate_to
        self._task.collections = []
        found = MagicMock()
        found.resolved = module_path is not None
        found.plugin_resolved_path = module_path
        self._shared_loader_obj = MagicMock()
        self._shared_loader_obj.module_loader.find_plugin_with_context.return_value = found
        self._templar = MagicMock()
        self._templar._engine.template.side_effect = lambda value, options=None: value


def run(data, tmp_path=None, pipelined=False, cwd=None, env=None, args=()):
    """Runs a launcher as Ansible does: a script file in a temporary directory, or (pipelining) its bytes on the
    interpreter's standard input; returns the module's JSON answer."""
    if pipelined:
        command, stdin = [sys.executable], data
    else:
        script = os.path.join(str(tmp_path), 'AnsiballZ_fake_echo.py')
        with open(script, 'wb') as handle:
            handle.write(data)
        command, stdin = [sys.executable, script] + list(args), None
    proc = subprocess.run(command, input=stdin, capture_output=True, timeout=60, check=False, cwd=cwd,
                          env=dict(os.environ, **(env or {})))
    return json.loads(proc.stdout.decode('utf-8').strip().splitlines()[-1])


@pytest.mark.parametrize('path, root', [
    ('/a/b/ansible_collections/alicloud_ops/cloud_assistant/plugins/modules/cloud_assistant_command.py', '/a/b'),
    ('/ansible_collections/alicloud_ops/cloud_assistant/plugins/modules/x.py', '/'),
    ('/a/ansible_collections/other/cloud_assistant/plugins/modules/x.py', None),
    ('/a/ansible_collections/alicloud_ops/cloud_assistant/plugins/action/x.py', None),
    ('/a/ansible_collections/alicloud_ops/cloud_assistant/plugins/modules/x.ps1', None),
    ('/usr/lib/python3/dist-packages/ansible/modules/ping.py', None),
    ('x.py', None),
])
def test_collection_root(path, root):
    assert collection_root(path) == root


def test_module_fqn_is_the_name_ansiballz_gives():
    assert module_fqn('/r/ansible_collections/alicloud_ops/cloud_assistant/plugins/modules/cloud_assistant_file.py') == \
        'ansible_collections.alicloud_ops.cloud_assistant.plugins.modules.cloud_assistant_file'


@pytest.mark.parametrize('value, out', [(None, False), ('', False), ('0', False), ('false', False),
                                        ('1', True), ('yes', True), ('True', True)])
def test_opted_out(value, out):
    assert opted_out({} if value is None else {'CLOUD_ASSISTANT_ANSIBALLZ': value}) is out


def test_same_python_compares_paths_not_binaries(tmp_path):
    assert same_python('/venv/bin/python', '/venv/bin/python')
    assert same_python('/venv/bin/../bin/python', '/venv/bin/python')
    assert not same_python('/usr/bin/python3', '/venv/bin/python')  # a virtualenv's python may link to it
    assert not same_python(None, '/venv/bin/python')


@pytest.mark.parametrize('kwargs, reason', [
    (dict(transport='ssh'), 'the module does not run on the controller'),
    (dict(async_val=30), 'async'),
    (dict(become=True), 'become'),
])
def test_ansible_packaging_is_kept_where_the_launcher_could_not_stand_in(fake_collection, kwargs, reason):
    _root, path = fake_collection
    action = Action(path, **kwargs)
    assert action._in_place_reason() == reason
    assert action._configure_module(MODULE, {}, {'ansible_playbook_python': sys.executable}) == ('ansiballz', None)


def test_opting_out(monkeypatch, fake_collection):
    monkeypatch.setenv('CLOUD_ASSISTANT_ANSIBALLZ', 'true')
    assert Action(fake_collection[1])._configure_module(MODULE, {}, {}) == ('ansiballz', None)


def test_another_interpreter_or_a_module_elsewhere_keeps_ansible_packaging(fake_collection):
    _root, path = fake_collection
    other = {'ansible_python_interpreter': '/usr/bin/python3-other'}
    assert Action(path)._configure_module(MODULE, {}, other) == ('ansiballz', None)
    assert Action('/usr/share/ansible/modules/x.py')._configure_module(MODULE, {}, {}) == ('ansiballz', None)
    assert Action(None)._configure_module(MODULE, {}, {}) == ('ansiballz', None)


def test_interpreter_discovery_is_left_to_ansible(monkeypatch, fake_collection):
    def discovery_needed(*args, **kwargs):
        raise _in_place.InterpreterDiscoveryRequiredError('needed', interpreter_name='python', discovery_mode='auto')

    monkeypatch.setattr(_in_place.module_common, '_get_shebang', discovery_needed)
    assert Action(fake_collection[1])._configure_module(MODULE, {}, {}) == ('ansiballz', None)


def launched(fake_collection, args, task_vars=None, **kwargs):
    root, path = fake_collection
    built, module_path = Action(path, **kwargs)._configure_module(
        MODULE, args, task_vars or {'ansible_python_interpreter': sys.executable})
    assert module_path == path
    assert built.module_style == 'new'
    assert built.shebang == '#!' + sys.executable
    assert built.b_module_data.startswith(built.shebang.encode() + b'\n')
    assert repr(str(root)).encode() in built.b_module_data
    return built.b_module_data


def test_the_launcher_runs_the_installed_module_with_the_arguments_as_given(fake_collection):
    args = {'text': 'héllo "quoted" \\ \n', 'secret': 's3cr3t', '_ansible_check_mode': False}
    answer = run(launched(fake_collection, args), fake_collection[0])
    # the secret arrived (reversed, so that the result's masking does not hide it) and is masked in the result
    assert answer['secret_reversed'] == 't3rc3s'
    assert answer['params'] == {'text': args['text'], 'secret': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER', 'count': 3}
    assert answer['changed'] is True
    assert answer['name'] == '__main__'
    assert answer['util'] == 'the chosen copy'  # the collection's module_utils, from the same copy
    assert answer['invocation']['module_args']['secret'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'


def test_the_launcher_keeps_check_mode_failures_and_no_log_masking(fake_collection):
    assert run(launched(fake_collection, {'text': 'x', '_ansible_check_mode': True}), fake_collection[0])['changed'] is False
    failed = run(launched(fake_collection, {'text': 'fail', 'secret': 's3cr3t'}), fake_collection[0])
    assert failed['failed'] is True and failed['msg'] == 'asked to fail'
    assert 's3cr3t' not in json.dumps(failed)


def test_an_unexpected_exception_is_a_module_failure_not_a_crash(fake_collection):
    answer = run(launched(fake_collection, {'text': 'raise'}), fake_collection[0])
    assert answer['failed'] is True
    assert 'unexpected' in json.dumps(answer)


def test_the_launcher_quotes_every_value_it_embeds():
    data = launcher('#!/p', 'a.b.c', "/r'oot", 'ansible_collections.x', '{"ANSIBLE_MODULE_ARGS": {"k": "\'"}}', 'legacy')
    compile(data, 'launcher', 'exec')
    assert b"'/r\\'oot'" in data or b'"/r\'oot"' in data


def test_the_arguments_never_share_a_line_with_code_a_traceback_could_show():
    data = launcher('#!/p', 'a.b.c', '/root', 'ansible_collections.x', '{"ANSIBLE_MODULE_ARGS": {"secret": "s3cr3t"}}',
                    'legacy').decode('utf-8')
    [line] = [line for line in data.splitlines() if 's3cr3t' in line]
    assert line.strip().startswith("b'") and line.strip().endswith("'")


def test_no_file_of_the_user_shadows_what_the_module_imports(tmp_path):
    # a json.py in the directory ansible-playbook runs from and beside the collections; another copy of the
    # collection, first on PYTHONPATH, whose ansible_collections/__init__.py would hide every other
    root = tmp_path / 'chosen'
    path = make_collection(root, 'the chosen copy')
    other = tmp_path / 'other'
    make_collection(other, 'another copy')
    (other / 'ansible_collections' / '__init__.py').write_text('')
    shadow = "raise ImportError('a user file was imported')\n"
    for directory in (tmp_path, root):
        (directory / 'json.py').write_text(shadow)
    data = launched((root, path), {'text': 'x'})
    env = {'PYTHONPATH': str(other)}
    for pipelined in (False, True):
        answer = run(data, root, pipelined=pipelined, cwd=str(tmp_path), env=env)
        assert answer['util'] == 'the chosen copy'
        assert not answer['json_from'].startswith(str(tmp_path))


def test_the_launcher_takes_no_subcommand(fake_collection):
    answer = run(launched(fake_collection, {'text': 'x'}), fake_collection[0], args=['explode'])
    assert answer['failed'] is True and 'CLOUD_ASSISTANT_ANSIBALLZ=true' in answer['msg']


def test_a_launcher_that_cannot_start_the_loader_fails_in_json_without_the_arguments(fake_collection):
    data = launched(fake_collection, {'text': 'x', 'secret': 's3cr3t'}).replace(b'extensions={}', b'no_such_keyword={}')
    answer = run(data, fake_collection[0])
    assert answer['failed'] is True and 'could not be started from the installed collection' in answer['msg']
    assert 's3cr3t' not in json.dumps(answer)


def test_delegated_vars_decide_the_interpreter(fake_collection):
    root, path = fake_collection
    delegated = {'ansible_delegated_vars': {'ctl': {'ansible_python_interpreter': sys.executable}},
                 'ansible_python_interpreter': '/usr/bin/python3-other'}
    assert Action(path, delegate_to='ctl')._configure_module(MODULE, {}, delegated)[0] != 'ansiballz'
    delegated['ansible_delegated_vars']['ctl']['ansible_python_interpreter'] = '/usr/bin/python3-other'
    delegated['ansible_python_interpreter'] = sys.executable
    assert Action(path, delegate_to='ctl')._configure_module(MODULE, {}, delegated) == ('ansiballz', None)


@pytest.mark.parametrize('setting', ['keep_remote_files', 'extension', 'metadata', 'untested_core', 'broken'])
def test_settings_that_need_ansible_packaging(monkeypatch, fake_collection, setting):
    task_vars = {'ansible_python_interpreter': sys.executable}
    args = {}
    if setting == 'keep_remote_files':
        args['_ansible_keep_remote_files'] = True
    elif setting == 'extension':
        fake = MagicMock()
        fake.extension_names = ('coverage',)
        monkeypatch.setattr(_in_place._builder.ExtensionManager, 'create', lambda task_vars: fake)
    elif setting == 'metadata':
        real = _in_place.C.config.get_config_value
        monkeypatch.setattr(_in_place.C.config, 'get_config_value',
                            lambda name, *a, **k: True if name == '_MODULE_METADATA' else real(name, *a, **k))
    elif setting == 'untested_core':
        monkeypatch.setattr(_in_place, 'ANSIBLE_CORE_VERSION', '2.99.0')
    elif setting == 'broken':
        monkeypatch.setattr(_in_place.module_common, '_BuiltModule', None)
    assert Action(fake_collection[1])._configure_module(MODULE, args, task_vars) == ('ansiballz', None)


@pytest.mark.parametrize('version, tested', [('2.19.14', True), ('2.19.0b1', True), ('2.18.3', False), ('2.20.0', False)])
def test_core_tested(version, tested):
    assert _in_place.core_tested(version) is tested


def test_the_real_action_plugins_use_the_mixin():
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.action import (
        cloud_assistant_agent, cloud_assistant_command, cloud_assistant_file, cloud_assistant_invocation,
        cloud_assistant_invocation_info)
    for plugin in (cloud_assistant_agent, cloud_assistant_command, cloud_assistant_file, cloud_assistant_invocation,
                   cloud_assistant_invocation_info):
        assert issubclass(plugin.ActionModule, InPlaceModuleMixin)
        assert issubclass(plugin.ActionModule, ActionBase)
        assert plugin.ActionModule.__mro__.index(InPlaceModuleMixin) < plugin.ActionModule.__mro__.index(ActionBase)
    assert os.path.basename(_in_place.__file__) == '_in_place.py'


@pytest.mark.parametrize('value', [0, '0', 200, '200'])
def test_python_module_rlimit_nofile_is_applied_as_ansiballz_applies_it(monkeypatch, fake_collection, value):
    # ansible-test sets ANSIBLE_PYTHON_MODULE_RLIMIT_NOFILE for its runs: the setting must not cost the launcher
    real = _in_place.C.config.get_config_value
    monkeypatch.setattr(_in_place.C.config, 'get_config_value',
                        lambda name, *a, **k: value if name == 'PYTHON_MODULE_RLIMIT_NOFILE' else real(name, *a, **k))
    answer = run(launched(fake_collection, {'text': 'x'}), fake_collection[0])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert answer['nofile'] == (soft if int(value) == 0 else min(200, hard))
