"""Export a TrackerNet to ONNX: one self-contained graph per exit stage.

Why one graph per stage: an early-exit model only saves time if the deeper
blocks are never run. ONNX has no cheap data-dependent early return, so the
export cuts the network at its exits and the runtime (``OnnxBackend``) chains
the graphs, deciding between calls whether to stop, so a stage after the
exit taken is never run.

File layout for ``export_onnx(model, "model.onnx")``:

================  ==============================  =========================================
file              inputs                          outputs
================  ==============================  =========================================
model.onnx        template (1,3,Ht,Wt) float32,   tokens_out (1,N,D) [not on the last stage],
                  search (1,3,Hs,Ws) float32      score_map (1,1,F,F), size_map (1,2,F,F),
                                                  offset_map (1,2,F,F), pred_iou (1,) [exits]
model.stage1.onnx tokens (1,N,D) float32          same as above
...               ...                             the last stage has no tokens_out
================  ==============================  =========================================

``pred_iou`` is the decisioner's sigmoid output. A plain model (no exits,
with or without candidate elimination) is a single self-contained graph with
outputs score_map / size_map / offset_map. Shapes are static (batch 1), as
the tracker always runs one crop at a time.

The first file carries the metadata (``metadata_props``) the runtime needs:
``format`` (:data:`FORMAT`), ``model_config`` (ModelConfig JSON, exit
thresholds included), ``exit_thresholds`` (JSON list), ``stage_files`` (JSON
list of the sibling file names of stages 1..K-1), ``num_stages``,
``precision`` (``fp32``), ``opset``, ``model_name``, ``export_id`` and, when exported from a model
file, ``source_sha256`` (that file's SHA-256). Every
stage file carries ``format``, ``stage_index`` and the same ``export_id``, so
a stage file from another export is refused at load time.

``precision="fp16"`` writes the FP16 variant that strongly typed TensorRT
(11.x, no FP16 builder flag) builds from: weights and activations in fp16
except the LayerNorms and the decisioners, which run in fp32 (Cast nodes
around them); the graph inputs (images) and the output maps and ``pred_iou``
stay float32, the ``tokens`` passed between stages are fp16. Its ``precision``
metadata says ``fp16`` and its parity tolerance is :data:`FP16_PARITY_ATOL`.

Export always verifies the graphs: ``onnx.checker`` on every file, then an
ONNX Runtime vs torch comparison on random inputs for every output of every
stage; a difference above ``atol`` (1e-4) removes the files and raises
:class:`OnnxExportError` naming the output. Candidate-elimination models go
through the same path (their pruning is data dependent: if the exporter
cannot trace it or the result differs, the error says so).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..model.tracker_net import TrackerNet
from .cpu_export import SOURCE_SHA256_KEY
from .onnx_format import DEFAULT_OPSET, FORMAT, stage_file_names, stage_io_names

PARITY_ATOL = 1e-4
FP16_PARITY_ATOL = 2e-2  # fp16 graph vs torch fp32: half precision rounding through up to 12 blocks
# the tokens between stages are the un-normed residual stream (magnitudes in the tens): fp16 keeps ~3 digits
FP16_TOKENS_ATOL = 0.1
EXPORT_PRECISIONS = ("fp32", "fp16")


class OnnxExportError(RuntimeError):
    """The model cannot be exported to ONNX, or the exported graphs do not match torch."""


class StageGraph(nn.Module):
    """Stage ``k`` of a TrackerNet as a module with plain tensor inputs/outputs (what gets exported)."""

    def __init__(self, net: TrackerNet, k: int) -> None:
        super().__init__()
        self.net = net
        self.k = k
        self.last = k == net.num_stages - 1
        self.has_exits = net.cfg.has_exits
        # fp16 graphs: images come in as float32 and maps/pred_iou go out as float32 (cast inside the graph)
        self.dtype = net.backbone.patch_embed.proj.weight.dtype
        # Always eval: torch.onnx.export restores the wrapper's own train() flag recursively
        # afterwards, which would switch the net's BatchNorms to training mode.
        self.eval()

    def train(self, mode: bool = True) -> "StageGraph":
        return super().train(False)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        net = self.net
        if self.k == 0:
            inputs = tuple(x.to(self.dtype) for x in inputs)
        if not self.has_exits:  # plain model: the whole forward (CE pruning included)
            out = net(*inputs)
            return out.score_map.float(), out.size_map.float(), out.offset_map.float()
        tokens = net.embed(*inputs) if self.k == 0 else inputs[0]
        tokens, out = net.forward_stage(self.k, tokens)
        outputs = [] if self.last else [tokens]
        outputs += [out.score_map.float(), out.size_map.float(), out.offset_map.float(),
                    torch.sigmoid(out.iou_logit.float())]
        return tuple(outputs)


def example_inputs(net: TrackerNet, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (template, search) images in the normalised range, float32, batch 1."""
    g = torch.Generator().manual_seed(seed)
    c = net.cfg
    template = torch.randn(1, 3, c.template_size, c.template_size, generator=g)
    search = torch.randn(1, 3, c.search_size, c.search_size, generator=g)
    return template, search


@torch.no_grad()
def torch_stage_outputs(net: TrackerNet, template: torch.Tensor, search: torch.Tensor) -> list[dict[str, np.ndarray]]:
    """Reference: every output of every stage graph, computed by torch (no early stop)."""
    outs = []
    tokens: torch.Tensor | None = None
    for k in range(net.num_stages):
        args = (template, search) if k == 0 else (tokens,)
        values = StageGraph(net, k)(*args)
        names = stage_io_names(net.cfg.has_exits, k, net.num_stages)[1]
        d = {n: v.float().cpu().numpy() for n, v in zip(names, values)}
        tokens = values[0] if "tokens_out" in d else None
        outs.append(d)
    return outs


@contextlib.contextmanager
def _cpu_fp32_eval(model: TrackerNet) -> Iterator[TrackerNet]:
    """The model in eval mode, float32, on the CPU; the caller's model is left as it was."""
    params = list(model.parameters()) + list(model.buffers())
    needs_copy = any(p.device.type != "cpu" or (p.is_floating_point() and p.dtype != torch.float32) for p in params)
    net = copy.deepcopy(model).to("cpu", torch.float32) if needs_copy else model
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        if not needs_copy:
            net.train(was_training)


def _export_graph(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                  output_names: list[str], opset: int) -> None:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python bools in CE / asserts
        torch.onnx.export(module, args, buf, input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    path.write_bytes(buf.getvalue())


def _set_metadata(path: Path, props: dict[str, str], simplify: bool) -> None:
    import onnx

    proto = onnx.load(str(path))
    if simplify:
        try:
            import onnxsim
        except ImportError as exc:
            raise OnnxExportError("simplify=True needs onnxsim (pip install onnxsim)") from exc
        proto, ok = onnxsim.simplify(proto)
        if not ok:
            raise OnnxExportError(f"onnxsim could not validate the simplified graph of {path.name}")
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise OnnxExportError(f"{path.name} fails onnx.checker: {exc}") from exc


@contextlib.contextmanager
def _cpu_eval(model: TrackerNet, precision: str) -> Iterator[TrackerNet]:
    """The model to trace: fp32 as :func:`_cpu_fp32_eval`, or an fp16 copy with fp32 norms/decisioners."""
    with _cpu_fp32_eval(model) as net:
        if precision == "fp32":
            yield net
            return
        from .precision import half_with_fp32_norms

        half = copy.deepcopy(net).eval()
        half.__dict__.pop("_fused_heads", None)  # fused fp32 head copies would not see the cast
        yield half_with_fp32_norms(half, torch.float16)


def export_onnx(model: TrackerNet, out_path: str | Path, opset: int = DEFAULT_OPSET, simplify: bool = False,
                verify: bool = True, atol: float | None = None, model_name: str | None = None,
                precision: str = "fp32", source_sha256: str | None = None) -> list[Path]:
    """Write ``model`` as one ONNX graph per exit stage; returns the files, first = ``out_path``.

    ``source_sha256``: the SHA-256 of the model file the network was loaded from, stored as metadata so
    backend ``auto`` can tell that this export still matches that file (see :mod:`.cpu_export`).

    With ``verify`` (default) the files are checked against torch fp32 on random
    inputs and removed again if any output differs by more than ``atol``
    (default :data:`PARITY_ATOL`, :data:`FP16_PARITY_ATOL` for ``precision="fp16"``).
    """
    if precision not in EXPORT_PRECISIONS:
        raise OnnxExportError(f"ONNX export precision must be one of {EXPORT_PRECISIONS}, got {precision!r}")
    atol = (PARITY_ATOL if precision == "fp32" else FP16_PARITY_ATOL) if atol is None else atol
    with _cpu_eval(model, precision) as net:
        try:
            paths = stage_file_names(out_path, net.num_stages)
        except ValueError as exc:
            raise OnnxExportError(str(exc)) from exc
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tmp_paths = [p.with_name(p.name + ".tmp") for p in paths]
        cfg = net.cfg
        export_id = uuid.uuid4().hex
        kind = "candidate-elimination (CE) model" if cfg.ce_loc else "model"
        template, search = example_inputs(net, seed=0)
        try:
            tokens = None
            with torch.no_grad():  # not inference_mode: the ONNX tracer cannot trace inference tensors
                for k, tmp in enumerate(tmp_paths):
                    stage = StageGraph(net, k)
                    args = (template, search) if k == 0 else (tokens,)
                    names_in, names_out = stage_io_names(net.cfg.has_exits, k, net.num_stages)
                    try:
                        _export_graph(stage, args, tmp, names_in, names_out, opset)
                    except Exception as exc:  # the exporter raises many types; report which stage and why
                        raise OnnxExportError(f"torch.onnx.export failed for stage {k} of {kind} '{cfg.name}': "
                                              f"{type(exc).__name__}: {exc}") from exc
                    props = {"format": FORMAT, "stage_index": str(k), "export_id": export_id}
                    if k == 0:
                        props.update({
                            "model_config": cfg.to_json(),
                            "exit_thresholds": json.dumps(list(cfg.exit_thresholds)),
                            "stage_files": json.dumps([p.name for p in paths[1:]]),
                            "num_stages": str(len(paths)),
                            "precision": precision,
                            "opset": str(opset),
                            "model_name": model_name or cfg.name,
                        })
                        if source_sha256:
                            props[SOURCE_SHA256_KEY] = source_sha256
                    _set_metadata(tmp, props, simplify)
                    if "tokens_out" in names_out:
                        tokens = stage(*args)[0]
            for tmp, final in zip(tmp_paths, paths):
                tmp.replace(final)
        except BaseException:
            for p in tmp_paths:
                p.unlink(missing_ok=True)
            raise
        if verify:
            try:
                report = parity_report(model, paths[0])
            except Exception as exc:
                _remove(paths)
                raise OnnxExportError(f"the exported {kind} '{cfg.name}' cannot be run by ONNX Runtime: "
                                      f"{type(exc).__name__}: {exc}") from exc
            tol = {"tokens_out": max(atol, FP16_TOKENS_ATOL)} if precision == "fp16" else {}
            bad = [f"stage {k} {name}: max |diff| {d:.3g}" for k, diffs in enumerate(report)
                   for name, d in diffs.items() if not d <= tol.get(name, atol)]
            if bad:
                _remove(paths)
                raise OnnxExportError(f"ONNX Runtime output of the exported {kind} '{cfg.name}' differs from torch "
                                      f"by more than {atol:g}: " + "; ".join(bad))
    return paths


def _remove(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def ort_stage_outputs(onnx_path: str | Path, template: np.ndarray, search: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Every output of every stage graph run by plain ONNX Runtime sessions (any exported precision)."""
    import onnxruntime as ort

    from .trt_plan import read_export

    _meta, paths = read_export(onnx_path)
    outs, tokens = [], None
    for k, path in enumerate(paths):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # fp16 graphs on the CPU: warnings about ops without fp16 constant folding
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        feed = {"template": template, "search": search} if k == 0 else {"tokens": tokens}
        names = [o.name for o in sess.get_outputs()]
        d = {n: np.asarray(v) for n, v in zip(names, sess.run(names, feed))}
        tokens = d.get("tokens_out")
        outs.append({n: v.astype(np.float32) for n, v in d.items()})
    return outs


def parity_report(model: TrackerNet, onnx_path: str | Path, seed: int = 1) -> list[dict[str, float]]:
    """Max |ORT - torch fp32| per output per stage on random inputs (same inputs to both)."""
    from .onnx_backend import OnnxBackend
    from .trt_plan import read_export

    precision = read_export(onnx_path)[0].get("precision", "fp32")
    with _cpu_fp32_eval(model) as net:
        template, search = example_inputs(net, seed)
        ref = torch_stage_outputs(net, template, search)
        if precision == "fp32":
            backend = OnnxBackend(onnx_path)
            backend.set_template(template.numpy())
            got = backend.run_stages(search.numpy())
        else:
            got = ort_stage_outputs(onnx_path, template.numpy(), search.numpy())
    report = []
    for k, (r, g) in enumerate(zip(ref, got)):
        if set(r) != set(g):
            raise OnnxExportError(f"stage {k}: ONNX outputs {sorted(g)} != expected {sorted(r)}")
        report.append({name: float(np.max(np.abs(r[name] - g[name]))) for name in r})
    return report


__all__ = ["EXPORT_PRECISIONS", "FP16_PARITY_ATOL", "ort_stage_outputs",
           "FORMAT", "DEFAULT_OPSET", "stage_file_names", "stage_io_names", "PARITY_ATOL", "OnnxExportError",
           "StageGraph", "export_onnx", "parity_report",
           "example_inputs", "torch_stage_outputs"]
