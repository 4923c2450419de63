# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A real AnsiballZ payload (ansible.builtin.ping with arguments), built by Ansible's own module_common in a child
process (it needs the plugin loader, which the test process should not initialise), for the running Python."""

from __future__ import annotations

import os
import subprocess
import sys

PING_DATA = 'caf\u00e9 \'quoted\' "x"'

BUILD = r'''
import sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
from ansible.executor.module_common import modify_module
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
import ansible.modules.ping as ping
built = modify_module(module_name='ping', module_path=ping.__file__, module_args={'data': sys.argv[1]},
                      templar=Templar(loader=DataLoader()), task_vars={'ansible_python_interpreter': sys.executable},
                      module_compression='ZIP_DEFLATED')
sys.stdout.buffer.write(built.b_module_data)
'''


def build_ping_payload(work_dir):
    """The payload's bytes; ``work_dir``: Ansible's local temporary directory for the build."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), ANSIBLE_LOCAL_TEMP=str(work_dir),
               ANSIBLE_HOME=str(work_dir))
    done = subprocess.run([sys.executable, '-c', BUILD, PING_DATA], capture_output=True, env=env, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise AssertionError('building the payload failed: %s' % done.stderr.decode('utf-8', 'replace')[-2000:])
    if not done.stdout.startswith(b'#!') or b'_ANSIBALLZ_WRAPPER = True' not in done.stdout:
        raise AssertionError('not an AnsiballZ payload: %r' % done.stdout[:200])
    return done.stdout
