"""kill -9 an inspector server while clients upload models, restart it, check the store.

After every kill the store must hold every upload that completed (byte-exact, sha256 = id),
nothing half-written (no folder that is not a complete entry, .tmp emptied on restart), and
the start-up digest check must find nothing to quarantine.

    python scripts/kill9_uploads.py --rounds 20 [--store DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "clients" / "python")]


def model_variants(count: int) -> list[bytes]:
    """Distinct models: small CNNs and a few ~45 MB ResNets (slow writes), differing by doc_string."""
    from factory import resnet18_like, small_cnn

    bases = [small_cnn(seed=1), resnet18_like(seed=2, size=64)]
    out = []
    for i in range(count):
        model = bases[1 if i % 3 == 2 else 0]
        model.doc_string = f"variant {i}"
        out.append(model.SerializeToString())
    return out


def start_server(store: Path) -> tuple[subprocess.Popen, str]:
    """`inspector serve` on a free port; (process, address) once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "inspector.cli.main", "serve", "--port", "0", "--store", str(store),
         "--no-vetting", "--log-level", "WARNING", "--workers", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path[:3])))
    line = proc.stdout.readline()
    if "serving on" not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return proc, line.split()[-1]


def upload_until_killed(address: str, models: list[bytes], completed: dict, confirmed: list,
                        rng: random.Random, stop: threading.Event) -> None:
    """Upload random variants until the server dies; record each upload the server confirmed."""
    import grpc
    from inspector_client import InspectorClient

    with InspectorClient(address, timeout=30) as client:
        while not stop.is_set():
            data = rng.choice(models)
            try:
                info = client.load_model(data)
            except grpc.RpcError:
                return
            completed[info.id] = hashlib.sha256(data).hexdigest()
            confirmed.append(info.id)


def check_store(store: Path, completed: dict) -> list[str]:
    """Problems found in the store after a crash (empty list: consistent)."""
    from inspector.store.model_store import ID_RE, ModelStore
    from inspector.store.vetting import verify_store

    problems = [f"quarantined {e}: {r}" for e, r in verify_store(store)]
    ids = {s.id for s in ModelStore(store).list()}  # also empties .tmp
    problems += [f"completed upload {i} is missing" for i in completed if i not in ids]
    problems += [f"upload {i} was recorded under digest {d}" for i, d in completed.items() if i != d]
    for folder in store.iterdir():
        if folder.name in (".tmp", ".quarantine"):
            if folder.name == ".tmp" and any(folder.iterdir()):
                problems.append(".tmp was not emptied")
            continue
        if not ID_RE.fullmatch(folder.name) or folder.name not in ids:
            problems.append(f"stray entry {folder.name}")
    return problems


def run(rounds: int, store: Path, seed: int = 0, clients: int = 2) -> dict:
    """`rounds` kill/restart cycles; a report with counts and every problem found."""
    rng = random.Random(seed)
    models = model_variants(12)
    completed: dict[str, str] = {}
    confirmed: list[str] = []
    interrupted = 0
    problems: list[str] = []
    for _ in range(rounds):
        proc, address = start_server(store)
        stop = threading.Event()
        workers = [threading.Thread(target=upload_until_killed,
                                    args=(address, models, completed, confirmed, random.Random(rng.random()), stop))
                   for _ in range(clients)]
        for w in workers:
            w.start()
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        interrupted += sum(1 for _ in (store / ".tmp").iterdir())  # writes cut short by the kill
        stop.set()
        for w in workers:
            w.join(30)
        problems += check_store(store, completed)
    return {"rounds": rounds, "confirmed_uploads": len(confirmed),
            "completed_uploads": len(completed), "interrupted_writes": interrupted, "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args.rounds, args.store or Path(tmp) / "store", args.seed)
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
