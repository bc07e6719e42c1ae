"""What the committed dev and prod stacks deliver, and the stack outputs users consume."""

import json
import os

import pulumi
import yaml

from conftest import ROOT, rendered_stack
from stacks.compose import stack as composition
from stacks.config import loader
from stacks.tools.render import RecordingMocks, stack_config_env


def gpus(dep):
    res = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    return sum(int(v) for k, v in res.items() if k.startswith("nvidia.com/"))


def test_dev_serves_one_small_model_on_one_gpu():
    deps = rendered_stack("dev").of_kind("Deployment")
    servers = [d for d in deps if d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"]
    assert len(servers) >= 1
    assert gpus(servers[0]) == 1


def test_prod_serves_several_models_one_with_tensor_parallelism():
    servers = [
        d
        for d in rendered_stack("prod").of_kind("Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]
    assert len(servers) >= 2
    tp = [
        d
        for d in servers
        if "--tensor-parallel-size" in (a := d["spec"]["template"]["spec"]["containers"][0]["args"])
        and int(a[a.index("--tensor-parallel-size") + 1]) > 1
    ]
    assert tp and gpus(tp[0]) > 1
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so["spec"] for so in rendered_stack("prod").of_kind("ScaledObject")}
    for d in servers:
        name = d["metadata"]["name"]
        # An autoscaled Deployment leaves replicas to the HPA; its floor is the ScaledObject's.
        floor = d["spec"]["replicas"] if "replicas" in d["spec"] else scaled[name]["minReplicaCount"]
        assert floor >= 2, f"{name}: production needs at least 2 replicas"


def test_each_model_gets_its_cache_and_the_server_mounts_it(rendered):
    claims = {p["metadata"]["name"] for p in rendered.of_kind("PersistentVolumeClaim")}
    jobs = rendered.of_kind("Job")
    for dep in rendered.of_kind("Deployment"):
        if dep["metadata"]["labels"].get("app.kubernetes.io/component") != "server":
            continue
        pod = dep["spec"]["template"]["spec"]
        claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v)
        assert claim in claims
        model_arg = pod["containers"][0]["args"][pod["containers"][0]["args"].index("--model") + 1]
        assert any(
            e.get("value") == model_arg for j in jobs for e in j["spec"]["template"]["spec"]["containers"][0]["env"]
        ), "the server serves exactly the directory the download Job fills"


def test_stack_files_keep_the_token_secret():
    for stack in ("dev", "prod"):
        raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert set(raw["llmstack:huggingfaceToken"]) == {"secure"}
        assert "hf_" not in json.dumps(raw)


def test_outputs_endpoints_names_and_secret_api_key():
    project, config, secrets = stack_config_env("prod")
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    os.environ["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(secrets)
    try:
        pulumi.runtime.set_mocks(RecordingMocks(), project=project, stack="prod", preview=True)
        cfg = loader.load(project, "prod")

        @pulumi.runtime.test
        def run():
            out = composition.build(cfg)
            model_outputs = {
                name: pulumi.Output.all(v["endpoint"], v["servedModelName"]) for name, v in out["models"].items()
            }

            def check(args):
                resolved, is_secret = args
                assert is_secret, "the API key output must be a secret"
                for name, (endpoint, served) in resolved.items():
                    team = cfg.team_of(name)  # a team's model lives in the team's namespace
                    assert (
                        endpoint
                        == f"http://{name}.{team.effective_namespace if team else 'llm'}.svc.cluster.local:8000/v1"
                    )
                    assert served == next(m.served_name for m in cfg.models if m.name == name)

            return pulumi.Output.all(pulumi.Output.all(**model_outputs), pulumi.Output.is_secret(out["apiKey"])).apply(
                check
            )

        run()
    finally:
        os.environ.pop("PULUMI_CONFIG")
        os.environ.pop("PULUMI_CONFIG_SECRET_KEYS")


def test_prod_deploys_only_to_its_named_context():
    """Pulumi.prod.yaml requires an explicit context: without kubernetes:context it is refused
    (it would otherwise deploy wherever kubectl points), with it the provider gets that context."""
    import pytest

    from stacks.tools.render import run_program

    project, config, secrets = stack_config_env("prod")
    assert config.pop("kubernetes:context") == "prod"
    mocks = RecordingMocks()
    with pytest.raises(
        loader.StackConfigError,
        match=r"Pulumi.prod.yaml: llmstack:kubernetes.requireContext: true, but no context is set",
    ):
        run_program(project, "prod", config, secrets, mocks=mocks)
    assert mocks.registrations == []
