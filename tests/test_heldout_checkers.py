"""The held-out benchmark's checkers agree with hand-written answers: one that must pass and one that must fail per task."""

from __future__ import annotations

import pytest

from bench.heldout_task_set import TASKS

# id -> (answer that must pass, answer that must fail). For two-constraint tasks the failing answer
# keeps the first constraint and breaks the second, so both halves of the checker are exercised.
SAMPLES: dict[str, tuple[str, str]] = {
    "h01": (
        "Sunlight contains every colour, but blue light has a short wavelength. "
        "When it hits the gas molecules in the air, it is bounced around far more than red light. "
        "This scattering spreads blue light across the whole sky, so that is the colour we see.",
        "Sunlight contains every colour, but blue light has a short wavelength. "
        "Air molecules bounce blue light around far more than red light. "
        "That spreads blue across the whole sky, so that is the colour we see.",
    ),
    "h02": (
        "Rock climbing builds real strength while feeling more like a puzzle than a workout. "
        "You will also meet friendly people at the gym who cheer you on from your very first climb!",
        "Rock climbing builds real strength. It feels like a puzzle. You will meet friendly people too.",
    ),
    "h03": (
        "Stalls crowd both sides of the square before the church bell rings eight. "
        "Farmers shout prices over the hum of the crowd. "
        "Children tug their parents toward the honey stand and its free samples. "
        "The air smells of fresh bread, cut herbs and strong coffee. "
        "By noon the crates are empty and the trucks rumble home.",
        "Stalls crowd both sides of the square before the church bell rings eight. "
        "Farmers shout prices over the hum of the crowd. "
        "Children tug their parents toward the honey stand and its free samples. "
        "Crates overflow with vegetables of every colour. "
        "By noon the crates are empty and the trucks rumble home.",
    ),
    "h04": (
        "Dear Grandma,\n\nThank you so much for the beautiful scarf you knitted for me. "
        "The blue wool is soft and keeps me warm on my walk to school. "
        "Everyone asks where I got it, and I proudly say my grandmother made it. "
        "I love you and cannot wait to see you at Christmas.",
        "Hi Grandma,\n\nThank you so much for the beautiful scarf you knitted for me. "
        "The blue wool is soft and keeps me warm on my walk to school. "
        "Everyone asks where I got it, and I proudly say my grandmother made it. "
        "I love you and cannot wait to see you at Christmas.",
    ),
    "h05": (
        "Cinderella, mistreated by her stepfamily, attends the royal ball with help from her fairy godmother. "
        "She flees at midnight, leaving a glass slipper behind. "
        "The prince searches the kingdom, finds that it fits her, and they marry.",
        "Cinderella, mistreated by her stepfamily, attends the royal ball with help from her fairy godmother. "
        "She flees at midnight, leaving a shoe behind. "
        "The prince searches the kingdom, finds that it fits her, and they marry.",
    ),
    "h06": (
        "You have practised for this, and you know more than you think. "
        "Breathe slowly, check your mirrors, and take each turn one at a time. "
        "If you make a small mistake, let it go and focus on the next moment. "
        "The examiner wants you to pass. You've got this!",
        "You have practised for weeks and weeks, and honestly you know far more than you think you do right now. "
        "Breathe slowly and deeply, check your mirrors every single time, and take each turn calmly one at a time. "
        "If you make a small mistake along the way, just let it go and focus on the very next moment. "
        "The examiner genuinely wants you to pass today. You've got this!",
    ),
    "h07": (
        "Never hunt for an outlet again. This foldable solar panel tops up your phone on hikes, beaches and "
        "balconies, and its built-in battery stores power for the night. Charge anywhere.",
        "Never hunt for an outlet again. This foldable solar panel tops up your phone on hikes, beaches and "
        "balconies, and its built-in battery stores power for the night. Power on the go!",
    ),
    "h08": (
        "Here are five ideas:\n\n- Apple slices with peanut butter\n- Carrot sticks and hummus\n"
        "- Plain yogurt with berries\n- A handful of almonds\n- Whole-grain crackers with cheese",
        "Here are five ideas:\n\n1. Apple slices with peanut butter\n2. Carrot sticks and hummus\n"
        "3. Plain yogurt with berries\n4. A handful of almonds\n5. Whole-grain crackers with cheese",
    ),
    "h09": (
        "1. Water the plant a day before so the root ball slides out easily.\n"
        "2. Choose a pot one size larger with a hole for drainage.\n"
        "3. Loosen the roots and set the plant at the same depth as before.\n"
        "4. Fill in with fresh potting mix and water thoroughly.",
        "1. Water the plant a day before so the root ball slides out easily.\n"
        "2. Choose a pot one size larger with a hole in the bottom.\n"
        "3. Loosen the roots and set the plant at the same depth as before.\n"
        "4. Fill in with fresh potting mix and water thoroughly.",
    ),
    "h10": (
        "* Study at the same desk and time each day so your brain knows it is work time.\n"
        "* Work in 25-minute blocks with short breaks in between.\n"
        "* Keep distractions such as social media in another room.",
        "* Study at the same desk and time each day so your brain knows it is work time.\n"
        "* Work in 25-minute blocks with short breaks in between.\n"
        "* Leave your phone in another room.",
    ),
    "h11": (
        "1) Tent with poles and pegs\n2) Sleeping bag\n3) Sleeping mat\n4) Headlamp with spare batteries\n"
        "5) Camping stove and fuel\n6) Rain jacket",
        "1) Tent with poles and pegs\n2) Sleeping bag\n3) Sleeping mat\n4) Headlamp with spare batteries\n"
        "5) Camping stove and fuel",
    ),
    "h12": (
        "When I moved into my first flat, my cooking skills stopped at toast. Living on takeaway was fun for a "
        "week, until I looked at my bank account.\n\n"
        "This blog follows my attempt to learn real cooking on a student budget, one cheap and tasty recipe at a "
        "time. If I can do it, so can you.",
        "When I moved into my first flat, my cooking skills stopped at toast. Living on takeaway was fun for a "
        "week, until I looked at my bank account.\n\n"
        "This blog follows my attempt to learn real cooking with very little money, one cheap and tasty recipe "
        "at a time. If I can do it, so can you.",
    ),
    "h13": (
        "A bill starts when a member of Congress introduces it in the House or the Senate. It is sent to a "
        "committee, which studies it, holds hearings and may change it.\n\n"
        "If the committee approves, the full chamber debates and votes. The bill then goes to the other chamber, "
        "and both must pass the same text.\n\n"
        "Finally the President signs it into law or vetoes it. Congress can override a veto with a two-thirds "
        "vote in both chambers.",
        "A bill starts when a member of Congress introduces it. A committee studies it and may change it. "
        "Both chambers must then pass the same text.\n\n"
        "Finally the President signs it into law or vetoes it, and Congress can override a veto with a "
        "two-thirds vote.",
    ),
    "h14": (
        "Amber leaves let go of the branch\nand drift like slow brown birds\nthey gather in the gutter\n"
        "whispering their last words",
        "Golden leaves let go of the branch\nand drift like slow brown birds\nthey gather in the gutter\n"
        "whispering their last words",
    ),
    "h15": (
        "The moon lays silver on the tide\nthe waves breathe in the dark\na lighthouse blinks its patient eye\n"
        "above a drifting barque\nthe stars lean down to listen\nas the sea sings to the shore",
        "Night Sea\n\nThe moon lays silver on the tide\nthe waves breathe in the dark\n"
        "a lighthouse blinks its patient eye\nabove a drifting barque\nthe stars lean down to listen\n"
        "as the sea sings to the shore",
    ),
    "h16": (
        "Photosynthesis is the process by which plants use sunlight, water and carbon dioxide to make sugar "
        "for food, releasing oxygen as a by-product.",
        "Photosynthesis is how plants make food from sunlight. They take in water and carbon dioxide and "
        "release oxygen.",
    ),
}


def test_the_set_has_sixteen_tasks_and_about_half_with_two_constraints() -> None:
    ids = [t["id"] for t in TASKS]
    assert ids == [f"h{i:02d}" for i in range(1, 17)]
    assert set(SAMPLES) == set(ids)
    two = sum(t["constraints"] == 2 for t in TASKS)
    assert 6 <= two <= 10
    assert all(t["constraints"] in (1, 2) for t in TASKS)


@pytest.mark.parametrize("task", TASKS, ids=[t["id"] for t in TASKS])
def test_each_checker_passes_its_good_answer_and_fails_its_bad_one(task: dict) -> None:
    good, bad = SAMPLES[task["id"]]
    ok, why = task["check"](good)
    assert ok, why
    ok, why = task["check"](bad)
    assert not ok, why


@pytest.mark.parametrize("task_id", ["h01", "h03", "h04", "h05", "h07", "h09", "h10", "h12", "h14"])
def test_two_constraint_failures_break_the_second_constraint_not_the_first(task_id: str) -> None:
    task = next(t for t in TASKS if t["id"] == task_id)
    ok, why = task["check"](SAMPLES[task_id][1])
    assert not ok
    # Count checks report "(want N)" or "(max N)"; the second constraints (include, exclude, starts, ends) do not.
    assert "(want" not in why and "(max" not in why, why
