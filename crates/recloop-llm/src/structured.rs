//! Structured output: ask for JSON against a schema, parse leniently, validate, repair once.

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, JsonSchemaFormat, Message, Usage};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A compiled JSON Schema.
pub struct Schema {
    name: String,
    raw: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("name", &self.name)
            .field("schema", &self.raw)
            .finish()
    }
}

impl Schema {
    /// Compile `schema`; `name` is used in errors and sent to providers.
    pub fn compile(name: &str, schema: &Value) -> Result<Schema> {
        let validator = jsonschema::validator_for(schema).map_err(|e| LlmError::InvalidSchema {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Schema {
            name: name.to_string(),
            raw: schema.clone(),
            validator,
        })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema as JSON.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// `Ok` when `value` satisfies the schema, else a readable list of up to 5 violations, each
    /// with its JSON path.
    pub fn check(&self, value: &Value) -> std::result::Result<(), String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(5)
            .map(|e| {
                let path = e.instance_path().to_string();
                let at = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Parse a model's answer as JSON, tolerating the usual wrapping: leading/trailing prose and
/// Markdown code fences. Returns the parse error of the whole text when nothing parses.
pub fn parse_json_lenient(text: &str) -> std::result::Result<Value, String> {
    let trimmed = text.trim();
    let direct = serde_json::from_str::<Value>(trimmed);
    let first_error = match direct {
        Ok(v) => return Ok(v),
        Err(e) => format!(
            "not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        ),
    };
    // ```json ... ``` fences.
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
        let body = &after[body_start..];
        if let Some(end) = body.find("```")
            && let Ok(v) = serde_json::from_str::<Value>(body[..end].trim())
        {
            return Ok(v);
        }
    }
    // The outermost {...} or [...] span.
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (trimmed.find(open), trimmed.rfind(close))
            && s < e
            && let Ok(v) = serde_json::from_str::<Value>(&trimmed[s..=e])
        {
            return Ok(v);
        }
    }
    Err(first_error)
}

/// A validated structured answer with what it cost.
#[derive(Debug, Clone)]
pub struct Structured<T> {
    /// The parsed value.
    pub value: T,
    /// The answer as JSON.
    pub json: Value,
    /// Usage summed over the call and the repair call (if any).
    pub usage: Usage,
    /// True when the first answer was invalid and the repair round fixed it.
    pub repaired: bool,
    /// The last response.
    pub response: ChatResponse,
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

fn decode<T: DeserializeOwned>(
    schema: &Schema,
    text: &str,
) -> std::result::Result<(Value, T), String> {
    let value = parse_json_lenient(text)?;
    schema
        .check(&value)
        .map_err(|e| format!("does not match the schema: {e}"))?;
    let typed: T = serde_json::from_value(value.clone())
        .map_err(|e| format!("does not match the expected shape: {e}"))?;
    Ok((value, typed))
}

/// Ask `model` for an answer satisfying `schema`, parsed into `T`.
///
/// The request is sent with `response_format` set (providers map it to their native mechanism).
/// An answer that does not parse or validate gets exactly one repair round: the invalid answer
/// and the validation error are shown to the model, which answers again. A second failure is
/// [`LlmError::StructuredOutput`].
pub fn structured_detailed<T: DeserializeOwned>(
    model: &dyn ChatModel,
    request: &ChatRequest,
    schema: &Schema,
) -> Result<Structured<T>> {
    let mut req = request.clone();
    req.response_format = Some(JsonSchemaFormat {
        name: schema.name().to_string(),
        schema: schema.raw().clone(),
        strict: false,
    });
    let first = model.chat(&req)?;
    let mut usage = first.usage;
    let error = match decode::<T>(schema, first.text()) {
        Ok((json, value)) => {
            return Ok(Structured {
                value,
                json,
                usage,
                repaired: false,
                response: first,
            });
        }
        Err(e) => e,
    };
    tracing::debug!(model = model.name(), %error, "structured output invalid; repairing");
    req.messages.push(Message::assistant(first.text()));
    req.messages.push(Message::user(format!(
        "Your answer was rejected: it {error}. Answer again with only a JSON value that satisfies \
         the schema {}, with no prose and no code fences.",
        schema.raw()
    )));
    let second = model.chat(&req)?;
    usage.add(second.usage);
    match decode::<T>(schema, second.text()) {
        Ok((json, value)) => Ok(Structured {
            value,
            json,
            usage,
            repaired: true,
            response: second,
        }),
        Err(reason) => Err(LlmError::StructuredOutput {
            reason,
            excerpt: excerpt(second.text()),
        }),
    }
}

/// Ask `model` for an answer satisfying the JSON Schema `schema`, parsed into `T`; see
/// [`structured_detailed`]. The schema's `title` (if any) names it, else `answer`.
pub fn structured<T: DeserializeOwned>(
    model: &dyn ChatModel,
    request: &ChatRequest,
    schema: &Value,
) -> Result<T> {
    let name = schema
        .get("title")
        .and_then(Value::as_str)
        .map(sanitize_name)
        .unwrap_or_else(|| "answer".to_string());
    let compiled = Schema::compile(&name, schema)?;
    Ok(structured_detailed::<T>(model, request, &compiled)?.value)
}

/// Make a name acceptable to providers (`[a-zA-Z0-9_-]`, at most 64 characters).
pub fn sanitize_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "answer".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{ScriptedModel, ScriptedTurn};
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Verdict {
        ok: bool,
        score: f64,
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "score": {"type": "number", "minimum": 0}},
            "required": ["ok", "score"],
            "additionalProperties": false
        })
    }

    #[test]
    fn lenient_parse_handles_fences_and_prose() {
        assert_eq!(parse_json_lenient(" {\"a\":1} ").unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_json_lenient("Sure!\n```json\n{\"a\": 2}\n```\nDone.").unwrap(),
            json!({"a": 2})
        );
        assert_eq!(
            parse_json_lenient("The answer is {\"a\": 3}.").unwrap(),
            json!({"a": 3})
        );
        let err = parse_json_lenient("{\"a\": ").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn valid_answer_needs_no_repair() {
        let m = ScriptedModel::new([ScriptedTurn::json(json!({"ok": true, "score": 0.5}))]);
        let v: Verdict = structured(&m, &ChatRequest::simple(None, "judge"), &schema()).unwrap();
        assert_eq!(
            v,
            Verdict {
                ok: true,
                score: 0.5
            }
        );
        let sent = &m.requests()[0];
        assert_eq!(
            sent.response_format.as_ref().unwrap().schema,
            schema(),
            "schema must be sent with the request"
        );
    }

    #[test]
    fn malformed_answer_is_repaired_once_with_the_error_shown() {
        let m = ScriptedModel::new([
            ScriptedTurn::text("{\"ok\": true, \"score\": -1"),
            ScriptedTurn::json(json!({"ok": false, "score": 2.0})),
        ]);
        let s = Schema::compile("verdict", &schema()).unwrap();
        let out =
            structured_detailed::<Verdict>(&m, &ChatRequest::simple(None, "judge"), &s).unwrap();
        assert!(out.repaired);
        assert!(!out.value.ok);
        let repair = &m.requests()[1];
        let last = repair.messages.last().unwrap();
        assert!(last.content.contains("not valid JSON"), "{}", last.content);
    }

    #[test]
    fn schema_violation_twice_is_a_typed_error() {
        let m = ScriptedModel::new([
            ScriptedTurn::json(json!({"ok": true, "score": -1})),
            ScriptedTurn::json(json!({"ok": "yes", "score": 1})),
        ]);
        let err =
            structured::<Verdict>(&m, &ChatRequest::simple(None, "judge"), &schema()).unwrap_err();
        match &err {
            LlmError::StructuredOutput { reason, .. } => {
                assert!(reason.contains("/ok"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
        let repair_prompt = m.requests()[1].messages.last().unwrap().content.clone();
        assert!(repair_prompt.contains("/score"), "{repair_prompt}");
        assert_eq!(m.remaining(), 0);
    }

    #[test]
    fn invalid_schema_is_reported() {
        let err = Schema::compile("bad", &json!({"type": 12})).unwrap_err();
        assert!(err.to_string().contains("bad"));
    }
}
