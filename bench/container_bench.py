"""Container image size and cold start: `docker compose up` to the first answer and to healthy.

    python bench/container_bench.py [--image TAG] [--runs 5]

Without --image it builds the image from this checkout (BASE_IMAGE from $TAGGERHUB_BASE_IMAGE,
pip's CA from $TAGGERHUB_BUILD_CA or the system bundle). Each run is a fresh compose project
of compose.yaml on free loopback ports with a new state volume, taken down afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from loopback import free_port

REPO = Path(__file__).resolve().parents[1]
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def docker(*args: str, timeout_s: float = 600) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        sys.exit(f"docker {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def answers(port: int) -> bool:
    """The server speaks Pyro: a `taggerhub status` equivalent, without a process start."""
    from taggerhub import client

    try:
        client.createProxy(host="127.0.0.1", port=port).hub_status()
        return True
    except Exception:
        return False


def build(base: str) -> tuple[str, float]:
    tag = f"taggerhub-docker-bench:{uuid.uuid4().hex[:8]}"
    args = ["build", "--quiet", "--build-arg", f"BASE_IMAGE={base}", "--tag", tag]
    ca = Path(os.environ.get("TAGGERHUB_BUILD_CA", SYSTEM_CA))
    if ca.is_file():
        args += ["--secret", f"id=ca,src={ca}"]
    started = time.perf_counter()
    docker(*args, str(REPO), timeout_s=1800)
    return tag, time.perf_counter() - started


def cold_start(image: str, workdir: Path) -> tuple[float, float]:
    """Seconds from `up` to the first RPC answer, and to compose reporting the service healthy."""
    rpc, metrics = free_port(), free_port()
    env = workdir / f"{rpc}.env"
    env.write_text(f"TAGGERHUB_IMAGE={image}\nTAGGERHUB_RPC_PORT={rpc}\nTAGGERHUB_METRICS_PORT={metrics}\n")
    compose = ["compose", "--env-file", str(env), "-f", str(REPO / "compose.yaml"),
               "-p", f"docker-bench-{uuid.uuid4().hex[:8]}"]
    started = time.perf_counter()
    up = subprocess.Popen(
        ["docker", *compose, "up", "--detach", "--wait", "--wait-timeout", "120", "--no-build", "--pull", "never"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        first_answer = None
        deadline = started + 120
        while time.perf_counter() < deadline:
            if first_answer is None and answers(rpc):
                first_answer = time.perf_counter() - started
            if up.poll() is not None:
                break
            time.sleep(0.05)
        up.wait(timeout=10)
        healthy = time.perf_counter() - started
        if up.returncode != 0:
            sys.exit(f"compose up failed: {up.stderr.read()}")
        return first_answer if first_answer is not None else healthy, healthy
    finally:
        docker(*compose, "down", "--volumes", "--timeout", "30")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="image to measure (default: build this checkout)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = os.environ.get("TAGGERHUB_BASE_IMAGE", "python:3.11-slim-bookworm")
    image, built_s = (args.image, None) if args.image else build(base)
    try:
        size = int(docker("image", "inspect", "--format", "{{.Size}}", image))
        base_size = None
        if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode == 0:
            base_size = int(docker("image", "inspect", "--format", "{{.Size}}", base))
        layers = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image))
        with tempfile.TemporaryDirectory() as tmp:
            runs = [cold_start(image, Path(tmp)) for _ in range(args.runs)]
    finally:
        if not args.image:
            docker("image", "rm", image)
    mb = 1e6
    print(f"image            {image}  ({len(layers)} layers)")
    print(f"image size       {size / mb:.0f} MB"
          + (f"  (base {base} {base_size / mb:.0f} MB, taggerhub adds {(size - base_size) / mb:.0f} MB)"
             if base_size else ""))
    if built_s is not None:
        print(f"build            {built_s:.1f} s (with whatever BuildKit cache this machine has)")
    first, healthy = zip(*runs, strict=True)
    print(f"cold start, {args.runs} runs (`docker compose up` to ...)")
    for label, values in (("first RPC answer", first), ("healthy", healthy)):
        print(f"  {label:<18} median {statistics.median(values):.2f} s   min {min(values):.2f}   max {max(values):.2f}")


if __name__ == "__main__":
    main()
