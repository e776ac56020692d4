#!/usr/bin/env bash
# The demo behind `make run`: local AWS, seed data, a backup through Airflow,
# then what landed in S3. Run from the repository root by the Makefile.
set -euo pipefail

PY=.venv/bin/python
eval "$($PY include/local_aws.py start)"
export DYNAMODB_BACKUP_BUCKET=${DYNAMODB_BACKUP_BUCKET:-dynamodb-backups}
export DYNAMODB_BACKUP_PREFIX=${DYNAMODB_BACKUP_PREFIX:-backups}

echo "== seeding the demo tables"
$PY include/demo_data.py --bucket "$DYNAMODB_BACKUP_BUCKET"

echo "== applying include/local-airflow-settings.yaml (the local connection and the pool)"
$PY include/airflow_settings_loader.py include/local-airflow-settings.yaml

# The logical date names the folder; a fixed time today keeps re-runs idempotent.
date=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
echo "== backing up ReferrerCounts through Airflow (airflow dags test, logical date $date)"
.venv/bin/airflow dags test dynamodb_backup_ReferrerCounts "$date" >"$AIRFLOW_HOME/dags-test-backup.log" 2>&1 || {
    tail -n 60 "$AIRFLOW_HOME/dags-test-backup.log"; echo "backup DAG failed; full log: $AIRFLOW_HOME/dags-test-backup.log"; exit 1; }
grep -E "plan for|worker [0-9]+:.*finished|sealed" "$AIRFLOW_HOME/dags-test-backup.log" \
    | sed -E 's/^.*\[info *\] /  /; s/ \[dynamodb_backup[^]]*\].*$//' || true

folder="s3://$DYNAMODB_BACKUP_BUCKET/$DYNAMODB_BACKUP_PREFIX/ReferrerCounts/$(date -u -d "$date" +%Y-%m-%d-%H-%M-%S)"
echo "== the backup folder"
$PY -m dynamodb_backup show "$folder"

# ReferrerCounts' GSI has 10 write units: at its own capacities the load would take 300 s (on AWS, and on
# DynamoDB Local, which reports what each index consumes). So load on demand, then settle to the backup's.
echo "== restoring the backup into Import-test through Airflow (dynamodb_restore, write ratio 1.0, loaded on demand)"
.venv/bin/airflow dags test dynamodb_restore "$date" \
    -c "{\"source\": \"$folder\", \"target_table\": \"Import-test\", \"create_table\": true, \"write_ratio\": 1.0, \"load_capacity\": \"on-demand\"}" \
    >"$AIRFLOW_HOME/dags-test-restore.log" 2>&1 || {
    tail -n 60 "$AIRFLOW_HOME/dags-test-restore.log"; echo "restore DAG failed; full log: $AIRFLOW_HOME/dags-test-restore.log"; exit 1; }
grep -E "is a backup written|all [0-9]+ files valid|checkpoint markers removed|MISMATCH" "$AIRFLOW_HOME/dags-test-restore.log" \
    | sed -E 's/^.*\] (s3:\/\/|all [0-9]|verified:|MISMATCH)/  \1/; s/ +\[[A-Za-z_.]+\] loc=.*$//' || true
echo "== counting Import-test by scanning it (DescribeTable's ItemCount lags by hours)"
$PY -m dynamodb_backup verify "$folder" --table Import-test

# The same table as it was at the same moment, from point-in-time recovery: no read capacity spent.
# (Locally, DynamoDB's export comes from the PITR stand-in in front of the local DynamoDB server,
# DynamoDB Local or dynalite as LOCAL_DYNAMODB_BACKEND says; see the README.)
pitr_prefix="$DYNAMODB_BACKUP_PREFIX-pitr"
echo "== backing up ReferrerCounts as it was at $date by point-in-time export (mode pitr, prefix $pitr_prefix)"
.venv/bin/airflow dags test dynamodb_backup_ReferrerCounts "$date" \
    -c "{\"mode\": \"pitr\", \"prefix\": \"$pitr_prefix\"}" >"$AIRFLOW_HOME/dags-test-pitr.log" 2>&1 || {
    tail -n 60 "$AIRFLOW_HOME/dags-test-pitr.log"; echo "pitr backup DAG failed; full log: $AIRFLOW_HOME/dags-test-pitr.log"; exit 1; }
grep -E "can be exported from|export .* into s3|ended COMPLETED|convert [0-9]+:.*finished|sealed|staging copy" \
    "$AIRFLOW_HOME/dags-test-pitr.log" | sed -E 's/^.*\[info *\] /  /; s/ \[dynamodb_backup[^]]*\].*$//' || true
pitr_folder="s3://$DYNAMODB_BACKUP_BUCKET/$pitr_prefix/ReferrerCounts/$(date -u -d "$date" +%Y-%m-%d-%H-%M-%S)"
echo "== both backups of ReferrerCounts at $date: scan, then pitr"
$PY -m dynamodb_backup ls "s3://$DYNAMODB_BACKUP_BUCKET/$DYNAMODB_BACKUP_PREFIX/ReferrerCounts"
$PY -m dynamodb_backup ls "s3://$DYNAMODB_BACKUP_BUCKET/$pitr_prefix/ReferrerCounts"
echo "== the pitr folder holds what Import-test holds (restored from the scan backup)"
$PY -m dynamodb_backup verify "$pitr_folder" --table Import-test
