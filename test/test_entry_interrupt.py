"""Ctrl-C during a node executable's start-up: an interrupt wrapped by an extension loader still counts as Ctrl-C."""
from dytrack_ros.ros.entry import _caused_by_interrupt


def _raise_wrapped(cause: BaseException) -> ImportError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise ImportError("initialization failed") from inner
    except ImportError as exc:
        return exc


def test_import_error_caused_by_ctrl_c_is_recognised():
    assert _caused_by_interrupt(_raise_wrapped(KeyboardInterrupt()))


def test_real_import_errors_are_not_taken_for_ctrl_c():
    assert not _caused_by_interrupt(_raise_wrapped(OSError("libfoo.so: cannot open shared object file")))
    assert not _caused_by_interrupt(ImportError("no module named x"))


def test_a_cycle_in_the_exception_chain_ends():
    a, b = ImportError("a"), ImportError("b")
    a.__context__, b.__context__ = b, a
    assert not _caused_by_interrupt(a)
