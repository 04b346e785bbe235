"""Man pages: lint-clean under mandoc, and never behind the code they document.

Each check reads its list from the code itself (the programs' --help, the
plug-in header, the tables of error codes and job types), so an option,
function, error code or job type added without its documentation fails here.
"""
import glob
import os
import re
import subprocess
import tempfile
import unittest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
MAN = os.path.join(ROOT, "man")
PAGES = ("wsjob.1", "wsjob-handler.3", "wsjobd.conf.5", "wsjobd.8")   # required
ALL_PAGES = sorted(set(PAGES) |
                   {os.path.basename(p) for p in glob.glob(os.path.join(MAN, "*.[1-8]"))})


def binary(env, default):
    path = os.environ.get(env, default)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(TESTS, path))


WSJOBD = binary("WSJOBD_BIN", "../build/wsjobd")
WSJOB = binary("WSJOB_BIN", "../build/wsjob")


def page(name):
    with open(os.path.join(MAN, name), encoding="utf-8") as f:
        return f.read()


def source(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def help_text(program):
    r = subprocess.run([program, "--help"], capture_output=True, encoding="utf-8", timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"{program} --help exited {r.returncode}: {r.stderr}")
    return r.stdout


# Option lines of a --help text: "  -c, --config FILE" or "      --listen ...";
# continuation lines are indented further and never match.
LONG_OPTION = re.compile(r"^(?:  -\w, |      )--([a-z][a-z0-9-]*)", re.M)
SHORT_ONLY = re.compile(r"^  -(\w) ", re.M)


def long_options(text):
    found = LONG_OPTION.findall(text)
    if not found:
        raise AssertionError("no long options found in the --help text")
    return sorted(set(found))


def option_pattern(name):
    # In the page a hyphen may be written "-" or "\-".
    return r"\\?-".join(re.escape(part) for part in name.split("-"))


def has_item_option(text, name):
    return re.search(r"^\.It\b.*\bFl \\?-%s(?![A-Za-z0-9\\-])" % option_pattern(name),
                     text, re.M) is not None


def has_item_short(text, letter):
    return re.search(r"^\.It\b.*\bFl %s(?![A-Za-z0-9\\-])" % re.escape(letter),
                     text, re.M) is not None


def has_key(text, name):
    return re.search(r"^\.It Cm %s(?![A-Za-z0-9\\-])" % option_pattern(name),
                     text, re.M) is not None


def mentions_cm(text, name):
    return re.search(r"\bCm (?:[^\n]* )?%s(?![A-Za-z0-9\\-])" % option_pattern(name),
                     text) is not None


def command_line_only(name):
    """Asks wsjobd whether `name` is refused as a config file key."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(f"{name} = x\n")
    try:
        r = subprocess.run([WSJOBD, "-c", f.name, "--check-config"], capture_output=True,
                           encoding="utf-8", timeout=30)
    finally:
        os.unlink(f.name)
    return "command line only" in r.stderr


def strip_c_comments(text):
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def header_functions():
    code = strip_c_comments(source("include/wsjob.h"))
    names = sorted(set(re.findall(r"\b(wsjob_[a-z0-9_]+)\s*\(", code)))
    if not names:
        raise AssertionError("no functions found in include/wsjob.h")
    return names


def header_constants():
    code = strip_c_comments(source("include/wsjob.h"))
    names = set(re.findall(r"#define\s+(WSJOB_[A-Z0-9_]+)", code))
    names |= set(re.findall(r"\b(WSJOB_[A-Z0-9_]+)\s*=", code))
    names.discard("WSJOB_H")
    return sorted(names)


def error_codes():
    codes = re.findall(r'\[JE_[A-Z_]+\]\s*=\s*"([a-z_]+)"', source("src/pipeline/pipeline.c"))
    codes = sorted(set(codes) - {"none"})
    if not codes:
        raise AssertionError("no error codes found in src/pipeline/pipeline.c")
    return codes


def builtin_types():
    types = re.findall(r'\{\s*"([a-z0-9_-]+)",\s*WSJOB_(?:CPU|IO)',
                       source("src/handlers/handlers_builtin.c"))
    if not types:
        raise AssertionError("no job types found in src/handlers/handlers_builtin.c")
    return types


def rendered(name):
    r = subprocess.run(["mandoc", "-T", "utf8", "-O", "width=100", os.path.join(MAN, name)],
                       capture_output=True, encoding="utf-8", timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"mandoc -T utf8 {name}: {r.stderr}")
    return re.sub(r".\x08", "", r.stdout)   # drop overstrike (bold, underline)


class Lint(unittest.TestCase):
    def test_every_page_is_lint_clean(self):
        for name in ALL_PAGES:
            with self.subTest(page=name):
                r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                                    os.path.join(MAN, name)],
                                   capture_output=True, encoding="utf-8", timeout=30)
                self.assertEqual(r.stdout + r.stderr, "", f"mandoc lint on {name}")
                self.assertEqual(r.returncode, 0, f"mandoc lint on {name}")

    def test_title_matches_file_name(self):
        for name in ALL_PAGES:
            with self.subTest(page=name):
                title, section = name.rsplit(".", 1)
                m = re.search(r"^\.Dt (\S+) (\S+)", page(name), re.M)
                self.assertIsNotNone(m, f"{name} has no .Dt")
                self.assertEqual((m.group(1), m.group(2)), (title.upper(), section))

    def test_every_page_exists(self):
        for name in PAGES:
            with self.subTest(page=name):
                self.assertTrue(os.path.isfile(os.path.join(MAN, name)), f"man/{name} is missing")


class Daemon(unittest.TestCase):
    def test_every_option_is_in_wsjobd_8(self):
        text = page("wsjobd.8")
        for name in long_options(help_text(WSJOBD)):
            with self.subTest(option=name):
                self.assertTrue(has_item_option(text, name),
                                f"--{name} has no '.It Fl \\-{name}' entry in wsjobd.8")

    def test_every_short_option_is_in_wsjobd_8(self):
        text = page("wsjobd.8")
        shorts = re.findall(r"^  -(\w), --", help_text(WSJOBD), re.M)
        self.assertTrue(shorts)
        for letter in shorts:
            with self.subTest(option=letter):
                self.assertTrue(has_item_short(text, letter), f"-{letter} missing in wsjobd.8")

    def test_every_option_is_a_key_of_wsjobd_conf_5(self):
        text = page("wsjobd.conf.5")
        for name in long_options(help_text(WSJOBD)):
            with self.subTest(option=name):
                if command_line_only(name):
                    # Refused in a file: named as command-line only, not listed as a key.
                    self.assertFalse(has_key(text, name),
                                     f"{name} is command-line only but listed as a key")
                    self.assertTrue(mentions_cm(text, name),
                                    f"{name} is not named as command-line only")
                else:
                    self.assertTrue(has_key(text, name),
                                    f"{name} has no '.It Cm {name}' key in wsjobd.conf.5")

    def test_every_error_code_is_in_wsjobd_8(self):
        text = page("wsjobd.8")
        for code in error_codes():
            with self.subTest(code=code):
                self.assertTrue(re.search(r"(?m)^\.It Cm %s$" % re.escape(code), text),
                                f"error code {code} has no '.It Cm {code}' entry in wsjobd.8")

    def test_every_builtin_job_type_is_in_wsjobd_8(self):
        text = page("wsjobd.8")
        for name in builtin_types():
            with self.subTest(type=name):
                self.assertTrue(re.search(r"(?m)^\.It Cm %s\b" % re.escape(name), text),
                                f"job type {name} has no '.It Cm {name}' entry in wsjobd.8")


class Client(unittest.TestCase):
    def test_every_option_is_in_wsjob_1(self):
        text = page("wsjob.1")
        usage = help_text(WSJOB)
        for name in long_options(usage):
            with self.subTest(option=name):
                self.assertTrue(has_item_option(text, name), f"--{name} missing in wsjob.1")
        for letter in SHORT_ONLY.findall(usage):
            with self.subTest(option=letter):
                self.assertTrue(has_item_short(text, letter), f"-{letter} missing in wsjob.1")

    def test_every_command_is_in_wsjob_1(self):
        usage = help_text(WSJOB)
        block = usage.split("Commands:", 1)[1].split("\n\n", 1)[0]
        commands = re.findall(r"^  ([a-z]+)\b", block, re.M)
        self.assertTrue(commands, "no commands in wsjob --help")
        text = page("wsjob.1")
        for cmd in commands:
            with self.subTest(command=cmd):
                self.assertTrue(re.search(r"(?m)^\.Cm %s$" % cmd, text),
                                f"command {cmd} is not in the synopsis of wsjob.1")
                self.assertTrue(re.search(r"(?m)^\.Ss %s\b" % cmd, text),
                                f"command {cmd} has no subsection in wsjob.1")


def python_api_names():
    """Names the wsjob module and its Job object define (python_module.c)."""
    code = source("src/handlers/python_module.c")
    names = re.findall(r'^\s*\{ "([a-z_]+)", ', code, re.M)
    names += re.findall(r'add_exception\(m, "([A-Za-z]+)"', code)
    if len(names) < 6:
        raise AssertionError("too few names found in src/handlers/python_module.c")
    return sorted(set(names))


class PythonApi(unittest.TestCase):
    def test_every_name_of_the_wsjob_module_is_in_wsjob_python_3(self):
        text = page("wsjob-python.3")
        for name in python_api_names():
            with self.subTest(name=name):
                self.assertRegex(text, r"\b%s\b" % name, f"{name} is not in wsjob-python.3")


class HandlerApi(unittest.TestCase):
    def test_every_function_is_in_wsjob_handler_3(self):
        text = page("wsjob-handler.3")
        for fn in header_functions():
            with self.subTest(function=fn):
                self.assertTrue(re.search(r"(?m)^\.Nm %s\b" % fn, text),
                                f"{fn} is not in NAME of wsjob-handler.3")
                self.assertTrue(re.search(r"(?m)^\.Fn %s(?: \"|$)" % fn, text),
                                f"{fn} has no prototype in SYNOPSIS of wsjob-handler.3")

    def test_every_constant_is_in_wsjob_handler_3(self):
        text = page("wsjob-handler.3")
        for name in header_constants():
            with self.subTest(constant=name):
                self.assertTrue(re.search(r"\b%s\b" % name, text),
                                f"{name} of include/wsjob.h is not in wsjob-handler.3")

    def test_example_plugin_compiles(self):
        text = rendered("wsjob-handler.3")
        lines = text.splitlines()
        start = next(i for i, l in enumerate(lines) if l.lstrip().startswith("/* rot13.c"))
        end = next(i for i in range(start, len(lines)) if lines[i].strip() == "};")
        indent = len(lines[start]) - len(lines[start].lstrip())
        code = "\n".join(l[indent:] for l in lines[start:end + 1]) + "\n"
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "rot13.c")
            with open(src, "w", encoding="utf-8") as f:
                f.write(code)
            r = subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra",
                                "-Werror", "-shared", "-fPIC", "-I", os.path.join(ROOT, "include"),
                                "-o", os.path.join(d, "rot13.so"), src],
                               capture_output=True, encoding="utf-8", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
