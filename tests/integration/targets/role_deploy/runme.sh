#!/usr/bin/env bash
# playbooks/deploy_app.yml as a user runs it (credentials from the ALIBABA_CLOUD_* environment only) deploys v1 (a
# tar archive); then the deploy role (test.yml): v1 again, a broken v2 (a plain file) rolled back, check mode;
# test.yml removes the deployments in always:, cleanup.yml does when the run stopped before it.
# ansible-test passes no variables to a script target: the extra vars of tests/integration/integration_config.yml
# (copied by ansible-test to ../../) are added here and exported; the instances are added here too.
set -eu
# shellcheck source=SCRIPTDIR/../setup_role_env/files/runme_env.sh
. ../setup_role_env/files/runme_env.sh
work=$(mktemp -d)
done_=0
cleanup() {
    if [ "$done_" = 0 ] && [ -n "${ids:-}" ]; then
        ansible-playbook -i localhost, cleanup.yml -e "{\"it_instances\": $ids}" "$@" >"$work/cleanup.log" 2>&1 ||
            { cat "$work/cleanup.log"; echo "could not remove the deployments"; }
    fi
    rm -rf "$work"
}
trap 'cleanup "$@"' EXIT
# the releases: v1 (a tar archive), v2 (a plain file whose health check fails)
mkdir -p "$work/v1" "$work/v2"
cp files/app.sh "$work/v1/app.sh"
echo "v1 notes" >"$work/v1/NOTES"
tar -czf "$work/app-v1.tar.gz" -C "$work/v1" app.sh NOTES
sed 's/^    health)$/    health) echo "health: this release is broken"; exit 1 ;;\n    unused)/' files/app.sh >"$work/v2/app.sh"
grep -q 'this release is broken' "$work/v2/app.sh"
ids=$(../setup_role_env/files/add_instances.sh 2 ca-role-deploy-it)
ansible-playbook -i localhost, alicloud_ops.cloud_assistant.deploy_app -e "{\"deploy_instance_ids\": $ids}" -e @vars.yml \
    -e "deploy_artifact_src=$work/app-v1.tar.gz" -e deploy_version=v1 | tee "$work/playbook.log"
grep -Eq '"i-[a-z0-9]+: deployed - release v1 is active"' "$work/playbook.log" || { echo "v1 was not deployed"; exit 1; }
grep -Eq 'changed=[1-9].*failed=0 ' "$work/playbook.log" || { echo "deploy_app.yml reported no change"; exit 1; }
done_=1
ansible-playbook -i localhost, test.yml -e "{\"it_instances\": $ids, \"it_work_dir\": \"$work\"}" "$@"
