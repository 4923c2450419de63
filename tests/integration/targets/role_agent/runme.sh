#!/usr/bin/env bash
# The agent role (test.yml). ansible-test passes no variables to a script target: the extra vars of
# tests/integration/integration_config.yml (copied by ansible-test to ../../) are added here and exported.
set -eu
config=../../integration_config.yml
if [ -f "$config" ]; then
    set -- -e @"$config" "$@"
    eval "$(python3 ../setup_role_env/files/config_env.py "$config")"
fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
ansible-playbook -i localhost, test.yml "$@"
