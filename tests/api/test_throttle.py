"""The sign-in limit's decision, a pure function of the failures' times and now."""

from __future__ import annotations

from vidwatch.api.throttle import LoginThrottle, login_wait_s

T0 = 1_800_000_000.0


def test_five_failures_within_a_minute_make_the_next_attempt_wait():
    assert login_wait_s([], T0) == 0
    four = [T0 + i for i in range(4)]
    assert login_wait_s(four, T0 + 4) == 0
    five = [*four, T0 + 4]
    # The oldest of the five is a minute old at T0 + 60: then one may try again.
    assert login_wait_s(five, T0 + 5) == 55
    assert login_wait_s(five, T0 + 59.5) == 0.5
    assert login_wait_s(five, T0 + 60) == 0


def test_old_failures_do_not_count_and_the_order_does_not_matter():
    spread = [T0, T0 + 20, T0 + 40, T0 + 61, T0 + 62]  # never five within one minute
    assert login_wait_s(spread, T0 + 62) == 0
    shuffled = [T0 + 3, T0 + 1, T0 + 4, T0, T0 + 2]
    assert login_wait_s(shuffled, T0 + 10) == 50
    # Within the last 10 s: T0+1 .. T0+4; fewer than 3 once T0+2 is 10 s old.
    assert login_wait_s(shuffled, T0 + 10, allowed=3, window_s=10) == 2


def test_the_throttle_counts_per_address_and_a_success_clears_it():
    throttle = LoginThrottle(max_addresses=2)
    for i in range(5):
        throttle.failed("10.0.0.1", T0 + i)
    assert throttle.wait_s("10.0.0.1", T0 + 5) == 55
    assert throttle.wait_s("10.0.0.2", T0 + 5) == 0
    throttle.succeeded("10.0.0.1")
    assert throttle.wait_s("10.0.0.1", T0 + 5) == 0
    for i in range(5):
        throttle.failed("10.0.0.1", T0 + i)
    throttle.failed("10.0.0.2", T0)
    throttle.failed("10.0.0.3", T0)  # past max_addresses: the least recent goes
    assert throttle.wait_s("10.0.0.1", T0 + 5) == 0
