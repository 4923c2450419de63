"""Runs `ansible-inventory --list` on several ECS inventory configurations at once, for the bad_input target.

stdin: JSON {"base": a configuration that works, "cases": [changes, ...]}; each case is the base with its changes.
argv[1]: a directory to write them in. Prints a JSON list of
{"rc": ..., "stderr": ..., "stdout": ...} in the same order. An unparsed source is an error here, so a configuration
the plugin refuses makes ansible-inventory fail.
"""

import json
import os
import subprocess
import sys


def main():
    given = json.load(sys.stdin)
    configs = [dict(given["base"], **changes) for changes in given["cases"]]
    directory = sys.argv[1]
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="true", ALIBABA_CLOUD_ECS_METADATA_DISABLED="true")
    running = []
    for index, config in enumerate(configs):
        path = os.path.join(directory, "case%d.ecs.yml" % index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle)  # JSON is YAML
        running.append(subprocess.Popen(["ansible-inventory", "-i", path, "--list"], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = []
    for proc in running:
        stdout, stderr = proc.communicate(timeout=120)
        results.append({"rc": proc.returncode, "stdout": stdout[-2000:], "stderr": stderr[-4000:]})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
