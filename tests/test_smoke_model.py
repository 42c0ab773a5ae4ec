"""The smoke-test model: a tiny llama GGUF made from upstream's tokenizer-only vocab file, the same
bytes every time, cached in the work dir."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gguf import GGUFReader
from support.llama import vendored_llama

from locara_build.smoke.tinymodel import VOCAB_RELPATH, TinyModelSpec, tiny_model, write_tiny_model


def test_tiny_model_is_deterministic_cached_and_a_valid_llama(tmp_path: Path) -> None:
    vocab = vendored_llama("0.3.36") / VOCAB_RELPATH
    first = tiny_model(vocab, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" and first.name.startswith("tiny-llama-")
    mtime = first.stat().st_mtime_ns
    assert tiny_model(vocab, tmp_path / "cache") == first and first.stat().st_mtime_ns == mtime  # cached
    again = tmp_path / "again.gguf"
    write_tiny_model(vocab, again)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(first.read_bytes()).digest()
    assert 15_000_000 < first.stat().st_size < 20_000_000  # ~17 MB
    assert not list((tmp_path / "cache").glob(".*tmp"))

    reader = GGUFReader(first)
    fields = reader.fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["llama.block_count"].contents() == 2 and fields["llama.embedding_length"].contents() == 64
    src = GGUFReader(vocab).fields
    assert fields["tokenizer.ggml.tokens"].contents() == src["tokenizer.ggml.tokens"].contents()
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    assert "tokenizer.chat_template" in fields  # /v1/chat/completions needs one
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"} <= names
    assert len(names) == 3 + 9 * 2

    # another seed is another model (and another cache entry)
    other = tiny_model(vocab, tmp_path / "cache", TinyModelSpec(seed=7))
    assert other != first and other.read_bytes() != first.read_bytes()
