"""Argument spellings that used to slip past rules and scopes, through the real Gateway and the
default policy packs: a path judged as the file it opens, an IPv4 address in every spelling a
resolver accepts, and a regex condition an agent cannot make backtrack for long."""

from __future__ import annotations

import pytest

from adapters.compose import memory_gateway
from gateway.clock import FakeClock
from gateway.grants import GrantRequest
from gateway.model import Effect, Principal, Role, ToolCall
from policies.conditions import MAX_REGEX_INPUT, RegexLimit, compile_constraint
from policies.loader import load_policy_texts
from policies.patterns import lexical_path, url_host

AGENT = Principal("agent:coder", Role.AGENT, "coder")
MAINTAINER = Principal("agent:ops", Role.AGENT, "ops", {"policy_role": "maintainer"})


@pytest.fixture
def gw():
    return memory_gateway(clock=FakeClock(), drift=None, ratelimiter=None)


@pytest.mark.parametrize("path", ["/workspace/.env/", "/workspace/.env/.", "/workspace/.env/x/..",
                                  "/workspace//.env", "/workspace/./.env"])
async def test_a_dotenv_file_is_refused_however_its_path_is_spelled(gw, path):
    g = await gw.request_grant(AGENT, GrantRequest("read the workspace", [{"tool": "fs.read_file"}],
                                                   600))
    auth = await gw.authorize(ToolCall(AGENT, "fs.read_file", {"path": path}, g.grant_id))
    assert auth.decision.effect is Effect.DENY and auth.decision.code == "secret_file", path


async def test_a_glob_scope_judges_the_file_a_path_opens(gw):
    policy = load_policy_texts([("globs", """
version: 1
name: globs
tiers: {low: {max_ttl_s: 3600, approval: auto, credential_ttl_s: 30}}
tools: [{match: "fs.*", tier: low, effect: read}]
roles:
  agent: {max_tier: low, baseline: [], ceiling: [{tool: fs.read_file, args: {path: {glob: "/workspace/docs/**"}}}]}
""")])
    gw = memory_gateway(policy, FakeClock(), drift=None, ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest(
        "read the docs", [{"tool": "fs.read_file", "args": {"path": {"glob": "/workspace/docs/**"}}}],
        600))
    inside = await gw.authorize(ToolCall(AGENT, "fs.read_file",
                                         {"path": "/workspace/docs/./a.md"}, g.grant_id))
    assert inside.decision.allowed
    escape = await gw.authorize(ToolCall(AGENT, "fs.read_file",
                                         {"path": "/workspace/docs/../../etc/shadow"}, g.grant_id))
    assert escape.decision.effect is Effect.DENY


def test_lexical_path():
    assert lexical_path("/a/b/") == "/a/b"
    assert lexical_path("//a//b/./c/../d") == "/a/b/d"
    assert lexical_path("/a/..") == "/"
    assert lexical_path("notes.txt") == "notes.txt"


@pytest.mark.parametrize("url", ["http://2852039166/", "http://0xa9fea9fe/",
                                 "http://0251.0376.0251.0376/", "http://169.254.43518/",
                                 "http://[::ffff:169.254.169.254]/", "http://169.254.169.254./"])
def test_every_spelling_of_an_ipv4_address_is_that_address(url):
    assert url_host(url) == "169.254.169.254"


async def test_the_metadata_endpoint_is_refused_in_every_spelling(gw):
    policy = load_policy_texts([("fetch", """
version: 1
name: fetch
tiers: {low: {max_ttl_s: 3600, approval: auto, credential_ttl_s: 30}}
tools: [{match: web.fetch, tier: low, effect: read}]
roles:
  agent: {max_tier: low, baseline: [], ceiling: [{tool: web.fetch}]}
rules:
  - id: no-cloud-metadata
    effect: deny
    code: metadata_endpoint
    message: never
    when: {args: {url: {host_in: [169.254.169.254]}}}
""")])
    gw = memory_gateway(policy, FakeClock(), drift=None, ratelimiter=None)
    g = await gw.request_grant(AGENT, GrantRequest("fetch pages", [{"tool": "web.fetch"}], 600))
    for url in ("http://2852039166/latest/meta-data/", "http://0xa9fea9fe/",
                "http://[::ffff:169.254.169.254]/"):
        auth = await gw.authorize(ToolCall(AGENT, "web.fetch", {"url": url}, g.grant_id))
        assert auth.decision.code == "metadata_endpoint", url
    ok = await gw.authorize(ToolCall(AGENT, "web.fetch", {"url": "http://example.org/"},
                                     g.grant_id))
    assert ok.decision.allowed


@pytest.mark.parametrize("command", ["curl|" * 20_000, "curl|" * 6_000])
async def test_input_that_makes_a_rule_backtrack_is_refused_not_waited_for(gw, command):
    # the pipe-to-shell rule is judged before any grant: no grant is needed to reach it
    auth = await gw.authorize(ToolCall(MAINTAINER, "shell.run", {"command": command}))
    assert auth.decision.effect is Effect.DENY and auth.decision.code == "internal_error"


def test_a_regex_condition_cannot_be_judged_past_its_cap():
    c = compile_constraint({"regex": "a*"})
    assert c.test("a" * 100)
    with pytest.raises(RegexLimit):  # never "no match": a deny rule must not fall silent
        c.test("a" * (MAX_REGEX_INPUT + 1))
    negated = compile_constraint({"not": {"regex": "a*"}})
    with pytest.raises(RegexLimit):
        negated.test("a" * (MAX_REGEX_INPUT + 1))


@pytest.mark.parametrize("args", [{"source": "/workspace/.env", "destination": "/workspace/e.txt"},
                                  {"source": "/workspace/a.txt", "destination": "/workspace/.env"},
                                  {"source": "/home/u/.ssh/id_rsa", "destination": "/tmp/k"}])
async def test_secret_files_are_refused_under_every_path_argument(gw, args):
    g = await gw.request_grant(MAINTAINER, GrantRequest(
        "tidy the workspace", [{"tool": "fs.move_file"}], 600))
    if g.status.value == "pending":
        g = await gw.approve_grant(Principal("reviewer:rita", Role.REVIEWER, "rita"), g.grant_id)
    auth = await gw.authorize(ToolCall(MAINTAINER, "fs.move_file", args, g.grant_id))
    assert auth.decision.code == "secret_file", args
