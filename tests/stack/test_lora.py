"""LoRA adapters: config, download into the cache, the vLLM flags rendered from it, served
names unique across the stack, routing by adapter name. The real-vLLM suite serves a peft-made
adapter with the rendered flags (tests/e2e/test_real_vllm.py)."""

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import assert_refused, example_adapter_block, render_with, rendered_dev_with_adapter
from llmstack_k8s.edge.model_route import MODEL_NAME_HEADER
from llmstack_k8s.serving import model_cache
from llmstack_k8s.serving.model_cache import model_dir
from llmstack_k8s.serving.vllm_flags import load_table
from llmstack_k8s.serving.vllm_pod import COMPLETE_MARKER, LORA_RANKS, lora_rank_slot, vllm_args
from stack.test_cross_objects import BASE, H100_POOL, _render, model

SHA = "0123456789abcdef0123456789abcdef01234567"
ADAPTER = {"name": "m-sql", "model": "org/m-sql-lora", "revision": SHA, "rank": 8}


def server(objects, name):
    (d,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    return d["spec"]["template"]["spec"]


def words(container):
    return [str(a) for a in container["args"]]


def test_dev_serves_its_adapter_with_flags_derived_from_the_config():
    """Pulumi.dev.yaml's adapter example (kept commented in the file until its commit is pinned),
    switched on: the flags, the init container and the download Job all follow from it."""
    (a,) = example_adapter_block()
    _, _, cfg = _render("dev")
    m = cfg.models[0]
    assert not m.lora_adapters, "the deployable dev stack must not download an adapter whose commit is not pinned"
    objects = rendered_dev_with_adapter().objects
    pod = server(objects, m.name)
    args = words(pod["containers"][0])
    path = model_dir(a["model"], a["revision"])
    i = args.index("--lora-modules")
    assert args[i + 1] == f"{a['name']}={path}"
    assert "--enable-lora" in args
    assert args[args.index("--max-loras") + 1] == "1"
    assert int(args[args.index("--max-lora-rank") + 1]) == lora_rank_slot(a["rank"]) >= a["rank"]
    # The server starts only once the adapter is in the cache, like the base weights.
    wait = pod["initContainers"][0]["command"][-1]
    assert f"{path}/{COMPLETE_MARKER}" in wait and f"{model_dir(m.model, m.revision)}/{COMPLETE_MARKER}" in wait
    # The cache's download Job fetches it into that very directory.
    (job,) = [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == f"{m.name}-download"]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["ADAPTERS"]) == [{"dir": path, "model": a["model"], "revision": a["revision"]}]


def test_dev_adapter_example_uncommented_as_written_is_refused_until_pinned():
    """A user who uncomments dev's adapter without pinning its commit gets one message naming the key,
    and nothing is registered (the placeholder never reaches a download Job)."""
    import yaml

    from conftest import ADAPTER_SHA_PLACEHOLDER, ROOT

    (a,) = example_adapter_block(as_written=True)
    assert a["revision"] == ADAPTER_SHA_PLACEHOLDER
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    model = dict(stack["llmstack:models"][0], loraAdapters=[a])
    assert_refused(
        {"models": [model]}, "loraAdapters[0] (name: qwen2.5-0.5b-chatbot).revision: revision 'PASTE-ITS-COMMIT-SHA'"
    )


def test_max_lora_rank_is_the_smallest_slot_vllm_accepts():
    assert [lora_rank_slot(r) for r in (1, 2, 8, 12, 16, 300, 320, 321, 512)] == [1, 8, 8, 16, 16, 320, 320, 512, 512]
    with pytest.raises(ValueError):
        lora_rank_slot(513)


def test_lora_ranks_are_the_pinned_vllms_choices():
    assert sorted(int(c) for c in load_table().flag("max_lora_rank").choices) == list(LORA_RANKS)


def test_every_adapter_is_rendered_and_max_loras_overrides_the_count():
    engine = {
        "served_model_name": "base",
        "max_loras": 1,
        "lora_adapters": [
            {"name": "a", "path": "/models/a", "rank": 8},
            {"name": "b", "path": "/models/b", "rank": 64},
        ],
    }
    args = [str(x) for x in vllm_args(engine, "/models/base")]
    i = args.index("--lora-modules")
    assert args[i + 1 : i + 3] == ["a=/models/a", "b=/models/b"]
    assert args[args.index("--max-loras") + 1] == "1" and args[args.index("--max-lora-rank") + 1] == "64"
    assert "--enable-lora" not in [str(x) for x in vllm_args({"served_model_name": "base"}, "/m")]


def test_a_route_reaches_adapters_by_name():
    cfg = {
        **copy.deepcopy(BASE),
        "gpuPool": H100_POOL,
        "gateway": {"gatewayRef": {"name": "gw", "namespace": "edge"}},
        "models": [model("m", loraMemoryGiB=0.1, loraAdapters=[ADAPTER])],
    }
    (route,) = [o for o in render_with(cfg).objects if o["kind"] == "HTTPRoute"]
    names = [
        h["value"]
        for match in route["spec"]["rules"][0]["matches"]
        for h in match["headers"]
        if h["name"] == MODEL_NAME_HEADER
    ]
    assert names == ["m", "m-sql"]


def test_knative_models_serve_adapters_from_the_same_pod():
    cfg = {
        **copy.deepcopy(BASE),
        "gpuPool": H100_POOL,
        "models": [
            model(
                "kn",
                serving="knative",
                autoscaling={"minReplicas": 1, "maxReplicas": 1},
                loraMemoryGiB=0.1,
                loraAdapters=[ADAPTER],
            )
        ],
    }
    (ksvc,) = [
        o for o in render_with(cfg).objects if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative")
    ]
    args = words(ksvc["spec"]["template"]["spec"]["containers"][0])
    assert f"m-sql={model_dir(ADAPTER['model'], SHA)}" in args


# --- bad input ----------------------------------------------------------------------------------


def _stack(*models, **over):
    return {**copy.deepcopy(BASE), "gpuPool": H100_POOL, "models": list(models), **over}


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            _stack(model("a"), model("b", loraMemoryGiB=0.1, loraAdapters=[{**ADAPTER, "name": "a"}])),
            "models[1] (name: b).loraAdapters[0].name: 'a' is also models[0] (name: a).servedModelName",
        ),
        (
            _stack(
                model("a", loraMemoryGiB=0.1, loraAdapters=[ADAPTER]),
                model("b", loraMemoryGiB=0.1, loraAdapters=[ADAPTER]),
            ),
            "models[1] (name: b).loraAdapters[0].name: 'm-sql' is also models[0] (name: a).loraAdapters[0].name",
        ),
        (
            _stack(model("a", loraMemoryGiB=0.1, loraAdapters=[{**ADAPTER, "name": "a"}])),
            "loraAdapters[0].name: 'a' is the model's own served name",
        ),
        (
            _stack(model("a", loraMemoryGiB=0.1, loraAdapters=[ADAPTER, {**ADAPTER, "model": "org/other"}])),
            "loraAdapters[1].name: 'm-sql' is also loraAdapters[0]'s name",
        ),
        (_stack(model("a", maxLoras=2)), "maxLoras: is set but the model has no loraAdapters"),
        (_stack(model("a", maxLoras=2, loraAdapters=[ADAPTER])), "maxLoras: 2 is more than the model's 1 loraAdapters"),
        (_stack(model("a", loraMemoryGiB=0.1, loraAdapters=[{**ADAPTER, "revision": "main"}])), "moving branch"),
        (_stack(model("a", loraMemoryGiB=0.1, loraAdapters=[{**ADAPTER, "rank": 1024}])), "rank"),
        (
            _stack(model("a", loraMemoryGiB=0.1, loraAdapters=[{**ADAPTER, "gated": True}])),
            "loraAdapters[0].gated: the adapter is gated but huggingfaceToken is not set",
        ),
        (_stack(model("a", extraArgs=["--max-loras", "4"])), "maxLoras"),
        (_stack(model("a", extraArgs=["--enable-lora"])), "loraAdapters"),
    ],
)
def test_bad_lora_config_is_refused(config, expected):
    assert_refused(config, expected)


# --- the download Job's script, run for real against a stand-in hub -------------------------------

FAKE_HUB = textwrap.dedent("""
    import json, os, pathlib
    def snapshot_download(repo_id, revision, local_dir, token=None):
        with open(os.environ["CALLS"], "a") as f:
            f.write(json.dumps([repo_id, revision]) + "\\n")
        pathlib.Path(local_dir, "weights.bin").write_text(repo_id)
""")


def _run_download(tmp_path, adapters):
    hub = tmp_path / "hub"
    (hub / "huggingface_hub").mkdir(parents=True, exist_ok=True)
    (hub / "huggingface_hub" / "__init__.py").write_text(FAKE_HUB)
    env = {
        **os.environ,
        "PYTHONPATH": str(hub),
        "CALLS": str(tmp_path / "calls"),
        "MODEL_ID": "org/base",
        "MODEL_REVISION": SHA,
        "MODEL_DIR": str(tmp_path / "base"),
        "ADAPTERS": json.dumps(
            [{"model": m, "revision": SHA, "dir": str(tmp_path / m.split("/")[1])} for m in adapters]
        ),
    }
    subprocess.run([sys.executable, "-c", model_cache._DOWNLOAD_SCRIPT], env=env, check=True, capture_output=True)
    calls = [json.loads(line)[0] for line in (tmp_path / "calls").read_text().splitlines()]
    (tmp_path / "calls").unlink()
    return calls


def test_download_job_fetches_base_and_adapters_and_only_what_is_missing(tmp_path):
    assert _run_download(tmp_path, ["org/sql"]) == ["org/base", "org/sql"]
    for d in ("base", "sql"):
        assert (tmp_path / d / COMPLETE_MARKER).read_text() == SHA
    # An adapter added later: only it is fetched (the base weights are complete).
    assert _run_download(tmp_path, ["org/sql", "org/chat"]) == ["org/chat"]
    assert (tmp_path / "chat" / COMPLETE_MARKER).exists()


# --- the GPU fit check counts the adapter slots ---------------------------------------------------


def test_lora_slot_memory_follows_vllms_allocation():
    from llmstack_k8s.sizing import model_catalog
    from llmstack_k8s.sizing.lora import lora_slots_gib, lora_slots_gib_of

    # Llama-3.1-8B: per layer and rank, qkv 4096->6144, o 4096->4096, gate_up 4096->28672, down 14336->4096.
    per_layer_rank = (4096 + 6144) + (4096 + 4096) + (4096 + 28672) + (14336 + 4096)
    assert lora_slots_gib_of(model_catalog.known("meta-llama/Llama-3.1-8B-Instruct"), 4, 64) == pytest.approx(
        4 * 64 * per_layer_rank * 32 * 2 / 2**30
    )
    # qkv 256->768, o 256->256, gate_up 256->1024, down 512->256
    assert lora_slots_gib(
        layers=2, hidden_size=256, intermediate_size=512, kv_dim=256, max_loras=2, max_lora_rank=16
    ) == pytest.approx(2 * 16 * ((256 + 768) + (256 + 256) + (256 + 1024) + (512 + 256)) * 2 * 2 / 2**30)


L4_ONE_GPU = {"gpu": {"product": "NVIDIA-L4", "memoryGiB": 22, "perNode": 1}}
QWEN_7B = {
    "name": "q",
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "revision": SHA,
    "servedModelName": "q",
    "maxModelLen": 4096,
    "cache": {"size": "40Gi"},
    "resources": {"cpu": "4", "memory": "32Gi"},
    "weightsGiB": 15.2,
    "gpuMemoryUtilization": 0.9,
}


def test_the_fit_check_counts_the_adapter_slots():
    # 15.2 GiB of weights fit an L4 at 0.9 (room for a KV cache) ...
    ok = _stack({**QWEN_7B}, gpuPool=L4_ONE_GPU)
    assert any(o["kind"] == "Deployment" for o in render_with(ok).objects)
    # ... but not with 8 adapter slots at rank 256 reserved before the KV cache.
    many = [{**ADAPTER, "name": f"q-{i}", "rank": 256} for i in range(8)]
    assert_refused(_stack({**QWEN_7B, "loraAdapters": many}, gpuPool=L4_ONE_GPU), "LoRA slot(s) at rank 256")


def test_adapters_on_a_model_of_unknown_shape_need_their_memory_stated():
    unknown = model("a", loraAdapters=[ADAPTER])  # org/a: not in the catalog
    assert_refused(_stack(unknown), "loraMemoryGiB: not set, and the shape of org/a is not in the catalog")
    stated = model("a", loraAdapters=[ADAPTER], loraMemoryGiB=0.5)
    assert any(o["kind"] == "Deployment" for o in render_with(_stack(stated)).objects)
