"""FAST action tokenizer (Pertsch et al. 2025, "FAST: Efficient Action Tokenization for VLAs").

An action chunk (T steps x D dims, already normalised) becomes tokens in three steps:

    coefficients = round(scale * DCT_II_ortho(chunk, over time))      (T, D) integers
    text         = "".join(chr(c - min_token) for c in coefficients.flatten())   time-major, one char each
    tokens       = BPE(text)                                          byte-level BPE (`tokenizers`)

Decoding inverts each step. The orthonormal DCT keeps quantisation small: each coefficient is off by at
most 0.5/scale, and an orthonormal inverse preserves the error's L2 norm, so per action dim the RMS error
over the chunk is at most 0.5/scale (`quantisation_bound`) as long as no coefficient was clipped at
min_token.

On disk it is the published tokenizer's layout (physical-intelligence/fast, lerobot/fast-action-tokenizer):
`processor_config.json` (scale, vocab_size, min_token, time_horizon, action_dim) + `tokenizer.json` (the
BPE). Loading reads those two files only; the repo's Python processor is never run.

Malformed token sequences (a model mid-training, a sampled sequence) never raise in `decode`:
- wrong number of coefficients: truncated or zero-padded to T*D (zero = no energy at those frequencies);
- bytes that are not valid UTF-8 (a token split mid-character) are dropped before counting;
- nothing decodable (no tokens, ids outside the vocabulary only): all-zero coefficients, i.e. the
  normalised action 0 (the dataset mean under MEAN_STD).
`stats` counts chunks, `padded`/`truncated` ones and `empty` ones so a run can report how often it happened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct, idct

from apprentice.policies.config import PolicyError

log = logging.getLogger(__name__)

PROCESSOR_CONFIG = "processor_config.json"
TOKENIZER_FILE = "tokenizer.json"
REPLACEMENT_CHAR = "\ufffd"  # what a byte-level decode yields for bytes that are not valid UTF-8


@dataclass
class DecodeStats:
    """How decoding went so far: chunks decoded, and those that needed the documented fallback."""

    chunks: int = 0
    padded: int = 0  # fewer than T*D coefficients: zero-padded
    truncated: int = 0  # more than T*D coefficients: cut
    invalid_bytes: int = 0  # had bytes that were not valid UTF-8 (dropped)
    empty: int = 0  # nothing decodable: all-zero coefficients

    @property
    def fallbacks(self) -> int:
        return self.padded + self.truncated + self.empty

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "fallbacks": self.fallbacks}


class FastTokenizer:
    """DCT + scale-and-round + BPE over coefficient characters; `fit`, `save`/`load`, `encode`/`decode`."""

    def __init__(
        self,
        bpe: Any,
        scale: float = 10.0,
        vocab_size: int = 1024,
        min_token: int = 0,
        time_horizon: int | None = None,
        action_dim: int | None = None,
    ) -> None:
        self.bpe = bpe  # a tokenizers.Tokenizer
        self.scale = float(scale)
        self.vocab_size = int(vocab_size)
        self.min_token = int(min_token)
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        self.stats = DecodeStats()

    @property
    def quantisation_bound(self) -> float:
        """Max RMS (over the chunk's time steps) error per action dim of encode -> decode: 0.5 / scale."""
        return 0.5 / self.scale

    # ------------------------------------------------------------------------------- encoding
    def coefficients(self, chunk: np.ndarray) -> np.ndarray:
        """(T, D) chunk -> (T, D) rounded, scaled DCT-II (orthonormal) coefficients over time."""
        return np.around(dct(np.asarray(chunk, dtype=np.float64), axis=0, norm="ortho") * self.scale).astype(
            np.int64
        )

    def _text(self, coeffs: np.ndarray) -> str:
        # Below min_token cannot be represented: clipped (the fitted range covers the training data).
        return "".join(map(chr, np.maximum(coeffs.flatten() - self.min_token, 0)))

    def encode(self, chunks: np.ndarray | Sequence[np.ndarray]) -> list[list[int]]:
        """A (T, D) chunk or a (B, T, D) batch -> one token-id list per chunk."""
        arr = np.asarray(chunks, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise PolicyError(f"FAST encode: expected (T, D) or (B, T, D) actions, got shape {arr.shape}")
        return [self.bpe.encode(self._text(self.coefficients(c))).ids for c in arr]

    # ------------------------------------------------------------------------------- decoding
    def decode_coefficients(self, tokens: Sequence[int], time_horizon: int, action_dim: int) -> np.ndarray:
        """Token ids -> (T, D) integer coefficients, with the module's fallbacks for malformed input."""
        self.stats.chunks += 1
        expected = time_horizon * action_dim
        ids = [int(t) for t in tokens if 0 <= int(t) < self.bpe.get_vocab_size()]
        text = self.bpe.decode(ids, skip_special_tokens=True) if ids else ""
        if REPLACEMENT_CHAR in text:
            self.stats.invalid_bytes += 1
            text = text.replace(REPLACEMENT_CHAR, "")
        values = np.fromiter((ord(c) for c in text), dtype=np.int64, count=len(text)) + self.min_token
        if values.size == 0:
            self.stats.empty += 1
            return np.zeros((time_horizon, action_dim), dtype=np.int64)
        if values.size > expected:
            self.stats.truncated += 1
            values = values[:expected]
        elif values.size < expected:
            self.stats.padded += 1
            values = np.pad(values, (0, expected - values.size))
        return values.reshape(time_horizon, action_dim)

    def decode(
        self,
        tokens: Iterable[Sequence[int]],
        time_horizon: int | None = None,
        action_dim: int | None = None,
    ) -> np.ndarray:
        """Token-id lists -> (B, T, D) float actions (normalised units); never raises on malformed tokens."""
        horizon = time_horizon or self.time_horizon
        dim = action_dim or self.action_dim
        if not horizon or not dim:
            raise PolicyError(
                "FAST decode needs time_horizon and action_dim: pass them or set them in processor_config.json"
            )
        out = [
            idct(self.decode_coefficients(seq, horizon, dim) / self.scale, axis=0, norm="ortho") for seq in tokens
        ]
        return np.stack(out) if out else np.zeros((0, horizon, dim))

    # ---------------------------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        chunks: Iterable[np.ndarray],
        scale: float = 10.0,
        vocab_size: int = 1024,
        time_horizon: int | None = None,
        action_dim: int | None = None,
    ) -> FastTokenizer:
        """Train the BPE on (T, D) normalised action chunks; min_token is their smallest coefficient."""
        from tokenizers import ByteLevelBPETokenizer
        from tokenizers.pre_tokenizers import ByteLevel
        from tokenizers.trainers import BpeTrainer

        coeffs = [np.around(dct(np.asarray(c, dtype=np.float64), axis=0, norm="ortho") * scale) for c in chunks]
        if not coeffs:
            raise PolicyError("FAST fit: no action chunks given")
        min_token = int(min(c.min() for c in coeffs))
        if vocab_size <= len(ByteLevel.alphabet()):
            raise PolicyError(
                f"FAST fit: vocab_size={vocab_size} leaves no room for merges above the 256 byte-level tokens; "
                "use e.g. 1024"
            )
        tokenizer = cls(None, scale, vocab_size, min_token, time_horizon, action_dim)
        texts = [tokenizer._text(c.astype(np.int64)) for c in coeffs]
        bpe = ByteLevelBPETokenizer()
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=[],
            # The BPE runs over the UTF-8 bytes of the coefficient characters: with all 256 byte symbols in
            # the alphabet every coefficient >= min_token encodes, also values the fitting chunks never had
            # (the published fit seeds the alphabet with the raw characters instead, which the byte-level
            # pre-tokenizer never produces, so an unseen byte there is silently dropped).
            initial_alphabet=ByteLevel.alphabet(),
            max_token_length=10000,
        )
        # The inner Tokenizer's trainer: ByteLevelBPETokenizer.train_from_iterator would replace the alphabet.
        bpe._tokenizer.train_from_iterator(texts, trainer=trainer)
        tokenizer.bpe = bpe._tokenizer
        return tokenizer

    # ------------------------------------------------------------------------------------- disk
    def save(self, directory: str | Path) -> Path:
        """processor_config.json + tokenizer.json (+ tokenizer_config.json so transformers reads the BPE)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "processor_class": "UniversalActionProcessor",
            "scale": self.scale,
            "vocab_size": self.vocab_size,
            "min_token": self.min_token,
            "time_horizon": self.time_horizon,
            "action_dim": self.action_dim,
        }
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2))
        self.bpe.save(str(directory / TOKENIZER_FILE))
        (directory / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False})
        )
        return directory

    @classmethod
    def load(cls, name_or_path: str | Path) -> FastTokenizer:
        """A local dir, or a Hub repo id (only its processor_config.json and tokenizer.json are fetched)."""
        from tokenizers import Tokenizer

        config_path, tokenizer_path = _resolve(str(name_or_path))
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PolicyError(f"{config_path}: cannot read the FAST processor config ({exc})") from exc
        try:
            bpe = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise PolicyError(f"{tokenizer_path}: not a tokenizers JSON file ({exc})") from exc
        missing = [k for k in ("scale", "min_token") if k not in config]
        if missing:
            raise PolicyError(f"{config_path}: lacks {missing}; is this a FAST tokenizer's processor_config.json?")
        return cls(
            bpe,
            scale=config["scale"],
            vocab_size=config.get("vocab_size", bpe.get_vocab_size()),
            min_token=config["min_token"],
            time_horizon=config.get("time_horizon"),
            action_dim=config.get("action_dim"),
        )


def _resolve(name: str) -> tuple[Path, Path]:
    local = Path(name).expanduser()
    if local.is_dir():
        for file in (PROCESSOR_CONFIG, TOKENIZER_FILE):
            if not (local / file).is_file():
                raise PolicyError(f"{local / file} is missing; a FAST tokenizer dir holds {PROCESSOR_CONFIG} and "
                                  f"{TOKENIZER_FILE}")
        return local / PROCESSOR_CONFIG, local / TOKENIZER_FILE
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return (Path(hf_hub_download(name, PROCESSOR_CONFIG)), Path(hf_hub_download(name, TOKENIZER_FILE)))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise PolicyError(
            f"FAST tokenizer {name!r}: not a local dir and not reachable on the Hub ({exc}); pass a local dir "
            "holding processor_config.json + tokenizer.json"
        ) from exc
