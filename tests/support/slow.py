"""Classifiers that answer correctly but slowly: the latency gate and the canary analysis must stop them.

None is a HistGradientBoosting model, so serving cannot take the fast path around their slow predict_proba."""

import time

from sklearn.linear_model import LogisticRegression

DELAY_SECONDS = 0.005


class SlowClassifier(LogisticRegression):
    def predict_proba(self, X):
        time.sleep(DELAY_SECONDS)
        return super().predict_proba(X)


class StallingClassifier(LogisticRegression):
    """A canary fault: right answers, each after STALL_SECONDS (far beyond the canary's p95 latency SLO) once the
    server's warm-up calls are past, so that it loads and turns ready as a bad release would."""

    STALL_SECONDS = 0.3
    AFTER_CALLS = 200

    def predict_proba(self, X):
        calls = self.__dict__.get("_calls", 0) + 1
        self.__dict__["_calls"] = calls
        if calls > self.AFTER_CALLS:
            time.sleep(self.STALL_SECONDS)
        return super().predict_proba(X)


BUSY_SECONDS = 0.003


class BusyClassifier(LogisticRegression):
    """Slow the way a big model is slow: it burns CPU (BUSY_SECONDS of this thread's CPU time) on every call, so a
    gate on CPU time must stop it however quiet or busy the machine is."""

    def predict_proba(self, X):
        until = time.thread_time() + BUSY_SECONDS
        while time.thread_time() < until:
            pass
        return super().predict_proba(X)
