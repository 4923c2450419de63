#!/usr/bin/env bash
# The deploy role (test.yml), then playbooks/deploy_app.yml as a user runs it (credentials from the ALIBABA_CLOUD_*
# environment only). ansible-test passes no variables to a script target: the extra vars of
# tests/integration/integration_config.yml (copied by ansible-test to ../../) are added here and exported.
set -eu
config=../../integration_config.yml
if [ -f "$config" ]; then
    set -- -e @"$config" "$@"
    eval "$(python3 ../setup_role_env/files/config_env.py "$config")"
fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
cleanup() {
    if [ -s "$work/targets.json" ]; then
        ansible-playbook -i localhost, cleanup.yml -e @"$work/targets.json" "$@" >"$work/cleanup.log" 2>&1 ||
            { cat "$work/cleanup.log"; echo "could not remove the deployments"; }
    fi
    rm -rf "$work"
}
trap 'cleanup "$@"' EXIT
ansible-playbook -i localhost, test.yml -e "it_work_dir=$work" "$@"
# deploy_app.yml with a release v3 (a plain file): deployed over v1
ansible-playbook -i localhost, alicloud_ops.cloud_assistant.deploy_app -e @"$work/targets.json" -e @"$work/playbook_vars.json" \
    | tee "$work/playbook.log"
grep -Eq '"i-[a-z0-9]+: deployed - release v3 is active \(was v1\)"' "$work/playbook.log" || { echo "v3 was not deployed"; exit 1; }
grep -Eq 'changed=[1-9].*failed=0 ' "$work/playbook.log" || { echo "deploy_app.yml reported no change"; exit 1; }
