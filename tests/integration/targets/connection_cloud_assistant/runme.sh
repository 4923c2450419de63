#!/usr/bin/env bash
# The connection plugin end to end. setup.yml adds two sandbox instances and writes two inventories of them: a static
# one with ansible_connection set to alicloud_ops.cloud_assistant.cloud_assistant, and an ECS inventory plugin
# configuration with use_cloud_assistant_connection. inventory_plugin.yml runs a command on the plugin's hosts;
# play.yml runs modules over the connection; teardown.yml starts again the agent play.yml stopped, whatever happened.
# "$@" carries -v from ansible-test, which passes no variables to a script target: the extra vars of
# tests/integration/integration_config.yml (copied by ansible-test to ../../ of this directory) are added here.
set -eu
if [ -f ../../integration_config.yml ]; then set -- -e @../../integration_config.yml "$@"; fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
cleanup() {
    ansible-playbook teardown.yml -e "connection_work_dir=$work" "$@" || true
    rm -rf "$work"
}
trap 'cleanup "$@"' EXIT
ansible-playbook setup.yml -e "connection_work_dir=$work" "$@"
# at -vvvv, with the log kept: the access key secret must appear nowhere in it; with the preload vars plugin
# enabled, which loads the connection in the controller before the workers fork (play.yml runs without it)
ANSIBLE_VARS_ENABLED=host_group_vars,alicloud_ops.cloud_assistant.preload \
    ansible-playbook -i "$work/fleet.ecs.yml" inventory_plugin.yml -vvvv "$@" >"$work/vvvv.log" 2>&1 || { cat "$work/vvvv.log"; exit 1; }
grep -q 'CLOUD ASSISTANT: .* API calls for this task' "$work/vvvv.log" || { echo "no API call count at -vvvv"; exit 1; }
grep -q 'preload: alicloud_ops.cloud_assistant.cloud_assistant loaded in the controller' "$work/vvvv.log" ||
    { echo "the preload vars plugin did not load the connection"; exit 1; }
if grep -qF -f "$work/secret" "$work/vvvv.log"; then echo "the access key secret appears in the -vvvv output"; exit 1; fi
ansible-playbook -i "$work/inventory.yml" play.yml -e "connection_work_dir=$work" "$@"
