"""The live benchmark's tasks, each with its own checker, written independently of the project.

A helper who had not seen the kit's requirement patterns or checks wrote these
tasks and checkers (nothing is imported from the project), so they measure the
loop on work it was not tuned for. bench/live_tasks.py runs them;
tests/test_live_checkers.py checks every checker against hand-written passing
and failing answers. Each entry in
TASKS is {"id", "task", "check", "constraints"}; check(text) -> (ok, reason).

Measuring rules (deliberately simple, documented here):
  * Formatting noise: lines that are only a code fence (``` or ```lang) are
    ignored for prose, list, poem and table checks, unless the task forbids
    fences. Leading/trailing whitespace is ignored.
  * Words: text.split() on whitespace; tokens with no letter or digit
    (a stray "-", "*", "—", "|") are not counted.
  * Sentences: split after runs of . ! ? (optionally followed by closing
    quotes/brackets) that are followed by whitespace or end of text; pieces with
    no letter/digit are dropped. Abbreviations such as "e.g." will over-count.
  * Paragraphs: blocks separated by one or more blank lines.
  * Lines: non-empty lines.
  * Bullets: lines starting with -, * or • followed by a space.
  * Numbered items: lines starting with "N." or "N)" followed by a space.
  * JSON: json.loads on the whole text, else on the content of exactly one
    ``` / ```json fence.
  * Python: ast.parse on the fenced block(s) if any, else on the whole text; if
    that fails, on the text from the first line that starts with def/class/
    import/from/@ (trailing non-code lines are trimmed until it parses).
  * Behaviour of functions is judged only through the syntax tree: model code
    is NEVER executed.
  * include/exclude: case-insensitive. include matches the phrase with word
    boundaries on both sides; exclude matches the word at a word start (so
    "candles" also violates "do not use 'candle'").
  * "about N words": accepted within +/-20% of N.
"""

from __future__ import annotations

import ast
import json
import re

# ----------------------------------------------------------------- helpers

FENCE_LINE = re.compile(r"^\s*```[\w+-]*\s*$")


def strip_fence_lines(text: str) -> str:
    return "\n".join(ln for ln in text.strip().splitlines() if not FENCE_LINE.match(ln)).strip()


def word_list(text: str) -> list[str]:
    return [t for t in text.split() if re.search(r"[A-Za-z0-9]", t)]


def n_words(text: str) -> int:
    return len(word_list(strip_fence_lines(text)))


def sentences(text: str) -> list[str]:
    t = " ".join(strip_fence_lines(text).split())
    parts = re.split(r"(?<=[.!?])[\"'”’)\]]*\s+", t)
    return [p for p in parts if re.search(r"[A-Za-z0-9]", p)]


def paragraphs(text: str) -> list[str]:
    blocks = re.split(r"\n\s*\n", strip_fence_lines(text))
    return [b for b in blocks if re.search(r"[A-Za-z0-9]", b)]


def nonempty_lines(text: str) -> list[str]:
    return [ln.strip() for ln in strip_fence_lines(text).splitlines() if ln.strip()]


BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
NUMBERED = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")


def bullet_items(text: str) -> list[str]:
    out = []
    for ln in strip_fence_lines(text).splitlines():
        m = BULLET.match(ln)
        if m:
            out.append(m.group(1).strip())
    return out


def numbered_items(text: str) -> list[str]:
    out = []
    for ln in strip_fence_lines(text).splitlines():
        m = NUMBERED.match(ln)
        if m:
            out.append(m.group(2).strip())
    return out


def has_phrase(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text, re.I) is not None


def has_word_start(text: str, word: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(word), text, re.I) is not None


def load_json(text: str):
    """Return (ok, value_or_reason)."""
    t = text.strip()
    try:
        return True, json.loads(t)
    except ValueError:
        pass
    fences = re.findall(r"```[\w-]*\s*\n(.*?)```", t, re.S)
    if len(fences) == 1:
        try:
            return True, json.loads(fences[0])
        except ValueError as e:
            return False, f"fenced JSON does not parse: {e}"
    if len(fences) > 1:
        return False, f"{len(fences)} code fences, expected one JSON block"
    return False, "text is not valid JSON"


CODE_START = re.compile(r"^(def |class |import |from |@|async def )")


def parse_python(text: str):
    """Return (ok, ast.Module or reason)."""
    t = text.strip()
    blocks = re.findall(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", t, re.S)
    if blocks:
        src = "\n\n".join(blocks)
        try:
            return True, ast.parse(src)
        except SyntaxError as e:
            return False, f"fenced code does not parse: {e.msg} (line {e.lineno})"
    try:
        return True, ast.parse(t)
    except SyntaxError:
        pass
    lines = t.splitlines()
    starts = [i for i, ln in enumerate(lines) if CODE_START.match(ln)]
    if not starts:
        return False, "no Python code found"
    code = lines[starts[0] :]
    while code:
        try:
            return True, ast.parse("\n".join(code))
        except SyntaxError:
            code = code[:-1]
    return False, "Python code does not parse"


def find_def(tree: ast.AST, name: str, cls: str | None = None):
    scope = tree
    if cls is not None:
        scope = find_class(tree, cls)
        if scope is None:
            return None
    for node in ast.walk(scope):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    return None


def find_class(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    return None


def own_nodes(fn: ast.AST):
    """Nodes inside fn's body, not descending into nested defs/classes/lambdas."""
    stack = list(fn.body)
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


def returns_value(fn: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Return)
        and n.value is not None
        and not (isinstance(n.value, ast.Constant) and n.value.value is None)
        for n in own_nodes(fn)
    )


def calls_print(fn: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print" for n in own_nodes(fn))


def n_params(fn) -> int:
    a = fn.args
    return len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)


def md_table(text: str):
    """First markdown table: (header_cells, data_rows) or None."""
    lines = strip_fence_lines(text).splitlines()
    rows, started = [], False
    for ln in lines:
        s = ln.strip()
        if s.startswith("|") or (started and s.count("|") >= 1 and s):
            started = True
            rows.append(s)
        elif started:
            break
    if len(rows) < 2:
        return None

    def cells(row):
        row = row.strip()
        if row.startswith("|"):
            row = row[1:]
        if row.endswith("|"):
            row = row[:-1]
        return [c.strip() for c in row.split("|")]

    sep = cells(rows[1])
    if not all(re.fullmatch(r":?-{2,}:?", c.replace(" ", "")) for c in sep):
        return None
    return cells(rows[0]), [cells(r) for r in rows[2:]]


def norm_cell(c: str) -> str:
    return re.sub(r"[*_`]", "", c).strip().lower()


def first_letter(line: str) -> str:
    m = re.search(r"[A-Za-z]", re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line))
    return m.group(0).upper() if m else ""


def edge_clean(text: str) -> str:
    """Strip whitespace, fence lines and wrapping quotes/markdown emphasis at the edges."""
    return strip_fence_lines(text).strip().strip("\"'“”*_ ").strip()


def all_ok(*results):
    """Combine (ok, reason) pairs; fail on the first failing one."""
    reasons = []
    for ok, why in results:
        if not ok:
            return False, why
        reasons.append(why)
    return True, "; ".join(reasons)


# ---------------------------------------------------------- atomic checks


def c_words_max(t, n):
    k = n_words(t)
    return k <= n, f"{k} words (max {n})"


def c_words_min(t, n):
    k = n_words(t)
    return k >= n, f"{k} words (min {n})"


def c_words_range(t, lo, hi):
    k = n_words(t)
    return lo <= k <= hi, f"{k} words (want {lo}-{hi})"


def c_words_about(t, n, tol=0.2):
    k = n_words(t)
    lo, hi = round(n * (1 - tol)), round(n * (1 + tol))
    return lo <= k <= hi, f"{k} words (about {n}: {lo}-{hi})"


def c_sentences(t, n):
    k = len(sentences(t))
    return k == n, f"{k} sentences (want {n})"


def c_paragraphs(t, n):
    k = len(paragraphs(t))
    return k == n, f"{k} paragraphs (want {n})"


def c_lines(t, n):
    k = len(nonempty_lines(t))
    return k == n, f"{k} non-empty lines (want {n})"


def c_bullets(t, n):
    k = len(bullet_items(t))
    return k == n, f"{k} bullets (want {n})"


def c_numbered(t, n):
    k = len(numbered_items(t))
    return k == n, f"{k} numbered items (want {n})"


def c_include(t, p):
    return has_phrase(t, p), f"'{p}' {'present' if has_phrase(t, p) else 'missing'}"


def c_exclude(t, p):
    bad = has_word_start(t, p)
    return not bad, f"'{p}' {'present (forbidden)' if bad else 'absent'}"


def c_starts(t, p):
    ok = edge_clean(t).lower().startswith(p.lower())
    return ok, f"starts with '{p}': {ok}"


def c_ends(t, p):
    ok = edge_clean(t).lower().endswith(p.lower().strip("\"'“”*_ "))
    return ok, f"ends with '{p}': {ok}"


def c_no_bullets(t):
    k = len(bullet_items(t)) + len(numbered_items(t))
    return k == 0, f"{k} list-marked lines (want 0)"


def c_lower(t):
    up = [ch for ch in t if ch.isupper()]
    return not up and any(ch.isalpha() for ch in t), f"{len(up)} upper-case letters (want 0)"


def c_upper(t):
    low = [ch for ch in t if ch.islower()]
    return not low and any(ch.isalpha() for ch in t), f"{len(low)} lower-case letters (want 0)"


def c_acrostic(t, word):
    got = "".join(first_letter(ln) for ln in nonempty_lines(t))
    return got == word.upper(), f"line initials '{got}' (want '{word.upper()}')"


def c_line_start(t, letter):
    ls = nonempty_lines(t)
    bad = [ln for ln in ls if first_letter(ln) != letter.upper()]
    return bool(ls) and not bad, f"{len(bad)} of {len(ls)} lines not starting with '{letter}'"


def c_table(t, columns, rows):
    tab = md_table(t)
    if tab is None:
        return False, "no markdown table (header + --- separator) found"
    head, data = tab
    want = [c.lower() for c in columns]
    got = [norm_cell(c) for c in head]
    if sorted(got) != sorted(want):
        return False, f"table columns {head} (want {columns})"
    if len(data) != rows:
        return False, f"table has {len(data)} data rows (want {rows})"
    return True, f"table columns {columns}, {rows} rows"


def c_python_func(t, name, nparams=None, must_return=True, no_print=False, cls=None):
    ok, tree = parse_python(t)
    if not ok:
        return False, tree
    if cls is not None and find_class(tree, cls) is None:
        return False, f"class {cls} not defined"
    fn = find_def(tree, name, cls)
    if fn is None:
        return False, f"function {name} not defined"
    if nparams is not None:
        k = n_params(fn) - (1 if cls is not None else 0)
        if k != nparams:
            return False, f"{name} takes {k} parameters (want {nparams})"
    if must_return and not returns_value(fn):
        return False, f"{name} has no 'return <value>'"
    if no_print and calls_print(fn):
        return False, f"{name} calls print()"
    return True, f"{name} defined" + (", returns a value" if must_return else "")


def c_no_fence(t):
    ok = "```" not in t
    return ok, "no code fence" if ok else "code fence present"
