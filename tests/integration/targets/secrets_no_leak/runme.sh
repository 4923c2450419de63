#!/usr/bin/env bash
# Secrets stay secret: leak.yml runs every module and both plugins with an STS key from the environment and one
# secret parameter, once with ansible-playbook at -vvvv (with a log file) and once through ansible-runner, the engine
# AWX runs jobs with. Then none of the access key secret, the STS secret, the STS token or the secret parameter may
# appear in stdout, stderr, the log, the registered results, the job events or any other runner artifact, except in
# ansible-runner's own record of the environment it was given (artifacts/<id>/command, mode 0600; see
# docs/reliability.md). setup.yml needs the extra vars of tests/integration/integration_config.yml.
set -eu
if [ -f ../../integration_config.yml ]; then config=(-e @../../integration_config.yml); else config=(); fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/runner/inventory" "$work/runner/env" "$work/runner/project"
ansible-playbook setup.yml -e "leak_work_dir=$work" "${config[@]}" "$@"
# what a failure shows before the look-up below, with every secret (setup.yml's needles) masked
masked() {
    python3 -c 'import sys
needles = [n for n in open(sys.argv[1]).read().splitlines() if n]
text = sys.stdin.read()
for n in needles:
    text = text.replace(n, "********")
sys.stdout.write(text)' "$work/needles"
}
cp leak.yml "$work/runner/project/leak.yml"

# 1. ansible-playbook -vvvv, credentials from the environment only; leak.yml also writes its registered results.
#    The modules run the way Ansible packages them for any host (CLOUD_ASSISTANT_ANSIBALLZ, an AnsiballZ zip); in
#    step 2 they run from the installed collection, as they do by default on the controller
#    (plugins/plugin_utils/_in_place.py): both ways are held to the same checks.
mkdir "$work/results"
(
    # shellcheck disable=SC1091
    . "$work/sts.env"
    CLOUD_ASSISTANT_ANSIBALLZ=true ANSIBLE_LOG_PATH="$work/ansible.log" ansible-playbook -i "$work/fleet.ecs.yml" leak.yml -e "@$work/vars.json" \
        -e "leak_results_dir=$work/results" -vvvv >"$work/vvvv.stdout" 2>"$work/vvvv.stderr"
) || { tail -n 60 "$work/vvvv.stdout" "$work/vvvv.stderr" | masked; exit 1; }
[ "$(find "$work/results" -name '*.json' | wc -l)" = 2 ] || { echo "leak.yml did not write its results"; exit 1; }
packaged=$(grep -c 'AnsiballZ packaging (CLOUD_ASSISTANT_ANSIBALLZ is set)' "$work/vvvv.stdout" || true)
[ "$packaged" -ge 5 ] || { echo "step 1 ran $packaged module tasks from an AnsiballZ zip, expected every module's"; exit 1; }

# 2. ansible-runner with a private data directory: env/envvars, env/extravars, inventory/, project/
python -m ansible_runner run "$work/runner" -p leak.yml --ident leak --cmdline=-vvvv >"$work/runner.stdout" 2>&1 ||
    { tail -n 60 "$work/runner.stdout" | masked; exit 1; }
artifacts="$work/runner/artifacts/leak"
[ "$(cat "$artifacts/rc")" = 0 ] || { echo "ansible-runner: rc $(cat "$artifacts/rc")"; exit 1; }
in_place=$(grep -c 'runs from the installed collection' "$work/runner.stdout" || true)
[ "$in_place" -ge 5 ] || { echo "step 2 ran $in_place module tasks from the installed collection, expected every module's"; exit 1; }
events=$(find "$artifacts/job_events" -name '*.json' | wc -l)
[ "$events" -gt 20 ] || { echo "ansible-runner wrote only $events job events"; exit 1; }
for module in cloud_assistant_command cloud_assistant_invocation_info cloud_assistant_invocation cloud_assistant_agent \
    cloud_assistant_file; do
    grep -lq "\"alicloud_ops.cloud_assistant.$module\"" "$artifacts"/job_events/*.json ||
        { echo "no job event of $module"; exit 1; }
done

# the look-up: any of the four secrets anywhere is a failure
leaks=0
while IFS= read -r -d '' file; do
    if [ "$file" = "$artifacts/command" ]; then continue; fi
    if grep -qF -f "$work/needles" "$file"; then echo "a secret appears in ${file#"$work"/}"; leaks=$((leaks + 1)); fi
done < <(find "$work/vvvv.stdout" "$work/vvvv.stderr" "$work/ansible.log" "$work/results" "$work/runner.stdout" \
    "$work/runner/artifacts" -type f -print0)
[ "$leaks" = 0 ] || exit 1
# the checks above looked at real output: the secret parameter was masked where the script printed it
grep -qF 'value=********' "$work/vvvv.stdout" || { echo "the masked value is not in the -vvvv output"; exit 1; }
# ansible-runner keeps the environment it was given (the credentials) in artifacts/<id>/command, readable by its owner only
[ "$(stat -c %a "$artifacts/command")" = 600 ] || { echo "artifacts/command is not 0600"; exit 1; }
echo "no secret in $(find "$work/runner/artifacts" -type f | wc -l) runner artifacts, $events job events, the -vvvv output, the log and the results"
