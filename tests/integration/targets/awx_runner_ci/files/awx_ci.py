# Copyright (c) alicloud_ops.cloud_assistant contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX and CI guides (docs/awx.md, docs/ci.md), run: python awx_ci.py INTEGRATION_CONFIG WORK_DIR.

1. Adds two instances with a tag of their own to the sandbox and mints STS credentials for this test.
2. ansible-runner (the engine AWX runs jobs with): a private data directory with the project (job.yml), an
   inventory source (an ecs inventory plugin configuration, no credentials in it) and env/envvars with the
   credentials (the environment only). Checks the result, the job events and the artifacts, and that neither the
   STS secret nor the token is in any artifact except the `command` file ansible-runner writes with the job's
   environment (see docs/awx.md).
3. ansible-playbook as a CI job: credentials in the process environment, the junit callback; a failing task gives
   exit code 2 and a JUnit report with one failure; an unreachable host gives exit code 4.
4. The README's "Quick start with a real account": its inventory file and playbook, as they are written there (the
   region replaced), limited to the two instances added here, with the four variables it exports.
"""

from __future__ import annotations

import glob
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TIME_LIMIT = 300  # seconds, for each Ansible run


def fail(msg):
    sys.exit('FAILED: %s' % msg)


def check(condition, msg):
    if not condition:
        fail(msg)


class Sandbox:
    def __init__(self, config):
        self.argv = [config['cloud_assistant_sandbox_python'], '-m', 'sandbox', 'ctl', '--state-dir',
                     config['cloud_assistant_sandbox_state_dir']]
        self.root = config['cloud_assistant_sandbox_root']

    def ctl(self, *args):
        out = subprocess.run(self.argv + list(args), cwd=self.root, capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            fail('sandbox ctl %s: %s' % (' '.join(args), out.stderr.strip()))
        return json.loads(out.stdout)


def scan_for(directory, secrets):
    """Relative paths of the files under directory that contain any of the secrets."""
    found = []
    for path in glob.glob(os.path.join(directory, '**'), recursive=True):
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                data = f.read()
            if any(s.encode('utf-8') in data for s in secrets):
                found.append(os.path.relpath(path, directory))
    return sorted(found)


def credential_env(creds, config):
    """The ALIBABA_CLOUD_* variables a custom credential type's env injector gives a job (STS key and token)."""
    return {
        'ALIBABA_CLOUD_ACCESS_KEY_ID': creds['access_key_id'],
        'ALIBABA_CLOUD_ACCESS_KEY_SECRET': creds['access_key_secret'],
        'ALIBABA_CLOUD_SECURITY_TOKEN': creds['security_token'],
        'ALIBABA_CLOUD_REGION_ID': config['alibaba_cloud_region_id'],
        'ALIBABA_CLOUD_ECS_ENDPOINT': config['alibaba_cloud_ecs_endpoint'],
        'ALIBABA_CLOUD_ECS_METADATA_DISABLED': 'true',
    }


def redact(text, secrets):
    """``text`` with every one of ``secrets`` replaced by ``********``: what a failure may print before the scans."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, '********')
    return text


def job_secrets(creds, config):
    """The values no output or artifact may show."""
    return [creds['access_key_secret'], creds['security_token'], config['alibaba_cloud_access_key_secret']]


def runner_job(config, work, tag, instance_ids, creds):
    import ansible_runner  # the library AWX's jobs run through

    pdd = os.path.join(work, 'runner')
    os.makedirs(os.path.join(pdd, 'project'))
    os.makedirs(os.path.join(pdd, 'inventory'))
    os.makedirs(os.path.join(pdd, 'env'))
    shutil.copy(os.path.join(HERE, 'project', 'job.yml'), os.path.join(pdd, 'project', 'job.yml'))
    # the inventory source, as a project would commit it: no credentials
    with open(os.path.join(pdd, 'inventory', 'fleet.ecs.yml'), 'w', encoding='utf-8') as f:
        yaml.safe_dump({
            'plugin': 'alicloud_ops.cloud_assistant.ecs',
            'regions': [config['alibaba_cloud_region_id']],
            'filters': {'tags': {'awx-runner-ci': tag}},
            'use_cloud_assistant_connection': True,
            'compose': {'ansible_python_interpreter': "'/usr/bin/python3'"},
        }, f)
    # what a custom credential type's env injector gives the job
    envvars = credential_env(creds, config)
    with open(os.path.join(pdd, 'env', 'envvars'), 'w', encoding='utf-8') as f:
        yaml.safe_dump(envvars, f)
    os.chmod(os.path.join(pdd, 'env', 'envvars'), 0o600)

    started = time.time()
    result = ansible_runner.run(private_data_dir=pdd, playbook='job.yml', ident='job1', quiet=True,
                                timeout=TIME_LIMIT)
    artifacts = os.path.join(pdd, 'artifacts', 'job1')
    stdout_path = os.path.join(artifacts, 'stdout')
    if result.rc != 0 or result.status != 'successful':
        if os.path.exists(stdout_path):
            with open(stdout_path, encoding='utf-8', errors='replace') as f:
                print(redact(f.read(), job_secrets(creds, config)))
        fail('ansible-runner: status %s, rc %s (expected successful, 0)' % (result.status, result.rc))

    events = list(result.events)
    kinds = [e.get('event') for e in events]
    for kind in ('playbook_on_start', 'playbook_on_play_start', 'playbook_on_task_start', 'runner_on_ok',
                 'playbook_on_stats'):
        check(kind in kinds, 'ansible-runner: no %s event (got %s)' % (kind, sorted(set(kinds))))
    check(not [k for k in kinds if k in ('runner_on_failed', 'runner_on_unreachable')],
          'ansible-runner: failed or unreachable events')
    hostname_ok = sorted(e['event_data']['host'] for e in events if e.get('event') == 'runner_on_ok'
                         and e['event_data'].get('task') == 'Read the host name on each instance')
    check(hostname_ok == sorted(instance_ids),
          'ansible-runner: the connection task ran on %s, expected %s' % (hostname_ok, sorted(instance_ids)))
    module_ok = [e['event_data'] for e in events if e.get('event') == 'runner_on_ok'
                 and e['event_data'].get('task_action') == 'alicloud_ops.cloud_assistant.cloud_assistant_command']
    check(len(module_ok) == 1, 'ansible-runner: expected one cloud_assistant_command result, got %d' % len(module_ok))
    res = module_ok[0]['res']
    check(sorted(i['instance_id'] for i in res['instances']) == sorted(instance_ids)
          and all(i['invocation_status'] == 'Success' and i['exit_code'] == 0 and 'load average' in i['output'] for i in res['instances']),
          'ansible-runner: the module event does not show uptime on both instances: %s' % res.get('instances'))
    check(result.stats['ok'].get('localhost') == 2 and all(result.stats['ok'].get(i) == 2 for i in instance_ids),
          'ansible-runner: stats %s' % result.stats)

    # the artifacts AWX and other ansible-runner users keep
    for name in ('rc', 'status', 'stdout', 'command', 'job_events'):
        check(os.path.exists(os.path.join(artifacts, name)), 'ansible-runner: no artifacts/job1/%s' % name)
    with open(os.path.join(artifacts, 'rc'), encoding='utf-8') as f:
        check(f.read().strip() == '0', 'ansible-runner: artifacts/job1/rc is not 0')
    with open(os.path.join(artifacts, 'status'), encoding='utf-8') as f:
        check(f.read().strip() == 'successful', 'ansible-runner: artifacts/job1/status is not successful')
    event_files = glob.glob(os.path.join(artifacts, 'job_events', '*.json'))
    check(len(event_files) == len(events), 'ansible-runner: %d event files for %d events' % (len(event_files), len(events)))
    with open(stdout_path, encoding='utf-8') as f:
        check('Run uptime on every instance of the inventory' in f.read(), 'ansible-runner: the stdout artifact lacks the task')

    # no secret in the artifacts: not in events (the module's no_log options), stdout, status, facts...
    leaked = scan_for(artifacts, job_secrets(creds, config))
    # ... except in `command`, where ansible-runner itself records the job's whole environment (mode 0600).
    check(leaked in ([], ['command']), 'ansible-runner: a secret is in the artifacts %s' % leaked)
    mode = stat.S_IMODE(os.stat(os.path.join(artifacts, 'command')).st_mode)
    check(mode == 0o600, 'ansible-runner: artifacts/job1/command has mode %o, not 600' % mode)
    print('ansible-runner job: successful in %.1f s; %d events, no secret in any artifact%s' % (
        time.time() - started, len(events), ' but command (the job environment, 0600)' if leaked else ''))


def run_playbook(playbook, env, inventory=None):
    argv = ['ansible-playbook', os.path.join(HERE, playbook)]
    if inventory:
        argv += ['-i', inventory]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIME_LIMIT, check=False)


def ci_job(config, work, tag, instance_ids, creds):
    junit_dir = os.path.join(work, 'junit')
    env = dict(os.environ)
    for name in [n for n in env if n.startswith(('ALIBABA_CLOUD_', 'ALICLOUD_'))]:
        del env[name]
    env.update(credential_env(creds, config))
    env.update({
        'CI_FLEET_TAG': tag,
        'ANSIBLE_CALLBACKS_ENABLED': 'ansible.builtin.junit',
        'JUNIT_OUTPUT_DIR': junit_dir,
        'JUNIT_TASK_CLASS': 'true',
        'JUNIT_HIDE_TASK_ARGUMENTS': 'true',
        'ANSIBLE_NOCOLOR': 'true',
    })
    started = time.time()
    out = run_playbook('ci.yml', env)
    check(out.returncode == 2, 'ci.yml: ansible-playbook exited %d, expected 2 (a failed task)\n%s%s'
          % (out.returncode, redact(out.stdout, job_secrets(creds, config)), redact(out.stderr, job_secrets(creds, config))))
    reports = glob.glob(os.path.join(junit_dir, '*.xml'))
    check(len(reports) == 1, 'junit: expected one report in %s, got %s' % (junit_dir, reports))
    suites = ET.parse(reports[0]).getroot()
    cases = suites.findall('.//testcase')
    by_name = dict((c.get('name'), c) for c in cases)
    passed = [n for n in by_name if n.endswith('Disk space check')]
    failed = [n for n in by_name if n.endswith('Smoke test that fails')]
    check(len(passed) == 1 and not [p for p in by_name[passed[0]] if p.tag in ('failure', 'error')],
          'junit: the passing task is not a passing test case: %s' % sorted(by_name))
    # ansible-core 2.19 attaches an error summary to every failed module result, and the junit callback reports
    # such a task as <error>; without it (older ansible-core) as <failure>. CI systems count both as failed tests.
    problem = [p for p in by_name[failed[0]] if p.tag in ('failure', 'error')] if failed else []
    check(len(problem) == 1, 'junit: the failing task is not a failed test case: %s' % sorted(by_name))
    message = problem[0].get('message') or ''
    check(all(('%s (Failed, ExitCodeNonzero, exit 3)' % i) in message for i in instance_ids),
          'junit: the failure does not name the instances and the exit code: %s' % message)
    suite = suites.find('testsuite') if suites.tag == 'testsuites' else suites
    check(suite is not None and int(suite.get('failures')) + int(suite.get('errors')) == 1 and suite.get('tests') == '2',
          'junit: the test suite does not count two tests and one failure: %s' % (suite.attrib if suite is not None else None))
    check(not scan_for(junit_dir, [creds['access_key_secret'], creds['security_token']]), 'junit: a secret is in the report')
    check(creds['access_key_secret'] not in out.stdout + out.stderr and creds['security_token'] not in out.stdout + out.stderr,
          'ci.yml: a secret is in the output')

    # an unreachable host: exit code 4
    inventory = os.path.join(work, 'unreachable.yml')
    with open(inventory, 'w', encoding='utf-8') as f:
        yaml.safe_dump({'all': {'hosts': {'i-awxrunnercinotexisting0': {
            'ansible_connection': 'alicloud_ops.cloud_assistant.cloud_assistant'}}}}, f)
    out2 = run_playbook('unreachable.yml', env, inventory)
    check(out2.returncode == 4, 'unreachable.yml: ansible-playbook exited %d, expected 4\n%s%s'
          % (out2.returncode, out2.stdout, out2.stderr))
    check('UNREACHABLE' in out2.stdout, 'unreachable.yml: the host is not reported UNREACHABLE')
    print('CI job: exit code 2 with a JUnit report of %d test cases (1 failure), exit code 4 for an unreachable host'
          ', in %.1f s' % (len(cases), time.time() - started))


def find_readme():
    """The collection's README.md, above the copy of the target ansible-test runs (under tests/output/.tmp)."""
    directory = HERE
    for _level in range(16):
        directory = os.path.dirname(directory)
        path = os.path.join(directory, 'README.md')
        if os.path.isfile(os.path.join(directory, 'galaxy.yml')) and os.path.isfile(path):
            return path
    fail('no README.md next to a galaxy.yml above %s' % HERE)


def quick_start(config, work, instance_ids):
    with open(find_readme(), encoding='utf-8') as f:
        readme = f.read()
    start = readme.find('## Quick start with a real account')
    check(start >= 0, 'README: no "Quick start with a real account" section')
    section = readme[start:readme.find('\n## ', start + 1)]
    blocks = [textwrap.dedent(b) for b in re.findall(r'```yaml\n(.*?)```', section, re.S)]
    check(len(blocks) == 2, 'README quick start: expected two YAML blocks (inventory, playbook), got %d' % len(blocks))
    directory = os.path.join(work, 'quick-start')
    os.makedirs(directory)
    with open(os.path.join(directory, 'fleet.ecs.yml'), 'w', encoding='utf-8') as f:
        f.write(blocks[0].replace('cn-hangzhou', config['alibaba_cloud_region_id']))
    with open(os.path.join(directory, 'uptime.yml'), 'w', encoding='utf-8') as f:
        f.write(blocks[1])
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(('ALIBABA_CLOUD_', 'ALICLOUD_')))
    env.update({
        'ALIBABA_CLOUD_ACCESS_KEY_ID': config['alibaba_cloud_access_key_id'],
        'ALIBABA_CLOUD_ACCESS_KEY_SECRET': config['alibaba_cloud_access_key_secret'],
        'ALIBABA_CLOUD_REGION_ID': config['alibaba_cloud_region_id'],
        # the sandbox's endpoint; a real account uses the regional endpoint the SDK picks
        'ALIBABA_CLOUD_ECS_ENDPOINT': config['alibaba_cloud_ecs_endpoint'],
        'ALIBABA_CLOUD_ECS_METADATA_DISABLED': 'true',
        'ANSIBLE_NOCOLOR': 'true',
    })
    started = time.time()
    graph = subprocess.run(['ansible-inventory', '-i', 'fleet.ecs.yml', '--graph', 'cloud_assistant_online'],
                           cwd=directory, env=env, capture_output=True, text=True, timeout=TIME_LIMIT, check=False)
    check(graph.returncode == 0 and all(i in graph.stdout for i in instance_ids),
          'README quick start: ansible-inventory --graph does not list the instances under cloud_assistant_online\n%s%s'
          % (graph.stdout, graph.stderr))
    play = subprocess.run(['ansible-playbook', '-i', 'fleet.ecs.yml', 'uptime.yml', '--limit', ','.join(instance_ids)],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=TIME_LIMIT, check=False)
    check(play.returncode == 0 and all(('%s: Success, exit 0' % i) in play.stdout for i in instance_ids)
          and 'load average' in play.stdout,
          'README quick start: uptime.yml did not show uptime of both instances\n%s%s' % (play.stdout, play.stderr))
    print('README quick start: inventory and playbook as written, in %.1f s' % (time.time() - started))


def main():
    config_path, work = sys.argv[1], sys.argv[2]
    with open(config_path, encoding='utf-8') as f:
        config = yaml.safe_load(f)
    sandbox = Sandbox(config)
    tag = 'run-%d' % random.randint(0, 99999999)
    instance_ids = sandbox.ctl('instances', 'add', '--count', '2', '--tag', 'awx-runner-ci=' + tag)
    creds = sandbox.ctl('sts', '--ttl', '900')
    check(creds['access_key_id'].startswith('STS.') and creds['security_token'], 'sandbox ctl sts: no STS credentials')
    runner_job(config, work, tag, instance_ids, creds)
    ci_job(config, work, tag, instance_ids, creds)
    quick_start(config, work, instance_ids)


if __name__ == '__main__':
    main()
