"""Start the plugin (provider/) the way Pulumi's Python language host does, and talk to it over
gRPC; Pulumi's package metaschema to check what it serves."""

import contextlib
import json
import re
import selectors
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import jsonschema
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: pulumi/pulumi pkg/codegen/schema/pulumi.json (commit bd47908e0d1dc907596f419a001dcbd0f76a4425).
METASCHEMA = FIXTURES / "pulumi" / "pulumi.json"


def metaschema_validator() -> jsonschema.Draft202012Validator:
    # The metaschema's semver patterns use ECMAScript named groups, (?<name>...); Python's re
    # spells them (?P<name>...). Nothing else differs.
    text = re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", METASCHEMA.read_text())
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@contextlib.contextmanager
def plugin(
    python: str, plugin_dir: Path, cwd: Path, timeout: float = 60
) -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    """``python <plugin_dir> <engine address>``, as ``pulumi-language-python`` runs a plugin: the
    host prints its port on stdout. The engine address is never called for GetSchema."""
    proc = subprocess.Popen(
        [python, str(plugin_dir), "127.0.0.1:1"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"the plugin printed no port within {timeout}s")
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            proc.kill()
            raise AssertionError(f"the plugin did not start: {port!r}\n{proc.stderr.read()}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=timeout)
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def get_schema(stub: provider_pb2_grpc.ResourceProviderStub) -> dict:
    return json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0)).schema)


def plugin_version(stub: provider_pb2_grpc.ResourceProviderStub) -> str:
    return stub.GetPluginInfo(empty_pb2.Empty()).version
