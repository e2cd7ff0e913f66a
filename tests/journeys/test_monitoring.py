"""Journey: a version registered with its reference, served with a payload log, watched for drift.

From the installed wheel, as docs/monitoring.md tells it: ``models register --reference``,
``serve --log-payloads``, traffic with curl-like clients, ``conveyor monitor`` (exit 0 on traffic
like the reference, 1 when another kind of text arrives: a new client sending tweets instead of
reviews shows in the unknown-token rate and the lengths), the HTML report, and ``--json``.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.journeys.conftest import User, copy_model, wait_http
from tests.models import VOCAB

REVIEW_WORDS = [w for w in VOCAB if not w.startswith("[")]
TWEET_WORDS = ["lol", "omg", "#tbt", "@friend", "ikr", "brb", "smh", "tfw"]


def _reviews(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(REVIEW_WORDS, k=rng.randint(4, 12))) for _ in range(count)]


def _tweets(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(TWEET_WORDS + REVIEW_WORDS[:3], k=rng.randint(2, 5))) for _ in range(count)]


def wait_for_metric(url: str, sample: str, value: float, timeout: float = 20) -> str:
    """The server's /metrics text once the sample starting ``sample`` reads ``value``; fails at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = httpx.get(url + "/metrics", timeout=10).text
        if any(line.startswith(sample) and float(line.rsplit(" ", 1)[1]) == value for line in metrics.splitlines()):
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError(f"no {sample}... {value} within {timeout} s:\n{metrics}")
        time.sleep(0.2)


def _send(url: str, texts: list[str]) -> None:
    with httpx.Client(timeout=10) as client:
        for start in range(0, len(texts), 4):
            answer = client.post(url + "/predict", json=texts[start : start + 4])
            assert answer.status_code == 200, answer.text


def test_a_served_version_is_watched_against_its_reference(user: User, vote_folder: Path) -> None:
    copy_model(vote_folder, user.workdir / "models" / "votes")
    (user.workdir / "reference.txt").write_text("\n".join(_reviews(600, seed=1)) + "\n")
    registered = user.ok("models", "register", "models/votes", "--name", "votes", "--reference", "reference.txt")
    assert "reference profile: 600 items" in registered.stderr
    files = {f["path"] for f in json.loads(user.ok("models", "show", "votes:1", "--json").stdout)["files"]}
    assert "monitoring/profile.json" in files

    logs = user.workdir / "payloads"
    server = user.serve("votes:1", "--log-payloads", str(logs), "--log-sample", "1", "--log-rotate-seconds", "1")
    _send(server.url, _reviews(800, seed=2))
    server.stop()
    calm = user.run("monitor", "votes:1", "--logs", str(logs), "--window", "400")
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "votes:1 traffic against its reference" in calm.stdout and "none" in calm.stdout

    server = user.serve("votes:1", "--log-payloads", str(logs), "--log-sample", "1", "--log-rotate-seconds", "1",
                        "--drift-window", "400")  # fmt: skip
    _send(server.url, _tweets(400, seed=3))
    # the server judges its own logged traffic too: gauges on /metrics, off the request's path
    metrics = wait_for_metric(server.url, 'conveyor_drift_detected{column="text.unknown_token_rate"', 1.0)
    assert 'conveyor_drift_windows_total{model="votes",outcome="drifted",version="1"} 1.0' in metrics
    server.stop()
    drifted = user.run("monitor", "votes:1", "--logs", str(logs), "--window", "400", "--html", "drift.html")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    report = json.loads(user.run("monitor", "votes:1", "--logs", str(logs), "--window", "400", "--json").stdout)
    judged = [w for w in report["windows"] if w["judged"]]
    assert [bool(w["drifted"]) for w in judged] == [False, False, True], judged
    assert {"text.unknown_token_rate", "text.words"} <= set(judged[-1]["drifted"])
    assert "text.unknown_token_rate" in (user.workdir / "drift.html").read_text()

    # the dashboard shows the same judgement on the version's page
    port = free_port()
    ui = user.spawn("ui", "--port", str(port), "--payload-logs", str(logs), "--drift-window", "400", name="ui")
    ui.url = f"http://127.0.0.1:{port}"
    wait_http(ui, "/models")
    page = httpx.get(ui.url + "/models/votes/versions/1", timeout=60).text
    assert 'data-state="shown"' in page and 'data-drift="yes"' in page, page[-3000:]
    assert "drift in window 3: " in page and "text.unknown_token_rate" in page and "<svg" in page
    ui.stop()

    missing = user.run("monitor", "votes:1", "--logs", str(user.workdir / "nowhere"))
    assert missing.returncode == 4 and "no payload log for votes:1" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr


def test_labelled_traffic_is_exported_and_a_retrained_version_must_beat_the_live_one(
    user: User, vote_folder: Path
) -> None:
    """POST /feedback labels the logged traffic; `monitor --export-holdout` keeps the newest share
    apart; `models challenge` passes a version as good as production and refuses one that must be
    better, tagging each with its verdict."""
    from tests.models import expected_positive

    copy_model(vote_folder, user.workdir / "models" / "votes")
    (user.workdir / "reference.txt").write_text("\n".join(_reviews(300, seed=1)) + "\n")
    user.ok("models", "register", "models/votes", "--name", "votes", "--alias", "production",
            "--reference", "reference.txt")  # fmt: skip
    logs = user.workdir / "payloads"
    server = user.serve("votes@production", "--log-payloads", str(logs), "--log-sample", "1")
    texts = _reviews(200, seed=4)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for start in range(0, len(texts), 4):
            batch = texts[start : start + 4]
            answer = client.post("/predict", json=batch)
            truth = ["positive" if expected_positive(t) else "negative" for t in batch]
            sent = client.post("/feedback", json=[{"request_id": answer.headers["x-request-id"], "labels": truth}])
            assert sent.status_code == 202, sent.text
    server.stop()
    exported = user.run("monitor", "votes@production", "--logs", str(logs), "--window", "100", "--export-labelled",
                        "train.csv", "--export-holdout", "holdout.csv", "--holdout", "0.4")  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "120 rows in train.csv" in exported.stderr and "80 rows in holdout.csv" in exported.stderr
    assert (user.workdir / "holdout.csv").read_text().splitlines()[0].startswith("text,label,request_id")

    # the "retrained" version: as good, profiled on its rows (a challenger without a profile is refused)
    user.ok("models", "register", "models/votes", "--name", "votes", "--reference", "reference.txt")
    passed = user.run("models", "challenge", "votes:2", "--labelled", "holdout.csv")
    assert passed.returncode == 0 and "passed" in passed.stdout and "100.0%" in passed.stdout, passed.stdout
    refused = user.run("models", "challenge", "votes:2", "--labelled", "holdout.csv", "--margin", "0.01", "--json")
    verdict = json.loads(refused.stdout)
    assert refused.returncode == 1 and not verdict["passed"] and verdict["items"] == 80, refused.stdout
    tags = json.loads(user.ok("models", "show", "votes:2", "--json").stdout)["tags"]
    assert tags["challenge"] == "refused" and tags["challenge.champion"] == "votes:1"
    unknown = user.run("models", "challenge", "votes:2", "--labelled", "holdout.csv", "--target", "truth")
    assert unknown.returncode == 2 and "no column 'truth'" in unknown.stderr and "Traceback" not in unknown.stderr
