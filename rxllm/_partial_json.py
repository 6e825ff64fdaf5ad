"""An incremental JSON parser: the text arrives in pieces, and the value so far is at hand after
each one, in time linear in the whole text.

:class:`PartialJSON` keeps what a recursive parser keeps on its call stack - the containers
still open, the key each open object is filling, the string, number or literal being read - so
a piece is parsed from where the previous one stopped and no character is read twice (but for
an escape sequence cut in two, at most 11 characters carried to the next piece). Runs of text
are taken whole by regular expressions (the body of a string up to its next quote or
backslash, the characters of a number, whitespace), so a long string costs one match per
piece, not a Python step per character.

The value is built in place: an object or array is put into its parent when it opens and
filled as its members complete. :meth:`PartialJSON.snapshot` copies only what is still open -
the open containers, from the root down, shallowly, and the text of an open string - and
shares every completed member with the live value and with earlier snapshots, which stay
valid: a completed member is never changed again.

What a snapshot shows ("the value so far"):

* strings as far as they came (``{"city": "Mex`` -> ``{"city": "Mex"}``);
* objects and arrays with their completed members, and the open member last;
* numbers, ``true``, ``false`` and ``null`` only once complete (``12`` may go on to ``123``),
  and a key only once its value has begun.

So every snapshot is a prefix of the final value: equal to it but for the last member of
each open container, itself a prefix of the final one, and strings that the final one extends.
Strings and numbers are decoded by msgspec itself, so a completed member is exactly what
``msgspec.json.decode`` gives for it. Syntax errors are found as soon as the text shows them,
as :class:`JSONSyntaxError` (a ``msgspec.DecodeError``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import msgspec

__all__ = ["NOTHING", "JSONSyntaxError", "PartialJSON"]

#: What :meth:`PartialJSON.snapshot` returns before any of the value is visible.
NOTHING: Final[Any] = type("Nothing", (), {"__repr__": lambda self: "NOTHING"})()

# States of the parser: what it expects next.
_VALUE = 0  # a value (root, after ':' or after ',' in an array)
_FIRST_ITEM = 1  # after '[': a value or ']'
_FIRST_KEY = 2  # after '{': a key or '}'
_KEY = 3  # after ',' in an object: a key
_COLON = 4  # after a key
_AFTER = 5  # after a member: ',' or the closing bracket
_STRING = 6  # inside a string (a key or a value)
_NUMBER = 7  # inside a number
_LITERAL = 8  # inside true, false or null
_END = 9  # after the root value: whitespace only

#: ``pattern.match`` of a pattern that matches everywhere (possibly empty): never None.
_Matcher = Callable[[str, int], "re.Match[str]"]

#: A run of string body made of whole characters and escapes: plain characters, the two-char
#: escapes, ``\\uXXXX`` that is not a surrogate, and a high surrogate with its low one.
_STRING_RUN: _Matcher = re.compile(
    r'(?:[^"\\\x00-\x1f]+|\\["\\/bfnrt]|\\u(?![dD][89a-fA-F])[0-9a-fA-F]{4}'
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})*"
).match  # type: ignore[assignment]
#: The start of an escape that may still become valid when more text comes.
_ESCAPE_PREFIX = re.compile(
    r"\\(?:u(?:[0-9a-fA-F]{0,3}|[dD][89abAB][0-9a-fA-F]{2}"
    r"(?:\\(?:u(?:[dD](?:[c-fC-F][0-9a-fA-F]{0,2})?)?)?)?))?"
).fullmatch
_WHITESPACE: _Matcher = re.compile(r"[ \t\n\r]*").match  # type: ignore[assignment]
_NUMBER_RUN: _Matcher = re.compile(r"[-+0-9.eE]*").match  # type: ignore[assignment]
_NUMBER_TOKEN = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?").fullmatch
_SPACE = frozenset(" \t\n\r")
_LITERALS: dict[str, tuple[str, Any]] = {
    "t": ("true", True),
    "f": ("false", False),
    "n": ("null", None),
}

_decode = msgspec.json.decode


def _unescape(piece: str, position: int) -> str:
    """A run of string body holding escapes, decoded (by msgspec, as the whole text will be)."""
    try:
        text: str = _decode('"' + piece + '"')
    except msgspec.DecodeError as exc:  # the run's pattern admits only valid escapes
        raise JSONSyntaxError(f"bad string: {exc}", position) from None
    return text


class JSONSyntaxError(msgspec.DecodeError):
    """The text is not JSON: ``position`` is the offset of the first character that shows it
    (counted in characters of the whole text)."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.position = position


class PartialJSON:
    """Parses one JSON value fed in pieces (:meth:`feed`); :meth:`snapshot` is the value so
    far. Linear in the text however it is cut; each snapshot costs the size of the open
    containers (not of the text)."""

    __slots__ = (
        "_carry",
        "_consumed",
        "_is_key",
        "_keys",
        "_literal",
        "_open_len",
        "_parts",
        "_root",
        "_stack",
        "_state",
        "scanned",
    )

    def __init__(self) -> None:
        self._state = _VALUE
        self._root: Any = NOTHING
        self._stack: list[Any] = []  # the open containers, root first
        self._keys: list[Any] = []  # per open container: the key being filled (objects)
        self._parts: list[str] = []  # the open string (decoded) or number (as text)
        self._open_len = 0  # the open string's length so far
        self._is_key = False
        self._literal = ""  # the open literal's text so far
        self._carry = ""  # an escape cut in two: re-read with the next piece
        self._consumed = 0  # characters before the current piece (error positions)
        #: Characters read so far, carried ones included (how the linear bound is tested).
        self.scanned = 0

    @property
    def complete(self) -> bool:
        """True once the root value has ended (a number at the root ends with :meth:`close`)."""
        return self._state == _END

    @property
    def started(self) -> bool:
        """True once some of the value is visible in a snapshot."""
        return self._root is not NOTHING or (self._state == _STRING and not self._stack)

    def feed(self, text: str) -> bool:
        """Parse the next piece of text; True when the value so far changed (so a new
        snapshot differs from the previous one). Raises :class:`JSONSyntaxError`."""
        carry = self._carry
        if carry:
            s = carry + text
            self._carry = ""
        else:
            s = text
        n = len(s)
        self.scanned += n
        start = self._consumed - len(carry)
        self._consumed += len(text)
        pos = 0
        changed = False
        state = self._state
        stack = self._stack
        try:
            while pos < n:
                if state == _STRING:
                    end = _STRING_RUN(s, pos).end()
                    if end > pos:
                        piece = s[pos:end]
                        if "\\" in piece:
                            piece = _unescape(piece, start + pos)
                        self._parts.append(piece)
                        self._open_len += len(piece)
                        changed = changed or not self._is_key
                        pos = end
                        if pos == n:
                            break
                    c = s[pos]
                    if c == '"':
                        pos += 1
                        parts = self._parts
                        value = parts[0] if len(parts) == 1 else "".join(parts)
                        self._parts = []
                        self._open_len = 0
                        if self._is_key:
                            self._keys[-1] = value
                            state = _COLON
                        else:  # already visible: completing it changes nothing
                            state = self._put(value)
                        continue
                    if c == "\\" and _ESCAPE_PREFIX(s, pos):
                        self._carry = s[pos:]
                        break
                    raise self._error(
                        "invalid escape" if c == "\\" else "control character in a string",
                        start + pos,
                    )
                if state == _NUMBER:
                    end = _NUMBER_RUN(s, pos).end()
                    if end > pos:
                        self._parts.append(s[pos:end])
                        pos = end
                        if pos == n:
                            break
                    state = self._end_number(start + pos)
                    changed = True
                    continue
                if state == _LITERAL:
                    word, value = _LITERALS[self._literal[0]]
                    got = self._literal + s[pos : pos + len(word) - len(self._literal)]
                    if not word.startswith(got):
                        raise self._error(f"expected {word!r}", start + pos)
                    pos += len(got) - len(self._literal)
                    if len(got) < len(word):
                        self._literal = got
                        continue
                    self._literal = ""
                    state = self._put(value)
                    changed = True
                    continue
                c = s[pos]
                if c in _SPACE:
                    pos = _WHITESPACE(s, pos).end()
                    if pos == n:
                        break
                    c = s[pos]
                if state == _AFTER:
                    top = stack[-1]
                    if c == ",":
                        state = _KEY if type(top) is dict else _VALUE
                    elif c == ("}" if type(top) is dict else "]"):
                        state = self._close()
                    else:
                        raise self._error(f"unexpected {c!r} after a member", start + pos)
                    pos += 1
                elif state <= _FIRST_ITEM:  # _VALUE, _FIRST_ITEM
                    if c == '"':
                        self._is_key = False
                        state = _STRING
                        changed = True
                        pos += 1
                    elif c == "{":
                        self._open({})
                        state = _FIRST_KEY
                        changed = True
                        pos += 1
                    elif c == "[":
                        self._open([])
                        state = _FIRST_ITEM
                        changed = True
                        pos += 1
                    elif c in "-0123456789":
                        state = _NUMBER  # the number branch takes its characters
                    elif c in "tfn":
                        self._literal = c
                        state = _LITERAL
                        pos += 1
                    elif c == "]" and state == _FIRST_ITEM:
                        state = self._close()
                        pos += 1
                    else:
                        raise self._error(f"expected a value, not {c!r}", start + pos)
                elif state == _COLON:
                    if c != ":":
                        raise self._error(f"expected ':', not {c!r}", start + pos)
                    state = _VALUE
                    pos += 1
                elif state == _END:
                    raise self._error(f"unexpected {c!r} after the JSON value", start + pos)
                else:  # _FIRST_KEY, _KEY
                    if c == '"':
                        self._is_key = True
                        state = _STRING
                    elif c == "}" and state == _FIRST_KEY:
                        state = self._close()
                    else:
                        raise self._error(f"expected a key, not {c!r}", start + pos)
                    pos += 1
        finally:
            self._state = state
        return changed

    def close(self) -> bool:
        """The text has ended: finish a number at the root. True when the value is complete
        (else the text stopped inside it); raises :class:`JSONSyntaxError` for a bad number."""
        if self._state == _NUMBER and not self._stack:
            self._state = self._end_number(self._consumed)
        return self._state == _END

    def snapshot_cost(self) -> int:
        """About what a :meth:`snapshot` now copies: the open containers' sizes and the open
        string's length (a caller may wait for more text before paying it)."""
        cost = sum(map(len, self._stack))
        if self._state == _STRING and not self._is_key:
            cost += self._open_len
        return cost

    def snapshot(self) -> Any:
        """The value so far (:data:`NOTHING` before any of it is visible): fresh copies of the
        open containers, completed members shared."""
        stack = self._stack
        open_string = self._state == _STRING and not self._is_key
        if open_string:
            parts = self._parts
            child: Any = parts[0] if len(parts) == 1 else "".join(parts)
            if len(parts) > 1:
                self._parts = [child]  # later snapshots join less
        if not stack:
            return child if open_string else self._root
        keys = self._keys
        top = len(stack) - 1
        i = top
        has_child = open_string
        while i >= 0:
            container = stack[i]
            copy = container.copy()
            if has_child:
                if type(copy) is dict:
                    copy[keys[i]] = child
                elif i == top:  # the open string, not in the list yet
                    copy.append(child)
                else:  # the open container above, the list's last item
                    copy[-1] = child
            child = copy
            has_child = True
            i -= 1
        return child

    # --- helpers ---------------------------------------------------------------------------

    def _put(self, value: Any) -> int:
        """Add a completed value to the open container (or make it the root); the next state."""
        stack = self._stack
        if not stack:
            self._root = value
            return _END
        top = stack[-1]
        if type(top) is list:
            top.append(value)
        else:
            top[self._keys[-1]] = value
        return _AFTER

    def _open(self, container: Any) -> None:
        self._put(container)
        self._stack.append(container)
        self._keys.append(None)

    def _close(self) -> int:
        self._stack.pop()
        self._keys.pop()
        return _AFTER if self._stack else _END

    def _end_number(self, position: int) -> int:
        parts = self._parts
        token = parts[0] if len(parts) == 1 else "".join(parts)
        self._parts = []
        if not _NUMBER_TOKEN(token):
            raise self._error(f"{token!r} is not a number", position - len(token))
        try:
            value = _decode(token)
        except msgspec.DecodeError as exc:  # out of range
            raise self._error(f"{token!r}: {exc}", position - len(token)) from None
        return self._put(value)

    def _error(self, message: str, position: int) -> JSONSyntaxError:
        return JSONSyntaxError(message, position)
