"""`webtext`: one console script for every stage and training command (docs/design.md fixes the verbs).

Beam stages take their own flags first; everything argparse does not recognise is handed to Beam as
pipeline options (`--runner`, `--direct_num_workers`, `--temp_location`, ...). Bad input ends the
command with one line on stderr naming the file and the problem, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from corpus.command_line import interrupted, positive_int
from corpus.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    """Every verb's parser, built by the module that owns the verb (none of them imports Beam or torch
    before it runs: `webtext --help` answers at once)."""
    from pipelines.chain import stages

    parser = argparse.ArgumentParser(prog="webtext", allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show Beam's own logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in stages():
        stage.add_parser(sub)
    for add in _commands():
        add(sub)
    for verb_parser in sub.choices.values():
        verb_parser.set_defaults(parser=verb_parser)  # errors print the verb's usage, not the top level
    return parser


def configure_logging(verbose: bool) -> None:
    """Our progress lines at INFO; Beam (which logs through the root logger too) only when verbose."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for name in ("webtext", "pipelines", "corpus"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not verbose:
        # Beam logs a traceback for every failed bundle before raising (the CLI reports the cause itself),
        # and some of its modules log through the root logger.
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: "apache_beam" not in record.pathname)


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", allow_abbrev=False, help="run the whole chain on the embedded sample")
    p.add_argument("--out", default="build/demo", metavar="DIR")
    p.add_argument("--train-steps", type=positive_int, default=300, help="steps of the tiny model")
    p.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace, beam_args: list[str]) -> int:
    from webtext.demo import SAMPLE, demo_steps

    print(f"demo: build (links .. ngrams) -> verify -> overlap -> train -> eval -> finetune, on {SAMPLE}\n")
    for step in demo_steps(args.out, args.train_steps):
        code = run_step(step, [] if step[0] in NO_BEAM_OPTIONS else beam_args)
        if code:
            return code
        print()
    return 0


def run_step(argv: list[str], beam_args: list[str]) -> int:
    """Run one `webtext` command line in this process."""
    step_args = build_parser().parse_args(argv)
    return step_args.handler(step_args, beam_args)


# The verbs besides the chain's stages, each added by the module that owns it.
def _commands() -> tuple[Callable, ...]:
    from pipelines.build import add_build_parser
    from pipelines.links.reddit import add_reddit_parser
    from pipelines.ngrams.overlap import add_overlap_parser
    from pipelines.release.verify import add_verify_parser
    from training.cli import add_export_parser, add_train_parser
    from training.cli_eval import add_eval_parser
    from training.cli_finetune import add_finetune_parser

    return (
        add_reddit_parser,
        add_verify_parser,
        add_overlap_parser,
        add_build_parser,
        add_train_parser,
        add_export_parser,
        add_eval_parser,
        add_finetune_parser,
        add_demo_parser,
    )


_BEAM_SUFFIX = re.compile(r" \[while running '[^']*'\]")
_WRAPPED_INPUT_ERROR = re.compile(r"(?:DumpError|InputError|RedditCredentialsError): (.+)")
# Verbs that run no Beam pipeline: every argument they do not know is an error (refused here, once, before
# any handler runs). The training verbs also end the process normally (see `run`).
TRAINING_VERBS = {"train", "export", "eval", "finetune"}
NO_BEAM_OPTIONS = {"reddit", "verify", "overlap", *TRAINING_VERBS}
RESUME_HINTS = {
    "stage": "nothing was published; run the same command again",
    "build": "run the same command again: complete stages are kept, the interrupted one starts over",
    "demo": "run it again to start over",
}


def user_error(exc: BaseException) -> str | None:
    """The one-line message of an input error, also when Beam re-raised it from a worker as text."""
    if isinstance(exc, InputError):
        return _BEAM_SUFFIX.sub("", str(exc)).strip()
    match = _WRAPPED_INPUT_ERROR.search(str(exc))
    return _BEAM_SUFFIX.sub("", match.group(1)).strip() if match else None


def unknown_beam_options(args: list[str]) -> list[str]:
    """The arguments that no registered Beam `PipelineOptions` class declares (Beam itself would only log
    and discard them, so a misspelt or misplaced flag would silently change nothing)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    pending = [PipelineOptions]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # A subclass re-declaring its parent's option raises; that option is known already.
        with contextlib.suppress(argparse.ArgumentError):
            cls._add_argparse_args(parser)  # the one way Beam exposes its option names
    return parser.parse_known_args(args)[1]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    configure_logging(args.verbose)
    unknown = extra if args.command in NO_BEAM_OPTIONS else unknown_beam_options(extra)
    if unknown:
        args.parser.error(
            f"unrecognized arguments: {' '.join(unknown)} (not a flag of {args.command}, nor a Beam option)"
        )
    handler: Callable[[argparse.Namespace, list[str]], int] = args.handler
    try:
        return handler(args, extra)
    except KeyboardInterrupt:
        return interrupted(args.command, RESUME_HINTS.get(args.command, RESUME_HINTS["stage"]))
    except Exception as exc:  # the CLI boundary: input errors become one line
        message = user_error(exc)
        if message is None:
            raise
        print(f"webtext {args.command}: error: {message}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The console script. A Beam verb's work is done and its summary printed when `main` returns; the
    process then ends without interpreter teardown. Native thread pools that Beam and Arrow start (Arrow's
    Parquet reader threads, gRPC's) are not joined at teardown, and one still alive when its C++ runtime
    is destroyed aborts the process ("terminate called without an active exception", exit -6) after a
    successful run. Collecting garbage first releases every Arrow reader while Arrow is alive; `os._exit`
    then skips the teardown itself. Training verbs exit normally: their loader workers and process
    groups are cleaned up by their own exit handlers."""
    argv = sys.argv[1:]
    code = main(argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb in TRAINING_VERBS:
        sys.exit(code)
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
