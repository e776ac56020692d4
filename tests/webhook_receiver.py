"""A webhook for the notice tests: a local HTTP server that keeps the JSON body of every POST it receives.

Used by the stream DAG's gap notice (tests/dags/test_stream_dag.py) and the failure notifier
(tests/e2e/test_failure_notice.py), which post through an Airflow HTTP connection:
:meth:`WebhookReceiver.airflow_connection` is that connection's JSON, for an ``AIRFLOW_CONN_*``
variable.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any


class WebhookReceiver:
    """``with WebhookReceiver() as webhook:`` serves on a free port of 127.0.0.1 until the block ends.

    ``received`` holds the posted bodies in the order they came (read it after the block: the
    server's thread appends to it while it serves).
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # no request lines in the test output

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]

    def airflow_connection(self) -> str:
        """The Airflow HTTP connection to this server, as JSON for an ``AIRFLOW_CONN_<ID>`` variable."""
        return json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": self.port, "schema": "http"})

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
