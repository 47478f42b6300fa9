"""The bus the analysts-in-the-loop tests share (issue #19): one broker with every topic, the key of SAMR's Shanghai
office generated and registered (`leadbus keys generate/register`), and the pipeline stages a test needs running as
workers. Reading it back: `tests.kafka_helpers` (`decoded`, `latest_cases`, `live_case_of`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from leadbus.cli import app
from leadbus.producers import Publisher
from leadbus.producers.signing import MemorySequences, SigningSealer, load_private_key
from tests.kafka_helpers import topics_cluster
from tests.processes import start_worker, stop

OFFICE = ("SAMR", "31")  # the office whose key signs analysts' decisions


@dataclass
class LinkBus:
    bootstrap: str
    key: Path  # SAMR.31's private key (its public key is registered)
    work: Path
    workers: list[Any] = field(default_factory=list)

    def analysts(self) -> Publisher:
        """A publisher signing as SAMR.31 (sequences in memory: one per test module)."""
        sealer = SigningSealer(".".join(OFFICE), load_private_key(self.key.read_bytes()), MemorySequences())
        return Publisher(*OFFICE, bootstrap_servers=self.bootstrap, sealer=sealer)


@contextmanager
def link_bus(work: Path, name: str, stages: Sequence[str]) -> Iterator[LinkBus]:
    """A broker, SAMR.31's key registered, and ``stages`` running as workers named ``<name>-<stage>``."""
    with topics_cluster(work / "kafka") as kc:
        bootstrap = kc.bootstrap_servers
        key = work / "samr31.key"
        runner = CliRunner()
        for args in (["keys", "generate", "--out", str(key)],
                     ["keys", "register", ".".join(OFFICE), "--public-key", f"{key}.pub", "-b", bootstrap]):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
        bus = LinkBus(bootstrap, key, work)
        try:
            for stage in stages:
                bus.workers.append(start_worker(bootstrap, work / "state", f"{name}-{stage}", work / "logs",
                                                stage=stage))
            yield bus
        finally:
            for proc in bus.workers:
                stop(proc)
