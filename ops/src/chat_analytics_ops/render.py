"""The report as text (``chat-analytics report`` without ``--json``), and the small formatting helpers
the other commands share (``plural``, ``format_ms``)."""

from __future__ import annotations

from chat_analytics_ops.report_model import REJECTED_NOT_IN_TABLE, REJECTED_TABLE, Distribution, EngineInfo, RejectedCounts, Report


def format_ms(value: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4.1 min``: the unit a person reads at a glance."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:5.1f}%"


def _distribution_line(label: str, dist: Distribution) -> str:
    if not dist.count:
        return f"  {label:<28} -"
    return (
        f"  {label:<28} median {format_ms(dist.median):>9}   p95 {format_ms(dist.p95):>9}   max {format_ms(dist.max):>9}   (n={dist.count})"
    )


def plural(count: int, noun: str, many: str | None = None) -> str:
    """The count and its noun in agreement: ``1 message``, ``2 messages``, ``1 query``, ``3 queries``."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def render_text(report: Report) -> str:
    """The default output: a summary, a per-day table and the unmatched questions."""
    lines = [
        f"Chat analytics {report.stack_name}: {report.start} .. {report.end} ({plural(len(report.per_day), 'day')}, UTC)",
        "",
        f"  {'requests':<28} {report.requests:>8}",
        f"  {'queries':<28} {report.queries:>8}",
        f"  {'answers':<28} {report.responses:>8}   ({plural(report.unanswered, 'query', 'queries')} without answer, {plural(report.without_query, 'answer')} without query)",
    ]
    shares = report.shares
    for kind, count in report.matches.items():
        lines.append(f"  {'  match ' + kind:<28} {count:>8}   {_share(shares[kind])}")
    average = report.average_score
    lines.append(f"  {'average match score':<28} {'-' if average is None else f'{average:8.1f}'}")
    lines.append("")
    lines.append(_distribution_line("answer latency (latencyMs)", report.answer_latency))
    lines.append(_distribution_line("query -> response", report.response_latency))
    lines.append(_distribution_line("ingest lag, queries", report.query_ingest_lag))
    lines.append(_distribution_line("ingest lag, answers", report.response_ingest_lag))
    if report.canaries:
        lines.append(f"  ({plural(report.canaries, 'canary request')} of `chat-analytics check` left out)")
    lines += ["", f"  {'day':<10}  {'queries':>7}  {'full':>6}  {'partial':>7}  {'none':>6}  {'avg score':>9}"]
    for day in report.per_day:
        avg = f"{day.average_score:9.1f}" if day.average_score is not None else f"{'-':>9}"
        m = day.matches
        lines.append(f"  {day.day:<10}  {day.queries:>7}  {m['full']:>6}  {m['partial']:>7}  {m['none']:>6}  {avg}")
    lines += [
        "",
        f"  top {len(report.top_unmatched)} unmatched {'question' if len(report.top_unmatched) == 1 else 'questions'} (matchType none)",
    ]
    if not report.top_unmatched:
        lines.append("    (none)")
    for question, count in report.top_unmatched:
        lines.append(f"  {count:>6}  {question}")
    lines += ["", *_rejected_lines(report.rejected)]
    if report.engine:
        lines += ["", f"  read by {report.engine.name} in {report.engine.seconds:.1f} s" + _engine_cost(report.engine)]
    return "\n".join(lines)


def _rejected_lines(rejected: RejectedCounts | None) -> list[str]:
    """The rejected events by reason, or the one line that says why they are not counted."""
    if rejected is None:
        return [f"  rejected events: {REJECTED_NOT_IN_TABLE}"]
    if rejected.note:
        return [f"  rejected events: {rejected.note}"]
    lines = [f"  rejected events (lake table {REJECTED_TABLE}, by reason): {rejected.events}"]
    if not rejected.by_reason:
        lines.append("    (none)")
    lines += [f"  {count:>6}  {reason}" for reason, count in rejected.by_reason]
    return lines


def _engine_cost(engine: EngineInfo) -> str:
    parts = [] if engine.bytes_scanned is None else [f"{engine.bytes_scanned / 1e6:,.1f} MB scanned"]
    if engine.detail:
        parts.append(engine.detail)
    return f" ({', '.join(parts)})" if parts else ""
