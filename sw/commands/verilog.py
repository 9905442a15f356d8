"""``edgebert verilog``: write Verilog for every generated block and self-check each one."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

HELP = """\
Writes one Verilog file per block (and a JSON manifest with the parameters used) to the output
directory, then runs each block's self-check: a comparison, as integers, of the block simulated
in Amaranth against the golden model on random and edge-case inputs.

Parameters are given as NAME=VALUE and apply to every block that has them, for example
  edgebert verilog -p n_bits=8 -p exp_bits=3 -p offset=-10

The Verilog is generic (multipliers as `*`). --dsp ecp5 writes what `edgebert synth` builds for
the ECP5: the special-function units' chunk products as MULT18X18D primitives with their output
register on (same cycles, same values; Yosys's ECP5 flow would otherwise leave the product
register in the fabric). Simulate that Verilog with sim/models/MULT18X18D.v.
"""


def register(sub):
    p = sub.add_parser("verilog", help="write Verilog for every block and self-check it",
                       description=HELP, formatter_class=_fmt())
    p.add_argument("-o", "--out", type=Path, default=Path("build/verilog"),
                   help="output directory (default: build/verilog)")
    p.add_argument("-b", "--block", action="append", default=None, metavar="NAME",
                   help="only this block (repeatable; default: all)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a generator parameter (integer) for every block that has it")
    p.add_argument("--dsp", choices=("generic", "ecp5"), default="generic",
                   help="multipliers as generic Verilog (default) or, for the SFUs' chunk "
                        "products, as ECP5 MULT18X18D primitives with their output register")
    p.add_argument("--no-check", action="store_true", help="write Verilog only, skip self-checks")
    p.add_argument("--list", action="store_true",
                   help="list blocks and their parameters, then exit")
    p.set_defaults(func=run)


def _fmt():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def parse_params(items):
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"parameter must look like NAME=VALUE, not {item!r}")
        try:
            params[name] = int(value, 0)
        except ValueError:
            raise ValueError(f"parameter {name} must be an integer, not {value!r}") from None
    return params


def run(args):
    from hw.verilog_out import to_verilog
    from sim.selfcheck import blocks

    table = blocks()
    if args.list:
        for b in table.values():
            ps = " ".join(f"{k}={v}" for k, v in b.params.items())
            print(f"{b.name:18s} {b.description}\n{'':18s} {ps}")
        return 0
    names = args.block or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown block(s) {', '.join(unknown)}; known: {', '.join(table)}")
    overrides = parse_params(args.param)
    used = {k for n in names for k in table[n].params}
    stray = sorted(set(overrides) - used)
    if stray:
        raise ValueError(f"no selected block has parameter(s) {', '.join(stray)}")
    # The generator asks its platform for the FPGA family only (hw.sfu_pipe.dsp_target).
    target = SimpleNamespace(family="ecp5") if args.dsp == "ecp5" else None
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    failed = []
    for name in names:
        block = table[name]
        params = {**block.params, **{k: v for k, v in overrides.items() if k in block.params}}
        t0 = time.perf_counter()
        top = block.build(**params)
        text = to_verilog(top, name=name, platform=target)
        path = args.out / f"{name}.v"
        path.write_text(text)
        took = time.perf_counter() - t0
        line = f"{name:18s} {path}  ({len(text.splitlines())} lines, {took:.1f} s)"
        entry = {"verilog": str(path), "params": params, "dsp": args.dsp}
        if block.selfcheck and not args.no_check:
            t0 = time.perf_counter()
            try:
                summary = block.selfcheck(**params)
                entry["selfcheck"] = summary
                took = time.perf_counter() - t0
                line += f"\n{'':18s} self-check passed: {summary} ({took:.1f} s)"
            except AssertionError as e:
                failed.append(name)
                entry["selfcheck"] = f"FAILED: {e}"
                line += f"\n{'':18s} self-check FAILED: {e}"
        print(line, flush=True)
        manifest[name] = entry
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(names)} block(s) to {args.out}")
    if failed:
        print(f"self-check failed for: {', '.join(failed)}")
        return 1
    return 0
