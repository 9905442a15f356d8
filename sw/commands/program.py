"""``edgebert program``: the command program of a weight image for one sentence length."""

import argparse
from pathlib import Path

HELP = """\
Lays the weight image out in the accelerator's memories, compiles the command program for a
sentence of --tokens tokens ([CLS] and [SEP] included; padded to a multiple of n) and prints
it disassembled: one line per command with its note, its fields, its MACs and its modelled
cycles, then the totals per unit and the memory use. The encoding is in docs/program.md.

  edgebert program sw/assets/sst2_default.ebimg --tokens 32
"""


def register(sub):
    p = sub.add_parser("program", help="compile and print the command program of an image",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", type=Path, help="weight image (.ebimg)")
    p.add_argument("--tokens", type=int, required=True, help="sentence length in tokens")
    p.add_argument("--no-early-exit", action="store_true",
                   help="ENTROPY commands compute the exit flag but never stop the program")
    p.add_argument("--words", action="store_true", help="also print each command word in hex")
    p.add_argument("--out", type=Path, default=None,
                   help="write the program and memory images here (prog.bin, <memory>.bin)")
    p.set_defaults(func=run)


def run(args):
    from hw.isa import encode
    from sw.image import read_image
    from sw.program.compiler import compile_program
    from sw.program.cycles import program_costs, summarize
    from sw.program.executor import GoldenExecutor
    from sw.program.layout import lay_out

    img = read_image(args.image)
    lay = lay_out(img)
    prog = compile_program(lay, args.tokens, early_exit=not args.no_early_exit)
    costs = program_costs(prog.program_bytes(), GoldenExecutor(lay))
    print(f"{args.image}: {len(prog.commands)} commands for {args.tokens} tokens "
          f"(padded to {prog.t_pad}), n = {prog.n}")
    print(f"{'#':>4}  {'MACs':>10}  {'cycles':>8}  command")
    for i, (cmd, note, c) in enumerate(zip(prog.commands, prog.notes, costs, strict=True)):
        print(f"{i:>4}  {c.macs:>10,}  {c.cycles:>8,}  {note}")
        print(f"{'':>28}{cmd}")
        if args.words:
            print(f"{'':>28}0x{encode(cmd):032x}")
    s = summarize(costs)
    print(f"total: {s['cycles']:,} cycles, {s['macs']:,} MACs (dense equivalent), matrix engine "
          f"computing {100 * s['mac_share']:.1f} % of the cycles")
    print("cycles per unit: " + ", ".join(
        f"{u} {v:,} ({100 * v / s['cycles']:.1f} %)" for u, v in s["unit_cycles"].items() if v))
    used = {m: a.size for m, a in lay.images.items()}
    used["act"] = max(b.base + (b.rows // prog.n) * b.stride for b in prog.buffers.values()) \
        * lay.memmap.word_bytes("act")
    used["prog"] = len(prog.program_bytes())
    print("memory use: " + ", ".join(
        f"{m} {used[m]:,} of {lay.memmap.size_bytes(m):,} B" for m in lay.memmap.table_names()))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "prog.bin").write_bytes(prog.program_bytes())
        for m, a in lay.images.items():
            (args.out / f"{m}.bin").write_bytes(a.tobytes())
        print(f"wrote {args.out}/prog.bin and the memory images")
    return 0
