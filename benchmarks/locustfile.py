"""The load benchmarks/serving_load.py puts on a model server: closed-loop users, each posting
one ``/invocations`` query for a random known user after another, with no think time.

Run by locust (``locust -f benchmarks/locustfile.py --headless ...``), never imported by a
notebook kernel: locust's gevent patches would hang it. NCF_USERS: raw user ids are 1..NCF_USERS.
"""

from __future__ import annotations

import os
import random

from locust import FastHttpUser, constant, task

USERS = int(os.environ.get("NCF_USERS", "943"))
K = int(os.environ.get("NCF_K", "10"))


class Recommendations(FastHttpUser):
    wait_time = constant(0)

    @task
    def invoke(self) -> None:
        body = {"user_id": random.randint(1, USERS), "k": K}
        self.client.post("/invocations", json=body, name="/invocations")
