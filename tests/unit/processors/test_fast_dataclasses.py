"""`Acceptance` and `Normalised` store their fields at once (a hand-written `__init__`, issue #16) and stay the frozen
dataclasses they were: the same fields, equality, repr, refusal to change, `replace` and pickling."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from leadbus.processors.core.intake import Acceptance
from leadbus.processors.core.normalize import Normalised, normalise
from leadbus.processors.core.records import Source
from leadbus.producers.simulator import TrafficGenerator
from leadbus.signing import Seal


def test_the_per_lead_dataclasses_behave_as_frozen_dataclasses() -> None:
    lead = next(iter(TrafficGenerator(seed=2).leads(1, datetime(2026, 11, 1, tzinfo=UTC), timedelta(seconds=1))))
    normalised = normalise(lead)
    assert [f.name for f in dataclasses.fields(Normalised)] == ["lead", "name", "domains", "warnings"]
    assert normalised == Normalised(normalised.lead, normalised.name, normalised.domains, normalised.warnings)
    assert normalised == Normalised(lead=normalised.lead, name=normalised.name, domains=normalised.domains,
                                    warnings=normalised.warnings)
    source = Source("leadbus.intake.SAMR", 1, 2)
    seal = Seal("SAMR.33", "k", 1, 3, b"s", None)
    acceptance = Acceptance(normalised.lead, normalised, "d", source, b"o")
    assert [f.name for f in dataclasses.fields(Acceptance)] == ["lead", "normalised", "digest", "source", "original",
                                                                "seal"]
    assert acceptance.seal is None and acceptance.warnings == normalised.warnings
    sealed = dataclasses.replace(acceptance, seal=seal)
    assert sealed == Acceptance(normalised.lead, normalised, "d", source, b"o", seal) != acceptance
    assert dataclasses.replace(sealed, digest="e").digest == "e" and sealed.digest == "d"
    assert repr(sealed).startswith("Acceptance(lead=") and "seal=Seal(" in repr(sealed)
    assert pickle.loads(pickle.dumps(sealed)) == sealed
    assert pickle.loads(pickle.dumps(normalised)) == normalised
    assert dataclasses.asdict(acceptance)["digest"] == "d"
    for instance, name in ((acceptance, "digest"), (normalised, "domains")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(instance, name, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(instance, name)
    with pytest.raises(TypeError):
        hash(acceptance)  # a lead (a pydantic model) has no hash: neither had an Acceptance
