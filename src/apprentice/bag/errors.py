"""The bag package's one exception type."""


class BagError(RuntimeError):
    """A bag cannot be read, written or converted; the message names the bag/topic and what to do."""
