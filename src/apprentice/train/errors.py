"""The training package's one exception type."""


class TrainError(Exception):
    """Training cannot start or continue; the message names the flag/file and what to do."""
