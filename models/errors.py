"""The one exception models raise for input they cannot take.

A plain ValueError, so models are usable without the harness; the harness reports it like its
own config errors (one message, exit code 2, no traceback)."""


class ModelConfigError(ValueError):
    """An unknown model, a model option it does not take, or data it cannot model. The message
    names the thing and the fix."""
