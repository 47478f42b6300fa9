"""Fetching the Kafka broker runtime (jars) from Maven Central into a cache outside the repo."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "4.1.1"


class KafkaRuntimeError(RuntimeError):
    """The broker runtime could not be fetched or a broker could not be started."""


def cache_dir() -> Path:
    root = os.environ.get("LEADBUS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "leadbus"
    )
    return Path(root)


def deploy_file(name: str) -> Path:
    """A file of `deploy/local/` (packaged as `leadbus.deploy.local`)."""
    ref = resources.files("leadbus.deploy.local").joinpath(name)
    with resources.as_file(ref) as path:
        return Path(path)


def ensure_kafka_libs(version: str = KAFKA_VERSION) -> Path:
    """Return a folder of broker jars, running Maven once to collect them when absent.

    `LEADBUS_KAFKA_LIBS` points at a ready folder instead (e.g. one a CI cache restored).
    """
    override = os.environ.get("LEADBUS_KAFKA_LIBS")
    if override:
        libs = Path(override)
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise KafkaRuntimeError(f"LEADBUS_KAFKA_LIBS={libs} holds no kafka_2.13 jar")
        return libs
    libs = cache_dir() / f"kafka-{version}"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaRuntimeError("Maven (mvn) is needed to fetch Kafka from Maven Central")
    pom = deploy_file("pom.xml")
    tmp = libs.with_name(libs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-B", "-q", "-f", str(pom), f"-Dkafka.version={version}",
           f"-Dlibs.dir={tmp}", "package"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        raise KafkaRuntimeError(
            f"mvn failed to collect Kafka {version} jars:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(version)
    return libs


def class_archive(libs: Path) -> Path:
    """Where the JVM's class-data archive of `libs` is (`train_class_archive` writes it): named after the Java
    runtime it was dumped by, as an archive only maps into the JVM that made it."""
    java = Path(java_executable()).resolve()
    stat = java.stat()
    stamp = hashlib.sha256(f"{java}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return libs / f"classes-{stamp}.jsa"


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaRuntimeError("Java 17+ is needed to run Kafka brokers")
    return java
