"""Typed settings for the analytics stack, read from CDK context and validated at synth.

Every value a deployer can set lives here, so a typo stops ``cdk synth`` with one line
naming the key instead of producing a template that fails half-way through a deploy.
Context values arrive as JSON types from ``cdk.json`` and as strings from ``-c key=value``;
both are accepted.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAGES = ("dev", "prod")
# The processor's shortest useful timeout: one DynamoDB attempt (2 s to connect + 4 s to read) and the 1 s it
# keeps to return must fit, or every record fails for lack of time and ends in the DLQ (lambda_src/chat_processor).
MIN_PROCESSOR_TIMEOUT_S = 10

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

# A Powertools layer pinned by context: a layer version ARN (any partition: aws-cn and GovCloud have no
# public SSM parameter), or a Powertools release whose versioned public SSM parameter resolves it.
_LAYER_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:lambda:[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:layer:[A-Za-z0-9_-]{1,140}:\d{1,8}$")
_POWERTOOLS_VERSION = re.compile(r"^3\.\d{1,3}\.\d{1,3}$")

# aws:SourceIp only ever sees public addresses: a private, loopback, link-local or shared (CGNAT)
# block in producerSourceCidrs would lock the producer out (VPC traffic through an endpoint carries
# aws:VpcSourceIp instead; see the README).
_NON_PUBLIC_BLOCKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8")
NON_PUBLIC_NETWORKS = tuple(ipaddress.ip_network(block) for block in (*_NON_PUBLIC_BLOCKS, "fc00::/7", "fe80::/10", "::1/128", "::/128"))

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")

# An IAM role or user Lake Formation can grant to (its DataLakePrincipalIdentifier): any partition, a
# 12-digit account, an optional path (Identity Center's roles live under aws-reserved/sso.amazonaws.com/).
_PRINCIPAL_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]{1,128}$")

# Lambda's system log levels (LoggingConfig.SystemLogLevel), and the processor's own (Powertools' POWERTOOLS_LOG_LEVEL).
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")
PROCESSOR_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Defaults that differ by stage; any of them can be overridden by a context key.
_STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {
        "logRetentionDays": 14,
        "eventRetentionDays": 30,
        "processorMaxConcurrency": 2,
        "tableDayIndex": True,
        "processorSystemLogLevel": "INFO",
        "processorLogLevel": "INFO",
    },
    # prod keeps 400 days in the event lake (S3) and 90 in the table: the lake answers long reports for
    # a fraction of the table's storage and PITR. It reports from the lake only (no byDay index: half the
    # table's writes) and logs what goes wrong, not every batch nor Lambda's START/REPORT lines (docs/cost.md,
    # "What each lever saves").
    "prod": {
        "logRetentionDays": 90,
        "eventRetentionDays": 400,
        "tableRetentionDays": 90,
        "processorMaxConcurrency": 10,
        "tableDayIndex": False,
        "processorSystemLogLevel": "WARN",
        "processorLogLevel": "WARNING",
    },
}


class SettingsError(ValueError):
    """A context value is missing or malformed; the message names the key."""


# Every context key this app reads (its settings).
SETTING_KEYS = (
    "stage",
    "alarmEmail",
    "oldestMessageAgeThresholdSeconds",
    "processorTimeoutSeconds",
    "processorMemoryMb",
    "processorMaxConcurrency",
    "logRetentionDays",
    "eventRetentionDays",
    "tableRetentionDays",
    "producerSourceCidrs",
    "producerKeySerial",
    "metricsNamespace",
    "powertoolsLayer",
    "lakeScanLimitGb",
    "lakeFormation",
    "lakeCompaction",
    "reportReaderPrincipalArns",
    "tableDayIndex",
    "processorSystemLogLevel",
    "processorLogLevel",
)


def check_context_keys(keys: Iterable[str]) -> None:
    """A misspelled setting stops synth instead of silently building the default: every key is either
    one of ``SETTING_KEYS`` or the CDK's own (feature flags ``@aws-cdk/...``, the CLI's ``aws:cdk:...``
    and context lookups ``provider:...`` all hold ``@`` or ``:``)."""
    for key in sorted(keys):
        if key in SETTING_KEYS or key.startswith("@") or ":" in key:
            continue
        close = difflib.get_close_matches(key, SETTING_KEYS, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f" (settings: {', '.join(SETTING_KEYS)})"
        raise SettingsError(f"context key '{key}' is not a setting of this app{hint}")


@dataclass(frozen=True)
class Settings:
    """Everything the stack needs to know about one deployment."""

    stage: str = "dev"
    alarm_email: str | None = None
    oldest_message_age_threshold_s: int = 300
    processor_timeout_s: int = 30
    processor_memory_mb: int = 256
    processor_max_concurrency: int = 2
    log_retention_days: int = 14
    event_retention_days: int = 30  # the event lake's rows (S3 lifecycle)
    table_retention_days: int = 30  # the table's items (TTL): at most event_retention_days
    producer_source_cidrs: tuple[str, ...] = field(default_factory=tuple)
    producer_key_serial: int = 1
    metrics_namespace: str = "ChatAnalytics"
    python_runtime: str = "python3.14"
    powertools_layer: str | None = None
    lake_scan_limit_gb: int = 10
    # Lake Formation grants for the lake (accounts where Lake Formation, not IAM alone, guards the Glue
    # catalog: docs/aws-accounts.md), and the IAM roles or users granted to read it through Athena.
    lake_formation: bool = False
    # The event lake's daily compaction (stacks/compaction.py): an EventBridge Scheduler schedule runs one Athena
    # query at 02:00 UTC that turns each complete day into one row per request; reports read compacted days.
    lake_compaction: bool = True
    report_reader_principal_arns: tuple[str, ...] = field(default_factory=tuple)
    # Cost levers (docs/cost.md, "What each lever saves"). The table's byDay index: what `report --engine dynamodb`
    # and `erase --question-contains`'s table half read; without it every write is one WRU instead of two.
    table_day_index: bool = True
    # Lambda's own START/REPORT records (INFO) and the processor's log level (the "Batch processed" line is INFO).
    processor_system_log_level: str = "INFO"
    processor_log_level: str = "INFO"

    @property
    def stack_name(self) -> str:
        return f"ChatAnalytics-{self.stage}"

    @property
    def lake_database_name(self) -> str:
        """The Glue database of the event lake: lowercase letters, digits and underscores, as Athena wants."""
        return f"chat_analytics_{self.stage}"

    @property
    def lake_scan_limit_bytes(self) -> int:
        """The Athena workgroup's per-query scan cutoff (``lakeScanLimitGb`` in bytes, 1 GB = 1024**3)."""
        return self.lake_scan_limit_gb * 1024**3

    @property
    def is_production(self) -> bool:
        return self.stage == "prod"

    @classmethod
    def from_context(cls, get: Callable[[str], Any] | Mapping[str, Any]) -> Settings:
        """Build settings from a context getter (``node.try_get_context``) or a plain mapping."""
        lookup = get.get if isinstance(get, Mapping) else get
        stage = _choice(lookup, "stage", STAGES, "dev")
        defaults = _STAGE_DEFAULTS[stage]

        def value(key: str, fallback: Any = None) -> Any:
            raw = lookup(key)
            return defaults.get(key, fallback) if raw is None or raw == "" else raw

        event_retention_days = _int(value("eventRetentionDays"), "eventRetentionDays", 1, 3650)
        table_retention_days = _int(value("tableRetentionDays", event_retention_days), "tableRetentionDays", 1, 3650)
        if table_retention_days > event_retention_days:
            raise SettingsError(
                f"context key 'tableRetentionDays': {table_retention_days} is longer than eventRetentionDays ({event_retention_days});"
                " the event lake must keep at least what the table keeps"
            )
        lake_formation = _bool(value("lakeFormation", False), "lakeFormation")
        readers = _principal_arns(value("reportReaderPrincipalArns", []))
        if readers and not lake_formation:
            raise SettingsError(
                "context key 'reportReaderPrincipalArns': only Lake Formation grants use it, and lakeFormation is false;"
                " attach the ReportReaderPolicyArn policy to those principals instead, or set lakeFormation to true"
            )
        return cls(
            stage=stage,
            alarm_email=_email(value("alarmEmail")),
            oldest_message_age_threshold_s=_int(
                value("oldestMessageAgeThresholdSeconds", 300), "oldestMessageAgeThresholdSeconds", 60, 1_209_600
            ),
            processor_timeout_s=_int(value("processorTimeoutSeconds", 30), "processorTimeoutSeconds", MIN_PROCESSOR_TIMEOUT_S, 150),
            processor_memory_mb=_int(value("processorMemoryMb", 256), "processorMemoryMb", 128, 10_240),
            processor_max_concurrency=_int(value("processorMaxConcurrency"), "processorMaxConcurrency", 2, 1000),
            log_retention_days=_log_retention(value("logRetentionDays")),
            event_retention_days=event_retention_days,
            table_retention_days=table_retention_days,
            producer_source_cidrs=_cidrs(value("producerSourceCidrs", [])),
            producer_key_serial=_int(value("producerKeySerial", 1), "producerKeySerial", 1, 1_000_000),
            metrics_namespace=_namespace(value("metricsNamespace", "ChatAnalytics")),
            powertools_layer=_powertools_layer(value("powertoolsLayer")),
            lake_scan_limit_gb=_int(value("lakeScanLimitGb", 10), "lakeScanLimitGb", 1, 1000),
            lake_formation=lake_formation,
            lake_compaction=_lake_compaction(value("lakeCompaction"), lake_formation),
            report_reader_principal_arns=readers,
            table_day_index=_bool(value("tableDayIndex"), "tableDayIndex"),
            processor_system_log_level=_level(value("processorSystemLogLevel", "INFO"), "processorSystemLogLevel", SYSTEM_LOG_LEVELS),
            processor_log_level=_level(value("processorLogLevel", "INFO"), "processorLogLevel", PROCESSOR_LOG_LEVELS),
        )


def _choice(lookup: Callable[[str], Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    raw = lookup(key)
    text = default if raw is None or raw == "" else str(raw)
    if text not in allowed:
        raise SettingsError(f"context key '{key}': {text!r} is not one of {', '.join(allowed)}")
    return text


def _level(raw: Any, key: str, allowed: tuple[str, ...]) -> str:
    """A log level, in any case (``-c processorLogLevel=warning``); one of ``allowed``."""
    text = str(raw).strip().upper()
    if text not in allowed:
        raise SettingsError(f"context key '{key}': {raw!r} is not one of {', '.join(allowed)}")
    return text


def _int(raw: Any, key: str, low: int, high: int) -> int:
    if isinstance(raw, bool):
        raise SettingsError(f"context key '{key}': expected a whole number, got {raw!r}")
    try:
        number = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise SettingsError(f"context key '{key}': expected a whole number, got {raw!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"context key '{key}': {number} is outside {low}..{high}")
    return number


def _lake_compaction(raw: Any, lake_formation: bool) -> bool:
    """``lakeCompaction``: on by default, off by default where Lake Formation guards the catalog. The compaction's
    schedule runs Athena's INSERT INTO as its own role, which would need Lake Formation grants on both tables
    (and Athena's support for writing to a governed table) that this stack does not build: refused, not half built."""
    if raw is None:
        return not lake_formation
    enabled = _bool(raw, "lakeCompaction")
    if enabled and lake_formation:
        raise SettingsError(
            "context key 'lakeCompaction': not with lakeFormation true (the compaction's role has no Lake Formation grants);"
            " leave lakeCompaction unset or false there: the report reads the raw rows"
        )
    return enabled


def _bool(raw: Any, key: str) -> bool:
    """true/false from cdk.json, "true"/"false" from ``-c key=value``; anything else is a mistake."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise SettingsError(f"context key '{key}': expected true or false, got {raw!r}")


def _principal_arns(raw: Any) -> tuple[str, ...]:
    """IAM role or user ARNs, as a JSON list or comma-separated; duplicates are refused (one grant each)."""
    key = "reportReaderPrincipalArns"
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        except ValueError:
            raise SettingsError(f"context key '{key}': {text!r} is neither a JSON list nor comma-separated ARNs") from None
    if not isinstance(raw, list | tuple):
        raise SettingsError(f"context key '{key}': expected a list of IAM role or user ARNs, got {raw!r}")
    arns: list[str] = []
    for item in raw:
        arn = str(item).strip()
        if not _PRINCIPAL_ARN.match(arn):
            raise SettingsError(f"context key '{key}': {arn!r} is not an IAM role or user ARN (arn:aws:iam::<account>:role/<name>)")
        if arn in arns:
            raise SettingsError(f"context key '{key}': {arn} is listed twice")
        arns.append(arn)
    return tuple(arns)


def _log_retention(raw: Any) -> int:
    days = _int(raw, "logRetentionDays", 1, 3653)
    if days not in LOG_RETENTION_DAYS:
        raise SettingsError(
            f"context key 'logRetentionDays': {days} is not a CloudWatch Logs retention period ({', '.join(map(str, LOG_RETENTION_DAYS))})"
        )
    return days


def _email(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    if not _EMAIL.match(text):
        raise SettingsError(f"context key 'alarmEmail': {text!r} is not an e-mail address")
    return text


def _cidrs(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text.startswith("[") else [part for part in text.split(",") if part.strip()]
        except ValueError:
            raise SettingsError(
                f"context key 'producerSourceCidrs': {text!r} is neither a JSON list nor comma-separated CIDR blocks"
            ) from None
    if not isinstance(raw, list | tuple):
        raise SettingsError(f"context key 'producerSourceCidrs': expected a list of CIDR blocks, got {raw!r}")
    cidrs = []
    for item in raw:
        try:
            network = ipaddress.ip_network(str(item).strip(), strict=True)
        except ValueError:
            raise SettingsError(f"context key 'producerSourceCidrs': {item!r} is not a CIDR block") from None
        for block in NON_PUBLIC_NETWORKS:
            if block.version == network.version and network.subnet_of(block):  # type: ignore[arg-type]
                raise SettingsError(
                    f"context key 'producerSourceCidrs': {network} is inside {block}, which aws:SourceIp never sees "
                    "(only public addresses reach SQS's public endpoint)"
                )
        cidrs.append(str(network))
    return tuple(cidrs)


def _powertools_layer(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    if not (_LAYER_ARN.match(text) or _POWERTOOLS_VERSION.match(text)):
        raise SettingsError(
            f"context key 'powertoolsLayer': {text!r} is neither a Lambda layer version ARN "
            "(arn:aws:lambda:<region>:<account>:layer:<name>:<version>) nor a Powertools 3 release such as 3.24.0"
        )
    return text


def _namespace(raw: Any) -> str:
    text = str(raw)
    if not re.fullmatch(r"[A-Za-z0-9._/#:\- ]{1,255}", text) or text.startswith("AWS/"):
        raise SettingsError(f"context key 'metricsNamespace': {text!r} is not a valid custom CloudWatch namespace")
    return text
