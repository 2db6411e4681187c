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
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split()) or type(error).__name__


def run_cli(main, argv=None):
    """Call `main(argv)`; print errors on one line and exit non-zero instead of a traceback."""
    try:
        status = main(argv)
    except USER_ERRORS as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except ReportedError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(error.exit_code)
    except OSError as error:  # a full disk, an I/O error: not the input's fault, but explained
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
