"""The backoff decision with fixed values, and the loop with a fake clock."""

from __future__ import annotations

import pytest

from vidwatch.r2.retry import RetryPolicy, call_with_retry, next_delay

POLICY = RetryPolicy(base_delay_s=0.2, max_delay_s=5.0, deadline_s=30.0)


def fixed(value: float):
    return lambda: value


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        (1, 0.2),
        (2, 0.4),
        (3, 0.8),
        (4, 1.6),
        (5, 3.2),
        (6, 5.0),
        (7, 5.0),
        (200, 5.0),
    ],
)
def test_ceiling_doubles_then_caps(attempt: int, ceiling: float) -> None:
    # rng just under 1 gives (almost) the ceiling, 0.5 half of it: full jitter.
    top = next_delay(POLICY, attempt, started=0.0, now=1.0, rng=fixed(0.999999))
    half = next_delay(POLICY, attempt, started=0.0, now=1.0, rng=fixed(0.5))
    assert top == pytest.approx(ceiling, rel=1e-5)
    assert half == pytest.approx(ceiling / 2)


def test_full_jitter_can_be_zero() -> None:
    assert next_delay(POLICY, 3, started=0.0, now=0.0, rng=fixed(0.0)) == 0.0


def test_gives_up_at_the_deadline() -> None:
    assert next_delay(POLICY, 2, started=100.0, now=130.0, rng=fixed(0.5)) is None
    assert next_delay(POLICY, 2, started=100.0, now=131.0, rng=fixed(0.5)) is None


def test_wait_never_runs_past_the_deadline() -> None:
    # 0.3 s left, ceiling 5 s: wait only what is left.
    assert next_delay(POLICY, 9, started=0.0, now=29.7, rng=fixed(0.999)) == pytest.approx(0.3)


def test_attempt_bound() -> None:
    policy = RetryPolicy(deadline_s=100.0, max_attempts=3)
    assert next_delay(policy, 2, started=0.0, now=0.0, rng=fixed(0.5)) is not None
    assert next_delay(policy, 3, started=0.0, now=0.0, rng=fixed(0.5)) is None


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        next_delay(POLICY, 0, started=0.0, now=0.0, rng=fixed(0.5))
    with pytest.raises(ValueError):
        RetryPolicy(deadline_s=-1)


class Flaky(Exception):
    pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_loop_retries_until_success() -> None:
    clock = FakeClock()
    calls: list[int] = []
    seen: list[tuple[int, float]] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise Flaky("down")
        return "ok"

    result = call_with_retry(
        fn,
        policy=POLICY,
        is_retryable=lambda e: isinstance(e, Flaky),
        on_retry=lambda n, d, e: seen.append((n, d)),
        sleep=clock.sleep,
        clock=clock,
        rng=fixed(0.5),
    )
    assert result == "ok"
    assert len(calls) == 4
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert [n for n, _ in seen] == [1, 2, 3]


def test_loop_gives_up_after_the_bound_with_the_last_error() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        clock.now += 1.0  # each attempt takes a second
        raise Flaky(f"attempt {len(calls)}")

    with pytest.raises(Flaky, match=r"attempt \d+") as info:
        call_with_retry(
            fn,
            policy=RetryPolicy(base_delay_s=1, max_delay_s=4, deadline_s=20),
            is_retryable=lambda e: True,
            sleep=clock.sleep,
            clock=clock,
            rng=fixed(0.999),
        )
    assert str(info.value) == f"attempt {len(calls)}"
    # The last retry starts before the deadline; the call ends within one attempt after it.
    assert 20.0 <= clock.now <= 21.0
    assert 5 <= len(calls) <= 10


def test_loop_does_not_retry_permanent_errors() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise KeyError("permanent")

    with pytest.raises(KeyError):
        call_with_retry(
            fn,
            policy=POLICY,
            is_retryable=lambda e: isinstance(e, Flaky),
            sleep=clock.sleep,
            clock=clock,
            rng=fixed(0.5),
        )
    assert calls == [1]
    assert clock.sleeps == []
