"""Soup ingredients trained side by side: ``edgebert train --ingredients N``.

N runs of one recipe that differ only in ``train.order_seed`` (the order of the training
examples; the held-out slice, the vocabulary and everything a soup checks stay equal) are
started as N ``edgebert train`` processes at once, each with its share of the ``--threads``,
into ``OUT/ingredient<i>``; when all have finished, their soup (:mod:`sw.train.soup`) is written
to ``OUT``. On a CPU this is faster than the same runs one after the other: a step of the
default student is small, so one process does not keep two cores busy (measured in
docs/training.md), while two one-thread processes do.

Each ingredient is an ordinary, resumable run with its own checkpoint and ``train.log``; the
same command run again resumes the unfinished ones, and a finished one only calibrates again.
The parent process shows one progress bar per ingredient, read from their logs.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ingredient_dirs", "order_seeds", "train_ingredients"]

_PROGRESS = re.compile(r"\b(backbone|off-ramps) (\d+)/(\d+)\b")


def ingredient_dirs(out_dir, n):
    return [Path(out_dir) / f"ingredient{i}" for i in range(n)]


def order_seeds(train_cfg, n):
    """``train.order_seed`` of each ingredient: the recipe's own order first, then the next."""
    base = train_cfg.order_seed if train_cfg.order_seed >= 0 else train_cfg.seed
    return [base + i for i in range(n)]


def _progress(log_path):
    """(stage, step, steps) of the last progress line in a run's ``train.log``, or None."""
    try:
        text = log_path.read_text()
    except FileNotFoundError:
        return None
    found = _PROGRESS.findall(text)
    if not found:
        return None
    stage, step, steps = found[-1]
    return stage, int(step), int(steps)


def _tail(path, lines=15):
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


def train_ingredients(argv_common, seeds, out_dir, threads, *, progress=True, poll_s=5.0):
    """Run ``edgebert train`` once per order seed, all at once, each with
    ``max(1, threads // len(seeds))`` threads and the arguments ``argv_common`` (config,
    overrides, data, teacher, device). Returns the ingredient directories and the wall time;
    raises :class:`RuntimeError` naming every failed ingredient, with the end of its output."""
    dirs = ingredient_dirs(out_dir, len(seeds))
    per = max(1, threads // len(seeds))
    procs = []
    t0 = time.time()
    for d, seed in zip(dirs, seeds, strict=True):
        d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "sw.cli", "train", *argv_common, "--threads", str(per),
               "-q", "--set", f"train.order_seed={seed}", "-o", str(d)]
        out = (d / "train.out").open("a")
        procs.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out))
    bars = None
    if progress:
        from tqdm import tqdm
        bars = [tqdm(total=1, position=i, desc=f"ingredient{i}", unit="step", leave=True)
                for i in range(len(dirs))]
    try:
        while any(p.poll() is None for p, _ in procs):
            if bars:
                _update(bars, dirs)
            time.sleep(poll_s)
        if bars:
            _update(bars, dirs)
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reaches the workers too: each saves its checkpoint and stops.
        for p, _ in procs:
            p.wait()
        raise
    finally:
        for _, out in procs:
            out.close()
        if bars:
            for b in bars:
                b.close()
    failed = [(i, p.returncode) for i, (p, _) in enumerate(procs) if p.returncode != 0]
    if failed:
        report = "\n".join(f"ingredient{i} (exit status {rc}), end of {dirs[i] / 'train.out'}:\n"
                           f"{_tail(dirs[i] / 'train.out')}" for i, rc in failed)
        raise RuntimeError(f"{len(failed)} of {len(dirs)} ingredients failed; the others are "
                           f"kept, run the command again to resume\n{report}")
    return dirs, time.time() - t0


def _update(bars, dirs):
    for bar, d in zip(bars, dirs, strict=True):
        got = _progress(d / "train.log")
        if got is None:
            continue
        stage, step, steps = got
        if getattr(bar, "stage", None) != (stage, steps):
            # A new stage: the rate counts the steps seen from here on (a stage first seen at
            # step 300 of 310, or a resumed run at step 5,800, is not 300 steps in no time).
            bar.stage = (stage, steps)
            bar.reset(total=steps)
            bar.initial = step
            bar.set_description(f"{d.name} {stage}", refresh=False)
        bar.n = step
        bar.refresh()
