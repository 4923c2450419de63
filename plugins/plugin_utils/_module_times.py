# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""When the ``cloud_assistant`` connection asks for a command's result first: from how long that module ran before.

Cloud Assistant has no way to wait for a command: its result is polled. A poll sent before the command has ended is
a wasted call and the next one comes a whole ``poll_interval`` later, so the first poll is best sent just after the
command ends. The wrapper on the instance reports how long the command itself ran (``Frame.elapsed_ms``); the time
from ``RunCommand`` to the first poll that saw the end, less that, is the service's own lag (delivery to the agent,
the report back, the poll's round trip).

- ``ModuleTimes``: how long each module (by its path in the payload, such as ``ansible/modules/stat.py``) ran its
  last few times on one instance, in a small JSON file per instance (``cloud_assistant-times/<instance ID>.json``)
  beside the run directories in Ansible's local temporary directory (``~/.ansible/tmp``), kept across runs. Per
  instance: a module's run time depends on the instance (its size, its load) as much as on the module. Module
  names and milliseconds only; files not written for ``STALE_DAYS`` are removed now and then.
- the lag, per instance and run, in ``RunMemory``: learnt from each run's polls (``next_lag``), trying a little
  sooner after each first poll that saw the end, so that it does not stay where the first run put it; the last one
  is kept in the instance's file too (``LAG_KEY``), where the next run starts from.
- the pace, per instance and run, in ``RunMemory`` too: how many times their shortest kept run times this run's
  modules took there (``next_pace``). The kept times may come from quiet runs, and an instance running ten modules at
  once on two cores runs every one of them several times slower.

``first_poll`` puts them together: the shortest of the module's recent run times (what it takes depends on the
instance's load and on its arguments too: ``command: sleep 10`` before ``command: id``), a little late rather than
early, stretched by most of the pace, and never later than ``LATEST``; when it comes too soon, the second poll
follows ``SECOND`` later, or a fifth of the first delay for a long one (not a whole ``poll_interval``).

The files are used only under a directory of this user that no one else can write to (a file another local user
planted must not decide anything here).
"""

from __future__ import annotations

import os
import random
import stat
import time

from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._run_memory import JsonFacts, instance_file, local_tmp

# run times kept per module; the shortest of them is used (a play may run one module several times: copy,
# template and fetch each run stat; one busy run must not fill them all)
KEPT = 8
MODULES_KEPT = 200       # modules kept in an instance's file (the least recently run go)
STALE_DAYS = 30          # an instance's file not written for this long is removed (instances come and go)
PRUNE_EVERY = 200        # about one write in this many looks for such files
UNKNOWN_LAG = 0.1        # the service's lag before one has been seen on this instance in this run (seconds)
MARGIN = 0.03            # added to the estimate (seconds), and
SLACK = 1.2              # the run time's share of it: late rather than early
SHELL_SECONDS = 0.03     # what a command that is not a module (a shell one-liner) is given to run
DEFERRED_SECONDS = 0.05  # what each of Ansible's deferred housekeeping commands adds before it (mkdir: 6 processes)
DECAY = 0.7              # a first poll that saw the end: the next one tries this share of the lag
SECOND = 0.1             # the second poll, after a first one that came too soon (seconds)
SECOND_SHARE = 0.2       # or this share of the first poll's delay, when that is longer: a long run ends later
SOONEST = 0.05           # no first poll before this (seconds, and a quarter of poll_interval),
LATEST = 3.0             # nor after this: a module's run time depends on its arguments too
PACE_SHARE = 0.8         # the share of an instance's pace (next_pace) a first poll allows for: early, not late
# one run's ratio is taken as between these (below 1 when the kept times come from a busier period than this run's):
# a module whose arguments made it run far longer or shorter than its kept times (command: sleep 5) moves the pace
# at most this far
PACE_MIN = 0.2
PACE_MAX = 5.0
LAG_CARRIED_MAX = 0.3    # a lag carried to the next run is taken as at most this (seconds)
LAG_WRITE_CHANGE = 0.2   # the carried lag is written again when it changed by more than this share (or 10 ms)
UNSEEN_MODULE = 1.5      # poll intervals before the first poll for a module with no run time kept,
CAP = 5.0                # at most this (PollSchedule's longest delay)
DIR_NAME = 'cloud_assistant-times'
# the lag last learnt on the instance (kept as a module's times are; no module path starts with a space): the first
# guess of the next run there, instead of UNKNOWN_LAG
LAG_KEY = ' lag'
FETCH_KEY = ' fetch'     # the connection's fetch script (checksum, compress): its times, kept as a module's are


def _default_directory():
    run = local_tmp()
    if not run:
        return None
    base = os.path.dirname(run.rstrip('/'))
    try:
        st = os.stat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return base


class ModuleTimes(JsonFacts):
    """Run times (milliseconds) of modules on ``instance``, kept under ``directory`` (default: the parent of this
    run's local temporary directory). Without a usable directory nothing is kept and nothing is known."""

    def __init__(self, instance, directory=None):
        directory = directory if directory is not None else _default_directory()
        super(ModuleTimes, self).__init__(instance_file(directory, instance, DIR_NAME + '/%s.json'))

    def _kept(self, data, module):
        kept = data.get(module)
        return kept if isinstance(kept, list) and all(isinstance(ms, int) for ms in kept) else []

    def seconds(self, module):
        """The shortest of the module's kept run times, in seconds, or None. Not a longer one: a run on a busy
        instance, or with other arguments (``command: sleep 10`` before ``command: id``), must not make the next
        runs wait; a first poll that comes a little too soon costs one call and ``SECOND``."""
        kept = self._kept(self._read(), module)
        return min(kept) / 1000.0 if kept else None

    def lag(self):
        """The lag (seconds) the last run learnt on this instance (at most ``LAG_CARRIED_MAX``: one learnt in a slow
        period must not hold the next run's first polls), or None."""
        kept = self._kept(self._read(), LAG_KEY)
        return min(kept[-1] / 1000.0, LAG_CARRIED_MAX) if kept else None

    def record_lag(self, seconds):
        """Keep ``seconds`` as the lag the next run starts from; written only when it changed by more than
        ``LAG_WRITE_CHANGE`` (or 10 ms): it changes with nearly every command."""
        if self.path is None:
            return
        milliseconds = int(round(seconds * 1000))
        kept = self._kept(self._read(), LAG_KEY)
        if kept and abs(kept[-1] - milliseconds) <= max(10, LAG_WRITE_CHANGE * kept[-1]):
            return
        self._read()[LAG_KEY] = [milliseconds]
        self._write()

    def record(self, module, milliseconds):
        if self.path is None or not module or milliseconds is None or milliseconds < 0:
            return
        data = self._read()
        kept = self._kept(data, module)
        if len(kept) == KEPT and all(abs(ms - milliseconds) <= 0.1 * max(ms, 1) for ms in kept):
            return      # nothing new to learn: spare the write
        data.pop(module, None)
        data[module] = (kept + [int(milliseconds)])[-KEPT:]
        for old in list(data)[:-MODULES_KEPT]:
            del data[old]
        self._write()
        if random.randrange(PRUNE_EVERY) == 0:
            _prune(os.path.dirname(self.path))

    def _write(self):
        try:
            os.mkdir(os.path.dirname(self.path), 0o700)
        except OSError:
            pass
        self.save()


def _prune(folder, now=None):
    """Remove the instances' files not written for ``STALE_DAYS``."""
    limit = (time.time() if now is None else now) - STALE_DAYS * 86400
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        try:
            if name.endswith('.json') and os.stat(path).st_mtime < limit:
                os.remove(path)
        except OSError:
            pass


def first_poll(took, lag, poll_interval=0.2, module=False, deferred=0, pace=None):
    """Seconds from ``RunCommand`` to the first poll for a command expected to run ``took`` seconds (None: a shell
    one-liner, or with ``module`` a module not run before: ``UNSEEN_MODULE`` poll intervals, a module cannot end
    sooner than its Python has imported Ansible's module_utils) on an instance whose lag is ``lag`` (None: not seen
    yet in this run) and whose modules run ``pace`` times their kept times in this run (None: not seen yet), after
    ``deferred`` housekeeping commands the script runs first; never sooner than a quarter of ``poll_interval`` nor
    later than ``LATEST`` (or ``poll_interval``), that limit stretched by a pace above 1."""
    pace = 1.0 if pace is None else pace
    stretch = max(1.0, pace * PACE_SHARE)
    latest = min(CAP, max(LATEST, poll_interval) * stretch)
    if module and took is None:
        return min(poll_interval * UNSEEN_MODULE * stretch + deferred * DEFERRED_SECONDS, CAP)
    lag = UNKNOWN_LAG if lag is None else lag
    scale = SLACK * pace if pace < 1.0 else max(SLACK, stretch)    # one curve: SLACK at a pace of 1
    run = (SHELL_SECONDS if took is None else took * scale) + deferred * DEFERRED_SECONDS
    return min(latest, max(SOONEST, poll_interval / 4.0, run + lag + MARGIN))


def second_poll(poll_interval=0.2, first=0.0):
    """Seconds between a first poll that came too soon (``first`` seconds after ``RunCommand``) and the second:
    ``SECOND``, or half of ``poll_interval``, or ``SECOND_SHARE`` of ``first``, whichever is longest."""
    return min(CAP, max(SECOND, poll_interval / 2.0, first * SECOND_SHARE))


def next_pace(pace, took, elapsed_ms):
    """How many times the shortest of its kept run times a module takes on an instance in this run, after one that
    ran ``elapsed_ms`` where ``took`` seconds were kept (None: nothing kept, nothing learnt): the geometric mean of
    this ratio (taken as ``PACE_MIN`` to ``PACE_MAX``) and ``pace``, the one so far (None: none yet), so that one
    run with unusual arguments moves it little. An instance that is busier than when the times were kept (ten
    modules at once on two cores, a package installing beside) runs every module slower; one quieter, faster."""
    if not took or elapsed_ms is None:
        return pace
    ratio = min(PACE_MAX, max(PACE_MIN, elapsed_ms / 1000.0 / took))
    return ratio if pace is None else (pace * ratio) ** 0.5


def next_lag(lag, poll_times, script_ms):
    """The lag to use next on an instance, after a script that ran ``script_ms`` and whose polls came ``poll_times``
    seconds after ``RunCommand`` (the last one saw its end). A first poll that saw the end says only that the lag
    was no longer: the next one tries sooner (``DECAY``); a first poll too soon brackets it between the last two
    polls, and the middle is taken. ``lag``: the one used so far (None: none yet)."""
    if script_ms is None or not poll_times:
        return lag
    run = script_ms / 1000.0       # the whole script's time: waiting for files and the loader are not lag
    if len(poll_times) == 1:
        current = UNKNOWN_LAG if lag is None else lag
        return max(0.0, min(poll_times[0] - run, current * DECAY))
    return max(0.0, (poll_times[-2] + poll_times[-1]) / 2.0 - run)
