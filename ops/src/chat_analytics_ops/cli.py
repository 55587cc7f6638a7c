"""``chat-analytics``: the operator's command line for the chat analytics pipeline.

Every command finds its resources through the stack's CloudFormation outputs (``--stack-name`` or
``--stage``), or through explicit ``--queue-url``-style overrides, and works the same against AWS
and against the local moto stack (``--endpoint-url``). Failures end with one line on stderr and a
non-zero status (1, or 3 for "nothing to do": an empty dead-letter queue); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chat_analytics_ops import __version__, check, compact, credentials, dlq, erase
from chat_analytics_ops.engines import AthenaReportEngine, DuckDBReportEngine, DynamoDBReportEngine, ReportEngine, StackContext
from chat_analytics_ops.errors import EXIT_USAGE, OpsError, describe
from chat_analytics_ops.outputs import (
    DEAD_LETTER_QUEUE_URL,
    DEFAULT_STAGE,
    EVENTS_QUEUE_URL,
    EVENTS_TABLE_NAME,
    PRODUCER_SECRET_NAME,
    AwsContext,
    stack_name_for,
)
from chat_analytics_ops.render import plural, render_text
from chat_analytics_ops.report_model import DEFAULT_DAYS, day_range, default_range, parse_day, today_utc
from chat_analytics_ops.table_engine import Progress

PROG = "chat-analytics"
INSPECT_DEFAULT_MAX = 50
DEBUG_ENV = "CHAT_ANALYTICS_DEBUG"

Handler = Callable[[argparse.Namespace, AwsContext], int]


def _common_options(defaults: bool) -> argparse.ArgumentParser:
    """The stack and endpoint options, accepted before or after the command.

    The top-level parser holds the real defaults; the subcommands' copies default to SUPPRESS so
    that an option given before the command is not overwritten by the subcommand's default.
    """
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("stack and endpoint")

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    group.add_argument("--stack-name", default=default(None), help=f"CloudFormation stack (default {stack_name_for(DEFAULT_STAGE)})")
    group.add_argument("--stage", default=default(None), help="shortcut for --stack-name ChatAnalytics-STAGE")
    group.add_argument("--region", default=default(None), help="AWS region (default: AWS_REGION / your profile's)")
    group.add_argument(
        "--profile", default=default(None), help="named AWS profile for credentials and region (default: AWS_PROFILE / the default chain)"
    )
    group.add_argument("--endpoint-url", default=default(None), help="e.g. the local moto stack, http://127.0.0.1:PORT")
    group.add_argument("--queue-url", default=default(None), help="events queue URL instead of the EventsQueueUrl output")
    group.add_argument("--dlq-url", default=default(None), help="dead-letter queue URL instead of DeadLetterQueueUrl")
    group.add_argument("--table-name", default=default(None), help="table name instead of EventsTableName")
    group.add_argument("--secret-name", default=default(None), help="secret name instead of ProducerSecretName")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    common = _common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate the chat analytics pipeline: check a deployed stack, dead-letter queue, reports, Worker credentials.",
        parents=[_common_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    chk = commands.add_parser(
        "check", parents=[common], help="prove a deployed stack works: canary, DLQ, alarms and their notification path"
    )
    chk.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=check.DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the canary's item (default {check.DEFAULT_TIMEOUT_S:g})",
    )
    chk.add_argument(
        "--notify-test", action="store_true", help="also set one alarm to ALARM and back (mails the alarm topic's subscribers)"
    )
    chk.add_argument("--json", action="store_true", help="machine-readable output")
    chk.set_defaults(handler=cmd_check)

    dlq_parser = commands.add_parser("dlq", help="inspect or redrive the dead-letter queue")
    dlq_commands = dlq_parser.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    inspect = dlq_commands.add_parser("inspect", parents=[common], help="show DLQ messages without removing them")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument("--show-text", action="store_true", help="show the users' questions in the excerpts (hidden by default)")
    inspect.add_argument("--max", type=_positive, default=INSPECT_DEFAULT_MAX, help=f"at most N messages (default {INSPECT_DEFAULT_MAX})")
    inspect.set_defaults(handler=cmd_dlq_inspect)
    redrive = dlq_commands.add_parser("redrive", parents=[common], help="move DLQ messages back to the events queue")
    redrive.add_argument("--dry-run", action="store_true", help="list what would move; move nothing")
    redrive.add_argument("--max", type=_positive, default=None, help="move at most N messages (default: all)")
    redrive.add_argument(
        "--method",
        choices=("auto", "move-task", "manual"),
        default="auto",
        help="move-task: SQS's StartMessageMoveTask; manual: receive, send, delete; auto: move-task when moving everything, all valid and supported",
    )
    redrive.add_argument(
        "--include-invalid",
        action="store_true",
        help="also move messages that fail the event contract (by default they stay: they would dead-letter again)",
    )
    redrive.add_argument("--json", action="store_true", help="machine-readable output")
    redrive.set_defaults(handler=cmd_dlq_redrive)

    rep = commands.add_parser("report", parents=[common], help="questions and match quality for a date range (default: the last 7 days)")
    rep.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="YYYY-MM-DD",
        help=f"first day (UTC; default {DEFAULT_DAYS - 1} days before --to)",
    )
    rep.add_argument("--to", dest="end", default=None, metavar="YYYY-MM-DD", help="last day (UTC), inclusive (default today)")
    rep.add_argument(
        "--days",
        type=_positive,
        default=None,
        metavar="N",
        help=f"the last N days up to --to (default {DEFAULT_DAYS}; instead of --from)",
    )
    rep.add_argument(
        "--engine",
        choices=("dynamodb", "duckdb", "athena"),
        default="dynamodb",
        help="dynamodb: the table's byDay index (small stacks, up to a year); athena: the event lake's SQL in AWS;"
        " duckdb: the same SQL on this machine over the lake's files (downloaded to --cache, or --lake DIR)",
    )
    rep.add_argument(
        "--lake", type=Path, metavar="DIR", default=None, help="duckdb: read lake files from DIR (requests/dt=*/...) instead of the bucket"
    )
    rep.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        default=None,
        help="duckdb: where the bucket's files are copied (default ~/.cache/chat-analytics/<stack>)",
    )
    rep.add_argument(
        "--query-timeout",
        type=_positive_seconds,
        default=300.0,
        metavar="SECONDS",
        help="athena: stop the query after this long (default 300)",
    )
    rep.add_argument("--top", type=_non_negative, default=10, help="how many unmatched questions to list (default 10)")
    rep.add_argument("--json", action="store_true", help="machine-readable output")
    rep.add_argument("--chart", type=Path, metavar="FILE.png", help="also draw match types per day and the score distribution")
    rep.add_argument("--progress", choices=("auto", "always", "never"), default="auto", help="progress on stderr (auto: on a terminal)")
    rep.add_argument("--page-size", type=_positive, default=None, help=argparse.SUPPRESS)
    rep.set_defaults(handler=cmd_report)

    cred = commands.add_parser("credentials", help="the edge Worker's credentials from the stack's secret")
    cred_commands = cred.add_subparsers(dest="credentials_command", metavar="ACTION", required=True)
    worker_env = cred_commands.add_parser("worker-env", parents=[common], help="print the four Worker variables")
    worker_env.add_argument("--show", action="store_true", help="print the key unmasked (e.g. > edge/.dev.vars)")
    worker_env.add_argument("--json", action="store_true", help="machine-readable output")
    worker_env.set_defaults(handler=cmd_worker_env)
    push = cred_commands.add_parser("push-to-wrangler", parents=[common], help="the four as one wrangler secret bulk (one Worker version)")
    push.add_argument("--dry-run", action="store_true", help="print the command (values masked); run nothing")
    push.add_argument(
        "--config", type=Path, default=credentials.DEFAULT_WRANGLER_CONFIG, help="wrangler config (default edge/wrangler.jsonc)"
    )
    push.add_argument("--env", default=None, help="wrangler environment (--env)")
    push.set_defaults(handler=cmd_push_to_wrangler)
    erase.register(commands, common)  # erase: erase.py
    compact.register(commands, common)  # compact: compact.py
    return parser


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def context_from(args: argparse.Namespace) -> AwsContext:
    """The AWS context the options describe."""
    if args.stack_name and args.stage and args.stack_name != stack_name_for(args.stage):
        raise OpsError(f"--stack-name {args.stack_name} and --stage {args.stage} disagree: give one of them")
    stack_name = args.stack_name or stack_name_for(args.stage or DEFAULT_STAGE)
    overrides = {
        EVENTS_QUEUE_URL: args.queue_url,
        DEAD_LETTER_QUEUE_URL: args.dlq_url,
        EVENTS_TABLE_NAME: args.table_name,
        PRODUCER_SECRET_NAME: args.secret_name,
    }
    return AwsContext(
        stack_name=stack_name,
        region=args.region,
        endpoint_url=args.endpoint_url,
        profile=args.profile,
        overrides={key: value for key, value in overrides.items() if value},
    )


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _letter_lines(index: int, letter: dlq.DeadLetter, *, show_text: bool = False) -> list[str]:
    kind = letter.event_type or "?"
    body = dlq.excerpt(letter.body, show_text=True) if show_text else letter.excerpt
    return [
        f"#{index} {letter.message_id}  {kind}  receives {letter.receive_count}  age {format_age(letter.age_s)}",
        f"    group {letter.group_id or '-'}  dedup {letter.deduplication_id or '-'}",
        f"    body  {body}",
        f"    error {letter.error or 'none found: valid against the schema (a store or processor failure: see the processor logs)'}",
    ]


def cmd_dlq_inspect(args: argparse.Namespace, ctx: AwsContext) -> int:
    url = ctx.output(DEAD_LETTER_QUEUE_URL)
    seen = dlq.inspect(ctx.client("sqs"), url, args.max)
    if not seen.letters:
        # An empty DLQ (exit 3) or its messages in flight (1): --json still prints the object, with no
        # messages; the one line on stderr says why.
        if args.json:
            _print_json({"queueUrl": url, "count": 0, "approximateNumberOfMessages": seen.approximate_count, "messages": []})
        seen.raise_if_nothing()
    letters = seen.letters
    unseen = seen.missing if len(letters) < args.max else 0
    if args.json:
        messages = [letter.to_json() for letter in letters]
        if args.show_text:
            for message, letter in zip(messages, letters, strict=True):
                message["excerpt"] = dlq.excerpt(letter.body, show_text=True)
        _print_json({"queueUrl": url, "count": len(letters), "approximateNumberOfMessages": seen.approximate_count, "messages": messages})
    else:
        print(f"{plural(len(letters), 'message')} in {url.rsplit('/', 1)[-1]} (left in the queue; this look counts one receive):")
        for index, letter in enumerate(letters, start=1):
            print("\n".join(_letter_lines(index, letter, show_text=args.show_text)))
        invalid = sum(1 for letter in letters if letter.error)
        if invalid:
            print(
                f"{invalid} of {len(letters)} {'fails' if invalid == 1 else 'fail'} the event schema:"
                f" fix the producer; redriving {'it' if invalid == 1 else 'them'} would dead-letter {'it' if invalid == 1 else 'them'} again."
            )
        print(dlq.REJECTIONS_HISTORY)
    if unseen:
        print(
            f"{PROG}: listed {len(letters)} of about {plural(seen.approximate_count, 'message')}:"
            f" {unseen} could not be received (a FIFO group holding more than 10, or messages arriving or leaving meanwhile)",
            file=sys.stderr,
        )
    return 0


def cmd_check(args: argparse.Namespace, ctx: AwsContext) -> int:
    result = check.run_checks(ctx, timeout_s=args.timeout, notify_test=args.notify_test)
    if args.json:
        _print_json(result.to_json())
    else:
        print(check.render_text(result))
    return 0 if result.ok else 1


def _redrive_line(letter: dlq.DeadLetter) -> str:
    return f"  {letter.message_id}  {letter.event_type or '?'}  group {letter.group_id}  dedup {letter.deduplication_id}"


def cmd_dlq_redrive(args: argparse.Namespace, ctx: AwsContext) -> int:
    dlq_url = ctx.output(DEAD_LETTER_QUEUE_URL)
    events_url = ctx.output(EVENTS_QUEUE_URL)
    result = dlq.redrive(
        ctx.client("sqs"),
        dlq_url,
        events_url,
        limit=args.max,
        dry_run=args.dry_run,
        method=args.method,
        include_invalid=args.include_invalid,
    )
    if args.json:
        _print_json(result.to_json())
    elif result.method == "move-task":
        print(f"started SQS message move task for about {plural(result.approximate_count, 'message')} to {events_url}")
        print(f"task handle: {result.task_handle}  (follow with: aws sqs list-message-move-tasks --source-arn <DLQ ARN>)")
    else:
        verb = "would move" if result.dry_run else "moved"
        print(f"{verb} {plural(len(result.moved), 'message')} to {events_url.rsplit('/', 1)[-1]}:")
        for letter in result.moved:
            note = f"  (fails the schema: {letter.error})" if letter.error else ""
            print(_redrive_line(letter) + note)
        stay = "would leave" if result.dry_run else "left"
        if result.left:
            them = "it" if len(result.left) == 1 else "them"
            print(
                f"{stay} {plural(len(result.left), 'message')} in the DLQ that {'fails' if len(result.left) == 1 else 'fail'}"
                f" the event contract (redriven, {'it' if len(result.left) == 1 else 'they'} would dead-letter again;"
                f" fix the producer, or pass --include-invalid to move {them} anyway):"
            )
            for letter in result.left:
                print(f"{_redrive_line(letter)}  reason: {letter.error}")
        if result.held_back:
            print(
                f"{stay} {plural(len(result.held_back), 'message')} in the DLQ behind an earlier message of {'its' if len(result.held_back) == 1 else 'their'}"
                " group that stays (moved, it would overtake it):"
            )
            for letter in result.held_back:
                print(_redrive_line(letter))
    for letter, reason in result.failed:
        print(f"{PROG}: not moved: {letter.message_id}: {reason}", file=sys.stderr)
    if result.failed:
        print(f"{PROG}: stopped there: what was not moved stays in the DLQ in its order; rerunning is safe", file=sys.stderr)
    return 1 if result.failed else 0


def cmd_report(args: argparse.Namespace, ctx: AwsContext) -> int:
    from chat_analytics_ops.chart import check_chart_path

    start = parse_day(args.start, "--from") if args.start is not None else None
    end = parse_day(args.end, "--to") if args.end is not None else None
    if args.days is not None:
        if start is not None:
            raise OpsError("give --from or --days, not both")
        last = end or today_utc()
        start, end = last - timedelta(days=args.days - 1), last
    engine = report_engine(args, ctx)
    days = day_range(*default_range(start, end), max_days=engine.max_days)
    if args.chart:
        check_chart_path(args.chart)
    result = engine.report(days, top=args.top, stack_name=ctx.stack_name)
    if args.chart:
        from chat_analytics_ops.chart import write_chart

        write_chart(result, args.chart)
    if args.json:
        payload = result.to_json()
        if args.chart:
            payload["chart"] = str(args.chart)
        _print_json(payload)
    else:
        print(render_text(result))
        if args.chart:
            print(f"\nchart: {args.chart}")
    return 0


def report_engine(args: argparse.Namespace, ctx: StackContext) -> ReportEngine:
    """The engine ``--engine`` names (``engines.py``), over the stack's table or lake, or ``--lake DIR``.
    It reads nothing until it reports."""
    if args.engine != "duckdb" and (args.lake or args.cache):
        raise OpsError(f"--lake and --cache are for --engine duckdb, not {args.engine}")
    if args.engine == "dynamodb":
        return DynamoDBReportEngine(ctx, page_size=args.page_size, progress=Progress(args.progress))
    if args.engine == "athena":
        return AthenaReportEngine(ctx, timeout_s=args.query_timeout)
    if args.lake is not None:
        if not args.lake.is_dir():
            raise OpsError(f"--lake {args.lake}: not a directory")
        return DuckDBReportEngine(args.lake)
    return DuckDBReportEngine(args.cache or Path.home() / ".cache" / "chat-analytics" / ctx.stack_name, ctx=ctx)


def cmd_worker_env(args: argparse.Namespace, ctx: AwsContext) -> int:
    values = credentials.read_worker_env(ctx.client("secretsmanager"), ctx.output(PRODUCER_SECRET_NAME))
    if args.json:
        _print_json({name: value if args.show else credentials.mask(name, value) for name, value in values.items()})
    else:
        print(credentials.render_env(values, show=args.show))
    return 0


def cmd_push_to_wrangler(args: argparse.Namespace, ctx: AwsContext) -> int:
    values = credentials.read_worker_env(ctx.client("secretsmanager"), ctx.output(PRODUCER_SECRET_NAME))
    pushed = credentials.push_to_wrangler(values, config=args.config, env=args.env, dry_run=args.dry_run, echo=print)
    if not args.dry_run:
        print(f"put {pushed} secrets with one wrangler secret bulk (one new Worker version); no redeploy needed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, and turn every foreseeable failure into one line and an exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed usage and its one-line error (or --help)
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    try:
        return handler(args, context_from(args))
    except OpsError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return error.exit_code
    except (ClientError, BotoCoreError) as error:
        print(f"{PROG}: {describe(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `chat-analytics report | head`
        return 0
    except Exception as error:  # a bug or an environment nobody foresaw: still one line, unless debugging
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{PROG}: unexpected error: {describe(error)} (set {DEBUG_ENV}=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
