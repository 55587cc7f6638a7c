#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=dev|prod`` builds the ChatAnalytics-<stage> stack."""

from __future__ import annotations

import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.analytics_stack import ChatAnalyticsStack
from stacks.settings import Settings, SettingsError


def build_app(context: dict | None = None, outdir: str | None = None) -> tuple[cdk.App, ChatAnalyticsStack]:
    """Build the app; ``context`` overrides cdk.json (tests pass it, the CLI uses -c)."""
    app = cdk.App(context=context or {}, outdir=outdir)
    settings = Settings.from_context(app.node.try_get_context)
    stack = ChatAnalyticsStack(
        app,
        settings.stack_name,
        settings=settings,
        description=f"Fire-and-forget chatbot analytics pipeline ({settings.stage})",
    )
    cdk.Tags.of(stack).add("project", "chat-analytics")
    cdk.Tags.of(stack).add("stage", settings.stage)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> int:
    try:
        app, _ = build_app()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
