"""How an exercise checks the student's answer: passed, wrong (with a diagnosis), or not attempted.

Every exercise in a lesson is four cells (see CONTRIBUTING.md):

1. the skeleton the student fills in; it runs as given (a function that returns ``None``, or a
   value left as ``None``);
2. the check, ``lesson.check_something(answer)``: untouched, it prints a line containing
   "not attempted" and returns, so *Run All* goes on; a wrong answer raises :class:`WrongAnswer`
   with a diagnosis; a right one prints a line starting with ✓;
3. the solution, tagged ``solution`` and collapsed, under its own name, run through the same check;
4. nothing later depends on the student's answer.

A checker is an ordinary function decorated with :func:`checker`. Inside it, :func:`expect` states
what a right answer satisfies and :func:`require_answer` recognises an untouched skeleton::

    @checker("the inner loop")
    def check_inner_loop(inner_loop):
        got = require_answer(inner_loop(model, params, x, y, 1, 0.1), "inner_loop(...)")
        expect(set(got) == set(params), "the adapted dict needs the same keys as params")
        return "inner_loop matches metalearn_lab.maml.adapt"

The decorated checker prints the outcome. In a Jupyter kernel the printed line is a display with
metadata ``{"metalearn_lab_check": {"exercise", "status", "message"}}``, which is how
``metalearn-lab grade`` reads a student's results from an executed notebook. :meth:`Checker.run`
returns a :class:`CheckResult` without printing or raising, for tests and grading.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

#: The metadata key of a check's display output in an executed notebook.
METADATA_KEY = "metalearn_lab_check"
PASSED, WRONG, NOT_ATTEMPTED, ERROR = "passed", "wrong", "not attempted", "error"


class WrongAnswer(AssertionError):
    """The answer was tried and is wrong; the message says what is wrong and how to fix it."""


class NotAttempted(Exception):
    """The answer is still the skeleton (``None``); the message says what to fill in."""


def expect(condition: Any, message: str) -> None:
    """Raise :class:`WrongAnswer` with ``message`` unless ``condition`` holds (an ``assert`` that ``-O`` keeps).

    >>> expect(1 + 1 == 2, "arithmetic")
    >>> expect(1 + 1 == 3, "1 + 1 is 2")
    Traceback (most recent call last):
    ...
    metalearn_lab.exercises.WrongAnswer: 1 + 1 is 2
    """
    if not condition:
        raise WrongAnswer(message)


def require_answer(value: Any, what: str) -> Any:
    """Return ``value``, or raise :class:`NotAttempted` if it is ``None`` or ``...`` (an untouched skeleton).

    >>> require_answer(3, "x")
    3
    >>> require_answer(None, "my_function(...)")
    Traceback (most recent call last):
    ...
    metalearn_lab.exercises.NotAttempted: my_function(...) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    """
    if value is None or value is Ellipsis:
        raise NotAttempted(f"{what} returned None: fill in the skeleton (or, if you did, end it with a return statement)"
                           if what.endswith(")") else f"{what} is still None: fill it in")
    return value


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``status`` is "passed", "wrong", "not attempted" or "error"."""

    exercise: str
    status: str
    message: str

    @property
    def line(self) -> str:
        """The line the check prints."""
        mark = {PASSED: "✓", WRONG: "✗", NOT_ATTEMPTED: "…", ERROR: "✗"}[self.status]
        if self.status == PASSED:
            return f"{mark} {self.exercise}: {self.message}"
        return f"{mark} {self.exercise}: {self.status}. {self.message}"


class Checker:
    """A checker function wrapped so that it prints, records and classifies its outcome.

    Calling it (``check(answer)``) prints the result line; a wrong answer re-raises
    :class:`WrongAnswer` (so the student sees the diagnosis as an error), and an exception raised by
    the student's own code propagates unchanged, with its traceback. :meth:`run` does the same work
    but returns a :class:`CheckResult` and never prints or raises.
    """

    def __init__(self, function: Callable[..., str | None], exercise: str) -> None:
        self.function = function
        self.exercise = exercise
        self.name = function.__name__
        functools.update_wrapper(self, function)

    def run(self, answer: Any, *args: Any, **kwargs: Any) -> CheckResult:
        try:
            message = self.function(answer, *args, **kwargs)
        except NotAttempted as reason:
            return CheckResult(self.exercise, NOT_ATTEMPTED, str(reason))
        except WrongAnswer as reason:
            return CheckResult(self.exercise, WRONG, str(reason))
        except Exception as error:  # the student's code raised
            return CheckResult(self.exercise, ERROR, f"{type(error).__name__}: {error}")
        return CheckResult(self.exercise, PASSED, message or "right")

    def __call__(self, answer: Any, *args: Any, **kwargs: Any) -> None:
        try:
            message = self.function(answer, *args, **kwargs)
        except NotAttempted as reason:
            _emit(CheckResult(self.exercise, NOT_ATTEMPTED, str(reason)))
            return None
        except WrongAnswer as reason:
            _emit(CheckResult(self.exercise, WRONG, str(reason)))
            raise WrongAnswer(str(reason)) from None
        _emit(CheckResult(self.exercise, PASSED, message or "right"))
        return None

    def __repr__(self) -> str:
        return f"<checker {self.name}: {self.exercise}>"


def checker(exercise: str) -> Callable[[Callable[..., str | None]], Checker]:
    """Decorate a checker function; ``exercise`` names the exercise in printed lines and grade tables.

    The function takes the student's answer, raises :class:`WrongAnswer` (via :func:`expect`) or
    :class:`NotAttempted` (via :func:`require_answer`), and returns the success message.

    >>> @checker("doubling")
    ... def check_double(double):
    ...     got = require_answer(double(2), "double(2)")
    ...     expect(got == 4, f"double(2) should be 4, got {got}")
    ...     return "double works"
    >>> check_double(lambda x: 2 * x)
    ✓ doubling: double works
    >>> check_double(lambda x: None)
    … doubling: not attempted. double(2) returned None: fill in the skeleton (or, if you did, end it with a return statement)
    >>> check_double.run(lambda x: x + 1).status
    'wrong'
    """

    def wrap(function: Callable[..., str | None]) -> Checker:
        return Checker(function, exercise)

    return wrap


def checkers_of(module: Any) -> list[Checker]:
    """The checkers defined in a lesson's companion module, in the order they appear there."""
    found = [value for value in vars(module).values() if isinstance(value, Checker)]
    return sorted(found, key=lambda c: c.function.__code__.co_firstlineno)


def _emit(result: CheckResult) -> None:
    """Print the result line; in a Jupyter kernel, as a display carrying the result as metadata."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is installed with the lab extra
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display({"text/plain": result.line}, raw=True,
                metadata={METADATA_KEY: {"exercise": result.exercise, "status": result.status, "message": result.message}})
    else:
        print(result.line)
