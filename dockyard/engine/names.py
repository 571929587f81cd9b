"""Names for containers the user did not name: adjective_noun, as Docker makes them (our own word lists)."""

from __future__ import annotations

import os
import re

from dockyard.errors import InvalidArgument

VALID_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

ADJECTIVES = (
    "agile amazing bold brave bright calm clever cool curious daring eager elated epic fervent festive focused "
    "friendly gallant gentle happy hardy heuristic hopeful jolly keen kind lively lucid magical merry modest "
    "nifty noble optimistic patient peaceful pensive quirky quiet relaxed serene sharp silly sleepy smart "
    "steady stoic sweet tender trusting upbeat vibrant vigilant wizardly wonderful youthful zealous"
).split()
NOUNS = (
    "albatross badger beaver bison cheetah condor crane dolphin eagle falcon ferret finch gazelle gecko heron "
    "ibis jackal jaguar kestrel koala lemur leopard lynx magpie marmot meerkat mole narwhal ocelot orca osprey "
    "otter owl panda pelican penguin puffin quail raven robin salmon seal sparrow stork swan tapir tern "
    "walrus weasel wombat wren yak zebra"
).split()


def random_name(taken) -> str:
    """A fresh adjective_noun not in `taken` (a container of names); a number is added when needed."""
    for attempt in range(100):
        a, n = os.urandom(2)
        name = f"{ADJECTIVES[a % len(ADJECTIVES)]}_{NOUNS[n % len(NOUNS)]}"
        if attempt > 10:
            name += str(attempt)
        if name not in taken:
            return name
    return "container_" + os.urandom(6).hex()


def check_name(name: str) -> str:
    name = name.lstrip("/") if name.startswith("/") else name
    if not VALID_NAME.fullmatch(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name
