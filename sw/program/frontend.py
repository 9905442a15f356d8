"""The host side of a run: sentences → token-table rows and segments, grouped by length.

The tokenizer is the image's (WordPiece, all-MiniLM-L6-v2 vocabulary, ``[CLS] a [SEP]``),
truncated to the image's ``max_len`` (reported, never silent); tokenizer ids become token-table
rows through the image's vocabulary (ids the pruned table dropped share the ``[UNK]`` row).
"""

from dataclasses import dataclass

import torch

from sw.program.layout import MemoryLayout

__all__ = ["Encoded", "encode_texts"]


@dataclass
class Encoded:
    """One sentence: tokenizer ids, token-table rows, segments, whether it was truncated."""

    ids: list
    rows: torch.Tensor
    segments: torch.Tensor
    truncated: bool

    @property
    def length(self):
        return len(self.ids)


def encode_texts(layout: MemoryLayout, texts_a, texts_b=None, tokenizer=None):
    """Encode sentences (or pairs) for the accelerator; empty texts are refused."""
    from sw.tokenizer import WordPiece

    tok = tokenizer or WordPiece(max_len=layout.config["max_len"])
    batch = tok.encode(texts_a, texts_b, pad_to="longest")
    out = []
    for r in range(len(batch)):
        n = int(batch.attention_mask[r].sum())
        ids = batch.input_ids[r, :n]
        out.append(Encoded(ids=ids.tolist(), rows=layout.vocab_rows[ids],
                           segments=batch.token_type_ids[r, :n].clone(),
                           truncated=bool(batch.truncated[r])))
    return out, batch.n_truncated
