#!/usr/bin/env python3
"""A local Kubernetes control plane with simulated GPU nodes, for the real Pulumi engine.

    python3 scripts/local_cluster.py up [--stack dev --stack prod]   # start (or reuse) it
    python3 scripts/local_cluster.py down                            # stop it, delete its state
    python3 scripts/local_cluster.py status

etcd, kube-apiserver (its default admission plugins on: NamespaceLifecycle, LimitRanger, ServiceAccount,
PodSecurity, ResourceQuota, DefaultStorageClass, ...), kube-controller-manager, kube-scheduler and kwok run
as processes on 127.0.0.1 (kwokctl's binary runtime), all built by scripts/toolchain.py. The kubeconfig is
``.local-cluster/kubeconfig``; kubectl is ``.local-cluster/bin/kubectl``.

No container runs. kwok plays the kubelet: nodes are Ready (with lease heartbeats), scheduled pods become
Running and Ready, pods of Jobs Succeeded, PVCs are provisioned and bound (kwok's volume stages). So the
real scheduler, Deployment, ReplicaSet, Job, endpoint, disruption, namespace and garbage collectors judge
what the stack creates. What that means for each chart and operator is in docs/local-cluster.md.

Nodes are shaped from each stack file: one GPU node per ``gpuPool.gpu.perNode`` GPUs the stack's GPU pods
need, with the node selector labels, the taints their tolerations name and the GPU resource the pool
advertises (``nvidia.com/gpu.shared`` x replicas for time-slicing), plus plain CPU nodes for the platform.

Cluster-level things a real cluster (or an operator that cannot run here) provides are created by
``provide``: the CRDs of Knative Serving (its operator installs them at run time), Karpenter, Gateway API and
Istio where a stack uses their kinds, and the storage classes the stack names.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local-cluster"
BIN = STATE / "bin"
WORKDIR = STATE / "kwok"
#: ``make demo`` and ``make cluster-up`` run ``llmstack``; the test suite its own (``LLMSTACK_CLUSTER``),
#: started afresh each session, so tests never disturb a demo and a crashed run leaves nothing for the next.
NAME = os.environ.get("LLMSTACK_CLUSTER", "llmstack")
KUBECONFIG = STATE / ("kubeconfig" if NAME == "llmstack" else f"kubeconfig-{NAME}")
#: kwokctl names the kubeconfig context after the cluster.
CONTEXT = f"kwok-{NAME}"
CRDS = ROOT / "tests" / "fixtures" / "crds"
CHARTS = ROOT / "tests" / "fixtures" / "charts"

#: Service ClusterIPs come from the loopback range. No kube-proxy runs, so a ClusterIP leads nowhere;
#: but the API server itself dials Services (admission webhooks, aggregated APIs such as KEDA's metrics
#: API). From loopback those dials end at once on this machine instead of leaving it.
SERVICE_CIDR = "127.64.0.0/16"
#: Pod IPs kwok hands out (addresses only: nothing listens there and nothing here dials them).
POD_CIDR = "10.244.0.1/16"
#: The webhooks of charts whose controllers cannot run here would refuse every object they guard
#: (failurePolicy: Fail, and nothing answers): the local API server does not call webhooks.
DISABLED_ADMISSION = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"
#: A plain node for the platform's pods (Prometheus, Grafana, KEDA, operators).
CPU_NODE = {"cpu": "32", "memory": "128Gi", "pods": "110"}
CPU_NODES = 3
#: GPU nodes get room for their GPU pods' CPU and memory (the stack file gives no node size).
GPU_NODE = {"cpu": "192", "memory": "2048Gi", "pods": "110"}
#: The cluster's default class (the DefaultStorageClass admission plugin gives it to claims that name none).
DEFAULT_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kwok.x-k8s.io/volume", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
}
#: Label of what the cluster provides to a stack (namespaces it refers to, ...), as a real one would.
PROVIDED_LABEL = "llmstack.local/provided-by-cluster"
#: Label of the simulated GPU nodes: the stack they were shaped for.
GPU_NODE_LABEL = "llmstack.local/gpu-nodes-for"


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", *args], input=stdin,
                          capture_output=True, text=True, check=check)


def apply(objects: list[dict]) -> None:
    if objects:
        out = kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=local-cluster", "-f", "-",
                      stdin=yaml.safe_dump_all(objects), check=False)
        if out.returncode != 0:
            raise SystemExit(f"local-cluster: kubectl apply failed: {out.stderr.strip()}")


def _kwok_module() -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    import toolchain  # noqa: PLC0415 (scripts/ is no package)

    return Path(toolchain._download("sigs.k8s.io/kwok", f"v{toolchain.V.KWOK_VERSION}")["Dir"])


def _stages() -> list[dict]:
    """kwok's own fast node, pod and volume stages; every claim here is kwok's to provision, whatever its
    class (the stacks name their cluster's classes; ``prepare`` creates them with kwok as provisioner)."""
    stage = _kwok_module() / "kustomize" / "stage"
    files = [stage / "node" / "fast" / "node-initialize.yaml",
             stage / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
             *sorted((stage / "pod" / "fast").glob("pod-*.yaml")),
             *[stage / "volume" / "fast" / f"{n}.yaml" for n in ("pvc-provision", "pv-bind", "pv-delete", "pvc-delete")]]
    docs = []
    for path in files:
        text = path.read_text().replace("self.spec.storageClassName == 'kwok-volume'", "true")
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


#: Custom resources whose controller cannot run here (its operator would run in a container) but whose
#: readiness the stack awaits (``pulumi.com/waitFor``): a kwok stage reports them ready the way their
#: controller would once done (the conditions the await reads, at the object's generation). What this
#: proves and what it does not: docs/local-cluster.md.
SIMULATED_CONTROLLERS = {
    # (apiVersion, kind): conditions set True
    ("operator.knative.dev/v1beta1", "KnativeServing"): ["Ready", "DependenciesInstalled", "DeploymentsAvailable",
                                                         "InstallSucceeded", "VersionMigrationEligible"],
    ("serving.knative.dev/v1", "Service"): ["Ready", "ConfigurationsReady", "RoutesReady"],
    # The LWS controller's module is not served by the Go module proxy (403), so it cannot run here either.
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): ["Available"],
}


#: Reason and message of a simulated condition (metav1.Condition requires both), so nobody mistakes it.
SIMULATED_REASON = "SimulatedByKwok"
SIMULATED_MESSAGE = "no controller runs on the local cluster; a kwok stage reports this ready"


def simulated_controller_stages() -> list[dict]:
    stages = []
    for (api_version, kind), conditions in SIMULATED_CONTROLLERS.items():
        condition_yaml = "".join(
            f"- type: {c}\n  status: \"True\"\n  reason: {SIMULATED_REASON}\n  message: {SIMULATED_MESSAGE}\n"
            f"  lastTransitionTime: {{{{ Now | Quote }}}}\n" for c in conditions)
        stages.append({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": f"simulated-{kind.lower()}-{api_version.split('/')[0].replace('.', '-')}-ready"},
            "spec": {
                "resourceRef": {"apiGroup": api_version, "kind": kind},
                "selector": {"matchExpressions": [
                    {"cel": {"expression": "!has(self.metadata.deletionTimestamp)"}},
                    {"cel": {"expression": "!has(self.status) || !has(self.status.observedGeneration)"
                                           " || self.status.observedGeneration != self.metadata.generation"}},
                ]},
                "steps": [{"patch": {"root": "status", "subresource": "status", "template":
                                     "observedGeneration: {{ .metadata.generation }}\nconditions:\n" + condition_yaml}}],
            },
        })
    return stages


def _config() -> str:
    tools = {
        "kubeApiserverBinary": "kube-apiserver", "kubeControllerManagerBinary": "kube-controller-manager",
        "kubeSchedulerBinary": "kube-scheduler", "kubectlBinary": "kubectl", "etcdBinary": "etcd",
        "kwokControllerBinary": "kwok",
    }
    options = {
        "runtime": "binary",
        "bindAddress": "127.0.0.1",
        "kubeAdmission": True,
        "kubeAuthorization": True,
        "securePort": True,
        # Stages are objects in the cluster (kwok.x-k8s.io Stage), so stages for a kind whose CRD arrives
        # later (a stack's) can be added while kwok runs.
        "enableCRDs": ["Stage"],
        "kubeVersion": _kube_version(),
        **{key: str((BIN / name).resolve()) for key, name in tools.items()},
    }
    patches = [
        {"name": "kube-apiserver", "extraArgs": [
            {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
            {"key": "disable-admission-plugins", "value": DISABLED_ADMISSION},
        ]},
        {"name": "kube-controller-manager", "extraArgs": [
            {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
        ]},
    ]
    kwok = {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration",
            # kwokctl passes this file on without kwok's defaulting: the parallelism options are kwok's defaults.
            "options": {"cidr": POD_CIDR, "podPlayStageParallelism": 4, "nodePlayStageParallelism": 4,
                        "nodeLeaseParallelism": 4, "podsOnNodeSyncParallelism": 1}}
    docs = [{"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration",
             "options": options, "componentsPatches": patches}, kwok]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _kube_version() -> str:
    out = subprocess.run([str(BIN / "kube-apiserver"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def _kwokctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KWOK_WORKDIR": str(WORKDIR)}
    return subprocess.run([str(BIN / "kwokctl"), f"--name={NAME}", *args], env=env, text=True,
                          capture_output=True, check=check)


def running() -> bool:
    if not KUBECONFIG.exists() or not (BIN / "kubectl").exists():
        return False
    return kubectl("get", "--raw=/readyz", check=False).returncode == 0


def start(fresh: bool = False) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "toolchain.py")], check=True)
    if running() and not fresh:
        return
    _kwokctl("delete", "cluster", check=False)
    STATE.mkdir(exist_ok=True)
    config = STATE / "kwokctl.yaml"
    config.write_text(_config())
    started = time.monotonic()
    out = _kwokctl("create", "cluster", f"--config={config}", f"--kubeconfig={KUBECONFIG}",
                   "--wait=120s", check=False)
    if out.returncode != 0:
        raise SystemExit(f"local-cluster: kwokctl create cluster failed:\n{out.stdout}\n{out.stderr}")
    apply(_stages())
    print(f"local-cluster: control plane ready in {time.monotonic() - started:.0f} s", flush=True)


def stop() -> None:
    if (BIN / "kwokctl").exists():
        _kwokctl("delete", "cluster", check=False)
    if KUBECONFIG.exists():
        KUBECONFIG.unlink()


# --- what the stacks need from the cluster ------------------------------------------------------


_RENDER = """
import json, sys
from pathlib import Path
from stacks.tools import charts
from stacks.tools.render import render
rendered = render(sys.argv[1], Path(sys.argv[2]))
groups = set(json.loads(sys.argv[3]))
releases = charts.expand(rendered).releases
crds = [o for r in releases for o in r.crds + r.objects if o["kind"] == "CustomResourceDefinition"]
print(json.dumps({"objects": rendered.objects, "releases": rendered.helm_releases,
                  "crd_folder_groups": sorted({o["spec"]["group"] for r in releases for o in r.crds}),
                  "chart_kinds": sorted({(o["spec"]["group"], o["spec"]["names"]["kind"]) for o in crds}),
                  "chart_crds": [o for o in crds if o["spec"]["group"] in groups]}, default=str))
"""


def render(stack: str, root: Path = ROOT) -> dict:
    """The stack's objects and Helm releases, rendered offline from ``root/Pulumi.<stack>.yaml`` (a
    subprocess: the SDK's mocks stay out of this process), and the CRDs its charts install for kinds
    whose controller is simulated here (``chart_crds``, with Helm's ownership metadata)."""
    groups = json.dumps(sorted({api.split("/")[0] for api, _ in SIMULATED_CONTROLLERS}))
    out = subprocess.run([sys.executable, "-c", _RENDER, stack, str(root), groups], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"local-cluster: rendering {stack} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def _pod_templates(obj: dict) -> list[tuple[dict, int]]:
    """(pod spec, pods) of a workload: a Deployment's replicas, an LWS group's leader and workers."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet"):
        return [(spec["template"]["spec"], spec.get("replicas", 1))]
    if kind == "LeaderWorkerSet":
        lw = spec["leaderWorkerTemplate"]
        groups, size = spec.get("replicas", 1), lw.get("size", 1)
        leader = (lw.get("leaderTemplate") or lw["workerTemplate"])["spec"]
        return [(leader, groups), (lw["workerTemplate"]["spec"], groups * (size - 1))]
    if kind == "Service" and obj.get("apiVersion", "").startswith("serving.knative.dev"):
        return [(spec["template"]["spec"], 1)]
    return []


def gpu_nodes(stack: str, rendered: dict, root: Path = ROOT, spare_nodes: int = 0) -> list[dict]:
    """GPU nodes for the stack: labels, taints and GPU resources its GPU pods ask for; as many as its
    GPU pods need (``spare_nodes`` more)."""
    per_node, sharing = _pool(stack, root)
    shapes: dict[str, dict] = {}
    for obj in rendered["objects"]:
        for pod, count in _pod_templates(obj):
            for container in pod.get("containers", []):
                limits = (container.get("resources") or {}).get("limits") or {}
                gpu = [k for k in limits if k.startswith("nvidia.com/")]
                if not gpu:
                    continue
                key = json.dumps([pod.get("nodeSelector") or {}, gpu[0]], sort_keys=True)
                shape = shapes.setdefault(key, {"selector": pod.get("nodeSelector") or {}, "resource": gpu[0],
                                                "tolerations": pod.get("tolerations") or [], "gpus": 0.0})
                shape["gpus"] += count * float(limits[gpu[0]])
    nodes = []
    for i, shape in enumerate(shapes.values()):
        capacity = per_node * sharing
        count = max(1, math.ceil(shape["gpus"] / capacity)) + spare_nodes
        taints = [{"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]}
                  for t in shape["tolerations"] if t.get("effect") and t.get("key")
                  and not t["key"].startswith("node.kubernetes.io/")]
        for n in range(count):
            nodes.append(_node(f"{stack}-gpu-{i}-{n}", {**shape["selector"], GPU_NODE_LABEL: stack},
                               {**GPU_NODE, shape["resource"]: str(int(capacity))}, taints))
    return nodes


def _pool(stack: str, root: Path = ROOT) -> tuple[int, int]:
    config = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())["config"]
    pool = next(v for k, v in config.items() if k.endswith(":gpuPool"))
    sharing = pool.get("sharing") or {}
    return int(pool["gpu"].get("perNode", 1)), int(sharing.get("replicas", 1) if sharing.get("strategy") else 1)


def _node(name: str, labels: dict, capacity: dict, taints: list) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent", "type": "kwok",
                                "topology.kubernetes.io/zone": "local-a", **labels}},
        "spec": {"taints": taints} if taints else {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def cpu_nodes() -> list[dict]:
    return [_node(f"cpu-{n}", {}, CPU_NODE, []) for n in range(CPU_NODES)]


def cluster_crds(rendered: dict) -> list[dict]:
    """CRDs for kinds the stack uses that neither it nor its charts install (the cluster's, or an operator's)."""
    used = {(o["apiVersion"].split("/")[0], o["kind"]) for o in rendered["objects"] if "/" in o.get("apiVersion", "")}
    own = {(o["spec"]["group"], o["spec"]["names"]["kind"]) for o in rendered["objects"]
           if o.get("kind") == "CustomResourceDefinition"}
    from_charts = {tuple(k) for k in rendered["chart_kinds"]}
    crds = []
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        key = (crd["spec"]["group"], crd["spec"]["names"]["kind"])
        if key in used and key not in own and key not in from_charts:
            crd["metadata"].setdefault("labels", {})[PROVIDED_LABEL] = "true"
            crds.append(crd)
    return crds


def cluster_namespaces(rendered: dict) -> list[dict]:
    """Namespaces the stack puts objects into but does not create: the cluster's own (the Gateway's, for
    instance, where the stack adds its body-based router)."""
    created = {o["metadata"]["name"] for o in rendered["objects"] if o["kind"] == "Namespace"}
    used = {(o.get("metadata") or {}).get("namespace") for o in rendered["objects"]} - {None, ""}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {PROVIDED_LABEL: "true"}}}
            for n in sorted(used - created)]


def storage_classes(rendered: dict) -> list[str]:
    return sorted({o["spec"]["storageClassName"] for o in rendered["objects"]
                   if o.get("kind") == "PersistentVolumeClaim" and (o.get("spec") or {}).get("storageClassName")})


def prepare(stack: str, root: Path = ROOT, spare_nodes: int = 0) -> dict:
    """Give the running cluster what ``root/Pulumi.<stack>.yaml`` needs: its GPU nodes, the CRDs of kinds it
    uses that neither it nor its charts install, the storage classes it names. Returns its offline render."""
    rendered = render(stack, root)
    apply(gpu_nodes(stack, rendered, root, spare_nodes) + cluster_namespaces(rendered))
    # The CRDs of a chart whose controller is simulated exist before the chart, as the chart renders them and
    # with its release's ownership metadata, so Helm adopts them and kwok can watch the kind from the start.
    crds = cluster_crds(rendered) + rendered["chart_crds"]
    apply(crds)
    apply([{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": c},
            "provisioner": "kwok.x-k8s.io/volume", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}
           for c in storage_classes(rendered)])
    if crds:
        kubectl("wait", "--for=condition=Established", "--timeout=60s",
                *[f"crd/{c['metadata']['name']}" for c in crds])
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds}
    _wait_openapi({f"{c['spec']['group']}/{v['name']}" for c in crds for v in c["spec"]["versions"] if v.get("served")})
    apply([s for s in simulated_controller_stages()
           if (s["spec"]["resourceRef"]["apiGroup"].split("/")[0], s["spec"]["resourceRef"]["kind"]) in served])
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", "node", "--all")
    return rendered


def _wait_openapi(group_versions: set[str], timeout: float = 60) -> None:
    """kwok reads a kind's schema from the OpenAPI v3 document, published a moment after a CRD is
    Established; a stage for a kind not yet there fails until the next change of stages."""
    deadline = time.monotonic() + timeout
    while group_versions:
        paths = json.loads(kubectl("get", "--raw", "/openapi/v3").stdout)["paths"]
        group_versions = {gv for gv in group_versions if f"apis/{gv}" not in paths}
        if group_versions and time.monotonic() > deadline:
            raise SystemExit(f"local-cluster: no OpenAPI for {sorted(group_versions)} after {timeout:.0f} s")
        time.sleep(0.5 if group_versions else 0)


def release_gpu_nodes(stack: str) -> None:
    kubectl("delete", "node", "-l", f"{GPU_NODE_LABEL}={stack}", "--wait=true", check=False)


def provide(stacks: list[str], root: Path = ROOT, fresh: bool = False) -> dict:
    """Start the control plane (or reuse it; ``fresh``: a new one) with its CPU nodes, then ``prepare`` it
    for each stack."""
    start(fresh)
    apply(cpu_nodes() + [DEFAULT_STORAGE_CLASS])
    return {s: prepare(s, root) for s in stacks}


def stack_file(stack: str, edit=None, root: Path = ROOT) -> str:
    """``Pulumi.<stack>.yaml`` made for this cluster, as a user would for an air-gapped one: charts from the
    packaged fixtures (``llmstack:charts.directory``: no network here), the local kubeconfig context where
    the file names one. ``edit`` may change the parsed config further (a variant)."""
    doc = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    config = doc["config"]
    config["llmstack:charts"] = {"directory": str(CHARTS)}
    if "kubernetes:context" in config:
        config["kubernetes:context"] = CONTEXT
    if edit is not None:
        edit(config)
    return yaml.safe_dump(doc, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane (or reuse the running one) and shape it for stacks")
    up.add_argument("--stack", action="append", help="stack file to shape nodes and CRDs for (default: dev)")
    sub.add_parser("down", help="stop the control plane and delete its state")
    sub.add_parser("status", help="say whether it runs, and list its nodes")
    args = parser.parse_args(argv)
    if args.command == "up":
        provide(args.stack or ["dev"])
        print(f"local-cluster: up. export KUBECONFIG={KUBECONFIG}; {BIN / 'kubectl'} get nodes")
    elif args.command == "down":
        stop()
        print("local-cluster: down")
    else:
        if not running():
            print("local-cluster: not running")
            return 1
        print(kubectl("get", "nodes", "-o", "wide").stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
