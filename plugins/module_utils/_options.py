# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Connection and credential options: names, aliases, environment variables, and one adapter for all callers.

Modules get the options from their argspec (``credential_argument_spec()``; environment variables through
``env_fallback``, so they are read on the host the module runs on). Plugins declare the same options in their
documentation (``alicloud_ops.cloud_assistant.common.plugins``, with ``env:`` and ``vars:`` entries, read on the
controller) and read them with ``get_option``. ``OptionAdapter`` turns either, or a plain dict, into the same
``ConnectionOptions`` (the community.hashi_vault pattern).

Environment variables: the official Alibaba Cloud SDK names (``ALIBABA_CLOUD_*``) come first and win; the
``ALICLOUD_*`` names of the alibaba.alicloud collection are accepted as a fallback.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError

# name -> (aliases, secret, environment variables in order of precedence)
OPTIONS = {
    'access_key_id': (['alicloud_access_key'], True,
                      ['ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALICLOUD_ACCESS_KEY', 'ALICLOUD_ACCESS_KEY_ID']),
    'access_key_secret': (['alicloud_secret_key'], True,
                          ['ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALICLOUD_SECRET_KEY', 'ALICLOUD_SECRET_ACCESS_KEY']),
    'security_token': (['alicloud_security_token'], True,
                       ['ALIBABA_CLOUD_SECURITY_TOKEN', 'ALICLOUD_SECURITY_TOKEN']),
    'region_id': (['region', 'alicloud_region'], False,
                  ['ALIBABA_CLOUD_REGION_ID', 'ALICLOUD_REGION', 'ALICLOUD_REGION_ID']),
    'endpoint': ([], False, ['ALIBABA_CLOUD_ECS_ENDPOINT', 'ALICLOUD_ECS_ENDPOINT']),
    'profile': ([], False, ['ALIBABA_CLOUD_PROFILE', 'ALICLOUD_PROFILE']),
    'role_arn': ([], False, ['ALIBABA_CLOUD_ROLE_ARN', 'ALICLOUD_ASSUME_ROLE_ARN']),
    'role_session_name': ([], False, ['ALIBABA_CLOUD_ROLE_SESSION_NAME', 'ALICLOUD_ASSUME_ROLE_SESSION_NAME']),
    'ecs_ram_role_name': ([], False, ['ALIBABA_CLOUD_ECS_METADATA', 'ALICLOUD_ECS_ROLE_NAME']),
}
SECRET_OPTIONS = tuple(name for name, (_aliases, secret, _env) in OPTIONS.items() if secret)
OPTION_NAMES = tuple(OPTIONS) + ('validate_certs',)

REGION_REQUIRED_MSG = 'region_id is required: set the region_id option or ALIBABA_CLOUD_REGION_ID'


def credential_argument_spec():
    """The connection options for a module's ``argument_spec`` (a new dict on every call)."""
    spec = {}
    for name, (aliases, secret, env) in OPTIONS.items():
        entry = {'type': 'str', 'fallback': (env_fallback, list(env))}
        if aliases:
            entry['aliases'] = list(aliases)
        if secret:
            entry['no_log'] = True
        spec[name] = entry
    spec['validate_certs'] = {'type': 'bool', 'default': True}
    return spec


class ConnectionOptions:
    """Resolved connection options: plain attributes named like the options (None when not set).

    ``repr()`` never shows the secrets.
    """

    def __init__(self, access_key_id=None, access_key_secret=None, security_token=None, region_id=None,
                 endpoint=None, profile=None, role_arn=None, role_session_name=None, ecs_ram_role_name=None,
                 validate_certs=True):
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.region_id = region_id
        self.endpoint = endpoint
        self.profile = profile
        self.role_arn = role_arn
        self.role_session_name = role_session_name
        self.ecs_ram_role_name = ecs_ram_role_name
        self.validate_certs = validate_certs

    def to_dict(self):
        return dict((name, getattr(self, name)) for name in OPTION_NAMES)

    def __eq__(self, other):
        return isinstance(other, ConnectionOptions) and self.to_dict() == other.to_dict()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        shown = []
        for name in OPTION_NAMES:
            value = getattr(self, name)
            if name in SECRET_OPTIONS and value is not None:
                value = '<hidden>'
            shown.append('%s=%r' % (name, value))
        return 'ConnectionOptions(%s)' % ', '.join(shown)


def _clean(value):
    """Strings stripped; an empty string counts as not set (e.g. an exported but empty variable)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


class OptionAdapter:
    """Reads the connection options from a module, a plugin or a dict, and resolves them the same way.

    ``from_module(module)`` reads ``module.params`` (the argspec already applied aliases and environment
    fallbacks), ``from_plugin(plugin)`` reads ``plugin.get_option(name)`` (Ansible's config system already
    applied ``env:`` and ``vars:``), ``from_dict(d)`` reads a dict by option name or alias; with ``use_env=True``
    options missing from the dict are taken from the environment in the argspec's order (for scripts and
    benchmarks outside Ansible).
    """

    def __init__(self, getter):
        self._getter = getter

    @classmethod
    def from_module(cls, module):
        return cls(module.params.get)

    @classmethod
    def from_plugin(cls, plugin):
        def getter(name):
            try:
                return plugin.get_option(name)
            except KeyError:  # the plugin does not declare this option
                return None
        return cls(getter)

    @classmethod
    def from_dict(cls, data, use_env=False, environ=None):
        data = dict(data or {})
        environ = os.environ if environ is None else environ

        def getter(name):
            aliases = OPTIONS[name][0] if name in OPTIONS else []
            for key in [name] + list(aliases):
                if data.get(key) is not None:
                    return data[key]
            if use_env and name in OPTIONS:
                for var in OPTIONS[name][2]:
                    if var in environ:
                        return environ[var]
            return None
        return cls(getter)

    def get_option(self, name):
        return _clean(self._getter(name))

    def connection_options(self):
        """A ``ConnectionOptions``; raises ``CloudAssistantError`` when region_id is missing or a value is invalid."""
        values = dict((name, self.get_option(name)) for name in OPTIONS)
        if not values['region_id']:
            raise CloudAssistantError(REGION_REQUIRED_MSG, kind='config')
        validate_certs = self.get_option('validate_certs')
        if validate_certs is None:
            validate_certs = True
        else:
            try:
                validate_certs = boolean(validate_certs, strict=True)
            except TypeError:
                raise CloudAssistantError('validate_certs must be a boolean, got %r' % (validate_certs,),
                                          kind='config')
        for name, value in values.items():
            if value is not None and not isinstance(value, str):
                raise CloudAssistantError('%s must be a string, got %s' % (name, type(value).__name__), kind='config')
        return ConnectionOptions(validate_certs=validate_certs, **values)
