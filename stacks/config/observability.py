"""The stack file's observability keys: Prometheus, Grafana, DCGM exporter, alert thresholds."""

import re

from pydantic import Field, model_validator

from llmstack_k8s.observability.alerts import DEFAULT_THRESHOLDS
from llmstack_k8s.observability.observability import DEFAULT_DCGM_NAMESPACE

from .base import ConfigProblem
from .base import StackModel as _Model
from .quantities import (
    BYTES_BINARY as _BYTES_BINARY,
)
from .quantities import (
    BYTES_PROM as _BYTES_PROM,
)
from .quantities import (
    DNS_LABEL,
    TTFT_MAX_SECONDS,
    Cpu,
    Size,
    ttft_unit_message,
)

_T = DEFAULT_THRESHOLDS


class AlertsConfig(_Model):
    """When the alerts fire (stack-wide; per-model TTFT SLO is models[].sloTtftP95Seconds)."""

    no_ready_replica_minutes: int = Field(
        _T["no_ready_replica_minutes"],
        ge=1,
        le=240,
        description="Minutes with no replica of an always-on model serving before VllmModelDown.",
    )
    queue_waiting_requests: int = Field(
        _T["queue_waiting_requests"], ge=1, description="Waiting requests per model that count as a queue."
    )
    queue_minutes: int = Field(
        _T["queue_minutes"], ge=1, le=240, description="Minutes the queue must last before VllmQueueBuildingUp."
    )
    kv_cache_usage_ratio: float = Field(
        _T["kv_cache_usage_ratio"],
        gt=0,
        le=1,
        description="KV-cache use (0..1) of a replica for VllmKvCacheNearlyFull.",
    )
    kv_cache_minutes: int = Field(
        _T["kv_cache_minutes"], ge=1, le=240, description="Minutes above that ratio before it fires."
    )
    preemptions_per_minute: float = Field(
        _T["preemptions_per_minute"], ge=0, description="Preemptions per minute per model for VllmPreemptionsRising."
    )
    ttft_p95_seconds: float = Field(
        _T["ttft_p95_seconds"],
        gt=0,
        description="Default TTFT p95 SLO (seconds, at most 60) for models without sloTtftP95Seconds.",
    )
    slo_minutes: int = Field(
        _T["slo_minutes"], ge=1, le=240, description="Minutes an SLO must be breached before it alerts."
    )
    error_ratio: float = Field(
        _T["error_ratio"], gt=0, le=1, description="Fraction of requests ending in error for VllmHighErrorRate."
    )
    pod_restarts_per_hour: int = Field(
        _T["pod_restarts_per_hour"], ge=1, description="Container restarts per hour for VllmPodRestarting."
    )
    gpu_memory_ratio: float = Field(
        _T["gpu_memory_ratio"],
        gt=0,
        le=1,
        description="GPU memory use (0..1) for GpuMemoryNearlyFull; above every model's gpuMemoryUtilization.",
    )
    gpu_temperature_celsius: int = Field(
        _T["gpu_temperature_celsius"], ge=50, le=120, description="GPU temperature for GpuTemperatureHigh."
    )

    @model_validator(mode="after")
    def _units(self):
        if self.ttft_p95_seconds > TTFT_MAX_SECONDS:
            raise ConfigProblem("ttftP95Seconds", ttft_unit_message(self.ttft_p95_seconds))
        return self


class PrometheusConfig(_Model):
    """Prometheus of the kube-prometheus-stack install."""

    retention: str = Field(
        "7d", pattern=r"^[0-9]+(ms|s|m|h|d|w|y)$", description="How long samples are kept (e.g. 15d)."
    )
    retention_size: str | None = Field(
        None,
        pattern=r"^[0-9]+(B|KB|MB|GB|TB|PB)$",
        description="Most disk the TSDB may use (e.g. 85GB; default 85% of storageSize).",
    )
    storage_size: Size | None = Field(
        None, description="Persistent volume for the TSDB (e.g. 100Gi); without it, data is lost when the pod moves."
    )
    storage_class: str | None = Field(None, description="StorageClass of that volume.")
    cpu: Cpu = Field("500m", description="CPU request.")
    memory: Size = Field("2Gi", description="Memory request and limit.")

    @model_validator(mode="after")
    def _fits(self):
        if self.retention_size and not self.storage_size:
            raise ValueError("retentionSize is set without storageSize: the TSDB lives in an emptyDir; set storageSize")
        if self.retention_size and self.storage_size:
            num, unit = re.match(r"^([0-9]+)([A-Z]+)$", self.retention_size).groups()
            snum, sunit = re.match(r"^([0-9.]+)([KMGTP]i)?$", self.storage_size).groups()
            if int(num) * _BYTES_PROM[unit] >= float(snum) * _BYTES_BINARY.get(sunit, 1):
                raise ValueError(
                    f"retentionSize {self.retention_size} does not fit in storageSize {self.storage_size}; keep it "
                    "~15% below (WAL and compaction need room)"
                )
        return self

    @property
    def effective_retention_size(self) -> str | None:
        if self.retention_size or not self.storage_size:
            return self.retention_size
        m = re.match(r"^([0-9.]+)([KMGTP]i)?$", self.storage_size)
        assert m is not None  # the Size type's pattern
        snum, sunit = m.groups()
        mib = int(float(snum) * _BYTES_BINARY.get(sunit, 1) * 0.85) // 2**20
        return f"{mib // 1024}GB" if mib % 1024 == 0 else f"{mib}MB"


class ObservabilityConfig(_Model):
    """Prometheus, Grafana, DCGM exporter, alerts and dashboards."""

    namespace: str = Field(
        "monitoring",
        pattern=DNS_LABEL,
        max_length=63,
        description="Namespace of Prometheus, Grafana and the monitoring objects.",
    )
    install_prometheus_stack: bool = Field(
        True, description="Install kube-prometheus-stack; false: use an existing Prometheus Operator."
    )
    prometheus_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="In-cluster URL of an existing Prometheus (installPrometheusStack: false).",
    )
    grafana_url: str | None = Field(
        None, pattern=r"^https?://", description="URL of an existing Grafana (installPrometheusStack: false)."
    )
    monitor_labels: dict[str, str] | None = Field(
        None,
        description=(
            "Labels on monitors and rules that the Prometheus' selectors match (default release: "
            "kube-prometheus-stack)."
        ),
    )
    dcgm_exporter: bool = Field(True, description="Install the DCGM exporter (false where the GPU Operator runs one).")
    dcgm_exporter_namespace: str = Field(
        DEFAULT_DCGM_NAMESPACE,
        pattern=DNS_LABEL,
        max_length=63,
        description=(
            "With installPrometheusStack false: the namespace the stack creates for the DCGM exporter, labelled "
            "privileged (it runs as root with SYS_ADMIN and hostPath; your monitoring namespace's Pod Security level "
            "is not the stack's to know). Your Prometheus must select ServiceMonitors there with monitorLabels "
            "(kube-prometheus-stack's default selects every namespace). With installPrometheusStack true the exporter "
            "runs in namespace, which the stack creates privileged."
        ),
    )
    scrape_interval: str = Field("15s", pattern=r"^[0-9]+(s|m)$", description="Scrape interval of vLLM pods and GPUs.")
    prometheus: PrometheusConfig = Field(
        default_factory=PrometheusConfig, description="Prometheus retention, storage, resources."
    )
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert thresholds.")

    @model_validator(mode="after")
    def _existing_or_installed(self):
        if self.install_prometheus_stack and (self.prometheus_url or self.grafana_url):
            raise ValueError(
                "prometheusUrl/grafanaUrl name an existing install; set installPrometheusStack: false to use them"
            )
        if not self.install_prometheus_stack and not self.prometheus_url:
            raise ValueError(
                "installPrometheusStack is false: set prometheusUrl to the existing Prometheus' in-cluster URL"
            )
        if not self.install_prometheus_stack and "prometheus" in self.model_fields_set:
            raise ValueError("prometheus settings apply only when installPrometheusStack is true")
        return self
