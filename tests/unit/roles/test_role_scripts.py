# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shell scripts the roles send to instances, run here on the controller with stand-ins for the package
managers (patch.sh: apt-get and dnf answers, a mirror that fails) and in temporary directories (deploy.sh: the
release switch and its rollbacks; collect.sh: the cut-down loop). No API, no sandbox."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile

import pytest

ROLES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'roles')


def run(script, env, path_dir=None):
    full = dict(os.environ, **env)
    if path_dir:
        full['PATH'] = '%s:%s' % (path_dir, full['PATH'])
    return subprocess.run(['sh', os.path.join(ROLES, script)], env=full, capture_output=True, text=True, check=False,
                          timeout=60)


def fake(tmp_path, name, body):
    path = tmp_path / 'bin' / name
    path.parent.mkdir(exist_ok=True)
    path.write_text('#!/bin/sh\n' + body)
    path.chmod(0o755)
    return str(path.parent)


def patch_env(action, manager='auto', packages='', refresh='0'):
    return {'PATCH_ACTION': action, 'PATCH_MANAGER': manager, 'PATCH_PACKAGES': packages, 'PATCH_REFRESH': refresh,
            'PATCH_OPTIONS': '', 'PATCH_REFRESH_TIMEOUT': '10', 'PATCH_LIST_MAX': '2'}


APT_SIMULATION = '''case "$*" in
*update*) if [ -n "$FAIL_UPDATE" ]; then
              echo "Err:1 http://mirror.example bookworm InRelease"
              echo "W: Failed to fetch http://mirror.example/dists/bookworm/InRelease  Could not resolve 'mirror.example'"
          fi ;;
*-s*) echo "Inst libssl3 [3.0.19-1] (3.0.20-1 Debian:12 [amd64])"
      echo "Inst openssl [3.0.19-1] (3.0.20-1 Debian:12 [amd64])"
      echo "Inst newdep (1.0 Debian:12 [amd64])" ;;
*) echo "upgraded" ;;
esac
'''


def report(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('manager', ['auto', 'apt'])
def test_patch_check_lists_updates_from_apt(tmp_path, manager):
    bindir = fake(tmp_path, 'apt-get', APT_SIMULATION)
    result = run('patch/files/patch.sh', patch_env('check', manager), bindir)
    got = report(result)
    assert result.returncode == 0
    assert got['manager'] == 'apt' and got['status'] == 'updates_available'
    assert got['count'] == 3
    assert got['updates'] == [{'name': 'libssl3', 'current': '3.0.19-1', 'available': '3.0.20-1'},
                              {'name': 'openssl', 'current': '3.0.19-1', 'available': '3.0.20-1'}]


def test_patch_apply_with_an_unreachable_mirror_installs_nothing(tmp_path):
    bindir = fake(tmp_path, 'apt-get', 'echo "$*" >>"%s"\n%s' % (tmp_path / 'calls', APT_SIMULATION))
    result = run('patch/files/patch.sh', dict(patch_env('apply', 'apt'), FAIL_UPDATE='1'), bindir)
    got = report(result)
    assert result.returncode == 3
    assert got['status'] == 'mirror_unreachable'
    assert "Could not resolve 'mirror.example'" in got['message']
    calls = (tmp_path / 'calls').read_text()
    assert 'update' in calls and 'upgrade' not in calls


def test_patch_check_with_a_failed_refresh_uses_the_cache(tmp_path):
    bindir = fake(tmp_path, 'apt-get', APT_SIMULATION)
    got = report(run('patch/files/patch.sh', dict(patch_env('check', 'apt', refresh='1'), FAIL_UPDATE='1'), bindir))
    assert got['status'] == 'updates_available'
    assert got['message'].startswith('3 update(s) available; metadata not refreshed, the cache was used: W: Failed')


def test_patch_dnf_check_update(tmp_path):
    bindir = fake(tmp_path, 'dnf', '''case "$*" in
*check-update*) printf '\\nopenssl.x86_64   1:3.0.7-25.el9   baseos\\nkernel.x86_64   5.14.0-427.el9   baseos\\n'; exit 100 ;;
esac
''')
    got = report(run('patch/files/patch.sh', patch_env('check', 'dnf'), bindir))
    assert got['manager'] == 'dnf' and got['status'] == 'updates_available'
    assert got['updates'] == [{'name': 'openssl', 'current': '', 'available': '1:3.0.7-25.el9'},
                              {'name': 'kernel', 'current': '', 'available': '5.14.0-427.el9'}]


def test_patch_dnf_apply_with_an_unreachable_mirror(tmp_path):
    bindir = fake(tmp_path, 'dnf', '''case "$*" in
*makecache*) echo "Curl error (6): Couldn't resolve host name for https://mirrors.example/repomd.xml"; exit 1 ;;
esac
''')
    result = run('patch/files/patch.sh', patch_env('apply', 'dnf'), bindir)
    assert result.returncode == 3
    assert report(result)['message'].endswith("Curl error (6): Couldn't resolve host name for https://mirrors.example/repomd.xml")


def test_patch_without_a_package_manager(tmp_path):
    result = run('patch/files/patch.sh', patch_env('check', 'yum'), fake(tmp_path, 'true', ''))
    if result.returncode == 4 and report(result)['status'] == 'error':
        assert report(result)['message'] == 'yum not found'
    else:
        pytest.skip('yum is installed here')


def deploy(tmp_path, version, content, health='true', broken=False):
    artifact = tmp_path / 'incoming'
    artifact.write_text(content)
    env = {'DEPLOY_ROOT': str(tmp_path / 'app'), 'DEPLOY_VERSION': version, 'DEPLOY_ARTIFACT': str(artifact),
           'DEPLOY_UNPACK': '0', 'DEPLOY_NAME': 'app.txt', 'DEPLOY_MODE': '0644', 'DEPLOY_SERVICE': '',
           'DEPLOY_RESTART': 'cp "$DEPLOY_RELEASE/app.txt" "$DEPLOY_ROOT/running"',
           'DEPLOY_HEALTH': '! grep -q broken "$DEPLOY_ROOT/running"' if broken else health,
           'DEPLOY_HEALTH_RETRIES': '2', 'DEPLOY_HEALTH_DELAY': '0', 'DEPLOY_KEEP': '2'}
    result = run('deploy/files/deploy.sh', env)
    return result.returncode, report(result)


def state(tmp_path):
    root = tmp_path / 'app'
    return (os.readlink(str(root / 'current')), (root / 'running').read_text(), sorted(os.listdir(str(root / 'releases'))))


def test_deploy_switch_unchanged_rollback_and_pruning(tmp_path):
    assert deploy(tmp_path, 'v1', 'one')[1]['status'] == 'deployed'
    assert deploy(tmp_path, 'v1', 'one')[1]['status'] == 'unchanged'
    code, got = deploy(tmp_path, 'v2', 'broken two', broken=True)
    assert (code, got['status'], got['previous']) == (2, 'rolled_back', 'v1')
    assert state(tmp_path) == ('releases/v1', 'one', ['v1'])
    for version in ('v3', 'v4', 'v5'):
        assert deploy(tmp_path, version, version)[1]['status'] == 'deployed'
    # the newest two are kept
    assert state(tmp_path) == ('releases/v5', 'v5', ['v4', 'v5'])


def test_deploy_same_version_new_content_rolled_back_keeps_the_old_content(tmp_path):
    deploy(tmp_path, 'v1', 'one')
    code, got = deploy(tmp_path, 'v1', 'broken one', broken=True)
    assert (code, got['status']) == (2, 'rolled_back')
    assert state(tmp_path) == ('releases/v1', 'one', ['v1'])
    assert (tmp_path / 'app' / 'releases' / 'v1' / 'app.txt').read_text() == 'one'


def test_deploy_first_release_failing_has_nothing_to_roll_back_to(tmp_path):
    code, got = deploy(tmp_path, 'v1', 'x', health='false')
    assert (code, got['status']) == (1, 'failed')
    assert got['message'].endswith('no previous release to roll back to')


def test_collect_cuts_down_until_it_fits(tmp_path):
    log = tmp_path / 'logs' / 'big.log'
    log.parent.mkdir()
    log.write_text(''.join('%06d %s\n' % (i, base64.b64encode(os.urandom(45)).decode()) for i in range(4000)))
    result = run('collect_logs/files/collect.sh', {'COLLECT_PATHS': '%s/*.log\n/nonexistent/*.log' % log.parent,
                                                   'COLLECT_LINES': '0', 'COLLECT_LIMIT': '22000'})
    header, data = result.stdout.splitlines()[:2]
    got = json.loads(header)
    assert got['files'] == 1 and got['missing'] == ['/nonexistent/*.log']
    assert got['truncated'] and got['fits'] and got['bytes'] == len(data) <= 22000
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(data)), mode='r:gz') as tar:
        member = tar.extractfile('.' + str(log))
        lines = member.read().decode().splitlines()
    assert len(lines) == got['lines'] and lines[-1].startswith('003999 ')
