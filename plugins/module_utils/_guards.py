# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""``creates`` / ``removes``: which instances to leave alone, found by one extra run of ``test -e``.

The check runs as the command's user in its working directory (relative paths are relative to it), through the
run engine, so it is batched, tokened and awaited like any run. Linux shells only.
"""

from __future__ import annotations

from shlex import quote as shell_quote

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._results import listing
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._runner import CommandSpec
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._status import SUCCESS, is_terminal

GUARD_TIMEOUT = 30  # the check's own timeout on the instance


def guard_script(creates=None, removes=None):
    """Exits 0 and prints the reason when the guard holds (skip the run), 1 otherwise."""
    lines = []
    if creates:
        lines.append('if [ -e %s ]; then echo creates; exit 0; fi' % shell_quote(creates))
    if removes:
        lines.append('if [ ! -e %s ]; then echo removes; exit 0; fi' % shell_quote(removes))
    lines.append('exit 1')
    return '\n'.join(lines) + '\n'


def evaluate_guards(runner, targets, deadline, creates=None, removes=None, working_dir=None, username=None):
    """{instance_id: reason} for the instances where the guard holds. An instance where the check itself failed
    is not skipped: the real run reports the problem there."""
    guard = CommandSpec(content=guard_script(creates, removes), command_type='RunShellScript',
                        working_dir=working_dir, username=username, timeout=GUARD_TIMEOUT,
                        description='ansible creates/removes check')
    checked = runner.run(guard, targets, deadline, wait=True)
    if checked.error is not None:
        raise checked.error
    if checked.timed_out:
        raise CloudAssistantError('the creates/removes check did not finish within wait_timeout on: %s'
                                  % listing([i['instance_id'] for i in checked.instances
                                             if not is_terminal(i['invocation_status'])]))
    skipped = {}
    for entry in checked.instances:
        if entry['invocation_status'] != SUCCESS:
            continue
        why = (entry['output'] or '').strip().splitlines()
        if why and why[-1] == 'removes':
            skipped[entry['instance_id']] = 'skipped, since %s does not exist' % removes
        else:
            skipped[entry['instance_id']] = 'skipped, since %s exists' % creates
    return skipped
