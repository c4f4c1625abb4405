"""Broken, misshapen, incompatible and conflicting plugins, installed for real, and options.

One fresh venv holds the core of this clone and small distributions built from source
trees written here: each is a real installed distribution with entry points, so daglite
finds it exactly as it would find a third party's plugin.
"""

from __future__ import annotations

import textwrap

import pytest
from installs import CORE
from installs import Venv
from installs import distribution

pytestmark = pytest.mark.slow

OK = "DAGLITE_API_VERSION = 1\n"

PLUGINS = [
    # dist, version, modules, entry points
    (
        "daglite-h-broken",
        "1.0",
        {"__init__": OK, "fmt": "import no_such_module_here\n"},
        {"daglite.formats": {"brokenfmt": "daglite_h_broken.fmt:Format"}},
    ),
    (
        "daglite-h-half",
        "2.0",
        {
            "__init__": OK
            + textwrap.dedent(
                """
                class HalfFormat:
                    name = "half"

                    def dumps(self, value, options):
                        return b""

                    def loads(self, data, return_type, options):
                        return None
                """
            )
        },
        {"daglite.formats": {"half": "daglite_h_half:HalfFormat"}},
    ),
    (
        "daglite-h-needy",
        "1.1",
        {
            "__init__": OK
            + textwrap.dedent(
                """
                class Needy:
                    def __init__(self, endpoint):
                        self.endpoint = endpoint

                    def __call__(self, event):
                        pass
                """
            )
        },
        {"daglite.processors": {"needy": "daglite_h_needy:Needy"}},
    ),
    (
        "daglite-h-nomap",
        "0.3",
        {
            "__init__": OK
            + textwrap.dedent(
                """
                from daglite.plugin import Backend


                class NoMap(Backend):
                    pass


                class NotABackend:
                    pass
                """
            )
        },
        {
            "daglite.backends": {
                "nomap": "daglite_h_nomap:NoMap",
                "plain": "daglite_h_nomap:NotABackend",
            }
        },
    ),
    (
        "daglite-h-old",
        "9.0",
        {"__init__": "DAGLITE_API_VERSION = 99\n\n\ndef make():\n    return print\n"},
        {"daglite.processors": {"old": "daglite_h_old:make"}},
    ),
    (
        "daglite-h-unversioned",
        "0.1",
        {"__init__": "", "bare": "def make():\n    return print\n"},
        {"daglite.processors": {"unversioned": "daglite_h_unversioned.bare:make"}},
    ),
    *[
        (
            f"daglite-h-tsv-{side}",
            "1.0",
            {
                "__init__": OK
                + textwrap.dedent(
                    f"""
                    class Tsv:
                        name = "tsv"
                        extensions = ("tsv",)
                        types = ()

                        def dumps(self, value, options):
                            return b"{side}:" + value.encode()

                        def loads(self, data, return_type, options):
                            return data.decode()
                    """
                )
            },
            {"daglite.formats": {"tsv": f"daglite_h_tsv_{side}:Tsv"}},
        )
        for side in ("a", "b")
    ],
    (
        "daglite-h-opts",
        "1.0",
        {
            "__init__": OK
            + textwrap.dedent(
                """
                import json


                class Opts:
                    known_options = {"greeting": str, "times": int, "loud_voice": bool}

                    @classmethod
                    def from_settings(cls, settings):
                        self = cls()
                        self.options = settings.options.get("opts", {})
                        return self

                    def __call__(self, event):
                        if event.kind == "SessionEnded":
                            print("OPTIONS", json.dumps(self.options, sort_keys=True))
                """
            )
        },
        {"daglite.processors": {"opts": "daglite_h_opts:Opts"}},
    ),
]

FLOWS = """
    from daglite import save_dataset
    from daglite import task
    from daglite import workflow


    @task
    def double(x: int) -> int:
        return 2 * x


    @workflow
    def simple(x: int = 1) -> int:
        return double(x)


    @task
    def save_half() -> str:
        return save_dataset("out.bin", b"x", format="half")


    @workflow
    def uses_half() -> str:
        return save_half()
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A venv with the core and every plugin above; a working directory with flows.py."""
    root = tmp_path_factory.mktemp("health")
    venv = Venv(root / "venv")
    sources = [distribution(root / "src", *plugin) for plugin in PLUGINS]
    venv.install(CORE, *sources)
    work = root / "work"
    work.mkdir()
    (work / "flows.py").write_text(textwrap.dedent(FLOWS))
    return venv, work


@pytest.fixture
def work(env, tmp_path):
    """A fresh working directory with flows.py (settings files differ per test)."""
    (tmp_path / "flows.py").write_text(textwrap.dedent(FLOWS))
    return tmp_path


def _lines(out: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("  "):
            found.setdefault(line.split()[0], []).append(" ".join(line.split()))
    return found


def test_plugins_reports_every_problem_with_distribution_and_version(env, work):
    venv, _ = env
    done = venv.run("daglite", "plugins", cwd=work)
    assert done.returncode == 0, done.stderr
    lines = _lines(done.stdout)
    assert lines["brokenfmt"] == [
        "brokenfmt daglite-h-broken 1.0 error: format 'brokenfmt' is installed (distribution "
        "'daglite-h-broken' 1.0, daglite_h_broken.fmt:Format) but failed to import: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    ]
    assert lines["half"][0].endswith(
        "error: format 'half' (distribution 'daglite-h-half' 2.0, daglite_h_half:HalfFormat) "
        "cannot be used: HalfFormat lacks extensions, types (a Format: name, extensions, "
        "types, dumps() and loads())"
    )
    assert lines["needy"][0].endswith(
        "cannot be used: Needy cannot be built: it needs endpoint; give them defaults or add "
        "a from_settings(settings) classmethod"
    )
    assert lines["nomap"][0].endswith(
        "error: backend 'nomap' (distribution 'daglite-h-nomap' 0.3, daglite_h_nomap:NoMap) "
        "cannot be used: NoMap does not implement map() (a subclass of daglite.plugin.Backend "
        "that implements map())"
    )
    assert lines["plain"][0].endswith(
        "cannot be used: NotABackend is not a subclass of daglite.plugin.Backend that "
        "implements map()"
    )
    assert lines["old"][0].endswith(
        "error: processor 'old' (distribution 'daglite-h-old' 9.0, daglite_h_old:make) cannot "
        "be used: it was built for plugin API version 99, and this daglite has version 1: "
        "install a release of the plugin made for this daglite"
    )
    assert lines["unversioned"][0].endswith(
        "cannot be used: it does not say which plugin API it was built for: set "
        "DAGLITE_API_VERSION = 1 in daglite_h_unversioned (this daglite has plugin API version 1)"
    )
    assert len(lines["tsv"]) == 2  # one line per distribution, both in conflict
    for line, side in zip(lines["tsv"], "ab"):
        assert line.startswith(f"tsv daglite-h-tsv-{side} 1.0 error: format 'tsv' is provided")
    assert lines["opts"] == ["opts daglite-h-opts 1.0 ok"]
    assert lines["json"][0].endswith("ok")
    assert done.stderr.strip() == "9 plugin(s) cannot be used"


def test_plugins_check_exits_1_on_any_problem(env, work):
    venv, _ = env
    done = venv.run("daglite", "plugins", "--check", cwd=work)
    assert done.returncode == 1
    assert done.stderr.strip() == "9 plugin(s) cannot be used"


def test_what_did_not_name_a_broken_plugin_works(env, work):
    venv, _ = env
    done = venv.script(
        """
        from daglite import load_dataset, save_dataset, session, task

        @task
        def one() -> int:
            return 1

        with session(dataset_store="data"):
            assert one() == 1
            save_dataset("a.json", {"x": 1})
            save_dataset("b.txt", "text")
            save_dataset("typed", {"y": 2})  # no extension: chosen by type among all formats
            assert load_dataset("a.json") == {"x": 1}
            assert load_dataset("typed", dict) == {"y": 2}
        print("fine")
        """,
        work,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fine"
    # Left out with one warning each, naming the distribution.
    assert "format 'brokenfmt' is installed (distribution 'daglite-h-broken' 1.0" in done.stderr
    assert "format 'half' (distribution 'daglite-h-half' 2.0" in done.stderr
    assert "format 'tsv' is provided by two distributions" in done.stderr
    assert done.stderr.count("(left out until it is fixed)") == 3  # brokenfmt, half, tsv


def test_asking_for_a_broken_plugin_by_name_is_a_plugin_error(env, work):
    venv, _ = env
    done = venv.script(
        """
        from daglite import save_dataset, session
        from daglite.errors import PluginError

        try:
            with session(plugins=["needy"]):
                pass
        except PluginError as exc:
            print(exc)
        try:
            with session(dataset_store="data"):
                save_dataset("x.bin", b"", format="half")
        except Exception as exc:
            print(type(exc).__name__, "|", exc, "|", type(exc.__cause__).__name__)
        """,
        work,
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == (
        "processor 'needy' (distribution 'daglite-h-needy' 1.1, daglite_h_needy:Needy) cannot "
        "be used: Needy cannot be built: it needs endpoint; give them defaults or add a "
        "from_settings(settings) classmethod"
    )
    assert second == (
        "DatasetError | format 'half' (distribution 'daglite-h-half' 2.0, "
        "daglite_h_half:HalfFormat) cannot be used: HalfFormat lacks extensions, types (a "
        "Format: name, extensions, types, dumps() and loads()) | PluginError"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--plugin", "needy"],
            "daglite: error: processor 'needy' (distribution 'daglite-h-needy' 1.1, "
            "daglite_h_needy:Needy) cannot be used: Needy cannot be built: it needs endpoint; "
            "give them defaults or add a from_settings(settings) classmethod; see: daglite "
            "plugins",
        ),
        (
            ["--backend", "nomap"],
            "daglite: error: backend 'nomap' (distribution 'daglite-h-nomap' 0.3, "
            "daglite_h_nomap:NoMap) cannot be used: NoMap does not implement map() (a subclass "
            "of daglite.plugin.Backend that implements map()); see: daglite plugins",
        ),
        (
            ["--plugin", "old"],
            "daglite: error: processor 'old' (distribution 'daglite-h-old' 9.0, "
            "daglite_h_old:make) cannot be used: it was built for plugin API version 99, and "
            "this daglite has version 1: install a release of the plugin made for this "
            "daglite; see: daglite plugins",
        ),
    ],
)
def test_run_turns_a_named_broken_plugin_into_one_line_and_exit_2(env, work, args, message):
    venv, _ = env
    done = venv.run("daglite", "run", "flows.py:simple", *args, cwd=work)
    assert done.returncode == 2
    assert done.stderr.strip() == message
    assert "Traceback" not in done.stderr


def test_run_exits_2_when_a_task_names_a_broken_format(env, work):
    venv, _ = env
    done = venv.run("daglite", "run", "flows.py:uses_half", cwd=work)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "daglite: error: format 'half' (distribution 'daglite-h-half' 2.0, "
        "daglite_h_half:HalfFormat) cannot be used: HalfFormat lacks extensions, types (a "
        "Format: name, extensions, types, dumps() and loads()); see: daglite plugins"
    )


SAVE_TSV = """
    from daglite import save_dataset, session
    from daglite.errors import DatasetError

    try:
        with session(dataset_store="data"):
            save_dataset("t.tsv", "row")
        print(open("data/t.tsv", "rb").read().decode())
    except DatasetError as exc:
        print(exc)
"""


def test_a_name_claimed_twice_is_an_error_naming_both(env, work):
    venv, _ = env
    done = venv.script(SAVE_TSV, work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "format 'tsv' is provided by two distributions, 'daglite-h-tsv-a' 1.0 "
        "(daglite_h_tsv_a:Tsv), 'daglite-h-tsv-b' 1.0 (daglite_h_tsv_b:Tsv): pick one in the "
        'providers setting, e.g. [tool.daglite.providers] format.tsv = "daglite-h-tsv-a" in '
        "pyproject.toml or DAGLITE_PROVIDERS=format.tsv=daglite-h-tsv-a (claimed by "
        "'daglite-h-tsv-a' and 'daglite-h-tsv-b')"
    )


def test_the_providers_setting_picks_one_from_a_variable_or_pyproject(env, work):
    venv, _ = env
    done = venv.script(SAVE_TSV, work, DAGLITE_PROVIDERS="format.tsv=daglite-h-tsv-b")
    assert done.stdout.strip() == "b:row", done.stderr
    (work / "pyproject.toml").write_text(
        '[tool.daglite.providers]\nformat.tsv = "daglite_h_tsv_a"\n'  # any spelling of the name
    )
    done = venv.script(SAVE_TSV, work)
    assert done.stdout.strip() == "a:row", done.stderr
    listing = venv.run("daglite", "plugins", cwd=work)
    tsv = _lines(listing.stdout)["tsv"]
    assert tsv == [
        "tsv daglite-h-tsv-a 1.0 ok",
        "tsv daglite-h-tsv-b 1.0 (not used: the providers setting picks daglite-h-tsv-a) ok",
    ]


def test_a_pick_of_a_distribution_that_does_not_provide_the_name_is_an_error(env, work):
    venv, _ = env
    done = venv.script(SAVE_TSV, work, DAGLITE_PROVIDERS="format.tsv=daglite-h-tsv-c")
    assert done.stdout.strip() == (
        "the providers setting picks 'daglite-h-tsv-c' for format 'tsv', but 'daglite-h-tsv-c' "
        "does not provide it; it is provided by 'daglite-h-tsv-a' 1.0 (daglite_h_tsv_a:Tsv), "
        "'daglite-h-tsv-b' 1.0 (daglite_h_tsv_b:Tsv)"
    )


# -- options ---------------------------------------------------------------------------------


def _options(done) -> str:
    assert done.returncode == 0, done.stderr
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("OPTIONS ")]
    return line[len("OPTIONS ") :]


def test_options_from_file_variable_and_command_line(env, work):
    venv, _ = env
    (work / "pyproject.toml").write_text(
        "[tool.daglite.options.opts]\n"
        'greeting = "hello"\n'
        "times = 2\n"
        "loud-voice = true\n"  # dashes, like the top level
    )
    run = ("daglite", "run", "flows.py:simple", "--plugin", "opts")
    assert _options(venv.run(*run, cwd=work)) == (
        '{"greeting": "hello", "loud_voice": true, "times": 2}'
    )
    # A variable overrides the file, per option; text becomes the declared type.
    done = venv.run(*run, cwd=work, DAGLITE_OPTS_TIMES="3", DAGLITE_OPTS_LOUD_VOICE="no")
    assert _options(done) == '{"greeting": "hello", "loud_voice": false, "times": 3}'
    # The command line overrides both.
    done = venv.run(
        *run,
        "--option",
        "opts.times=4",
        "--option",
        "opts.greeting=hi",
        cwd=work,
        DAGLITE_OPTS_TIMES="3",
    )
    assert _options(done) == '{"greeting": "hi", "loud_voice": true, "times": 4}'
    # The plugin list itself by its one name, from a variable.
    done = venv.run("daglite", "run", "flows.py:simple", cwd=work, DAGLITE_PLUGINS="opts")
    assert _options(done) == '{"greeting": "hello", "loud_voice": true, "times": 2}'
    # ... and by the deprecated alias.
    done = venv.run("daglite", "run", "flows.py:simple", cwd=work, DAGLITE_PROCESSORS="opts")
    assert _options(done) == '{"greeting": "hello", "loud_voice": true, "times": 2}'


@pytest.mark.parametrize(
    ("args", "env_vars", "message"),
    [
        (
            ["--option", "opts.colour=red"],
            {},
            "daglite: error: unknown option(s) ['colour'] for plugin 'opts'; known options of "
            "'opts': ['greeting', 'loud_voice', 'times'] (set in [tool.daglite.options.opts], "
            "DAGLITE_OPTS_<OPTION> or --option opts.<key>=<value>)",
        ),
        (
            [],
            {"DAGLITE_OPTS_TIMES": "many"},
            "daglite: error: invalid value 'many' for option 'times' of plugin 'opts': expected "
            "an integer",
        ),
        (
            ["--option", "opts-times"],
            {},
            "daglite: error: --option takes PLUGIN.KEY=VALUE (e.g. --option "
            "rich.plain-interval=5), not 'opts-times'",
        ),
    ],
)
def test_bad_options_exit_2_with_what_is_known(env, work, args, env_vars, message):
    venv, _ = env
    done = venv.run(
        "daglite", "run", "flows.py:simple", "--plugin", "opts", *args, cwd=work, **env_vars
    )
    assert done.returncode == 2
    assert done.stderr.strip() == message
