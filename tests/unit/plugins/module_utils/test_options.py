# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.alicloud_ops.cloud_assistant.plugins.doc_fragments.common import ModuleDocFragment
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import (
    OPTIONS,
    OPTION_NAMES,
    REGION_REQUIRED_MSG,
    ConnectionOptions,
    OptionAdapter,
    credential_argument_spec,
)

ALL_ENV_VARS = sorted(set(var for _aliases, _secret, env in OPTIONS.values() for var in env))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ALL_ENV_VARS:
        monkeypatch.delenv(var, raising=False)


class FakeModule:
    def __init__(self, params):
        self.params = params


class FakePlugin:
    """Answers get_option like a plugin whose documentation declares ``declared`` (KeyError for the rest)."""

    def __init__(self, values, declared=OPTION_NAMES):
        self._values = values
        self._declared = declared

    def get_option(self, name):
        if name not in self._declared:
            raise KeyError(name)
        return self._values.get(name)


def module_params(args):
    """What AnsibleModule would put in module.params: aliases, env fallbacks and defaults applied."""
    result = ArgumentSpecValidator(credential_argument_spec()).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


# -- the argspec -------------------------------------------------------------------------------------------------
EXPECTED_SPEC = {
    'access_key_id': (['alicloud_access_key'], True,
                      ['ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALICLOUD_ACCESS_KEY', 'ALICLOUD_ACCESS_KEY_ID']),
    'access_key_secret': (['alicloud_secret_key'], True,
                          ['ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALICLOUD_SECRET_KEY', 'ALICLOUD_SECRET_ACCESS_KEY']),
    'security_token': (['alicloud_security_token'], True, ['ALIBABA_CLOUD_SECURITY_TOKEN', 'ALICLOUD_SECURITY_TOKEN']),
    'region_id': (['region', 'alicloud_region'], False,
                  ['ALIBABA_CLOUD_REGION_ID', 'ALICLOUD_REGION', 'ALICLOUD_REGION_ID']),
    'endpoint': ([], False, ['ALIBABA_CLOUD_ECS_ENDPOINT', 'ALICLOUD_ECS_ENDPOINT']),
    'profile': ([], False, ['ALIBABA_CLOUD_PROFILE', 'ALICLOUD_PROFILE']),
    'role_arn': ([], False, ['ALIBABA_CLOUD_ROLE_ARN', 'ALICLOUD_ASSUME_ROLE_ARN']),
    'role_session_name': ([], False, ['ALIBABA_CLOUD_ROLE_SESSION_NAME', 'ALICLOUD_ASSUME_ROLE_SESSION_NAME']),
    'ecs_ram_role_name': ([], False, ['ALIBABA_CLOUD_ECS_METADATA', 'ALICLOUD_ECS_ROLE_NAME']),
}


@pytest.mark.parametrize('name', sorted(EXPECTED_SPEC))
def test_argspec_entry(name):
    aliases, secret, env = EXPECTED_SPEC[name]
    entry = credential_argument_spec()[name]
    assert entry['type'] == 'str'
    assert entry.get('aliases', []) == aliases
    assert entry.get('no_log', False) is secret
    assert 'default' not in entry and not entry.get('required')
    assert list(entry['fallback'][1]) == env


def test_argspec_validate_certs():
    spec = credential_argument_spec()
    assert spec['validate_certs'] == {'type': 'bool', 'default': True}
    assert set(spec) == set(OPTION_NAMES)


def test_argspec_is_a_fresh_copy():
    spec = credential_argument_spec()
    spec['region_id']['aliases'].append('mangled')
    assert 'mangled' not in credential_argument_spec()['region_id']['aliases']


@pytest.mark.parametrize('name', sorted(EXPECTED_SPEC))
def test_env_fallback_prefers_official_names(monkeypatch, name):
    env = EXPECTED_SPEC[name][2]
    for index, var in enumerate(env):
        monkeypatch.setenv(var, 'value-%d' % index)
    # every variable set: the ALIBABA_CLOUD_* one wins
    assert module_params({'region_id': 'r'} if name != 'region_id' else {})[name] == 'value-0'
    # only the legacy ones: the first legacy one in the list
    monkeypatch.delenv(env[0])
    assert module_params({'region_id': 'r'} if name != 'region_id' else {})[name] == 'value-1'


def test_explicit_option_beats_environment(monkeypatch):
    monkeypatch.setenv('ALIBABA_CLOUD_REGION_ID', 'from-env')
    assert module_params({'alicloud_region': 'explicit'})['region_id'] == 'explicit'


def test_secret_values_are_no_log(monkeypatch):
    monkeypatch.setenv('ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'S3cr3t-from-env')
    result = ArgumentSpecValidator(credential_argument_spec()).validate({'access_key_id': 'AKID', 'region_id': 'r'})
    assert 'S3cr3t-from-env' in result._no_log_values
    assert 'AKID' in result._no_log_values


# -- the adapter ---------------------------------------------------------------------------------------------------
FULL = {
    'access_key_id': 'AKID',
    'access_key_secret': 'SECRET',
    'security_token': 'TOKEN',
    'region_id': 'cn-hangzhou',
    'endpoint': 'http://127.0.0.1:8080',
    'profile': None,
    'role_arn': 'acs:ram::123:role/ops',
    'role_session_name': 'sess',
    'ecs_ram_role_name': None,
    'validate_certs': False,
}


def test_module_plugin_and_dict_give_identical_options():
    from_module = OptionAdapter.from_module(FakeModule(module_params(dict(FULL)))).connection_options()
    from_plugin = OptionAdapter.from_plugin(FakePlugin(dict(FULL))).connection_options()
    from_dict = OptionAdapter.from_dict(dict(FULL)).connection_options()
    assert from_module == from_plugin == from_dict
    assert from_dict.to_dict() == FULL


def test_module_aliases_and_env_reach_the_same_options(monkeypatch):
    monkeypatch.setenv('ALICLOUD_SECRET_KEY', 'SECRET')
    monkeypatch.setenv('ALIBABA_CLOUD_REGION_ID', 'cn-hangzhou')
    params = module_params({'alicloud_access_key': 'AKID'})
    opts = OptionAdapter.from_module(FakeModule(params)).connection_options()
    assert opts == ConnectionOptions(access_key_id='AKID', access_key_secret='SECRET', region_id='cn-hangzhou')


def test_plugin_without_some_options_declared():
    plugin = FakePlugin({'region_id': 'cn-beijing'}, declared=('region_id',))
    opts = OptionAdapter.from_plugin(plugin).connection_options()
    assert opts.region_id == 'cn-beijing'
    assert opts.access_key_id is None
    assert opts.validate_certs is True


def test_dict_accepts_aliases():
    opts = OptionAdapter.from_dict({'alicloud_region': 'cn-beijing', 'alicloud_access_key': 'AK',
                                    'alicloud_secret_key': 'SK'}).connection_options()
    assert (opts.region_id, opts.access_key_id, opts.access_key_secret) == ('cn-beijing', 'AK', 'SK')


def test_dict_ignores_environment_unless_asked(monkeypatch):
    monkeypatch.setenv('ALICLOUD_REGION', 'legacy')
    with pytest.raises(CloudAssistantError):
        OptionAdapter.from_dict({}).connection_options()
    assert OptionAdapter.from_dict({}, use_env=True).connection_options().region_id == 'legacy'
    monkeypatch.setenv('ALIBABA_CLOUD_REGION_ID', 'official')
    assert OptionAdapter.from_dict({}, use_env=True).connection_options().region_id == 'official'
    assert OptionAdapter.from_dict({'region': 'given'}, use_env=True).connection_options().region_id == 'given'


def test_region_is_required():
    with pytest.raises(CloudAssistantError) as info:
        OptionAdapter.from_dict({'access_key_id': 'a', 'access_key_secret': 'b'}).connection_options()
    assert info.value.msg == REGION_REQUIRED_MSG
    assert info.value.msg == 'region_id is required: set the region_id option or ALIBABA_CLOUD_REGION_ID'


def test_empty_strings_count_as_unset():
    opts = OptionAdapter.from_dict({'region_id': ' cn-hangzhou ', 'endpoint': '', 'profile': '  '}).connection_options()
    assert opts.region_id == 'cn-hangzhou'
    assert opts.endpoint is None and opts.profile is None
    with pytest.raises(CloudAssistantError):
        OptionAdapter.from_dict({'region_id': ''}).connection_options()


@pytest.mark.parametrize('value, expected', [(None, True), (True, True), (False, False), ('no', False),
                                             ('false', False), ('yes', True), ('1', True), (0, False)])
def test_validate_certs_values(value, expected):
    assert OptionAdapter.from_dict({'region_id': 'r', 'validate_certs': value}).connection_options().validate_certs \
        is expected


def test_validate_certs_rejects_junk():
    with pytest.raises(CloudAssistantError) as info:
        OptionAdapter.from_dict({'region_id': 'r', 'validate_certs': 'maybe'}).connection_options()
    assert 'validate_certs' in info.value.msg


def test_repr_hides_secrets():
    text = repr(OptionAdapter.from_dict(dict(FULL)).connection_options())
    for secret in ('AKID', 'SECRET', 'TOKEN'):
        assert secret not in text
    assert 'cn-hangzhou' in text


# -- the documentation fragments agree with the argspec -------------------------------------------------------------
def _fragment(text):
    return yaml.safe_load(text)


def test_modules_fragment_matches_argspec():
    options = _fragment(ModuleDocFragment.MODULES)['options']
    spec = credential_argument_spec()
    assert set(options) == set(spec)
    for name, entry in spec.items():
        doc = options[name]
        assert doc['type'] == entry['type'], name
        assert doc.get('aliases', []) == entry.get('aliases', []), name
        assert doc.get('default') == entry.get('default'), name
        description = ' '.join(doc['description'])
        for var in entry.get('fallback', (None, []))[1]:
            assert 'E(%s)' % var in description, (name, var)


def test_plugins_fragment_env_order_gives_the_same_precedence():
    # Ansible's config manager lets the LAST env entry that is set win; env_fallback takes the FIRST one.
    options = _fragment(ModuleDocFragment.PLUGINS)['options']
    spec = credential_argument_spec()
    assert set(options) == set(spec)
    for name, entry in spec.items():
        doc = options[name]
        assert doc['type'] == entry['type'], name
        assert doc.get('aliases', []) == entry.get('aliases', []), name
        assert doc.get('default') == entry.get('default'), name
        env = [item['name'] for item in doc.get('env', [])]
        assert env == list(reversed(entry.get('fallback', (None, []))[1])), name
        assert [item['name'] for item in doc['vars']] == ['ansible_alicloud_%s' % name], name


def test_fragments_warn_where_environment_is_read():
    modules = ' '.join(_fragment(ModuleDocFragment.MODULES)['notes'])
    plugins = ' '.join(_fragment(ModuleDocFragment.PLUGINS)['notes'])
    assert 'on the host they run on' in modules and 'localhost' in modules
    assert 'on the controller' in plugins
