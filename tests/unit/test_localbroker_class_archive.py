"""The brokers' JVMs map the class-data archive of their jars when `leadbus broker fetch` has written one."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadbus.localbroker import KafkaCluster
from leadbus.localbroker.runtime import class_archive


@pytest.fixture
def libs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "kafka-libs"
    folder.mkdir()
    (folder / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    monkeypatch.setenv("LEADBUS_KAFKA_LIBS", str(folder))
    return folder


def test_without_an_archive_the_jvm_loads_its_classes_from_the_jars(libs: Path) -> None:
    opts = KafkaCluster(1, libs.parent / "kafka")._jvm()
    assert not any(o.startswith("-XX:SharedArchiveFile") for o in opts)
    assert opts[-2:] == ["-cp", f"{libs}/*"]


def test_with_the_archive_written_the_jvm_maps_it(libs: Path) -> None:
    archive = class_archive(libs)
    assert archive.parent == libs and archive == class_archive(libs), "one archive per jars and Java runtime"
    archive.write_bytes(b"")
    opts = KafkaCluster(1, libs.parent / "kafka")._jvm()
    assert f"-XX:SharedArchiveFile={archive}" in opts
    assert opts.index(f"-XX:SharedArchiveFile={archive}") < opts.index("-cp")
