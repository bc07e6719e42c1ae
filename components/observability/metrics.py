"""Every metric name the stack uses (alerts, dashboards, autoscaling), in one place.

Names are those a live vLLM 0.32 exports (tests/fixtures/vllm-0.32.0-metrics.txt; the e2e
suite scrapes a real server) and the DCGM exporter 4.8.2 exports by default
(tests/fixtures/dcgm-exporter-4.8.2-default-counters.csv). Counters carry ``_total`` and
histograms ``_bucket/_sum/_count`` on the wire; the constants below are the wire names.
Do not write a metric name as a string literal anywhere else.
"""

# --- vLLM (label set: model_name, engine; some carry finished_reason) -----------------------
#: Label vLLM puts on every series: the served model name.
VLLM_MODEL_LABEL = "model_name"

VLLM_REQUESTS_RUNNING = "vllm:num_requests_running"
VLLM_REQUESTS_WAITING = "vllm:num_requests_waiting"
#: KV-cache use, a 0..1 fraction (successor of the removed vllm:gpu_cache_usage_perc).
VLLM_KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
VLLM_PREEMPTIONS = "vllm:num_preemptions_total"
VLLM_PREFIX_CACHE_QUERIES = "vllm:prefix_cache_queries_total"
VLLM_PREFIX_CACHE_HITS = "vllm:prefix_cache_hits_total"
VLLM_PROMPT_TOKENS = "vllm:prompt_tokens_total"
VLLM_GENERATION_TOKENS = "vllm:generation_tokens_total"
#: Finished requests, label finished_reason (stop, length, abort, error).
VLLM_REQUEST_SUCCESS = "vllm:request_success_total"
VLLM_TTFT_BUCKET = "vllm:time_to_first_token_seconds_bucket"
VLLM_ITL_BUCKET = "vllm:inter_token_latency_seconds_bucket"
VLLM_E2E_LATENCY_BUCKET = "vllm:e2e_request_latency_seconds_bucket"
VLLM_QUEUE_TIME_BUCKET = "vllm:request_queue_time_seconds_bucket"
VLLM_E2E_LATENCY_COUNT = "vllm:e2e_request_latency_seconds_count"

# --- DCGM exporter (label set: gpu, UUID, pci_bus_id, device, modelName, Hostname, + pod/namespace/
# container when the exporter maps GPUs to pods) ---------------------------------------------------
#: The node's name on every DCGM series. dcgm-exporter renamed it to ``hostname`` after 4.8.2: an
#: upgrade changes this line, and the alerts and dashboards follow (they take it from here).
DCGM_HOSTNAME_LABEL = "Hostname"
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
DCGM_FB_USED = "DCGM_FI_DEV_FB_USED"
DCGM_FB_FREE = "DCGM_FI_DEV_FB_FREE"
DCGM_GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
DCGM_POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
DCGM_XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"

VLLM_METRICS = {v for k, v in dict(globals()).items() if k.startswith("VLLM_") and k != "VLLM_MODEL_LABEL"}
DCGM_METRICS = {v for k, v in dict(globals()).items() if k.startswith("DCGM_") and not k.endswith("_LABEL")}

# --- kube-state-metrics (shipped with kube-prometheus-stack) and Prometheus' own scrape series --
#: Job failure condition (labels: namespace, job_name, condition="true"|"false"|"unknown").
KSM_JOB_FAILED = "kube_job_failed"
#: Container waiting reason (labels: namespace, pod, container, reason="CrashLoopBackOff", ...).
KSM_CONTAINER_WAITING_REASON = "kube_pod_container_status_waiting_reason"
KSM_CONTAINER_RESTARTS = "kube_pod_container_status_restarts_total"
KSM_METRICS = {KSM_JOB_FAILED, KSM_CONTAINER_WAITING_REASON, KSM_CONTAINER_RESTARTS}
#: 1 when Prometheus scraped a target successfully, 0 when the scrape failed.
PROM_UP = "up"


def family(wire_name: str) -> str:
    """The metric family a wire name belongs to (``x_total`` -> ``x``, ``x_bucket`` -> ``x``)."""
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        if wire_name.endswith(suffix):
            return wire_name[: -len(suffix)]
    return wire_name


# --- read by the Gateway API Inference Extension's Endpoint Picker (components/edge/inference_pool.py):
# per pod, to pick the replica for each request. Info gauges carry their facts as labels (no
# model_name), so they are not in VLLM_METRICS (whose series every query selects by model_name).
#: KV-cache block size and block count as labels (the picker's prefix-cache scorer sizes its index with them).
PICKER_CACHE_CONFIG_INFO = "vllm:cache_config_info"
#: Running and waiting LoRA adapters as labels; exported only by a server started with --enable-lora.
PICKER_LORA_REQUESTS_INFO = "vllm:lora_requests_info"
PICKER_METRICS = {
    VLLM_REQUESTS_WAITING,
    VLLM_REQUESTS_RUNNING,
    VLLM_KV_CACHE_USAGE,
    PICKER_CACHE_CONFIG_INFO,
    PICKER_LORA_REQUESTS_INFO,
}
