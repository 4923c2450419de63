# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _sdk_loading
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import HAS_SDK

needs_sdk = pytest.mark.skipif(not HAS_SDK, reason='the Alibaba Cloud SDK is not installed')


def _write_init(tmp_path, text):
    (tmp_path / '__init__.py').write_text(text, encoding='utf-8')
    return str(tmp_path)


def test_model_files_reads_the_generated_init(tmp_path):
    package = _write_init(tmp_path, '# generated\nfrom __future__ import annotations\n\n'
                                    'from ._run_command_request import RunCommandRequest\n'
                                    'from ._run_command_response import RunCommandResponse\n')
    assert _sdk_loading._model_files(package) == {'RunCommandRequest': '_run_command_request',
                                                  'RunCommandResponse': '_run_command_response'}


@pytest.mark.parametrize('text', [
    'from ._a import A\nimport something_else\n',        # an import this module does not understand
    'from ._a import A, B\n',                              # two names on one line
    'from .sub import A\n',                                # a file name without the leading underscore
    '__all__ = []\n',                                      # no imports at all
])
def test_model_files_refuses_other_layouts(tmp_path, text):
    assert _sdk_loading._model_files(_write_init(tmp_path, text)) is None


def test_model_files_without_an_init(tmp_path):
    assert _sdk_loading._model_files(str(tmp_path)) is None


# In a fresh interpreter, as in a module process: defer, import the client layer, use two classes.
_PROBE = r'''
import json, sys
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _sdk_loading
deferred = _sdk_loading.defer_ecs_models()
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _api, _client
import alibabacloud_ecs20140526.models as models
from alibabacloud_ecs20140526.models._run_command_request import RunCommandRequest
loaded_before = sorted(m for m in sys.modules if m.startswith('alibabacloud_ecs20140526.models._'))
request = _api.make_request('RunCommandRequest', instance_id=['i-1'], command_content='echo')
try:
    models.NoSuchModel
    missing = 'no error'
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({
    'deferred': deferred,
    'loaded_before': loaded_before,
    'same_class': models.RunCommandRequest is RunCommandRequest and type(request) is RunCommandRequest,
    'query': request.to_map(),
    'listed': 'DescribeInvocationsRequest' in dir(models),
    'missing': missing,
    'again': _sdk_loading.defer_ecs_models(),
}))
'''


@needs_sdk
def test_deferred_models_are_the_sdk_classes_loaded_on_demand():
    env = dict(os.environ, ALIBABA_CLOUD_ECS_METADATA_DISABLED='true', PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['deferred'] is True
    # Importing the SDK client loads only the few model files it names at import time, not the 1,100 of them.
    assert len(result['loaded_before']) < 20, result['loaded_before']
    assert result['same_class'] is True
    assert (result['query']['InstanceId'], result['query']['CommandContent']) == (['i-1'], 'echo')
    assert result['listed'] is True
    assert 'NoSuchModel' in result['missing']
    assert result['again'] is False


@needs_sdk
def test_nothing_is_deferred_once_the_models_are_imported():
    probe = ('import alibabacloud_ecs20140526.models\n'
             'from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _sdk_loading\n'
             'print(_sdk_loading.defer_ecs_models())\n')
    env = dict(os.environ, ALIBABA_CLOUD_ECS_METADATA_DISABLED='true', PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, '-c', probe], env=env, capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == 'False'
