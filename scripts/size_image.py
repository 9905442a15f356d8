"""Sizes of a weight image on the accelerator: ReRAM section (token table with masks and row
pointers, position and segment tables), the shared layer's weight memory, the memory map it
needs (sw.program.layout.memmap_for), commands of a max_len program, and MACs per token.

    python scripts/size_image.py IMAGE [--json OUT]
"""

import argparse
import json

from hw.memmap import MemoryMap
from sw.image import read_image
from sw.program.compiler import compile_program
from sw.program.layout import lay_out

LAYER = ("wq", "wk", "wv", "wo", "ff1", "ff2")


def sizes(path):
    img = read_image(path)
    c = img.meta["student_config"]
    lay = lay_out(img)
    mm = lay.memmap
    n = img.hw.n
    reram = {k: int(img[k].array.nbytes) for k in ("word.rowptr", "word.masks", "word.values",
                                                    "pos", "seg")}
    layer_sram = sum(int(img[f"{m}.{p}"].array.nbytes) for m in LAYER
                     for p in ("masks", "values", "bias"))
    nnz = sum(int(img[f"{m}.values"].array.size) for m in LAYER)
    dense = 4 * c["hidden"] ** 2 + 2 * c["hidden"] * c["ffn"]
    prog = compile_program(lay, c["max_len"], early_exit=False)
    t = c["max_len"]
    attn = 2 * t * c["hidden"]        # scores and context per token, all keys
    return {
        "version": img.version, "section_bytes_total": sum(img.section_bytes().values()),
        "sections": img.section_bytes(),
        "reram_bytes": sum(reram.values()), "reram_parts": reram,
        "reram_budget": MemoryMap(n=n).reram_bytes,
        "shared_layer_sram_bytes": layer_sram, "shared_layer_weights": dense,
        "shared_layer_nonzero": nnz,
        "lns_aux_values": 2 * c["hidden"] * (2 * c["layers"] if c.get("ln_per_layer") else 2),
        "memmap": {f: getattr(mm, f) for f in ("desc_words", "wmask_words", "wval_words",
                                               "wbias_words", "act_words", "aux_words",
                                               "prog_words")},
        "memmap_bytes": {m: mm.size_bytes(m) for m in ("wmask", "wval", "wbias", "act", "aux")},
        "default_memmap": MemoryMap(n=n) == mm,
        "commands_max_len": len(prog.commands),
        "macs_per_token_per_layer_dense": dense + attn,
        "macs_per_token_per_layer_sparse": nnz + attn,
        "macs_per_token_6_layers_sparse": c["layers"] * (nnz + attn)
        + c["emb_dim"] * c["hidden"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    s = sizes(args.image)
    text = json.dumps(s, indent=1)
    print(text)
    if args.json:
        open(args.json, "w").write(text + "\n")


if __name__ == "__main__":
    main()
