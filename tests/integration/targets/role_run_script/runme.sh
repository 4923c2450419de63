#!/usr/bin/env bash
# The run_script role (test.yml), then playbooks/change_hostname.yml as a user runs it (credentials from the
# ALIBABA_CLOUD_* environment only): a new name for the first instance, the second one left alone, then both back.
# ansible-test passes no variables to a script target: the extra vars of tests/integration/integration_config.yml
# (copied by ansible-test to ../../) are added here and exported; the instances are added here too.
set -eu
# shellcheck source=SCRIPTDIR/../setup_role_env/files/runme_env.sh
. ../setup_role_env/files/runme_env.sh
work=$(mktemp -d)
restored=0
cleanup() {
    if [ "$restored" = 0 ] && [ -s "$work/restore.json" ]; then
        ansible-playbook -i localhost, alicloud_ops.cloud_assistant.change_hostname -e @"$work/restore.json" >"$work/restore.log" 2>&1 ||
            { cat "$work/restore.log"; echo "could not restore the host names"; }
    fi
    rm -rf "$work"
}
trap cleanup EXIT
ids=$(../setup_role_env/files/add_instances.sh 2 ca-role-run-script-it)
ansible-playbook -i localhost, test.yml -e "{\"it_instances\": $ids, \"it_work_dir\": \"$work\"}" "$@"
for part in set restore; do
    python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))[sys.argv[2]], sys.stdout)' "$work/hostnames.json" "$part" \
        >"$work/$part.json"
done

ansible-playbook -i localhost, alicloud_ops.cloud_assistant.change_hostname -e @"$work/set.json" | tee "$work/set.log"
grep -Eq 'changed=1 ' "$work/set.log" || { echo "change_hostname.yml did not report a change"; exit 1; }
grep -Eq '"i-[a-z0-9]+: [^ ]+ -> it-host-a"' "$work/set.log" || { echo "the first instance was not renamed"; exit 1; }
grep -Eq '"i-[a-z0-9]+: ([^ ]+) -> \1"' "$work/set.log" || { echo "the second instance was not left alone"; exit 1; }
# back to the names they had: the first instance was it-host-a
restored=1
ansible-playbook -i localhost, alicloud_ops.cloud_assistant.change_hostname -e @"$work/restore.json" | tee "$work/restore.log"
grep -Eq '"i-[a-z0-9]+: it-host-a -> [^ ]+"' "$work/restore.log" || { echo "the first instance was not it-host-a"; exit 1; }
# a name that is not a host name is refused before any API call
if ansible-playbook -i localhost, alicloud_ops.cloud_assistant.change_hostname -e '{"hostname_map": {"i-x": "bad_name"}}' \
    >"$work/bad.log" 2>&1; then
    echo "change_hostname.yml accepted bad_name"; exit 1
fi
grep -q 'invalid for i-x' "$work/bad.log" || { cat "$work/bad.log"; exit 1; }
