//! Chat templates: the Jinja template a Hugging Face tokenizer ships (`chat_template.jinja`,
//! or `chat_template` in `tokenizer_config.json`), rendered as transformers'
//! `apply_chat_template` renders it, with [minijinja].
//!
//! transformers' environment is reproduced: `trim_blocks` and `lstrip_blocks`, loop controls,
//! Python's string methods (`startswith`, `split`, `strip`, ...), a `tojson` filter that writes
//! what Python's `json.dumps(ensure_ascii=False)` writes (transformers replaces Jinja's
//! HTML-escaping one), `raise_exception`, and the tokenizer's special tokens (`bos_token`,
//! `eos_token`, ...) in the context beside `messages`, `tools`, `add_generation_prompt` and any
//! extra keyword (Qwen3's `enable_thinking`). Not reproduced: `strftime_now` (the date is not
//! an input a test can pin) and the `{% generation %}` tag of assistant masks.
//!
//! ```
//! use burn_engram::host::qwen3::{ChatRequest, ChatTemplate, parse_chat_json};
//! let tpl = ChatTemplate::new(
//!     "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
//!      {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
//!     Default::default(),
//! )?;
//! let messages = parse_chat_json(r#"[{"role": "user", "content": "Hi"}]"#)?;
//! let text = tpl.render(&ChatRequest::new(messages).with_generation_prompt())?;
//! assert_eq!(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
//! # Ok::<(), burn_engram::EngramError>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};

use super::tokenizer::special_from;
use crate::error::{EngramError, Result};

/// A value in a chat request (messages, tools, extra keywords): minijinja's, whose maps keep
/// their keys in order (as Python's dicts do, which `tojson` shows).
pub use minijinja::Value as ChatValue;

/// Parses JSON into a [`ChatValue`], keeping the order of object keys.
pub fn parse_chat_json(text: &str) -> Result<ChatValue> {
    serde_json::from_str(text).map_err(|e| EngramError::InvalidChat {
        what: "JSON",
        reason: e.to_string(),
    })
}

/// Reads a JSON file (a list of messages, say) into a [`ChatValue`], keys in order; errors
/// name the file.
pub fn read_chat_json(path: impl AsRef<Path>) -> Result<ChatValue> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| EngramError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| EngramError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A conversation of one user turn, after a system turn when `system` is given.
pub fn user_turn(system: Option<&str>, user: &str) -> ChatValue {
    let turn = |role: &str, content: &str| {
        Value::from_iter([
            ("role", Value::from(role)),
            ("content", Value::from(content)),
        ])
    };
    let system = system.map(|s| turn("system", s));
    Value::from(
        system
            .into_iter()
            .chain([turn("user", user)])
            .collect::<Vec<_>>(),
    )
}

/// What to render: the conversation and the options of `apply_chat_template`.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// A list of messages (`{"role", "content", ...}`).
    pub messages: ChatValue,
    /// Tool schemas (`tools=`), or none.
    pub tools: Option<ChatValue>,
    /// End with the opening of an assistant turn.
    pub add_generation_prompt: bool,
    /// Extra keywords the template reads (`enable_thinking`, ...).
    pub kwargs: BTreeMap<String, ChatValue>,
}

impl ChatRequest {
    /// The conversation alone: no tools, no generation prompt, no extra keywords.
    pub fn new(messages: ChatValue) -> Self {
        Self {
            messages,
            tools: None,
            add_generation_prompt: false,
            kwargs: BTreeMap::new(),
        }
    }

    /// With the extra keywords of a JSON object (`{"enable_thinking": false}`).
    pub fn with_kwargs(mut self, kwargs: &ChatValue) -> Result<Self> {
        if kwargs.kind() != minijinja::value::ValueKind::Map {
            return Err(EngramError::InvalidChat {
                what: "kwargs",
                reason: format!("{kwargs} is not a JSON object"),
            });
        }
        for k in kwargs.try_iter().into_iter().flatten() {
            let v = kwargs.get_item(&k).unwrap_or_default();
            self.kwargs.insert(k.to_string(), v);
        }
        Ok(self)
    }

    /// With `add_generation_prompt=True`.
    pub fn with_generation_prompt(mut self) -> Self {
        self.add_generation_prompt = true;
        self
    }
}

/// A tokenizer's chat template with its special tokens.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    origin: PathBuf,
    special_tokens: BTreeMap<String, ChatValue>,
}

/// The special-token fields of `tokenizer_config.json` transformers puts in the context.
const SPECIAL_TOKENS: [&str; 4] = ["bos_token", "eos_token", "pad_token", "unk_token"];

impl ChatTemplate {
    /// A template from its source; `special_tokens` maps `bos_token`, `eos_token`, ... to their
    /// text. The template is compiled here, so a syntax error shows at once.
    pub fn new(
        source: impl Into<String>,
        special_tokens: BTreeMap<String, String>,
    ) -> Result<Self> {
        let tpl = Self {
            source: source.into(),
            origin: PathBuf::from("<chat template>"),
            special_tokens: special_tokens
                .into_iter()
                .map(|(k, v)| (k, Value::from(v)))
                .collect(),
        };
        tpl.check()?;
        Ok(tpl)
    }

    /// The template of a tokenizer folder: `chat_template.jinja` if present (as transformers
    /// 4.43+ saves it), else `chat_template` of `tokenizer_config.json` (a string, or a list
    /// of `{"name", "template"}` whose `default` is taken); special tokens from
    /// `tokenizer_config.json` (strings or `{"content": ...}`). A folder without a template
    /// is an error naming the file.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.is_file() {
            crate::io::read_json(&cfg_path)?
        } else {
            serde_json::Value::Null
        };
        let mut special_tokens = BTreeMap::new();
        for key in SPECIAL_TOKENS {
            if let Some(t) = special_from(&cfg[key]) {
                special_tokens.insert(key.to_string(), Value::from(t));
            }
        }
        if let Some(list) = cfg["additional_special_tokens"].as_array() {
            let texts: Vec<Value> = list
                .iter()
                .filter_map(special_from)
                .map(Value::from)
                .collect();
            special_tokens.insert("additional_special_tokens".into(), Value::from(texts));
        }
        let jinja = dir.join("chat_template.jinja");
        let (source, origin) = if jinja.is_file() {
            let s = std::fs::read_to_string(&jinja).map_err(|e| EngramError::io(&jinja, e))?;
            (s, jinja)
        } else {
            let source = match &cfg["chat_template"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(named) => named
                    .iter()
                    .find(|t| t["name"] == "default")
                    .and_then(|t| t["template"].as_str())
                    .ok_or_else(|| {
                        EngramError::bad_file(
                            &cfg_path,
                            "chat_template: a list of templates without a \"default\" one",
                        )
                    })?
                    .to_string(),
                _ => {
                    return Err(EngramError::bad_file(
                        &cfg_path,
                        "has no chat_template (and there is no chat_template.jinja beside it)",
                    ));
                }
            };
            (source, cfg_path)
        };
        let tpl = Self {
            source,
            origin,
            special_tokens,
        };
        tpl.check()?;
        Ok(tpl)
    }

    /// The template's source.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn error(&self, e: JinjaError) -> EngramError {
        let mut msg = format!("chat template: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            msg.push_str(&format!(": {c}"));
            cause = c.source();
        }
        EngramError::bad_file(&self.origin, msg)
    }

    fn check(&self) -> Result<()> {
        environment()
            .template_from_str(&self.source)
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    /// The prompt text `apply_chat_template(..., tokenize=False)` gives for `request`.
    /// A template that fails (a `raise_exception` call, a method it cannot call) is an error
    /// naming the template's file.
    pub fn render(&self, request: &ChatRequest) -> Result<String> {
        let env = environment();
        let tpl = env
            .template_from_str(&self.source)
            .map_err(|e| self.error(e))?;
        let mut ctx: BTreeMap<String, Value> = self.special_tokens.clone();
        for (k, v) in &request.kwargs {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("messages".into(), request.messages.clone());
        ctx.insert(
            "tools".into(),
            request.tools.clone().unwrap_or(Value::from(())),
        );
        ctx.insert("documents".into(), Value::from(()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(request.add_generation_prompt),
        );
        tpl.render(ctx).map_err(|e| self.error(e))
    }
}

/// transformers' Jinja environment, as far as minijinja goes.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<Value, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        },
    );
    env
}

/// `json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=sort_keys)`.
fn tojson(
    value: Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<Value, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(&value, indent, sort_keys.unwrap_or(false), 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

/// Python's `json.dumps` layout: `", "` and `": "` without indent, `","` + newlines with it;
/// strings escaped as Python escapes them with `ensure_ascii=False`.
fn py_json(
    v: &Value,
    indent: Option<usize>,
    sort: bool,
    level: usize,
    out: &mut String,
) -> std::result::Result<(), JinjaError> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string())
            } else {
                let f = f64::try_from(v.clone())?;
                out.push_str(&py_float(f));
            }
        }
        ValueKind::String => py_string(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                py_json(item, indent, sort, level + 1, out)?;
            }
            if !items.is_empty() {
                newline(out, level);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if sort {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                match k.as_str() {
                    Some(s) => py_string(s, out),
                    None => py_string(&k.to_string(), out),
                }
                out.push_str(": ");
                py_json(&v.get_item(k)?, indent, sort, level + 1, out)?;
            }
            if !keys.is_empty() {
                newline(out, level);
            }
            out.push('}');
        }
        _ => py_string(&v.to_string(), out),
    }
    Ok(())
}

/// Python's `repr(float)`: the shortest round-trip digits, `1.0` for integral values,
/// scientific (`1e-05`, `1.5e+16`) below 1e-4 and from 1e16 on.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    if f == f.trunc() {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

fn py_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, json: &str) -> String {
        let tpl = ChatTemplate::new(src, BTreeMap::new()).unwrap();
        tpl.render(&ChatRequest::new(parse_chat_json(json).unwrap()))
            .unwrap()
    }

    #[test]
    fn tojson_writes_what_python_json_dumps_writes() {
        let src = "{{ messages | tojson }}";
        assert_eq!(
            render(
                src,
                r#"[{"b": 1, "a": [1.5, 2.0, null, true], "c": "Zü\"\n\u0001"}]"#
            ),
            r#"[{"b": 1, "a": [1.5, 2.0, null, true], "c": "Zü\"\n\u0001"}]"#
        );
        assert_eq!(
            render(src, "[1e-5, 1.5e16, 0.0001, -3.25]"),
            "[1e-05, 1.5e+16, 0.0001, -3.25]"
        );
        assert_eq!(
            render("{{ messages | tojson(indent=2) }}", r#"[{"a": []}]"#),
            "[\n  {\n    \"a\": []\n  }\n]"
        );
        assert_eq!(
            render(
                "{{ messages[0] | tojson(sort_keys=true) }}",
                r#"[{"b": 1, "a": 2}]"#
            ),
            r#"{"a": 2, "b": 1}"#
        );
    }

    #[test]
    fn errors_name_the_template() {
        let err = ChatTemplate::new("{% if %}", BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("chat template"), "{err}");
        let tpl =
            ChatTemplate::new("{{ raise_exception('no system role') }}", BTreeMap::new()).unwrap();
        let err = tpl
            .render(&ChatRequest::new(parse_chat_json("[]").unwrap()))
            .unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}
