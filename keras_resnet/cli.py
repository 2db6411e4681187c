"""Shared plumbing of the scripts: clear one-line errors and a non-zero exit, never a traceback."""

import sys

# Errors that mean "bad input": the message says what was wrong and what was received.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


class ReportedError(RuntimeError):
    """A failure the library explains in its message (dataset offline, training diverged)."""

    exit_code = 1


def run_cli(main, argv=None):
    """Call `main(argv)`; print errors on one line and exit non-zero instead of a traceback.

    Bad input exits 2, a `ReportedError` with its `exit_code`, Ctrl-C with 130.
    """
    try:
        status = main(argv)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except ReportedError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
