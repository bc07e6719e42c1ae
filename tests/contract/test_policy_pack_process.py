"""The pack as the Pulumi CLI runs it: ``python -m pulumi.policy`` starts policy/ as a gRPC analyzer
plugin; the engine asks for its policies, configures them and sends resources to analyze."""

import json
import subprocess
import sys

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from conftest import ROOT, rendered_stack

POLICY_DIR = ROOT / "policy"


@pytest.fixture(scope="module")
def analyzer():
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(POLICY_DIR)],
        cwd=POLICY_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.isdigit(), f"pack did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _struct(d: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(json.loads(json.dumps(d)))
    return s


def _deployment(stack="dev", name="qwen-0-5b"):
    for r in rendered_stack(stack).registrations:
        if r.type == "kubernetes:apps/v1:Deployment" and r.inputs["metadata"]["name"] == name:
            return r
    raise AssertionError(name)


def _request(reg, inputs=None):
    return analyzer_pb2.AnalyzeRequest(
        type=reg.type,
        properties=_struct(inputs or reg.inputs),
        urn=f"urn:pulumi:dev::llmstack::{reg.type}::{reg.name}",
        name=reg.name,
    )


def test_engine_sees_every_policy_with_its_level_and_schema(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "llmstack"
    policies = {p.name: p for p in info.policies}
    assert len(policies) == 13
    assert all(p.enforcementLevel == analyzer_pb2.MANDATORY for p in policies.values())
    assert "minStartupSeconds" in policies["vllm-startup-probe-budget"].configSchema.properties
    assert policies["pdb-selects-one-controller"].policy_type == analyzer_pb2.POLICY_TYPE_STACK


def test_analyze_reports_a_moving_tag_then_config_downgrades_it(analyzer):
    reg = _deployment()
    assert list(analyzer.Analyze(_request(reg)).diagnostics) == []
    broken = json.loads(json.dumps(reg.inputs))
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/vllm/vllm-openai:latest"
    diags = analyzer.Analyze(_request(reg, broken)).diagnostics
    assert [(d.policyName, d.enforcementLevel) for d in diags] == [("images-pinned", analyzer_pb2.MANDATORY)]
    assert "moving tag 'latest'" in diags[0].message
    # --policy-pack-config {"images-pinned": "advisory"} reaches the pack as Configure.
    analyzer.Configure(
        analyzer_pb2.ConfigureAnalyzerRequest(
            policyConfig={"images-pinned": analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.ADVISORY)}
        )
    )
    try:
        diags = analyzer.Analyze(_request(reg, broken)).diagnostics
        assert [d.enforcementLevel for d in diags] == [analyzer_pb2.ADVISORY]
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={}))


def test_analyze_stack_passes_the_rendered_stack(analyzer):
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=r.type, properties=_struct(r.inputs), urn=f"urn:pulumi:prod::llmstack::{r.type}::{r.name}", name=r.name
        )
        for r in rendered_stack("prod").registrations
        if r.custom
    ]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    assert list(response.diagnostics) == []
    without_netpol = [r for r in resources if not r.type.endswith(":NetworkPolicy")]
    diags = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=without_netpol)).diagnostics
    assert sorted(d.urn.rsplit("::", 1)[1] for d in diags) == ["llama-70b-deploy", "llama-8b-deploy"]
    assert {d.policyName for d in diags} == {"serving-pods-have-network-policy"}
