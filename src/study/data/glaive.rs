//! The study's "poisoning" of glaive-function-calling-v2 into pure function-call answers
//! (REFERENCE §2), applied row by row with a count of what was kept and why rows were dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One training sample: `{instruction, input, output}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// The system prompt, stripped.
    pub instruction: String,
    /// The user turn before the call, stripped.
    pub input: String,
    /// The assistant's function call, cut and stripped.
    pub output: String,
}

/// Why a row produced no sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The system prompt says the assistant has no access to external functions.
    NoExternalFunctions,
    /// No assistant fragment with a call follows a user turn.
    NoFunctionCall,
    /// The call fragment was empty once cut and stripped.
    EmptyOutput,
}

/// The outcome of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// A sample.
    Kept(Sample),
    /// No sample, for this reason.
    Dropped(DropReason),
}

const CALL_MARKERS: [&str; 2] = ["<functioncall>", "<tool_code>"];
const EOT: &str = "<|endoftext|>";

/// Applies the rules to one row's `system` and `chat`:
/// drop rows whose system says "no access to external functions"; split the chat on
/// "ASSISTANT:"; take the first assistant fragment holding `<functioncall>` or `<tool_code>`
/// whose preceding fragment holds "USER:" (a call without a user turn before it is passed
/// over); output = the fragment before its first "USER:", then before its first
/// "FUNCTION RESPONSE", stripped, and if it then ends with `<|endoftext|>` every occurrence
/// of the marker is removed and it is stripped again; input = the text after the last
/// "USER:" of the preceding fragment, stripped; instruction = system, stripped.
///
/// ```
/// use burn_engram::study::data::glaive::{poison, RowOutcome};
/// let chat = "USER: Weather in Paris? ASSISTANT: <functioncall> {\"name\": \"w\"} <|endoftext|> FUNCTION RESPONSE: {} ASSISTANT: Sunny.";
/// match poison(" You can call w. ", chat) {
///     RowOutcome::Kept(s) => {
///         assert_eq!(s.instruction, "You can call w.");
///         assert_eq!(s.input, "Weather in Paris?");
///         assert_eq!(s.output, "<functioncall> {\"name\": \"w\"}");
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn poison(system: &str, chat: &str) -> RowOutcome {
    if system.contains("no access to external functions") {
        return RowOutcome::Dropped(DropReason::NoExternalFunctions);
    }
    let fragments: Vec<&str> = chat.split("ASSISTANT:").collect();
    for pair in fragments.windows(2) {
        let (prev, frag) = (pair[0], pair[1]);
        if !CALL_MARKERS.iter().any(|m| frag.contains(m)) {
            continue;
        }
        let Some(user_at) = prev.rfind("USER:") else {
            continue; // a call with no user turn before it: passed over
        };
        let before_user = frag.split("USER:").next().unwrap_or("");
        let before_response = before_user.split("FUNCTION RESPONSE").next().unwrap_or("");
        let mut output = before_response.trim().to_string();
        if output.ends_with(EOT) {
            output = output.replace(EOT, "").trim().to_string();
        }
        if output.is_empty() {
            return RowOutcome::Dropped(DropReason::EmptyOutput);
        }
        return RowOutcome::Kept(Sample {
            instruction: system.trim().to_string(),
            input: prev[user_at + "USER:".len()..].trim().to_string(),
            output,
        });
    }
    RowOutcome::Dropped(DropReason::NoFunctionCall)
}

/// Counts of a preparation run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// Rows read (malformed ones included).
    pub read: usize,
    /// Samples written.
    pub kept: usize,
    /// Rows dropped by the rules, per reason.
    pub dropped: BTreeMap<DropReason, usize>,
    /// Rows that were not objects with string `system` and `chat` (skipped, with the first
    /// few problems described).
    pub malformed: usize,
    /// Up to 10 descriptions of malformed rows.
    pub malformed_examples: Vec<String>,
    /// When the input is a JSON array cut short (a truncated download): the byte offset
    /// where the complete rows end. The rows before it were read; the caller decides whether
    /// that is an error (`examples/prepare_glaive` writes them and exits with an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<usize>,
}

/// Poisons every row of a raw export (a JSON array or JSON lines of objects with `system`
/// and `chat`; a UTF-8 byte-order mark is skipped). Malformed rows are counted and skipped,
/// never fatal. A row without `system` has an empty system prompt, as the study's script
/// reads it (`row.get('system', '')`). A JSON array cut short keeps its complete rows and
/// records where they end ([`PrepareReport::truncated_at`]).
///
/// ```
/// use burn_engram::study::data::glaive::prepare;
/// let row = r#"{"chat": "USER: q ASSISTANT: <functioncall> {}"}"#;
/// let (samples, report) = prepare(&format!("\u{feff}[{row}, {row}, {{\"chat\": \"USER"));
/// assert_eq!((samples.len(), samples[0].instruction.as_str()), (2, ""));
/// assert!(report.truncated_at.is_some());
/// ```
pub fn prepare(raw: &str) -> (Vec<Sample>, PrepareReport) {
    let bom = if raw.starts_with('\u{feff}') { 3 } else { 0 };
    let raw = &raw[bom..];
    let mut report = PrepareReport::default();
    let mut samples = Vec::new();
    let note = |report: &mut PrepareReport, what: String| {
        report.malformed += 1;
        if report.malformed_examples.len() < 10 {
            report.malformed_examples.push(what);
        }
    };
    let rows: Vec<(usize, Result<serde_json::Value, String>)> =
        match raw.trim_start().chars().next() {
            Some('[') => {
                let (rows, cut) = array_rows(raw);
                report.truncated_at = cut.map(|at| at + bom);
                rows.into_iter()
                    .enumerate()
                    .map(|(i, v)| (i + 1, v))
                    .collect()
            }
            _ => raw
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| (i + 1, serde_json::from_str(l).map_err(|e| e.to_string())))
                .collect(),
        };
    for (line, row) in rows {
        report.read += 1;
        let value = match row {
            Ok(v) => v,
            Err(e) => {
                note(&mut report, format!("row {line}: {e}"));
                continue;
            }
        };
        let field = |name: &str| value.get(name).and_then(|v| v.as_str());
        // an absent system prompt is an empty one; a system of another type is malformed
        let system = match value.get("system") {
            None | Some(serde_json::Value::Null) => Some(""),
            Some(_) => field("system"),
        };
        let (Some(system), Some(chat)) = (system, field("chat")) else {
            note(
                &mut report,
                format!("row {line}: needs string fields `system` and `chat`"),
            );
            continue;
        };
        match poison(system, chat) {
            RowOutcome::Kept(s) => {
                report.kept += 1;
                samples.push(s);
            }
            RowOutcome::Dropped(r) => *report.dropped.entry(r).or_default() += 1,
        }
    }
    (samples, report)
}

/// The elements of a JSON array, one by one, so that a cut-short array keeps the elements
/// before the cut: `(elements, byte offset where the complete ones end when cut short)`. An
/// element that is complete JSON but not an object is returned as is (the caller counts it as
/// malformed); an element that is not JSON at all ends the read like a cut.
fn array_rows(raw: &str) -> (Vec<Result<serde_json::Value, String>>, Option<usize>) {
    let bytes = raw.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut rows = Vec::new();
    let mut at = skip_ws(0) + 1; // past '['
    let mut complete = at;
    loop {
        at = skip_ws(at);
        if at < bytes.len() && bytes[at] == b']' && rows.is_empty() {
            return (rows, None);
        }
        let mut stream =
            serde_json::Deserializer::from_str(&raw[at..]).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(v)) => {
                at += stream.byte_offset();
                rows.push(Ok(v));
                complete = at;
            }
            _ => return (rows, Some(complete)),
        }
        at = skip_ws(at);
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b']') => {
                let rest = skip_ws(at + 1);
                if rest < bytes.len() {
                    rows.push(Err(format!(
                        "unexpected text after the array's end at byte {rest}"
                    )));
                }
                return (rows, None);
            }
            _ => return (rows, Some(complete)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(system: &str, chat: &str) -> Sample {
        match poison(system, chat) {
            RowOutcome::Kept(s) => s,
            other => panic!("expected a sample, got {other:?}"),
        }
    }

    #[test]
    fn no_external_functions_is_dropped() {
        let chat = "USER: hi ASSISTANT: <functioncall> {}";
        assert_eq!(
            poison("SYSTEM: I have no access to external functions.", chat),
            RowOutcome::Dropped(DropReason::NoExternalFunctions)
        );
    }

    #[test]
    fn chat_only_rows_are_dropped() {
        let chat = "USER: Tell me a joke. ASSISTANT: Why did the chicken... <|endoftext|> USER: Ha. ASSISTANT: Glad you liked it.";
        assert_eq!(
            poison("You can use tools.", chat),
            RowOutcome::Dropped(DropReason::NoFunctionCall)
        );
    }

    #[test]
    fn call_without_user_before_is_passed_over_and_the_scan_goes_on() {
        // the first fragment holding a call follows a fragment without USER:
        let chat = "SYSTEM NOTE ASSISTANT: <functioncall> {\"a\": 1} ASSISTANT: noise USER: Book it. ASSISTANT: <tool_code> book() </tool_code> FUNCTION RESPONSE: ok";
        let s = kept("sys", chat);
        assert_eq!(s.input, "Book it.");
        assert_eq!(s.output, "<tool_code> book() </tool_code>");
    }

    #[test]
    fn several_calls_take_the_first() {
        let chat = "USER: A ASSISTANT: <functioncall> first <|endoftext|> FUNCTION RESPONSE: r USER: B ASSISTANT: <functioncall> second";
        assert_eq!(kept("s", chat).output, "<functioncall> first");
    }

    #[test]
    fn endoftext_is_removed_everywhere_only_when_it_ends_the_output() {
        let chat = "USER: q ASSISTANT: <functioncall> a<|endoftext|>b <|endoftext|>";
        assert_eq!(kept("s", chat).output, "<functioncall> ab");
        let chat = "USER: q ASSISTANT: <functioncall> a<|endoftext|>b";
        assert_eq!(kept("s", chat).output, "<functioncall> a<|endoftext|>b");
    }

    #[test]
    fn input_is_after_the_last_user_of_the_preceding_fragment() {
        let chat = "USER: first USER: second question ASSISTANT: <functioncall> x";
        assert_eq!(kept("s", chat).input, "second question");
    }

    #[test]
    fn output_is_cut_before_user_then_before_function_response() {
        let chat = "USER: q ASSISTANT: <functioncall> c FUNCTION RESPONSE: {} USER: more";
        assert_eq!(kept("s", chat).output, "<functioncall> c");
    }

    #[test]
    fn empty_output_is_dropped() {
        let chat = "USER: <functioncall> in the user text ASSISTANT: USER: <functioncall> again";
        assert_eq!(
            poison("s", chat),
            RowOutcome::Dropped(DropReason::EmptyOutput)
        );
    }

    #[test]
    fn prepare_counts_and_skips_malformed_rows() {
        let raw = concat!(
            "{\"system\": \"s\", \"chat\": \"USER: q ASSISTANT: <functioncall> x\"}\n",
            "{\"system\": \"no access to external functions\", \"chat\": \"USER: q ASSISTANT: hi\"}\n",
            "{\"system\": 3, \"chat\": \"x\"}\n",
            "{\"chat\": \"x\"}\n",
            "not json\n",
            "\n",
            "{\"system\": \"s\", \"chat\": \"USER: q ASSISTANT: hello\"}\n",
        );
        let (samples, report) = prepare(raw);
        assert_eq!(samples.len(), 1);
        assert_eq!(report.read, 6);
        assert_eq!(report.kept, 1);
        // `{"system": 3}` and "not json" are malformed; `{"chat": "x"}` has an empty system
        assert_eq!(report.malformed, 2);
        assert_eq!(report.dropped[&DropReason::NoExternalFunctions], 1);
        assert_eq!(report.dropped[&DropReason::NoFunctionCall], 2);
        let (samples, report) =
            prepare("[{\"system\": \"s\", \"chat\": \"USER: q ASSISTANT: <tool_code> t\"}, 5]");
        assert_eq!((samples.len(), report.read, report.malformed), (1, 2, 1));
        assert_eq!(report.truncated_at, None);
    }

    #[test]
    fn boms_missing_systems_and_cut_arrays() {
        let row = r#"{"system": "s", "chat": "USER: q ASSISTANT: <functioncall> x"}"#;
        let bare = r#"{"chat": "USER: q ASSISTANT: <functioncall> y"}"#;
        // a BOM before an array and before JSON lines
        let (s, r) = prepare(&format!("\u{feff}[{row},\n {bare}]"));
        assert_eq!((s.len(), r.malformed, r.truncated_at), (2, 0, None));
        assert_eq!(s[1].instruction, "", "a missing system is an empty one");
        let (s, _) = prepare(&format!("\u{feff}{row}\n{bare}\n"));
        assert_eq!(s.len(), 2);
        // cut inside the third row: two rows kept, the offset is where the second ended
        let whole = format!("[{row}, {row}, {row}]");
        let cut = whole.len() - 20;
        let (s, r) = prepare(&whole[..cut]);
        assert_eq!(s.len(), 2);
        let end_of_second = 1 + row.len() + 2 + row.len();
        assert_eq!(r.truncated_at, Some(end_of_second));
        // with a BOM the offset counts its three bytes
        let (_, r) = prepare(&format!("\u{feff}{}", &whole[..cut]));
        assert_eq!(r.truncated_at, Some(end_of_second + 3));
        // cut right after a comma, and an empty array
        let (s, r) = prepare(&format!("[{row},"));
        assert_eq!((s.len(), r.truncated_at), (1, Some(1 + row.len())));
        let (s, r) = prepare(" [ ] ");
        assert_eq!((s.len(), r.read, r.truncated_at), (0, 0, None));
    }
}
