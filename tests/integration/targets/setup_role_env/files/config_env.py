"""Print `export` lines for the variables of an integration_config.yml that the role_* targets' runme.sh need: the
ALIBABA_CLOUD_* credentials (the collection's playbooks read them from the environment, as a user's run does) and
CLOUD_ASSISTANT_SANDBOX_* (add_instances.sh runs `python -m sandbox ctl` with them)."""
import shlex
import sys

import yaml

NAMES = {
    'alibaba_cloud_access_key_id': 'ALIBABA_CLOUD_ACCESS_KEY_ID',
    'alibaba_cloud_access_key_secret': 'ALIBABA_CLOUD_ACCESS_KEY_SECRET',
    'alibaba_cloud_region_id': 'ALIBABA_CLOUD_REGION_ID',
    'alibaba_cloud_ecs_endpoint': 'ALIBABA_CLOUD_ECS_ENDPOINT',
    'cloud_assistant_sandbox_python': 'CLOUD_ASSISTANT_SANDBOX_PYTHON',
    'cloud_assistant_sandbox_root': 'CLOUD_ASSISTANT_SANDBOX_ROOT',
    'cloud_assistant_sandbox_state_dir': 'CLOUD_ASSISTANT_SANDBOX_STATE_DIR',
}

with open(sys.argv[1], encoding='utf-8') as f:
    config = yaml.safe_load(f)
for key, name in NAMES.items():
    if config.get(key):
        print('export %s=%s' % (name, shlex.quote(str(config[key]))))
