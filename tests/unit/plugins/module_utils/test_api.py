# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import threading

import pytest

from alibabacloud_tea_openapi import exceptions as sdk_exceptions
from alibabacloud_ecs20140526 import models as ecs_models

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _api
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import CloudAssistantApi, snake_case
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import run_concurrently
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy


def api_error(code, status):
    cls = sdk_exceptions.ServerException if status >= 500 else sdk_exceptions.ClientException
    return cls(status_code=status, code=code, message='code: %s, Message for %s request id: R-1' % (status, code),
               data={'Code': code, 'Message': 'Message for %s' % code, 'RequestId': 'R-1'}, request_id='R-1')


class Response:
    def __init__(self, body):
        self.status_code = 200
        self.headers = {}
        self.body = body


class FakeClient:
    """Stands in for the SDK client at its method boundary: ``<action>_with_options(request, runtime)``."""

    def __init__(self):
        self.script = {}     # action -> list of exceptions or bodies, consumed in order
        self.seen = []       # (action, request, runtime)
        self.sent = []       # (action, request.to_map() when it was sent)
        self.lock = threading.Lock()

    def _answer(self, action, request, runtime):
        with self.lock:
            self.seen.append((action, request, runtime))
            self.sent.append((action, request.to_map()))
            queue = self.script.get(action)
            item = queue.pop(0) if queue else {'RequestId': 'ok'}
        if isinstance(item, Exception):
            raise item
        return Response(item)

    def run_command_with_options(self, request, runtime):
        return self._answer('RunCommand', request, runtime)

    def describe_regions_with_options(self, request, runtime):
        return self._answer('DescribeRegions', request, runtime)

    def describe_instances_with_options(self, request, runtime):
        return self._answer('DescribeInstances', request, runtime)

    def describe_invocations_with_options(self, request, runtime):
        return self._answer('DescribeInvocations', request, runtime)

    def reboot_instance_with_options(self, request, runtime):
        return self._answer('RebootInstance', request, runtime)

    def install_cloud_assistant_with_options(self, request, runtime):
        return self._answer('InstallCloudAssistant', request, runtime)


class PlainClient:
    """A client with only the plain methods (no runtime argument)."""

    def __init__(self):
        self.requests = []

    def describe_regions(self, request):
        self.requests.append(request)
        return Response('body')


def no_sleep_policy():
    return RetryPolicy(deadline=None, sleep=lambda seconds: None, rng=lambda: 0.0)


@pytest.mark.parametrize('action, expected', [
    ('RunCommand', 'run_command'),
    ('DescribeCloudAssistantStatus', 'describe_cloud_assistant_status'),
    ('DescribeInvocationResults', 'describe_invocation_results'),
    ('InstallCloudAssistant', 'install_cloud_assistant'),
    ('DescribeRegions', 'describe_regions'),
])
def test_snake_case(action, expected):
    assert snake_case(action) == expected


def test_snake_case_matches_sdk_method_names():
    from alibabacloud_ecs20140526 import client as client_module
    for action in ('RunCommand', 'InvokeCommand', 'DescribeInvocations', 'DescribeInvocationResults',
                   'DescribeCloudAssistantStatus', 'InstallCloudAssistant', 'StopInvocation', 'SendFile',
                   'DescribeInstances', 'DescribeRegions', 'CreateCommand', 'DeleteCommand', 'DescribeCommands',
                   'DescribeSendFileResults', 'ModifyCommand'):
        assert hasattr(client_module.Client, snake_case(action) + '_with_options'), action


def test_call_returns_body_fills_region_and_passes_runtime():
    client = FakeClient()
    client.script['RunCommand'] = [{'InvokeId': 't-1'}]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy(),
                            runtime={'ignore_ssl': True, 'connect_timeout': 5000, 'read_timeout': 15000})
    request = ecs_models.RunCommandRequest(type='RunShellScript', command_content='id', client_token='tok')
    assert api.call('RunCommand', request) == {'InvokeId': 't-1'}
    action, sent, runtime = client.seen[0]
    assert sent.region_id == 'cn-hangzhou'
    assert runtime.ignore_ssl is True
    assert (runtime.connect_timeout, runtime.read_timeout) == (5000, 15000)
    assert api.calls == {'RunCommand': 1}


def test_explicit_region_is_kept():
    client = FakeClient()
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    api.call('DescribeInvocations', ecs_models.DescribeInvocationsRequest(region_id='cn-beijing'))
    assert client.seen[0][1].region_id == 'cn-beijing'


def test_every_attempt_is_counted():
    client = FakeClient()
    client.script['DescribeRegions'] = [api_error('Throttling.User', 400), api_error('ServiceUnavailable', 503),
                                        {'Regions': []}]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    assert api.call('DescribeRegions', ecs_models.DescribeRegionsRequest()) == {'Regions': []}
    assert api.calls == {'DescribeRegions': 3}
    assert api.total_calls == 3
    assert api.retry.retries == 2


def test_errors_are_mapped():
    client = FakeClient()
    client.script['RunCommand'] = [api_error('InvalidInstance.NotFound', 404)]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    with pytest.raises(CloudAssistantError) as info:
        api.call('RunCommand', ecs_models.RunCommandRequest(client_token='tok'))
    assert info.value.msg == 'RunCommand failed: InvalidInstance.NotFound: Message for InvalidInstance.NotFound (RequestId: R-1)'
    assert api.calls == {'RunCommand': 1}


def test_run_command_without_client_token_is_not_retried_after_a_server_error():
    client = FakeClient()
    client.script['RunCommand'] = [api_error('InternalError', 500), {'InvokeId': 't-2'}]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    with pytest.raises(CloudAssistantError) as info:
        api.call('RunCommand', ecs_models.RunCommandRequest(type='RunShellScript', command_content='id'))
    assert info.value.code == 'InternalError'
    assert api.calls == {'RunCommand': 1}
    # with a ClientToken the same failure is retried
    api.call('RunCommand', ecs_models.RunCommandRequest(type='RunShellScript', command_content='id', client_token='t'))
    assert api.calls == {'RunCommand': 2}


def connection_reset():
    """A lost reply as the SDK raises it: UnretryableException -> RetryError, over a reset connection."""
    from darabonba import exceptions as dara_exceptions
    from darabonba.policy import retry as policy
    retry_error = dara_exceptions.RetryError("('Connection aborted.', ConnectionResetError(104, 'Connection reset by "
                                             "peer'))")
    retry_error.__context__ = ConnectionResetError(104, 'Connection reset by peer')
    return dara_exceptions.UnretryableException(policy.RetryPolicyContext(retries_attempted=1, exception=retry_error))


@pytest.mark.parametrize('action, request_model, fields', [
    ('RebootInstance', 'RebootInstanceRequest', {'instance_id': 'i-a'}),
    ('InstallCloudAssistant', 'InstallCloudAssistantRequest', {'instance_id': ['i-a', 'i-b']}),
])
@pytest.mark.parametrize('failure', ['reset', '500', '503'])
def test_actions_without_client_token_are_not_repeated_once_the_service_may_have_acted(action, request_model, fields,
                                                                                       failure):
    assert not hasattr(getattr(ecs_models, request_model)(), 'client_token')   # the SDK offers none
    client = FakeClient()
    error = {'reset': connection_reset, '500': lambda: api_error('InternalError', 500),
             '503': lambda: api_error('ServiceUnavailable', 503)}[failure]()
    client.script[action] = [error, {'RequestId': 'second'}]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    with pytest.raises(CloudAssistantError):
        api.call(action, getattr(ecs_models, request_model)(**fields))
    assert api.calls == {action: 1}
    # throttling: the service did not act, so it is retried
    client.script[action] = [api_error('Throttling.User', 400), {'RequestId': 'after-throttling'}]
    assert api.call(action, getattr(ecs_models, request_model)(**fields)) == {'RequestId': 'after-throttling'}
    assert api.calls == {action: 3}


def test_plain_method_fallback():
    client = PlainClient()
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    assert api.call('DescribeRegions', ecs_models.DescribeRegionsRequest()) == 'body'
    assert api.calls == {'DescribeRegions': 1}


def test_unknown_action():
    api = CloudAssistantApi(PlainClient(), 'cn-hangzhou', no_sleep_policy())
    with pytest.raises(CloudAssistantError) as info:
        api.call('FlyToTheMoon', object())
    assert 'fly_to_the_moon' in info.value.msg


def test_counters_are_thread_safe():
    client = FakeClient()
    client.script['DescribeRegions'] = [api_error('Throttling.User', 400) for dummy in range(30)]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())

    def work(batch):
        for dummy in batch:
            api.call('DescribeRegions', ecs_models.DescribeRegionsRequest())
        return len(batch)

    assert sum(run_concurrently(work, [list(range(100))] * 8, max_workers=8)) == 800
    assert api.calls == {'DescribeRegions': 830}
    assert api.retry.retries == 30


# -- pagination -----------------------------------------------------------------------------------------------------
def instances_page(ids, token):
    body = ecs_models.DescribeInstancesResponseBody().from_map({
        'RequestId': 'R', 'NextToken': token,
        'Instances': {'Instance': [{'InstanceId': i} for i in ids]}})
    return body


def test_paginate_follows_next_token_with_largest_page():
    client = FakeClient()
    client.script['DescribeInstances'] = [instances_page(['i-1', 'i-2'], 'tok-1'), instances_page(['i-3'], 'tok-2'),
                                          instances_page(['i-4'], '')]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    request = ecs_models.DescribeInstancesRequest(status='Running')
    found = [i.instance_id for i in api.paginate('DescribeInstances', request, lambda body: body.instances.instance)]
    assert found == ['i-1', 'i-2', 'i-3', 'i-4']
    sent = [m for action, m in client.sent]
    assert [m.get('NextToken') for m in sent] == [None, 'tok-1', 'tok-2']
    assert all(m['MaxResults'] == 100 and m['Status'] == 'Running' and m['RegionId'] == 'cn-hangzhou' for m in sent)
    assert request.max_results is None and request.next_token is None  # the caller's request is untouched
    assert api.calls == {'DescribeInstances': 3}


def test_paginate_cloud_assistant_describe_uses_50_and_absent_token_ends():
    client = FakeClient()
    page = ecs_models.DescribeInvocationsResponseBody().from_map({
        'RequestId': 'R', 'Invocations': {'Invocation': [{'InvokeId': 't-1'}]}})
    client.script['DescribeInvocations'] = [page]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    found = list(api.paginate('DescribeInvocations', ecs_models.DescribeInvocationsRequest(),
                              lambda body: body.invocations.invocation))
    assert [i.invoke_id for i in found] == ['t-1']
    assert client.seen[0][1].max_results == 50
    assert api.calls == {'DescribeInvocations': 1}


def test_paginate_retries_a_page():
    client = FakeClient()
    client.script['DescribeInstances'] = [instances_page(['i-1'], 'tok-1'), api_error('ServiceUnavailable', 503),
                                          instances_page(['i-2'], None)]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    found = [i.instance_id for i in api.paginate('DescribeInstances', ecs_models.DescribeInstancesRequest(),
                                                 lambda body: body.instances.instance)]
    assert found == ['i-1', 'i-2']
    assert [m.get('NextToken') for action, m in client.sent] == [None, 'tok-1', 'tok-1']


def test_paginate_stops_on_a_repeated_token():
    client = FakeClient()
    client.script['DescribeInstances'] = [instances_page(['i-1'], 'same'), instances_page(['i-2'], 'same')]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    with pytest.raises(CloudAssistantError) as info:
        list(api.paginate('DescribeInstances', ecs_models.DescribeInstancesRequest(),
                          lambda body: body.instances.instance))
    assert 'NextToken' in info.value.msg


def test_paginate_page_cap(monkeypatch):
    monkeypatch.setattr(_api, 'MAX_PAGES', 3)
    client = FakeClient()
    client.script['DescribeInstances'] = [instances_page(['i-%d' % n], 'tok-%d' % n) for n in range(10)]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    with pytest.raises(CloudAssistantError) as info:
        list(api.paginate('DescribeInstances', ecs_models.DescribeInstancesRequest(),
                          lambda body: body.instances.instance))
    assert 'more than 3 pages' in info.value.msg
    assert api.calls == {'DescribeInstances': 3}


# -- call_raw: the API's JSON without SDK models ----------------------------------------------------------------------
def recording_sdk_client():
    """A real SDK client whose generic ``call_api`` (where every generated method ends) records what it is given."""
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi import models as open_api_models
    client = Client(open_api_models.Config(access_key_id='id', access_key_secret='secret', region_id='cn-hangzhou',
                                           endpoint='127.0.0.1:1', protocol='http'))
    client.recorded = []

    def call_api(params, request, runtime):
        client.recorded.append((params.to_map(), dict(request.query), runtime))
        return {'statusCode': 200, 'headers': {}, 'body': {'RequestId': 'R', 'Instances': {'Instance': []}}}
    client.call_api = call_api
    return client


def test_call_raw_sends_what_the_sdk_method_sends():
    tags = [ecs_models.DescribeInstancesRequestTag(key='app', value='web'), ecs_models.DescribeInstancesRequestTag(key='env')]
    fields = dict(instance_ids='["i-1", "i-2"]', status='Running', zone_id='cn-hangzhou-h', max_results=100,
                  next_token='tok', tag=tags)
    client = recording_sdk_client()
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy(), runtime={'ignore_ssl': True})
    assert api.call_raw('DescribeInstances', ecs_models.DescribeInstancesRequest(**fields)) == {
        'RequestId': 'R', 'Instances': {'Instance': []}}
    api.call('DescribeInstances', ecs_models.DescribeInstancesRequest(**fields))
    (raw_params, raw_query, raw_runtime), (sdk_params, sdk_query, sdk_runtime) = client.recorded
    assert raw_params == sdk_params and raw_params['action'] == 'DescribeInstances'
    assert raw_query == sdk_query and raw_query['Tag.1.Key'] == 'app' and raw_query['RegionId'] == 'cn-hangzhou'
    assert raw_runtime.ignore_ssl is True and sdk_runtime.ignore_ssl is True
    assert api.calls == {'DescribeInstances': 2}


class RawClient(FakeClient):
    """``FakeClient`` that also answers the generic ``call_api`` from the same script (bodies as dicts)."""

    def call_api(self, params, request, runtime):
        with self.lock:
            self.sent.append((params.action, dict(request.query)))
            queue = self.script.get(params.action)
            item = queue.pop(0) if queue else {'RequestId': 'ok'}
        if isinstance(item, Exception):
            raise item
        return {'statusCode': 200, 'headers': {}, 'body': item}


def test_call_raw_retries_counts_and_maps_errors_like_call():
    client = RawClient()
    client.script['DescribeInstances'] = [api_error('Throttling.User', 400), {'Instances': {'Instance': [{'InstanceId': 'i-1'}]}},
                                          api_error('InvalidInstance.NotFound', 404)]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    request = ecs_models.DescribeInstancesRequest()
    assert api.call_raw('DescribeInstances', request) == {'Instances': {'Instance': [{'InstanceId': 'i-1'}]}}
    with pytest.raises(CloudAssistantError) as info:
        api.call_raw('DescribeInstances', request)
    assert info.value.code == 'InvalidInstance.NotFound'
    assert api.calls == {'DescribeInstances': 3} and api.retry.retries == 1


def test_paginate_raw_follows_next_token_in_the_json():
    client = RawClient()
    client.script['DescribeInstances'] = [{'Instances': {'Instance': [{'InstanceId': 'i-1'}]}, 'NextToken': 'tok-1'},
                                          {'Instances': {'Instance': [{'InstanceId': 'i-2'}]}, 'NextToken': ''}]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    found = list(api.paginate('DescribeInstances', ecs_models.DescribeInstancesRequest(), _api.raw_instances_of,
                              raw=True))
    assert found == [{'InstanceId': 'i-1'}, {'InstanceId': 'i-2'}]
    assert [(q.get('NextToken'), q['MaxResults']) for action, q in client.sent] == [(None, '100'), ('tok-1', '100')]


def test_call_raw_without_the_generic_call_is_call_with_the_body_as_a_dict():
    client = FakeClient()  # only the generated methods
    client.script['DescribeInstances'] = [instances_page(['i-1'], '')]
    api = CloudAssistantApi(client, 'cn-hangzhou', no_sleep_policy())
    body = api.call_raw('DescribeInstances', ecs_models.DescribeInstancesRequest())
    assert [i['InstanceId'] for i in _api.raw_instances_of(body)] == ['i-1']
