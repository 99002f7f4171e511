"""The BERT tokenizer of GroundingDINO's text branch, and a stand-in vocabulary for untrained runs.

GroundingDINO marks four token ids as phrase boundaries, hard-coded in the official code and in
transformers alike: [CLS] 101, [SEP] 102, "." 1012, "?" 1029 (bert-base-uncased's ids). Runs with
trained weights use bert-base-uncased's own vocabulary (a weights tag's tokenizer file). Untrained
runs (`--checkpoint none`) and the tests have no download: `standin_vocab` is a character-level
WordPiece vocabulary with those four tokens at their bert-base-uncased ids, so every lower-case
ASCII caption tokenizes and splits into phrases as GroundingDINO expects.
"""

from __future__ import annotations

import string
from pathlib import Path

SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
STANDIN_SIZE = 1100


def standin_vocab() -> list[str]:
    """Tokens by id: BERT's special and boundary tokens at their ids, then single characters and
    their "##" continuations, "[unusedN]" elsewhere."""
    vocab: list[str | None] = [None] * STANDIN_SIZE
    for token, index in SPECIAL_IDS.items():
        vocab[index] = token
    chars = [c for c in string.ascii_lowercase + string.digits + string.punctuation if c not in SPECIAL_IDS]
    free = (i for i in range(STANDIN_SIZE) if vocab[i] is None)
    for token in chars + [f"##{c}" for c in string.ascii_lowercase + string.digits + string.punctuation]:
        vocab[next(free)] = token
    return [token if token is not None else f"[unused{i}]" for i, token in enumerate(vocab)]


def bert_tokenizer(vocab: Path | list[str]):
    """A lower-casing BERT WordPiece tokenizer (transformers, tokenizers-backed) from a vocab.txt or a
    token list: bert-base-uncased's normaliser, pre-tokenizer and WordPiece model."""
    from model.grounded_sam.requirements import require_transformers

    tokens = vocab if isinstance(vocab, list) else Path(vocab).read_text(encoding="utf-8").splitlines()
    return require_transformers().BertTokenizer(vocab={token: i for i, token in enumerate(tokens)}, do_lower_case=True)
