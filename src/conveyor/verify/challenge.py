"""A generative candidate against its champion: the generation contract, the champion as incumbent.

``conveyor models challenge chat:4 --champion chat:3 --contract generation.yaml`` serves both versions
for the run (``conveyor serve`` on loopback ports), asks both the golden prompts, and judges the
candidate's answers by the contract, its ``incumbent`` expectations against the champion's answers to
the same prompts.  The candidate passes when every judged check passed; a check too noisy to judge
is reported and counted, never a refusal.  The verdict is kept on the registered candidate as tags,
beside a classic challenge's (``challenge=passed|refused``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.digest import sha256_file
from conveyor.errors import InvalidInput
from conveyor.verify.checks import CheckResult
from conveyor.verify.contract import load_contract
from conveyor.verify.reports import ok
from conveyor.verify.runner import check_server
from conveyor.verify.targets import open_target

TOO_NOISY = "too noisy to judge"


@dataclass
class GenerationVerdict:
    candidate: str
    champion: str
    contract: str  # the contract file's digest (sha256:...): which prompts judged it
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return ok(self.results)

    @property
    def too_noisy(self) -> int:
        return sum(r.status == "skipped" and r.message.startswith(TOO_NOISY) for r in self.results)

    def tags(self) -> dict[str, str]:
        judged = [r for r in self.results if r.status != "skipped"]
        return {
            "challenge": "passed" if self.passed else "refused",
            "challenge.champion": self.champion,
            "challenge.checks": f"{sum(r.status == 'passed' for r in judged)}/{len(judged)}",
            "challenge.too_noisy": str(self.too_noisy),
            "challenge.contract": self.contract,
        }


def challenge_generation(
    candidate: str,
    champion: str,
    contract_file: Path,
    *,
    timeout: float = 120,
    on_notice: Callable[[str], None] | None = None,
) -> GenerationVerdict:
    """Serve both versions, run the contract's golden prompts on each, judge the candidate."""
    contract = load_contract(contract_file)
    if contract.generation is None:
        raise InvalidInput(f"{contract_file}: a generative challenge needs a contract with a `generation:` section")
    with ExitStack() as stack:
        mine = stack.enter_context(open_target(candidate, timeout=timeout, on_notice=on_notice))
        theirs = stack.enter_context(open_target(champion, timeout=timeout, on_notice=on_notice))
        results = check_server(mine.url, contract, incumbent_url=theirs.url, parallel=4)
    return GenerationVerdict(candidate, champion, f"sha256:{sha256_file(contract_file)[0]}", results)


def record_generation_verdict(candidate: str, verdict: GenerationVerdict) -> None:
    """Tag the registered candidate with the verdict: its lineage shows why it went out, or never did."""
    from conveyor.registry.config import open_registry
    from conveyor.serving.fetch import is_registry_ref

    if not is_registry_ref(candidate):
        return
    registry = open_registry()
    version = registry.resolve(candidate)
    registry.set_tags(version.name, version.version, verdict.tags(), [])
