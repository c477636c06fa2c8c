# RLHF from the shell: sft -> rm -> ppo, each an `llmpost` subcommand, chained by artifact refs.
#
#   make -f pipelines/rlhf.mk                                # tiny model, built-in task, offline
#   make -f pipelines/rlhf.mk STORE=runs/rlhf SFT_ARGS="--batch-size 32 --set max_steps=200"
#   make -f pipelines/rlhf.mk SFT_NAME=my-sft                # start from an SFT already in the store
#   make -f pipelines/rlhf.mk MODEL=Qwen/Qwen2.5-0.5B-Instruct SFT_DATA=trl-lib/Capybara \
#        RM_DATA=trl-lib/ultrafeedback_binarized PPO_PROMPTS=trl-lib/ultrafeedback-prompt TRAIN=--qlora
#
# Each target is the artifact's `latest` link in the store, so make skips what already exists
# and `make -f pipelines/rlhf.mk -B` reruns everything (each run is a new version NAME/vN).
# The same flow as one recipe, with reuse and resume: `llmpost run recipes/quickstart.yaml`.

LLMPOST     ?= llmpost
STORE       ?= artifacts
PREFIX      ?= rlhf
SFT_NAME    ?= $(PREFIX)-sft
RM_NAME     ?= $(PREFIX)-rm
PPO_NAME    ?= $(PREFIX)-ppo
MODEL       ?= tiny
TRAIN       ?=
SFT_DATA    ?= builtin:arith-sft
RM_DATA     ?= builtin:arith-rankings
PPO_PROMPTS ?= builtin:arith-prompts
SFT_ARGS    ?= --batch-size 16 --set max_steps=2000
RM_ARGS     ?= --set max_steps=150
PPO_ARGS    ?= --set max_steps=100

export LLMPOST_STORE := $(STORE)
SFT := $(STORE)/$(SFT_NAME)/latest
RM  := $(STORE)/$(RM_NAME)/latest
PPO := $(STORE)/$(PPO_NAME)/latest

.PHONY: all
all: $(PPO)
	$(LLMPOST) lineage $(PPO_NAME)

$(SFT):
	$(LLMPOST) sft --model $(MODEL) --data $(SFT_DATA) --out $(SFT_NAME) $(TRAIN) $(SFT_ARGS)

$(RM): $(SFT)
	$(LLMPOST) rm --model $(SFT_NAME) --data $(RM_DATA) --out $(RM_NAME) $(TRAIN) $(RM_ARGS)

$(PPO): $(SFT) $(RM)
	$(LLMPOST) ppo --policy $(SFT_NAME) --reward rm:$(RM_NAME) --prompts $(PPO_PROMPTS) --out $(PPO_NAME) \
		$(TRAIN) $(PPO_ARGS)
