"""Shared plumbing of the scripts: clear one-line errors and a non-zero exit, never a traceback."""

import sys

# Errors that mean "bad input": the message says what was wrong and what was received.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)


class CommandLineError(Exception):
    """Raised by the library for input that a user can correct; exits with status 2."""


def run_cli(main, argv=None):
    """Call `main(argv)`; print bad-input errors on one line and exit 2 instead of a traceback."""
    try:
        status = main(argv)
    except (CommandLineError, *USER_ERRORS) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
