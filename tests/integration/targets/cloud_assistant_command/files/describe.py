# Independent look at the sandbox for the cloud_assistant_command target: DescribeInvocations / DescribeCommands
# straight through the ECS SDK (not through the collection), so the target can check what the module did.
#
#   python describe.py --state-dir DIR invocations [--invoke-id T] [--command-name N] [--command-id C]
#                                                  [--instance-id I]
#   python describe.py --state-dir DIR commands [--name N] [--command-id C]
#   python describe.py --state-dir DIR stop --instance-id I [--instance-id I ...]
#       (clean-up: StopInvocation for every invocation still pending, scheduled or running on these instances)
#
# Prints one JSON object on stdout. The sandbox's keys are read from DIR/sandbox.json and never printed.
from __future__ import annotations

import argparse
import json
import os
import sys


def _client(state_dir):
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    with open(os.path.join(state_dir, 'sandbox.json'), encoding='utf-8') as handle:
        info = json.load(handle)
    scheme, _sep, host = str(info['endpoint']).partition('://')
    client = Client(Config(
        access_key_id=info['access_key_id'],
        access_key_secret=info['access_key_secret'],
        region_id=info['region_id'],
        endpoint=host.rstrip('/'),
        protocol=scheme,
        read_timeout=20000,
        connect_timeout=5000,
    ))
    return client, info['region_id']


def _pages(call, request):
    request.max_results = 50
    while True:
        body = call(request).body.to_map()
        yield body
        token = body.get('NextToken') or ''
        if not token:
            return
        request.next_token = token


def invocations(client, region_id, args):
    from alibabacloud_ecs20140526 import models

    found = []
    seen = set()
    # Timed=false (the API's default) lists one-time and ended invocations, Timed=true the schedules that will run
    # again: ask both, so that every invocation is seen
    for timed in (False, True):
        request = models.DescribeInvocationsRequest(region_id=region_id, invoke_id=args.invoke_id,
                                                    command_name=args.command_name, command_id=args.command_id,
                                                    instance_id=args.instance_id, timed=timed)
        for body in _pages(client.describe_invocations, request):
            for inv in body.get('Invocations', {}).get('Invocation', []):
                if inv.get('InvokeId') in seen:
                    continue
                seen.add(inv.get('InvokeId'))
                found.append(_invocation_view(inv))
    return {'invocations': found}


def _invocation_view(inv):
    return {
        'invoke_id': inv.get('InvokeId'),
        'command_id': inv.get('CommandId'),
        'command_name': inv.get('CommandName'),
        'invocation_status': inv.get('InvocationStatus'),
        'repeat_mode': inv.get('RepeatMode'),
        'frequency': inv.get('Frequency'),
        'timeout': inv.get('Timeout'),
        'instances': [{
            'instance_id': ii.get('InstanceId'),
            'invocation_status': ii.get('InvocationStatus'),
            'error_code': ii.get('ErrorCode'),
            'exit_code': ii.get('ExitCode'),
            'start_time': ii.get('StartTime'),
        } for ii in inv.get('InvokeInstances', {}).get('InvokeInstance', [])],
    }


def stop(client, region_id, args):
    from alibabacloud_ecs20140526 import models

    active = ('Pending', 'Scheduled', 'Running')
    stopped = []
    for instance_id in list(args.instance_id):
        query = argparse.Namespace(invoke_id=None, command_name=None, command_id=None, instance_id=instance_id)
        for inv in invocations(client, region_id, query)['invocations']:
            live = [i['instance_id'] for i in inv['instances']
                    if i['instance_id'] == instance_id and i['invocation_status'] in active]
            if live:
                client.stop_invocation(models.StopInvocationRequest(region_id=region_id, invoke_id=inv['invoke_id'],
                                                                    instance_id=live))
                stopped.append({'invoke_id': inv['invoke_id'], 'instance_ids': live})
    return {'stopped': stopped}


def commands(client, region_id, args):
    from alibabacloud_ecs20140526 import models

    request = models.DescribeCommandsRequest(region_id=region_id, name=args.name, command_id=args.command_id,
                                             content_encoding='PlainText')
    found = []
    for body in _pages(client.describe_commands, request):
        for cmd in body.get('Commands', {}).get('Command', []):
            if args.name and cmd.get('Name') != args.name:
                continue  # the Name filter also matches patterns
            found.append({
                'command_id': cmd.get('CommandId'),
                'name': cmd.get('Name'),
                'description': cmd.get('Description'),
                'type': cmd.get('Type'),
                'content': cmd.get('CommandContent'),
                'timeout': cmd.get('Timeout'),
                'working_dir': cmd.get('WorkingDir'),
                'enable_parameter': cmd.get('EnableParameter'),
                'invoke_times': cmd.get('InvokeTimes'),
            })
    return {'commands': found}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--state-dir', required=True)
    sub = parser.add_subparsers(dest='what')
    inv = sub.add_parser('invocations')
    inv.add_argument('--invoke-id')
    inv.add_argument('--command-name')
    inv.add_argument('--command-id')
    inv.add_argument('--instance-id')
    cmd = sub.add_parser('commands')
    cmd.add_argument('--name')
    cmd.add_argument('--command-id')
    stp = sub.add_parser('stop')
    stp.add_argument('--instance-id', action='append', required=True)
    args = parser.parse_args()
    if args.what is None:
        parser.error('say invocations, commands or stop')
    client, region_id = _client(args.state_dir)
    handler = {'invocations': invocations, 'commands': commands, 'stop': stop}[args.what]
    result = handler(client, region_id, args)
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
