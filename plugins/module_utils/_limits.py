# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The API's limits on what a command may be, checked before any call (reference sections 2.1-2.3, 7, 9).

Every ``check_*`` raises a ``CloudAssistantError`` whose message names the option, the value's problem and the
limit; nothing here calls the API. ``frequency`` has its own file, ``_frequency``.
"""

from __future__ import annotations

import json
import re

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError

# Command content after Base64, with the Parameters JSON when there are parameters: 24 KB in SDK 7.11.8's text for
# RunCommand, CreateCommand and InvokeCommand; the current CreateCommand and InvokeCommand pages say 18 KB (reference
# section 9.1). 24 KB is refused; above 18 KB a saved command or an invocation of one gets a warning.
CONTENT_LIMIT = 24576
SAVED_CONTENT_LIMIT = 18432
MAX_PARAMETERS = 10           # passed per run (section 2.1, 7)
MAX_PLACEHOLDERS = 20         # defined in one content (section 2.1, 7)
MAX_PARAMETER_NAME = 64
TIMEOUT_MIN = 10              # section 2.3
TIMEOUT_MAX = 86400           # section 9.4
DEFAULT_TIMEOUT = 60          # section 2.1
MAX_TAGS = 20                 # section 2.1 Tag
TAG_KEY_LIMIT = 64
TAG_VALUE_LIMIT = 128
NAME_LIMIT = 128
DESCRIPTION_LIMIT = 512
WORKING_DIR_LIMIT = 200
USERNAME_LIMIT = 255
WINDOWS_PASSWORD_NAME_LIMIT = 255
LAUNCHER_LIMIT = 1024

LINUX_TYPES = ('RunShellScript',)
WINDOWS_TYPES = ('RunBatScript', 'RunPowerShellScript')
COMMAND_TYPES = LINUX_TYPES + WINDOWS_TYPES
REPEAT_MODES = ('Once', 'Period', 'NextRebootOnly', 'EveryReboot')
WINDOWS_DEFAULT_USER = 'system'

# Tag keys this collection writes on invocations (run groups, schedules); users may not write them.
TAG_PREFIX = 'ansible:cloud-assistant:'

_PLACEHOLDER = re.compile(r'\{\{\s*(.*?)\s*\}\}')
_PARAM_NAME = re.compile(r'^[A-Za-z0-9_-]+$')
_BUILTIN_PREFIX = 'acs::'
_BUILTINS = ('acs::regionid', 'acs::accountid', 'acs::instanceid', 'acs::invokeid', 'acs::commandid',
             'acs::instancename')
# References to the OOS parameter store, which the agent resolves on the instance: {{oos:name}} for a common
# parameter, {{oos-secret:name}} for an encrypted one. They need no value in Parameters.
_OOS_REFERENCE = re.compile(r'^oos(-secret)?:\s*([A-Za-z0-9_./-]{1,200})$', re.IGNORECASE)


def is_oos_reference(name):
    return bool(_OOS_REFERENCE.match(name))


def has_oos_references(content):
    """Whether ``content`` reads the OOS parameter store (which needs custom parameters enabled)."""
    return any(is_oos_reference(m.group(1)) for m in _PLACEHOLDER.finditer(content or ''))


def invalid(msg):
    """A CloudAssistantError for bad input (raised before any API call)."""
    return CloudAssistantError(msg, kind='config')


def is_windows_type(command_type):
    return command_type in WINDOWS_TYPES


def os_of_type(command_type):
    return 'windows' if is_windows_type(command_type) else 'linux'


# -- content and parameters -------------------------------------------------------------------------------------
def base64_length(nbytes):
    return 4 * ((nbytes + 2) // 3)


def parameter_text(value):
    """A parameter value as the API types it, a string: numbers and booleans in their JSON form."""
    return value if isinstance(value, str) else json.dumps(value)


def parameters_json(parameters):
    texts = dict((k, parameter_text(v)) for k, v in (parameters or {}).items())
    return json.dumps(texts, ensure_ascii=False, separators=(',', ':'), sort_keys=True)


def content_size(content, parameters=None):
    """Base64 length of the UTF-8 content, followed by the Parameters JSON when there are parameters."""
    payload = (content or '').encode('utf-8')
    if parameters:
        payload += parameters_json(parameters).encode('utf-8')
    return base64_length(len(payload))


def check_content_size(content, parameters=None, option='command_content', saved=False):
    """Refuses content over 24 KB after Base64; returns a warning (or None) for a saved command's content over the
    18 KB the current API pages give for CreateCommand and InvokeCommand."""
    for size, what in ((content_size(content), option),
                       (content_size(content, parameters) if parameters else 0, option + ' plus parameters')):
        if size > CONTENT_LIMIT:
            raise invalid('%s is %d bytes after Base64 encoding, over the limit of %d bytes' % (what, size, CONTENT_LIMIT))
    size = content_size(content, parameters)
    if saved and size > SAVED_CONTENT_LIMIT:
        return ('%s%s is %d bytes after Base64 encoding: the current API reference allows %d bytes for saved '
                'commands (CreateCommand, InvokeCommand) and the SDK %d, so the service may refuse it'
                % (option, ' plus parameters' if parameters else '', size, SAVED_CONTENT_LIMIT, CONTENT_LIMIT))
    return None


def placeholder_names(content):
    """Custom ``{{ name }}`` placeholders of the content (built-ins ``{{ACS::...}}`` left out), in order of first
    use, de-duplicated case-insensitively."""
    names = []
    seen = set()
    for match in _PLACEHOLDER.finditer(content or ''):
        name = match.group(1)
        if not name or name.lower().startswith(_BUILTIN_PREFIX) or is_oos_reference(name):
            continue
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return names


def check_placeholders(content, option='command_content'):
    """With enable_parameter: every ``{{ }}`` must be a valid name or a built-in; at most 20 distinct names."""
    for match in _PLACEHOLDER.finditer(content or ''):
        name = match.group(1)
        if name.lower().startswith(_BUILTIN_PREFIX):
            if name.lower() not in _BUILTINS:
                raise invalid('%s uses {{%s}}: the prefix ACS:: is reserved for the built-in parameters '
                              '(ACS::RegionId, ACS::AccountId, ACS::InstanceId, ACS::InvokeId, ACS::CommandId, '
                              'ACS::InstanceName)' % (option, name))
            continue
        if is_oos_reference(name):
            continue
        if not name or not _PARAM_NAME.match(name) or len(name) > MAX_PARAMETER_NAME:
            raise invalid('%s uses {{%s}}, which is not a valid parameter name (letters, digits, "_" and "-", '
                          'at most %d characters); with enable_parameter=true every {{ }} is a parameter, so '
                          'set enable_parameter=false to send the content as it is'
                          % (option, name, MAX_PARAMETER_NAME))
    names = placeholder_names(content)
    if len(names) > MAX_PLACEHOLDERS:
        raise invalid('%s defines %d custom parameters, more than the limit of %d'
                      % (option, len(names), MAX_PLACEHOLDERS))


def _check_parameter_entries(parameters, option):
    if len(parameters) > MAX_PARAMETERS:
        raise invalid('%s has %d entries, more than the limit of %d per run'
                      % (option, len(parameters), MAX_PARAMETERS))
    lowered = set()
    for key, value in parameters.items():
        if not key or len(key) > MAX_PARAMETER_NAME or not _PARAM_NAME.match(key):
            raise invalid('%s: the name %r is not valid (1 to %d letters, digits, "_" or "-")'
                          % (option, key, MAX_PARAMETER_NAME))
        if key.lower() in lowered:
            raise invalid('%s: %r is given twice (names are case-insensitive)' % (option, key))
        lowered.add(key.lower())
        if value is None or isinstance(value, (list, dict)):
            raise invalid('%s: the value of %r must be a string, number or boolean (sent as a string)'
                          % (option, key))
    return lowered


def check_parameters(parameters, content=None, enable_parameter=True, where='command_content',
                     require_all=True, option='parameters'):
    """The ``parameters`` option: count, keys, value types, and (when the content is known) names that the
    content uses and placeholders without a value. ``option``: the name the messages give the values (the module
    merges ``secret_parameters`` in: never a value in a message, only names)."""
    parameters = parameters or {}
    names = placeholder_names(content) if content is not None else []
    if not parameters:
        if names and enable_parameter and require_all:
            raise invalid('%s uses the parameter(s) %s but %s gives no value for them'
                          % (where, ', '.join('{{%s}}' % n for n in names), option))
        return
    if not enable_parameter:
        raise invalid('%s is given but custom parameters are disabled (enable_parameter=false%s)'
                      % (option, '' if where == 'command_content' else ' on ' + where))
    lowered = _check_parameter_entries(parameters, option)
    if content is None:
        return
    used = set(n.lower() for n in names)
    unused = [k for k in parameters if k.lower() not in used]
    if unused:
        raise invalid('%s: %s not used by %s (it has %s)'
                      % (option, ', '.join(sorted(unused)), where,
                         ', '.join('{{%s}}' % n for n in names) or 'no {{ }} placeholders'))
    missing = [n for n in names if n.lower() not in lowered]
    if require_all and missing:
        raise invalid('%s uses %s but %s gives no value for it'
                      % (where, ', '.join('{{%s}}' % n for n in missing), option))


# -- tags -------------------------------------------------------------------------------------------------------
def check_tags(tags, reserved=0, option='tags', why_reserved=None):
    """Tags this collection writes: at most 20 with ``reserved`` of them the collection's own (``why_reserved``
    says what for), keys not starting with ``aliyun``, ``acs:`` or the collection's prefix."""
    tags = tags or {}
    if len(tags) + reserved > MAX_TAGS:
        raise invalid('%s has %d entries; at most %d are allowed%s'
                      % (option, len(tags), MAX_TAGS - reserved, ' (%s)' % why_reserved if why_reserved else ''))
    for key, value in tags.items():
        lowered = str(key).lower()
        if lowered.startswith(TAG_PREFIX):
            raise invalid('%s: keys starting with %r are reserved for this collection' % (option, TAG_PREFIX))
        if lowered.startswith(('aliyun', 'acs:')):
            raise invalid('%s: the key %r is not allowed: keys starting with "aliyun" or "acs:" are system tags, '
                          'which only Alibaba Cloud services set' % (option, key))
    check_tag_selector(tags, option)


def check_tag_selector(tags, option='instance_tags'):
    """Tags that select instances: any key a tag can have, system tags (``acs:``, ``aliyun``) included, since
    selecting by them only reads them."""
    for key, value in (tags or {}).items():
        lowered = str(key).lower()
        if not key or len(key) > TAG_KEY_LIMIT or 'http://' in lowered or 'https://' in lowered:
            raise invalid('%s: the key %r is not allowed (1 to %d characters, no http:// or https://)'
                          % (option, key, TAG_KEY_LIMIT))
        text = '' if value is None else str(value)
        if len(text) > TAG_VALUE_LIMIT or 'http://' in text.lower() or 'https://' in text.lower():
            raise invalid('%s: the value of %r is not allowed (at most %d characters, no http:// or https://)'
                          % (option, key, TAG_VALUE_LIMIT))


def check_target_selection(instance_ids=None, instance_tags=None):
    """The targets of a task as given: ``instance_ids`` (a list, None when not given) not empty and without empty
    entries; ``instance_tags`` (a dict, None when not given) not empty and a valid selector. Every module that
    takes ``instance_ids``/``instance_tags`` checks them here."""
    if instance_ids is not None:
        if not instance_ids:
            raise invalid('instance_ids must not be empty')
        if any(not i or not str(i).strip() for i in instance_ids):
            raise invalid('instance_ids must not contain empty entries')
    if instance_tags is not None:
        if not instance_tags:
            raise invalid('instance_tags must not be empty')
        check_tag_selector(instance_tags)


# -- scalars ----------------------------------------------------------------------------------------------------
def check_length(value, limit, option):
    if value is not None and len(value) > limit:
        raise invalid('%s is %d characters long, over the limit of %d' % (option, len(value), limit))


def check_timeout(timeout, option='timeout'):
    if timeout is not None and not TIMEOUT_MIN <= timeout <= TIMEOUT_MAX:
        raise invalid('%s must be between %d and %d seconds, got %d' % (option, TIMEOUT_MIN, TIMEOUT_MAX, timeout))


def check_windows_user(command_type, username, windows_password_name, where='type'):
    """A Windows run as a user other than System needs the name of the OOS encrypted parameter that holds the
    user's password (the API answers WindowsPasswordName.Missed without it)."""
    check_length(windows_password_name, WINDOWS_PASSWORD_NAME_LIMIT, 'windows_password_name')
    if not is_windows_type(command_type):
        if windows_password_name:
            raise invalid('windows_password_name is only for Windows command types (%s is %s)'
                          % (where, command_type))
        return
    if username and username.lower() != WINDOWS_DEFAULT_USER and not windows_password_name:
        raise invalid('username %r with %s %s needs windows_password_name: the name of the OOS encrypted parameter '
                      'that holds the password of that Windows user (only System runs without one)'
                      % (username, where, command_type))
