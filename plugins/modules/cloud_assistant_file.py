#!/usr/bin/python
# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: cloud_assistant_file
short_description: Send a file to Alibaba Cloud ECS instances through Cloud Assistant
version_added: 0.1.0
description:
  - Writes a file (O(src) on the controller, or O(content)) to O(dest) on any number of Linux ECS instances
    through the Cloud Assistant API (no SSH), idempotently, like M(ansible.builtin.copy).
  - First one command for the whole fleet (C(RunCommand), batches of 100) reads the SHA-256 checksum, mode, owner
    and group of O(dest) on every instance. The file is then sent only where the checksum differs (or O(dest) is
    missing); where only mode, owner or group differ they are set by a command, without sending the file. The
    task reports C(changed) only for those instances; an unchanged re-send costs that one command and no
    C(SendFile).
  - Files up to 24,000 bytes that are new on every instance (O(dest) missing), with O(owner) and O(group) given as
    names or not at all, are sent with one C(SendFile) per 50 instances straight to O(dest); the agent writes
    them and checks nothing more. Replacing an existing O(dest), or a numeric O(owner) or O(group) (which the
    agent may look up as a name), goes through the staged path below whatever the size, so the checksum is
    checked and the rename is atomic.
  - Before anything is sent, the agent version of every instance that needs the file is checked against the
    version C(SendFile) needs (Linux newer than 1.0.2.569); an older agent fails with C(ClientNeedUpgrade)
    there, an unknown version is not held back.
  - Everything else (larger files, replacements, numeric owners) takes the staged path. The file is
    gzip-compressed when that saves at least 10% (and every instance has C(gzip)), cut into parts of 24,000
    bytes (32,000 characters after Base64, below the limit of 32 KB of one C(SendFile) call) and sent
    concurrently (16 calls at a time, 50 instances per call) into a staging directory beside O(dest). One
    command then assembles the parts into a temporary file inside that staging directory (with C(umask 077);
    refused when the directory is a symbolic link or not owned by the agent's user, so the content is never
    readable by others and nothing is written through a link), checks its SHA-256 and only then sets mode and
    owner and renames it into place (an atomic rename on the same file system). A failed or partial transfer
    never leaves a truncated or mixed file at O(dest), and the parts and the temporary file are removed whatever
    happens. Parts that could not be removed (an agent stopped mid-transfer) are removed by the first run of the
    module for the same O(dest) more than an hour later.
  - The task fails when any instance did not get the file, naming those instances and the service's error code
    (for example C(FileAlreadyExists), C(UserGroupNotExists), C(FileCreateFail)); RV(instances) has the result
    of every instance either way.
author:
  - alicloud_ops maintainers (@alicloud-ops)
extends_documentation_fragment:
  - alicloud_ops.cloud_assistant.common.modules
  - alicloud_ops.cloud_assistant.attributes
  - alicloud_ops.cloud_assistant.attributes.action_group
attributes:
  check_mode:
    support: full
    details:
      - Runs the read-only compare command on the instances (it changes nothing there and removes no stale parts)
        and reports where the file would be sent or its mode or owner changed (RV(instances[].action)).
  diff_mode:
    support: full
    details:
      - Text files (UTF-8 without NUL) up to 16 KB show their content before and after; instances with the same
        content before share one diff entry. Binary or larger files show a one-line summary.
  idempotent:
    support: full
options:
  src:
    description:
      - The file to send, on the controller. A relative path is looked up in the C(files) directory of the role or
        playbook, as M(ansible.builtin.copy) does.
      - Read by the module's action plugin wherever the task runs (also with C(delegate_to)); the action plugin
        copies it into the task's temporary directory on the host that runs the module (normally the
        controller itself) and the module reads it from there, so large files never pass through the module's
        arguments. The whole file is held in memory.
      - Any size and any content (binary too). Mutually exclusive with O(content).
      - A vault-encrypted file is decrypted on the controller before it is sent (see O(decrypt)).
    type: path
  decrypt:
    description:
      - Decrypt O(src) when it is vault-encrypted, as M(ansible.builtin.copy) does. With V(false) the encrypted
        file is sent as it is.
    type: bool
    default: true
  content:
    description:
      - The file's content as text (written as UTF-8), instead of O(src). May be empty.
      - Use O(src) for binary files. Mutually exclusive with O(src).
      - Treated as a secret (C(no_log)), as in M(ansible.builtin.copy). Like copy's, the action plugin hands it
        over as a temporary file, so the diff (when asked for) shows it.
      - C(no_log) only covers Ansible's output. The service keeps what passes through it - the content of every
        C(SendFile) task (readable with C(DescribeSendFileResults)) and, with diff mode, the old content of
        O(dest) in Base64 in the compare command's output (C(DescribeInvocationResults)) - for as long as it
        keeps those records.
    type: str
  dest:
    description:
      - The full path of the file on the instances. Its directory is created when it is missing.
      - Its directory may be at most 200 characters long (C(SendFile) takes a C(TargetDir) of at most 255
        characters, and files sent in parts are staged in a subdirectory with a name of 47 characters), and the file
        name at most 255 characters.
      - A symbolic link at O(dest) is replaced by a regular file when the content changes and the file goes
        through the staged path (replacements always do). When only mode, owner or group differ, they are set on
        the file the link points to, and a link is never replaced.
    type: str
    required: true
  mode:
    description:
      - The file's permissions, as 3 or 4 octal digits (V('0644'), V('0755'), V('4755')). Quote it in YAML; an
        unquoted V(0644) is read as the number 420, which is taken as octal 0644 too.
      - If not set, a new file gets V(0644) and an existing file keeps its mode.
    type: raw
  owner:
    description:
      - The user that owns the file (a name or a numeric ID). It must exist on every instance; an instance where it
        does not fails with C(AccountNotExists) before anything is sent there.
      - If not set, a new file belongs to V(root) and an existing file keeps its owner.
      - At most 64 characters, without spaces or colons, not starting with C(-).
    type: str
  group:
    description:
      - The group of the file (a name or a numeric ID). It must exist on every instance; an instance where it does
        not fails with C(UserGroupNotExists) before anything is sent there.
      - If not set, a new file gets the group V(root) and an existing file keeps its group.
      - At most 64 characters, without spaces or colons, not starting with C(-).
    type: str
  overwrite:
    description:
      - Like O(ansible.builtin.copy#module:force). With V(true) a file whose content differs is replaced. With
        V(false) the file is written only where O(dest) does not exist; instances where it exists are left alone
        (RV(instances[].skipped)), whatever its content, mode or owner.
      - With V(false), a file that appears between the compare step and the write is not replaced and the
        instance fails with C(FileAlreadyExists).
    type: bool
    default: true
    aliases: [force]
  instance_ids:
    description:
      - The instances to send the file to. Any number; duplicates are removed.
      - Every instance must exist in the region, be C(Running) and run Linux, else the task fails before
        anything is sent.
      - Mutually exclusive with O(instance_tags). One of them is required.
    type: list
    elements: str
  instance_tags:
    description:
      - Send to every C(Running) instance of the region that has all these tags (an empty value matches any
        value of the key). Matching instances that are not C(Running) are left out with a warning.
      - Mutually exclusive with O(instance_ids).
    type: dict
  wait_timeout:
    description:
      - How long the whole task may take, in seconds, from its start - the compare command, the transfer and the
        assembly.
      - The transfer stops starting new C(SendFile) calls, and stops waiting for them, a quarter of this (at most
        30 seconds) before the end, so the assembly step still runs and removes what arrived.
      - API calls are retried (throttling, server errors, lost connections) only within this deadline.
    type: int
    default: 300
notes:
  - Two tasks sending the same file to the same O(dest) at the same moment both send it (each run's C(SendFile)
    calls carry ClientTokens of their own) and both report C(changed); the file ends whole, with the content
    sent, and each run's parts stay in a staging directory of their own. Deriving the tokens from the file and
    O(dest) instead would make the service hand back an earlier transfer of the same content, and a O(dest)
    deleted since would not be written again (the reference does not say how long the service remembers a
    token). A task that reads O(dest) after the other's file is in place reports no change.
  - Has no rolling options (M(alicloud_ops.cloud_assistant.cloud_assistant_command)'s
    O(alicloud_ops.cloud_assistant.cloud_assistant_command#module:max_concurrency),
    O(alicloud_ops.cloud_assistant.cloud_assistant_command#module:max_errors) and
    O(alicloud_ops.cloud_assistant.cloud_assistant_command#module:canary)) - a delivery writes a file beside the
    running service, which it does not restart; roll the command that puts the new file to use instead.
  - Linux instances only; the compare and assembly steps are shell commands that need C(sha256sum), C(stat),
    C(base64) and, for compressed transfers, C(gzip) (the compare step checks which instances have C(gzip)).
  - Every C(SendFile) carries a ClientToken derived from the transfer, the part and the instances, so a retried
    call never writes twice; two overlapping runs to the same O(dest) stage their parts apart and each renames
    a complete, checked file into place (the last one wins).
  - The C(SendFile) tasks of a transfer are tagged C(ansible:cloud-assistant:file) (one tag value per 1,000 tasks,
    the most one tag filter covers) and awaited with C(DescribeSendFileResults); each poll asks for the count of
    tasks listed and the tasks still C(Pending) or C(Running), and the wait ends only when every task created is
    listed. Files sent straight to O(dest) are then read task by task, by ID; an instance a task does not list
    fails with C(SendFileUnknown).
  - Bad input fails the task before any API call, with the option and the limit in the message.
  - C(async) is not supported (the action plugin hands O(src) over in the task's temporary directory); long
    transfers are bounded by O(wait_timeout) instead.
seealso:
  - name: SendFile API reference
    description: The API that writes the file.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-sendfile
  - module: ansible.builtin.copy
    description: The local equivalent whose semantics this module follows.
  - module: alicloud_ops.cloud_assistant.cloud_assistant_command
    description: Run commands on the same instances; its RV(instances) list has the same shape.
'''

EXAMPLES = r'''
- name: Send a configuration file from the role's files directory to two instances
  alicloud_ops.cloud_assistant.cloud_assistant_file:
    region_id: cn-hangzhou
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa, i-bp1bbbbbbbbbbbbbbbbb]
    src: nginx.conf
    dest: /etc/nginx/nginx.conf
    mode: '0644'

- name: Write a small text file on every web server (changed only where it differs)
  alicloud_ops.cloud_assistant.cloud_assistant_file:
    instance_tags:
      role: web
    content: |
      Maintenance window: Sunday 02:00-04:00 UTC
    dest: /etc/motd
  register: motd

- name: Show where it was written
  ansible.builtin.debug:
    msg: "{{ motd.instances | selectattr('changed') | map(attribute='instance_id') | list }}"

- name: Ship a release archive of any size, owned by the app user
  alicloud_ops.cloud_assistant.cloud_assistant_file:
    instance_tags:
      app: billing
    src: "{{ playbook_dir }}/dist/billing-2.4.1.tar.gz"
    dest: /opt/billing/releases/billing-2.4.1.tar.gz
    owner: billing
    group: billing
    mode: '0640'
    wait_timeout: 900

- name: An install script, executable, with the same connection settings as the other tasks
  module_defaults:
    group/alicloud_ops.cloud_assistant.cloud_assistant:
      region_id: cn-hangzhou
  alicloud_ops.cloud_assistant.cloud_assistant_file:
    instance_ids: "{{ new_instance_ids }}"
    src: bootstrap.sh
    dest: /usr/local/sbin/bootstrap.sh
    mode: '0750'

- name: Put a default configuration in place only where there is none yet
  alicloud_ops.cloud_assistant.cloud_assistant_file:
    instance_tags:
      role: batch
    src: worker.ini
    dest: /etc/worker/worker.ini
    overwrite: false

- name: Preview which instances would change, with the text diff
  alicloud_ops.cloud_assistant.cloud_assistant_file:
    instance_tags:
      role: web
    src: nginx.conf
    dest: /etc/nginx/nginx.conf
  check_mode: true
  diff: true
'''

RETURN = r'''
dest:
  description: The path the file was written to.
  returned: always
  type: str
  sample: /etc/motd
checksum:
  description: The SHA-256 of the file (hex), as it is on every instance that got it.
  returned: always
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
size:
  description: The file's size in bytes.
  returned: always
  type: int
  sample: 1024
compressed:
  description: Whether the parts were gzip-compressed for the transfer (only for files over 24 KB that compress).
  returned: always
  type: bool
  sample: false
parts:
  description:
    - How many parts of at most 24,000 bytes the file was cut into for C(SendFile) (V(1) for a file sent straight to
      O(dest), V(0) for an empty file or when nothing had to be sent).
  returned: always
  type: int
  sample: 214
send_calls:
  description:
    - How many C(SendFile) calls the task made (one per part and batch of 50 instances), refused ones included;
      calls not made because O(wait_timeout) ran out are not counted.
  returned: always
  type: int
  sample: 214
invoke_id:
  description: The ID of the compare command's invocation (the first of RV(invoke_ids)).
  returned: always
  type: str
  sample: t-hz0jdfwcsr1abc
invoke_ids:
  description:
    - Every ID this task created, in order - the compare command's invocations (C(t-)), the C(SendFile) tasks
      (C(f-)) and the assembly command's invocations (C(t-)). Returned on failure too.
  returned: always
  type: list
  elements: str
  sample: [t-hz0jdfwcsr1abc, f-hz0jdfwcsr1abd, t-hz0jdfwcsr1abe]
invocation_status:
  description:
    - The overall status across all instances, as in M(alicloud_ops.cloud_assistant.cloud_assistant_command)
      (instances left alone with O(overwrite=false) do not count).
  returned: always
  type: str
  sample: Success
instances:
  description:
    - One entry per target instance, in the order of O(instance_ids) (or of C(DescribeInstances) for
      O(instance_tags)), with the same keys as the RV(alicloud_ops.cloud_assistant.cloud_assistant_command#module:instances)
      of M(alicloud_ops.cloud_assistant.cloud_assistant_command), plus RV(instances[].changed) and
      RV(instances[].action).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
      sample: i-bp1aaaaaaaaaaaaaaaaa
    invoke_id:
      description:
        - The last invocation or C(SendFile) task that acted on this instance - the compare command's for an
          unchanged file, the C(SendFile) task's for a file sent straight to O(dest) or for a part that failed,
          the assembly command's otherwise.
      type: str
      sample: f-hz0jdfwcsr1abd
    invocation_status:
      description:
        - V(Success) when the instance has the file as asked; else the status of the step that failed
          (C(Failed), C(Invalid), C(Aborted), C(Timeout), C(Error)); V(Skipped) when O(overwrite=false) and
          O(dest) existed; V(NotRun) in check mode where something would change; V(Rejected) when the API
          refused the call for this instance's batch.
      type: str
      sample: Success
    exit_code:
      description: The exit code of the last command run for this instance; V(null) for C(SendFile) results.
      type: int
      sample: 0
    output:
      description: Always empty (the module's own commands print only what the module reads).
      type: str
      sample: ''
    dropped:
      description: Always V(0).
      type: int
      sample: 0
    error_code:
      description:
        - Why this instance did not get the file - the service's code for C(SendFile) (for example
          C(FileAlreadyExists), C(UserGroupNotExists), C(FileCreateFail), C(ClientNotRunning)) or for the
          commands, or the module's own code from the compare or assembly step - C(AccountNotExists),
          C(UserGroupNotExists), C(FilePathInvalid) (O(dest) is a directory), C(FileAlreadyExists),
          C(PartsMissing), C(ChecksumMismatch), C(FileAuthorityInvalid), C(ChecksumToolMissing),
          C(StagingInvalid) (the staging directory is a symbolic link or not owned by the agent's user),
          C(ClientNeedUpgrade) (the agent is too old for C(SendFile)), C(SendFileUnknown) (the C(SendFile) task
          does not list the instance, or its results could not be read), C(NotSent) (O(wait_timeout) ran out
          before the call).
        - V(null) when there was no error.
      type: str
      sample: FileAlreadyExists
    error_info:
      description: The message that goes with RV(instances[].error_code); V(null) when there was none.
      type: str
      sample: File already exists
    start_time:
      description: When the last step started on the instance (UTC, ISO 8601); V(null) when unknown.
      type: str
      sample: "2026-11-22T01:32:50Z"
    finish_time:
      description: When the last step ended on the instance (UTC, ISO 8601); V(null) when unknown.
      type: str
      sample: "2026-11-22T01:32:52Z"
    skipped:
      description: True when O(overwrite=false) and O(dest) existed, so the instance was left alone.
      type: bool
      sample: false
    changed:
      description: Whether the file, its mode, owner or group changed on this instance (would change, in check
        mode).
      type: bool
      sample: true
    action:
      description:
        - What the module did (or would do, in check mode) on this instance - V(created) (O(dest) was missing),
          V(replaced) (the content differed), V(attributes) (only mode, owner or group differed), V(unchanged),
          V(kept) (O(overwrite=false) and O(dest) existed), or V(none) (the compare step failed there).
      type: str
      sample: created
msg:
  description:
    - A summary. On failure, how many instances did not get the file and the first five with their status and
      error code, for example C(1 of 3 instances did not succeed - i-aaa (Failed, FileAlreadyExists)).
  returned: always
  type: str
  sample: sent to 2 of 3 instance(s), 1 unchanged
error:
  description: The API error behind a failure - code, message, request ID, diagnosis link and action.
  returned: when an API call failed
  type: dict
  sample:
    code: InvalidInstance.NotMatch
    message: The specified instance is not running.
    request_id: 1B2C3D4E-0000-0000-0000-000000000000
    recommend: https://api.aliyun.com/troubleshoot?q=InvalidInstance.NotMatch&product=Ecs
    action: SendFile
'''

import hashlib
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import (
    DIFF_LIMIT,
    attributes_differ,
    compare_script,
    finalize_script,
    is_text,
    normalize_mode,
    parse_compare,
    parse_error,
    part_name,
    plan_payload,
    split_dest,
    staging,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import invoke_instances
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._files import (
    SendJob,
    failed_sends,
    send_files,
    send_results,
    tag_counts,
    wait_for_sends,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import (
    check_tag_selector,
    invalid,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import CloudAssistantModule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import (
    failure_message,
    instance_entry,
    listing,
    run_fields,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import CommandRunner, CommandSpec
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import (
    NOT_RUN,
    REJECTED,
    SKIPPED,
    SUCCESS,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._targets import agent_status, resolve_targets
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import client_token, new_salt

ARGUMENT_SPEC = dict(
    src=dict(type='path'),
    content=dict(type='str', no_log=True),
    dest=dict(type='str', required=True),
    mode=dict(type='raw'),
    owner=dict(type='str'),
    group=dict(type='str'),
    overwrite=dict(type='bool', default=True, aliases=['force']),
    decrypt=dict(type='bool', default=True),
    instance_ids=dict(type='list', elements='str'),
    instance_tags=dict(type='dict'),
    wait_timeout=dict(type='int', default=300),
)
RULES = dict(
    mutually_exclusive=[('src', 'content'), ('instance_ids', 'instance_tags')],
    required_one_of=[('src', 'content'), ('instance_ids', 'instance_tags')],
)
TARGET_DIR_LIMIT = 255    # SendFile TargetDir and Name (reference 2.10)
DEST_DIR_LIMIT = 200      # leaves room for the staging directory's name under TargetDir's 255
ACCOUNT_LIMIT = 64        # FileOwner, FileGroup
MIN_WAIT = 10
RETRY_GRACE = 5
COMMAND_TIMEOUT = 60      # the compare command's own timeout on the instance
SEND_RESERVE = 30         # the transfer stops sending and waiting for SendFile this long (at most) before the deadline


class CloudAssistantFile(object):
    """Sends one file to instances idempotently (see DOCUMENTATION).

    ``module`` needs ``params``, ``check_mode``, ``_diff``, ``warn()``, ``started`` and ``api(deadline)``.
    """

    def __init__(self, module, clock=time.monotonic, sleep=time.sleep, schedule=None, max_workers=8,
                 send_workers=16):
        self.module = module
        self.params = module.params
        self.check_mode = bool(module.check_mode)
        self.diff = bool(getattr(module, '_diff', False))
        self.clock, self.sleep, self.schedule = clock, sleep, schedule
        self.max_workers, self.send_workers = max_workers, send_workers
        self.started = getattr(module, 'started', None) or clock()
        self.deadline = self.started + max(MIN_WAIT, self.params.get('wait_timeout') or 300)
        self.salt = new_salt()
        self.transfer_id = client_token(['file', self.params['dest']], self.salt)[-16:]
        self.mode = None
        self.api = None
        self.invoke_ids = []

    # -- validation: everything that needs no API call ----------------------------------------------------------
    def validate(self):
        p = self.params
        dest = p['dest']
        if not dest.startswith('/') or dest.endswith('/') or '\x00' in dest:
            raise invalid('dest must be the full path of a file, starting with / and not ending with /, got %r' % dest)
        directory, name = split_dest(dest)
        if name in ('.', '..'):
            raise invalid('dest must name a file, got %r' % dest)
        if len(directory) > DEST_DIR_LIMIT:
            raise invalid('dest: its directory is %d characters long; at most %d are allowed (SendFile takes a '
                          'TargetDir of at most %d, and larger files are staged in a subdirectory of it)'
                          % (len(directory), DEST_DIR_LIMIT, TARGET_DIR_LIMIT))
        if len(name) > TARGET_DIR_LIMIT:
            raise invalid('dest: the file name is %d characters long; SendFile takes at most %d'
                          % (len(name), TARGET_DIR_LIMIT))
        try:
            self.mode = normalize_mode(p.get('mode'))
        except ValueError as exc:
            raise invalid(str(exc))
        for option in ('owner', 'group'):
            value = p.get(option)
            if value is not None and (not value.strip() or len(value) > ACCOUNT_LIMIT or ':' in value
                                      or value.startswith('-') or any(c.isspace() for c in value)):
                raise invalid('%s must be a user or group name or ID of at most %d characters without spaces or '
                              'colons, not starting with -, got %r' % (option, ACCOUNT_LIMIT, value))
        if p.get('instance_ids') is not None:
            if not p['instance_ids'] or any(not i or not str(i).strip() for i in p['instance_ids']):
                raise invalid('instance_ids must be a non-empty list without empty entries')
        if p.get('instance_tags') is not None:
            if not p['instance_tags']:
                raise invalid('instance_tags must not be empty')
            check_tag_selector(p['instance_tags'])
        if p['wait_timeout'] < MIN_WAIT:
            raise invalid('wait_timeout must be at least %d seconds, got %d' % (MIN_WAIT, p['wait_timeout']))

    def load(self):
        p = self.params
        if p.get('content') is not None:
            return p['content'].encode('utf-8')
        try:
            with open(p['src'], 'rb') as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            raise invalid('src: cannot read %s: %s' % (p['src'], exc))

    # -- entry point ----------------------------------------------------------------------------------------------
    def run(self):
        self.validate()
        data = self.load()
        self.api = self.module.api(self.deadline + RETRY_GRACE)
        runner = CommandRunner(self.api, max_workers=self.max_workers, schedule=self.schedule, clock=self.clock,
                               sleep=self.sleep, token_salt=self.salt)
        p = self.params
        targets = resolve_targets(self.api, p.get('instance_ids'), p.get('instance_tags'), os_type='linux',
                                  os_reason='cloud_assistant_file (it compares and assembles files with shell '
                                            'commands)', warn=self.module.warn, max_workers=self.max_workers).ids
        checksum = hashlib.sha256(data).hexdigest()   # the payload (gzip) is planned only when something is sent
        result = {'changed': False, 'dest': p['dest'], 'checksum': checksum, 'size': len(data),
                  'compressed': False, 'parts': 0, 'send_calls': 0}
        diff_limit = DIFF_LIMIT if self.diff and is_text(data) and len(data) <= DIFF_LIMIT else 0
        compare = runner.run(CommandSpec(content=compare_script(p['dest'], checksum, p.get('owner'),
                                                                p.get('group'), diff_limit, clean=not self.check_mode),
                                         timeout=COMMAND_TIMEOUT, description='ansible cloud_assistant_file compare'),
                             targets, self.deadline)
        self.invoke_ids.extend(compare.invoke_ids)
        if compare.error is not None:
            return self.finish(result, dict((e['instance_id'], e) for e in compare.instances), targets,
                               error=compare.error)
        entries, states, actions = {}, {}, {}
        for entry in compare.instances:
            iid = entry['instance_id']
            state = parse_compare(entry['output']) if entry['invocation_status'] == SUCCESS else None
            if state is None:
                code, info = parse_error(entry['output'])
                if entry['invocation_status'] == SUCCESS:  # ran, but did not print what the script prints
                    code, info = 'CompareUnreadable', 'the compare step printed no state: %r' % entry['output'][-200:]
                entries[iid] = self.entry(entry, 'none', error_code=code or entry['error_code'],
                                          error_info=info or entry['error_info'])
                if entry['invocation_status'] == SUCCESS:
                    entries[iid]['invocation_status'] = 'Error'
                continue
            states[iid] = state
            actions[iid] = self.decide(state, checksum)
            entries[iid] = self.entry(entry, actions[iid])
        if self.diff:
            result['diff'] = self.diffs(data, states, actions)
        todo = [i for i in targets if actions.get(i) in ('created', 'replaced', 'attributes')]
        if self.check_mode:
            for iid in todo:
                entries[iid].update(invocation_status=NOT_RUN)
            return self.finish(result, entries, targets)
        if todo:
            self.transfer(runner, data, todo, states, actions, entries, result)
        return self.finish(result, entries, targets)

    def decide(self, state, checksum):
        if not state['exists']:
            return 'created'
        if not self.params['overwrite']:
            return 'kept'
        if state['checksum'] != checksum:
            return 'replaced'
        if attributes_differ(state, self.mode, self.params.get('owner'), self.params.get('group')):
            return 'attributes'
        return 'unchanged'

    @staticmethod
    def entry(compare_entry, action, **extra):
        status = SKIPPED if action == 'kept' else compare_entry['invocation_status']
        fields = dict((k, compare_entry[k]) for k in ('exit_code', 'error_code', 'error_info', 'start_time',
                                                      'finish_time'))
        fields.update(extra)
        return instance_entry(compare_entry['instance_id'], invoke_id=compare_entry['invoke_id'], status=status,
                              skipped=action == 'kept', changed=action in ('created', 'replaced', 'attributes'),
                              action=action, **fields)

    # -- the transfer ---------------------------------------------------------------------------------------------
    def transfer(self, runner, data, todo, states, actions, entries, result):
        p = self.params
        content_ids = self.drop_old_agents([i for i in todo if actions[i] != 'attributes'], entries)
        payload = plan_payload(data, compress=bool(content_ids) and all(states[i]['gzip'] for i in content_ids))
        direct = self.is_direct(payload, [actions[i] for i in content_ids])
        jobs = []
        if content_ids and direct:
            directory, name = split_dest(p['dest'])
            jobs = [SendJob(name, directory, payload.data, content_ids, mode=self.mode, owner=p.get('owner'),
                            group=p.get('group'), overwrite=p['overwrite'])]
        elif content_ids:
            stage_dir = staging(p['dest'], self.transfer_id)
            jobs = [SendJob(part_name(n), stage_dir, part, content_ids, mode='0600', overwrite=True)
                    for n, part in enumerate(payload.parts)]
        result.update(compressed=payload.compressed, parts=payload.part_count if content_ids else 0)
        failures = {}
        if jobs:
            # SendFile calls and their wait end this reserve before the deadline, so the assembly still runs
            reserve = min(SEND_RESERVE, (self.deadline - self.started) / 4.0)
            sent = send_files(self.api, jobs, self.transfer_id, self.salt, self.deadline - reserve, clock=self.clock,
                              max_workers=self.send_workers)
            result['send_calls'] = sum(1 for s in sent if s.made)
            self.invoke_ids.extend(s.invoke_id for s in sent if s.invoke_id)
            for s in sent:
                for iid in s.job.instance_ids if s.error is not None else ():
                    failures.setdefault(iid, instance_entry(iid, status=REJECTED,
                                                            error_code=s.error.code, error_info=s.error.msg))
            if any(s.invoke_id for s in sent):
                for iid, failure in self.await_sends(direct, sent, entries, failures, self.deadline - reserve).items():
                    failures.setdefault(iid, failure)   # a refused call is the first reason
        finalize_ids = [i for i in todo if actions[i] == 'attributes' or (i in content_ids and not direct)]
        final = None
        if finalize_ids:
            spec = CommandSpec(content=finalize_script(p['dest'], self.transfer_id, payload.part_count,
                                                       payload.compressed, payload.checksum, self.mode,
                                                       p.get('owner'), p.get('group'), p['overwrite']),
                               timeout=max(COMMAND_TIMEOUT, int(min(600, self.deadline - self.clock()))),
                               description='ansible cloud_assistant_file assemble')
            try:
                final = runner.run(spec, finalize_ids, self.deadline)
            except CloudAssistantError as exc:  # every batch refused: the IDs created so far are still returned
                final = None
                result.update(exc.result())
                result['api_error'] = exc.msg
                for iid in finalize_ids:
                    entries[iid].update(invoke_id=None, invocation_status=REJECTED, error_code=exc.code,
                                        error_info=exc.msg)
        if finalize_ids and final is not None:
            self.invoke_ids.extend(final.invoke_ids)
            for entry in final.instances:
                code, info = parse_error(entry['output'])
                entries[entry['instance_id']].update(
                    (k, entry[k]) for k in ('invoke_id', 'invocation_status', 'exit_code', 'start_time',
                                            'finish_time', 'error_code', 'error_info'))
                if code:
                    entries[entry['instance_id']].update(error_code=code, error_info=info)
            if final.error is not None:
                result.update(final.error.result())
                result['api_error'] = final.error.msg
            elif final.timed_out:
                result['api_error'] = 'wait_timeout expired before the assembly finished'
        for iid, failure in failures.items():
            entries[iid].update((k, failure[k]) for k in ('invoke_id', 'invocation_status', 'exit_code',
                                                          'error_code', 'error_info', 'start_time', 'finish_time'))

    def is_direct(self, payload, actions):
        """One SendFile straight to ``dest`` only for a small file that is new on every instance, with owner and
        group as names (or not set): replacing an existing file, and numeric owners (which the agent may look up
        as names), go through the staged path, whose assembly checks the checksum and renames atomically."""
        p = self.params
        numeric = any((p.get(k) or '').isdigit() for k in ('owner', 'group'))
        return payload.direct and not numeric and all(a == 'created' for a in actions)

    def drop_old_agents(self, ids, entries):
        """``ids`` without the instances whose agent is too old for SendFile (``_agent.AGENT_FEATURES``); those
        fail with ClientNeedUpgrade before anything is sent. An unknown version does not hold a send back."""
        if not ids:
            return ids
        status = agent_status(self.api, ids, max_workers=self.max_workers)
        keep = []
        for iid in ids:
            if status[iid].supports().get('send_file') is False:
                entries[iid].update(invocation_status='Failed', error_code='ClientNeedUpgrade',
                                    error_info='the Cloud Assistant agent %s is too old for SendFile; upgrade it'
                                               % status[iid].version)
            else:
                keep.append(iid)
        return keep

    def await_sends(self, direct, sent, entries, refused, deadline):
        """Wait (until ``deadline``) for the SendFile tasks; {instance_id: entry} of the instances where a task did
        not succeed. For a direct send every instance's entry comes from its own task, read by its ID; an
        instance the task does not list fails with SendFileUnknown."""
        out = {}
        counts = tag_counts(sent)
        try:
            waited = wait_for_sends(self.api, counts, deadline, schedule=self.schedule, clock=self.clock,
                                    sleep=self.sleep)
            if waited.error is not None:
                raise waited.error
            if direct:
                created = [s for s in sent if s.invoke_id]
                models = send_results(self.api, [s.invoke_id for s in created], max_workers=self.max_workers)
                for s in created:
                    items = dict((item.instance_id, item) for item in invoke_instances(models.get(s.invoke_id)))
                    for iid in s.job.instance_ids:
                        if iid in items:
                            out[iid] = instance_entry(iid, invoke_id=s.invoke_id, model=items[iid])
                        else:
                            out[iid] = instance_entry(iid, invoke_id=s.invoke_id, status='Error',
                                                      error_code='SendFileUnknown',
                                                      error_info='SendFile task %s has no result for this instance'
                                                                 % s.invoke_id)
            else:
                for iid, (invoke_id, item) in failed_sends(self.api, counts).items():
                    out[iid] = instance_entry(iid, invoke_id=invoke_id, model=item)
        except CloudAssistantError as exc:
            for iid in sorted(set(i for s in sent if s.invoke_id for i in s.job.instance_ids)):
                if iid not in refused:
                    out[iid] = instance_entry(iid, status='Error', error_code=exc.code or 'SendFileUnknown',
                                              error_info='the SendFile results could not be read: %s' % exc.msg)
        return out

    # -- results --------------------------------------------------------------------------------------------------
    def diffs(self, data, states, actions):
        after = data.decode('utf-8') if is_text(data) and len(data) <= DIFF_LIMIT else None
        grouped = {}
        for iid, action in actions.items():
            if action not in ('created', 'replaced'):
                continue
            before = states[iid].get('content')
            key = '' if action == 'created' else (before.decode('utf-8', 'replace') if before is not None
                                                  and is_text(before) else None)
            grouped.setdefault(key, []).append(iid)
        out = []
        for before, ids in sorted(grouped.items(), key=lambda kv: kv[1][0]):
            header = '%s:%s' % (listing(ids, limit=3), self.params['dest'])
            out.append({'before_header': header, 'after_header': header,
                        'before': before if before is not None else '(binary or larger than %d bytes)\n' % DIFF_LIMIT,
                        'after': after if after is not None else '(binary or larger than %d bytes)\n' % DIFF_LIMIT})
        return out

    def finish(self, result, entries, targets, error=None):
        instances = []
        for iid in targets:
            entry = entries.get(iid) or instance_entry(iid, status='Unknown', changed=False, action='none')
            entry.setdefault('changed', False)
            entry.setdefault('action', 'none')
            entry['output'] = ''
            if entry['invocation_status'] != SUCCESS and entry['invocation_status'] not in (SKIPPED, NOT_RUN):
                entry['changed'] = False
            instances.append(entry)
        result.update(run_fields(instances, self.invoke_ids))
        result['changed'] = any(e['changed'] for e in instances)
        message = failure_message([e for e in instances if e['invocation_status'] != NOT_RUN])
        api_error = result.pop('api_error', None)
        if error is not None:
            result.update(error.result())
            api_error = error.msg
        if api_error:
            message = '%s - the task created %s' % (api_error, ', '.join(self.invoke_ids) or 'nothing')
        counts = dict((a, sum(1 for e in instances if e['action'] == a)) for a in
                      ('created', 'replaced', 'attributes', 'unchanged', 'kept'))
        summary = ', '.join('%d %s' % (n, a) for a, n in counts.items() if n)
        result['failed'] = bool(message)
        if message:
            result['msg'] = message
        elif self.check_mode:
            result['msg'] = 'check mode: would change %d of %d instance(s) (%s)' % (
                sum(1 for e in instances if e['changed']), len(instances), summary)
        else:
            result['msg'] = '%s on %d instance(s)' % (summary or 'nothing to do', len(instances))
        return result


def main():
    module = CloudAssistantModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **RULES)
    module.run_resource(CloudAssistantFile)


if __name__ == '__main__':
    main()
