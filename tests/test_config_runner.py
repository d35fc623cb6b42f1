"""[runner]: where agents run. kind = "local" stays the default; kind = "ray" needs the cluster's address."""

from __future__ import annotations

import tomllib

import pytest

from tuiorch.config import ConfigError, RunnerConfig
from tuiorch.config.load import config_from_dict
from tuiorch.config.settings import Config
from tuiorch.config.write import config_to_dict, default_config_toml


def test_agents_run_locally_unless_told_otherwise() -> None:
    assert config_from_dict({}).runner == RunnerConfig(kind="local")
    assert config_from_dict(tomllib.loads(default_config_toml("claude"))).runner.kind == "local"


def test_confine_on_is_accepted_with_a_ray_runner_each_node_decides() -> None:
    config = config_from_dict({"runner": {"kind": "ray", "address": "h:1"}, "agent": {"confine": "on"}})
    assert config.agent.confine == "on" and config.runner.kind == "ray"


def test_a_ray_runner_with_its_address_and_per_agent_resources_round_trips() -> None:
    data = {"runner": {"kind": "ray", "address": "10.0.0.5:6379", "resources": {"cli_box": 2}}}
    runner = config_from_dict(data).runner
    assert runner == RunnerConfig(kind="ray", address="10.0.0.5:6379", resources={"cli_box": 2.0})
    assert config_from_dict(config_to_dict(Config(runner=runner))).runner == runner


@pytest.mark.parametrize(
    ("runner", "message"),
    [
        ({"kind": "ray"}, '[runner] address: kind = "ray" needs the cluster\'s address'),
        ({"kind": "k8s"}, "[runner] kind: expected one of local, ray"),
        (
            {"kind": "ray", "address": "h:1", "resources": {"x": 0}},
            "[runner] resources: expected a table of positive",
        ),
        ({"adress": "h:1"}, '[runner] adress: unknown key; did you mean "address"?'),
    ],
)
def test_a_bad_runner_table_is_an_error_naming_the_key(runner: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"runner": runner})
    assert message in str(caught.value)
