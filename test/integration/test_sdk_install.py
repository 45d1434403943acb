"""The installed SDK is enough to build a plugin outside the tree.

Installs the build into a temporary DESTDIR, builds the first ```c block of
docs/plugins.md (so the guide and this test cannot drift apart) with nothing but `cc` and
the installed `supervisor-sdk.pc`, and checks that the installed daemon loads it. No
database needed.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from svtest import sanitizer_report


def first_c_block(markdown):
    m = re.search(r"^```c\n(.*?)^```", markdown, re.S | re.M)
    assert m, "docs/plugins.md has no ```c block"
    return m.group(1)


@pytest.fixture(scope="module")
def install(sv_paths, tmp_path_factory):
    """-> (destdir, prefix inside it, environment with PKG_CONFIG_PATH into it)."""
    meson = shutil.which("meson")
    if meson is None:
        pytest.skip("meson is not on PATH")
    destdir = tmp_path_factory.mktemp("install") / "root"
    r = subprocess.run(
        [
            meson,
            "install",
            "-C",
            str(sv_paths.build_root),
            "--destdir",
            str(destdir),
            "--no-rebuild",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    binaries = list(destdir.rglob("bin/supervisor-worker"))
    assert len(binaries) == 1, binaries
    prefix = binaries[0].parent.parent
    pcs = list(destdir.rglob("supervisor-sdk.pc"))
    assert len(pcs) == 1, pcs
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent))
    return destdir, prefix, env


def pkg_config(env, *args):
    r = subprocess.run(
        ["pkg-config", *args, "supervisor-sdk"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_install_layout(install):
    destdir, prefix, env = install
    assert os.access(prefix / "bin" / "supervisor-worker", os.X_OK)
    assert (prefix / "include" / "supervisor" / "sdk.h").is_file()
    assert list(prefix.glob("share/pkgconfig/supervisor-sdk.pc")) or list(
        prefix.glob("lib*/**/pkgconfig/supervisor-sdk.pc")
    )
    for name in ("noop.so", "log.so"):
        found = [p for p in prefix.glob(f"lib*/**/{name}") if p.parent.name == "plugins"]
        assert len(found) == 1 and found[0].parent.parent.name == "supervisor", found
    # The .pc file names the same plugin directory.
    plugindir = Path(pkg_config(env, "--variable=plugindir"))
    assert (destdir / plugindir.relative_to("/") / "noop.so").is_file()
    assert list((prefix / "share" / "supervisor" / "sql").glob("*.sql"))
    # Nothing of core/ is installed: the SDK header is the only header.
    headers = [p.relative_to(prefix) for p in prefix.rglob("*.h")]
    assert headers == [Path("include/supervisor/sdk.h")], headers


def test_example_plugin_from_the_guide_builds_and_loads(install, sv_paths, tmp_path):
    destdir, prefix, env = install
    source = first_c_block((Path(sv_paths.source_root) / "docs" / "plugins.md").read_text())
    work = tmp_path / "hello"
    work.mkdir()
    (work / "hello.c").write_text(source)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    plugins.chmod(0o755)

    cflags = pkg_config(env, "--define-prefix", "--cflags")
    # The headers must come from the staged install, not from a system-wide one.
    assert f"-I{prefix}/include" in cflags.split(), cflags
    cmd = (
        ["cc", *cflags.split(), "-shared", "-fPIC", "-fvisibility=hidden"]
        # Stricter than the guide asks: its example must compile cleanly.
        + ["-Wall", "-Wextra", "-Werror", "-o", str(plugins / "hello.so"), "hello.c"]
    )
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    (plugins / "hello.so").chmod(0o755)

    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(plugins / "hello.so")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(line.split()[-1] for line in nm.splitlines()) == [
        "sv_plugin_init",
        "sv_plugin_magic",
    ]

    binary = prefix / "bin" / "supervisor-worker"
    r = subprocess.run(
        [str(binary), "plugins", "--plugins-dir", str(plugins)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sanitizer_report(r.stderr) is None, r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  hello.so: loaded: hello 1.0.0 - Says hello\n" in r.stdout
    assert (
        "    job type hello: timeout 10s, max attempts 5, backoff 1s doubling to 1h, "
        "concurrency unlimited\n" in r.stdout
    )
