"""Seq2Seq end to end: training through the shared trainer, translate/evaluate, saving, the gate view,
the command line; and (slow) attention beating no attention on long inputs."""
import io
import json

import pytest
import torch

from lstmkit.cli.main import main
from lstmkit.errors import LstmkitError
from lstmkit.inspection import inspect_model
from lstmkit.seq2seq import Seq2Seq, Seq2SeqConfig, read_pairs, teaching_pairs
from lstmkit.training import TrainConfig


def cfg(attention="luong", epochs=12, **kw) -> Seq2SeqConfig:
    return Seq2SeqConfig(attention=attention, embedding=8, hidden=kw.pop("hidden", 24),
                         train=TrainConfig(epochs=epochs, lr=1e-2, batch_size=32, restarts=1,
                                           combine="best", patience=0, progress=False), **kw)


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    return Seq2Seq(cfg(bidirectional=True)).fit(teaching_pairs("reverse", 400, 2, 4))


def test_fit_learns_short_reversal(fitted):
    test = teaching_pairs("reverse", 50, 2, 4, seed=9)
    m = fitted.evaluate(test)
    assert m["exact_match"] > 0.5 and m["char_accuracy"] > 0.8 and m["pairs"] == 50
    hist = fitted.result.runs[0].history
    assert hist["val"][-1] < hist["val"][0]
    assert fitted.config.max_len == 4 + 10


def test_beam_and_greedy_and_attention(fitted):
    sources = ["abc", "jih", "ab"]
    greedy = fitted.translate(sources)
    assert fitted.translate(sources, beam=1) == greedy and len(fitted.translate(sources, beam=4)) == 3
    out, w = fitted.attention("abcd")
    assert w.shape[1] == 4 and torch.allclose(w.sum(1), torch.ones(len(w)))
    with pytest.raises(LstmkitError, match="list of strings"):
        fitted.translate("abc")
    with pytest.raises(LstmkitError, match="not fitted"):
        Seq2Seq().translate(["a"])


def test_save_load_gate_view_and_inspect(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["task"] == "seq2seq"
    back = Seq2Seq.load(tmp_path / "model")
    sources = ["abcd", "ghij", "a"]
    assert back.translate(sources, beam=3) == fitted.translate(sources, beam=3)
    layer, x, labels = back.gate_view("dcba")
    assert layer is back.model.encoder and x.shape == (1, 4, 8) and labels == list("dcba")
    paths = inspect_model(tmp_path / "model", tmp_path / "g")
    assert sorted(p.name for p in paths) == ["gates.html", "gates_l0.png", "gates_l0_reverse.png"]


@pytest.mark.parametrize("edit, says", [
    (lambda m: m["config"].update(attention="bogus"), "attention must be one of"),
    (lambda m: m["config"].update(hidden="x"), "not supported between"),
    (lambda m: m.update(config=[1]), "config.json is not valid"),
    (lambda m: m.update(task="language_model"), "its task is 'language_model', expected 'seq2seq'"),
    (lambda m: m["vocab"].clear(), "config.json is not valid"),
])
def test_a_signed_but_invalid_config_is_refused_with_the_folder_named(fitted, tmp_path, edit, says,
                                                                     rewrite_config):
    fitted.save(tmp_path / "model")
    rewrite_config(tmp_path / "model", edit)
    with pytest.raises(LstmkitError, match=says) as e:
        Seq2Seq.load(tmp_path / "model")
    assert str(tmp_path / "model") in str(e.value)


def test_a_loaded_model_keeps_its_loss_history_and_a_null_example_reads_as_empty(fitted, tmp_path,
                                                                                 rewrite_config):
    fitted.save(tmp_path / "a")
    losses = json.loads((tmp_path / "a" / "config.json").read_text())["losses"]
    assert losses and all(len(h) > 0 for h in losses)
    Seq2Seq.load(tmp_path / "a").save(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["losses"] == losses
    rewrite_config(tmp_path / "a", lambda m: m.update(example=None))
    assert Seq2Seq.load(tmp_path / "a").example == ""


def test_cli_trains_on_a_tsv_and_translates_stdin(tmp_path, capsys, monkeypatch):
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("".join(f"{s}\t{t}\n" for s, t in teaching_pairs("reverse", 200, 2, 4)))
    test.write_text("".join(f"{s}\t{t}\n" for s, t in teaching_pairs("reverse", 20, 2, 4, seed=5)))
    out = tmp_path / "run"
    assert main(["seq2seq", str(train), "--test", str(test), "--out", str(out), "--hidden", "8",
                 "--embedding", "4", "--epochs", "1", "--attention", "bahdanau"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["attention_0.png", "attention_1.png",
                                                     "attention_2.png", "loss.png", "metrics.json",
                                                     "model"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["pairs"] == 20 and 0 <= m["exact_match"] <= 1 and 0 <= m["char_accuracy"] <= 1
    assert "exact match" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n\nhij\n"))
    assert main(["seq2seq", "--model", str(out / "model")]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("abc\tcba\nno tab here\n")
    assert main(["seq2seq", str(bad)]) == 2
    assert capsys.readouterr().err == f"error: {bad}, line 2: expected 'source<TAB>target', got 'no tab here'\n"
    assert main(["seq2seq", str(tmp_path / "none.tsv")]) == 2
    with pytest.raises(LstmkitError, match="attention must be one of"):
        Seq2Seq(Seq2SeqConfig(attention="dot")).fit([("a", "b")])


def test_read_pairs_keeps_the_first_two_columns(tmp_path):
    f = tmp_path / "p.tsv"       # Tatoeba / manythings.org layout: source, target, attribution
    f.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n\nx\ty\n")
    assert read_pairs(f) == [("Go.", "Va !"), ("x", "y")]


@pytest.mark.slow
def test_attention_beats_no_attention_on_long_reversals():
    """Reversing strings of 10-16 letters: the decoder without attention must squeeze them through
    one state; with attention it looks back at the source (measured: character accuracy about 0.22
    without, 0.85 with)."""
    pairs = teaching_pairs("reverse", 1000, 10, 16)
    test = teaching_pairs("reverse", 100, 10, 16, seed=7)
    scores = {}
    for attention in ("none", "luong"):
        s2s = Seq2Seq(cfg(attention, epochs=6, hidden=32)).fit(pairs)
        scores[attention] = s2s.evaluate(test)
    assert scores["luong"]["char_accuracy"] > scores["none"]["char_accuracy"] + 0.3
    assert scores["luong"]["exact_match"] > scores["none"]["exact_match"]
