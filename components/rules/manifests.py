"""Reading one manifest: names, pod templates, containers, selectors, vLLM flags.

A manifest is a plain dict as ``kubectl get -o yaml`` shows it; a Helm release is a ``kind:
Release`` manifest (the shape ``llmstack_k8s.testing.to_manifest`` gives a Release registration)
with its name and namespace at the top level. Values a preview cannot know yet arrive as
:data:`UNKNOWN`; a rule never reports on a value it cannot see.
"""

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

#: Stands for a value that is unknown during a preview (an Output not resolved yet).
UNKNOWN = "<unknown until apply>"

#: pulumi-kubernetes types that install a Helm chart (inputs ``chart`` and ``version``).
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v3:Chart", "kubernetes:helm.sh/v4:Chart")

# Where each workload kind keeps its pod template (labels, spec).
_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_KNATIVE_GROUP = "serving.knative.dev/"
_VLLM_ENTRYPOINTS = ("vllm.entrypoints.openai.api_server", "vllm.entrypoints.api_server")
#: vLLM's CLI module (``python -m vllm.entrypoints.cli.main serve`` is ``vllm serve``).
_VLLM_CLI = "vllm.entrypoints.cli.main"
#: A LeaderWorkerSet (leaderworkerset.x-k8s.io) runs a group of pods per replica: a leader template
#: and a worker template, each in StatefulSets its controller creates (the disruption controller counts them).
_LWS_GROUP = "leaderworkerset.x-k8s.io/"


def get_path(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None where a step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def as_map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def as_int(value: Any) -> int | None:
    """A whole number (``2``, ``"2"``, ``2.0``), else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def namespace_of(m: Mapping) -> str | None:
    """The object's namespace (a Helm release's: the one it installs into)."""
    return m.get("namespace") if m.get("kind") == "Release" else as_map(m.get("metadata")).get("namespace")


def name_of(m: Mapping) -> Any:
    return m.get("name") if m.get("kind") == "Release" else as_map(m.get("metadata")).get("name")


def describe(m: Mapping) -> str:
    """``Deployment llm/qwen`` — how every message names an object."""
    ns = namespace_of(m)
    return f"{m.get('kind')} {ns + '/' if isinstance(ns, str) and ns else ''}{name_of(m)}"


def annotations(m: Mapping) -> dict:
    return as_map(m.get("metadata")).get("annotations") or {}


def is_knative_service(m: Mapping) -> bool:
    """A Knative Service or Configuration (serving.knative.dev): its pods run in revisions."""
    return str(m.get("apiVersion", "")).startswith(_KNATIVE_GROUP) and m.get("kind") in ("Service", "Configuration")


def is_core_service(m: Mapping) -> bool:
    return m.get("kind") == "Service" and m.get("apiVersion") == "v1"


def is_leader_worker_set(m: Mapping) -> bool:
    return str(m.get("apiVersion", "")).startswith(_LWS_GROUP) and m.get("kind") == "LeaderWorkerSet"


def _lws_templates(m: Mapping) -> list[tuple[dict, Mapping]]:
    """(labels, spec) of a LeaderWorkerSet's leader template (the worker template where none is
    given), then of its worker template when its group has workers (size > 1)."""
    lwt = as_map(get_path(m, "spec", "leaderWorkerTemplate"))
    worker = as_map(lwt.get("workerTemplate"))
    leader = as_map(lwt.get("leaderTemplate")) or worker
    out = [(dict(as_map(get_path(leader, "metadata", "labels"))), as_map(leader.get("spec")))]
    if (as_int(lwt.get("size", 1)) or 1) > 1:
        out.append((dict(as_map(get_path(worker, "metadata", "labels"))), as_map(worker.get("spec"))))
    return out


def pod_templates(m: Mapping) -> list[tuple[dict, Mapping]]:
    """Every pod template of a workload: one, or a LeaderWorkerSet's leader and worker templates."""
    if is_leader_worker_set(m):
        return _lws_templates(m)
    t = pod_template(m)
    return [t] if t else []


def pod_template(m: Mapping) -> tuple[dict, Mapping] | None:
    """(labels its pods carry, pod spec) of a workload, or None for objects that run no pods
    (a LeaderWorkerSet: its leader's, the pods that serve; ``pod_templates`` has the workers' too)."""
    kind: Any = m.get("kind")
    if is_leader_worker_set(m):
        return _lws_templates(m)[0]
    if kind == "Pod" and m.get("apiVersion") == "v1":
        return dict(as_map(get_path(m, "metadata", "labels"))), as_map(m.get("spec"))
    if is_knative_service(m):
        name = get_path(m, "metadata", "name")
        labels = dict(as_map(get_path(m, "spec", "template", "metadata", "labels")))
        # Knative labels every revision's pods with the service/configuration they belong to.
        labels.setdefault("serving.knative.dev/configuration", name)
        if kind == "Service":
            labels.setdefault("serving.knative.dev/service", name)
        return labels, as_map(get_path(m, "spec", "template", "spec"))
    path = _TEMPLATE_PATHS.get(kind)
    if path is None or get_path(m, *path) is None:
        return None
    template = as_map(get_path(m, *path))
    return dict(as_map(get_path(template, "metadata", "labels"))), as_map(template.get("spec"))


def containers(pod_spec: Mapping) -> list[Mapping]:
    """Init containers, then containers."""
    return [as_map(c) for c in as_list(pod_spec.get("initContainers")) + as_list(pod_spec.get("containers"))]


def words(c: Mapping) -> list[str]:
    """A container's command line: command, then args."""
    return [str(w) for w in as_list(c.get("command")) + as_list(c.get("args"))]


def flag_value(words: Sequence[str], *names: str) -> str | None:
    """Value of a CLI flag given as ``--flag value`` or ``--flag=value`` (last one wins)."""
    found = None
    for i, w in enumerate(words):
        for n in names:
            if w == n and i + 1 < len(words):
                found = words[i + 1]
            elif w.startswith(n + "="):
                found = w[len(n) + 1 :]
    return found


def is_vllm_container(c: Mapping) -> bool:
    """Runs vLLM's OpenAI server (``python -m vllm.entrypoints...`` or ``vllm serve``)."""
    ws = words(c)
    if any(e in w for w in ws for e in _VLLM_ENTRYPOINTS):
        return True
    return any((a.rsplit("/", 1)[-1] == "vllm" or a == _VLLM_CLI) and b == "serve" for a, b in itertools.pairwise(ws))


def is_headless_vllm(c: Mapping) -> bool:
    """A multi-node worker (``--headless``): runs its node's ranks, serves no HTTP, has nothing to probe."""
    return "--headless" in words(c)


def serving_pods(objects: Iterable[Mapping]) -> list[tuple[Mapping, dict, Mapping]]:
    """(object, pod labels, pod spec) of every workload that runs a vLLM server."""
    out = []
    for m in objects:
        t = pod_template(m)
        if t and any(is_vllm_container(c) for c in containers(t[1])):
            out.append((m, *t))
    return out


def vllm_containers(m: Mapping) -> Iterator[tuple[str, Mapping]]:
    """(``"<object>: container <name>"``, container) for every vLLM container of a workload's pod templates."""
    templates = pod_templates(m)
    for i, t in enumerate(templates):
        role = "" if len(templates) == 1 else (" (leader)" if i == 0 else " (worker)")
        for c in containers(t[1]):
            if is_vllm_container(c):
                yield f"{describe(m)}{role}: container {c.get('name')}", c


def selector_matches(selector: Any, labels: Mapping) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) against pod labels. ``{}`` selects every pod,
    a missing selector none (as for a PodDisruptionBudget)."""
    if not isinstance(selector, Mapping):
        return False
    for k, v in as_map(selector.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for e in as_list(selector.get("matchExpressions")):
        key, op, values = e.get("key"), e.get("operator"), as_list(e.get("values"))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def matches(selector: Mapping | None, labels: Mapping) -> bool:
    """:func:`selector_matches`, where a missing selector selects every pod (a NetworkPolicy's
    podSelector, a monitor's selector)."""
    return selector_matches(selector or {}, labels)


def pulumi_manifest(resource_type: str, props: Mapping) -> dict | None:
    """The manifest a pulumi-kubernetes resource (``kubernetes:apps/v1:Deployment`` + its inputs)
    applies; None for Helm releases, charts and other non-object types."""
    parts = resource_type.split(":")
    if (
        len(parts) != 3
        or parts[0] != "kubernetes"
        or "/" not in parts[1]
        or parts[1].startswith(("helm.sh/", "yaml/", "kustomize/"))
    ):
        return None
    api_version = parts[1].removeprefix("core/")
    return {
        **{k: v for k, v in props.items() if k not in ("apiVersion", "kind")},
        "apiVersion": api_version,
        "kind": parts[2],
    }
