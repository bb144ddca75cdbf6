# ruff: noqa: E501  (task data: embedded code and tests read best one statement per line)
"""Source of the shipped ``code-chat`` offline sample (tasks written for this project, BigCodeBench-shaped).

Each entry: (request, libs, code_prompt, solution body, tests). ``scripts/check_code_sample.py --write`` turns
them into ``plugins/tasks/data/code_chat.jsonl``; without ``--write`` it verifies the shipped file.
"""

from __future__ import annotations

TASKS: list[tuple[str, list[str], str, str, str]] = []


def task(request: str, libs: list[str], code_prompt: str, body: str, tests: str) -> None:
    TASKS.append((request, libs, code_prompt, body, tests))


task(
    "Count how often each word occurs in a text, ignoring case and punctuation, and return the n most common "
    "words. Words are runs of letters, digits or apostrophes. Ties are broken alphabetically.\n"
    "The function should raise the exception for: ValueError if n is negative.\n"
    "The function should output with:\n    list of (word, count) tuples, most frequent first.",
    ["collections", "re"],
    "import re\nfrom collections import Counter\ndef task_func(text, n=3):\n",
    "    if n < 0:\n        raise ValueError('n must be non-negative')\n"
    "    words = re.findall(r\"[a-z0-9']+\", text.lower())\n"
    "    counts = Counter(words)\n"
    "    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_basic(self):\n        self.assertEqual(task_func('a b a c b a', 2), [('a', 3), ('b', 2)])\n"
    "    def test_case_and_punctuation(self):\n        self.assertEqual(task_func('Hi! hi, HI. there', 1), [('hi', 3)])\n"
    "    def test_ties_alphabetical(self):\n        self.assertEqual(task_func('z y x', 3), [('x', 1), ('y', 1), ('z', 1)])\n"
    "    def test_negative(self):\n        with self.assertRaises(ValueError):\n            task_func('a', -1)\n"
    "    def test_empty(self):\n        self.assertEqual(task_func('', 5), [])\n",
)

task(
    "Compute the mean, median and population standard deviation of a list of numbers, each rounded to 2 "
    "decimals.\nThe function should raise the exception for: ValueError if the list is empty.\n"
    "The function should output with:\n    dict with keys 'mean', 'median', 'std'.",
    ["statistics"],
    "import statistics\ndef task_func(values):\n",
    "    if not values:\n        raise ValueError('empty input')\n"
    "    return {'mean': round(statistics.fmean(values), 2), 'median': round(statistics.median(values), 2),\n"
    "            'std': round(statistics.pstdev(values), 2)}\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_simple(self):\n        self.assertEqual(task_func([1, 2, 3, 4]), {'mean': 2.5, 'median': 2.5, 'std': 1.12})\n"
    "    def test_single(self):\n        self.assertEqual(task_func([5]), {'mean': 5.0, 'median': 5, 'std': 0.0})\n"
    "    def test_empty(self):\n        with self.assertRaises(ValueError):\n            task_func([])\n"
    "    def test_floats(self):\n        r = task_func([0.1, 0.2, 0.4])\n        self.assertAlmostEqual(r['mean'], 0.23)\n"
    "        self.assertAlmostEqual(r['median'], 0.2)\n",
)

task(
    "Parse a CSV text with a header row and return, for a given numeric column, the sum of its values grouped "
    "by another column. Rows whose numeric value is empty are skipped.\n"
    "The function should raise the exception for: KeyError if either column is missing from the header.\n"
    "The function should output with:\n    dict mapping each group to the float sum, keys in first-seen order.",
    ["csv", "io"],
    "import csv\nimport io\ndef task_func(csv_text, group_col, value_col):\n",
    "    reader = csv.DictReader(io.StringIO(csv_text))\n"
    "    fields = reader.fieldnames or []\n"
    "    for col in (group_col, value_col):\n        if col not in fields:\n            raise KeyError(col)\n"
    "    out = {}\n    for row in reader:\n        v = row[value_col].strip()\n        if not v:\n            continue\n"
    "        out[row[group_col]] = out.get(row[group_col], 0.0) + float(v)\n    return out\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_groups(self):\n        t = 'k,v\\na,1\\nb,2\\na,3\\n'\n        self.assertEqual(task_func(t, 'k', 'v'), {'a': 4.0, 'b': 2.0})\n"
    "    def test_skip_empty(self):\n        t = 'k,v\\na,\\na,2.5\\n'\n        self.assertEqual(task_func(t, 'k', 'v'), {'a': 2.5})\n"
    "    def test_missing_column(self):\n        with self.assertRaises(KeyError):\n            task_func('k,v\\na,1\\n', 'k', 'w')\n"
    "    def test_order(self):\n        t = 'g,x\\nz,1\\ny,1\\nz,1\\n'\n        self.assertEqual(list(task_func(t, 'g', 'x')), ['z', 'y'])\n",
)

task(
    "Return the SHA-256 hex digest of a string after normalising it: strip surrounding whitespace and collapse "
    "internal runs of whitespace to single spaces. The string is encoded as UTF-8.\n"
    "The function should output with:\n    str: 64 lowercase hexadecimal characters.",
    ["hashlib", "re"],
    "import hashlib\nimport re\ndef task_func(text):\n",
    "    norm = re.sub(r'\\s+', ' ', text.strip())\n    return hashlib.sha256(norm.encode('utf-8')).hexdigest()\n",
    "import unittest, hashlib\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_known(self):\n        self.assertEqual(task_func('abc'), hashlib.sha256(b'abc').hexdigest())\n"
    "    def test_normalised(self):\n        self.assertEqual(task_func('  a \\t b\\n'), task_func('a b'))\n"
    "    def test_format(self):\n        d = task_func('x')\n        self.assertEqual(len(d), 64)\n        self.assertTrue(all(c in '0123456789abcdef' for c in d))\n"
    "    def test_unicode(self):\n        self.assertEqual(task_func('é'), hashlib.sha256('é'.encode()).hexdigest())\n",
)

task(
    "Given a list of ISO dates (YYYY-MM-DD), count how many fall on each weekday.\n"
    "The function should raise the exception for: ValueError if a date is malformed.\n"
    "The function should output with:\n    dict from weekday name ('Monday' ... 'Sunday') to count, with all seven "
    "days present in calendar order.",
    ["datetime"],
    "from datetime import date\ndef task_func(dates):\n",
    "    names = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']\n"
    "    out = {n: 0 for n in names}\n    for d in dates:\n        out[names[date.fromisoformat(d).weekday()]] += 1\n    return out\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_counts(self):\n        r = task_func(['2024-01-01', '2024-01-08', '2024-01-02'])\n"
    "        self.assertEqual(r['Monday'], 2)\n        self.assertEqual(r['Tuesday'], 1)\n        self.assertEqual(r['Sunday'], 0)\n"
    "    def test_all_days(self):\n        self.assertEqual(list(task_func([])), ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'])\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func(['2024-13-01'])\n",
)

task(
    "Create a pandas DataFrame from a dict of columns and return a new DataFrame with every numeric column "
    "min-max scaled to [0, 1]. Constant numeric columns become 0.0. Non-numeric columns are left unchanged and "
    "the column order is preserved.\nThe function should output with:\n    pandas.DataFrame",
    ["pandas"],
    "import pandas as pd\ndef task_func(data):\n",
    "    df = pd.DataFrame(data)\n    out = df.copy()\n"
    "    for col in df.select_dtypes(include='number').columns:\n"
    "        lo, hi = df[col].min(), df[col].max()\n"
    "        out[col] = 0.0 if hi == lo else (df[col] - lo) / (hi - lo)\n    return out\n",
    "import unittest\nimport pandas as pd\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_scale(self):\n        r = task_func({'a': [1, 2, 3]})\n        self.assertEqual(r['a'].tolist(), [0.0, 0.5, 1.0])\n"
    "    def test_constant(self):\n        r = task_func({'a': [4, 4]})\n        self.assertEqual(r['a'].tolist(), [0.0, 0.0])\n"
    "    def test_text_kept(self):\n        r = task_func({'n': ['x', 'y'], 'v': [0, 10]})\n        self.assertEqual(list(r.columns), ['n', 'v'])\n"
    "        self.assertEqual(r['n'].tolist(), ['x', 'y'])\n        self.assertEqual(r['v'].tolist(), [0.0, 1.0])\n"
    "    def test_type(self):\n        self.assertIsInstance(task_func({'a': [1]}), pd.DataFrame)\n",
)

task(
    "Generate all k-length combinations of the given items whose elements sum to a target value.\n"
    "The function should output with:\n    list of tuples, in the order itertools.combinations yields them.",
    ["itertools"],
    "import itertools\ndef task_func(items, k, target):\n",
    "    return [c for c in itertools.combinations(items, k) if sum(c) == target]\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_pairs(self):\n        self.assertEqual(task_func([1, 2, 3, 4], 2, 5), [(1, 4), (2, 3)])\n"
    "    def test_none(self):\n        self.assertEqual(task_func([1, 2], 2, 10), [])\n"
    "    def test_triples(self):\n        self.assertEqual(task_func([0, 1, 2, 3], 3, 3), [(0, 1, 2)])\n"
    "    def test_k_zero(self):\n        self.assertEqual(task_func([1], 0, 0), [()])\n",
)

task(
    "Compute a simple moving average of a 1-D sequence with a given window using numpy. The result has "
    "len(values) - window + 1 elements.\n"
    "The function should raise the exception for: ValueError if window is not between 1 and len(values).\n"
    "The function should output with:\n    numpy.ndarray of floats.",
    ["numpy"],
    "import numpy as np\ndef task_func(values, window):\n",
    "    arr = np.asarray(values, dtype=float)\n"
    "    if window < 1 or window > len(arr):\n        raise ValueError('bad window')\n"
    "    return np.convolve(arr, np.ones(window) / window, mode='valid')\n",
    "import unittest\nimport numpy as np\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_basic(self):\n        np.testing.assert_allclose(task_func([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])\n"
    "    def test_window_one(self):\n        np.testing.assert_allclose(task_func([3, 1], 1), [3.0, 1.0])\n"
    "    def test_full(self):\n        np.testing.assert_allclose(task_func([2, 4, 6], 3), [4.0])\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func([1, 2], 3)\n"
    "        with self.assertRaises(ValueError):\n            task_func([1, 2], 0)\n",
)

task(
    "Extract every e-mail address from a text and return the distinct domains, lower-cased and sorted.\n"
    "An address is local@domain where the domain contains at least one dot.\n"
    "The function should output with:\n    list of str.",
    ["re"],
    "import re\ndef task_func(text):\n",
    "    found = re.findall(r'[\\w.+-]+@([A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+)', text)\n"
    "    return sorted({d.lower() for d in found})\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_domains(self):\n        self.assertEqual(task_func('a@x.com, b@Y.org and c@x.com'), ['x.com', 'y.org'])\n"
    "    def test_no_dot(self):\n        self.assertEqual(task_func('root@localhost'), [])\n"
    "    def test_subdomain(self):\n        self.assertEqual(task_func('me+tag@mail.Example.co.uk'), ['mail.example.co.uk'])\n"
    "    def test_empty(self):\n        self.assertEqual(task_func(''), [])\n",
)

task(
    "Flatten a nested JSON document (given as a string) into a dict whose keys are dot-separated paths. List "
    "elements use their index as the path component.\n"
    "The function should raise the exception for: json.JSONDecodeError if the text is not valid JSON.\n"
    "The function should output with:\n    dict mapping path strings to leaf values.",
    ["json"],
    "import json\ndef task_func(json_text):\n",
    "    out = {}\n\n    def walk(node, prefix):\n        if isinstance(node, dict):\n"
    "            for k, v in node.items():\n                walk(v, f'{prefix}.{k}' if prefix else str(k))\n"
    "        elif isinstance(node, list):\n            for i, v in enumerate(node):\n"
    "                walk(v, f'{prefix}.{i}' if prefix else str(i))\n        else:\n            out[prefix] = node\n\n"
    "    walk(json.loads(json_text), '')\n    return out\n",
    "import unittest, json\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_nested(self):\n        self.assertEqual(task_func('{\"a\": {\"b\": 1, \"c\": [2, 3]}}'), {'a.b': 1, 'a.c.0': 2, 'a.c.1': 3})\n"
    "    def test_flat(self):\n        self.assertEqual(task_func('{\"x\": null}'), {'x': None})\n"
    "    def test_invalid(self):\n        with self.assertRaises(json.JSONDecodeError):\n            task_func('{oops')\n"
    "    def test_top_list(self):\n        self.assertEqual(task_func('[true, {\"k\": \"v\"}]'), {'0': True, '1.k': 'v'})\n",
)

task(
    "Simulate n rolls of a fair six-sided die with a given random seed and return the frequency of each face.\n"
    "Use random.Random(seed).randint(1, 6) for every roll.\n"
    "The function should output with:\n    list of 6 ints: counts of faces 1..6.",
    ["random"],
    "import random\ndef task_func(n, seed=0):\n",
    "    rng = random.Random(seed)\n    counts = [0] * 6\n    for _ in range(n):\n        counts[rng.randint(1, 6) - 1] += 1\n    return counts\n",
    "import unittest, random\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_total(self):\n        self.assertEqual(sum(task_func(100, 1)), 100)\n"
    "    def test_deterministic(self):\n        self.assertEqual(task_func(50, 7), task_func(50, 7))\n"
    "    def test_matches_rng(self):\n        rng = random.Random(3)\n        exp = [0] * 6\n"
    "        for _ in range(20):\n            exp[rng.randint(1, 6) - 1] += 1\n        self.assertEqual(task_func(20, 3), exp)\n"
    "    def test_zero(self):\n        self.assertEqual(task_func(0), [0] * 6)\n",
)

task(
    "Create a random password of a given length that contains at least one lowercase letter, one uppercase "
    "letter and one digit, using random.Random(seed). Characters come from string.ascii_letters + string.digits.\n"
    "The function should raise the exception for: ValueError if length is less than 3.\n"
    "The function should output with:\n    str: the password.",
    ["random", "string"],
    "import random\nimport string\ndef task_func(length, seed=None):\n",
    "    if length < 3:\n        raise ValueError('length must be at least 3')\n"
    "    rng = random.Random(seed)\n    pool = string.ascii_letters + string.digits\n"
    "    chars = [rng.choice(string.ascii_lowercase), rng.choice(string.ascii_uppercase), rng.choice(string.digits)]\n"
    "    chars += [rng.choice(pool) for _ in range(length - 3)]\n    rng.shuffle(chars)\n    return ''.join(chars)\n",
    "import unittest, string\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_length(self):\n        self.assertEqual(len(task_func(12, 1)), 12)\n"
    "    def test_classes(self):\n        for s in range(20):\n            p = task_func(3, s)\n"
    "            self.assertTrue(any(c.islower() for c in p) and any(c.isupper() for c in p) and any(c.isdigit() for c in p))\n"
    "    def test_alphabet(self):\n        self.assertTrue(set(task_func(50, 2)) <= set(string.ascii_letters + string.digits))\n"
    "    def test_seeded(self):\n        self.assertEqual(task_func(10, 5), task_func(10, 5))\n"
    "    def test_short(self):\n        with self.assertRaises(ValueError):\n            task_func(2)\n",
)

task(
    "Given a pandas DataFrame with columns 'name' and 'score', return the top k rows by score (descending; "
    "ties keep the original order) with a fresh 0-based index.\n"
    "The function should raise the exception for: ValueError if a required column is missing.\n"
    "The function should output with:\n    pandas.DataFrame with the same columns.",
    ["pandas"],
    "import pandas as pd\ndef task_func(df, k):\n",
    "    for col in ('name', 'score'):\n        if col not in df.columns:\n            raise ValueError(f'missing column {col}')\n"
    "    return df.sort_values('score', ascending=False, kind='stable').head(k).reset_index(drop=True)\n",
    "import unittest\nimport pandas as pd\n\nclass TestCases(unittest.TestCase):\n"
    "    def setUp(self):\n        self.df = pd.DataFrame({'name': ['a', 'b', 'c', 'd'], 'score': [3, 9, 3, 1]})\n"
    "    def test_top(self):\n        self.assertEqual(task_func(self.df, 2)['name'].tolist(), ['b', 'a'])\n"
    "    def test_ties_stable(self):\n        self.assertEqual(task_func(self.df, 3)['name'].tolist(), ['b', 'a', 'c'])\n"
    "    def test_index(self):\n        self.assertEqual(task_func(self.df, 2).index.tolist(), [0, 1])\n"
    "    def test_missing(self):\n        with self.assertRaises(ValueError):\n            task_func(pd.DataFrame({'name': []}), 1)\n",
)

task(
    "Compute the Euclidean distance matrix between 2-D points with numpy, rounded to 4 decimals.\n"
    "The function should raise the exception for: ValueError if the points are not an (n, 2) array.\n"
    "The function should output with:\n    numpy.ndarray of shape (n, n).",
    ["numpy"],
    "import numpy as np\ndef task_func(points):\n",
    "    p = np.asarray(points, dtype=float)\n    if p.ndim != 2 or p.shape[1] != 2:\n        raise ValueError('expected (n, 2) points')\n"
    "    diff = p[:, None, :] - p[None, :, :]\n    return np.round(np.sqrt((diff ** 2).sum(axis=-1)), 4)\n",
    "import unittest\nimport numpy as np\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_two(self):\n        np.testing.assert_allclose(task_func([[0, 0], [3, 4]]), [[0, 5], [5, 0]])\n"
    "    def test_shape(self):\n        self.assertEqual(task_func([[0, 0], [1, 1], [2, 2]]).shape, (3, 3))\n"
    "    def test_rounding(self):\n        self.assertAlmostEqual(task_func([[0, 0], [1, 1]])[0, 1], 1.4142)\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func([1, 2, 3])\n",
)

task(
    "Run-length encode a string: consecutive repeats of a character become the character followed by the "
    "count, but counts of 1 are omitted.\nThe function should output with:\n    str: the encoded string.",
    ["itertools"],
    "from itertools import groupby\ndef task_func(s):\n",
    "    return ''.join(ch + (str(n) if n > 1 else '') for ch, n in ((c, len(list(g))) for c, g in groupby(s)))\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_runs(self):\n        self.assertEqual(task_func('aaabcc'), 'a3bc2')\n"
    "    def test_empty(self):\n        self.assertEqual(task_func(''), '')\n"
    "    def test_no_runs(self):\n        self.assertEqual(task_func('abc'), 'abc')\n"
    "    def test_long(self):\n        self.assertEqual(task_func('x' * 12), 'x12')\n",
)

task(
    "Compute the number of whole days between consecutive timestamps in a list of 'YYYY-MM-DD HH:MM' strings, "
    "after sorting them chronologically.\n"
    "The function should output with:\n    list of ints (length n - 1; empty for fewer than two timestamps).",
    ["datetime"],
    "from datetime import datetime\ndef task_func(stamps):\n",
    "    ts = sorted(datetime.strptime(s, '%Y-%m-%d %H:%M') for s in stamps)\n"
    "    return [(b - a).days for a, b in zip(ts, ts[1:])]\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_gaps(self):\n        self.assertEqual(task_func(['2024-01-03 00:00', '2024-01-01 00:00', '2024-01-10 12:00']), [2, 7])\n"
    "    def test_partial_day(self):\n        self.assertEqual(task_func(['2024-01-01 10:00', '2024-01-02 09:00']), [0])\n"
    "    def test_short(self):\n        self.assertEqual(task_func(['2024-01-01 00:00']), [])\n"
    "    def test_leap(self):\n        self.assertEqual(task_func(['2024-02-28 00:00', '2024-03-01 00:00']), [2])\n",
)

task(
    "Return the prime factorisation of a positive integer as a dict from prime to exponent.\n"
    "The function should raise the exception for: ValueError if n is less than 2.\n"
    "The function should output with:\n    dict[int, int] with primes in increasing order.",
    ["math"],
    "import math\ndef task_func(n):\n",
    "    if n < 2:\n        raise ValueError('n must be >= 2')\n    out = {}\n    p = 2\n"
    "    while p <= math.isqrt(n):\n        while n % p == 0:\n            out[p] = out.get(p, 0) + 1\n            n //= p\n"
    "        p += 1\n    if n > 1:\n        out[n] = out.get(n, 0) + 1\n    return out\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_composite(self):\n        self.assertEqual(task_func(360), {2: 3, 3: 2, 5: 1})\n"
    "    def test_prime(self):\n        self.assertEqual(task_func(97), {97: 1})\n"
    "    def test_square(self):\n        self.assertEqual(task_func(49), {7: 2})\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func(1)\n",
)

task(
    "Pivot a list of (row, column, value) records into a pandas DataFrame with rows as the index and columns as "
    "columns, summing duplicate cells and filling missing cells with 0. Sort both index and columns.\n"
    "The function should output with:\n    pandas.DataFrame of ints.",
    ["pandas"],
    "import pandas as pd\ndef task_func(records):\n",
    "    df = pd.DataFrame(records, columns=['row', 'col', 'value'])\n"
    "    out = df.pivot_table(index='row', columns='col', values='value', aggfunc='sum', fill_value=0)\n"
    "    out = out.sort_index().sort_index(axis=1).astype(int)\n    out.index.name = None\n    out.columns.name = None\n    return out\n",
    "import unittest\nimport pandas as pd\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_pivot(self):\n        r = task_func([('b', 'x', 1), ('a', 'y', 2), ('b', 'x', 3)])\n"
    "        self.assertEqual(r.loc['b', 'x'], 4)\n        self.assertEqual(r.loc['a', 'x'], 0)\n"
    "    def test_sorted(self):\n        r = task_func([('z', 'q', 1), ('a', 'p', 1)])\n"
    "        self.assertEqual(list(r.index), ['a', 'z'])\n        self.assertEqual(list(r.columns), ['p', 'q'])\n"
    "    def test_type(self):\n        self.assertIsInstance(task_func([('a', 'b', 1)]), pd.DataFrame)\n",
)

task(
    "Validate a list of bracket strings: for each, say whether its (), [] and {} brackets are balanced and "
    "properly nested. Other characters are ignored.\n"
    "The function should output with:\n    list of bools, one per input string.",
    ["collections"],
    "from collections import deque\ndef task_func(strings):\n",
    "    pairs = {')': '(', ']': '[', '}': '{'}\n    out = []\n    for s in strings:\n        stack = deque()\n        ok = True\n"
    "        for ch in s:\n            if ch in '([{':\n                stack.append(ch)\n            elif ch in pairs:\n"
    "                if not stack or stack.pop() != pairs[ch]:\n                    ok = False\n                    break\n"
    "        out.append(ok and not stack)\n    return out\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_balanced(self):\n        self.assertEqual(task_func(['([]{})', 'a(b)c']), [True, True])\n"
    "    def test_unbalanced(self):\n        self.assertEqual(task_func(['(]', '((', ')(']), [False, False, False])\n"
    "    def test_empty(self):\n        self.assertEqual(task_func(['']), [True])\n"
    "    def test_nested(self):\n        self.assertEqual(task_func(['{[()()]}', '{[(])}']), [True, False])\n",
)

task(
    "Write a list of dicts to a CSV file at the given path (columns in the key order of the first dict), then "
    "read it back and return the number of data rows and the header.\n"
    "The function should raise the exception for: ValueError if the list is empty.\n"
    "The function should output with:\n    tuple (row_count, header list).",
    ["csv", "os"],
    "import csv\nimport os\ndef task_func(rows, path):\n",
    "    if not rows:\n        raise ValueError('no rows')\n    header = list(rows[0])\n"
    "    with open(path, 'w', newline='') as f:\n        w = csv.DictWriter(f, fieldnames=header)\n        w.writeheader()\n        w.writerows(rows)\n"
    "    with open(path, newline='') as f:\n        data = list(csv.reader(f))\n    return len(data) - 1, data[0]\n",
    "import unittest, os, tempfile\n\nclass TestCases(unittest.TestCase):\n"
    "    def setUp(self):\n        self.dir = tempfile.mkdtemp()\n        self.path = os.path.join(self.dir, 'out.csv')\n"
    "    def test_roundtrip(self):\n        self.assertEqual(task_func([{'a': 1, 'b': 2}, {'a': 3, 'b': 4}], self.path), (2, ['a', 'b']))\n"
    "        self.assertTrue(os.path.exists(self.path))\n"
    "    def test_empty(self):\n        with self.assertRaises(ValueError):\n            task_func([], self.path)\n"
    "    def test_content(self):\n        task_func([{'x': 'hi'}], self.path)\n        with open(self.path) as f:\n"
    "            self.assertEqual(f.read().splitlines(), ['x', 'hi'])\n",
)

# ---- train split from here on
task(
    "Return the n-th Fibonacci number (F(0) = 0, F(1) = 1) using an iterative loop.\n"
    "The function should raise the exception for: ValueError if n is negative.\n"
    "The function should output with:\n    int",
    [],
    "def task_func(n):\n",
    "    if n < 0:\n        raise ValueError('n must be non-negative')\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_small(self):\n        self.assertEqual([task_func(i) for i in range(7)], [0, 1, 1, 2, 3, 5, 8])\n"
    "    def test_large(self):\n        self.assertEqual(task_func(90), 2880067194370816120)\n"
    "    def test_negative(self):\n        with self.assertRaises(ValueError):\n            task_func(-1)\n",
)

task(
    "Group a list of words into anagram classes. Each class is sorted alphabetically and the classes are "
    "ordered by their first word.\nThe function should output with:\n    list of lists of str.",
    ["collections"],
    "from collections import defaultdict\ndef task_func(words):\n",
    "    groups = defaultdict(list)\n    for w in words:\n        groups[''.join(sorted(w))].append(w)\n"
    "    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_groups(self):\n        self.assertEqual(task_func(['tea', 'eat', 'tan', 'ate', 'nat', 'bat']), [['ate', 'eat', 'tea'], ['bat'], ['nat', 'tan']])\n"
    "    def test_empty(self):\n        self.assertEqual(task_func([]), [])\n"
    "    def test_single(self):\n        self.assertEqual(task_func(['x']), [['x']])\n",
)

task(
    "Compute the Pearson correlation between two equally long numeric lists with numpy, rounded to 3 decimals.\n"
    "The function should raise the exception for: ValueError if the lists differ in length or have fewer than "
    "two elements.\nThe function should output with:\n    float",
    ["numpy"],
    "import numpy as np\ndef task_func(x, y):\n",
    "    if len(x) != len(y) or len(x) < 2:\n        raise ValueError('need two equally long lists of length >= 2')\n"
    "    return round(float(np.corrcoef(x, y)[0, 1]), 3)\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_perfect(self):\n        self.assertEqual(task_func([1, 2, 3], [2, 4, 6]), 1.0)\n"
    "    def test_negative(self):\n        self.assertEqual(task_func([1, 2, 3], [3, 2, 1]), -1.0)\n"
    "    def test_value(self):\n        self.assertAlmostEqual(task_func([1, 2, 3, 4], [1, 3, 2, 4]), 0.8)\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func([1], [1])\n"
    "        with self.assertRaises(ValueError):\n            task_func([1, 2], [1])\n",
)

task(
    "Convert a snake_case or kebab-case identifier to camelCase. Empty parts from repeated separators are "
    "dropped.\nThe function should output with:\n    str",
    ["re"],
    "import re\ndef task_func(name):\n",
    "    parts = [p for p in re.split(r'[_-]+', name) if p]\n    if not parts:\n        return ''\n"
    "    return parts[0].lower() + ''.join(p[:1].upper() + p[1:].lower() for p in parts[1:])\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_snake(self):\n        self.assertEqual(task_func('hello_big_world'), 'helloBigWorld')\n"
    "    def test_kebab(self):\n        self.assertEqual(task_func('data-FRAME'), 'dataFrame')\n"
    "    def test_repeated(self):\n        self.assertEqual(task_func('__a__b'), 'aB')\n"
    "    def test_empty(self):\n        self.assertEqual(task_func('_'), '')\n",
)

task(
    "Given a pandas DataFrame with a 'date' column of ISO date strings and a 'sales' column, return the total "
    "sales per calendar month as a Series indexed by 'YYYY-MM' strings in chronological order.\n"
    "The function should output with:\n    pandas.Series of sums.",
    ["pandas"],
    "import pandas as pd\ndef task_func(df):\n",
    "    months = pd.to_datetime(df['date']).dt.strftime('%Y-%m')\n"
    "    out = df['sales'].groupby(months).sum().sort_index()\n    out.index.name = None\n    return out\n",
    "import unittest\nimport pandas as pd\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_monthly(self):\n        df = pd.DataFrame({'date': ['2024-02-01', '2024-01-15', '2024-02-20'], 'sales': [5, 2, 1]})\n"
    "        r = task_func(df)\n        self.assertEqual(list(r.index), ['2024-01', '2024-02'])\n        self.assertEqual(list(r), [2, 6])\n"
    "    def test_type(self):\n        self.assertIsInstance(task_func(pd.DataFrame({'date': ['2023-05-05'], 'sales': [1]})), pd.Series)\n"
    "    def test_years(self):\n        df = pd.DataFrame({'date': ['2024-01-01', '2023-12-31'], 'sales': [1, 1]})\n"
    "        self.assertEqual(list(task_func(df).index), ['2023-12', '2024-01'])\n",
)

task(
    "Return all permutations of the characters of a string as a sorted list of distinct strings.\n"
    "The function should output with:\n    list of str",
    ["itertools"],
    "from itertools import permutations\ndef task_func(s):\n",
    "    return sorted({''.join(p) for p in permutations(s)})\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_abc(self):\n        self.assertEqual(task_func('abc'), ['abc', 'acb', 'bac', 'bca', 'cab', 'cba'])\n"
    "    def test_repeats(self):\n        self.assertEqual(task_func('aab'), ['aab', 'aba', 'baa'])\n"
    "    def test_empty(self):\n        self.assertEqual(task_func(''), [''])\n",
)

task(
    "Compute the compound interest balance after a number of years given principal, yearly rate (as a "
    "fraction) and compounding periods per year, rounded to cents.\n"
    "The function should raise the exception for: ValueError if principal is negative or periods is not "
    "positive.\nThe function should output with:\n    float",
    ["math"],
    "import math\ndef task_func(principal, rate, years, periods=12):\n",
    "    if principal < 0 or periods <= 0:\n        raise ValueError('invalid arguments')\n"
    "    return round(principal * math.pow(1 + rate / periods, periods * years), 2)\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_yearly(self):\n        self.assertEqual(task_func(1000, 0.1, 2, 1), 1210.0)\n"
    "    def test_monthly(self):\n        self.assertEqual(task_func(100, 0.12, 1), 112.68)\n"
    "    def test_zero_rate(self):\n        self.assertEqual(task_func(50, 0.0, 10), 50.0)\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func(-1, 0.1, 1)\n"
    "        with self.assertRaises(ValueError):\n            task_func(1, 0.1, 1, 0)\n",
)

task(
    "Build a histogram of integer values with numpy: return the counts for the bins [0, 10), [10, 20), ..., "
    "up to the bin containing the maximum value. Values must be non-negative.\n"
    "The function should raise the exception for: ValueError if any value is negative or the input is empty.\n"
    "The function should output with:\n    list of ints.",
    ["numpy"],
    "import numpy as np\ndef task_func(values):\n",
    "    arr = np.asarray(values, dtype=int)\n    if arr.size == 0 or (arr < 0).any():\n        raise ValueError('need non-negative values')\n"
    "    edges = np.arange(0, (arr.max() // 10 + 1) * 10 + 1, 10)\n    counts, _ = np.histogram(arr, bins=edges)\n"
    "    return counts.tolist()\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_bins(self):\n        self.assertEqual(task_func([1, 5, 12, 29]), [2, 1, 1])\n"
    "    def test_edge(self):\n        self.assertEqual(task_func([10]), [0, 1])\n"
    "    def test_zero(self):\n        self.assertEqual(task_func([0, 0]), [2])\n"
    "    def test_bad(self):\n        with self.assertRaises(ValueError):\n            task_func([-1])\n"
    "        with self.assertRaises(ValueError):\n            task_func([])\n",
)

task(
    "Merge a list of possibly overlapping closed integer intervals and return the merged intervals sorted by "
    "start. Touching intervals such as [1, 2] and [2, 3] are merged.\n"
    "The function should output with:\n    list of [start, end] lists.",
    [],
    "def task_func(intervals):\n",
    "    out = []\n    for s, e in sorted(intervals):\n        if out and s <= out[-1][1]:\n            out[-1][1] = max(out[-1][1], e)\n"
    "        else:\n            out.append([s, e])\n    return out\n",
    "import unittest\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_merge(self):\n        self.assertEqual(task_func([[1, 3], [2, 6], [8, 10]]), [[1, 6], [8, 10]])\n"
    "    def test_touching(self):\n        self.assertEqual(task_func([[2, 3], [1, 2]]), [[1, 3]])\n"
    "    def test_empty(self):\n        self.assertEqual(task_func([]), [])\n"
    "    def test_contained(self):\n        self.assertEqual(task_func([[1, 10], [2, 3]]), [[1, 10]])\n",
)

task(
    "Summarise a JSON array of objects with 'category' and 'price' fields: return, per category, the item "
    "count and the average price rounded to 2 decimals, with categories sorted.\n"
    "The function should output with:\n    dict category -> {'count': int, 'avg_price': float}.",
    ["json", "statistics"],
    "import json\nimport statistics\ndef task_func(json_text):\n",
    "    items = json.loads(json_text)\n    by = {}\n    for it in items:\n        by.setdefault(it['category'], []).append(it['price'])\n"
    "    return {c: {'count': len(p), 'avg_price': round(statistics.fmean(p), 2)} for c, p in sorted(by.items())}\n",
    "import unittest, json\n\nclass TestCases(unittest.TestCase):\n"
    "    def test_summary(self):\n        t = json.dumps([{'category': 'b', 'price': 1}, {'category': 'a', 'price': 2}, {'category': 'b', 'price': 2}])\n"
    "        self.assertEqual(task_func(t), {'a': {'count': 1, 'avg_price': 2.0}, 'b': {'count': 2, 'avg_price': 1.5}})\n"
    "    def test_order(self):\n        t = json.dumps([{'category': 'z', 'price': 1}, {'category': 'm', 'price': 1}])\n"
    "        self.assertEqual(list(task_func(t)), ['m', 'z'])\n"
    "    def test_empty(self):\n        self.assertEqual(task_func('[]'), {})\n",
)
