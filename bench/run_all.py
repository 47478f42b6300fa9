"""`make bench`: every bench of this folder, one after the other, and `bench/RESULTS.md` from that one run.

    python bench/run_all.py [--only NAME ...] [--out bench/RESULTS.md]

Each bench runs as its own process (its stdout and stderr together); its lines are echoed as they come
and recorded. RESULTS.md holds the date, the machine (CPU, cores, memory, load, Python, librdkafka,
Kafka) and every bench's figures and ratios, all from this run. librdkafka's own log lines go through
Python logging in every client the project builds (`leadbus.clients.KafkaSettings`, `logger`); a raw
one (`%3|…|FAIL|rdkafka#…`) that still reaches the output is a bug to fix, so the run reports it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (name, arguments): in the order `make bench` runs them.
BENCHES: list[tuple[str, list[str]]] = [
    ("publish", []),
    ("core", []),
    ("intake", []),
    ("intake", ["--signed"]),  # production traffic is sealed: one Ed25519 check per chained run of a batch
    ("scale", []),
    ("link_quality", []),
    ("link_speed", []),
    ("latency", []),
    ("signing", []),
    ("replay", []),
]

RAW_LIBRDKAFKA = re.compile(r"^%\d\|\d+\.\d+\|")


def machine() -> list[str]:
    import confluent_kafka

    from leadbus.localbroker.runtime import KAFKA_VERSION

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    memory = ""
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory = f", {kib / 1024 / 1024:.1f} GiB memory"
    except (OSError, StopIteration, ValueError):
        pass
    return [f"- machine: {platform.node()}, {cpu}, {os.cpu_count()} cores{memory}, {platform.system()} "
            f"{platform.release()}",
            f"- load average at the start: {' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1 / 5 / 15 min)",
            f"- Python {platform.python_version()}, confluent-kafka {confluent_kafka.version()}, librdkafka "
            f"{confluent_kafka.libversion()[0]}, Kafka {KAFKA_VERSION} (one local broker per bench)"]


def run(name: str, args: list[str]) -> tuple[list[str], int, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p),
           "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True, cwd=ROOT)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
    return lines, proc.wait(), time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=[n for n, _ in BENCHES], help="run only these benches")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    opts = parser.parse_args()
    started = datetime.now(UTC)
    doc = ["# Bench results", "", "Written by `make bench` (`bench/run_all.py`): every figure below comes from this "
           "one run.", "", f"- date: {started:%Y-%m-%d %H:%M} UTC", *machine(), ""]
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        doc += ["The machine was busy when the run began (load average above its cores): rates are lower and "
                "latencies higher than on an idle machine, and ratios of runs one after the other compare "
                "different loads.", ""]
    failed = []
    raw_lines = 0
    for name, args in BENCHES:
        if opts.only and name not in opts.only:
            continue
        print(f"== bench/{name}.py {' '.join(args)}", flush=True)
        lines, code, seconds = run(name, args)
        raw = [line for line in lines if RAW_LIBRDKAFKA.match(line)]
        raw_lines += len(raw)
        doc += [f"## {name}", "", f"`python bench/{name}.py{' ' + ' '.join(args) if args else ''}` — "
                f"{seconds:.0f} s{'' if code == 0 else f', FAILED (exit {code})'}", "", "```",
                *(line for line in lines if not RAW_LIBRDKAFKA.match(line)), "```", ""]
        if raw:
            doc += [f"{len(raw)} raw librdkafka line(s) reached the output (a client built without `logger`).", ""]
        if code != 0:
            failed.append(name)
        opts.out.write_text("\n".join(doc))  # after each bench: a run cut short keeps what it measured
    opts.out.write_text("\n".join(doc))
    print(f"== wrote {opts.out}" + (f"; failed: {', '.join(failed)}" if failed else "")
          + (f"; {raw_lines} raw librdkafka lines" if raw_lines else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
