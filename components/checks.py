"""The platform's invariants as pure rules over Kubernetes manifests (and Helm release inputs).

One source for each rule: the policy pack (``policy/``, run by ``pulumi preview --policy-pack``),
the cross-object checks of the test suite and an importing project's own pack all call these.
Each rule takes plain manifests (dicts as ``kubectl get -o yaml`` shows them) and returns a list
of problems, each a sentence naming the object and saying how to fix it; ``[]`` means it holds.

Values a preview cannot know yet arrive as :data:`UNKNOWN`; a rule never reports on a value it
cannot see (it is checked again at ``pulumi up``, when every value is known).
"""

import re
from typing import Any, Iterable, Mapping, Optional, Sequence

from .scheduling import WHOLE_GPU_RESOURCE
from .vllm_pod import STARTUP_BASE_SECONDS

#: Stands for a value that is unknown during a preview (an Output not resolved yet).
UNKNOWN = "<unknown until apply>"

#: Image tags that move: an image named by one can change under a running Deployment.
MOVING_TAGS = ("latest", "stable", "main", "master", "edge", "nightly", "dev", "develop", "head", "canary", "rolling")
#: Resource name prefixes that are GPUs (whole, shared or MIG slices) for the device plugin.
GPU_RESOURCE_PREFIXES = ("nvidia.com/",)
#: The pool's taints when nothing else is declared: the GpuNodePool default.
DEFAULT_GPU_TAINTS = ({"key": WHOLE_GPU_RESOURCE, "effect": "NoSchedule"},)

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


# ---------------------------------------------------------------------------------------------
# Reading manifests
# ---------------------------------------------------------------------------------------------

def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _list(value: Any) -> list:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _map(value: Any) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def describe(m: Mapping) -> str:
    """``Deployment llm/qwen`` — how every message names an object."""
    meta = _map(m.get("metadata"))
    ns = meta.get("namespace")
    return f"{m.get('kind')} {ns + '/' if isinstance(ns, str) and ns else ''}{meta.get('name')}"


def is_knative_service(m: Mapping) -> bool:
    return str(m.get("apiVersion", "")).startswith(_KNATIVE_GROUP) and m.get("kind") in ("Service", "Configuration")


def is_leader_worker_set(m: Mapping) -> bool:
    return str(m.get("apiVersion", "")).startswith(_LWS_GROUP) and m.get("kind") == "LeaderWorkerSet"


def _lws_templates(m: Mapping) -> list[tuple[dict, Mapping]]:
    """(labels, spec) of a LeaderWorkerSet's leader template (the worker template where none is
    given), then of its worker template when its group has workers (size > 1)."""
    lwt = _map(_get(m, "spec", "leaderWorkerTemplate"))
    worker = _map(lwt.get("workerTemplate"))
    leader = _map(lwt.get("leaderTemplate")) or worker
    out = [(dict(_map(_get(leader, "metadata", "labels"))), _map(leader.get("spec")))]
    if (_int(lwt.get("size", 1)) or 1) > 1:
        out.append((dict(_map(_get(worker, "metadata", "labels"))), _map(worker.get("spec"))))
    return out


def pod_templates(m: Mapping) -> list[tuple[dict, Mapping]]:
    """Every pod template of a workload: one, or a LeaderWorkerSet's leader and worker templates."""
    if is_leader_worker_set(m):
        return _lws_templates(m)
    t = pod_template(m)
    return [t] if t else []


def pod_template(m: Mapping) -> Optional[tuple[dict, Mapping]]:
    """(labels its pods carry, pod spec) of a workload, or None for objects that run no pods
    (a LeaderWorkerSet: its leader's, the pods that serve; ``pod_templates`` has the workers' too)."""
    kind = m.get("kind")
    if is_leader_worker_set(m):
        return _lws_templates(m)[0]
    if kind == "Pod" and m.get("apiVersion") == "v1":
        return dict(_map(_get(m, "metadata", "labels"))), _map(m.get("spec"))
    if is_knative_service(m):
        name = _get(m, "metadata", "name")
        labels = dict(_map(_get(m, "spec", "template", "metadata", "labels")))
        # Knative labels every revision's pods with the service/configuration they belong to.
        labels.setdefault("serving.knative.dev/configuration", name)
        if kind == "Service":
            labels.setdefault("serving.knative.dev/service", name)
        return labels, _map(_get(m, "spec", "template", "spec"))
    path = _TEMPLATE_PATHS.get(kind)
    if path is None or _get(m, *path) is None:
        return None
    template = _map(_get(m, *path))
    return dict(_map(_get(template, "metadata", "labels"))), _map(template.get("spec"))


def containers(pod_spec: Mapping) -> list[Mapping]:
    """Init containers, then containers."""
    return [_map(c) for c in _list(pod_spec.get("initContainers")) + _list(pod_spec.get("containers"))]


def _words(c: Mapping) -> list[str]:
    return [str(w) for w in _list(c.get("command")) + _list(c.get("args"))]


def is_vllm_container(c: Mapping) -> bool:
    """Runs vLLM's OpenAI server (``python -m vllm.entrypoints...`` or ``vllm serve``)."""
    words = _words(c)
    if any(e in w for w in words for e in _VLLM_ENTRYPOINTS):
        return True
    return any((a.rsplit("/", 1)[-1] == "vllm" or a == _VLLM_CLI) and b == "serve" for a, b in zip(words, words[1:]))


def is_headless_vllm(c: Mapping) -> bool:
    """A multi-node worker (``--headless``): runs its node's ranks, serves no HTTP, has nothing to probe."""
    return "--headless" in _words(c)


def serving_pods(objects: Iterable[Mapping]) -> list[tuple[Mapping, dict, Mapping]]:
    """(object, pod labels, pod spec) of every workload that runs a vLLM server."""
    out = []
    for m in objects:
        t = pod_template(m)
        if t and any(is_vllm_container(c) for c in containers(t[1])):
            out.append((m, *t))
    return out


def flag_value(words: Sequence[str], *names: str) -> Optional[str]:
    """Value of a CLI flag given as ``--flag value`` or ``--flag=value`` (last one wins)."""
    found = None
    for i, w in enumerate(words):
        for n in names:
            if w == n and i + 1 < len(words):
                found = words[i + 1]
            elif w.startswith(n + "="):
                found = w[len(n) + 1:]
    return found


def selector_matches(selector: Any, labels: Mapping) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) against pod labels. ``{}`` selects every pod,
    a missing selector none (as for a PodDisruptionBudget)."""
    if not isinstance(selector, Mapping):
        return False
    for k, v in _map(selector.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for e in _list(selector.get("matchExpressions")):
        key, op, values = e.get("key"), e.get("operator"), _list(e.get("values"))
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pulumi_manifest(resource_type: str, props: Mapping) -> Optional[dict]:
    """The manifest a pulumi-kubernetes resource (``kubernetes:apps/v1:Deployment`` + its inputs)
    applies; None for Helm releases, charts and other non-object types."""
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or "/" not in parts[1] or parts[1].startswith(("helm.sh/", "yaml/", "kustomize/")):
        return None
    api_version = parts[1].removeprefix("core/")
    return {**{k: v for k, v in props.items() if k not in ("apiVersion", "kind")}, "apiVersion": api_version, "kind": parts[2]}


#: pulumi-kubernetes types that install a Helm chart (inputs ``chart`` and ``version``).
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v3:Chart", "kubernetes:helm.sh/v4:Chart")


# ---------------------------------------------------------------------------------------------
# Per-object rules
# ---------------------------------------------------------------------------------------------

def image_tag(image: str) -> tuple[Optional[str], Optional[str]]:
    """(tag, digest) of an image reference; a registry's ``:port`` is not a tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else None
    return tag, (digest or None)


def images_pinned(m: Mapping, moving_tags: Sequence[str] = MOVING_TAGS, require_digest: bool = False) -> list[str]:
    """Every container image names a version (or a digest), never a moving tag."""
    t = pod_template(m)
    if not t:
        return []
    problems = []
    for c in containers(t[1]):
        image = c.get("image")
        if not isinstance(image, str) or image == UNKNOWN:
            continue
        tag, digest = image_tag(image)
        where = f"{describe(m)}: container {c.get('name')} image {image!r}"
        if require_digest and not digest:
            problems.append(f"{where} has no digest: pin it as {image}@sha256:<digest>.")
        elif not digest and (tag is None or tag.lower() in moving_tags):
            moving = f"uses the moving tag {tag!r}" if tag else "has no tag (so: latest, a moving tag)"
            repo = image[: -len(tag) - 1] if tag else image
            problems.append(f"{where} {moving}: pin a version ({repo}:<version>) or a digest ({repo}@sha256:<digest>).")
    return problems


def gpu_requests(c: Mapping, prefixes: Sequence[str] = GPU_RESOURCE_PREFIXES) -> dict[str, Any]:
    """GPU resources a container asks for (limits, where the device plugin reads them)."""
    res = _map(c.get("resources"))
    limits, requests = _map(res.get("limits")), _map(res.get("requests"))
    source = limits if any(str(k).startswith(tuple(prefixes)) for k in limits) else requests
    return {k: v for k, v in source.items() if str(k).startswith(tuple(prefixes))}


def _int(value: Any) -> Optional[int]:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def vllm_gpus_needed(c: Mapping) -> Optional[int]:
    """GPUs one vLLM server uses: tensor x pipeline (x data) parallel size, from its flags."""
    words = _words(c)
    if any(w == UNKNOWN for w in words):
        return None
    sizes = [flag_value(words, *names) or "1" for names in (
        ("--tensor-parallel-size", "-tp"), ("--pipeline-parallel-size", "-pp"), ("--data-parallel-size", "-dp"),
    )]
    ints = [_int(s) for s in sizes]
    nodes = _int(flag_value(words, "--nnodes", "-n") or "1")  # multi-node: each pod runs its node's share
    if any(i is None for i in ints) or not nodes:
        return None
    return ints[0] * ints[1] * ints[2] // nodes


def _vllm_containers(m: Mapping):
    """(``"<object>: container <name>"``, container) for every vLLM container of a workload's pod templates."""
    templates = pod_templates(m)
    for i, t in enumerate(templates):
        role = "" if len(templates) == 1 else (" (leader)" if i == 0 else " (worker)")
        for c in containers(t[1]):
            if is_vllm_container(c):
                yield f"{describe(m)}{role}: container {c.get('name')}", c


def gpu_request_matches_parallelism(m: Mapping, prefixes: Sequence[str] = GPU_RESOURCE_PREFIXES) -> list[str]:
    """A vLLM container requests exactly tensor x pipeline parallel size GPUs (requests = limits)."""
    problems = []
    for where, c in _vllm_containers(m):
        needed = vllm_gpus_needed(c)
        if flag_value(_words(c), "--device") == "cpu":
            continue
        res = _map(c.get("resources"))
        for name, qty in gpu_requests(c, prefixes).items():
            req = _map(res.get("requests")).get(name)
            if req is not None and req != UNKNOWN and qty != UNKNOWN and _int(req) != _int(qty):
                problems.append(f"{where} requests {req} {name} but limits {qty}: set both to the same count.")
        got = gpu_requests(c, prefixes)
        if any(v == UNKNOWN for v in got.values()) or needed is None:
            continue
        total = sum(_int(v) or 0 for v in got.values())
        if not got:
            problems.append(
                f"{where} runs vLLM but requests no GPU: set resources.limits[{WHOLE_GPU_RESOURCE!r}] "
                f"(or the pool's shared/MIG resource) to {needed} (tensor x pipeline parallel size)."
            )
        elif total != needed:
            problems.append(
                f"{where} requests {total} GPU(s) ({', '.join(f'{k}={v}' for k, v in got.items())}) but its "
                f"parallelism needs {needed} (tensor x pipeline parallel size): make the GPU request "
                f"equal {needed}, or change --tensor-parallel-size/--pipeline-parallel-size."
            )
    return problems


def tolerates(toleration: Mapping, taint: Mapping) -> bool:
    """Kubernetes' toleration/taint matching."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if toleration.get("operator", "Equal") == "Exists":
        return not key or key == taint.get("key")
    return key == taint.get("key") and (toleration.get("value") or "") == (taint.get("value") or "")


def _taint_str(t: Mapping) -> str:
    return f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect')}"


def untolerated_gpu_taints(
    m: Mapping, taints: Sequence[Mapping], extra_tolerations: Sequence[Mapping] = (),
    prefixes: Sequence[str] = GPU_RESOURCE_PREFIXES,
) -> list[str]:
    """A pod that requests GPUs tolerates every taint of the GPU pool (else it never schedules).
    ``extra_tolerations``: what admission adds (a RuntimeClass's ``scheduling.tolerations``)."""
    t = pod_template(m)
    if not t or not any(gpu_requests(c, prefixes) for c in containers(t[1])):
        return []
    tolerations = [_map(x) for x in _list(t[1].get("tolerations"))] + list(extra_tolerations)
    missing = []
    for taint in taints:
        if not any(tolerates(tol, taint) for tol in tolerations) and taint not in missing:
            missing.append(taint)
    return [
        f"{describe(m)} requests GPUs but does not tolerate the GPU pool's taint {_taint_str(taint)}: add the "
        f"toleration {{key: {taint.get('key')}, operator: Exists, effect: {taint.get('effect')}}} (the "
        f"GpuNodePool's scheduling contract carries it), or declare the pool's real taints in the pack's config."
        for taint in missing
    ]


def startup_budget_seconds(probe: Mapping) -> Optional[int]:
    """Seconds a startup probe lets a container take before the kubelet restarts it."""
    period = _int(probe.get("periodSeconds", 10))
    failures = _int(probe.get("failureThreshold", 3))
    delay = _int(probe.get("initialDelaySeconds", 0))
    if None in (period, failures, delay):
        return None
    return delay + period * failures


def vllm_startup_probe(m: Mapping, min_budget_seconds: int = STARTUP_BASE_SECONDS) -> list[str]:
    """A vLLM container has a startup probe whose budget covers at least the derived minimum
    (engine start before any weights are read; weights add 10 s/GiB on top)."""
    problems = []
    for where, c in _vllm_containers(m):
        if is_headless_vllm(c):
            continue  # no HTTP server: a probe could never pass (the leader's covers the group)
        probe = c.get("startupProbe")
        if not isinstance(probe, Mapping):
            problems.append(
                f"{where} has no startupProbe: loading a model takes minutes, and the liveness probe "
                f"would restart it first. Add a startupProbe on /health with periodSeconds x failureThreshold "
                f">= {min_budget_seconds} s plus 10 s per GiB of weights (VllmService derives it)."
            )
            continue
        budget = startup_budget_seconds(probe)
        if budget is not None and budget < min_budget_seconds:
            problems.append(
                f"{where} startupProbe allows {budget} s (initialDelaySeconds + periodSeconds x "
                f"failureThreshold), less than the {min_budget_seconds} s a vLLM engine needs to start: raise "
                f"failureThreshold to at least {-(-min_budget_seconds // max(_int(probe.get('periodSeconds', 10)) or 1, 1))} "
                f"(or set startupTimeoutSeconds / weightsGiB on the model)."
            )
    return problems


_CRED_WORDS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
_CRED_PAIRS = {("API", "KEY"), ("ACCESS", "KEY"), ("PRIVATE", "KEY"), ("SECRET", "KEY"), ("AUTH", "KEY")}
# A variable that names where a credential is, not the credential.
_REFERENCE_SUFFIXES = {"PATH", "FILE", "DIR", "URL", "URI", "NAME", "REF"}
_CRED_VALUE = re.compile(
    r"^(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*)$",
    re.S,
)
_CRED_FLAGS = ("--api-key", "--hf-token", "--token", "--password")


def is_credential_name(name: str) -> bool:
    """``HF_TOKEN``, ``adminPassword``, ``AWS_SECRET_ACCESS_KEY`` — not ``TOKENIZERS_PARALLELISM``,
    ``HF_TOKEN_PATH`` or ``existingSecret`` (which name where a credential is)."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    words = [w for w in re.split(r"[^A-Za-z0-9]+", snake.upper()) if w]
    if not words or words[-1] in _REFERENCE_SUFFIXES or words[0] == "EXISTING":
        return False
    return bool(_CRED_WORDS & set(words)) or any(p in _CRED_PAIRS for p in zip(words, words[1:]))


def no_plain_credentials(m: Mapping, allowed_names: Sequence[str] = ()) -> list[str]:
    """No credential in a container's plain ``env`` value or command line: it would be readable by
    anyone who can read the workload (and in the Pulumi state)."""
    t = pod_template(m)
    if not t:
        return []
    problems = []
    for c in containers(t[1]):
        where = f"{describe(m)}: container {c.get('name')}"
        for e in _list(c.get("env")):
            e = _map(e)
            name, value = str(e.get("name", "")), e.get("value")
            if "value" not in e or value in (None, "") or name in allowed_names:
                continue
            looks_secret = isinstance(value, str) and value != UNKNOWN and _CRED_VALUE.match(value.strip())
            if is_credential_name(name) or looks_secret:
                problems.append(
                    f"{where} sets {name} as a plain env value: store it in a Secret and use "
                    f"valueFrom.secretKeyRef (or envFrom.secretRef)."
                )
        words = _words(c)
        for i, w in enumerate(words):
            flag = next((f for f in _CRED_FLAGS if w == f or w.startswith(f + "=")), None)
            if flag is None:
                continue
            value = w.partition("=")[2] if "=" in w else (words[i + 1] if i + 1 < len(words) else "")
            if value and value != UNKNOWN and not re.fullmatch(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", value):
                problems.append(
                    f"{where} passes {flag} on its command line: pass it from a Secret in the environment "
                    f"instead (vLLM reads VLLM_API_KEY; HF_TOKEN for the hub)."
                )
    return problems


def _effective(c: Mapping, pod_sc: Mapping, key: str) -> Any:
    sc = _map(c.get("securityContext"))
    return sc[key] if key in sc else pod_sc.get(key)


def pod_security(m: Mapping) -> list[str]:
    """Every container of the pod runs as non-root, without privilege escalation, unprivileged."""
    t = pod_template(m)
    if not t:
        return []
    pod_sc = _map(t[1].get("securityContext"))
    problems = []
    for c in containers(t[1]):
        where = f"{describe(m)}: container {c.get('name')}"
        sc = _map(c.get("securityContext"))
        non_root, uid = _effective(c, pod_sc, "runAsNonRoot"), _effective(c, pod_sc, "runAsUser")
        if non_root is not True and non_root != UNKNOWN:
            problems.append(f"{where} may run as root: set securityContext.runAsNonRoot: true (and a runAsUser, e.g. 1000).")
        if uid == 0 or uid == "0":
            problems.append(f"{where} sets runAsUser: 0 (root): use a non-zero UID, e.g. 1000.")
        if sc.get("allowPrivilegeEscalation") is not False and sc.get("allowPrivilegeEscalation") != UNKNOWN:
            problems.append(f"{where} allows privilege escalation: set securityContext.allowPrivilegeEscalation: false.")
        if sc.get("privileged") is True:
            problems.append(f"{where} is privileged: remove securityContext.privileged (a GPU comes from the device plugin, not from privileges).")
    return problems


def serving_pod_security(m: Mapping) -> list[str]:
    """:func:`pod_security` for workloads that run a vLLM server (every container of their pods)."""
    t = pod_template(m)
    if not t or not any(is_vllm_container(c) for c in containers(t[1])):
        return []
    return pod_security(m)


def knative_traffic(m: Mapping) -> list[str]:
    """A Knative Service's ``traffic`` reaches revisions of that Service: every ``revisionName`` starts with
    ``<service>-`` (Knative fails a Route to another Service's revision, and a revision the Service never made
    does not exist: the Route then serves nothing, ``RevisionMissing``); no target both names a revision and
    sets ``latestRevision: true``; percents sum to 100; tags are unique DNS labels; and the revision the
    template creates (a named template) gets traffic or a tag, or it loads the model on GPUs for nothing."""
    if not is_knative_service(m) or m.get("kind") != "Service":
        return []
    service, targets = _get(m, "metadata", "name"), _list(_get(m, "spec", "traffic"))
    if not targets or service == UNKNOWN:
        return []
    problems, tags, total, known = [], set(), 0, True
    template_name = _get(m, "spec", "template", "metadata", "name")
    routed = template_name in (None, UNKNOWN)
    for i, t in enumerate(_map(t) for t in targets):
        rev, pct, tag = t.get("revisionName"), t.get("percent"), t.get("tag")
        if rev and rev != UNKNOWN and not str(rev).startswith(f"{service}-"):
            problems.append(f"{describe(m)}: traffic[{i}].revisionName {rev!r} is not a revision of this Service "
                            f"(its revisions are named {service}-...): the Route would serve nothing")
        if rev and t.get("latestRevision") is True:
            problems.append(f"{describe(m)}: traffic[{i}] names revision {rev!r} and sets latestRevision: true; Knative refuses both")
        if rev == template_name or (not rev and t.get("latestRevision", True) is not False):
            routed = True
        if tag is not None and tag != UNKNOWN:
            if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", str(tag)) or tag in tags:
                problems.append(f"{describe(m)}: traffic[{i}].tag {tag!r} is repeated or not a DNS label")
            tags.add(tag)
        if pct == UNKNOWN:
            known = False
        else:
            total += _int(pct) or 0
    if known and total != 100:
        problems.append(f"{describe(m)}: traffic percents sum to {total}, not 100; Knative refuses the Service")
    if not routed:
        problems.append(f"{describe(m)}: the template's revision {template_name!r} is in no traffic target: it would start "
                        "(GPUs, weights) and serve nothing; route a percent or a tag to it")
    return problems


_PINNED_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$")


#: A proxy's usual default, which cuts a streamed generation off: no route to an LLM may time out sooner.
MIN_ROUTE_TIMEOUT_SECONDS = 60
INGRESS_NGINX_TIMEOUTS = ("nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout")
_DURATION_PART = re.compile(r"([0-9]+)(ms|h|m|s)")


def timeout_seconds(value: Any) -> Optional[float]:
    """Seconds of a route timeout: a Gateway API duration (``900s``, ``15m``, ``1h30m``; ``0s`` means
    no timeout: infinite) or an nginx annotation's plain seconds; None when unset or unreadable."""
    text = str(value).strip() if value is not None else ""
    if text.isdigit():
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    total = sum(int(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)
    return float("inf") if total == 0 else total


def route_timeouts(m: Mapping, min_seconds: float = MIN_ROUTE_TIMEOUT_SECONDS) -> list[str]:
    """An HTTPRoute rule that forwards somewhere sets ``timeouts.request`` (and ``backendRequest``, if
    set) to at least ``min_seconds``; an ingress-nginx Ingress sets its proxy read/send timeouts so
    (the controller's default is 60 s). Long generations stream for minutes."""
    problems = []
    if m.get("kind") == "HTTPRoute":
        for i, rule in enumerate(_list(_get(m, "spec", "rules"))):
            if not _list(_map(rule).get("backendRefs")):
                continue
            t = _map(_map(rule).get("timeouts"))
            for key in ("request", "backendRequest"):
                value = t.get(key)
                if value == UNKNOWN or (key == "backendRequest" and value is None):
                    continue
                seconds = timeout_seconds(value)
                if seconds is None or seconds < min_seconds:
                    problems.append(f"{describe(m)}: rules[{i}].timeouts.{key} is {value or 'unset (the implementation default)'}: "
                                    f"set at least {min_seconds:g}s (the model's request budget), or a streamed answer is cut off")
    elif m.get("kind") == "Ingress":
        notes = _map(_get(m, "metadata", "annotations"))
        nginx = "nginx" in str(_get(m, "spec", "ingressClassName") or "") or any(k.startswith("nginx.ingress.kubernetes.io/") for k in notes)
        for key in INGRESS_NGINX_TIMEOUTS if nginx else ():
            value = notes.get(key)
            if value == UNKNOWN:
                continue
            seconds = timeout_seconds(value)
            if seconds is None or seconds < min_seconds:
                problems.append(f"{describe(m)}: {key} is {value or 'unset (60 s)'}: set at least {min_seconds:g} "
                                "(the model's request budget), or a streamed answer is cut off")
    return problems


def helm_chart_pinned(kind: str, name: str, chart: Any, version: Any) -> list[str]:
    """A Helm chart install names an exact chart version (not empty, not a range such as ``^1.2``)."""
    if chart == UNKNOWN or version == UNKNOWN:
        return []
    chart_s = str(chart or "")
    # A chart from a local directory or archive is pinned by the repository's own history.
    if chart_s.startswith((".", "/")) or chart_s.endswith(".tgz"):
        return []
    where = f"{kind} {name} (chart {chart_s or '?'})"
    if not version:
        return [f"{where} has no version: the newest chart would be installed at every update. Set version "
                f"to an exact release (keep every pin in components/versions.py)."]
    if not _PINNED_CHART_VERSION.match(str(version)):
        return [f"{where} asks for version {version!r}, a range: set an exact release such as 1.2.3."]
    return []


# ---------------------------------------------------------------------------------------------
# Cross-object rules
# ---------------------------------------------------------------------------------------------

def _namespace(m: Mapping) -> Optional[str]:
    return _get(m, "metadata", "namespace")


#: Controllers with a scale the disruption controller can read (Knative revisions are Deployments).
SCALABLE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController")


def pdb_selects_one_controller(objects: Sequence[Mapping]) -> list[str]:
    """Each PodDisruptionBudget selects the pods of exactly one scalable controller in its namespace
    (none: it protects nothing; several, or a Job's pods: the disruption controller finds no single
    scale to count, allows no eviction, and drains and node upgrades block)."""
    workloads = [(m, t[0]) for m in objects for t in pod_templates(m)]
    problems = []
    for pdb in objects:
        if pdb.get("kind") != "PodDisruptionBudget":
            continue
        selector = _get(pdb, "spec", "selector")
        ns = _namespace(pdb)
        hits = list({id(m): m for m, labels in workloads if _namespace(m) == ns and selector_matches(selector, labels)}.values())
        if not hits:
            problems.append(
                f"{describe(pdb)} selects no pods of any workload in the stack: make spec.selector the "
                f"labels of the server's pod template."
            )
        elif len(hits) > 1:
            problems.append(
                f"{describe(pdb)} selects the pods of {len(hits)} workloads ({', '.join(describe(h) for h in hits)}): "
                f"narrow spec.selector (e.g. add app.kubernetes.io/component) or give the other workloads' pods "
                f"labels of their own."
            )
        elif hits[0].get("kind") not in SCALABLE_KINDS and not is_knative_service(hits[0]) and not is_leader_worker_set(hits[0]):
            problems.append(
                f"{describe(pdb)} selects the pods of {describe(hits[0])}, which has no scale the disruption "
                f"controller can count: select a Deployment's or StatefulSet's pods, or drop the budget."
            )
    return problems


#: What an InferenceObjective's poolRef must name (the picker loads objectives of its own pool only).
POOL_GROUP, POOL_KIND = "inference.networking.k8s.io", "InferencePool"


def inference_objectives_name_pools(objects: Sequence[Mapping]) -> list[str]:
    """Every InferenceObjective's poolRef names an InferencePool (inference.networking.k8s.io) of the stack in
    the objective's namespace: the Endpoint Picker loads only objectives naming its own pool, so any other
    objective is silently ignored and its served name runs at priority 0."""
    pools = {(_namespace(m), _get(m, "metadata", "name")) for m in objects if m.get("kind") == POOL_KIND}
    problems = []
    for m in objects:
        if m.get("kind") != "InferenceObjective":
            continue
        ref = _get(m, "spec", "poolRef") or {}
        group, kind, name = ref.get("group", POOL_GROUP), ref.get("kind", POOL_KIND), ref.get("name")
        if UNKNOWN in (group, kind, name):
            continue
        if (group, kind) != (POOL_GROUP, POOL_KIND):
            problems.append(f"{describe(m)} refers to {group}/{kind}, not an {POOL_KIND} ({POOL_GROUP}): no picker loads it")
        elif (_namespace(m), name) not in pools:
            problems.append(f"{describe(m)} refers to InferencePool {_namespace(m)}/{name}, which the stack does not create: "
                            "no picker loads it, and its served name runs at priority 0")
    return problems


def lws_headless_service_free(objects: Sequence[Mapping]) -> list[str]:
    """No Service of the stack has a LeaderWorkerSet's name in its namespace: the LWS controller creates
    the headless Service of that name its pods' DNS names (``LWS_LEADER_ADDRESS``) live in, and keeps
    an existing one as it finds it, so workers would never resolve their leader."""
    services = {(_namespace(o), _get(o, "metadata", "name")) for o in objects if o.get("kind") == "Service" and o.get("apiVersion") == "v1"}
    return [
        f"{describe(m)}: the Service {_get(m, 'metadata', 'name')} exists in its namespace, so the LeaderWorkerSet "
        f"controller does not create its headless Service and the group's pods cannot resolve their leader; give the "
        f"LeaderWorkerSet or the Service another name."
        for m in objects if is_leader_worker_set(m) and (_namespace(m), _get(m, "metadata", "name")) in services
    ]


def _admits_ingress(np: Mapping) -> bool:
    types = _list(_get(np, "spec", "policyTypes"))
    # Without policyTypes, a NetworkPolicy is always of type Ingress.
    return "Ingress" in types or not types


def serving_pods_have_network_policy(objects: Sequence[Mapping]) -> list[str]:
    """Every vLLM server's pods are selected by an ingress NetworkPolicy of their namespace
    (vLLM's --api-key does not protect /metrics and /health)."""
    policies = [m for m in objects if m.get("kind") == "NetworkPolicy" and _admits_ingress(m)]
    problems = []
    for m, labels, _ in serving_pods(objects):
        if not any(_namespace(p) == _namespace(m) and selector_matches(_get(p, "spec", "podSelector"), labels) for p in policies):
            problems.append(
                f"{describe(m)} runs vLLM servers that no NetworkPolicy selects: any pod in the cluster can reach "
                f"its API and /metrics. Add an ingress NetworkPolicy whose podSelector matches its pod labels "
                f"(VllmService creates one)."
            )
    return problems


def gpu_pool_taints(objects: Sequence[Mapping], pod_labels_selector: Mapping, default: Sequence[Mapping]) -> list[Mapping]:
    """Taints of the GPU nodes a pod lands on: those of the Karpenter NodePools whose node labels
    its nodeSelector matches, plus ``default`` (the pool's declared taints)."""
    taints = list(default)
    for m in objects:
        if m.get("kind") != "NodePool" or not str(m.get("apiVersion", "")).startswith("karpenter.sh/"):
            continue
        node_labels = _map(_get(m, "spec", "template", "metadata", "labels"))
        if pod_labels_selector and all(node_labels.get(k) == v for k, v in pod_labels_selector.items()):
            taints += [_map(t) for t in _list(_get(m, "spec", "template", "spec", "taints"))]
    return taints


def gpu_pods_tolerate_pool_taints(objects: Sequence[Mapping], taints: Sequence[Mapping] = DEFAULT_GPU_TAINTS) -> list[str]:
    """Every pod that requests GPUs tolerates the pool's taints (declared ones and those of the
    Karpenter NodePool it is placed on), counting what its RuntimeClass adds at admission."""
    runtime_tolerations = {
        _get(m, "metadata", "name"): [_map(t) for t in _list(_get(m, "scheduling", "tolerations"))]
        for m in objects if m.get("kind") == "RuntimeClass"
    }
    problems = []
    for m in objects:
        t = pod_template(m)
        if not t:
            continue
        selector = _map(t[1].get("nodeSelector"))
        extra = runtime_tolerations.get(t[1].get("runtimeClassName"), [])
        problems += untolerated_gpu_taints(m, gpu_pool_taints(objects, selector, taints), extra)
    return problems
