# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""Loading the ECS SDK without the parts a run never uses.

``alibabacloud_ecs20140526.models`` is a package whose ``__init__`` imports the request and response classes of
every ECS action (over 1,100 files): about 0.3 s of each module process's start-up (measured with ``python -X
importtime`` on the task benchmark), when a run needs a dozen of those classes. ``defer_ecs_models()``,
called before the SDK is imported, registers the package as a module that imports a class's own file the first
time the class is asked for; the class names and files are read from the package's ``__init__``.

It does nothing when the package is already imported, when the installed SDK is laid out differently (older
releases have one ``models.py``), or when the ``__init__`` holds anything but those imports; the SDK is then
imported as usual. The classes are the SDK's own: nothing changes what a call sends or receives.

(The other large import, ``aiohttp``, cannot be deferred this way: the SDK's ``darabonba`` package uses it in
annotations and ``from aiohttp import`` lines that run at import time.)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import types

MODELS_PACKAGE = 'alibabacloud_ecs20140526.models'
_MODEL_IMPORT = re.compile(r'^from \.(_[a-z0-9_]+) import ([A-Za-z_][A-Za-z0-9_]*)\s*$', re.MULTILINE)


def _model_files(package_dir):
    """``{ClassName: '_file'}`` from the models package's ``__init__``, or None when it is not as expected."""
    init = os.path.join(package_dir, '__init__.py')
    try:
        with open(init, encoding='utf-8') as handle:
            text = handle.read()
    except OSError:
        return None
    files = dict((name, module) for module, name in _MODEL_IMPORT.findall(text))
    # Every import line must have matched: anything else (__all__ logic, code) means a layout not known here.
    imports = sum(1 for line in text.splitlines() if line.startswith(('from ', 'import ')))
    if not files or imports != len(files) + text.count('from __future__ import'):
        return None
    return files


class _ModelsPackage(types.ModuleType):
    """The models package, importing a class's file the first time the class is asked for."""

    def __init__(self, spec, files):
        super(_ModelsPackage, self).__init__(spec.name)
        self.__spec__ = spec
        self.__file__ = spec.origin
        self.__path__ = list(spec.submodule_search_locations)
        self.__package__ = spec.name
        self._model_files = files

    def __getattr__(self, name):
        files = self.__dict__.get('_model_files') or {}
        if name not in files:
            raise AttributeError('module %r has no attribute %r' % (self.__name__, name))
        value = getattr(importlib.import_module('%s.%s' % (self.__name__, files[name])), name)
        setattr(self, name, value)
        return value

    def __dir__(self):
        return sorted(set(super(_ModelsPackage, self).__dir__()) | set(self.__dict__.get('_model_files') or ()))


def defer_ecs_models():
    """Register the ECS models package as deferred; whether it was (False: it will be imported as usual)."""
    if MODELS_PACKAGE in sys.modules:
        return False
    try:
        spec = importlib.util.find_spec(MODELS_PACKAGE)
        files = _model_files(os.path.dirname(spec.origin)) if spec and spec.submodule_search_locations and spec.origin else None
        if files is None:
            return False
        package = _ModelsPackage(spec, files)
        sys.modules[MODELS_PACKAGE] = package
        sys.modules['alibabacloud_ecs20140526'].models = package
    except Exception:  # pylint: disable=broad-exception-caught
        # Deferring is an optimisation only: whatever went wrong (the SDK missing included), the usual import follows.
        sys.modules.pop(MODELS_PACKAGE, None)
        return False
    return True
