"""Pre-registered acceptance criteria: validation before scoring, PASS/FAIL with the value and
n, criteria.json, the HTML banner and the exit status of ``--fail-on-criteria``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medseg.cli import main
from medseg.errors import InputError
from medseg.evaluation.intervals import StatsOptions
from medseg.evaluation.study.criteria import judge, load_criteria, statistic_of
from tests.study_cohorts import shifted_cohort

#: Dice of case i is (side - 1) / side: 0.875, 0.9, 0.9167, 0.875, 0.9, 0.9167
SIDES = [8, 10, 12, 8, 10, 12]
DICE = np.array([(s - 1) / s for s in SIDES])


def _write(tmp_path, criteria, name="criteria.json"):
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(criteria))
    else:
        import yaml

        path.write_text(yaml.safe_dump(criteria))
    return path


def test_statistics_of_the_finite_values():
    values = [0.9, math.nan, 0.7, None, 0.8]
    assert statistic_of(values, "mean") == (pytest.approx(0.8), 3)
    assert statistic_of(values, "median") == (pytest.approx(0.8), 3)
    assert statistic_of(values, "p10") == (pytest.approx(np.percentile([0.9, 0.7, 0.8], 10)), 3)
    lo, n = statistic_of(values, "ci_low", StatsOptions(min_n=2))
    assert n == 3 and 0.7 - 1e-12 <= lo < 0.8
    assert math.isnan(statistic_of(values, "ci_low")[0])  # 3 < the default minimum n
    assert statistic_of([math.nan], "mean")[1] == 0


def test_judge_pass_and_fail_on_known_rows(tmp_path):
    rows = [{"case": f"c{i}", "class": "liver", "label": 1, "status": "ok", "dice": d,
             "hd95": h} for i, (d, h) in enumerate([(0.9, 2.0), (0.8, 4.0), (0.7, 6.0)])]
    rows.append({"case": "bad", "class": "liver", "label": 1, "status": "error"})
    crits = load_criteria(_write(tmp_path, [
        {"class": "liver", "metric": "dice", "statistic": "mean", "op": ">=", "threshold": 0.8},
        {"class": "liver", "metric": "dice", "statistic": "mean", "op": ">", "threshold": 0.8},
        {"class": 1, "metric": "hd95", "statistic": "median", "op": "<=", "threshold": 4},
        {"class": "liver", "metric": "hd95", "statistic": "p100", "op": "<", "threshold": 5},
    ]), {1: "liver"})
    out = judge(crits, rows)
    assert [c["result"] for c in out["criteria"]] == ["PASS", "FAIL", "PASS", "FAIL"]
    assert [c["n"] for c in out["criteria"]] == [3, 3, 3, 3]
    assert out["criteria"][0]["value"] == pytest.approx(0.8)
    assert out["criteria"][3]["value"] == pytest.approx(6.0)
    assert out["passed"] is False
    assert judge(crits[:1], rows)["passed"] is True


@pytest.mark.parametrize(("item", "message"), [
    ({"class": "spleen", "metric": "dice", "statistic": "mean", "op": ">=", "threshold": 0.8},
     "unknown class 'spleen' (known: liver)"),
    ({"class": "liver", "metric": "dise", "statistic": "mean", "op": ">=", "threshold": 0.8},
     "unknown metric 'dise'"),
    ({"class": "liver", "metric": "dice", "statistic": "mode", "op": ">=", "threshold": 0.8},
     "unknown statistic 'mode'"),
    ({"class": "liver", "metric": "dice", "statistic": "mean", "op": "=>", "threshold": 0.8},
     "unknown op '=>'"),
    ({"class": "liver", "metric": "dice", "statistic": "mean", "op": ">=", "threshold": "x"},
     "threshold 'x' is not a finite number"),
    ({"class": "liver", "metric": "dice", "statistic": "mean", "op": ">="}, "lacks threshold"),
])
def test_bad_criteria_are_one_line_errors(tmp_path, item, message):
    path = _write(tmp_path, {"criteria": [item]})
    with pytest.raises(InputError, match="criterion 1") as exc:
        load_criteria(path, {1: "liver"})
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_yaml_criteria_and_label_values_without_labels(tmp_path):
    path = _write(tmp_path, [{"class": 1, "metric": "nsd", "statistic": "p5", "op": ">=",
                              "threshold": 0.5, "id": "NSD-1"}], "criteria.yaml")
    (c,) = load_criteria(path)
    assert (c.id, c.class_name, c.label, c.statistic) == ("NSD-1", "1", 1, "p5")
    bad = _write(tmp_path, [{"class": "liver", "metric": "nsd", "statistic": "p5", "op": ">=",
                             "threshold": 0.5}], "bad.yaml")
    with pytest.raises(InputError, match="no --labels given"):
        load_criteria(bad)
    (tmp_path / "broken.yaml").write_text("criteria: [\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_criteria(tmp_path / "broken.yaml")


def test_evaluate_criteria_exit_status_follows_fail_on_criteria(tmp_path, capsys):
    folders = shifted_cohort(tmp_path, SIDES, {"pred": [1] * len(SIDES)})
    passing = _write(tmp_path, [
        {"id": "D", "class": "liver", "metric": "dice", "statistic": "mean", "op": ">=",
         "threshold": 0.85},
        {"id": "V", "class": "liver", "metric": "abs_volume_diff_ml", "statistic": "mean",
         "op": "<=", "threshold": 0.001},
    ], "pass.json")
    failing = _write(tmp_path, [
        {"id": "D", "class": "liver", "metric": "dice", "statistic": "p0", "op": ">=",
         "threshold": 0.9},
    ], "fail.json")
    base = ["evaluate", "--pred", str(folders["pred"]), "--ref", str(folders["ref"]),
            "--labels", "liver=1", "--workers", "1"]
    out = tmp_path / "ok"
    assert main([*base, "-o", str(out), "--criteria", str(passing), "--fail-on-criteria"]) == 0
    doc = json.loads((out / "criteria.json").read_text())
    assert doc["passed"] is True
    assert doc["criteria"][0]["value"] == pytest.approx(DICE.mean())
    assert doc["criteria"][0]["n"] == len(SIDES)
    html = (out / "report.html").read_text()
    assert html.index("Acceptance criteria") < html.index("<h2>Summary")
    assert "PASS" in html and "criteria: PASS" in capsys.readouterr().out
    out = tmp_path / "fail"
    assert main([*base, "-o", str(out), "--criteria", str(failing), "--fail-on-criteria"]) == 3
    doc = json.loads((out / "criteria.json").read_text())
    assert doc["criteria"][0]["result"] == "FAIL"
    assert doc["criteria"][0]["value"] == pytest.approx(DICE.min())
    assert "class='fail'>FAIL" in (out / "report.html").read_text()
    # without --fail-on-criteria the failed criterion is reported but does not set the status
    assert main([*base, "-o", str(tmp_path / "fail2"), "--criteria", str(failing)]) == 0


def test_unknown_class_in_criteria_fails_before_scoring(tmp_path, capsys):
    folders = shifted_cohort(tmp_path, [8, 10], {"pred": [1, 1]})
    crit = _write(tmp_path, [{"class": "tumour", "metric": "dice", "statistic": "mean",
                              "op": ">=", "threshold": 0.5}])
    out = tmp_path / "out"
    code = main(["evaluate", "--pred", str(folders["pred"]), "--ref", str(folders["ref"]),
                 "--labels", "liver=1", "-o", str(out), "--criteria", str(crit)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown class 'tumour'" in err
    assert not out.exists()  # nothing scored, nothing written
