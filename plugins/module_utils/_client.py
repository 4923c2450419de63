# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Building the ECS API client: endpoint, credentials, TLS, timeouts and user agent.

Credentials, first match wins:

1. ``access_key_id`` + ``access_key_secret`` (+ ``security_token`` for STS): passed to the SDK as they are;
2. ``profile``: that profile of the Alibaba Cloud CLI configuration (``~/.aliyun/config.json``, every mode the
   credentials library knows: AK, StsToken, RamRoleArn, EcsRamRole, OIDC, CloudSSO, ...), else the section of that
   name in the credentials file (``ALIBABA_CLOUD_CREDENTIALS_FILE``, default ``~/.alibabacloud/credentials.ini``);
3. ``ecs_ram_role_name``: the RAM role attached to the ECS instance this runs on (metadata service, IMDSv2 token
   when available);
4. nothing: the ``alibabacloud_credentials`` default chain (environment, OIDC/RRSA, CLI profile, credentials
   file, ECS RAM role, credentials URI).

``role_arn`` (with ``role_session_name``) assumes that RAM role through STS with the credentials of 1-4. With
nothing explicit and the OIDC variables of RRSA set (``ALIBABA_CLOUD_OIDC_PROVIDER_ARN``,
``ALIBABA_CLOUD_OIDC_TOKEN_FILE``), the role is assumed with the OIDC token instead.

1, 2 and 3 exclude each other: giving two of them is an error rather than a silent choice (remember that module
options also come from environment variables). Secrets never appear in messages.
"""

from __future__ import annotations

import ipaddress
import os
import traceback

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._http_sessions import install as install_session_handling
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._sdk_loading import defer_ecs_models
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._version import (
    COLLECTION_NAME,
    COLLECTION_VERSION,
)

# Before the SDK import: its models package would otherwise import every ECS class (see _sdk_loading).
defer_ecs_models()
try:
    from alibabacloud_ecs20140526.client import Client as EcsClient
    from alibabacloud_tea_openapi.models import Config as OpenApiConfig
    from alibabacloud_credentials.client import Client as CredentialClient
    HAS_SDK = True
    SDK_IMPORT_ERROR = None
except ImportError:
    EcsClient = OpenApiConfig = CredentialClient = None
    HAS_SDK = False
    SDK_IMPORT_ERROR = traceback.format_exc()

# Forked workers forget the sessions their parent opened, and take the HTTP adapters it warmed (_http_sessions).
if HAS_SDK:
    install_session_handling()

# What modules pass to missing_required_lib() when HAS_SDK is false.
SDK_REQUIREMENTS = 'alibabacloud_ecs20140526, alibabacloud_tea_openapi and alibabacloud_credentials'

USER_AGENT = '%s/%s' % (COLLECTION_NAME, COLLECTION_VERSION)
# Per HTTP request, in milliseconds (what the SDK expects). A Cloud Assistant API call answers in well under a
# second; the read timeout only bounds a hung connection (the retry policy then tries again).
CONNECT_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 15000
DEFAULT_ROLE_SESSION_NAME = 'ansible-cloud-assistant'

_SCHEMES = ('https', 'http')


def _endpoint_error(value, reason):
    return CloudAssistantError('invalid endpoint option %r: %s (expected a host name such as '
                               'ecs.cn-hangzhou.aliyuncs.com, optionally with https:// or http:// and a :port)'
                               % (value, reason), kind='config')


def parse_endpoint(value):
    """``(host[:port], scheme)`` from the ``endpoint`` option; a bare host means https.

    ``'ecs.cn-hangzhou.aliyuncs.com'`` -> ``('ecs.cn-hangzhou.aliyuncs.com', 'https')``;
    ``'http://127.0.0.1:8080'`` -> ``('127.0.0.1:8080', 'http')``; ``'https://h:443/'`` -> ``('h:443', 'https')``.
    Paths, queries, fragments, user names and other schemes are refused with a ``CloudAssistantError``.
    """
    if not isinstance(value, str) or not value.strip():
        raise _endpoint_error(value, 'it is empty')
    text = value.strip()
    if any(ch.isspace() for ch in text):
        raise _endpoint_error(value, 'it contains white space')
    if '://' in text:
        scheme, rest = text.split('://', 1)
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            raise _endpoint_error(value, 'unsupported scheme %r' % scheme)
    else:
        scheme, rest = 'https', text
    if rest.endswith('/'):
        rest = rest[:-1]
    if '@' in rest:
        # do not echo the value: it may hold a password
        raise CloudAssistantError('invalid endpoint option: user names and passwords are not supported in it',
                                  kind='config')
    for char, what in (('?', 'a query'), ('#', 'a fragment'), ('/', 'a path')):
        if char in rest:
            raise _endpoint_error(value, 'it contains %s' % what)
    if not rest:
        raise _endpoint_error(value, 'it has no host name')
    host, port = rest, None
    if rest.startswith('['):  # [IPv6]:port
        close = rest.find(']')
        if close < 0:
            raise _endpoint_error(value, 'unbalanced [ in the host name')
        host, tail = rest[:close + 1], rest[close + 1:]
        if tail:
            if not tail.startswith(':'):
                raise _endpoint_error(value, 'unexpected text after the host name')
            port = tail[1:]
    elif ':' in rest:
        host, port = rest.rsplit(':', 1)
    if host in ('', '[]') or (':' in host and not host.startswith('[')):
        raise _endpoint_error(value, 'it has no valid host name')
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise _endpoint_error(value, 'invalid port %r' % port)
    return rest, scheme


def _is_loopback(host):
    """``host`` (as ``parse_endpoint`` returns it, with any :port) names this machine."""
    if host.startswith('['):
        host = host[1:host.find(']')]
    elif ':' in host:
        host = host.rsplit(':', 1)[0]
    host = host.lower()
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def transport_warnings(opts):
    """What to warn about how ``opts`` reach the API: plain HTTP, or HTTPS without certificate checks, to an
    endpoint that is not on this machine. The default endpoint is HTTPS. A loopback endpoint (the sandbox, a
    local proxy) warns about neither: nothing crosses the network."""
    if not opts.endpoint:
        return [] if opts.validate_certs else [
            'validate_certs is false: the certificate of the ECS endpoint is not checked, so anyone on the network '
            'path could read and change the API calls (the STS token included). Turn it off only for a test endpoint.']
    host, scheme = parse_endpoint(opts.endpoint)
    if _is_loopback(host):
        return []
    if scheme == 'http':
        return ['endpoint %s uses plain HTTP: the API calls (the STS token included) cross the network unencrypted. '
                'Use https:// for a real endpoint.' % host]
    if not opts.validate_certs:
        return ['validate_certs is false: the certificate of %s is not checked, so anyone on the network path could '
                'read and change the API calls (the STS token included). Turn it off only for a test endpoint.' % host]
    return []


def runtime_settings(opts):
    """Per-request settings for ``RuntimeOptions``: TLS verification and timeouts. The SDK takes them only on
    each call, so ``_api.build_api`` hands them to ``CloudAssistantApi``, which passes them every time."""
    return {
        'ignore_ssl': not opts.validate_certs,
        'connect_timeout': CONNECT_TIMEOUT_MS,
        'read_timeout': READ_TIMEOUT_MS,
    }


# -- credentials --------------------------------------------------------------------------------------------------
def _check_credential_options(opts):
    if bool(opts.access_key_id) != bool(opts.access_key_secret):
        given, missing = (('access_key_id', 'access_key_secret') if opts.access_key_id
                          else ('access_key_secret', 'access_key_id'))
        raise CloudAssistantError(
            'access_key_id and access_key_secret must be given together: %s is set but %s is not (options, or '
            'ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET)' % (given, missing), kind='config')
    if opts.security_token and not opts.access_key_id:
        raise CloudAssistantError('security_token needs access_key_id and access_key_secret (the STS key pair it '
                                  'was issued with)', kind='config')
    sources = []
    if opts.access_key_id:
        sources.append('access_key_id/access_key_secret')
    if opts.profile:
        sources.append('profile')
    if opts.ecs_ram_role_name:
        sources.append('ecs_ram_role_name')
    if len(sources) > 1:
        raise CloudAssistantError(
            'only one credential source may be set, got %s (check the options and the ALIBABA_CLOUD_*/ALICLOUD_* '
            'environment variables that supply them)' % ' and '.join(sources), kind='config')


def _http_options():
    from alibabacloud_credentials.http import HttpOptions
    return HttpOptions(connect_timeout=CONNECT_TIMEOUT_MS, read_timeout=READ_TIMEOUT_MS)


class _ProfileProvider:
    """A named profile: the Alibaba Cloud CLI configuration first, then the credentials (ini) file."""

    def __init__(self, name):
        from alibabacloud_credentials.provider import CLIProfileCredentialsProvider, ProfileCredentialsProvider
        self.name = name
        self._providers = [CLIProfileCredentialsProvider(profile_name=name),
                           ProfileCredentialsProvider(profile_name=name)]
        self._last = None

    def _error(self, errors):
        from alibabacloud_credentials.exceptions import CredentialException
        return CredentialException('profile %r was not found or not usable: %s' % (self.name, '; '.join(errors)))

    def get_credentials(self):
        if self._last is not None:
            return self._last.get_credentials()
        errors = []
        for provider in self._providers:
            try:
                credentials = provider.get_credentials()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append('%s: %s' % (type(provider).__name__, getattr(exc, 'message', None) or exc))
                continue
            self._last = provider
            return credentials
        raise self._error(errors)

    async def get_credentials_async(self):
        if self._last is not None:
            return await self._last.get_credentials_async()
        errors = []
        for provider in self._providers:
            try:
                credentials = await provider.get_credentials_async()
            except Exception as exc:  # pylint: disable=broad-except
                errors.append('%s: %s' % (type(provider).__name__, getattr(exc, 'message', None) or exc))
                continue
            self._last = provider
            return credentials
        raise self._error(errors)

    def get_provider_name(self):
        return 'profile'


def _ecs_ram_role_provider(role_name):
    from alibabacloud_credentials.provider import EcsRamRoleCredentialsProvider
    try:
        # no background refresh thread: a module run is short, and credentials are refreshed on use when stale
        return EcsRamRoleCredentialsProvider(role_name=role_name, http_options=_http_options(),
                                             async_update_enabled=False)
    except TypeError:  # older alibabacloud_credentials without async_update_enabled
        return EcsRamRoleCredentialsProvider(role_name=role_name, http_options=_http_options())


def _base_provider(opts):
    """The provider for credential sources 1-3, or None for the default chain."""
    from alibabacloud_credentials.provider import StaticAKCredentialsProvider, StaticSTSCredentialsProvider
    if opts.access_key_id:
        if opts.security_token:
            return StaticSTSCredentialsProvider(access_key_id=opts.access_key_id,
                                                access_key_secret=opts.access_key_secret,
                                                security_token=opts.security_token)
        return StaticAKCredentialsProvider(access_key_id=opts.access_key_id, access_key_secret=opts.access_key_secret)
    if opts.profile:
        return _ProfileProvider(opts.profile)
    if opts.ecs_ram_role_name:
        return _ecs_ram_role_provider(opts.ecs_ram_role_name)
    return None


def _role_provider(opts, base):
    from alibabacloud_credentials.provider import (
        DefaultCredentialsProvider,
        OIDCRoleArnCredentialsProvider,
        RamRoleArnCredentialsProvider,
    )
    session_name = opts.role_session_name or DEFAULT_ROLE_SESSION_NAME
    if base is None and os.environ.get('ALIBABA_CLOUD_OIDC_PROVIDER_ARN') and \
            os.environ.get('ALIBABA_CLOUD_OIDC_TOKEN_FILE'):
        return OIDCRoleArnCredentialsProvider(role_arn=opts.role_arn, role_session_name=session_name,
                                              oidc_provider_arn=os.environ['ALIBABA_CLOUD_OIDC_PROVIDER_ARN'],
                                              oidc_token_file_path=os.environ['ALIBABA_CLOUD_OIDC_TOKEN_FILE'],
                                              http_options=_http_options())
    if base is None:
        base = DefaultCredentialsProvider()
    return RamRoleArnCredentialsProvider(credentials_provider=base, role_arn=opts.role_arn,
                                         role_session_name=session_name, http_options=_http_options())


def _credential_kwargs(opts):
    """The credential part of the SDK ``Config`` keyword arguments."""
    _check_credential_options(opts)
    if opts.access_key_id and not opts.role_arn:
        kwargs = {'access_key_id': opts.access_key_id, 'access_key_secret': opts.access_key_secret}
        if opts.security_token:
            kwargs['security_token'] = opts.security_token
        return kwargs
    if not (opts.role_arn or opts.profile or opts.ecs_ram_role_name):
        return {'credential': CredentialClient()}  # the library's default chain
    try:
        provider = _base_provider(opts)
        if opts.role_arn:
            provider = _role_provider(opts, provider)
    except ImportError:
        raise CloudAssistantError('profile, role_arn and ecs_ram_role_name need alibabacloud_credentials 1.0 or '
                                  'newer (the credentials provider API)', kind='config')
    except ValueError as exc:  # raised by providers for unusable settings, e.g. IMDS disabled by the environment
        raise CloudAssistantError('invalid credential settings: %s' % exc, kind='config')
    return {'credential': CredentialClient(provider=provider)}


def resolved_credentials(opts):
    """``opts`` with its credential source resolved once into temporary keys (``access_key_id``,
    ``access_key_secret``, ``security_token``), for a caller that builds several clients of one identity (the
    inventory plugin builds one per region): a ``role_arn`` is then assumed once, not once per client. ``opts``
    itself when it already holds static keys (and no ``role_arn``). Raises ``CloudAssistantError``."""
    if opts.access_key_id and not opts.role_arn:
        return opts
    credential = _credential_kwargs(opts).get('credential')
    if credential is None:  # pragma: no cover - _credential_kwargs gives keys only for the case above
        return opts
    try:
        model = credential.get_credential()
    except Exception as exc:  # pylint: disable=broad-except
        raise CloudAssistantError('could not get credentials (%s): %s'
                                  % (_credential_source(opts), getattr(exc, 'message', None) or exc), kind='config')
    values = opts.to_dict()
    values.update(access_key_id=model.access_key_id, access_key_secret=model.access_key_secret,
                  security_token=model.security_token or None, profile=None, role_arn=None, role_session_name=None,
                  ecs_ram_role_name=None)
    return type(opts)(**values)


def _credential_source(opts):
    given = [name for name in ('role_arn', 'profile', 'ecs_ram_role_name') if getattr(opts, name)]
    return ', '.join(given) if given else 'the default credential chain'


# -- the client -----------------------------------------------------------------------------------------------------
def _require_sdk():
    if not HAS_SDK:
        raise CloudAssistantError('the Alibaba Cloud Python SDK is not installed (%s are required)' % SDK_REQUIREMENTS,
                                  kind='config')


def build_config(opts):
    """The ``alibabacloud_tea_openapi`` ``Config`` for ``opts`` (a ``ConnectionOptions``)."""
    _require_sdk()
    kwargs = {
        'region_id': opts.region_id,
        'user_agent': USER_AGENT,
        'connect_timeout': CONNECT_TIMEOUT_MS,
        'read_timeout': READ_TIMEOUT_MS,
    }
    if opts.endpoint:
        kwargs['endpoint'], kwargs['protocol'] = parse_endpoint(opts.endpoint)
    kwargs.update(_credential_kwargs(opts))
    return OpenApiConfig(**kwargs)


def ecs_client(opts):
    """An ``alibabacloud_ecs20140526.client.Client`` for ``opts``; raises ``CloudAssistantError`` on bad options.

    TLS verification is a per-request option in this SDK: see ``runtime_settings`` and ``_api.build_api``.
    """
    config = build_config(opts)
    try:
        client = EcsClient(config)
    except Exception as exc:  # pylint: disable=broad-except
        raise CloudAssistantError('could not create the ECS client: %s' % (getattr(exc, 'message', None) or exc),
                                  kind='config')
    return client
