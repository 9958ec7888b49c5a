"""Dataset audits on Ray: `inspector audit MODEL SOURCE --engine ray [--address ...] [--workers N]`.

The images are cut into shards of whole batches, in the order a single-process audit sends them.
Ray Data carries one row per shard: `from_items` (paths or .npy rows, labels), a `map_batches`
task that reads and decodes them with the model's preprocessing, then an actor pool of workers,
each holding one onnxruntime session of the model (opened from the local .onnx path), that folds
the shard batch by batch into a fresh AuditRun (`fold_batch` over OrtModelAccess, the same audit
graph as the server) and returns its `to_dict(arrays=True)`, pickled (the driver and its workers
are one trust domain: Ray pickles their messages anyway). The driver merges the partial states in shard
order (`AuditRun.merge`: counts add, Chan's update, the sketch's bins add) and writes the same
report.html/report.json as a single-process audit.

Exactness: a shard is a fixed list of whole batches and a worker keeps nothing from one shard to
the next (not even which tensors need centred sums), so a shard always gives the same partial,
whichever worker runs it and however often it is retried; with the shard order fixed, the merged
report is the same on every run. Against one process over the same batches: counts, min, max,
zero/active/saturation fractions and percentiles are exact, means and spreads agree to float64
rounding of the merges (far inside the audit's own float32 accuracy, see reductions.py).

Faults: Ray Data's actor pools restart a dead actor and retry its task (max_restarts=-1,
max_task_retries=-1), so a worker killed mid-run costs the shard it held, run again.

Ray is imported lazily: `pip install "inspector[ray]"` (ray[data]). A remote cluster
(`--address auto` or `ray://HOST:10001`) needs inspector installed on its nodes and the model
and images at the same paths there (a shared file system); `scheme://` sources (s3://, gs://,
file://) are listed and read through pyarrow's file systems instead.
"""

from __future__ import annotations

import glob
import io
import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector import errors

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
BATCH_SIZE = 8  # images per model run: the single-process `inspector audit` default
SHARD_BATCHES = 8  # batches per shard (64 images): a unit of work, of retry and of merge
DECODE_CPUS = 0.25  # logical CPUs of one Ray Data decode task
NO_ROW = -1  # `rows` entry of an encoded image (not a row of an .npy batch)


@dataclass(frozen=True)
class Item:
    """One image of the audit: an encoded image file (row NO_ROW) or row `row` of an .npy batch."""

    path: str
    row: int = NO_ROW


# --- sources --------------------------------------------------------------------------------


def _is_uri(source: str) -> bool:
    return "://" in source


def _uri_items(source: str) -> list[Item]:
    """Encoded images under a URI (s3://bucket/prefix, gs://..., file:///...), sorted by path."""
    from pyarrow import fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(source)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise errors.InvalidArgument(f"nothing found at {source!r}", field="images")
    scheme = source.split("://", 1)[0]
    if info.type == pafs.FileType.File:
        return [Item(source)]
    found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    keys = sorted(f.path for f in found if f.type == pafs.FileType.File
                  and Path(f.path).suffix.lower() in IMAGE_SUFFIXES)
    return [Item(f"{scheme}://{'/' if scheme == 'file' and not k.startswith('/') else ''}{k}") for k in keys]


def _npy_items(path: str) -> list[Item]:
    batch = np.load(path, mmap_mode="r")
    if batch.ndim < 2:
        raise errors.InvalidArgument(f"{path} holds an array of shape {list(batch.shape)}, not a batch "
                                     "[N, ...] of model inputs", field="images")
    return [Item(path, i) for i in range(len(batch))]


def _file_items(path: str) -> list[Item]:
    return _npy_items(path) if path.endswith(".npy") else [Item(path)]


def resolve_sources(sources: Sequence[str]) -> list[Item]:
    """Every image of the sources, in the order a single-process audit takes them: a folder's
    images (recursively) and a glob's matches sorted by path, a list file's (.txt/.lst/.list:
    one path a line, relative to the list's folder, '#' comments) in its order, an .npy batch
    [N, ...] row by row, a `scheme://` URI's images sorted. Local paths become absolute (Ray
    workers do not share the driver's working directory)."""
    items: list[Item] = []
    for source in sources:
        if _is_uri(source):
            items.extend(_uri_items(source))
            continue
        p = Path(source)
        if p.is_dir():
            items.extend(Item(str(f.resolve())) for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in source for ch in "*?["):
            for match in sorted(glob.glob(source, recursive=True)):
                items.extend(_file_items(str(Path(match).resolve())))
        elif p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    items.extend(resolve_sources([line if _is_uri(line) or Path(line).is_absolute()
                                                  else str(p.parent / line)]))
        elif p.is_file():
            items.extend(_file_items(str(p.resolve())))
        else:
            raise errors.InvalidArgument(f"no image, folder, list or .npy batch at {source!r}", field="images")
    return items


def shards(count: int, batch_size: int = BATCH_SIZE, shard_batches: int = SHARD_BATCHES) -> list[tuple[int, int]]:
    """(start, stop) of each shard: whole batches of `batch_size`, so every batch boundary of a
    single-process audit over the same images is one here too."""
    step = max(1, batch_size) * max(1, shard_batches)
    return [(start, min(start + step, count)) for start in range(0, count, step)]


# --- the stages Ray runs --------------------------------------------------------------------


def _read(path: str) -> bytes:
    if _is_uri(path):
        from pyarrow import fs as pafs

        filesystem, inner = pafs.FileSystem.from_uri(path)
        with filesystem.open_input_stream(inner) as f:
            return f.read()
    return Path(path).read_bytes()


def decode_shard(paths: Sequence[str], rows: Sequence[int], spec) -> np.ndarray:
    """One shard's model input [n, ...]: .npy rows as they are, encoded images preprocessed by
    `spec` (an imaging ResolvedSpec; what the server does with the model's stored spec)."""
    from inspector.imaging.preprocess import preprocess_images

    parts: list[np.ndarray] = []
    run: list[tuple[str, bytes]] = []
    batches: dict[str, np.ndarray] = {}  # .npy files, memory-mapped once

    def flush() -> None:
        if run:
            if spec is None:
                raise errors.InvalidArgument("images need the model's preprocessing, which does not resolve "
                                             "for this model; give --preprocess", field="preprocess")
            for name, data in run:  # one by one: an error names its file
                try:
                    parts.append(preprocess_images([data], spec))
                except errors.InvalidArgument as exc:
                    raise errors.InvalidArgument(f"{name}: {exc.message.removeprefix('Image 0: ')}",
                                                 field=exc.field) from None
            run.clear()

    for path, row in zip(paths, rows, strict=True):
        if int(row) == NO_ROW:
            run.append((str(path), _read(str(path))))
        else:
            flush()
            if path not in batches:
                batches[path] = np.load(str(path), mmap_mode="r")
            parts.append(np.asarray(batches[path][int(row):int(row) + 1]))
    flush()
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _to_bytes(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(x), allow_pickle=False)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def decode_batch(batch: dict, spec=None) -> dict:
    """Ray Data stage: rows {shard, paths, rows[, labels]} -> {shard, x (an .npy blob), error[, labels]}.
    A user's mistake (an unreadable image, one of another size) travels as `error`, a sentence
    naming the file, which the driver raises (Ray would carry only the text of an exception)."""
    blobs, problems = [], []
    for paths, rows in zip(batch["paths"], batch["rows"], strict=True):
        try:
            blobs.append(_to_bytes(decode_shard(list(paths), list(rows), spec)))
            problems.append("")
        except errors.InspectorError as exc:
            blobs.append(b"")
            problems.append(str(exc))
    out = {"shard": np.asarray(batch["shard"], np.int64), "x": np.array(blobs, dtype=object),
           "error": np.array(problems, dtype=object)}
    if "labels" in batch:
        out["labels"] = batch["labels"]
    return out


class AuditWorker:
    """Ray Data actor: one model session; each shard row becomes one partial audit state (JSON).

    `faults` (tests): [{"shard": k, "marker": path, "how": "exit" | "kill"}, ...]: the first time
    shard k arrives (no marker file yet) the worker creates the marker and dies: its process exits,
    or it is killed through Ray (ray.kill with no_restart=False), as on a lost node.
    """

    def __init__(self, model_path: str, tensors: Sequence[str] | None, name: str, providers: Sequence[str],
                 threads: int | None, batch_size: int, faults: Sequence[dict] = ()) -> None:
        self.started = time.time()  # the actor's process is up; imports and the model load follow
        import onnx
        import onnxruntime as ort

        from inspector.runtime.access import OrtModelAccess
        from inspector.runtime.sessions import SessionCache

        available = set(ort.get_available_providers())
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        self.model = onnx.load(model_path)
        self.access = OrtModelAccess(self.model, chosen, sessions=SessionCache(intra_op_threads=threads),
                                     source=Path(model_path))
        self.tensors, self.name, self.batch_size, self.faults = tensors, name, batch_size, list(faults)
        self.busy_s, self.cpu_s, self.ready = 0.0, 0.0, time.time()  # when this worker could take its first shard

    def _memo(self, key: tuple, compute):
        """The session's memo, except which tensors need centred sums: found anew per shard, so a
        shard's partial never depends on what this worker audited before."""
        return compute() if key == ("audit-centered",) else self.access.memo(key, compute)

    def _maybe_fail(self, shard: int) -> None:
        fault = next((f for f in self.faults if int(f["shard"]) == shard), None)
        if fault is None:
            return
        marker = Path(fault["marker"])
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        if fault.get("how") == "kill":
            import ray

            ray.kill(ray.get_runtime_context().current_actor, no_restart=False)
            time.sleep(60)  # the kill lands meanwhile
        os._exit(1)

    def audit_shard(self, shard: int, x: np.ndarray, labels: np.ndarray | None) -> dict:
        from inspector.audit.audit import AuditRun, fold_batch

        self._maybe_fail(shard)
        run = AuditRun(self.model, self.tensors, name=self.name, memo=self._memo)
        for start in range(0, len(x), self.batch_size):
            stop = start + self.batch_size
            fold_batch(self.access, run, x[start:stop], None if labels is None else labels[start:stop])
        return run.to_dict(arrays=True)

    def __call__(self, batch: dict) -> dict:
        t0, c0 = time.perf_counter(), time.process_time()
        states, problems = [], list(batch["error"])
        labels = batch.get("labels")
        for i, (shard, blob) in enumerate(zip(batch["shard"], batch["x"], strict=True)):
            shard_labels = None if labels is None else np.asarray(labels[i], np.int64)
            state = b""
            if not problems[i]:
                try:
                    state = pickle.dumps(self.audit_shard(int(shard), _from_bytes(blob), shard_labels),
                                         protocol=5)
                except errors.InspectorError as exc:  # to the driver, which raises it
                    problems[i] = str(exc)
            states.append(state)
        self.busy_s += time.perf_counter() - t0
        self.cpu_s += time.process_time() - c0
        return {"shard": np.asarray(batch["shard"], np.int64), "state": np.array(states, dtype=object),
                "error": np.array(problems, dtype=object),
                "busy_s": np.full(len(states), self.busy_s),
                "cpu_s": np.full(len(states), self.cpu_s), "pid": np.full(len(states), os.getpid()),
                "started": np.full(len(states), self.started), "ready": np.full(len(states), self.ready),
                "finished": np.full(len(states), time.time())}


# --- the driver -----------------------------------------------------------------------------


@dataclass
class RayAuditResult:
    report: dict  # AuditRun.result(): what report.json holds
    images: int
    shards: int
    seconds: float  # from the first Ray Data stage to the merged report
    worker_busy_s: dict[int, float]  # per worker process: seconds spent auditing shards
    worker_cpu_s: dict[int, float]  # per worker process: CPU seconds it got meanwhile
    first_started_s: float  # seconds until the first worker's process ran its constructor
    first_ready_s: float  # seconds until the first worker had loaded the model (Ray's fixed costs)
    audit_s: float  # from then until the last shard came back: the steady part of the run
    shard_log: list[tuple[int, int, float]]  # (shard, worker pid, seconds from the start to its return)


def _input_spec(model, preprocess: dict | None):
    """The model's image preprocessing (None when it does not resolve: only .npy rows then)."""
    from inspector.graph.info import image_first, tensor_info
    from inspector.imaging.spec import resolve_spec
    from inspector.inputs import spec_from_dict

    initializers = {i.name for i in model.graph.initializer}
    names = image_first(model, [i.name for i in model.graph.input if i.name not in initializers])
    vi = next(i for i in model.graph.input if i.name == names[0])
    try:
        return resolve_spec(spec_from_dict(preprocess), tensor_info(names[0], vi))
    except errors.InspectorError:
        if preprocess:
            raise
        return None


def ray_audit(model_path: str | Path, sources: Sequence[str] | Sequence[Item], *, workers: int = 2,
              layers: Sequence[str] | None = None, labels: Sequence[int] | None = None,
              preprocess: dict | None = None, name: str | None = None, batch_size: int = BATCH_SIZE,
              shard_batches: int = SHARD_BATCHES, worker_cpus: float | None = None, decode_cpus: float = DECODE_CPUS,
              threads: int | None = 1, providers: Sequence[str] | None = None,
              faults: Sequence[dict] = (), on_progress: Callable[[int, int], None] | None = None) -> RayAuditResult:
    """Audit the model at `model_path` over the sources' images on the connected Ray cluster
    (ray.init() first; see the module doc). `threads`: onnxruntime intra-op threads per worker.
    `worker_cpus`: logical CPUs each worker asks for, default 1 or less where `workers` of 1 and a
    decode task would not fit the cluster (a full cluster would starve Ray Data's decode tasks).
    On a GPU cluster each worker takes a share of a GPU and runs CUDA where its onnxruntime can.
    `faults`: kill workers on purpose (tests; see AuditWorker)."""
    import onnx
    import ray

    from inspector.audit.audit import AuditRun
    from inspector.graph.select import resolve_tensors

    if not ray.is_initialized():
        raise errors.FailedPrecondition("connect to a Ray cluster first (ray.init)")
    model_path = str(Path(model_path).resolve())  # workers open it by this path
    model = onnx.load(model_path)
    name = name or Path(model_path).stem
    items = (list(sources) if all(isinstance(s, Item) for s in sources)
             else resolve_sources([str(s) for s in sources]))
    if not items:
        raise errors.InvalidArgument("the sources hold no images", field="images")
    if labels is not None and len(labels) != len(items):
        raise errors.InvalidArgument(f"{len(labels)} labels for {len(items)} images; give one per image",
                                     field="labels")
    tensors = resolve_tensors(model, list(layers)) if layers else None
    spec = _input_spec(model, preprocess) if any(i.row == NO_ROW for i in items) else None
    cuts = shards(len(items), batch_size, shard_batches)
    rows = []
    for i, (start, stop) in enumerate(cuts):
        row = {"shard": i, "paths": [it.path for it in items[start:stop]],
               "rows": [it.row for it in items[start:stop]]}
        if labels is not None:
            row["labels"] = [int(v) for v in labels[start:stop]]
        rows.append(row)

    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0))
    if worker_cpus is None:
        worker_cpus = max(0.05, min(1.0, (float(resources.get("CPU", 1)) - decode_cpus) / max(1, workers)))
    if providers is None:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpus else ["CPUExecutionProvider"]
    t0, start = time.perf_counter(), time.time()
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(decode_batch, fn_kwargs={"spec": spec}, batch_size=1, batch_format="numpy",
                        num_cpus=decode_cpus)
    # one shard in flight per worker: a worker that starts first would otherwise queue several
    # shards ahead (Ray Data's default is 4) and the last worker up would idle at the end
    pool = ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)
    ds = ds.map_batches(AuditWorker, batch_size=1, batch_format="numpy", compute=pool, num_cpus=worker_cpus,
                        num_gpus=min(1.0, gpus / workers) if gpus else None,
                        fn_constructor_kwargs={"model_path": model_path, "tensors": tensors, "name": name,
                                               "providers": list(providers), "threads": threads,
                                               "batch_size": batch_size, "faults": list(faults)})
    merged = AuditRun(model, tensors, name=name)
    pending: dict[int, str] = {}
    busy: dict[int, float] = {}
    cpu: dict[int, float] = {}
    started, ready, finished = math.inf, math.inf, start
    log: list[tuple[int, int, float]] = []
    done = seen = 0
    for row in ds.iter_rows():
        shard = int(row["shard"])
        if row["error"]:
            raise errors.InvalidArgument(f"shard {shard} (images {cuts[shard][0]}..{cuts[shard][1] - 1}): "
                                         f"{row['error']}")
        pending[shard] = row["state"]
        log.append((shard, int(row["pid"]), float(row["finished"]) - start))
        busy[int(row["pid"])] = max(busy.get(int(row["pid"]), 0.0), float(row["busy_s"]))
        cpu[int(row["pid"])] = max(cpu.get(int(row["pid"]), 0.0), float(row["cpu_s"]))
        started, ready = min(started, float(row["started"])), min(ready, float(row["ready"]))
        finished = max(finished, float(row["finished"]))
        while done in pending:  # a fixed merge order: the same report on every run
            merged.merge(AuditRun.from_dict(model, pickle.loads(pending.pop(done)), name=name))
            seen += cuts[done][1] - cuts[done][0]
            done += 1
            if on_progress is not None:
                on_progress(seen, len(items))
    if done != len(cuts) or merged.aggregator is None:
        raise errors.InspectorError(f"the Ray audit returned {done} of {len(cuts)} shards")
    report = merged.result()
    return RayAuditResult(report, merged.aggregator.images, len(cuts), time.perf_counter() - t0, busy,
                          cpu, started - start, ready - start, finished - ready, log)


# --- the command line -----------------------------------------------------------------------


def _stored_model(store: str, ref: str) -> tuple[str, dict | None, str | None]:
    """(model path, stored preprocess spec, name) of a model in a local store folder, read only
    (ModelStore itself tidies the folder, which a server using it would not expect)."""
    root = Path(store)
    entries = []
    for folder in root.iterdir() if root.is_dir() else ():
        meta_path, model_path = folder / "meta.json", folder / "model.onnx"
        if not (meta_path.is_file() and model_path.is_file()):
            continue
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        entries.append((folder.name, model_path, meta))
    by_name = [(float(m.get("names", {})[ref].get("updated", 0.0)), i, p, m) for i, p, m in entries
               if ref in (m.get("names") or {})]
    if by_name:
        _, _, path, meta = max(by_name, key=lambda e: e[0])
        spec = {**(meta.get("metadata") or {}), **meta["names"][ref].get("metadata", {})}.get("preprocess")
        return str(path), spec, ref
    hits = [(i, p, m) for i, p, m in entries if i == ref or (len(ref) >= 8 and i.startswith(ref.lower()))]
    if len(hits) != 1:
        raise errors.NotFound(f"{'several' if hits else 'no'} models in {store} match {ref!r}", field="model")
    ident, path, meta = hits[0]
    names = list(meta.get("names") or {})
    spec = (meta.get("metadata") or {}).get("preprocess")
    if names:
        spec = {**(meta.get("metadata") or {}), **meta["names"][names[0]].get("metadata", {})}.get("preprocess")
    return str(path), spec, names[0] if names else ident[:12]


class _Lazy(Sequence):
    """The audit's items as the picture code of inspector.cli.audit takes them: image paths as
    they are, .npy rows as [1, ...] arrays, URIs as their bytes (each read when asked for)."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items, self._batches = items, {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        if item.row != NO_ROW:
            if item.path not in self._batches:
                self._batches[item.path] = np.load(item.path, mmap_mode="r")
            return np.asarray(self._batches[item.path][item.row:item.row + 1])
        return _read(item.path) if _is_uri(item.path) else item.path


class _LocalPictures:
    """The two calls inspector.cli.audit._pictures makes (Grad-CAM overlays, a feature grid),
    answered by an in-process core over a temporary store instead of a server."""

    def __init__(self, model_path: str, preprocess: dict | None, store: Path) -> None:
        from inspector.config import InspectorConfig
        from inspector.core import Inspector

        self.core = Inspector(InspectorConfig(store_dir=store, intra_op_threads=2))
        self.ref = self.core.load_model(model_path, name="audited", preprocess=preprocess).id

    def explain(self, model: str, x, method: str | None = None, **_):
        return self.core.explain(self.ref, x, method=method)

    def render_feature_maps(self, model: str, x, layers: Sequence[str], top_k: int | None = None) -> dict[str, bytes]:
        maps = self.core.feature_maps(self.ref, x, layers, raw=False, png=True, top_k=top_k)
        return {name: pngs[0] for name, pngs in maps.pngs.items() if pngs}


def pictures(model_path: str, preprocess: dict | None, items: Sequence[Item], labels: Sequence[int] | None,
             report: dict) -> dict[str, bytes]:
    """The pictures of a single-process report (Grad-CAM overlays of a sample, a feature grid),
    computed here on the driver; none (with a note on stderr) where the model cannot give them."""
    import tempfile

    from inspector.cli.audit import _pictures

    with tempfile.TemporaryDirectory(prefix="inspector-ray-audit-") as store:
        try:
            return _pictures(_LocalPictures(model_path, preprocess, Path(store)), "audited", _Lazy(items),
                             None if labels is None else list(labels), report)
        except Exception as err:  # the statistics are the report; pictures are a nicety
            print(f"no pictures in the report: {err}", file=sys.stderr)
            return {}


def _connect(address: str | None) -> bool:
    """ray.init for the CLI: the cluster at `address` (auto, ray://HOST:10001), else a new local
    one; True when this call connected (ray.shutdown then only disconnects from a cluster)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
    return True


def run_ray_audit(args) -> int:
    """`inspector audit MODEL SOURCE... --engine ray`: the audit on a Ray cluster, no server.

    Reads args.model (a local .onnx path, or a model id/name in args.store), args.images,
    args.out, args.layers, args.labels, args.batch_size, args.address, args.workers and
    (optional) args.preprocess (JSON), args.worker_cpus."""
    from inspector.audit.report import write_report
    from inspector.cli.audit import _labels

    try:
        import ray  # noqa: F401
    except ImportError:
        print('error: --engine ray needs Ray: pip install "inspector[ray]"', file=sys.stderr)
        return 2
    store = getattr(args, "store", None)
    preprocess = json.loads(args.preprocess) if getattr(args, "preprocess", None) else None
    try:
        if store:
            model_path, stored_spec, name = _stored_model(store, args.model)
            preprocess = {**(stored_spec or {}), **(preprocess or {})} or None
        elif Path(args.model).is_file():
            model_path, name = args.model, Path(args.model).stem
        else:
            print(f"error: {args.model} is not a local .onnx file; with --engine ray give a model file, "
                  "or --store FOLDER for a model stored there", file=sys.stderr)
            return 2
        items = resolve_sources(args.images)
        if not items:
            raise SystemExit("no images found in " + " ".join(args.images))
        labels = _labels(args.labels, len(items))
        started = _connect(getattr(args, "address", None))
        try:
            import ray

            ray.data.DataContext.get_current().enable_progress_bars = False  # ours: one line a second

            worker_cpus = getattr(args, "worker_cpus", None)
            workers = args.workers or max(1, int(float(ray.cluster_resources().get("CPU", 1)) - DECODE_CPUS))
            last = [0.0]

            def progress(done: int, total: int) -> None:
                if time.monotonic() - last[0] > 1 or done == total:
                    last[0] = time.monotonic()
                    print(f"audit {done}/{total} images", file=sys.stderr)

            result = ray_audit(model_path, items, workers=workers, layers=args.layers, labels=labels,
                               preprocess=preprocess, name=name, batch_size=args.batch_size or BATCH_SIZE,
                               worker_cpus=worker_cpus, on_progress=progress)
        finally:
            if started:
                ray.shutdown()
    except errors.InspectorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a local file the command was given
        print(f"error: cannot read{f' {err.filename}' if err.filename else ''}: {err.strerror or err}",
              file=sys.stderr)
        return 2
    paths = write_report(result.report, Path(args.out), pictures(model_path, preprocess, items, labels, result.report))
    print(f"wrote {paths['html']} and {paths['json']} ({result.images} images, {result.shards} shards, "
          f"{workers} Ray workers, {result.seconds:.1f} s)")
    return 0
