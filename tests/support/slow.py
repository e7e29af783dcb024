"""A classifier that answers correctly but slowly: the latency gate must stop it.

It is not a HistGradientBoosting model, so serving cannot take the fast path around its slow predict_proba."""

import time

from sklearn.linear_model import LogisticRegression

DELAY_SECONDS = 0.005


class SlowClassifier(LogisticRegression):
    def predict_proba(self, X):
        time.sleep(DELAY_SECONDS)
        return super().predict_proba(X)
