"""Errors a user can act on. Stages print them as one line instead of a traceback."""


class UserError(Exception):
    """Something the user must fix (a param, the data, a weights file)."""


class ParamError(UserError):
    """A value in params.yaml is missing or invalid; the message names the key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"params.yaml: {key}: {problem}")
        self.key = key


class DataError(UserError):
    """The dataset cannot be used as it is (no images, a class missing from train, ...)."""


class WeightsError(UserError):
    """Pretrained weights could not be obtained or do not fit the backbone."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception in one short line, for messages that quote a library's error (those
    can run to pages: TensorFlow's and h5py's carry whole stacks)."""
    return str(e).splitlines()[0][:limit] if str(e) else type(e).__name__
