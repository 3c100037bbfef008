"""Run a tracker over benchmark sequences and write the standard result files.

Per sequence, in the results folder (the pytracking / GOT-10k conventions):
- ``<seq>.txt``: one ``x,y,w,h`` line per frame, comma separated; line 1 is
  the initialisation box;
- ``<seq>_time.txt``: seconds the tracker spent on each frame (line 1 =
  initialisation), measured around ``initialize``/``track`` only;
- ``<seq>_exit.txt`` (DyTrack-family models): the 1-based layer where
  inference stopped, 0 on the initialisation frame.
- ``<seq>_status.txt`` (DyTrack-family models): the tracker's status per frame
  (``init`` on line 1, then tracking / uncertain / lost / searching /
  redetected), which the lost-status score compares with the absence labels.
``run_info.json`` records which tracker produced the folder, so a resumed run
cannot silently mix two trackers. ``<seq>.txt`` is written last and
atomically: a sequence whose box file exists with one line per frame is
finished and is skipped when the run is resumed.

Each frame is decoded between tracker calls, never while ``track`` is timed:
a decoder running beside the tracker competes with it for the cores its
thread pool uses and inflates the per-frame times it is measured by. The
decode cost shows up as runner overhead (wall - tracker time) instead.
Sequences run in parallel worker
processes (spawned, one tracker per process). OpenCV's CSRT / KCF / MIL
(opencv-contrib) run behind the same small interface for side-by-side
baselines.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator, Protocol
from typing import Sequence as Seq

import cv2
import numpy as np

from dytrack_ros.config import TrackerConfig
from dytrack_ros.data.sequence import Sequence
from dytrack_ros.exit_policy import ExitPolicyError
from dytrack_ros.image_io import ImageReadError, read_image
from dytrack_ros.runtime_options import RuntimeOptions
from dytrack_ros.tracker.budget import BudgetConfig

OPENCV_TRACKERS = ("csrt", "kcf", "mil")
OPENCV_PREFIX = "opencv:"


class RunnerError(RuntimeError):
    """The evaluation run cannot proceed (unreadable frame, conflicting results folder, bad tracker spec)."""


@dataclass(frozen=True)
class TrackerSpec:
    """What to evaluate: a model file (DyTrack/OSTrack family) or ``opencv:csrt|kcf|mil``."""

    model: str
    backend: str = RuntimeOptions.backend  # the defaults of RuntimeOptions (one source)
    device: str = RuntimeOptions.device
    precision: str = RuntimeOptions.precision
    exit_thresholds: tuple[float, ...] | None = None
    threads: int | None = None  # per worker process; default: CPU cores / workers
    ce: bool | None = None  # official OSTrack checkpoint with candidate elimination; None: detect
    budget: BudgetConfig | None = None  # hold a latency budget / target depth (DyTrack models)
    tracker_config: TrackerConfig | None = None  # status thresholds and lost-target recovery (None: defaults)

    def runtime_options(self, threads: int | None = None) -> RuntimeOptions:
        """How the model runs in one worker (``threads`` overrides the spec's own)."""
        return RuntimeOptions(self.backend, self.device, self.precision, int(threads or self.threads or 0))

    @property
    def is_opencv(self) -> bool:
        return self.model.lower().startswith(OPENCV_PREFIX)

    @property
    def label(self) -> str:
        """Short name for tables and plot legends."""
        if self.is_opencv:
            return f"opencv-{self.model.split(':', 1)[1].lower()}"
        name = Path(self.model).stem
        if self.exit_thresholds is not None:
            name += "@" + ",".join(f"{t:g}" for t in self.exit_thresholds)
        if self.budget is not None:
            goals = [f"{self.budget.latency_budget_ms:g}ms" if self.budget.latency_budget_ms else "",
                     f"depth{self.budget.target_depth:g}" if self.budget.target_depth else "",
                     "deadline" if self.budget.deadline else ""]
            name += "@budget:" + "+".join(g for g in goals if g)
        if self.tracker_config is not None and not self.tracker_config.recovery:
            name += "@no-recovery"
        return name

    def identity(self) -> dict:
        """The fields that define the results (threads do not)."""
        d = asdict(self)
        d.pop("threads")
        d["exit_thresholds"] = None if self.exit_thresholds is None else list(self.exit_thresholds)
        d["ce"] = bool(self.ce)  # folders written before CE detection recorded False for "not told"
        if self.budget is None:
            d.pop("budget")  # folders written before budgets existed have no such key
        if self.tracker_config is None:
            d.pop("tracker_config")  # folders written before recovery existed have no such key
        else:  # as run_info.json stores it (lists), so a resumed run compares equal
            d["tracker_config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["tracker_config"].items()}
        return d


class EvalTracker(Protocol):
    """The small interface the runner needs; ``color`` says which channel order ``initialize``/``track`` want."""

    color: str

    def initialize(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> None: ...

    def track(self, frame: np.ndarray) -> tuple[tuple[float, float, float, float], int]: ...

    def describe(self) -> dict: ...


class DyTrackEvalTracker:
    """Our Tracker (any model file the backends load) behind the runner interface."""

    color = "rgb"

    def __init__(self, spec: TrackerSpec, threads: int | None = None) -> None:
        from dytrack_ros.tracker import Tracker

        self.tracker = Tracker.from_model(spec.model, spec.runtime_options(threads), ce=spec.ce)
        if spec.exit_thresholds is not None:
            try:
                self.tracker.set_exit_thresholds(spec.exit_thresholds)
            except ExitPolicyError as exc:
                raise RunnerError(f"{Path(spec.model).name}: {exc}") from exc
        if spec.budget is not None:
            self.tracker.set_budget(spec.budget)
        if spec.tracker_config is not None:
            self.tracker.set_config(spec.tracker_config)
        self.has_exits = True  # plain models write their full depth on every frame
        self.reports_status = True
        self.last_status = "init"

    def initialize(self, frame, box) -> None:
        self.tracker.initialize(frame, box)
        self.last_status = "init"

    def track(self, frame):
        res = self.tracker.track(frame)
        self.last_status = res.status.value
        return res.box, int(res.exit_layer)

    def describe(self) -> dict:
        t = self.tracker
        return {
            "model_name": t.model_name, "num_layers": t.num_layers, "exit_layers": list(t.exit_layers),
            "exit_thresholds": list(t.exit_thresholds), "backend": t.backend_info,
        }


class OpenCVEvalTracker:
    """OpenCV contrib trackers (CSRT, KCF, MIL); on a reported failure the last box is kept."""

    color = "bgr"
    has_exits = False

    def __init__(self, name: str) -> None:
        self.name = name.lower()
        if self.name not in OPENCV_TRACKERS:
            raise RunnerError(f"unknown OpenCV tracker {name!r}; choose one of {list(OPENCV_TRACKERS)}")
        self._tracker = None
        self._last = (0.0, 0.0, 0.0, 0.0)

    def _create(self):
        cls = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF", "mil": "TrackerMIL"}[self.name]
        if not hasattr(cv2, cls):
            raise RunnerError(f"cv2.{cls} is missing: install opencv-contrib-python-headless")
        return getattr(cv2, cls).create()

    def initialize(self, frame, box) -> None:
        x, y, w, h = box
        self._tracker = self._create()
        rect = (int(round(x)), int(round(y)), max(int(round(w)), 1), max(int(round(h)), 1))
        self._tracker.init(frame, rect)
        self._last = tuple(float(v) for v in rect)

    def track(self, frame):
        ok, rect = self._tracker.update(frame)
        if ok and rect[2] > 0 and rect[3] > 0:
            self._last = tuple(float(v) for v in rect)
        return self._last, 0

    def describe(self) -> dict:
        return {"model_name": f"opencv-{self.name}", "opencv": cv2.__version__}


class NullEvalTracker:
    """Returns the init box forever: measures the runner's own overhead (reading, writing) in benchmarks."""

    color = "rgb"
    has_exits = False

    def __init__(self) -> None:
        self._box = (0.0, 0.0, 0.0, 0.0)

    def initialize(self, frame, box) -> None:
        self._box = tuple(float(v) for v in box)

    def track(self, frame):
        return self._box, 0

    def describe(self) -> dict:
        return {"model_name": "null"}


def build_tracker(spec: TrackerSpec, threads: int | None = None) -> EvalTracker:
    """The tracker a spec names (``opencv:NAME`` or a model file; ``null`` for overhead benchmarks)."""
    if spec.model == "null":
        return NullEvalTracker()
    if spec.is_opencv:
        return OpenCVEvalTracker(spec.model.split(":", 1)[1])
    if not Path(spec.model).is_file():
        raise RunnerError(f"model file not found: {spec.model} (or use opencv:csrt|kcf|mil)")
    return DyTrackEvalTracker(spec, threads)


# ----------------------------------------------------------------------------- frame I/O
def read_frame(path: Path, color: str) -> np.ndarray:
    """Decode one frame in the channel order the tracker wants; clear error when unreadable."""
    try:
        return read_image(path, color)
    except ImageReadError as exc:
        raise RunnerError(str(exc)) from exc


def frames_between_calls(paths: Seq[Path], color: str) -> Iterator[np.ndarray]:
    """Yield decoded frames in order, each decoded only when the caller asks for it (nothing runs in between)."""
    for path in paths:
        yield read_frame(path, color)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def sequence_done(results_dir: Path, seq: Sequence) -> bool:
    """A sequence is finished when its box file holds one line per frame."""
    path = Path(results_dir) / f"{seq.name}.txt"
    if not path.is_file() or not (Path(results_dir) / f"{seq.name}_time.txt").is_file():
        return False
    with open(path) as fh:
        return sum(1 for line in fh if line.strip()) == len(seq)


@dataclass
class SequenceRun:
    """What running one sequence cost: frames, tracker seconds, wall seconds (overhead = wall - tracker)."""

    name: str
    frames: int
    tracker_s: float
    wall_s: float

    @property
    def overhead_ms_per_frame(self) -> float:
        return (self.wall_s - self.tracker_s) / max(self.frames, 1) * 1e3


def run_sequence(tracker: EvalTracker, seq: Sequence, results_dir: Path) -> SequenceRun:
    """Track one sequence from its first GT box and write its result files (times: the tracker alone)."""
    results_dir = Path(results_dir)
    wall0 = time.perf_counter()
    n = len(seq)
    boxes = np.zeros((n, 4))
    times = np.zeros(n)
    exits = np.zeros(n, dtype=np.int64)
    statuses = ["init"] * n
    reports_status = getattr(tracker, "reports_status", False)
    for i, frame in enumerate(frames_between_calls(seq.frames, tracker.color)):
        t0 = time.perf_counter()
        try:
            if i == 0:
                tracker.initialize(frame, seq.init_box)
                box = seq.init_box
            else:
                box, exits[i] = tracker.track(frame)
        except (ValueError, RuntimeError, cv2.error) as exc:  # the tracker's input and output errors
            what = (f"first ground-truth box {tuple(float(v) for v in seq.init_box)}" if i == 0
                    else f"frame {i + 1} ({Path(seq.frames[i]).name})")
            raise RunnerError(f"sequence {seq.name}: {what}: {exc}") from None
        times[i] = time.perf_counter() - t0
        boxes[i] = box
        if reports_status and i:
            statuses[i] = tracker.last_status
    if getattr(tracker, "has_exits", False):
        _write_atomic(results_dir / f"{seq.name}_exit.txt", "".join(f"{int(e)}\n" for e in exits))
    if reports_status:
        _write_atomic(results_dir / f"{seq.name}_status.txt", "".join(f"{st}\n" for st in statuses))
    _write_atomic(results_dir / f"{seq.name}_time.txt", "".join(f"{t:.6f}\n" for t in times))
    _write_atomic(results_dir / f"{seq.name}.txt",
                  "".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in boxes))
    return SequenceRun(seq.name, n, float(times.sum()), time.perf_counter() - wall0)


# ----------------------------------------------------------------------------- worker processes
_WORKER_TRACKER: dict[str, EvalTracker] = {}  # one tracker per worker process, built by the initializer


def _init_worker(spec: TrackerSpec, threads: int) -> None:
    # Ctrl-C reaches every process of the terminal's group. Workers ignore it (inherited from the parent
    # from their start, see _spawn_quietly: a KeyboardInterrupt traceback was dozens of lines per worker);
    # the parent stops them and reports it in one line. Result files are replaced atomically, so a
    # sequence cut short leaves none.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_opencv_threads(threads)
    _WORKER_TRACKER["tracker"] = build_tracker(spec, threads)


def _worker_run(seq: Sequence, results_dir: str) -> SequenceRun:
    return run_sequence(_WORKER_TRACKER["tracker"], seq, Path(results_dir))


def _set_opencv_threads(threads: int) -> None:
    """Cap OpenCV's pool (frame decoding, OpenCV baselines), so parallel workers do not oversubscribe the CPU.
    Our models get their threads through :class:`RuntimeOptions`, applied by the backend loader."""
    cv2.setNumThreads(max(int(threads), 1))


@dataclass
class RunSummary:
    """Outcome of :func:`run_tracker`: finished, skipped (resumed) and per-sequence costs."""

    results_dir: Path
    ran: list[SequenceRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def overhead_ms_per_frame(self) -> float:
        frames = sum(r.frames for r in self.ran)
        return sum(r.wall_s - r.tracker_s for r in self.ran) / max(frames, 1) * 1e3


def _check_run_info(results_dir: Path, spec: TrackerSpec, info: dict) -> None:
    path = results_dir / "run_info.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunnerError(f"{path}: not readable run information ({exc}); delete the file to start "
                              "this folder's run afresh, or choose a different --results folder") from None
        if not isinstance(old, dict):
            raise RunnerError(f"{path}: expected a JSON object, got {type(old).__name__}; delete the file or "
                              "choose a different --results folder")
        if old.get("spec") != spec.identity():
            raise RunnerError(
                f"{results_dir} holds results of another tracker ({old.get('spec')}); "
                "choose a different --results folder or delete it"
            )
        return
    _write_atomic(path, json.dumps(info, indent=2))


def run_tracker(
    spec: TrackerSpec, sequences: Seq[Sequence], results_dir: str | Path, workers: int = 1,
    progress: bool = True, dataset: dict | None = None,
) -> RunSummary:
    """Run ``spec`` over ``sequences`` into ``results_dir`` (resuming), with ``workers`` processes."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    workers = max(int(workers), 1)
    threads = spec.threads or max(1, (os.cpu_count() or 1) // workers)
    summary = RunSummary(results_dir)
    todo = []
    for seq in sequences:
        if sequence_done(results_dir, seq):
            summary.skipped.append(seq.name)
        else:
            todo.append(seq)
    _set_opencv_threads(threads)
    probe = build_tracker(spec, threads)  # fails fast on a bad spec, describes the tracker, runs when workers == 1
    info = {"label": spec.label, "spec": spec.identity(), "dataset": dataset or {}, "tracker": probe.describe()}
    _check_run_info(results_dir, spec, info)
    if not todo:
        return summary
    from tqdm import tqdm

    bar = tqdm(total=sum(len(s) for s in todo), unit="frame", desc=f"eval {spec.label}", disable=not progress)
    try:
        if workers == 1 or len(todo) == 1:
            for seq in todo:
                run = run_sequence(probe, seq, results_dir)
                summary.ran.append(run)
                bar.update(run.frames)
                bar.set_postfix(seq=seq.name, fps=f"{run.frames / max(run.tracker_s, 1e-9):.1f}")
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(spec, threads)) as pool:
                with _sigint_ignored():  # workers start (on submit) ignoring Ctrl-C, imports included
                    futures = {pool.submit(_worker_run, seq, str(results_dir)): seq for seq in todo}
                try:
                    for fut in as_completed(futures):
                        run = fut.result()
                        summary.ran.append(run)
                        bar.update(run.frames)
                        bar.set_postfix(seq=run.name)
                except KeyboardInterrupt:
                    _stop_workers(pool)
                    raise
    finally:
        bar.close()
    return summary


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT meanwhile (main thread only: elsewhere Python cannot change signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the worker processes now (SIGTERM) and drop queued sequences: ``shutdown`` alone would wait for
    every queued sequence to finish. The executor has no public call for this; ``_processes`` maps the
    worker pids to their processes."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def sweep_specs(spec: TrackerSpec, thresholds: Seq[float]) -> list[TrackerSpec]:
    """One spec per exit threshold (the same threshold on every early exit) for a speed/accuracy sweep."""
    return [replace(spec, exit_thresholds=(float(t),)) for t in thresholds]


def sweep_dir_name(threshold: float) -> str:
    return f"thr_{float(threshold):.3f}"
