import pytest

from safetypairs.serving.settings import (
    GuardSettings,
    JudgeSettings,
    SettingsError,
    env_name,
    flag_name,
)


def test_one_name_per_setting():
    assert env_name("max_batch_size") == "SAFETYPAIRS_MAX_BATCH_SIZE"
    assert flag_name("max_batch_size") == "--max-batch-size"


def test_from_env_parses_and_validates():
    s = GuardSettings.from_env(
        {
            "SAFETYPAIRS_GRPC_PORT": "6000",
            "SAFETYPAIRS_MAX_BATCH_WAIT_MS": "2.5",
            "SAFETYPAIRS_GUARD_MODEL": "/m",
        }
    )
    assert (s.grpc_port, s.max_batch_wait_ms, s.guard_model) == (6000, 2.5, "/m")
    assert GuardSettings.from_env(s.to_env()) == s


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SAFETYPAIRS_GRPC_PORT": "http"}, "SAFETYPAIRS_GRPC_PORT='http' is not a valid int"),
        ({"SAFETYPAIRS_MAX_QUEUE": "0"}, "SAFETYPAIRS_MAX_QUEUE must be at least 1"),
        ({"SAFETYPAIRS_MAX_BATCH_WAIT_MS": "-1"}, "must not be negative"),
        (
            {"SAFETYPAIRS_MAX_QUEUE": "8", "SAFETYPAIRS_MAX_IMAGES_PER_REQUEST": "9"},
            r"MAX_IMAGES_PER_REQUEST \(9\) must not exceed SAFETYPAIRS_MAX_QUEUE \(8\)",
        ),
    ],
)
def test_bad_settings_are_named(env, needle):
    with pytest.raises(SettingsError, match=needle):
        GuardSettings.from_env(env)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SAFETYPAIRS_JUDGE_VERDICT_MODE": "vibes"}, "JUDGE_VERDICT_MODE must be one of"),
        ({"SAFETYPAIRS_JUDGE_THRESHOLD": "1"}, "strictly between 0 and 1"),
        ({"SAFETYPAIRS_JUDGE_MAX_PROPOSALS": "0"}, "JUDGE_MAX_PROPOSALS must be at least 1"),
    ],
)
def test_bad_judge_settings_are_named(env, needle):
    with pytest.raises(SettingsError, match=needle):
        JudgeSettings.from_env(env)
