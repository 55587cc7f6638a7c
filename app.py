#!/usr/bin/env python3
"""CDK entry point: ``cdk synth -c stage=dev|prod`` builds the ChatAnalytics-<stage> stack."""

from __future__ import annotations

import json
import os
import sys

# Node 20 is past jsii's support window; the CDK still runs on it (README, "Node 20"). Set before aws_cdk
# starts its Node process, so `npx cdk ...` prints no warning banner either.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.analytics_stack import ChatAnalyticsStack
from stacks.settings import Settings, SettingsError, check_context_keys


def build_app(context: dict | None = None, outdir: str | None = None) -> tuple[cdk.App, ChatAnalyticsStack]:
    """Build the app; ``context`` overrides cdk.json (tests pass it, the CLI uses -c)."""
    check_context_keys({*(context or {}), *json.loads(os.environ.get("CDK_CONTEXT_JSON") or "{}")})
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
