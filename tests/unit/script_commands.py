"""Which external commands the project's scripts start, and which Debian packages they ensure.

A static reading, good enough for this repo's own shell style: commands at command position
(after `;`, `&&`, `||`, `|`, `$(`, `then`, `do`, …, and inside the wrappers the node scripts
use: `nsenter --net=X CMD`, `inside CMD`, `start NAME CMD`, `wait_for NAME SECS CMD`, `env`,
`exec`, `timeout`, `flock`), heredoc bodies and comments skipped. Python modules count the argv
literals they hand to `subprocess` / `asyncio.create_subprocess_exec`.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ENSURE_SCRIPT = "ensure-debian-packages.sh"

SHELL_KEYWORDS = frozenset(
    str.split(
        "if then else elif fi for while until do done case esac in function select time ! { } "
        "[[ ]] [ ]"
    )
)
SHELL_BUILTINS = frozenset(
    str.split(
        "alias bg bind break builtin caller cd command compgen complete continue declare dirs "
        "disown echo enable eval exec exit export false fc fg getopts hash help history jobs kill "
        "let local logout mapfile popd printf pushd pwd read readarray readonly return set shift "
        "shopt source suspend test times trap true type typeset ulimit umask unalias unset wait "
        "."
    )
)
# Wrappers whose later words start another command: name -> how many plain words to skip
# after the options (nsenter's --net=…, start's NAME, wait_for's NAME SECS, …).
WRAPPERS = {
    "nsenter": 0,
    "env": 0,
    "exec": 0,
    "nohup": 0,
    "setsid": 0,
    "sudo": 0,
    "inside": 0,
    "in_node": 0,
    "timeout": 1,
    "flock": 1,
    "start": 1,
    "start_inside": 1,
    "wait_for": 2,
}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
FUNCTION_DEF = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)\s*\{?", re.M)
VARIABLE_DEF = re.compile(r'^\s*(?:local\s+)?([A-Z_][A-Z0-9_]*)="([^"$]*)"', re.M)
HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?")


@dataclass
class ScriptFacts:
    """What one file starts and what it ensures (packages), plus the scripts it runs."""

    path: Path
    commands: dict[str, int] = field(default_factory=dict)  # command -> first line number
    ensured: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)  # other project scripts it starts (file names)


def _segments(text: str) -> list[tuple[int, str]]:
    """Simple commands of a shell text as (line number, words text): split at `;`, `&&`,
    `||`, `|`, `&`, parentheses, braces and newlines outside quotes; `$(…)` and backticks
    become segments of their own (also inside double quotes); comments and heredoc bodies
    dropped; single-quoted text never split."""
    segments: list[tuple[int, str]] = []
    current: list[str] = []
    current_line = 1
    line = 1
    heredocs: list[str] = []
    stack: list[tuple[list[str], int, str]] = []  # enclosing segments of open $( … )
    quote = ""  # "", "'" or '"'
    i = 0

    def flush() -> None:
        nonlocal current, current_line
        if "".join(current).strip():
            segments.append((current_line, "".join(current)))
        current = []
        current_line = line

    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'":
            current.append(text[i : i + 2].replace("\\\n", " "))
            line += text[i : i + 2].count("\n")
            i += 2
            continue
        if quote == "'":
            current.append(char)
            quote = "" if char == "'" else quote
        elif char == "$" and text.startswith("$(", i) and not text.startswith("$((", i):
            stack.append(([*current, "X"], current_line, quote))
            current, current_line, quote = [], line, ""
            i += 2
            continue
        elif char == ")" and stack and quote == "":
            flush()
            current, current_line, quote = stack.pop()
        elif quote == '"':
            current.append(char)
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == "#" and (not current or current[-1] in " \t;&|("):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif char == "<" and text.startswith("<<", i) and not text.startswith("<<<", i):
            heredoc = HEREDOC.match(text, i)
            if heredoc:
                heredocs.append(heredoc.group(1))
                i = heredoc.end()
                continue
            current.append(char)
        elif char == "\n":
            line += 1
            flush()
            if heredocs:
                for terminator in heredocs:
                    while i < len(text):
                        end = text.find("\n", i + 1)
                        end = len(text) if end < 0 else end
                        body_line = text[i + 1 : end]
                        i = end
                        line += 1
                        if body_line.strip() == terminator:
                            break
                heredocs = []
                current_line = line
        elif char in ";&|(){}`":
            flush()
        else:
            current.append(char)
        i += 1
    flush()
    return segments


def _words(segment: str) -> list[str]:
    try:
        return shlex.split(segment, comments=False, posix=True)
    except ValueError:
        return segment.split()


def _command_of(words: list[str]) -> str | None:
    """The command a segment's words start, looking through assignments and wrappers."""
    index = 0
    while index < len(words):
        word = words[index]
        if ASSIGNMENT.match(word) or word in SHELL_KEYWORDS:
            index += 1
            continue
        if word in WRAPPERS:
            skip = WRAPPERS[word]
            index += 1
            while index < len(words) and (
                words[index].startswith("-") or ASSIGNMENT.match(words[index])
            ):
                index += 1
            index += skip
            continue
        # A tool the toolchain built ("$bin/kubelet") counts by its name.
        return word[len("$bin/") :] if word.startswith("$bin/") else word
    return None


def _is_external(word: str, functions: set[str]) -> bool:
    if not word or word in SHELL_BUILTINS or word in SHELL_KEYWORDS or word in functions:
        return False
    if word[0] in "$\"'-=<>[(0123456789" or word.endswith(")") or "/" in word or "=" in word:
        return False
    return re.fullmatch(r"[a-z][a-z0-9._+-]*", word) is not None


def read_shell(path: Path) -> ScriptFacts:
    """Commands, ensured packages and started project scripts of one shell script."""
    text = path.read_text()
    facts = ScriptFacts(path)
    functions = set(FUNCTION_DEF.findall(text))
    for library in re.findall(r"^\s*(?:source|\.)\s+\S*?([A-Za-z0-9_-]+\.sh)\"?\s*$", text, re.M):
        functions |= set(FUNCTION_DEF.findall((path.parent / library).read_text()))
    variables = dict(VARIABLE_DEF.findall(text))
    for line in text.splitlines():
        line = line.split(" #", 1)[0]
        if line.lstrip().startswith("#"):
            continue
        for script in re.findall(r"([A-Za-z0-9_-]+\.sh)\b", line):
            if script != path.name:
                facts.runs.add(script)
        facts.runs.update(re.findall(r"\b(tests/[a-z0-9_]+)\b", line))
        if ENSURE_SCRIPT in line:
            after = line.split(ENSURE_SCRIPT, 1)[1]
            for word in _words(after):
                for name, value in variables.items():
                    word = word.replace(f"${name}", value).replace(f"${{{name}}}", value)
                facts.ensured.update(w for w in word.split() if re.fullmatch(r"[a-z0-9.+-]+", w))
    for number, segment in _segments(text):
        words = _words(segment)
        if words and words[0] in {"for", "select", "case"}:
            continue
        command = _command_of(words)
        if command is not None and _is_external(command, functions):
            facts.commands.setdefault(command, number)
    return facts


def _literal(node: ast.expr, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def read_python(path: Path) -> ScriptFacts:
    """argv[0] literals handed to subprocess and the packages ensured through the script."""
    tree = ast.parse(path.read_text())
    facts = ScriptFacts(path)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            elements = [_literal(e, constants) for e in node.elts]
            rendered = ast.unparse(node.elts[0])
            if ENSURE_SCRIPT in rendered:
                facts.ensured.update(e for e in elements[1:] if e)
            first = elements[0]
            if first and _is_external(first, set()) and _starts_process(node, tree):
                facts.commands.setdefault(first, node.lineno)
    return facts


def _starts_process(argv: ast.expr, tree: ast.Module) -> bool:
    """Whether this list is an argv: an argument of a process-starting call, or a base argv
    (a list of which some other list in the module is built by unpacking)."""
    starters = {"run", "Popen", "check_output", "check_call", "call", "create_subprocess_exec"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and node.args[0] is argv:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in starters:
                return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.value is argv:
            target = ast.unparse(node.targets[0])
            return any(
                isinstance(n, ast.Starred) and ast.unparse(n.value) == target
                for n in ast.walk(tree)
            )
    return False
