# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plugin's own logic with the listing replaced (describe_instances / agent_status / build_api): regions,
strict_permissions, include/exclude, duplicate host names, groups, connection variables. The real API and
ansible-inventory are exercised by tests/integration/targets/inventory_ecs."""

from __future__ import annotations

import json
import time

import pytest

from ansible.errors import AnsibleParserError

from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.alicloud_ops.cloud_assistant.plugins.inventory import ecs
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._inventory import parse_filters
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import ConnectionOptions

DEFAULTS = {
    'regions': [], 'strict_permissions': True, 'filters': {}, 'include_filters': [], 'exclude_filters': [],
    'hostnames': ['instance_id'], 'allow_duplicated_hosts': False, 'hostvars_prefix': None, 'hostvars_suffix': None,
    'default_groups': True, 'cloud_assistant_status': False, 'use_cloud_assistant_connection': False,
    'strict': False, 'compose': {}, 'groups': {}, 'keyed_groups': [], 'leading_separator': True,
    'use_extra_vars': False, 'cache': False, 'timeout': 60,
}


def instance(instance_id, region, name, status='Running', os_type='linux', tags=None):
    return {'InstanceId': instance_id, 'InstanceName': name, 'HostName': name, 'Status': status, 'OSType': os_type,
            'RegionId': region, 'ZoneId': region + '-h',
            'Tags': {'Tag': [{'TagKey': k, 'TagValue': v} for k, v in (tags or {}).items()]}}


class FakeAgent(object):
    def __init__(self, online):
        self.online = online

    def fields(self):
        return {'online': self.online, 'installed': True, 'agent_version': '2.2.3.857' if self.online else None,
                'last_heartbeat': None, 'last_invoked': None, 'active_task_count': 0, 'invocation_count': 0,
                'supports': {}}


class FakeApi(object):
    warnings = ()  # as CloudAssistantApi: nothing to say about the transport

    def __init__(self, region_id):
        self.region_id = region_id


@pytest.fixture()
def fleet(monkeypatch):
    """{region: [instance dicts]}; regions named in fleet['denied'] answer 403; calls are recorded."""
    state = {'cn-hangzhou': [instance('i-2', 'cn-hangzhou', 'web', tags={'app': 'web'}),
                             instance('i-1', 'cn-hangzhou', 'db', status='Stopped', tags={'app': 'db'})],
             'cn-beijing': [instance('i-3', 'cn-beijing', 'web', os_type='windows', tags={'app': 'web'}),
                            instance('i-4', 'cn-beijing', 'gone', status='Deleted')],
             'cn-shanghai': [instance('i-5', 'cn-shanghai', 'plain')],
             'denied': set(), 'calls': [], 'denied_code': 'Forbidden.RAM', 'agents_denied': set(), 'many': 0}

    def describe(api, ids=None, tags=None, fields=None, max_workers=8, raw=False):
        assert raw  # the plugin keeps the API's records, never SDK models
        state['calls'].append((api.region_id, ids, tags, fields))
        if api.region_id in state['denied']:
            code = state['denied_code']
            raise CloudAssistantError('DescribeInstances failed: %s: denied' % code, code=code, status_code=403,
                                      kind='api')
        found = []
        for item in state[api.region_id]:
            item_tags = dict((t['TagKey'], t['TagValue']) for t in item['Tags']['Tag'])
            if ids is not None and item['InstanceId'] not in ids:
                continue
            if any(k not in item_tags or (v is not None and item_tags[k] != v) for k, v in (tags or {}).items()):
                continue
            if (fields or {}).get('status') not in (None, item['Status']):
                continue
            found.append(dict(item))
        return found + [instance('i-x%d' % n, api.region_id, 'x', status='Deleted') for n in range(state['many'])]

    monkeypatch.setattr(ecs, 'describe_instances', describe)

    def agents(api, ids):
        if api.region_id in state['agents_denied']:
            raise CloudAssistantError('DescribeCloudAssistantStatus failed: Forbidden.RAM: denied',
                                      code='Forbidden.RAM', status_code=403, kind='api')
        return dict((i, FakeAgent(i != 'i-1')) for i in ids)

    monkeypatch.setattr(ecs, 'agent_status', agents)
    monkeypatch.setattr(ecs, 'build_api', lambda opts, retry: FakeApi(opts.region_id))
    # no STS or metadata request from a unit test: a role or profile "resolves" to fixed keys here
    monkeypatch.setattr(ecs, 'resolved_credentials', lambda opts: ConnectionOptions(
        **dict(opts.to_dict(), access_key_id='STS.fake', access_key_secret='fake', role_arn=None, profile=None,
               ecs_ram_role_name=None)))
    return state


def plugin(**options):
    module = ecs.InventoryModule()
    module._options = dict(DEFAULTS, **options)
    module.inventory = InventoryData()
    module.templar = Templar(loader=DataLoader())
    module._opts = ConnectionOptions(region_id='cn-hangzhou', endpoint='127.0.0.1:1', access_key_id='LTAItest',
                                     access_key_secret='test')
    module._deadline = 0
    module.warnings = []
    module.display.warning = module.warnings.append
    return module


def run(module, regions=('cn-hangzhou', 'cn-beijing')):
    includes, excludes = module._queries()
    data = module._query(list(regions), includes, excludes, module.get_option('cloud_assistant_status'))
    module._populate(data, module.get_option('hostnames'))
    return data


def groups_of(module):
    return dict((name, sorted(h.name for h in group.get_hosts())) for name, group in module.inventory.groups.items()
                if group.get_hosts())


def test_every_region_every_documented_state(fleet):
    module = plugin()
    run(module)
    assert sorted(module.inventory.hosts) == ['i-1', 'i-2', 'i-3']  # i-4 is neither listed nor documented
    groups = groups_of(module)
    assert groups['ecs_region_cn_hangzhou'] == ['i-1', 'i-2']
    assert groups['ecs_os_windows'] == ['i-3']
    assert groups['ecs_status_stopped'] == ['i-1']
    assert groups['ecs_zone_cn_beijing_h'] == ['i-3']
    assert sorted(r for r, _ids, _tags, _fields in fleet['calls']) == ['cn-beijing', 'cn-hangzhou']


def test_default_groups_off(fleet):
    module = plugin(default_groups=False)
    run(module, regions=['cn-beijing'])
    assert not [g for g in groups_of(module) if g.startswith('ecs_')]
    assert 'ansible_connection' not in module.inventory.get_host('i-3').vars


def test_agents_and_online_group(fleet):
    module = plugin(cloud_assistant_status=True)
    run(module)
    assert groups_of(module)['cloud_assistant_online'] == ['i-2', 'i-3']
    assert module.inventory.get_host('i-1').vars['cloud_assistant']['online'] is False


def test_denied_region_is_fatal_by_default(fleet):
    fleet['denied'].add('cn-beijing')
    with pytest.raises(CloudAssistantError) as info:
        run(plugin())
    assert 'region cn-beijing' in info.value.msg and 'strict_permissions' in info.value.msg


def test_denied_region_skipped_with_a_warning(fleet):
    fleet['denied'].add('cn-beijing')
    module = plugin(strict_permissions=False)
    run(module)
    assert sorted(module.inventory.hosts) == ['i-1', 'i-2']
    assert any('cn-beijing skipped' in w for w in module.warnings), module.warnings


def test_other_errors_are_fatal_even_without_strict_permissions(fleet, monkeypatch):
    def broken(*args, **kwargs):
        raise CloudAssistantError('DescribeInstances failed: InvalidAccessKeyId.NotFound', status_code=404, kind='api')
    monkeypatch.setattr(ecs, 'describe_instances', broken)
    with pytest.raises(CloudAssistantError) as info:
        run(plugin(strict_permissions=False))
    assert 'InvalidAccessKeyId.NotFound' in info.value.msg


def test_include_and_exclude_filters(fleet):
    module = plugin(filters={'tags': {'app': 'web'}}, include_filters=[{'status': 'Stopped'}],
                    exclude_filters=[{'instance_ids': ['i-3']}])
    run(module)
    assert sorted(module.inventory.hosts) == ['i-1', 'i-2']
    # filters + one include entry + one exclude entry: three queries per region
    assert len(fleet['calls']) == 6


def test_duplicate_names_first_wins_then_next_preference(fleet):
    module = plugin(hostnames=['instance_name', 'tag:app'])
    run(module)
    # sorted by region: cn-beijing's i-3 is named "web" first; cn-hangzhou's i-2 falls back to its tag value,
    # which is "web" too, so to its instance ID
    assert sorted(module.inventory.hosts) == ['db', 'i-2', 'web']
    assert module.inventory.get_host('web').vars['instance_id'] == 'i-3'
    assert any('already used by i-3' in w for w in module.warnings), module.warnings


def test_allow_duplicated_hosts_adds_every_name(fleet):
    module = plugin(hostnames=['instance_name', 'instance_id'], allow_duplicated_hosts=True)
    run(module, regions=['cn-hangzhou'])
    assert sorted(module.inventory.hosts) == ['db', 'i-1', 'i-2', 'web']


def test_prefix_suffix_and_constructed_see_prefixed_names(fleet):
    trusted = ecs.trust_as_template  # as the configuration file's strings are (ansible-core 2.19)
    module = plugin(hostvars_prefix='ecs_', hostvars_suffix='_x', strict=True,
                    keyed_groups=[{'key': trusted('ecs_instance_tags_x.app'), 'prefix': 'app'}],
                    groups={'stopped': trusted("ecs_status_x == 'Stopped'")},
                    compose={'ansible_host': trusted('ecs_instance_name_x')})
    run(module, regions=['cn-hangzhou'])
    host = module.inventory.get_host('i-2')
    assert host.vars['ecs_instance_id_x'] == 'i-2' and 'instance_id' not in host.vars
    assert host.vars['ansible_host'] == 'web'
    groups = groups_of(module)
    assert groups['app_web'] == ['i-2'] and groups['app_db'] == ['i-1'] and groups['stopped'] == ['i-1']


def test_connection_options_default_region_for_discovery():
    module = plugin()
    module._options.update(dict((name, None) for name in ConnectionOptions().to_dict()))
    module._options['validate_certs'] = True
    assert module._connection_options().region_id == ecs.DEFAULT_DISCOVERY_REGION
    module._options['regions'] = ['ap-southeast-1']
    assert module._connection_options().region_id == 'ap-southeast-1'
    module._options['region_id'] = 'cn-shanghai'
    assert module._connection_options().region_id == 'cn-shanghai'


def test_queries_merge_filters_first():
    module = plugin(filters={'zone_id': 'a'}, include_filters=[{'zone_id': 'b'}], exclude_filters=[{'zone_id': 'c'}])
    includes, excludes = module._queries()
    assert [q.fields for q in includes] == [{'zone_id': 'a'}, {'zone_id': 'b'}]
    assert [q.fields for q in excludes] == [{'zone_id': 'c'}]
    assert [q.fields for q in plugin()._queries()[0]] == [parse_filters({}).fields]


def test_jinja_hostname(fleet):
    module = plugin(hostnames=['tag:none', '{{ instance_name }}.{{ region_id }}'])
    run(module, regions=['cn-hangzhou'])
    assert sorted(module.inventory.hosts) == ['db.cn-hangzhou', 'web.cn-hangzhou']


def test_jinja_hostname_undefined_falls_to_the_next_preference(fleet):
    # i-5 has no app tag: AnsibleUndefinedVariable for it must not fail the inventory
    module = plugin(hostnames=['{{ instance_tags.app }}-{{ instance_id }}', 'instance_id'])
    run(module, regions=['cn-hangzhou', 'cn-shanghai'])
    assert sorted(module.inventory.hosts) == ['db-i-1', 'i-5', 'web-i-2']
    assert not module.warnings


def test_jinja_hostname_error_gives_no_name_with_one_warning(fleet):
    module = plugin(hostnames=['{{ instance_name | no_such_filter }}', 'instance_id'])
    run(module, regions=['cn-hangzhou'])
    assert sorted(module.inventory.hosts) == ['i-1', 'i-2']
    assert len(module.warnings) == 1 and 'hostnames: ' in module.warnings[0], module.warnings


def test_api_values_are_never_templated(fleet, tmp_path):
    marker = tmp_path / 'ran'
    fleet['cn-shanghai'] = [instance('i-6', 'cn-shanghai', "{{ lookup('pipe', 'touch %s') }}" % marker),
                            instance('i-7', 'cn-shanghai', '{{ 6 * 7 }}')]
    module = plugin(hostnames=['{{ instance_name }}'])
    run(module, regions=['cn-shanghai'])
    assert not marker.exists()
    assert sorted(module.inventory.hosts) == sorted(["{{ lookup('pipe', 'touch %s') }}" % marker, '{{ 6 * 7 }}'])


@pytest.mark.parametrize('code', ['InvalidSecurityToken.Expired', 'InvalidAccessKeyId.NotFound', 'Forbidden',
                                  'Forbidden.InstanceNotFound', 'SignatureDoesNotMatch'])
def test_only_ram_denials_are_skipped(fleet, code):
    fleet['denied'].add('cn-beijing')
    fleet['denied_code'] = code
    with pytest.raises(CloudAssistantError) as info:
        run(plugin(strict_permissions=False))
    assert 'region cn-beijing' in info.value.msg and code in info.value.msg


@pytest.mark.parametrize('code', ['Forbidden.RAM', 'Forbidden.Unauthorized', 'NoPermission.Action'])
def test_ram_denial_codes_are_skipped(fleet, code):
    fleet['denied'].add('cn-beijing')
    fleet['denied_code'] = code
    module = plugin(strict_permissions=False)
    run(module)
    assert sorted(module.inventory.hosts) == ['i-1', 'i-2']


def test_every_region_denied_is_an_error_not_an_empty_inventory(fleet):
    fleet['denied'].update(['cn-hangzhou', 'cn-beijing'])
    with pytest.raises(CloudAssistantError) as info:
        run(plugin(strict_permissions=False))
    assert 'every region denied access (cn-hangzhou, cn-beijing)' in info.value.msg
    assert 'Forbidden.RAM' in info.value.msg


@pytest.mark.parametrize('regions', [[1], ['cn-hangzhou', None], ['  '], 'cn-hangzhou'])
def test_regions_must_be_strings(regions):
    with pytest.raises(CloudAssistantError) as info:
        plugin(regions=regions)._regions()
    assert info.value.msg.startswith('regions')


def test_regions_stripped_without_repeats():
    assert plugin(regions=[' cn-beijing', 'cn-hangzhou', 'cn-beijing'])._regions() == ['cn-beijing', 'cn-hangzhou']


# -- parse: caching ---------------------------------------------------------------------------------------------------
class RecordingCache(dict):
    def __init__(self):
        super(RecordingCache, self).__init__()
        self.writes = 0

    def __setitem__(self, key, value):
        self.writes += 1
        super(RecordingCache, self).__setitem__(key, value)


def parsed(fleet, store, path='/nowhere/test.ecs.yml', **options):
    """A full ``parse`` with the configuration file replaced by ``options``; returns the plugin."""
    module = plugin(**options)
    connection = dict(ConnectionOptions(access_key_id='LTAIsecretkeyid', access_key_secret='s3cr3t',
                                        endpoint='127.0.0.1:1').to_dict())
    connection.update(options)
    settings = dict(module._options, **connection)

    def read_config(path):
        module._options = settings
        module._cache = store
        return {'plugin': ecs.InventoryModule.NAME}
    module._read_config_data = read_config
    module._check_unknown_options = lambda config, path: None
    module._load_name = ecs.InventoryModule.NAME
    module.parse(InventoryData(), DataLoader(), path, cache=True)
    return module


def test_cache_hit_asks_nothing_and_writes_nothing(fleet):
    cache = RecordingCache()
    first = parsed(fleet, cache, regions=['cn-hangzhou'], cache=True)
    assert sorted(first.inventory.hosts) == ['i-1', 'i-2'] and cache.writes == 1 and len(fleet['calls']) == 1
    second = parsed(fleet, cache, regions=['cn-hangzhou'], cache=True, keyed_groups=[{'key': 'status'}])
    assert sorted(second.inventory.hosts) == ['i-1', 'i-2']
    assert cache.writes == 1 and len(fleet['calls']) == 1


@pytest.mark.parametrize('changed', [{'regions': ['cn-beijing']}, {'filters': {'status': 'Running'}},
                                     {'cloud_assistant_status': True}, {'access_key_id': 'LTAIanotherkey'},
                                     {'role_arn': 'acs:ram::1:role/reader'}, {'profile': 'other'},
                                     {'endpoint': '127.0.0.1:2'}])
def test_cache_not_used_for_another_question(fleet, changed):
    cache = RecordingCache()
    parsed(fleet, cache, regions=['cn-hangzhou'], cache=True)
    options = dict({'regions': ['cn-hangzhou'], 'cache': True}, **changed)
    parsed(fleet, cache, **options)
    assert len(fleet['calls']) == 2 and cache.writes == 2


def test_cache_holds_no_key_material(fleet):
    cache = RecordingCache()
    parsed(fleet, cache, regions=['cn-hangzhou'], cache=True, role_arn='acs:ram::1:role/reader', profile='prof')
    text = json.dumps(cache)
    for secret in ('LTAIsecretkeyid', 's3cr3t', 'acs:ram::1:role/reader', 'prof"'):
        assert secret not in text


def test_cache_off_never_reads_or_writes(fleet):
    cache = RecordingCache()
    parsed(fleet, cache, regions=['cn-hangzhou'])
    parsed(fleet, cache, regions=['cn-hangzhou'])
    assert cache.writes == 0 and len(fleet['calls']) == 2


# -- timeout ----------------------------------------------------------------------------------------------------------
def test_an_endpoint_that_does_not_answer_fails_within_the_timeout():
    # the real API client and retry policy (no fleet fixture): nothing listens on 127.0.0.1:1
    started = time.monotonic()
    with pytest.raises(AnsibleParserError) as info:
        parsed(None, RecordingCache(), regions=['cn-hangzhou'], timeout=2)
    assert time.monotonic() - started < 20
    assert 'region cn-hangzhou: DescribeInstances failed' in str(info.value)


@pytest.mark.parametrize('value', [0, -1, 3601, True, '60'])
def test_timeout_is_checked(value):
    with pytest.raises(CloudAssistantError) as info:
        plugin(timeout=value)._timeout()
    assert info.value.msg.startswith('timeout must be a number of seconds from 1 to 3600')


# -- review findings 7, 8, 9 ------------------------------------------------------------------------------------------
def test_use_cloud_assistant_connection_sets_the_connection_on_linux_hosts(fleet):
    module = parsed(fleet, RecordingCache(), regions=['cn-hangzhou', 'cn-beijing'], use_cloud_assistant_connection=True)
    hosts = module.inventory.hosts
    linux = hosts['i-2'].vars
    assert linux['ansible_connection'] == 'alicloud_ops.cloud_assistant.cloud_assistant'
    assert linux['ansible_alicloud_instance_id'] == 'i-2'
    assert linux['ansible_alicloud_region_id'] == 'cn-hangzhou'
    windows = hosts['i-3'].vars
    assert 'ansible_connection' not in windows and 'ansible_alicloud_instance_id' not in windows


def test_without_use_cloud_assistant_connection_no_connection_is_set(fleet):
    module = parsed(fleet, RecordingCache(), regions=['cn-hangzhou'])
    assert 'ansible_connection' not in module.inventory.hosts['i-2'].vars


@pytest.mark.parametrize('use_connection', [True, False])
def test_the_connection_is_loaded_in_the_controller_only_for_hosts_that_use_it(monkeypatch, fleet, use_connection):
    loaded = []
    monkeypatch.setattr(ecs, 'preload_connection', loaded.append)
    parsed(fleet, RecordingCache(), regions=['cn-hangzhou'], use_cloud_assistant_connection=use_connection)
    assert loaded == (['alicloud_ops.cloud_assistant.ecs'] if use_connection else [])


def test_agent_status_denied_keeps_the_instances_with_a_warning(fleet):
    fleet['agents_denied'].add('cn-beijing')
    module = plugin(cloud_assistant_status=True)
    run(module)
    assert sorted(module.inventory.hosts) == ['i-1', 'i-2', 'i-3']
    assert 'cloud_assistant' not in module.inventory.get_host('i-3').vars
    assert module.inventory.get_host('i-2').vars['cloud_assistant']['online'] is True
    assert groups_of(module)['cloud_assistant_online'] == ['i-2']
    assert any(w.startswith('region cn-beijing: the instances are listed without the cloud_assistant')
               and 'Forbidden.RAM' in w for w in module.warnings), module.warnings


@pytest.mark.parametrize('filters, warned', [({'tags': {'app': None}}, True), ({'resource_group_id': 'rg-1'}, True),
                                             ({'zone_id': 'cn-hangzhou-h'}, False)])
def test_filter_resource_limit_warning(fleet, filters, warned):
    fleet['many'] = 1000  # (Deleted instances: counted in the answer, not listed)
    module = plugin(filters=filters)
    run(module, regions=['cn-hangzhou'])
    messages = [w for w in module.warnings if 'among at most 1000 resources' in w]
    assert bool(messages) == warned, module.warnings


def test_filter_resource_limit_no_warning_below_it(fleet):
    fleet['many'] = 997  # 999 in the answer with i-1 and i-2
    module = plugin(filters={'tags': {'app': None}})
    run(module, regions=['cn-hangzhou'])
    assert not module.warnings


# -- regions: discovery and concurrency; unknown options ---------------------------------------------------------------
class RegionsApi(object):
    warnings = ()

    def __init__(self, answer):
        self.answer = answer

    def call(self, action, request):
        assert action == 'DescribeRegions'
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def regions_body(*names):
    region = type('Region', (), {})
    items = []
    for name in names:
        item = region()
        item.region_id = name
        items.append(item)
    holder = type('Regions', (), {})()
    holder.region = items
    body = type('Body', (), {})()
    body.regions = holder
    return body


def test_discover_regions(monkeypatch):
    monkeypatch.setattr(ecs, 'build_api', lambda opts, retry: RegionsApi(regions_body('cn-hangzhou', 'cn-beijing')))
    assert plugin()._discover_regions() == ['cn-hangzhou', 'cn-beijing']


@pytest.mark.parametrize('answer, message', [
    (CloudAssistantError('DescribeRegions failed: InvalidAccessKeyId.NotFound', kind='api'),
     'regions: listing the regions in cn-hangzhou failed: DescribeRegions failed: InvalidAccessKeyId.NotFound'),
    (regions_body(), 'regions: DescribeRegions reported no region; set the regions option'),
])
def test_discover_regions_errors(monkeypatch, answer, message):
    monkeypatch.setattr(ecs, 'build_api', lambda opts, retry: RegionsApi(answer))
    with pytest.raises(CloudAssistantError) as info:
        plugin()._discover_regions()
    assert info.value.msg == message


def test_regions_are_listed_concurrently_within_the_bound(fleet, monkeypatch):
    import threading
    lock = threading.Lock()
    state = {'now': 0, 'most': 0}
    regions = ['r-%02d' % n for n in range(ecs.REGION_WORKERS * 2)]

    def describe(api, ids=None, tags=None, fields=None, raw=False):
        with lock:
            state['now'] += 1
            state['most'] = max(state['most'], state['now'])
        time.sleep(0.05)
        with lock:
            state['now'] -= 1
        return [instance('i-' + api.region_id, api.region_id, 'x')]
    monkeypatch.setattr(ecs, 'describe_instances', describe)
    module = plugin()
    run(module, regions=regions)
    assert len(module.inventory.hosts) == len(regions)
    assert 1 < state['most'] <= ecs.REGION_WORKERS


def test_unknown_options_are_named(monkeypatch):
    from ansible import constants as C
    definitions = {'plugin': {}, 'regions': {}, 'access_key_id': {'aliases': ['alicloud_access_key']}}
    monkeypatch.setattr(C.config, 'get_configuration_definitions', lambda kind, name: definitions)
    module = plugin()
    module._load_name = ecs.InventoryModule.NAME
    module._check_unknown_options({'plugin': 'x', 'regions': [], 'alicloud_access_key': 'k'}, 'a.ecs.yml')
    with pytest.raises(AnsibleParserError) as info:
        module._check_unknown_options({'plugin': 'x', 'colour': 1, 'size': 2}, 'a.ecs.yml')
    assert str(info.value).startswith('a.ecs.yml: unknown option colour, size for alicloud_ops.cloud_assistant.ecs;')


# -- role_arn: assumed once for every region ------------------------------------------------------------------------
def test_a_role_is_assumed_once_for_every_region(fleet, monkeypatch):
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _client

    class Temporary(object):
        access_key_id, access_key_secret, security_token = 'STS.id', 'sts-secret', 'sts-token'

    class Credential(object):
        calls = 0

        def get_credential(self):
            Credential.calls += 1
            return Temporary()

    monkeypatch.setattr(_client, '_credential_kwargs', lambda opts: {'credential': Credential()})
    monkeypatch.setattr(ecs, 'resolved_credentials', _client.resolved_credentials)
    built = []
    monkeypatch.setattr(ecs, 'build_api', lambda opts, retry: built.append(opts) or FakeApi(opts.region_id))
    module = plugin()
    module._opts = ConnectionOptions(access_key_id='LTAIbase', access_key_secret='base', endpoint='127.0.0.1:1',
                                     role_arn='acs:ram::1:role/reader')
    run(module, regions=['cn-hangzhou', 'cn-beijing', 'cn-shanghai'])
    assert Credential.calls == 1
    assert sorted(o.region_id for o in built) == ['cn-beijing', 'cn-hangzhou', 'cn-shanghai']
    assert all((o.access_key_id, o.security_token, o.role_arn) == ('STS.id', 'sts-token', None) for o in built)
    assert module._opts.role_arn == 'acs:ram::1:role/reader'  # the cache key still sees the role


def test_static_keys_are_used_as_they_are():
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import resolved_credentials
    opts = ConnectionOptions(access_key_id='LTAIbase', access_key_secret='base', region_id='cn-hangzhou')
    assert resolved_credentials(opts) is opts


# -- what adding the hosts costs: shared values, one cache text, the -vvv timing ----------------------------------------
def wrapped(module, source='<unit test>'):
    """The plugin's inventory as ansible-core 2.19+ hands it over (every set_variable value copied and tagged with
    ``source``)."""
    manager = pytest.importorskip('ansible.inventory.manager')
    tags = pytest.importorskip('ansible._internal._datatag._tags')
    if not hasattr(manager, '_InventoryDataWrapper'):
        pytest.skip('ansible-core before 2.19 hands plugins the inventory itself')
    module.inventory = manager._InventoryDataWrapper(InventoryData(), target_plugin=module,
                                                     origin=tags.Origin(description=source))
    return tags.Origin


def test_shared_values_give_every_host_what_set_variable_gives_it(fleet):
    module = plugin(use_cloud_assistant_connection=True, hostvars_prefix='ecs_')
    origin = wrapped(module)
    data = run(module)
    # the reference: every variable handed to set_variable on its own, as before the values were shared
    reference = plugin(use_cloud_assistant_connection=True, hostvars_prefix='ecs_')
    wrapped(reference)
    for region in data.values():
        for raw in region['instances']:
            name = raw['InstanceId']
            reference.inventory.add_host(name)
            for key, value in ecs.instance_hostvars(raw).items():
                reference.inventory.set_variable(name, 'ecs_' + key, value)
            if raw['OSType'] != 'windows':
                for key, value in (('ansible_connection', ecs.CONNECTION),
                                   ('ansible_alicloud_instance_id', name),
                                   ('ansible_alicloud_region_id', raw['RegionId'])):
                    reference.inventory.set_variable(name, key, value)

    def seen(inventory):
        return dict((h, dict((k, (v, type(v), origin.get_tag(v))) for k, v in inventory.get_host(h).vars.items()))
                    for h in inventory.hosts)
    assert seen(module.inventory) == seen(reference.inventory)
    assert origin.get_tag(module.inventory.get_host('i-1').vars['ecs_status']) is not None
    hosts = [module.inventory.get_host(h).vars for h in ('i-1', 'i-2')]
    # one copy of a value the hosts share; unshared values stay apart
    assert hosts[0]['ecs_region_id'] is hosts[1]['ecs_region_id']
    assert hosts[0]['ecs_instance_tags'] is not hosts[1]['ecs_instance_tags']
    assert module.inventory.get_host('i-2').vars['ansible_alicloud_instance_id'] is hosts[1]['ecs_instance_id']


def test_shared_values_are_not_carried_from_one_source_to_the_next(fleet):
    module = plugin()
    origin = wrapped(module)
    run(module, regions=['cn-hangzhou'])
    first = module.inventory.get_host('i-1').vars['region_id']
    wrapped(module, '<another source>')  # the same plugin object parses a second source
    run(module, regions=['cn-hangzhou'])
    second = module.inventory.get_host('i-1').vars['region_id']
    assert first == second and first is not second and origin.get_tag(first) != origin.get_tag(second)


def test_cache_entry_is_one_json_text_and_a_damaged_one_is_asked_again(fleet):
    cache = RecordingCache()
    parsed(fleet, cache, regions=['cn-hangzhou'], cache=True)
    (entry,) = cache.values()
    assert isinstance(entry['regions'], str)
    assert sorted(i['InstanceId'] for i in json.loads(entry['regions'])['cn-hangzhou']['instances']) == ['i-1', 'i-2']
    for damaged in ('{"cn-hangzhou": [', {'cn-hangzhou': {'instances': []}}, '[]', None):
        (entry,) = cache.values()
        entry['regions'] = damaged  # cut short, the format before 3, not a listing, missing
        calls = len(fleet['calls'])
        module = parsed(fleet, cache, regions=['cn-hangzhou'], cache=True)
        assert len(fleet['calls']) == calls + 1 and sorted(module.inventory.hosts) == ['i-1', 'i-2']


def test_the_listing_and_the_hosts_are_timed_at_vvv(fleet, monkeypatch):
    from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._inventory import PHASE_PATTERN
    lines = []
    monkeypatch.setattr(ecs.InventoryModule().display, 'vvv', lambda msg, host=None: lines.append(msg))
    cache = RecordingCache()
    parsed(fleet, cache, regions=['cn-hangzhou', 'cn-beijing'], cache=True)
    parsed(fleet, cache, regions=['cn-hangzhou', 'cn-beijing'], cache=True)
    found = [PHASE_PATTERN.search(line) for line in lines]
    assert [(m.group('source'), m.group('instances'), m.group('regions'), m.group('hosts')) for m in found if m] == [
        ('the API', '3', '2', '3'), ('the cache', '3', '2', '3')]
