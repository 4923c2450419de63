# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The command workflow of ``cloud_assistant_command`` (also used by ``benchmarks/command_fanout.py``).

- ``CommandSpec``: what to run (inline content, or a saved command's ID) and how.
- ``CommandRunner``: RunCommand/InvokeCommand in batches of 100 sent concurrently (each with a ClientToken),
  waiting (``_waiter``), outputs fetched once, per-instance results merged into one list and one overall status.
- ``CloudAssistantCommand``: the module's logic: input validation before any API call, target resolution,
  saved commands (create / modify / re-create / delete, diff), scheduled runs found again by their tags,
  ``creates``/``removes`` guards, check mode, and the result dict.

API facts: shared/reference/cloud-assistant-api.md (section numbers below refer to it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

try:
    from shlex import quote as shell_quote
except ImportError:  # pragma: no cover - Python 2 only
    from pipes import quote as shell_quote

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import (
    BATCH_LIMITS,
    chunks,
    run_concurrently,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import (
    ACTIVE,
    NOT_RUN,
    REJECTED,
    SKIPPED,
    STOPPING,
    SUBMITTED,
    SUCCESS,
    is_terminal,
    summarize,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import client_token, new_salt
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._waiter import (
    PollSchedule,
    describe_tagged,
    fetch_outputs,
    invocations_of,
    invoke_instances,
    make_request,
    wait_for_invocations,
)

# ---------------------------------------------------------------------------------------------------------------
# Limits (reference section 2.1, 2.2, 2.3, 7, 9.1, 9.4)
# ---------------------------------------------------------------------------------------------------------------
# Command content after Base64: 24 KB for RunCommand, CreateCommand and InvokeCommand (content plus Parameters) in
# SDK 7.11.8's API text; the Dec-2025 CreateCommand/InvokeCommand pages say 18 KB (section 9.1). 24 KB is used
# (it is also what the sandbox enforces); the API's own CmdContent.ExceedLimit still applies if it is lower.
CONTENT_LIMIT = 24576
MAX_PARAMETERS = 10           # passed per run (section 2.1, 7)
MAX_PLACEHOLDERS = 20         # defined in one content (section 2.1, 7)
MAX_PARAMETER_NAME = 64
TIMEOUT_MIN = 10              # section 2.3
TIMEOUT_MAX = 86400           # section 9.4: the upper bound exists, 86400 is the commonly quoted value
DEFAULT_TIMEOUT = 60          # section 2.1
WAIT_MARGIN = 120             # default wait_timeout = the run's timeout + this (delivery, queueing, polling)
GUARD_TIMEOUT = 30            # the creates/removes check's own timeout on the instance
MAX_TAGS = 20                 # section 2.1 Tag
TAG_KEY_LIMIT = 64
TAG_VALUE_LIMIT = 128
NAME_LIMIT = 128
DESCRIPTION_LIMIT = 512
WORKING_DIR_LIMIT = 200
USERNAME_LIMIT = 255
LAUNCHER_LIMIT = 1024
RATE_MIN = 60                 # section 2.1.1
RATE_MAX = 7 * 24 * 3600
MAX_REPORTED_FAILURES = 5

LINUX_TYPES = ('RunShellScript',)
WINDOWS_TYPES = ('RunBatScript', 'RunPowerShellScript')
COMMAND_TYPES = LINUX_TYPES + WINDOWS_TYPES
REPEAT_MODES = ('Once', 'Period', 'NextRebootOnly', 'EveryReboot')

# How long stopped runs of a saved command may take to end before the command can be deleted.
SETTLE_SECONDS = 60

# Tags this collection puts on scheduled invocations to find them again on the next run.
TAG_PREFIX = 'ansible:cloud-assistant:'
KEY_TAG = TAG_PREFIX + 'key'
SPEC_TAG = TAG_PREFIX + 'spec'
# Tag shared by the invocations (batches) of one run of more than 100 instances, so that one DescribeInvocations
# per poll reports on all of them (_waiter.wait_for_invocations group_tag).
RUN_TAG = TAG_PREFIX + 'run'


# Fields of a saved command: option name -> (DescribeCommands attribute, modifiable by ModifyCommand).
SAVED_FIELDS = (
    ('command_content', 'command_content', False),
    ('type', 'type', False),
    ('enable_parameter', 'enable_parameter', False),
    ('description', 'description', True),
    ('working_dir', 'working_dir', True),
    ('timeout', 'timeout', True),
    ('launcher', 'launcher', True),
)

_PLACEHOLDER = re.compile(r'\{\{\s*(.*?)\s*\}\}')
_PARAM_NAME = re.compile(r'^[A-Za-z0-9_-]+$')
_BUILTIN_PREFIX = 'acs::'
_BUILTINS = ('acs::regionid', 'acs::accountid', 'acs::instanceid', 'acs::invokeid', 'acs::commandid',
             'acs::instancename')
_RATE = re.compile(r'^rate\(\s*(\d+)\s*([smhd])\s*\)$', re.IGNORECASE)
_AT = re.compile(r'^at\(\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\s+\S+)?\s*\)$', re.IGNORECASE)
_CRON_FIELD = re.compile(r'^[0-9A-Za-z*?/,#\-]+$')
_TZ = re.compile(r'^(UTC|GMT|GMT[+-]\d{1,2}:\d{2}|[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)+)$', re.IGNORECASE)
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400}


def invalid(msg):
    """A CloudAssistantError for bad input (raised before any API call)."""
    return CloudAssistantError(msg, kind='config')


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers: sizes, placeholders, frequency, tags, hashing
# ---------------------------------------------------------------------------------------------------------------

def base64_length(nbytes):
    return 4 * ((nbytes + 2) // 3)


def parameters_json(parameters):
    return json.dumps(parameters or {}, ensure_ascii=False, separators=(',', ':'), sort_keys=True)


def content_size(content, parameters=None):
    """Base64 length of the UTF-8 content, followed by the Parameters JSON when there are parameters."""
    payload = (content or '').encode('utf-8')
    if parameters:
        payload += parameters_json(parameters).encode('utf-8')
    return base64_length(len(payload))


def placeholder_names(content):
    """Custom ``{{ name }}`` placeholders of the content (built-ins ``{{ACS::...}}`` left out), in order of first
    use, de-duplicated case-insensitively."""
    names = []
    seen = set()
    for match in _PLACEHOLDER.finditer(content or ''):
        name = match.group(1)
        if not name or name.lower().startswith(_BUILTIN_PREFIX):
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
        if not name or not _PARAM_NAME.match(name) or len(name) > MAX_PARAMETER_NAME:
            raise invalid('%s uses {{%s}}, which is not a valid parameter name (letters, digits, "_" and "-", '
                          'at most %d characters); with enable_parameter=true every {{ }} is a parameter, so '
                          'set enable_parameter=false to send the content as it is'
                          % (option, name, MAX_PARAMETER_NAME))
    names = placeholder_names(content)
    if len(names) > MAX_PLACEHOLDERS:
        raise invalid('%s defines %d custom parameters, more than the limit of %d'
                      % (option, len(names), MAX_PLACEHOLDERS))


def check_parameters(parameters, content=None, enable_parameter=True, where='command_content',
                     require_all=True):
    """The ``parameters`` option: count, keys, value types, and (when the content is known) names that the
    content uses and placeholders without a value."""
    parameters = parameters or {}
    if not parameters:
        if content is not None and enable_parameter and require_all:
            names = placeholder_names(content)
            if names:
                raise invalid('%s uses the parameter(s) %s but parameters gives no value for them'
                              % (where, ', '.join('{{%s}}' % n for n in names)))
        return
    if not enable_parameter:
        raise invalid('parameters is given but custom parameters are disabled (enable_parameter=false%s)'
                      % ('' if where == 'command_content' else ' on ' + where))
    if len(parameters) > MAX_PARAMETERS:
        raise invalid('parameters has %d entries, more than the limit of %d per run'
                      % (len(parameters), MAX_PARAMETERS))
    lowered = set()
    for key, value in parameters.items():
        if not key or len(key) > MAX_PARAMETER_NAME or not _PARAM_NAME.match(key):
            raise invalid('parameters: the name %r is not valid (1 to %d letters, digits, "_" or "-")'
                          % (key, MAX_PARAMETER_NAME))
        if key.lower() in lowered:
            raise invalid('parameters: %r is given twice (names are case-insensitive)' % key)
        lowered.add(key.lower())
        if value is None or isinstance(value, (list, dict)):
            raise invalid('parameters: the value of %r must be a string, number or boolean' % key)
    if content is None:
        return
    used = set(n.lower() for n in placeholder_names(content))
    unused = [k for k in parameters if k.lower() not in used]
    if unused:
        raise invalid('parameters: %s not used by %s (it has %s)'
                      % (', '.join(sorted(unused)), where,
                         ', '.join('{{%s}}' % n for n in placeholder_names(content)) or 'no {{ }} placeholders'))
    if require_all:
        missing = [n for n in placeholder_names(content) if n.lower() not in lowered]
        if missing:
            raise invalid('%s uses %s but parameters gives no value for it'
                          % (where, ', '.join('{{%s}}' % n for n in missing)))


def check_content_size(content, parameters=None, option='command_content'):
    size = content_size(content)
    if size > CONTENT_LIMIT:
        raise invalid('%s is %d bytes after Base64 encoding, over the limit of %d bytes'
                      % (option, size, CONTENT_LIMIT))
    if parameters:
        size = content_size(content, parameters)
        if size > CONTENT_LIMIT:
            raise invalid('%s plus parameters is %d bytes after Base64 encoding, over the limit of %d bytes'
                          % (option, size, CONTENT_LIMIT))


def check_frequency(frequency, timeout=None):
    """Client-side syntax check of ``frequency`` (section 2.1.1); the API checks the rest."""
    value = (frequency or '').strip()
    if not value:
        raise invalid('frequency must not be empty')
    lower = value.lower()
    if lower.startswith('rate('):
        match = _RATE.match(value)
        if not match:
            raise invalid('frequency %r is malformed: use rate(<number><s|m|h|d>), e.g. rate(5m)' % value)
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if seconds < RATE_MIN or seconds > RATE_MAX:
            raise invalid('frequency %r: the interval must be between 60 seconds and 7 days' % value)
        if timeout is not None and seconds <= timeout:
            raise invalid('frequency %r: the interval (%d s) must be longer than timeout (%d s)'
                          % (value, seconds, timeout))
        return
    if lower.startswith('at('):
        match = _AT.match(value)
        if not match:
            raise invalid('frequency %r is malformed: use at(yyyy-MM-dd HH:mm:ss[ <time zone>]), '
                          'e.g. at(2030-01-01 10:00:00 Asia/Shanghai)' % value)
        tz = (match.group(1) or '').strip()
        if tz and not _TZ.match(tz):
            raise invalid('frequency %r: unknown time zone %r (use an IANA name, GMT+8:00 or UTC)' % (value, tz))
        return
    fields = value.split()
    if len(fields) not in (6, 7, 8):
        raise invalid('frequency %r is malformed: a cron expression has 6 fields (seconds minutes hours '
                      'day-of-month month day-of-week), optionally followed by a year and a time zone; '
                      'or use rate(...) / at(...)' % value)
    tz = None
    if len(fields) == 8:
        tz = fields[7]
    elif len(fields) == 7 and not re.match(r'^[0-9*?]', fields[6]):
        tz = fields[6]
    if tz is not None and not _TZ.match(tz):
        raise invalid('frequency %r: unknown time zone %r (use an IANA name, GMT+8:00 or UTC)' % (value, tz))
    cron_fields = fields[:6] if tz is not None or len(fields) == 6 else fields[:7]
    for field in cron_fields:
        if not _CRON_FIELD.match(field):
            raise invalid('frequency %r: the cron field %r is malformed' % (value, field))


def check_tags(tags, reserved=0, option='tags'):
    tags = tags or {}
    if len(tags) + reserved > MAX_TAGS:
        raise invalid('%s has %d entries; at most %d are allowed%s'
                      % (option, len(tags), MAX_TAGS - reserved,
                         ' (%d are used by this module to find scheduled runs again)' % reserved if reserved else ''))
    for key, value in tags.items():
        lowered = str(key).lower()
        if not key or len(key) > TAG_KEY_LIMIT or lowered.startswith(('aliyun', 'acs:')) \
                or 'http://' in lowered or 'https://' in lowered:
            raise invalid('%s: the key %r is not allowed (1 to %d characters, not starting with "aliyun" or '
                          '"acs:", no http:// or https://)' % (option, key, TAG_KEY_LIMIT))
        if lowered.startswith(TAG_PREFIX):
            raise invalid('%s: keys starting with %r are reserved for this module' % (option, TAG_PREFIX))
        text = '' if value is None else str(value)
        if len(text) > TAG_VALUE_LIMIT or 'http://' in text.lower() or 'https://' in text.lower():
            raise invalid('%s: the value of %r is not allowed (at most %d characters, no http:// or https://)'
                          % (option, key, TAG_VALUE_LIMIT))


def check_length(value, limit, option):
    if value is not None and len(value) > limit:
        raise invalid('%s is %d characters long, over the limit of %d' % (option, len(value), limit))


def check_timeout(timeout, option='timeout'):
    if timeout is not None and not TIMEOUT_MIN <= timeout <= TIMEOUT_MAX:
        raise invalid('%s must be between %d and %d seconds, got %d' % (option, TIMEOUT_MIN, TIMEOUT_MAX, timeout))


def is_windows_type(command_type):
    return command_type in WINDOWS_TYPES


def os_of_type(command_type):
    return 'windows' if is_windows_type(command_type) else 'linux'


def fingerprint(*parts):
    """A stable hex digest of JSON-serialisable parts."""
    text = json.dumps(parts, sort_keys=True, separators=(',', ':'), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def empty_to_none(value):
    return None if value is None or value == '' else value


def guard_script(creates=None, removes=None):
    """Shell script for the creates/removes check: exit 0 and print the reason when the guard holds (skip)."""
    lines = []
    if creates:
        lines.append('if [ -e %s ]; then echo creates; exit 0; fi' % shell_quote(creates))
    if removes:
        lines.append('if [ ! -e %s ]; then echo removes; exit 0; fi' % shell_quote(removes))
    lines.append('exit 1')
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------------------------
# What to run
# ---------------------------------------------------------------------------------------------------------------

class CommandSpec(object):
    """One command to run: inline ``content`` (RunCommand) or a saved ``command_id`` (InvokeCommand).

    ``enable_parameter`` None means: true when ``parameters`` is not empty. ``tags`` is a dict of tags put on each
    invocation. ``timeout``/``working_dir``/``username``/``launcher`` None leave the API default (for a saved
    command: its own setting).
    """

    def __init__(self, content=None, command_type='RunShellScript', command_id=None, working_dir=None,
                 username=None, timeout=None, parameters=None, enable_parameter=None, description=None,
                 launcher=None, tags=None, repeat_mode='Once', frequency=None):
        if content is None and command_id is None:
            raise ValueError('CommandSpec needs content or command_id')
        self.content = content
        self.command_type = command_type or 'RunShellScript'
        self.command_id = command_id
        self.working_dir = working_dir
        self.username = username
        self.timeout = timeout
        self.parameters = dict(parameters or {})
        self.enable_parameter = bool(self.parameters) if enable_parameter is None else bool(enable_parameter)
        self.description = description
        self.launcher = launcher
        self.tags = dict(tags or {})
        self.repeat_mode = repeat_mode or 'Once'
        self.frequency = frequency

    @property
    def action(self):
        return 'InvokeCommand' if self.command_id else 'RunCommand'

    def fingerprint(self):
        return fingerprint(self.action, self.command_id, self.command_type, self.content, self.working_dir,
                           self.username, self.timeout, self.parameters, self.enable_parameter, self.description,
                           self.launcher, sorted(self.tags.items()), self.repeat_mode, self.frequency)

    def request(self, api, instance_ids, token, extra_tags=None):
        tag_model = 'InvokeCommandRequestTag' if self.command_id else 'RunCommandRequestTag'
        all_tags = dict(self.tags, **dict(extra_tags or {}))
        tags = [make_request(tag_model, key=k, value='' if v is None else str(v))
                for k, v in sorted(all_tags.items())] or None
        common = dict(instance_id=list(instance_ids), working_dir=self.working_dir, username=self.username,
                      timeout=self.timeout, parameters=self.parameters or None, launcher=self.launcher,
                      repeat_mode=self.repeat_mode, frequency=self.frequency, tag=tags, client_token=token)
        if self.command_id:
            return make_request('InvokeCommandRequest', api=api, command_id=self.command_id, **common)
        encoded = base64.b64encode(self.content.encode('utf-8')).decode('ascii')
        return make_request('RunCommandRequest', api=api, type=self.command_type, command_content=encoded,
                            content_encoding='Base64', description=self.description,
                            enable_parameter=self.enable_parameter, keep_command=False, **common)


class Batch(object):
    """One RunCommand/InvokeCommand call: its instances and what came back."""

    def __init__(self, instance_ids, invoke_id=None, command_id=None, error=None):
        self.instance_ids = list(instance_ids)
        self.invoke_id = invoke_id
        self.command_id = command_id
        self.error = error


class RunResult(object):
    """``invoke_ids`` (one per accepted batch, in batch order), ``command_id``, ``instances`` (list of dicts, the
    module's ``instances`` return, in target order), ``invocation_status`` (overall), ``timed_out``,
    ``stopped`` (StopInvocation was sent after the timeout), ``batches``."""

    def __init__(self, batches, instances, timed_out=False, stopped=False, command_id=None):
        self.batches = batches
        self.invoke_ids = [b.invoke_id for b in batches if b.invoke_id]
        self.command_id = command_id
        self.instances = instances
        self.invocation_status = overall_status(instances)
        self.timed_out = timed_out
        self.stopped = stopped


def instance_entry(instance_id, invoke_id=None, status=None, model=None, skipped=False, **extra):
    """The per-instance dict of the module's ``instances`` return."""
    entry = {
        'instance_id': instance_id,
        'invoke_id': invoke_id,
        'invocation_status': status,
        'exit_code': None,
        'output': '',
        'dropped': 0,
        'error_code': None,
        'error_info': None,
        'start_time': None,
        'finish_time': None,
        'skipped': skipped,
    }
    if model is not None:
        entry['invocation_status'] = getattr(model, 'invocation_status', None) or status
        entry['exit_code'] = getattr(model, 'exit_code', None)
        entry['output'] = getattr(model, 'output', None) or ''
        entry['dropped'] = getattr(model, 'dropped', None) or 0
        entry['error_code'] = empty_to_none(getattr(model, 'error_code', None))
        entry['error_info'] = empty_to_none(getattr(model, 'error_info', None))
        entry['start_time'] = empty_to_none(getattr(model, 'start_time', None))
        entry['finish_time'] = empty_to_none(getattr(model, 'finish_time', None))
    entry.update(extra)
    return entry


class CommandRunner(object):
    """Sends a command to any number of instances and collects the results as one run.

    ``run(spec, targets, deadline, wait=True)``: batches of 100 instances (``BATCH_LIMITS``), one
    RunCommand/InvokeCommand per batch with a ClientToken derived from the batch and the spec (``_tokens``;
    ``token_salt`` random per runner unless given), batches sent concurrently (``max_workers``); then
    ``wait_for_invocations`` until ``deadline`` (a ``clock()`` value) and ``fetch_outputs`` once.
    """

    def __init__(self, api, max_workers=8, schedule=None, clock=time.monotonic, sleep=time.sleep, token_salt=None):
        self.api = api
        self.max_workers = max_workers
        self.schedule = schedule if schedule is not None else PollSchedule()
        self.clock = clock
        self.sleep = sleep
        self.token_salt = token_salt or new_salt()

    # -- submitting ---------------------------------------------------------------------------------------------
    def submit(self, spec, targets):
        """One call per batch of 100, concurrently. Returns the batches; a refused batch carries ``error``.
        Raises the first error when every batch was refused."""
        action = spec.action
        batches = chunks(list(targets), BATCH_LIMITS[action])
        spec_print = spec.fingerprint()
        extra_tags = {}
        if len(batches) > 1 and spec.repeat_mode == 'Once':
            extra_tags[RUN_TAG] = self.run_tag_value(spec)

        def send(instance_ids):
            token = client_token([action, spec_print] + list(instance_ids), self.token_salt)
            try:
                body = self.api.call(action, spec.request(self.api, instance_ids, token, extra_tags))
            except CloudAssistantError as exc:
                return Batch(instance_ids, error=exc)
            return Batch(instance_ids, invoke_id=getattr(body, 'invoke_id', None),
                         command_id=getattr(body, 'command_id', None) or spec.command_id)

        done = run_concurrently(send, batches, max_workers=self.max_workers)
        if done and all(b.error is not None for b in done):
            raise done[0].error
        return done

    def run_tag_value(self, spec):
        """Value of RUN_TAG for this runner's run of ``spec``: derived from the token salt, so a retried call
        carries the same tag (and the same ClientToken)."""
        return client_token(['run', spec.fingerprint()], self.token_salt)

    # -- stopping -----------------------------------------------------------------------------------------------
    def stop_live(self, invocation):
        """StopInvocation for the instances of ``invocation`` (SDK model) that are neither terminal nor already
        Stopping. Returns their IDs (empty: nothing was sent)."""
        live = [i.instance_id for i in invoke_instances(invocation)
                if not is_terminal(i.invocation_status) and i.invocation_status != STOPPING]
        if live:
            self.stop(invocation.invoke_id, live)
        return live

    def stop(self, invoke_id, instance_ids):
        """StopInvocation for these instances of one invocation, 50 instances per call."""
        limit = BATCH_LIMITS.get('StopInvocation', 50)
        for part in chunks(list(instance_ids), limit):
            self.api.call('StopInvocation', make_request('StopInvocationRequest', api=self.api, invoke_id=invoke_id,
                                                         instance_id=list(part)))

    # -- the whole run ------------------------------------------------------------------------------------------
    def run(self, spec, targets, deadline, wait=True, stop_on_timeout=False):
        started = self.clock()
        batches = self.submit(spec, targets)
        accepted = [b for b in batches if b.invoke_id]
        command_id = next((b.command_id for b in accepted if b.command_id), spec.command_id)
        if not wait or spec.repeat_mode != 'Once':
            return RunResult(batches, self._entries(batches, {}, {}), command_id=command_id)
        invoke_ids = [b.invoke_id for b in accepted]
        group_tag = (RUN_TAG, self.run_tag_value(spec)) if len(batches) > 1 else None
        waited = wait_for_invocations(self.api, invoke_ids, deadline, schedule=self.schedule, clock=self.clock,
                                      sleep=self.sleep, max_workers=self.max_workers, started=started,
                                      group_tag=group_tag)
        stopped = False
        if waited.timed_out and stop_on_timeout:
            for invoke_id in waited.unfinished:
                if waited.invocations.get(invoke_id) is not None:
                    self.stop_live(waited.invocations[invoke_id])
            stopped = True
        statuses = {}
        for invoke_id, invocation in waited.invocations.items():
            statuses[invoke_id] = dict((i.instance_id, i) for i in invoke_instances(invocation))
        # after a stop the fetch also brings the newer statuses (Stopping, Terminated, Cancelled)
        outputs = fetch_outputs(self.api, invoke_ids, max_workers=self.max_workers) if invoke_ids else {}
        return RunResult(batches, self._entries(batches, statuses, outputs), timed_out=waited.timed_out,
                         stopped=stopped, command_id=command_id)

    @staticmethod
    def _entries(batches, statuses, outputs):
        entries = []
        for batch in batches:
            for instance_id in batch.instance_ids:
                if batch.error is not None:
                    entries.append(instance_entry(instance_id, status=REJECTED, error_code=batch.error.code,
                                                  error_info=batch.error.msg))
                    continue
                model = (outputs.get(batch.invoke_id) or {}).get(instance_id) \
                    or (statuses.get(batch.invoke_id) or {}).get(instance_id)
                entries.append(instance_entry(instance_id, invoke_id=batch.invoke_id, status=SUBMITTED, model=model))
        return entries


# ---------------------------------------------------------------------------------------------------------------
# Result helpers
# ---------------------------------------------------------------------------------------------------------------

def overall_status(instances):
    """The overall status of the per-instance result entries (``_status.summarize``)."""
    return summarize([entry['invocation_status'] for entry in instances])


def describe_failure(entry):
    details = [entry['invocation_status'] or 'unknown']
    if entry.get('error_code'):
        details.append(entry['error_code'])
    if entry['invocation_status'] == 'Failed' and entry.get('exit_code') is not None:
        details.append('exit %s' % entry['exit_code'])
    return '%s (%s)' % (entry['instance_id'], ', '.join(details))


def failure_message(instances):
    """None when every instance that ran reached Success; else '2 of 50 instances did not succeed: ...'."""
    ran = [i for i in instances if not i['skipped']]
    bad = [i for i in ran if i['invocation_status'] != SUCCESS]
    if not bad:
        return None
    shown = ', '.join(describe_failure(i) for i in bad[:MAX_REPORTED_FAILURES])
    more = ' and %d more' % (len(bad) - MAX_REPORTED_FAILURES) if len(bad) > MAX_REPORTED_FAILURES else ''
    noun = 'instance' if len(ran) == 1 else 'instances'
    return '%d of %d %s did not succeed: %s%s' % (len(bad), len(ran), noun, shown, more)


def command_view(model):
    """A saved command (DescribeCommands model) as the module's ``command`` return / diff dict."""
    if model is None:
        return None
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


def tags_of(model):
    holder = getattr(model, 'tags', None)
    return dict((t.tag_key, t.tag_value) for t in (getattr(holder, 'tag', None) or []))


# ---------------------------------------------------------------------------------------------------------------
# The module's logic
# ---------------------------------------------------------------------------------------------------------------

class CloudAssistantCommand(object):
    """``cloud_assistant_command``: ``run()`` returns the result dict (``failed`` set when the task must fail);
    bad input and API failures raise ``CloudAssistantError``.

    ``module`` needs ``params``, ``check_mode``, ``_diff`` and ``warn()``. ``api`` (a ``CloudAssistantApi`` or a
    fake) is built from the module's connection options when not given.
    """

    def __init__(self, module, api=None, clock=time.monotonic, sleep=time.sleep, schedule=None, max_workers=8):
        self.module = module
        self.params = module.params
        self.check_mode = bool(getattr(module, 'check_mode', False))
        self.want_diff = bool(getattr(module, '_diff', False))
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.schedule = schedule
        self.max_workers = max_workers
        self.deadline = None
        self.pre_stopped = []
        self._api = api
        self._retry = None
        self._runner = None
        self.warnings = []

    # -- plumbing -----------------------------------------------------------------------------------------------
    @property
    def api(self):
        if self._api is None:
            from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import CloudAssistantApi
            from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import ecs_client
            from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import OptionAdapter
            from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy

            opts = OptionAdapter.from_module(self.module).connection_options()
            self._retry = RetryPolicy(deadline=self._retry_deadline(), clock=self.clock, sleep=self.sleep)
            self._api = CloudAssistantApi(ecs_client(opts), opts.region_id, self._retry)
        return self._api

    def _retry_deadline(self):
        # API retries may go on a little past the wait's deadline (the output fetch and a stop come after it);
        # before that deadline is known (the run's timeout may come from a saved command), the longest possible
        deadline = self.deadline
        if deadline is None:
            deadline = self.started + (self.params.get('wait_timeout') or (TIMEOUT_MAX + WAIT_MARGIN))
        return deadline + WAIT_MARGIN

    @property
    def runner(self):
        if self._runner is None:
            salt = self.params.get('client_token') or None
            self._runner = CommandRunner(self.api, max_workers=self.max_workers, schedule=self.schedule,
                                         clock=self.clock, sleep=self.sleep, token_salt=salt)
        return self._runner

    def warn(self, msg):
        self.warnings.append(msg)
        warn = getattr(self.module, 'warn', None)
        if warn is not None:
            warn(msg)

    def has_targets(self):
        return self.params.get('instance_ids') is not None or self.params.get('instance_tags') is not None

    # -- validation (no API calls) ------------------------------------------------------------------------------
    def validate(self):
        p = self.params
        content = p.get('command_content')
        state = p.get('state') or 'present'
        if state == 'absent':
            if not p.get('name') and not p.get('command_id'):
                raise invalid('state=absent needs name or command_id (the saved command to delete)')
            if self.has_targets():
                raise invalid('state=absent deletes a saved command; it does not take instance_ids or '
                              'instance_tags')
            return
        if content is None and not p.get('name') and not p.get('command_id'):
            raise invalid('one of command_content, name or command_id is required')
        if not self.has_targets() and (content is None or not p.get('name')):
            if content is not None:
                raise invalid('command_content without name runs the script: give instance_ids or instance_tags '
                              '(or give name to save it as a command)')
            raise invalid('%s without command_content invokes the saved command: give instance_ids or '
                          'instance_tags' % ('name' if p.get('name') else 'command_id'))
        if p.get('instance_ids') is not None:
            ids = p['instance_ids']
            if not ids:
                raise invalid('instance_ids must not be empty')
            if any(not i or not str(i).strip() for i in ids):
                raise invalid('instance_ids must not contain empty entries')
        if p.get('instance_tags') is not None and not p['instance_tags']:
            raise invalid('instance_tags must not be empty')
        if p.get('instance_tags'):
            check_tags(p['instance_tags'], option='instance_tags')
        check_timeout(p.get('timeout'))
        if p.get('wait_timeout') is not None and p['wait_timeout'] < 1:
            raise invalid('wait_timeout must be at least 1 second, got %d' % p['wait_timeout'])
        check_length(p.get('name'), NAME_LIMIT, 'name')
        check_length(p.get('description'), DESCRIPTION_LIMIT, 'description')
        check_length(p.get('working_dir'), WORKING_DIR_LIMIT, 'working_dir')
        check_length(p.get('username'), USERNAME_LIMIT, 'username')
        check_length(p.get('launcher'), LAUNCHER_LIMIT, 'launcher')
        repeat_mode = p.get('repeat_mode') or 'Once'
        scheduled = repeat_mode != 'Once'
        # scheduled runs carry two tags of ours (key, spec), runs of more than 100 instances one (run)
        check_tags(p.get('tags'), reserved=2 if scheduled else 1)
        if repeat_mode == 'Period' and not p.get('frequency'):
            raise invalid('repeat_mode=Period needs frequency (rate(...), at(...) or a cron expression)')
        if p.get('frequency') is not None:
            if repeat_mode != 'Period':
                raise invalid('frequency is only used with repeat_mode=Period (repeat_mode is %s)' % repeat_mode)
            check_frequency(p['frequency'], p.get('timeout') if p.get('timeout') is not None
                            else (DEFAULT_TIMEOUT if content is not None else None))
        guards = p.get('creates') or p.get('removes')
        if guards:
            if scheduled:
                raise invalid('creates and removes are checked when the task runs, so they only work with '
                              'repeat_mode=Once')
            if content is not None and is_windows_type(p.get('type')):
                raise invalid('creates and removes need a Linux shell: they are not supported with type=%s'
                              % p.get('type'))
        if content is not None:
            if not content.strip():
                raise invalid('command_content must not be empty')
            enable = self.enable_parameter()
            if enable:
                check_placeholders(content)
            check_parameters(p.get('parameters'), content, enable, require_all=self.has_targets())
            check_content_size(content, p.get('parameters') if self.has_targets() else None)
        else:
            check_parameters(p.get('parameters'), None, True)

    def enable_parameter(self):
        value = self.params.get('enable_parameter')
        if value is None:
            return bool(self.params.get('parameters'))
        return bool(value)

    def validate_saved(self, command):
        """Checks that need the saved command (found by name or command_id): parameters against its content,
        guards against its type, frequency against its timeout."""
        p = self.params
        where = 'the saved command %s' % (command['name'] or command['command_id'])
        if command.get('command_content') is not None:
            check_parameters(p.get('parameters'), command['command_content'], command['enable_parameter'],
                             where=where)
            check_content_size(command['command_content'], p.get('parameters'),
                               option='the content of %s' % where)
        elif p.get('parameters') and not command['enable_parameter']:
            check_parameters(p.get('parameters'), None, False, where=where)
        if (p.get('creates') or p.get('removes')) and is_windows_type(command['type']):
            raise invalid('creates and removes need a Linux shell: %s has type %s' % (where, command['type']))
        if p.get('frequency'):
            timeout = p.get('timeout') if p.get('timeout') is not None else command.get('timeout')
            check_frequency(p['frequency'], timeout)

    # -- entry point --------------------------------------------------------------------------------------------
    def run(self):
        self.validate()
        p = self.params
        if (p.get('state') or 'present') == 'absent':
            return self.delete_saved_command()
        result = {'changed': False}
        command = None
        if p.get('name') and p.get('command_content') is not None:
            command = self.ensure_saved_command(result)
        elif p.get('name') or p.get('command_id'):
            command = self.find_saved_command()
            self.validate_saved(command)
            result['command_id'] = command['command_id']
        if not self.has_targets():
            return result
        spec = self.build_spec(command)
        timeout = spec.timeout or (command or {}).get('timeout') or DEFAULT_TIMEOUT
        wait_timeout = p.get('wait_timeout') or (timeout + WAIT_MARGIN)
        self.deadline = self.started + wait_timeout
        if self._retry is not None:
            self._retry.deadline = self._retry_deadline()
        targets, infos = self.resolve_targets(spec.command_type)
        if self.check_mode:
            self.check_agents(targets)
        if spec.repeat_mode != 'Once':
            return self.ensure_schedule(spec, targets, command, result)
        return self.run_once(spec, targets, command, result)

    def build_spec(self, command):
        p = self.params
        common = dict(working_dir=p.get('working_dir'), username=p.get('username'), timeout=p.get('timeout'),
                      parameters=p.get('parameters'), tags=p.get('tags'),
                      repeat_mode=p.get('repeat_mode') or 'Once', frequency=p.get('frequency'))
        if command is not None:
            return CommandSpec(command_id=command['command_id'],
                               command_type=command['type'], launcher=p.get('launcher'),
                               enable_parameter=command['enable_parameter'],
                               content=command.get('command_content'), **common)
        return CommandSpec(content=p['command_content'], command_type=p.get('type') or 'RunShellScript',
                           enable_parameter=self.enable_parameter(), description=p.get('description'),
                           launcher=p.get('launcher'), **common)

    # -- saved commands -----------------------------------------------------------------------------------------
    def describe_commands(self, name=None, command_id=None):
        request = make_request('DescribeCommandsRequest', api=self.api, name=name, command_id=command_id,
                               content_encoding='PlainText')
        found = []
        for model in self.api.paginate('DescribeCommands', request, lambda b: b.commands.command if b.commands else []):
            if name is not None and model.name != name:
                continue  # DescribeCommands matches Name with * wildcards; only the exact name counts here
            if command_id is not None and model.command_id != command_id:
                continue
            if getattr(model, 'provider', None):
                continue  # public commands are not ours to manage
            found.append(command_view(model))
        return found

    def find_saved_command(self):
        p = self.params
        if p.get('command_id'):
            found = self.describe_commands(command_id=p['command_id'])
            if not found:
                raise CloudAssistantError('command_id %s: no such command in region %s'
                                          % (p['command_id'], getattr(self.api, 'region_id', '?')),
                                          code='InvalidCmdId.NotFound')
            return found[0]
        found = self.describe_commands(name=p['name'])
        if not found:
            raise CloudAssistantError('name %s: no saved command has this name (give command_content to create it)'
                                      % p['name'], code='InvalidCmdId.NotFound')
        if len(found) > 1:
            raise CloudAssistantError('name %s: %d saved commands have this name (%s); use command_id'
                                      % (p['name'], len(found), ', '.join(c['command_id'] for c in found)))
        return found[0]

    def desired_command(self):
        p = self.params
        desired = {'name': p['name'], 'command_content': p['command_content'],
                   'type': p.get('type') or 'RunShellScript', 'enable_parameter': self.enable_parameter()}
        for option in ('description', 'working_dir', 'timeout', 'launcher'):
            if p.get(option) is not None:
                desired[option] = p[option]
        return desired

    def ensure_saved_command(self, result):
        """name + command_content + state=present: create, modify or re-create the saved command."""
        p = self.params
        desired = self.desired_command()
        found = self.describe_commands(name=p['name'])
        if len(found) > 1:
            raise CloudAssistantError('name %s: %d saved commands have this name (%s); delete the extra ones first'
                                      % (p['name'], len(found), ', '.join(c['command_id'] for c in found)))
        current = found[0] if found else None
        after = dict(current or {'command_id': None, 'description': '', 'working_dir': '',
                                 'timeout': DEFAULT_TIMEOUT, 'launcher': ''})
        after.update(desired)
        recreate_fields = [o for o, _a, modifiable in SAVED_FIELDS if not modifiable
                           and current is not None and current.get(o) != after.get(o)]
        modify_fields = [o for o, _a, modifiable in SAVED_FIELDS if modifiable
                         and current is not None and current.get(o) != after.get(o)]
        action = None
        if current is None:
            action = 'create'
        elif recreate_fields:
            action = 'recreate'
        elif modify_fields:
            action = 'modify'
        if action is not None:
            result['changed'] = True
            if not self.check_mode:
                if action in ('recreate',):
                    # the old command's scheduled runs cannot outlive it (DeleteCommand refuses while they are
                    # pending); a schedule this task asks for is created again for the new command below
                    self.pre_stopped = self.stop_schedules_of_command(current['command_id'], managed_only=False)
                    self.api.call('DeleteCommand', make_request('DeleteCommandRequest', api=self.api,
                                                                command_id=current['command_id']))
                if action in ('create', 'recreate'):
                    after['command_id'] = self.create_command(after)
                else:
                    self.api.call('ModifyCommand', make_request(
                        'ModifyCommandRequest', api=self.api, command_id=current['command_id'],
                        **dict((f, after[f]) for f in modify_fields)))
            elif action in ('create', 'recreate'):
                after['command_id'] = None
        result['command_id'] = after['command_id']
        result['command'] = dict((k, v) for k, v in after.items() if k != 'command_content')
        result['command_action'] = {'create': 'created', 'recreate': 'recreated',
                                    'modify': 'modified'}.get(action, 'unchanged')
        if self.want_diff:
            result['diff'] = {'before': dict(current) if current else {}, 'after': dict(after)}
        return after

    def create_command(self, fields):
        encoded = base64.b64encode(fields['command_content'].encode('utf-8')).decode('ascii')
        tags = [make_request('CreateCommandRequestTag', key=k, value='' if v is None else str(v))
                for k, v in sorted((self.params.get('tags') or {}).items())] or None
        token = client_token(['CreateCommand', fingerprint(sorted(fields.items()))], self.runner.token_salt)
        request = make_request('CreateCommandRequest', api=self.api, name=fields['name'], type=fields['type'],
                               command_content=encoded, content_encoding='Base64',
                               description=fields.get('description') or None,
                               working_dir=fields.get('working_dir') or None, timeout=fields.get('timeout'),
                               enable_parameter=fields['enable_parameter'],
                               launcher=fields.get('launcher') or None, tag=tags, client_token=token)
        body = self.api.call('CreateCommand', request)
        return body.command_id

    def delete_saved_command(self):
        p = self.params
        if p.get('command_id'):
            found = self.describe_commands(command_id=p['command_id'])
        else:
            found = self.describe_commands(name=p['name'])
        result = {'changed': bool(found), 'command_id': found[0]['command_id'] if found else None,
                  'deleted_command_ids': [c['command_id'] for c in found], 'stopped_invoke_ids': []}
        for command in found:
            # the API refuses to delete a command with pending or scheduled runs: its scheduled runs (any
            # repeat_mode but Once) go with it; a one-time run still in progress makes DeleteCommand fail
            result['stopped_invoke_ids'].extend(self.stop_schedules_of_command(command['command_id'],
                                                                               managed_only=False))
            if not self.check_mode:
                self.api.call('DeleteCommand', make_request('DeleteCommandRequest', api=self.api,
                                                            command_id=command['command_id']))
        if self.want_diff:
            result['diff'] = {'before': found[0] if len(found) == 1 else ({'commands': found} if found else {}),
                              'after': {}}
        return result

    # -- targets ------------------------------------------------------------------------------------------------
    def resolve_targets(self, command_type):
        """Instance IDs in order, after DescribeInstances: they exist, are Running and have the OS that the
        command type needs. instance_tags: every page of DescribeInstances with the Tag filters (not the API's
        ResourceTag, which is limited to 100 instances per call); tagged instances that are not Running are left
        out with a warning."""
        p = self.params
        if p.get('instance_ids') is not None:
            wanted = list(dict.fromkeys(str(i).strip() for i in p['instance_ids']))
            parts = chunks(wanted, BATCH_LIMITS.get('DescribeInstances', 100))

            def describe(part):
                request = make_request('DescribeInstancesRequest', api=self.api, instance_ids=json.dumps(part))
                return list(self.api.paginate('DescribeInstances', request, _instances_of))

            infos = {}
            for models in run_concurrently(describe, parts, max_workers=self.max_workers):
                for model in models:
                    infos[model.instance_id] = model
            missing = [i for i in wanted if i not in infos]
            if missing:
                raise invalid('instance_ids: %d instance(s) not found in region %s: %s'
                              % (len(missing), getattr(self.api, 'region_id', '?'), _listing(missing)))
            not_running = [i for i in wanted if infos[i].status != 'Running']
            if not_running:
                raise invalid('instance_ids: %d instance(s) are not Running: %s'
                              % (len(not_running), _listing(['%s (%s)' % (i, infos[i].status) for i in not_running])))
            targets = wanted
        else:
            tags = [make_request('DescribeInstancesRequestTag', key=k, value=(None if v in (None, '') else str(v)))
                    for k, v in sorted(p['instance_tags'].items())]
            request = make_request('DescribeInstancesRequest', api=self.api, tag=tags)
            models = list(self.api.paginate('DescribeInstances', request, _instances_of))
            infos = dict((m.instance_id, m) for m in models)
            if not models:
                raise invalid('instance_tags: no instance in region %s has the tags %s'
                              % (getattr(self.api, 'region_id', '?'), json.dumps(p['instance_tags'], sort_keys=True)))
            idle = [m for m in models if m.status != 'Running']
            if idle:
                self.warn('instance_tags: %d matching instance(s) left out because they are not Running: %s'
                          % (len(idle), _listing(['%s (%s)' % (m.instance_id, m.status) for m in idle])))
            targets = [m.instance_id for m in models if m.status == 'Running']
            if not targets:
                raise invalid('instance_tags: none of the %d matching instances is Running' % len(models))
        want_os = os_of_type(command_type)
        wrong = [i for i in targets if (getattr(infos[i], 'ostype', None) or '').lower() not in ('', want_os)]
        if wrong:
            raise invalid('type %s needs %s instances; %d target(s) run another OS: %s'
                          % (command_type, want_os.capitalize(), len(wrong),
                             _listing(['%s (%s)' % (i, infos[i].ostype) for i in wrong])))
        return targets, infos

    def check_agents(self, targets):
        """Check mode: DescribeCloudAssistantStatus, 100 instances per call; fails when an agent is offline."""
        parts = chunks(list(targets), BATCH_LIMITS.get('DescribeCloudAssistantStatus', 100))

        def describe(part):
            request = make_request('DescribeCloudAssistantStatusRequest', api=self.api, instance_id=list(part))
            body = self.api.call('DescribeCloudAssistantStatus', request)
            holder = getattr(body, 'instance_cloud_assistant_status_set', None)
            return list(getattr(holder, 'instance_cloud_assistant_status', None) or [])

        online = set()
        for items in run_concurrently(describe, parts, max_workers=self.max_workers):
            for item in items:
                if str(item.cloud_assistant_status).lower() == 'true':
                    online.add(item.instance_id)
        offline = [i for i in targets if i not in online]
        if offline:
            raise invalid('the Cloud Assistant agent is not online on %d instance(s): %s'
                          % (len(offline), _listing(offline)))

    # -- one-time runs ------------------------------------------------------------------------------------------
    def run_once(self, spec, targets, command, result):
        p = self.params
        guards = p.get('creates') or p.get('removes')
        if self.check_mode:
            result.update(self.would_run(targets, result))
            if guards:
                result['msg'] += ' (creates/removes are not checked in check mode: that needs a run on the instances)'
            return result
        skipped = self.evaluate_guards(spec, targets, command) if guards else {}
        to_run = [t for t in targets if t not in skipped]
        run = None
        if to_run:
            run = self.runner.run(spec, to_run, self.deadline, wait=p.get('wait', True),
                                  stop_on_timeout=p.get('stop_on_timeout', False))
            result['changed'] = True
        by_id = dict((e['instance_id'], e) for e in (run.instances if run else []))
        instances = []
        for instance_id in targets:
            if instance_id in skipped:
                instances.append(instance_entry(instance_id, status=SKIPPED, skipped=True))
            else:
                instances.append(by_id[instance_id])
        result['instances'] = instances
        result['invoke_ids'] = run.invoke_ids if run else []
        result['invoke_id'] = result['invoke_ids'][0] if result['invoke_ids'] else None
        if run and not command:
            result['command_id'] = run.command_id
        elif command:
            result['command_id'] = command['command_id']
        result['invocation_status'] = overall_status(instances)
        if len(instances) == 1 and (run is None or p.get('wait', True)):
            only = instances[0]
            if only['skipped']:
                result['rc'] = 0
                result['stdout'] = skipped[only['instance_id']]
            else:
                result['rc'] = only['exit_code']
                # like ansible.builtin.command: the trailing newline is not part of stdout
                result['stdout'] = (only['output'] or '').rstrip('\r\n')
            result['stdout_lines'] = result['stdout'].splitlines()
        if run is not None and run.timed_out:
            unfinished = [i for i in instances if not i['skipped'] and not is_terminal(i['invocation_status'])
                          and i['invocation_status'] != REJECTED]
            result['failed'] = True
            result['msg'] = ('wait_timeout (%d s) expired: %d of %d instances had not finished%s: %s'
                             % (self.deadline - self.started, len(unfinished), len(to_run),
                                ' (StopInvocation sent)' if run.stopped else '',
                                _listing([i['instance_id'] for i in unfinished])))
            return result
        if run is not None and not p.get('wait', True):
            result['msg'] = 'submitted to %d instance(s); not waiting (wait=false)' % len(to_run)
            rejected = [i for i in instances if i['invocation_status'] == REJECTED]
            if rejected:
                result['failed'] = True
                result['msg'] = failure_message(rejected)
            return result
        message = failure_message(instances)
        if message:
            result['failed'] = True
            result['msg'] = message
        elif not to_run:
            reasons = sorted(set(skipped.values()))
            result['msg'] = reasons[0] if len(reasons) == 1 else 'skipped on every instance (creates/removes)'
        else:
            result['msg'] = '%d of %d instance(s) succeeded%s' % (
                len(to_run), len(to_run), ', %d skipped (creates/removes)' % len(skipped) if skipped else '')
        return result

    def would_run(self, targets, result):
        return {
            'changed': True,
            'would_run_on': list(targets),
            'instances': [instance_entry(i, status=NOT_RUN) for i in targets],
            'invocation_status': NOT_RUN,
            'invoke_id': None,
            'invoke_ids': [],
            'command_id': result.get('command_id'),
            'msg': 'check mode: would run on %d instance(s)' % len(targets),
        }

    def evaluate_guards(self, spec, targets, command):
        """One RunCommand of ``test -e`` per batch; returns {instance_id: reason} where the guard holds."""
        p = self.params
        working_dir = spec.working_dir or (command or {}).get('working_dir') or None
        guard = CommandSpec(content=guard_script(p.get('creates'), p.get('removes')), command_type='RunShellScript',
                            working_dir=working_dir, username=spec.username, timeout=GUARD_TIMEOUT,
                            description='ansible creates/removes check')
        checked = self.runner.run(guard, targets, self.deadline, wait=True)
        if checked.timed_out:
            raise CloudAssistantError('the creates/removes check did not finish within wait_timeout on: %s'
                                      % _listing([i['instance_id'] for i in checked.instances
                                                  if not is_terminal(i['invocation_status'])]))
        skipped = {}
        for entry in checked.instances:
            if entry['invocation_status'] != SUCCESS:
                continue  # the guard does not hold, or could not be checked: the run will report the problem
            why = (entry['output'] or '').strip().splitlines()
            if why and why[-1] == 'removes':
                skipped[entry['instance_id']] = 'skipped, since %s does not exist' % p.get('removes')
            else:
                skipped[entry['instance_id']] = 'skipped, since %s exists' % p.get('creates')
        return skipped

    # -- scheduled runs -----------------------------------------------------------------------------------------
    def schedule_key(self, spec, command, targets):
        p = self.params
        if p.get('name'):
            identity = ['name', p['name']]
        elif p.get('command_id'):
            identity = ['command_id', p['command_id']]
        else:
            identity = ['content', spec.command_type, fingerprint(spec.content)]
        if p.get('instance_tags'):
            selector = ['tags', sorted((k, '' if v is None else str(v)) for k, v in p['instance_tags'].items())]
        else:
            selector = ['ids', sorted(targets)]
        return fingerprint(identity, selector, spec.repeat_mode)[:32]

    def schedule_spec(self, spec, command):
        command = command or {}
        return fingerprint(
            spec.frequency, spec.parameters, spec.timeout or command.get('timeout'), spec.username,
            spec.working_dir or command.get('working_dir'), spec.launcher or command.get('launcher'),
            command.get('command_id'), command.get('command_content') if command else spec.content,
            spec.command_type, sorted(spec.tags.items()))[:32]

    def find_schedules(self, key):
        """Invocations tagged with this key that will still run (an instance Pending, Scheduled or Running)."""
        active = []
        for invocation in describe_tagged(self.api, (KEY_TAG, key)).values():
            if tags_of(invocation).get(KEY_TAG) != key:
                continue
            statuses = [i.invocation_status for i in invoke_instances(invocation)]
            if any(s in ACTIVE and s != STOPPING for s in statuses):
                active.append(invocation)
        return active

    def stop_schedules_of_command(self, command_id, managed_only=True):
        """Before a saved command is deleted or re-created (the API refuses to delete a command with pending or
        scheduled runs): stop its scheduled runs - those this module made (tagged), or with ``managed_only=False``
        every run whose repeat_mode is not Once - and wait (at most SETTLE_SECONDS) until runs that were executing
        have ended. Nothing is stopped in check mode. Returns the invoke IDs."""
        request = make_request('DescribeInvocationsRequest', api=self.api, command_id=command_id)
        stopped = []
        unsettled = []
        for invocation in self.api.paginate('DescribeInvocations', request, invocations_of):
            if managed_only and KEY_TAG not in tags_of(invocation):
                continue
            if not managed_only and (getattr(invocation, 'repeat_mode', None) or 'Once') == 'Once':
                continue
            live = [i.instance_id for i in invoke_instances(invocation)
                    if not is_terminal(i.invocation_status) and i.invocation_status != STOPPING]
            if live:
                if not self.check_mode:
                    self.runner.stop_live(invocation)
                stopped.append(invocation.invoke_id)
            if any(not is_terminal(i.invocation_status) for i in invoke_instances(invocation)):
                unsettled.append(invocation.invoke_id)
        if unsettled and not self.check_mode:
            # a run that was executing is only Stopping until its process is gone, and DeleteCommand refuses
            # until then: wait for the stopped runs to end (bounded)
            runner = self.runner
            waited = wait_for_invocations(self.api, unsettled, runner.clock() + SETTLE_SECONDS,
                                          schedule=runner.schedule, clock=runner.clock, sleep=runner.sleep)
            if waited.timed_out:
                raise CloudAssistantError(
                    'command %s: its stopped runs (%s) did not end within %d seconds, so it cannot be deleted yet'
                    % (command_id, ', '.join(waited.unfinished), SETTLE_SECONDS))
        return stopped

    def ensure_schedule(self, spec, targets, command, result):
        key = self.schedule_key(spec, command, targets)
        spec_hash = self.schedule_spec(spec, command)
        existing = self.find_schedules(key)
        order = dict((instance_id, n) for n, instance_id in enumerate(targets))

        def first_target(invocation):
            positions = [order.get(i.instance_id, len(order)) for i in invoke_instances(invocation)]
            return min(positions) if positions else len(order)

        existing.sort(key=first_target)
        seen = []
        for invocation in existing:
            seen.extend(i.instance_id for i in invoke_instances(invocation))
        same = (existing and all(tags_of(inv).get(SPEC_TAG) == spec_hash for inv in existing)
                and len(seen) == len(set(seen)) and set(seen) == set(targets))
        if command is not None:
            result['command_id'] = command['command_id']
        if same:
            by_id = {}
            for invocation in existing:
                for item in invoke_instances(invocation):
                    by_id[item.instance_id] = instance_entry(item.instance_id, invoke_id=invocation.invoke_id,
                                                             model=item)
            instances = [by_id[t] for t in targets]
            result.update({
                'instances': instances,
                'invoke_ids': [inv.invoke_id for inv in existing],
                'invocation_status': overall_status(instances),
                'msg': 'the scheduled run already exists (%s)' % ', '.join(inv.invoke_id for inv in existing),
            })
            result['invoke_id'] = result['invoke_ids'][0]
            return result
        result['changed'] = True
        stopped = self.pre_stopped + [inv.invoke_id for inv in existing]
        if self.check_mode:
            result.update(self.would_run(targets, result))
            result['would_stop'] = stopped
            result['msg'] = 'check mode: would %sschedule the run on %d instance(s)' % (
                'stop %s and re-' % ', '.join(stopped) if stopped else '', len(targets))
            return result
        for invocation in existing:
            self.runner.stop_live(invocation)
        tagged = CommandSpec(content=spec.content if not spec.command_id else None,
                             command_type=spec.command_type, command_id=spec.command_id,
                             working_dir=spec.working_dir, username=spec.username, timeout=spec.timeout,
                             parameters=spec.parameters, enable_parameter=spec.enable_parameter,
                             description=spec.description, launcher=spec.launcher,
                             tags=dict(spec.tags, **{KEY_TAG: key, SPEC_TAG: spec_hash}),
                             repeat_mode=spec.repeat_mode, frequency=spec.frequency)
        run = self.runner.run(tagged, targets, self.deadline, wait=False)
        result.update({
            'instances': run.instances,
            'invoke_ids': run.invoke_ids,
            'invoke_id': run.invoke_ids[0] if run.invoke_ids else None,
            'invocation_status': overall_status(run.instances),
            'stopped_invoke_ids': stopped,
            'msg': 'scheduled (%s) on %d instance(s)%s' % (
                spec.repeat_mode if spec.repeat_mode != 'Period' else spec.frequency, len(targets),
                '; replaced %s' % ', '.join(stopped) if stopped else ''),
        })
        if command is None:
            result['command_id'] = run.command_id
        rejected = [i for i in run.instances if i['invocation_status'] == REJECTED]
        if rejected:
            result['failed'] = True
            result['msg'] = failure_message(rejected)
        return result


def _instances_of(body):
    holder = getattr(body, 'instances', None)
    return list(getattr(holder, 'instance', None) or [])


def _listing(items, limit=10):
    items = list(items)
    text = ', '.join(items[:limit])
    if len(items) > limit:
        text += ' and %d more' % (len(items) - limit)
    return text
