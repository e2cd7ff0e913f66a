"""Names in CI: image references lower-cased where registries need it, {owner} in defaults."""

from __future__ import annotations

import pytest


def test_image_names_are_lower_cased_in_their_repository_only() -> None:
    from conveyor.packaging.builders import image_reference

    assert image_reference("ghcr.io/Acme/Sentiment:3") == "ghcr.io/acme/sentiment:3"
    assert image_reference("127.0.0.1:5000/m:V1") == "127.0.0.1:5000/m:V1"  # tags keep their case
    assert image_reference("Localhost:5000/ABC") == "localhost:5000/abc"  # a port is not a tag


def test_owner_in_a_default_is_the_repository_owner_in_ci_and_local_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conveyor.pipeline.github import _literal
    from conveyor.pipeline.runner import resolve_params
    from conveyor.pipeline.spec import Pipeline

    pipeline = Pipeline.model_validate(
        {"params": {"image": "ghcr.io/{owner}/m", "n": 3}, "steps": {"s": {"run": "true"}}}
    )
    monkeypatch.delenv("GITHUB_REPOSITORY_OWNER", raising=False)
    assert resolve_params(pipeline, {})["image"] == "ghcr.io/local/m"
    monkeypatch.setenv("GITHUB_REPOSITORY_OWNER", "Acme")
    assert resolve_params(pipeline, {}) == {"image": "ghcr.io/acme/m", "n": 3}
    assert _literal("ghcr.io/{owner}/m") == "format('ghcr.io/{0}/m', github.repository_owner)"
    assert _literal("it's") == "'it''s'" and _literal(True) == "'true'"
