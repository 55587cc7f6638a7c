"""Start a moto server on 127.0.0.1 and deploy the synthesized stack into it.

What runs locally is what ``cdk deploy`` would create: the template in ``cdk.out`` goes through
moto's CloudFormation; :mod:`local.emulator.template` and :mod:`local.emulator.standins` cover the types moto does
not implement. Then moto's IAM enforcement is switched on, so the producer's access key from the
template can do exactly what its policy allows.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
from moto import settings as moto_settings
from moto.cloudformation.parsing import get_model_map
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import unix_time as _unix_time
from moto.server import ThreadedMotoServer
from moto.ssm.models import Parameter, ssm_backends

from local.emulator.ports import free_port
from local.emulator.standins import create_stand_ins
from local.emulator.template import STAND_INS, adapt
from schema import contract

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT_ID = DEFAULT_ACCOUNT_ID
BOOTSTRAP_QUALIFIER = "hnb659fds"

# Where moto's IAM authorization differs from AWS's, the shipped policies stay as they are and the
# difference is bridged here, in this one place:
# - moto authorizes the SQS batch actions as actions of their own (sqs:SendMessageBatch, ...); AWS
#   authorizes each with its single-message action (sqs:SendMessage, ...; the SQS API reference's
#   "Permissions" of each batch action): `bridge_sqs_batch_actions` makes moto do the same.
# - moto authorizes DynamoDB calls against the resource "*", not the table's ARN, so a policy scoped
#   to the table (as ours is) never matches there: a local-only role policy allows UpdateItem on "*".
SQS_BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
MOTO_PROCESSOR_BRIDGE_POLICY = "local-moto-bridge-processor"


def bridge_sqs_batch_actions() -> None:
    """Make this process's moto authorize SQS batch actions as their single-message action, as AWS does."""
    from moto.iam import access_control

    original = access_control.IAMRequestBase.__init__
    if getattr(original, "bridged", False):
        return

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self._action = SQS_BATCH_ACTIONS.get(self._action, self._action)

    init.bridged = True  # type: ignore[attr-defined]
    access_control.IAMRequestBase.__init__ = init  # type: ignore[method-assign]


def sign_bodiless_requests_as_sent() -> None:
    """Make this process's moto check the signature of a request without a body (Lambda's GETs: GetFunction,
    ListEventSourceMappings) over the empty payload the client signed. moto 5.x hashes its parsed parameters
    instead, which for such a request are the request's headers, so every one of them is refused with
    SignatureDoesNotMatch once IAM is enforced (``chat-analytics check`` reads the processor's mapping)."""
    from botocore.awsrequest import AWSRequest
    from moto.iam import access_control

    original = access_control.IAMRequestBase._create_aws_request
    if getattr(original, "bridged", False):
        return

    def create(self) -> AWSRequest:
        if self._method not in ("GET", "HEAD", "DELETE") or self._body or isinstance(self._data, bytes | str):
            return original(self)  # a POST's form parameters are its body: moto re-encodes them, rightly
        saved = self._data
        self._data = b""
        try:
            return original(self)
        finally:
            self._data = saved

    create.bridged = True  # type: ignore[attr-defined]
    access_control.IAMRequestBase._create_aws_request = create  # type: ignore[method-assign]


# Java DateTimeFormatter letters Firehose's !{timestamp:...} prefixes use, as strftime directives.
_FIREHOSE_TIME_TOKENS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_FIREHOSE_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")


def firehose_prefix(prefix: str, now: datetime, *, error_type: str = "processing-failed") -> str:
    """An S3 prefix with Firehose's expressions evaluated as Firehose does: ``!{timestamp:<pattern>}``
    in UTC (the arrival time), ``!{firehose:random-string}`` and ``!{firehose:error-output-type}``; a
    prefix without expressions gets the default ``YYYY/MM/dd/HH/``
    (https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html)."""

    def evaluate(match: re.Match[str]) -> str:
        namespace, value = match.groups()
        if namespace == "timestamp":
            pattern = re.sub("|".join(_FIREHOSE_TIME_TOKENS), lambda token: _FIREHOSE_TIME_TOKENS[token.group(0)], value)
            if re.search(r"[A-Za-z]", re.sub(r"%[YmdHMS]", "", pattern)):
                raise ValueError(f"local Firehose: unsupported timestamp pattern {value!r}")
            return now.strftime(pattern)
        if namespace == "firehose" and value == "random-string":
            return uuid.uuid4().hex[:11]
        if namespace == "firehose" and value == "error-output-type":
            return error_type
        raise ValueError(f"local Firehose: unsupported prefix expression {match.group(0)!r}")

    if _FIREHOSE_EXPRESSION.search(prefix):
        return _FIREHOSE_EXPRESSION.sub(evaluate, prefix)
    return f"{prefix}{now:%Y/%m/%d/%H}/"


def firehose_custom_prefixes() -> None:
    """Make this process's moto name Firehose's S3 objects as Firehose does with a custom prefix (moto 5.2
    appends its own YYYY/MM/DD/HH/ to the prefix's text, expressions and all)."""
    from moto.firehose.models import FirehoseBackend

    original = FirehoseBackend._format_s3_object_path
    if getattr(original, "evaluated", False):
        return

    def object_path(delivery_stream_name: str, version_id: str, prefix: str) -> str:
        now = datetime.now(UTC)
        return f"{firehose_prefix(prefix, now)}{delivery_stream_name}-{version_id}-{now:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"

    object_path.evaluated = True  # type: ignore[attr-defined]
    FirehoseBackend._format_s3_object_path = staticmethod(object_path)  # type: ignore[method-assign]


def authorize_firehose_streams() -> None:
    """Make this process's moto authorize Firehose actions against the stream's ARN, as AWS does (moto 5.2
    checks them against ``*``, so a policy naming the one stream, as the processor's does, never matches)."""
    from moto.firehose.responses import FirehoseResponse

    if hasattr(FirehoseResponse, "_determine_resource"):
        return

    def determine_resource(self: FirehoseResponse) -> str:
        try:
            name = json.loads(self.body or "{}").get("DeliveryStreamName")
        except ValueError:
            name = None
        if not name:
            return "*"
        return f"arn:{self.partition}:firehose:{self.region}:{self.current_account}:deliverystream/{name}"

    FirehoseResponse._determine_resource = determine_resource  # type: ignore[attr-defined]


def _json_params(response: object) -> dict:
    try:
        params = json.loads(getattr(response, "body", None) or "{}")
    except ValueError:
        return {}
    return params if isinstance(params, dict) else {}


def authorize_athena_and_glue_resources() -> None:
    """Make this process's moto authorize Athena and Glue actions against the resource's ARN, as AWS does (moto 5.2
    checks them against ``*``, so the report reader policy, which names the workgroup and the catalog's ARNs,
    never matches).

    Athena: the workgroup ``arn:aws:athena:<region>:<account>:workgroup/<name>`` of the request's ``WorkGroup``;
    for a call naming a query (GetQueryExecution, GetQueryResults, StopQueryExecution) the workgroup that query ran
    in; StartQueryExecution without one runs in ``primary``
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonathena.html).

    Glue: a call naming a table (GetTable, GetPartitions, ...) is checked against the table's ARN, one naming only a
    database (GetDatabase, GetTables, ...) against the database's. A simplification: AWS requires the catalog, the
    database *and* the table to be allowed for a table's call
    (https://docs.aws.amazon.com/glue/latest/dg/glue-specifying-resource-arns.html); moto checks one resource per
    request, so here only the most specific one is (the check's tests hold the policy's other ARNs in place).
    Any other call stays checked against ``*``."""
    from moto.athena.models import athena_backends
    from moto.athena.responses import AthenaResponse
    from moto.glue.responses import GlueResponse

    if hasattr(AthenaResponse, "_determine_resource") and hasattr(GlueResponse, "_determine_resource"):
        return

    def athena_resource(self: AthenaResponse) -> str:
        params = _json_params(self)
        group = params.get("WorkGroup")
        if not group and params.get("QueryExecutionId"):
            execution = athena_backends[self.current_account][self.region].executions.get(params["QueryExecutionId"])
            if execution is None:
                return "*"
            group = execution.workgroup.name if execution.workgroup else "primary"
        if not group and self._get_action() == "StartQueryExecution":
            group = "primary"
        if not group:
            return "*"
        return f"arn:{self.partition}:athena:{self.region}:{self.current_account}:workgroup/{group}"

    def glue_resource(self: GlueResponse) -> str:
        params = _json_params(self)
        action = self._get_action()
        base = f"arn:{self.partition}:glue:{self.region}:{self.current_account}"
        database = params.get("DatabaseName")
        table = params.get("TableName") or (params.get("Name") if action.endswith("Table") else None)
        if database and table:
            return f"{base}:table/{database}/{table}"
        if database:
            return f"{base}:database/{database}"
        if action.endswith("Database") and params.get("Name"):
            return f"{base}:database/{params['Name']}"
        return "*"

    AthenaResponse._determine_resource = athena_resource  # type: ignore[attr-defined]
    GlueResponse._determine_resource = glue_resource  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def session(self, region: str = REGION) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=region,
        )


@dataclass
class StackInfo:
    """Everything a client of the local stack needs."""

    endpoint_url: str
    region: str
    stack_name: str
    outputs: dict[str, str]
    admin: Credentials
    producer: Credentials
    processor: Credentials
    event_source: dict
    processor_environment: dict[str, str]
    report: list[str] = field(default_factory=list)

    @property
    def events_queue_url(self) -> str:
        return self.outputs[contract.EVENTS_QUEUE_URL]

    @property
    def dead_letter_queue_url(self) -> str:
        return self.outputs[contract.DEAD_LETTER_QUEUE_URL]

    @property
    def table_name(self) -> str:
        return self.outputs[contract.EVENTS_TABLE_NAME]

    def client(self, service: str, credentials: Credentials | None = None):
        return (credentials or self.admin).session(self.region).client(service, endpoint_url=self.endpoint_url)

    @property
    def local_events_queue_url(self) -> str:
        """The events queue's URL on the local endpoint (moto reports AWS's host name)."""
        return local_queue_url(self.endpoint_url, self.events_queue_url)

    def worker_env(self) -> dict[str, str]:
        """The four values the edge Worker (and ``AnalyticsLogger.from_env``) reads."""
        return {
            "AWS_ACCESS_KEY_ID": self.producer.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.producer.secret_access_key,
            "AWS_SQS_URL": self.local_events_queue_url,
            "AWS_REGION": self.region,
        }


def speed_up_moto_sqs() -> None:
    """Make moto's SQS clock cheap: same values, a fraction of the cost.

    moto reads the time through a datetime computation for every message on every visibility check,
    and its FIFO validation looks at every message in the queue for each one sent, so a send slows
    down with the queue's length (~0.3 s per 10-message batch with a few hundred waiting). Only the
    clock is replaced, with ``time.time()``, which gives the same epoch seconds without the datetime
    arithmetic, made strictly increasing within each thread: moto releases a message by making it visible
    from "now" and then clears its in-flight mark only if a second reading of "now", in the same request
    (thread), is later; two equal readings (``time.time()`` gave them for ~4% of releases) left it marked, and
    moto's next receive skipped its FIFO group's first message and returned the second alone, which SQS never
    does (the flaky redrive test: tests/ops/test_ops_dlq.py). Per thread, not behind one lock: moto reads the
    clock for every message of the queue on every send and receive, from a thread per request, and one lock
    shared by them all made a queue of a few thousand messages spend its time in the kernel (futex contention:
    the cost benchmark's 38/s run stalled).
    """
    import moto.sqs.models as sqs_models

    local = threading.local()

    def now_ms() -> float:
        now = time.time() * 1000.0
        last = getattr(local, "last", 0.0)
        if now <= last:
            now = last + 0.001
        local.last = now
        return now

    sqs_models.unix_time = lambda dt=None: now_ms() / 1000.0 if dt is None else _unix_time(dt)
    sqs_models.unix_time_millis = lambda dt=None: now_ms() if dt is None else _unix_time(dt) * 1000.0


def template_path(stage: str = "dev") -> Path:
    return REPO / "cdk.out" / f"ChatAnalytics-{stage}.template.json"


def processor_environment(template: dict, outputs: dict[str, str]) -> dict[str, str]:
    """The processor function's environment as the template sets it, with the deployed table's name."""
    function = _single(template, "AWS::Lambda::Function")
    env = {k: v for k, v in function["Properties"]["Environment"]["Variables"].items() if isinstance(v, str)}
    env["TABLE_NAME"] = outputs[contract.EVENTS_TABLE_NAME]
    env["LAKE_STREAM_NAME"] = outputs[contract.LAKE_STREAM_NAME]
    return env


@dataclass
class Deployment:
    """What :func:`deploy_template` created: the stack's outputs and resources, and what it did."""

    stack_name: str
    template: dict
    outputs: dict[str, str]
    deployed: dict[str, dict]
    report: list[str]
    event_source_uuid: str = ""


def deploy_template(session: boto3.Session, endpoint_url: str | None, template_file: Path) -> Deployment:
    """Deploy a synthesized template into moto (a server at ``endpoint_url``, or in-process under
    ``mock_aws`` with ``None``) the way ``cdk deploy`` would: public parameters, assets, moto's
    CloudFormation for what it implements, and the stand-ins for what it does not."""
    template = json.loads(template_file.read_text())
    stack_name = template_file.name.removesuffix(".template.json")
    firehose_custom_prefixes()
    report: list[str] = []
    report += _seed_public_parameters(template, session.region_name or REGION)
    report += _upload_assets(session, endpoint_url, template_file.parent, template)
    local = adapt(template, set(get_model_map()))
    report += [f"patched: {line}" for line in local.patches]
    cfn = session.client("cloudformation", endpoint_url=endpoint_url)
    cfn.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(local.body),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"local deployment of {stack_name} ended {stack['StackStatus']}: {stack.get('StackStatusReason')}")
    all_outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    deployed = {r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]}
    missing = set(local.body["Resources"]) - set(deployed)
    if missing:
        raise RuntimeError(f"moto did not create {sorted(missing)}")
    report.append(f"deployed by moto's CloudFormation: {len(deployed)} resources")
    report += [f"stand-in: {line}" for line in create_stand_ins(session, endpoint_url, stack_name, local.resolved(all_outputs))]
    outputs = {k: v for k, v in all_outputs.items() if k not in local.resolve_outputs}
    uuid = _register_event_source_mapping(session, endpoint_url, template, outputs)
    report.append(
        "stand-in: the event source mapping registered with moto's Lambda (its API answers as AWS's does; the emulator"
        " polls the queue while it is Enabled)"
    )
    return Deployment(stack_name, template, outputs, deployed, report, uuid)


class LocalStack:
    """The deployed stack on an in-process moto server; ``stop()``/``start()`` keep its state."""

    def __init__(self, template: Path | None = None, *, port: int | None = None, enforce_iam: bool = True) -> None:
        self.template_file = template or template_path()
        if not self.template_file.exists():
            raise FileNotFoundError(f"{self.template_file} not found: run `make synth` first")
        self.port = port or free_port()
        self.enforce_iam = enforce_iam
        self.server: ThreadedMotoServer | None = None
        self.info: StackInfo | None = None
        self._saved_auth_count = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_server(self) -> None:
        speed_up_moto_sqs()
        bridge_sqs_batch_actions()
        sign_bodiless_requests_as_sent()
        authorize_firehose_streams()
        authorize_athena_and_glue_resources()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the output
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        _wait_for_port(self.port)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def deploy(self) -> StackInfo:
        """Start the server (if needed) and deploy the template; idempotent per process."""
        if self.server is None:
            self.start_server()
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
        # moto's state lives in this process: start from an empty account, as a fresh deploy would.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST"), timeout=10).close()
        setup = Credentials("AKIDLOCALSETUP", "local-setup-secret-key-not-checked-yet")
        deployment = deploy_template(setup.session(), self.endpoint_url, self.template_file)
        template, stack_name, outputs, deployed = deployment.template, deployment.stack_name, deployment.outputs, deployment.deployed
        report = list(deployment.report)

        iam = setup.session().client("iam", endpoint_url=self.endpoint_url)
        admin = _create_admin(iam)
        producer = _producer_credentials(setup.session(), self.endpoint_url, template, deployed, outputs)
        _secret_points_at_local_queue(setup.session(), self.endpoint_url, outputs)
        report.append("secret: AWS_SQS_URL is the queue's URL on the local endpoint (moto's CloudFormation reports AWS's host)")
        report.append("IAM: SQS batch actions authorized as their single-message action, as AWS does (moto patched)")
        report.append("IAM: Athena and Glue actions authorized against the workgroup's and the table's ARN, as AWS does (moto patched)")
        _bridge_processor_role(iam, template, deployed, outputs)
        report.append(
            f"IAM: {MOTO_PROCESSOR_BRIDGE_POLICY} added to the processor role (moto authorizes DynamoDB calls against resource *)"
        )
        processor = _processor_credentials(admin.session(), self.endpoint_url, template, deployed)
        event_source = _event_source(template)
        event_source["uuid"] = deployment.event_source_uuid
        env = processor_environment(template, outputs)
        if self.enforce_iam:
            moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
            report.append("IAM enforcement on: every request is authenticated and authorized by moto")
        self.info = StackInfo(
            endpoint_url=self.endpoint_url,
            region=REGION,
            stack_name=stack_name,
            outputs=outputs,
            admin=admin,
            producer=producer,
            processor=processor,
            event_source=event_source,
            processor_environment=env,
            report=report,
        )
        return self.info

    def close(self) -> None:
        self.stop_server()
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = self._saved_auth_count

    def __enter__(self) -> StackInfo:
        return self.deploy()

    def __exit__(self, *exc) -> None:
        self.close()


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not listen on 127.0.0.1:{port}")


def _single(template: dict, resource_type: str) -> dict:
    [resource] = [r for r in template["Resources"].values() if r["Type"] == resource_type]
    return resource


def _seed_public_parameters(template: dict, region: str = REGION) -> list[str]:
    """AWS's public SSM parameters the template reads (CDK bootstrap version, Powertools layer).

    moto refuses PutParameter under /aws/, as AWS does; like moto's own AMI parameters, these
    are written into its SSM backend directly.
    """
    backend = ssm_backends[ACCOUNT_ID][region]
    lines = []
    for name, parameter in template.get("Parameters", {}).items():
        path = parameter.get("Default", "")
        if not parameter.get("Type", "").startswith("AWS::SSM::Parameter::Value") or backend._parameters.get(path):
            continue
        if path.startswith("/aws/service/powertools/"):
            runtime, arch = path.split("/")[6], path.split("/")[5]
            value = f"arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-{runtime.replace('.', '')}-{arch}:1"
        elif path.startswith("/cdk-bootstrap/"):
            value = "30"
        else:
            raise ValueError(f"template parameter {name} reads {path}, which the local stack does not know")
        backend._parameters[path].append(
            Parameter(  # type: ignore[abstract]  # moto's own model, created as its SSM backend does
                account_id=ACCOUNT_ID,
                name=path,
                value=value,
                parameter_type="String",
                description="local stand-in for a public parameter",
                allowed_pattern=None,
                keyid=None,
                last_modified_date=datetime.now(UTC),
                version=1,
                data_type="text",
                tier="Standard",
                policies=None,
            )
        )
        lines.append(f"SSM parameter {path} = {value}")
    return lines


def _upload_assets(session: boto3.Session, endpoint_url: str | None, assembly_dir: Path, template: dict) -> list[str]:
    """Put each Lambda asset where ``cdk deploy`` would: the bootstrap bucket, zipped."""
    s3 = session.client("s3", endpoint_url=endpoint_url)
    bucket = f"cdk-{BOOTSTRAP_QUALIFIER}-assets-{ACCOUNT_ID}-{REGION}"
    s3.create_bucket(Bucket=bucket)
    lines = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        key = resource["Properties"]["Code"]["S3Key"]
        folder = assembly_dir / f"asset.{key.removesuffix('.zip')}"
        if not folder.is_dir():
            raise FileNotFoundError(f"asset folder {folder} missing: run `make synth`")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        lines.append(f"asset s3://{bucket}/{key} ({len(buffer.getvalue())} bytes)")
    return lines


def _create_admin(iam) -> Credentials:
    """An administrator for setup, tests and the operations tool (local only)."""
    iam.create_user(UserName="local-admin")
    iam.put_user_policy(
        UserName="local-admin",
        PolicyName="local-admin",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    key = iam.create_access_key(UserName="local-admin")["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


def _logical_id(template: dict, resource_type: str) -> str:
    [logical_id] = [k for k, r in template["Resources"].items() if r["Type"] == resource_type]
    return logical_id


def _producer_credentials(session: boto3.Session, endpoint_url: str, template: dict, deployed: dict, outputs: dict) -> Credentials:
    """Read the producer's key the way a deployer does: from the stack's secret."""
    secrets = session.client("secretsmanager", endpoint_url=endpoint_url)
    value = json.loads(secrets.get_secret_value(SecretId=outputs[contract.PRODUCER_SECRET_NAME])["SecretString"])
    return Credentials(value["AWS_ACCESS_KEY_ID"], value["AWS_SECRET_ACCESS_KEY"])


def local_queue_url(endpoint_url: str, queue_url: str) -> str:
    """A queue's URL on the local endpoint (moto reports AWS's host name)."""
    return f"{endpoint_url}/{'/'.join(queue_url.rsplit('/', 2)[-2:])}"


def _secret_points_at_local_queue(session: boto3.Session, endpoint_url: str, outputs: dict) -> None:
    """The producer secret holds the queue URL a producer sends to; locally that is the local endpoint's, so the
    Worker's values (`chat-analytics credentials worker-env`, `AnalyticsLogger.from_env`) send here, not to AWS."""
    secrets = session.client("secretsmanager", endpoint_url=endpoint_url)
    value = json.loads(secrets.get_secret_value(SecretId=outputs[contract.PRODUCER_SECRET_NAME])["SecretString"])
    value["AWS_SQS_URL"] = local_queue_url(endpoint_url, outputs[contract.EVENTS_QUEUE_URL])
    secrets.put_secret_value(SecretId=outputs[contract.PRODUCER_SECRET_NAME], SecretString=json.dumps(value))


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _bridge_processor_role(iam, template: dict, deployed: dict, outputs: dict) -> None:
    function = _single(template, "AWS::Lambda::Function")
    role = deployed[function["Properties"]["Role"]["Fn::GetAtt"][0]]["PhysicalResourceId"]
    iam.put_role_policy(
        RoleName=role,
        PolicyName=MOTO_PROCESSOR_BRIDGE_POLICY,
        PolicyDocument=_policy({"Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "*"}),
    )


def _processor_credentials(admin: boto3.Session, endpoint_url: str, template: dict, deployed: dict) -> Credentials:
    """The processor runs with its own role's credentials, as in Lambda, so its policy is enforced too."""
    function = _single(template, "AWS::Lambda::Function")
    role_logical_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    role_name = deployed[role_logical_id]["PhysicalResourceId"]
    iam = admin.client("iam", endpoint_url=endpoint_url)
    role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    sts = admin.client("sts", endpoint_url=endpoint_url)
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="processor", DurationSeconds=43200)["Credentials"]
    return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def _register_event_source_mapping(session: boto3.Session, endpoint_url: str | None, template: dict, outputs: dict) -> str:
    """The template's event source mapping, created in moto's Lambda so that its API (list, get, update: what
    ``chat-analytics check`` reads, what an operator disables) answers as AWS's does. moto would also invoke the
    function on every send (in Docker): the queue forgets the mapping, and the emulator polls while it is enabled.
    Returns the mapping's UUID."""
    from moto.sqs.models import sqs_backends

    mapping = _single(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    queue_url = local_queue_url(endpoint_url, outputs[contract.EVENTS_QUEUE_URL]) if endpoint_url else outputs[contract.EVENTS_QUEUE_URL]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    spec: dict = {"EventSourceArn": queue_arn, "FunctionName": outputs[contract.PROCESSOR_FUNCTION_NAME]}
    for key in ("BatchSize", "FunctionResponseTypes", "ScalingConfig", "Enabled", "MaximumBatchingWindowInSeconds"):
        if key in mapping:
            spec[key] = mapping[key]
    created = session.client("lambda", endpoint_url=endpoint_url).create_event_source_mapping(**spec)
    for queue in sqs_backends[ACCOUNT_ID][session.region_name or REGION].queues.values():
        queue.lambda_event_source_mappings.clear()
    return created["UUID"]


def event_source_enabled(uuid: str, region: str = REGION) -> bool:
    """Whether the local mapping is enabled now (read from moto's Lambda in this process, no request)."""
    from moto.awslambda.models import lambda_backends

    mapping = lambda_backends[ACCOUNT_ID][region].get_event_source_mapping(uuid)
    return bool(mapping and mapping.enabled)


def _event_source(template: dict) -> dict:
    mapping = _single(template, "AWS::Lambda::EventSourceMapping")["Properties"]
    return {
        "batch_size": int(mapping.get("BatchSize", 10)),
        "max_concurrency": int(mapping.get("ScalingConfig", {}).get("MaximumConcurrency", 2)),
        "report_batch_item_failures": "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []),
    }


def stand_in_summary() -> list[str]:
    return [f"{t}: {how}" for t, how in STAND_INS.items()]


if __name__ == "__main__":  # a quick manual check: deploy and print what happened
    with LocalStack() as info:
        print("\n".join(info.report))
        print(json.dumps(info.outputs, indent=2))
