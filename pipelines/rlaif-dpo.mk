# RLAIF from the shell: an AI judge ranks the SFT model's own samples, and DPO learns from its verdicts.
#
#   sft -> judge-model (an SFT of the SFT on judge data) -> judge (sample + judge) -> dpo
#
#   make -f pipelines/rlaif-dpo.mk                           # tiny model, built-in task, offline
#   make -f pipelines/rlaif-dpo.mk SFT_NAME=my-sft           # start from an SFT already in the store
#   make -f pipelines/rlaif-dpo.mk JUDGE=http://127.0.0.1:8000/v1 JUDGE_ARGS="--judge-model NAME"
#        (any OpenAI-compatible server as the judge; then the judge-model target is not built)
#
# Each target is the artifact's `latest` link in the store, so make skips what already exists;
# `make -f pipelines/rlaif-dpo.mk -B` reruns everything (each run is a new version NAME/vN).
# The same flow as one recipe, with reuse and resume: `llmpost run recipes/quickstart.yaml`.

LLMPOST      ?= llmpost
STORE        ?= artifacts
PREFIX       ?= rlaif
SFT_NAME     ?= $(PREFIX)-sft
MODEL        ?= tiny
TRAIN        ?=
SFT_ARGS     ?= --batch-size 16 --set max_steps=2000
JUDGE_SFT_ARGS ?= --batch-size 16 --set max_steps=1000 --set loss_data=null
JUDGE_ARGS   ?= --samples 4 --max-prompts 1000
DPO_ARGS     ?= --set beta=0.5 --set 'loss=[sigmoid,sft]' --lr 3e-5 --set max_steps=150
JUDGE        ?= $(PREFIX)-judge-model

export LLMPOST_STORE := $(STORE)
SFT         := $(STORE)/$(SFT_NAME)/latest
JUDGE_MODEL := $(STORE)/$(PREFIX)-judge-model/latest
PREFS       := $(STORE)/$(PREFIX)-prefs/latest
DPO         := $(STORE)/$(PREFIX)-dpo/latest
# A judge given as a URL is a server, not an artifact to build first.
JUDGE_DEP   := $(if $(findstring ://,$(JUDGE)),,$(JUDGE_MODEL))

.PHONY: all
all: $(DPO)
	$(LLMPOST) lineage $(PREFIX)-dpo

$(SFT):
	$(LLMPOST) sft --model $(MODEL) --data builtin:arith-sft --out $(SFT_NAME) $(TRAIN) $(SFT_ARGS)

$(JUDGE_MODEL): $(SFT)
	$(LLMPOST) sft --model $(SFT_NAME) --data builtin:arith-judge --out $(PREFIX)-judge-model \
		--set eval.enabled=false $(TRAIN) $(JUDGE_SFT_ARGS)

$(PREFS): $(SFT) $(JUDGE_DEP)
	$(LLMPOST) judge --policy $(SFT_NAME) --prompts builtin:arith-prompts:train --judge $(JUDGE) \
		--out $(PREFIX)-prefs $(JUDGE_ARGS)

$(DPO): $(SFT) $(PREFS)
	$(LLMPOST) dpo --model $(SFT_NAME) --data $(PREFIX)-prefs --out $(PREFIX)-dpo \
		--set eval_pairs=$(PREFIX)-prefs:test $(TRAIN) $(DPO_ARGS)
