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

A cluster of your own instead (kind, k3d, a real one): ``LLMSTACK_KUBECONFIG=<file>`` and optionally
``LLMSTACK_KUBE_CONTEXT=<context>`` (default: the file's current context). Then nothing is started or
stopped but a kwok controller process that plays the simulated GPU nodes (``LLMSTACK_SIMULATED_GPU_NODES=0``
adds none, for a cluster with GPUs of its own); no CPU nodes, no simulated operators; of what a stack needs
from the cluster only what it lacks is created, and nothing that is there is changed. ``down`` removes the
simulated nodes and stops kwok; the cluster keeps running.
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
#: A cluster of the user's (its kubeconfig) instead of the local control plane.
EXTERNAL = os.environ.get("LLMSTACK_KUBECONFIG", "")
KUBECONFIG = (
    Path(EXTERNAL).expanduser().resolve()
    if EXTERNAL
    else STATE / ("kubeconfig" if NAME == "llmstack" else f"kubeconfig-{NAME}")
)


def _current_context(kubeconfig: Path) -> str:
    try:
        return (yaml.safe_load(kubeconfig.read_text()) or {}).get("current-context") or ""
    except OSError:
        return ""


#: kwokctl names the kubeconfig context after the cluster; a user's cluster: theirs.
CONTEXT = (os.environ.get("LLMSTACK_KUBE_CONTEXT") or _current_context(KUBECONFIG)) if EXTERNAL else f"kwok-{NAME}"
#: Whether a user's cluster gets simulated GPU nodes (the local control plane always does).
SIMULATED_GPU_NODES = not EXTERNAL or os.environ.get("LLMSTACK_SIMULATED_GPU_NODES", "1") != "0"
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
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kwok.x-k8s.io/volume",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}
#: Label of what the cluster provides to a stack (namespaces it refers to, ...), as a real one would.
PROVIDED_LABEL = "llmstack.local/provided-by-cluster"
#: Label of the simulated GPU nodes: the stack they were shaped for.
GPU_NODE_LABEL = "llmstack.local/gpu-nodes-for"


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "kubectl"), f"--kubeconfig={KUBECONFIG}", f"--context={CONTEXT}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
    )


def apply(objects: list[dict]) -> None:
    if objects:
        out = kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=local-cluster",
            "-f",
            "-",
            stdin=yaml.safe_dump_all(objects),
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"local-cluster: kubectl apply failed: {out.stderr.strip()}")


def create_missing(objects: list[dict]) -> list[dict]:
    """Create those of ``objects`` the cluster lacks; what is there (a user's CRDs, classes) stays as it is.
    Returns the ones created."""
    created = []
    for obj in objects:
        out = kubectl("create", "-f", "-", stdin=yaml.safe_dump(obj), check=False)
        if out.returncode == 0:
            created.append(obj)
        elif "AlreadyExists" not in out.stderr:
            raise SystemExit(f"local-cluster: kubectl create failed: {out.stderr.strip()}")
    return created


def _kwok_module() -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    import toolchain

    return Path(toolchain._download("sigs.k8s.io/kwok", f"v{toolchain.V.KWOK_VERSION}")["Dir"])


def _stages(volume_classes: list[str] | None = None) -> list[dict]:
    """kwok's own fast node, pod and volume stages. On the local control plane every claim is kwok's to
    provision, whatever its class (the stacks name their cluster's classes; ``prepare`` creates them with
    kwok as provisioner); on a user's cluster only claims of ``volume_classes``, the classes made for it."""
    stage = _kwok_module() / "kustomize" / "stage"
    files = [
        stage / "node" / "fast" / "node-initialize.yaml",
        stage / "node" / "heartbeat-with-lease" / "node-heartbeat-with-lease.yaml",
        *sorted((stage / "pod" / "fast").glob("pod-*.yaml")),
    ]
    if volume_classes is None or volume_classes:
        files += [
            stage / "volume" / "fast" / f"{n}.yaml" for n in ("pvc-provision", "pv-bind", "pv-delete", "pvc-delete")
        ]
    claims = "true" if volume_classes is None else f"self.spec.storageClassName in {json.dumps(volume_classes)}"
    docs = []
    for path in files:
        text = path.read_text().replace("self.spec.storageClassName == 'kwok-volume'", claims)
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


#: Custom resources whose controller cannot run here (its operator would run in a container) but whose
#: readiness the stack awaits (``pulumi.com/waitFor``): a kwok stage reports them ready the way their
#: controller would once done (the conditions the await reads, at the object's generation). What this
#: proves and what it does not: docs/local-cluster.md.
SIMULATED_CONTROLLERS = {
    # (apiVersion, kind): conditions set True
    ("operator.knative.dev/v1beta1", "KnativeServing"): [
        "Ready",
        "DependenciesInstalled",
        "DeploymentsAvailable",
        "InstallSucceeded",
        "VersionMigrationEligible",
    ],
    ("serving.knative.dev/v1", "Service"): ["Ready", "ConfigurationsReady", "RoutesReady"],
    # The LWS controller's module is not served by the Go module proxy (403), so it cannot run here either.
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): ["Available"],
}


#: Operators that run here for real, as processes against the API server (built by scripts/toolchain.py),
#: where a stack installs their chart: chart -> the CRD groups of that chart. As for simulated controllers,
#: the chart's CRDs exist before the chart, so the operator runs before ``pulumi up`` creates its objects.
LOCAL_OPERATORS = {"keda": ("keda.sh", "eventing.keda.sh")}


#: Reason and message of a simulated condition (metav1.Condition requires both), so nobody mistakes it.
SIMULATED_REASON = "SimulatedByKwok"
SIMULATED_MESSAGE = "no controller runs on the local cluster; a kwok stage reports this ready"


def simulated_controller_stages() -> list[dict]:
    stages = []
    for (api_version, kind), conditions in SIMULATED_CONTROLLERS.items():
        condition_yaml = "".join(
            f'- type: {c}\n  status: "True"\n  reason: {SIMULATED_REASON}\n  message: {SIMULATED_MESSAGE}\n'
            f"  lastTransitionTime: {{{{ Now | Quote }}}}\n"
            for c in conditions
        )
        stages.append(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Stage",
                "metadata": {"name": f"simulated-{kind.lower()}-{api_version.split('/')[0].replace('.', '-')}-ready"},
                "spec": {
                    "resourceRef": {"apiGroup": api_version, "kind": kind},
                    "selector": {
                        "matchExpressions": [
                            {"cel": {"expression": "!has(self.metadata.deletionTimestamp)"}},
                            {
                                "cel": {
                                    "expression": (
                                        "!has(self.status) || !has(self.status.observedGeneration)"
                                        " || self.status.observedGeneration != self.metadata.generation"
                                    )
                                }
                            },
                        ]
                    },
                    "steps": [
                        {
                            "patch": {
                                "root": "status",
                                "subresource": "status",
                                "template": "observedGeneration: {{ .metadata.generation }}\nconditions:\n"
                                + condition_yaml,
                            }
                        }
                    ],
                },
            }
        )
    return stages


def _config() -> str:
    tools = {
        "kubeApiserverBinary": "kube-apiserver",
        "kubeControllerManagerBinary": "kube-controller-manager",
        "kubeSchedulerBinary": "kube-scheduler",
        "kubectlBinary": "kubectl",
        "etcdBinary": "etcd",
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
        {
            "name": "kube-apiserver",
            "extraArgs": [
                {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
                {"key": "disable-admission-plugins", "value": DISABLED_ADMISSION},
            ],
        },
        {
            "name": "kube-controller-manager",
            "extraArgs": [
                {"key": "service-cluster-ip-range", "value": SERVICE_CIDR},
            ],
        },
    ]
    docs = [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": options,
            "componentsPatches": patches,
        },
        _kwok_configuration(),
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def _kwok_configuration() -> dict:
    # kwokctl passes this file on without kwok's defaulting: the parallelism options are kwok's defaults.
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "cidr": POD_CIDR,
            "podPlayStageParallelism": 4,
            "nodePlayStageParallelism": 4,
            "nodeLeaseParallelism": 4,
            "podsOnNodeSyncParallelism": 1,
        },
    }


def _kube_version() -> str:
    out = subprocess.run([str(BIN / "kube-apiserver"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[-1]


def _kwokctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KWOK_WORKDIR": str(WORKDIR)}
    return subprocess.run(
        [str(BIN / "kwokctl"), f"--name={NAME}", *args], env=env, text=True, capture_output=True, check=check
    )


def running() -> bool:
    if not KUBECONFIG.exists() or not (BIN / "kubectl").exists():
        return False
    return kubectl("get", "--raw=/readyz", check=False).returncode == 0


def start(fresh: bool = False) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "toolchain.py")], check=True)
    if EXTERNAL:
        _attach()
        return
    if running() and not fresh:
        return
    stop_operators()
    _kwokctl("delete", "cluster", check=False)
    STATE.mkdir(exist_ok=True)
    config = STATE / "kwokctl.yaml"
    config.write_text(_config())
    started = time.monotonic()
    out = _kwokctl("create", "cluster", f"--config={config}", f"--kubeconfig={KUBECONFIG}", "--wait=120s", check=False)
    if out.returncode != 0:
        raise SystemExit(f"local-cluster: kwokctl create cluster failed:\n{out.stdout}\n{out.stderr}")
    apply(_stages())
    print(f"local-cluster: control plane ready in {time.monotonic() - started:.0f} s", flush=True)


def stop() -> None:
    if EXTERNAL:
        _detach()
        return
    stop_operators()
    if (BIN / "kwokctl").exists():
        _kwokctl("delete", "cluster", check=False)
    if KUBECONFIG.exists():
        KUBECONFIG.unlink()


# --- a user's cluster -----------------------------------------------------------------------------


def _attach() -> None:
    """Use the user's cluster as it is; run a kwok controller for the simulated GPU nodes (those annotated
    ``kwok.x-k8s.io/node: fake``: no other node or pod of the cluster is kwok's)."""
    if not CONTEXT or not running():
        raise SystemExit(
            f"local-cluster: LLMSTACK_KUBECONFIG={KUBECONFIG}: context {CONTEXT or '(none)'} does "
            "not answer (set LLMSTACK_KUBE_CONTEXT to pick another)"
        )
    if not SIMULATED_GPU_NODES:
        return
    stage_crd = _kwok_module() / "kustomize" / "crd" / "bases" / "kwok.x-k8s.io_stages.yaml"
    create_missing([yaml.safe_load(stage_crd.read_text())])
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/stages.kwok.x-k8s.io")
    _wait_openapi({"kwok.x-k8s.io/v1alpha1"})
    if not _running("kwok"):
        _start_kwok()
    apply(_stages(volume_classes=[]))


def _process(name: str) -> Path:
    """Pid file of a process the harness runs beside the cluster (kwok for a user's cluster, operators)."""
    return STATE / f"{name}-{NAME}.pid"


def _running(name: str) -> bool:
    try:
        pid = int(_process(name).read_text())
        os.kill(pid, 0)
        if not Path("/proc").is_dir():
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        if str(BIN) not in Path(f"/proc/{pid}/cmdline").read_text():
            return False  # a pid of an earlier boot, now another program's
    except (OSError, ValueError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # an exited process its new parent has not reaped yet


def _spawn(name: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """Start a process that outlives this one (``make demo`` leaves the cluster running); its log beside it."""
    STATE.mkdir(exist_ok=True)
    with open(STATE / f"{name}-{NAME}.log", "ab") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    _process(name).write_text(str(process.pid))


def _terminate(name: str) -> None:
    if _running(name):
        os.kill(int(_process(name).read_text()), 15)
        deadline = time.monotonic() + 30
        while _running(name) and time.monotonic() < deadline:
            time.sleep(0.2)
    _process(name).unlink(missing_ok=True)


def _start_kwok() -> None:
    # kwok takes no --context: it gets a kubeconfig of the one context.
    STATE.mkdir(exist_ok=True)
    kubeconfig = STATE / f"kwok-{NAME}.kubeconfig"
    kubeconfig.touch(mode=0o600)
    kubeconfig.write_text(kubectl("config", "view", "--minify", "--flatten").stdout)
    config = STATE / f"kwok-{NAME}.yaml"
    config.write_text(yaml.safe_dump(_kwok_configuration()))
    _spawn(
        "kwok",
        [
            str(BIN / "kwok"),
            f"--kubeconfig={kubeconfig}",
            f"--config={config}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--enable-crds=Stage",
        ],
    )


def _detach() -> None:
    """Take back what the harness added to the user's cluster: its simulated nodes, kwok and its stages.
    What it created for the stacks (namespaces, CRDs, storage classes, labelled ``PROVIDED_LABEL``) stays:
    a stack's objects may still use them; ``kubectl delete ... -l llmstack.local/provided-by-cluster``."""
    kubectl("delete", "node", "-l", GPU_NODE_LABEL, "--wait=true", check=False)
    _terminate("kwok")
    names = [s["metadata"]["name"] for s in _stages()]
    kubectl("delete", "stages.kwok.x-k8s.io", "--ignore-not-found", *names, check=False)


# --- what the stacks need from the cluster ------------------------------------------------------


#: Runs in the program's own tree (an upgrade test renders a previous release): its stacks/ and its
#: components/ as llmstack_k8s, with its renderer wherever that tree keeps it.
_RENDER = """
import importlib.util, json, sys
from pathlib import Path
root = Path(sys.argv[2])
sys.path.insert(0, str(root))
lib = root / "components"
spec = importlib.util.spec_from_file_location(
    "llmstack_k8s", lib / "__init__.py", submodule_search_locations=[str(lib)]
)
sys.modules["llmstack_k8s"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["llmstack_k8s"])
try:
    from stacks.tools import charts
    from stacks.tools.render import render
except ImportError:  # a tree from before the developer tools had their own folder
    from stacks import charts
    from stacks.render import render
rendered = render(sys.argv[1], root)
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
    groups = {api.split("/")[0] for api, _ in SIMULATED_CONTROLLERS}
    groups = json.dumps(sorted(groups.union(*LOCAL_OPERATORS.values())))
    out = subprocess.run(
        [sys.executable, "-c", _RENDER, stack, str(root), groups], cwd=root, capture_output=True, text=True
    )
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
                shape = shapes.setdefault(
                    key,
                    {
                        "selector": pod.get("nodeSelector") or {},
                        "resource": gpu[0],
                        "tolerations": pod.get("tolerations") or [],
                        "gpus": 0.0,
                    },
                )
                shape["gpus"] += count * float(limits[gpu[0]])
    nodes = []
    for i, shape in enumerate(shapes.values()):
        capacity = per_node * sharing
        count = max(1, math.ceil(shape["gpus"] / capacity)) + spare_nodes
        taints = [
            {"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]}
            for t in shape["tolerations"]
            if t.get("effect") and t.get("key") and not t["key"].startswith("node.kubernetes.io/")
        ]
        for n in range(count):
            nodes.append(
                _node(
                    f"{stack}-gpu-{i}-{n}",
                    {**shape["selector"], GPU_NODE_LABEL: stack},
                    {**GPU_NODE, shape["resource"]: str(int(capacity))},
                    taints,
                )
            )
    return nodes


def _pool(stack: str, root: Path = ROOT) -> tuple[int, int]:
    config = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())["config"]
    pool = next(v for k, v in config.items() if k.endswith(":gpuPool"))
    sharing = pool.get("sharing") or {}
    return int(pool["gpu"].get("perNode", 1)), int(sharing.get("replicas", 1) if sharing.get("strategy") else 1)


def _node(name: str, labels: dict, capacity: dict, taints: list) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
                "topology.kubernetes.io/zone": "local-a",
                **labels,
            },
        },
        "spec": {"taints": taints} if taints else {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def cpu_nodes() -> list[dict]:
    return [_node(f"cpu-{n}", {}, CPU_NODE, []) for n in range(CPU_NODES)]


def cluster_crds(rendered: dict) -> list[dict]:
    """CRDs for kinds the stack uses that neither it nor its charts install (the cluster's, or an operator's)."""
    used = {(o["apiVersion"].split("/")[0], o["kind"]) for o in rendered["objects"] if "/" in o.get("apiVersion", "")}
    own = {
        (o["spec"]["group"], o["spec"]["names"]["kind"])
        for o in rendered["objects"]
        if o.get("kind") == "CustomResourceDefinition"
    }
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
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {PROVIDED_LABEL: "true"}}}
        for n in sorted(used - created)
    ]


def storage_classes(rendered: dict) -> list[str]:
    return sorted(
        {
            o["spec"]["storageClassName"]
            for o in rendered["objects"]
            if o.get("kind") == "PersistentVolumeClaim" and (o.get("spec") or {}).get("storageClassName")
        }
    )


def _storage_class(name: str) -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": "kwok.x-k8s.io/volume",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def prepare(stack: str, root: Path = ROOT, spare_nodes: int = 0) -> dict:
    """Give the running cluster what ``root/Pulumi.<stack>.yaml`` needs: its GPU nodes, the CRDs of kinds it
    uses that neither it nor its charts install, the storage classes it names. Returns its offline render."""
    rendered = render(stack, root)
    if EXTERNAL:
        _prepare_external(stack, rendered, root, spare_nodes)
        return rendered
    apply(gpu_nodes(stack, rendered, root, spare_nodes) + cluster_namespaces(rendered))
    # The CRDs of a chart whose controller is simulated exist before the chart, as the chart renders them and
    # with its release's ownership metadata, so Helm adopts them and kwok can watch the kind from the start.
    crds = cluster_crds(rendered) + rendered["chart_crds"]
    apply(crds)
    apply([_storage_class(c) for c in storage_classes(rendered)])
    if crds:
        kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{c['metadata']['name']}" for c in crds])
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds}
    _wait_openapi({f"{c['spec']['group']}/{v['name']}" for c in crds for v in c["spec"]["versions"] if v.get("served")})
    apply(
        [
            s
            for s in simulated_controller_stages()
            if (s["spec"]["resourceRef"]["apiGroup"].split("/")[0], s["spec"]["resourceRef"]["kind"]) in served
        ]
    )
    kubectl("wait", "--for=condition=Ready", "--timeout=60s", "node", "--all")
    start_operators(rendered)
    return rendered


# --- operators that run for real ---------------------------------------------------------------


def _release(rendered: dict, chart: str) -> dict | None:
    """The stack's Helm release of ``chart`` (a pin's name, a mirror's ``.../<chart>`` or a package
    ``<chart>-<version>.tgz``)."""
    for release in rendered["releases"]:
        base = str(release.get("chart", "")).rstrip("/").rsplit("/", 1)[-1]
        if base == chart or (base.startswith(f"{chart}-") and base.endswith(".tgz") and base[len(chart) + 1].isdigit()):
            return release
    return None


def start_operators(rendered: dict) -> None:
    """Run the operator of each chart in ``LOCAL_OPERATORS`` the stack installs (once per cluster)."""
    release = _release(rendered, "keda")
    if release is not None and not _running("keda"):
        _start_keda(release.get("namespace") or "keda")


def _start_keda(namespace: str) -> None:
    """KEDA's operator, as its chart runs it but outside the cluster: no leader election, no metrics or
    probe ports, no patching of webhook or APIService certificates (nothing here serves them); its gRPC
    metrics service on a free loopback port with a self-signed certificate."""
    certs = STATE / f"keda-{NAME}-certs"
    if not (certs / "tls.key").exists():
        certs.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "3650",
                "-subj",
                "/CN=keda-operator",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(certs / "tls.key"),
                "-out",
                str(certs / "tls.crt"),
            ],
            check=True,
            capture_output=True,
        )
        (certs / "ca.crt").write_bytes((certs / "tls.crt").read_bytes())
    env = {
        "KUBECONFIG": str(KUBECONFIG),
        "WATCH_NAMESPACE": "",
        "POD_NAMESPACE": namespace,
        "KEDA_CLUSTER_OBJECT_NAMESPACE": namespace,
    }
    _spawn(
        "keda",
        [
            str(BIN / "keda-operator"),
            "--leader-elect=false",
            "--metrics-bind-address=0",
            "--health-probe-bind-address=0",
            "--metrics-service-bind-address=127.0.0.1:0",
            "--enable-prometheus-metrics=false",
            "--enable-webhook-patching=false",
            "--enable-apiservice-patching=false",
            "--enable-cert-rotation=false",
            f"--cert-dir={certs}",
            "--zap-log-level=info",
        ],
        env,
    )


def stop_operators() -> None:
    for name in LOCAL_OPERATORS:
        _terminate(name)


def _prepare_external(stack: str, rendered: dict, root: Path, spare_nodes: int) -> None:
    """A user's cluster gets only what it lacks; its operators are real (nothing is simulated but GPU nodes),
    and kwok provisions only claims of the storage classes made here."""
    create_missing(cluster_namespaces(rendered))
    crds = create_missing(cluster_crds(rendered))
    if crds:
        kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{c['metadata']['name']}" for c in crds])
    classes = [c["metadata"]["name"] for c in create_missing([_storage_class(c) for c in storage_classes(rendered)])]
    mine = json.loads(kubectl("get", "storageclass", "-o", "json").stdout)["items"]
    classes += [c["metadata"]["name"] for c in mine if c.get("provisioner") == "kwok.x-k8s.io/volume"]
    if SIMULATED_GPU_NODES:
        apply(_stages(volume_classes=sorted(set(classes))))
        apply(gpu_nodes(stack, rendered, root, spare_nodes))
        kubectl("wait", "--for=condition=Ready", "--timeout=60s", "node", "-l", f"{GPU_NODE_LABEL}={stack}")


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
    if not EXTERNAL:
        apply([*cpu_nodes(), DEFAULT_STORAGE_CLASS])
    return {s: prepare(s, root) for s in stacks}


def stack_file(stack: str, edit=None, root: Path = ROOT) -> str:
    """``Pulumi.<stack>.yaml`` made for this cluster, as a user would for an air-gapped one: charts from the
    packaged fixtures (``llmstack:charts.directory``: no network here), the local kubeconfig context where
    the file names one (a user's cluster: its context, always). ``edit`` may change the parsed
    config further (a variant)."""
    doc = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text())
    config = doc["config"]
    config["llmstack:charts"] = {"directory": str(CHARTS)}
    if "kubernetes:context" in config or EXTERNAL:
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
