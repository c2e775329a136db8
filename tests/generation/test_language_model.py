"""The character language model: bits per character against its definition, stateful chunks equal
one long run, sampling rules, saving, the gate view and the command line."""
import json
import math

import pytest
import torch

from lstmkit.cli.main import main
from lstmkit.data.chars import CharVocab
from lstmkit.errors import LstmkitError
from lstmkit.generation import CharLanguageModel, LanguageModelConfig, pydoc_topics
from lstmkit.inspection import inspect_model
from lstmkit.training import TrainConfig

TEXT = "the cat sat on the mat. the rat sat on the cat. " * 30


def tiny(**kw) -> LanguageModelConfig:
    train = TrainConfig(epochs=kw.pop("epochs", 6), lr=1e-2, tbptt=20, restarts=1, combine="best",
                        patience=0, progress=False)
    return LanguageModelConfig(embedding=8, hidden=kw.pop("hidden", 24), layers=1, streams=4,
                               train=train, **kw)


@pytest.fixture(scope="module")
def lm():
    torch.set_num_threads(1)
    return CharLanguageModel(tiny()).fit(TEXT)


def _untrained(text="hello world, hello lstm"):
    m = CharLanguageModel(LanguageModelConfig(embedding=4, hidden=6, layers=2))
    m.vocab = CharVocab.build([text])
    m.model = m._build().eval()
    return m, text


def test_bits_per_char_is_minus_mean_log2_of_each_next_character():
    m, text = _untrained()
    ids = m.vocab.encode(text)
    bits = []
    with torch.no_grad():
        for t in range(1, len(text)):           # the whole prefix from a zero state, every time
            out, _ = m.model(torch.tensor(ids[:t], dtype=torch.float32)[None, :, None])
            p = torch.softmax(out[0, -1].double(), -1)[ids[t]]
            bits.append(-math.log2(p))
    want = sum(bits) / len(bits)
    assert m.bits_per_char(text) == pytest.approx(want, rel=1e-5)
    # the same read in chunks of 3 steps, carrying the state: stateful chunks change nothing
    assert float(-m.log_probs(text, chunk=3).mean()) == pytest.approx(want, rel=1e-5)


def test_training_learns_the_text_better_than_unigrams(lm):
    m = lm.evaluate()
    bpc = m["bits_per_char"]
    assert list(bpc) == ["LSTM", "1-gram", "2-gram", "3-gram", "4-gram", "5-gram"]
    assert bpc["LSTM"] < bpc["1-gram"] - 1.0
    assert m["heldout_chars"] == len(TEXT) - round(len(TEXT) * 0.9)
    hist = lm.result.runs[0].history["train"]
    assert hist[-1] < hist[0]


def test_training_uses_stateful_chunks_of_the_trainer(monkeypatch):
    import lstmkit.training.trainer as trainer
    calls = []
    real = trainer._epoch_stream

    def spy(model, opt, data, loss_fn, cfg):
        calls.append((tuple(data.x.shape), cfg.tbptt))
        return real(model, opt, data, loss_fn, cfg)

    monkeypatch.setattr(trainer, "_epoch_stream", spy)
    CharLanguageModel(tiny(epochs=1)).fit(TEXT)
    n = round(len(TEXT) * 0.85)
    assert calls == [((4, (n - 1) // 4, 1), 20)]


def test_generate_rules(lm):
    greedy = lm.generate("the c", 30, temperature=0)
    assert greedy == lm.generate("the c", 30, temperature=0.5, top_k=1, seed=3)
    assert len(greedy) == 30 and "at" in greedy
    a, b = lm.generate("the", 40, seed=1), lm.generate("the", 40, seed=1)
    assert a == b and len(a) == 40
    assert set(lm.generate("", 200, temperature=2.0, seed=2)) <= set(TEXT)   # no specials, no unk
    with pytest.raises(LstmkitError, match="temperature"):
        lm.generate("a", 5, temperature=-1)
    with pytest.raises(LstmkitError, match="top_k"):
        lm.generate("a", 5, top_k=0)


def test_save_load_round_trip_and_gate_view(lm, tmp_path):
    lm.evaluate()
    lm.save(tmp_path / "model")
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert meta["task"] == "language_model" and meta["example"] == lm.example
    back = CharLanguageModel.load(tmp_path / "model")
    assert back.metrics == lm.metrics and back.metrics["bits_per_char"]["LSTM"] > 0
    assert back.example == lm.example and back.vocab.to_dict() == lm.vocab.to_dict()
    assert back.bits_per_char(TEXT[:200]) == pytest.approx(lm.bits_per_char(TEXT[:200]))
    assert back.generate("the", 50, seed=4) == lm.generate("the", 50, seed=4)
    layer, x, labels = back.gate_view("the cat")
    assert layer is back.model.lstm and x.shape == (1, 7, 8) and labels == list("the cat")
    torch.testing.assert_close(x[0], back.model.embed(torch.tensor(back.vocab.encode("the cat"))))
    paths = inspect_model(tmp_path / "model", tmp_path / "gates")
    assert sorted(p.name for p in paths) == ["gates.html", "gates_l0.png"]
    assert (tmp_path / "gates" / "gates_l0.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_trains_samples_and_reports(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    out = tmp_path / "run"
    assert main(["generate", str(path), "--out", str(out), "--hidden", "8", "--layers", "1",
                 "--embedding", "4", "--epochs", "1", "--streams", "4", "--tbptt", "20",
                 "--length", "20"]) == 0
    text = capsys.readouterr().out
    assert "5-gram" in text and "vs best n-gram" in text
    assert sorted(p.name for p in out.iterdir()) == ["loss.png", "metrics.json", "model", "samples.txt"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["bits_per_char"]) == {"LSTM", "1-gram", "2-gram", "3-gram", "4-gram", "5-gram"}
    assert main(["generate", "--model", str(out / "model"), "--prompt", "the ", "--length", "12",
                 "--temperature", "0"]) == 0
    line = capsys.readouterr().out.rstrip("\n")
    assert line.startswith("the ") and len(line) == 16


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: text file not found: {tmp_path / 'missing.txt'}"
    assert main(["generate", "--model", str(tmp_path / "nope")]) == 2
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00abc" * 50)
    assert main(["generate", str(tmp_path / "bad.txt")]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_pydoc_topics_is_a_real_text():
    text = pydoc_topics()
    assert len(text) > 100_000 and "for" in text


def test_config_checks():
    with pytest.raises(LstmkitError, match="embedding == hidden"):
        LanguageModelConfig(embedding=8, hidden=16, layers=2, residual=True).check()
    with pytest.raises(LstmkitError, match="holdout"):
        LanguageModelConfig(holdout=0.0).check()
    with pytest.raises(LstmkitError, match="too short"):
        CharLanguageModel(tiny()).fit("abc")
    model = CharLanguageModel(tiny())
    n = 2 * model.config.streams + 1          # long enough in total, too short once the held-out parts go
    with pytest.raises(LstmkitError, match=r"text too short: %d characters leave \d+ for training" % n):
        model.fit("ab" * (n // 2) + "a")


def test_unfitted_models_and_other_tasks_folders_are_refused(lm, tmp_path):
    from lstmkit.seq2seq import Seq2Seq

    for model in (CharLanguageModel(), Seq2Seq()):
        name = type(model).__name__
        with pytest.raises(LstmkitError, match=f"{name} is not fitted: call fit\\(\\) or {name}.load"):
            model.save(tmp_path / "x")
        with pytest.raises(LstmkitError, match="not fitted"):
            model.gate_view("abc")
    with pytest.raises(LstmkitError, match="non-empty example"):
        lm.gate_view("")
    lm.save(tmp_path / "model")
    with pytest.raises(LstmkitError, match="language_model"):
        Seq2Seq.load(tmp_path / "model")
