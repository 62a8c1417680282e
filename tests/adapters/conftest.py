import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the demos package (fake model server, stage) lives at the root
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "true")

from adapters.compose import memory_runtime  # noqa: E402
from demos.fake_model import FakeModel, serve  # noqa: E402
from demos.stage import POLICY_DIR, make_stage  # noqa: E402
from gateway.clock import FakeClock  # noqa: E402
from gateway.keys import create_key  # noqa: E402
from gateway.model import Role  # noqa: E402
from policies.loader import load_policy_files  # noqa: E402

from adapter_support import PAYMENT_SCOPE  # noqa: E402


@pytest.fixture(scope="module")
def model_server():
    model = FakeModel()
    with serve(model.app()) as url:
        yield model, f"{url}/v1"


@pytest.fixture
def fake_model(model_server):
    model, base_url = model_server
    model.requests.clear()
    return model, base_url


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def stage(clock):
    # drift off here so codes are deterministic; test_drift_* turn it on
    return await make_stage([POLICY_DIR / "payments.yaml"], clock=clock, drift=False)


@pytest.fixture
async def drift_stage(clock):
    return await make_stage([POLICY_DIR / "payments.yaml"], clock=clock, drift=True)


@pytest.fixture
async def grant(stage):
    client = stage.agent_client()
    g = await client.request_grant("pay this month's supplier invoice to ACME GmbH",
                                   PAYMENT_SCOPE, ttl_s=900)
    assert g["status"] == "active"
    return g["grant_id"]


@pytest.fixture(scope="module")
def http_gateway():
    """The real HTTP app on loopback (its own thread and loop), with two agent keys."""
    async def build():
        runtime = await memory_runtime(load_policy_files([POLICY_DIR / "payments.yaml"]))
        agent = create_key(Role.AGENT, "payer", runtime.gateway.clock)
        other = create_key(Role.AGENT, "payer-2", runtime.gateway.clock)
        for key in (agent, other):
            await runtime.gateway.keys.add(key.record)
        return runtime, agent.secret_key, other.secret_key

    # each test uses its own agent: a drift in one makes that agent's next grants need approval
    runtime, agent_key, other_key = asyncio.run(build())
    with serve(runtime.app(with_mcp=False)) as url:
        yield url, agent_key, other_key
