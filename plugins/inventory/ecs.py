# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: ecs
short_description: Alibaba Cloud ECS instances as an inventory, with their Cloud Assistant agents
version_added: 0.1.0
description:
  - Lists the ECS instances of one or more regions with C(DescribeInstances) (100 per call, C(NextToken) paging,
    the regions queried concurrently) and adds them as hosts, with their fields as snake_case host variables.
  - With O(cloud_assistant_status=true), adds each instance's Cloud Assistant agent (online, version, last
    heartbeat) from C(DescribeCloudAssistantStatus) (100 instances per call) and a group of the instances whose
    agent is online.
  - 'The host variables of an instance: C(instance_id), C(instance_name), C(host_name), C(description), C(status),
    C(os_type) (V(linux) or V(windows)), C(os_name), C(region_id), C(zone_id), C(instance_type), C(image_id),
    C(cpu), C(memory), C(network_type), C(vpc_id), C(vswitch_id), C(private_ip_address), C(public_ip_address),
    C(eip_address), C(security_group_ids), C(resource_group_id), C(deployment_set_id), C(creation_time),
    C(instance_tags) (a dictionary; not C(tags), a play keyword Ansible warns about) and, with
    O(cloud_assistant_status), C(cloud_assistant) (C(online), C(installed), C(agent_version), C(os_type),
    C(last_heartbeat), C(last_invoked), C(active_task_count), C(invocation_count), C(supports): the same keys as
    the agent fields in the C(instances) results of the modules).'
  - The configuration file name must end in C(ecs.yml) or C(ecs.yaml).
  - Credentials are the same options, environment variables and precedence as the modules of this collection;
    environment variables alone are enough (an AWX or Automation Controller inventory source sourced from a
    project needs no file in the home directory).
author:
  - alicloud_ops maintainers (@alicloud-ops)
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - alicloud_ops.cloud_assistant.common.plugins
options:
  plugin:
    description:
      - The name of this plugin; it must always be set to V(alicloud_ops.cloud_assistant.ecs) for the
        configuration file to be read by it.
    required: true
    choices: [alicloud_ops.cloud_assistant.ecs]
    type: str
  regions:
    description:
      - The regions to list, for example V([cn-hangzhou, cn-beijing]).
      - Empty (the default), every region C(DescribeRegions) reports for the account.
      - O(region_id) does not choose the regions listed. It is only the region whose endpoint is asked for
        C(DescribeRegions) when O(regions) is empty (default V(cn-hangzhou)); with O(regions) set, it is not used.
    type: list
    elements: str
    default: []
  strict_permissions:
    description:
      - What to do with a region where a RAM policy denies the listing (error code C(Forbidden.RAM),
        C(Forbidden.Unauthorized) or C(NoPermission*), when a policy allows only some regions).
      - V(true), the inventory fails and names the region.
      - V(false), the region is skipped with a warning and the other regions are listed; when every region is
        denied, the inventory fails.
      - Any other error (wrong or expired credentials, an unknown region, an unreachable endpoint) always fails.
      - A region that denies only C(DescribeCloudAssistantStatus) keeps its instances, without the
        C(cloud_assistant) host variable, with a warning.
    type: bool
    default: true
  filters:
    description:
      - Server-side filters of C(DescribeInstances), ANDed. The keys are
        C(status) (one of V(Pending), V(Running), V(Starting), V(Stopping), V(Stopped), or a list of them),
        C(instance_ids) (a list; 100 per call), C(instance_name) (C(*) is a wildcard), C(zone_id), C(vpc_id),
        C(vswitch_id), C(instance_type), C(resource_group_id) and
        C(tags) (a dictionary of tag keys and values, at most 20; a value of V(null) or V("") matches any value
        of the key).
      - The API filters by C(tags) and C(resource_group_id) only among at most 1,000 resources (the instances with
        those tags, or in that resource group); beyond that it may leave instances out. A warning is shown when such
        a query returns 1,000 instances or more; filter by zone, VPC or name instead for larger sets.
      - Without a C(status) filter, instances in any of those states are listed; an instance being released
        is left out.
      - Merged into O(include_filters) as its first entry.
    type: dict
    default: {}
  include_filters:
    description:
      - More filter sets, each as in O(filters); each is one query per region, and an instance is listed when any
        of them matches it (OR).
    type: list
    elements: dict
    default: []
  exclude_filters:
    description:
      - Filter sets as in O(filters); an instance any of them matches is left out, even if O(filters) or
        O(include_filters) match it.
    type: list
    elements: dict
    default: []
  hostnames:
    description:
      - The names to give a host, in order of preference; the first that has a value for an instance is used.
      - An entry is one of V(instance_id), V(instance_name), V(host_name), V(private_ip_address),
        V(public_ip_address), V(eip_address), V(region_id), V(zone_id), V(tag:KEY) (the value of the tag KEY) or a
        Jinja template over the host variables (not prefixed), for example V({{ instance_name }}.{{ region_id }}).
      - An entry may also be a dictionary with C(name) (an entry as above), C(prefix) (another entry, whose value
        is put in front) and C(separator) (between the two, default V(_)); it gives a name only when both have
        a value.
      - When two instances would get the same name, the first (instances are sorted by region, then instance ID)
        keeps it and the other takes its next preference that is free, or finally its instance ID, with a
        warning. So no instance ever disappears behind another one.
      - An instance that none of the preferences gives a name is named by its instance ID.
    type: list
    elements: raw
    default: [instance_id]
  allow_duplicated_hosts:
    description:
      - V(true), an instance is added under every name O(hostnames) gives it, not just the first one.
    type: bool
    default: false
  hostvars_prefix:
    description:
      - Put in front of the name of every host variable of an instance. O(compose), O(groups) and O(keyed_groups)
        see the prefixed names.
    type: str
  hostvars_suffix:
    description:
      - Put after the name of every host variable of an instance.
    type: str
  default_groups:
    description:
      - Add every host to the groups C(ecs_region_<region>), C(ecs_zone_<zone>), C(ecs_os_<os type>) and
        C(ecs_status_<status>) (lowercase, sanitized like any group name).
    type: bool
    default: true
  cloud_assistant_status:
    description:
      - Read each instance's Cloud Assistant agent with C(DescribeCloudAssistantStatus) (100 instances per call)
        into the host variable C(cloud_assistant), and add the instances whose agent is online to the group
        C(cloud_assistant_online).
    type: bool
    default: false
  use_cloud_assistant_connection:
    description:
      - Reach the Linux instances through Cloud Assistant with the connection plugin
        C(alicloud_ops.cloud_assistant.cloud_assistant) (no SSH). Sets C(ansible_connection) to it, and
        C(ansible_alicloud_instance_id) and C(ansible_alicloud_region_id) (the variables it reads) on every Linux
        host; Windows hosts are left as they are (the connection runs shell scripts only).
      - These are set before O(compose), which can override them for some hosts.
      - The connection plugin (and the SDK it uses) is then loaded once in the controller process, so the worker
        Ansible forks for each task starts with it loaded, and the controller's heap is frozen for the garbage
        collector as the C(alicloud_ops.cloud_assistant.preload) vars plugin does (see its documentation); that
        plugin is not needed with this inventory.
    type: bool
    default: false
  timeout:
    description:
      - Seconds after the listing starts when retrying a failed API call stops (throttling, a busy service, an
        endpoint that does not answer); the inventory then fails with the last error. So a wrong O(endpoint) fails
        within this time rather than after minutes of retries.
      - A call that is answered is never cut, so a long listing of a large fleet is not limited by this.
      - From 1 to 3600.
    type: int
    default: 60
    env:
      - name: ALIBABA_CLOUD_INVENTORY_TIMEOUT
    ini:
      - section: alicloud_cloud_assistant
        key: inventory_timeout
notes:
  - The raw API answers are cached (O(cache)), not the inventory built from them, so changing O(hostnames),
    O(compose), O(groups), O(keyed_groups) or the host variable options needs no refresh. The cache is used only
    for the same O(regions), filters, O(cloud_assistant_status), endpoint and credential options (O(access_key_id),
    O(security_token), O(profile), O(role_arn), O(role_session_name), O(ecs_ram_role_name)); otherwise the API is
    asked again. The cache entry holds a SHA-256 digest of those options, never the options themselves.
  - In an AWX or Automation Controller inventory source sourced from a project, give the credentials as
    environment variables (a custom credential type that injects E(ALIBABA_CLOUD_ACCESS_KEY_ID) and
    E(ALIBABA_CLOUD_ACCESS_KEY_SECRET)); see C(docs/inventory.md) in the collection.
seealso:
  - module: alicloud_ops.cloud_assistant.cloud_assistant_command
'''

EXAMPLES = r'''
# inventory.ecs.yml - every instance of every region; credentials from ALIBABA_CLOUD_ACCESS_KEY_ID and
# ALIBABA_CLOUD_ACCESS_KEY_SECRET. Hosts are named by instance ID, grouped by region, zone, OS type and status.
plugin: alicloud_ops.cloud_assistant.ecs

---
# Two regions, running Linux web servers only, named by instance name, grouped by the "role" tag.
plugin: alicloud_ops.cloud_assistant.ecs
regions: [cn-hangzhou, cn-beijing]
filters:
  status: Running
  tags:
    app: web
hostnames:
  - instance_name
  - instance_id
keyed_groups:
  - key: instance_tags.role | default('none')
    prefix: role
  - key: instance_type
    prefix: type
compose:
  ansible_host: private_ip_address

---
# The Cloud Assistant agent of every instance: the group cloud_assistant_online, and a group of your own.
plugin: alicloud_ops.cloud_assistant.ecs
regions: [cn-hangzhou]
cloud_assistant_status: true
groups:
  linux_ready: os_type == 'linux' and cloud_assistant.online
# then target them with alicloud_ops.cloud_assistant.cloud_assistant_command, e.g. with instance IDs from
# groups['cloud_assistant_online'] | map('extract', hostvars, 'instance_id')

---
# Several queries ORed, some instances excluded; names from a tag with a fallback template.
plugin: alicloud_ops.cloud_assistant.ecs
regions: [cn-shanghai]
include_filters:
  - tags: {env: prod}
  - instance_name: 'db-*'
exclude_filters:
  - tags: {maintenance: ''}
hostnames:
  - name: tag:Name
    prefix: region_id
    separator: '-'
  - '{{ host_name }}-{{ instance_id[-6:] }}'
hostvars_prefix: ecs_

---
# Cached for an hour (the raw API answers: changing keyed_groups needs no refresh; --flush-cache asks again);
# regions the RAM policy does not allow are skipped with a warning.
plugin: alicloud_ops.cloud_assistant.ecs
strict_permissions: false
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-ecs-inventory
cache_timeout: 3600
'''

import json
import threading
import time

from ansible.errors import AnsibleError, AnsibleParserError, AnsibleUndefinedVariable
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._api import build_api, make_request
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._batching import run_concurrently
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._client import resolved_credentials, transport_warnings
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._errors import CloudAssistantError
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._inventory import (
    agent_hostvars,
    cached_regions,
    check_hostnames,
    hostname_candidates,
    instance_hostvars,
    parse_filters,
    phase_timing,
    query_fingerprint,
    raw_record,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._limits import invalid
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._options import (
    ConnectionOptions,
    OptionAdapter,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._retry import RetryPolicy
from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils._targets import (
    agent_status,
    describe_instances,
)
from ansible_collections.alicloud_ops.cloud_assistant.plugins.plugin_utils._preload import CONNECTION, preload_connection

try:
    from ansible.template import trust_as_template
    LEGACY_TEMPLATING = False
except ImportError:  # ansible-core < 2.19: every string from the configuration file may be templated
    LEGACY_TEMPLATING = True

    def trust_as_template(value):
        return value

DEFAULT_DISCOVERY_REGION = 'cn-hangzhou'
ONLINE_GROUP = 'cloud_assistant_online'
# The timeout option: retries of the listing's calls end this long after it started.
MAX_TIMEOUT = 3600
REGION_WORKERS = 8
# DescribeInstances filters by tags and by resource group among at most this many resources (SDK documentation).
FILTER_RESOURCE_LIMIT = 1000
CACHE_FORMAT = 3  # 3: the regions as one JSON text
_CREDENTIALS_LOCK = threading.Lock()
# The connection options that decide which account and which answers a listing gets (hashed in the cache key).
IDENTITY_OPTIONS = ('endpoint', 'access_key_id', 'security_token', 'profile', 'role_arn', 'role_session_name',
                    'ecs_ram_role_name')


# The error codes of a RAM policy that denies the action (not of bad credentials: InvalidAccessKeyId.*,
# InvalidSecurityToken.*, SignatureDoesNotMatch are 4xx too, and always fatal).
DENIED_CODES = ('Forbidden.RAM', 'Forbidden.Unauthorized')
DENIED_PREFIXES = ('NoPermission',)


def _denied(err):
    code = err.code or ''
    return code in DENIED_CODES or code.startswith(DENIED_PREFIXES)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'alicloud_ops.cloud_assistant.ecs'
    INVENTORY_FILE_SUFFIXES = ('ecs.yml', 'ecs.yaml')

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(self.INVENTORY_FILE_SUFFIXES)

    # -- options ----------------------------------------------------------------------------------------------------
    def _check_unknown_options(self, config, path):
        from ansible import constants as C
        definitions = C.config.get_configuration_definitions('inventory', self._load_name) or {}
        known = set(definitions)
        for definition in definitions.values():
            known.update(definition.get('aliases') or [])
        unknown = sorted(str(k) for k in (config or {}) if k not in known)
        if unknown:
            raise AnsibleParserError('%s: unknown option %s for %s; see ansible-doc -t inventory %s'
                                     % (path, ', '.join(unknown), self.NAME, self.NAME))

    def _regions(self):
        """The ``regions`` option checked: stripped, without repeats (empty: discover them)."""
        given = self.get_option('regions') or []
        if not isinstance(given, list):
            raise invalid('regions must be a list of region IDs, got %s' % type(given).__name__)
        for region in given:
            if not isinstance(region, str) or not region.strip():
                raise invalid('regions: each region must be a non-empty string such as cn-hangzhou, got %r' % (region,))
        return list(dict.fromkeys(r.strip() for r in given))

    def _timeout(self):
        value = self.get_option('timeout')
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TIMEOUT:
            raise invalid('timeout must be a number of seconds from 1 to %d, got %r' % (MAX_TIMEOUT, value))
        return value

    def _queries(self):
        includes = [parse_filters(self.get_option('filters'), 'filters')] if self.get_option('filters') else []
        for index, entry in enumerate(self.get_option('include_filters') or []):
            includes.append(parse_filters(entry, 'include_filters[%d]' % index))
        excludes = [parse_filters(entry, 'exclude_filters[%d]' % index)
                    for index, entry in enumerate(self.get_option('exclude_filters') or [])]
        return includes or [parse_filters({}, 'filters')], excludes

    def _connection_options(self):
        """``ConnectionOptions`` with the discovery region filled in when ``region_id`` is not set."""
        regions = self.get_option('regions') or []
        plugin = OptionAdapter.from_plugin(self)

        def getter(name):
            value = plugin.get_option(name)
            if name == 'region_id' and not value:
                return regions[0] if regions else DEFAULT_DISCOVERY_REGION
            return value
        return OptionAdapter(getter).connection_options()

    def _question(self, regions, includes, excludes, with_agents):
        """The digest of what is asked and as whom: the cached answers are used only for the same one."""
        opts = self._opts
        identity = dict((name, getattr(opts, name)) for name in IDENTITY_OPTIONS)
        return query_fingerprint(CACHE_FORMAT, regions, [q.as_dict() for q in includes],
                                 [q.as_dict() for q in excludes], with_agents, identity,
                                 opts.region_id if not regions else None)

    # -- API ----------------------------------------------------------------------------------------------------
    def _api(self, region_id):
        with _CREDENTIALS_LOCK:  # the regions' threads: the credential source is resolved (a role assumed) once
            if self.__dict__.get('_api_opts') is None:
                self._api_opts = resolved_credentials(self._opts)
                for warning in transport_warnings(self._api_opts):  # once per listing, not once per region
                    self.display.warning(warning)
        values = self._api_opts.to_dict()
        values['region_id'] = region_id
        return build_api(ConnectionOptions(**values), RetryPolicy(deadline=self._deadline))

    def _discover_regions(self):
        api = self._api(self._opts.region_id)
        try:
            body = api.call('DescribeRegions', make_request('DescribeRegionsRequest'))
        except CloudAssistantError as err:
            raise CloudAssistantError('regions: listing the regions in %s failed: %s'
                                      % (self._opts.region_id, err.msg), kind=err.kind)
        regions = [r.region_id for r in (getattr(getattr(body, 'regions', None), 'region', None) or [])]
        if not regions:
            raise CloudAssistantError('regions: DescribeRegions reported no region; set the regions option',
                                      kind='config')
        return regions

    def _list(self, api, query, notes):
        # the API's records, not SDK models: the plugin keeps dicts, and 10,000 models cost more than the calls
        models = describe_instances(api, ids=query.ids, tags=query.tags, fields=query.fields, raw=True)
        limited = [name for name in ('tags', 'resource_group_id')
                   if (query.tags if name == 'tags' else query.fields.get(name))]
        if limited and len(models) >= FILTER_RESOURCE_LIMIT:
            notes.append('a query filtered by %s returned %d instances; the API filters by them among at most %d '
                         'resources, so some may be missing (filter by zone_id, vpc_id or instance_name instead)'
                         % (' and '.join(limited), len(models), FILTER_RESOURCE_LIMIT))
        return [raw for raw in (raw_record(m) for m in models) if query.keeps(raw)]

    def _region(self, region_id, includes, excludes, with_agents):
        """{'instances': [raw, ...], 'agents': {instance_id: cloud_assistant}} of one region, or
        {'denied': message} when the region refuses access and strict_permissions is false."""
        api = self._api(region_id)
        try:
            found = {}
            notes = []
            for query in includes:
                for raw in self._list(api, query, notes):
                    found.setdefault(raw['InstanceId'], raw)
            for query in excludes:
                for raw in self._list(api, query, notes):
                    found.pop(raw['InstanceId'], None)
        except CloudAssistantError as err:
            if _denied(err) and not self.get_option('strict_permissions'):
                return {'denied': err.msg}
            hint = ' (set strict_permissions: false to skip such regions)' if _denied(err) else ''
            raise CloudAssistantError('region %s: %s%s' % (region_id, err.msg, hint), kind=err.kind)
        agents = {}
        if with_agents and found:
            try:
                statuses = agent_status(api, sorted(found))
            except CloudAssistantError as err:
                if not _denied(err):
                    raise CloudAssistantError('region %s: %s' % (region_id, err.msg), kind=err.kind)
                # the instances are listed; only their agents are unknown
                notes.append('the instances are listed without the cloud_assistant host variable: %s' % err.msg)
            else:
                agents = dict((i, agent_hostvars(s)) for i, s in statuses.items())
        return {'instances': [found[i] for i in sorted(found)], 'agents': agents, 'notes': notes}

    def _query(self, regions, includes, excludes, with_agents):
        regions = regions or self._discover_regions()
        results = run_concurrently(lambda region: self._region(region, includes, excludes, with_agents), regions,
                                   max_workers=REGION_WORKERS)
        if all('denied' in result for result in results):
            # strict_permissions false skips some regions; an inventory with none left is an error, not empty
            raise CloudAssistantError('every region denied access (%s): %s'
                                      % (', '.join(regions), results[0]['denied']), kind='api')
        return dict(zip(regions, results))

    # -- hosts --------------------------------------------------------------------------------------------------
    def _render(self, template, variables):
        """The value of a Jinja ``hostnames`` entry, or None when it has none for this instance (an undefined
        variable, such as a tag the instance does not have, or any other templating error).

        The API's values are never templated themselves: ansible-core 2.19 and later do not template untrusted
        strings; before 2.19 they are marked unsafe and lookups are disabled."""
        try:
            if LEGACY_TEMPLATING:
                from ansible.utils.unsafe_proxy import wrap_var
                self.templar.available_variables = wrap_var(variables)
                return self.templar.template(template, disable_lookups=True)
            self.templar.available_variables = variables
            return self.templar.template(trust_as_template(template))
        except AnsibleUndefinedVariable:
            return None
        except AnsibleError as err:
            warned = self.__dict__.setdefault('_warned_templates', set())
            if template not in warned:  # once per entry, not once per instance
                warned.add(template)
                self.display.warning('hostnames: %s gave no name for %s (nor for other instances it fails on): %s'
                                     % (template, variables.get('instance_id'), to_native(err)))
            return None

    def _populate(self, by_region, hostnames):
        strict = self.get_option('strict')
        compose = self.get_option('compose')
        groups = self.get_option('groups')
        keyed_groups = self.get_option('keyed_groups')
        duplicates = self.get_option('allow_duplicated_hosts')
        # looked up once per listing, not once per host or per variable
        self._prefix = self.get_option('hostvars_prefix') or ''
        self._suffix = self.get_option('hostvars_suffix') or ''
        self._default_groups = self.get_option('default_groups')
        self._ca_connection = self.get_option('use_cloud_assistant_connection')
        self._stored = {}
        self._group_names = {}
        owner = {}
        for region_id in sorted(by_region):
            region = by_region[region_id]
            if 'denied' in region:
                self.display.warning('region %s skipped (strict_permissions is false): %s' % (region_id, region['denied']))
                continue
            for note in region.get('notes') or []:
                self.display.warning('region %s: %s' % (region_id, note))
            agents = region.get('agents') or {}
            for raw in region['instances']:
                instance_id = raw['InstanceId']
                hostvars = instance_hostvars(raw, agents.get(instance_id))
                names = hostname_candidates(hostnames, hostvars, self._render) or [instance_id]
                free = [n for n in names if owner.get(n, instance_id) == instance_id] or [instance_id]
                if free[0] != names[0]:
                    self.display.warning('host name %s of %s is already used by %s; %s is named %s instead'
                                         % (names[0], instance_id, owner[names[0]], instance_id, free[0]))
                for name in (free if duplicates else free[:1]):
                    owner[name] = instance_id
                    self._add_host(name, hostvars, region_id, strict, compose, groups, keyed_groups)
        return len(owner)

    def _set_variables(self, name, variables):
        """``set_variable`` for each of ``variables``, handing the inventory a string or a number it has already
        stored for another host where there is one.

        ansible-core 2.19 and later copy every value handed to ``set_variable`` and tag the copy with the
        inventory source (most of the time this plugin takes for a host). A value tagged so is stored as it is,
        so a status, zone, image or instance type that thousands of instances share is copied once, not once per
        host. What the hosts get is the same (the same value, with the same tag); strings and numbers cannot
        change, so sharing them is safe. Before 2.19 the inventory keeps the value itself, and so does this."""
        inventory = self.inventory
        stored = self._stored
        host = None
        for key, value in variables.items():
            kind = type(value)
            if kind is not str and kind is not int:
                inventory.set_variable(name, key, value)
                continue
            known = stored.get((kind, value))
            if known is not None:
                inventory.set_variable(name, key, known)
                continue
            inventory.set_variable(name, key, value)
            if host is None:
                host = inventory.get_host(name)
            stored[(kind, value)] = host.vars[key]

    def _group(self, name):
        """A default group's name, sanitized once per name (not once per host)."""
        group = self._group_names.get(name)
        if group is None:
            group = self._group_names[name] = self.inventory.add_group(self._sanitize_group_name(name))
        return group

    def _add_host(self, name, hostvars, region_id, strict, compose, groups, keyed_groups):
        prefix, suffix = self._prefix, self._suffix
        variables = dict((prefix + k + suffix, v) for k, v in hostvars.items()) if prefix or suffix else dict(hostvars)
        self.inventory.add_host(name)
        self._set_variables(name, variables)
        if self._ca_connection and hostvars.get('os_type') != 'windows':
            self._set_variables(name, {'ansible_connection': CONNECTION,
                                       'ansible_alicloud_instance_id': hostvars['instance_id'],
                                       'ansible_alicloud_region_id': region_id})
        if self._default_groups:
            for kind, value in (('region', region_id), ('zone', hostvars['zone_id']), ('os', hostvars['os_type']),
                                ('status', (hostvars['status'] or '').lower())):
                if value:
                    self.inventory.add_child(self._group('ecs_%s_%s' % (kind, value)), name)
        if (hostvars.get('cloud_assistant') or {}).get('online'):
            self.inventory.add_child(self._group(ONLINE_GROUP), name)
        if compose:
            self._set_composite_vars(compose, variables, name, strict=strict)
        if groups:
            self._add_host_to_composed_groups(groups, variables, name, strict=strict)
        if keyed_groups:
            self._add_host_to_keyed_groups(keyed_groups, variables, name, strict=strict)

    # -- entry point ------------------------------------------------------------------------------------------------
    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        config = self._read_config_data(path)
        self._check_unknown_options(config, path)
        try:
            hostnames = self.get_option('hostnames')
            check_hostnames(hostnames)
            includes, excludes = self._queries()
            regions = self._regions()
            with_agents = bool(self.get_option('cloud_assistant_status'))
            self._opts = self._connection_options()
            self._api_opts = None  # resolved on the first API call only (not for a cache hit)
            self._deadline = time.monotonic() + self._timeout()
            started = time.monotonic()
            question = self._question(regions, includes, excludes, with_agents)
            use_cache = bool(self.get_option('cache'))
            cache_key = self.get_cache_key(path)
            data = None
            if use_cache and cache:
                try:
                    cached = self._cache[cache_key]
                except KeyError:
                    cached = None
                if isinstance(cached, dict) and cached.get('question') == question:
                    data = cached_regions(cached.get('regions'))
            fetched = data is None
            if fetched:
                data = self._query(regions, includes, excludes, with_agents)
            listed = time.monotonic()
            hosts = self._populate(data, hostnames)
            populated = time.monotonic()
        except CloudAssistantError as err:
            raise AnsibleParserError('%s: %s' % (self.NAME, to_native(err.msg)))
        if fetched and use_cache:
            # one JSON text, not the structure: ansible-core copies, compares and encodes a cache entry value by
            # value, which for 10,000 instances took longer than the listing itself
            self._cache[cache_key] = {'question': question, 'regions': json.dumps(data, separators=(',', ':'))}
        # the plugin's own timing (-vvv): the listing (API calls, or the cache read) apart from building the hosts
        self.display.vvv(phase_timing(self.NAME, data, fetched, listed - started, hosts, populated - listed))
        if self._ca_connection:
            # the hosts will use the connection: load it here, once, so that the workers Ansible forks for each task
            # start with it (and the SDK) loaded instead of importing them again
            preload_connection(self.NAME)
