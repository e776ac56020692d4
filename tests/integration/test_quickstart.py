"""The quick start on AWS is a test: docs/quickstart-aws.md's blocks run as written, in order.

The blocks fenced as ```bash title="quickstart: <step>"``` are taken from the page itself and run
one after another with bash (``set -euo pipefail``), in a folder that stands for the user's clone
(``include/`` with the repository's IAM policies), against the local stack behind the strict front
door. What the test changes, and why:

* the endpoints: ``AWS_ENDPOINT_URL_DYNAMODB`` / ``_S3`` / ``_SNS`` (set by the ``local_aws``
  fixture) and ``_IAM`` / ``_STS`` (moto, behind the same door), which botocore, the AWS CLI and
  ``dynamodb-backup`` all honour;
* the credentials: the user's steps run as the door's administrator (no policy); the steps titled
  "(as the role)" run as a principal of the door standing for the workers' role. There is no IAM
  service in the local stack that the door asks: after step 2 created and attached the policy in
  moto's IAM, the test reads the document attached to the role back from moto and gives exactly
  that document to the door as the principal's policy, so every call of steps 5 (the test notice),
  6 and 7 is allowed or denied by it (and the test counts that no call was denied, and that a call
  outside it is);
* the commands ``aws`` and ``dynamodb-backup`` are this interpreter's ``python -m awscli`` and
  ``python -m dynamodb_backup`` (what the installed commands run).

Preconditions the page states (a table to back up, the workers' role) are made by the test. Between
steps it checks what each produced: the narrowed policy, a ``backups.yaml`` that generates the
table's DAG, the connection Airflow parses, the notice published, the backup folder complete
(``_SUCCESS``), and the restored table equal to the source, item for item.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from backup_folders import assert_holds_exactly, scan_all
from demo_data import ALL_TYPES_TABLE, TABLE_SPECS, all_types_items, create_table, put_items
from dynamodb_backup.config import NOTICES_OFF_TAG, load_backups
from dynamodb_backup.formats.layout import SUCCESS
from faultproxy import Principal

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "quickstart-aws.md"
BLOCK = re.compile(r'^```bash title="quickstart: (?P<title>[^"]+)"\n(?P<body>.*?)^```$', re.M | re.S)
#: The issue's steps, in the order the page must take them.
STEPS = ["settings", "bucket", "IAM policy", "backups.yaml", "connection", "notices", "first backup",
         "first restore", "clean up"]
AS_THE_ROLE = "(as the role)"
ROLE_KEY, ROLE_SECRET = "AKIAQUICKSTARTROLE01", "quickstart-role-secret"


def page_blocks(text: str) -> list[tuple[str, str]]:
    return [(m["title"], m["body"]) for m in BLOCK.finditer(text)]


def test_the_page_takes_the_steps_in_order():
    titles = [title for title, _ in page_blocks(PAGE.read_text())]
    firsts = []
    for title in titles:
        step = next((s for s in STEPS if s in title), None)
        assert step, f"block {title!r} is none of the quick start's steps"
        if step not in firsts:
            firsts.append(step)
    assert firsts == STEPS
    assert [t for t in titles if AS_THE_ROLE in t] == [
        "5. notices, a test notice (as the role)", "6. first backup (as the role)", "7. first restore (as the role)"]


def test_the_readme_quick_start_is_the_page_s():
    """Every command of the README's short quick start is a line of the tested page (so it cannot drift)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start on a real AWS account", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"^```bash\n(.*?)^```$", section, re.M | re.S)
    commands = [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) >= 10
    body = "\n".join(body for _, body in page_blocks(PAGE.read_text()))
    assert [c for c in commands if c not in body] == []


def shims(folder: Path) -> Path:
    """``aws`` and ``dynamodb-backup`` as the installed commands run them, with this interpreter."""
    folder.mkdir()
    for name, module in (("aws", "awscli"), ("dynamodb-backup", "dynamodb_backup")):
        path = folder / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@"\n')
        path.chmod(0o755)
    return folder


class Page:
    """Runs the page's blocks one by one, carrying what they export from one block to the next."""

    def __init__(self, clone: Path, base_env: dict[str, str]) -> None:
        self.clone, self.base_env, self.exported = clone, base_env, {}

    def run(self, title: str, body: str, credentials: dict[str, str]) -> str:
        env = {**self.base_env, **self.exported, **credentials}
        dump = self.clone.parent / "env.out"
        script = f"set -euo pipefail\n{body}\nenv -0 > '{dump}'\n"
        done = subprocess.run(["bash", "-c", script], cwd=self.clone, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"step {title!r} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        after = dict(entry.split("=", 1) for entry in dump.read_text().split("\0") if "=" in entry)
        self.exported.update({k: v for k, v in after.items() if env.get(k) != v and not k.startswith(("_", "SHLVL"))
                              and k not in ("PWD", "OLDPWD")})
        return done.stdout + done.stderr


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    folder = tmp_path / "clone"
    (folder / "include").mkdir(parents=True)
    for policy in (REPO / "include").glob("iam-policy*.json"):
        (folder / "include" / policy.name).write_text(policy.read_text())
    return folder


def test_quickstart_runs_as_written(local_aws, clone, tmp_path, monkeypatch):
    door = local_aws.door
    assert door is not None, "the quick start runs behind the strict front door (FRONT_DOOR=off leaves it out)"
    admin = {"AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
             "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"]}
    role = {"AWS_ACCESS_KEY_ID": ROLE_KEY, "AWS_SECRET_ACCESS_KEY": ROLE_SECRET}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    base_env.update({k: os.environ[k] for k in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3",
                                                "AWS_ENDPOINT_URL_SNS")})
    base_env.update(AWS_ENDPOINT_URL_IAM=local_aws.s3_url, AWS_ENDPOINT_URL_STS=local_aws.s3_url,
                    PATH=f"{shims(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
                    PYTHONPATH=os.pathsep.join([str(REPO / "plugins"), str(REPO / "include")]))
    page = Page(clone, base_env)
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    iam = local_aws.client("iam")
    denied_before: Counter[str] | None = None

    for title, body in page_blocks(PAGE.read_text()):
        as_role = AS_THE_ROLE in title
        if as_role and denied_before is None:
            denied_before = Counter({k: v for k, v in door.counters.items() if k.startswith("denied:")})
        allowed_before = Counter(door.counters)
        started = time.monotonic()
        output = page.run(title, body, role if as_role else admin)
        print(f"step {title}: {time.monotonic() - started:.1f} s")
        env = page.exported

        if title.startswith("0."):
            # What the page assumes the reader has: the table (every DynamoDB type, and more rows) and the role.
            table, restored = env["TABLE"], f"{env['TABLE']}-restored"
            assert env["ACCOUNT"] == door.account and env["AWS_DEFAULT_REGION"] == local_aws.region
            for name in (table, restored):
                if name in ddb.list_tables()["TableNames"]:
                    ddb.delete_table(TableName=name)
            create_table(ddb, table, TABLE_SPECS[ALL_TYPES_TABLE])
            put_items(ddb, table, all_types_items() + [
                {"pk": {"S": f"order#{i:04d}"}, "sk": {"N": str(i)}, "total": {"N": f"{i}.{i % 100:02d}"},
                 "lines": {"L": [{"M": {"sku": {"S": f"sku-{j}"}, "qty": {"N": str(j + 1)}}} for j in range(i % 4)]}}
                for i in range(300)])
            iam.create_role(RoleName=env["WORKERS_ROLE"], AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "ec2.amazonaws.com"}}]}))
        elif title.startswith("1."):
            assert s3.get_bucket_versioning(Bucket=env["BUCKET"])["Status"] == "Enabled"
        elif title.startswith("2."):
            # The document attached to the role in (moto's) IAM becomes the door's policy for the role.
            [attached] = iam.list_attached_role_policies(RoleName=env["WORKERS_ROLE"])["AttachedPolicies"]
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
            document = json.loads(document) if isinstance(document, str) else document
            assert document == json.loads((clone / "dynamodb-backup-policy.json").read_text())
            resources = json.dumps(document)
            assert ":*:*:" not in resources and "arn:aws:s3:::*" not in resources, "left wide open"
            assert f"table/{table}*" in resources and f"arn:aws:s3:::{env['BUCKET']}/backups/*" in resources
            door.add_principal(Principal(ROLE_KEY, ROLE_SECRET, policy=document, name=env["WORKERS_ROLE"]))
        elif title.startswith("3."):
            [entry] = load_backups(clone / "include" / "backups.yaml")
            assert (entry.table, entry.bucket, entry.prefix) == (table, env["BUCKET"], "backups")
            assert entry.failure_sns_topic_arn == env["TOPIC_ARN"]
            assert_generates_the_dag(clone / "include" / "backups.yaml", f"dynamodb_backup_{table}", monkeypatch)
        elif title.startswith("4."):
            from airflow.models.connection import Connection

            connection = Connection.from_json(env["AIRFLOW_CONN_AWS_DEFAULT"], conn_id="aws_default")
            assert connection.conn_type == "aws" and connection.extra_dejson == {"region_name": local_aws.region}
            assert connection.login is None and connection.password is None, "no key stored: the role gives them"
        elif title.startswith("5.") and as_role:
            assert door.counters["allowed:sns:Publish"] == allowed_before["allowed:sns:Publish"] + 1
        elif title.startswith("6."):
            assert "complete" in output, output
            [folder] = [p["Prefix"] for p in s3.list_objects_v2(
                Bucket=env["BUCKET"], Prefix=f"backups/{table}/", Delimiter="/")["CommonPrefixes"]
                if not p["Prefix"].rstrip("/").rsplit("/", 1)[-1].startswith("_")]
            s3.head_object(Bucket=env["BUCKET"], Key=f"{folder}{SUCCESS}")  # complete: _SUCCESS is there
            assert door.counters["allowed:dynamodb:Scan"] > allowed_before["allowed:dynamodb:Scan"]
        elif title.startswith("7."):
            assert_holds_exactly(ddb, restored, scan_all(ddb, table))
            assert door.counters["allowed:dynamodb:BatchWriteItem"] > allowed_before["allowed:dynamodb:BatchWriteItem"]
            # Nothing the role did was refused ...
            assert denied_before is not None
            denied = Counter({k: v for k, v in door.counters.items() if k.startswith("denied:")})
            assert denied == denied_before, denied - denied_before
            # ... and it really is held to the policy: what the policy leaves out is denied, and counted.
            as_role_client = local_aws.dynamodb_client(aws_access_key_id=ROLE_KEY, aws_secret_access_key=ROLE_SECRET)
            with pytest.raises(as_role_client.exceptions.ClientError, match="AccessDenied"):
                as_role_client.delete_table(TableName=restored)
            assert door.counters["denied:dynamodb:DeleteTable"] == denied_before["denied:dynamodb:DeleteTable"] + 1
        elif title.startswith("8."):
            assert restored not in ddb.list_tables()["TableNames"] or \
                ddb.describe_table(TableName=restored)["Table"]["TableStatus"] == "DELETING"
    door.remove_principal(ROLE_KEY)
    assert page.exported.get("TABLE"), "no block ran"


def assert_generates_the_dag(backups_file: Path, dag_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup DAG file, reading this backups.yaml, makes the table's DAG with no import error, notices on."""
    from airflow.dag_processing.dagbag import DagBag

    with monkeypatch.context() as patched:
        patched.setenv("DYNAMODB_BACKUPS_FILE", str(backups_file))
        bag = DagBag(dag_folder=str(REPO / "dags" / "dynamodb_backup.py"))
    assert not bag.import_errors, bag.import_errors
    assert dag_id in bag.dags
    assert NOTICES_OFF_TAG not in bag.dags[dag_id].tags, "the topic is set: notices are on"
