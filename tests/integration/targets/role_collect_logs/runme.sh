#!/usr/bin/env bash
# The collect_logs role (test.yml), then playbooks/collect_logs.yml as a user runs it (credentials from the
# ALIBABA_CLOUD_* environment only).
# ansible-test passes no variables to a script target: the extra vars of tests/integration/integration_config.yml
# (copied by ansible-test to ../../) are added here and exported; the instances are added here too.
set -eu
# shellcheck source=SCRIPTDIR/../setup_role_env/files/runme_env.sh
. ../setup_role_env/files/runme_env.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ids=$(../setup_role_env/files/add_instances.sh 2 ca-role-collect-logs-it)
ansible-playbook -i localhost, test.yml -e "{\"it_instances\": $ids, \"it_work_dir\": \"$work\"}" "$@"
ansible-playbook -i localhost, alicloud_ops.cloud_assistant.collect_logs -e "{\"collect_logs_instance_ids\": $ids}" \
    -e '{"collect_logs_paths": ["/etc/hostname", "/etc/os-*"]}' -e "collect_logs_dest=$work/playbook" | tee "$work/playbook.log"
for id in $(printf '%s' "$ids" | tr -d '[]",'); do
    [ -s "$work/playbook/$id/etc/hostname" ] || { echo "no /etc/hostname from $id"; exit 1; }
    [ -s "$work/playbook/$id/etc/os-release" ] || { echo "no /etc/os-release from $id"; exit 1; }
done
grep -Eq 'changed=1 .*failed=0 ' "$work/playbook.log" || { echo "collect_logs.yml did not report what it wrote"; exit 1; }
