"""Every AWS mistake ends in one line saying what is wrong and what to do, with its exit code.

The table mirrors docs/troubleshooting.md's "When AWS says no" (summarised in the README). Each case runs the real
command line (``python -m dynamodb_backup``, a subprocess with its own environment) against the
local servers, behind the strict front door (``faultproxy.strict``: signatures, clocks, keys and
IAM policies checked as AWS checks them) where AWS's refusal is the case, or against a socket
that refuses or never answers. For each: the exit code; stderr's last line is the one
``error:`` line and holds what the case must say; no traceback, unless ``-v`` (which must show
one). A case with a bound records its elapsed time and checks it against the stated bound with
room to spare (a bound is a guarantee, not a speed). Each case counts that its refusal happened
(the door's counters, the proxy's throttles).
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dynamodb_backup.aws import clients, retry
from dynamodb_backup.aws.mistakes import AWS_SETUP, BAD_INPUT, THROTTLED, UNREACHABLE, explain
from faultproxy import DynamoDBFaultProxy, DynamoFaults, S3FaultProxy
from faultproxy.strict import FrontDoor, MovableClock, Principal

REPO = Path(__file__).resolve().parents[2]
ITEMS = 6
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def allow_all_but(*actions: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "NotAction": list(actions), "Resource": "*"}]}


PRINCIPALS = {
    "admin": Principal("testing", "testing"),
    "expired": Principal("ASIAEXPIREDTOKEN", "secret", session_token="tok",
                         expires=datetime.now(UTC) - timedelta(hours=1)),
    "no-scan": Principal("AKIANOSCAN", "secret", policy=allow_all_but("dynamodb:Scan"), name="no-scan"),
    "no-write": Principal("AKIANOWRITE", "secret", policy=allow_all_but("dynamodb:BatchWriteItem",
                                                                         "dynamodb:PutItem"), name="no-write"),
    "no-put": Principal("AKIANOPUT", "secret", policy=allow_all_but("s3:PutObject"), name="no-put"),
    "no-get": Principal("AKIANOGET", "secret", policy=allow_all_but("s3:GetObject"), name="no-get"),
    "no-kms": Principal("AKIANOKMS", "secret", policy=allow_all_but("kms:Decrypt"), name="no-kms"),
    "no-list": Principal("AKIANOLIST", "secret", policy=allow_all_but("s3:ListBucket"), name="no-list"),
}


@dataclass
class Stage:
    """What the cases run against: the door, its proxies, and the data they find."""

    door: FrontDoor
    dynamodb: DynamoDBFaultProxy
    s3: S3FaultProxy
    table: str
    bucket: str
    folder: str
    kms_folder: str
    target: str
    base_env: dict[str, str] = field(default_factory=dict)

    def env(self, who: str = "admin", **overrides: str | None) -> dict[str, str]:
        principal = PRINCIPALS[who]
        env = {**self.base_env, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.url, "AWS_ENDPOINT_URL_S3": self.s3.url,
               "AWS_ACCESS_KEY_ID": principal.access_key, "AWS_SECRET_ACCESS_KEY": principal.secret_key}
        if principal.session_token:
            env["AWS_SESSION_TOKEN"] = principal.session_token
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env


def quiet_env() -> dict[str, str]:
    """The test process's environment without anything that could find other credentials or config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k in ("AWS_CA_BUNDLE",)}
    env.update({"PYTHONPATH": str(REPO / "plugins"), "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-creds",
                "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def servers(local_aws: Any) -> tuple[str, str]:
    """The stand-in and moto themselves: this file's door goes in front of them, not behind the session's."""
    return getattr(local_aws, "standin_url", local_aws.dynamodb_url), local_aws.moto_url


@pytest.fixture(scope="module")
def stage(local_aws, tmp_path_factory) -> Iterator[Stage]:
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    table, target, bucket = "mistakes-source", "mistakes-target", "mistakes-bucket"
    for name in (table, target):
        local_aws.create_table(name)
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "v": {"N": str(i)}}}}
                                               for i in range(ITEMS)]})
    s3.create_bucket(Bucket=bucket)
    env = quiet_env()
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_ENDPOINT_URL_DYNAMODB": local_aws.dynamodb_url, "AWS_ENDPOINT_URL_S3": local_aws.s3_url})
    done = subprocess.run([sys.executable, "-m", "dynamodb_backup", "export", "--table", table, "--to",
                           f"s3://{bucket}/ok", "--date", "2026-01-01T00:00:00Z", "--workers", "1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folder = f"s3://{bucket}/ok/{table}/2026-01-01-00-00-00"
    # The same backup with its sidecar encrypted under a customer KMS key: reading it needs kms:Decrypt.
    prefix = f"ok/{table}/2026-01-01-00-00-00/"
    kms_prefix = f"kms/{table}/2026-01-01-00-00-00/"
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY} if obj["Key"].endswith(".json") else {}
        s3.put_object(Bucket=bucket, Key=kms_prefix + obj["Key"][len(prefix):], Body=body, **extra)
    door = FrontDoor(principals=PRINCIPALS.values(), clock=MovableClock(), account="123456789012",
                     region="us-east-1")
    dynamodb_url, s3_url = servers(local_aws)
    with DynamoDBFaultProxy(dynamodb_url, strict=door) as ddb_proxy, S3FaultProxy(s3_url, strict=door) as s3_proxy:
        yield Stage(door, ddb_proxy, s3_proxy, table, bucket, folder, f"s3://{bucket}/kms/{table}/2026-01-01-00-00-00",
                    target, base_env=quiet_env())


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(argv: list[str], env: dict[str, str], timeout: float = 600) -> Outcome:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dynamodb_backup", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


#: The command's own log lines (progress, a retry's warning) that may come before the error line.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ")


def the_line(outcome: Outcome, alone: bool = True) -> str:
    """stderr's one error line: the last line, and no traceback. ``alone``: stderr holds nothing else;
    else only the command's log lines (it had started work) come before it."""
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.rstrip("\n").split("\n")
    assert lines[-1].startswith("error: "), outcome.stderr
    if alone:
        assert len(lines) == 1, f"expected stderr to be the one error line:\n{outcome.stderr}"
    for line in lines[:-1]:
        assert LOG_LINE.match(line), f"stray line {line!r} in:\n{outcome.stderr}"
    return lines[-1]


@dataclass
class Case:
    name: str
    argv: list[str]
    code: int
    says: list[str]
    """Regular expressions the line must match (what is wrong, and what to do)."""
    who: str = "admin"
    env: dict[str, str | None] = field(default_factory=dict)
    counted: str | None = None
    """The door's counter that proves the refusal happened."""
    logs: bool = False
    """The command had started work when AWS refused: its log lines may come before the error line."""


def export(stage_table: str = "{table}", *extra: str) -> list[str]:
    return ["export", "--table", stage_table, "--to", "s3://{bucket}/out", "--workers", "1", *extra]


NO_AWS_ENV: dict[str, str | None] = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                                     "AWS_SESSION_TOKEN": None}
CASES = [
    Case("no region", export(), AWS_SETUP, [r"^error: no AWS region is set: ", r"--region", r"AWS_DEFAULT_REGION"],
         env={"AWS_DEFAULT_REGION": None}),
    Case("bad parameter before no region", export("{table}", "--segments", "0"), BAD_INPUT,
         [r"^error: segments must be between 1 and 1000000, got 0$"], env={"AWS_DEFAULT_REGION": None}),
    Case("missing --keys file before AWS",
         ["restore", "{folder}", "--table", "{target}", "--keys", "/nonexistent/keys"], BAD_INPUT,
         [r"^error: keys: cannot read /nonexistent/keys \(No such file or directory\)$"],
         env={"AWS_DEFAULT_REGION": None}),
    Case("copy: a bad --checkpoint-dir before no region",
         ["copy", "--source-table", "{table}", "--dest-table", "{target}", "--checkpoint-dir", "/etc/hostname"],
         BAD_INPUT, [r"^error: --checkpoint-dir /etc/hostname: exists and is not a directory$"],
         env={"AWS_DEFAULT_REGION": None}),
    Case("verify: --segments 0 before no region", ["verify", "{folder}", "--table", "{target}", "--segments", "0"],
         BAD_INPUT, [r"^error: --segments must be at least 1, got 0$"], env={"AWS_DEFAULT_REGION": None}),
    Case("no credentials", export(), AWS_SETUP, [r"^error: no AWS credentials found", r"AWS_ACCESS_KEY_ID",
                                                 r"AWS_PROFILE", r"aws sso login"], env=NO_AWS_ENV),
    Case("partial credentials", export(), AWS_SETUP,
         [r"^error: AWS credentials are incomplete \(.*missing: AWS_SECRET_ACCESS_KEY\)", r"set both"],
         env={"AWS_SECRET_ACCESS_KEY": None}),
    Case("unknown key (DynamoDB)", ["verify", "{folder}", "--table", "{target}"], AWS_SETUP,
         [r"^error: AWS does not recognize the access key", r"UnrecognizedClientException|InvalidAccessKeyId",
          r"check AWS_ACCESS_KEY_ID"], env={"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY"},
         counted="refused:UnrecognizedClientException|refused:InvalidAccessKeyId"),
    Case("unknown key (S3)", ["ls", "s3://{bucket}/ok"], AWS_SETUP,
         [r"^error: AWS does not recognize the access key AKIAUNKNOWNKEY \(S3 ListObjectsV2: InvalidAccessKeyId",
          r"check AWS_ACCESS_KEY_ID"], env={"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY"},
         counted="refused:InvalidAccessKeyId"),
    Case("expired token (DynamoDB)", export(), AWS_SETUP,
         [r"^error: the AWS session token has expired", r"ExpiredToken", r"get fresh credentials"], who="expired",
         counted="refused:ExpiredTokenException|refused:ExpiredToken"),
    Case("expired token (S3)", ["ls", "s3://{bucket}/ok"], AWS_SETUP,
         [r"^error: the AWS session token has expired or is invalid \(S3 ListObjectsV2: ExpiredToken",
          r"get fresh credentials"], who="expired", counted="refused:ExpiredToken"),
    Case("bad secret key", ["ls", "s3://{bucket}/ok"], AWS_SETUP,
         [r"^error: AWS rejected the request's signature \(S3 ListObjectsV2: SignatureDoesNotMatch",
          r"check AWS_SECRET_ACCESS_KEY"], env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"},
         counted="refused:SignatureDoesNotMatch"),
    Case("scan denied", export(), AWS_SETUP,
         [r"^error: AWS denied dynamodb:Scan on arn:aws:dynamodb:us-east-1:123456789012:table/mistakes-source "
          r"to arn:aws:iam::123456789012:user/no-scan \(DynamoDB Scan: AccessDeniedException",
          r"allow it in the IAM policy"], who="no-scan", counted="denied:dynamodb:Scan", logs=True),
    Case("write denied", ["restore", "{folder}", "--table", "{target}", "--workers", "1", "--no-checkpoints"],
         AWS_SETUP, [r"^error: AWS denied dynamodb:BatchWriteItem on "
                     r"arn:aws:dynamodb:us-east-1:123456789012:table/mistakes-target", r"AccessDeniedException",
                     r"allow it in the IAM policy"], who="no-write", counted="denied:dynamodb:BatchWriteItem",
         logs=True),
    Case("S3 put denied", export(), AWS_SETUP,
         [r"^error: AWS denied s3:PutObject on arn:aws:s3:::mistakes-bucket/out/", r"AccessDenied",
          r"allow it in the IAM policy"], who="no-put", counted="denied:s3:PutObject", logs=True),
    Case("S3 get denied", ["restore", "{folder}", "--table", "{target}", "--workers", "1", "--no-checkpoints"],
         AWS_SETUP, [r"^error: AWS denied s3:GetObject on arn:aws:s3:::mistakes-bucket/ok/mistakes-source/",
                     r"AccessDenied", r"allow it in the IAM policy"], who="no-get", counted="denied:s3:GetObject"),
    Case("KMS denied", ["show", "{kms_folder}"], AWS_SETUP,
         [rf"^error: AWS denied kms:Decrypt on {re.escape(KMS_KEY)}", r"AccessDenied",
          r"grant kms:Decrypt on the key in the IAM policy and the key's policy"], who="no-kms",
         counted="denied:kms:Decrypt"),
    Case("bucket of another account", export(), AWS_SETUP,
         [r"^error: S3 refused HeadBucket on bucket 'mistakes-bucket' \(S3 HeadBucket: 403",
          r"belongs to another account", r"s3:ListBucket"], who="no-list", counted="denied:s3:ListBucket"),
]


def fill(argv: list[str], stage: Stage) -> list[str]:
    values = {"{table}": stage.table, "{bucket}": stage.bucket, "{folder}": stage.folder,
              "{kms_folder}": stage.kms_folder, "{target}": stage.target}
    out = []
    for arg in argv:
        for token, value in values.items():
            arg = arg.replace(token, value)
        out.append(arg)
    return out


def door_count(stage: Stage, counted: str) -> int:
    return sum(stage.door.counters[name] for name in counted.split("|"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_line_for_each_mistake(stage, case):
    argv, env = fill(case.argv, stage), stage.env(case.who, **case.env)
    before = door_count(stage, case.counted) if case.counted else 0
    outcome = run_cli(argv, env, timeout=120)
    line = the_line(outcome, alone=not case.logs)
    assert outcome.code == case.code, (outcome.stderr, stage.door.counters)
    for pattern in case.says:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r} {stage.door.counters}"
    if case.counted:
        assert door_count(stage, case.counted) > before, f"the door never refused: {stage.door.counters}"
    verbose = run_cli([*argv, "-v"], env, timeout=120)  # -v after the command works too
    assert verbose.code == case.code
    assert "Traceback (most recent call last)" in verbose.stderr
    last = verbose.stderr.rstrip("\n").split("\n")[-1]
    assert all(re.search(pattern, last) for pattern in case.says), last  # the same line (a fresh folder's name)


def test_wrong_region_names_the_region_asked(stage, local_aws):
    """A table that is not in the region asked: AWS answers ResourceNotFoundException from that region."""
    env = stage.env(AWS_ENDPOINT_URL_DYNAMODB=servers(local_aws)[0])  # no door: any region's signature passes
    outcome = run_cli(fill(export("mistakes-elsewhere", "--region", "eu-west-1"), stage), env, timeout=120)
    line = the_line(outcome)
    assert outcome.code == BAD_INPUT
    assert re.search(r"^error: table: DynamoDB table 'mistakes-elsewhere' does not exist in region eu-west-1", line)
    assert "--region" in line


def test_clock_off_by_more_than_five_minutes(stage):
    """The door's clock is 10 minutes ahead (DynamoDB: 5 min allowed) and then 20 (S3: 15 min)."""
    env = stage.env()
    before = stage.door.counters["refused:InvalidSignatureException"]
    stage.door.clock.advance(600)
    try:
        dynamodb = run_cli(fill(export(), stage), env, timeout=120)
        stage.door.clock.advance(600)
        s3 = run_cli(fill(["ls", "s3://{bucket}/ok"], stage), env, timeout=120)
    finally:
        stage.door.clock.advance(-1200)
    assert stage.door.counters["refused:InvalidSignatureException"] > before
    assert stage.door.counters["refused:RequestTimeTooSkewed"] > 0
    for outcome, said in ((dynamodb, r"InvalidSignatureException 'Signature expired"), (s3, "RequestTimeTooSkewed")):
        line = the_line(outcome, alone=False)  # an expired signature is signed again once, with a warning
        assert outcome.code == AWS_SETUP
        assert re.search(r"^error: AWS refused the request because this machine's clock is more than 5 minutes "
                         r"off", line)
        assert said in line or re.search(said, line), line
        assert "fix the clock" in line


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: A refused connection fails on its first attempt: no retry, so a few seconds even on a loaded machine.
REFUSED_BOUND = 5.0


def test_refused_connection_fails_in_seconds(stage):
    url = f"http://127.0.0.1:{closed_port()}"
    outcome = run_cli(fill(export(), stage), stage.env(AWS_ENDPOINT_URL_DYNAMODB=url, AWS_ENDPOINT_URL_S3=url))
    line = the_line(outcome)
    assert outcome.code == UNREACHABLE
    assert re.search(rf"^error: could not reach {re.escape(url)} \(\w+: the connection was refused\): check the "
                     r"endpoint \(--endpoint, AWS_ENDPOINT_URL_\*\)", line)
    print(f"refused connection: failed in {outcome.seconds:.1f} s (bound {REFUSED_BOUND} s + start-up)")
    assert outcome.seconds < 3 * (REFUSED_BOUND + 5), "far past the stated bound"


def test_endpoint_that_takes_no_connection_fails_within_its_bound(stage):
    """A listening socket whose backlog is full: the kernel drops further SYNs, so connecting times out."""
    with socket.socket() as full, socket.socket() as waiting:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        waiting.connect(full.getsockname())  # the one connection the backlog holds; nobody accepts it
        url = f"http://127.0.0.1:{full.getsockname()[1]}"
        outcome = run_cli(fill(export(), stage), stage.env(AWS_ENDPOINT_URL_DYNAMODB=url, AWS_ENDPOINT_URL_S3=url))
    line = the_line(outcome)
    assert outcome.code == UNREACHABLE
    assert re.search(rf"^error: could not reach {re.escape(url)} \(\w+: it did not accept a connection within "
                     rf"{clients.CONNECT_TIMEOUT} s\)", line)
    print(f"no connection: failed in {outcome.seconds:.1f} s (stated bound {clients.CONNECT_TIMEOUT} s)")
    assert outcome.seconds < 3 * clients.CONNECT_TIMEOUT


@pytest.mark.slow
def test_endpoint_that_never_answers_fails_within_its_bound(stage):
    """A socket that accepts connections (the kernel's backlog) and never reads or answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        outcome = run_cli(fill(export(), stage), stage.env(AWS_ENDPOINT_URL_DYNAMODB=url, AWS_ENDPOINT_URL_S3=url))
    line = the_line(outcome)
    bound = clients.CONNECT_TIMEOUT + clients.READ_TIMEOUT
    assert outcome.code == UNREACHABLE
    assert re.search(rf"^error: could not reach {re.escape(url)} \(\w+: it accepted the connection but did not "
                     rf"answer within {clients.READ_TIMEOUT} s\)", line)
    print(f"silent endpoint: failed in {outcome.seconds:.1f} s (stated bound {bound} s)")
    assert outcome.seconds < 3 * bound


def throttle_bound() -> float:
    """Throttling that never ends: the outer retries start no round after SUSTAINED_THROTTLE_SECONDS,
    and the last round is one call's own attempts with their backoffs (the CLI's client: 6)."""
    settings = retry.RetrySettings.of(clients.client("dynamodb", "http://127.0.0.1:9", "us-east-1"))
    return float(retry.SUSTAINED_THROTTLE_SECONDS + settings.worst_case_seconds())


@pytest.mark.slow
def test_throttling_that_never_ends_fails_within_its_bound(stage, local_aws):
    with DynamoDBFaultProxy(servers(local_aws)[0], strict=stage.door, faults=DynamoFaults(throttling=1.0)) as proxy:
        outcome = run_cli(fill(export(), stage), stage.env(AWS_ENDPOINT_URL_DYNAMODB=proxy.url))
        throttles = proxy.counters["throttling"]
    assert outcome.code == THROTTLED, outcome.stderr
    line = the_line(outcome, alone=False)  # the retries' warnings come first
    assert re.search(r"^error: AWS kept throttling Scan on DynamoDB table 'mistakes-source' after every retry "
                     r"\((ThrottlingException|ProvisionedThroughputExceededException)\): .*lower --read-ratio",
                     line)
    assert throttles >= 12, f"only {throttles} throttled answers"
    bound = throttle_bound()
    print(f"throttled forever: {throttles} throttled answers, failed in {outcome.seconds:.1f} s (bound {bound:.0f} s)")
    assert outcome.seconds < 3 * bound


# ----------------------------------------------------------------------------- the same line in Airflow


def test_an_operator_fails_with_the_same_line(stage, monkeypatch, capsys):
    """The backup DAG's plan task, denied HeadBucket: its failure and its log say the CLI's line."""
    from airflow.sdk.exceptions import AirflowException

    from dynamodb_backup.operators.backup import PlanBackupOperator

    for name, value in stage.env("no-list").items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    before = stage.door.counters["denied:s3:ListBucket"]
    task = PlanBackupOperator(task_id="plan", table=stage.table, bucket=stage.bucket, prefix="airflow")
    with pytest.raises(AirflowException) as failed:
        task.execute({"logical_date": datetime(2026, 1, 2, tzinfo=UTC)})  # type: ignore[arg-type]
    assert stage.door.counters["denied:s3:ListBucket"] > before
    line = str(failed.value)
    assert re.search(r"^S3 refused HeadBucket on bucket 'mistakes-bucket' \(S3 HeadBucket: 403", line), line
    assert isinstance(failed.value.__cause__, ClientError)
    assert f"error: {line}" in capsys.readouterr().out  # Airflow's task logger writes to stdout here


# ----------------------------------------------------------------------------- what no local server can show


def client_error(code: str, message: str, operation: str, status: int, **extra: Any) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message},
                                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": extra.pop("headers", {})},
                                **extra}
    return ClientError(response, operation)  # type: ignore[arg-type]


def test_a_bucket_in_another_region():
    """S3 answers HeadBucket with 301 and x-amz-bucket-region when the bucket lives elsewhere."""
    exc = client_error("301", "Moved Permanently", "HeadBucket", 301, headers={"x-amz-bucket-region": "eu-west-1"},
                       DynamoDBBackupCall={"service": "s3", "region": "us-east-1", "bucket": "theirs"})
    mistake = explain(exc)
    assert mistake is not None and mistake.code == AWS_SETUP
    assert mistake.line.startswith("S3 bucket 'theirs' is in region eu-west-1, not us-east-1")


def test_a_bug_is_not_a_mistake():
    assert explain(KeyError("x")) is None
    assert explain(gzip.BadGzipFile("x")) is None


def test_verbose_before_the_command_shows_the_traceback_too(stage):
    outcome = run_cli(["-v", *fill(export(), stage)], stage.env(AWS_DEFAULT_REGION=None))
    assert outcome.code == AWS_SETUP
    assert "Traceback (most recent call last)" in outcome.stderr and "NoRegionError" in outcome.stderr
    assert outcome.stderr.rstrip("\n").split("\n")[-1].startswith("error: no AWS region is set: ")


@pytest.mark.parametrize(("exc", "code", "starts"), [
    (client_error("SlowDown", "Please reduce your request rate.", "PutObject", 503,
                  DynamoDBBackupCall={"service": "s3", "bucket": "b", "key": "k"}),
     THROTTLED, "AWS kept throttling PutObject on s3://b/k after every retry (SlowDown)"),
    (client_error("KMS.DisabledException", "arn:aws:kms:us-east-1:1:key/x is disabled.", "PutObject", 400),
     AWS_SETUP, "the KMS key refused PutObject (S3 PutObject: KMS.DisabledException"),
    (client_error("InternalServerError", "Internal server error", "Scan", 500,
                  DynamoDBBackupCall={"service": "dynamodb", "table": "T"}),
     UNREACHABLE, "AWS kept failing Scan on DynamoDB table 'T' after every retry"),
    (client_error("ResourceNotFoundException", "Requested resource not found", "Scan", 400,
                  DynamoDBBackupCall={"service": "dynamodb", "region": "eu-west-1", "table": "T"}),
     BAD_INPUT, "DynamoDB table 'T' was not found in eu-west-1"),
], ids=["S3 SlowDown", "a disabled KMS key", "server errors after every retry", "a table deleted mid-run"])
def test_lines_for_answers_no_local_server_gives(exc, code, starts):
    mistake = explain(exc)
    assert mistake is not None and mistake.code == code
    assert mistake.line.startswith(starts), mistake.line


def test_credential_sources_that_fail():
    from botocore.exceptions import ProfileNotFound, TokenRetrievalError

    profile = explain(ProfileNotFound(profile="prod"))
    assert profile is not None and profile.code == AWS_SETUP and "AWS profile 'prod'" in profile.line
    sso = explain(TokenRetrievalError(provider="sso", error_msg="Token has expired and refresh failed"))
    assert sso is not None and sso.code == AWS_SETUP and "aws sso login" in sso.line
