import json

import pytest
import torch

from hw.embed_unit import EmbedError
from hw.isa import Op
from hw.memmap import MemoryMap
from hw.timing import embed_cycles, embed_reram_reads
from sim.embed_sim import EmbedWithStore, case_from_layout, reference
from sim.runner import require_simulator, run_cocotb
from sw.program.compiler import compile_program
from sw.program.executor import GoldenExecutor
from sw.program.layout import lay_out


def _cases(lay, lengths, seed, bad_row=False):
    """Golden EMBED cases (the executor's trace) of random sentences of ``lengths``."""
    c, mm = lay.config, lay.memmap
    g = torch.Generator().manual_seed(seed)
    ex = GoldenExecutor(lay)
    out = []
    for tokens in lengths:
        prog = compile_program(lay, tokens)
        cmd = prog.commands[0]
        assert cmd.op is Op.EMBED
        rows = torch.randint(0, c["vocab_size"], (1, tokens), generator=g)
        segs = torch.randint(0, c["type_vocab"], (1, tokens), generator=g)
        res = ex.run(prog.program_bytes(), rows, segs, trace=True)
        case = case_from_layout(lay, cmd, rows[0].tolist(), segs[0].tolist())
        want = res.trace[0].data["codes"][0].tolist()
        assert reference(case)[0] == want
        out.append({"ports": case.ports, "entries": case.entries, "want": want, "error": 0,
                    "reads": embed_reram_reads(cmd.cols, tokens, mm.n, mm.reram_word_bytes),
                    "cycles": embed_cycles(cmd.rows, cmd.cols, tokens, mm.n,
                                           mm.reram_word_bytes, mm.reram_latency)})
    if bad_row:
        bad = dict(out[-1], want=[], error=int(EmbedError.TOKEN_ROW))
        bad["entries"] = list(bad["entries"])
        bad["entries"][1] = c["vocab_size"]
        out.append(bad)
    return out, case.image


def _run(lay, lengths, simulator, tmp_path, max_cols):
    cases, image = _cases(lay, lengths, seed=3, bad_row=True)
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    top = EmbedWithStore(memmap=lay.memmap, image=image, max_cols=max_cols)
    return run_cocotb(top, "embed_unit", "sim.tb_embed", simulator=simulator,
                      params={"n": lay.n, "cases": str(path)})


@pytest.mark.rtl
@pytest.mark.slow
def test_embed_icarus_tiny_image(tmp_path):
    require_simulator("icarus")
    from sw.tiny_image import build_tiny_image

    lay = lay_out(build_tiny_image()[0], MemoryMap(n=4, reram_bytes=1024))
    res = _run(lay, [16, 5, 11], "icarus", tmp_path, max_cols=4)
    assert res["tests"] == 2


@pytest.mark.rtl
@pytest.mark.slow
def test_embed_verilator_small_image(tmp_path):
    require_simulator("verilator")
    from sw.image import read_image
    from tests.test_sw_default_image import SMALL_IMAGE

    img = read_image(SMALL_IMAGE)
    lay = lay_out(img, MemoryMap(n=img.hw.n, reram_bytes=1 << 20))
    res = _run(lay, [64, 23], "verilator", tmp_path, max_cols=8)
    assert res["tests"] == 2
