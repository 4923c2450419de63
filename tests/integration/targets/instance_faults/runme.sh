#!/usr/bin/env bash
# Instance-level faults against a private sandbox (six instances in a temporary directory) that this script starts,
# restarts in the middle and stops whatever happens: the shared sandbox of the other targets is never touched.
#   before.yml   a schedule every 10 s on one instance (its first run is awaited); binary, non-UTF-8 and over-24-KB
#                output; a command that ignores SIGTERM, killed at its timeout
#   (restart)    the sandbox stops (its processes are killed) and starts again on the same state directory
#   after.yml    an instance released while a run is on it (by the background job below); an instance stopped
#                between the inventory (the ECS inventory plugin lists it Running) and the play; the schedule of
#                before.yml kept running on time under the same invoke ID, then it is stopped
# "$@" carries -v from ansible-test, which passes no environment to a script target: the sandbox's interpreter
# and code come from tests/integration/integration_config.yml (copied by ansible-test to ../../), as extra vars.
set -eu
config=../../integration_config.yml
if [ -f "$config" ]; then set -- -e "@$config" "$@"; else config=""; fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
releaser=""

# cloud_assistant_sandbox_python and _root from the configuration (else CLOUD_ASSISTANT_SANDBOX_PYTHON and _ROOT)
eval "$(python - "$config" <<'PY'
import os, shlex, sys
import yaml
conf = {}
if sys.argv[1]:
    with open(sys.argv[1], encoding='utf-8') as f:
        conf = yaml.safe_load(f) or {}
for var, key in (('SANDBOX_PYTHON', 'cloud_assistant_sandbox_python'), ('SANDBOX_ROOT', 'cloud_assistant_sandbox_root')):
    value = conf.get(key) or os.environ.get('CLOUD_ASSISTANT_' + var, '')
    if not value or value.startswith('${'):
        sys.exit('instance_faults starts its own sandbox: it needs %s in integration_config.yml' % key)
    print('%s=%s' % (var, shlex.quote(str(value))))
PY
)"
state="$work/sandbox"

start_sandbox() {
    # (new state: six instances are added below; a restart keeps them and listens on the same address again)
    (cd "$SANDBOX_ROOT" && exec "$SANDBOX_PYTHON" -m sandbox serve --state-dir "$state" --instances 0 \
        >>"$work/serve.stdout" 2>>"$work/serve.stderr") &
    echo $! >"$work/serve.pid"
    local want=$1
    for _ in $(seq 300); do
        [ "$(grep -c '^{' "$work/serve.stdout" || true)" -ge "$want" ] && return 0
        kill -0 "$(cat "$work/serve.pid")" 2>/dev/null || break
        sleep 0.2
    done
    echo "the sandbox did not start"; cat "$work/serve.stderr"; exit 1
}
stop_sandbox() {
    # SIGTERM: `serve` stops its agent host and every process that started; bounded wait, then SIGKILL
    local pid
    pid=$(cat "$work/serve.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
}
ctl() { (cd "$SANDBOX_ROOT" && "$SANDBOX_PYTHON" -m sandbox ctl --state-dir "$state" "$@"); }
cleanup() {
    if [ -n "$releaser" ]; then kill "$releaser" 2>/dev/null || true; fi
    stop_sandbox
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$state"
start_sandbox 1
# one instance per role: the schedule, the outputs, two for the release, two for the stop
for role in schedule output released released stopped stopped; do
    ctl instances add --count 1 --name "$role" --tag "role=$role"
done | python -c '
import json, sys
ids = [json.loads(line)[0] for line in sys.stdin]
info = json.load(open(sys.argv[1]))
names = ["schedule", "output", "kept", "released", "running", "stopped"]
vars = dict(("instance_faults_" + n, i) for n, i in zip(names, ids))
vars.update(instance_faults_endpoint=info["endpoint"], instance_faults_region=info["region_id"],
            instance_faults_access_key_id=info["access_key_id"], instance_faults_access_key_secret=info["access_key_secret"],
            instance_faults_ctl=[sys.argv[2], "-m", "sandbox", "ctl", "--state-dir", sys.argv[3]],
            instance_faults_sandbox_root=sys.argv[4])
with open(sys.argv[5], "w") as f:
    json.dump(vars, f)
inventory = {"plugin": "alicloud_ops.cloud_assistant.ecs", "regions": [info["region_id"]],
             "filters": {"instance_ids": ids[4:]}, "use_cloud_assistant_connection": True,
             "compose": {"ansible_python_interpreter": "\"/usr/bin/python3\""},
             "access_key_id": info["access_key_id"], "access_key_secret": info["access_key_secret"],
             "endpoint": info["endpoint"], "validate_certs": False}
with open(sys.argv[6], "w") as f:
    json.dump(inventory, f)
print("RELEASED_ID=" + ids[3])
' "$state/sandbox.json" "$SANDBOX_PYTHON" "$state" "$SANDBOX_ROOT" "$work/vars.yml" "$work/fleet.ecs.yml" >"$work/ids.env"
# shellcheck disable=SC1091
. "$work/ids.env"
play() { ansible-playbook "$@" -e "@$work/vars.yml" -e "instance_faults_work=$work"; }

play before.yml "$@"

stop_sandbox
start_sandbox 2
# (after.yml looks at the schedule's runs since this moment)
date -u +%Y-%m-%dT%H:%M:%SZ >"$work/back_at"

# release that instance as soon as its run has started (ctl runs lists the runs on the instances with the tag; its
# run lasts a minute, so a look every 0.3 s is soon enough)
(
    for _ in $(seq 200); do
        if ctl runs --tag role=released | grep -q "\"instance_id\": \"$RELEASED_ID\", \"status\": \"Running\""; then
            ctl instances release "$RELEASED_ID" >"$work/released.json"
            exit 0
        fi
        sleep 0.3
    done
) &
releaser=$!
play -i "$work/fleet.ecs.yml" after.yml "$@"
wait "$releaser" || true
releaser=""
