# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The connection and credential options (plugins/module_utils/_options.py), documented twice:
#   alicloud_ops.cloud_assistant.common.modules  - modules: environment variables through the argspec fallback
#   alicloud_ops.cloud_assistant.common.plugins  - inventory/lookup/connection plugins: env:, vars: and (for the
#                                                  options that are not secret) ini: entries
#
# Order of env: entries in PLUGINS: Ansible's config manager lets the LAST variable that is set win
# (ansible.config.manager.ConfigManager._loop_entries), the reverse of env_fallback, which takes the FIRST one.
# So the legacy ALICLOUD_* names come first there and the official ALIBABA_CLOUD_* name last: in both cases
# ALIBABA_CLOUD_* has precedence (a unit test checks that the two orders agree).

from __future__ import annotations


class ModuleDocFragment:

    MODULES = r'''
options:
  access_key_id:
    description:
      - The AccessKey ID of a RAM user, or of the STS credentials given in O(security_token).
      - If not set, the environment variable E(ALIBABA_CLOUD_ACCESS_KEY_ID) is used, then the legacy
        E(ALICLOUD_ACCESS_KEY) and E(ALICLOUD_ACCESS_KEY_ID).
      - Must be given together with O(access_key_secret).
      - Treated as a secret (C(no_log)).
      - When neither keys nor O(profile) nor O(ecs_ram_role_name) are set, the default credential chain of the
        C(alibabacloud_credentials) library is used (environment, OIDC/RRSA, Alibaba Cloud CLI profile,
        credentials file, ECS RAM role, credentials URI).
    type: str
    aliases: [alicloud_access_key]
  access_key_secret:
    description:
      - The AccessKey secret that belongs to O(access_key_id).
      - If not set, the environment variable E(ALIBABA_CLOUD_ACCESS_KEY_SECRET) is used, then the legacy
        E(ALICLOUD_SECRET_KEY) and E(ALICLOUD_SECRET_ACCESS_KEY).
      - Secret; never logged (C(no_log)).
    type: str
    aliases: [alicloud_secret_key]
  security_token:
    description:
      - The STS security token, for temporary credentials given in O(access_key_id) and O(access_key_secret).
      - If not set, the environment variable E(ALIBABA_CLOUD_SECURITY_TOKEN) is used, then the legacy
        E(ALICLOUD_SECURITY_TOKEN).
      - Secret; never logged (C(no_log)).
    type: str
    aliases: [alicloud_security_token]
  region_id:
    description:
      - The region of the ECS instances, for example V(cn-hangzhou).
      - If not set, the environment variable E(ALIBABA_CLOUD_REGION_ID) is used, then the legacy
        E(ALICLOUD_REGION) and E(ALICLOUD_REGION_ID).
      - Required, through the option or one of these variables.
    type: str
    aliases: [region, alicloud_region]
  endpoint:
    description:
      - The ECS API endpoint, to override the regional one the SDK selects (for example a VPC endpoint such as
        V(ecs-vpc.cn-hangzhou.aliyuncs.com)).
      - A host name with an optional port; C(https://) is assumed, C(http://) or C(https://) may be given
        explicitly. A path or query is not allowed.
      - C(http://) to an endpoint that is not a loopback address shows a warning, since the calls then cross the
        network unencrypted.
      - If not set, the environment variable E(ALIBABA_CLOUD_ECS_ENDPOINT) is used, then the legacy
        E(ALICLOUD_ECS_ENDPOINT).
    type: str
  profile:
    description:
      - The name of a profile of the Alibaba Cloud CLI configuration (C(~/.aliyun/config.json)), or if there is
        none of that name, a section of the credentials file (E(ALIBABA_CLOUD_CREDENTIALS_FILE), default
        C(~/.alibabacloud/credentials.ini)).
      - If not set, the environment variable E(ALIBABA_CLOUD_PROFILE) is used, then the legacy
        E(ALICLOUD_PROFILE).
      - Mutually exclusive with O(access_key_id) and O(ecs_ram_role_name).
    type: str
  role_arn:
    description:
      - The ARN of a RAM role to assume through STS, with the credentials given by the other options (or found by
        the default credential chain).
      - If not set, the environment variable E(ALIBABA_CLOUD_ROLE_ARN) is used, then the legacy
        E(ALICLOUD_ASSUME_ROLE_ARN).
    type: str
  role_session_name:
    description:
      - The session name used when assuming O(role_arn). Defaults to C(ansible-cloud-assistant).
      - If not set, the environment variable E(ALIBABA_CLOUD_ROLE_SESSION_NAME) is used, then the legacy
        E(ALICLOUD_ASSUME_ROLE_SESSION_NAME).
    type: str
  ecs_ram_role_name:
    description:
      - The name of the RAM role attached to the ECS instance that runs the module; its temporary credentials are
        read from the instance metadata service.
      - If not set, the environment variable E(ALIBABA_CLOUD_ECS_METADATA) is used, then the legacy
        E(ALICLOUD_ECS_ROLE_NAME).
      - Mutually exclusive with O(access_key_id) and O(profile).
    type: str
  validate_certs:
    description:
      - Whether to verify the TLS certificate of the API endpoint.
      - Set to V(false) only for a local test endpoint; never for Alibaba Cloud.
      - V(false) for an endpoint that is not a loopback address shows a warning.
    type: bool
    default: true
notes:
  - Modules read the E(ALIBABA_CLOUD_*) and E(ALICLOUD_*) environment variables, the CLI configuration and the
    credentials file B(on the host they run on), usually the controller through C(delegate_to=localhost) or
    C(connection=local); Cloud Assistant modules call the ECS API and do not need to run on the instances.
  - Caution, module options and variables that hold secrets should be protected, for example with Ansible Vault.
  - The API is called with retries on throttling, server errors and lost connections, within the module's time
    limits.
requirements:
  - python >= 3.8
  - alibabacloud_ecs20140526
  - alibabacloud_tea_openapi
  - alibabacloud_credentials
'''

    PLUGINS = r'''
options:
  access_key_id:
    description:
      - The AccessKey ID of a RAM user, or of the STS credentials given in O(security_token).
      - Must be given together with O(access_key_secret).
      - A secret; keep it out of logs and plain-text files.
      - When neither keys nor O(profile) nor O(ecs_ram_role_name) are set, the default credential chain of the
        C(alibabacloud_credentials) library is used (environment, OIDC/RRSA, Alibaba Cloud CLI profile,
        credentials file, ECS RAM role, credentials URI).
    type: str
    aliases: [alicloud_access_key]
    env:
      - name: ALICLOUD_ACCESS_KEY_ID
      - name: ALICLOUD_ACCESS_KEY
      - name: ALIBABA_CLOUD_ACCESS_KEY_ID
    vars:
      - name: ansible_alicloud_access_key_id
  access_key_secret:
    description:
      - The AccessKey secret that belongs to O(access_key_id).
      - A secret; keep it out of logs and plain-text files (use Ansible Vault for the variable).
    type: str
    aliases: [alicloud_secret_key]
    env:
      - name: ALICLOUD_SECRET_ACCESS_KEY
      - name: ALICLOUD_SECRET_KEY
      - name: ALIBABA_CLOUD_ACCESS_KEY_SECRET
    vars:
      - name: ansible_alicloud_access_key_secret
  security_token:
    description:
      - The STS security token, for temporary credentials given in O(access_key_id) and O(access_key_secret).
      - A secret; keep it out of logs and plain-text files.
    type: str
    aliases: [alicloud_security_token]
    env:
      - name: ALICLOUD_SECURITY_TOKEN
      - name: ALIBABA_CLOUD_SECURITY_TOKEN
    vars:
      - name: ansible_alicloud_security_token
  region_id:
    description:
      - The region of the ECS instances, for example V(cn-hangzhou). Required.
    type: str
    aliases: [region, alicloud_region]
    env:
      - name: ALICLOUD_REGION_ID
      - name: ALICLOUD_REGION
      - name: ALIBABA_CLOUD_REGION_ID
    ini:
      - section: alicloud_cloud_assistant
        key: region_id
    vars:
      - name: ansible_alicloud_region_id
  endpoint:
    description:
      - The ECS API endpoint, to override the regional one the SDK selects (for example a VPC endpoint such as
        V(ecs-vpc.cn-hangzhou.aliyuncs.com)).
      - A host name with an optional port; C(https://) is assumed, C(http://) or C(https://) may be given
        explicitly. A path or query is not allowed.
      - C(http://) to an endpoint that is not a loopback address shows a warning, since the calls then cross the
        network unencrypted.
    type: str
    env:
      - name: ALICLOUD_ECS_ENDPOINT
      - name: ALIBABA_CLOUD_ECS_ENDPOINT
    ini:
      - section: alicloud_cloud_assistant
        key: endpoint
    vars:
      - name: ansible_alicloud_endpoint
  profile:
    description:
      - The name of a profile of the Alibaba Cloud CLI configuration (C(~/.aliyun/config.json)), or if there is
        none of that name, a section of the credentials file (E(ALIBABA_CLOUD_CREDENTIALS_FILE), default
        C(~/.alibabacloud/credentials.ini)).
      - Mutually exclusive with O(access_key_id) and O(ecs_ram_role_name).
    type: str
    env:
      - name: ALICLOUD_PROFILE
      - name: ALIBABA_CLOUD_PROFILE
    ini:
      - section: alicloud_cloud_assistant
        key: profile
    vars:
      - name: ansible_alicloud_profile
  role_arn:
    description:
      - The ARN of a RAM role to assume through STS, with the credentials given by the other options (or found by
        the default credential chain).
    type: str
    env:
      - name: ALICLOUD_ASSUME_ROLE_ARN
      - name: ALIBABA_CLOUD_ROLE_ARN
    ini:
      - section: alicloud_cloud_assistant
        key: role_arn
    vars:
      - name: ansible_alicloud_role_arn
  role_session_name:
    description:
      - The session name used when assuming O(role_arn). Defaults to C(ansible-cloud-assistant).
    type: str
    env:
      - name: ALICLOUD_ASSUME_ROLE_SESSION_NAME
      - name: ALIBABA_CLOUD_ROLE_SESSION_NAME
    ini:
      - section: alicloud_cloud_assistant
        key: role_session_name
    vars:
      - name: ansible_alicloud_role_session_name
  ecs_ram_role_name:
    description:
      - The name of the RAM role attached to the ECS instance that runs Ansible; its temporary credentials are
        read from the instance metadata service.
      - Mutually exclusive with O(access_key_id) and O(profile).
    type: str
    env:
      - name: ALICLOUD_ECS_ROLE_NAME
      - name: ALIBABA_CLOUD_ECS_METADATA
    ini:
      - section: alicloud_cloud_assistant
        key: ecs_ram_role_name
    vars:
      - name: ansible_alicloud_ecs_ram_role_name
  validate_certs:
    description:
      - Whether to verify the TLS certificate of the API endpoint.
      - Set to V(false) only for a local test endpoint; never for Alibaba Cloud.
      - V(false) for an endpoint that is not a loopback address shows a warning.
    type: bool
    default: true
    ini:
      - section: alicloud_cloud_assistant
        key: validate_certs
    vars:
      - name: ansible_alicloud_validate_certs
notes:
  - Plugins read the E(ALIBABA_CLOUD_*) and E(ALICLOUD_*) environment variables, the CLI configuration and the
    credentials file B(on the controller). When both an E(ALIBABA_CLOUD_*) variable and its legacy E(ALICLOUD_*)
    form are set, the E(ALIBABA_CLOUD_*) one is used; an Ansible variable (the C(vars) entries) overrides both.
  - Caution, variables that hold secrets should be protected, for example with Ansible Vault.
  - The options that are not secret can also be set in C(ansible.cfg), section C([alicloud_cloud_assistant]); the
    environment variables override them.
requirements:
  - alibabacloud_ecs20140526
  - alibabacloud_tea_openapi
  - alibabacloud_credentials
'''
