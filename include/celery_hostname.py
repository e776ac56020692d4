"""``[core] hostname_callable`` for several Celery workers on one machine.

Airflow records ``hostname_callable()`` as each task instance's ``hostname``. Workers on one host
would all report the same name, so ``include/local_celery.py`` gives each worker its own
``LOCAL_CELERY_HOSTNAME`` and sets ``AIRFLOW__CORE__HOSTNAME_CALLABLE=celery_hostname.hostname``.
"""

from __future__ import annotations

import os
import socket

ENV = "LOCAL_CELERY_HOSTNAME"


def hostname() -> str:
    """This worker's name (``LOCAL_CELERY_HOSTNAME``), or the machine's when it has none."""
    return os.environ.get(ENV) or socket.getfqdn()
