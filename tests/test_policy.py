import pytest

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.policy import default_policy, load_policy, parse_policy

EXPECTED = {
    "O1": "Hate, Humiliation, Harassment",
    "O2": "Violence, Harm or Cruelty",
    "O3": "Sexual Content",
    "O4": "Nudity Content",
    "O5": "Criminal Planning",
    "O6": "Weapons or Substance Abuse",
    "O7": "Self-Harm",
    "O8": "Animal Cruelty",
    "O9": "Disasters or Emergencies",
}


def test_builtin_taxonomy_has_the_nine_categories_with_texts():
    policy = default_policy()
    assert {c.code: c.name for c in policy.categories} == EXPECTED
    for c in policy.categories:
        assert c.should_not and all(len(t) > 20 for t in c.should_not), c.code
        assert c.can, c.code


def test_custom_policy_loads(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: shop\nversion: 2\ncategories:\n"
        "  - code: W1\n    name: Weapons for sale\n"
        "    should_not: Show firearms offered for sale.\n"
        "    can: [Show toy guns clearly labelled as toys.]\n"
    )
    policy = load_policy(path)
    assert policy.name == "shop" and policy.version == "2"
    assert policy.category("W1").should_not == ("Show firearms offered for sale.",)
    assert policy.to_proto().categories[0].can == ["Show toy guns clearly labelled as toys."]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\ncategories: []\n", "non-empty list"),
        ("name: x\ncategories:\n  - code: A\n    name: a\n", "missing required field 'should_not'"),
        (
            "name: x\ncategories:\n  - {code: A, name: a, should_not: [s], colour: red}\n",
            "unknown field(s) colour",
        ),
        (
            "name: x\ncategories:\n  - {code: A, name: a, should_not: [s]}\n"
            "  - {code: A, name: b, should_not: [t]}\n",
            "'A' appears twice",
        ),
        ("name: x\ncategories:\n  - {code: '1 bad', name: a, should_not: [s]}\n", "code '1 bad'"),
        (
            "name: x\ncategories:\n  - {code: A, name: a, should_not: [1, 2]}\n",
            "should_not must be a list of non-empty strings",
        ),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nextra: 1\ncategories: []\n", "unknown field(s) extra"),
    ],
)
def test_invalid_policies_say_what_is_wrong(text, needle):
    with pytest.raises(InvalidInput) as err:
        parse_policy(text, source="custom.yaml")
    assert needle in err.value.message
    assert err.value.message.startswith("custom.yaml:")


def test_billion_laughs_aliases_are_refused_before_expansion():
    lol = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i, prev in zip("bcdefghi", "abcdefgh", strict=True):
        lol += f"{i}: &{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    with pytest.raises(InvalidInput, match="aliases are not allowed"):
        parse_policy(lol)


def test_unknown_category_code_names_the_known_ones():
    with pytest.raises(InvalidInput, match=r"unknown category 'O42'.*O1, O2"):
        default_policy().check_codes(["O1", "O42"])
    with pytest.raises(InvalidInput, match="listed twice"):
        default_policy().check_codes(["O1", "O1"])


def test_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="cannot read policy file"):
        load_policy(tmp_path / "nope.yaml")
