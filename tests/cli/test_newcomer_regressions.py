"""Faults a newcomer found in the many-series and text commands: each ends in one line, exit 2."""
import pytest

from lstmkit.cli.main import main
from lstmkit.errors import LstmkitError
from lstmkit.generation.model import MAX_LENGTH, CharLanguageModel


def test_wrong_id_col_on_a_long_file_is_one_line_before_training(tmp_path, capsys):
    csv = tmp_path / "long.csv"
    rows = ["unique_id,ds,y"] + [f"s{k},2020-01-{d:02d},{d + k}" for k in range(2) for d in range(1, 29)]
    csv.write_text("\n".join(rows) + "\n")
    code = main(["forecast", str(csv), "--id-col", "nope", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--id-col 'nope'" in err[0]
    assert not (tmp_path / "o" / "model").exists()


def test_generate_length_is_bounded():
    lm = CharLanguageModel.__new__(CharLanguageModel)
    lm._need = lambda: None
    with pytest.raises(LstmkitError, match="length must be between 0 and"):
        lm.generate("a", MAX_LENGTH + 1)
    with pytest.raises(LstmkitError, match="finite"):
        lm.generate("a", 5, temperature=float("inf"))
