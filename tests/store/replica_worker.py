"""One replica in a test of a shared store: a separate process running the store API.

    python tests/store/replica_worker.py '{"scenario": "race", "spec": ..., "index": 0, ...}'

Scenarios (each waits for the file `go` before it starts, so replicas start together):
- race: the same model under one shared name, an own name, an own metadata field; then
  moving the name "hot" between two models again and again (replace); then claiming the
  name "claim" for its own model without replace (one replica wins).
- slow: store a model whose upload stalls after its first chunk until the file `resume` exists.
Prints one JSON line with what it did.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = Path(__file__).resolve()
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent)]

from factory import small_cnn  # noqa: E402

from inspector import errors  # noqa: E402
from inspector.store import open_store  # noqa: E402


def wait_for(path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.005)


def race(store, job: dict) -> dict:
    i, rounds = job["index"], job.get("rounds", 10)
    shared = store.put_bytes([small_cnn(seed=0).SerializeToString()], name="shared", metadata={"by": i})
    store.put_bytes([small_cnn(seed=0).SerializeToString()], name=f"own-{i}", metadata={"mine": i})
    store.update_metadata(shared.id, {f"k{i}": i})
    moved = []
    for r in range(rounds):
        moved.append(store.put_bytes([small_cnn(seed=1 + (i + r) % 2).SerializeToString()],
                                     name="hot", replace=True).id)
    try:
        claim = store.put_bytes([small_cnn(seed=10 + i).SerializeToString()], name="claim").id
    except errors.FailedPrecondition:
        claim = None
    return {"shared": shared.id, "moved": sorted(set(moved)), "claim": claim}


def slow(store, job: dict) -> dict:
    data = small_cnn(seed=job.get("seed", 7)).SerializeToString()

    def chunks():
        yield data[:1000]
        print(json.dumps({"started": True}), flush=True)
        wait_for(job["resume"])
        yield data[1000:]

    return {"id": store.put_bytes(chunks(), name=job.get("name", "slow")).id}


# ---- used by the tests ------------------------------------------------------------------------
def start_replicas(jobs: list[dict], env: dict | None = None) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, str(WORKER), json.dumps(job)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for job in jobs]


def results(procs: list[subprocess.Popen], timeout: float = 60) -> list[dict]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def check_race(store, outcomes: list[dict], model_ids: dict[int, str]) -> None:
    """What every race scenario must leave behind, whatever the interleaving."""
    n = len(outcomes)
    shared = store.get("shared")
    assert shared.id == model_ids[0] == outcomes[0]["shared"]
    # every replica's own name and own metadata field survived the others' writes
    assert set(shared.names) == {"shared"} | {f"own-{i}" for i in range(n)}
    assert {f"k{i}": i for i in range(n)}.items() <= store.get(shared.id).metadata.items()
    assert store.get("shared").metadata["by"] in range(n)
    for i in range(n):
        assert store.get(f"own-{i}").metadata["mine"] == i
    assert store.get("hot").id in (model_ids[1], model_ids[2])  # moved many times, never lost
    holders = [o["claim"] for o in outcomes if o["claim"] is not None]
    assert len(holders) == 1 and store.get("claim").id == holders[0]  # one replica won, others refused
    listed = store.list()
    assert len({e.id for e in listed}) == len(listed)
    for entry in listed:  # no corrupted entry
        folder = store.get(entry.id).path.parent
        assert hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest() == entry.id
    named = [name for e in listed for name in e.names]
    assert len(named) == len(set(named))  # a name is on exactly one model


def main() -> None:
    job = json.loads(sys.argv[1])
    store = open_store(job["spec"], cache_dir=job.get("cache"), ttl_s=job.get("ttl_s"))
    if job.get("go"):
        wait_for(job["go"])
    result = {"race": race, "slow": slow}[job["scenario"]](store, job)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
