"""FAST tokenizer: DCT + scale-and-round + BPE round trip within the quantisation bound, compression, the
published file layout, and decoding that survives malformed token sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pi0fast_helpers import smooth_chunks
from scipy.fft import dct

from apprentice.policies import PolicyError
from apprentice.policies.pi0fast import FastTokenizer

H, D = 10, 3


@pytest.fixture(scope="module")
def tok() -> FastTokenizer:
    return FastTokenizer.fit(smooth_chunks(300, H, D, seed=1), scale=10.0, vocab_size=512, time_horizon=H,
                             action_dim=D)


def test_round_trip_within_quantisation_bound(tok: FastTokenizer):
    chunks = np.stack(smooth_chunks(50, H, D, seed=2))
    decoded = tok.decode(tok.encode(chunks))
    assert decoded.shape == chunks.shape
    rms = np.sqrt(((decoded - chunks) ** 2).mean(axis=1))  # (B, D): RMS over the chunk's time steps
    assert rms.max() <= tok.quantisation_bound + 1e-9
    assert rms.max() > 0  # it is lossy: the test would notice an identity "tokenizer"
    assert tok.stats.fallbacks == 0


def test_coefficients_are_the_scaled_orthonormal_dct(tok: FastTokenizer):
    chunk = smooth_chunks(1, H, D, seed=3)[0]
    expected = np.around(dct(chunk, type=2, axis=0, norm="ortho") * tok.scale)
    np.testing.assert_array_equal(tok.coefficients(chunk), expected)
    decoded = tok.decode_coefficients(tok.encode(chunk)[0], H, D)
    np.testing.assert_array_equal(decoded, expected)


def test_bpe_compresses_smooth_chunks(tok: FastTokenizer):
    lengths = [len(t) for t in tok.encode(np.stack(smooth_chunks(50, H, D, seed=4)))]
    assert max(lengths) < H * D  # fewer tokens than coefficients
    assert all(0 <= i < tok.vocab_size for seq in tok.encode(np.stack(smooth_chunks(5, H, D))) for i in seq)


def test_save_load_identical(tok: FastTokenizer, tmp_path):
    tok.save(tmp_path / "fast")
    cfg = json.loads((tmp_path / "fast" / "processor_config.json").read_text())
    assert {"scale", "vocab_size", "min_token", "time_horizon", "action_dim"} <= set(cfg)
    again = FastTokenizer.load(tmp_path / "fast")
    chunks = np.stack(smooth_chunks(10, H, D, seed=5))
    assert again.encode(chunks) == tok.encode(chunks)
    np.testing.assert_array_equal(again.decode(tok.encode(chunks)), tok.decode(tok.encode(chunks)))


def test_reads_the_published_layout(tok: FastTokenizer, tmp_path):
    """physical-intelligence/fast: processor_config.json naming its remote processor class + auto_map (never
    run), time_horizon/action_dim null; the BPE in tokenizer.json."""
    d = tmp_path / "published"
    d.mkdir()
    (d / "processor_config.json").write_text(json.dumps({
        "action_dim": None, "auto_map": {"AutoProcessor": "processing_action_tokenizer.UniversalActionProcessor"},
        "min_token": tok.min_token, "processor_class": "UniversalActionProcessor", "scale": 10,
        "time_horizon": None, "vocab_size": tok.vocab_size}))
    tok.bpe.save(str(d / "tokenizer.json"))
    (d / "processing_action_tokenizer.py").write_text("raise SystemExit('remote code must never run')\n")
    loaded = FastTokenizer.load(d)
    assert loaded.time_horizon is None and loaded.scale == 10.0
    chunk = smooth_chunks(1, H, D, seed=6)[0]
    np.testing.assert_allclose(loaded.decode(loaded.encode(chunk), H, D)[0], tok.decode(tok.encode(chunk))[0])
    with pytest.raises(PolicyError, match="time_horizon and action_dim"):
        loaded.decode(loaded.encode(chunk))


def test_malformed_sequences_fall_back_and_are_counted(tok: FastTokenizer):
    tok.stats.__init__()
    good = tok.encode(smooth_chunks(1, H, D, seed=7)[0])[0]
    cases = [good[: len(good) // 2], good + good, [], [10**6, -5], [good[0], tok.vocab_size + 3]]
    out = tok.decode(cases)  # never raises
    assert out.shape == (len(cases), H, D) and np.isfinite(out).all()
    s = tok.stats
    assert s.chunks == 5 and s.padded >= 1 and s.truncated == 1 and s.empty == 2
    np.testing.assert_array_equal(out[2], 0.0)  # nothing decodable: the normalised mean
    assert s.fallbacks == s.padded + s.truncated + s.empty


def test_fit_refuses_a_too_small_vocab():
    with pytest.raises(PolicyError, match="vocab_size"):
        FastTokenizer.fit(smooth_chunks(20, H, D), vocab_size=200)


def test_missing_files_name_the_file(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "processor_config.json").write_text("{}")
    with pytest.raises(PolicyError, match=r"tokenizer\.json"):
        FastTokenizer.load(tmp_path / "x")
