"""Journey: a version registered with its reference, served with a payload log, watched for drift.

From the installed wheel, as docs/monitoring.md tells it: ``models register --reference``,
``serve --log-payloads``, traffic with curl-like clients, ``conveyor monitor`` (exit 0 on traffic
like the reference, 1 when another kind of text arrives: a new client sending tweets instead of
reviews shows in the unknown-token rate and the lengths), the HTML report, and ``--json``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx

from tests.journeys.conftest import User, copy_model
from tests.models import VOCAB

REVIEW_WORDS = [w for w in VOCAB if not w.startswith("[")]
TWEET_WORDS = ["lol", "omg", "#tbt", "@friend", "ikr", "brb", "smh", "tfw"]


def _reviews(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(REVIEW_WORDS, k=rng.randint(4, 12))) for _ in range(count)]


def _tweets(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(TWEET_WORDS + REVIEW_WORDS[:3], k=rng.randint(2, 5))) for _ in range(count)]


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

    server = user.serve("votes:1", "--log-payloads", str(logs), "--log-sample", "1", "--log-rotate-seconds", "1")
    _send(server.url, _tweets(400, seed=3))
    server.stop()
    drifted = user.run("monitor", "votes:1", "--logs", str(logs), "--window", "400", "--html", "drift.html")
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    report = json.loads(user.run("monitor", "votes:1", "--logs", str(logs), "--window", "400", "--json").stdout)
    judged = [w for w in report["windows"] if w["judged"]]
    assert [bool(w["drifted"]) for w in judged] == [False, False, True], judged
    assert {"text.unknown_token_rate", "text.words"} <= set(judged[-1]["drifted"])
    assert "text.unknown_token_rate" in (user.workdir / "drift.html").read_text()

    missing = user.run("monitor", "votes:1", "--logs", str(user.workdir / "nowhere"))
    assert missing.returncode == 4 and "no payload log for votes:1" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr
