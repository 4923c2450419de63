# Sourced (without arguments) by the role targets' runme.sh, after `set -eu`. ansible-test passes no variables to a
# script target: the extra vars of tests/integration/integration_config.yml (copied by ansible-test to ../../) are
# added to the caller's arguments and exported as the ALIBABA_CLOUD_* variables the roles read.
# shellcheck shell=bash
config=../../integration_config.yml
if [ -f "$config" ]; then
    set -- -e @"$config" "$@"
    eval "$(python3 ../setup_role_env/files/config_env.py "$config")"
fi
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
