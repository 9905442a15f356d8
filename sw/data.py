"""GLUE-format TSV data ([S1] in DESIGN.md): single sentences and sentence pairs.

A task directory holds ``train.tsv`` and ``dev.tsv`` with a header row. The text columns are
recognised by name (``sentence`` for SST-2/CoLA; ``sentence1``/``sentence2``,
``question1``/``question2``, ``question``/``sentence`` for pair tasks) and the label column is
``label``. The directory comes from the command line or the ``EDGEBERT_DATA`` variable; the data
is never copied into the repository.
"""

import csv
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Example", "resolve_data_dir", "load_tsv", "load_split", "ENV_VAR"]

ENV_VAR = "EDGEBERT_DATA"

# (first text column, second text column or None), tried in order.
_TEXT_COLUMNS = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("sentence", None),
)


@dataclass(frozen=True)
class Example:
    """One labelled example: ``text_b`` is ``None`` for single-sentence tasks."""

    text_a: str
    label: int
    text_b: str | None = None


def resolve_data_dir(path=None):
    """The task directory: ``path`` if given, else ``$EDGEBERT_DATA``; it must exist."""
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise ValueError(
                f"no data directory given: pass a GLUE task directory (e.g. .../sst2) on the "
                f"command line or set {ENV_VAR}")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {str(path)!r} does not exist")
    return path


def load_tsv(path, *, limit=None):
    """Read one GLUE TSV file into a list of :class:`Example`.

    Rows with an empty text or a label that is not a non-negative integer are refused with the
    file name and line number; nothing is silently dropped. ``limit`` keeps the first rows only.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, not {limit!r}")
    examples = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: file is empty (expected a header row)")
        cols = {name: i for i, name in enumerate(header)}
        if "label" not in cols:
            raise ValueError(f"{path}: header must have a 'label' column, not {header!r}")
        for a, b in _TEXT_COLUMNS:
            if a in cols and (b is None or b in cols):
                ia, ib = cols[a], (cols[b] if b else None)
                break
        else:
            raise ValueError(f"{path}: no known text column in header {header!r}")
        il = cols["label"]
        for lineno, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(
                    f"{path}:{lineno}: expected {len(header)} tab-separated fields, "
                    f"not {len(row)}")
            text_a = row[ia].strip()
            text_b = row[ib].strip() if ib is not None else None
            if not text_a or (ib is not None and not text_b):
                raise ValueError(f"{path}:{lineno}: empty sentence")
            try:
                label = int(row[il])
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: label must be a non-negative integer, "
                    f"not {row[il]!r}") from None
            if label < 0:
                raise ValueError(
                    f"{path}:{lineno}: label must be a non-negative integer, not {label}")
            examples.append(Example(text_a, label, text_b))
            if limit is not None and len(examples) >= limit:
                break
    if not examples:
        raise ValueError(f"{path}: no examples after the header")
    return examples


def load_split(data_dir, split, *, limit=None):
    """``split`` (``train`` or ``dev``) of the task in ``data_dir`` (or ``$EDGEBERT_DATA``)."""
    if split not in ("train", "dev"):
        raise ValueError(f"split must be 'train' or 'dev', not {split!r}")
    return load_tsv(resolve_data_dir(data_dir) / f"{split}.tsv", limit=limit)
