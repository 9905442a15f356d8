"""Sentences of an image on the tape bench (:mod:`sim.tape_bench`): the golden cases, the top
for the image's memory map (its Verilog cached across runs), the build, the run and the
comparison. Used by ``python -m sim.top_default`` and ``edgebert compare --bench tape``."""

import hashlib
import time
from inspect import signature
from pathlib import Path

__all__ = ["sentence_cases", "top_kwargs", "top_for", "tape_engine", "cached_verilog", "run_cases"]

_HW = Path(__file__).resolve().parent.parent / "hw"


def sentence_cases(lay, texts, early_exit):
    """``[(tokens, case, costs)]``: each text compiled (with or without early exit), run on the
    golden executor with its trace and priced by the cycle model, as
    :func:`sim.top_bench.sentence_case` describes it."""
    from sim.top_bench import sentence_case, token_words
    from sw.program.compiler import compile_program
    from sw.program.cycles import program_costs
    from sw.program.executor import GoldenExecutor
    from sw.program.frontend import encode_texts

    ex = GoldenExecutor(lay)
    enc, _ = encode_texts(lay, texts)
    out = []
    for e in enc:
        words = compile_program(lay, e.length, early_exit=early_exit).program_bytes()
        golden = ex.run(words, e.rows[None], e.segments[None], trace=True)
        costs = program_costs(words, ex, e.rows)
        out.append((e.length, sentence_case(lay, words, golden, costs,
                                            token_words(lay, e.rows, e.segments)), costs))
    return out


def top_kwargs(lay, *, small=False):
    """:class:`~hw.top.top.Top`'s parameters, other than the memory map, for running ``lay``:
    DVFS tables of up to 16 bins (or the image's), 16 layers (or the image's); ``small``: the
    registered n = 4 block's other parameters."""
    from hw.top.top import _MEMMAP_KEYS, _TINY, Top

    kwargs = {k: v for k, v in _TINY.items() if k not in _MEMMAP_KEYS} if small else {}
    kwargs.update(dvfs_bins=max(16, lay.dvfs_bins, kwargs.get("dvfs_bins", 0)),
                  max_layers=max(16, lay.config["layers"], kwargs.get("max_layers", 0)))
    # LayerNorm rows are E or H wide, the embedding unit takes rows of up to max_len codes, and
    # the engine's inner dimension K is E, H or the FFN width: an image larger than the top's
    # defaults (the 384-wide student: H = 384, FFN 1,536) gets a top with max_len its widest
    # row and max_k its largest K. Images within the defaults keep the default top.
    c, default = lay.config, signature(Top).parameters
    need = {"max_len": max(c[k] for k in ("emb_dim", "hidden", "max_len")),
            "max_k": max(c[k] for k in ("emb_dim", "hidden", "ffn"))}
    for k, v in need.items():
        if v > kwargs.get(k, default[k].default):
            kwargs[k] = v
    return kwargs


def top_for(lay, *, small=False):
    """``(top, kwargs)``: the :class:`~hw.top.top.Top` the tape bench runs ``lay`` on, with the
    layout's memory map, no image contents (the tapes load every memory), the ReRAM store as
    external storage that reads ``reram.hex`` from the run directory, and the parameters of
    :func:`top_kwargs`."""
    from hw.top.top import Top

    kwargs = top_kwargs(lay, small=small)
    return Top(memmap=lay.memmap, fmt=lay.fmt, reram_external=True,
               reram_init_file="reram.hex", **kwargs), kwargs


def tape_engine(lay, *, small=False):
    """The matrix engine's configuration inside :func:`top_for`'s top, without building it
    (:func:`sim.top_bench.bench_setup` needs only that)."""
    from hw.top.top import Top, engine_config

    max_k = top_kwargs(lay, small=small).get("max_k", signature(Top).parameters["max_k"].default)
    return engine_config(lay.memmap, lay.fmt, max_k)


def cached_verilog(lay, *, small=False, cache_dir=None, log=print):
    """``(Verilog text, seconds, cached)`` of :func:`top_for`'s top. The text is cached under
    ``cache_dir`` (default ``build/sim/verilog``) by the top's parameters and the contents of
    every ``hw/`` source file, so a second run on the same memory map skips the conversion
    (minutes at n = 16) and builds no top."""
    from hw.reram import external_verilog
    from hw.verilog_out import to_verilog
    from sim.runner import BUILD_ROOT

    kwargs = top_kwargs(lay, small=small)
    key = hashlib.sha1(repr((lay.memmap, lay.fmt, sorted(kwargs.items()))).encode())
    for f in sorted(_HW.rglob("*.py")):
        key.update(f.read_bytes())
    path = Path(cache_dir or BUILD_ROOT / "verilog") / f"top-tape-{key.hexdigest()[:12]}.v"
    if path.exists():
        return path.read_text(), 0.0, True
    log(f"writing the top's Verilog (n = {lay.n}; cached for the next run) ...")
    t0 = time.perf_counter()
    top, _ = top_for(lay, small=small)
    text = to_verilog(top, name="top") + external_verilog()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text, time.perf_counter() - t0, False


def run_cases(lay, cases, *, simulator="verilator", run_dir=None, small=False,
              cxx_opt="-O1", text=None, log=print):
    """Play ``cases`` (from :func:`sentence_cases`, the case dicts) on the tape bench; return
    ``{"verilog_s", "build_s", "run_s", "results"}`` with the per-sentence results of
    :func:`sim.tape_bench.compare_dump` (which raises :class:`~sim.tape_bench.TapeMismatch`
    at the first difference). ``text`` is the top's Verilog if the caller has it."""
    from hw.reram import hex_image
    from sim import tape_bench
    from sim.runner import BUILD_ROOT
    from sim.top_bench import bench_setup

    verilog_s = 0.0
    if text is None:
        text, verilog_s, _ = cached_verilog(lay, small=small, log=log)
    setup = bench_setup(lay, tape_engine(lay, small=small), preload=("aux", "desc"))
    setup["sentences"] = list(cases)
    run_dir = Path(run_dir or BUILD_ROOT / simulator / f"tape-n{lay.n}").resolve()
    depths = tape_bench.tapes(setup, run_dir)
    (run_dir / "reram.hex").write_text(hex_image(lay.images["reram"],
                                                 lay.memmap.reram_word_bytes))
    if not (run_dir / "top.v").exists() or (run_dir / "top.v").read_text() != text:
        log(f"building the tape bench on {simulator} ...")
    exe, build_s = tape_bench.build(text, run_dir, lay.n, depths, simulator, cxx_opt=cxx_opt)
    dump, run_s = tape_bench.run(exe, run_dir, simulator)
    return {"verilog_s": verilog_s, "build_s": build_s, "run_s": run_s,
            "results": tape_bench.compare_dump(dump, setup["sentences"])}
