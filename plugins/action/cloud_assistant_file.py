# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of cloud_assistant_file: reads ``src`` (or ``content``) on the controller, as ansible.builtin.copy
does.

``src`` is looked up like copy's (the ``files`` directory of the role or playbook, then as given) and, when it is
vault-encrypted, decrypted to a local temporary file unless ``decrypt`` is false (``DataLoader.get_real_file``,
removed in every case); ``content`` is
written to a local temporary file, as copy does. Either is then copied with the connection's ``put_file`` into
the task's temporary directory on the host that runs the module (with ``delegate_to`` that host, normally the
controller itself) and handed to the module as ``src``. The file's bytes never pass through the module's
arguments: a file of any size costs one local copy, binary files need no encoding, and the module's diff shows
``content`` as text (``content`` is ``no_log`` in the module, which would mask it there). The temporary
directory is removed when the task ends.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleError, AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._in_place import InPlaceModuleMixin

MODULE = 'alicloud_ops.cloud_assistant.cloud_assistant_file'


class ActionModule(InPlaceModuleMixin, ActionBase):

    TRANSFERS_FILES = True

    def _source(self, args):
        """(local path, is a temporary file of ours, is the loader's temporary file) of what to send."""
        if args.get('src') is not None and args.get('content') is not None:
            raise AnsibleActionFail('parameters are mutually exclusive: src|content')
        if args.get('content') is not None:
            content = args.pop('content')
            if isinstance(content, (dict, list)):
                content = json.dumps(content)
            fd, path = tempfile.mkstemp(dir=C.DEFAULT_LOCAL_TMP)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(to_bytes(content, errors='surrogate_or_strict'))
            return path, True, False
        try:
            source = self._find_needle('files', args['src'])
        except AnsibleError as exc:
            raise AnsibleActionFail('src: %s' % exc)
        if os.path.isdir(source):
            raise AnsibleActionFail('src: %s is a directory; cloud_assistant_file sends one file' % source)
        try:
            real = self._loader.get_real_file(source, decrypt=boolean(args.get('decrypt', True), strict=False))
        except AnsibleError as exc:
            raise AnsibleActionFail('src: %s' % exc)
        return real, False, real != source

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = dict(self._task.args)
        local = loaded = None
        try:
            if args.get('src') is not None or args.get('content') is not None:
                source, is_temporary, is_loaded = self._source(args)
                local = source if is_temporary else None
                loaded = source if is_loaded else None
                if self._connection._shell.tmpdir is None:
                    self._make_tmp_path()
                remote = self._connection._shell.join_path(self._connection._shell.tmpdir, 'source')
                self._transfer_file(source, remote)
                self._fixup_perms2((self._connection._shell.tmpdir, remote))
                args['src'] = remote
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        finally:
            if local:
                os.remove(local)
            if loaded:
                self._loader.cleanup_tmp_file(loaded)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
