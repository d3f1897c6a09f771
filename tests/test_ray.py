"""ensemble.ray: scoring a ray.data.Dataset on an actor pool equals scoring locally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import ensemble
from ensemble import Consensus, errors

ray = pytest.importorskip("ray")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikibio_dev.json"
if not DATA.exists():
    DATA = Path("/work/shared/data/wikibio_dev.json")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.filterwarnings("ignore")  # Ray's own deprecation and resource warnings
def test_wikibio_dev_through_ray_equals_local(local_ray: None) -> None:
    from ensemble.ray import score_dataset

    if not DATA.exists():
        pytest.skip("the shared WikiBio data is not on this machine")
    passages = json.loads(DATA.read_text())
    rows = [
        {"id": i, "sentences": p["gpt3_sentences"], "samples": p["gpt3_text_samples"]}
        for i, p in enumerate(passages)
    ]
    ds = ray.data.from_items(rows)
    scored = score_dataset(ds, sentences_column="sentences", workers=2, batch_size=8)
    out = sorted(scored.take_all(), key=lambda r: r["id"])
    assert len(out) == len(passages) == 60
    for row, p in zip(out, passages, strict=True):
        local = ensemble.score(sentences=p["gpt3_sentences"], samples=p["gpt3_text_samples"])
        assert list(row["confidences"]) == [s.confidence for s in local.spans]
        assert Consensus.model_validate_json(row["consensus"]) == local


@pytest.mark.filterwarnings("ignore")
def test_text_column_and_bad_arguments(local_ray: None) -> None:
    from ensemble.ray import score_dataset

    ds = ray.data.from_items(
        [{"text": "Paris is in France. It is big.", "samples": ["Paris is in France."] * 3}]
    )
    (row,) = score_dataset(ds, workers=1).take_all()
    local = ensemble.score(
        text="Paris is in France. It is big.", samples=["Paris is in France."] * 3
    )
    assert list(row["confidences"]) == [s.confidence for s in local.spans]
    with pytest.raises(errors.UnknownNameError):
        score_dataset(ds, metric="nope")
    with pytest.raises(errors.ConfigurationError, match="workers"):
        score_dataset(ds, workers=0)
    with pytest.raises(errors.ConfigurationError, match="Dataset"):
        score_dataset([1, 2])
