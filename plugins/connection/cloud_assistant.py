# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: cloud_assistant
short_description: Run Ansible modules on ECS instances through Cloud Assistant, without SSH
version_added: 0.1.0
description:
  - Runs every task of a host on an Alibaba Cloud ECS instance through the Cloud Assistant API (C(RunCommand),
    C(SendFile)), with no SSH, open port, key, bastion host, local binary or bucket.
  - Modules run as over SSH with pipelining. The module is sent with the command; the files it is made of
    (C(basic.py), C(module_utils)) are kept on the instance under their SHA-256 in a directory only the user
    running the command can use (C(/var/tmp/.ansible-cloud-assistant-UID)), so after the first task a module
    usually travels in the one C(RunCommand) that runs it. Missing files are sent once with C(SendFile). The
    module's whole archive is kept there too (the 24 most recently used, about 500 KB each with its
    C(module_utils) compiled by the instance's Python, so about 12 MB), so that its later runs are put together by
    the shell without a Python loader and without compiling C(module_utils) again.
  - Each task's worker process imports this plugin and the SDK (0.4-0.6 seconds) unless the controller has them
    loaded; the vars plugin P(alicloud_ops.cloud_assistant.preload#vars) loads them there once (and builds the
    SDK's HTTP adapter, whose CA certificates each worker would load again).
  - Ansible's housekeeping around a file it sends costs no round trip of its own. The C(mkdir) of its temporary
    directory and the C(chmod u+x) of the files it sent print nothing but a known line when they succeed, so they
    are answered at once and run at the start of the next command of the task (before C(put_file) and
    C(fetch_file) too); when one fails, that next command does not run and the task fails with its error. The
    home directory Ansible asks (C(echo ~user)) before each temporary directory is reported by the first command
    of each C(ansible-playbook) run on the instance and kept in the run's local temporary directory
    (C(DEFAULT_LOCAL_TMP)); a play that moves a user's home directory sees the old one in C(~) paths for the
    rest of that run.
  - Standard output, standard error and the exit code are kept apart and complete (output larger than the 24 KB
    the service keeps is read in pieces). Files are copied with C(SendFile) (parts assembled atomically and
    checked with SHA-256) and fetched through command output in pieces (checked with SHA-256); both are
    binary-safe.
  - Linux instances only (C(RunShellScript)); the instance needs C(/bin/sh) and the usual base tools (C(base64),
    C(sha256sum), C(mktemp), C(find), C(dd), C(wc), C(cut), C(tr), C(head), C(id), a C(sleep) that takes
    fractions; C(gzip), C(stat) and C(touch) when present), and Python for modules, as over SSH.
author:
  - alicloud_ops maintainers (@alicloud-ops)
extends_documentation_fragment:
  - alicloud_ops.cloud_assistant.common.plugins
options:
  instance_id:
    description:
      - The ID of the ECS instance to run on.
      - When not set, O(host) is used when it looks like an instance ID (C(i-) followed by letters and digits),
        so an inventory whose host names or C(ansible_host) are instance IDs needs nothing more.
    type: str
    vars:
      - name: ansible_cloud_assistant_instance_id
      - name: ansible_alicloud_instance_id
  host:
    description:
      - The host address Ansible knows the host by; used as the instance ID when O(instance_id) is not set.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  remote_user:
    description:
      - The user commands run as on the instance (the C(Username) of C(RunCommand)). Not set, the agent's default
        (C(root)).
      - The user must exist on the instance; otherwise the host is unreachable with a message naming the user.
    type: str
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  command_timeout:
    description:
      - Seconds one command (one module run) may take on the instance. Cloud Assistant stops it (the whole process
        tree) when this time is over, and the task fails naming this option.
      - Between 10 and 86400.
    type: int
    default: 3600
    vars:
      - name: ansible_cloud_assistant_command_timeout
    env:
      - name: ANSIBLE_CLOUD_ASSISTANT_COMMAND_TIMEOUT
  api_timeout:
    description:
      - Seconds one API call is retried (throttling, server errors, an endpoint that does not answer) before the
        host is reported unreachable; the same for each poll of a running command. A command that keeps running
        on the instance meanwhile is not affected; an API that stays away ends the task within this time.
      - Between 5 and 3600.
    type: int
    default: 120
    version_added: 0.2.0
    vars:
      - name: ansible_cloud_assistant_api_timeout
    env:
      - name: ANSIBLE_CLOUD_ASSISTANT_API_TIMEOUT
  poll_interval:
    description:
      - The shortest time in seconds between two requests for the result of a command. The wait grows with the
        command's run time (a tenth of it, at most 5 seconds between two requests).
      - The first two requests are the exception. The first comes when the command should have ended, from what
        the wrapper on the instance reports about how long each command ran. For a module, that is the shortest
        of its last 8 run times on that instance (kept in C(cloud_assistant-times/INSTANCE.json) in Ansible's
        local temporary directory, C(~/.ansible/tmp) by default, across runs), scaled by how many times their
        kept times this run's modules took on that instance, plus the service's lag seen there (in this run; at
        first, in the last one), at most 3 seconds (more on an instance much slower in this run); for a module
        not run before, 1.5 times this interval; for any other command, about 0.1 second; never sooner than a
        quarter of this interval. When it comes too soon, the second follows after half this interval (at least
        0.1 second), or a fifth of the first wait when that is longer.
      - Between 0.1 and 5.
    type: float
    default: 0.2
    vars:
      - name: ansible_cloud_assistant_poll_interval
  share_polls:
    description:
      - Share the polls of the hosts that run the same task. Every command the connection waits for then carries
        the invocation tag C(ansible:cloud-assistant:step) (a hash of the task and the run, and the command's place
        in the task on that host), and one C(DescribeInvocationResults) call filtered by that tag reads the results
        of that step on every host reached with the same access key, region and endpoint (50 per call). The answer
        is kept in this run's local temporary directory (private to the user, removed when the run ends; each
        host's output only until that host has read it), where the other hosts' tasks read their results instead
        of calling. A command the tagged answer does not list, or when that call fails, is polled by its ID, and so
        is a poll that waited 2 seconds for another host's call. A C(no_log) task shares nothing.
      - When the account refuses the tag (C(Forbidden) or C(NoPermission) on C(RunCommand)) and the command runs
        without it, a warning says so and nothing is tagged for the rest of the run.
      - V(false) - each host polls for its own commands by their IDs, and no tag is put on them.
    type: bool
    default: true
    version_added: 0.2.0
    vars:
      - name: ansible_cloud_assistant_share_polls
    env:
      - name: ANSIBLE_CLOUD_ASSISTANT_SHARE_POLLS
  agent_check_interval:
    description:
      - While a command has not finished, every this many seconds the agent's heartbeat is read
        (C(DescribeCloudAssistantStatus)); an agent that went offline makes the host unreachable instead of
        waiting for O(command_timeout). V(0) turns the check off.
      - Between 0 and 3600.
    type: int
    default: 30
    vars:
      - name: ansible_cloud_assistant_agent_check_interval
  module_cache:
    description:
      - Keep the files modules are made of on the instance, under their SHA-256, and send only what is missing.
      - V(false), every module payload is sent whole with C(SendFile) for every task (slower, more API calls).
    type: bool
    default: true
    vars:
      - name: ansible_cloud_assistant_module_cache
  pipelining:
    description:
      - Send modules with the command that runs them, as the SSH connection does with pipelining. On by default
        here (it saves several API calls per task); V(false) makes Ansible copy each module to a temporary
        directory first (as it always does for C(async) tasks).
      - The usual pipelining settings turn it off too (E(ANSIBLE_PIPELINING), C(pipelining) in the C(defaults) or
        C(connection) section of C(ansible.cfg)).
    type: bool
    default: true
    env:
      - name: ANSIBLE_PIPELINING
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    vars:
      - name: ansible_pipelining
      - name: ansible_cloud_assistant_pipelining
notes:
  - Credentials, region and endpoint are the same options and environment variables as the modules and the
    inventory plugin of this collection. The inventory plugin C(alicloud_ops.cloud_assistant.ecs) with
    C(use_cloud_assistant_connection=true) sets O(instance_id), O(region_id) and this connection for every host.
  - C(become) works through the command (C(sudo), C(su), C(runuser)) without a password; a become password cannot be
    sent safely through Cloud Assistant (the service keeps command content and the instance can read it), so a
    task with one fails with a message saying so. To run everything as another user, set O(remote_user).
  - Every command, and the content of every file sent, is recorded by Cloud Assistant (visible with
    C(DescribeInvocations) and C(DescribeSendFileResults) to whoever may call them); module arguments marked
    C(no_log) are part of the module's command. Do not send secrets you would not put in a Cloud Assistant command.
  - Each task makes at least two API calls (C(RunCommand), then C(DescribeInvocationResults) every
    O(poll_interval) or more while it runs); the account's API rate limits apply. Every command, and every piece
    of a large output or fetched file, is one execution against the region's daily Cloud Assistant quota.
  - The hosts of a task share their polls (O(share_polls)). With 10 hosts, a one-command task costs 1.5-2
    calls per host on the sandbox.
  - Files that C(put_file) sends for a O(remote_user) other than root are owned by that user and the group
    C(root) (what C(SendFile) does); modules set the group when they are asked to.
seealso:
  - plugin: alicloud_ops.cloud_assistant.ecs
    plugin_type: inventory
  - plugin: alicloud_ops.cloud_assistant.preload
    plugin_type: vars
'''

EXAMPLES = r'''
# inventory.yml: hosts named by instance ID, the connection for all of them
# all:
#   vars:
#     ansible_connection: alicloud_ops.cloud_assistant.cloud_assistant
#     ansible_alicloud_region_id: cn-hangzhou
#   hosts:
#     i-bp1abcdefghijklmnopq:
#     web1:
#       ansible_cloud_assistant_instance_id: i-bp1bcdefghijklmnopqr
#       ansible_user: ecs-user

# Or from the ECS inventory plugin (ecs.yml):
# plugin: alicloud_ops.cloud_assistant.ecs
# regions: [cn-hangzhou]
# use_cloud_assistant_connection: true

- name: Configure web servers over Cloud Assistant
  hosts: web
  tasks:
    - name: Install nginx
      ansible.builtin.package:
        name: nginx
        state: present
      become: true

    - name: Deploy the site configuration
      ansible.builtin.template:
        src: site.conf.j2
        dest: /etc/nginx/conf.d/site.conf
        mode: "0644"

    - name: Bring the access log back
      ansible.builtin.fetch:
        src: /var/log/nginx/access.log
        dest: logs/
'''

import base64
import functools
import hashlib
import os
import time

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import (
    build_api,
    invocation_results_of,
    make_request,
    request_tags,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import run_concurrently
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import resolved_credentials
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import (
    PART_BYTES,
    finalize_script,
    part_name,
    plan_payload,
    staging,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._files import (
    SendJob,
    failed_sends,
    send_files,
    send_results,
    tag_counts,
    wait_for_sends,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import OptionAdapter
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import PollSchedule, poll
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import CommandSpec
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import SUCCESS, is_terminal
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._targets import agent_status
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import client_token, new_salt
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._remote_exec import (
    SCRIPT_BUDGET,
    WAIT_FILES_SECONDS,
    ansiballz_plan,
    chunk_count,
    chunk_script,
    digest,
    cleanup_script,
    deferred_answer,
    exec_script,
    fetch_script,
    home_expression,
    home_query,
    is_home_answer,
    looks_like_instance_id,
    parse_fetch,
    parse_frame,
    split_ansiballz,
    strip_become_success,
    unpack,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._module_times import (
    FETCH_KEY,
    ModuleTimes,
    first_poll,
    next_lag,
    next_pace,
    second_poll,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._run_memory import RunMemory, run_dir
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._shared_polls import (
    TAG_KEY,
    PollBoard,
    refuse_tags,
    running_task_id,
    step_tag,
    tags_refused,
)

display = Display()

API_SLACK = 60                 # seconds allowed beyond command_timeout for the API to report the end
SEND_SLACK = 180               # seconds a file transfer may take beyond its parts' own SendFile timeout
COMMAND_LIMIT_B64 = 24 * 1024  # RunCommand's CommandContent, after Base64 (reference 2.1)
INPUT_STAGING = '/tmp/.ansible-ca-in-'  # + a transfer ID: SendFile parts a command waits for
PARTS_SHAPE = (INPUT_STAGING + 'x' * 16, 10 ** 10, '0' * 64)   # the longest parts argument of exec_script, for sizing
CHUNK_WORKERS = 4              # pieces of a large output or file read at once
STEP_PAGES = 4                 # pages of 50 results (newest first) a shared poll reads at most to find its own
TAG_REFUSED = ('Forbidden', 'NoPermission')     # error codes of a RunCommand whose tag the account may not put
# Why a run did not happen on the instance, as the service reports it: the host is unreachable.
UNREACHABLE_CODES = frozenset(['ClientNotRunning', 'ClientNotOnline', 'ClientNetworkBlocked', 'ClientNotResponse',
                               'ClientIsUpgrading', 'ClientNeedUpgrade', 'InstanceNotRunning', 'InstanceRestarted',
                               'AccountNotExists', 'DeliveryTimeout'])
# Errors of the API itself (no answer, DNS, TLS, credentials, configuration): the host cannot be reached.
UNREACHABLE_KINDS = ('connection', 'dns', 'tls', 'transport', 'credentials', 'config')
UNREACHABLE_API_CODES = ('InvalidInstance', 'InstanceNotRunning', 'IncorrectInstanceStatus', 'InvalidInstanceId',
                         'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidSecurityToken')


def _fits(script):
    """Whether a script fits in one RunCommand, with the margin the scripts keep (its UTF-8 bytes count)."""
    return len(script.encode('utf-8')) <= SCRIPT_BUDGET


class Connection(ConnectionBase):
    """One ECS instance, reached through the Cloud Assistant API."""

    transport = 'alicloud_ops.cloud_assistant.cloud_assistant'
    has_pipelining = True
    has_tty = False
    allow_executable = True

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._api = None
        self._instance = None
        self._connected_with = None
        self._salt = new_salt()
        self._serial = 0
        self._stages = []
        self._pending_files = []     # (SendFile IDs, path, size, sha256) put_file sent and no command awaited yet
        self._deferred = []          # Ansible's commands answered already, to run at the start of the next one
        self._memory = None
        self._times = None
        self._last_run = None        # (module or None, when each of its polls came, in seconds after RunCommand)
        self._steps = {}             # task ID: how many commands of that task were awaited here (_step_board)

    # -- settings ---------------------------------------------------------------------------------------------------
    def is_pipelining_enabled(self, wrap_async=False):
        if wrap_async:
            return False
        try:
            return bool(self.get_option('pipelining')) and super(Connection, self).is_pipelining_enabled(wrap_async)
        except KeyError:
            return True

    def _instance_id(self):
        value = self.get_option('instance_id')
        if value:
            if not looks_like_instance_id(value):
                raise AnsibleConnectionFailure('instance_id must be an ECS instance ID such as i-bp1abc..., not %r' % value)
            return value
        host = self.get_option('host') or self._play_context.remote_addr
        if looks_like_instance_id(host):
            return host
        raise AnsibleConnectionFailure(
            'no instance ID for host %r: set ansible_cloud_assistant_instance_id, or name the host (or its ansible_host) '
            'after the instance (i-...)' % (host,))

    def _int_option(self, name, low, high):
        value = self.get_option(name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise AnsibleError('%s must be a number between %s and %s, not %r' % (name, low, high, value))
        if not low <= number <= high:
            raise AnsibleError('%s must be between %s and %s, not %s' % (name, low, high, value))
        return number

    def _username(self):
        try:
            user = self.get_option('remote_user')
        except KeyError:
            user = None
        return user or self._play_context.remote_user or None

    # -- connecting -------------------------------------------------------------------------------------------------
    def set_options(self, task_keys=None, var_options=None, direct=None):
        super(Connection, self).set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        # Ansible keeps one connection across the items of a loop while the address stays the same (delegate_to
        # hosts that share an instance, per-item variables) and sets the options again for every item: when they
        # differ from those the connection was made with, the next command connects again with the new ones.
        if self._connected and self._settings() != self._connected_with:
            self.close()

    def _settings(self):
        """Everything ``_connect`` reads, to tell whether a connection still matches its options."""
        names = ('instance_id', 'host', 'command_timeout', 'poll_interval', 'agent_check_interval', 'api_timeout',
                 'share_polls')
        values = [self.get_option(name) for name in names] + [self._play_context.remote_addr]
        try:
            values.append(sorted(OptionAdapter.from_plugin(self).connection_options().to_dict().items()))
        except CloudAssistantError as exc:
            values.append(to_native(exc))
        return repr(values)

    def _connect(self):
        if self._connected:
            return self
        self._connected_with = self._settings()
        self._instance = self._instance_id()
        self._timeout = int(self._int_option('command_timeout', 10, 86400))
        self._poll_floor = self._int_option('poll_interval', 0.1, 5)
        self._agent_every = int(self._int_option('agent_check_interval', 0, 3600))
        self._share_polls = bool(self.get_option('share_polls'))
        # how long one API call is retried (throttling, no answer) before the host is unreachable
        self._call_retry = int(self._int_option('api_timeout', 5, 3600))
        try:
            given = OptionAdapter.from_plugin(self).connection_options()
            self._api = build_api(resolved_credentials(given), RetryPolicy())
        except CloudAssistantError as exc:
            raise AnsibleConnectionFailure('cannot set up the Cloud Assistant API: %s' % to_native(exc))
        for warning in self._api.warnings:
            display.warning(u'%s' % warning)
        display.vvv(u'CLOUD ASSISTANT: instance %s in %s' % (self._instance, self._api.region_id), host=self._instance)
        # which boards of shared polls this connection may use: the same access key, role, region and endpoint
        # (as given: a role's temporary keys differ from one worker to the next)
        self._api_identity = repr([given.access_key_id, given.profile, given.role_arn, given.ecs_ram_role_name,
                                   self._api.region_id, given.endpoint])
        self._memory = RunMemory(self._instance)
        self._times = ModuleTimes(self._instance)
        self._connected = True
        return self

    def _api_for(self, seconds):
        return self._api.with_deadline(time.monotonic() + seconds)

    def _unreachable(self, what, exc):
        code = getattr(exc, 'code', None) or ''
        if code.startswith(UNREACHABLE_API_CODES) or getattr(exc, 'kind', None) in UNREACHABLE_KINDS:
            raise AnsibleConnectionFailure('%s on %s: %s' % (what, self._instance, to_native(exc)))
        raise AnsibleError('%s on %s: %s' % (what, self._instance, to_native(exc)))

    # -- one command ------------------------------------------------------------------------------------------------
    def _token(self, *parts):
        self._serial += 1
        return client_token([self._instance, self._serial] + list(parts), self._salt)

    def _run(self, script, timeout=None, wait=True, username=None, module=None):
        """Run ``script`` on the instance; the raw output (bytes) once it has finished. Raises for a run that did not
        happen or did not end (unreachable host, timeout, stopped). ``module``: the name of the module the script
        runs (its first poll comes when that module's earlier runs say it ends, ``_module_times``)."""
        timeout = int(timeout or self._timeout)
        size = len(script.encode('utf-8'))
        if (size + 2) // 3 * 4 > COMMAND_LIMIT_B64:
            raise AnsibleError('internal error: a command of %d bytes does not fit in RunCommand' % size)
        spec = CommandSpec(content=script, username=username or self._username(), timeout=timeout,
                           description='ansible connection')
        board = self._step_board() if wait else None
        api = self._api_for(self._call_retry)
        try:
            try:
                body = api.call('RunCommand', spec.request([self._instance], self._token('run', script),
                                                           extra_tags={TAG_KEY: board.tag_value} if board else None))
            except CloudAssistantError as exc:
                if board is None or not (getattr(exc, 'code', None) or '').startswith(TAG_REFUSED):
                    raise
                body = self._run_untagged(api, spec, script, board, exc)
                board = None
        except CloudAssistantError as exc:
            self._unreachable('RunCommand failed', exc)
        invoke_id = body.invoke_id
        display.vvvv(u'CLOUD ASSISTANT: RunCommand %s' % invoke_id, host=self._instance)
        if not wait:
            return invoke_id
        return self._result(invoke_id, timeout, self._first_poll(module),
                            own_timeout=username is not None or timeout != self._timeout, module=module, board=board)

    def _run_untagged(self, api, spec, script, board, refused):
        """RunCommand again without the tag after the account refused the tagged one (``refused``): when that one
        runs, only the tag was refused (a RAM policy on tagging), and nothing is tagged for the rest of the run;
        otherwise the first refusal is the error."""
        try:
            body = api.call('RunCommand', spec.request([self._instance], self._token('run', script)))
        except CloudAssistantError:
            raise refused
        refuse_tags(board.directory, self._api_identity)
        display.warning(u'RunCommand with the tag %s was refused on %s (%s); the hosts of this run poll alone (set '
                        u'share_polls to false to skip the try)' % (TAG_KEY, self._instance, refused.code))
        return body

    def _step_board(self):
        """The board on which this command's polls are shared with the other hosts running the same step of the
        same task (``_shared_polls``), or None when they are not shared, outside an Ansible worker or without a run
        directory."""
        task_id = running_task_id() if self._share_polls else None
        directory = run_dir()
        if task_id is None or directory is None or tags_refused(directory, self._api_identity):
            return None
        self._steps[task_id] = self._steps.get(task_id, 0) + 1
        return PollBoard(directory, self._api_identity, step_tag(directory, task_id, self._steps[task_id]))

    def _first_poll(self, module):
        took = self._times.seconds(module) if module else None
        module = module if module != FETCH_KEY else None      # a shell script: no Python to start when not kept
        # the script runs the deferred commands first (a script not built by _script runs when there are none)
        return first_poll(took, self._learnt('lag'), self._poll_floor, module=bool(module), deferred=len(self._deferred),
                          pace=self._learnt('pace'))

    def _learnt(self, name):
        """What this run learnt so far about this instance: its ``lag`` (before the first poll of the run: the last
        run's) or its ``pace`` (``_module_times``)."""
        value = self._memory.get(name)
        if not isinstance(value, float) and name == 'lag':
            value = self._times.lag()
        return value if isinstance(value, float) else None

    def _learn(self, frame):
        """What the run that printed ``frame`` says about this instance's lag and pace and the module's run time."""
        # a module that failed may have ended early: its time says nothing
        self._learn_times(frame.elapsed_ms, frame.script_ms, frame.kind in ('R', 'M') and frame.rc == 0)

    def _learn_times(self, elapsed_ms, script_ms, whole):
        """What the last ``_run`` says: ``elapsed_ms`` the command itself ran, ``script_ms`` the whole script,
        ``whole`` whether the command ran to its normal end (only then is its time kept)."""
        module, poll_times = self._last_run or (None, None)
        self._last_run = None
        learnt = {}
        lag = next_lag(self._learnt('lag'), poll_times, script_ms)
        if lag is not None:
            learnt['lag'] = round(lag, 4)
            self._times.record_lag(lag)
        if module and whole:
            pace = next_pace(self._learnt('pace'), self._times.seconds(module), elapsed_ms)
            if pace is not None:
                learnt['pace'] = round(pace, 3)
            self._times.record(module, elapsed_ms)
        self._memory.put_all(learnt)

    def _describe(self, api, invoke_id):
        request = make_request('DescribeInvocationResultsRequest', invoke_id=invoke_id, instance_id=self._instance,
                               content_encoding='Base64')
        results = invocation_results_of(api.call('DescribeInvocationResults', request))
        return results[0] if results else None

    def _describe_step(self, api, tag_value, wanted):
        """The invocations of one step of a task on every host (the maps of its InvocationResult models), newest
        first, as far as the page that lists ``wanted`` (a step that Ansible ran in batches lists the earlier ones
        after it) and at most ``STEP_PAGES`` pages."""
        records, token = [], None
        for dummy in range(STEP_PAGES):
            request = make_request('DescribeInvocationResultsRequest', content_encoding='Base64', max_results=50,
                                   next_token=token,
                                   tag=request_tags('DescribeInvocationResultsRequestTag', {TAG_KEY: tag_value}))
            body = api.call('DescribeInvocationResults', request)
            page = [result.to_map() for result in invocation_results_of(body)]
            records.extend(page)
            token = getattr(getattr(body, 'invocation', None), 'next_token', None)
            if not token or any(record.get('InvokeId') == wanted for record in page):
                break
        return records

    def _result(self, invoke_id, timeout, first_poll, own_timeout=False, module=None, board=None):
        started = time.monotonic()
        deadline = started + timeout + API_SLACK
        state = {'agent_checked': started, 'board': board}
        poll_times = []

        def fetch():
            api = self._api_for(self._call_retry)   # each poll is retried on its own, not until the deadline
            found = shared = None
            if state['board'] is not None:
                try:
                    shared = state['board'].poll(invoke_id, functools.partial(self._describe_step, api, board.tag_value))
                except CloudAssistantError as exc:
                    display.vvvv(u'CLOUD ASSISTANT: the shared poll failed (%s); polling by ID' % to_native(exc),
                                 host=self._instance)
                    state['board'] = None
                if shared is not None:
                    found, at = shared
                    if found is None:
                        state['board'] = None       # not listed under its step: asked for by its ID from now on
            if found is None:
                found, at = self._describe(api, invoke_id), time.monotonic()
            poll_times.append(max(0.0, at - started))
            status = getattr(found, 'invocation_status', None)
            now = time.monotonic()
            if (self._agent_every and status not in (None, SUCCESS) and not is_terminal(status)
                    and now - state['agent_checked'] >= self._agent_every):
                state['agent_checked'] = now
                self._check_agent(api, invoke_id)
            return found

        schedule = PollSchedule(floor=self._poll_floor, first=first_poll, second=second_poll(self._poll_floor, first_poll))
        try:
            outcome = poll(fetch, lambda r: r is not None and is_terminal(getattr(r, 'invocation_status', None)),
                           deadline, schedule=schedule, started=started)
        finally:
            if board is not None:                   # another host's call may have put its output there meanwhile
                board.forget(invoke_id)
        if outcome.error is not None:
            self._unreachable('reading the result of %s failed' % invoke_id, outcome.error)
        result = outcome.value
        limit = ('its time limit (%d s)' if own_timeout else 'command_timeout (%d s)') % timeout
        if not outcome.done:
            self._stop(invoke_id)
            raise AnsibleError('the command %s on %s did not finish within %s and the service did not report its end; '
                               'it was stopped' % (invoke_id, self._instance, limit))
        self._last_run = (module, poll_times)
        return self._output_of(result, invoke_id, limit)

    def _check_agent(self, api, invoke_id):
        try:
            status = agent_status(api, [self._instance]).get(self._instance)
        except CloudAssistantError:
            return
        if status is not None and status.known and not status.online:
            self._stop(invoke_id)
            raise AnsibleConnectionFailure('the Cloud Assistant agent of %s went offline while %s was running'
                                           % (self._instance, invoke_id))

    def _stop(self, invoke_id):
        try:
            self._api_for(30).call('StopInvocation', make_request('StopInvocationRequest', invoke_id=invoke_id,
                                                                  instance_id=[self._instance]))
        except CloudAssistantError as exc:
            display.warning(u'could not stop %s on %s: %s' % (invoke_id, self._instance, to_native(exc)))

    def _output_of(self, result, invoke_id, limit):
        status = result.invocation_status
        code = getattr(result, 'error_code', None) or ''
        info = getattr(result, 'error_info', None) or ''
        if status == 'Timeout':
            raise AnsibleError('the command %s on %s ran longer than %s and was stopped by Cloud Assistant'
                               % (invoke_id, self._instance, limit))
        if code in UNREACHABLE_CODES or status == 'Aborted':
            if code == 'AccountNotExists':
                info = 'the user %r (remote_user) does not exist on the instance' % self._username()
            raise AnsibleConnectionFailure('Cloud Assistant could not run on %s: %s %s (%s)'
                                           % (self._instance, code or status, info, invoke_id))
        if status in ('Terminated', 'Cancelled'):
            raise AnsibleError('the command %s on %s was stopped before it ended (%s)' % (invoke_id, self._instance, status))
        if status not in (SUCCESS, 'Failed'):
            raise AnsibleError('the command %s on %s ended with %s %s %s' % (invoke_id, self._instance, status, code, info))
        return base64.b64decode(getattr(result, 'output', None) or '')

    # -- exec_command -----------------------------------------------------------------------------------------------
    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._refuse_become_password(sudoable)
        display.vvv(u'CLOUD ASSISTANT: EXEC %s' % to_native(cmd), host=self._instance)
        cmd = to_native(cmd)
        answer = None if in_data else deferred_answer(cmd)
        if answer is not None:
            # Ansible's temporary directory and chmod of the files it sent: run at the start of the next command
            # (one round trip less each); a failure fails that command, with this one's error
            display.vvv(u'CLOUD ASSISTANT: deferred to the next command', host=self._instance)
            self._deferred.append(cmd)
            return 0, answer, b''
        home_key = self._home_key(home_query(cmd)) if not in_data else None
        known = self._memory.get(home_key) if home_key else None
        if isinstance(known, str):
            display.vvv(u'CLOUD ASSISTANT: answered from what this run saw on the instance', host=self._instance)
            return 0, to_bytes(known), b''
        try:
            frame = self._exec(cmd, in_data)
        finally:
            self._remove_stages()
            self._deferred = []       # they ran, or this command failed with their error
        self._pending_files = []      # the command found them (it would not have run otherwise)
        out, err = self._streams(frame)
        if home_key and frame.rc == 0 and not err and is_home_answer(out):
            self._memory.put(home_key, to_native(out))
        if sudoable and self.become is not None and getattr(self.become, 'success', None):
            if hasattr(self.become, 'strip_become_success'):   # ansible-core 2.19: as the local connection does
                out = self.become.strip_become_success(out)
            else:
                out = strip_become_success(out, self.become.success)
        return frame.rc, out, err

    def _home_key(self, home):
        """Where this run keeps the answer to ``echo <home>`` (``~`` or ``~user``) asked as this connection's user."""
        return 'home %s %s' % (self._username() or '', home) if home else None

    def _own_home(self):
        """The ``echo`` expression Ansible asks for this connection's user (``home_expression``) and its key."""
        home = home_expression(self._username())
        return home, self._home_key(home)

    def _refuse_become_password(self, sudoable):
        if not (sudoable and self.become is not None):
            return
        try:
            password = self.become.get_option('become_pass')
        except KeyError:
            password = None
        if password:
            raise AnsibleError('a become password cannot be sent through Cloud Assistant (the service keeps command '
                               'content, and the instance can read it); use passwordless sudo, or set remote_user')

    def _exec(self, cmd, in_data):
        payload = None
        if in_data and self._module_cache():
            payload = split_ansiballz(in_data)
        if payload is not None:
            return self._exec_module(cmd, payload, in_data)
        if in_data:
            script = self._script(cmd, stdin=in_data)
            if _fits(script):
                return self._frame(self._run(script))
            if not _fits(self._script(cmd, parts=PARTS_SHAPE)):
                raise AnsibleError('a command of %d bytes with input is too long for Cloud Assistant (RunCommand takes '
                                   'at most 24 KB after Base64); pass the long part as a file' % len(cmd))
            return self._frame(self._run_with_parts(cmd, in_data))
        script = self._script(cmd)
        if _fits(script):
            return self._frame(self._run(script))
        # A command too long for RunCommand travels as a file, and a shell reads it from its standard input.
        return self._frame(self._run_with_parts('/bin/sh', to_bytes(cmd, errors='surrogate_or_strict')))

    def _module_cache(self):
        try:
            return bool(self.get_option('module_cache'))
        except KeyError:
            return True

    def _exec_module(self, cmd, payload, in_data):
        """Run a module payload: first naming the cached files; when some are missing, send them and run again."""
        script = self._module_script(cmd, payload)
        if script is None:
            display.vvv(u'CLOUD ASSISTANT: module arguments too large for one command, sending the payload', host=self._instance)
            return self._frame(self._run_with_parts(cmd, in_data))
        frame = self._frame(self._run(script, module=payload.module_path))
        if frame.kind != 'X':
            return frame
        self._deferred = []           # the deferred commands ran before the loader found files missing
        display.vvv(u'CLOUD ASSISTANT: sending %d module files missing from the cache' % len(frame.missing), host=self._instance)
        script = self._module_script(cmd, payload, missing=frame.missing)
        if script is None:
            return self._frame(self._run_with_parts(cmd, in_data))
        frame = self._frame(self._run(script, module=payload.module_path))
        if frame.kind == 'X':
            raise AnsibleError('the module cache on %s cannot be used (files sent but not found: %s)'
                               % (self._instance, ' '.join(frame.missing[:3])))
        return frame

    def _module_script(self, cmd, payload, missing=None):
        """The script that runs ``payload`` from the cache, with the module's own file inline when it fits (and the
        call again for the shell fast path, when that fits too); with ``missing`` (digests the instance lacks), those
        files are sent first and the script waits for them. None when even the arguments alone do not fit."""
        module_digests = [digest(data) for name, data in payload.members if name == payload.module_path]
        for inline, fast in self._script_shapes(payload.module_path):
            send = set(missing or ()) | (set() if inline else set(module_digests))
            plan = ansiballz_plan(payload, send=send if missing is not None else (), inline_module=inline, fast=fast)
            parts = None
            if plan.blob is not None:
                parts = PARTS_SHAPE
            script = self._script(cmd, payload=(plan, payload.interpreter), parts=parts)
            if not _fits(script):
                continue
            if plan.blob is not None:
                parts = self._send_blob(plan.blob)
                script = self._script(cmd, payload=(plan, payload.interpreter), parts=parts)
            return script
        return None

    def _script_shapes(self, module):
        """(module file inline, shell fast path) in the order to try them when both do not fit in one command. A
        module this instance has run before (its time is kept) has its archive in the cache: the fast path first,
        which skips the loader (0.15-0.25 s). A module not run there yet: its file inline first, or it would be
        missing from the cache and cost one more command."""
        if self._times.seconds(module) is not None:
            return ((True, True), (False, True), (True, False), (False, False))
        return ((True, True), (True, False), (False, True), (False, False))

    def _script(self, cmd, **kwargs):
        """``exec_script`` for this connection: the command waits first for the files put_file sent."""
        files = [(path, size, checksum) for _ids, path, size, checksum in self._pending_files]
        home, key = self._own_home()
        if home and (self._memory.path is None or self._memory.get(key) is not None):
            home = None         # known for this run already, or nowhere to keep it
        return exec_script(cmd, files=files, before=self._deferred, home=home, **kwargs)

    def _run_with_parts(self, cmd, data):
        return self._run(self._script(cmd, parts=self._send_blob(data)))

    def _send_blob(self, data):
        """Send ``data`` with SendFile, in parts, to a staging directory the next command waits for; returns
        (staging dir, size, sha256). The parts are not awaited here: the command that uses them waits for them."""
        transfer = new_salt()[:16]
        stage = INPUT_STAGING + transfer
        parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b'']
        jobs = [SendJob(part_name(i), stage, part, [self._instance], mode='0600', owner=self._username())
                for i, part in enumerate(parts)]
        api = self._api_for(SEND_SLACK)
        if self._username() not in (None, 'root'):
            self._stages.append(stage)
        sent = send_files(api, jobs, transfer, self._salt, time.monotonic() + SEND_SLACK)
        failed = [s for s in sent if s.invoke_id is None]
        if failed:
            self._unreachable('SendFile failed', failed[0].error)
        return stage, len(data), hashlib.sha256(data).hexdigest()

    def _remove_stages(self):
        """SendFile creates a missing directory as root, so a command run as another user empties its staging
        directory but cannot remove it: one more command, as root and not awaited, does."""
        stages, self._stages = self._stages, []
        for stage in stages:
            try:
                self._run(cleanup_script(stage), timeout=60, wait=False, username='root')
            except AnsibleError as exc:
                display.warning(u'could not remove %s on %s: %s' % (stage, self._instance, to_native(exc)))

    def _frame(self, output):
        frame = parse_frame(output)
        self._learn(frame)
        if frame.home is not None:
            # asked by the first command of the run here: Ansible's own `echo ~user` needs no command of its own
            self._memory.put(self._own_home()[1], frame.home + '\n')
        if frame.kind == 'E' and frame.error.startswith('FileNotArrived'):
            self._flush_files()      # raises with the reason SendFile gives
            raise AnsibleError('a file sent to %s did not arrive within %d s (%s)'
                               % (self._instance, WAIT_FILES_SECONDS, frame.error))
        if frame.kind == 'D':
            command = self._deferred[frame.index] if 0 <= frame.index < len(self._deferred) else '?'
            raise AnsibleError('on %s, the command %s (run at the start of the next one) failed with exit code %d: %s'
                               % (self._instance, command, frame.rc, to_native(frame.err).strip()))
        if frame.kind == 'E':
            raise AnsibleError('Cloud Assistant on %s: %s' % (self._instance, frame.error))
        if frame.kind is None:
            raise AnsibleError('unexpected answer from %s (the command wrapper printed no result): %r'
                               % (self._instance, output[-300:]))
        return frame

    def _streams(self, frame):
        if frame.kind == 'R':
            return unpack(frame.out, frame.compressed), unpack(frame.err, frame.compressed)
        pieces = [('o', i) for i in range(chunk_count(frame.out_len))]
        if frame.err_len:
            pieces += [('e', i) for i in range(chunk_count(frame.err_len))]
        try:
            chunks = run_concurrently(lambda piece: self._chunk(frame.work_dir, *piece), pieces,
                                      max_workers=CHUNK_WORKERS)
        finally:
            self._cleanup(frame.work_dir)
        out = b''.join(c for (stream, _i), c in zip(pieces, chunks) if stream == 'o')[:frame.out_len]
        err = b''.join(c for (stream, _i), c in zip(pieces, chunks) if stream == 'e')[:frame.err_len]
        if len(out) != frame.out_len or len(err) != frame.err_len:
            raise AnsibleError('the output read back from %s is incomplete' % self._instance)
        return unpack(out, frame.compressed), unpack(err, frame.compressed)

    def _chunk(self, work_dir, stream, index):
        frame = parse_frame(self._run(chunk_script(work_dir, stream, index), timeout=60))
        if frame.kind != 'C':
            raise AnsibleError('reading output from %s failed: %s' % (self._instance, frame.error or 'no answer'))
        return frame.chunk

    def _cleanup(self, work_dir):
        try:
            self._run(cleanup_script(work_dir), timeout=60, wait=False)
        except AnsibleError as exc:
            display.warning(u'could not remove %s on %s: %s' % (work_dir, self._instance, to_native(exc)))

    # -- files ------------------------------------------------------------------------------------------------------
    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv(u'CLOUD ASSISTANT: PUT %s TO %s' % (in_path, out_path), host=self._instance)
        if not os.path.exists(to_bytes(in_path, errors='surrogate_or_strict')):
            raise AnsibleFileNotFound('file or module does not exist: %s' % to_native(in_path))
        with open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb') as handle:
            data = handle.read()
        out_path = self._remote_path(out_path)
        self._flush_deferred()        # SendFile must find the directory the deferred commands make
        plan = plan_payload(data)
        transfer = new_salt()[:16]
        user = self._username()
        if plan.direct:
            directory, name = out_path.rsplit('/', 1)
            jobs = [SendJob(name, directory or '/', data, [self._instance], mode='0600', owner=user)]
        else:
            stage = staging(out_path, transfer)
            jobs = [SendJob(part_name(i), stage, part, [self._instance], mode='0600', owner=user)
                    for i, part in enumerate(plan.parts)]
        api = self._api_for(SEND_SLACK)
        self._flush_files()
        sent = send_files(api, jobs, transfer, self._salt, time.monotonic() + SEND_SLACK)
        failed = [s for s in sent if s.invoke_id is None]
        if failed:
            self._unreachable('SendFile of %s failed' % out_path, failed[0].error)
        if plan.direct:
            # Not awaited here: the next command waits for the file on the instance (saving the polls); only when
            # it does not arrive are the SendFile results read, for the reason.
            self._pending_files.append(([s.invoke_id for s in sent], out_path, len(data), plan.checksum))
            return
        # Parts: awaited together (a few tag-filtered calls per poll, whatever their number), then assembled as root
        # (SendFile made the staging directory as root), the file owned by remote_user as a direct SendFile's is.
        outcome = wait_for_sends(api, tag_counts(sent), time.monotonic() + SEND_SLACK,
                                 schedule=PollSchedule(floor=self._poll_floor))
        if outcome.error is not None:
            self._unreachable('DescribeSendFileResults failed', outcome.error)
        output = self._run(finalize_script(out_path, transfer, plan.part_count, plan.compressed, plan.checksum,
                                           mode='0600', owner=user or None), timeout=300, username='root')
        if b'CAFILE done' not in output:
            failed = failed_sends(api, set(s.tag for s in sent)).get(self._instance)
            reason = ('%s %s' % (failed[1].error_code, failed[1].error_info)) if failed else to_native(output[-300:])
            raise AnsibleError('copying %s to %s on %s failed: %s' % (in_path, out_path, self._instance, reason))

    def _flush_files(self):
        """Await the files put_file sent and no command has waited for yet (raises for one that failed)."""
        pending, self._pending_files = self._pending_files, []
        for invoke_ids, out_path, _size, _checksum in pending:
            self._await_sends(self._api_for(SEND_SLACK), invoke_ids, out_path)

    def _await_sends(self, api, invoke_ids, out_path):
        pending = set(invoke_ids)
        failures = []

        def fetch():
            answers = send_results(api, sorted(pending))
            for invoke_id, task in answers.items():
                item = next(iter(getattr(getattr(task, 'invoke_instances', None), 'invoke_instance', None) or []), None)
                status = getattr(item, 'invocation_status', None)
                if status is not None and is_terminal(status):
                    pending.discard(invoke_id)
                    if status != SUCCESS:
                        failures.append((getattr(item, 'error_code', None) or status, getattr(item, 'error_info', '')))
            return not pending

        outcome = poll(fetch, bool, time.monotonic() + SEND_SLACK, schedule=PollSchedule(floor=self._poll_floor))
        if outcome.error is not None:
            self._unreachable('DescribeSendFileResults failed', outcome.error)
        if failures:
            code, info = failures[0]
            if code in UNREACHABLE_CODES:
                raise AnsibleConnectionFailure('SendFile to %s could not run: %s %s' % (self._instance, code, info))
            raise AnsibleError('copying to %s on %s failed: %s %s' % (out_path, self._instance, code, info))
        if not outcome.done:
            raise AnsibleError('copying to %s on %s did not finish in %d s' % (out_path, self._instance, SEND_SLACK))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv(u'CLOUD ASSISTANT: FETCH %s TO %s' % (in_path, out_path), host=self._instance)
        self._flush_deferred()
        self._flush_files()
        answer = parse_fetch(self._run(fetch_script(self._remote_path(in_path)), timeout=600, module=FETCH_KEY))
        took = answer[5] if isinstance(answer, tuple) else None      # until its answer: the script's own time
        self._learn_times(took, took, took is not None)
        if not isinstance(answer, tuple):
            if answer.kind == 'E' and answer.error and answer.error.startswith('NotFound'):
                raise AnsibleFileNotFound('file not found on %s: %s' % (self._instance, in_path))
            raise AnsibleError('fetching %s from %s failed: %s' % (in_path, self._instance, answer.error or 'no answer'))
        checksum, compressed, length, work_dir, inline, _milliseconds = answer
        if inline is None:
            pieces = list(range(chunk_count(length)))
            try:
                chunks = run_concurrently(lambda i: self._chunk(work_dir, 'o', i), pieces, max_workers=CHUNK_WORKERS)
            finally:
                self._cleanup(work_dir)
            inline = b''.join(chunks)[:length]
        data = unpack(inline, compressed)
        if hashlib.sha256(data).hexdigest() != checksum:
            raise AnsibleError('fetching %s from %s: the SHA-256 of what arrived does not match the file' % (in_path, self._instance))
        with open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb') as handle:
            handle.write(data)

    def _remote_path(self, path):
        path = to_native(path)
        if not path.startswith('/'):
            raise AnsibleError('remote paths must be absolute over Cloud Assistant, not %r' % path)
        return path

    def reset(self):
        self.close()

    def _flush_deferred(self):
        """Run the deferred commands now, on their own (before anything that needs what they do)."""
        if not self._deferred:
            return
        try:
            self._frame(self._run(self._script(':')))
        finally:
            self._deferred = []

    def close(self):
        if self._api is not None and (self._pending_files or self._deferred):
            try:
                self._flush_deferred()
                self._flush_files()
            except AnsibleError as exc:
                display.warning(u'%s' % to_native(exc))
        if self._api is not None and self._api.calls:
            display.vvvv(u'CLOUD ASSISTANT: %d API calls for this task (%s)' % (
                self._api.total_calls, ', '.join('%s %d' % item for item in sorted(self._api.calls.items()))),
                host=self._instance)
        self._connected = False
