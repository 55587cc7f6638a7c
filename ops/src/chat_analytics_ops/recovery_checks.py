"""The recovery path's grants, judged from the live policies: ALARM -> OK notices reach the alarm topic through
EventBridge with no role, so the topic's policy, its KMS key's policy and the rule's dead-letter queue must let
``events.amazonaws.com`` in for this rule.

Why resource policies and not a role: EventBridge's "Using resource-based policies for Amazon EventBridge" page
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html) says delivery through a role
may fail for SNS targets with KMS encryption; the stack therefore grants on the topic and on the key
(https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html), and gives the target a dead-letter queue
whose policy names the rule (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from botocore.exceptions import ClientError

from chat_analytics_ops.errors import error_code
from chat_analytics_ops.render import plural

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
EVENTS_PRINCIPAL = "events.amazonaws.com"
_ARN_KEYS = ("aws:sourcearn",)
_CONTEXT_KEY = "kms:encryptioncontext:aws:sns:topicarn"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(policy_text: str | dict | None) -> list[dict[str, Any]]:
    if not policy_text:
        return []
    policy = json.loads(policy_text) if isinstance(policy_text, str) else policy_text
    return [statement for statement in _as_list(policy.get("Statement", [])) if isinstance(statement, dict)]


def _allows(statement: dict[str, Any], principal: str, actions: tuple[str, ...]) -> bool:
    """An Allow for ``principal`` (or ``*``) covering every one of ``actions`` (IAM wildcards honoured)."""
    if statement.get("Effect") != "Allow" or {"NotAction", "NotPrincipal"} & set(statement):
        return False
    given = statement.get("Principal", {})
    services = _as_list(given.get("Service", [])) if isinstance(given, dict) else []
    if given != "*" and principal not in services:
        return False
    allowed = [str(action).lower() for action in _as_list(statement.get("Action", []))]
    return all(any(fnmatch.fnmatchcase(action.lower(), pattern) for pattern in allowed) for action in actions)


def _condition_values(statement: dict[str, Any], keys: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """``(operator, values)`` for each condition on one of ``keys`` (lower-case key names)."""
    found = []
    for operator, block in statement.get("Condition", {}).items():
        for key, values in block.items():
            if key.lower() in keys:
                found.append((operator, [str(value) for value in _as_list(values)]))
    return found


def _holds(operator: str, values: list[str], actual: str) -> bool:
    """Whether a condition of ``operator`` with ``values`` holds for ``actual`` (Like: wildcards; Equals: exact)."""
    base = operator.removesuffix("IfExists")
    if base in ("ArnLike", "StringLike"):
        return any(fnmatch.fnmatchcase(actual, value.replace("[", "[[]")) for value in values)
    if base in ("ArnEquals", "StringEquals"):
        return actual in values
    return False


def _unknown_conditions(statement: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    return [key for block in statement.get("Condition", {}).values() for key in block if key.lower() not in known]


def judge_topic_grant(topic_policy: str | None, topic_arn: str, rule_arn: str) -> tuple[str, str]:
    """The topic policy lets EventBridge publish for the recovery rule: ``sns:Publish`` on the topic for
    ``events.amazonaws.com``, any ``aws:SourceArn`` condition matching the rule."""
    for statement in _statements(topic_policy):
        if not _allows(statement, EVENTS_PRINCIPAL, ("sns:Publish",)):
            continue
        if not any(fnmatch.fnmatchcase(topic_arn, str(resource)) for resource in _as_list(statement.get("Resource", []))):
            continue
        if _unknown_conditions(statement, (*_ARN_KEYS, "aws:sourceaccount")):
            continue
        arns = _condition_values(statement, _ARN_KEYS)
        if all(_holds(operator, values, rule_arn) for operator, values in arns):
            account = rule_arn.split(":")[4]
            accounts = _condition_values(statement, ("aws:sourceaccount",))
            if all(_holds(operator, values, account) for operator, values in accounts):
                return OK, f"the topic policy lets {EVENTS_PRINCIPAL} publish for {rule_arn.rsplit('/', 1)[-1]}"
    return (
        FAIL,
        f"no topic policy statement lets {EVENTS_PRINCIPAL} sns:Publish for {rule_arn.rsplit('/', 1)[-1]}: recoveries are not mailed",
    )


def judge_key_grant(key_policy: str | None, topic_arn: str) -> tuple[str, str]:
    """The topic's key lets EventBridge encrypt for this topic: ``kms:GenerateDataKey*`` and ``kms:Decrypt`` for
    ``events.amazonaws.com``, any encryption-context condition on the topic's ARN matching it."""
    for statement in _statements(key_policy):
        if not _allows(statement, EVENTS_PRINCIPAL, ("kms:GenerateDataKey", "kms:Decrypt")):
            continue
        if _unknown_conditions(statement, (_CONTEXT_KEY,)):
            continue
        if all(_holds(operator, values, topic_arn) for operator, values in _condition_values(statement, (_CONTEXT_KEY,))):
            return OK, f"the topic's key lets {EVENTS_PRINCIPAL} encrypt for {topic_arn.rsplit(':', 1)[-1]}"
    return (
        FAIL,
        f"the topic's key policy does not let {EVENTS_PRINCIPAL} kms:GenerateDataKey and kms:Decrypt for the topic: recoveries fail",
    )


def judge_rule_target(target: dict[str, Any], dlq_arn: str | None) -> list[str]:
    """Problems of the rule's target: a dead-letter queue (the stack's), a retry policy."""
    problems = []
    configured = target.get("DeadLetterConfig", {}).get("Arn")
    if not configured:
        problems.append("its target has no dead-letter queue: a failed notice is lost without a trace")
    elif dlq_arn and configured != dlq_arn:
        problems.append(f"its target dead-letters into {configured.rsplit(':', 1)[-1]}, not the stack's {dlq_arn.rsplit(':', 1)[-1]}")
    if not target.get("RetryPolicy"):
        problems.append("its target has no retry policy")
    return problems


def judge_recovery_dlq(sqs: Any, dlq_url: str, rule_arn: str) -> tuple[str, str]:
    """The rule's dead-letter queue: encrypted, its policy lets only this rule send, and empty (a message there is
    a recovery notice that never reached the topic)."""
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    name = dlq_url.rsplit("/", 1)[-1]
    problems = []
    if attributes.get("SqsManagedSseEnabled") != "true" and not attributes.get("KmsMasterKeyId"):
        problems.append("not encrypted")
    queue_arn = attributes.get("QueueArn", "")
    granted = False
    for statement in _statements(attributes.get("Policy")):
        if not _allows(statement, EVENTS_PRINCIPAL, ("sqs:SendMessage",)):
            continue
        arns = _condition_values(statement, _ARN_KEYS)
        if not arns:
            problems.append(f"its policy lets {EVENTS_PRINCIPAL} send with no aws:SourceArn condition (any rule)")
        elif all(_holds(operator, values, rule_arn) for operator, values in arns) and any(
            fnmatch.fnmatchcase(queue_arn, str(resource)) for resource in _as_list(statement.get("Resource", []))
        ):
            granted = True
    if not granted:
        problems.append(f"its policy does not let the rule send ({EVENTS_PRINCIPAL}, aws:SourceArn the rule): failed notices are lost")
    waiting = int(attributes.get("ApproximateNumberOfMessages", "0")) + int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0"))
    if waiting:
        problems.append(f"{plural(waiting, 'recovery notice')} failed to reach the topic (docs/runbook.md, RecoveryDeadLetters)")
    if problems:
        return FAIL, f"{name}: " + "; ".join(problems)
    return OK, f"{name}: encrypted, only the recovery rule may send, empty"


def topic_key_policy(sns: Any, kms: Any, topic_arn: str) -> tuple[str | None, str | None]:
    """The topic's KMS key id and its key policy (None, None for an unencrypted topic)."""
    attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    key = attributes.get("KmsMasterKeyId")
    if not key:
        return None, None
    try:
        return key, kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
    except ClientError as error:
        if error_code(error) in ("NotFoundException", "AccessDeniedException"):
            return key, None
        raise
