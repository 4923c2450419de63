# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Part planning, and the compare and assembly scripts run for real with /bin/sh in a temporary directory."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import (
    LIMIT_BYTES,
    PART_BYTES,
    SEND_LIMIT_B64,
    attributes_differ,
    compare_script,
    finalize_script,
    is_text,
    min_send_calls,
    normalize_mode,
    parse_compare,
    parse_error,
    part_name,
    plan_payload,
    split_dest,
    staging,
)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_part_size_keeps_a_margin_below_the_limit_of_one_call():
    assert PART_BYTES == 24000 and LIMIT_BYTES == 24576
    assert len(__import__('base64').b64encode(b'x' * PART_BYTES)) == 32000 < SEND_LIMIT_B64
    assert len(__import__('base64').b64encode(b'x' * LIMIT_BYTES)) == SEND_LIMIT_B64


def test_small_file_is_sent_directly_and_uncompressed():
    payload = plan_payload(b'a' * PART_BYTES)
    assert payload.direct and not payload.compressed and payload.part_count == 1
    assert payload.checksum == sha(b'a' * PART_BYTES)


def test_empty_file_has_no_part_and_is_not_direct():
    payload = plan_payload(b'')
    assert payload.part_count == 0 and not payload.direct and payload.size == 0


def test_random_data_is_not_compressed_and_cut_into_minimal_parts():
    data = os.urandom(5 * 1024 * 1024)
    payload = plan_payload(data)
    assert not payload.compressed
    assert payload.part_count == 219 and min_send_calls(len(data), 1) == 214
    assert payload.part_count <= 1.03 * min_send_calls(len(data), 1)
    assert all(len(p) == PART_BYTES for p in payload.parts[:-1])
    assert b''.join(payload.parts) == data


def test_compressible_data_is_gzipped_and_checksum_stays_the_original():
    data = b'line of a log file\n' * 20000
    payload = plan_payload(data)
    assert payload.compressed and payload.part_count < len(data) // PART_BYTES
    assert gzip.decompress(b''.join(payload.parts)) == data
    assert payload.checksum == sha(data) and payload.size == len(data)
    assert not plan_payload(data, compress=False).compressed


@pytest.mark.parametrize('size, instances, calls', [(1, 1, 1), (0, 3, 1), (LIMIT_BYTES, 50, 1), (LIMIT_BYTES + 1, 50, 2),
                                                    (LIMIT_BYTES, 51, 2), (1024 * 1024, 20, 43)])
def test_min_send_calls(size, instances, calls):
    assert min_send_calls(size, instances) == calls


@pytest.mark.parametrize('value, expected', [('0644', '0644'), ('644', '0644'), (420, '0644'), ('4755', '4755'),
                                             (None, None), ('', None)])
def test_normalize_mode(value, expected):
    assert normalize_mode(value) == expected


@pytest.mark.parametrize('value', ['u+rwx', '0999', '12', '077777', True, -1, 0o10000])
def test_normalize_mode_refuses(value):
    with pytest.raises(ValueError):
        normalize_mode(value)


def test_staging_is_beside_dest_and_names_do_not_collide():
    stage = staging('/etc/app/app.conf', 'abc')
    assert stage.startswith('/etc/app/.ansible-ca-') and stage.endswith('-abc.parts')
    assert staging('/etc/app/other.conf', 'abc') != stage
    assert staging('/top', 'x').startswith('/.ansible-ca-')
    assert split_dest('/top') == ('/', 'top')
    assert part_name(7) == 'p000007'


def test_parse_compare_and_error():
    assert parse_compare('CAFILE gzip\nCAFILE missing\n') == {'exists': False, 'gzip': True, 'content': None}
    state = parse_compare('CAFILE file %s 644 5 0 0\nCAFILE owner root\nCAFILE group root\nCAFILE-CONTENT\naGVsbG8=\n'
                          % ('a' * 64))
    assert state['exists'] and state['mode'] == '0644' and state['content'] == b'hello' and not state['gzip']
    assert (state['owner'], state['group'], state['uid'], state['gid'], state['size']) == ('root', 'root', '0', '0', 5)
    # review finding 15: names with spaces (directory services) do not shift the other fields
    state = parse_compare('CAFILE file %s 640 7 1000 1001\nCAFILE owner John Smith\nCAFILE group domain users\n'
                          % ('b' * 64))
    assert (state['mode'], state['size'], state['owner'], state['group'], state['uid']) == (
        '0640', 7, 'John Smith', 'domain users', '1000')
    assert parse_compare('garbage') is None
    assert parse_error('x\nCAFILE error UserGroupNotExists group web does not exist\n') == (
        'UserGroupNotExists', 'group web does not exist')
    assert parse_error('') == (None, None)


def test_attributes_differ():
    state = {'mode': '0644', 'owner': 'root', 'group': 'root', 'uid': '0', 'gid': '0'}
    assert attributes_differ(state) == []
    assert attributes_differ(state, '644', '0', 'root') == []
    assert attributes_differ(state, '0600', 'nobody', 'nogroup') == ['mode', 'owner', 'group']


def test_is_text():
    assert is_text('héllo\n'.encode('utf-8'))
    assert not is_text(b'a\x00b') and not is_text(b'\xff\xfe')


# -- the scripts, run with /bin/sh on this machine ------------------------------------------------------------------
def sh(script):
    done = subprocess.run(['/bin/sh', '-c', script], capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stdout + done.stderr


def me():
    return str(os.getuid()), str(os.getgid())


def stage(dest, transfer_id, payload, count=None):
    stage_dir = staging(dest, transfer_id)
    os.makedirs(stage_dir)
    for n, part in enumerate(payload.parts[:count]):
        with open(os.path.join(stage_dir, part_name(n)), 'wb') as handle:
            handle.write(part)
    return stage_dir


def finalize(dest, transfer_id, payload, mode=None, overwrite=True):
    uid, gid = me()
    return sh(finalize_script(dest, transfer_id, payload.part_count, payload.compressed, payload.checksum,
                              mode, uid, gid, overwrite))


def leftovers(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith('.ansible-ca-'))


def test_compare_reports_missing_then_the_file(tmp_path):
    dest = str(tmp_path / 'f.txt')
    rc, out = sh(compare_script(dest, sha(b'hi\n')))
    assert rc == 0 and parse_compare(out)['exists'] is False
    (tmp_path / 'f.txt').write_bytes(b'old\n')
    os.chmod(dest, 0o640)
    rc, out = sh(compare_script(dest, sha(b'hi\n'), diff_limit=100))
    state = parse_compare(out)
    assert rc == 0 and state['exists'] and state['checksum'] == sha(b'old\n') and state['mode'] == '0640'
    assert state['content'] == b'old\n' and state['size'] == 4


def test_compare_refuses_unknown_owner_group_and_directory(tmp_path):
    rc, out = sh(compare_script(str(tmp_path / 'f'), 'x' * 64, owner='no-such-user-ca'))
    assert rc == 3 and parse_error(out)[0] == 'AccountNotExists'
    rc, out = sh(compare_script(str(tmp_path / 'f'), 'x' * 64, group='no-such-group-ca'))
    assert rc == 3 and parse_error(out)[0] == 'UserGroupNotExists'
    rc, out = sh(compare_script(str(tmp_path), 'x' * 64))
    assert rc == 3 and parse_error(out)[0] == 'FilePathInvalid'


def test_compare_matches_the_group_name_exactly_not_as_a_pattern(tmp_path):
    """Review finding 11: r..t is not the group root."""
    rc, out = sh(compare_script(str(tmp_path / 'f'), 'x' * 64, group='r..t'))
    assert rc == 3 and parse_error(out)[0] == 'UserGroupNotExists'
    rc, out = sh(compare_script(str(tmp_path / 'f'), 'x' * 64, group='root'))
    assert rc == 0 and parse_compare(out)['exists'] is False


@pytest.mark.parametrize('data', [os.urandom(3 * PART_BYTES + 17), b'compress me\n' * 10000])
def test_finalize_assembles_checks_and_renames(tmp_path, data):
    dest = str(tmp_path / 'sub' / 'f.bin')
    os.makedirs(str(tmp_path / 'sub'))
    payload = plan_payload(data)
    stage(dest, 't1', payload)
    rc, out = finalize(dest, 't1', payload, mode='0600')
    assert rc == 0, out
    with open(dest, 'rb') as handle:
        assert handle.read() == data
    assert oct(os.stat(dest).st_mode & 0o7777) == '0o600'
    assert leftovers(str(tmp_path / 'sub')) == []


def test_interrupted_transfer_leaves_no_file_and_no_parts(tmp_path):
    dest = str(tmp_path / 'f.bin')
    payload = plan_payload(os.urandom(4 * PART_BYTES))
    stage(dest, 't2', payload, count=2)
    rc, out = finalize(dest, 't2', payload)
    assert rc == 3 and parse_error(out)[0] == 'PartsMissing'
    assert not os.path.exists(dest) and leftovers(str(tmp_path)) == []


def test_corrupt_part_keeps_the_old_file(tmp_path):
    dest = tmp_path / 'f.bin'
    dest.write_bytes(b'old')
    payload = plan_payload(os.urandom(2 * PART_BYTES))
    stage_dir = stage(str(dest), 't3', payload)
    with open(os.path.join(stage_dir, part_name(1)), 'r+b') as handle:
        handle.write(b'X')
    rc, out = finalize(str(dest), 't3', payload)
    assert rc == 3 and parse_error(out)[0] == 'ChecksumMismatch'
    assert dest.read_bytes() == b'old' and leftovers(str(tmp_path)) == []


def test_overwrite_false_never_replaces(tmp_path):
    dest = tmp_path / 'f.bin'
    dest.write_bytes(b'theirs')
    payload = plan_payload(os.urandom(2 * PART_BYTES))
    stage(str(dest), 't4', payload)
    rc, out = finalize(str(dest), 't4', payload, overwrite=False)
    assert rc == 3 and parse_error(out)[0] == 'FileAlreadyExists'
    assert dest.read_bytes() == b'theirs' and leftovers(str(tmp_path)) == []


def test_attributes_only_and_empty_file(tmp_path):
    dest = tmp_path / 'f.txt'
    dest.write_bytes(b'same')
    os.chmod(str(dest), 0o644)
    payload = plan_payload(b'same')
    rc, out = finalize(str(dest), 't5', payload, mode='0600')
    assert rc == 0, out
    assert oct(os.stat(str(dest)).st_mode & 0o7777) == '0o600' and dest.read_bytes() == b'same'
    empty = tmp_path / 'new' / 'empty'
    rc, out = finalize(str(empty), 't6', plan_payload(b''))
    assert rc == 0, out
    assert empty.read_bytes() == b'' and oct(os.stat(str(empty)).st_mode & 0o7777) == '0o644'


def test_content_differs_without_parts_fails(tmp_path):
    dest = tmp_path / 'f.txt'
    dest.write_bytes(b'other')
    rc, out = finalize(str(dest), 't7', plan_payload(os.urandom(2 * PART_BYTES)))
    assert rc == 3 and parse_error(out)[0] == 'PartsMissing' and dest.read_bytes() == b'other'


# -- links and modes an attacker who can write to dest's directory could use (review findings 1, 2) -------------------
def test_a_link_at_the_old_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'precious')
    dest = tmp_path / 'f.bin'
    payload = plan_payload(os.urandom(2 * PART_BYTES))
    stage(str(dest), 't8', payload)
    link = staging(str(dest), 't8')[:-len('.parts')] + '.tmp'
    os.symlink(str(victim), link)
    rc, out = finalize(str(dest), 't8', payload, mode='0644')
    assert rc == 0, out
    assert victim.read_bytes() == b'precious'
    assert not os.path.islink(str(dest)) and dest.read_bytes() == b''.join(payload.parts)


@pytest.mark.parametrize('empty', [False, True])
def test_a_link_at_the_staging_directory_is_refused(tmp_path, empty):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    victim = elsewhere / '.assembled'
    victim.write_bytes(b'precious')
    dest = tmp_path / 'f.bin'
    payload = plan_payload(b'' if empty else os.urandom(2 * PART_BYTES))
    for n, part in enumerate(payload.parts):
        (elsewhere / part_name(n)).write_bytes(part)
    os.symlink(str(elsewhere), staging(str(dest), 't9'))
    rc, out = finalize(str(dest), 't9', payload)
    assert rc == 3 and parse_error(out)[0] == 'StagingInvalid', out
    assert victim.read_bytes() == b'precious' and not dest.exists()
    assert sorted(os.listdir(str(elsewhere))) == sorted(['.assembled'] + [part_name(n) for n in range(payload.part_count)])


@pytest.mark.skipif(os.getuid() != 0, reason='needs root to give the staging directory to another user')
def test_a_staging_directory_of_another_user_is_refused(tmp_path):
    dest = tmp_path / 'f.bin'
    payload = plan_payload(os.urandom(2 * PART_BYTES))
    stage_dir = stage(str(dest), 't10', payload)
    os.chown(stage_dir, 65534, 65534)
    rc, out = finalize(str(dest), 't10', payload)
    assert rc == 3 and parse_error(out)[0] == 'StagingInvalid', out
    assert not dest.exists() and os.path.isdir(stage_dir)


def test_the_assembled_file_is_private_until_renamed(tmp_path):
    """A sha256sum on PATH that records the mode of the file it checks (its stdin) and of the directory."""
    log = tmp_path / 'modes'
    tools = tmp_path / 'bin'
    tools.mkdir()
    real = subprocess.run(['/bin/sh', '-c', 'command -v sha256sum'], capture_output=True, text=True, check=True).stdout.strip()
    (tools / 'sha256sum').write_text('#!/bin/sh\nstat -L -c %%a /dev/stdin . >>%s\nexec %s "$@"\n' % (log, real))
    os.chmod(str(tools / 'sha256sum'), 0o755)
    dest = tmp_path / 'd' / 'f.bin'
    (tmp_path / 'd').mkdir()
    payload = plan_payload(os.urandom(2 * PART_BYTES))
    stage(str(dest), 't11', payload)
    uid, gid = me()
    assemble = finalize_script(str(dest), 't11', payload.part_count, False, payload.checksum, '0644', uid, gid)
    script = 'PATH=%s:$PATH\n' % tools + assemble
    rc, out = sh(script)
    assert rc == 0, out
    assert log.read_text().split() == ['600', '700']
    assert oct(os.stat(str(dest)).st_mode & 0o7777) == '0o644'
