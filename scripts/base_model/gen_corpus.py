#!/usr/bin/env python3
"""Writes the pretraining corpus and the retention probe of burn-engram's embedded base model.

Standard library only (Python >= 3.9); deterministic: the same files on every run.

    python3 scripts/base_model/gen_corpus.py   # writes src/study/data/base/{corpus.jsonl,probe.jsonl}

`corpus.jsonl` holds one record per line, `{"kind", "split", "text"}`:
- `fact` entries: a few hundred well-known facts (capitals, continents, chemical symbols,
  animal classes, colours, opposites, sums, days, months, planets, common misconceptions), each
  true phrasing as a plain sentence and as a "Q: ...\nA: ..." pair. They are not documents:
  `examples/pretrain.rs` packs them into new documents of 3-6 entries every epoch, so the
  model learns the facts rather than an order of documents. The probe asks about them.
- `qa`: question-and-answer prose with digits, units and dates (no probe fact).
- `chat`: ChatML dialogues (the study's format) with prose answers, about the facts and
  small talk.
- `json`: JSON records (cities, products, people, events) with quotes, braces and numbers.
- `numbers`: arithmetic, counting and tables in digits.
- `prose`: everyday sentences about weather, news, mail, money, food, travel and the like.
- `call`: function-calling conversations for functions that are NOT the fine-tune's (the 16
  of `OTHER_FUNCTIONS` and generated `verb_object` ones; the fine-tune's 14 are in
  `src/study/data/synth_glaive.rs` and excluded): their JSON schemas, a user request, a
  `<functioncall>` with the request's arguments, the function's response and the answer;
  half in glaive's raw `USER:`/`ASSISTANT:` layout, half in ChatML. The called function
  stands at a random place among those on offer, so its name is copied from the schemas.
Every generated (non-fact) document is `train` or, for 5% of them, `heldout`: pretraining
never sees the held-out ones, and its report states their loss.

`probe.jsonl` asks about the facts in the TruthfulQA multiple-choice format (mc1: one true
choice first; mc2: several true and false choices), so the study's MC1/MC2 code measures how
much of that knowledge a fine-tuned model keeps. The probe's scoring primer
(`PROBE_PRIMER` in src/study/base.rs) uses two extra facts that are in the corpus but not in
the probe.
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "src" / "study" / "data" / "base"

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



# The probe primer's two facts: in the corpus, never asked by the probe.
PRIMER_FACTS = [
    ("How many days are there in a week?", "There are seven days in a week."),
    ("What do bees make?", "Bees make honey."),
]

# Cities for the generated documents: none is a capital of CAPITALS (the probe's distractors
# are those), so no document here argues with a probe answer.
TOWNS = ["Osaka", "Munich", "Barcelona", "Milan", "Lyon", "Porto", "Seattle", "Denver",
         "Houston", "Melbourne", "Vancouver", "Kyoto", "Hamburg", "Marseille", "Geneva",
         "Auckland", "Shanghai", "Valencia", "Glasgow", "Krakow", "Naples", "Austin",
         "Phoenix", "Perth", "Calgary", "Busan", "Cologne", "Seville", "Bristol", "Leeds"]
PEOPLE = ["Anna", "Ben", "Chloe", "Daniel", "Elena", "Felix", "Gina", "Hugo", "Iris", "Jack",
          "Kim", "Leo", "Mia", "Nina", "Omar", "Paula", "Quinn", "Rosa", "Sam", "Tara"]
PRODUCTS = ["lamp", "chair", "kettle", "backpack", "notebook", "bicycle", "umbrella", "camera",
            "blender", "headphones", "desk", "mirror", "toaster", "jacket", "watch"]
COLOURS_W = ["red", "blue", "green", "black", "white", "grey", "yellow", "brown"]
LANGUAGES = ["Spanish", "German", "French", "Italian", "Portuguese", "Dutch", "Polish"]
GENRES = ["jazz", "rock", "classical", "pop", "folk", "blues"]
DISHES = ["pancakes", "lentil soup", "risotto", "curry", "omelette", "salad", "chili"]
WEEKDAYS = DAYS

# Functions of the base corpus (argument name, type, description, value kind). None is one of
# the fine-tune's functions; the kinds of arguments are the same (towns, names, numbers, words).
OTHER_FUNCTIONS = [
    ("book_hotel", "Book a hotel room in a city",
     [("city", "string", "The city of the hotel", "town"),
      ("nights", "number", "How many nights", (1, 14))],
     ["Book me a hotel in {city} for {nights} nights.",
      "I need a hotel room in {city} for {nights} nights, please."],
     "Your room in {city} is booked for {nights} nights."),
    ("get_train_times", "Get the departure times of trains between two cities",
     [("origin", "string", "The departure city", "town"),
      ("destination", "string", "The arrival city", "town")],
     ["When do trains leave from {origin} to {destination}?",
      "Show me the trains from {origin} to {destination}."],
     "Here are the trains from {origin} to {destination}."),
    ("translate_text", "Translate a text into another language",
     [("text", "string", "The text to translate", "phrase"),
      ("language", "string", "The target language", "language")],
     ["Translate \"{text}\" into {language}.", "How do you say \"{text}\" in {language}?"],
     "Here is the text in {language}."),
    ("set_alarm", "Set an alarm clock",
     [("hour", "number", "The hour of the alarm", (5, 11)),
      ("minute", "number", "The minute of the alarm", (0, 59))],
     ["Set an alarm for {hour}:{minute}.", "Wake me up at {hour} hours and {minute} minutes."],
     "Your alarm is set for {hour}:{minute}."),
    ("play_music", "Play music of a genre",
     [("genre", "string", "The music genre", "genre")],
     ["Play some {genre} music.", "I want to listen to {genre}."],
     "Now playing {genre} music."),
    ("find_recipe", "Find a recipe for a dish",
     [("dish", "string", "The name of the dish", "dish"),
      ("servings", "number", "How many people", (1, 8))],
     ["Find me a recipe for {dish} for {servings} people.",
      "How do I make {dish} for {servings}?"],
     "Here is a recipe for {dish} that serves {servings}."),
    ("track_package", "Track a package by its number",
     [("tracking_number", "string", "The tracking number", "code")],
     ["Where is my package {tracking_number}?", "Track the parcel {tracking_number} for me."],
     "Package {tracking_number} is on its way."),
    ("order_taxi", "Order a taxi to an address",
     [("pickup", "string", "Where to pick up", "town"),
      ("passengers", "number", "Number of passengers", (1, 6))],
     ["Order a taxi in {pickup} for {passengers} people.",
      "I need a cab in {pickup} for {passengers} passengers."],
     "A taxi for {passengers} is on its way in {pickup}."),
    ("calculate_loan_payment", "Calculate the monthly payment of a loan",
     [("principal", "number", "The loan amount", (1000, 90000)),
      ("years", "number", "The loan term in years", (1, 30))],
     ["What is the monthly payment on a loan of {principal} over {years} years?",
      "Calculate my payment for {principal} borrowed for {years} years."],
     "The monthly payment for {principal} over {years} years has been calculated."),
    ("get_movie_times", "Get the show times of a movie theatre",
     [("city", "string", "The city of the theatre", "town"),
      ("day", "string", "The day of the week", "weekday")],
     ["Which movies are playing in {city} on {day}?",
      "Show me the cinema times in {city} for {day}."],
     "Here are the show times in {city} on {day}."),
    ("search_books", "Search for books by an author",
     [("author", "string", "The author's name", "person")],
     ["Find books written by {author}.", "What books has {author} written?"],
     "I found several books by {author}."),
    ("add_todo", "Add an item to the to-do list",
     [("task", "string", "The task", "phrase"),
      ("priority", "number", "The priority from 1 to 5", (1, 5))],
     ["Add \"{task}\" to my to-do list with priority {priority}.",
      "Remind me: {task}. Priority {priority}."],
     "\"{task}\" has been added to your list."),
    ("get_population", "Get the population of a city",
     [("city", "string", "The name of the city", "town")],
     ["How many people live in {city}?", "What is the population of {city}?"],
     "The population of {city} is shown above."),
    ("count_words", "Count the words in a text",
     [("text", "string", "The text", "phrase")],
     ["How many words are in \"{text}\"?", "Count the words of this: {text}"],
     "The text has been counted."),
    ("buy_ticket", "Buy a concert ticket",
     [("artist", "string", "The performer", "person"),
      ("quantity", "number", "How many tickets", (1, 6))],
     ["Buy {quantity} tickets for the {artist} concert.",
      "I want {quantity} seats to see {artist}."],
     "{quantity} tickets for {artist} are booked."),
    ("check_flight_status", "Check the status of a flight",
     [("flight", "string", "The flight number", "flight")],
     ["Is flight {flight} on time?", "What is the status of flight {flight}?"],
     "Flight {flight} is on time."),
]
# Generated functions (verb_object): hundreds of names, so the model learns to copy the name
# and the arguments of the function on offer rather than to remember a few names.
VERBS = ["get", "find", "check", "list", "create", "update", "delete", "search", "compute",
         "fetch", "schedule", "cancel", "book", "send", "read", "track", "rate", "share"]
OBJECTS = ["invoice", "playlist", "ticket", "order", "reminder", "contact", "note", "booking",
           "report", "parcel", "review", "profile", "meeting", "route", "balance", "recipe",
           "podcast", "lesson", "workout", "budget", "appointment", "delivery", "album", "quiz"]
ARG_POOL = [("city", "string", "The city", "town"), ("name", "string", "The name", "person"),
            ("count", "number", "How many", (1, 20)), ("day", "string", "The day", "weekday"),
            ("reference", "string", "The reference code", "code"),
            ("amount", "number", "The amount", (5, 500)),
            ("language", "string", "The language", "language"),
            ("text", "string", "The text", "phrase"), ("genre", "string", "The genre", "genre")]
FINETUNE_NAMES = {"get_weather", "get_news_headlines", "calculate_bmi", "convert_currency",
                  "search_restaurants", "send_email", "calculate_area", "convert_temperature",
                  "generate_password", "calculate_tip", "analyze_sentiment", "get_stock_price",
                  "create_calendar_event", "get_distance"}


def generated_function(rng):
    while True:
        verb, obj = rng.choice(VERBS), rng.choice(OBJECTS)
        if f"{verb}_{obj}" not in FINETUNE_NAMES:
            break
    args = rng.sample(ARG_POOL, rng.randint(1, 2))
    args = [(a, t, f"{d} of the {obj}", k) for a, t, d, k in args]
    places = " and ".join(f"{a} {{{a}}}" for a, _, _, _ in args)
    asks = [f"Please {verb} the {obj} with {places}.", f"Can you {verb} my {obj}? Use {places}.",
            f"I want to {verb} a {obj} for {places}."]
    return (f"{verb}_{obj}", f"{verb.capitalize()} a {obj}", args, asks,
            f"The {obj} is done.")


# Everyday prose about the topics of many assistants' tools (weather, news, money, health,
# mail, food, passwords, stocks, calendars, travel), so their words are familiar text.
def prose_doc(rng):
    t, p = rng.choice(TOWNS), rng.choice(PEOPLE)
    n = rng.randint(2, 40)
    return rng.choice([
        f"The weather in {t} is {rng.choice(['sunny', 'rainy', 'cloudy', 'windy'])} today, "
        f"with a temperature of {n} degrees celsius.",
        f"{p} reads the {rng.choice(['sports', 'business', 'health', 'science'])} news every "
        f"morning. The headlines today are about {t}.",
        f"{p} sent an email to the team about the meeting on {rng.choice(WEEKDAYS)}.",
        f"A good password is long and has at least {n % 10 + 8} characters.",
        f"The restaurant in {t} serves {rng.choice(DISHES)} and has a good menu.",
        f"The bill was {n * 3} dollars, and {p} left a tip of {n % 5 + 10} percent.",
        f"The stock price of the company rose by {n % 9 + 1} percent this week.",
        f"{p} added an event to the calendar for day {n % 28 + 1} of the month.",
        f"The distance from {t} to {rng.choice(TOWNS)} is {n * 20} kilometres.",
        f"Body mass index is a person's weight divided by the square of their height.",
        f"{p} converted {n * 10} dollars into euros at the bank.",
        f"The area of a square with sides of {n % 9 + 1} metres is {(n % 9 + 1) ** 2} square metres.",
        f"The sentiment of a review can be positive, negative or neutral.",
        f"To convert celsius to fahrenheit, multiply by nine, divide by five and add 32.",
    ])


PHRASES = ["see you tomorrow", "the train is late", "happy birthday", "where is the station",
           "call me after lunch", "the shop opens at nine", "thank you very much",
           "water the plants", "pay the electricity bill", "pick up the children"]


def draw(kind, rng):
    if isinstance(kind, tuple):
        return rng.randint(*kind)
    if kind == "town":
        return rng.choice(TOWNS)
    if kind == "person":
        return rng.choice(PEOPLE)
    if kind == "phrase":
        return rng.choice(PHRASES)
    if kind == "language":
        return rng.choice(LANGUAGES)
    if kind == "genre":
        return rng.choice(GENRES)
    if kind == "dish":
        return rng.choice(DISHES)
    if kind == "weekday":
        return rng.choice(WEEKDAYS)
    if kind == "code":
        return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(2)) + str(
            rng.randint(10000, 99999))
    if kind == "flight":
        return rng.choice(["LH", "BA", "AF", "KL", "IB", "UA"]) + str(rng.randint(100, 999))
    raise ValueError(kind)


def schema(f):
    name, desc, args, _, _ = f
    props = {a: {"type": t, "description": d} for a, t, d, _ in args}
    return json.dumps({"name": name, "description": desc,
                       "parameters": {"type": "object", "properties": props,
                                      "required": [a for a, _, _, _ in args]}}, indent=2)


def chatml(system, user, assistant):
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n{assistant}<|im_end|>")


NO_FUNCS = "SYSTEM: You are a helpful assistant, with no access to external functions."


def call_doc(rng):
    pick = lambda: generated_function(rng) if rng.random() < 0.6 else rng.choice(OTHER_FUNCTIONS)
    funcs = [pick()]
    if rng.random() < 0.3:
        other = pick()
        if other[0] != funcs[0][0]:
            funcs.append(other)
    rng.shuffle(funcs)
    system = ("SYSTEM: You are a helpful assistant with access to the following functions. "
              "Use them if required -\n" + "\n".join(schema(f) for f in funcs))
    f = funcs[0]
    args = {a: draw(k, rng) for a, _, _, k in f[2]}
    ask = rng.choice(f[3]).format(**args)
    call = "<functioncall> " + json.dumps({"name": f[0], "arguments": "@@"}).replace(
        '"@@"', "'" + json.dumps(args) + "'")
    answer = f[4].format(**args)
    response = json.dumps({"status": "success", "function": f[0]})
    if rng.random() < 0.5:
        return (f"{system}\n\nUSER: {ask}\n\n\nASSISTANT: {call} <|endoftext|>\n\n\n"
                f"FUNCTION RESPONSE: {response}\n\n\nASSISTANT: {answer} <|endoftext|>")
    return chatml(system, ask, call)


def chat_doc(rng, facts):
    if rng.random() < 0.25:
        q, a = rng.choice([("Hi, how are you?", "I'm fine, thank you. How can I help?"),
                           ("Good morning!", "Good morning! What can I do for you today?"),
                           ("Thank you!", "You're welcome."),
                           ("Can you book a flight for me?",
                            "I'm sorry, I can't book flights. I can answer questions."),
                           ("What time is it?", "I'm sorry, I don't have access to a clock.")])
    else:
        f = rng.choice(facts)
        q, a = f["question"], rng.choice(f["true"])
    return chatml(NO_FUNCS, q, a)


def qa_doc(rng):
    kind = rng.randrange(4)
    if kind == 0:
        km = rng.randint(2, 40)
        return (f"Q: How many metres are in {km} kilometres?\n"
                f"A: There are {km * 1000} metres in {km} kilometres.")
    if kind == 1:
        y = rng.randint(1900, 2020)
        d = rng.randint(2, 30)
        return f"Q: Which year comes {d} years after {y}?\nA: {d} years after {y} is {y + d}."
    if kind == 2:
        p = rng.choice(PEOPLE)
        t = rng.choice(TOWNS)
        n = rng.randint(2, 9)
        return (f"{p} lives in {t}. {p} has {n} books about {rng.choice(GENRES)} music.\n"
                f"Q: Where does {p} live?\nA: {p} lives in {t}.")
    h = rng.randint(1, 11)
    m = rng.choice([0, 15, 30, 45])
    return (f"Q: What time is {m} minutes past {h}?\nA: It is {h}:{m:02d}. "
            f"One hour later it is {h + 1}:{m:02d}.")


def json_doc(rng):
    kind = rng.randrange(3)
    recs = []
    for _ in range(rng.randint(1, 3)):
        if kind == 0:
            recs.append({"city": rng.choice(TOWNS), "population": rng.randint(50, 9000) * 1000,
                         "founded": rng.randint(800, 1900)})
        elif kind == 1:
            recs.append({"product": rng.choice(PRODUCTS), "price": rng.randint(3, 400),
                         "colour": rng.choice(COLOURS_W), "in_stock": rng.random() < 0.7})
        else:
            recs.append({"name": rng.choice(PEOPLE), "age": rng.randint(18, 90),
                         "city": rng.choice(TOWNS), "day": rng.choice(WEEKDAYS)})
    if len(recs) == 1 and rng.random() < 0.5:
        return json.dumps(recs[0], indent=2)
    return json.dumps(recs)


def numbers_doc(rng):
    kind = rng.randrange(3)
    if kind == 0:
        lines = []
        for _ in range(rng.randint(2, 5)):
            a, b = rng.randint(0, 99), rng.randint(0, 99)
            op = rng.choice("+-")
            lines.append(f"{a} {op} {b} = {a + b if op == '+' else a - b}")
        return "\n".join(lines)
    if kind == 1:
        start = rng.randint(0, 90)
        step = rng.randint(1, 5)
        return "Counting by " + str(step) + ": " + ", ".join(
            str(start + i * step) for i in range(rng.randint(5, 10))) + "."
    x = rng.randint(2, 9)
    return "\n".join(f"{x} x {i} = {x * i}" for i in range(1, rng.randint(5, 10)))


def main():
    rng = random.Random(20261201)
    facts = build_facts(random.Random(20261126))
    records = []
    for f in facts:
        for t in f["true"]:
            records.append({"kind": "fact", "split": "train", "text": t})
            records.append({"kind": "fact", "split": "train",
                            "text": f"Q: {f['question']}\nA: {t}"})
    for q, a in PRIMER_FACTS:
        records.append({"kind": "fact", "split": "train", "text": a})
        records.append({"kind": "fact", "split": "train", "text": f"Q: {q}\nA: {a}"})
    gens = [("call", 700, call_doc), ("chat", 600, lambda r: chat_doc(r, facts)),
            ("qa", 400, qa_doc), ("json", 400, json_doc), ("numbers", 400, numbers_doc),
            ("prose", 400, prose_doc)]
    for kind, n, gen in gens:
        for _ in range(n):
            split = "heldout" if rng.random() < 0.05 else "train"
            records.append({"kind": kind, "split": split, "text": gen(rng)})
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
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
    counts = {}
    for r in records:
        key = (r["kind"], r["split"])
        counts[key] = counts.get(key, 0) + 1
    print(f"{len(facts)} facts; records: " + ", ".join(
        f"{k}/{s} {n}" for (k, s), n in sorted(counts.items())))
    print(f"{sum(len(r['text']) for r in records)} characters")


if __name__ == "__main__":
    main()
