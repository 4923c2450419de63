# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Ansible's own commands as a connection receives them: built by ansible-core's ``sh`` shell plugin and wrapped
as ``ActionBase._low_level_execute_command`` wraps them without become (``/bin/sh -c '<command> && sleep 0'``)."""

from __future__ import annotations

import shlex

from ansible.plugins.loader import shell_loader


def sh_shell():
    shell = shell_loader.get('sh')
    shell.set_options()
    return shell


def low_level_command(command):
    return '/bin/sh -c ' + shlex.quote(sh_shell().append_command(command, 'sleep 0'))


def mkdtemp_command(base, name='ansible-tmp-1.5-7-9'):
    """Ansible's command making its temporary directory ``name`` under ``base``, and the directory's path."""
    command = sh_shell()._mkdtemp2(basefile=name, system=False, tmpdir=str(base)).command
    return low_level_command(command), '%s/%s' % (base, name)
