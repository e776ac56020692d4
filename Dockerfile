# Production image: the official Airflow 3.3 image plus this project's pinned dependencies.
# The DAGs, the dynamodb_backup package (plugins/) and include/ are baked in.
FROM apache/airflow:3.3.2-python3.11

# The lock file pins every package, Airflow included, so the image resolves exactly
# what the tests ran against.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml

ENV DYNAMODB_BACKUPS_FILE=/opt/airflow/include/backups.yaml \
    PYTHONPATH=/opt/airflow/plugins
