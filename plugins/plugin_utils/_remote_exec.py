# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""What the ``cloud_assistant`` connection runs on an instance, and how it reads the answer: pure logic, no API call.

Cloud Assistant returns one combined stream of at most 24 KB (its tail) and a status. Ansible needs stdout, stderr
and the exit code apart, completely, and binary-safe. So every command runs inside a wrapper script that:

- makes a private work directory (``umask 077``, ``mktemp -d``);
- gives the command its standard input: nothing, bytes carried in the script itself (Base64), bytes
  assembled from ``SendFile`` parts the script waits for, or a module payload rebuilt by ``LOADER`` from a
  content-addressed cache of the modules' files on the instance (see ``ansiballz_plan``);
- runs the command with ``/bin/sh -c`` in the user's home directory (``/`` when it has none), as over SSH, stdout
  and stderr into two files;
- prints one frame: ``ACA1 R <rc> <gzip> <len out> <len err> <ms> <ms>`` (how long the command ran, and the whole
  script; ``-`` when the instance's ``date`` cannot tell) and both streams Base64-encoded (gzip-compressed when the instance has
  gzip) when they fit in the output the service keeps, and removes the directory; otherwise ``ACA1 M ...`` with the
  directory, whose files the connection then reads in pieces (``chunk_script``) and removes
  (``cleanup_script``).

A module payload is an AnsiballZ script: a wrapper, the module's arguments and a zip of the module and its
``module_utils``, 120-350 KB, never within the 24 KB of one ``RunCommand``. Most of the zip is the same from one
module to the next (``basic.py``, ``common/*``, ...), so each file of the zip is kept on the instance under its
SHA-256, in a directory only the user running the command can use, and the script names the files instead of
carrying them. The loader rebuilds the zip from the cache and the few files carried inline, checks every file
against its digest, and prints ``ACA1 X <digests>`` instead of running when some file is not in the cache; the
connection then sends those files (``SendFile`` parts of one zip, awaited by the script itself) and runs again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
import zlib
from shlex import quote as shell_quote

MARK = 'ACA1'
# RunCommand takes at most 24 KB of CommandContent after Base64 (reference 2.1): 18,432 bytes of script; the
# scripts keep a margin.
SCRIPT_BUDGET = 18000
# The service keeps the last 24,576 bytes of output; a frame holds at most this many characters of Base64.
OUTPUT_BUDGET = 23500
CHUNK_BYTES = 17000            # bytes of a stream read by one chunk command (22,668 characters of Base64)
INLINE_MEMBER_BYTES = 65536    # the module's own file travels in the script when it is at most this big (and fits)
FAST_CALL_BYTES = 4096         # a module call (its arguments) and tail up to this size also travel for the shell fast path
ARCHIVE_FORMAT = 'pyc1'         # what a kept archive holds: the files and, beside each .py, its checked .pyc
ARCHIVES_KEPT = 24             # whole module archives kept in the cache (about 500 KB each), the least recently used go
DIGEST_CHARS = 40              # 160 bits of SHA-256: the name of a cached file
WAIT_PARTS_SECONDS = 120       # how long a script waits for SendFile parts before giving up
WAIT_FILES_SECONDS = 60        # how long a script waits for a file put_file sent
STALE_MINUTES = 25 * 60        # work directories older than this are left-overs (no command runs over 24 hours)
CACHE_DIR = '/var/tmp/.ansible-cloud-assistant'
WORK_PREFIX = '.ansible-ca-'

_ZIP_DATA = re.compile(br"\nzip_data='([A-Za-z0-9+/=]+)',?\n")
_INSTANCE_ID = re.compile(r'^i-[a-z0-9]{2,}\Z')


def looks_like_instance_id(value):
    return bool(value) and bool(_INSTANCE_ID.match(str(value)))


def digest(data):
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def _b64z(data):
    """Base64 of zlib-compressed bytes (what the loader reads)."""
    return base64.b64encode(zlib.compress(data, 6)).decode('ascii')


def _wrap(text, width=76):
    return '\n'.join(text[i:i + width] for i in range(0, len(text), width)) or ''


# ------------------------------------------------------------------------------------------------------------------
# Module payloads

class AnsiballZ(object):
    """An AnsiballZ payload cut into what changes from task to task and what does not.

    ``interpreter``: from the shebang; ``head``: the wrapper's code (the same for every task of one Ansible
    version); ``call``: the call of the wrapper up to the zip data (module name, arguments); ``tail``: what follows
    the zip data; ``members``: [(name, bytes)] of the zip; ``module_path``: the module's own file in the zip.
    """

    def __init__(self, interpreter, head, call, tail, members, module_path=None):
        self.interpreter = interpreter
        self.head = head
        self.call = call
        self.tail = tail
        self.members = members
        self.module_path = module_path


_MAIN = b'\nif __name__ == "__main__":'
_FQN = re.compile(r"\bmodule_fqn='([A-Za-z0-9_.]+)'")


def split_ansiballz(data):
    """An ``AnsiballZ`` for a module payload, or None for anything else (then the bytes are sent as they are)."""
    if not data or not data.startswith(b'#!') or b'_ANSIBALLZ_WRAPPER = True' not in data[:4096]:
        return None
    found = list(_ZIP_DATA.finditer(data))
    if len(found) != 1 or data.count(_MAIN) != 1:
        return None
    match = found[0]
    split = data.index(_MAIN)
    if split > match.start(1):
        return None
    interpreter = data[2:data.index(b'\n')].strip().decode('utf-8', 'replace')
    if not interpreter or ' ' in interpreter or '\'' in interpreter:
        return None
    try:
        archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1))))
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    except (zipfile.BadZipfile, ValueError, KeyError, OSError, EOFError, zlib.error):
        return None
    call = data[split:match.start(1)]
    fqn = _FQN.search(call.decode('latin-1'))
    module_path = fqn.group(1).replace('.', '/') + '.py' if fqn else None
    return AnsiballZ(interpreter, data[:split], call, data[match.end(1):], members, module_path)


class PayloadPlan(object):
    """How a module payload reaches the instance: ``recipe`` (text the loader reads from stdin: which cached files,
    which inline ones), ``sizes`` {digest: bytes} of every file it names, ``blob``: a zip of the files to send
    first (named by digest), or None; ``archive_key``: the name of the module's whole archive in the cache (a digest
    of its files' names and digests); ``fast``: (wrapper digest, call, tail) for the shell to assemble the payload
    from the cached archive without Python, or None when the call and tail are too long to carry twice."""

    def __init__(self, recipe, sizes, blob=None, archive_key=None, fast=None):
        self.recipe = recipe
        self.sizes = sizes
        self.blob = blob
        self.archive_key = archive_key
        self.fast = fast


def ansiballz_plan(payload, send=(), inline_module=True, fast=True):
    """The ``PayloadPlan`` for an ``AnsiballZ``: the call (arguments) and, with ``inline_module``, the module's own
    file inline (compressed with the recipe, so a new module needs no second round), every other file by digest.
    ``send``: digests the instance reported missing; they go into the blob (sent with SendFile before the run).
    ``fast``: carry the call and tail for the shell fast path too (when they are at most ``FAST_CALL_BYTES``)."""
    send = set(send)
    entries = []
    sizes = {}
    blob_members = []
    blobbed = set()
    for name, data in [('', payload.head)] + list(payload.members):
        key = digest(data)
        sizes[key] = len(data)
        inline = None
        if inline_module and name == payload.module_path and len(data) <= INLINE_MEMBER_BYTES:
            inline = data.decode('latin-1')
        elif key in send and key not in blobbed:
            blobbed.add(key)
            blob_members.append((key, data))
        entries.append([name, key, inline])
    recipe = _b64z(json.dumps({'f': entries, 'c': payload.call.decode('latin-1'), 't': payload.tail.decode('latin-1')},
                              separators=(',', ':')).encode('utf-8'))
    # (ARCHIVE_FORMAT first: archives an older loader kept, without compiled files, are not used)
    archive_key = digest(json.dumps([ARCHIVE_FORMAT] + [[name, key] for name, key, _inline in entries[1:]],
                                    separators=(',', ':')).encode('utf-8'))
    shell_parts = None
    if fast and len(payload.call) + len(payload.tail) <= FAST_CALL_BYTES:
        shell_parts = (entries[0][1], payload.call, payload.tail)
    blob = None
    if blob_members:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as archive:
            for key, data in blob_members:
                archive.writestr(zipfile.ZipInfo(key, (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
        blob = buf.getvalue()
    return PayloadPlan(recipe, sizes, blob, archive_key, shell_parts)


# The loader: rebuilds the payload on the instance (Python 3, standard library only). argv: out-file cache-dir
# blob-file(or '-') archive-key(or '-'); stdin: the recipe. Prints "ACA1 X <digests>" and exits 0 when files are
# missing. Once built, the archive (Base64, as the payload holds it) is kept in the cache as
# "z-<archive key>-<its own digest>", which the script's shell fast path uses for the next run of the same module;
# the ARCHIVES_KEPT most recently used (the fast path touches what it uses) are kept.
# The archive it builds holds, beside each module_utils .py file, that file compiled by the interpreter that runs
# the module: a checked hash-based .pyc (PEP 552), which zipimport loads instead of compiling the source on every run
# (about half of a module's run time: Ansible's module_utils are large). zipimport checks the .pyc against the
# source's hash and falls back to the source when they differ or the interpreter is another (its magic number); an
# interpreter before Python 3.7 gets the archive without them. Modules themselves are not compiled: Ansible tells
# who deprecated something from the calling frame's file name, which must be the payload's real path; compiled files
# are named /<path in the archive> (tracebacks show that; a collection's path still names its collection).
LOADER = r'''
import base64, hashlib, io, json, os, stat, sys, zipfile, zlib
out, cache, blob, zkey = (sys.argv[1:5] + ['-'])[:4]
recipe = json.loads(zlib.decompress(base64.b64decode(sys.stdin.read())))
def key(data):
    return hashlib.sha256(data).hexdigest()[:40]
usable = True
try:
    os.makedirs(cache, 0o700)
except OSError:
    pass
try:
    st = os.lstat(cache)
    usable = stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
except OSError:
    usable = False
def save(name, data):
    if not usable or os.path.exists(os.path.join(cache, name)):
        return
    tmp = os.path.join(cache, '.%s.%d' % (name, os.getpid()))
    try:
        with open(tmp, 'wb') as handle:
            handle.write(data)
        os.rename(tmp, os.path.join(cache, name))
    except OSError:
        pass
sent = {}
if blob != '-':
    with zipfile.ZipFile(blob) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            if key(data) == name:
                sent[name] = data
                save(name, data)
files, missing = [], []
for name, digest, inline in recipe['f']:
    data = None
    if inline is not None:
        data = inline.encode('latin-1')
    elif digest in sent:
        data = sent[digest]
    elif usable:
        try:
            with open(os.path.join(cache, digest), 'rb') as handle:
                data = handle.read()
        except OSError:
            data = None
    if data is None or key(data) != digest:
        missing.append(digest)
        continue
    files.append((name, data))
if missing:
    sys.stdout.write('ACA1 X %s\n' % ' '.join(missing))
    sys.exit(0)
try:
    import importlib.util, marshal
    compiled = hasattr(importlib.util, 'source_hash')
except ImportError:
    compiled = False
def pyc(name, data):
    if not compiled or not name.endswith('.py') or name == 'sitecustomize.py' or \
            name.startswith('ansible/modules/') or '/plugins/modules/' in name:
        return None
    try:
        code = compile(data, '/' + name, 'exec', dont_inherit=True)
        return importlib.util.MAGIC_NUMBER + b'\x03\x00\x00\x00' + importlib.util.source_hash(data) + marshal.dumps(code)
    except Exception:
        return None
buf = io.BytesIO()
with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as archive:
    for name, data in files[1:]:
        archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
        code = pyc(name, data)
        if code is not None:
            archive.writestr(zipfile.ZipInfo(name[:-3] + '.pyc', (1980, 1, 1, 0, 0, 0)), code, zipfile.ZIP_DEFLATED)
zipped = base64.b64encode(buf.getvalue())
with open(out, 'wb') as handle:
    handle.write(files[0][1] + recipe['c'].encode('latin-1') + zipped + recipe['t'].encode('latin-1'))
try:
    if usable and zkey != '-' and not [n for n in os.listdir(cache) if n.startswith('z-%s-' % zkey)]:
        save('z-%s-%s' % (zkey, key(zipped)), zipped)
        kept = sorted((os.stat(os.path.join(cache, n)).st_mtime, n) for n in os.listdir(cache) if n.startswith('z-'))
        for _when, name in kept[:-@ARCHIVES@]:
            os.remove(os.path.join(cache, name))
except OSError:
    pass
sys.stdout.write('ACA1 L\n')
'''.replace('@ARCHIVES@', str(ARCHIVES_KEPT))


# ------------------------------------------------------------------------------------------------------------------
# Ansible's own housekeeping commands

# A command Ansible runs through a shell: `<executable> -c '<command> && sleep 0'` (_low_level_execute_command)
_SHELL_COMMAND = re.compile(r"^(/[A-Za-z0-9_./-]+) -c '([^']*) && sleep 0'\Z")
_PATH = r"/[A-Za-z0-9_.,+@%=:/-]*"
_NAME = r"[A-Za-z0-9_.-]+"
# echo ~ / echo ~user (_expand_user2): the home directory, asked before every temporary directory
_USER = r"[a-z_][a-z0-9_.-]{0,31}"
_USER_NAME = re.compile(r"^%s\Z" % _USER)
_HOME_QUERY = re.compile(r"^echo ~(%s)?\Z" % _USER)
_HOME_PATH = re.compile(br"^/[A-Za-z0-9_./@+-]*\Z")     # what the wrapper reports as a home (ACA1 H)
# ( umask 77 && mkdir -p "` echo BASE `"&& mkdir "` echo BASE/NAME `" && echo NAME="` echo BASE/NAME `" ) (_mkdtemp2)
_MKDTEMP = re.compile(r'^\( umask 77 && mkdir -p "` echo (?P<base>%s) `"&& mkdir "` echo (?P<dir>%s) `" && '
                      r'echo (?P<name>%s)="` echo (?P=dir) `" \)\Z' % (_PATH, _PATH, _NAME))
# chmod u+x / u+rwx PATH... (_remote_chmod of the files Ansible just sent, without become)
_CHMOD = re.compile(r'^chmod u\+(?:x|rx|rwx) %s(?: %s)*\Z' % (_PATH, _PATH))


def _shell_command(cmd):
    match = _SHELL_COMMAND.match(cmd or '')
    return match.group(2) if match else None


def home_query(cmd):
    """``~`` or ``~user`` when ``cmd`` is Ansible asking that home directory (``echo ~`` or ``echo ~user``, through
    its shell), else None: its answer does not change while a play runs."""
    inner = _shell_command(cmd)
    match = _HOME_QUERY.match(inner) if inner is not None else None
    return '~' + (match.group(1) or '') if match else None


def home_expression(user):
    """What Ansible asks ``echo`` to expand for the home of the user a connection runs as: ``~user`` for a remote
    user (``_remote_expand_user``), ``~`` without one; None for a name that cannot be put in a command as it is."""
    if not user:
        return '~'
    return '~' + user if _USER_NAME.match(user) else None


def is_home_answer(out):
    """Whether ``out`` (bytes) is what a home query prints when it found the directory: one absolute path."""
    return bool(re.match(br'^/[^\n]*\n?\Z', out or b''))


def deferred_answer(cmd):
    """What Ansible's command ``cmd`` prints when it succeeds, for the commands whose success prints nothing else:
    the temporary directory Ansible creates (its fixed ``NAME=PATH`` line) and ``chmod u+x`` of the files it sent.
    None for any other command. Such a command can run at the start of the next one (``exec_script``'s ``before``):
    when it fails there, that next command does not run and reports the failure."""
    inner = _shell_command(cmd)
    if inner is None:
        return None
    match = _MKDTEMP.match(inner)
    if match:
        base, path, name = match.group('base'), match.group('dir'), match.group('name')
        if path != base.rstrip('/') + '/' + name:
            return None
        return ('%s=%s\n' % (name, path)).encode('utf-8')
    if _CHMOD.match(inner):
        return b''
    return None


# ------------------------------------------------------------------------------------------------------------------
# Scripts

_PARTS = r'''
ap() {
  i=0
  while [ "$i" -lt "$wmax" ]; do
    if [ -d "$st" ] && [ "$(($(cat "$st"/p[0-9]* 2>/dev/null | wc -c)))" -eq "$plen" ]; then
      cat "$st"/p[0-9]* >"$1" 2>/dev/null; rm -rf "$st"
      [ "$(sha256sum <"$1" | cut -c1-64)" = "$psum" ] && return 0
      echo "ACA1 E PartsCorrupt the parts sent do not have the expected SHA-256"; return 1
    fi
    sleep 0.1; i=$((i + 1))
  done
  rm -rf "$st"
  echo "ACA1 E PartsMissing the parts sent did not arrive within $((wmax / 10)) seconds"; return 1
}
'''

# The command itself runs with the umask the agent gave (u0), as over SSH; only the wrapper's files are private.
# Work and staging directories this user left behind (a command stopped at its timeout, an agent gone mid-run) are
# removed on the way once older than any command can run (command_timeout is at most 24 hours).
_HEAD = r'''u0=$(umask)
umask 077
find "${TMPDIR:-/tmp}" -maxdepth 1 -name '%(prefix)s*' -user "$(id -u)" -mmin +%(stale)d -exec rm -rf {} + 2>/dev/null
w=$(mktemp -d "${TMPDIR:-/tmp}/%(prefix)sXXXXXXXX") || { echo "ACA1 E WorkDir cannot create a temporary directory"; exit 0; }
cd "${HOME:-/}" 2>/dev/null || cd / || exit 0
'''

# What ``echo ~`` (or ``echo ~user``) prints, as Ansible asks it before its first temporary directory of a task: printed
# by the first command of a run on an instance, so that the question never needs a command of its own. Only a home
# made of plain characters is reported (the frame is one line of words).
_HOME = r'''h=$(/bin/sh -c 'echo %(expression)s' 2>/dev/null) || h=
case $h in ''|*[!A-Za-z0-9_./@+-]*) ;; /*) echo "ACA1 H $h";; esac'''


def _milliseconds_between(name, start, end):
    """The shell line that sets ``name`` to the milliseconds between two ``date +%s%N`` readings in the variables
    ``start`` and ``end``, or ``-`` when the instance's ``date`` has no nanoseconds (``_milliseconds`` reads it)."""
    return ('%(n)s=-; case "$%(s)s$%(e)s" in \'\'|*[!0-9]*) ;; *) %(n)s=$(( (%(e)s - %(s)s) / 1000000 ));; esac'
            % {'n': name, 's': start, 'e': end})


_RUN = r'''
umask "$u0"
t0=$(date +%%s%%N 2>/dev/null)
/bin/sh -c "$c" <"$in" >"$w/out" 2>"$w/err"
rc=$?
t1=$(date +%%s%%N 2>/dev/null)
''' + _milliseconds_between('ms', 't0', 't1') + r'''
umask 077
z=0
if command -v gzip >/dev/null 2>&1; then
  z=1; gzip -c <"$w/out" >"$w/o" && gzip -c <"$w/err" >"$w/e" || z=0
fi
if [ "$z" = 0 ]; then mv -f "$w/out" "$w/o"; mv -f "$w/err" "$w/e"; fi
lo=$(($(wc -c <"$w/o"))); le=$(($(wc -c <"$w/e")))
te=$(date +%%s%%N 2>/dev/null)
''' + _milliseconds_between('all', 'ts', 'te') + r'''
if [ $(( (lo + le + 6) / 3 * 4 )) -le %(budget)d ]; then
  echo "ACA1 R $rc $z $lo $le $ms $all"; base64 <"$w/o" | tr -d '\n'; echo; base64 <"$w/e" | tr -d '\n'; echo
  rm -rf "$w"
else
  echo "ACA1 M $rc $z $lo $le $ms $all $w"
fi
'''


_FILES = r'''
wf() {
  i=0
  while [ "$i" -lt %(tries)d ]; do
    if [ -f "$1" ] && [ "$(($(wc -c <"$1")))" -eq "$2" ] && [ "$(sha256sum <"$1" | cut -c1-64)" = "$3" ]; then return 0; fi
    sleep 0.05; i=$((i + 1))
  done
  echo "ACA1 E FileNotArrived $1"; exit 0
}
'''


# The shell fast path of a module payload: when the cache holds the module's whole archive (kept by the loader, named
# by the archive key and its own digest) and the wrapper's file, both as their digests say, the payload is the
# wrapper, the call, the archive and the tail put together, with no Python process before the module's own; the
# cache directory must be as the loader requires (a real directory, this user's, mode 0700). A damaged archive is
# removed, and anything missing (stat included) leaves the work to the loader.
_FAST = r'''d=%(cache)s"-$(id -u)"
if [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] && [ "$(stat -c %%a "$d" 2>/dev/null)" = 700 ]; then
  for z in "$d"/z-%(key)s-*; do
    [ -f "$z" ] || break
    if [ "$(sha256sum <"$z" | cut -c1-40)" != "${z##*-}" ]; then rm -f "$z"; break; fi
    [ -f "$d/%(head)s" ] && [ "$(sha256sum <"$d/%(head)s" | cut -c1-40)" = %(head)s ] || break
    base64 -d >"$w/c" <<'ACA_EOF' || break
%(call)s
ACA_EOF
    base64 -d >"$w/t" <<'ACA_EOF' || break
%(tail)s
ACA_EOF
    cat "$d/%(head)s" "$w/c" "$z" "$w/t" >"$w/in" && r="ACA1 L" && touch -c "$z" 2>/dev/null
    break
  done
fi'''


_BEFORE = r'''/bin/sh -c %(command)s </dev/null >/dev/null 2>"$w/be" || {
  echo "ACA1 D $? %(index)d"; base64 <"$w/be" | tr -d '\n'; echo; rm -rf "$w"; exit 0
}'''


def exec_script(command, stdin=None, payload=None, parts=None, cache_dir=CACHE_DIR, files=(), before=(), home=None):
    """The wrapper script for one ``exec_command``.

    ``stdin``: bytes carried in the script (None: no input); ``payload``: a ``PayloadPlan`` with the interpreter
    (``(plan, interpreter)``) rebuilt by the loader; ``parts``: ``(staging dir, total bytes, sha256 hex)`` of a
    blob sent with SendFile that the script waits for (the module files of ``payload``, or the input itself when
    neither ``stdin`` nor ``payload`` is given); ``files``: ``(path, bytes, sha256 hex)`` of files sent with
    SendFile just before, which the command may use: the script waits until each is there, whole
    (``ACA1 E FileNotArrived <path>`` after ``WAIT_FILES_SECONDS``); ``before``: commands deferred by the connection
    (``deferred_answer``), run in order first, with the user's umask; the first that fails ends the script with
    ``ACA1 D <rc> <its index>`` and its standard error; ``home``: a ``home_expression`` (``~`` or ``~user``): the
    script first prints ``ACA1 H <path>``, what ``echo`` prints for it there (``Frame.home``).
    """
    lines = ['ts=$(date +%s%N 2>/dev/null)']
    if files:
        lines.append(_FILES % {'tries': WAIT_FILES_SECONDS * 20})
        lines.extend('wf %s %d %s' % (shell_quote(path), size, checksum) for path, size, checksum in files)
    lines.append(_HEAD % {'prefix': WORK_PREFIX, 'stale': STALE_MINUTES})
    if home:
        if home_expression(home[1:]) != home:
            raise ValueError('not a home expression: %r' % home)
        lines.append(_HOME % {'expression': home})
    if before:
        lines.append('umask "$u0"')
        lines.extend(_BEFORE % {'command': shell_quote(cmd), 'index': i} for i, cmd in enumerate(before))
        lines.append('umask 077')
    lines.append('c=%s' % shell_quote(command))
    if parts is not None:
        staging, size, checksum = parts
        lines.append('st=%s plen=%d psum=%s wmax=%d' % (shell_quote(staging), size, checksum, WAIT_PARTS_SECONDS * 10))
        lines.append(_PARTS)
    if payload is not None:
        plan, interpreter = payload
        blob = '"$w/blob"' if parts is not None else '-'
        if parts is not None:
            lines.append('ap "$w/blob" || { rm -rf "$w"; exit 0; }')
        lines.append('r=')
        if parts is None and plan.fast is not None and plan.archive_key:
            lines.append(_FAST % {'cache': shell_quote(cache_dir), 'key': plan.archive_key, 'head': plan.fast[0],
                                  'call': _wrap(base64.b64encode(plan.fast[1]).decode('ascii')),
                                  'tail': _wrap(base64.b64encode(plan.fast[2]).decode('ascii'))})
        lines.append('L=%s' % _b64z(LOADER.encode('utf-8')))
        lines.append('[ -n "$r" ] || r=$(%s -c "import base64,zlib;exec(zlib.decompress(base64.b64decode(\'$L\')))" '
                     '"$w/in" %s"-$(id -u)" %s %s 2>"$w/lerr" <<\'ACA_EOF\'\n%s\nACA_EOF\n)'
                     % (shell_quote(interpreter), shell_quote(cache_dir), blob, plan.archive_key or '-',
                        _wrap(plan.recipe)))
        lines.append('case $r in "ACA1 L") ;; "ACA1 X"*) echo "$r"; rm -rf "$w"; exit 0;; '
                     '*) echo "ACA1 E LoaderFailed $(printf %s "$r" | head -c 200) '
                     '$(tail -c 300 "$w/lerr" | tr \'\\n\' \' \')"; rm -rf "$w"; exit 0;; esac')
        lines.append('in=$w/in')
    elif stdin is not None:
        # not compressed: the instance may have no gzip (then only the output goes uncompressed)
        lines.append("base64 -d <<'ACA_EOF' >\"$w/in\" || { echo \"ACA1 E Input cannot decode the input\"; "
                     "rm -rf \"$w\"; exit 0; }\n%s\nACA_EOF" % _wrap(base64.b64encode(stdin).decode('ascii')))
        lines.append('in=$w/in')
    elif parts is not None:
        lines.append('ap "$w/in" || { rm -rf "$w"; exit 0; }')
        lines.append('in=$w/in')
    else:
        lines.append('in=/dev/null')
    lines.append(_RUN % {'budget': OUTPUT_BUDGET})
    return '\n'.join(lines)


def chunk_script(work_dir, stream, index):
    """Print the ``index``-th piece (``CHUNK_BYTES``) of ``stream`` ('o' or 'e') of a work directory, Base64."""
    return ('f=%s/%s\n[ -f "$f" ] || { echo "ACA1 E Gone the output was removed"; exit 0; }\n'
            'echo "ACA1 C"; dd if="$f" bs=%d skip=%d count=1 2>/dev/null | base64 | tr -d \'\\n\'; echo\n'
            % (shell_quote(work_dir), stream, CHUNK_BYTES, int(index)))


def cleanup_script(work_dir):
    """Remove a work directory: only a path whose last component is one of ours, never one that climbs with ``..``."""
    return ('case %s in */..|*/../*|*/%s*/*) ;; */%s?*) rm -rf -- %s;; esac\n'
            % (shell_quote(work_dir), WORK_PREFIX, WORK_PREFIX, shell_quote(work_dir)))


# ------------------------------------------------------------------------------------------------------------------
# Answers

class Frame(object):
    """What a wrapper script printed: ``kind`` R (result), M (result to read in pieces), X (files missing from the
    cache), E (the wrapper could not run the command), D (the deferred command number ``index`` failed, with ``rc``
    and ``err``: the command itself did not run), C (a piece), or None (no frame: the output is not ours).
    ``elapsed_ms`` (R and M): how long the command itself ran on the instance, ``script_ms``: the whole script
    (waiting for files, putting the module together), each when the instance's ``date`` can tell; ``home``: what
    ``echo ~`` prints there, when the script was asked to tell (``exec_script``'s ``home``)."""

    def __init__(self, kind=None, rc=None, compressed=False, out_len=0, err_len=0, work_dir=None, out=b'',
                 err=b'', missing=(), error=None, chunk=b'', index=None, elapsed_ms=None, script_ms=None):
        self.kind = kind
        self.rc = rc
        self.compressed = compressed
        self.out_len = out_len
        self.err_len = err_len
        self.work_dir = work_dir
        self.out = out
        self.err = err
        self.missing = list(missing)
        self.error = error
        self.chunk = chunk
        self.index = index
        self.elapsed_ms = elapsed_ms
        self.script_ms = script_ms
        self.home = None


def _milliseconds(field):
    """The command's run time a frame reports, or None (the instance's ``date`` has no nanoseconds)."""
    return int(field) if field.isdigit() else None


def _b64decode(line):
    return base64.b64decode(line, validate=True)


def parse_frame(output):
    """The ``Frame`` in the raw output of a wrapper script (bytes), with the ``home`` it reported before it."""
    lines = (output or b'').split(b'\n')
    home = None
    for pos, line in enumerate(lines):
        if line.startswith(b'ACA1 H '):
            home = line[7:].decode('ascii') if _HOME_PATH.match(line[7:]) else None
        elif line.startswith(b'ACA1 '):
            frame = _frame_at(lines, pos)
            frame.home = home if frame.kind is not None else None
            return frame
    return Frame(None)


def _frame_at(lines, pos):
    """The ``Frame`` whose first line is ``lines[pos]``."""
    fields = lines[pos].decode('utf-8', 'replace').split(' ')
    kind = fields[1] if len(fields) > 1 else ''
    try:
        if kind == 'R' and len(fields) >= 8:
            out = _b64decode(lines[pos + 1]) if pos + 1 < len(lines) else b''
            err = _b64decode(lines[pos + 2]) if pos + 2 < len(lines) else b''
            if len(out) != int(fields[4]) or len(err) != int(fields[5]):
                return Frame(None)      # cut short: not the whole result
            return Frame('R', int(fields[2]), fields[3] == '1', int(fields[4]), int(fields[5]), out=out, err=err,
                         elapsed_ms=_milliseconds(fields[6]), script_ms=_milliseconds(fields[7]))
        if kind == 'M' and len(fields) >= 9:
            return Frame('M', int(fields[2]), fields[3] == '1', int(fields[4]), int(fields[5]),
                         work_dir=' '.join(fields[8:]), elapsed_ms=_milliseconds(fields[6]),
                         script_ms=_milliseconds(fields[7]))
        if kind == 'X':
            return Frame('X', missing=fields[2:])
        if kind == 'D' and len(fields) >= 4:
            err = _b64decode(lines[pos + 1]) if pos + 1 < len(lines) else b''
            return Frame('D', int(fields[2]), err=err, index=int(fields[3]))
        if kind == 'C':
            return Frame('C', chunk=_b64decode(lines[pos + 1]) if pos + 1 < len(lines) else b'')
        if kind == 'E':
            return Frame('E', error=' '.join(fields[2:]))
    except (ValueError, TypeError, IndexError):
        return Frame(None)
    return Frame(None)


def unpack(data, compressed):
    """A stream as the command wrote it (gunzipped when the frame says so)."""
    if not compressed:
        return data
    import gzip
    return gzip.decompress(data)


def chunk_count(length):
    return max(1, -(-int(length) // CHUNK_BYTES))


def strip_become_success(out, marker):
    """``out`` without the line a become plugin prints once the user has changed (Ansible reads it from the
    stream over ssh; here the whole stream arrives at once)."""
    if not marker:
        return out
    token = marker.encode('utf-8') if not isinstance(marker, bytes) else marker
    lines = out.split(b'\n')
    for pos, line in enumerate(lines[:5]):
        if line.strip() == token:
            del lines[pos]
            return b'\n'.join(lines)
    return out


# ------------------------------------------------------------------------------------------------------------------
# Fetching a file

_STAT = r'''ts=$(date +%%s%%N 2>/dev/null)
f=%(path)s
[ -e "$f" ] || { echo "ACA1 E NotFound $f does not exist"; exit 0; }
[ -f "$f" ] && [ -r "$f" ] || { echo "ACA1 E NotReadable $f is not a readable regular file"; exit 0; }
umask 077
w=$(mktemp -d "${TMPDIR:-/tmp}/%(prefix)sXXXXXXXX") || { echo "ACA1 E WorkDir cannot create a temporary directory"; exit 0; }
sum=$(sha256sum <"$f" | cut -c1-64)
z=0
if command -v gzip >/dev/null 2>&1 && gzip -c <"$f" >"$w/o"; then z=1
else cat <"$f" >"$w/o" || { rm -rf "$w"; echo "ACA1 E NotReadable cannot read $f"; exit 0; }; fi
lo=$(($(wc -c <"$w/o")))
te=$(date +%%s%%N 2>/dev/null)
''' + _milliseconds_between('ms', 'ts', 'te') + r'''
echo "ACA1 F $sum $z $lo $ms $w"
if [ $(( (lo + 2) / 3 * 4 )) -le %(budget)d ]; then base64 <"$w/o" | tr -d '\n'; echo; rm -rf "$w"; fi
'''


def fetch_script(path):
    return _STAT % {'path': shell_quote(path), 'prefix': WORK_PREFIX, 'budget': OUTPUT_BUDGET}


def parse_fetch(output):
    """(checksum, compressed, length, work_dir, inline bytes or None, milliseconds the script took until the
    answer or None) of a ``fetch_script`` answer, or a ``Frame`` of kind E / None."""
    lines = (output or b'').split(b'\n')
    for pos, line in enumerate(lines):
        if line.startswith(b'ACA1 F '):
            fields = line.decode('utf-8', 'replace').split(' ')
            if len(fields) < 7:
                break
            try:
                length = int(fields[4])
                inline = None
                if pos + 1 < len(lines) and (lines[pos + 1] or length == 0):
                    inline = _b64decode(lines[pos + 1])
            except (ValueError, TypeError):
                break
            return fields[2], fields[3] == '1', length, ' '.join(fields[6:]), inline, _milliseconds(fields[5])
    return parse_frame(output)
