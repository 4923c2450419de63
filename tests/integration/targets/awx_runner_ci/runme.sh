#!/usr/bin/env bash
# docs/awx.md and docs/ci.md, run (see files/awx_ci.py): a job through ansible-runner with a private data directory,
# an ecs inventory source and environment-only credentials; a CI run of ansible-playbook with the junit callback and
# its exit codes. ansible-test passes no variables to a script target: files/awx_ci.py reads the extra vars of
# tests/integration/integration_config.yml, which ansible-test copies to ../../ of this directory.
set -eu
[ -f ../../integration_config.yml ] || { echo "needs tests/integration/integration_config.yml (sandbox or account)"; exit 1; }
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}" files/awx_ci.py ../../integration_config.yml "$work"
