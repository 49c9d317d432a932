"""CommandDecider on synthetic probability sequences: the one shared decision logic."""

from __future__ import annotations

import numpy as np
import pytest

from speechrnn.decisions import CommandDecider, DecisionConfig, Detection, decide

LABELS = ("_silence_", "_unknown_", "yes", "no")
HOP = 0.1


def probs(label: str, score: float = 0.9) -> np.ndarray:
    """A probability vector with ``score`` on ``label`` and the rest spread evenly."""
    p = np.full(len(LABELS), (1.0 - score) / (len(LABELS) - 1), dtype=np.float32)
    p[LABELS.index(label)] = score
    return p


def run(sequence: list[tuple[str, float]], config: DecisionConfig | None = None, hop: float = HOP) -> list[Detection]:
    """Feed ``(label, score)`` results at ``hop`` spacing starting at t = hop."""
    times = np.arange(1, len(sequence) + 1) * hop
    probabilities = np.stack([probs(label, score) for label, score in sequence])
    return decide(times, probabilities, LABELS, config=config)


def segment(label: str, seconds: float, score: float = 0.9) -> list[tuple[str, float]]:
    return [(label, score)] * round(seconds / HOP)


def test_threshold() -> None:
    sequence = segment("_silence_", 1.0) + segment("yes", 1.0, score=0.7) + segment("_silence_", 1.0)
    assert [d.label for d in run(sequence, DecisionConfig(threshold=0.6))] == ["yes"]
    assert run(sequence, DecisionConfig(threshold=0.75)) == []
    found = run(sequence, DecisionConfig(threshold=0.6))[0]
    assert found.score == pytest.approx(0.7, abs=1e-5)


def test_minimum_count_and_quarter_window_before_any_decision() -> None:
    # a confident "yes" from the first result: nothing until minimum_count results covering
    # a quarter of the averaging window have arrived
    config = DecisionConfig(average_window_seconds=1.0, minimum_count=4, threshold=0.5)
    detections = run(segment("yes", 2.0), config)
    assert len(detections) == 1
    assert detections[0].time == pytest.approx(0.4)  # the 4th result (span 0.3 s >= 0.25 s)
    config = DecisionConfig(average_window_seconds=2.0, minimum_count=2, threshold=0.5)
    assert run(segment("yes", 2.0), config)[0].time == pytest.approx(0.6)  # span must reach 0.5 s
    # with results too sparse to ever reach the count inside the window, nothing is decided
    config = DecisionConfig(average_window_seconds=0.5, minimum_count=10, threshold=0.5)
    assert run(segment("yes", 3.0), config) == []


def test_suppression_between_detections() -> None:
    config = DecisionConfig(average_window_seconds=0.3, minimum_count=2, threshold=0.5, suppression_seconds=1.5)
    close = segment("yes", 0.5) + segment("no", 0.5) + segment("_silence_", 1.0)
    assert [d.label for d in run(close, config)] == ["yes"]
    apart = segment("yes", 0.5) + segment("_silence_", 1.5) + segment("no", 0.5) + segment("_silence_", 1.0)
    found = run(apart, config)
    assert [d.label for d in found] == ["yes", "no"]
    assert found[1].time - found[0].time >= 1.5 - 1e-9


def test_one_detection_per_word_and_rearming() -> None:
    config = DecisionConfig(average_window_seconds=0.3, minimum_count=2, threshold=0.6, suppression_seconds=0.5)
    # one long "yes": one detection, however long it lasts (no re-arm in between)
    assert [d.label for d in run(segment("yes", 4.0), config)] == ["yes"]
    # "yes ... yes" with a pause: the score falls below the threshold, re-arming the decider
    twice = segment("yes", 0.6) + segment("_silence_", 0.8) + segment("yes", 0.6) + segment("_silence_", 0.5)
    assert [d.label for d in run(twice, config)] == ["yes", "yes"]
    # a dip that stays above the threshold does not re-arm
    held = segment("yes", 0.6) + segment("yes", 0.8, score=0.65) + segment("yes", 0.6)
    assert [d.label for d in run(held, config)] == ["yes"]
    # another top label in between re-arms even without falling under the threshold
    switched = segment("yes", 0.6) + segment("no", 0.7) + segment("yes", 0.7)
    assert [d.label for d in run(switched, config)] == ["yes", "no", "yes"]


def test_averaging_window_smooths_spikes() -> None:
    config = DecisionConfig(average_window_seconds=0.5, minimum_count=3, threshold=0.5, suppression_seconds=0.5)
    spike = [*segment("_silence_", 1.0), ("yes", 1.0), *segment("_silence_", 1.0)]
    assert run(spike, config) == []  # one result in six is averaged away
    sustained = segment("_silence_", 1.0) + segment("yes", 0.5, score=1.0) + segment("_silence_", 1.0)
    assert [d.label for d in run(sustained, config)] == ["yes"]
    # a one-result window passes the spike through
    single = DecisionConfig(average_window_seconds=0.0, minimum_count=1, threshold=0.5)
    assert [d.label for d in run(spike, single)] == ["yes"]


def test_average_is_the_mean_of_the_window() -> None:
    decider = CommandDecider(LABELS, config=DecisionConfig(average_window_seconds=0.25, minimum_count=1))
    assert np.all(decider.average == 0)
    values = [probs("yes", s) for s in (0.2, 0.4, 0.6, 0.8, 1.0)]
    for i, p in enumerate(values):
        decider.update((i + 1) * HOP, p)
    np.testing.assert_allclose(decider.average, np.mean(values[-3:], axis=0), atol=1e-6)  # 0.3..0.5 s
    decider.reset()
    assert np.all(decider.average == 0)


@pytest.mark.parametrize("ignored", ["_silence_", "_unknown_"])
def test_ignored_labels_are_never_reported(ignored: str) -> None:
    config = DecisionConfig(average_window_seconds=0.3, minimum_count=2, threshold=0.5, suppression_seconds=0.0)
    sequence = segment(ignored, 2.0, score=0.99) + segment("yes", 0.5) + segment(ignored, 2.0, score=0.99)
    assert [d.label for d in run(sequence, config)] == ["yes"]
    custom = DecisionConfig(average_window_seconds=0.3, minimum_count=2, threshold=0.5, ignore=("yes",))
    assert [d.label for d in run(segment("yes", 1.0) + segment("no", 1.0), custom)] == ["no"]


def test_detection_span_points_at_the_best_window() -> None:
    config = DecisionConfig(average_window_seconds=0.5, minimum_count=3, threshold=0.5)
    sequence = [*segment("_silence_", 1.0), ("yes", 0.7), ("yes", 0.99), ("yes", 0.8), ("yes", 0.7)]
    decider = CommandDecider(LABELS, config=config, window_seconds=1.0)
    found = [
        d
        for i, (label, score) in enumerate(sequence)
        if (d := decider.update((i + 1) * HOP, probs(label, score))) is not None
    ]
    assert len(found) == 1
    assert found[0].end == pytest.approx(1.2)  # the 0.99 result
    assert found[0].start == pytest.approx(0.2)
    assert set(found[0].as_dict()) == {"label", "score", "time", "start", "end"}


def test_detection_span_never_starts_before_the_stream() -> None:
    """A word in the stream's first second: its window reached back past 0, its span starts at 0."""
    config = DecisionConfig(average_window_seconds=0.3, minimum_count=2, threshold=0.5)
    found = run(segment("yes", 0.6), config)
    assert len(found) == 1 and found[0].end < 1.0
    assert found[0].start == 0.0


def test_decide_equals_a_fresh_decider_and_reset_rearms() -> None:
    config = DecisionConfig(average_window_seconds=0.3, minimum_count=2, threshold=0.5, suppression_seconds=2.0)
    sequence = segment("yes", 1.0)
    decider = CommandDecider(LABELS, config=config)
    first = [decider.update((i + 1) * HOP, probs(*item)) for i, item in enumerate(sequence)]
    assert [d for d in first if d] == run(sequence, config)
    decider.reset()
    again = [decider.update((i + 1) * HOP, probs(*item)) for i, item in enumerate(sequence)]
    assert [d for d in again if d] == [d for d in first if d]


def test_bad_input() -> None:
    decider = CommandDecider(LABELS)
    with pytest.raises(ValueError, match="expected 4 probabilities"):
        decider.update(0.1, np.ones(3))
    decider.update(1.0, probs("yes"))
    with pytest.raises(ValueError, match="time order"):
        decider.update(0.5, probs("yes"))
    with pytest.raises(ValueError, match="threshold"):
        DecisionConfig(threshold=1.5)
    with pytest.raises(ValueError):
        DecisionConfig(minimum_count=0)


def test_a_hop_too_long_for_the_window_is_refused() -> None:
    """A detection needs minimum_count results in the averaging window: a 0.3 s hop gives at most 2 of 0.4 s."""
    defaults = DecisionConfig()
    assert defaults.results_in_window(0.1) == 5 and defaults.results_in_window(0.2) == 3
    defaults.check_hop(0.2)
    with pytest.raises(ValueError, match=r"a hop of 0\.3 s leaves at most 2 result\(s\).*at most 0\.2 s"):
        defaults.check_hop(0.3)
    for bad in (0.0, -0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="positive number of seconds"):
            defaults.check_hop(bad)
    # what the check protects against: at a 0.3 s hop nothing is ever detected
    config = DecisionConfig(average_window_seconds=0.4, minimum_count=3, threshold=0.5)
    assert run(segment("yes", 3.0, score=0.99), config, hop=0.3) == []
