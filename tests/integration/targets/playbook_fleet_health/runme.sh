#!/usr/bin/env bash
# playbooks/fleet_health.yml end to end, as a user runs it: instances from the ECS inventory plugin, credentials in
# ALIBABA_CLOUD_* variables, the collection's playbook by name. setup.yml adds a fleet in two regions (a Windows
# instance, whose script the sandbox cannot run, and an instance whose agent is stopped among them); the checks are on
# the table the playbook prints, in YAML and in the default JSON result format; progress.yml checks the progress lines
# of a run that lasts a few seconds. teardown.yml starts the stopped agent again, whatever happened.
# "$@" carries -v from ansible-test; the extra vars of tests/integration/integration_config.yml (../../ of this
# directory) are added here.
set -eu
if [ -f ../../integration_config.yml ]; then set -- -e @../../integration_config.yml "$@"; fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
args=("$@")   # the trap runs where a function called exit: "$@" would be that function's arguments
cleanup() {
    ansible-playbook teardown.yml -e "fleet_work_dir=$work" "${args[@]}" >/dev/null || echo "teardown.yml failed"
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; exit 1; }
ansible-playbook setup.yml -e "fleet_work_dir=$work" "$@"
id_of() { "${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/ids.json" "$1"; }
linux_hz=$(id_of linux_hz); linux_bj=$(id_of linux_bj); windows=$(id_of windows); offline=$(id_of offline)

(
    # only what a user has: the environment, the inventory source, the playbook's name. The three runs only read
    # the fleet: they run side by side.
    # shellcheck disable=SC1091
    . "$work/env.sh"
    unset CLOUD_ASSISTANT_PROGRESS_INTERVAL
    export ANSIBLE_INVENTORY_UNPARSED_FAILED=true   # an inventory source that fails says why
    ANSIBLE_CALLBACK_RESULT_FORMAT=yaml ansible-playbook -i "$work/fleet.ecs.yml" alicloud_ops.cloud_assistant.fleet_health \
        >"$work/yaml.log" 2>&1 &
    yaml_run=$!
    # the default result format, and a fleet with an unreachable instance failing the play on request
    ANSIBLE_CALLBACK_RESULT_FORMAT=json ansible-playbook -i "$work/fleet.ecs.yml" alicloud_ops.cloud_assistant.fleet_health \
        -e fleet_fail_on_unreachable=true >"$work/json.log" 2>&1 &
    json_run=$!
    CLOUD_ASSISTANT_PROGRESS_INTERVAL=1 ansible-playbook progress.yml -e "{\"fleet_progress_ids\": [\"$linux_hz\"]}" \
        >"$work/progress.log" 2>&1 &
    progress_run=$!
    rc=0; wait "$yaml_run" || rc=$?
    [ "$rc" = 0 ] || { cat "$work/yaml.log"; fail "fleet_health.yml (yaml results): exit $rc"; }
    rc=0; wait "$json_run" || rc=$?
    [ "$rc" = 2 ] || { cat "$work/json.log"; fail "fleet_fail_on_unreachable=true: exit $rc, not 2"; }
    rc=0; wait "$progress_run" || rc=$?
    [ "$rc" = 0 ] || { cat "$work/progress.log"; fail "progress.yml: exit $rc"; }
)
cat "$work/yaml.log"
expect() {  # expect LOG REGEX WHAT
    grep -Eq -- "$2" "$1" || { cat "$1"; fail "$3 (no line matching: $2)"; }
}
log=$work/yaml.log
num='[0-9]+(\.[0-9]+)?'
# one row per instance: ID, name, region, status, exit code, duration, load, memory %, disk %
expect "$log" "^ +INSTANCE +NAME +REGION +STATUS +EXIT +DURATION +LOAD +MEM% +DISK%$" "the header"
expect "$log" "^ +$linux_hz +fleet-web +cn-hangzhou +Success +0 +$num s +$num +[0-9]+ +[0-9]+$" "the Linux instance of cn-hangzhou"
expect "$log" "^ +$linux_bj +fleet-db +cn-beijing +Success +0 +$num s +$num +[0-9]+ +[0-9]+$" "the Linux instance of cn-beijing"
expect "$log" "^ +$windows +fleet-win +cn-hangzhou +Error +- " "the Windows instance's row"
expect "$log" "^ +$offline +fleet-down +cn-beijing +NotSent +- " "the row of the instance whose agent is stopped"
expect "$log" "^ +2 of 4 instances did not succeed:$" "the count of failures"
expect "$log" "^ +$windows \(fleet-win, cn-hangzhou\): Error, ExecutionException: .*cannot execute Windows scripts" \
    "why the Windows instance failed"
expect "$log" "^ +$offline \(fleet-down, cn-beijing\): NotSent: the Cloud Assistant agent is not online" \
    "why the instance whose agent is stopped was not checked"
expect "$log" "2 instance\(s\) checked, none above 90% of the root disk used; 2 could not be checked" "the verdict"
# the rows come sorted by region (cn-beijing first), the table is one block
line_of() { grep -nE "^ +$1 " "$log" | head -n1 | cut -d: -f1; }
[ "$(line_of "$linux_bj")" -lt "$(line_of "$linux_hz")" ] || fail "rows not sorted by region"
[ "$(grep -c 'TASK \[Show the fleet' "$log")" = 1 ] || fail "the table is not one task's output"
if grep -q 'cloud_assistant_command: .* instances\? finished' "$log"; then fail "progress lines on a run shorter than 10 s"; fi
log=$work/json.log
expect "$log" "^ +\"$linux_bj +fleet-db +cn-beijing +Success +0 " "a row in the JSON result format (a list of lines)"
expect "$log" "2 of 4 instances could not be checked" "the verdict of fleet_fail_on_unreachable=true"
log=$work/progress.log
expect "$log" "^\[localhost\] cloud_assistant_command: 0 of 1 instance finished, 0 failed \([0-9]+ s\)$" "a progress line"
# the seconds count on while the counts stay the same (the 4 s sleep: lines at 1, 2, 3 s)
expect "$log" "^\[localhost\] cloud_assistant_command: 0 of 1 instance finished, 0 failed \([2-9] s\)$" "a later progress line"
echo "fleet_health.yml: table and progress as expected"
