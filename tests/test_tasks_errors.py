"""Bad input gives clear errors (name, file and line); generic readers read a user's own files."""

from __future__ import annotations

import json

import pytest

from metaie_utils.core.errors import UserError
from metaie_utils.tasks import DATASETS, FormatError, get_dataset
from metaie_utils.tasks import readers as R

pytestmark = pytest.mark.unit


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(UserError) as e:
        get_dataset("conll2033")
    msg = str(e.value)
    assert "'conll2033'" in msg and all(name in msg for name in DATASETS)


def test_unknown_split_and_option():
    with pytest.raises(UserError, match=r"no split 'dev'.*train, test"):
        get_dataset("jnlpba").load("dev")
    with pytest.raises(UserError, match=r"unknown option\(s\) \['folds'\]"):
        get_dataset("conll2003", folds=3)
    with pytest.raises(UserError, match="fold=12"):
        get_dataset("ade", fold=12)


def test_conll_bad_tag_names_file_and_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("Tom B-PER\nsleeps O\n\nAnn PERSON\n")
    with pytest.raises(FormatError) as e:
        R.read_conll_columns(p, "x")
    assert f"{p}, line 4" in str(e.value) and "'PERSON'" in str(e.value)


def test_conll_one_column_names_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("Tom B-PER\nsleeps\n")
    with pytest.raises(FormatError, match=r"line 2: .*1 column"):
        R.read_conll_columns(p, "x")


def test_json_given_to_conll_reader(tmp_path):
    p = tmp_path / "data.json"
    p.write_text('[{"tokens": ["a"], "entities": []}]\n')
    with pytest.raises(FormatError, match="line 1"):
        R.read_conll_columns(p, "x")


def test_spert_errors(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"tokens": []}')
    with pytest.raises(FormatError, match="top-level JSON is a dict"):
        R.read_spert_json(p, "x")
    p.write_text('[{"tokens": ["a"], "entities": [{"type": "T", "start": 0, "end": 3}]}]')
    with pytest.raises(FormatError, match=r"record 0 has entity span \(0, 3\)"):
        R.read_spert_json(p, "x")
    p.write_text("[{\n")
    with pytest.raises(FormatError, match="invalid JSON"):
        R.read_spert_json(p, "x")


def test_aste_errors(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("Good food .####[([1], [0], 'POS')]\nno separator here\n")
    with pytest.raises(FormatError, match=r"x.txt, line 2: no '####' separator"):
        R.read_aste(p, "x")
    p.write_text("Good food .####[([1], [0], 'GOOD')]\n")
    with pytest.raises(FormatError, match="line 1: cannot parse"):
        R.read_aste(p, "x")


def test_semeval_and_conllu_errors(tmp_path):
    p = tmp_path / "s.txt"
    p.write_bytes(b'1\t"The <e1>cat</e1> sat on the <e2>mat</e2>."\r\nSitting(e1,e2)\r\nComment:\r\n\r\n')
    with pytest.raises(FormatError, match=r"line 2: relation label 'Sitting\(e1,e2\)'"):
        R.read_semeval2010_task8(p, "s")
    q = tmp_path / "u.conllu"
    q.write_text("# text = hi\n1\thi\thi\tINTJ\tUH\t_\t0\troot\n")
    with pytest.raises(FormatError, match="u.conllu, line 2: 8 tab-separated columns"):
        R.read_conllu_srl(q, "u")


def test_missing_verbalization_is_named(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("Aspirin B-DRUG\nhelps O\n")
    ds = get_dataset("conll-bio", test=str(p), labels={"DISEASE": "Disease"})
    with pytest.raises(UserError, match=r"\['DRUG'\].*no label verbalization"):
        ds.load("test")


def test_generic_conll_bio(tmp_path):
    p = tmp_path / "train.tsv"
    p.write_text("Aspirin\tB-DRUG_NAME\ncures\tO\nhead\tB-SYMPTOM\nache\tI-SYMPTOM\n\t\nOK\tO\n")
    ds = get_dataset("conll-bio", train=str(p), name="mine")
    assert (ds.name, ds.task, ds.splits) == ("mine", "ner", ["train"])
    assert ds.labels == {"DRUG_NAME": "Drug name", "SYMPTOM": "Symptom"}
    exs = ds.load("train")
    assert len(exs) == 2 and exs[0].entities == [(0, 1, "DRUG_NAME"), (2, 4, "SYMPTOM")]
    assert ds.instances(exs[0])[1] == {"words": ["Symptom", ":", "Aspirin", "cures", "head", "ache"],
                                       "ner": ["O", "O", "O", "O", "B", "I"]}


def test_generic_spert_and_aste(tmp_path):
    p = tmp_path / "tr.json"
    p.write_text(json.dumps([{"tokens": ["Ann", "works", "for", "ACME"],
                              "entities": [{"type": "Per", "start": 0, "end": 1}, {"type": "Org", "start": 3, "end": 4}],
                              "relations": [{"type": "Works_For", "head": 0, "tail": 1}]}]))
    ds = get_dataset("spert-json", train=str(p), relation_labels={"Works_For": "works for"})
    ex = ds.load("train")[0]
    assert ds.gold(ex)["relation"] == {(0, 1, "Per", 3, 4, "Org", "Works_For")}
    labels = [" ".join(i["words"][:i["words"].index(":")]) for i in ds.instances(ex)]
    assert labels == ["Org", "Per", "Ann works for", "ACME works for"]
    a = tmp_path / "t.txt"
    a.write_text("Good food .####[([1], [0], 'POS')]\n")
    for task in ("absa", "aste"):
        ds = get_dataset("aste-file", task=task, test=str(a))
        assert ds.task == task and ds.load("test")[0].triplets == [(1, 2, 0, 1, "positive")]
    with pytest.raises(UserError, match="task='ner'"):
        get_dataset("aste-file", task="ner", test=str(a))
