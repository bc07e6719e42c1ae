"""Where the stack's Helm charts come from (``charts``): the pins' upstream repositories by default; for
an air-gapped cluster a local directory of packaged charts or a private mirror. Names and versions
always come from the pins (``llmstack_k8s.versions``); every chart-installing component takes the
choice as its ``chart_source`` (``llmstack_k8s.helm``).

A relative ``directory`` is relative to the project directory (where Pulumi.yaml is): the loader
passes it as the validation context, and the model holds the absolute path the components take.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from llmstack_k8s import versions
from llmstack_k8s._core.helm import MIRROR, describe_pin, find_package, package_file_names, pull_command
from llmstack_k8s.cluster.gpu_node_pool import GpuInstall

from .base import ConfigProblem
from .base import StackModel as _Model
from .knative import ServingMode
from .multi_node import is_multi_node

#: The project directory when the loader names none: the stack program sits beside Pulumi.yaml.
PROJECT_DIR = Path(__file__).resolve().parents[2]
#: Validation context key of the project directory (``StackConfig.model_validate(..., context=...)``).
PROJECT_DIR_CONTEXT = "project_dir"


class ChartsConfig(_Model):
    """Where every Helm chart the stack installs comes from (default: each pin's upstream repository)."""

    directory: str | None = Field(
        None,
        description=(
            "Local directory of packaged charts, `<chart>-<version>.tgz` for every chart the stack installs "
            "(e.g. filled with `helm pull`); relative to the project directory. For clusters without internet access."
        ),
    )
    mirror: str | None = Field(
        None,
        description=(
            "Private mirror serving the same charts at the pinned versions: an `https://` (or `http://`) chart "
            "repository URL, or an `oci://` registry prefix (chart `<prefix>/<chart>`)."
        ),
    )

    @field_validator("mirror")
    @classmethod
    def _mirror_scheme(cls, value: str | None) -> str | None:
        if value is not None and not MIRROR.match(value):
            raise ValueError(
                f"{value!r} is neither an HTTP(S) chart repository URL (https://charts.example.com) nor an OCI "
                "registry prefix (oci://registry.example.com/charts)"
            )
        return value

    @field_validator("directory")
    @classmethod
    def _existing_directory(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        base = Path((info.context or {}).get(PROJECT_DIR_CONTEXT) or PROJECT_DIR)
        path = (base / Path(value).expanduser()).resolve()
        if not path.is_dir():
            where = "" if Path(value).expanduser().is_absolute() else f" (relative to the project directory {base})"
            raise ValueError(f"{path}{where} does not exist or is not a directory")
        return str(path)

    @model_validator(mode="after")
    def _one_source(self):
        if self.directory is not None and self.mirror is not None:
            raise ValueError("both directory and mirror are set; charts come from one place: keep one of them")
        return self

    def args(self) -> dict:
        """The component's ``chart_source`` (empty: the pins' upstream repositories)."""
        return {k: v for k, v in (("directory", self.directory), ("mirror", self.mirror)) if v is not None}

    def component_args(self) -> dict:
        """``{"chart_source": ...}`` for a chart-installing component's args, or nothing by default."""
        return {"chart_source": self.args()} if self.args() else {}


def installed_charts(cfg) -> list[tuple[versions.Chart, str]]:
    """(pin, the stack key that installs it) of every chart this stack's composition installs."""
    out: list[tuple[versions.Chart, str]] = []
    pool = cfg.gpu_pool
    if pool.install == GpuInstall.DEVICE_PLUGIN:
        out.append((versions.NVIDIA_DEVICE_PLUGIN, "gpuPool.install: devicePlugin"))
    elif pool.install == GpuInstall.GPU_OPERATOR:
        out.append((versions.GPU_OPERATOR, "gpuPool.install: gpuOperator"))
    o = cfg.observability
    if o.install_prometheus_stack:
        out.append((versions.KUBE_PROMETHEUS_STACK, "observability.installPrometheusStack"))
    if o.dcgm_exporter:
        out.append((versions.DCGM_EXPORTER, "observability.dcgmExporter"))
    if cfg.autoscaling.install_keda and any(m.keda_autoscaling is not None for m in cfg.models):
        out.append((versions.KEDA, "autoscaling.installKeda"))
        if cfg.autoscaling.http_add_on:
            out.append((versions.KEDA_HTTP_ADDON, "autoscaling.httpAddOn"))
    if cfg.knative.install and any(m.serving == ServingMode.KNATIVE for m in cfg.models):
        out.append((versions.KNATIVE_OPERATOR, "knative.install"))
    if cfg.leader_worker_set.install and any(is_multi_node(cfg, m) for m in cfg.models):
        out.append((versions.LWS, "leaderWorkerSet.install"))
    return out


def check_packages(cfg) -> None:
    """With ``charts.directory``, every chart the stack installs has its package there."""
    directory = cfg.charts.directory
    if directory is None:
        return
    missing = [(c, why) for c, why in installed_charts(cfg) if find_package(directory, c) is None]
    if not missing:
        return
    files = ", ".join(package_file_names(c)[0] for c, _ in missing)
    pins = "; ".join(f"{describe_pin(c)} for {why}" for c, why in missing)
    pulls = "; ".join(f"`{pull_command(c, directory)}`" for c, _ in missing)
    raise ConfigProblem(
        "charts.directory",
        f"{directory} has no package of {files}, which the stack installs (pinned: {pins}); "
        f"fetch it on a machine with access: {pulls}",
    )
