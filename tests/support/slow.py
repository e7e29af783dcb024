"""A classifier that answers correctly but slowly: the latency gate must stop it."""

import time

from sklearn.ensemble import HistGradientBoostingClassifier

DELAY_SECONDS = 0.05


class SlowClassifier(HistGradientBoostingClassifier):
    def predict_proba(self, X):
        time.sleep(DELAY_SECONDS)
        return super().predict_proba(X)
