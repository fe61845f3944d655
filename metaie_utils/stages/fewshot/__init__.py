"""Stage 05 (notebook ``05_fewshot_eval``): ``loop`` (config, the few-shot loop, ``evaluate``), ``support``
(sampling), ``baselines`` (NER distillation, MultiIE, the teacher in context)."""
