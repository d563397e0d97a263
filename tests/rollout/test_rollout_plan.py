"""A rollout's steps and the model server traffic of each (mlspec.rollout.plan)."""

from __future__ import annotations

from tests.rollout.rollout_testkit import rollout_spec

from mlspec.rollout.plan import (
    Step,
    first_version_note,
    plan,
    steps_after_approval,
    steps_before_approval,
    traffic_for,
)


def test_a_shadow_step_then_one_canary_step_per_share():
    rollout = rollout_spec(shadow=(100, 600), steps=(10, 50, 100), bake_s=300)
    assert plan(rollout) == [Step("shadow", 100, 600), Step("canary", 10, 300), Step("canary", 50, 300),
                             Step("canary", 100, 300)]
    assert plan(rollout_spec(shadow=None, steps=(100,), bake_s=5)) == [Step("canary", 100, 5)]


def test_an_approval_holds_back_the_last_step():
    approved = rollout_spec(shadow=(50, 1), steps=(10, 100), bake_s=2, approval=True)
    assert steps_before_approval(approved) == [Step("shadow", 50, 1), Step("canary", 10, 2)]
    assert steps_after_approval(approved) == [Step("canary", 100, 2)]
    free = rollout_spec(shadow=(50, 1), steps=(10, 100), bake_s=2)
    assert steps_before_approval(free) == plan(free)
    assert steps_after_approval(free) == []


def test_a_first_version_has_no_steps():
    """Nothing is production: nothing to protect or compare with, and no clients send a new model traffic."""
    for approval in (False, True):
        rollout = rollout_spec(shadow=(100, 60), steps=(50, 100), bake_s=5, approval=approval)
        assert plan(rollout, first_version=True) == []
        assert steps_before_approval(rollout, first_version=True) == []
        assert steps_after_approval(rollout, first_version=True) == []
    assert first_version_note(1) == ("no production version: nothing to roll out against; version 1 takes every "
                                     "request after its smoke test")


def test_the_traffic_of_each_step_names_versions_as_strings():
    shadow, canary, full = Step("shadow", 30, 5), Step("canary", 10, 5), Step("canary", 100, 5)
    assert traffic_for(shadow, 2, 3) == {"weights": {"2": 100}, "shadow": {"version": "3", "percent": 30}}
    assert traffic_for(canary, 2, 3, atol=1e-4, rtol=1e-3) == {
        "weights": {"2": 90, "3": 10}, "shadow": {"version": "3", "percent": 100, "atol": 1e-4, "rtol": 1e-3}
    }
    # at 100 % production shadows the candidate, so agreement is still measured
    assert traffic_for(full, 2, 3) == {"weights": {"3": 100}, "shadow": {"version": "2", "percent": 100}}


def test_a_first_version_answers_everything_alone():
    for step in (Step("shadow", 100, 5), Step("canary", 10, 5), Step("canary", 100, 5)):
        assert traffic_for(step, None, 1) == {"weights": {"1": 100}}


def test_while_a_person_decides_production_answers_all_and_the_candidate_gets_copies():
    from mlspec.rollout.plan import traffic_while_waiting

    assert traffic_while_waiting(2, 3, atol=0.1) == {"weights": {"2": 100},
                                                     "shadow": {"version": "3", "percent": 100, "atol": 0.1}}
    assert traffic_while_waiting(None, 1) == {"weights": {"1": 100}}
