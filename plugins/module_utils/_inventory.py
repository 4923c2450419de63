# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: may change without notice.

"""The inventory plugin's pure logic (``plugins/inventory/ecs.py``): no API call and no Ansible object here.

- ``parse_filters(filters, option)`` -> ``Query``: the checked ``filters`` / ``include_filters`` /
  ``exclude_filters`` entry, as the arguments of ``_targets.describe_instances`` (the one place that lists
  instances) plus what only the client can filter (several statuses, instances being released).
- ``raw_record(model)``: the part of a DescribeInstances answer the plugin keeps and caches (the API's own
  field names), so that hostvars, groups and host names are derived again from the cache on every run.
- ``instance_hostvars(raw, agent=None)``: the snake_case hostvars of one instance.
- ``check_hostnames(preferences)`` / ``hostname_candidates(preferences, hostvars, render)``: the ``hostnames``
  option.
- ``cached_regions(text)``: the listing read back from the plugin's cache entry, or None when it is unusable.
- ``phase_timing(...)``: the line the plugin shows at ``-vvv`` with the time of the listing and of adding the hosts
  (``benchmarks/inventory_listing.py`` reads it: ``PHASE_PATTERN``).
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import invalid

# DescribeInstances Status values (shared/reference/cloud-assistant-api.md §2.14). An instance in any other state
# (being released, for example) is left out unless a filter asks for that state by name.
STATUSES = ('Pending', 'Running', 'Starting', 'Stopping', 'Stopped')
MAX_TAGS = 20

# filter name -> DescribeInstancesRequest field (SDK name); 'status', 'instance_ids' and 'tags' are read apart.
STRING_FILTERS = {
    'instance_name': 'instance_name',
    'zone_id': 'zone_id',
    'vpc_id': 'vpc_id',
    'vswitch_id': 'v_switch_id',
    'instance_type': 'instance_type',
    'resource_group_id': 'resource_group_id',
}
FILTER_NAMES = tuple(sorted(list(STRING_FILTERS) + ['status', 'instance_ids', 'tags']))

# The DescribeInstances fields an instance keeps in the inventory's cache.
RAW_KEYS = frozenset([
    'InstanceId', 'InstanceName', 'HostName', 'Description', 'Status', 'OSType', 'OSName', 'RegionId', 'ZoneId',
    'InstanceType', 'ImageId', 'ResourceGroupId', 'DeploymentSetId', 'InstanceNetworkType', 'CreationTime', 'Cpu',
    'Memory', 'VpcAttributes', 'PublicIpAddress', 'InnerIpAddress', 'EipAddress', 'SecurityGroupIds', 'Tags',
])

HOSTNAME_FIELDS = ('instance_id', 'instance_name', 'host_name', 'private_ip_address', 'public_ip_address',
                   'eip_address', 'region_id', 'zone_id')
TAG_PREFIX = 'tag:'


class Query(object):
    """One DescribeInstances query per region: ``fields`` (request fields), ``ids`` (None: all), ``tags``
    (``{key: value or None}``) and ``statuses`` (the states kept, checked on the answer)."""

    def __init__(self, fields=None, ids=None, tags=None, statuses=STATUSES):
        self.fields = dict(fields or {})
        self.ids = ids
        self.tags = dict(tags or {})
        self.statuses = tuple(statuses)

    def as_dict(self):
        return {'fields': self.fields, 'ids': self.ids, 'tags': self.tags, 'statuses': list(self.statuses)}

    def keeps(self, raw):
        return raw.get('Status') in self.statuses


def _string(option, name, value):
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == '':
        raise invalid('%s: filter %s must be a non-empty string, got %r' % (option, name, value))
    return str(value).strip()


def _string_list(option, name, value):
    values = value if isinstance(value, list) else [value]
    return [_string(option, name, v) for v in values]


def parse_filters(filters, option='filters'):
    """A ``Query`` for one filter dict; raises ``CloudAssistantError(kind='config')`` naming ``option``, the
    filter and what it accepts."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise invalid('%s must be a dictionary of filters (%s), got %s'
                      % (option, ', '.join(FILTER_NAMES), type(filters).__name__))
    unknown = sorted(str(k) for k in filters if k not in FILTER_NAMES)
    if unknown:
        raise invalid('%s: unknown filter %s; the filters are %s' % (option, ', '.join(unknown), ', '.join(FILTER_NAMES)))
    fields = {}
    for name, field in STRING_FILTERS.items():
        if filters.get(name) is not None:
            fields[field] = _string(option, name, filters[name])
    statuses = STATUSES
    if filters.get('status') is not None:
        wanted = list(dict.fromkeys(_string_list(option, 'status', filters['status'])))
        by_lower = dict((s.lower(), s) for s in STATUSES)
        wrong = [s for s in wanted if s.lower() not in by_lower]
        if wrong:
            raise invalid('%s: filter status: %s is not a state DescribeInstances knows (%s)'
                          % (option, ', '.join(wrong), ', '.join(STATUSES)))
        statuses = tuple(by_lower[s.lower()] for s in wanted)
        if len(statuses) == 1:
            fields['status'] = statuses[0]
    ids = None
    if filters.get('instance_ids') is not None:
        ids = list(dict.fromkeys(_string_list(option, 'instance_ids', filters['instance_ids'])))
        if not ids:
            raise invalid('%s: filter instance_ids is empty' % option)
    tags = None
    if filters.get('tags') is not None:
        given = filters['tags']
        if not isinstance(given, dict):
            raise invalid('%s: filter tags must be a dictionary of tag keys and values (a value of null or "" '
                          'matches any value), got %s' % (option, type(given).__name__))
        if len(given) > MAX_TAGS:
            raise invalid('%s: filter tags has %d tags; DescribeInstances takes at most %d'
                          % (option, len(given), MAX_TAGS))
        tags = {}
        for key, value in given.items():
            if not isinstance(key, str) or not key.strip():
                raise invalid('%s: filter tags: a tag key must be a non-empty string, got %r' % (option, key))
            if isinstance(value, (dict, list)):
                raise invalid('%s: filter tags: the value of %s must be a string or null' % (option, key))
            tags[key] = None if value in (None, '') else str(value)
    return Query(fields=fields, ids=ids, tags=tags, statuses=statuses)


def query_fingerprint(*parts):
    """A stable digest of what a listing asked and with which identity (the cache is used only for the same
    question). A SHA-256 hex digest, so the cache holds no access key ID, role ARN or profile name."""
    text = json.dumps(parts, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


# -- records and hostvars ---------------------------------------------------------------------------------------------
def raw_record(model):
    """The ``RAW_KEYS`` of an instance (an SDK model or the API's dict)."""
    data = model.to_map() if hasattr(model, 'to_map') else dict(model)
    return dict((k, v) for k, v in data.items() if k in RAW_KEYS and v is not None)


def _listed(data, holder, item):
    value = (data or {}).get(holder) or {}
    return list(value.get(item) or []) if isinstance(value, dict) else []


def _first(items):
    for item in items:
        if item:
            return item
    return None


def instance_hostvars(raw, agent=None):
    """The hostvars of one instance (``raw``: ``raw_record``); ``agent``: the ``cloud_assistant`` dict or None."""
    vpc = raw.get('VpcAttributes') or {}
    eip = raw.get('EipAddress') or {}
    hostvars = {
        'instance_id': raw.get('InstanceId'),
        'instance_name': raw.get('InstanceName'),
        'host_name': raw.get('HostName'),
        'description': raw.get('Description') or '',
        'status': raw.get('Status'),
        'os_type': (raw.get('OSType') or '').lower() or None,
        'os_name': raw.get('OSName'),
        'region_id': raw.get('RegionId'),
        'zone_id': raw.get('ZoneId'),
        'instance_type': raw.get('InstanceType'),
        'image_id': raw.get('ImageId'),
        'cpu': raw.get('Cpu'),
        'memory': raw.get('Memory'),
        'network_type': raw.get('InstanceNetworkType'),
        'vpc_id': vpc.get('VpcId') or None,
        'vswitch_id': vpc.get('VSwitchId') or None,
        'private_ip_address': _first(_listed(vpc, 'PrivateIpAddress', 'IpAddress')
                                     + _listed(raw, 'InnerIpAddress', 'IpAddress')),
        'public_ip_address': _first(_listed(raw, 'PublicIpAddress', 'IpAddress')),
        'eip_address': eip.get('IpAddress') or None,
        'security_group_ids': _listed(raw, 'SecurityGroupIds', 'SecurityGroupId'),
        'resource_group_id': raw.get('ResourceGroupId') or None,
        'deployment_set_id': raw.get('DeploymentSetId') or None,
        'creation_time': raw.get('CreationTime'),
        'instance_tags': dict((t.get('TagKey'), t.get('TagValue')) for t in _listed(raw, 'Tags', 'Tag')),
    }
    if agent is not None:
        hostvars['cloud_assistant'] = dict(agent)
    return hostvars


def agent_hostvars(status):
    """The ``cloud_assistant`` hostvar of an ``_targets.AgentStatus``: its ``fields()``, the same keys as the agent
    fields of the modules' ``instances`` entries (JSON-safe, cached as it is)."""
    return dict(status.fields())


# -- host names ---------------------------------------------------------------------------------------------------
def _is_template(text):
    return '{{' in text or '{%' in text


def _check_one(preference, where):
    if not isinstance(preference, str) or not preference.strip():
        raise invalid('%s: a host name preference must be a non-empty string, got %r' % (where, preference))
    if preference in HOSTNAME_FIELDS or _is_template(preference):
        return
    if preference.startswith(TAG_PREFIX) and preference[len(TAG_PREFIX):].strip():
        return
    raise invalid('%s: unknown host name preference %r; use one of %s, tag:KEY or a Jinja template'
                  % (where, preference, ', '.join(HOSTNAME_FIELDS)))


def check_hostnames(preferences):
    """Raise ``CloudAssistantError(kind='config')`` for a ``hostnames`` option that cannot work."""
    if not isinstance(preferences, list) or not preferences:
        raise invalid('hostnames must be a non-empty list of preferences')
    for index, preference in enumerate(preferences):
        where = 'hostnames[%d]' % index
        if isinstance(preference, dict):
            unknown = sorted(set(preference) - set(['name', 'prefix', 'separator']))
            if unknown:
                raise invalid('%s: unknown key %s (name, prefix, separator)' % (where, ', '.join(unknown)))
            if 'name' not in preference:
                raise invalid('%s: name is required' % where)
            _check_one(preference['name'], where + '.name')
            if preference.get('prefix') is not None:
                _check_one(preference['prefix'], where + '.prefix')
            if not isinstance(preference.get('separator', '_'), str):
                raise invalid('%s: separator must be a string' % where)
        else:
            _check_one(preference, where)


def _value(preference, hostvars, render):
    if preference in HOSTNAME_FIELDS:
        value = hostvars.get(preference)
    elif preference.startswith(TAG_PREFIX) and not _is_template(preference):
        value = (hostvars.get('instance_tags') or {}).get(preference[len(TAG_PREFIX):])
    else:
        value = render(preference, hostvars)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def hostname_candidates(preferences, hostvars, render):
    """The host names ``preferences`` give for one instance, in order, without empty ones or repeats.

    ``hostvars``: ``instance_hostvars`` (not prefixed); ``render(template, variables)``: renders a Jinja
    preference. A dict preference joins the value of ``prefix`` and of ``name`` with ``separator`` (default
    ``_``) and gives nothing unless both have a value."""
    names = []
    for preference in preferences:
        if isinstance(preference, dict):
            value = _value(preference['name'], hostvars, render)
            if value is not None and preference.get('prefix') is not None:
                prefix = _value(preference['prefix'], hostvars, render)
                value = None if prefix is None else prefix + preference.get('separator', '_') + value
        else:
            value = _value(preference, hostvars, render)
        if value is not None and value not in names:
            names.append(value)
    return names


def cached_regions(text):
    """The ``{region: {'instances': [...], ...}}`` of a cache entry (a JSON text, ``CACHE_FORMAT`` 3), or None when
    it is not one (an older format or a damaged file: then the API is asked again)."""
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        return None
    return data


# -- timing -----------------------------------------------------------------------------------------------------------
PHASE_PATTERN = re.compile(r'(?P<instances>\d+) instances of (?P<regions>\d+) regions? listed from (?P<source>the API|the '
                           r'cache) in (?P<listing>[0-9.]+) s; (?P<hosts>\d+) hosts added in (?P<populate>[0-9.]+) s')


def phase_timing(plugin, by_region, fetched, listing_s, hosts, populate_s):
    """The ``-vvv`` line of one parse: ``by_region`` as the plugin lists or caches it, ``fetched`` (from the API, not
    the cache), the seconds of the listing (the API calls, or reading the cache) and of adding the hosts."""
    instances = sum(len(region.get('instances') or []) for region in by_region.values())
    return ('%s: %d instances of %d region%s listed from %s in %.3f s; %d hosts added in %.3f s'
            % (plugin, instances, len(by_region), '' if len(by_region) == 1 else 's',
               'the API' if fetched else 'the cache', listing_s, hosts, populate_s))
