"""A second, independent implementation of New Relic's query normalizer and
hash (its collector fork's internal/nrcommon/sqlnormalizer, NormalizeSQLAndHash),
for tests only: stdlib/tests/apm_hash_oracle.rs holds the Rust implementation
(stdlib/src/sql/apm_hash.rs) to it, byte for byte.

Written from New Relic's Go code, not from ours, and on purpose the other way
round where it can be: it walks code points (the Go code and ours walk bytes),
looks back over its output the way the Go code does (ours remembers), and takes
format characters and case from Python's own Unicode tables.

    python3 nr_normalizer.py --serve   # a JSON string per line in, [normalized, hash] out
    python3 nr_normalizer.py --phase0  # every assigned code point's fate in phase 0
    python3 nr_normalizer.py TEXT      # one text
"""
import hashlib
import json
import sys
import unicodedata

SPACE = " \t\n\r"
# what Go's strings.TrimSpace (unicode.IsSpace) removes; str.strip() would
# also remove \x1c-\x1f
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
KEYWORD_LITERALS = ("NULL", "TRUE", "FALSE")
EXTRACT_FIELDS = ("EPOCH", "YEAR", "MONTH", "DAY", "DOW", "ISODOW", "DOY", "HOUR", "MINUTE", "SECOND",
                  "MICROSECONDS", "MILLISECONDS", "TIMEZONE", "TIMEZONE_HOUR", "TIMEZONE_MINUTE",
                  "QUARTER", "WEEK", "DECADE", "CENTURY", "MILLENNIUM", "ISOYEAR", "JULIAN")

# Go's unicode.ToUpper is UnicodeData's simple mapping; Python's upper() is the
# full one. They differ only where the full mapping has several characters:
# then the simple one is the character itself, except these.
SIMPLE_UPPER = {}
for base in (0x1F80, 0x1F90, 0x1FA0):
    for k in range(8):
        SIMPLE_UPPER[chr(base + k)] = chr(base + 8 + k)
SIMPLE_UPPER.update({"\u1fb3": "\u1fbc", "\u1fc3": "\u1fcc", "\u1ff3": "\u1ffc"})


def go_upper(ch):
    full = ch.upper()
    if len(full) == 1:
        return full
    return SIMPLE_UPPER.get(ch, ch)


def ident(ch):
    return ch == "_" or ("A" <= ch <= "Z") or ("0" <= ch <= "9")


def digit(ch):
    return "0" <= ch <= "9"


class Text:
    def __init__(self, s):
        self.s = s
        self.i = 0

    def get(self, k):
        return self.s[k] if 0 <= k < len(self.s) else ""

    def here(self, offset=0):
        return self.get(self.i + offset)


def number_starts(t):
    c = t.here()
    if not (digit(c) or c in "+-."):
        return False
    if t.i > 0:
        p = t.get(t.i - 1)
        if ("A" <= p <= "Z") or p == "_" or p == "`":
            return False
    k = t.i + 1 if c in "+-" else t.i
    first = t.get(k)
    if first == ".":
        return digit(t.get(k + 1))
    return digit(first)


def skip_number(t):
    if t.here() in ("+", "-"):
        t.i += 1
    while digit(t.here()):
        t.i += 1
    if t.here() == ".":
        t.i += 1
        while digit(t.here()):
            t.i += 1
    if t.here() == "E":
        t.i += 1
        if t.here() in ("+", "-"):
            t.i += 1
        while digit(t.here()):
            t.i += 1


def skip_string(t):
    t.i += 1
    while t.i < len(t.s):
        c = t.here()
        if c == "'":
            if t.here(1) == "'":
                t.i += 2
                continue
            t.i += 1
            return
        t.i += 2 if c == "\\" else 1
    t.i = min(t.i, len(t.s))


def placeholder_starts(t):
    c, n = t.here(), t.here(1)
    if c == "?":
        return True
    if c == "$":
        return digit(n)
    if c == ":":
        return n != "" and ident(n)
    if c == "@":
        return n != "" and ident(n) and t.get(t.i - 1) != "@"
    if c == "%":
        return n == "("
    return False


def skip_placeholder(t):
    c = t.here()
    t.i += 1
    if c == "$":
        while digit(t.here()):
            t.i += 1
    elif c in (":", "@"):
        while t.here() != "" and ident(t.here()):
            t.i += 1
    elif c == "%":
        t.i += 1  # the (
        while t.here() not in ("", ")"):
            t.i += 1
        if t.here() == ")":
            t.i += 1
        if t.here() == "S":
            t.i += 1


def whole_word_at(t, words):
    for w in words:
        if t.s.startswith(w, t.i):
            after = t.get(t.i + len(w))
            if after == "" or not ident(after):
                return len(w)
    return 0


def last_solid(out, end):
    """Index of the last character before `end` that is not a space, or -1."""
    k = end - 1
    while k >= 0 and out[k] in SPACE:
        k -= 1
    return k


def after_in(out):
    k = last_solid(out, len(out))
    if k < 1 or out[k] != "N" or out[k - 1] != "I":
        return False
    return k < 2 or not ident(out[k - 2])


def after_extract_paren(out):
    k = last_solid(out, len(out))
    if k < 0 or out[k] != "(":
        return False
    end = last_solid(out, k) + 1
    if end < 7 or "".join(out[end - 7:end]) != "EXTRACT":
        return False
    return end == 7 or not ident(out[end - 8])


def in_list(t):
    """At a `(` after IN: `(?)` for a closed list of two or more literals and
    placeholders; otherwise `(`, with the cursor just past it."""
    open_at = t.i
    t.i += 1
    items = 0
    while t.here() not in ("", ")"):
        c = t.here()
        if c in SPACE or c == ",":
            t.i += 1
        elif placeholder_starts(t):
            items += 1
            skip_placeholder(t)
        elif number_starts(t):
            items += 1
            skip_number(t)
        elif c == "'":
            items += 1
            skip_string(t)
        else:
            break
    if items > 1 and t.here() == ")":
        t.i += 1
        return "(?)"
    t.i = open_at + 1
    return "("


def literals(sql):
    out = []
    t = Text(sql)
    while t.i < len(sql):
        c = t.here()
        if c == "'":
            skip_string(t)
            out.append("?")
            continue
        if c == "(":
            if after_in(out):
                out.extend(in_list(t))
            else:
                out.append("(")
                t.i += 1
            continue
        if number_starts(t):
            skip_number(t)
            out.append("?")
            continue
        if c in "NTF" and (t.i == 0 or not ident(t.get(t.i - 1))):
            n = whole_word_at(t, KEYWORD_LITERALS)
            if n:
                t.i += n
                out.append("?")
                continue
        if after_extract_paren(out):
            n = whole_word_at(t, EXTRACT_FIELDS)
            if n:
                t.i += n
                out.append("?")
                continue
        if placeholder_starts(t):
            skip_placeholder(t)
            out.append("?")
            continue
        out.append(c)
        t.i += 1
    return "".join(out)


def comments(sql):
    out = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            out.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
            out.append("?")
        elif sql.startswith("--", i) or (c == "#" and (i == 0 or sql[i - 1] in SPACE)):
            i += 1 if c == "#" else 2
            while i < n and sql[i] not in "\n\r":
                i += 1
            out.append("?")
        elif c in SPACE:
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out).strip(GO_SPACE)


def normalize(sql):
    if sql == "":
        return ""
    visible = "".join(ch for ch in sql if unicodedata.category(ch) != "Cf")
    upper = "".join(go_upper(ch) for ch in visible)
    return comments(literals(upper))


def normalize_and_hash(sql):
    normalized = normalize(sql)
    if normalized == "":
        return "", ""
    key = normalized.replace("?", "").rstrip(";")
    return normalized, hashlib.md5(key.encode("utf-8")).hexdigest()


def phase0_table():
    """Every code point Python's tables assign, with what phase 0 makes of
    it: `cp:-` removed, `cp:up` upper-cased (hex), one per line."""
    lines = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        category = unicodedata.category(ch)
        if category == "Cn":
            continue
        lines.append("%x:-" % cp if category == "Cf" else "%x:%x" % (cp, ord(go_upper(ch))))
    return lines


def main():
    if sys.argv[1:] == ["--phase0"]:
        print(unicodedata.unidata_version)
        print("\n".join(phase0_table()))
    elif sys.argv[1:] == ["--serve"]:
        print(json.dumps({"unicode": unicodedata.unidata_version}), flush=True)
        for line in sys.stdin:
            print(json.dumps(list(normalize_and_hash(json.loads(line)))), flush=True)
    else:
        for text in sys.argv[1:]:
            print(json.dumps(list(normalize_and_hash(text))))


if __name__ == "__main__":
    main()
