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
    from conveyor.pipeline.github import workflow
    from conveyor.pipeline.runner import resolve_params
    from conveyor.pipeline.spec import Pipeline

    pipeline = Pipeline.model_validate(
        {
            "params": {"image": "ghcr.io/{owner}/m", "n": 3, "note": "it's", "flag": True},
            "steps": {"s": {"run": "true"}},
        }
    )
    monkeypatch.delenv("GITHUB_REPOSITORY_OWNER", raising=False)
    assert resolve_params(pipeline, {})["image"] == "ghcr.io/local/m"
    monkeypatch.setenv("GITHUB_REPOSITORY_OWNER", "Acme")
    assert resolve_params(pipeline, {}) == {"image": "ghcr.io/acme/m", "n": 3, "note": "it's", "flag": True}
    # The generated workflow passes the same defaults as GitHub expressions, each quoted as GitHub's
    # grammar wants: the owner through format(), a quote doubled, a boolean as its string.
    [run] = [
        step["run"] for job in workflow("p", pipeline)["jobs"].values() for step in job["steps"]
        if "conveyor pipeline run" in step.get("run", "")
    ]  # fmt: skip
    assert "client_payload.image || format('ghcr.io/{0}/m', github.repository_owner) }}" in run
    assert "client_payload.note || 'it''s' }}" in run
    assert "client_payload.flag || 'true' }}" in run and "client_payload.n || '3' }}" in run
