"""Sentences through the chip in software: tokenize, group by length, compile, execute, price.

:func:`run_texts` is what ``edgebert run`` and ``edgebert evaluate`` (golden backend) use: the
sentences are tokenized for the image, grouped by length (one program per length, compiled
once), executed in batches by the :class:`~sw.program.executor.GoldenExecutor`, and each
sentence's executed commands are priced by the cycle model.
"""

from collections import defaultdict
from dataclasses import dataclass

import torch

from hw.sfu_tables import LN_FRAC
from sw.program.compiler import compile_program
from sw.program.cycles import program_costs, summarize
from sw.program.executor import GoldenExecutor
from sw.program.frontend import encode_texts
from sw.program.layout import MemoryLayout

__all__ = ["SentenceRuns", "run_texts", "golden_metrics"]


@dataclass
class SentenceRuns:
    """Per sentence (N rows): tokens, label, exit layer, entropies (nats), DVFS decision,
    modelled cycles of the commands it executed, and the cost summary of each."""

    tokens: list
    truncated: torch.Tensor
    label: torch.Tensor
    exit_layer: torch.Tensor
    entropy: torch.Tensor
    dvfs: torch.Tensor
    cycles: torch.Tensor
    summaries: list
    results: list          # (indices, RunResult, Program) per length group

    def __len__(self):
        return len(self.tokens)


def run_texts(layout: MemoryLayout, texts_a, texts_b=None, *, early_exit=True, trace=False,
              executor=None, progress=False, batch_size=256):
    """Run sentences (or pairs) through the golden executor; see :class:`SentenceRuns`."""
    from tqdm import tqdm

    from sw.tokenizer import WordPiece

    tok = WordPiece(max_len=layout.config["max_len"])
    enc, _ = encode_texts(layout, texts_a, texts_b, tokenizer=tok)
    ex = executor or GoldenExecutor(layout)
    n, layers = len(enc), layout.config["layers"]
    groups = defaultdict(list)
    for i, e in enumerate(enc):
        groups[e.length].append(i)
    out = SentenceRuns(
        tokens=[tok.id_to_tokens(e.ids) for e in enc],
        truncated=torch.tensor([e.truncated for e in enc]),
        label=torch.zeros(n, dtype=torch.int64), exit_layer=torch.zeros(n, dtype=torch.int64),
        entropy=torch.full((n, layers), float("nan"), dtype=torch.float64),
        dvfs=torch.full((n, 4), -1, dtype=torch.int64), cycles=torch.zeros(n, dtype=torch.int64),
        summaries=[None] * n, results=[])
    jobs = [(t, idx[s:s + batch_size]) for t, idx in sorted(groups.items())
            for s in range(0, len(idx), batch_size)]
    for t, idx in tqdm(jobs, desc="golden executor", unit="batch", disable=not progress,
                       leave=False):
        prog = compile_program(layout, t, early_exit=early_exit)
        words = prog.program_bytes()
        rows = torch.stack([enc[i].rows for i in idx])
        segs = torch.stack([enc[i].segments for i in idx])
        r = ex.run(words, rows, segs, trace=trace)
        costs = program_costs(words, ex)
        ix = torch.tensor(idx)
        out.label[ix] = r.label
        out.exit_layer[ix] = r.exit_layer
        h = r.entropy.double() / (1 << LN_FRAC)
        out.entropy[ix] = torch.where(r.entropy >= 0, h, float("nan"))
        out.dvfs[ix] = r.dvfs
        for j, i in enumerate(idx):
            s = summarize(costs, r.executed[j])
            out.summaries[i] = s
            out.cycles[i] = s["cycles"]
        out.results.append((idx, r, prog))
    return out


def golden_metrics(layout: MemoryLayout, examples, *, progress=False, executor=None):
    """Dev metrics on the golden executor: accuracy with all layers (a program whose ENTROPY
    commands never stop) and with early exit (the image's threshold), average layers run."""
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples[0].text_b is not None else None
    labels = torch.tensor([e.label for e in examples])
    ex = executor or GoldenExecutor(layout)
    full = run_texts(layout, a, b, early_exit=False, executor=ex, progress=progress)
    early = run_texts(layout, a, b, early_exit=True, executor=ex, progress=progress)
    return {"accuracy_all_layers": float((full.label == labels).double().mean()),
            "accuracy_early_exit": float((early.label == labels).double().mean()),
            "avg_layers": float(early.exit_layer.double().mean()), "n": len(labels),
            "labels_all_layers": full.label, "labels_early_exit": early.label,
            "exit_layer": early.exit_layer, "cycles_early_exit": early.cycles,
            "cycles_all_layers": full.cycles}
