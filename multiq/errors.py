"""User-facing errors: each message says what is wrong and how to fix it."""


class MultiqError(Exception):
    """Base class for errors caused by user input (config, task ids, files)."""


class ConfigError(MultiqError, ValueError):
    """A config key or value is invalid."""


class TaskError(MultiqError, ValueError):
    """A task cannot be built or is not supported by the agent."""


class CheckpointError(MultiqError):
    """A checkpoint or saved model is missing, corrupt or incompatible."""


class RunDirError(MultiqError):
    """A run folder cannot be used: locked by another run, unwritable, full, or unsafe."""


class NonFiniteError(MultiqError):
    """Training produced or received a NaN or infinity (loss, gradient, observation, reward)."""


class EnvError(MultiqError):
    """An environment raised while training; the message names the task and the env step."""


def is_out_of_memory(error: BaseException) -> bool:
    """True for an allocation failure: MemoryError, or torch's host or GPU out-of-memory."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "not enough memory" in text)
    )
