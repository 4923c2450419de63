# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the cloud_assistant connection runs on an instance: the frames, the AnsiballZ split and the module-file
recipe as pure logic, then the generated scripts EXECUTED with /bin/sh (and the loader with Python) in a temporary
directory, stdout and stderr combined as Cloud Assistant returns them."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import zipfile
import zlib

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._file_parts import part_name
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils import _remote_exec as rx
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._remote_exec import (
    CHUNK_BYTES,
    INLINE_MEMBER_BYTES,
    OUTPUT_BUDGET,
    SCRIPT_BUDGET,
    WORK_PREFIX,
    AnsiballZ,
    ansiballz_plan,
    chunk_count,
    chunk_script,
    cleanup_script,
    digest,
    exec_script,
    fetch_script,
    looks_like_instance_id,
    parse_fetch,
    parse_frame,
    split_ansiballz,
    strip_become_success,
    unpack,
)
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.ansible_shell import low_level_command, sh_shell
from ansible_collections.alicloud_ops.cloud_assistant.tests.unit.plugins.ansiballz_payload import PING_DATA, build_ping_payload


def b64(data):
    return base64.b64encode(data)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def recipe_of(plan):
    return json.loads(zlib.decompress(base64.b64decode(plan.recipe)))


# ----------------------------------------------------------------------------------------------------------------
# Frames

def test_instance_ids():
    assert looks_like_instance_id('i-bp1abcdefghijklmnopq')
    assert looks_like_instance_id('i-sandbox0001')
    for value in (None, '', 'web1', 'i-', 'i-A', 'i-Bp1', '10.0.0.1', 'x-i-bp1abc', 'i-bp1abc\n', 'i-bp1 abc'):
        assert not looks_like_instance_id(value), value


def test_result_frame():
    frame = parse_frame(b'ACA1 R 3 0 5 2 17 20\n' + b64(b'hello') + b'\n' + b64(b'er') + b'\n')
    assert (frame.kind, frame.rc, frame.compressed, frame.out_len, frame.err_len) == ('R', 3, False, 5, 2)
    assert (frame.out, frame.err, frame.elapsed_ms, frame.script_ms) == (b'hello', b'er', 17, 20)


def test_result_frame_after_noise_and_with_empty_streams():
    frame = parse_frame(b'agent says hi\nACA1 R 0 1 0 0 - -\n\n\n')
    assert (frame.kind, frame.rc, frame.compressed, frame.out, frame.err) == ('R', 0, True, b'', b'')
    assert frame.elapsed_ms is None and frame.script_ms is None      # the instance's date could not tell


def test_result_frame_with_negative_and_large_exit_codes():
    assert parse_frame(b'ACA1 R 255 0 0 0 3 4\n\n\n').rc == 255
    assert parse_frame(b'ACA1 R -1 0 0 0 3 4\n\n\n').rc == -1


def test_more_frame_keeps_the_whole_work_dir():
    frame = parse_frame(b'ACA1 M 2 1 30000 12 2500 2600 /tmp/my dir/.ansible-ca-abc\n')
    assert (frame.kind, frame.rc, frame.compressed, frame.out_len, frame.err_len) == ('M', 2, True, 30000, 12)
    assert (frame.work_dir, frame.elapsed_ms, frame.script_ms) == ('/tmp/my dir/.ansible-ca-abc', 2500, 2600)


def test_missing_error_and_chunk_frames():
    frame = parse_frame(b'ACA1 X aaa bbb\n')
    assert (frame.kind, frame.missing) == ('X', ['aaa', 'bbb'])
    frame = parse_frame(b'ACA1 E PartsMissing the parts sent did not arrive\n')
    assert (frame.kind, frame.error) == ('E', 'PartsMissing the parts sent did not arrive')
    frame = parse_frame(b'ACA1 C\n' + b64(b'\x00\xffpiece') + b'\n')
    assert (frame.kind, frame.chunk) == ('C', b'\x00\xffpiece')


@pytest.mark.parametrize('output', [
    None, b'', b'hello\nworld\n', b'ACA1\n', b'ACA1 Q 1 2\n', b'ACA2 R 0 0 0 0\n\n\n', b' ACA1 R 0 0 0 0\n\n\n',
    b'ACA1 R 0 0\n', b'ACA1 R x 0 1 1\nYQ==\nYQ==\n', b'ACA1 M 0 0 1 1\n', b'ACA1 M zero 0 1 1 /tmp/.ansible-ca-x\n',
    b'ACA1 R 0 0 3 0\n!!!!\n\n', b'ACA1 C\n!!!!\n',
])
def test_garbage_is_no_frame(output):
    assert parse_frame(output).kind is None


@pytest.mark.parametrize('output', [
    b'ACA1 R 0 0 5 0 1 1\naGVs',             # the output stream cut short (3 of 5 bytes, valid Base64)
    b'ACA1 R 0 0 5 0 1 1\n',                 # no stream lines at all
    b'ACA1 R 0 0 5 2 1 1\naGVsbG8=\n',       # the error stream missing
    b'ACA1 R 0 0 0 2 1 1\n\nZXJy\n',         # longer than announced
])
def test_truncated_result_is_no_frame(output):
    # a result whose streams do not have the lengths the header announces must not pass for a complete one
    assert parse_frame(output).kind is None


def test_unpack():
    assert unpack(b'plain', False) == b'plain'
    assert unpack(gzip.compress(b'zipped'), True) == b'zipped'


def test_chunk_count():
    assert [chunk_count(n) for n in (0, 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES)] == [1, 1, 1, 2, 3]
    assert chunk_count('40000') == 3


def test_strip_become_success():
    marker = 'BECOME-SUCCESS-abcdef'
    assert strip_become_success(b'BECOME-SUCCESS-abcdef\n{"x": 1}\n', marker) == b'{"x": 1}\n'
    assert strip_become_success(b'motd\nBECOME-SUCCESS-abcdef\r\n{"x": 1}', marker.encode()) == b'motd\n{"x": 1}'
    assert strip_become_success(b'{"x": 1}\n', marker) == b'{"x": 1}\n'
    assert strip_become_success(b'{"x": 1}\n', None) == b'{"x": 1}\n'
    # only a whole line, only near the top, only once
    assert strip_become_success(b'say BECOME-SUCCESS-abcdef\n', marker) == b'say BECOME-SUCCESS-abcdef\n'
    late = b'1\n2\n3\n4\n5\nBECOME-SUCCESS-abcdef\n'
    assert strip_become_success(late, marker) == late
    assert strip_become_success(b'BECOME-SUCCESS-abcdef\nBECOME-SUCCESS-abcdef\n', marker) == b'BECOME-SUCCESS-abcdef\n'


def test_parse_fetch():
    answer = parse_fetch(b'ACA1 F ' + b'a' * 64 + b' 1 4 12 /tmp/.ansible-ca-x\n' + b64(b'\x1f\x8bzz') + b'\n')
    assert answer == ('a' * 64, True, 4, '/tmp/.ansible-ca-x', b'\x1f\x8bzz', 12)
    # too big for the output: no data line, read in pieces from the work directory; no time (no nanoseconds there)
    assert parse_fetch(b'ACA1 F ' + b'b' * 64 + b' 0 90000 - /tmp/.ansible-ca-y\n') == (
        'b' * 64, False, 90000, '/tmp/.ansible-ca-y', None, None)
    # an empty file, uncompressed: inline and empty
    assert parse_fetch(b'ACA1 F ' + b'c' * 64 + b' 0 0 3 /tmp/.ansible-ca-z\n\n')[4] == b''
    frame = parse_fetch(b'ACA1 E NotFound /etc/nope does not exist\n')
    assert (frame.kind, frame.error) == ('E', 'NotFound /etc/nope does not exist')
    assert parse_fetch(b'garbage\n').kind is None
    assert parse_fetch(b'ACA1 F short\n').kind is None
    assert parse_fetch(b'ACA1 F ' + b'd' * 64 + b' 0 many 3 /tmp/.ansible-ca-z\n\n').kind is None
    assert parse_fetch(b'ACA1 F ' + b'd' * 64 + b' 0 3 3 /tmp/.ansible-ca-z\n!!!!\n').kind is None


# ----------------------------------------------------------------------------------------------------------------
# A real AnsiballZ payload (built once, in a child process, by Ansible's own module_common)

@pytest.fixture(scope='module')
def payload_bytes(tmp_path_factory):
    return build_ping_payload(tmp_path_factory.mktemp('ansiballz'))


def run_module(data, tmp_path):
    """Run a module payload as pipelining does (the payload on the interpreter's stdin); its JSON answer."""
    done = subprocess.run([sys.executable], input=data, capture_output=True, timeout=60, check=False, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_split_ansiballz_cuts_a_real_payload_without_losing_a_byte(payload_bytes):
    payload = split_ansiballz(payload_bytes)
    assert payload is not None
    assert payload.interpreter == sys.executable
    assert payload.module_path == 'ansible/modules/ping.py'
    assert payload.call.startswith(b'\nif __name__ == "__main__":') and payload.call.endswith(b"zip_data='")
    assert b'caf' in payload.call and b"zip_data='" not in payload.head
    start = len(payload.head) + len(payload.call)
    original_zip = payload_bytes[start:len(payload_bytes) - len(payload.tail)]
    assert payload.head + payload.call + original_zip + payload.tail == payload_bytes
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(original_zip)))
    assert payload.members == [(info.filename, archive.read(info)) for info in archive.infolist()]
    names = [name for name, _data in payload.members]
    assert 'ansible/module_utils/basic.py' in names and 'ansible/modules/ping.py' in names


def test_split_ansiballz_refuses_what_is_not_a_payload(payload_bytes):
    assert split_ansiballz(b'') is None
    assert split_ansiballz(None) is None
    assert split_ansiballz(b'#!/bin/sh\necho hello\n') is None
    assert split_ansiballz(b'\x7fELF\x02\x01\x01' + b'\x00' * 100) is None
    assert split_ansiballz(payload_bytes[payload_bytes.index(b'\n') + 1:]) is None         # no shebang
    assert split_ansiballz(payload_bytes.replace(b'_ANSIBALLZ_WRAPPER = True', b'_OTHER = True')) is None
    env_shebang = b'#!/usr/bin/env python3' + payload_bytes[payload_bytes.index(b'\n'):]
    assert split_ansiballz(env_shebang) is None                                               # interpreter with args
    assert split_ansiballz(payload_bytes.replace(b"zip_data='UEsD", b"zip_data='AAAA")) is None  # not a zip
    main = b'\nif __name__ == "__main__":'
    assert split_ansiballz(payload_bytes.replace(main, main + b'\n    pass' + main)) is None   # two entry points
    twice = payload_bytes.replace(b'\nextensions=', b"\nzip_data='QUFB',\nextensions=")
    assert twice != payload_bytes and split_ansiballz(twice) is None                          # two zips


def test_plan_names_every_file_by_digest_and_carries_the_module_inline(payload_bytes):
    payload = split_ansiballz(payload_bytes)
    plan = ansiballz_plan(payload)
    recipe = recipe_of(plan)
    assert recipe['c'].encode('latin-1') == payload.call and recipe['t'].encode('latin-1') == payload.tail
    entries = recipe['f']
    assert entries[0] == ['', digest(payload.head), None]
    assert [name for name, _key, _inline in entries[1:]] == [name for name, _data in payload.members]
    for (name, key, inline), (_name, data) in zip(entries[1:], payload.members):
        assert key == digest(data) and len(key) == 40
        if name == 'ansible/modules/ping.py':
            assert inline.encode('latin-1') == data
        else:
            assert inline is None
    assert plan.blob is None
    assert set(plan.sizes) == set(key for _name, key, _inline in entries)
    assert plan.sizes[digest(payload.head)] == len(payload.head)


def test_plan_blob_holds_exactly_the_digests_to_send(payload_bytes):
    payload = split_ansiballz(payload_bytes)
    data = dict(payload.members)
    empty = digest(b'')                                      # several empty __init__.py share one digest
    assert sum(1 for _name, content in payload.members if content == b'') > 1
    send = [digest(data['ansible/module_utils/basic.py']), empty, digest(payload.head),
            digest(data['ansible/modules/ping.py']),          # inline: never in the blob
            'f' * 40]                                         # not in this payload: ignored
    plan = ansiballz_plan(payload, send=send)
    archive = zipfile.ZipFile(io.BytesIO(plan.blob))
    names = archive.namelist()
    assert sorted(names) == sorted([digest(data['ansible/module_utils/basic.py']), empty, digest(payload.head)])
    for name in names:
        assert digest(archive.read(name)) == name
    assert ansiballz_plan(payload, send=['f' * 40]).blob is None


def test_inline_module_false_names_the_module_file_by_digest_too(payload_bytes):
    payload = split_ansiballz(payload_bytes)
    entries = recipe_of(ansiballz_plan(payload, inline_module=False))['f']
    assert all(inline is None for _name, _key, inline in entries)
    module = dict(payload.members)['ansible/modules/ping.py']
    plan = ansiballz_plan(payload, send=[digest(module)], inline_module=False)
    assert zipfile.ZipFile(io.BytesIO(plan.blob)).namelist() == [digest(module)]


def test_a_large_module_file_is_not_inline():
    big = b'# big\n' * (INLINE_MEMBER_BYTES // 6 + 10)
    payload = AnsiballZ('/usr/bin/python3', b'#!/usr/bin/python3\nhead\n', b'call', b'tail', [('a/m.py', big)], 'a/m.py')
    assert recipe_of(ansiballz_plan(payload))['f'][1] == ['a/m.py', digest(big), None]


# ----------------------------------------------------------------------------------------------------------------
# The scripts, executed

@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A TMPDIR of its own for the scripts, and a module cache directory in tmp_path."""
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    monkeypatch.setenv('TMPDIR', str(tmp))
    return {'tmp': tmp, 'cache': str(tmp_path / 'cache'), 'root': tmp_path}


def sh(script, env=None):
    """Run a script as Cloud Assistant does: /bin/sh, stdout and stderr in one stream."""
    done = subprocess.run(['/bin/sh', '-c', script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert done.returncode == 0, done.stdout
    return done.stdout


def work_dirs(tmp):
    return sorted(name for name in os.listdir(str(tmp)) if name.startswith(WORK_PREFIX))


def streams(frame):
    return unpack(frame.out, frame.compressed), unpack(frame.err, frame.compressed)


def read_back(frame, env=None):
    """What the connection does with an M frame: every piece of both streams with chunk_script, then cleanup."""
    out = b''.join(parse_frame(sh(chunk_script(frame.work_dir, 'o', i), env)).chunk for i in range(chunk_count(frame.out_len)))
    err = b''.join(parse_frame(sh(chunk_script(frame.work_dir, 'e', i), env)).chunk for i in range(chunk_count(frame.err_len)))
    assert len(out) == frame.out_len and len(err) == frame.err_len
    sh(cleanup_script(frame.work_dir), env)
    return unpack(out, frame.compressed), unpack(err, frame.compressed)


def without_gzip(tmp_path):
    """An environment whose PATH has every tool the scripts use except gzip."""
    bin_dir = tmp_path / 'bin-no-gzip'
    bin_dir.mkdir()
    for tool in ('mktemp', 'cat', 'base64', 'tr', 'wc', 'rm', 'mv', 'dd', 'sha256sum', 'cut', 'sleep', 'head', 'id',
                 'printf', 'echo', 'ls', 'sh'):
        found = shutil.which(tool)
        if found:
            os.symlink(found, str(bin_dir / tool))
    assert not (bin_dir / 'gzip').exists()
    return dict(os.environ, PATH=str(bin_dir))


def test_exec_without_stdin_keeps_streams_and_exit_code_apart(sandbox):
    out = sh(exec_script('echo out; echo err >&2; cat; exit 3'))
    frame = parse_frame(out)
    assert (frame.kind, frame.rc) == ('R', 3)
    assert 0 <= frame.elapsed_ms <= frame.script_ms < 5000
    assert streams(frame) == (b'out\n', b'err\n')
    assert work_dirs(sandbox['tmp']) == []


def test_exec_quotes_the_command(sandbox):
    command = 'printf "%s|" "it\'s" "$TMPDIR" \'$x\' "a  b"'
    frame = parse_frame(sh(exec_script(command)))
    assert streams(frame)[0] == ("it's|%s|$x|a  b|" % sandbox['tmp']).encode()


def test_exec_runs_in_the_home_directory_as_over_ssh(sandbox):
    home = sandbox['root'] / 'home'
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    assert streams(parse_frame(sh(exec_script('pwd'), env)))[0] == ('%s\n' % home).encode()
    # no home, or one that cannot be entered: /
    env['HOME'] = str(sandbox['root'] / 'missing')
    assert streams(parse_frame(sh(exec_script('pwd'), env)))[0] == b'/\n'
    env.pop('HOME')
    assert streams(parse_frame(sh(exec_script('pwd'), env)))[0] == b'/\n'


def test_exec_reports_what_echo_tilde_prints_when_asked(sandbox):
    home = sandbox['root'] / 'home.d'
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    frame = parse_frame(sh(exec_script('echo hi', home='~'), env))
    assert (frame.kind, frame.home, streams(frame)[0]) == ('R', str(home), b'hi\n')
    assert parse_frame(sh(exec_script('echo hi'), env)).home is None                # not asked: not printed
    # what the command itself would print, from another directory too
    frame = parse_frame(sh(exec_script('cd /; /bin/sh -c "echo ~"', home='~'), env))
    assert streams(frame)[0] == ('%s\n' % frame.home).encode()
    # a home the one-line frame cannot carry as it is: not reported (Ansible's own echo ~ asks it then)
    for odd in ('with space', 'semi;colon'):
        (sandbox['root'] / odd).mkdir()
        env['HOME'] = str(sandbox['root'] / odd)
        frame = parse_frame(sh(exec_script('true', home='~'), env))
        assert (frame.kind, frame.home) == ('R', None)
    # a remote user's home as Ansible asks it (echo ~user), and only names that can go in a command as they are
    user = pwd.getpwuid(os.getuid()).pw_name
    frame = parse_frame(sh(exec_script('true', home=rx.home_expression(user)), env))
    assert frame.home == pwd.getpwuid(os.getuid()).pw_dir
    assert rx.home_expression(None) == '~' and rx.home_expression('deploy-user') == '~deploy-user'
    assert rx.home_expression("x'; rm -rf /") is None and rx.home_expression('Admin') is None
    with pytest.raises(ValueError):
        exec_script('true', home="~x'y")
    # what the controller accepts as a home, whatever the instance printed
    assert parse_frame(b'ACA1 H /h\xc3\xa9\nACA1 R 0 0 0 0 1 2\n\n\n').home is None
    assert parse_frame(b'ACA1 H relative\nACA1 R 0 0 0 0 1 2\n\n\n').home is None
    # a frame that is not whole says nothing, not even the home
    assert parse_frame(b'ACA1 H /root\nACA1 R 0 0 5 0 1 2\naGk=\n\n').kind is None
    assert parse_frame(b'ACA1 H /root\nACA1 R 0 0 0 0 1 2\n\n\n').home == '/root'


def test_exec_with_inline_stdin(sandbox):
    frame = parse_frame(sh(exec_script('cat; echo; wc -c >&2', stdin=b'hello\nworld')))
    assert (frame.kind, frame.rc) == ('R', 0)
    out, err = streams(frame)
    assert out == b'hello\nworld\n' and err.strip() == b'0'


def test_exec_with_binary_stdin_and_binary_output(sandbox):
    data = bytes(bytearray(range(256))) * 8 + b'\r\n\x00ACA1 R 0 0 0 0\n'
    frame = parse_frame(sh(exec_script('cat; printf "\\000\\377" >&2', stdin=data)))
    assert streams(frame) == (data, b'\x00\xff')


def test_exec_without_gzip_on_the_instance(sandbox):
    env = without_gzip(sandbox['root'])
    frame = parse_frame(sh(exec_script('echo out; echo err >&2; exit 7'), env))
    assert (frame.kind, frame.rc, frame.compressed) == ('R', 7, False)
    assert streams(frame) == (b'out\n', b'err\n')
    assert frame.elapsed_ms is None and frame.script_ms is None   # no date on that PATH: unknown, not wrong


def test_exec_with_inline_stdin_without_gzip_on_the_instance(sandbox):
    data = b'hello\x00\xff' * 100
    frame = parse_frame(sh(exec_script('cat', stdin=data), without_gzip(sandbox['root'])))
    assert (frame.kind, frame.compressed) == ('R', False)
    assert streams(frame)[0] == data


def test_exec_output_over_the_budget_is_read_back_whole_in_pieces(sandbox):
    data = os.urandom(CHUNK_BYTES * 2 + 123)          # incompressible: more than the output the service keeps
    err = os.urandom(5000)
    (sandbox['root'] / 'o.bin').write_bytes(data)
    (sandbox['root'] / 'e.bin').write_bytes(err)
    output = sh(exec_script('cat %s; cat %s >&2; exit 4' % (sandbox['root'] / 'o.bin', sandbox['root'] / 'e.bin')))
    assert len(output) < 200
    frame = parse_frame(output)
    assert (frame.kind, frame.rc) == ('M', 4)
    assert work_dirs(sandbox['tmp']) == [os.path.basename(frame.work_dir)]
    assert read_back(frame) == (data, err)
    assert work_dirs(sandbox['tmp']) == []
    # the output is gone: a piece asked for now says so
    assert parse_frame(sh(chunk_script(frame.work_dir, 'o', 0))).kind == 'E'


def test_exec_output_over_the_budget_without_gzip(sandbox):
    env = without_gzip(sandbox['root'])
    frame = parse_frame(sh(exec_script('i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i + 1)); done'), env))
    assert (frame.kind, frame.compressed) == ('M', False)
    out, err = read_back(frame, env)
    assert out.count(b'\n') == 3000 and out.endswith(b'line 2999\n') and err == b''


def test_large_compressible_output_fits_in_one_frame(sandbox):
    output = sh(exec_script('head -c 300000 /dev/zero'))
    assert len(output) <= OUTPUT_BUDGET + 100
    frame = parse_frame(output)
    assert (frame.kind, frame.compressed) == ('R', True)
    assert streams(frame)[0] == b'\x00' * 300000


def test_each_frame_fits_in_what_the_service_keeps(sandbox):
    # the largest output that still travels inline, and the pieces of the largest stream
    size = OUTPUT_BUDGET // 4 * 3 - 200
    (sandbox['root'] / 'r.bin').write_bytes(os.urandom(size))
    output = sh(exec_script('cat %s' % (sandbox['root'] / 'r.bin')))
    assert parse_frame(output).kind == 'R' and len(output) <= 24576
    (sandbox['root'] / 'm.bin').write_bytes(os.urandom(CHUNK_BYTES * 2))
    frame = parse_frame(sh(exec_script('cat %s' % (sandbox['root'] / 'm.bin'))))
    piece = sh(chunk_script(frame.work_dir, 'o', 0))
    assert len(piece) <= 24576
    sh(cleanup_script(frame.work_dir))


def stage_parts(directory, blob, part_bytes=1000):
    os.makedirs(str(directory))
    for index, start in enumerate(range(0, len(blob), part_bytes)):
        (directory / part_name(index)).write_bytes(blob[start:start + part_bytes])
    return str(directory), len(blob), sha(blob)


def test_exec_with_stdin_from_parts(sandbox):
    data = os.urandom(25000)
    parts = stage_parts(sandbox['root'] / 'stage', data)
    frame = parse_frame(sh(exec_script('sha256sum | cut -c1-64', parts=parts)))
    assert streams(frame)[0] == (sha(data) + '\n').encode()
    assert not os.path.exists(parts[0])             # the staging directory is removed


def test_exec_refuses_corrupt_or_missing_parts(sandbox, monkeypatch):
    data = os.urandom(3000)
    staged = stage_parts(sandbox['root'] / 'stage', data)
    frame = parse_frame(sh(exec_script('cat', parts=(staged[0], staged[1], sha(b'other')))))
    assert frame.kind == 'E' and frame.error.startswith('PartsCorrupt')
    monkeypatch.setattr(rx, 'WAIT_PARTS_SECONDS', 1)
    frame = parse_frame(sh(exec_script('cat', parts=(str(sandbox['root'] / 'never'), 10, sha(b'x' * 10)))))
    assert frame.kind == 'E' and frame.error.startswith('PartsMissing')
    assert work_dirs(sandbox['tmp']) == []


def test_loader_with_an_empty_cache_names_every_file_not_carried_inline(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    plan = ansiballz_plan(payload)
    script = exec_script('%s' % payload.interpreter, payload=(plan, payload.interpreter), cache_dir=sandbox['cache'])
    assert len(script) <= SCRIPT_BUDGET
    frame = parse_frame(sh(script))
    assert frame.kind == 'X'
    expected = [key for _name, key, inline in recipe_of(plan)['f'] if inline is None]
    assert frame.missing == expected
    cache = sandbox['cache'] + '-%d' % os.getuid()
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700 and os.listdir(cache) == []
    assert work_dirs(sandbox['tmp']) == []


def test_loader_rebuilds_the_payload_from_sent_parts_then_from_the_cache(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    cache = sandbox['cache']
    first = parse_frame(sh(exec_script('cat', payload=(ansiballz_plan(payload), payload.interpreter), cache_dir=cache)))
    plan = ansiballz_plan(payload, send=first.missing)
    parts = stage_parts(sandbox['root'] / 'stage', plan.blob, part_bytes=24000)

    # the module's input, as the loader rebuilt it: larger than one output, so read back in pieces
    frame = parse_frame(sh(exec_script('cat', payload=(plan, payload.interpreter), parts=parts, cache_dir=cache)))
    assert frame.kind == 'M'
    rebuilt = read_back(frame)[0]
    assert_same_payload_with_bytecode(split_ansiballz(rebuilt), payload)
    assert run_module(rebuilt, sandbox['root']) == run_module(payload_bytes, sandbox['root'])

    # the files are now in the cache, private, under their digests, and the module's whole archive (Base64) under
    # its archive key and its own digest: the module runs with no parts at all
    cached = sandbox['cache'] + '-%d' % os.getuid()
    zipped = rebuilt[len(payload.head) + len(payload.call):len(rebuilt) - len(payload.tail)]
    archive = 'z-%s-%s' % (plan.archive_key, digest(zipped))
    assert sorted(os.listdir(cached)) == sorted(set(first.missing) | {archive})
    plan = ansiballz_plan(payload)
    frame = parse_frame(sh(exec_script(payload.interpreter, payload=(plan, payload.interpreter), cache_dir=cache)))
    assert (frame.kind, frame.rc) == ('R', 0), frame.__dict__
    answer = json.loads(streams(frame)[0])
    assert answer['ping'] == PING_DATA
    assert work_dirs(sandbox['tmp']) == []


def assert_same_payload_with_bytecode(again, payload):
    """``again`` (as the loader rebuilt ``payload``) is the same wrapper, call, files and tail, with beside each .py
    file that file compiled by this interpreter: a checked hash-based .pyc (PEP 552) of exactly that source."""
    import importlib.util
    import marshal
    assert (again.head, again.call, again.tail) == (payload.head, payload.call, payload.tail)
    assert [m for m in again.members if not m[0].endswith('.pyc')] == payload.members
    sources = dict(payload.members)
    compiled = dict(m for m in again.members if m[0].endswith('.pyc'))
    # every .py but the module itself (the calling frame's file name tells Ansible who deprecated something)
    assert sorted(compiled) == sorted(name[:-3] + '.pyc' for name in sources
                                      if name.endswith('.py') and not name.startswith('ansible/modules/'))
    assert 'ansible/modules/ping.pyc' not in compiled and 'ansible/module_utils/basic.pyc' in compiled
    for name, pyc in compiled.items():
        source = sources[name[:-4] + '.py']
        assert pyc[:4] == importlib.util.MAGIC_NUMBER and pyc[4:8] == b'\x03\x00\x00\x00'
        assert pyc[8:16] == importlib.util.source_hash(source)
        assert marshal.loads(pyc[16:]).co_filename == '/' + name[:-4] + '.py'


def test_a_module_from_the_rebuilt_archive_imports_the_compiled_files(sandbox, payload_bytes):
    """zipimport takes the .pyc (no compiling), and the source again when the .pyc does not match it."""
    _missing, _cached, rebuilt = fill_cache(sandbox, split_ansiballz(payload_bytes))
    again = split_ansiballz(rebuilt)
    members = dict(again.members)
    probe = ('import sys\n'
             'sys.path.insert(0, sys.argv[1])\n'
             'import ansible.module_utils.basic as module\n'
             'assert module.__file__.startswith(sys.argv[1])\n'
             'print(module.__file__.endswith(".pyc"), module.AnsibleModule.__name__)\n')
    for tampered, expected in ((False, b'True AnsibleModule'), (True, b'False AnsibleModule')):
        archive = sandbox['root'] / ('modules-%s.zip' % tampered)
        with zipfile.ZipFile(str(archive), 'w') as handle:
            for name, data in again.members:
                if tampered and name == 'ansible/module_utils/basic.pyc':
                    data = data[:8] + b'\x00' * 8 + data[16:]          # another source's hash
                handle.writestr(name, data)
        done = subprocess.run([sys.executable, '-I', '-c', probe, str(archive)], stdout=subprocess.PIPE, check=True)
        assert done.stdout.strip() == expected
    assert 'ansible/module_utils/basic.pyc' in members


def rebuilt_by(script):
    """The payload the script gave its command (``cat``), read back whole."""
    frame = parse_frame(sh(script))
    assert frame.kind in ('R', 'M'), frame.__dict__
    return streams(frame)[0] if frame.kind == 'R' else read_back(frame)[0]


def fill_cache(sandbox, payload):
    """Run a payload once with the files it lacks sent as parts: the cache then holds them and the archive.
    Returns the missing digests, the cache directory and the payload as the loader rebuilt it."""
    cache = sandbox['cache']
    first = parse_frame(sh(exec_script('cat', payload=(ansiballz_plan(payload), payload.interpreter), cache_dir=cache)))
    parts = stage_parts(sandbox['root'] / 'stage', ansiballz_plan(payload, send=first.missing).blob, part_bytes=24000)
    rebuilt = rebuilt_by(exec_script('cat', payload=(ansiballz_plan(payload, send=first.missing), payload.interpreter),
                                     parts=parts, cache_dir=cache))
    assert_same_payload_with_bytecode(split_ansiballz(rebuilt), payload)
    return first.missing, sandbox['cache'] + '-%d' % os.getuid(), rebuilt


def test_fast_path_builds_the_payload_from_the_cached_archive_without_the_loader(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    plan = ansiballz_plan(payload)
    assert plan.fast == (digest(payload.head), payload.call, payload.tail)
    _missing, cached, rebuilt = fill_cache(sandbox, payload)
    # the loader cannot run (no such interpreter): only the shell fast path can give the module its payload
    script = exec_script('cat', payload=(plan, '/nonexistent/python3'), cache_dir=sandbox['cache'])
    assert len(script) <= SCRIPT_BUDGET
    assert rebuilt_by(script) == rebuilt
    assert work_dirs(sandbox['tmp']) == []
    # another call of the same module (other arguments) uses the same archive
    other = AnsiballZ(payload.interpreter, payload.head, payload.call.replace(b'caf', b'other'), payload.tail,
                      payload.members, payload.module_path)
    assert other.call != payload.call and ansiballz_plan(other).archive_key == plan.archive_key
    expected = payload.head + other.call + rebuilt[len(payload.head) + len(payload.call):]
    assert rebuilt_by(exec_script('cat', payload=(ansiballz_plan(other), '/nonexistent/python3'),
                                  cache_dir=sandbox['cache'])) == expected
    # a shared cache directory is not used by the fast path either
    os.chmod(cached, 0o755)
    frame = parse_frame(sh(script))
    assert frame.kind == 'E' and frame.error.startswith('LoaderFailed')


def test_fast_path_removes_a_damaged_archive_and_the_loader_keeps_a_new_one(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    _missing, cached, rebuilt = fill_cache(sandbox, payload)
    archive = [name for name in os.listdir(cached) if name.startswith('z-')]
    assert len(archive) == 1
    with open(os.path.join(cached, archive[0]), 'r+b') as handle:
        handle.seek(100)
        handle.write(b'AAAA')
    script = exec_script('cat', payload=(ansiballz_plan(payload), payload.interpreter), cache_dir=sandbox['cache'])
    assert rebuilt_by(script) == rebuilt                       # rebuilt by the loader from the verified files
    assert [name for name in os.listdir(cached) if name.startswith('z-')] == archive
    assert rebuilt_by(exec_script('cat', payload=(ansiballz_plan(payload), '/nonexistent/python3'),
                                  cache_dir=sandbox['cache'])) == rebuilt


def test_fast_path_is_left_out_when_the_call_is_long(payload_bytes):
    payload = split_ansiballz(payload_bytes)
    long_call = payload.call.replace(b'caf', b'x' * rx.FAST_CALL_BYTES)
    plan = ansiballz_plan(AnsiballZ(payload.interpreter, payload.head, long_call, payload.tail, payload.members,
                                    payload.module_path))
    assert plan.fast is None and plan.archive_key
    script = exec_script('cat', payload=(plan, payload.interpreter))
    assert '/z-' not in script and plan.archive_key in script     # the loader still keeps the archive


def test_loader_does_not_trust_a_tampered_or_shared_cache(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    cache = sandbox['cache']
    missing, cached, rebuilt = fill_cache(sandbox, payload)
    basic = digest(dict(payload.members)['ansible/module_utils/basic.py'])
    with open(os.path.join(cached, basic), 'ab') as handle:
        handle.write(b'\nimport os; os.system("echo pwned")\n')
    # the archive holds its own (verified) copy: the payload is still the original one
    assert rebuilt_by(exec_script('cat', payload=(ansiballz_plan(payload), payload.interpreter), cache_dir=cache)) == rebuilt
    # without it, the loader finds the tampered file and asks for it again
    for name in os.listdir(cached):
        if name.startswith('z-'):
            os.remove(os.path.join(cached, name))
    frame = parse_frame(sh(exec_script('cat', payload=(ansiballz_plan(payload), payload.interpreter), cache_dir=cache)))
    assert (frame.kind, frame.missing) == ('X', [basic])
    # a cache directory others can read is not used at all
    os.chmod(cached, 0o755)
    frame = parse_frame(sh(exec_script('cat', payload=(ansiballz_plan(payload), payload.interpreter), cache_dir=cache)))
    assert frame.kind == 'X' and len(frame.missing) == len(missing)


def test_loader_failure_is_an_error_frame(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    frame = parse_frame(sh(exec_script('cat', payload=(ansiballz_plan(payload), '/nonexistent/python3'),
                                       cache_dir=sandbox['cache'])))
    assert frame.kind == 'E' and frame.error.startswith('LoaderFailed')
    assert work_dirs(sandbox['tmp']) == []


def test_fetch_small_file_inline(sandbox):
    path = sandbox['root'] / 'small.txt'
    path.write_bytes(b'hello\n' * 100)
    answer = parse_fetch(sh(fetch_script(str(path))))
    checksum, compressed, length, _work_dir, inline, milliseconds = answer
    assert checksum == sha(b'hello\n' * 100) and inline is not None and len(inline) == length
    assert isinstance(milliseconds, int) and 0 <= milliseconds < 60000
    assert unpack(inline, compressed) == b'hello\n' * 100
    assert work_dirs(sandbox['tmp']) == []


def test_fetch_empty_file_with_and_without_gzip(sandbox):
    path = sandbox['root'] / 'empty'
    path.write_bytes(b'')
    for env in (None, without_gzip(sandbox['root'])):
        checksum, compressed, _length, _work_dir, inline, _ms = parse_fetch(sh(fetch_script(str(path)), env))
        assert checksum == sha(b'') and unpack(inline, compressed) == b''


def test_fetch_large_file_in_pieces(sandbox):
    data = os.urandom(CHUNK_BYTES * 3 + 7)
    path = sandbox['root'] / 'name with spaces.bin'
    path.write_bytes(data)
    checksum, compressed, length, work_dir, inline, _ms = parse_fetch(sh(fetch_script(str(path))))
    assert inline is None and checksum == sha(data)
    pieces = [parse_frame(sh(chunk_script(work_dir, 'o', i))).chunk for i in range(chunk_count(length))]
    assert unpack(b''.join(pieces)[:length], compressed) == data
    sh(cleanup_script(work_dir))
    assert work_dirs(sandbox['tmp']) == []


def test_fetch_errors(sandbox):
    frame = parse_fetch(sh(fetch_script(str(sandbox['root'] / 'nope'))))
    assert frame.kind == 'E' and frame.error.startswith('NotFound')
    frame = parse_fetch(sh(fetch_script(str(sandbox['root']))))
    assert frame.kind == 'E' and frame.error.startswith('NotReadable')


def test_cleanup_refuses_paths_that_are_not_work_dirs(sandbox):
    keep = sandbox['root'] / 'keep'
    keep.mkdir()
    (keep / 'file').write_bytes(b'x')
    decoy = sandbox['tmp'] / (WORK_PREFIX + 'decoy')
    decoy.mkdir()
    for path in (str(keep), str(sandbox['root']), str(keep / 'file'), '', '.',
                 str(decoy) + '/../../keep', str(decoy) + '/..', str(sandbox['root'] / 'keep' / '..' / 'keep')):
        sh(cleanup_script(path))
        assert (keep / 'file').exists(), path
        assert decoy.exists(), path
    sh(cleanup_script(str(decoy)))
    assert not decoy.exists()


def test_loader_keeps_only_the_most_recently_used_archives(sandbox, payload_bytes):
    payload = split_ansiballz(payload_bytes)
    cached = sandbox['cache'] + '-%d' % os.getuid()
    os.makedirs(cached, 0o700)
    old = ['z-%040x-%040x' % (n, n) for n in range(rx.ARCHIVES_KEPT + 3)]
    for age, name in enumerate(old):
        path = os.path.join(cached, name)
        with open(path, 'wb') as handle:
            handle.write(b'x')
        os.utime(path, (1000000 + age, 1000000 + age))
    _missing, _cached, _rebuilt = fill_cache(sandbox, payload)
    archives = sorted(name for name in os.listdir(cached) if name.startswith('z-'))
    mine = [name for name in archives if name.startswith('z-%s-' % ansiballz_plan(payload).archive_key)]
    assert len(archives) == rx.ARCHIVES_KEPT and len(mine) == 1
    assert sorted(set(archives) - set(mine)) == old[-(rx.ARCHIVES_KEPT - 1):]     # the oldest went


# ----------------------------------------------------------------------------------------------------------------
# Ansible's housekeeping commands: answered at once, run at the start of the next command

def test_home_queries_are_recognised_as_ansible_builds_them():
    shell = sh_shell()
    for path in ('~', '~root', '~deploy-user'):
        assert rx.home_query(low_level_command(shell._expand_user2(path).command)) == path
    for other in ('echo ~/x', 'echo ~; id', 'echo $HOME', 'echo ~root && rm -rf /'):
        assert rx.home_query(low_level_command(other)) is None
    assert rx.home_query('echo ~') is None      # not through Ansible's shell wrapper


def test_the_temporary_directory_answer_is_what_the_command_prints(sandbox):
    shell = sh_shell()
    base = str(sandbox['root'] / 'remote_tmp')
    command = low_level_command(shell._mkdtemp2(basefile='ansible-tmp-17.5-9-3', system=False, tmpdir=base).command)
    answer = rx.deferred_answer(command)
    assert answer == ('ansible-tmp-17.5-9-3=%s/ansible-tmp-17.5-9-3\n' % base).encode()
    # what the command really prints, and the directory it makes (mode 0700)
    done = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    assert (done.stdout, done.stderr) == (answer, b'')
    assert stat.S_IMODE(os.stat(base + '/ansible-tmp-17.5-9-3').st_mode) == 0o700


def test_only_the_exact_housekeeping_commands_are_deferred():
    shell = sh_shell()
    chmod = low_level_command(shell.chmod(['/root/.ansible/tmp/a/', '/root/.ansible/tmp/a/.source.txt'], 'u+rwx'))
    assert rx.deferred_answer(chmod) == b''
    assert rx.deferred_answer(low_level_command(shell.chmod(['/tmp/x'], 'u+x'))) == b''
    refused = [
        shell.chmod(['/tmp/x'], 'a+rwx'),                        # not only the owner's bits
        shell.chmod(['relative/x'], 'u+x'),                       # not an absolute path
        shell.chmod(['/tmp/x y'], 'u+x'),                         # a quoted path
        shell.remove('/root/.ansible/tmp/a/', recurse=True),      # its failure is a warning Ansible shows
        shell._mkdtemp2(basefile='ansible-tmp-1', system=False, tmpdir='/tmp/$x').command,   # expands remotely
        shell._expand_user2('~').command,
        'true',
    ]
    for command in refused:
        assert rx.deferred_answer(low_level_command(command)) is None, command
    # a mkdir whose directory is not the base and the name
    forged = ('( umask 77 && mkdir -p "` echo /tmp/a `"&& mkdir "` echo /tmp/b/n `" && echo n="` echo /tmp/b/n `" )')
    assert rx.deferred_answer(low_level_command(forged)) is None
    assert rx.deferred_answer(chmod.replace('/bin/sh -c', '/bin/sh -xc')) is None


def test_deferred_commands_run_first_in_order_and_a_failure_stops_the_script(sandbox):
    base = sandbox['root'] / 'made'
    first = "/bin/sh -c 'mkdir %s && sleep 0'" % base
    second = "/bin/sh -c 'echo second >> %s/log && sleep 0'" % base
    frame = parse_frame(sh(exec_script('cat %s/log; echo ran' % base, before=[first, second])))
    assert (frame.kind, frame.rc) == ('R', 0)
    assert streams(frame) == (b'second\nran\n', b'')
    # the first one fails now (the directory exists): the command does not run, its error comes back
    marker = sandbox['root'] / 'ran'
    frame = parse_frame(sh(exec_script('touch %s' % marker, before=[first, second])))
    assert (frame.kind, frame.rc, frame.index) == ('D', 1, 0)
    assert b'File exists' in frame.err
    assert not marker.exists()
    assert work_dirs(sandbox['tmp']) == []
