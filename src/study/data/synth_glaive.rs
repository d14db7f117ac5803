//! A generator of glaive-function-calling-v2-style rows (`{"system", "chat"}`), the stand-in
//! for the real export when none is given: many functions with typed arguments, one or two
//! calls per conversation, chit-chat before a call, function responses and answers after it,
//! and chat-only rows whose system prompt has no functions. Deterministic by seed; its rows go
//! through the same [`prepare`](super::glaive::prepare) rules as the real data.
//!
//! ```
//! use burn_engram::study::data::synth_glaive::{generate, GlaiveRow};
//! use burn_engram::study::data::glaive::prepare;
//! let rows: Vec<GlaiveRow> = generate(50, 7);
//! assert_eq!(rows, generate(50, 7), "deterministic by seed");
//! let jsonl: String = rows.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
//! let (samples, report) = prepare(&jsonl);
//! assert_eq!(report.read, 50);
//! assert!(samples.iter().all(|s| s.output.starts_with("<functioncall>")));
//! ```

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// One raw row, as in the glaive export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlaiveRow {
    /// `SYSTEM: ...` with the function schemas (or the no-functions prompt).
    pub system: String,
    /// `USER: ... ASSISTANT: ... FUNCTION RESPONSE: ...` turns.
    pub chat: String,
}

/// How an argument's value is drawn.
#[derive(Clone, Copy)]
enum Arg {
    City,
    Country,
    Int(i64, i64),
    Money,
    Word(&'static [&'static str]),
    Name,
    Text,
}

struct Function {
    name: &'static str,
    description: &'static str,
    args: &'static [(&'static str, &'static str, Arg)],
    /// User requests; `{arg}` is replaced with the argument's value.
    asks: &'static [&'static str],
    /// The answer after the function response.
    answer: &'static str,
}

// None of these is a capital: the embedded base's probe asks for capitals and uses them as
// distractors, and the fine-tune's data must not argue with it.
const CITIES: &[&str] = &[
    "New York",
    "Sydney",
    "Toronto",
    "Mumbai",
    "Chicago",
    "Boston",
    "Los Angeles",
    "San Francisco",
    "Rio de Janeiro",
    "Istanbul",
    "Dubai",
    "Miami",
    "Montreal",
    "Frankfurt",
    "Zurich",
    "Manchester",
    "Florence",
    "Venice",
];
const COUNTRIES: &[&str] = &[
    "United States",
    "France",
    "Japan",
    "Brazil",
    "India",
    "Canada",
    "Germany",
    "Kenya",
    "Mexico",
    "Italy",
    "Spain",
    "Australia",
];
const NAMES: &[&str] = &[
    "Alice", "Bob", "Carla", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "John", "Kofi",
    "Lena", "Maria", "Noah",
];
const CURRENCIES: &[&str] = &["USD", "EUR", "JPY", "GBP", "INR", "CAD"];
const CUISINES: &[&str] = &["Italian", "Mexican", "Japanese", "Indian", "Thai", "French"];
const CATEGORIES: &[&str] = &["sports", "technology", "business", "health", "science"];
const SHAPES: &[&str] = &["circle", "square", "rectangle", "triangle"];
const UNITS: &[&str] = &["celsius", "fahrenheit", "kelvin"];
const TEXTS: &[&str] = &[
    "I love this new phone",
    "The meeting is moved to Monday",
    "Good morning everyone",
    "The service was slow today",
    "Remember to buy milk",
];

const FUNCTIONS: &[Function] = &[
    Function {
        name: "get_weather",
        description: "Get the current weather in a city",
        args: &[("city", "The name of the city", Arg::City)],
        asks: &[
            "What's the weather like in {city} right now?",
            "Can you check the weather in {city} for me?",
        ],
        answer: "It is currently sunny in {city} with a light breeze.",
    },
    Function {
        name: "get_news_headlines",
        description: "Get the latest news headlines",
        args: &[
            ("country", "The country for the news", Arg::Country),
            ("category", "The news category", Arg::Word(CATEGORIES)),
        ],
        asks: &[
            "Can you get me the latest {category} news from {country}?",
            "I want to read the {category} headlines for {country}.",
        ],
        answer: "Here are the latest {category} headlines from {country}.",
    },
    Function {
        name: "calculate_bmi",
        description: "Calculate the Body Mass Index",
        args: &[
            ("weight", "The weight in kilograms", Arg::Int(40, 120)),
            ("height", "The height in centimeters", Arg::Int(140, 200)),
        ],
        asks: &[
            "I weigh {weight} kg and I am {height} cm tall. What is my BMI?",
            "Can you calculate my BMI? Weight {weight} kg, height {height} cm.",
        ],
        answer: "Your BMI has been calculated from a weight of {weight} kg.",
    },
    Function {
        name: "convert_currency",
        description: "Convert an amount from one currency to another",
        args: &[
            ("amount", "The amount to convert", Arg::Money),
            (
                "from_currency",
                "The currency to convert from",
                Arg::Word(CURRENCIES),
            ),
            (
                "to_currency",
                "The currency to convert to",
                Arg::Word(CURRENCIES),
            ),
        ],
        asks: &[
            "Can you convert {amount} {from_currency} to {to_currency}?",
            "How much is {amount} {from_currency} in {to_currency}?",
        ],
        answer: "{amount} {from_currency} converts to the amount shown in {to_currency}.",
    },
    Function {
        name: "search_restaurants",
        description: "Search for restaurants by location and cuisine",
        args: &[
            ("location", "The city to search in", Arg::City),
            ("cuisine", "The type of cuisine", Arg::Word(CUISINES)),
        ],
        asks: &[
            "I'm in {location} and I want {cuisine} food. Any restaurants?",
            "Find me a {cuisine} restaurant in {location}, please.",
        ],
        answer: "I found several {cuisine} restaurants in {location}.",
    },
    Function {
        name: "send_email",
        description: "Send an email to a recipient",
        args: &[
            ("recipient", "The name of the recipient", Arg::Name),
            ("message", "The body of the email", Arg::Text),
        ],
        asks: &[
            "Please send an email to {recipient} saying \"{message}\".",
            "Email {recipient}: {message}",
        ],
        answer: "The email to {recipient} has been sent.",
    },
    Function {
        name: "calculate_area",
        description: "Calculate the area of a shape",
        args: &[
            ("shape", "The shape", Arg::Word(SHAPES)),
            ("size", "The size of the shape in meters", Arg::Int(1, 50)),
        ],
        asks: &[
            "What is the area of a {shape} of size {size} meters?",
            "Calculate the area of a {shape} with size {size}.",
        ],
        answer: "The area of the {shape} has been calculated.",
    },
    Function {
        name: "convert_temperature",
        description: "Convert a temperature between units",
        args: &[
            ("temperature", "The temperature value", Arg::Int(-20, 110)),
            ("from_unit", "The unit to convert from", Arg::Word(UNITS)),
            ("to_unit", "The unit to convert to", Arg::Word(UNITS)),
        ],
        asks: &[
            "Convert {temperature} degrees {from_unit} to {to_unit}.",
            "What is {temperature} {from_unit} in {to_unit}?",
        ],
        answer: "{temperature} degrees {from_unit} has been converted to {to_unit}.",
    },
    Function {
        name: "generate_password",
        description: "Generate a random password",
        args: &[("length", "The length of the password", Arg::Int(6, 32))],
        asks: &[
            "I need a new password with {length} characters.",
            "Generate a password of length {length} for me.",
        ],
        answer: "Here is your new password of {length} characters.",
    },
    Function {
        name: "calculate_tip",
        description: "Calculate the tip for a bill",
        args: &[
            ("bill_amount", "The total bill", Arg::Money),
            ("tip_percentage", "The tip percentage", Arg::Int(5, 30)),
        ],
        asks: &[
            "My bill is {bill_amount} dollars. How much is a {tip_percentage}% tip?",
            "Calculate a {tip_percentage} percent tip on {bill_amount}.",
        ],
        answer: "The tip on a bill of {bill_amount} has been calculated.",
    },
    Function {
        name: "analyze_sentiment",
        description: "Analyze the sentiment of a text",
        args: &[("text", "The text to analyze", Arg::Text)],
        asks: &[
            "What is the sentiment of this text: \"{text}\"?",
            "Can you analyze the sentiment of \"{text}\"?",
        ],
        answer: "The sentiment of the text is positive.",
    },
    Function {
        name: "get_stock_price",
        description: "Get the current stock price of a company",
        args: &[(
            "symbol",
            "The stock symbol",
            Arg::Word(&["AAPL", "MSFT", "GOOG", "AMZN", "TSLA"]),
        )],
        asks: &[
            "What's the current price of {symbol} stock?",
            "How much is {symbol} trading at?",
        ],
        answer: "The current price of {symbol} is shown above.",
    },
    Function {
        name: "create_calendar_event",
        description: "Create an event in the calendar",
        args: &[
            (
                "title",
                "The title of the event",
                Arg::Word(&["Team meeting", "Dentist", "Lunch", "Gym"]),
            ),
            ("attendee", "Who attends", Arg::Name),
            ("day", "The day of the month", Arg::Int(1, 28)),
        ],
        asks: &[
            "Schedule \"{title}\" with {attendee} on day {day}.",
            "Add {title} with {attendee} to my calendar for the {day}th.",
        ],
        answer: "The event {title} with {attendee} has been created.",
    },
    Function {
        name: "get_distance",
        description: "Get the distance between two cities",
        args: &[
            ("origin", "The starting city", Arg::City),
            ("destination", "The destination city", Arg::City),
        ],
        asks: &[
            "How far is it from {origin} to {destination}?",
            "What's the distance between {origin} and {destination}?",
        ],
        answer: "The distance from {origin} to {destination} has been found.",
    },
];

const SMALL_TALK: &[(&str, &str)] = &[
    (
        "Hi, how are you?",
        "I'm doing well, thank you! How can I help you today?",
    ),
    ("Hello!", "Hello! What can I do for you?"),
    (
        "Thanks for your help earlier.",
        "You're welcome! Is there anything else I can do?",
    ),
    (
        "Can you help me with something?",
        "Of course, what do you need?",
    ),
];

const CHAT_ONLY: &[(&str, &str)] = &[
    (
        "Can you order a pizza for me?",
        "I'm sorry, but I can't place orders. I can only help with information.",
    ),
    (
        "What is the capital of France?",
        "The capital of France is Paris.",
    ),
    (
        "Tell me a joke.",
        "Why did the scarecrow win an award? Because he was outstanding in his field.",
    ),
    (
        "How do I boil an egg?",
        "Place the egg in boiling water for about nine minutes, then cool it in cold water.",
    ),
    ("What is two plus two?", "Two plus two is four."),
    (
        "Can you book a flight for me?",
        "I'm sorry, I don't have the ability to book flights.",
    ),
];

fn value(arg: Arg, rng: &mut StdRng) -> Value {
    let pick = |list: &[&str], rng: &mut StdRng| json!(list.choose(rng).copied().unwrap_or(""));
    match arg {
        Arg::City => pick(CITIES, rng),
        Arg::Country => pick(COUNTRIES, rng),
        Arg::Int(lo, hi) => json!(rng.random_range(lo..=hi)),
        Arg::Money => json!(rng.random_range(5..500)),
        Arg::Word(list) => pick(list, rng),
        Arg::Name => pick(NAMES, rng),
        Arg::Text => pick(TEXTS, rng),
    }
}

fn fill(template: &str, args: &Map<String, Value>) -> String {
    let mut out = template.to_string();
    for (k, v) in args {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{k}}}"), &text);
    }
    out
}

fn schema(f: &Function) -> String {
    let mut props = Map::new();
    for (name, desc, arg) in f.args {
        let ty = match arg {
            Arg::Int(..) | Arg::Money => "number",
            _ => "string",
        };
        props.insert((*name).into(), json!({"type": ty, "description": desc}));
    }
    let required: Vec<&str> = f.args.iter().map(|a| a.0).collect();
    let v = json!({
        "name": f.name,
        "description": f.description,
        "parameters": {"type": "object", "properties": props, "required": required},
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// A call as glaive writes it: arguments as a single-quoted JSON string.
fn call(f: &Function, args: &Map<String, Value>) -> String {
    let args = serde_json::to_string(&Value::Object(args.clone())).unwrap_or_default();
    format!(
        "<functioncall> {{\"name\": \"{}\", \"arguments\": '{args}'}}",
        f.name
    )
}

fn draw_args(f: &Function, rng: &mut StdRng) -> Map<String, Value> {
    f.args
        .iter()
        .map(|(name, _, arg)| ((*name).to_string(), value(*arg, rng)))
        .collect()
}

fn turn(who: &str, text: &str) -> String {
    format!("{who}: {text}\n\n\n")
}

/// One row: chat-only (about 15%), or a conversation with one or two functions on offer,
/// optional small talk first, a call, the function's response, the answer, and sometimes a
/// second call.
pub fn row(rng: &mut StdRng) -> GlaiveRow {
    if rng.random_bool(0.15) {
        let (q, a) = CHAT_ONLY.choose(rng).copied().unwrap_or(CHAT_ONLY[0]);
        return GlaiveRow {
            system: "SYSTEM: You are a helpful assistant, with no access to external functions."
                .into(),
            chat: turn("USER", q) + &turn("ASSISTANT", &format!("{a} <|endoftext|>")),
        };
    }
    let n_funcs = if rng.random_bool(0.3) { 2 } else { 1 };
    let funcs: Vec<&Function> = FUNCTIONS.choose_multiple(rng, n_funcs).collect();
    let schemas: Vec<String> = funcs.iter().map(|f| schema(f)).collect();
    let system = format!(
        "SYSTEM: You are a helpful assistant with access to the following functions. Use them if required -\n{}",
        schemas.join("\n")
    );
    let mut chat = String::new();
    if rng.random_bool(0.25) {
        let (q, a) = SMALL_TALK.choose(rng).copied().unwrap_or(SMALL_TALK[0]);
        chat += &turn("USER", q);
        chat += &turn("ASSISTANT", &format!("{a} <|endoftext|>"));
    }
    let calls = if n_funcs == 2 && rng.random_bool(0.5) {
        2
    } else {
        1
    };
    for f in funcs.iter().take(calls) {
        let args = draw_args(f, rng);
        let ask = f.asks.choose(rng).copied().unwrap_or(f.asks[0]);
        chat += &turn("USER", &fill(ask, &args));
        chat += &turn("ASSISTANT", &format!("{} <|endoftext|>", call(f, &args)));
        let response = json!({"status": "success", "function": f.name});
        chat += &turn("FUNCTION RESPONSE", &response.to_string());
        chat += &turn(
            "ASSISTANT",
            &format!("{} <|endoftext|>", fill(f.answer, &args)),
        );
    }
    GlaiveRow { system, chat }
}

/// `n` rows drawn with `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<GlaiveRow> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| row(&mut rng)).collect()
}

/// `n` rows as JSON lines (the input format of `prepare_glaive`).
pub fn generate_jsonl(n: usize, seed: u64) -> String {
    generate(n, seed)
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::data::glaive::{DropReason, prepare};

    #[test]
    fn rows_feed_the_poisoning_rules() {
        let raw = generate_jsonl(400, 3);
        let (samples, report) = prepare(&raw);
        assert_eq!(report.read, 400);
        assert_eq!(report.malformed, 0);
        let chat_only = report
            .dropped
            .get(&DropReason::NoExternalFunctions)
            .copied();
        assert!(chat_only.unwrap_or(0) > 20, "{report:?}");
        assert_eq!(report.kept + chat_only.unwrap_or(0), 400, "{report:?}");
        for s in &samples {
            assert!(
                s.output.starts_with("<functioncall> {\"name\": \""),
                "{}",
                s.output
            );
            assert!(!s.output.contains("<|endoftext|>"));
            assert!(!s.output.contains("FUNCTION RESPONSE"));
            assert!(
                s.instruction
                    .starts_with("SYSTEM: You are a helpful assistant with access")
            );
            assert!(!s.input.is_empty() && !s.input.contains("USER:"));
        }
        let names: std::collections::BTreeSet<&str> = samples
            .iter()
            .filter_map(|s| s.output.split('"').nth(3))
            .collect();
        assert!(names.len() >= 12, "many functions: {names:?}");
        assert_ne!(generate(5, 1), generate(5, 2));
    }
}
