#!/usr/bin/env bash
# Two identical playbooks at the same moment (two CI jobs, an AWX schedule and a manual run), for every module that
# creates or changes something. setup.yml adds two instances; then two copies of overlap.yml start together and
# meet before each case (barrier.yml), so the same task of both starts within a fraction of a second; check.yml
# asserts from the sandbox's own records (ctl stats, DescribeCommands/DescribeInvocations through the modules) that
# each case left one resource and ran nothing twice, and from both registered results that at most one reported a
# change. cleanup.yml (the end of check.yml, or on its own after a failure) removes what the cases created. Needs the extra vars of
# tests/integration/integration_config.yml.
set -eu
if [ -f ../../integration_config.yml ]; then config=(-e @../../integration_config.yml); else config=(); fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
run="r$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
common=(-e "overlap_work_dir=$work" -e "overlap_run=$run" "${config[@]}")
cleanup() {
    if [ -f "$work/vars.json" ] && [ ! -e "$work/cleaned" ]; then
        ansible-playbook cleanup.yml "${common[@]}" -e "@$work/vars.json" >"$work/cleanup.out" 2>&1 ||
            { echo "cleanup.yml failed:"; tail -n 40 "$work/cleanup.out"; }
    fi
    rm -rf "$work"
}
trap cleanup EXIT

SECONDS=0
ansible-playbook setup.yml "${common[@]}" "$@"
setup_s=$SECONDS

# both copies at once; each stops at its first failure, so the other must not wait at a barrier for long
pids=()
for copy in 1 2; do
    ansible-playbook overlap.yml "${common[@]}" -e "@$work/vars.json" -e "overlap_copy=$copy" "$@" \
        >"$work/copy-$copy.out" 2>&1 &
    pids+=("$!")
done
failed=0
for i in 0 1; do
    wait "${pids[$i]}" || { failed=1; echo "copy $((i + 1)) failed:"; tail -n 60 "$work/copy-$((i + 1)).out"; }
done
[ "$failed" = 0 ] || exit 1
copies_s=$((SECONDS - setup_s))

ansible-playbook check.yml "${common[@]}" -e "@$work/vars.json" "$@"
echo "overlapping_runs: setup ${setup_s}s, both copies ${copies_s}s, check and clean-up $((SECONDS - setup_s - copies_s))s"
