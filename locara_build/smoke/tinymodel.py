"""A tiny, deterministic llama model for smoke tests (no model download).

The tokenizer is copied from upstream's ``models/ggml-vocab-llama-spm.gguf`` (a tokenizer-only
GGUF in every llama.cpp tree); the weights are random f32 from a fixed seed: 2 layers, 64-dim,
4 heads. ~17 MB, most of it the 32000 x 64 embedding and output matrices. A real llama-server
loads it and generates (gibberish) at hundreds of tokens/s on a CPU, which is all a smoke test
needs: the binary starts, loads a GGUF, runs the graph on its backend and answers HTTP.

The file is cached in the work dir under a name derived from the vocabulary's sha256 and the
generator parameters, written atomically; the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from locara_build.core.digest import sha256_file
from locara_build.core.errors import SmokeError

__all__ = ["TinyModelSpec", "VOCAB_RELPATH", "tiny_model", "write_tiny_model"]

VOCAB_RELPATH = "models/ggml-vocab-llama-spm.gguf"
GENERATOR_VERSION = 1  # bump when the bytes written for the same spec change

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_ff: int = 128
    n_ctx: int = 2048
    seed: int = 20240101
    scale: float = 0.02

    def key(self, vocab_sha256: str) -> str:
        blob = json.dumps({"spec": asdict(self), "vocab": vocab_sha256, "v": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def tiny_model(vocab: Path, cache_dir: Path, spec: TinyModelSpec | None = None) -> Path:
    """The cached tiny model for ``vocab`` (created on first use)."""
    spec = spec or TinyModelSpec()
    if not vocab.is_file():
        raise SmokeError(
            f"no tokenizer to build the smoke-test model from: {vocab} does not exist.",
            hint="Run `locara-build patches apply` to prepare the source tree (it holds "
            f"{VOCAB_RELPATH}), or pass a model with --model.",
        )
    dest = cache_dir / f"tiny-llama-{spec.key(sha256_file(vocab))}.gguf"
    if dest.is_file():
        return dest
    write_tiny_model(vocab, dest, spec)
    return dest


def write_tiny_model(vocab: Path, dest: Path, spec: TinyModelSpec | None = None) -> None:
    """Write a random-weight llama GGUF with ``vocab``'s tokenizer to ``dest`` (atomically)."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    spec = spec or TinyModelSpec()
    reader = GGUFReader(vocab)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise SmokeError(f"{vocab}: not a tokenizer GGUF (no tokenizer.ggml.tokens).", hint="Use upstream's vocab file.")
    n_vocab = len(tokens.data)

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = GGUFWriter(tmp, "llama")
        writer.add_name("locara-tiny-llama")
        writer.add_context_length(spec.n_ctx)
        writer.add_embedding_length(spec.n_embd)
        writer.add_block_count(spec.n_layer)
        writer.add_feed_forward_length(spec.n_ff)
        writer.add_head_count(spec.n_head)
        writer.add_head_count_kv(spec.n_head)
        writer.add_rope_dimension_count(spec.n_embd // spec.n_head)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(n_vocab)
        writer.add_file_type(0)  # all f32
        # the tokenizer, copied key by key with its exact types (strings as raw bytes)
        for key, field in reader.fields.items():
            if not key.startswith("tokenizer."):
                continue
            main = field.types[0]
            if main == GGUFValueType.ARRAY:
                sub = field.types[-1]
                if sub == GGUFValueType.STRING:
                    value = [bytes(field.parts[i]) for i in field.data]
                else:
                    value = [field.parts[i].tolist()[0] for i in field.data]
                writer.add_key_value(key, value, main, sub_type=sub)
            elif main == GGUFValueType.STRING:
                writer.add_key_value(key, bytes(field.parts[field.data[0]]), main)
            else:
                writer.add_key_value(key, field.parts[field.data[0]].tolist()[0], main)
        if "tokenizer.chat_template" not in reader.fields:
            writer.add_chat_template(CHATML_TEMPLATE)

        rng = np.random.default_rng(spec.seed)

        def rand(*shape: int) -> np.ndarray:
            return (rng.standard_normal(shape, dtype=np.float32) * np.float32(spec.scale)).astype(np.float32)

        ones = np.ones(spec.n_embd, dtype=np.float32)
        # numpy shapes are ggml's ne reversed: (rows, cols) = (out, in)
        writer.add_tensor("token_embd.weight", rand(n_vocab, spec.n_embd))
        for i in range(spec.n_layer):
            writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
            writer.add_tensor(f"blk.{i}.attn_q.weight", rand(spec.n_embd, spec.n_embd))
            writer.add_tensor(f"blk.{i}.attn_k.weight", rand(spec.n_embd, spec.n_embd))
            writer.add_tensor(f"blk.{i}.attn_v.weight", rand(spec.n_embd, spec.n_embd))
            writer.add_tensor(f"blk.{i}.attn_output.weight", rand(spec.n_embd, spec.n_embd))
            writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
            writer.add_tensor(f"blk.{i}.ffn_gate.weight", rand(spec.n_ff, spec.n_embd))
            writer.add_tensor(f"blk.{i}.ffn_up.weight", rand(spec.n_ff, spec.n_embd))
            writer.add_tensor(f"blk.{i}.ffn_down.weight", rand(spec.n_embd, spec.n_ff))
        writer.add_tensor("output_norm.weight", ones)
        writer.add_tensor("output.weight", rand(n_vocab, spec.n_embd))

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
