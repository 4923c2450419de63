# shellcheck shell=bash
# Shared setup for scripts/test and scripts/demo. Source it (it only defines variables and functions).
#
#   ensure_system_packages   Debian packages the sandbox and the tests need (apt-get, only when missing)
#   ensure_venv              .venv with test-requirements.txt (recreated when Python or the requirements change)
#   prepare_collection_tree  copy of the collection at .cache/collections/ansible_collections/alicloud_ops/cloud_assistant
#   install_get_pip_shim     offline stand-in for the pip bootstrap script ansible-test would download
#   sandbox_start / sandbox_stop   run `python -m sandbox serve` in the background (see sandbox/README.md)
#   run_stage / print_summary      timed, non-fatal stages and the final report

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
CACHE_DIR="$ROOT/.cache"
COLLECTIONS_DIR="$CACHE_DIR/collections"
COLLECTION_TREE="$COLLECTIONS_DIR/ansible_collections/alicloud_ops/cloud_assistant"
PYTHON="${PYTHON:-python3}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
# Top-level paths that are not part of the collection: never copied into the collection tree.
NOT_COLLECTION_RE='^(sandbox|benchmarks|scripts|\.ci|\.venv|\.cache|\.git|tests/output)(/|$)|^(pyproject\.toml)$|(^|/)(__pycache__|\.pytest_cache|\.mypy_cache|\.ruff_cache)(/|$)|\.pyc$|^tests/integration/integration_config\.yml$'

# The package registries are reached through a TLS-intercepting proxy: its CA is in the system bundle.
if [[ -r $CA_BUNDLE ]]; then
    export SSL_CERT_FILE="${SSL_CERT_FILE:-$CA_BUNDLE}"
    export PIP_CERT="${PIP_CERT:-$CA_BUNDLE}"
    export REQUESTS_CA_BUNDLE="${REQUESTS_CA_BUNDLE:-$CA_BUNDLE}"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
export PYTHONUNBUFFERED=1
# Without this, a test or demo run without credentials lets the SDK's default credential chain ask the ECS
# instance metadata address, which is not on this machine and must never be contacted from a test.
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true

log() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# --- exit handlers (several can be registered; run in reverse order) -------------------------------------
_EXIT_HANDLERS=()
_run_exit_handlers() {
    local i
    for ((i = ${#_EXIT_HANDLERS[@]} - 1; i >= 0; i--)); do
        eval "${_EXIT_HANDLERS[i]}" || true
    done
    _EXIT_HANDLERS=()
}
on_exit() {
    _EXIT_HANDLERS+=("$(printf '%q ' "$@")")
    trap _run_exit_handlers EXIT
    trap '_run_exit_handlers; trap - INT; kill -INT $BASHPID' INT
    trap '_run_exit_handlers; trap - TERM; kill -TERM $BASHPID' TERM
}

# One run at a time per checkout: both commands rebuild the same .cache tree.
acquire_lock() {
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/.run.lock"
    if ! flock -n 9; then
        info "another scripts/test or scripts/demo is running in $ROOT; waiting for it to finish"
        flock 9
    fi
}

# --- 1. system packages -------------------------------------------------------------------------------------
# command -> Debian package providing it
declare -A _DEB_FOR_COMMAND=(
    [unshare]=util-linux
    [nsenter]=util-linux
    [mount]=mount
    [git]=git
    [tar]=tar
    [timeout]=coreutils
    [flock]=util-linux
)

ensure_system_packages() {
    local missing=() cmd
    for cmd in "${!_DEB_FOR_COMMAND[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${_DEB_FOR_COMMAND[$cmd]}")
    done
    [[ -r $CA_BUNDLE ]] || missing+=(ca-certificates)
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        # Only a Debian-packaged python3 lacks these; a pyenv/python.org build has them.
        missing+=("python3-venv")
    fi
    if ((${#missing[@]} == 0)); then
        info "system packages: all present"
        return 0
    fi
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    command -v apt-get >/dev/null 2>&1 || die "missing system packages (${missing[*]}) and no apt-get to install them"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing system packages (${missing[*]}); run as root or install them"
        sudo=(sudo)
    fi
    info "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >/dev/null
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        2> >(grep -v '^debconf: delaying package configuration' >&2 || true)
}

# --- 2. virtual environment -----------------------------------------------------------------------------------
# pip on some machines warns, for every package, about configured local indexes that do not exist; that noise
# hides real problems. filter_pip_noise drops only those lines (use as `cmd 2>&1 | filter_pip_noise`).
_PIP_NOISE_RE="^WARNING: Location 'file:.*' is ignored: it is neither a file nor a directory\.$"
filter_pip_noise() {
    grep --line-buffered -v -- "$_PIP_NOISE_RE" || true
}
_pip_quiet() {
    "$VENV/bin/python" -m pip "$@" 2> >(filter_pip_noise >&2)
}

ensure_venv() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is $("$PYTHON" -V 2>&1); Python 3.11 or newer is needed (set PYTHON=...)"
    local want_py stamp want_stamp
    want_py=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    want_stamp=$(cat "$ROOT/test-requirements.txt" "$ROOT/requirements.txt" | sha256sum | cut -d' ' -f1)
    want_stamp="python=$want_py requirements=$want_stamp"
    stamp="$VENV/.cloud_assistant-stamp"
    if [[ -x $VENV/bin/python ]] &&
        [[ $("$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) == "$want_py" ]]; then
        if [[ -f $stamp && $(cat "$stamp") == "$want_stamp" ]]; then
            info "reusing $VENV (Python $want_py, requirements unchanged)"
            return 0
        fi
        info "updating $VENV (requirements changed)"
    else
        info "creating $VENV (Python $want_py)"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    rm -f "$stamp"
    _pip_quiet install -q -r "$ROOT/test-requirements.txt"
    printf '%s\n' "$want_stamp" >"$stamp"
    info "installed: $("$VENV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -ciE '^[a-z0-9]') packages," \
        "$("$VENV/bin/ansible" --version | head -n1)"
}

# Puts .venv first on PATH (ansible-test and ansible-playbook look up `python3.X` and `ansible*` there) and sets
# PYVER (major.minor of .venv's Python, for `ansible-test --python`).
activate_venv() {
    export VIRTUAL_ENV="$VENV"
    export PATH="$VENV/bin:$PATH"
    # shellcheck disable=SC2034  # used by scripts/test
    PYVER=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_DIR"
}

# --- 3. the collection tree ansible-test / ansible-playbook use ----------------------------------------------
# ansible-test only runs from .../ansible_collections/<namespace>/<name>. The tree is a fresh copy of the
# collection's files (tracked + untracked-but-not-ignored when in a git checkout), without sandbox/,
# benchmarks/, scripts/, .ci/ and caches, so the tests see exactly what would be committed.
_collection_files() {
    # safe.directory: the checkout may belong to another user than the one running the tests (CI runners).
    if git -c safe.directory="$ROOT" -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -c safe.directory="$ROOT" -C "$ROOT" ls-files -co --exclude-standard
    else
        (cd "$ROOT" && find . \( -name .git -o -name .venv -o -name .cache \) -prune -o \( -type f -o -type l \) -print |
            sed 's|^\./||')
    fi
}

prepare_collection_tree() {  # prepare_collection_tree [DEST]: default $COLLECTION_TREE
    local list dest=${1:-$COLLECTION_TREE}
    list=$(mktemp)
    _collection_files | grep -Ev "$NOT_COLLECTION_RE" | sort -u | while IFS= read -r f; do
        [[ -e $ROOT/$f || -L $ROOT/$f ]] && printf '%s\n' "$f"   # skip files deleted but still tracked
    done >"$list"
    rm -rf "$dest"
    mkdir -p "$dest"
    tar -C "$ROOT" -cf - --no-recursion -T "$list" | tar -C "$dest" -xf -
    # ansible-test lists content with git when it finds a .git directory in the tree or above it. Above it is this
    # repository, which ignores .cache/, so it would see no files at all: give the tree its own (empty) repository;
    # git then reports every file as untracked-but-not-ignored, which ansible-test includes.
    git -C "$dest" init -q
    info "collection tree: $dest ($(wc -l <"$list") files)"
    rm -f "$list"
}

# --- 4. offline pip bootstrap for ansible-test -----------------------------------------------------------------
# ansible-test creates its sanity/units virtual environments without pip and bootstraps pip with
# ~/.ansible/test/cache/get_pip_<version>.py, downloading it from ci-files.testing.ansible.com when the file is
# missing. That host is not reachable here, so we write a stand-in: ensurepip, then `pip install` with the same
# arguments (the pinned pip version). ansible-test strips the environment, so the CA bundle is set again inside.
_GET_PIP_MARKER='# alicloud_ops.cloud_assistant get-pip stand-in'

install_get_pip_shim() {
    local src versions v path
    src=$("$VENV/bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')
    # get_venv_packages() in python_requirements.py: default_packages = dict(pip='24.2', ...), plus overrides
    versions=$(grep -hoE "pip=['\"][0-9][0-9.]*['\"]" "$src/_internal/python_requirements.py" | grep -oE '[0-9][0-9.]*' | sort -u)
    [[ -n $versions ]] || { versions=24.2; info "WARNING: could not find ansible-test's pip version; assuming 24.2"; }
    mkdir -p "$HOME/.ansible/test/cache"
    for v in $versions; do
        path="$HOME/.ansible/test/cache/get_pip_${v//./_}.py"
        if [[ -f $path ]] && ! grep -qF "$_GET_PIP_MARKER" "$path"; then
            info "keeping existing $path (not written by these scripts)"
            continue
        fi
        cat >"$path" <<EOF
$_GET_PIP_MARKER (written by scripts/lib.sh).
# Replaces https://ci-files.testing.ansible.com/ansible-test/get-pip-$v.py, which cannot be downloaded here.
# ansible-test runs it in a new virtual environment without pip as:
#   python get_pip_X.py [pip install options] pip==X [--no-setuptools] [--no-wheel]
import os
import subprocess
import sys

CA_BUNDLE = '$CA_BUNDLE'


def main():
    env = dict(os.environ)
    if os.path.exists(CA_BUNDLE):
        for name in ('SSL_CERT_FILE', 'PIP_CERT', 'REQUESTS_CA_BUNDLE'):
            env[name] = CA_BUNDLE
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], env=env, stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q'] + args, env=env)
    if '--no-setuptools' in sys.argv[1:]:
        # ensurepip also installs setuptools on Python < 3.12; get-pip would not have.
        subprocess.call([sys.executable, '-m', 'pip', 'uninstall', '-q', '-y', 'setuptools'], env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == '__main__':
    main()
EOF
        info "pip bootstrap stand-in: $path"
    done
}

# --- 5. the sandbox ---------------------------------------------------------------------------------------------
# sandbox_start STATE_DIR INSTANCES [more `serve` options]
#   starts `python -m sandbox serve` in the background, waits for the JSON line it prints on stdout once it
#   listens (kept in SANDBOX_INFO), and exports the ALIBABA_CLOUD_* variables from `python -m sandbox env`.
# sandbox_stop
#   SIGTERM, bounded wait, SIGKILL as a last resort; also ends the agent host if it outlived the server.
SANDBOX_PID=""
SANDBOX_DIR=""
SANDBOX_INFO=""
SANDBOX_START_TIMEOUT="${SANDBOX_START_TIMEOUT:-90}"
SANDBOX_STOP_TIMEOUT="${SANDBOX_STOP_TIMEOUT:-30}"

sandbox_start() {
    local dir=$1 instances=$2 waited=0
    shift 2
    mkdir -p "$dir"
    SANDBOX_DIR=$(cd "$dir" && pwd)
    : >"$SANDBOX_DIR/serve.stdout"
    # (fd 9 is the run lock: the sandbox must not hold it)
    (cd "$ROOT" && exec 9>&- && exec "$VENV/bin/python" -m sandbox serve --state-dir "$SANDBOX_DIR" --instances "$instances" "$@" \
        >"$SANDBOX_DIR/serve.stdout" 2>"$SANDBOX_DIR/serve.stderr") &
    SANDBOX_PID=$!
    on_exit sandbox_stop
    while ! head -n1 "$SANDBOX_DIR/serve.stdout" 2>/dev/null | grep -q '^{.*}$'; do
        if ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
            wait "$SANDBOX_PID" 2>/dev/null || true
            SANDBOX_PID=""
            _sandbox_show_log
            die "the sandbox exited before it was ready"
        fi
        if ((waited >= SANDBOX_START_TIMEOUT * 10)); then
            _sandbox_show_log
            die "the sandbox did not print its ready line within ${SANDBOX_START_TIMEOUT}s"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    SANDBOX_INFO=$(head -n1 "$SANDBOX_DIR/serve.stdout")
    local exports
    exports=$(cd "$ROOT" && "$VENV/bin/python" -m sandbox env --state-dir "$SANDBOX_DIR") ||
        die "python -m sandbox env --state-dir $SANDBOX_DIR failed"
    eval "$exports"
    export ALIBABA_CLOUD_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET ALIBABA_CLOUD_REGION_ID ALIBABA_CLOUD_ECS_ENDPOINT
    # How the integration targets reach `python -m sandbox ctl` for this sandbox (faults, instances, stats): the
    # sandbox code is not in the collection copy, so they get the interpreter, the repository root and the state dir.
    export CLOUD_ASSISTANT_SANDBOX_PYTHON="$VENV/bin/python" CLOUD_ASSISTANT_SANDBOX_ROOT="$ROOT" \
        CLOUD_ASSISTANT_SANDBOX_STATE_DIR="$SANDBOX_DIR"
    # (the JSON line also holds the sandbox's throwaway keys; only the non-secret fields are shown)
    info "sandbox up: pid $SANDBOX_PID, $instances instances, $(printf '%s' "$SANDBOX_INFO" | "$VENV/bin/python" -c \
        'import json, sys; d = json.load(sys.stdin); print("endpoint %s, isolation %s, state %s" % (d.get("endpoint"), d.get("isolation"), d.get("state_dir")))')"
}

# render_integration_config DEST
#   tests/integration/integration_config.yml.template with every ${ALIBABA_CLOUD_...} and ${CLOUD_ASSISTANT_SANDBOX_...}
#   placeholder replaced by that environment variable (escaped for a YAML double-quoted string); fails when one is unset.
render_integration_config() {
    "$VENV/bin/python" - "$ROOT/tests/integration/integration_config.yml.template" "$1" <<'PY' ||
import json, os, re, sys
import yaml

src, dest = sys.argv[1], sys.argv[2]
with open(src, encoding='utf-8') as f:
    template = f.read()
placeholder = r'\$\{((?:ALIBABA_CLOUD|CLOUD_ASSISTANT_SANDBOX)_[A-Z0-9_]+)\}'
missing = sorted({name for name in re.findall(placeholder, template) if name not in os.environ})
if missing:
    sys.exit(f'{src}: environment variables not set: {", ".join(missing)}')
text = re.sub(placeholder, lambda m: json.dumps(os.environ[m.group(1)])[1:-1], template)
yaml.safe_load(text)  # must stay valid YAML
with open(dest, 'w', encoding='utf-8') as f:
    f.write(text)
PY
        die "could not write $1"
    info "wrote $1"
}

_sandbox_show_log() {
    local f
    for f in serve.stderr server.log; do
        [[ -n $SANDBOX_DIR && -s $SANDBOX_DIR/$f ]] || continue
        printf -- '---- last lines of %s ----\n' "$SANDBOX_DIR/$f" >&2
        tail -n 30 "$SANDBOX_DIR/$f" >&2
    done
}

_pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

_wait_gone() {  # _wait_gone PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        _pid_alive "$1" || return 0
        sleep 0.1
    done
    return 1
}

sandbox_stop() {
    if _pid_alive "$SANDBOX_PID"; then
        kill -TERM "$SANDBOX_PID" 2>/dev/null || true
        if ! _wait_gone "$SANDBOX_PID" "$SANDBOX_STOP_TIMEOUT"; then
            info "sandbox (pid $SANDBOX_PID) ignored SIGTERM for ${SANDBOX_STOP_TIMEOUT}s; killing it"
            kill -KILL "$SANDBOX_PID" 2>/dev/null || true
        fi
        wait "$SANDBOX_PID" 2>/dev/null || true
        info "sandbox stopped"
    fi
    SANDBOX_PID=""
    # The agent host is detached and normally stopped by the server; end it if it is still alive.
    local agent_pid=""
    if [[ -n $SANDBOX_DIR && -f $SANDBOX_DIR/agent.pid ]]; then
        agent_pid=$(tr -dc '0-9' <"$SANDBOX_DIR/agent.pid")
        if _pid_alive "$agent_pid"; then
            kill -TERM "$agent_pid" 2>/dev/null || true
            _wait_gone "$agent_pid" 10 || kill -KILL "$agent_pid" 2>/dev/null || true
            info "stopped the leftover agent host (pid $agent_pid)"
        fi
    fi
}

# --- 6. stages --------------------------------------------------------------------------------------------------
# run_stage [--fatal] NAME COMMAND...
#   runs COMMAND in a subshell with `set -e` (so a stage cannot leak variables or traps), records its time and
#   result and carries on; with --fatal a failure prints the summary and exits.
SKIP_RC=200   # a stage that exits with this code is reported as "skipped"
_STAGE_NAMES=()
_STAGE_RESULTS=()
_STAGE_SECONDS=()
_STAGE_NOTES=()

# stage_note TEXT: a line the summary prints under the running stage (what it skipped and why).
stage_note() {
    [[ -n ${STAGE_NOTES_FILE:-} ]] && printf 'skipped: %s\n' "$*" >>"$STAGE_NOTES_FILE"
    info "note: $*"
}

# stage_failure TEXT: a line the summary prints under the running stage naming what failed. CI shows only the end
# of the output, so a failing test must be named there, not only in the stage's own (scrolled-away) report.
stage_failure() {
    [[ -n ${STAGE_NOTES_FILE:-} ]] && printf 'failed: %s\n' "${1:0:300}" >>"$STAGE_NOTES_FILE"
    return 0
}

# note_pytest_skips LOG: one stage_note per "SKIPPED [n] file:line: reason" line of a pytest run with -rs, and one
# stage_failure per "FAILED ..." / "ERROR ..." line of its short summary (-rfE; ansible-test's -r a has them too).
note_pytest_skips() {
    local line
    while IFS= read -r line; do
        stage_note "pytest ${line#SKIPPED }"
    done < <(grep -E '^SKIPPED \[' "$1" || true)
    while IFS= read -r line; do
        stage_failure "${line#FAILED }"
    done < <(grep -E '^(FAILED|ERROR) ' "$1" || true)
}

# The sandbox's isolation for the tests: as root it must be namespaces (the namespaces-only tests - guards run end
# to end, instance filesystems, interrupted transfers - then run), so `auto` silently falling back to plain
# processes cannot pass as a green run; without root only processes are possible and the stages say what that skips.
test_isolation() {
    if ((EUID == 0)); then echo namespaces; else echo process; fi
}

run_stage() {
    local fatal=0 name start rc
    if [[ $1 == --fatal ]]; then
        fatal=1
        shift
    fi
    name=$1
    shift
    log "$name"
    start=$(date +%s)
    STAGE_NOTES_FILE=$(mktemp "${TMPDIR:-/tmp}/cloud_assistant-notes.XXXXXX")
    export STAGE_NOTES_FILE
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    _STAGE_NOTES+=("$(cat "$STAGE_NOTES_FILE")")
    rm -f "$STAGE_NOTES_FILE"
    STAGE_NOTES_FILE=""
    _STAGE_NAMES+=("$name")
    _STAGE_SECONDS+=($(($(date +%s) - start)))
    if ((rc == 0)); then
        _STAGE_RESULTS+=(ok)
    elif ((rc == SKIP_RC)); then
        _STAGE_RESULTS+=(skipped)
    else
        _STAGE_RESULTS+=("FAILED (exit $rc)")
        info "stage '$name' FAILED (exit $rc)"
        if ((fatal)); then
            print_summary "${SUMMARY_TITLE:-run}" || true
            printf '\nRESULT: FAILED (stage "%s" is required by the ones after it)\n' "$name"
            exit 1
        fi
    fi
    return 0
}

# print_summary TITLE -> prints the per-stage table; returns 1 when a stage failed.
print_summary() {
    local i failed=0
    printf '\n==> %s summary\n' "$1"
    for i in "${!_STAGE_NAMES[@]}"; do
        printf '    %-44s %5ss  %s\n' "${_STAGE_NAMES[i]}" "${_STAGE_SECONDS[i]}" "${_STAGE_RESULTS[i]}"
        if [[ -n ${_STAGE_NOTES[i]:-} ]]; then
            printf '%s\n' "${_STAGE_NOTES[i]}" | sed 's/^/        /'
        fi
        [[ ${_STAGE_RESULTS[i]} == ok || ${_STAGE_RESULTS[i]} == skipped ]] || failed=1
    done
    return "$failed"
}
