"""Source names and the daemon id: NAME=SPEC, [[sources]] name=, derived names, slugs (stable
and distinct for non-ASCII names), clashes as a `config check` error and a one-line `run` error."""

from __future__ import annotations

from pathlib import Path

from genrecast.daemon.config import load_config
from genrecast.daemon.naming import daemon_id_problem, named_sources, slug, source_name_problems, split_named
from helpers import run_cli


def test_names_given_or_derived():
    entries = ["mic", "kitchen=mic:USB", "file:a/radio.wav", "file:x=y.wav", "http://h/s?a=b", "-", "https://h/2"]
    assert named_sources(entries) == [
        ("mic", "mic"), ("kitchen", "mic:USB"), ("file-radio", "file:a/radio.wav"), ("file-x=y", "file:x=y.wav"),
        ("stream-1", "http://h/s?a=b"), ("stdin", "-"), ("stream-2", "https://h/2")]
    assert split_named("Küche=mic") == ("Küche", "mic")
    assert named_sources(["file:///tmp/x/a%20b.wav"]) == [("file-a b", "file:///tmp/x/a%20b.wav")]  # as the bare path


def test_an_existing_file_with_an_equals_sign_stays_a_path(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a=b.wav").write_bytes(b"")
    assert split_named("a=b.wav") == (None, "a=b.wav")


def test_slugs_are_stable_safe_and_distinct():
    assert slug("kitchen radio") == "kitchen_radio" and slug("café") == "cafe" and slug("") == "_"
    japanese = [slug("ラジオ"), slug("テレビ"), slug("ラジオ")]
    assert japanese[0] == japanese[2] != japanese[1]
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for s in japanese)
    assert not source_name_problems(["file:ラジオ.wav", "file:テレビ.wav"])


def test_clashes_are_named_with_the_fix():
    problems = source_name_problems(["file:a/radio.wav", "file:b/radio.wav", "a b=mic", "a_b=mic:2", "x=mic", "X=-"])
    assert len(problems) == 3
    assert "'file:a/radio.wav' and 'file:b/radio.wav' both get the name 'file-radio'" in problems[0]
    assert "--source kitchen=file:b/radio.wav" in problems[0]
    assert "share the slug 'a_b'" in problems[1]
    assert source_name_problems(["a=-", "b=-", "mic"]) == [
        "sources: a, b all read stdin (-), which can feed one source only; keep one, and give the others files, "
        "streams or a microphone"]


def test_sources_table_with_names_and_daemon_id(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('daemon_id = "lounge"\n[[sources]]\nname = "kitchen"\nspec = "mic"\n[[sources]]\nspec = "file:a.wav"\n')
    config = load_config(path, env={})
    assert not config.problems and config["sources"] == ["kitchen=mic", "file:a.wav"] and config["daemon_id"] == "lounge"
    path.write_text('daemon_id = "my daemon"\n[[sources]]\nname = "a/b"\nspec = "mic"\n')
    text = "\n".join(load_config(path, env={}).problems)
    assert "daemon_id" in text and "A-Z a-z 0-9 _ -" in text and "name 'a/b'" in text
    assert daemon_id_problem("kitchen-2") is None


def test_config_check_and_run_report_a_clash_in_one_line(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('sources = ["file:a/radio.wav", "file:b/radio.wav"]\n')
    check = run_cli("config", "check", "--config", str(path), timeout=60)
    assert check.returncode == 1 and "both get the name 'file-radio'" in check.stderr
    assert "Traceback" not in check.stderr + check.stdout
    run = run_cli("run", "--source", "file:a/radio.wav", "--source", "file:b/radio.wav", timeout=60)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "both get the name 'file-radio'" in lines[0], run.stderr


def test_a_name_too_long_for_a_file_name_is_a_name_not_a_traceback() -> None:
    """`--source NAME=file:...` with NAME of 255+ characters: looking it up as a file raised ENAMETOOLONG."""
    from genrecast.daemon.naming import split_named

    name = "radio" * 52
    assert split_named(f"{name}=file:/music/a.wav") == (name, "file:/music/a.wav")
