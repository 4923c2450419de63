"""Whole-process clients that run `sleep 2; echo ok` through Cloud Assistant without Ansible.

Each file is a standalone script (no imports from this repository) so that its process start-up, SDK import
and work are what a user's own script would cost: `python benchmarks/baselines/<name>.py INSTANCE_ID ...`.
"""
