# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Planning a file transfer: pure logic, no API call (``cloud_assistant_file``).

- ``plan_payload(data)``: what goes on the wire. Up to ``PART_BYTES`` (24,000 bytes, 32,000 after Base64: one
  SendFile, below its limit of 32 KB)
  the file is sent as it is, straight to ``dest``. Above that it is gzip-compressed when that saves at least
  10%, and cut into parts of ``PART_BYTES``; the parts go to a staging directory beside ``dest`` and the
  finalize script assembles them.
- ``staging(dest, transfer_id)``: the staging directory, in the directory of ``dest`` (so the final rename is
  atomic, on one file system), named after a digest of ``dest``. The assembly happens inside it (``umask 077``,
  a directory that must be a real directory owned by the user running the script, never a symbolic link), so
  nobody else can see the content before the rename or make the script write through a link.
- ``compare_script`` / ``parse_compare``: the one command that reads checksum, mode, owner and group of ``dest``
  on every instance (and, for ``diff``, a small text file's content).
- ``finalize_script`` / ``parse_error``: the command that assembles the parts, checks the checksum, sets mode
  and owner, renames into place, and removes the parts whatever happens; or, where only mode or owner differ,
  sets them.
- ``min_send_calls``: the fewest SendFile calls the 24 KB limit (``LIMIT_BYTES``) allows, for the benchmark's
  check.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
from shlex import quote as shell_quote

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import BATCH_LIMITS

# SendFile takes at most 32 KB of Content after Base64 (reference 2.10, 7): 24 KB of data. Parts keep a margin
# below it (24,000 bytes: 32,000 characters), and still need at most 1.03x the fewest calls the limit allows.
SEND_LIMIT_B64 = 32768
LIMIT_BYTES = SEND_LIMIT_B64 // 4 * 3
PART_BYTES = 24000
COMPRESS_GAIN = 0.9           # compress only when the result is at most 90% of the file
DIFF_LIMIT = 16384            # largest file shown in a diff (its Base64 fits in the 24 KB of output kept)
STALE_MINUTES = 60            # parts older than this, of any run, are removed by the compare step
MARK = 'CAFILE'
CONTENT_MARK = 'CAFILE-CONTENT'
NAME_PREFIX = '.ansible-ca-'

_MODE = re.compile(r'^[0-7]{3,4}$')
_CHECKSUM = re.compile(r'^[0-9a-f]{64}$')


class Payload(object):
    """``data``: the bytes to send; ``compressed``: gzip applied; ``size``/``checksum``: of the file itself
    (SHA-256, hex); ``parts``: ``data`` cut into pieces of at most ``PART_BYTES``; ``direct``: one SendFile
    straight to ``dest`` (no staging, no finalize)."""

    def __init__(self, original, data, compressed):
        self.size = len(original)
        self.checksum = hashlib.sha256(original).hexdigest()
        self.data = data
        self.compressed = compressed
        self.parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
        self.direct = 0 < self.size <= PART_BYTES

    @property
    def part_count(self):
        return len(self.parts)


def plan_payload(original, compress=True):
    """The ``Payload`` for the file's bytes ``original``. ``compress=False``: never gzip (an instance without
    gzip)."""
    if len(original) <= PART_BYTES or not compress:
        return Payload(original, original, False)
    packed = gzip.compress(original, 6, mtime=0)
    if len(packed) <= COMPRESS_GAIN * len(original):
        return Payload(original, packed, True)
    return Payload(original, original, False)


def min_send_calls(size, instances):
    """The fewest SendFile calls that can deliver ``size`` bytes to ``instances`` instances (parts of the full
    ``LIMIT_BYTES``, which ``PART_BYTES`` keeps a margin below)."""
    parts = max(1, -(-size // LIMIT_BYTES))
    return parts * -(-instances // BATCH_LIMITS['SendFile'])


def split_dest(dest):
    """(directory, file name) of an absolute path."""
    directory, _sep, name = dest.rpartition('/')
    return directory or '/', name


def part_name(index):
    return 'p%06d' % index


def staging(dest, transfer_id):
    """The staging directory of one transfer to ``dest``: the parts arrive there and are assembled there."""
    directory, _name = split_dest(dest)
    stem = '%s%s-%s' % (NAME_PREFIX, hashlib.sha256(dest.encode('utf-8')).hexdigest()[:12], transfer_id)
    return '%s/%s.parts' % (directory.rstrip('/'), stem)


def stale_pattern(dest):
    """The ``find -name`` pattern of every run's staging names for ``dest``."""
    return '%s%s-*' % (NAME_PREFIX, hashlib.sha256(dest.encode('utf-8')).hexdigest()[:12])


def normalize_mode(value):
    """``mode`` as four octal digits (``'0644'``), or None. An int is read as the number YAML made of ``0644``
    (420); strings must be 3 or 4 octal digits. Raises ValueError otherwise."""
    if value is None or value == '':
        return None
    if isinstance(value, bool):
        raise ValueError('mode must be octal digits such as 0644, got %r' % (value,))
    if isinstance(value, int):
        if value < 0 or value > 0o7777:
            raise ValueError('mode must be between 0000 and 7777 (octal), got %o' % value)
        return '%04o' % value
    text = str(value).strip()
    if not _MODE.match(text):
        raise ValueError('mode must be 3 or 4 octal digits such as 0644 (quote it in YAML), got %r' % (value,))
    return '%04o' % int(text, 8)


def _vars(**values):
    return '\n'.join('%s=%s' % (k, shell_quote(str(v))) for k, v in sorted(values.items()))


_COMPARE = r'''
dir=${d%/*}; [ -n "$dir" ] || dir=/
if [ "$clean" = 1 ] && [ -d "$dir" ]; then
  find "$dir" -maxdepth 1 -name "$stale" -mmin +"$age" -exec rm -rf {} + 2>/dev/null
fi
if [ -n "$o" ] && ! id -u "$o" >/dev/null 2>&1; then echo "CAFILE error AccountNotExists owner $o does not exist"; exit 3; fi
if [ -n "$g" ] && ! getent group "$g" >/dev/null 2>&1 && ! awk -F: -v g="$g" '$1 == g { f = 1 } END { exit !f }' /etc/group 2>/dev/null; then
  echo "CAFILE error UserGroupNotExists group $g does not exist"; exit 3
fi
command -v sha256sum >/dev/null 2>&1 || { echo "CAFILE error ChecksumToolMissing sha256sum is not installed"; exit 3; }
command -v gzip >/dev/null 2>&1 && echo "CAFILE gzip"
if [ -d "$d" ]; then echo "CAFILE error FilePathInvalid dest is a directory"; exit 3; fi
if [ -e "$d" ]; then
  sum=$(sha256sum <"$d" | cut -c1-64) || { echo "CAFILE error FileCreateFail cannot read dest"; exit 3; }
  set -- $(stat -L -c '%a %s %u %g' "$d")
  echo "CAFILE file $sum $1 $2 $3 $4"
  echo "CAFILE owner $(stat -L -c %U "$d")"
  echo "CAFILE group $(stat -L -c %G "$d")"
  if [ "$lim" -gt 0 ] && [ "$sum" != "$want" ] && [ "$2" -le "$lim" ]; then echo "CAFILE-CONTENT"; base64 <"$d"; fi
else
  echo "CAFILE missing"
fi
'''


def compare_script(dest, checksum, owner=None, group=None, diff_limit=0, clean=True):
    """A shell script that prints one ``CAFILE`` line per fact about ``dest`` (``parse_compare`` reads them);
    exit 3 with ``CAFILE error <code> <text>`` when the instance cannot take the file. ``clean``: remove parts
    of ``dest`` left behind by any run more than ``STALE_MINUTES`` ago (not in check mode)."""
    return _vars(d=dest, want=checksum, o=owner or '', g=group or '', lim=int(diff_limit), clean=1 if clean else 0,
                 stale=stale_pattern(dest), age=STALE_MINUTES) + _COMPARE


def parse_error(output):
    """(code, text) of a ``CAFILE error`` line in ``output``, or (None, None)."""
    for line in (output or '').splitlines():
        if line.startswith(MARK + ' error '):
            fields = line.split(' ', 3)
            return fields[2], (fields[3] if len(fields) > 3 else fields[2])
    return None, None


def parse_compare(output):
    """{'exists': bool, 'checksum', 'mode' (4 digits), 'owner', 'group', 'uid', 'gid', 'size', 'gzip': bool,
    'content': bytes or None} from ``compare_script``'s output; None when the output is not one (the run
    failed before it printed)."""
    state = {'exists': None, 'gzip': False, 'content': None}
    lines = (output or '').splitlines()
    for n, line in enumerate(lines):
        fields = line.split()
        if line == CONTENT_MARK:
            try:
                state['content'] = base64.b64decode(''.join(lines[n + 1:]))
            except (binascii.Error, ValueError):
                state['content'] = None
            break
        if len(fields) < 2 or fields[0] != MARK:
            continue
        if fields[1] == 'gzip':
            state['gzip'] = True
        elif fields[1] == 'missing':
            state['exists'] = False
        elif fields[1] == 'file' and len(fields) == 7 and _CHECKSUM.match(fields[2]):
            state.update(exists=True, checksum=fields[2], mode='%04o' % int(fields[3], 8), size=int(fields[4]),
                         uid=fields[5], gid=fields[6])
            state.setdefault('owner', fields[5])
            state.setdefault('group', fields[6])
        elif fields[1] in ('owner', 'group'):   # the name is the rest of the line (it may hold spaces)
            state[fields[1]] = line.split(' ', 2)[2] if len(fields) > 2 else ''
    return state if state['exists'] is not None else None


def attributes_differ(state, mode=None, owner=None, group=None):
    """Which of mode, owner and group of an existing file differ from what was asked (None: not compared)."""
    differ = []
    if mode is not None and int(state['mode'], 8) != int(mode, 8):
        differ.append('mode')
    if owner is not None and owner not in (state['owner'], state['uid']):
        differ.append('owner')
    if group is not None and group not in (state['group'], state['gid']):
        differ.append('group')
    return differ


_FINALIZE = r'''
umask 077
dir=${d%/*}; [ -n "$dir" ] || dir=/
mine=0
cleanup() { if [ "$mine" = 1 ]; then cd / && rm -rf "$st"; fi; }
fail() { cleanup; echo "CAFILE error $*"; exit 3; }
trap cleanup EXIT
trap 'cleanup; exit 143' TERM INT HUP
if [ -e "$st" ] || [ -L "$st" ] || [ "$n" = 0 ]; then
  mkdir -p "$dir" 2>/dev/null && [ -d "$dir" ] || fail FilePathInvalid cannot create "$dir"
  if [ "$n" = 0 ]; then
    mkdir "$st" || fail StagingInvalid cannot create "$st"
  else
    [ -d "$st" ] && [ ! -L "$st" ] && [ -O "$st" ] || fail StagingInvalid "$st" is not a directory owned by this user
  fi
  mine=1
  cd "$st" && [ -O . ] && chmod 700 . || fail StagingInvalid cannot use "$st"
  set -- p[0-9]*
  [ -f "$1" ] || set --
  [ "$#" = "$n" ] || fail PartsMissing "$# of $n parts arrived"
  if [ "$n" = 0 ]; then : >.assembled
  elif [ "$z" = 1 ]; then cat "$@" | gzip -dc >.assembled
  else cat "$@" >.assembled
  fi || fail FileCreateFail cannot assemble the parts
  [ "$(sha256sum <.assembled | cut -c1-64)" = "$want" ] || fail ChecksumMismatch the assembled file does not have the expected SHA-256
  src=.assembled
elif [ -e "$d" ] && [ "$(sha256sum <"$d" | cut -c1-64)" = "$want" ]; then
  src=$d
else
  fail PartsMissing no part arrived
fi
if [ -e "$d" ]; then
  [ -n "$m" ] || m=$(stat -L -c %a "$d"); [ -n "$o" ] || o=$(stat -L -c %u "$d"); [ -n "$g" ] || g=$(stat -L -c %g "$d")
fi
chown "${o:-0}:${g:-0}" "$src" || fail FileAuthorityInvalid cannot set the owner
chmod "${m:-0644}" "$src" || fail FileAuthorityInvalid cannot set the mode
if [ "$src" = .assembled ]; then
  if [ "$ow" = 1 ]; then
    mv -fT .assembled "$d" || fail FileCreateFail cannot rename into place
  else
    ln -T .assembled "$d" 2>/dev/null || fail FileAlreadyExists "$d" exists and overwrite is false
  fi
fi
echo "CAFILE done"
'''


def finalize_script(dest, transfer_id, part_count, compressed, checksum, mode=None, owner=None, group=None,
                    overwrite=True):
    """Assemble the staged parts of one transfer into ``dest`` (see the file's docstring). Without staged parts
    (an instance whose content is already right), only mode and owner are set; an instance with missing or
    corrupt parts fails (``PartsMissing``, ``ChecksumMismatch``) and keeps ``dest`` as it was. The parts and the
    temporary file are removed in every case."""
    stage_dir = staging(dest, transfer_id)
    return _vars(d=dest, st=stage_dir, n=int(part_count), z=1 if compressed else 0, want=checksum,
                 m=mode or '', o=owner or '', g=group or '', ow=1 if overwrite else 0) + _FINALIZE


def is_text(data):
    """True for bytes that read as UTF-8 text without NUL (what a diff can show)."""
    if b'\x00' in data:
        return False
    try:
        data.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True
