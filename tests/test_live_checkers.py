"""The live benchmark's checkers agree with hand-written answers: each task has answers that must pass and answers that must fail."""

from __future__ import annotations

import pytest

from bench.live_task_set import TASKS

SAMPLES: dict[str, tuple[list[str], list[str]]] = {
    "t01": (
        ["Frost on the window\nbreath hangs white above the tea\nthe kettle whistles"],
        ["Winter Morning\n\nFrost on the window\nbreath hangs white above the tea\nthe kettle whistles"],
    ),
    "t02": (
        [
            "- Orange\n- Kiwi\n- Strawberry\n- Guava\n- Lemon",
            "Here you go:\n* Orange\n* Kiwi\n* Strawberry\n* Guava\n* Lemon",
        ],
        ["- Orange\n- Kiwi\n- Strawberry\n- Guava", "Orange, kiwi, strawberry, guava and lemon."],
    ),
    "t03": (
        [
            "An API is a set of rules that lets programs talk to each other. It defines the requests you can make and the responses you get back."
        ],
        ["An API is an interface. It lets programs talk. It defines requests and responses."],
    ),
    "t04": (
        [
            "Stay hydrated anywhere with our leak-proof steel bottle. It keeps drinks cold for 24 hours and fits every cup holder."
        ],
        ["Stay hydrated anywhere with our steel bottle that never spills.", "Leak-proof " + "word " * 40],
    ),
    "t05": (
        [
            "```python\ndef is_leap(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n```",
            "Here is the function:\n\ndef is_leap(year):\n    if year % 400 == 0:\n        return True\n    return year % 4 == 0 and year % 100 != 0\n\nThis uses the Gregorian rules.",
        ],
        [
            "```python\ndef is_leap(year):\n    print(year % 4 == 0)\n```",
            "```python\ndef leap(year):\n    return year % 4 == 0\n```",
        ],
    ),
    "t06": (
        [
            '{"name": "Widget", "price": 9.99, "in_stock": true}',
            '```json\n{"name": "Widget", "price": 9.99, "in_stock": true}\n```',
        ],
        ['{"name": "Widget", "price": 9.99}', "{name: 'Widget', price: 9.99, in_stock: true}"],
    ),
    "t07": (
        [
            "| Planet | Diameter | Moons |\n|---|---|---|\n| Mercury | 4879 km | 0 |\n| Venus | 12104 km | 0 |\n| Earth | 12742 km | 1 |\n| Mars | 6779 km | 2 |"
        ],
        [
            "| Planet | Diameter | Moons |\n|---|---|---|\n| Earth | 12742 km | 1 |\n| Mars | 6779 km | 2 |",
            "| Planet | Size | Moons |\n|---|---|---|\n| Mercury | 4879 km | 0 |\n| Venus | 12104 km | 0 |\n| Earth | 12742 km | 1 |\n| Mars | 6779 km | 2 |",
        ],
    ),
    "t08": (
        ["Raindrops tap the glass\nAll the street turns silver\nIn puddles clouds swim\nNight hums a wet song"],
        [
            "Raindrops tap the glass\nAll the street turns silver\nNight hums a wet song\nIn puddles clouds swim",
            "Raindrops tap the glass\nAll the street turns silver\nIn puddles clouds swim",
        ],
    ),
    "t09": (
        ["Bake sale Friday at noon in the school hall! Cookies, brownies and muffins, all for a good cause."],
        ["Bake sale Friday! Delicious cookies and brownies await you.", "Bake sale " + "yum " * 30],
    ),
    "t10": (
        [
            "1. Boil water.\n2. Warm the pot.\n3. Add tea.\n4. Pour water.\n5. Steep 3 minutes.\n6. Serve.",
            "1) Boil water\n2) Warm the pot\n3) Add tea\n4) Pour water\n5) Steep\n6) Serve",
        ],
        ["1. Boil water.\n2. Add tea.\n3. Pour.\n4. Steep.\n5. Serve."],
    ),
    "t11": (
        [
            "There once was a wizard named Lou\nWho forgot what his spells used to do\nHe turned cats into rats\nAnd his hats into bats\nNow he can't find his own left shoe"
        ],
        [
            "There once was a wizard named Lou\nWho forgot what his spells used to do\nHe turned cats into rats\nAnd his hats into bats"
        ],
    ),
    "t12": (
        ['["Paris", "Berlin", "Madrid", "Rome"]', '```json\n["Paris", "Berlin", "Madrid", "Rome"]\n```'],
        ['["Paris", "Berlin", "Madrid"]', '["Paris", "Berlin", "Madrid", 4]'],
    ),
    "t13": (
        [
            "Welcome to the Code Club! We meet every Tuesday to build things together. Happy coding!",
            '"Welcome to the Code Club! Happy coding!"',
        ],
        ["Hello and welcome to the Code Club! Happy coding!", "Welcome to the Code Club! Have fun."],
    ),
    "t14": (
        [
            "```python\ndef count_vowels(text):\n    return sum(1 for c in text.lower() if c in 'aeiou')\n\nprint(count_vowels('hello'))\n```"
        ],
        [
            "```python\ndef count_vowels(text):\n    n = sum(1 for c in text.lower() if c in 'aeiou')\n    print(n)\n    return n\n```",
            "```python\ndef count_vowels(text):\n    print(sum(1 for c in text if c in 'aeiou'))\n```",
        ],
    ),
    "t15": (
        [
            "The lighthouse stands alone on the black rock, its beam sweeping slowly across the restless water. "
            "Waves crash below, throwing white spray into the cold air, while gulls sleep in the cracks of the cliff. "
            "Every few seconds the light returns, a steady promise to sailors far out at sea that land is near and "
            "that someone, somewhere, is still keeping watch."
        ],
        [
            "The lighthouse stands alone on the rock. Its beam sweeps the sea.",
            "The lighthouse stands alone on the black rock, its beam sweeping slowly across the restless water.\n\n"
            "Waves crash below, throwing white spray into the cold air, while gulls sleep in the cracks of the cliff. "
            "Every few seconds the light returns, a steady promise to sailors far out at sea that land is near.",
        ],
    ),
    "t16": (
        ["the sea breathes slow tonight\nsilver waves fold into sand\ngulls drift on the wind\nand the tide hums home"],
        [
            "The sea breathes slow tonight\nsilver waves fold into sand\ngulls drift on the wind\nand the tide hums home",
            "the sea breathes slow tonight\nsilver waves fold into sand\ngulls drift on the wind",
        ],
    ),
    "t17": (
        ["MOVE MORE, LIVE STRONGER, EVERY DAY!"],
        ["Move more, live stronger, every day!", "MOVE MORE, LIVE STRONGER, FEEL BETTER, EVERY SINGLE DAY, ALWAYS!"],
    ),
    "t18": (
        [
            "- Keep a regular bedtime every night.\n- Avoid screens an hour before bed.\n- Keep your bedroom cool and dark."
        ],
        [
            "- Keep a regular bedtime.\n- Avoid screens.",
            "- Keep a regular bedtime every night, even on weekends and holidays when you are tempted.\n- Avoid screens.\n- Keep it dark.",
        ],
    ),
    "t19": (
        [
            "```python\nclass Counter:\n    def __init__(self):\n        self.count = 0\n\n    def increment(self):\n        self.count += 1\n\n    def value(self):\n        return self.count\n```"
        ],
        [
            "```python\nclass Counter:\n    def __init__(self):\n        self.count = 0\n\n    def increment(self):\n        self.count += 1\n\n    def value(self):\n        print(self.count)\n```",
            "```python\nclass Counter:\n    def __init__(self):\n        self.count = 0\n\n    def value(self):\n        return self.count\n```",
        ],
    ),
    "t20": (
        [
            "Recursion is when a function calls itself to solve a smaller version of a problem. "
            "Each call moves closer to a base case, which stops the calls. "
            "The results are then combined as the calls return."
        ],
        [
            "Recursion is when a function calls itself. It needs a stopping point. Then results combine.",
            "Recursion is when a function calls itself. It stops at the base case.",
        ],
    ),
    "t21": (
        [
            "Dear Mr Smith,\n\nThe heater in my flat stopped working yesterday. Could you arrange a repair this week?\n\nThank you,\nAlex"
        ],
        [
            "Hello Mr Smith,\n\nThe heater in my flat stopped working yesterday.\n\nThanks,\nAlex",
            "Dear Mr Smith, " + "the heater is broken " * 20,
        ],
    ),
    "t22": (
        [
            '[{"title": "Casablanca", "year": 1942}, {"title": "Vertigo", "year": 1958}, {"title": "Psycho", "year": 1960}]'
        ],
        [
            '[{"title": "Casablanca", "year": 1942}, {"title": "Vertigo", "year": 1958}]',
            '[{"title": "Casablanca", "year": 1942}, {"name": "Vertigo", "year": 1958}, {"title": "Psycho", "year": 1960}]',
        ],
    ),
    "t23": (
        [
            "Rainbows form when sunlight enters raindrops and bends.\n\nInside each drop the light reflects and splits into colours, which we see as an arc."
        ],
        [
            "Rainbows form when sunlight enters raindrops and bends.",
            "Rainbows form like this:\n\n- Light enters a drop.\n- It reflects and splits.",
        ],
    ),
    "t24": (
        ["def reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))"],
        [
            "```python\ndef reverse_words(sentence):\n    return ' '.join(reversed(sentence.split()))\n```",
            "def reverse_words(sentence):\n    print(' '.join(reversed(sentence.split())))",
        ],
    ),
    "t25": (
        ["Red\nOrange\nYellow\nGreen\nBlue\nIndigo\nViolet"],
        [
            "1. Red\n2. Orange\n3. Yellow\n4. Green\n5. Blue\n6. Indigo\n7. Violet",
            "Red\nOrange\nYellow\nGreen\nBlue\nViolet",
        ],
    ),
    "t26": (
        ["I am tall when I am young and short when I am old. What am I?"],
        ["I am tall when young and short when old. Answer: a candle.", "Candles are what I am."],
    ),
    "t27": ([" ".join(["word"] * 60), " ".join(["word"] * 50)], [" ".join(["word"] * 30), " ".join(["word"] * 90)]),
    "t28": (
        [
            "Every big achievement starts with a small step. You will stumble, you will doubt yourself, and some days "
            "will feel impossible. That is normal. What matters is that you get back up, learn something, and try again "
            "tomorrow. Keep going."
        ],
        [
            "You can do it. Keep going.",
            "Every big achievement starts with a small step. You will stumble, you will doubt yourself, and some days "
            "will feel impossible. That is normal. What matters is that you get back up, learn something, and try again. Never stop.",
        ],
    ),
    "t29": (
        [
            "| Language | Year | Creator |\n| --- | --- | --- |\n| Python | 1991 | Guido van Rossum |\n| C | 1972 | Dennis Ritchie |\n| Java | 1995 | James Gosling |",
            "Here is the table:\n\n|**Language**|**Year**|**Creator**|\n|:--|:--:|--:|\n|Python|1991|Guido van Rossum|\n|C|1972|Dennis Ritchie|\n|Java|1995|James Gosling|",
        ],
        [
            "| Language | Year |\n| --- | --- |\n| Python | 1991 |\n| C | 1972 |\n| Java | 1995 |",
            "| Language | Year | Creator |\n| --- | --- | --- |\n| Python | 1991 | Guido van Rossum |\n| C | 1972 | Dennis Ritchie |",
        ],
    ),
    "t30": (
        [
            "Coffee steams in the morning light\nCups are warm between my hands\nCrema swirls in gentle circles\nCalm arrives with every sip\nCome, the day can now begin"
        ],
        [
            "Coffee steams in the morning light\nCups are warm between my hands\nThe crema swirls\nCalm arrives with every sip\nCome, the day can now begin",
            "Coffee steams\nCups are warm\nCalm arrives\nCome, begin",
        ],
    ),
    "t31": (
        ["Latency is the delay between a request being sent and the first response arriving."],
        [
            "Latency is delay. It is measured in milliseconds.",
            "Latency is the total amount of time that passes between the moment a user sends a request over the network and the moment the very first byte of the response finally arrives back.",
        ],
    ),
    "t32": (
        [
            "1. Catches bugs early.\n2. Prevents regression when code changes.\n3. Documents behaviour.\n4. Makes refactoring safer."
        ],
        [
            "1. Catches bugs early.\n2. Documents behaviour.\n3. Makes refactoring safer.\n4. Speeds up reviews.",
            "1. Catches bugs early.\n2. Prevents regression bugs.\n3. Makes refactoring safer.",
        ],
    ),
}


def test_the_set_is_large_and_mostly_multi_constraint() -> None:
    ids = [t["id"] for t in TASKS]
    assert len(ids) == len(set(ids)) >= 24
    assert sum(t["constraints"] >= 2 for t in TASKS) * 2 >= len(TASKS)


@pytest.mark.parametrize("task", TASKS, ids=[t["id"] for t in TASKS])
def test_each_checker_passes_its_good_answers_and_fails_its_bad_ones(task: dict) -> None:
    passes, fails = SAMPLES[task["id"]]
    assert passes and fails
    for answer in passes:
        assert task["check"](answer)[0], answer
    for answer in fails:
        assert not task["check"](answer)[0], answer
