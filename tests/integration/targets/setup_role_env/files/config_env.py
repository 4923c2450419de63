"""Print `export` lines for the ALIBABA_CLOUD_* variables of an integration_config.yml (role_* targets' runme.sh)."""
import shlex
import sys

import yaml

NAMES = {
    'alibaba_cloud_access_key_id': 'ALIBABA_CLOUD_ACCESS_KEY_ID',
    'alibaba_cloud_access_key_secret': 'ALIBABA_CLOUD_ACCESS_KEY_SECRET',
    'alibaba_cloud_region_id': 'ALIBABA_CLOUD_REGION_ID',
    'alibaba_cloud_ecs_endpoint': 'ALIBABA_CLOUD_ECS_ENDPOINT',
}

with open(sys.argv[1], encoding='utf-8') as f:
    config = yaml.safe_load(f)
for key, name in NAMES.items():
    if config.get(key):
        print('export %s=%s' % (name, shlex.quote(str(config[key]))))
