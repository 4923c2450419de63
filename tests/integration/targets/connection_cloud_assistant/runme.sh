#!/usr/bin/env bash
# The connection plugin end to end: setup.yml adds three sandbox instances and writes an inventory that reaches them
# over alicloud_ops.cloud_assistant.cloud_assistant; play.yml runs modules over it; teardown.yml starts again the
# agent play.yml stopped, whatever happened. "$@" carries -e @integration_config.yml (and -v) from ansible-test.
set -eu
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
export ANSIBLE_ROLES_PATH=..
work=$(mktemp -d)
cleanup() {
    ansible-playbook teardown.yml -e "connection_work_dir=$work" "$@" || true
    rm -rf "$work"
}
trap 'cleanup "$@"' EXIT
ansible-playbook setup.yml -e "connection_work_dir=$work" "$@"
ansible-playbook -i "$work/inventory.yml" play.yml -e "connection_work_dir=$work" "$@"
