"""`supervisor-worker plugins` and the plugin boundary, against the real test plugins.

No database needed. The plugin directories are copied into temporary directories with
modes set here, because the host refuses group- or world-writable plugin files and the
build directory's modes follow the builder's umask.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from svtest import sanitizer_report

# The good test plugins: file -> (plugin name, job types in registration order).
GOOD = {
    "crash.so": ("crash", ["test.crash"]),
    "oldstruct.so": ("oldstruct", ["test.defaults", "test.oldstruct"]),
    "testjobs.so": (
        "testjobs",
        [
            "test.sleep",
            "test.flaky",
            "test.fail",
            "test.hang",
            "test.echo",
            "test.record",
            "test.spawn",
            "test.progress",
            "test.single",
        ],
    ),
}

# The broken ones: file -> the reason the host gives ({dir}: the plugin directory,
# {abi}: the host's SDK ABI version).
BROKEN = {
    "bad_name.so": "init failed: Invalid argument (-22); job type 'bad name!' rejected: "
    "invalid name (use 1-128 of A-Z a-z 0-9 _ . : -)",
    "dup_type.so": "plugin dup_type registers job type 'test.crash', already registered by "
    "plugin crash ({dir}/crash.so)",
    "init_error.so": "init failed: Input/output error (-5)",
    "newer_minor.so": "built for SDK 1.99, host speaks {abi} (the plugin needs a newer host)",
    "no_init.so": "missing symbol sv_plugin_init (SV_PLUGIN_DEFINE defines it)",
    "no_magic.so": "missing symbol sv_plugin_magic: not a supervisor-worker plugin "
    "(SV_PLUGIN_DEFINE defines it)",
    "not_elf.so": "not a loadable shared object: invalid ELF header",
    "wrong_abi.so": "built for SDK 99.0, host speaks {abi} (the ABI major must match)",
}

BUNDLED = {"log.so": ("log", ["log"]), "noop.so": ("noop", ["noop"])}

# What the executable may export: glibc's copy relocations of data it uses.
EXECUTABLE_EXPORTS = {
    "stdout",
    "stderr",
    "stdin",
    "optarg",
    "optind",
    "opterr",
    "optopt",
    "environ",
    "__environ",
    "program_invocation_name",
    "program_invocation_short_name",
    "__progname",
    "__progname_full",
    "timezone",
    "daylight",
    "tzname",
}


def check_no_sanitizer_report(proc):
    """Fail when a process's output holds a sanitizer report (cli.run checks this too)."""
    for text in (proc.stdout, proc.stderr):
        report = sanitizer_report(text or "")
        assert report is None, f"sanitizer report:\n{report}"


def secure_copy(src, dst, names=None):
    """Copy src's *.so files (or just names) into a new directory dst, mode 0755 for all."""
    dst.mkdir()
    dst.chmod(0o755)
    for path in sorted(Path(src).glob("*.so")):
        if names is not None and path.name not in names:
            continue
        shutil.copyfile(path, dst / path.name)
        (dst / path.name).chmod(0o755)
    return dst


@pytest.fixture(scope="session")
def host_abi(sv_paths):
    """The host's SDK ABI version, "1.0", as `supervisor-worker --version` prints it."""
    out = subprocess.run(
        [str(sv_paths.binary), "--version"], capture_output=True, text=True, check=True
    ).stdout
    m = re.search(r"plugin ABI (\d+\.\d+)", out)
    assert m, out
    return m.group(1)


@pytest.fixture(scope="session")
def test_plugins(sv_paths, tmp_path_factory):
    """A secure copy of the test plugin directory."""
    return secure_copy(sv_paths.test_plugins_dir, tmp_path_factory.mktemp("tp") / "plugins")


@pytest.fixture(scope="session")
def bundled_plugins(sv_paths, tmp_path_factory):
    """A secure copy of the bundled plugin directory."""
    return secure_copy(sv_paths.plugins_dir, tmp_path_factory.mktemp("bp") / "plugins")


def parse_listing(stdout):
    """The text listing -> {file: (status line, [job type lines])}, and the summary line."""
    files, summary, current = {}, None, None
    for line in stdout.splitlines():
        if line.startswith("Summary: "):
            summary = line
        elif line.startswith("    job type "):
            assert current is not None, line
            files[current][1].append(line[4:])
        elif line.startswith("  ") and ": " in line:
            current = line[2:].split(": ", 1)[0]
            assert current not in files, f"{current} listed twice"
            files[current] = (line[2:], [])
    return files, summary


def refusal_lines(stderr):
    return [line for line in stderr.splitlines() if "refused plugin " in line]


def test_the_test_plugins_are_all_expected(sv_paths):
    # A new test plugin must be added to GOOD or BROKEN, so the tests below cover it.
    found = {p.name for p in Path(sv_paths.test_plugins_dir).glob("*.so")}
    assert found == set(GOOD) | set(BROKEN)


def test_listing_shows_every_file_with_its_fate(cli, test_plugins, host_abi):
    r = cli.run("plugins", "--plugins-dir", test_plugins, check=False)
    assert r.returncode == 1, r.stderr
    files, summary = parse_listing(r.stdout)
    assert r.stdout.startswith(f"Plugin directory: {test_plugins}\n")
    assert set(files) == set(GOOD) | set(BROKEN)

    for f, (name, types) in GOOD.items():
        status, type_lines = files[f]
        assert status.startswith(f"{f}: loaded: {name} 1.0.0 - "), status
        assert [line.split(":")[0] for line in type_lines] == [f"job type {t}" for t in types]
    for f, reason in BROKEN.items():
        status, type_lines = files[f]
        assert status.startswith(f"{f}: refused"), status
        assert status.endswith(": " + reason.format(dir=test_plugins, abi=host_abi)), status
        assert type_lines == []
    # The magic's name is shown when it could be read, i.e. when the ABI major matched.
    assert files["newer_minor.so"][0].startswith("newer_minor.so: refused (newer_minor 1.0.0): ")
    assert files["wrong_abi.so"][0].startswith("wrong_abi.so: refused: ")

    types = dict(line.split(": ", 1) for line in files["testjobs.so"][1])
    assert types["job type test.sleep"] == (
        "timeout 1m, max attempts 25, backoff 10ms doubling to 100ms, concurrency unlimited"
    )
    types = dict(line.split(": ", 1) for line in files["oldstruct.so"][1])
    # Zero members and members past an old struct_size get the host's defaults.
    defaults = "timeout 1m, max attempts 25, backoff 1s doubling to 1h, concurrency unlimited"
    assert types["job type test.defaults"] == defaults
    assert types["job type test.oldstruct"] == defaults
    assert "max attempts 1," in files["crash.so"][1][0]

    assert summary == "Summary: 3 loaded, 8 refused; the daemon would start with 3 plugins"


def test_each_refusal_is_one_log_line_on_stderr(cli, test_plugins, host_abi):
    r = cli.run("plugins", "--plugins-dir", test_plugins, check=False)
    lines = refusal_lines(r.stderr)
    assert len(lines) == len(BROKEN), r.stderr
    for f, reason in BROKEN.items():
        expected = f"refused plugin {test_plugins}/{f}: " + reason.format(
            dir=test_plugins, abi=host_abi
        )
        assert [line for line in lines if f"/{f}: " in line] == [
            line for line in lines if line.endswith(expected)
        ], f"{f}: {lines}"
        assert sum(line.endswith(expected) for line in lines) == 1, f"{f}: {lines}"
    # The listing is on stdout only; stderr has warnings, not a second listing.
    assert "loaded plugin" not in r.stderr
    assert "Summary" not in r.stderr
    # A plugin whose init ignored a rejected registration loads, with one warning.
    assert [line for line in r.stderr.splitlines() if "oldstruct" in line] == [
        line
        for line in r.stderr.splitlines()
        if line.endswith(
            f"warning: plugin {test_plugins}/oldstruct.so loaded without a job type it tried to "
            "register: job type 'ignored bad name' rejected: invalid name "
            "(use 1-128 of A-Z a-z 0-9 _ . : -)"
        )
    ]
    assert sum("oldstruct" in line for line in r.stderr.splitlines()) == 1
    # A plugin's own log line is tagged with its name.
    assert "[init_error] failing on purpose" in r.stderr
    check_no_sanitizer_report(r)


def test_bundled_plugins_all_load(cli, bundled_plugins):
    r = cli.run("plugins", "--plugins-dir", bundled_plugins)
    files, summary = parse_listing(r.stdout)
    assert set(files) == set(BUNDLED)
    for f, (name, types) in BUNDLED.items():
        assert files[f][0].startswith(f"{f}: loaded: {name} "), files[f]
        assert [line.split(":")[0] for line in files[f][1]] == [f"job type {t}" for t in types]
    assert summary == "Summary: 2 loaded, 0 refused; the daemon would start with 2 plugins"
    assert r.stderr == ""


def test_strict_plugins(cli, test_plugins, bundled_plugins):
    r = cli.run("plugins", "--strict-plugins", "--plugins-dir", test_plugins, check=False)
    assert r.returncode == 1
    # Strict mode changes the verdict, not the listing: every file is still shown.
    files, summary = parse_listing(r.stdout)
    assert set(files) == set(GOOD) | set(BROKEN)
    assert files["testjobs.so"][0].startswith("testjobs.so: loaded: ")
    assert summary == (
        "Summary: 3 loaded, 8 refused; with --strict-plugins the daemon would not start"
    )
    assert r.stderr.rstrip().endswith(
        "--strict-plugins: the daemon would refuse to start because 8 plugin files were refused"
    )

    r = cli.run("plugins", "--strict-plugins", "--json", "--plugins-dir", test_plugins, check=False)
    doc = json.loads(r.stdout)
    assert (doc["strict"], doc["daemon_would_start"]) == (True, False)

    r = cli.run("plugins", "--strict-plugins", "--plugins-dir", bundled_plugins)
    assert parse_listing(r.stdout)[1].endswith("the daemon would start with 2 plugins")


def test_json(cli, test_plugins, host_abi):
    r = cli.run("plugins", "--json", "--plugins-dir", test_plugins, check=False)
    assert r.returncode == 1
    doc = json.loads(r.stdout)  # one document, nothing else on stdout
    assert doc["plugins_dir"] == str(test_plugins)
    assert doc["host_abi"] == host_abi
    assert (doc["loaded"], doc["refused"]) == (3, 8)
    assert (doc["strict"], doc["daemon_would_start"], doc["error"]) == (False, True, None)
    plugins = {p["file"]: p for p in doc["plugins"]}
    assert list(plugins) == sorted(GOOD.keys() | BROKEN.keys())
    for f, (name, types) in GOOD.items():
        p = plugins[f]
        assert p["path"] == f"{test_plugins}/{f}"
        assert (p["state"], p["reason"], p["name"], p["version"]) == ("loaded", None, name, "1.0.0")
        assert p["abi"] == host_abi
        assert isinstance(p["description"], str) and p["description"]
        assert [t["name"] for t in p["job_types"]] == types
    for f, reason in BROKEN.items():
        p = plugins[f]
        assert p["state"] == "refused"
        assert p["reason"] == reason.format(dir=test_plugins, abi=host_abi)
        assert p["job_types"] == []
    assert (plugins["wrong_abi.so"]["name"], plugins["wrong_abi.so"]["abi"]) == (None, "99.0")
    assert (plugins["newer_minor.so"]["name"], plugins["newer_minor.so"]["abi"]) == (
        "newer_minor",
        "1.99",
    )
    assert (plugins["not_elf.so"]["name"], plugins["not_elf.so"]["abi"]) == (None, None)

    types = {t["name"]: t for t in plugins["testjobs.so"]["job_types"]}
    assert types["test.sleep"] == {
        "name": "test.sleep",
        "timeout_ms": 60000,
        "max_attempts": 25,
        "backoff_base_ms": 10,
        "backoff_max_ms": 100,
        "concurrency": 0,
    }
    for t in plugins["oldstruct.so"]["job_types"]:
        assert (
            t["timeout_ms"],
            t["max_attempts"],
            t["backoff_base_ms"],
            t["backoff_max_ms"],
            t["concurrency"],
        ) == (60000, 25, 1000, 3600000, 0)
    assert len(refusal_lines(r.stderr)) == len(BROKEN)


def test_json_log_lines(cli, test_plugins):
    r = cli.run(
        "plugins", "--log-format", "json", "--plugins-dir", test_plugins, check=False
    )
    records = [json.loads(line) for line in r.stderr.splitlines()]
    refusals = [rec for rec in records if rec["msg"].startswith("refused plugin ")]
    assert len(refusals) == len(BROKEN)
    assert {rec["level"] for rec in refusals} == {"warning"}
    tagged = [rec for rec in records if rec.get("plugin") == "init_error"]
    assert [rec["msg"] for rec in tagged] == ["failing on purpose"]


@pytest.mark.parametrize(
    "mode, who", [(0o775, "group"), (0o757, "others"), (0o777, "group and others")]
)
def test_writable_plugin_file_is_refused(cli, sv_paths, tmp_path, mode, who):
    d = secure_copy(sv_paths.plugins_dir, tmp_path / "plugins")
    (d / "log.so").chmod(mode)
    r = cli.run("plugins", "--plugins-dir", d, check=False)
    assert r.returncode == 1
    reason = f"file is writable by {who} (mode {mode:04o})"
    files, _ = parse_listing(r.stdout)
    assert files["log.so"][0] == f"log.so: refused: {reason}"
    assert files["noop.so"][0].startswith("noop.so: loaded: ")
    assert refusal_lines(r.stderr) == [
        line for line in r.stderr.splitlines() if line.endswith(f"refused plugin {d}/log.so: {reason}")
    ]
    assert len(refusal_lines(r.stderr)) == 1


def test_writable_plugin_directory_is_refused(cli, sv_paths, tmp_path):
    d = secure_copy(sv_paths.plugins_dir, tmp_path / "plugins")
    d.chmod(0o775)
    reason = "directory is writable by group (mode 0775)"
    r = cli.run("plugins", "--plugins-dir", d, check=False)
    assert r.returncode == 1
    assert r.stdout == (
        f"Plugin directory: {d}\n  cannot be used: {reason}\n"
        "Summary: 0 loaded, 0 refused; the daemon would not start\n"
    )
    assert f"refused plugin directory {d}: {reason}" in r.stderr
    r = cli.run("plugins", "--json", "--plugins-dir", d, check=False)
    doc = json.loads(r.stdout)
    assert (doc["error"], doc["daemon_would_start"], doc["plugins"]) == (reason, False, [])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_plugin_owned_by_another_user_is_refused(cli, sv_paths, tmp_path):
    d = secure_copy(sv_paths.plugins_dir, tmp_path / "plugins")
    os.chown(d / "noop.so", 65534, 65534)
    r = cli.run("plugins", "--plugins-dir", d, check=False)
    assert r.returncode == 1
    reason = "file is owned by uid 65534, not by root"
    assert parse_listing(r.stdout)[0]["noop.so"][0] == f"noop.so: refused: {reason}"
    assert f"refused plugin {d}/noop.so: {reason}" in r.stderr


def test_missing_directory(cli, tmp_path):
    d = tmp_path / "nonexistent"
    r = cli.run("plugins", "--plugins-dir", d, check=False)
    assert r.returncode == 1
    assert "cannot be used: No such file or directory" in r.stdout
    assert f"cannot use plugin directory {d}: No such file or directory" in r.stderr


def test_empty_directory(cli, tmp_path):
    d = tmp_path / "empty"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    r = cli.run("plugins", "--plugins-dir", d)
    assert "  no *.so files\n" in r.stdout


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["--bogus"], "--bogus"),
        (["--json=yes"], "--json"),
        (["--plugins-dir"], "--plugins-dir"),
        (["extra"], "extra"),
        (["--log-level", "loud"], "loud"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, args, mentions):
    r = cli.run("plugins", *args, check=False)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert mentions in r.stderr
    assert r.stderr.startswith("supervisor-worker ")


def test_help(cli):
    r = cli.run("plugins", "--help")
    assert r.stdout.startswith("Usage: supervisor-worker plugins ")
    for option in ("--json", "--plugins-dir", "--strict-plugins"):
        assert option in r.stdout
    assert r.stderr == ""


def defined_dynamic_symbols(path):
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def test_executable_exports_nothing_of_its_own(sv_paths):
    # Plugins must not be able to link back into the daemon: everything is hidden, and
    # only glibc's copy relocations (stdout@GLIBC_2.2.5, ...) appear.
    for sym in defined_dynamic_symbols(sv_paths.binary):
        name, _, version = sym.partition("@")
        assert name in EXECUTABLE_EXPORTS and version.lstrip("@").startswith("GLIBC_"), sym


def plugin_files(sv_paths):
    return [Path(sv_paths.plugins_dir) / f for f in BUNDLED] + [
        Path(sv_paths.test_plugins_dir) / f for f in GOOD
    ]


@pytest.mark.parametrize("index", range(len(BUNDLED) + len(GOOD)))
def test_plugins_export_exactly_the_two_entry_points(sv_paths, index):
    path = plugin_files(sv_paths)[index]
    assert sorted(defined_dynamic_symbols(path)) == ["sv_plugin_init", "sv_plugin_magic"], path


def test_broken_plugins_export_no_more_than_the_entry_points(sv_paths):
    for f in BROKEN:
        if f == "not_elf.so":
            continue
        syms = set(defined_dynamic_symbols(Path(sv_paths.test_plugins_dir) / f))
        assert syms <= {"sv_plugin_init", "sv_plugin_magic"}, (f, syms)
