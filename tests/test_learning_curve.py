"""benchmarks.learning_curve reads Lightning CSVLogger files: validation rows in step order, resumed runs joined."""

import csv

import pytest

from benchmarks.learning_curve import main, read_validation

COLUMNS = ["epoch", "step", "train/total", "val/total", "val/ratio_model@k=0.786", "val/r_model@k=0.199"]


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in COLUMNS})


def test_validation_rows_of_a_resumed_run(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(a, [{"step": 10, "train/total": 3.0}, {"step": 24, "val/total": 2.0, "val/ratio_model@k=0.786": 0.8,
                                                    "val/r_model@k=0.199": 0.99},
               {"step": 49, "val/total": 1.5, "val/ratio_model@k=0.786": 0.85, "val/r_model@k=0.199": 0.995}])
    # the resumed run repeats step 49 (later row wins) and adds step 74 without the r column
    _write(b, [{"step": 49, "val/total": 1.4, "val/ratio_model@k=0.786": 0.86, "val/r_model@k=0.199": 0.996},
               {"step": 74, "val/total": 1.2, "val/ratio_model@k=0.786": 0.9}])
    d = read_validation([a, b])
    assert d["step"] == [24.0, 49.0, 74.0]
    assert d["val/total"] == [2.0, 1.4, 1.2]
    assert d["val/ratio_model@k=0.786"] == [0.8, 0.86, 0.9]
    assert d["val/r_model@k=0.199"][:2] == [0.99, 0.996] and d["val/r_model@k=0.199"][2] != d["val/r_model@k=0.199"][2]


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_validation([tmp_path / "missing.csv"])
    train_only = tmp_path / "train_only.csv"
    _write(train_only, [{"step": 1, "train/total": 1.0}])
    with pytest.raises(ValueError, match="train_only.csv: no validation rows"):
        read_validation([train_only])


def test_cli_writes_the_figure(tmp_path, capsys):
    a = tmp_path / "a.csv"
    _write(a, [{"step": 24, "val/total": 2.0, "val/ratio_model@k=0.786": 0.8, "val/r_model@k=0.199": 0.99}])
    out = tmp_path / "curve.png"
    main(["--run", f"run={a}", "--out", str(out)])
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"
    assert "2.0000  0.9900  0.8000" in capsys.readouterr().out
