"""Datasets of the few-shot evaluation: readers, label verbalization, queries, decoding, scoring.

>>> ds = get_dataset("conll2003")                                # doctest: +SKIP
>>> ex = ds.load("test")[0]; ds.instances(ex)[0]["words"][:3]    # doctest: +SKIP
['Organization', ':', 'SOCCER']
>>> preds = ds.predict(metaie, ds.load("test"))                  # doctest: +SKIP
>>> score(ds, [ds.gold(e) for e in ds.load("test")], preds)["entity"]["f1"]   # doctest: +SKIP

``DATASETS`` maps a name to a factory ``(**options) -> dataset``; :func:`get_dataset` calls it. Generic
entries read a user's own files (no code needed for a new dataset), e.g.::

    get_dataset("conll-bio", train="my/train.txt", test="my/test.txt", labels={"DRUG": "Drug"})
    get_dataset("spert-json", train="tr.json", test="te.json", relation_labels={"Work_For": "works for"})
    get_dataset("aste-file", task="aste", train="train_triplets.txt", test="test_triplets.txt")

The label table and every decision are in docs/TASKS.md."""

from __future__ import annotations

from metaie_utils.core.errors import UserError
from metaie_utils.tasks.registry import (  # noqa: F401  (the package's public names)
    ALIASES,
    CASIE_EXCLUDED,
    CASIE_ROLES,
    DATASETS,
    DISK_CACHE_ENV,
    FIXED_SUPPORT,
    LABELS,
    READER_VERSION,
    SIGNATURES,
    UP_ROLES_CORE,
    UP_ROLES_FREQUENT,
    ABSADataset,
    ASTEDataset,
    EEDataset,
    Event,
    Example,
    FormatError,
    Frame,
    NERDataset,
    R,
    REDataset,
    SRLDataset,
    TaskDataset,
    __all__,
    _aste_family,
    _cached,
    _conll_ner,
    _disk_cached,
    _fresh,
    _options_error,
    _read_casie_split,
    _read_qasrl,
    _stat_key,
    ade,
    aste_file,
    bc5cdr,
    casie,
    conll04,
    conll2003,
    conll2003_metaie,
    conll_bio,
    jnlpba,
    label_words,
    make_instance,
    ncbi_disease,
    propbank_role_name,
    qasrl_gs,
    score,
    semeval2010_task8,
    spert_json,
    up_ewt,
    verbalize,
    wnut2017,
)


def get_dataset(name: str, /, **options) -> TaskDataset:
    """The dataset called ``name`` (see ``DATASETS``), built with ``options``.

    >>> get_dataset("conll2003").task
    'ner'
    >>> get_dataset("nope")
    Traceback (most recent call last):
    ...
    metaie_utils.core.errors.UserError: Unknown dataset 'nope'. Known datasets: conll2003, conll2003-metaie, wnut2017, bc5cdr, ncbi-disease, jnlpba, ner-mix, conll04, ade, semeval2010-task8, casie, up-ewt, qasrl-gs, absa-14lap, absa-14res, aste-14lap, aste-14res, conll-bio, spert-json, aste-file (aliases: bionlp2004, wnut17, ncbi_disease, semeval2010_task8, up_ewt, qasrl, 14lap, 14res).
    """
    key = ALIASES.get(name, name)
    if key not in DATASETS:
        from metaie_utils.tasks.spec import is_spec, load_spec

        if is_spec(name):  # a user's own files: "conll-bio:train=my/train.txt,test=my/test.txt"
            if options:
                raise UserError(f"Dataset spec {name!r} carries its options itself; pass no keyword options with it.")
            return load_spec(name)
        raise UserError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)} (aliases: {', '.join(ALIASES)}).")
    return DATASETS[key](**options)
