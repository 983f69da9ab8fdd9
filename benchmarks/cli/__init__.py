"""python -m benchmarks {list-models, run, sweep, perf, report, sample, encode}: the one place that
wires the stages together. parser.py holds the grammar; run.py, sweep.py and use.py the commands."""
import sys
import warnings
from pathlib import Path

from ..core.errors import USER_ERRORS, UserError, filesystem_message
from .parser import build_parser
from .run import cmd_list_models, cmd_run
from .sweep import cmd_sweep
from .use import cmd_encode, cmd_perf, cmd_report, cmd_sample


def _one_line_warnings():
    """The project's own warnings (a damaged or unwritable cache entry) print as one `warning: ...`
    line, like its other messages; other libraries' warnings keep Python's format."""
    root, python_format = Path(__file__).resolve().parents[2], warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        try:
            ours = Path(filename).resolve().relative_to(root).parts[0] in ("benchmarks", "metrics", "models")
        except ValueError:  # outside the project
            ours = False
        return f"warning: {message}\n" if ours else python_format(message, category, filename, lineno, line)

    warnings.formatwarning = fmt


def main(argv=None):
    args = build_parser().parse_args(argv)
    _one_line_warnings()
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        from ..plugins import load_plugin

        import models  # noqa: F401 - registers the built-in models before plugins add theirs
        for spec in getattr(args, "plugin", []):
            load_plugin(spec)
        commands = {"list-models": cmd_list_models, "run": cmd_run, "sweep": cmd_sweep, "report": cmd_report,
                    "perf": cmd_perf, "sample": cmd_sample, "encode": cmd_encode}
        return commands[args.command](args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return UserError.exit_code
    except OSError as e:  # an unwritable, read-only or full output folder is the user's to fix
        print(f"error: {filesystem_message(e)}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs and the last checkpoint of the current run are kept; "
              "run the same command again to resume.", file=sys.stderr)
        return 130
