# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _client
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import (
    CONNECT_TIMEOUT_MS,
    HAS_SDK,
    READ_TIMEOUT_MS,
    USER_AGENT,
    build_config,
    parse_endpoint,
    runtime_settings,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import build_api
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import ConnectionOptions
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._version import COLLECTION_VERSION

needs_sdk = pytest.mark.skipif(not HAS_SDK, reason='the Alibaba Cloud SDK is not installed')

COLLECTION_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))


def test_version_matches_galaxy_yml():
    with open(os.path.join(COLLECTION_ROOT, 'galaxy.yml')) as f:
        galaxy = yaml.safe_load(f)
    assert COLLECTION_VERSION == galaxy['version']
    assert USER_AGENT == 'alicloud_ops.cloud_assistant/%s' % galaxy['version']


# -- endpoints ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('value, expected', [
    ('ecs.cn-hangzhou.aliyuncs.com', ('ecs.cn-hangzhou.aliyuncs.com', 'https')),
    ('ecs-vpc.cn-beijing.aliyuncs.com', ('ecs-vpc.cn-beijing.aliyuncs.com', 'https')),
    ('http://127.0.0.1:8080', ('127.0.0.1:8080', 'http')),
    ('https://h:443/', ('h:443', 'https')),
    ('HTTPS://ecs.aliyuncs.com', ('ecs.aliyuncs.com', 'https')),
    ('  ecs.aliyuncs.com  ', ('ecs.aliyuncs.com', 'https')),
    ('127.0.0.1:8080', ('127.0.0.1:8080', 'https')),
    ('http://[::1]:8080/', ('[::1]:8080', 'http')),
    ('https://[fe80::1]', ('[fe80::1]', 'https')),
])
def test_parse_endpoint(value, expected):
    assert parse_endpoint(value) == expected


@pytest.mark.parametrize('value, reason', [
    ('ftp://ecs.aliyuncs.com', "unsupported scheme 'ftp'"),
    ('https://ecs.aliyuncs.com/api', 'a path'),
    ('ecs.aliyuncs.com/api/', 'a path'),
    ('https://ecs.aliyuncs.com/?a=1', 'a query'),
    ('https://ecs.aliyuncs.com?a=1', 'a query'),
    ('https://ecs.aliyuncs.com#x', 'a fragment'),
    ('https://', 'no host name'),
    ('', 'empty'),
    ('ecs aliyuncs.com', 'white space'),
    ('h:0', 'invalid port'),
    ('h:99999', 'invalid port'),
    ('h:http', 'invalid port'),
    ('h:1:2', 'no valid host name'),
    ('[::1', 'unbalanced'),
])
def test_parse_endpoint_rejects(value, reason):
    with pytest.raises(CloudAssistantError) as info:
        parse_endpoint(value)
    assert 'endpoint' in info.value.msg
    assert reason in info.value.msg
    if value.strip():
        assert repr(value) in info.value.msg  # the option's value is named
    assert info.value.kind == 'config'


def test_parse_endpoint_does_not_echo_user_info():
    with pytest.raises(CloudAssistantError) as info:
        parse_endpoint('https://user:hunter2@ecs.aliyuncs.com')
    assert 'hunter2' not in info.value.msg
    assert 'endpoint' in info.value.msg


def test_runtime_settings():
    assert runtime_settings(ConnectionOptions(region_id='r')) == {
        'ignore_ssl': False, 'connect_timeout': CONNECT_TIMEOUT_MS, 'read_timeout': READ_TIMEOUT_MS}
    assert runtime_settings(ConnectionOptions(region_id='r', validate_certs=False))['ignore_ssl'] is True


# -- credential rules (checked before anything is built) ------------------------------------------------------------
@pytest.mark.parametrize('kwargs, words', [
    ({'access_key_id': 'AK'}, ['access_key_id', 'access_key_secret', 'access_key_secret is not']),
    ({'access_key_secret': 'SK'}, ['access_key_id', 'access_key_secret', 'access_key_id is not']),
    ({'security_token': 'T'}, ['security_token', 'access_key_id']),
    ({'access_key_id': 'AK', 'access_key_secret': 'SK', 'profile': 'p'}, ['only one credential source', 'profile']),
    ({'profile': 'p', 'ecs_ram_role_name': 'role'}, ['only one credential source', 'ecs_ram_role_name']),
    ({'access_key_id': 'AK', 'access_key_secret': 'SK', 'ecs_ram_role_name': 'role'}, ['only one']),
])
def test_credential_rules(kwargs, words):
    with pytest.raises(CloudAssistantError) as info:
        _client._check_credential_options(ConnectionOptions(region_id='r', **kwargs))
    for word in words:
        assert word in info.value.msg
    for secret in ('SK', 'T'):
        assert ' %s ' % secret not in info.value.msg


# -- the SDK Config ---------------------------------------------------------------------------------------------------
@needs_sdk
def test_config_with_keys():
    config = build_config(ConnectionOptions(access_key_id='AK', access_key_secret='SK', region_id='cn-beijing'))
    assert (config.access_key_id, config.access_key_secret, config.security_token) == ('AK', 'SK', None)
    assert config.credential is None
    assert config.region_id == 'cn-beijing'
    assert config.user_agent == USER_AGENT
    assert (config.connect_timeout, config.read_timeout) == (5000, 15000)
    assert config.endpoint is None and config.protocol is None


@needs_sdk
def test_config_with_sts_token_and_endpoint():
    config = build_config(ConnectionOptions(access_key_id='STS.AK', access_key_secret='SK', security_token='TOKEN',
                                            region_id='cn-hangzhou', endpoint='http://127.0.0.1:8080'))
    assert config.security_token == 'TOKEN'
    assert (config.endpoint, config.protocol) == ('127.0.0.1:8080', 'http')


@needs_sdk
def test_config_default_chain_when_nothing_explicit():
    from alibabacloud_credentials.client import Client as CredentialClient
    config = build_config(ConnectionOptions(region_id='cn-hangzhou'))
    assert config.access_key_id is None
    assert isinstance(config.credential, CredentialClient)
    assert config.credential.cloud_credential.type_name == 'default'


def _provider(config):
    return config.credential.cloud_credential.provider


@needs_sdk
def test_config_role_arn_over_keys():
    from alibabacloud_credentials.provider import RamRoleArnCredentialsProvider, StaticAKCredentialsProvider
    config = build_config(ConnectionOptions(access_key_id='AK', access_key_secret='SK', region_id='r',
                                            role_arn='acs:ram::1:role/ops', role_session_name='sess'))
    assert config.access_key_id is None  # the keys only sign the AssumeRole call
    provider = _provider(config)
    assert isinstance(provider, RamRoleArnCredentialsProvider)
    assert provider._role_arn == 'acs:ram::1:role/ops'
    assert provider._role_session_name == 'sess'
    assert isinstance(provider._credentials_provider, StaticAKCredentialsProvider)


@needs_sdk
def test_config_role_arn_over_sts_keys_and_default_session_name():
    from alibabacloud_credentials.provider import StaticSTSCredentialsProvider
    config = build_config(ConnectionOptions(access_key_id='AK', access_key_secret='SK', security_token='T',
                                            region_id='r', role_arn='acs:ram::1:role/ops'))
    provider = _provider(config)
    assert provider._role_session_name == 'ansible-cloud-assistant'
    assert isinstance(provider._credentials_provider, StaticSTSCredentialsProvider)


@needs_sdk
def test_config_role_arn_over_default_chain(monkeypatch):
    from alibabacloud_credentials.provider import DefaultCredentialsProvider
    monkeypatch.delenv('ALIBABA_CLOUD_OIDC_PROVIDER_ARN', raising=False)
    config = build_config(ConnectionOptions(region_id='r', role_arn='acs:ram::1:role/ops'))
    assert isinstance(_provider(config)._credentials_provider, DefaultCredentialsProvider)


@needs_sdk
def test_config_role_arn_with_oidc_environment(monkeypatch, tmp_path):
    from alibabacloud_credentials.provider import OIDCRoleArnCredentialsProvider
    token = tmp_path / 'token'
    token.write_text('jwt')
    monkeypatch.setenv('ALIBABA_CLOUD_OIDC_PROVIDER_ARN', 'acs:ram::1:oidc-provider/ack')
    monkeypatch.setenv('ALIBABA_CLOUD_OIDC_TOKEN_FILE', str(token))
    config = build_config(ConnectionOptions(region_id='r', role_arn='acs:ram::1:role/pod'))
    assert isinstance(_provider(config), OIDCRoleArnCredentialsProvider)


@needs_sdk
def test_config_ecs_ram_role(monkeypatch):
    from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider
    from alibabacloud_credentials.utils import auth_util
    # building the provider contacts nothing (no background refresh); the test suite disables the metadata
    # service for every test (read by the library at import), which the provider refuses at construction
    monkeypatch.setattr(auth_util, 'environment_ecs_metadata_disabled', 'false')
    config = build_config(ConnectionOptions(region_id='r', ecs_ram_role_name='worker'))
    provider = _provider(config)
    assert isinstance(provider, EcsRamRoleCredentialsProvider)
    assert provider._role_name == 'worker'


@needs_sdk
def test_config_profile_tries_cli_then_ini():
    config = build_config(ConnectionOptions(region_id='r', profile='ops'))
    provider = _provider(config)
    assert isinstance(provider, _client._ProfileProvider)
    names = [type(p).__name__ for p in provider._providers]
    assert names == ['CLIProfileCredentialsProvider', 'ProfileCredentialsProvider']


class _FakeProvider:
    def __init__(self, result=None, error=None):
        self.result, self.error, self.calls = result, error, 0

    def get_credentials(self):
        self.calls += 1
        if self.error:
            raise self.error
        return self.result


@needs_sdk
def test_profile_provider_falls_back_and_remembers():
    from alibabacloud_credentials.exceptions import CredentialException
    provider = _client._ProfileProvider('ops')
    cli, ini = _FakeProvider(error=CredentialException('no such profile')), _FakeProvider(result='creds')
    provider._providers = [cli, ini]
    assert provider.get_credentials() == 'creds'
    assert provider.get_credentials() == 'creds'
    assert (cli.calls, ini.calls) == (1, 2)


@needs_sdk
def test_profile_provider_reports_every_source():
    from alibabacloud_credentials.exceptions import CredentialException
    provider = _client._ProfileProvider('ops')
    provider._providers = [_FakeProvider(error=CredentialException('no cli file')),
                           _FakeProvider(error=CredentialException('no ini section'))]
    with pytest.raises(CredentialException) as info:
        provider.get_credentials()
    assert "'ops'" in info.value.message and 'no cli file' in info.value.message and 'no ini section' in info.value.message


@needs_sdk
def test_build_api_passes_runtime_settings_explicitly():
    opts = ConnectionOptions(access_key_id='AK', access_key_secret='SK', region_id='cn-hangzhou',
                             endpoint='https://ecs.example.test', validate_certs=False)
    api = build_api(opts, RetryPolicy(deadline=None))
    assert api._runtime == {'ignore_ssl': True, 'connect_timeout': 5000, 'read_timeout': 15000}
    assert api.region_id == 'cn-hangzhou'
    client = api.client
    assert (client._endpoint, client._protocol) == ('ecs.example.test', 'https')
    assert client._user_agent == USER_AGENT


@needs_sdk
def test_ecs_client_regional_endpoint():
    opts = ConnectionOptions(access_key_id='AK', access_key_secret='SK', region_id='cn-beijing')
    api = build_api(opts, RetryPolicy(deadline=None))
    assert api.client._endpoint == 'ecs.cn-beijing.aliyuncs.com'
    assert api._runtime['ignore_ssl'] is False


@needs_sdk
def test_ecs_ram_role_with_metadata_disabled_is_a_clear_error(monkeypatch):
    from alibabacloud_credentials.utils import auth_util
    monkeypatch.setattr(auth_util, 'environment_ecs_metadata_disabled', 'true')
    with pytest.raises(CloudAssistantError) as info:
        build_config(ConnectionOptions(region_id='r', ecs_ram_role_name='worker'))
    assert info.value.msg.startswith('invalid credential settings:') and 'disabled' in info.value.msg


def test_missing_sdk_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_client, 'HAS_SDK', False)
    with pytest.raises(CloudAssistantError) as info:
        build_config(ConnectionOptions(region_id='r'))
    assert 'alibabacloud_ecs20140526' in info.value.msg


def test_a_forked_process_does_not_reuse_the_sdk_sessions_of_its_parent():
    # Ansible forks its task workers from a controller process that may have made calls (the inventory plugin):
    # sharing the parent's pooled connections, workers would read each other's answers.
    from darabonba.core import DaraCore
    sentinel = object()
    saved = DaraCore._sessions
    DaraCore._sessions = {'https://ecs.example.com': sentinel}
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child reports what it sees, and leaves without running any pytest teardown
            os.write(write, b'empty' if DaraCore._sessions == {} else b'inherited')
            os._exit(0)
        os.close(write)
        seen = os.read(read, 100)
        os.waitpid(pid, 0)
        assert seen == b'empty'
        assert DaraCore._sessions == {'https://ecs.example.com': sentinel}   # the parent keeps its own
    finally:
        DaraCore._sessions = saved


# -- transport warnings ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('endpoint, validate_certs, warned', [
    (None, True, None),
    (None, False, 'validate_certs is false: the certificate of the ECS endpoint is not checked'),
    ('ecs.cn-hangzhou.aliyuncs.com', True, None),
    ('ecs.cn-hangzhou.aliyuncs.com', False, 'the certificate of ecs.cn-hangzhou.aliyuncs.com is not checked'),
    ('http://ecs.cn-hangzhou.aliyuncs.com', True, 'endpoint ecs.cn-hangzhou.aliyuncs.com uses plain HTTP'),
    ('https://10.0.0.5:8443', False, 'the certificate of 10.0.0.5:8443 is not checked'),
    ('127.0.0.1:8443', False, None),
    ('http://127.0.0.1:8080', True, None),
    ('https://[::1]:9000', False, None),
    ('localhost:9000', False, None),
    ('http://[2001:db8::1]:80', True, 'endpoint [2001:db8::1]:80 uses plain HTTP'),
    ('http://localhost.example.com', True, 'uses plain HTTP'),
])
def test_transport_warnings(endpoint, validate_certs, warned):
    opts = ConnectionOptions(region_id='cn-hangzhou', endpoint=endpoint, validate_certs=validate_certs)
    warnings = _client.transport_warnings(opts)
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warned in warnings[0], warnings


@needs_sdk
def test_build_api_carries_the_transport_warnings():
    opts = ConnectionOptions(region_id='cn-hangzhou', endpoint='https://10.0.0.5', validate_certs=False,
                             access_key_id='id', access_key_secret='secret')
    assert build_api(opts, RetryPolicy()).warnings == _client.transport_warnings(opts) != []
