"""The layering rules: hw never imports sw or sim; what models share with gateware is plain
Python; the weight image and the matrix engine take the same vector widths."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from hw.matmul.config import MatmulConfig
from sw.image import HwParams

ROOT = Path(__file__).resolve().parents[1]


def test_hw_imports_neither_sw_nor_sim():
    bad = []
    for path in sorted((ROOT / "hw").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names
                    if n.split(".")[0] in ("sw", "sim")]
    assert not bad, bad


def test_models_load_no_amaranth():
    code = ("import sys\n"
            "import hw.checks, hw.layouts, hw.sfu_tables, hw.matmul.config\n"
            "import sw.golden.matmul, sw.golden.softmax, sw.golden.layernorm\n"
            "import sw.golden.entropy, sw.golden.sfu_math, sw.perf.matmul, sw.perf.sfu\n"
            "import sw.image, sw.matmul_buffers, sw.program.layout, sw.program.compiler\n"
            "import sw.program.executor, sw.program.cycles, sw.program.run\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'amaranth', 'torch'}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['torch']"


def test_plain_modules_load_neither_amaranth_nor_torch():
    code = ("import sys\n"
            "import hw.checks, hw.layouts, hw.sfu_tables, hw.matmul.config\n"
            "import hw.isa, hw.memmap, hw.memformats, hw.timing\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'amaranth', 'torch'}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("n", [2, 4, 16, 64])
def test_image_and_engine_take_the_same_widths(n):
    assert HwParams(n=n).n == MatmulConfig(n=n).n


@pytest.mark.parametrize("n", [1, 6, 128])
def test_image_refuses_what_the_engine_refuses(n):
    with pytest.raises(ValueError):
        MatmulConfig(n=n)
    with pytest.raises(ValueError, match=f"vector width n must be (at least 2|a power of two in "
                                         f"2..64), not {n}$"):
        HwParams(n=n)
