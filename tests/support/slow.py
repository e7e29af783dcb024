"""A classifier that answers correctly but slowly: the latency gate must stop it.

It is not a HistGradientBoosting model, so serving cannot take the fast path around its slow predict_proba."""

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
