# The two commands: `make run` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test-cluster run test bench chaos lint down clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/raygram up

down: $(STAMP)
	$(BIN)/raygram down

test: $(STAMP)
	$(BIN)/pytest

# The feed, interaction and safety tests again, against a three-master Redis Cluster the fixtures build.
CLUSTER_TESTS ?= tests/test_feed.py tests/test_interactions.py tests/test_follower_lists.py \
	tests/test_feed_properties.py tests/test_streaming_limits.py tests/test_bookmarks.py tests/test_direct.py \
	tests/test_safety.py tests/test_hydration_cache.py tests/test_follow_requests.py tests/test_event_recovery.py \
	tests/test_bounded_state.py tests/test_stories.py tests/test_tag_timelines.py tests/test_hashtags.py \
	tests/test_trends.py tests/test_search.py tests/test_suggestions.py tests/test_metrics.py
test-cluster: $(STAMP)
	TEST_REDIS_CLUSTER=1 $(BIN)/pytest $(CLUSTER_TESTS)

# Every benchmark (about 15 minutes on two quiet cores); one part: make bench BENCH="mix --rates 25,50".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH)

# Kill each component once under open-loop load; prints and saves the table (bench/chaos.py).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .raygram .pytest_cache .ruff_cache
