#!/usr/bin/env bash
# The patch role (test.yml), then playbooks/patch.yml as a user runs it (credentials from the ALIBABA_CLOUD_*
# environment only), in check mode with patch_action=apply: a check from the cache, nothing changed.
# ansible-test passes no variables to a script target: the extra vars of tests/integration/integration_config.yml
# (copied by ansible-test to ../../) are added here and exported; the instances are added here too.
set -eu
# shellcheck source=SCRIPTDIR/../setup_role_env/files/runme_env.sh
. ../setup_role_env/files/runme_env.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ids=$(../setup_role_env/files/add_instances.sh 1 ca-role-patch-it)
ansible-playbook -i localhost, test.yml -e "{\"it_instances\": $ids}" "$@"
ansible-playbook -i localhost, alicloud_ops.cloud_assistant.patch --check -e "{\"patch_instance_ids\": $ids}" -e patch_action=apply \
    | tee "$work/playbook.log"
grep -Eq '"i-[a-z0-9]+: (up_to_date|updates_available) \(apt\) - ' "$work/playbook.log" || { echo "no check line in the report"; exit 1; }
grep -Eq 'changed=0 .*failed=0 ' "$work/playbook.log" || { echo "patch.yml --check changed something or failed"; exit 1; }
