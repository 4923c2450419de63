# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._targets import AgentStatus, describe_instances
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._inventory import (
    STATUSES,
    agent_hostvars,
    check_hostnames,
    hostname_candidates,
    instance_hostvars,
    parse_filters,
    raw_record,
)

# One instance as DescribeInstances answers it (shared/reference/cloud-assistant-api.md §2.14), trimmed.
ANSWER = {
    'InstanceId': 'i-abc', 'InstanceName': 'web-001', 'HostName': 'web-001', 'Status': 'Running',
    'OSType': 'linux', 'OSName': 'CentOS 7.4 64-bit', 'RegionId': 'cn-hangzhou', 'ZoneId': 'cn-hangzhou-g',
    'InstanceType': 'ecs.g5.large', 'ResourceGroupId': 'rg-1', 'DeploymentSetId': '',
    'VpcAttributes': {'VpcId': 'vpc-1', 'VSwitchId': 'vsw-1', 'NatIpAddress': '',
                      'PrivateIpAddress': {'IpAddress': ['172.17.0.5']}},
    'PublicIpAddress': {'IpAddress': ['121.40.0.1']},
    'InnerIpAddress': {'IpAddress': []},
    'EipAddress': {'AllocationId': 'eip-1', 'IpAddress': '42.112.0.9', 'Bandwidth': 5},
    'Tags': {'Tag': [{'TagKey': 'app', 'TagValue': 'web'}, {'TagKey': 'Name', 'TagValue': 'front'}]},
    'SerialNumber': 'not kept', 'Memory': 8192,
}


def render(template, variables):
    """A stand-in for the templar: '{{ x }}-{{ y }}' style only."""
    out = template
    for key, value in variables.items():
        out = out.replace('{{ %s }}' % key, str(value))
    return out


def config_error(fn, *args):
    with pytest.raises(CloudAssistantError) as info:
        fn(*args)
    assert info.value.kind == 'config'
    return info.value.msg


# -- filters ---------------------------------------------------------------------------------------------------
def test_filters_to_request_fields():
    query = parse_filters({'status': 'running', 'instance_name': 'web-*', 'vswitch_id': 'vsw-1', 'zone_id': 'z',
                           'vpc_id': 'v', 'instance_type': 't', 'resource_group_id': 'rg', 'tags': {'a': 'b', 'c': ''}})
    assert query.fields == {'status': 'Running', 'instance_name': 'web-*', 'v_switch_id': 'vsw-1', 'zone_id': 'z',
                            'vpc_id': 'v', 'instance_type': 't', 'resource_group_id': 'rg'}
    assert query.tags == {'a': 'b', 'c': None}
    assert query.ids is None
    assert query.statuses == ('Running',)


def test_no_filter_keeps_every_documented_state_only():
    query = parse_filters({})
    assert query.fields == {} and query.statuses == STATUSES
    assert query.keeps({'Status': 'Stopped'})
    assert not query.keeps({'Status': 'Deleted'})


def test_several_statuses_are_filtered_on_the_answer():
    query = parse_filters({'status': ['Running', 'stopped']})
    assert 'status' not in query.fields
    assert query.statuses == ('Running', 'Stopped')
    assert query.keeps({'Status': 'Stopped'}) and not query.keeps({'Status': 'Starting'})


def test_instance_ids_are_deduplicated():
    query = parse_filters({'instance_ids': ['i-%d' % n for n in range(250)] + ['i-1']})
    assert len(query.ids) == 250


@pytest.mark.parametrize('filters, words', [
    ({'colour': 'red'}, ['filters', 'unknown filter colour', 'instance_name']),
    ({'status': 'Deleted'}, ['status', 'Deleted', 'Running']),
    ({'tags': ['a']}, ['tags', 'dictionary']),
    ({'tags': dict(('k%d' % n, 'v') for n in range(21))}, ['21 tags', 'at most 20']),
    ({'instance_name': ''}, ['instance_name', 'non-empty']),
    ({'zone_id': ['a', 'b']}, ['zone_id', 'non-empty string']),
    ({'instance_ids': []}, ['instance_ids', 'empty']),
    ('status=Running', ['filters must be a dictionary']),
])
def test_bad_filters_name_the_option_and_the_rule(filters, words):
    msg = config_error(parse_filters, filters, 'filters')
    for word in words:
        assert word in msg, msg


def test_bad_filter_names_its_list_entry():
    assert 'exclude_filters[1]' in config_error(parse_filters, {'nope': 1}, 'exclude_filters[1]')


# -- records and hostvars ------------------------------------------------------------------------------------------
def test_raw_record_keeps_only_what_the_plugin_reads():
    raw = raw_record(ANSWER)
    assert 'SerialNumber' not in raw and raw['InstanceId'] == 'i-abc' and raw['Memory'] == 8192


def test_hostvars_in_snake_case():
    hostvars = instance_hostvars(raw_record(ANSWER), agent={'online': True, 'version': '2.2.3.857'})
    assert hostvars['instance_id'] == 'i-abc'
    assert hostvars['host_name'] == 'web-001'
    assert hostvars['os_type'] == 'linux'
    assert hostvars['vpc_id'] == 'vpc-1' and hostvars['vswitch_id'] == 'vsw-1'
    assert hostvars['private_ip_address'] == '172.17.0.5'
    assert hostvars['public_ip_address'] == '121.40.0.1'
    assert hostvars['eip_address'] == '42.112.0.9'
    assert hostvars['resource_group_id'] == 'rg-1'
    assert hostvars['deployment_set_id'] is None
    assert hostvars['instance_tags'] == {'app': 'web', 'Name': 'front'}
    assert hostvars['cloud_assistant'] == {'online': True, 'version': '2.2.3.857'}
    assert 'tags' not in hostvars


def test_hostvars_of_a_classic_network_instance_without_public_address():
    raw = {'InstanceId': 'i-x', 'Status': 'Stopped', 'OSType': 'Windows', 'InnerIpAddress': {'IpAddress': ['10.0.0.3']},
           'EipAddress': {'IpAddress': ''}}
    hostvars = instance_hostvars(raw)
    assert hostvars['private_ip_address'] == '10.0.0.3'
    assert hostvars['public_ip_address'] is None and hostvars['eip_address'] is None
    assert hostvars['os_type'] == 'windows' and hostvars['instance_tags'] == {}
    assert 'cloud_assistant' not in hostvars


# -- host names ----------------------------------------------------------------------------------------------------
def test_hostname_preferences_in_order():
    hostvars = instance_hostvars(raw_record(ANSWER))
    prefs = ['eip_address', 'instance_id']
    assert hostname_candidates(prefs, hostvars, render) == ['42.112.0.9', 'i-abc']
    assert hostname_candidates(['tag:Name', 'tag:missing', 'host_name'], hostvars, render) == ['front', 'web-001']
    assert hostname_candidates(['{{ host_name }}.{{ region_id }}'], hostvars, render) == ['web-001.cn-hangzhou']


def test_hostname_with_prefix_and_separator():
    hostvars = instance_hostvars(raw_record(ANSWER))
    prefs = [{'name': 'instance_name', 'prefix': 'tag:app', 'separator': '-'},
             {'name': 'instance_name', 'prefix': 'tag:missing'},
             {'name': 'instance_id', 'prefix': 'region_id'}]
    assert hostname_candidates(prefs, hostvars, render) == ['web-web-001', 'cn-hangzhou_i-abc']


def test_hostname_without_value_and_repeats_are_dropped():
    hostvars = instance_hostvars({'InstanceId': 'i-x', 'InstanceName': 'i-x'})
    assert hostname_candidates(['public_ip_address', 'instance_name', 'instance_id'], hostvars, render) == ['i-x']


@pytest.mark.parametrize('prefs, words', [
    ([], ['non-empty list']),
    ('instance_id', ['non-empty list']),
    (['dns-name'], ['hostnames[0]', "'dns-name'", 'instance_id', 'tag:KEY']),
    (['instance_id', 'tag:'], ['hostnames[1]']),
    ([{'prefix': 'instance_id'}], ['hostnames[0]', 'name is required']),
    ([{'name': 'instance_id', 'sep': '-'}], ['unknown key sep']),
    ([{'name': 'instance_id', 'prefix': 'nope'}], ['hostnames[0].prefix']),
    ([3], ['hostnames[0]', 'non-empty string']),
])
def test_bad_hostnames(prefs, words):
    msg = config_error(check_hostnames, prefs)
    for word in words:
        assert word in msg, msg


def test_good_hostnames_pass():
    check_hostnames(['instance_id', 'tag:Name', '{{ instance_name }}', {'name': 'host_name', 'prefix': 'zone_id'}])


class AgentModel(object):
    cloud_assistant_status = 'true'
    cloud_assistant_version = '2.2.3.857'
    ostype = 'Linux'
    last_heartbeat_time = '2026-11-29T10:00:00Z'
    last_invoked_time = None
    active_task_count = 1
    invocation_count = 4
    support_session_manager = True


def test_agent_hostvars_are_the_module_result_fields():
    status = AgentStatus('i-abc', AgentModel())
    agent = agent_hostvars(status)
    assert agent == status.fields()
    assert agent['agent_version'] == '2.2.3.857' and agent['os_type'] == 'linux' and 'version' not in agent


class RecordingApi(object):
    """``paginate`` records each DescribeInstances request and answers nothing."""

    def __init__(self):
        self.requests = []

    def paginate(self, action, request, extract):
        self.requests.append((action, request))
        return iter([])


def test_describe_instances_sends_ids_tags_and_fields_with_every_call():
    api = RecordingApi()
    ids = ['i-%03d' % n for n in range(250)]
    describe_instances(api, ids=ids, tags={'app': 'web', 'env': ''}, fields={'status': 'Running', 'zone_id': 'z-1'},
                       max_workers=1)
    assert [action for action, _request in api.requests] == ['DescribeInstances'] * 3
    sent = []
    for _action, request in api.requests:
        assert request.status == 'Running' and request.zone_id == 'z-1'
        assert [(t.key, t.value) for t in request.tag] == [('app', 'web'), ('env', None)]
        sent.extend(json.loads(request.instance_ids))
    assert sent == ids


def test_describe_instances_fields_without_ids():
    api = RecordingApi()
    describe_instances(api, fields={'v_switch_id': 'vsw-1'})
    (_action, request), = api.requests
    assert request.v_switch_id == 'vsw-1' and request.instance_ids is None and not request.tag
