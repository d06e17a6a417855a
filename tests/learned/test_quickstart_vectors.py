"""The document vectors shipped with the sample corpus are the shipped model's (``sparsearch quickstart``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsearch.quickstart import LEARNED_MODEL, SAMPLE_VECTORS, read_vectors, write_sample_vectors

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (REPO / "models" / LEARNED_MODEL / "model.safetensors").is_file(),
                    reason="needs the shipped model's weights (models/ of the checkout)")
def test_shipped_sample_vectors_equal_the_models(tmp_path: Path) -> None:
    """Re-encode the sample with the model: the same weights to 1e-5, token by token (a token missing on
    one side weighs 0 there). Rewrite with ``python -m sparsearch.quickstart`` after changing the model
    or the corpus."""
    fresh = tmp_path / "vectors.jsonl"
    assert write_sample_vectors(fresh) == 20
    shipped, now = read_vectors(SAMPLE_VECTORS), read_vectors(fresh)
    assert shipped.keys() == now.keys()
    for doc_id, vector in shipped.items():
        tokens = sorted(set(vector) | set(now[doc_id]))
        a = np.array([vector.get(t, 0.0) for t in tokens], np.float32)
        b = np.array([now[doc_id].get(t, 0.0) for t in tokens], np.float32)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=doc_id)
        assert len(set(vector) ^ set(now[doc_id])) <= 0.01 * len(tokens), doc_id
