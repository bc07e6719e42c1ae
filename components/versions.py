"""Every chart and image the project installs, pinned in one place (never ``latest``).

The default vLLM image is the version whose flags and metric names the test suite verifies
against a real server (tests/e2e); ``tests/unit/test_versions.py`` fails when the two drift apart.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    repo: str
    chart: str
    version: str


#: vLLM release the stack is built and verified against.
VLLM_VERSION = "0.32.0"
VLLM_IMAGE = f"docker.io/vllm/vllm-openai:v{VLLM_VERSION}"

#: Small image for the cache-ready init check (needs only ``sh`` and ``test``).
BUSYBOX_IMAGE = "docker.io/library/busybox:1.37.0"

NVIDIA_DEVICE_PLUGIN = Chart("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.20.0")
GPU_OPERATOR = Chart("https://helm.ngc.nvidia.com/nvidia", "gpu-operator", "v26.7.0")
DCGM_EXPORTER = Chart("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter", "4.8.2")
KUBE_PROMETHEUS_STACK = Chart("https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "88.5.3")
KEDA = Chart("https://kedacore.github.io/charts", "keda", "2.20.2")
KEDA_HTTP_ADDON = Chart("https://kedacore.github.io/charts", "keda-add-ons-http", "0.15.0")
KNATIVE_OPERATOR = Chart("https://knative.github.io/operator", "knative-operator", "v1.23.0")
KNATIVE_SERVING_VERSION = "1.23.0"
#: LeaderWorkerSet controller (kubernetes-sigs/lws): runs a model replica across several nodes
#: (MultiNodeVllmService). Published only as an OCI chart (its installation docs: ``helm install lws
#: oci://registry.k8s.io/lws/charts/lws --version=0.10.0``); serves leaderworkerset.x-k8s.io/v1.
LWS = Chart("oci://registry.k8s.io/lws/charts", "lws", "0.10.0")

#: Idle container of the image pre-pull DaemonSet (keeps the pulled images in use on each node).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

#: The Gateway API Inference Extension's Endpoint Picker (EPP): picks the replica of an
#: InferencePool for each request (queue depth, KV-cache use, prefix-cache affinity, LoRA). v1.5.0
#: serves InferencePool inference.networking.k8s.io/v1 (the CRD version the tests validate against).
EPP_VERSION = "v1.5.0"
EPP_IMAGE = f"registry.k8s.io/gateway-api-inference-extension/epp:{EPP_VERSION}"
#: The same release's body-based router (BBR): copies the request body's "model" into the headers the
#: routes match and the picker reads (components/body_router.py mirrors its chart at this tag).
BBR_IMAGE = f"registry.k8s.io/gateway-api-inference-extension/bbr:{EPP_VERSION}"


# --- The real-engine toolchain (tests' cluster tier and `make demo`) --------------------------
# Built from Go modules by scripts/toolchain.py and cached under a stamp of these values; a user's own
# `pulumi` / kube-apiserver / etcd / kubeconfig is used instead where present (see the README).

#: Pulumi CLI (github.com/pulumi/pulumi/pkg/v3) and its Python and Node.js language hosts. The hosts are
#: separate Go modules that the module proxy does not serve: their source is vendored from this tag in
#: third_party/ and built against pkg/v3 and sdk/v3 of the same version. The Python SDK is pinned to the
#: same release (pyproject's ``test`` extra) so program, host and engine agree.
PULUMI_VERSION = "3.259.0"
#: pulumi-kubernetes: the provider module is served only as the pseudo-version of tag v4.25.0's commit,
#: so the Python SDK is pinned to 4.25.0 as well (the engine matches plugin and SDK versions).
PULUMI_KUBERNETES_VERSION = "4.25.0"
PULUMI_KUBERNETES_PROVIDER_MODULE = "v4.0.0-20260115033456-f47bc2d6f199"
#: pulumi-random: the proxy serves no provider module at all; v4.19.1 is the newest release whose
#: dependencies it serves (third_party/pulumi-resource-random/NOTICE.md), so its source is vendored and
#: the Python SDK pinned to it.
PULUMI_RANDOM_VERSION = "4.19.1"
#: The local control plane: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl.
KUBERNETES_VERSION = "1.36.3"
ETCD_VERSION = "3.6.16"
#: kwok: simulated nodes and pod lifecycle (no containers run).
KWOK_VERSION = "0.8.0"
