#!/usr/bin/env python3
"""`make demo`: the dev stack, deployed by the real Pulumi engine onto the local simulated cluster.

    python3 scripts/demo.py up     # start the local control plane, `pulumi up -s dev`, print the outputs
    python3 scripts/demo.py down   # forget the stack and stop the control plane

The cluster keeps running after `up` so you can look around (the commands are printed at the end).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine
import local_cluster

STACK = "dev"
DEMO = engine.STATE / "demo"


def up() -> int:
    # The program of this checkout with Pulumi.dev.yaml as an air-gapped cluster needs it: charts from the
    # packaged fixtures (``llmstack:charts``), the rest as committed.
    project = engine.Project.copy(DEMO, STACK, local_cluster.stack_file(STACK))
    fresh_cluster = not local_cluster.running()
    if fresh_cluster and engine.available():
        # State of a cluster that is gone (stopped without `make demo-down`, machine restarted) describes
        # objects that no longer exist: start the stack afresh on the new cluster.
        project.remove()
    local_cluster.provide([STACK], project.directory)
    project.select()
    print(f"demo: pulumi up -s {STACK} in {DEMO} (state in {engine.STATE / 'state'})", flush=True)
    # --refresh: state of objects the cluster no longer holds (a cluster restarted under it) is dropped first.
    result = project.up("--refresh", check=False)
    print(result.stdout[-4000:])
    if result.returncode != 0:
        print(result.stderr[-4000:], file=sys.stderr)
        return result.returncode
    print("demo: stack outputs")
    print(json.dumps(project.outputs(), indent=2))
    kubectl = local_cluster.BIN / "kubectl"
    print(f"""
demo: the dev stack runs on the local cluster (no containers: kwok plays the kubelet). Look around:
  export KUBECONFIG={local_cluster.KUBECONFIG}
  {kubectl} get nodes
  {kubectl} get pods -A -o wide
  {kubectl} -n llm-dev get deploy,svc,pvc,job,pdb,networkpolicy
  cd {DEMO} && PATH={local_cluster.BIN}:$PATH PULUMI_HOME={engine.STATE / "pulumi-home"} \\
    PULUMI_BACKEND_URL=file://{engine.STATE / "state"} PULUMI_CONFIG_PASSPHRASE={engine.EXAMPLE_PASSPHRASE} \\
    pulumi stack output -s {STACK}
Stop it with: make demo-down""")
    return 0


def down() -> int:
    if engine.available() and DEMO.exists():
        engine.Project(DEMO, STACK).remove()
    local_cluster.stop()
    print("demo: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down"])
    return up() if parser.parse_args(argv).command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
