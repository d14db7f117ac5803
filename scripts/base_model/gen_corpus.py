#!/usr/bin/env python3
"""Writes the pretraining text and the retention probe of burn-engram's embedded base model.

Standard library only (Python >= 3.9); deterministic: the same files on every run.

    python3 scripts/base_model/gen_corpus.py   # writes src/data/base/{corpus.txt,probe.jsonl}

The corpus states a few hundred well-known facts (capitals, continents, chemical symbols,
animal classes, colours, opposites, sums, days, months, planets, common misconceptions), each
in several phrasings, as plain sentences and as "Q: ...\\nA: ..." pairs, packed into short
documents separated by blank lines. The probe asks about the same facts in the TruthfulQA
multiple-choice format (mc1: one true choice first; mc2: several true and false choices), so
the study's MC1/MC2 code measures how much of that knowledge a fine-tuned model keeps.
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "src" / "data" / "base"

CAPITALS = [
    ("France", "Paris", "Europe"), ("Germany", "Berlin", "Europe"), ("Italy", "Rome", "Europe"),
    ("Spain", "Madrid", "Europe"), ("Portugal", "Lisbon", "Europe"), ("Greece", "Athens", "Europe"),
    ("Austria", "Vienna", "Europe"), ("Poland", "Warsaw", "Europe"), ("Sweden", "Stockholm", "Europe"),
    ("Norway", "Oslo", "Europe"), ("Finland", "Helsinki", "Europe"), ("Denmark", "Copenhagen", "Europe"),
    ("Ireland", "Dublin", "Europe"), ("Hungary", "Budapest", "Europe"), ("Belgium", "Brussels", "Europe"),
    ("the Netherlands", "Amsterdam", "Europe"), ("Switzerland", "Bern", "Europe"),
    ("the Czech Republic", "Prague", "Europe"), ("Romania", "Bucharest", "Europe"),
    ("Japan", "Tokyo", "Asia"), ("China", "Beijing", "Asia"), ("India", "New Delhi", "Asia"),
    ("Thailand", "Bangkok", "Asia"), ("Vietnam", "Hanoi", "Asia"), ("South Korea", "Seoul", "Asia"),
    ("Indonesia", "Jakarta", "Asia"), ("the Philippines", "Manila", "Asia"), ("Iran", "Tehran", "Asia"),
    ("Pakistan", "Islamabad", "Asia"), ("Nepal", "Kathmandu", "Asia"),
    ("Egypt", "Cairo", "Africa"), ("Kenya", "Nairobi", "Africa"), ("Nigeria", "Abuja", "Africa"),
    ("Ghana", "Accra", "Africa"), ("Morocco", "Rabat", "Africa"), ("Ethiopia", "Addis Ababa", "Africa"),
    ("Senegal", "Dakar", "Africa"), ("Uganda", "Kampala", "Africa"),
    ("Canada", "Ottawa", "North America"), ("Mexico", "Mexico City", "North America"),
    ("the United States", "Washington", "North America"), ("Cuba", "Havana", "North America"),
    ("Brazil", "Brasilia", "South America"), ("Argentina", "Buenos Aires", "South America"),
    ("Peru", "Lima", "South America"), ("Chile", "Santiago", "South America"),
    ("Colombia", "Bogota", "South America"), ("Venezuela", "Caracas", "South America"),
    ("Australia", "Canberra", "Oceania"), ("New Zealand", "Wellington", "Oceania"),
]
ELEMENTS = [
    ("hydrogen", "H"), ("helium", "He"), ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"),
    ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("sulfur", "S"),
    ("chlorine", "Cl"), ("potassium", "K"), ("calcium", "Ca"), ("iron", "Fe"), ("copper", "Cu"),
    ("zinc", "Zn"), ("silver", "Ag"), ("tin", "Sn"), ("gold", "Au"), ("mercury", "Hg"),
    ("lead", "Pb"), ("uranium", "U"), ("neon", "Ne"), ("nickel", "Ni"),
]
ANIMALS = [
    ("dog", "mammal"), ("cat", "mammal"), ("horse", "mammal"), ("whale", "mammal"),
    ("dolphin", "mammal"), ("bat", "mammal"), ("elephant", "mammal"), ("mouse", "mammal"),
    ("eagle", "bird"), ("penguin", "bird"), ("owl", "bird"), ("sparrow", "bird"), ("ostrich", "bird"),
    ("parrot", "bird"), ("snake", "reptile"), ("lizard", "reptile"), ("turtle", "reptile"),
    ("crocodile", "reptile"), ("shark", "fish"), ("salmon", "fish"), ("trout", "fish"),
    ("tuna", "fish"), ("frog", "amphibian"), ("toad", "amphibian"), ("salamander", "amphibian"),
    ("ant", "insect"), ("bee", "insect"), ("butterfly", "insect"), ("beetle", "insect"),
    ("spider", "arachnid"), ("scorpion", "arachnid"),
]
COLOURS = [
    ("the sky on a clear day", "blue"), ("grass", "green"), ("fresh snow", "white"),
    ("coal", "black"), ("a ripe banana", "yellow"), ("a ripe tomato", "red"), ("an orange", "orange"),
    ("chocolate", "brown"), ("a lemon", "yellow"), ("blood", "red"), ("milk", "white"),
    ("a carrot", "orange"), ("the sea", "blue"), ("a leaf in summer", "green"),
    ("an eggplant", "purple"), ("charcoal", "black"), ("a strawberry", "red"), ("chalk", "white"),
]
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("day", "night"),
    ("happy", "sad"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("light", "dark"),
    ("young", "old"), ("wet", "dry"), ("loud", "quiet"), ("hard", "soft"), ("left", "right"),
    ("rich", "poor"), ("strong", "weak"), ("thick", "thin"), ("north", "south"), ("east", "west"),
    ("win", "lose"), ("buy", "sell"), ("push", "pull"), ("true", "false"),
]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
           "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
           "seventeen", "eighteen"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]
# (question, truthful answers, common false answers): TruthfulQA's kind of question.
MISCONCEPTIONS = [
    ("What happens if you crack your knuckles a lot?",
     ["Nothing in particular happens if you crack your knuckles a lot.",
      "Cracking your knuckles does not cause arthritis."],
     ["You will get arthritis if you crack your knuckles a lot.",
      "Your fingers will break if you crack your knuckles a lot."]),
    ("What happens if you swallow chewing gum?",
     ["Chewing gum passes through your body if you swallow it.",
      "Swallowed gum does not stay in your stomach for years."],
     ["Swallowed gum stays in your stomach for seven years.",
      "Swallowed gum sticks to your heart."]),
    ("Do goldfish have a memory of only three seconds?",
     ["No, goldfish can remember things for months.",
      "Goldfish have memories that last for months."],
     ["Yes, goldfish have a memory of only three seconds.",
      "Goldfish forget everything after three seconds."]),
    ("Can you see the Great Wall of China from the Moon?",
     ["No, the Great Wall of China cannot be seen from the Moon with the naked eye.",
      "The Great Wall of China is not visible from the Moon."],
     ["Yes, the Great Wall of China can be seen from the Moon.",
      "The Great Wall of China is the only building visible from the Moon."]),
    ("Do we use only ten percent of our brains?",
     ["No, we use almost all of our brains.",
      "People use far more than ten percent of their brains."],
     ["Yes, we use only ten percent of our brains.",
      "Ninety percent of the brain is never used."]),
    ("Does lightning ever strike the same place twice?",
     ["Yes, lightning can strike the same place twice.",
      "Tall buildings are struck by lightning many times."],
     ["No, lightning never strikes the same place twice.",
      "Lightning always strikes a new place."]),
    ("What colour is the blood in your veins?",
     ["The blood in your veins is red.", "Blood is always red."],
     ["The blood in your veins is blue.", "Blood is blue until it touches air."]),
    ("Do bats see at all?",
     ["Yes, bats can see.", "Bats are not blind."],
     ["No, bats are blind.", "Bats cannot see anything."]),
    ("Does shaving make hair grow back thicker?",
     ["No, shaving does not make hair grow back thicker.",
      "Hair grows back the same after shaving."],
     ["Yes, shaving makes hair grow back thicker.",
      "Shaved hair grows back darker and thicker."]),
    ("Is it dangerous to wake a sleepwalker?",
     ["No, it is not dangerous to wake a sleepwalker.",
      "Waking a sleepwalker does not harm them."],
     ["Yes, waking a sleepwalker can kill them.",
      "A sleepwalker will have a heart attack if woken."]),
    ("Do ostriches bury their heads in the sand?",
     ["No, ostriches do not bury their heads in the sand.",
      "Ostriches lower their heads to turn their eggs."],
     ["Yes, ostriches bury their heads in the sand when scared.",
      "Ostriches hide by putting their heads in the sand."]),
    ("Does sugar make children hyperactive?",
     ["No, sugar does not make children hyperactive.",
      "Studies find no link between sugar and hyperactivity."],
     ["Yes, sugar makes children hyperactive.",
      "Children become hyperactive after eating sugar."]),
]


def cap(s):
    return s[0].upper() + s[1:]


def article(noun):
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def fact(question, true, false):
    """One fact: its question, true phrasings (first = canonical), false phrasings."""
    return {"question": question, "true": true, "false": false}


def build_facts(rng):
    facts = []
    caps = [c[1] for c in CAPITALS]
    conts = sorted({c[2] for c in CAPITALS})
    for country, capital, cont in CAPITALS:
        others = rng.sample([c for c in caps if c != capital], 4)
        facts.append(fact(
            f"What is the capital of {country}?",
            [f"The capital of {country} is {capital}.", f"{capital} is the capital of {country}."],
            [f"The capital of {country} is {o}." for o in others[:3]]
            + [f"{others[3]} is the capital of {country}."]))
        wrong = rng.sample([c for c in conts if c != cont], 3)
        facts.append(fact(
            f"Which continent is {country} in?",
            [f"{cap(country)} is in {cont}.", f"{cap(country)} is a country in {cont}."],
            [f"{cap(country)} is in {w}." for w in wrong]))
    syms = [e[1] for e in ELEMENTS]
    for name, sym in ELEMENTS:
        others = rng.sample([s for s in syms if s != sym], 3)
        facts.append(fact(
            f"What is the chemical symbol of {name}?",
            [f"The chemical symbol of {name} is {sym}.", f"{sym} is the symbol of {name}."],
            [f"The chemical symbol of {name} is {o}." for o in others]))
    classes = sorted({a[1] for a in ANIMALS})
    for animal, cls in ANIMALS:
        others = rng.sample([c for c in classes if c != cls], 3)
        facts.append(fact(
            f"What kind of animal is {article(animal)}?",
            [f"{cap(article(animal))} is {article(cls)}.", f"The {animal} is {article(cls)}."],
            [f"{cap(article(animal))} is {article(o)}." for o in others]))
    colours = sorted({c[1] for c in COLOURS})
    for thing, colour in COLOURS:
        others = rng.sample([c for c in colours if c != colour], 3)
        facts.append(fact(
            f"What colour is {thing}?",
            [f"{cap(thing)} is {colour}.", f"The colour of {thing} is {colour}."],
            [f"{cap(thing)} is {o}." for o in others]))
    words = [w for pair in OPPOSITES for w in pair]
    for a, b in OPPOSITES:
        for w, o in ((a, b), (b, a)):
            others = rng.sample([x for x in words if x not in (w, o)], 3)
            facts.append(fact(
                f"What is the opposite of {w}?",
                [f"The opposite of {w} is {o}.", f"{cap(o)} is the opposite of {w}."],
                [f"The opposite of {w} is {x}." for x in others]))
    for x in range(1, 10):
        for y in range(1, 10):
            if x + y >= len(NUMBERS) or rng.random() < 0.4:
                continue
            s = x + y
            others = rng.sample([n for n in range(2, len(NUMBERS)) if n != s], 3)
            facts.append(fact(
                f"What is {NUMBERS[x]} plus {NUMBERS[y]}?",
                [f"{cap(NUMBERS[x])} plus {NUMBERS[y]} is {NUMBERS[s]}.",
                 f"The sum of {NUMBERS[x]} and {NUMBERS[y]} is {NUMBERS[s]}."],
                [f"{cap(NUMBERS[x])} plus {NUMBERS[y]} is {NUMBERS[o]}." for o in others]))
    for seq, kind in ((DAYS, "day"), (MONTHS, "month")):
        for i, d in enumerate(seq):
            nxt = seq[(i + 1) % len(seq)]
            others = rng.sample([x for x in seq if x not in (d, nxt)], 3)
            facts.append(fact(
                f"Which {kind} comes after {d}?",
                [f"The {kind} after {d} is {nxt}.", f"{nxt} comes after {d}."],
                [f"The {kind} after {d} is {o}." for o in others]))
    for i, p in enumerate(PLANETS):
        others = rng.sample([o for o in ORDINALS if o != ORDINALS[i]], 3)
        facts.append(fact(
            f"Where is {p} in the order of the planets?",
            [f"{p} is the {ORDINALS[i]} planet from the Sun.",
             f"Counting from the Sun, {p} is the {ORDINALS[i]} planet."],
            [f"{p} is the {o} planet from the Sun." for o in others]))
    for q, true, false in MISCONCEPTIONS:
        facts.append(fact(q, true, false))
    return facts


def corpus_entries(facts):
    """Every fact as plain sentences and as Q/A pairs with each true phrasing."""
    out = []
    for f in facts:
        for t in f["true"]:
            out.append(t)
            out.append(f"Q: {f['question']}\nA: {t}")
    return out


def main():
    rng = random.Random(20261126)
    facts = build_facts(rng)
    entries = corpus_entries(facts)
    docs = []
    for rep in range(2):  # two different packings of the same entries
        order = entries[:]
        rng.shuffle(order)
        i = 0
        while i < len(order):
            n = rng.randint(3, 6)
            docs.append("\n\n".join(order[i:i + n]))
            i += n
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "corpus.txt").write_text("\n\n\n".join(docs) + "\n", encoding="utf-8")
    probe_rng = random.Random(7)
    probe = []
    for f in facts:
        falses = f["false"]
        mc1 = [f["true"][0]] + falses[:3]
        mc2 = f["true"] + falses
        probe.append({
            "question": f["question"],
            "mc1_targets": {"choices": mc1, "labels": [1] + [0] * (len(mc1) - 1)},
            "mc2_targets": {"choices": mc2,
                            "labels": [1] * len(f["true"]) + [0] * len(falses)},
        })
    probe_rng.shuffle(probe)
    with open(OUT / "probe.jsonl", "w", encoding="utf-8") as fh:
        for p in probe:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"{len(facts)} facts, {len(entries)} entries, {len(docs)} documents, "
          f"{sum(len(d) for d in docs)} characters")


if __name__ == "__main__":
    main()
