# MetaIE notebooks: `make help` lists the targets.
PY      ?= .venv/bin/python
PARAMS  ?= params/defaults.yaml
SET     ?=
# One run name per params file (defaults, cpu, ...): a second `make run` resumes or re-prints, never re-does.
RUN_NAME ?= $(basename $(notdir $(lastword $(PARAMS))))
# Assets the default run and the tests need (see `python -m metaie_utils assets list`). The main job replays the
# shipped distillation set (metaie_utils/data/distillation), so it needs no teacher: no llama-cpp-python build,
# no 491 MB download. `make teacher` installs the live teacher (then SET="distill_set=off" asks it again).
RUN_ASSETS  ?= minilm-l6 news
TEACHER_ASSETS ?= qwen2.5-0.5b teacher-server
TEST_ASSETS ?= minilm-l6 smollm2-135m news teacher-server
SHARED_DATA := $(abspath ../shared/data)
export METAIE_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)

.PHONY: help setup teacher run test test-unit test-notebooks test-slow lab notebooks bench sweep clean-outputs

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup:  ## create .venv and install the package, torch (CPU) and the default assets
	bash scripts/bootstrap.sh $(RUN_ASSETS)

teacher:  ## install the local Qwen2.5-0.5B teacher and its llama.cpp server (compiles llama-cpp-python once, ~6 min)
	bash scripts/bootstrap.sh $(TEACHER_ASSETS)

run:  ## the main job: notebooks 01 -> 05 on params/defaults.yaml (PARAMS=..., SET="key=value ...", RUN_NAME=...)
	bash scripts/bootstrap.sh $(RUN_ASSETS)
	$(PY) -m metaie_utils run --params $(PARAMS) --run-name $(RUN_NAME) $(foreach s,$(SET),--set $(s))

test:  ## unit tests + papermill smoke runs of every notebook
	bash scripts/bootstrap.sh $(TEST_ASSETS)
	$(PY) -m pytest -m "not slow and not gpu" -q --durations=15; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

test-unit:  ## unit tests only (seconds)
	bash scripts/bootstrap.sh
	$(PY) -m pytest -m "not slow and not gpu and not notebooks" -q

test-notebooks:  ## papermill smoke runs of every notebook
	bash scripts/bootstrap.sh $(TEST_ASSETS)
	$(PY) -m pytest -m notebooks -q

test-slow:  ## the slow tier (asset-heavy, minutes)
	bash scripts/bootstrap.sh $(RUN_ASSETS) $(TEACHER_ASSETS) mpnet-base
	$(PY) -m pytest -m slow -q

lab:  ## open JupyterLab on the notebooks
	bash scripts/bootstrap.sh
	$(PY) -m jupyter lab notebooks

notebooks:  ## regenerate notebooks/*.ipynb from their jupytext .py twins (outputs stripped)
	$(PY) -m metaie_utils.nbsync

bench:  ## speed/memory benchmarks (print tables)
	bash scripts/bootstrap.sh $(TEST_ASSETS) mpnet-base
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

sweep:  ## run a sweep spec: make sweep SPEC=params/sweeps/model_size_cpu.yaml
	bash scripts/bootstrap.sh $(RUN_ASSETS) $(TEACHER_ASSETS) mpnet-base
	$(PY) -m metaie_utils sweep $(SPEC)

clean-outputs:  ## delete outputs/ (asks first)
	@read -p "Delete everything under outputs/? [y/N] " a && [ "$$a" = y ] && find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} + || true
