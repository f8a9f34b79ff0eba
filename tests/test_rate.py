from dsrl_real.envs.rate import RateKeeper


class FakeClock:
    """A clock that advances only when the keeper sleeps or the test says work happened."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def work(self, seconds):
        self.now += seconds




def test_steady_periods_when_work_fits():
    clock = FakeClock()
    keeper = RateKeeper(5.0, clock=clock, sleep=clock.sleep)
    keeper.start()
    for work in (0.05, 0.1, 0.15):
        clock.work(work)
        assert keeper.wait() is True
    assert keeper.stats.overruns == 0
    assert [round(p, 9) for p in keeper.stats.periods_s] == [0.2, 0.2, 0.2]
    assert abs(clock.now - 0.6) < 1e-9


def test_overrun_is_counted_and_schedule_restarts_from_now():
    clock = FakeClock()
    keeper = RateKeeper(5.0, clock=clock, sleep=clock.sleep)
    keeper.start()
    clock.work(0.35)  # overran the 0.2 s period
    assert keeper.wait() is False
    assert keeper.stats.overruns == 1
    clock.work(0.05)
    assert keeper.wait() is True
    assert abs(clock.now - 0.55) < 1e-9  # next deadline was 0.35 + 0.2, not 0.4
    assert [round(p, 9) for p in keeper.stats.periods_s] == [0.35, 0.2]
    assert abs(keeper.stats.jitter_ms(0.2, 1.0) - 150.0) < 1e-6


def test_rejects_non_positive_rate():
    import pytest

    with pytest.raises(ValueError, match="Control rate must be positive"):
        RateKeeper(0)
