"""Errors a user can cause, reported as one line with exit status 2."""

from __future__ import annotations

from typing import Any, Iterable


class UserError(Exception):
    """Bad input: names the field, the offending value and what is allowed.

    The command-line entry points catch it, print ``str(error)`` on one line to
    stderr and exit with status 2 before anything is written to a store.
    """

    def __init__(self, field: str, value: Any = None, allowed: str | Iterable[str] | None = None,
                 message: str | None = None):
        self.field = field
        self.value = value
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        text = message or f"invalid value {value!r}"
        if message and value is not None and str(value) not in message:
            text = f"{message}: {value}"
        parts = [f"{field}: {text}"]
        if allowed:
            parts.append(f"allowed: {allowed}")
        super().__init__("; ".join(parts))


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        self.step = step
        self.loss = loss
        super().__init__(f"loss became {loss} at step {step}")
