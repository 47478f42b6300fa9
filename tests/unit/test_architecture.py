"""The structure holds: mypy follows every leadbus.* import to its source, and the layer contracts bite."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_mypy_sees_the_real_type_of_a_cross_package_import(tmp_path: Path) -> None:
    from mypy import api

    probe = tmp_path / "probe.py"
    probe.write_text("from leadbus.processors.core.normalize import normalise\n"
                     "from leadbus.producers import Publisher\n"
                     "reveal_type(normalise)\nreveal_type(Publisher.publish)\n")
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypy finds leadbus (and its linked folders) from the project root
    try:
        out, err, _ = api.run([str(probe), "--cache-dir", str(tmp_path / "cache"), "--follow-imports", "silent"])
    finally:
        os.chdir(cwd)
    assert "def (lead: leadbus.models.CaseLead) -> leadbus.processors.core.normalize.Normalised" in out, out + err
    assert "leadbus.producers.publisher.PendingDelivery" in out, out + err


def _tree_with(tmp_path: Path, violation: tuple[str, str] | None) -> Path:
    """A copy of the package (links resolved) with one import added to one module."""
    shutil.copytree(ROOT / "leadbus", tmp_path / "leadbus", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if violation is not None:
        module, statement = violation
        path = tmp_path / (module.replace(".", "/") + ".py")
        path.write_text(path.read_text() + f"\n{statement}\n")
    return tmp_path


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_layer_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    result = _lint_imports(_tree_with(tmp_path, None))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ kept, 0 broken", result.stdout), result.stdout


@pytest.mark.parametrize(("module", "statement", "contract"), [
    ("leadbus.processors.core.normalize", "import confluent_kafka", "The pure core imports no Kafka"),
    ("leadbus.processors.core.linking", "import time", "The pure core imports no Kafka"),
    ("leadbus.sinks.registry", "from leadbus.processors import stage", "Sinks and producers use the core"),
    ("leadbus.avro.codec", "import leadbus.sinks.archive", "The shared core"),
])
def test_a_deliberate_violation_breaks_its_contract(tmp_path: Path, module: str, statement: str,
                                                    contract: str) -> None:
    result = _lint_imports(_tree_with(tmp_path, (module, statement)))
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken) or contract in result.stdout.split("Broken contracts")[-1], \
        result.stdout
