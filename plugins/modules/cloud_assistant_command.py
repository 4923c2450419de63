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
        O(parameters) when there are parameters. The current API reference gives 18,432 bytes for saved commands
        (C(CreateCommand), C(InvokeCommand)) while the SDK gives 24,576; above 18,432 bytes a saved command gets a
        warning that the service may refuse it.
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
      - On Windows (O(type=RunBatScript) or O(type=RunPowerShellScript)) any user but V(System) needs
        O(windows_password_name); the module refuses the task before any call without it.
    type: str
  windows_password_name:
    description:
      - The name of the CloudOps Orchestration Service (OOS) encrypted parameter that holds the password of
        O(username) on Windows instances, at most 255 characters. The password itself never passes through
        Ansible.
      - Required with a Windows command type and a O(username) other than V(System); not allowed with
        O(type=RunShellScript).
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
        case-insensitive. Values are strings, numbers or booleans; the API takes strings, so numbers and booleans
        are sent in their JSON form (V(8080), V(true)).
      - Giving parameters turns on O(enable_parameter) unless it is set to V(false), which is an error.
      - For values that must not be shown, use O(secret_parameters).
    type: dict
  secret_parameters:
    description:
      - Custom parameter values that Ansible must not show, such as a password the script needs. They follow the
        rules of O(parameters) and are merged with them (a name may be in only one of the two; the 10-parameter
        limit counts both).
      - The option is C(no_log), so Ansible replaces these values with V(********) in the task's result, its
        output and at every verbosity, including in ansible-runner's job events.
      - Cloud Assistant itself keeps every custom parameter in the invocation's record, readable by anyone who may
        call C(DescribeInvocations) (for example through M(alicloud_ops.cloud_assistant.cloud_assistant_invocation_info)).
        In production, keep the secret in OOS as an encrypted parameter and write C({{oos-secret:name}}) in
        O(command_content) instead. The agent resolves it on the instance, and it appears in no record.
    type: dict
  enable_parameter:
    description:
      - Whether C({{name}}) placeholders in O(command_content) are custom parameters.
      - Defaults to V(true) when O(parameters) or O(secret_parameters) is given or O(command_content) reads the
        OOS parameter store (C({{oos:name}}), C({{oos-secret:name}}), which the agent resolves on the instance and
        which need no value here), and V(false) otherwise. Set it to V(true) to save a command with placeholders
        that later runs fill in.
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
      - Keys may not start with C(aliyun) or C(acs:) (system tags) or C(ansible:cloud-assistant:). The module
        uses the last prefix for three tags on scheduled runs (which leaves 17 for them), for two tags on one-time
        runs with O(client_token) (which leaves 18), for one tag on a saved command it creates (which leaves 19
        with O(name) and O(command_content)), and for one tag on one-time runs of more than 100 instances, which
        lets it ask for the status of all the batches in one call (which leaves 19 there).
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
        System tags such as the C(acs:autoscaling:scalingGroupId) that Auto Scaling sets may select instances too.
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
      - Re-creating a command stops its scheduled runs before the new command exists (the API does not delete a
        command with runs pending, and two commands of one name would make O(name) ambiguous). If the new
        schedule is then refused, the instances have none until the task runs again; the result's
        RV(stopped_invoke_ids) lists what was stopped.
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
        same settings, nothing changes; otherwise the replacement is submitted first and they are stopped
        (C(StopInvocation)) only once it was accepted, so a refused replacement leaves the old schedule running.
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
      - The module checks it as the service does, before anything changes - field ranges (day of week 1-7 or
        SUN-SAT, month 1-12 or JAN-DEC, year 1970-2099), dates, and time zones (an IANA name, V(UTC), or
        V(GMT+8:00) with no leading zero in the hour; a bare V(GMT) is refused).
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
      - With V(false), the module returns the RV(invoke_id) (and RV(invoke_ids)) as soon as the run is accepted.
        Collect the results later with M(alicloud_ops.cloud_assistant.cloud_assistant_invocation_info) and
        O(alicloud_ops.cloud_assistant.cloud_assistant_invocation_info#module:wait=true), giving it RV(invoke_ids)
        (a run on more than 100 instances is several invocations), or stop the run with
        M(alicloud_ops.cloud_assistant.cloud_assistant_invocation).
      - Scheduled runs (O(repeat_mode) other than V(Once)) are never waited for.
    type: bool
    default: true
  wait_timeout:
    description:
      - How long the module waits for the run, in seconds, counted from the start of the task.
      - If not set, the run's timeout (O(timeout), the saved command's, or 60) plus 120 seconds.
      - When it expires the task fails with the statuses known so far; see O(stop_on_timeout).
      - Polling is adaptive - every 0.2 seconds at first, then every tenth of the time already waited, at most
        every 5 seconds. Each poll is one C(DescribeInvocations); a run of more than 100 instances (several
        batches) is asked for with one tag-filtered C(DescribeInvocations) covering every batch. Outputs are
        fetched once at the end, one call per batch.
      - API calls are retried (throttling, server errors, lost connections) only within this deadline, plus a
        few seconds for the last poll. Errors that cannot heal - TLS failures, a host name that does not
        resolve, authentication and validation errors - fail at once.
      - When the API fails after the run was accepted, the task fails with RV(invoke_id), RV(invoke_ids) and the
        last known RV(instances) states, so the run can be followed up or stopped.
    type: int
  stop_on_timeout:
    description:
      - When O(wait_timeout) expires, also stop the run on the instances that have not finished (C(StopInvocation),
        50 instances per call).
    type: bool
    default: false
  client_token:
    description:
      - Makes a one-time run idempotent across task runs. Each C(RunCommand), C(InvokeCommand) and
        C(CreateCommand) call always carries a ClientToken derived from its inputs, so a retried call never runs a
        command twice. For one-time runs the tokens are salted with a random value per task run by default, so
        running the task again runs the command again.
      - With a fixed value here, the tokens are derived from it instead. Running the task again with the same
        inputs returns the first run's invocation (and its results) and runs nothing.
      - The tokens of C(CreateCommand) and of scheduled runs never depend on the task run - they come from the
        command's identity and settings (and the schedules being replaced) - so two runs of the same task at the
        same moment (two CI jobs, an AWX schedule and a manual run) create one saved command and one schedule -
        the service merges the identical requests. Only one of the two reports C(changed) for them; the other
        reports the saved command C(unchanged) and the schedule as existing. Each run adds a tag of its own
        (C(ansible:cloud-assistant:claim)), outside the token, so the service answers the later request with
        C(IdempotentParameterMismatch) and the module then finds what the other run created.
      - A one-time run without O(client_token) is not deduplicated - two identical tasks at the same moment run
        the command twice, as two runs one after the other would. With the same O(client_token) both tasks get
        the one invocation (each instance runs the command once) and its results, and only the task whose request
        came first reports C(changed) - the same claim tag makes the service refuse the other request, which then
        finds the invocation by a tag derived from O(client_token). The same holds for a later run of the task with
        that O(client_token) (it reports the first run's results, unchanged), as long as the service remembers the
        token.
      - The API reference does not say how long the service remembers a token. The module does not depend on it;
        when a remembered token hands back a saved command deleted since, or a schedule stopped since, the
        module notices and submits again with a new token.
    type: str
  max_concurrency:
    description:
      - Makes the run a rolling run - at most this many instances run the command at a time, or this percentage of
        the target instances (V(10%), rounded up, at least one). As instances finish, the next ones start, in the
        order of the targets (a sliding window, not lockstep waves).
      - The instances start in fixed groups of a fifth of this number (at least 1, at most 100), one
        C(RunCommand) or C(InvokeCommand) per group, each with its own ClientToken derived from the group, so a
        retried call never starts a group twice and a fixed O(client_token) repeats the run group by group.
        A group starts once the window has room for all of it, so up to a fifth of the window may wait for the
        others of its group.
      - A whole number of at least 1, or a percentage from V(1%) to V(100%). Without it (but with O(max_errors)
        or O(canary)) every instance after the canary starts at once.
      - Each poll of a rolling run is one tag-filtered C(DescribeInvocations) while its groups fit in one page
        (50 groups); a run with more groups asks for its unfinished groups by ID instead (about five a poll).
        The polls count from the last start, so that the window refills within a fraction of a second.
      - Only for one-time runs (O(repeat_mode=Once)) that are waited for (O(wait=true)); O(wait_timeout)
        covers the whole rolling run - instances that had not started when it expired are reported skipped.
        Without O(wait_timeout), the default is the run's timeout times the number of waves plus 120 seconds.
    type: raw
  max_errors:
    description:
      - Makes the run a rolling run that halts once more than this many instances, or this percentage of the
        target instances (rounded down), have failed - any final status but C(Success), a refused start call
        included. Nothing new starts then; the instances never started are returned with
        RV(instances[].skipped=true) and a RV(instances[].reason); the ones still running finish, or are stopped
        with O(stop_on_error=true). The task fails and RV(msg) says how many ran, failed, were stopped and never
        started.
      - V(0) halts at the first failure. A whole number of at least 0, or a percentage from V(0%) to V(100%).
      - Failures up to this number do not halt the run, but the task still fails when any instance did not
        succeed, as without a rolling run; use C(failed_when) with RV(summary) for another policy.
    type: raw
  canary:
    description:
      - Makes the run a rolling run that starts on the first this many target instances, or this percentage of
        them (rounded up, at least one), alone - within O(max_concurrency) - and on the others only once every
        canary instance succeeded. When one does not, the others never start (RV(instances[].skipped=true)) and
        the task fails.
      - A whole number of at least 1, or a percentage from V(1%) to V(100%).
    type: raw
  stop_on_error:
    description:
      - When a rolling run halts (O(max_errors) exceeded, or the O(canary) failed), also stop the instances still
        running (C(StopInvocation)). They end C(Terminated) or C(Cancelled) and are counted as stopped, not failed.
      - Needs O(max_errors) or O(canary).
    type: bool
    default: false
notes:
  - Output is the combined stdout and stderr of the script, the last 24 KB of it (RV(instances[].dropped) counts
    the bytes cut off at the start). It is fetched Base64-encoded and decoded as UTF-8 with invalid bytes
    replaced, so binary output stays readable.
  - Bad input fails the task before any API call, with the option and the limit in the message.
  - Instances whose agent is offline report C(Aborted) with C(ClientNotRunning); check mode detects this up front.
  - While a run is awaited on the controller (a play on localhost or C(delegate_to=localhost)), the task shows every
    10 seconds how many instances have finished and how many failed, at default verbosity. The environment variable
    E(CLOUD_ASSISTANT_PROGRESS_INTERVAL) sets the seconds between two such lines; V(0) turns them off. Elsewhere
    (another host, C(async)) the module runs without them.
  - The filter P(alicloud_ops.cloud_assistant.instances_table#filter) shows RV(instances) as a table.
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

- name: Pass a password to the script without showing it (masked in the result and at every verbosity)
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_ids: "{{ db_instance_ids }}"
    command_content: |
      {% raw %}
      mysql --user=backup --password='{{db_password}}' -e 'FLUSH LOGS'
      {% endraw %}
    secret_parameters:
      db_password: "{{ vault_db_backup_password }}"

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

- name: Start a long job without waiting, then collect it later
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_ids: [i-bp1aaaaaaaaaaaaaaaaa]
    command_content: /opt/jobs/reindex.sh
    timeout: 7200
    wait: false
  register: job

- name: Collect the job (after other tasks)
  alicloud_ops.cloud_assistant.cloud_assistant_invocation_info:
    invoke_id: "{{ job.invoke_ids }}"
    wait: true
    include_output: true
  register: job_result

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

- name: Patch the web fleet 10% at a time - two canaries first, halt and stop after 3 failures
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_tags:
      role: web
    command_content: yum -y update openssl && systemctl restart nginx
    timeout: 600
    max_concurrency: 10%
    canary: 2
    max_errors: 3
    stop_on_error: true
  register: patch

- name: Show how the rolling run went
  ansible.builtin.debug:
    msg: "{{ patch.summary }} - {{ patch.rolling }}"

- name: Restart 20 at a time, tolerating up to 5% failures (the task still fails on any failure)
  alicloud_ops.cloud_assistant.cloud_assistant_command:
    instance_tags:
      role: worker
    command_content: systemctl restart worker
    max_concurrency: 20
    max_errors: 5%
  register: restart
  failed_when: restart.rolling.halted is not none
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
      description:
        - True when the O(creates)/O(removes) guard held and the script was not run here, or when a rolling run
          never started it here (see RV(instances[].reason)).
      type: bool
      sample: false
    reason:
      description: Why a rolling run never started the command on this instance.
      type: str
      returned: when a rolling run skipped the instance
      sample: "not started: 6 instances failed, more than max_errors (5), so the rolling run halted"
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
summary:
  description: How many instances ended in each status (RV(instances[].invocation_status)).
  returned: for one-time runs on targets, except in check mode
  type: dict
  sample: {Success: 46, Failed: 6, Skipped: 148}
rolling:
  description:
    - A rolling run (O(max_concurrency), O(max_errors), O(canary)) - what its options came to for these targets,
      and how it went.
  returned: for rolling runs
  type: dict
  contains:
    max_concurrency:
      description: Most instances running at a time.
      type: int
    max_errors:
      description: Failures the run tolerated before it halted (V(null) - no limit).
      type: int
    canary:
      description: Instances that ran first, alone (V(0) - no canary).
      type: int
    stop_on_error:
      description: The value of O(stop_on_error).
      type: bool
    group_size:
      description: Instances per start call.
      type: int
    started:
      description: Instances the run started on. Not returned in check mode.
      type: int
    failed:
      description: Instances that failed (not those this run stopped). Not returned in check mode.
      type: int
    stopped:
      description: Instances this run stopped (O(stop_on_error), O(stop_on_timeout)). Not returned in check mode.
      type: int
    not_started:
      description: Instances never started. Not returned in check mode.
      type: int
    halted:
      description:
        - Why nothing more started - V(max_errors), V(canary), V(timeout) (O(wait_timeout)) or V(error) (the API
          failed) - or V(null) when every instance started. Not returned in check mode.
      type: str
  sample: {max_concurrency: 50, max_errors: 5, canary: 0, stop_on_error: false, group_size: 10, started: 40,
           failed: 6, stopped: 0, not_started: 160, halted: max_errors}
waves:
  description:
    - In check mode, for a rolling run - the instances of each wave it would start if every instance took as long -
      the canary first, then the rest. A wave is as many whole start groups (RV(rolling.group_size) instances each)
      as fit in O(max_concurrency), so it can hold a few instances less than O(max_concurrency).
  returned: in check mode, for rolling runs
  type: list
  elements: list
  sample: [[i-bp1aaaaaaaaaaaaaaaaa], [i-bp1bbbbbbbbbbbbbbbbb, i-bp1ccccccccccccccccc]]
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

import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import invoke_instances
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import BATCH_LIMITS
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._claims import new_claim
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._frequency import check_frequency
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._guards import evaluate_guards
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._invocations import stop_live
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import (
    COMMAND_TYPES,
    DEFAULT_TIMEOUT,
    DESCRIPTION_LIMIT,
    LAUNCHER_LIMIT,
    NAME_LIMIT,
    REPEAT_MODES,
    USERNAME_LIMIT,
    WORKING_DIR_LIMIT,
    check_content_size,
    check_length,
    check_parameters,
    check_placeholders,
    check_tags,
    check_target_selection,
    check_timeout,
    check_windows_user,
    has_oos_references,
    invalid,
    is_windows_type,
    os_of_type,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._module import CloudAssistantModule
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._poller import (
    MAX_WAIT_TIMEOUT,
    RETRY_GRACE,
    WAIT_MARGIN,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._progress import progress_reporter
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import (
    failure_message,
    instance_entry,
    listing,
    run_fields,
    status_counts,
    wait_expired_message,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._rolling import (
    RollingPlan,
    ROLLING_OPTIONS,
    check_rolling,
    rolling_message,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import (
    RUN_TAG,
    CommandRunner,
    CommandSpec,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._saved_commands import (
    create_command,
    delete_command,
    describe_commands,
    find_saved_command,
    modify_command,
    plan,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._schedules import (
    RESERVED_TAGS,
    Merged,
    find_schedules,
    matches,
    schedule_hash,
    schedule_key,
    stop_schedules_of_command,
    replace_schedules,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import (
    NOT_RUN,
    REJECTED,
    SKIPPED,
    is_terminal,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._targets import (
    offline_agents,
    resolve_targets,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._tokens import fingerprint, new_salt

ARGUMENT_SPEC = dict(
    command_content=dict(type='str', aliases=['content']),
    type=dict(type='str', default='RunShellScript', choices=list(COMMAND_TYPES)),
    working_dir=dict(type='str'),
    username=dict(type='str'),
    windows_password_name=dict(type='str', no_log=False),
    timeout=dict(type='int'),
    parameters=dict(type='dict'),
    secret_parameters=dict(type='dict', no_log=True),
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
    max_concurrency=dict(type='raw'),
    max_errors=dict(type='raw'),
    canary=dict(type='raw'),
    stop_on_error=dict(type='bool', default=False),
)
RULES = dict(
    mutually_exclusive=[('instance_ids', 'instance_tags'), ('command_content', 'command_id'), ('name', 'command_id')],
    required_one_of=[('command_content', 'name', 'command_id')],
    required_if=[('state', 'absent', ('name', 'command_id'), True), ('repeat_mode', 'Period', ('frequency',))],
)


def _selector(params, targets):
    if params.get('instance_tags'):
        return ['tags', sorted((k, '' if v is None else str(v)) for k, v in params['instance_tags'].items())]
    return ['ids', sorted(targets)]


class CloudAssistantCommand(object):
    """Runs a command (inline or saved) on instances, manages saved commands and scheduled runs.

    ``module`` needs ``params``, ``check_mode``, ``_diff``, ``warn()``, ``started`` and ``api(deadline)``.
    """

    def __init__(self, module, clock=time.monotonic, sleep=time.sleep, schedule=None, max_workers=8):
        self.module = module
        self.params = module.params
        self.check_mode = bool(module.check_mode)
        self.clock, self.sleep, self.schedule, self.max_workers = clock, sleep, schedule, max_workers
        self.started = getattr(module, 'started', None) or clock()
        self.deadline = self.started + (self.params.get('wait_timeout') or DEFAULT_TIMEOUT + WAIT_MARGIN)
        self.pre_stopped = []
        self.rolling = None  # {option: Amount or None} for a rolling run (check_rolling)
        self.api = None  # built once the input is valid: bad input is reported before anything else
        self._runner = None
        # one salt per task run: a retried call repeats its ClientToken, a new task run runs the command again
        self.token_salt = self.params.get('client_token') or new_salt()
        # this task run's own tag on what it creates: of two runs at the same moment, one reports it created
        self.claim = new_claim()
        # counts for the action plugin's progress lines while a run is awaited (None: no one watches)
        self.progress = progress_reporter()

    def runner(self):
        """The run engine on the current API object (which changes once the task's deadline is known)."""
        if self._runner is None or self._runner.api is not self.api:
            self._runner = CommandRunner(self.api, max_workers=self.max_workers, schedule=self.schedule,
                                         clock=self.clock, sleep=self.sleep, token_salt=self.token_salt,
                                         progress=self.progress)
        return self._runner

    def has_targets(self):
        return self.params.get('instance_ids') is not None or self.params.get('instance_tags') is not None

    def enable_parameter(self):
        value = self.params.get('enable_parameter')
        if value is not None:
            return value
        return bool(self.parameters()) or has_oos_references(self.params.get('command_content'))

    def parameters(self):
        """O(parameters) and O(secret_parameters) as the one set the API takes (None when both are empty).
        Ansible masks the secret values in everything the task returns and logs, because the option is no_log."""
        plain, secret = self.params.get('parameters') or {}, self.params.get('secret_parameters') or {}
        both = sorted(set(k.lower() for k in plain) & set(k.lower() for k in secret))
        if both:
            raise invalid('parameters and secret_parameters both give %s: give each parameter in one of them'
                          % ', '.join(both))
        return dict(plain, **secret) or None

    def parameters_option(self):
        """How messages about the custom parameters name the option(s) that gave them."""
        given = [o for o in ('parameters', 'secret_parameters') if self.params.get(o)]
        return ' and '.join(given) or 'parameters'

    # -- validation: everything that needs no API call ----------------------------------------------------------
    def validate(self):
        p = self.params
        content, scheduled = p.get('command_content'), p['repeat_mode'] != 'Once'
        rolling_given = [o for o in ROLLING_OPTIONS if p.get(o) is not None] + \
            (['stop_on_error'] if p.get('stop_on_error') else [])
        if rolling_given and not self.has_targets():
            # a warning, not a failure: module_defaults may set them for every task of a play, save-only ones too
            self.warn('%s ignored: %s shape%s a run on instances, and this task %s (no instance_ids or instance_tags)'
                      % (', '.join(rolling_given), 'it' if len(rolling_given) == 1 else 'they',
                         's' if len(rolling_given) == 1 else '',
                         'deletes a saved command' if p['state'] == 'absent' else 'only saves the command'))
        if p['state'] == 'absent':
            if self.has_targets():
                raise invalid('state=absent deletes a saved command; it does not take instance_ids or instance_tags')
            return
        if not self.has_targets() and (content is None or not p.get('name')):
            if content is not None:
                raise invalid('command_content without name runs the script: give instance_ids or instance_tags '
                              '(or give name to save it as a command)')
            raise invalid('%s without command_content invokes the saved command: give instance_ids or '
                          'instance_tags' % ('name' if p.get('name') else 'command_id'))
        check_target_selection(p.get('instance_ids'), p.get('instance_tags'))
        check_timeout(p.get('timeout'))
        if p.get('wait_timeout') is not None and p['wait_timeout'] < 1:
            raise invalid('wait_timeout must be at least 1 second, got %d' % p['wait_timeout'])
        self.rolling = check_rolling(p)
        for option, limit in (('name', NAME_LIMIT), ('description', DESCRIPTION_LIMIT),
                              ('working_dir', WORKING_DIR_LIMIT), ('username', USERNAME_LIMIT),
                              ('launcher', LAUNCHER_LIMIT)):
            check_length(p.get(option), limit, option)
        if scheduled:
            check_tags(p.get('tags'), reserved=RESERVED_TAGS,
                       why_reserved='a scheduled run carries %d tags of this collection, which find it again on the '
                                    'next run and tell two runs at the same moment apart' % RESERVED_TAGS)
        elif p.get('client_token') and self.rolling is None and self.has_targets():
            check_tags(p.get('tags'), reserved=2,
                       why_reserved='a one-time run with client_token carries 2 tags of this collection, which tell '
                                    'two task runs with that token apart and let the later one find the run')
        else:
            check_tags(p.get('tags'), reserved=1 if p.get('name') and content is not None else 0,
                       why_reserved='a saved command this task creates carries a tag of this collection, which tells '
                                    'two runs at the same moment apart')
        if p.get('frequency') is not None:
            if p['repeat_mode'] != 'Period':
                raise invalid('frequency is only used with repeat_mode=Period (repeat_mode is %s)' % p['repeat_mode'])
            check_frequency(p['frequency'], p.get('timeout') if p.get('timeout') is not None
                            else (DEFAULT_TIMEOUT if content is not None else None))
        if p.get('creates') or p.get('removes'):
            if scheduled:
                raise invalid('creates and removes are checked when the task runs, so they only work with '
                              'repeat_mode=Once')
            if content is not None and is_windows_type(p['type']):
                raise invalid('creates and removes need a Linux shell: they are not supported with type=%s'
                              % p['type'])
        if content is None:
            check_parameters(self.parameters(), None, True, option=self.parameters_option())
            return
        if not content.strip():
            raise invalid('command_content must not be empty')
        check_windows_user(p['type'], p.get('username'), p.get('windows_password_name'))
        if self.enable_parameter():
            check_placeholders(content)
        check_parameters(self.parameters(), content, self.enable_parameter(), require_all=self.has_targets(),
                         option=self.parameters_option())
        self.warn(check_content_size(content, self.parameters() if self.has_targets() else None,
                                     saved=bool(p.get('name'))))

    def validate_saved(self, command):
        """Checks that need the saved command: parameters against its content, its type against guards and the
        Windows user rule, frequency against its timeout."""
        p = self.params
        where = 'the saved command %s' % (command['name'] or command['command_id'])
        check_parameters(self.parameters(), command['command_content'], command['enable_parameter'], where=where,
                         option=self.parameters_option())
        self.warn(check_content_size(command['command_content'], self.parameters(),
                                     option='the content of %s' % where, saved=True))
        check_windows_user(command['type'], p.get('username'), p.get('windows_password_name'), where=where + "'s type")
        if (p.get('creates') or p.get('removes')) and is_windows_type(command['type']):
            raise invalid('creates and removes need a Linux shell: %s has type %s' % (where, command['type']))
        if p.get('frequency'):
            check_frequency(p['frequency'], p['timeout'] if p.get('timeout') is not None else command['timeout'])

    def warn(self, message):
        if message:
            self.module.warn(message)

    # -- entry point ----------------------------------------------------------------------------------------------
    def run(self):
        self.validate()
        self.api = self.module.api(self.deadline + RETRY_GRACE)
        return self.absent_() if self.params['state'] == 'absent' else self.present_()

    def present_(self):
        p = self.params
        result = {'changed': False}
        command = None
        if p.get('name') and p.get('command_content') is not None:
            command = self.ensure_saved_command(result)
        elif p.get('name') or p.get('command_id'):
            command = find_saved_command(self.api, name=p.get('name'), command_id=p.get('command_id'))
            self.validate_saved(command)
            result['command_id'] = command['command_id']
        if not self.has_targets():
            return result
        spec = self.build_spec(command)
        if not p.get('wait_timeout'):
            self.deadline = self.started + (spec.timeout or (command or {}).get('timeout') or DEFAULT_TIMEOUT) \
                + WAIT_MARGIN
            self.api = self.module.api(self.deadline + RETRY_GRACE)
        targets = resolve_targets(self.api, p.get('instance_ids'), p.get('instance_tags'),
                                  os_type=os_of_type(spec.command_type), os_reason='type %s' % spec.command_type,
                                  warn=self.module.warn, max_workers=self.max_workers).ids
        if self.rolling is not None:
            check_tags(p.get('tags'), reserved=1, why_reserved='the start calls of a rolling run (max_concurrency, '
                       'max_errors, canary) share the tag %s' % RUN_TAG)
        elif CommandRunner.shares_run_tag(spec, len(targets)):
            check_tags(p.get('tags'), reserved=1, why_reserved='a run on more than %d instances (here %d) is sent in '
                       'batches that share the tag %s' % (BATCH_LIMITS[spec.action], len(targets), RUN_TAG))
        if self.check_mode:
            offline = offline_agents(self.api, targets, max_workers=self.max_workers)
            if offline:
                raise invalid('the Cloud Assistant agent is not online on %d instance(s): %s'
                              % (len(offline), listing(offline)))
        if spec.repeat_mode != 'Once':
            return self.ensure_schedule(spec, targets, command, result)
        return self.run_once(spec, targets, command, result)

    def build_spec(self, command):
        p = self.params
        common = dict(working_dir=p.get('working_dir'), username=p.get('username'), timeout=p.get('timeout'),
                      parameters=self.parameters(), tags=p.get('tags'), repeat_mode=p['repeat_mode'],
                      frequency=p.get('frequency'), launcher=p.get('launcher'),
                      windows_password_name=p.get('windows_password_name'))
        if command is not None:
            return CommandSpec(command_id=command['command_id'], command_type=command['type'],
                               enable_parameter=command['enable_parameter'], content=command['command_content'],
                               **common)
        return CommandSpec(content=p['command_content'], command_type=p['type'],
                           enable_parameter=self.enable_parameter(), description=p.get('description'), **common)

    # -- saved commands -------------------------------------------------------------------------------------------
    def ensure_saved_command(self, result):
        """name + command_content: create, modify or re-create the saved command (diff before/after)."""
        p = self.params
        desired = {'name': p['name'], 'command_content': p['command_content'], 'type': p['type'],
                   'enable_parameter': self.enable_parameter()}
        desired.update((o, p[o]) for o in ('description', 'working_dir', 'timeout', 'launcher') if p.get(o) is not None)
        found = describe_commands(self.api, name=p['name'])
        if len(found) > 1:
            raise CloudAssistantError('name %s: %d saved commands have this name (%s); delete the extra ones first'
                                      % (p['name'], len(found), ', '.join(c['command_id'] for c in found)))
        current = found[0] if found else None
        action, after, fields = plan(current, desired)
        if action is not None:
            result['changed'] = True
            if self.check_mode and action != 'modify':
                after['command_id'] = None
            elif action == 'modify' and not self.check_mode:
                modify_command(self.api, current['command_id'], dict((f, after[f]) for f in fields))
            elif not self.check_mode:
                if action == 'recreate':
                    # the old command's scheduled runs cannot outlive it; a schedule this task asks for is created
                    # again for the new command
                    self.pre_stopped = stop_schedules_of_command(self.runner(), current['command_id'],
                                                                 self.deadline)
                    try:
                        delete_command(self.api, current['command_id'])
                    except CloudAssistantError as exc:
                        if exc.code != 'InvalidCmdId.NotFound':  # another run deleted it first
                            raise
                after['command_id'], created = create_command(self.api, after, p.get('tags'), salt=p.get('client_token'),
                                                              claim=self.claim)
                if not created and action == 'create':
                    # another run at the same moment created it (the same request, sent first): no change here
                    action, fields, result['changed'], current = None, [], False, dict(after)
        result['command_id'] = after['command_id']
        result['command'] = dict((k, v) for k, v in after.items() if k != 'command_content')
        result['command_action'] = {'create': 'created', 'recreate': 'recreated',
                                    'modify': 'modified'}.get(action, 'unchanged')
        if self.module._diff:
            result['diff'] = {'before': dict(current) if current else {}, 'after': dict(after)}
        return after

    def absent_(self):
        p = self.params
        found = describe_commands(self.api, name=p.get('name'), command_id=p.get('command_id'))
        result = {'changed': bool(found), 'command_id': found[0]['command_id'] if found else None,
                  'deleted_command_ids': [c['command_id'] for c in found], 'stopped_invoke_ids': []}
        for command in found:
            result['stopped_invoke_ids'].extend(stop_schedules_of_command(self.runner(), command['command_id'],
                                                                          self.deadline, check_mode=self.check_mode))
            if not self.check_mode:
                try:
                    delete_command(self.api, command['command_id'])
                except CloudAssistantError as exc:
                    if exc.code != 'InvalidCmdId.NotFound':  # another run deleted it first
                        raise
        if self.module._diff:
            result['diff'] = {'before': found[0] if len(found) == 1 else ({'commands': found} if found else {}),
                              'after': {}}
        return result

    # -- one-time runs --------------------------------------------------------------------------------------------
    def run_once(self, spec, targets, command, result):
        p = self.params
        result['command_id'] = command['command_id'] if command else None
        if self.check_mode:
            self.would_run(targets, result, ' (creates/removes are not checked in check mode: that needs a '
                                            'run on the instances)' if p.get('creates') or p.get('removes') else '')
            if self.rolling is not None:
                plan = self.rolling_plan(targets)
                result.update(rolling=plan.settings(), waves=plan.waves())
                result['msg'] += ', in %d wave(s) of at most %d (%s)' % (
                    len(result['waves']), plan.window, 'the first %d alone as the canary' % plan.canary
                    if plan.canary else 'max_concurrency')
            return result
        skipped = {}
        if p.get('creates') or p.get('removes'):
            # the check exits 1 where the command will run: no progress lines, or they would count it as failed
            skipped = evaluate_guards(self.runner().quiet(), targets, self.deadline, p.get('creates'), p.get('removes'),
                                      working_dir=spec.working_dir or (command or {}).get('working_dir') or None,
                                      username=spec.username)
        to_run = [t for t in targets if t not in skipped]
        if self.rolling is not None and to_run:
            return self.run_rolling(spec, command, to_run, targets, skipped, result)
        # with client_token, a claim tag tells this run from another task run with the same token (_claims)
        runner = self.runner().with_claim(self.claim) if p.get('client_token') else self.runner()
        run = runner.run(spec, to_run, self.deadline, wait=p['wait'],
                         stop_on_timeout=p['stop_on_timeout']) if to_run else None
        ran = dict((e['instance_id'], e) for e in (run.instances if run else []))
        instances = [ran.get(t) or instance_entry(t, status=SKIPPED, skipped=True) for t in targets]
        result.update(run_fields(instances, run.invoke_ids if run else []),
                      changed=result['changed'] or (run is not None and not run.merged))
        if run is not None and not command:
            result['command_id'] = run.command_id
        if len(instances) == 1 and (run is None or p['wait']) and (run is None or run.error is None):
            only = instances[0]
            # like ansible.builtin.command: the trailing newline is not part of stdout
            result['rc'], result['stdout'] = ((0, skipped[only['instance_id']]) if only['skipped']
                                              else (only['exit_code'], (only['output'] or '').rstrip('\r\n')))
            result['stdout_lines'] = result['stdout'].splitlines()
        result['msg'] = self.run_message(run, instances, to_run, skipped)
        if run is not None and run.merged:
            result['msg'] += ' (the run of another task with the same client_token: %s)' % ', '.join(run.invoke_ids)
        result['summary'] = status_counts(instances)
        result['failed'] = run is not None and (run.error is not None or run.timed_out or bool(run.rejected)
                                                or (p['wait'] and failure_message(instances) is not None))
        if run is not None and run.error is not None:
            result.update(run.error.result())
        return result

    def rolling_plan(self, to_run):
        r = self.rolling
        return RollingPlan(to_run, max_concurrency=r['max_concurrency'], max_errors=r['max_errors'],
                           canary=r['canary'], stop_on_error=self.params['stop_on_error'])

    def run_rolling(self, spec, command, to_run, targets, skipped, result):
        """max_concurrency, max_errors, canary: the run engine's rolling run; one deadline for all of it."""
        p = self.params
        plan = self.rolling_plan(to_run)
        if not p.get('wait_timeout'):
            # each wave may last the run's timeout: the default deadline covers them all
            timeout = spec.timeout or (command or {}).get('timeout') or DEFAULT_TIMEOUT
            self.deadline = self.started + min(MAX_WAIT_TIMEOUT, timeout * len(plan.waves()) + WAIT_MARGIN)
            self.api = self.module.api(self.deadline + RETRY_GRACE)
        run = self.runner().run_rolling(spec, plan, self.deadline, stop_on_timeout=p['stop_on_timeout'])
        ran = dict((e['instance_id'], e) for e in run.instances)
        instances = [ran.get(t) or instance_entry(t, status=SKIPPED, skipped=True) for t in targets]
        result.update(run_fields(instances, run.invoke_ids), changed=True, summary=status_counts(instances),
                      rolling=plan.report())
        if not command:
            result['command_id'] = run.command_id
        if len(instances) == 1 and run.error is None and not instances[0]['skipped']:
            result['rc'], result['stdout'] = instances[0]['exit_code'], (instances[0]['output'] or '').rstrip('\r\n')
            result['stdout_lines'] = result['stdout'].splitlines()
        if run.error is not None:
            result.update(run.error.result())
            message = self.run_message(run, instances, to_run, skipped)
        elif run.timed_out:
            message = '%s; %d never started' % (self.run_message(run, instances, to_run, skipped),
                                                len(plan.not_started()))
        elif plan.halted is not None:
            message = rolling_message(plan, instances)
        else:
            message = failure_message(instances) or '%d of %d instance(s) succeeded, at most %d at a time, in %d start ' \
                'call(s)%s' % (len(to_run), len(to_run), plan.window, len(run.batches),
                               ', %d skipped (creates/removes)' % len(skipped) if skipped else '')
        result['msg'] = message
        result['failed'] = (run.error is not None or run.timed_out or plan.halted is not None
                            or failure_message(instances) is not None)
        return result

    def run_message(self, run, instances, to_run, skipped):
        if run is None:
            reasons = sorted(set(skipped.values()))
            return reasons[0] if len(reasons) == 1 else 'skipped on every instance (creates/removes)'
        if run.error is not None:
            return ('%s - while waiting for %s, which the API had accepted: the command may still be running; '
                    'follow it up with the invoke IDs' % (run.error.msg, ', '.join(run.invoke_ids)))
        if run.timed_out:
            unfinished = [i['instance_id'] for i in instances if not i['skipped']
                          and not is_terminal(i['invocation_status']) and i['invocation_status'] != REJECTED]
            return wait_expired_message(self.deadline - self.started, unfinished, len(to_run),
                                        note=' (StopInvocation sent)' if run.stopped else '')
        if not self.params['wait']:
            return failure_message(run.rejected) or 'submitted to %d instance(s); not waiting (wait=false)' % len(to_run)
        return failure_message(instances) or '%d of %d instance(s) succeeded%s' % (
            len(to_run), len(to_run), ', %d skipped (creates/removes)' % len(skipped) if skipped else '')

    def would_run(self, targets, result, note=''):
        result.update(run_fields([instance_entry(i, status=NOT_RUN) for i in targets], []),
                      changed=True, would_run_on=list(targets),
                      msg='check mode: would run on %d instance(s)%s' % (len(targets), note))
        return result

    # -- scheduled runs -------------------------------------------------------------------------------------------
    def ensure_schedule(self, spec, targets, command, result):
        """Keep a live schedule with the same settings on the same instances; else submit the replacement and,
        once it was accepted, stop the schedules it replaces."""
        p = self.params
        command = command or {}
        identity = (['name', p['name']] if p.get('name') else ['command_id', p['command_id']] if p.get('command_id')
                    else ['content', spec.command_type, fingerprint(spec.content)])
        key = schedule_key(identity, _selector(p, targets), spec.repeat_mode)
        spec_hash = schedule_hash(spec.frequency, spec.parameters, spec.timeout or command.get('timeout'),
                                  spec.username, spec.working_dir or command.get('working_dir'),
                                  spec.launcher or command.get('launcher'), command.get('command_id'),
                                  command.get('command_content') if command else spec.content, spec.command_type,
                                  sorted(spec.tags.items()), spec.windows_password_name)
        existing = find_schedules(self.api, key)
        result['command_id'] = command.get('command_id')
        if matches(existing, spec_hash, targets):
            entries = dict((i.instance_id, instance_entry(i.instance_id, invoke_id=inv.invoke_id, model=i))
                           for inv in existing for i in invoke_instances(inv))
            result.update(run_fields([entries[t] for t in targets], [inv.invoke_id for inv in existing]),
                          msg='the scheduled run already exists (%s)' % ', '.join(inv.invoke_id for inv in existing))
            return result
        replaced = [inv.invoke_id for inv in existing]
        to_stop = self.pre_stopped + replaced
        changed_before = result['changed']  # by the saved command
        result['changed'] = True
        if self.check_mode:
            self.would_run(targets, result)
            result.update(would_stop=to_stop, msg='check mode: would %sschedule the run on %d instance(s)' % (
                'stop %s and re-' % ', '.join(to_stop) if to_stop else '', len(targets)))
            return result
        try:
            run, stopped = replace_schedules(self.runner(), spec, targets, key, spec_hash, existing,
                                             salt=p.get('client_token'), claim=self.claim)
        except Merged as merged:
            # another run at the same moment submitted the same schedule first: it reports the change
            for invocation in existing:
                stop_live(self.api, invocation)
            entries = dict((i.instance_id, instance_entry(i.instance_id, invoke_id=inv.invoke_id, model=i))
                           for inv in merged.live for i in invoke_instances(inv))
            result.update(run_fields([entries[t] for t in targets], [inv.invoke_id for inv in merged.live]),
                          changed=changed_before or bool(self.pre_stopped), stopped_invoke_ids=self.pre_stopped,
                          msg='the same scheduled run was submitted at the same moment by another run, which '
                              'created it (%s)' % ', '.join(inv.invoke_id for inv in merged.live))
            return result
        result.update(run_fields(run.instances, run.invoke_ids))
        result['command_id'] = result['command_id'] or run.command_id
        result['stopped_invoke_ids'] = self.pre_stopped + stopped
        if run.rejected:
            result.update(failed=True, msg='%s; the accepted part (%s) was stopped again and the schedule(s) it '
                          'would replace were kept: %s' % (failure_message(run.rejected),
                                                           ', '.join(run.invoke_ids) or 'none',
                                                           ', '.join(replaced) or 'none'))
        if run.error is not None:
            still_live = run.invoke_ids if run.rejected else [i for i in replaced if i not in stopped]
            result.update(run.error.result(), failed=True, msg='%s - after the new schedule (%s) was accepted; still '
                          'to stop: %s' % (run.error.msg, ', '.join(run.invoke_ids), ', '.join(still_live) or 'none'))
        if result.get('failed'):
            return result
        result.update(msg='scheduled (%s) on %d instance(s)%s' % (
            spec.frequency if spec.repeat_mode == 'Period' else spec.repeat_mode, len(targets),
            '; replaced %s' % ', '.join(to_stop) if to_stop else ''))
        return result


def main():
    module = CloudAssistantModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **RULES)
    module.run_resource(CloudAssistantCommand)


if __name__ == '__main__':
    main()
