"""Checking a component's args where they enter it, driven by the args' TypedDict annotations.

Args reach a component from Python (where a type checker may or may not have run) and, through
the provider host, from every other Pulumi language, where the wire carries every number as a
double and every enum as its string value. ``validate_args`` turns what arrived into exactly what
the annotations promise, or refuses it with one message naming the component, the resource name
and the key path::

    VllmService 'qwen': args.engine.tensor_parallel_size: expected an integer, got '2'

What it does, by annotation:
- ``pulumi.Input[X]``: an ``Output`` or awaitable passes through unchecked (its value is not known
  yet); a plain value is checked against ``X``. A field *not* annotated ``Input`` decides which
  resources exist, so an ``Output`` there is refused (it cannot be known at preview).
- ``int``: a whole-number float becomes an ``int`` (``2.0`` -> ``2``); ``2.5``, ``"2"`` and
  booleans are refused. ``float`` takes ints and floats. ``bool`` and ``str`` take only themselves.
- ``Enum``: a member, or its value as a string (converted to the member); others are refused
  with the allowed values listed.
- nested ``TypedDict``: unknown keys are refused (with a did-you-mean), missing required keys are
  named; ``None`` for a ``NotRequired`` key means "not given" (the key is dropped, so the
  component's default applies).
- ``list[X]`` / ``dict[str, X]``: every element is checked (paths ``a[0]``, ``a['k']``).

The result is a normalized copy; the caller's dicts are never modified. Components call it first
thing in ``__init__``, before registering themselves, so bad input registers nothing.
"""

import collections.abc
import difflib
import inspect
import re
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar, Union

import pulumi
from pulumi.output import T as _OUTPUT_T
from typing_extensions import NotRequired, Required, is_typeddict

# ``pulumi.Input[X]`` is ``Union[X, Awaitable[X], "Output[T]"]``: the forward reference resolves
# against these names, whatever module the TypedDict lives in.
_LOCALNS = {"Output": pulumi.Output, "T": _OUTPUT_T}

TD = TypeVar("TD")


class ComponentArgsError(ValueError):
    """Args a component refuses: ``<Component> '<name>': args.<path>: <problem>``."""

    def __init__(self, component: str, name: str, path: str, problem: str):
        self.component, self.resource_name, self.path, self.problem = component, name, path, problem
        where = f"args.{path}" if path else "args"
        super().__init__(f"{component} {name!r}: {where}: {problem}")


def args_error(component: str, name: str, path: str, problem: str) -> ComponentArgsError:
    """The error for a component's own (semantic) checks, in the same format."""
    return ComponentArgsError(component, name, path, problem)


def type_hints(td: type) -> dict[str, Any]:
    """The annotations of a TypedDict with ``pulumi.Input`` resolved (extras such as
    ``NotRequired`` kept)."""
    return typing.get_type_hints(td, localns=_LOCALNS, include_extras=True)


def _strip_required(tp: Any) -> Any:
    while typing.get_origin(tp) in (NotRequired, Required, typing.Annotated):
        tp = typing.get_args(tp)[0]
    return tp


def _is_output_type(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return origin is pulumi.Output or origin is collections.abc.Awaitable or origin is typing.Awaitable


def _is_deferred(value: Any) -> bool:
    return isinstance(value, pulumi.Output) or inspect.isawaitable(value)


def _split_union(tp: Any) -> tuple[list[Any], bool, bool]:
    """(plain alternatives, accepts an Output/awaitable, accepts None) of a Union annotation."""
    plain, deferred, none = [], False, False
    for a in typing.get_args(tp):
        if a is type(None):
            none = True
        elif _is_output_type(a):
            deferred = True
        elif typing.get_origin(a) is Union:
            p, d, n = _split_union(a)
            plain += p
            deferred, none = deferred or d, none or n
        else:
            plain.append(a)
    return plain, deferred, none


def _describe(tp: Any) -> str:
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "a boolean"
    if tp is str:
        return "a string"
    if inspect.isclass(tp) and issubclass(tp, Enum):
        return f"one of {', '.join(repr(m.value) for m in tp)}"
    if is_typeddict(tp):
        return f"an object ({tp.__name__})"
    origin = typing.get_origin(tp)
    if origin in (list, collections.abc.Sequence):
        return "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


def _camel_to_snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


class _Checker:
    def __init__(self, component: str, name: str):
        self.component, self.name = component, name

    def fail(self, path: str, problem: str) -> ComponentArgsError:
        return ComponentArgsError(self.component, self.name, path, problem)

    def check(self, value: Any, tp: Any, path: str) -> Any:
        tp = _strip_required(tp)
        if tp is Any or isinstance(tp, TypeVar):
            return value
        if typing.get_origin(tp) is Union:
            plain, deferred, none = _split_union(tp)
            if value is None:
                if none:
                    return None
                raise self.fail(path, f"expected {_describe(plain[0]) if plain else 'a value'}, got None")
            if _is_deferred(value):
                if deferred:
                    return value
                raise self._not_plain(path, plain)
            if len(plain) == 1:
                return self.check(value, plain[0], path)
            errors = []
            for alt in plain:
                try:
                    return self.check(value, alt, path)
                except ComponentArgsError as e:
                    errors.append(e)
            raise errors[0]
        if _is_deferred(value):
            raise self._not_plain(path, [tp])
        if tp is bool:
            if isinstance(value, bool):
                return value
            raise self.fail(path, f"expected a boolean, got {_show(value)}")
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or isinstance(value, Enum):
                raise self.fail(path, f"expected an integer, got {_show(value)}")
            if isinstance(value, float):
                # Other languages' numbers arrive as doubles: 2.0 is the integer 2, 2.5 is not.
                if not value.is_integer():
                    raise self.fail(path, f"expected an integer, got {value!r}")
                return int(value)
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(path, f"expected a number, got {_show(value)}")
            return value
        if tp is str:
            if isinstance(value, Enum) or not isinstance(value, str):
                raise self.fail(path, f"expected a string, got {_show(value)}")
            return value
        if inspect.isclass(tp) and issubclass(tp, Enum):
            if isinstance(value, tp):
                return value
            try:
                return tp(value)
            except ValueError:
                allowed = ", ".join(repr(m.value) for m in tp)
                raise self.fail(path, f"{_show(value)} is not one of {allowed}") from None
        if is_typeddict(tp):
            return self.check_dict(value, tp, path)
        origin = typing.get_origin(tp)
        if origin in (list, collections.abc.Sequence):
            if not isinstance(value, (list, tuple)):
                raise self.fail(path, f"expected a list, got {_show(value)}")
            (item,) = typing.get_args(tp) or (Any,)
            return [self.check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if origin in (dict, collections.abc.Mapping):
            if not isinstance(value, Mapping):
                raise self.fail(path, f"expected a mapping, got {_show(value)}")
            key_tp, val_tp = typing.get_args(tp) or (Any, Any)
            out = {}
            for k, v in value.items():
                if key_tp is str and not isinstance(k, str):
                    raise self.fail(path, f"keys must be strings, got {_show(k)}")
                out[k] = self.check(v, val_tp, f"{path}[{k!r}]")
            return out
        if inspect.isclass(tp) and not isinstance(value, tp):
            raise self.fail(path, f"expected {_describe(tp)}, got {_show(value)}")
        return value

    def _not_plain(self, path: str, plain: list) -> ComponentArgsError:
        return self.fail(
            path,
            "must be a plain value known at preview, not an Output (it decides which resources exist); "
            f"expected {_describe(plain[0]) if plain else 'a plain value'}",
        )

    def check_dict(self, value: Any, td: type, path: str) -> dict:
        prefix = f"{path}." if path else ""
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected an object ({td.__name__}), got {_show(value)}")
        hints = type_hints(td)
        required = set(getattr(td, "__required_keys__", set()))
        for key in value:
            if key not in hints:
                raise self.fail(f"{prefix}{key}", _unknown_key(key, hints))
        for key in sorted(required):
            if key not in value:
                raise self.fail(
                    f"{prefix}{key}", f"required key missing ({td.__name__} needs {', '.join(sorted(required))})"
                )
        out = {}
        for key, v in value.items():
            if v is None and key not in required:
                continue  # "not given": the component's default applies
            out[key] = self.check(v, hints[key], f"{prefix}{key}")
        return out


def _unknown_key(key: str, hints: Mapping[str, Any]) -> str:
    snake = _camel_to_snake(str(key))
    if snake in hints:
        return f"unknown key; did you mean {snake}?"
    close = difflib.get_close_matches(str(key), list(hints), n=1, cutoff=0.6) or difflib.get_close_matches(
        snake, list(hints), n=1, cutoff=0.6
    )
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; known keys: {', '.join(sorted(hints))}"


def validate_args(component: str, name: str, args: Any, args_type: type[TD]) -> TD:
    """A normalized copy of ``args`` checked against the TypedDict ``args_type``; raises
    ``ComponentArgsError`` naming ``component``, ``name`` and the key path."""
    return _Checker(component, name).check_dict(args, args_type, "")  # type: ignore[return-value]


def validate_value(component: str, name: str, path: str, value: Any, tp: Any) -> Any:
    """Check one value against an annotation (for helpers that take a single typed value)."""
    return _Checker(component, name).check(value, tp, path)


def plain_value(component: str, name: str, path: str, value: Any | None) -> Any:
    """Refuse an Output where a component needs the value now (to decide what it creates)."""
    if _is_deferred(value):
        raise ComponentArgsError(component, name, path, "must be a plain value known at preview, not an Output")
    return value


# --- which args stay plain, and why (an arg another resource's Output can feed is an Input) ---
_SHAPE = "decides which children exist or their shape (switch, enum, count), known at preview"
_CHECKED = "a number or duration checked at preview (fit check, budgets, bounds, alert/scale rules)"
_FIT = "a fact of the GPU pool the fit check measures against at preview"
_ENGINE = "a vLLM engine setting: the fit check, budgets and flag checks read it at preview"
_KEY = "a key or name composed into other names, keys or addresses at preview"

#: Every component arg (``Type.field``) that is plain in the schema rather than a ``pulumi.Input``,
#: with the reason. Anything else that names or points at another object (namespaces, names,
#: URLs, paths, images, labels, secrets, classes) takes an Output; tests/contract/test_provider_host.py
#: fails on a plain field missing here.
PLAIN_BY_DESIGN: dict[str, str] = {
    # GpuAutoscaling
    "ScaledWorkloadArgs.name": "names the ScaledObject and its triggers' child resources (Pulumi names are plain)",
    **{
        f"ScaledWorkloadArgs.{f}": _CHECKED
        for f in (
            "startup_budget_seconds",
            "scheduling_seconds",
            "min_replicas",
            "max_replicas",
            "target",
            "cooldown_seconds",
            "kv_cache_target",
            "ttft_p95_seconds",
            "polling_interval_seconds",
            "http_concurrency_target",
        )
    },
    "ScaledWorkloadArgs.metric": _SHAPE,
    **{
        f"CronScheduleArgs.{f}": "a cron window checked as KEDA parses it, at preview"
        for f in ("start", "end", "timezone")
    },
    "CronScheduleArgs.min_replicas": _CHECKED,
    "GpuAutoscaling.install_keda": _SHAPE,
    "GpuAutoscaling.http_add_on": _SHAPE,
    "GpuAutoscaling.keda_namespace": (
        "the interceptor's and external scaler's in-cluster addresses are composed from it at preview"
    ),
    "GpuAutoscaling.keda_release_name": (
        "the charts name their Services after the release; KEDA's addresses are composed from it at preview"
    ),
    "GpuAutoscaling.http_add_on_release_name": (
        "the charts name their Services after the release; KEDA's addresses are composed from it at preview"
    ),
    # every component that installs a pinned chart (llmstack_k8s._core.helm)
    "ChartSourceArgs.directory": (
        "becomes each release's chart (the package's path, checked to exist at preview) in place of its repository"
    ),
    "ChartSourceArgs.mirror": _SHAPE
    + ": an oci:// mirror makes the chart a registry reference without repository options",
    # GpuNodePool (and the capacity/contract it hands on)
    "GpuNodePool.install": _SHAPE,
    "GpuNodePool.gpu_feature_discovery": _SHAPE,
    "GpuNodePool.install_driver": _SHAPE,
    **{f"SharingArgs.{f}": _SHAPE for f in ("strategy", "replicas", "rename_resource", "mig_strategy")},
    "SharingArgs.mig_profile": "checked against the GPU product's MIG profiles at preview; decides the resource name",
    **{f"GpuArgs.{f}": _FIT for f in ("product", "memory_gib", "per_node")},
    **{
        f"TaintArgs.{f}": "matched against the serving pods' tolerations at preview" for f in ("key", "value", "effect")
    },
    "RuntimeClassArgs.create": _SHAPE,
    "PriorityClassArgs.create": _SHAPE,
    "PriorityClassArgs.value": _CHECKED,
    "PriorityClassArgs.preempt": _SHAPE,
    "KarpenterArgs.gpu_limit": "checked against the models' minimum GPUs at preview",
    **{
        f"KarpenterArgs.{f}": "a Karpenter setting checked against its enum/format at preview"
        for f in (
            "capacity_types",
            "consolidation_policy",
            "consolidate_after",
            "disruption_budget_nodes",
            "expire_after",
            "weight",
        )
    },
    **{
        f"NodeRequirementArgs.{f}": "a node-selector term checked (operator, values) at preview"
        for f in ("key", "operator", "values")
    },
    "GpuCapacityArgs.gpu_resource_name": (
        "compared with the contract's resource at preview (the capacity must describe the same pool)"
    ),
    **{f"GpuCapacityArgs.{f}": _FIT for f in ("sharing", "pods_per_gpu", "device_memory_gib")},
    "SchedulingContractArgs.gpu_shared": _SHAPE,
    # InferencePool
    "InferencePool.serves_lora": _SHAPE,
    "InferencePool.failure_mode": _SHAPE,
    "InferenceObjectiveArgs.served_model_name": (
        "names the InferenceObjective (the picker finds it by name); checked as an object name at preview"
    ),
    "InferenceObjectiveArgs.priority": _CHECKED,
    # BodyRouter
    "BodyRouter.provider": _SHAPE,
    "BodyRouter.replicas": _CHECKED,
    # KnativeServing
    "KnativeServing.features": "config-features flags checked against what the vLLM pod needs at preview",
    "KnativeServing.max_revision_timeout_seconds": _CHECKED,
    "KnativeServing.allow_zero_initial_scale": _SHAPE,
    # the serving components' engine
    **{
        f"VllmEngineArgs.{f}": _ENGINE
        for f in (
            "tensor_parallel_size",
            "pipeline_parallel_size",
            "max_model_len",
            "gpu_memory_utilization",
            "dtype",
            "quantization",
            "enable_prefix_caching",
            "max_num_seqs",
            "max_loras",
            "extra_args",
        )
    },
    "LoraAdapterArgs.rank": _ENGINE,
    # KnativeVllmService / VllmService
    **{
        f"{c}.{f}": _CHECKED
        for c in ("KnativeVllmService", "VllmService")
        for f in ("weights_gib", "startup_budget_seconds")
    },
    **{
        f"{c}.shm_size": "compared with the container's memory at preview (/dev/shm counts against it)"
        for c in ("KnativeVllmService", "VllmService", "MultiNodeVllmService")
    },
    # MultiNodeVllmService: the group's shape (pods, GPUs per pod, placement) is decided and checked at preview
    **{
        f"MultiNodeVllmService.{f}": _CHECKED
        for f in (
            "gpus_per_node",
            "replicas",
            "weights_gib",
            "startup_budget_seconds",
            "scheduling_seconds",
            "max_surge",
            "max_unavailable",
        )
    },
    "MultiNodeVllmService.warmup": _SHAPE,
    "MultiNodeVllmService.group_topology_key": "a node label key in the pods' affinity terms (keys cannot be Outputs)",
    "RdmaArgs.resource_name": "a key of the container's resource requests and limits (keys cannot be Outputs)",
    "RdmaArgs.per_pod": _CHECKED,
    **{
        f"KnativeScalingArgs.{f}": _CHECKED
        for f in (
            "min_scale",
            "max_scale",
            "initial_scale",
            "target_concurrency",
            "container_concurrency",
            "scale_down_delay",
            "stable_window",
            "panic_window_percentage",
        )
    },
    "KnativeVllmService.progress_deadline_seconds": _CHECKED,
    "KnativeVllmService.request_timeout_seconds": _CHECKED,
    "KnativeVllmService.enabled_features": "compared with the flags the pod spec needs at preview",
    "KnativeVllmService.cluster_local": _SHAPE,
    "VllmService.replicas": _CHECKED,
    "VllmService.autoscaled": _SHAPE,
    "VllmService.max_replicas": _CHECKED,
    "VllmService.warmup": _SHAPE,
    "VllmService.canary_of": (
        "the name of the model this is a canary of (a component name, plain like every Pulumi "
        "name), put on the pods as a label"
    ),
    "KnativeVllmService.warmup": _SHAPE,
    "VllmService.scheduling_seconds": _CHECKED,
    "ObjectStorageArgs.uri": (
        "the weights' bucket and prefix: scheme and bucket name checked at preview; decide the "
        "pod's shape (no cache volume)"
    ),
    "ObjectStorageArgs.concurrency": _CHECKED,
    "ObjectStorageArgs.memory_limit_bytes": _CHECKED,
    "RolloutArgs.max_surge": _CHECKED,
    "RolloutArgs.max_unavailable": _CHECKED,
    # ModelCache
    "ModelCache.model": "the Hub id: the cache's path and the download's marker are composed from it at preview",
    "ModelCache.revision": "a pinned commit checked (no moving tags) at preview; part of the cache's path",
    "ModelCache.access_mode": _SHAPE,
    "ModelCache.backoff_limit": _CHECKED,
    "ModelCache.active_deadline_seconds": _CHECKED,
    "AdapterSourceArgs.model": "the adapter's Hub id: its directory in the cache is composed from it at preview",
    "AdapterSourceArgs.revision": "a pinned commit checked at preview; part of the adapter's path",
    # ModelRoute
    "ModelRoute.kind": _SHAPE,
    "ModelRoute.request_timeout_seconds": _CHECKED,
    "CanaryBackendArgs.weight": _CHECKED,
    "KnativeBackendArgs.cold_start_seconds": (
        "added to the request budget into the route's timeouts (a duration string) at preview"
    ),
    "KnativeCanaryArgs.weight": _CHECKED,
    "IngressArgs.max_body_size": "an nginx size checked at preview",
    # Observability
    "MonitoredModelArgs.name": "names the model's alert rules and dashboard panels",
    "MonitoredModelArgs.ttft_p95_seconds": _CHECKED,
    "MonitoredModelArgs.always_on": _SHAPE,
    "Observability.namespace": (
        "created with create_namespace, and composed into the Prometheus/Grafana URLs at preview"
    ),
    "Observability.create_namespace": _SHAPE,
    "Observability.install_prometheus_stack": _SHAPE,
    "Observability.install_dcgm_exporter": _SHAPE,
    "Observability.scrape_interval": _CHECKED,
    "PrometheusArgs.storage_size": _CHECKED,
    **{
        f"AlertThresholdsArgs.{f}": "an alert threshold written into PromQL and checked at preview"
        for f in (
            "no_ready_replica_minutes",
            "queue_waiting_requests",
            "queue_minutes",
            "kv_cache_usage_ratio",
            "kv_cache_minutes",
            "preemptions_per_minute",
            "ttft_p95_seconds",
            "slo_minutes",
            "error_ratio",
            "pod_restarts_per_hour",
            "gpu_memory_ratio",
            "gpu_temperature_celsius",
        )
    },
    **{
        f"ObservabilityNamesArgs.{f}": "the name of an object Observability creates itself; " + _KEY
        for f in (
            "pod_monitor",
            "prometheus_rule",
            "dashboard_prefix",
            "grafana_admin_secret",
            "prometheus_stack_release",
            "dcgm_exporter_release",
        )
    },
    # Team
    "Team.namespace": (
        "the namespace the Team creates and owns; the quota and the boundary are checked against it at preview"
    ),
    "Team.gpu_resource_name": "a ResourceQuota key (requests.<resource>): keys cannot be Outputs",
    "TeamQuotaArgs.gpus": _CHECKED,
}
