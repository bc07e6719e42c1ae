"""Every metric name the stack uses exists in what the pinned vLLM and DCGM exporter export."""

from pathlib import Path

from llmstack_k8s.observability import metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def vllm_families() -> dict[str, str]:
    out = {}
    for line in (FIXTURES / "vllm-0.32.0-metrics.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, kind = line.split()
            out[name] = kind
    return out


def dcgm_fields() -> set[str]:
    out = set()
    for line in (FIXTURES / "dcgm-exporter-4.8.2-default-counters.csv").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.add(line.split(",")[0].strip())
    return out


def exported_wire_names() -> set[str]:
    """Wire names per the exposition format: counters as _total, histograms as _bucket/_sum/_count."""
    names = set()
    for name, kind in vllm_families().items():
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)  # the reference lists counters already with _total
    return names


def test_every_vllm_metric_is_exported_by_the_pinned_vllm():
    missing = sorted(metrics.VLLM_METRICS - exported_wire_names())
    assert not missing, f"not exported by vLLM 0.32: {missing}"


def test_every_dcgm_metric_is_a_default_counter():
    missing = sorted(metrics.DCGM_METRICS - dcgm_fields())
    assert not missing, f"not in the DCGM exporter's default counters: {missing}"


def test_removed_names_are_not_used():
    for gone in ("vllm:gpu_cache_usage_perc", "vllm:gpu_prefix_cache_hits", "vllm:time_per_output_token_seconds"):
        assert all(not n.startswith(gone) for n in metrics.VLLM_METRICS)
