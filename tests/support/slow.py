"""Classifiers that answer correctly but slowly: the latency gate must stop them.

Neither is a HistGradientBoosting model, so serving cannot take the fast path around their slow predict_proba."""

import time

from sklearn.linear_model import LogisticRegression

DELAY_SECONDS = 0.005


class SlowClassifier(LogisticRegression):
    def predict_proba(self, X):
        time.sleep(DELAY_SECONDS)
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
