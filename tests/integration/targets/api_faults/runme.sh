#!/usr/bin/env bash
# API faults for every module and both plugins, against a PRIVATE sandbox (never the shared one: this target kills its
# API server). Two instances. Four phases, one after the other; in each, modules.yml (the five modules at once),
# conn.yml (the connection plugin) and ansible-inventory (the ecs inventory plugin) run at the same time:
#   flaky    50 % throttling (Throttling.User with x-acs-retry-after) + 10 % server errors + 20 % lost replies
#   latency  2 s before every answer
#   restart  the API server is killed (SIGKILL; the agent host and the running commands live on, as instances do on
#            the real service) while runs are waiting, and started again on the same address 3 s later
#   down     the same kill, never restarted: every task must fail near its deadline with the IDs it had, none hangs
# verify.yml then judges the final state of everything (ctl stats: each instance ran each command once; the files
# arrived intact; the invocations reached the state asked; the inventory listed both hosts in their groups; each
# connection task ran once). "$@" carries -v from ansible-test.
set -eu
config=../../integration_config.yml
setting() {  # setting NAME: from integration_config.yml (ansible-test), else the environment
    local value=""
    [ -f "$config" ] && value=$(sed -n "s/^$1: \"\(.*\)\"$/\1/p" "$config")
    printf '%s' "${value:-$(printenv "$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')" || true)}"
}
sb_python=$(setting cloud_assistant_sandbox_python)
sb_root=$(setting cloud_assistant_sandbox_root)
[ -x "$sb_python" ] && [ -d "$sb_root/sandbox" ] ||
    { echo "api_faults needs cloud_assistant_sandbox_python and cloud_assistant_sandbox_root (bash scripts/test)"; exit 1; }
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
here=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/api_faults.XXXXXX")
state="$work/sandbox"
mkdir -p "$state"
if [ "$(id -u)" = 0 ]; then isolation=namespaces; else isolation=process; fi
server_pid=""
started=$(date +%s)

ctl() { (cd "$sb_root" && "$sb_python" -m sandbox ctl --state-dir "$state" "$@"); }

start_server() {  # the first start creates the state; a restart reuses its address and its agent host
    : >"$state/serve.stdout"
    (cd "$sb_root" && exec "$sb_python" -m sandbox serve --state-dir "$state" --instances 0 --isolation "$isolation" \
        >"$state/serve.stdout" 2>>"$state/serve.stderr") &
    server_pid=$!
    for _ in $(seq 300); do
        head -n1 "$state/serve.stdout" | grep -q '^{' && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$state/serve.stderr"
    echo "the sandbox did not start"
    return 1
}

kill_server() {  # SIGKILL: the API server only; the agent host has its own session and survives
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

cleanup() {
    local agent=""
    [ -f "$state/agent.pid" ] && agent=$(tr -dc '0-9' <"$state/agent.pid")
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true   # stops the agent host and everything it started
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$agent" ] && kill -0 "$agent" 2>/dev/null; then
        kill -TERM "$agent" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$agent" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$agent" 2>/dev/null || true
    fi
    [ -n "${API_FAULTS_KEEP:-}" ] || rm -rf "$work"   # API_FAULTS_KEEP=1: keep the logs and results
}
trap cleanup EXIT

start_server
eval "$(cd "$sb_root" && "$sb_python" -m sandbox env --state-dir "$state")"
export ALIBABA_CLOUD_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET ALIBABA_CLOUD_REGION_ID ALIBABA_CLOUD_ECS_ENDPOINT
export ALIBABA_CLOUD_VALIDATE_CERTS=false   # the sandbox serves plain HTTP on 127.0.0.1
web=$(ctl instances add --count 1 --name web --tag role=web --tag api-faults=yes | tr -dc 'a-z0-9-')
db=$(ctl instances add --count 1 --name db --tag role=db --tag api-faults=yes | tr -dc 'a-z0-9-')
head -c 60000 /dev/urandom >"$work/payload.bin"   # three parts of at most 24,000 bytes
sha256sum <"$work/payload.bin" | cut -c1-64 >"$work/payload.bin.sha256"
cat >"$work/modules.ini" <<INI
[modules]
command
info
invocation
agent
file
[modules:vars]
ansible_connection=local
ansible_python_interpreter=$(command -v python)
INI
cat >"$work/conn.yml" <<YAML
all:
  vars:
    ansible_connection: alicloud_ops.cloud_assistant.cloud_assistant
    ansible_python_interpreter: /usr/bin/python3
  hosts:
    $web: {}
    $db: {}
YAML
cat >"$work/fleet.ecs.yml" <<YAML
plugin: alicloud_ops.cloud_assistant.ecs
regions: [cn-hangzhou]
validate_certs: false
cloud_assistant_status: true
filters:
  tags: {api-faults: 'yes'}
keyed_groups:
  - key: instance_tags.role
    prefix: role
YAML
printf '{"faults_instances": ["%s", "%s"], "faults_web": "%s", "faults_db": "%s"}\n' "$web" "$db" "$web" "$db" \
    >"$work/instances.json"
echo "api_faults: private sandbox ($isolation) up with $web (web) and $db (db) in $(($(date +%s) - started)) s"

# run_phase PHASE SLEEP WAIT_TIMEOUT API_TIMEOUT [ansible options]: the runs of one phase at once, in the background (their PIDs in
# phase_pids); the exit codes in PHASE/*.rc
phase_pids=()
run_phase() {
    local phase=$1 sleep=$2 wait_timeout=$3 api_timeout=$4 dir="$work/$1"
    shift 4
    mkdir -p "$dir"
    phase_pids=()
    ctl runs --tag api-faults=yes >"$dir/runs-before.json"
    run_logged "$dir/modules" ansible-playbook -i "$work/modules.ini" "$here/modules.yml" -e "@$work/instances.json" \
        -e "faults_work=$work" -e "faults_phase=$phase" -e "faults_sleep=$sleep" -e "faults_wait_timeout=$wait_timeout" "$@" &
    phase_pids+=($!)
    # the connection retries each API call for api_timeout (default 120 s): 10 s in the down phase
    run_logged "$dir/conn" ansible-playbook -i "$work/conn.yml" "$here/conn.yml" -e "faults_work=$work" \
        -e "faults_phase=$phase" -e "faults_sleep=$sleep" -e "ansible_cloud_assistant_api_timeout=$api_timeout" "$@" &
    phase_pids+=($!)
    if [ "$phase" = flaky ] || [ "$phase" = latency ]; then
        list_inventory "$phase" &
        phase_pids+=($!)
    fi
}

run_logged() {  # run_logged PREFIX COMMAND...: output in PREFIX.log, exit code in PREFIX.rc
    local prefix=$1 rc=0
    shift
    "$@" >"$prefix.log" 2>&1 || rc=$?
    echo "$rc" >"$prefix.rc"
}

list_inventory() {  # the ecs inventory plugin, timed; its groups and agent states in PHASE/inventory-run.json
    local dir="$work/$1" t0 rc=0 timeout=60
    [ "$1" = down ] && timeout=10   # its option `timeout`: how long failed calls are retried
    t0=$(date +%s.%N)
    ALIBABA_CLOUD_INVENTORY_TIMEOUT=$timeout ANSIBLE_INVENTORY_UNPARSED_FAILED=true ansible-inventory -i "$work/fleet.ecs.yml" --list >"$dir/inventory.json" \
        2>"$dir/inventory.log" || rc=$?
    python - "$dir" "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)" <<'PY'
import json, sys
directory, rc, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
summary = {'rc': rc, 'seconds': seconds, 'groups': {}, 'online': {}, 'log': open(directory + '/inventory.log').read()[-2000:]}
if rc == 0:
    listing = json.load(open(directory + '/inventory.json'))
    summary['groups'] = {name: sorted(group.get('hosts', [])) for name, group in listing.items() if name != '_meta'}
    # (ansible-core 2.19 writes the strings of some host variables as {"__ansible_unsafe": ...}: only booleans here)
    summary['online'] = {host: hostvars.get('cloud_assistant', {}).get('online')
                         for host, hostvars in listing['_meta']['hostvars'].items()}
json.dump(summary, open(directory + '/inventory-run.json', 'w'))
PY
}

# wait_running PHASE COUNT: until COUNT runs that started in this phase are running and the info module has started
# (at most 60 s)
wait_running() {
    local n=0
    for _ in $(seq 120); do
        n=$(ctl runs --tag api-faults=yes | python -c '
import json, sys
before = {(r["invoke_id"], r["instance_id"]) for r in json.load(open(sys.argv[1]))["runs"]}
print(sum(1 for r in json.load(sys.stdin)["runs"] if r["end"] is None and (r["invoke_id"], r["instance_id"]) not in before))
' "$work/$1/runs-before.json")
        [ "$n" -ge "$2" ] && [ -f "$work/$1/info-waiting" ] && return 0
        sleep 0.5
    done
    echo "only $n of $2 runs were running after 60 s"
}

wait_phase() {
    wait "${phase_pids[@]}"
    echo "api_faults: phase $1 done at $(($(date +%s) - started)) s (modules rc $(cat "$work/$1/modules.rc"), connection rc $(cat "$work/$1/conn.rc"))"
}

# 1. flaky: throttling, server errors and lost replies on every action
ctl faults --throttle 0.5 --server-errors 0.1 --drop 0.2 >/dev/null
run_phase flaky 2 120 120 "$@"
wait_phase flaky
ctl faults --throttle 0 --server-errors 0 --drop 0 >/dev/null

# 2. latency: 2 s before every answer
ctl faults --latency-ms 2000 >/dev/null
run_phase latency 1 180 120 "$@"
wait_phase latency
ctl faults --latency-ms 0 >/dev/null

# 3. restart: killed while command, info, invocation and the connection's raw runs are running; back 3 s later
run_phase restart 12 120 120 "$@"
wait_running restart 8
kill_server
date +%s.%N >"$work/restart/killed"
list_inventory restart &
phase_pids+=($!)
sleep 3
start_server
date +%s.%N >"$work/restart/restarted"
wait_phase restart

# 4. down: the same kill, never restarted (the tasks have wait_timeout 20, the connection api_timeout 10, the
#    inventory timeout 10)
run_phase down 12 20 10 "$@"
wait_running down 8
kill_server
date +%s.%N >"$work/down/killed"
list_inventory down &
phase_pids+=($!)
wait_phase down
start_server

# the verdict, with the API back and no fault
ansible-playbook -i localhost, -c local verify.yml -e "@$work/instances.json" -e "faults_work=$work" \
    -e "ansible_python_interpreter=$(command -v python)" \
    -e "faults_sandbox_python=$sb_python" -e "faults_sandbox_root=$sb_root" -e "faults_state=$state" "$@"
echo "api_faults: passed in $(($(date +%s) - started)) s"
