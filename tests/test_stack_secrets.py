"""The stack files carry real Pulumi passphrase-provider secrets (see scripts/pulumi_passphrase.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

_spec = importlib.util.spec_from_file_location("pulumi_passphrase", ROOT / "scripts" / "pulumi_passphrase.py")
assert _spec is not None and _spec.loader is not None
pp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pp)

#: Documented example passphrase of the committed example stacks (not a real secret).
EXAMPLE_PASSPHRASE = "llmstack-example-passphrase"
EXAMPLE_TOKEN = "hf_REPLACE_ME"

#: Upstream vector from github.com/pulumi/pulumi pkg/secrets/passphrase/manager_test.go
#: (`state` const; TestPassphraseManagerCorrectPassphraseReturnsSecretsManager uses passphrase
#: "password", TestPassphraseManagerIncorrectPassphraseReturnsErrorCrypter uses "password123").
UPSTREAM_STATE = "v1:fozI5u6B030=:v1:F+6ZduKKd8G0/V7L:PGMFeIzwobWRKmEAzUdaQHqC5mMRIQ=="
UPSTREAM_PASSPHRASE = "password"


def test_upstream_vector_decrypts() -> None:
    key = pp.key_from_salt_state(UPSTREAM_PASSPHRASE, UPSTREAM_STATE)
    assert len(key) == 32
    # The state's own check value is Go's encryption of the known plaintext "pulumi".
    assert pp.decrypt(key, UPSTREAM_STATE.split(":", 2)[2]) == "pulumi"


def test_upstream_vector_rejects_wrong_passphrase() -> None:
    with pytest.raises(pp.IncorrectPassphraseError):
        pp.key_from_salt_state("password123", UPSTREAM_STATE)


def test_round_trip() -> None:
    state = pp.new_salt_state("s3cret")
    parts = state.split(":")
    assert len(parts) == 5 and parts[0] == parts[2] == "v1"
    assert len(pp._b64decode(parts[1])) == 8  # 8-byte salt
    assert len(pp._b64decode(parts[3])) == 12  # 12-byte GCM nonce
    key = pp.key_from_salt_state("s3cret", state)
    for plaintext in ("hf_abc", "", "üñï:cødé / with colons"):
        ct = pp.encrypt(key, plaintext)
        assert ct.startswith("v1:") and ct.count(":") == 2
        assert pp.decrypt(key, ct) == plaintext
    assert pp.encrypt(key, "x") != pp.encrypt(key, "x")  # fresh nonce each time
    with pytest.raises(pp.IncorrectPassphraseError):
        pp.key_from_salt_state("wrong", state)
    with pytest.raises(ValueError):
        pp.decrypt(bytes(32), pp.encrypt(key, "x"))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_file_secret(stack: str) -> None:
    path = ROOT / f"Pulumi.{stack}.yaml"
    assert path.is_file(), f"{path.name} is missing"
    doc = yaml.safe_load(path.read_text())
    salt_state = doc.get("encryptionsalt")
    assert isinstance(salt_state, str) and salt_state.startswith("v1:"), f"{path.name}: no encryptionsalt"
    key = pp.key_from_salt_state(EXAMPLE_PASSPHRASE, salt_state)
    secure = doc["config"]["llmstack:huggingfaceToken"]
    assert set(secure) == {"secure"}, "a Pulumi secure value is a one-key map {secure: ...}"
    assert pp.decrypt(key, secure["secure"]) == EXAMPLE_TOKEN


def test_stacks_use_distinct_salts() -> None:
    salts = {yaml.safe_load((ROOT / f"Pulumi.{s}.yaml").read_text())["encryptionsalt"] for s in ("dev", "prod")}
    assert len(salts) == 2
