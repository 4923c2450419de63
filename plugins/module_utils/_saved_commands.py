# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Saved commands (reference sections 2.2, 2.5, 2.7, 2.8): find, compare, create, modify, delete.

A saved command is found by exact name or ID among the account's own commands (public commands are not ours to
manage). ``plan(current, desired)`` says what ``ensure`` must do: ``create``, ``modify`` (only the fields
ModifyCommand can change differ), ``recreate`` (content, type or enable_parameter differ) or nothing.

CreateCommand's ClientToken comes from the command's fields alone (``create_command``), so two runs of one task
at the same moment create one command, not two of one name. The reference does not say how long the service
remembers a token; a token that hands back a command since deleted is detected, and a new token is used. Of two
runs that create one command at the same moment only one reports it created (the claim tag, ``_claims``).
"""

from __future__ import annotations

import base64

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    commands_of,
    make_request,
    request_tags,
    tags_of,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._claims import claim_tags, claimed_by_other, is_merged
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import DEFAULT_TIMEOUT
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import client_token, fingerprint

# option name -> modifiable by ModifyCommand
SAVED_FIELDS = (
    ('command_content', False),
    ('type', False),
    ('enable_parameter', False),
    ('description', True),
    ('working_dir', True),
    ('timeout', True),
    ('launcher', True),
)
# What the API reports for a field that was not set.
UNSET = {'command_id': None, 'description': '', 'working_dir': '', 'timeout': DEFAULT_TIMEOUT, 'launcher': ''}


def command_view(model):
    """A DescribeCommands model as the modules' ``command`` return and diff dict."""
    return {
        'command_id': model.command_id,
        'name': model.name,
        'type': model.type,
        'command_content': model.command_content,
        'description': model.description or '',
        'working_dir': model.working_dir or '',
        'timeout': model.timeout,
        'enable_parameter': bool(model.enable_parameter),
        'launcher': model.launcher or '',
    }


def describe_commands(api, name=None, command_id=None):
    """The account's own commands of exactly this name or ID, as ``command_view`` dicts (content as text)."""
    request = make_request('DescribeCommandsRequest', name=name, command_id=command_id, content_encoding='PlainText')
    found = []
    for model in api.paginate('DescribeCommands', request, commands_of):
        if (name is not None and model.name != name) or (command_id is not None and model.command_id != command_id):
            continue  # Name matches with * wildcards; only the exact value counts
        if not getattr(model, 'provider', None):
            found.append(command_view(model))
    return found


def find_saved_command(api, name=None, command_id=None):
    """The one command of ``command_id`` or ``name``; raises when there is none, or several of that name."""
    if command_id:
        found = describe_commands(api, command_id=command_id)
        if not found:
            raise CloudAssistantError('command_id %s: no such command in region %s'
                                      % (command_id, getattr(api, 'region_id', '?')), code='InvalidCmdId.NotFound')
        return found[0]
    found = describe_commands(api, name=name)
    if not found:
        raise CloudAssistantError('name %s: no saved command has this name (give command_content to create it)'
                                  % name, code='InvalidCmdId.NotFound')
    if len(found) > 1:
        raise CloudAssistantError('name %s: %d saved commands have this name (%s); use command_id'
                                  % (name, len(found), ', '.join(c['command_id'] for c in found)))
    return found[0]


def plan(current, desired):
    """(action, after, changed fields): action is 'create', 'recreate', 'modify' or None."""
    after = dict(current or UNSET)
    after.update(desired)
    if current is None:
        return 'create', after, [f for f, _m in SAVED_FIELDS]
    recreate = [f for f, modifiable in SAVED_FIELDS if not modifiable and current.get(f) != after.get(f)]
    modify = [f for f, modifiable in SAVED_FIELDS if modifiable and current.get(f) != after.get(f)]
    if recreate:
        return 'recreate', after, recreate + modify
    if modify:
        return 'modify', after, modify
    return None, after, []


def create_command(api, fields, tags=None, salt=None, claim=None):
    """CreateCommand; returns ``(command_id, created)``. The ClientToken comes from ``fields``, ``tags`` and ``salt``
    (a user's ``client_token``, or None), so the same command asked for twice at once is created once. ``claim``
    (``_claims.new_claim()``, one per module run) goes into a tag outside the token: of two runs at the same moment,
    the one whose request came second learns it (``IdempotentParameterMismatch``, or the other run's claim on the
    command) and gets ``created`` false with the other run's command, once it has the same fields."""
    encoded = base64.b64encode(fields['command_content'].encode('utf-8')).decode('ascii')
    identity = ['CreateCommand', fingerprint(sorted(fields.items()), sorted((tags or {}).items()))]
    stale = []
    for dummy in range(3):
        request = make_request('CreateCommandRequest', name=fields['name'], type=fields['type'],
                               command_content=encoded, content_encoding='Base64',
                               description=fields.get('description') or None,
                               working_dir=fields.get('working_dir') or None, timeout=fields.get('timeout'),
                               enable_parameter=fields['enable_parameter'], launcher=fields.get('launcher') or None,
                               tag=request_tags('CreateCommandRequestTag', dict(tags or {}, **claim_tags(claim))),
                               client_token=client_token(identity + stale, salt or 'saved-command'))
        try:
            command_id = api.call('CreateCommand', request).command_id
        except CloudAssistantError as exc:
            if not is_merged(exc):
                raise
            same = [c for c in describe_commands(api, name=fields['name']) if plan(c, fields)[0] is None]
            if same:
                return same[0]['command_id'], False  # another run sent this request first and created it
            stale.append('mismatch')  # a token the service remembers from an earlier request (a command deleted since)
            continue
        models = [m for m in api.paginate('DescribeCommands', make_request('DescribeCommandsRequest',
                                                                           command_id=command_id), commands_of)
                  if m.command_id == command_id]
        if models:
            return command_id, not claimed_by_other(tags_of(models[0]), claim)
        stale.append(command_id)  # the service remembered the token of a command deleted since
    raise CloudAssistantError('CreateCommand kept returning commands that no longer exist (%s)' % ', '.join(stale))


def modify_command(api, command_id, fields):
    api.call('ModifyCommand', make_request('ModifyCommandRequest', command_id=command_id, **fields))


def delete_command(api, command_id):
    api.call('DeleteCommand', make_request('DeleteCommandRequest', command_id=command_id))
