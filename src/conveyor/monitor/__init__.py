"""Live drift, performance and fairness from the prediction log and feedback: `conveyor monitor`."""
