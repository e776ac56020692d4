"""The Airflow shell: operators, params and callbacks. The only place that imports Airflow."""
