#!/usr/bin/python
# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: cloud_assistant_command
short_description: Run commands on Alibaba Cloud ECS instances through Cloud Assistant
version_added: 0.1.0
description:
  - Runs a script on any number of ECS instances through the Cloud Assistant API (no SSH), waits for it and
    returns the exit code and output of every instance.
  - Inline scripts run with C(RunCommand); saved commands (O(name) or O(command_id)) with C(InvokeCommand).
    Instances are sent in batches of 100 (the API's limit per call), all batches at once within a bounded pool of
    threads; the result reads like one run.
  - Manages saved commands (O(name) with O(state)) idempotently, with diff support.
  - Schedules recurring or boot-time runs (O(repeat_mode), O(frequency)) idempotently - a scheduled run of the
    same command on the same targets is found again by its tags and left alone, or replaced when its settings
    changed.
  - The task fails when any instance did not reach C(Success); the full RV(instances) list is returned either way,
    so C(failed_when) can express another policy.
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
      - Validates everything it can without changing anything - the instances exist, are C(Running), run the OS
        the command type needs and have the Cloud Assistant agent online (C(DescribeInstances),
        C(DescribeCloudAssistantStatus)), the content size and the parameter names - and reports where the
        command would run (RV(would_run_on)).
      - O(creates) and O(removes) are not checked in check mode, because checking them runs a command on the
        instances.
  diff_mode:
    support: partial
    details:
      - Saved commands (O(name) with O(command_content), or O(state=absent)) report the command's fields before
        and after. Runs have no diff.
  idempotent:
    support: partial
    details:
      - Saved commands and scheduled runs (O(repeat_mode) other than V(Once)) are idempotent.
      - A one-time run runs again on every task run, like M(ansible.builtin.command), unless O(creates) or
        O(removes) say otherwise, or a fixed O(client_token) makes the API return the first run's result.
options:
  command_content:
    description:
      - The script to run (or to save, with O(name)), as plain text. It is sent Base64-encoded.
      - At most 24,576 bytes after Base64 encoding (about 18 KB of text), together with the JSON text of
        O(parameters) when there are parameters. Newer API documentation gives 18 KB for saved commands
        (C(CreateCommand)); the service's own limit applies if it is lower.
      - With O(enable_parameter=true), C({{name}}) placeholders are custom parameters (letters, digits, C(_) and
        C(-), at most 20 different names) and C({{ACS::InstanceId}}), C({{ACS::RegionId}}) and the other
        C(ACS::) names are built-in parameters. Use C({% raw %}...{% endraw %}) or a file lookup so that Jinja
        leaves the braces alone.
      - Mutually exclusive with O(command_id).
    type: str
    aliases: [content]
  type:
    description:
      - The kind of script. V(RunShellScript) runs on Linux instances, V(RunBatScript) and
        V(RunPowerShellScript) on Windows instances.
      - Every target instance must run the matching OS (checked with C(DescribeInstances) before anything runs).
      - For a saved command invoked by O(name) or O(command_id) without O(command_content), the saved command's
        type is used and this option is ignored.
    type: str
    default: RunShellScript
    choices: [RunShellScript, RunBatScript, RunPowerShellScript]
  working_dir:
    description:
      - The directory the script runs in, at most 200 characters. It must exist on the instance.
      - If not set, the API default is used (V(/root) on Linux, the agent's directory on Windows), or for a saved
        command its own setting.
    type: str
  username:
    description:
      - The user that runs the script, at most 255 characters. It must exist on the instance.
      - If not set, V(root) on Linux and V(System) on Windows.
    type: str
  timeout:
    description:
      - The run's own time limit on the instance, in seconds, from 10 to 86400. The process is killed when it is
        exceeded and the instance reports C(Timeout).
      - If not set, 60 seconds (the API default), or for a saved command its own setting.
      - Not the time the module waits; see O(wait_timeout).
    type: int
  parameters:
    description:
      - Values of the custom parameters (C({{name}}) placeholders) of the script, at most 10 per run.
      - Every name must be used by the script, and every placeholder of the script needs a value; names are
        case-insensitive. Values are strings, numbers or booleans.
      - Giving parameters turns on O(enable_parameter) unless it is set to V(false), which is an error.
    type: dict
  enable_parameter:
    description:
      - Whether C({{name}}) placeholders in O(command_content) are custom parameters.
      - Defaults to V(true) when O(parameters) is given and V(false) otherwise. Set it to V(true) to save a
        command with placeholders that later runs fill in.
      - With V(false) the content is sent as it is, so scripts may contain C({{...}}) of their own (Go templates,
        for example).
      - The API cannot change this on a saved command; a different value re-creates the command.
    type: bool
  description:
    description:
      - Description of the saved command (with O(name)) or of the one-time command (inline O(command_content)).
      - At most 512 characters.
    type: str
  launcher:
    description:
      - The launcher of the script, for example V(python3 -u {{ACS::ScriptFileName|Ext(".py")}}), at most 1024
        characters.
      - If not set, the script runs with the shell of its O(type), or for a saved command its own setting.
    type: str
  tags:
    description:
      - Tags put on the invocation (and, with O(name), on the saved command when it is created), at most 20.
      - Keys may not start with C(aliyun), C(acs:) or C(ansible:cloud-assistant:); the module uses the last prefix
        for two tags on scheduled runs (which leaves 18 for them) and for one tag on one-time runs, which lets it
        ask for the status of all the batches of a large run in one call (which leaves 19).
      - The tags of an existing saved command are not compared or changed.
    type: dict
  instance_ids:
    description:
      - The instances to run on. Any number; duplicates are removed.
      - Every instance must exist in the region and be C(Running), else the task fails before anything runs.
      - Mutually exclusive with O(instance_tags). One of them is needed to run a command.
    type: list
    elements: str
  instance_tags:
    description:
      - Run on every instance of the region that has all these tags (an empty value matches any value of the key).
      - Resolved with C(DescribeInstances) (all pages), not with the API's C(ResourceTag) parameter, so that any
        number of instances can be targeted in batches of 100 (C(ResourceTag) is limited to 100 instances per
        call) and so that check mode can validate them.
      - Matching instances that are not C(Running) are left out with a warning. No match is an error.
      - Mutually exclusive with O(instance_ids).
    type: dict
  name:
    description:
      - The name of a saved command, at most 128 characters.
      - With O(command_content) and O(state=present), the command is created when there is none of that name,
        modified with C(ModifyCommand) when only O(description), O(working_dir), O(timeout) or O(launcher)
        differ, and deleted and created again when O(command_content), O(type) or O(enable_parameter) differ
        (C(ModifyCommand) cannot change them; the command gets a new ID). Options that are not set are not
        compared.
      - Without O(command_content), names the existing saved command to invoke.
      - With O(instance_ids) or O(instance_tags), the saved command is then invoked on them (C(InvokeCommand)).
      - Mutually exclusive with O(command_id).
    type: str
  command_id:
    description:
      - The ID of an existing saved command to invoke on O(instance_ids) or O(instance_tags), or to delete with
        O(state=absent).
      - Mutually exclusive with O(name) and O(command_content).
    type: str
  state:
    description:
      - V(present) runs the command on the targets, and with O(name) and O(command_content) makes sure the saved
        command exists as described.
      - V(absent) deletes the saved command named O(name) (every command of exactly that name) or O(command_id).
        It takes no targets. The command's scheduled runs (O(repeat_mode) other than V(Once)) are stopped first,
        because the API does not delete a command that still has runs pending; a one-time run still in progress
        makes the deletion fail.
    type: str
    default: present
    choices: [present, absent]
  repeat_mode:
    description:
      - V(Once) runs the command now.
      - V(Period) runs it on the schedule in O(frequency); V(NextRebootOnly) at the next boot of each instance;
        V(EveryReboot) at every boot.
      - Scheduled runs (anything but V(Once)) are not waited for; the module returns their RV(invoke_id) at once.
        They are tagged (C(ansible:cloud-assistant:key), C(ansible:cloud-assistant:spec)) so that the next run of
        the task finds them - by the command (O(name), O(command_id), or the inline content and type), the targets
        (O(instance_ids), or the O(instance_tags) selector) and O(repeat_mode). If scheduled runs with that key
        still have instances C(Pending), C(Scheduled) or C(Running) and cover exactly the same instances with the
        same settings, nothing changes; otherwise they are stopped (C(StopInvocation)) and replaced.
      - A scheduled inline command whose content changes is a different command - the old schedule stays; give it
        a O(name) to replace it instead.
    type: str
    default: Once
    choices: [Once, Period, NextRebootOnly, EveryReboot]
  frequency:
    description:
      - The schedule of O(repeat_mode=Period), required with it, and only used with it.
      - V(rate(<n><s|m|h|d>)) runs every n units (60 seconds to 7 days, longer than O(timeout)), for example
        V(rate(5m)).
      - V(at(yyyy-MM-dd HH:mm:ss [time zone])) runs once at that time, for example
        V(at(2030-01-01 03:00:00 Asia/Shanghai)).
      - A cron expression with six fields (seconds minutes hours day-of-month month day-of-week), optionally a
        year and a time zone, for example V(0 0 3 * * ?) or V(0 30 2 ? * 1 Asia/Shanghai).
      - The module checks the form; the API checks the rest.
    type: str
  creates:
    description:
      - A path on the instance. Where it already exists, the script is not run and the instance is reported with
        C(skipped=true), unchanged.
      - Relative paths are relative to O(working_dir). No glob patterns.
      - Checked by an extra C(RunCommand) of C(test -e) (one per batch of 100 instances, run as O(username) in
        O(working_dir)) before the real run. Instances where the check itself fails are run normally.
      - Only for Linux (O(type=RunShellScript)) and O(repeat_mode=Once).
    type: str
  removes:
    description:
      - A path on the instance. Where it does not exist, the script is not run and the instance is reported with
        C(skipped=true), unchanged.
      - Checked together with O(creates), by the same extra call, with the same restrictions.
    type: str
  wait:
    description:
      - Wait for the run to finish on every instance and return the results.
      - With V(false), the module returns the RV(invoke_id) (and RV(invoke_ids)) as soon as the run is accepted,
        for a later M(alicloud_ops.cloud_assistant.cloud_assistant_invocation_info) or Ansible's C(async).
      - Scheduled runs (O(repeat_mode) other than V(Once)) are never waited for.
    type: bool
    default: true
  wait_timeout:
    description:
      - How long the module waits for the run, in seconds, counted from the start of the task.
      - If not set, the run's timeout (O(timeout), the saved command's, or 60) plus 120 seconds.
      - When it expires the task fails with the statuses known so far; see O(stop_on_timeout).
      - Polling is adaptive - every 0.25 seconds at first, then about a fifth of the time already waited, at
        most every 5 seconds - with one C(DescribeInvocations) per batch of 100 instances per poll, and outputs
        fetched once at the end.
    type: int
  stop_on_timeout:
    description:
      - When O(wait_timeout) expires, also stop the run on the instances that have not finished (C(StopInvocation),
        50 instances per call).
    type: bool
    default: false
  client_token:
    description:
      - Makes the run idempotent across task runs. Each C(RunCommand), C(InvokeCommand) and C(CreateCommand) call
        always carries a ClientToken derived from its inputs, so a retried call never runs a command twice; by
        default the tokens are salted with a random value per task run, so running the task again runs the
        command again.
      - With a fixed value here, the tokens are derived from it instead. Running the task again with the same
        inputs returns the first run's invocation (and its results) and runs nothing; the API remembers tokens
        for a limited time.
    type: str
notes:
  - Output is the combined stdout and stderr of the script, the last 24 KB of it (RV(instances[].dropped) counts
    the bytes cut off at the start). It is fetched Base64-encoded and decoded as UTF-8 with invalid bytes
    replaced, so binary output stays readable.
  - Bad input fails the task before any API call, with the option and the limit in the message.
  - Instances whose agent is offline report C(Aborted) with C(ClientNotRunning); check mode detects this up front.
seealso:
  - name: RunCommand API reference
    description: The API behind inline runs.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-runcommand
  - name: InvokeCommand API reference
    description: The API behind runs of saved commands.
    link: https://www.alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-invokecommand
  - module: ansible.builtin.command
    description: The local equivalent this module's return values follow.
'''

EXAMPLES = r'''
- name: Run a shell script on two instances and show the output
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    region_id: cn-hangzhou
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa, i-bp1bbbbbbbbbbbbbbbbb]
    command_content: |
      uptime
      df -h /
  register: result

- name: One instance - rc, stdout and stdout_lines like ansible.builtin.command
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa]
    content: cat /etc/os-release
  register: os_release

- ansible.builtin.debug:
    msg: "{{ os_release.stdout_lines }}"

- name: Same connection settings for every task of the collection
  module_defaults:
    group/alicloud_ops.cloud_assistant.cloud_assistant:
      region_id: cn-hangzhou
      access_key_id: "{{ vault_alibaba_access_key_id }}"
      access_key_secret: "{{ vault_alibaba_access_key_secret }}"
  block:
    - name: Install nginx on every web server once
      alicloud_ops.cloud_assistant.cloud_assistant_command:
        instance_tags:
          role: web
        command_content: yum install -y nginx
        creates: /usr/sbin/nginx
        timeout: 600

    - name: Tolerate a few failures in a large fleet
      alicloud_ops.cloud_assistant.cloud_assistant_command:
        instance_tags:
          env: prod
        command_content: systemctl restart chronyd
      register: restart
      failed_when: >-
        restart.instances | rejectattr('skipped') | rejectattr('invocation_status', 'eq', 'Success') | list | length > 5

- name: A parameterised script (raw keeps Jinja away from the placeholders)
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_ids: "{{ app_instance_ids }}"
    command_content: |
      {% raw %}
      echo "deploying {{version}} to {{ACS::InstanceId}}"
      /opt/app/deploy.sh "{{version}}"
      {% endraw %}
    parameters:
      version: "2.4.1"
    timeout: 900

- name: Keep a saved command up to date
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    name: rotate-logs
    description: Rotate application logs
    command_content: "{{ lookup('ansible.builtin.file', 'rotate-logs.sh') }}"
    timeout: 120

- name: Invoke the saved command on the batch hosts
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    name: rotate-logs
    instance_tags:
      role: batch

- name: Run it every night at 03:00 (Shanghai time); re-running the playbook does not add a second schedule
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    name: rotate-logs
    instance_tags:
      role: batch
    repeat_mode: Period
    frequency: 0 0 3 * * ? Asia/Shanghai

- name: Start a long job without waiting, then poll it later
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa]
    command_content: /opt/jobs/reindex.sh
    timeout: 7200
    wait: false
  register: job

- name: A PowerShell script on Windows instances
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_tags:
      os: windows
    type: RunPowerShellScript
    command_content: Get-Service -Name W3SVC | Restart-Service
    wait_timeout: 300
    stop_on_timeout: true

- name: Delete the saved command
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    name: rotate-logs
    state: absent
'''

RETURN = r'''
invoke_id:
  description:
    - The ID of the invocation (of the first one when the instances were sent in several batches).
    - V(null) when nothing ran (every instance skipped, check mode, or saved-command management only).
  returned: when targets are given
  type: str
  sample: t-hz0jdfwcsr1abc
invoke_ids:
  description:
    - The IDs of every invocation of this task, one per batch of at most 100 instances, in batch order.
  returned: when targets are given
  type: list
  elements: str
  sample: [t-hz0jdfwcsr1abc, t-hz0jdfwcsr1abd]
command_id:
  description:
    - The ID of the command - the saved command, or the one-time command C(RunCommand) created (deleted by the API
      after the run).
    - V(null) in check mode when the command would be created.
  returned: when a command was run, invoked or managed
  type: str
  sample: c-hz0jdfwcsr1abc
command:
  description:
    - The saved command as it is after the task (without its content), with O(name) and O(command_content).
  returned: when O(name) and O(command_content) are given and O(state=present)
  type: dict
  contains:
    command_id:
      description: The command's ID (V(null) in check mode when it would be created).
      type: str
    name:
      description: The command's name.
      type: str
    type:
      description: The command type.
      type: str
    description:
      description: The command's description.
      type: str
    working_dir:
      description: The command's working directory (empty for the API default).
      type: str
    timeout:
      description: The command's timeout in seconds.
      type: int
    enable_parameter:
      description: Whether the command has custom parameters.
      type: bool
    launcher:
      description: The command's launcher (empty for none).
      type: str
  sample:
    command_id: c-hz0jdfwcsr1abc
    name: rotate-logs
    type: RunShellScript
    description: Rotate application logs
    working_dir: ''
    timeout: 120
    enable_parameter: false
    launcher: ''
command_action:
  description: What happened to the saved command.
  returned: when O(name) and O(command_content) are given and O(state=present)
  type: str
  choices: [created, modified, recreated, unchanged]
  sample: modified
deleted_command_ids:
  description: The saved commands deleted (or that would be deleted in check mode).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [c-hz0jdfwcsr1abc]
invocation_status:
  description:
    - The overall status across all instances and batches, derived like the API's own overall status - an active
      status wins in the order C(Pending), C(Scheduled), C(Running), C(Stopping); then C(PartialFailed) when
      some instances reached C(Success) and some a failed status (C(Failed), C(Invalid), C(Aborted), C(Timeout),
      C(Error)); C(Success) when the rest were only stopped; C(Stopped) when all were stopped; else C(Failed).
    - Skipped instances do not count; C(Skipped) when every instance was skipped.
    - C(NotRun) in check mode, C(Submitted) with O(wait=false) (nobody has asked for the status yet).
  returned: when targets are given
  type: str
  sample: Success
instances:
  description:
    - One entry per target instance, in the order of O(instance_ids) (or of C(DescribeInstances) for
      O(instance_tags)).
  returned: when targets are given
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
      sample: i-bp1aaaaaaaaaaaaaaaaa
    invoke_id:
      description: The invocation (batch) this instance belongs to; V(null) when it did not run.
      type: str
      sample: t-hz0jdfwcsr1abc
    invocation_status:
      description:
        - The instance's execution status - C(Pending), C(Scheduled), C(Running), C(Stopping), C(Success),
          C(Failed), C(Invalid), C(Aborted), C(Error), C(Timeout), C(Cancelled) or C(Terminated).
        - Client-side values - C(Skipped) (the O(creates)/O(removes) guard held), C(NotRun) (check mode),
          C(Submitted) (O(wait=false)), C(Rejected) (the API refused this instance's batch; RV(instances[].error_code)
          and RV(instances[].error_info) say why, other batches may have run).
      type: str
      sample: Success
    exit_code:
      description: The script's exit code; V(null) when it did not finish.
      type: int
      sample: 0
    output:
      description: The combined stdout and stderr, decoded to text (the last 24 KB).
      type: str
      sample: "hello\n"
    dropped:
      description: Bytes cut off the start of the output because it was longer than 24 KB.
      type: int
      sample: 0
    error_code:
      description: The API's error code for this instance (for example C(ExitCodeNonzero), C(ExecutionTimeout),
        C(ClientNotRunning)); V(null) when there was none.
      type: str
      sample: ExitCodeNonzero
    error_info:
      description: The API's error message for this instance; V(null) when there was none.
      type: str
      sample: the command execution exit code is not zero
    start_time:
      description: When the run started on the instance (UTC, ISO 8601); V(null) when it did not start.
      type: str
      sample: "2026-11-22T01:32:50Z"
    finish_time:
      description: When the run ended on the instance (UTC, ISO 8601); V(null) when it did not end.
      type: str
      sample: "2026-11-22T01:32:52Z"
    skipped:
      description: True when the O(creates)/O(removes) guard held and the script was not run here.
      type: bool
      sample: false
rc:
  description: The exit code, when there is exactly one target instance (V(0) when it was skipped).
  returned: when there is exactly one target instance and the run was waited for
  type: int
  sample: 0
stdout:
  description: The output, when there is exactly one target instance.
  returned: when there is exactly one target instance and the run was waited for
  type: str
  sample: "hello\n"
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when there is exactly one target instance and the run was waited for
  type: list
  elements: str
  sample: [hello]
would_run_on:
  description: The instances the command would run on.
  returned: in check mode, when the command would run
  type: list
  elements: str
  sample: [i-bp1aaaaaaaaaaaaaaaaa]
would_stop:
  description: Scheduled invocations that would be stopped and replaced.
  returned: in check mode, for scheduled runs that would change
  type: list
  elements: str
  sample: [t-hz0jdfwcsr1abc]
stopped_invoke_ids:
  description:
    - Scheduled invocations that were stopped because their settings or targets changed, or because their saved
      command was deleted or re-created (in check mode, those that would be stopped).
  returned: for scheduled runs that changed, and with O(state=absent)
  type: list
  elements: str
  sample: [t-hz0jdfwcsr1abc]
msg:
  description:
    - A summary. On failure, how many instances did not succeed and the first five with their status, error
      code and exit code, for example C(2 of 50 instances did not succeed - i-aaa (Failed, ExitCodeNonzero, exit 1),
      i-bbb (Timeout, ExecutionTimeout)).
  returned: when targets are given, and on failure
  type: str
  sample: 2 of 2 instance(s) succeeded
error:
  description: The API error behind a failure - code, message, request ID, diagnosis link and action.
  returned: when an API call failed
  type: dict
  sample:
    code: InvalidInstance.NotMatch
    message: The specified instance is not running.
    request_id: 1B2C3D4E-0000-0000-0000-000000000000
    recommend: https://api.aliyun.com/troubleshoot?q=InvalidInstance.NotMatch&product=Ecs
    action: RunCommand
'''

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import (
    HAS_SDK,
    SDK_IMPORT_ERROR,
    SDK_REQUIREMENTS,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._commands import (
    COMMAND_TYPES,
    REPEAT_MODES,
    CloudAssistantCommand,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import credential_argument_spec


def argument_spec():
    spec = credential_argument_spec()
    spec.update(
        command_content=dict(type='str', aliases=['content']),
        type=dict(type='str', default='RunShellScript', choices=list(COMMAND_TYPES)),
        working_dir=dict(type='str'),
        username=dict(type='str'),
        timeout=dict(type='int'),
        parameters=dict(type='dict'),
        enable_parameter=dict(type='bool'),
        description=dict(type='str'),
        launcher=dict(type='str'),
        tags=dict(type='dict'),
        instance_ids=dict(type='list', elements='str'),
        instance_tags=dict(type='dict'),
        name=dict(type='str'),
        command_id=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        repeat_mode=dict(type='str', default='Once', choices=list(REPEAT_MODES)),
        frequency=dict(type='str'),
        creates=dict(type='str'),
        removes=dict(type='str'),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int'),
        stop_on_timeout=dict(type='bool', default=False),
        client_token=dict(type='str', no_log=False),
    )
    return spec


MUTUALLY_EXCLUSIVE = [('instance_ids', 'instance_tags'), ('command_content', 'command_id'), ('name', 'command_id')]


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    if not HAS_SDK:
        module.fail_json(msg=missing_required_lib(SDK_REQUIREMENTS), exception=SDK_IMPORT_ERROR)
    try:
        result = CloudAssistantCommand(module).run()
    except CloudAssistantError as e:
        module.fail_json(msg=e.msg, **e.result())
    except Exception as e:  # pylint: disable=broad-except
        module.fail_json(msg='unexpected error: %s: %s' % (type(e).__name__, e), exception=traceback.format_exc())
    (module.fail_json if result.pop('failed', False) else module.exit_json)(**result)


if __name__ == '__main__':
    main()
