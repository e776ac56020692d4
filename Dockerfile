# Production image: the official Airflow 3.3 image plus this project's pinned dependencies.
# The DAGs, the dynamodb_backup package (plugins/) and include/ are baked in; .dockerignore keeps the local
# stack's settings (include/local-airflow-settings.yaml: localhost endpoints) out of it.
# docker compose and the Helm chart (deploy/helm-values.yaml) run this image; paths are the official
# image's AIRFLOW_HOME, /opt/airflow.
FROM apache/airflow:3.3.2-python3.11

# The lock file pins every package, Airflow included, so the image resolves exactly
# what the tests ran against.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml

# No default bucket, notices topic or Fernet key: the deployment sets DYNAMODB_BACKUP_BUCKET,
# DYNAMODB_BACKUP_FAILURE_TOPIC_ARN and AIRFLOW__CORE__FERNET_KEY, and include/deploy_check.py refuses to
# start without the bucket and the key.
ENV DYNAMODB_BACKUPS_FILE=/opt/airflow/include/backups.yaml \
    PYTHONPATH=/opt/airflow/plugins:/opt/airflow/include
