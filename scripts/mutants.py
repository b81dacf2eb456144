"""Hand-written mutants of the engine core that mutmut does not make (README, "Mutation
testing"): mutmut leaves functions under a decorator alone (the fence's `section`, an
`asynccontextmanager`) and never drops a whole condition of an `and` chain, such as the
fence's version check.

Each mutant is applied, one at a time, to a copy of the checkout; the chosen tests run
against it; a mutant no test fails is printed as a survivor. Usage, from the checkout (the
test database URLs in the environment, as the Makefile exports them):

    .venv/bin/python scripts/mutants.py            # every mutant
    .venv/bin/python scripts/mutants.py fence      # those whose name contains "fence"
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FENCE = "dialer/engine/fence.py"
LEADS = "dialer/store/leads.py"
FENCE_TESTS = ("tests/engine/test_fence.py", "tests/engine/test_fence_across_pauses.py")
CLAIM_TESTS = ("tests/store/test_claim.py", "tests/store/test_claim_leads.py")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = (
    Mutant(
        "fence: no version check",
        FENCE,
        "\n            and view.version == version\n",
        "\n",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: no state check",
        FENCE,
        "\n            and view.state == CampaignState.RUNNING\n",
        "\n",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: no closed check",
        FENCE,
        "not self.closed\n            and view is not None",
        "view is not None",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: a refused section goes ahead",
        FENCE,
        "yield False",
        "yield True",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: an allowed section is not counted",
        FENCE,
        "        self._busy[campaign_id] += 1\n",
        "",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: an await between the check and the count",
        FENCE,
        "        self._busy[campaign_id] += 1\n",
        "        await asyncio.sleep(0)\n        self._busy[campaign_id] += 1\n",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: a finished campaign's count is kept",
        FENCE,
        "                    del self._busy[campaign_id]\n",
        "                    pass\n",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: nobody is woken when a section ends",
        FENCE,
        "                self._idle.notify_all()\n",
        "",
        FENCE_TESTS,
    ),
    Mutant(
        "fence: a pause does not wait",
        FENCE,
        "lambda: self._busy.get(msg.campaign_id, 0) == 0",
        "lambda: True",
        FENCE_TESTS,
    ),
    Mutant(
        "claim_leads: not sorted",
        LEADS,
        "    rows.sort(key=lambda r: (r[0].due, r[0].id))\n",
        "",
        CLAIM_TESTS,
    ),
    Mutant(
        "claim_leads: no SKIP LOCKED on PostgreSQL",
        LEADS,
        '        skip_locked = dialect != "sqlite"\n',
        "        skip_locked = False\n",
        CLAIM_TESTS,
    ),
)

IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "mutants", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)


def run_tests(copy: Path, tests: tuple[str, ...]) -> bool:
    """Whether the tests pass in `copy` (its `dialer` comes first on the path)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    return subprocess.run(cmd, cwd=copy, capture_output=True, check=False).returncode == 0


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(a in m.name for a in argv)]
    with tempfile.TemporaryDirectory(prefix="dialer-mutants-") as tmp:
        copy = Path(tmp) / "main"
        shutil.copytree(ROOT, copy, ignore=IGNORE)
        baseline = sorted({t for m in chosen for t in m.tests})
        if not run_tests(copy, tuple(baseline)):
            print("the tests fail without any mutant: fix them first")
            return 2
        survivors = []
        for m in chosen:
            target = copy / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                print(f"?? {m.name}: the text to mutate is not there once (code changed)")
                survivors.append(m.name)
                continue
            target.write_text(original.replace(m.old, m.new))
            try:
                killed = not run_tests(copy, m.tests)
            finally:
                target.write_text(original)
            print(f"{'killed  ' if killed else 'SURVIVED'} {m.name}")
            if not killed:
                survivors.append(m.name)
        print(f"{len(chosen)} mutants, {len(chosen) - len(survivors)} killed")
        return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
