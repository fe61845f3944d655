"""Dataset spec strings (a user's own files with no code) and the ``finetune`` command.

Every file here is written into tmp_path: CoNLL-column BIO, SpERT JSON and ASTE lines. Each error case
checks that the message names the file (and the line, the key or the close match). The end-to-end test
fine-tunes a random tiny BERT for 3 steps through the CLI and extracts with the labels it recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from metaie_utils.core.errors import UserError
from metaie_utils.tasks import get_dataset
from metaie_utils.tasks.base import FormatError
from metaie_utils.tasks.spec import (
    SpecError,
    check_dataset_arg,
    format_spec,
    is_spec,
    kind_keys,
    load_spec,
    parse_spec,
    spec_slug,
)

pytestmark = pytest.mark.unit

CONLL_TRAIN = """\
Tom\tB-PER
lives\tO
in\tO
Paris\tB-LOC
.\tO

Ann\tB-PER
Lee\tI-PER
visits\tO
New\tB-LOC
York\tI-LOC
.\tO

the\tO
city\tO
is\tO
big\tO
.\tO

Bob\tB-PER
is\tO
in\tO
London\tB-LOC
.\tO
"""
CONLL_TEST = """\
Ann\tB-PER
lives\tO
in\tO
London\tB-LOC
.\tO

Tom\tB-PER
visits\tO
Paris\tB-LOC
.\tO
"""
SPERT = [
    {"tokens": ["Tom", "works", "for", "Acme", "."],
     "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Org", "start": 3, "end": 4}],
     "relations": [{"type": "Work_For", "head": 0, "tail": 1}]},
    {"tokens": ["Ann", "lives", "in", "Paris", "."],
     "entities": [{"type": "Peop", "start": 0, "end": 1}, {"type": "Loc", "start": 3, "end": 4}],
     "relations": [{"type": "Live_In", "head": 0, "tail": 1}]},
]
ASTE = "The screen is great .####[([1], [3], 'POS')]\nBattery life is poor .####[([0, 1], [3], 'NEG')]\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    return {
        "train": write(tmp_path / "train.txt", CONLL_TRAIN),
        "test": write(tmp_path / "test.txt", CONLL_TEST),
        "cols": write(tmp_path / "cols.txt", "1 Tom NNP B-PER\n2 runs VBZ O\n\n1 Ann NNP B-PER\n"),
        "noent": write(tmp_path / "noent.txt", "a\tO\nb\tO\n\nc\tO\n"),
        "latin1": write(tmp_path / "latin1.txt", b"Tom\tB-PER\nCaf\xe9\tO\n"),
        "spert": write(tmp_path / "tr.json", json.dumps(SPERT)),
        "spert_noent": write(tmp_path / "empty.json", json.dumps([{"tokens": ["a", "b"], "entities": [], "relations": []}])),
        "spert_bad": write(tmp_path / "bad.json", '[\n{"tokens": ["a"]},\n{"tokens": ]\n'),
        "aste": write(tmp_path / "aste.txt", ASTE),
        "aste_none": write(tmp_path / "aste_none.txt", "Nothing here .####[]\n"),
        "aste_bad": write(tmp_path / "aste_bad.txt", ASTE + "no separator on this line\n"),
    }


# ------------------------------------------------------------------------------------------- grammar
@pytest.mark.parametrize("spec", [
    "conll-bio:train=a.txt,test=b.txt,tag_col=0,token_col=1",
    'conll-bio:train="my,data/train.txt",labels=PER:Person;LOC:Location,scheme=iob1',
    "spert-json:train=tr.json,relation_labels=Work_For:works for,signatures=Work_For:Peop>Org",
    "aste-file:task=aste,train=t.txt,dev=d.txt,test=e.txt,name=laptops",
    "ade:fold=3",
    "up-ewt:roles=ARG0;ARG1",
    "conll2003:",
])
def test_spec_round_trips(spec):
    kind, opts = parse_spec(spec)
    assert parse_spec(format_spec(kind, opts)) == (kind, opts)
    assert is_spec(spec) and spec_slug(spec) == spec_slug(format_spec(kind, opts))
    assert "/" not in spec_slug(spec) and "," not in spec_slug(spec)


def test_values_are_typed_and_quotes_keep_commas():
    kind, opts = parse_spec(" conll-bio: train = 'a, b.txt' , tag_col=-1,labels=DRUG:Drug name;DIS:Disease ")
    assert kind == "conll-bio"
    assert opts == {"train": "a, b.txt", "tag_col": -1, "labels": {"DRUG": "Drug name", "DIS": "Disease"}}
    assert list(opts["labels"]) == ["DRUG", "DIS"]  # order kept: queries follow it
    assert parse_spec("spert-json:test=x.json,signatures=Kill:Peop>Peop")[1]["signatures"] == {"Kill": ("Peop", "Peop")}
    assert parse_spec("up-ewt:roles=core")[1] == {"roles": "core"} and parse_spec("ade:fold=2")[1] == {"fold": 2}
    assert parse_spec("aste-file:train=t.txt,")[1] == {"train": "t.txt"}  # a trailing comma is fine


def test_registered_names_are_not_specs_and_keep_working():
    for name in ("conll2003", "wnut17", "conll2003-authors", "aste-14lap"):
        assert not is_spec(name) and check_dataset_arg(name) == name and spec_slug(name) == name
    assert not is_spec("conll2033")  # an unknown plain name is the registry's error, not a spec's
    with pytest.raises(SpecError, match="Did you mean dataset 'conll2003'"):
        check_dataset_arg("conll2033")
    assert get_dataset("conll2003").task == "ner"
    assert kind_keys("conll-bio") == ["train", "dev", "test", "labels", "name", "scheme", "token_col", "tag_col"]


@pytest.mark.parametrize("spec, needles", [
    ("conll_bio:train=a.txt", ["unknown kind 'conll_bio'", "Did you mean kind 'conll-bio'"]),
    ("conll-bio:tran=a.txt", ["unknown key 'tran'", "Did you mean key 'train'", "accepts: train, dev, test"]),
    ("conll-bio:tag-col=1,train=a.txt", ["unknown key 'tag-col'", "'tag_col'"]),
    ("conll-bio:train=a.txt;test=b.txt", ["train='a.txt;test=b.txt'", "'test' looks like a key", "separate items with ','"]),
    ("conll-bio train=a.txt", ["no ':' after the kind"]),
    ("conll-bio:train:a.txt", ["item 'train:a.txt' has no '='", "Write train=a.txt"]),
    ("conll-bio:train=a.txt,,test=b.txt", ["empty item", "two commas"]),
    ("conll-bio:train=a.txt,train=b.txt", ["key 'train' is given twice"]),
    ('conll-bio:train="a.txt', ["never closed"]),
    ("conll-bio:tag_col=x,train=a.txt", ["tag_col='x' is not an integer"]),
    ("conll-bio:scheme=bio,train=a.txt", ["scheme='bio'", "iob1", "iob2"]),
    ("conll-bio:labels=PER,train=a.txt", ["labels= entry 'PER'", "RAW:label words"]),
    ("conll-bio:tag_col=0", ["needs at least one of train=, dev=, test="]),
    ("conll2003:fold=1", ["unknown key 'fold' for conll2003", "takes no options"]),
])
def test_spec_typos_are_one_clear_error(spec, needles):
    with pytest.raises(SpecError) as e:
        parse_spec(spec)
    msg = str(e.value)
    assert msg.startswith(f"Dataset spec {spec!r}") and all(n in msg for n in needles), msg
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)


# ------------------------------------------------------------------------------------------- loading
def test_load_spec_equals_get_dataset(files):
    spec = f"conll-bio:train={files['train']},test={files['test']},labels=PER:Person;LOC:Location"
    ds = load_spec(spec)
    ref = get_dataset("conll-bio", train=str(files["train"]), test=str(files["test"]),
                      labels={"PER": "Person", "LOC": "Location"})
    assert type(ds) is type(ref) and ds.labels == ref.labels and ds.splits == ref.splits == ["train", "test"]
    assert [(e.tokens, e.entities) for e in ds.load("train")] == [(e.tokens, e.entities) for e in ref.load("train")]
    assert ds.load("train")[1].entities == [(0, 2, "PER"), (3, 5, "LOC")]
    assert get_dataset("conll-bio", train=str(files["train"])).labels == load_spec(f"conll-bio:train={files['train']}").labels


def test_columns_relative_paths_and_commas_in_paths(files, tmp_path, monkeypatch):
    ds = load_spec(f"conll-bio:train={files['cols']},token_col=1,tag_col=3")
    assert ds.load("train")[0].tokens == ["Tom", "runs"] and ds.load("train")[0].entities == [(0, 1, "PER")]
    monkeypatch.chdir(tmp_path)
    assert load_spec("conll-bio:train=train.txt").load("train")[0].tokens[0] == "Tom"
    odd = write(tmp_path / "my,data" / "train.txt", CONLL_TRAIN)
    assert load_spec(f'conll-bio:train="{odd}"').splits == ["train"]


def test_spert_and_aste_specs(files):
    re_ds = load_spec(f"spert-json:train={files['spert']},relation_labels=Work_For:works for;Live_In:lives in")
    assert re_ds.task == "re" and re_ds.relation_labels == {"Work_For": "works for", "Live_In": "lives in"}
    assert re_ds.load("train")[0].relations == [(0, 1, "Peop", 3, 4, "Org", "Work_For")]
    aste = load_spec(f"aste-file:task=aste,train={files['aste']},test={files['aste']}")
    assert aste.task == "aste" and aste.load("test")[1].triplets == [(0, 2, 3, 4, "negative")]
    assert load_spec(f"aste-file:task=absa,train={files['aste']}").task == "absa"


def test_missing_file_names_it_and_where_it_looked(files, tmp_path):
    with pytest.raises(SpecError) as e:
        load_spec(f"conll-bio:train={files['train']},test={tmp_path / 'nope.txt'}")
    assert "file" in str(e.value) and "nope.txt" in str(e.value) and "(test=)" in str(e.value)
    with pytest.raises(SpecError, match="is the folder"):
        load_spec(f"conll-bio:train={tmp_path}")


def test_file_with_no_entities_names_it(files):
    with pytest.raises(SpecError) as e:
        load_spec(f"conll-bio:train={files['train']},test={files['noent']}")
    assert str(files["noent"]) in str(e.value) and "no entities" in str(e.value) and "(test=)" in str(e.value)
    with pytest.raises(SpecError, match=r"empty\.json \(train=\): the file has no entities or relations"):
        load_spec(f"spert-json:train={files['spert_noent']}")
    with pytest.raises(SpecError, match=r"aste_none\.txt \(train=\): the file has no triplets"):
        load_spec(f"aste-file:train={files['aste_none']}")
    with pytest.raises(SpecError, match="the file is empty"):
        load_spec(f"conll-bio:train={write(files['train'].parent / 'blank.txt', chr(10))}")


def test_tag_column_that_does_not_parse_gives_file_line_and_the_fix(files):
    with pytest.raises(FormatError) as e:
        load_spec(f"conll-bio:train={files['cols']},tag_col=1")
    msg = str(e.value)
    assert msg.startswith(f"{files['cols']}, line 1: tag column holds 'Tom'") and "set tag_col=3" in msg, msg
    with pytest.raises(FormatError) as e:
        load_spec(f"conll-bio:train={files['train']},tag_col=0,token_col=1")
    assert f"{files['train']}, line 1" in str(e.value) and "swap them (tag_col=1,token_col=0)" in str(e.value)
    with pytest.raises(FormatError, match=r"train\.txt, line 1: line .* has 2 column\(s\)"):
        load_spec(f"conll-bio:train={files['train']},tag_col=5")


def test_other_format_errors_name_file_and_line(files):
    with pytest.raises(SpecError, match=r"latin1\.txt, line 2: not UTF-8 text \(byte 0xe9 at column 4\)"):
        load_spec(f"conll-bio:train={files['latin1']}")
    with pytest.raises(FormatError, match=r"bad\.json, line 3: invalid JSON"):
        load_spec(f"spert-json:train={files['spert_bad']}")
    with pytest.raises(FormatError, match=r"aste_bad\.txt, line 3: no '####' separator"):
        load_spec(f"aste-file:train={files['aste_bad']}")
    with pytest.raises(SpecError) as e:
        load_spec(f"conll-bio:train={files['train']},labels=PER:Person")
    assert str(files["train"]) in str(e.value) and "['LOC']" in str(e.value) and "labels=" in str(e.value)


def test_first_stage_labels_per_task(files):
    from metaie_utils.finetune import first_stage_labels

    assert first_stage_labels(load_spec(f"conll-bio:train={files['train']},labels=LOC:Location;PER:Person")) == ["Location", "Person"]
    assert first_stage_labels(load_spec(f"spert-json:train={files['spert']}")) == ["Loc", "Org", "Peop"]
    assert first_stage_labels(load_spec(f"aste-file:task=aste,train={files['aste']}"))[0] == "Positive opinion term"
    assert first_stage_labels(load_spec(f"aste-file:task=absa,train={files['aste']}"))[1] == "Negative aspect term"


# ------------------------------------------------------------------------------------------- finetune
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", ".", "person", "location", "tom", "lives", "in", "paris",
         "ann", "lee", "visits", "new", "york", "the", "city", "is", "big", "bob", "london"]


def tiny_model(root: Path) -> Path:
    """A random 1-layer BERT (hidden 16) with a word vocabulary, saved to ``root``; no download."""
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=3,
                     id2label={0: "O", 1: "B", 2: "I"}, label2id={"O": 0, "B": 1, "I": 2})
    torch.manual_seed(0)
    BertForTokenClassification(cfg).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def test_finetune_cli_end_to_end_then_extract_with_recorded_labels(files, tmp_path, monkeypatch, capsys):
    from metaie_utils import cli
    from metaie_utils.finetune import FINETUNE_FILE, recorded_labels
    from metaie_utils.models import load_extractor
    from metaie_utils.models.checkpoint import read_training_info
    from metaie_utils.models.extractor import MetaIE

    if "metaie_utils.finetune" not in cli.COMMAND_MODULES:  # until cli.py registers the module
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ["metaie_utils.finetune"])
    init = tiny_model(tmp_path / "tiny")
    out = tmp_path / "tuned"
    spec = f"conll-bio:train={files['train']},test={files['test']},labels=PER:Person;LOC:Location"
    argv = ["finetune", "--model", str(init), "--dataset", spec, "--shots", "1", "--output", str(out), "--eval",
            "--test-cap", "0", "--set", "fewshot_max_steps=3", "--set", "device=cpu", "--set", "fewshot_batch_size=4"]
    assert cli.main(argv) == 0
    assert '"labels"' in capsys.readouterr().out
    info = json.loads((out / FINETUNE_FILE).read_text())
    assert info["dataset"] == spec and info["labels"] == ["Person", "Location"] and info["shots"] == 1
    assert info["seed"] == 0 and info["recipe"]["max_steps"] == 3 and info["task"] == "ner"
    assert info["n_instances"] == 2 * info["n_support"] and info["type_counts"]["PER"] >= 1
    assert info["eval"]["n_test"] == 2 and set(info["eval"]["scores"]) == {"entity"}
    assert read_training_info(out)["global_step"] == 3 and (out / "support.json").is_file()

    ie = load_extractor(out, device="cpu")
    assert isinstance(ie, MetaIE) and recorded_labels(out) == ["Person", "Location"]
    res = ie.extract(["Tom lives in Paris ."], recorded_labels(out))
    assert len(res) == 1 and all(s.label in ("Person", "Location") for s in res[0])

    # the same command again reuses the folder; another dataset into it is refused; --shots 0 = whole split
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv[:4] + [f"conll-bio:train={files['train']}"] + argv[5:]) == 2
    assert "already holds a fine-tune of" in capsys.readouterr().err
    full = tmp_path / "full"
    assert cli.main(["finetune", "--model", str(init), "--dataset", f"conll-bio:train={files['train']}", "--shots", "0",
                     "--output", str(full), "--set", "fewshot_max_steps=1", "--set", "device=cpu"]) == 0
    assert json.loads((full / FINETUNE_FILE).read_text())["n_support"] == 4
    assert recorded_labels(full) == ["LOC", "PER"]  # verbalize() of the raw types, sorted

    # bad input through the CLI: one line on stderr, exit 2
    capsys.readouterr()
    assert cli.main(["finetune", "--model", str(init), "--dataset", f"conll-bio:train={files['noent']}",
                     "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(files["noent"]) in err and "no entities" in err


def test_recorded_labels_missing_is_a_clear_error(tmp_path):
    from metaie_utils.finetune import recorded_labels

    with pytest.raises(UserError, match="--labels is needed .* has no metaie_finetune.json"):
        recorded_labels(tmp_path)
