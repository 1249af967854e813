"""Where templates come from: packaged defaults, replaced per file by an override folder; and
``monitor check`` rendering every template a routing file can use.

Before the defaults were packaged, an install without ``alerts/templates/`` passed ``check`` and
then dead-lettered every alert (TemplateNotFound at delivery time).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alerting import render as render_module
from monitor.alerting.render import DEFAULT_TEMPLATES, RELATIONS, render
from monitor.alerting.template_check import check_templates, sample_group
from monitor.config.alerts import load_alerts
from monitor.errors import ConfigError
from tests.test_cli import monitor

FORMATS = ["slack", "markdown", "telegram", "html", "text"]
ROUTES = """\
receivers:
  - name: desk-slack
    urls: ["slack://a/b/c/#claims", "tgram://123:abc/456"]
  - name: desk-email
    urls: ["mailtos://user:pass@smtp.example.org?to=desk@example.org"]
  - name: ops
    urls: ["json://ops.example.org/hook"]
route:
  receiver: desk-slack
"""
OWN = ROUTES.replace("smtp.example.org?to=desk@example.org\"]\n",
                     "smtp.example.org?to=desk@example.org\"]\n    template: digest\n")


def routes(tmp_path: Path, text: str = ROUTES) -> Path:
    path = tmp_path / "alerts" / "routes.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def override(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "alerts" / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("relation", list(RELATIONS))
def test_without_an_override_folder_the_packaged_defaults_render(
        tmp_path: Path, fmt: str, relation: str) -> None:
    body = render(sample_group(relation), fmt, template_dir=tmp_path / "no-such-folder").body
    assert RELATIONS[relation].label in body and "First Outlet" in body


def test_the_defaults_are_declared_package_data() -> None:
    # A wheel carries only what pyproject.toml declares (the Dockerfile checks the install).
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"alerting/templates/*.j2"' in pyproject
    assert {p.name for p in DEFAULT_TEMPLATES.glob("*.j2")} >= {
        f"{name}.{fmt}.j2" for name in [*RELATIONS, "_base"] for fmt in FORMATS}


def test_an_override_replaces_one_file_and_the_others_stay_packaged(tmp_path: Path) -> None:
    override(tmp_path, "denial.text.j2", "OUR DENIAL for {{ claim_id }}")
    folder = tmp_path / "alerts" / "templates"
    assert render(sample_group("denial"), "text", template_dir=folder).body == \
        "OUR DENIAL for template-check"
    other = render(sample_group("corroboration"), "text", template_dir=folder)
    assert "CORROBORATION" in other.body


def test_an_overridden_base_restyles_the_packaged_relation_templates(tmp_path: Path) -> None:
    override(tmp_path, "_base.text.j2", "[{% block banner %}{% endblock %}] {{ claim_id }}")
    folder = tmp_path / "alerts" / "templates"
    body = render(sample_group("follow-up"), "text", template_dir=folder).body
    assert body.startswith("[") and body.endswith("] template-check") and "FOLLOW-UP" in body


def test_check_templates_renders_each_format_and_relation_of_the_receivers(
        tmp_path: Path) -> None:
    override(tmp_path, "digest.html.j2", "digest {{ claim_id }}")
    report = check_templates(load_alerts(routes(tmp_path, OWN)),
                             tmp_path / "alerts" / "templates")
    # slack and telegram for desk-slack, html (its own template) for desk-email; json has none.
    assert report.rendered == 3 * len(RELATIONS)
    assert report.overrides == ("digest.html.j2",) and report.warnings == ()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param("denial.html.j2", "{% extends '_base.html.j2' %}\n{% block banner %}"
                     "{{ label }{% endblock %}", "denial.html.j2: line 2: TemplateSyntaxError: ",
                     id="syntax"),
        pytest.param("_base.slack.j2", "{{ emoji }}\n{{ no_such_variable }}",
                     "_base.slack.j2: line 2: UndefinedError: 'no_such_variable' is undefined",
                     id="undefined-in-a-base"),
        pytest.param("digest.html.j2", "{{ claim_id }}\n{% include 'missing.html.j2' %}",
                     "digest.html.j2: line 2: TemplateNotFound: missing.html.j2 is neither in ",
                     id="include-missing"),
    ])
def test_check_templates_names_the_broken_file_and_line(tmp_path: Path, name: str, text: str,
                                                        expected: str) -> None:
    override(tmp_path, name, text)
    folder = tmp_path / "alerts" / "templates"
    with pytest.raises(ConfigError) as caught:
        check_templates(load_alerts(routes(tmp_path, OWN if "digest" in name else ROUTES)),
                        folder)
    (only,) = str(caught.value).splitlines()  # one broken file, said once
    assert only.startswith(str(folder / expected)) and "(rendering a " in only, only


def test_a_missing_packaged_default_is_named(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # What a wheel built without the package data would do.
    monkeypatch.setattr(render_module, "DEFAULT_TEMPLATES", tmp_path / "empty")
    render_module._environment.cache_clear()
    folder = tmp_path / "alerts" / "templates"
    try:
        with pytest.raises(ConfigError) as caught:
            check_templates(load_alerts(routes(tmp_path)), folder)
        assert str(caught.value).splitlines()[0] == (
            f"{folder}/denial.slack.j2: TemplatesNotFound: denial.slack.j2 is neither in "
            f"{folder} nor among the packaged templates ({tmp_path / 'empty'}) (rendering a "
            "denial for receiver 'desk-slack', format slack)")
    finally:
        monkeypatch.undo()
        render_module._environment.cache_clear()


def test_a_receiver_template_missing_for_every_format_is_an_error_for_some_a_warning(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="receiver 'desk-email' names template 'digest' but "
                                          "there is no digest.html.j2"):
        check_templates(load_alerts(routes(tmp_path, OWN)), tmp_path / "alerts" / "templates")
    both = OWN.replace('urls: ["mailtos', 'urls: ["slack://x/y/z/#d", "mailtos')
    override(tmp_path, "digest.slack.j2", "digest")
    override(tmp_path, "denail.html.j2", "a misspelt override")
    report = check_templates(load_alerts(routes(tmp_path, both)),
                             tmp_path / "alerts" / "templates")
    assert [w.split(": ", 1)[1][:40] for w in report.warnings] == [
        "not used: neither a packaged template's ",
        "receiver 'desk-email' names template 'di"]


def test_monitor_check_passes_without_an_override_folder(tmp_path: Path) -> None:
    result = monitor("check", "--alerts", str(routes(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert (f"{tmp_path / 'alerts' / 'templates'}: {3 * len(RELATIONS)} templates rendered "
            "(0 overrides): ok") in result.stdout


def test_monitor_check_fails_naming_a_broken_override(tmp_path: Path) -> None:
    broken = override(tmp_path, "corroboration.telegram.j2", "<b>{{ label }</b>")
    result = monitor("check", "--alerts", str(routes(tmp_path)))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"monitor: error: {broken}: line 1: TemplateSyntaxError: " in result.stderr
