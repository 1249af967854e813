"""``monitor eval`` on small hand-made files in each data set's published layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor import evaluate
from tests.test_cli import monitor

EMERGENT = """,claimHeadline,articleHeadline,articleHeadlineStance,articleId,claimId
0,Banksy was arrested by London police,Police deny reports that Banksy was arrested,against,a1,c1
1,Banksy was arrested by London police,Street artist Banksy arrested in London,for,a2,c1
2,A nun in an Italian convent gave birth,Nun gives birth in Italian convent,for,a3,c2
3,A nun in an Italian convent gave birth,Italian convent nun says she did not know,observing,a4,c2
4,Apple will sell 19 million watches,Analysts say Apple will sell 19 million watches,observing,a5,c3
5,Apple will sell 19 million watches,Apple watch sales forecast at 19 million,observing,a6,c3
"""


def test_paraphraser_counts_loose_and_strict_pairs_as_links(tmp_path: Path) -> None:
    pairs = [("Путин встретился с Лукашенко в Минске", "Лукашенко и Путин встретились в Минске",
              "1"),
             ("Путин встретился с Лукашенко в Минске", "В Москве выпал снег и ударил мороз",
              "-1")]
    body = "".join(
        f'<paraphrase><value name="id">{n}</value><value name="text_1">{a}</value>'
        f'<value name="text_2">{b}</value><value name="class">{c}</value></paraphrase>'
        for n, (a, b, c) in enumerate(pairs))
    path = tmp_path / "paraphrases.xml"
    path.write_text(f"<?xml version='1.0' encoding='UTF8'?><data><corpus>{body}</corpus></data>",
                    encoding="utf-8")
    result = evaluate.paraphraser(path, threshold=50, cross_validate=True)
    assert result["pairs"] == 2
    assert (result["precision"], result["recall"], result["f1"]) == (1.0, 1.0, 1.0)
    assert result["baseline_link_everything"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667}
    held_out = result["cross_validated_threshold"]
    assert len(held_out["thresholds"]) == 5 and 0 <= held_out["recall"] <= 1


def test_clef_map_at_5(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "verified_claims.docs.tsv").write_text(
        "\tvclaim\ttitle\n0\tThe moon landing was staged in a studio\tMoon hoax\n"
        "1\tVaccines contain microchips for tracking\tMicrochip claim\n", encoding="utf-8")
    (tmp_path / "dev" / "tweets.queries.tsv").write_text(
        "\ttweet_content\n7\tThey say the vaccines have microchips to track us\n",
        encoding="utf-8")
    (tmp_path / "dev" / "tweet-vclaim-pairs.qrels").write_text("7\t0\t1\t1\n", encoding="utf-8")
    result = evaluate.clef(tmp_path, "dev")
    assert result == {"dataset": "clef2020-task2", "split": "dev", "semantic": True,
                      "queries": 1,
                      "verified_claims": 2, "map_at_5": 1.0,
                      "baseline_words_alone_map_at_5": 1.0}


def test_fnc1_scores_relatedness_and_stance(tmp_path: Path) -> None:
    (tmp_path / "train_bodies.csv").write_text(
        "Body ID,articleBody\n1,Police in London denied reports that the artist Banksy had been "
        "arrested. The reports are false, a spokesman said.\n2,The weather in Paris was mild.\n",
        encoding="utf-8")
    (tmp_path / "train_stances.csv").write_text(
        "Headline,Body ID,Stance\nBanksy arrested in London,1,disagree\n"
        "Banksy arrested in London,2,unrelated\n", encoding="utf-8")
    result = evaluate.fnc1(tmp_path, threshold=20)
    assert result["pairs"] == 2
    assert result["relatedness_accuracy"] == 1.0
    assert 0.2 <= result["fnc_score"] <= 1.0


def test_fnc1_folder_with_two_pairs_needs_names(tmp_path: Path) -> None:
    for name in ("a_stances.csv", "a_bodies.csv", "b_stances.csv", "b_bodies.csv"):
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    with pytest.raises(Exception, match="expected one \\*_stances.csv"):
        evaluate.find_pair(tmp_path, ())


@pytest.mark.parametrize("held_out", [False, True])
def test_eval_command_prints_one_json_object(tmp_path: Path, held_out: bool) -> None:
    """The shipped models, or with --cross-validate models fitted on the other claims; both
    without scikit-learn, both beside the trivial baselines."""
    path = tmp_path / "emergent.csv"
    path.write_text(EMERGENT, encoding="utf-8")
    result = monitor("eval", "emergent", str(path), *(["--cross-validate"] * held_out),
                     timeout=120)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["headlines"] == 6 and scores["claims"] == 3
    assert scores["link_accuracy_at_1"] == 1.0
    assert scores["baseline_link_everything"]["link_precision"] == round(1 / 3, 4)
    stance = scores["stance"]
    assert 0 <= stance["stance_accuracy"] <= 1
    assert ("shipped" in stance["method"]) != held_out
    assert 0 <= stance["baselines"]["majority"]["stance_accuracy"] <= 1


def test_no_eval_command_needs_scikit_learn(tmp_path: Path) -> None:
    """Every data set's eval, held-out variants included, runs with scikit-learn made
    unimportable (the runtime install has none); fnc1's held-out figures are the body model's
    training command's, and asking the eval for them names that command."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['sklearn'] = None  # import sklearn fails\n",
                       encoding="utf-8")
    env = {"PYTHONPATH": str(tmp_path)}
    emergent = tmp_path / "emergent.csv"
    emergent.write_text(EMERGENT, encoding="utf-8")
    fnc = tmp_path / "fnc"
    fnc.mkdir()
    (fnc / "train_bodies.csv").write_text(
        "Body ID,articleBody\n1,Police denied reports that Banksy had been arrested.\n",
        encoding="utf-8")
    (fnc / "train_stances.csv").write_text(
        "Headline,Body ID,Stance\nBanksy arrested in London,1,disagree\n", encoding="utf-8")
    for args in (["emergent", str(emergent), "--cross-validate"], ["fnc1", str(fnc)]):
        result = monitor("eval", *args, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)
    refused = monitor("eval", "fnc1", str(fnc), "--cross-validate", env=env)
    assert refused.returncode == 2
    assert "python -m monitor.match.train_body_stance" in refused.stderr
    assert "ModuleNotFoundError" not in refused.stderr
