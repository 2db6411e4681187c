"""Shared plumbing of the scripts: clear one-line errors and a non-zero exit, never a traceback.

Exit codes: 2 for bad input (a value, a path, a file that cannot be used), 1 for failures the
library explains (`ReportedError`: training diverged, a disk full), 130 for Ctrl-C.
"""

import argparse
import sys

# Errors that mean "bad input": the message says what was wrong and what was received.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)

class ReportedError(RuntimeError):
    """A failure the library explains in its message (dataset offline, training diverged)."""

    exit_code = 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the scripts' conventions: raw-text descriptions, and a bad flag reported on one
    line (`error: argument --epochs: invalid integer value: 'x'`) with exit 2, not the usage block."""

    def __init__(self, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def one_line(error):
    """The error's message on one line (OSErrors as 'reason: path')."""
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    else:
        text = str(error)
    return " ".join(text.split()) or type(error).__name__


def exit_code(error):
    """The exit status for `error`: 2 bad input, a ReportedError's own, 1 other OS errors (a full disk);
    None for errors that are bugs (they keep their traceback)."""
    if isinstance(error, USER_ERRORS):
        return 2
    if isinstance(error, ReportedError):
        return error.exit_code
    if isinstance(error, OSError):
        return 1
    return None


def run_cli(main, argv=None):
    """Call `main(argv)`; print errors on one line and exit non-zero instead of a traceback."""
    try:
        status = main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        code = exit_code(error)
        if code is None:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(code)
    sys.exit(status or 0)
