# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cloud_assistant_file: reads ``src`` on the controller, as ansible.builtin.copy does.

``src`` is looked up like copy's (the ``files`` directory of the role or playbook, then as given), then copied
with the connection's ``put_file`` into the task's temporary directory on the host that runs the module (with
``delegate_to`` that host, normally the controller itself) and handed to the module as that path. The file's
bytes never pass through the module's arguments, so a file of any size costs no more than one local copy, and
binary files need no encoding. The temporary directory is removed when the task ends. ``content`` is passed on
as it is.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError, AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE = 'alicloud_ops.cloud_assistant.cloud_assistant_file'


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        try:
            src = args.get('src')
            if src is not None:
                if args.get('content') is not None:
                    raise AnsibleActionFail('parameters are mutually exclusive: src|content')
                try:
                    source = self._find_needle('files', src)
                except AnsibleError as exc:
                    raise AnsibleActionFail('src: %s' % exc)
                if os.path.isdir(source):
                    raise AnsibleActionFail('src: %s is a directory; cloud_assistant_file sends one file' % source)
                if self._connection._shell.tmpdir is None:
                    self._make_tmp_path()
                remote = self._connection._shell.join_path(self._connection._shell.tmpdir, 'source')
                self._transfer_file(source, remote)
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
                args['src'] = remote
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
