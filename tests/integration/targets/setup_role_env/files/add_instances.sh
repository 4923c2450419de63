#!/usr/bin/env bash
# add_instances.sh COUNT TAG_KEY [more `instances add` options]: adds COUNT sandbox instances tagged
# TAG_KEY=<a random run name> and prints their IDs as a JSON list (CLOUD_ASSISTANT_SANDBOX_* from config_env.py).
set -eu
: "${CLOUD_ASSISTANT_SANDBOX_PYTHON:?this target runs against the offline sandbox (see integration_config.yml.template)}"
count=$1 key=$2
shift 2
cd "$CLOUD_ASSISTANT_SANDBOX_ROOT"
exec "$CLOUD_ASSISTANT_SANDBOX_PYTHON" -m sandbox ctl --state-dir "$CLOUD_ASSISTANT_SANDBOX_STATE_DIR" instances add \
    --count "$count" --tag "$key=r$RANDOM$RANDOM" "$@"
