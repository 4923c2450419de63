#!/usr/bin/env bash
# The agent role (test.yml) on an instance with an agent and one without.
# ansible-test passes no variables to a script target: the extra vars of tests/integration/integration_config.yml
# (copied by ansible-test to ../../) are added here and exported; the instances are added here too.
set -eu
# shellcheck source=SCRIPTDIR/../setup_role_env/files/runme_env.sh
. ../setup_role_env/files/runme_env.sh
ids=$(../setup_role_env/files/add_instances.sh 1 ca-role-agent-it)
noagent=$(../setup_role_env/files/add_instances.sh 1 ca-role-agent-it --no-agent)
ansible-playbook -i localhost, test.yml -e "{\"it_instances\": $ids, \"it_noagent\": $noagent}" "$@"
