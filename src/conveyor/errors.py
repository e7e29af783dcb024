"""The one exception the CLI turns into a one-sentence message and a non-zero exit."""


class ConveyorError(Exception):
    """A user-facing failure: bad input, bad config or a refused operation. Its message is one sentence."""
