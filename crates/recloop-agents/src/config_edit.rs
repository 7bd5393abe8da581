//! Read and change single values in a workspace's configuration files as deltas: the rest of the
//! file — comments, key order, spacing — stays byte for byte.
//!
//! - TOML through `toml_edit` (the value keeps its surrounding whitespace and trailing comment);
//! - JSON by locating the value's span in the text and replacing only that span;
//! - YAML (block mappings of scalars, the layout configuration files use) by replacing the scalar
//!   on its line and keeping the line's comment. Flow collections, anchors and multi-line
//!   scalars are refused with a clear error rather than rewritten.
//!
//! A key path is dotted: `model.factors`.

use serde_json::Value;
use std::path::Path;

/// Why a value could not be read or changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct EditError {
    /// The file (relative to the workspace).
    pub file: String,
    /// What was wrong.
    pub reason: String,
}

/// The configuration formats recognised by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.json`
    Json,
    /// `.yaml` / `.yml`
    Yaml,
}

impl Format {
    /// The format of `file`, by its extension.
    pub fn of(file: &str) -> Option<Format> {
        let ext = Path::new(file).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

fn err(file: &str, reason: impl Into<String>) -> EditError {
    EditError {
        file: file.to_string(),
        reason: reason.into(),
    }
}

fn format_of(file: &str) -> Result<Format, EditError> {
    Format::of(file).ok_or_else(|| {
        err(
            file,
            "only .toml, .json, .yaml and .yml files can hold searched parameters",
        )
    })
}

/// The value at `key` in `text` (the contents of `file`), or `None` when the key is absent.
pub fn read_value(file: &str, text: &str, key: &str) -> Result<Option<Value>, EditError> {
    match format_of(file)? {
        Format::Toml => {
            let doc: toml_edit::DocumentMut = text
                .parse()
                .map_err(|e| err(file, format!("not valid TOML: {e}")))?;
            let mut item = doc.as_item();
            for part in key.split('.') {
                match item.get(part) {
                    Some(i) => item = i,
                    None => return Ok(None),
                }
            }
            Ok(item.as_value().and_then(toml_to_json))
        }
        Format::Json => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| err(file, format!("not valid JSON: {e}")))?;
            let mut cur = &v;
            for part in key.split('.') {
                match cur.get(part) {
                    Some(x) => cur = x,
                    None => return Ok(None),
                }
            }
            Ok(Some(cur.clone()))
        }
        Format::Yaml => match yaml_scalar_line(text, key).map_err(|r| err(file, r))? {
            Some(line) => Ok(Some(yaml_scalar(&line.value))),
            None => Ok(None),
        },
    }
}

/// `text` with the value at `key` set to `value`; everything else unchanged. The key must exist
/// (a searched parameter changes a value the file already declares).
pub fn set_value(file: &str, text: &str, key: &str, value: &Value) -> Result<String, EditError> {
    match format_of(file)? {
        Format::Toml => set_toml(file, text, key, value),
        Format::Json => {
            let (start, end) = json_value_span(text, key)
                .map_err(|r| err(file, r))?
                .ok_or_else(|| err(file, format!("no key `{key}`")))?;
            let new = serde_json::to_string(value)
                .map_err(|e| err(file, format!("cannot write the value: {e}")))?;
            Ok(format!("{}{}{}", &text[..start], new, &text[end..]))
        }
        Format::Yaml => {
            let line = yaml_scalar_line(text, key)
                .map_err(|r| err(file, r))?
                .ok_or_else(|| err(file, format!("no key `{key}`")))?;
            let new = match value {
                Value::String(s) => serde_json::to_string(s)
                    .map_err(|e| err(file, format!("cannot write the value: {e}")))?,
                other => other.to_string(),
            };
            Ok(format!(
                "{}{}{}",
                &text[..line.value_start],
                new,
                &text[line.value_end..]
            ))
        }
    }
}

/// `text` (a TOML document) changed to hold exactly `new`, as a delta: values equal to the old
/// ones keep their text, changed scalars keep their comments, tables and arrays of tables of the
/// same shape are updated in place; only what changed is rewritten.
pub fn update_toml(file: &str, text: &str, new: &toml::Table) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| err(file, format!("not valid TOML: {e}")))?;
    let old: toml::Table =
        toml::from_str(text).map_err(|e| err(file, format!("not valid TOML: {e}")))?;
    update_table(file, doc.as_table_mut(), &old, new)?;
    Ok(doc.to_string())
}

fn update_table(
    file: &str,
    t: &mut toml_edit::Table,
    old: &toml::Table,
    new: &toml::Table,
) -> Result<(), EditError> {
    for gone in old.keys().filter(|k| !new.contains_key(*k)) {
        t.remove(gone);
    }
    for (k, nv) in new {
        let ov = old.get(k);
        if ov == Some(nv) {
            continue;
        }
        let item = t.get_mut(k);
        match (ov, nv, item) {
            (Some(toml::Value::Table(ot)), toml::Value::Table(nt), Some(item))
                if item.is_table() =>
            {
                if let Some(table) = item.as_table_mut() {
                    update_table(file, table, ot, nt)?;
                }
            }
            (Some(toml::Value::Array(oa)), toml::Value::Array(na), Some(item))
                if item.is_array_of_tables() && oa.len() == na.len() =>
            {
                if let Some(tables) = item.as_array_of_tables_mut() {
                    for ((slot, o), n) in tables.iter_mut().zip(oa).zip(na) {
                        match (o, n) {
                            (toml::Value::Table(o), toml::Value::Table(n)) => {
                                update_table(file, slot, o, n)?;
                            }
                            _ => return Err(err(file, format!("`{k}` mixes tables and values"))),
                        }
                    }
                }
            }
            (_, _, Some(item)) if item.is_value() && !nv.is_table() => {
                let fresh = toml_item(file, nv)?;
                if let (Some(slot), Some(v)) = (item.as_value_mut(), fresh.as_value()) {
                    let decor = slot.decor().clone();
                    *slot = v.clone();
                    *slot.decor_mut() = decor;
                }
            }
            _ => {
                t.insert(k, toml_item(file, nv)?);
            }
        }
    }
    Ok(())
}

/// A `toml::Value` as a `toml_edit` item (a table stays a table, an array of tables stays one).
fn toml_item(file: &str, v: &toml::Value) -> Result<toml_edit::Item, EditError> {
    let mut wrapper = toml::Table::new();
    wrapper.insert("v".into(), v.clone());
    let text =
        toml::to_string(&wrapper).map_err(|e| err(file, format!("cannot write TOML: {e}")))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| err(file, format!("cannot write TOML: {e}")))?;
    doc.remove("v")
        .ok_or_else(|| err(file, "cannot write TOML: the value vanished"))
}

fn toml_to_json(v: &toml_edit::Value) -> Option<Value> {
    match v {
        toml_edit::Value::String(s) => Some(Value::String(s.value().clone())),
        toml_edit::Value::Integer(i) => Some(Value::from(*i.value())),
        toml_edit::Value::Float(f) => serde_json::Number::from_f64(*f.value()).map(Value::Number),
        toml_edit::Value::Boolean(b) => Some(Value::Bool(*b.value())),
        _ => None,
    }
}

fn json_to_toml(file: &str, v: &Value) -> Result<toml_edit::Value, EditError> {
    Ok(match v {
        Value::String(s) => toml_edit::Value::from(s.as_str()),
        Value::Bool(b) => toml_edit::Value::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml_edit::Value::from(i),
            None => toml_edit::Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => return Err(err(file, format!("cannot write {other} as a TOML scalar"))),
    })
}

fn set_toml(file: &str, text: &str, key: &str, value: &Value) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| err(file, format!("not valid TOML: {e}")))?;
    let mut item = doc.as_item_mut();
    for part in key.split('.') {
        item = item
            .get_mut(part)
            .ok_or_else(|| err(file, format!("no key `{key}`")))?;
    }
    let slot = item
        .as_value_mut()
        .ok_or_else(|| err(file, format!("`{key}` is a table, not a value")))?;
    let decor = slot.decor().clone();
    *slot = json_to_toml(file, value)?;
    *slot.decor_mut() = decor;
    Ok(doc.to_string())
}

/// Byte span of the value at dotted `key` in a JSON text, found by scanning the text (so the
/// rest of the text can be kept exactly).
fn json_value_span(text: &str, key: &str) -> Result<Option<(usize, usize)>, String> {
    let b = text.as_bytes();
    let mut pos = skip_ws(b, 0);
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if b.get(pos) != Some(&b'{') {
            return Ok(None);
        }
        pos += 1;
        let mut found = None;
        loop {
            pos = skip_ws(b, pos);
            match b.get(pos) {
                Some(b'}') => break,
                Some(b',') => {
                    pos += 1;
                    continue;
                }
                Some(b'"') => {}
                _ => return Err(format!("malformed JSON near byte {pos}")),
            }
            let key_end = skip_string(b, pos)?;
            let name: String = serde_json::from_str(&text[pos..key_end])
                .map_err(|e| format!("malformed JSON key near byte {pos}: {e}"))?;
            pos = skip_ws(b, key_end);
            if b.get(pos) != Some(&b':') {
                return Err(format!("expected `:` at byte {pos}"));
            }
            pos = skip_ws(b, pos + 1);
            let value_end = skip_value(b, pos)?;
            if name == *part {
                found = Some((pos, value_end));
                break;
            }
            pos = value_end;
        }
        match found {
            Some(span) if i + 1 == parts.len() => return Ok(Some(span)),
            Some((start, _)) => pos = start,
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && b[pos].is_ascii_whitespace() {
        pos += 1;
    }
    pos
}

fn skip_string(b: &[u8], start: usize) -> Result<usize, String> {
    let mut pos = start + 1;
    while pos < b.len() {
        match b[pos] {
            b'\\' => pos += 2,
            b'"' => return Ok(pos + 1),
            _ => pos += 1,
        }
    }
    Err(format!("unterminated JSON string at byte {start}"))
}

fn skip_value(b: &[u8], start: usize) -> Result<usize, String> {
    match b.get(start) {
        Some(b'"') => skip_string(b, start),
        Some(b'{') | Some(b'[') => {
            let mut depth = 0usize;
            let mut pos = start;
            while pos < b.len() {
                match b[pos] {
                    b'"' => {
                        pos = skip_string(b, pos)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(pos + 1);
                        }
                    }
                    _ => {}
                }
                pos += 1;
            }
            Err(format!("unterminated JSON container at byte {start}"))
        }
        Some(_) => {
            let mut pos = start;
            while pos < b.len()
                && !matches!(b[pos], b',' | b'}' | b']')
                && !b[pos].is_ascii_whitespace()
            {
                pos += 1;
            }
            if pos == start {
                return Err(format!("expected a JSON value at byte {start}"));
            }
            Ok(pos)
        }
        None => Err("unexpected end of JSON".into()),
    }
}

/// Where a YAML scalar sits: the byte span of its value text, without a trailing comment.
struct YamlScalar {
    value: String,
    value_start: usize,
    value_end: usize,
}

/// Find `key` (dotted) among block mappings: each part is a `name:` line indented deeper than
/// its parent's, inside the parent's block.
fn yaml_scalar_line(text: &str, key: &str) -> Result<Option<YamlScalar>, String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut depth = 0usize;
    let mut parent_indent: Option<usize> = None;
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
            continue;
        }
        let indent = body.len() - trimmed.len();
        if let Some(p) = parent_indent
            && indent <= p
        {
            // left the parent's block without finding the key
            return Ok(None);
        }
        let Some((name, rest)) = trimmed.split_once(':') else {
            continue;
        };
        let name = name.trim().trim_matches(|c| c == '"' || c == '\'');
        if name != parts[depth] {
            continue;
        }
        let rest_start = start + indent + name.len() + 1;
        let value_text = strip_yaml_comment(rest);
        let lead = value_text.len() - value_text.trim_start().len();
        let value = value_text.trim();
        if depth + 1 == parts.len() {
            if value.is_empty() {
                return Err(format!("`{key}` is a mapping, not a value"));
            }
            if value.starts_with(['[', '{', '&', '*', '|', '>']) {
                return Err(format!(
                    "`{key}`: flow collections, anchors and block scalars are not edited; use a plain scalar"
                ));
            }
            let value_start = rest_start + lead;
            return Ok(Some(YamlScalar {
                value: value.to_string(),
                value_start,
                value_end: value_start + value.len(),
            }));
        }
        if !value.is_empty() {
            return Ok(None);
        }
        depth += 1;
        parent_indent = Some(indent);
    }
    Ok(None)
}

/// The part of a YAML line's value before a comment (a `#` after a space, outside quotes).
fn strip_yaml_comment(rest: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in rest.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return &rest[..i],
            None => {}
        }
        prev = c;
    }
    rest
}

/// A plain or quoted YAML scalar as JSON: numbers, booleans, strings.
fn yaml_scalar(s: &str) -> Value {
    if let Some(q) = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
    {
        return Value::String(q.to_string());
    }
    match s {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = s.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toml_values_change_and_comments_stay() {
        let text = "# model settings\n[model]\nfactors = 8   # latent size\nreg = 0.1\n\n[other]\nx = \"a\"\n";
        assert_eq!(
            read_value("c.toml", text, "model.factors").unwrap(),
            Some(json!(8))
        );
        let new = set_value("c.toml", text, "model.factors", &json!(32)).unwrap();
        assert_eq!(new, text.replace("factors = 8 ", "factors = 32 "));
        let new = set_value("c.toml", &new, "model.reg", &json!(0.25)).unwrap();
        assert!(
            new.contains("reg = 0.25\n") && new.contains("# latent size"),
            "{new}"
        );
        assert!(set_value("c.toml", text, "model.missing", &json!(1)).is_err());
        assert_eq!(read_value("c.toml", text, "model.missing").unwrap(), None);
    }

    #[test]
    fn a_whole_document_update_rewrites_only_what_changed() {
        let text = "# The production pipeline.\n[[models]]\nname = \"pop\"   # the baseline\nkind = \"mostpop\"\nweight = 1.0\n\n[rerank]\n# diversity\nmmr_lambda = 0.0\ngenre_cap = 0\n";
        let mut new: toml::Table = toml::from_str(text).unwrap();
        new["rerank"]
            .as_table_mut()
            .unwrap()
            .insert("mmr_lambda".into(), toml::Value::Float(0.2));
        let m = new["models"].as_array_mut().unwrap()[0]
            .as_table_mut()
            .unwrap();
        m.insert("kind".into(), toml::Value::String("ease".into()));
        let mut params = toml::Table::new();
        params.insert("lambda".into(), toml::Value::Float(200.0));
        m.insert("params".into(), toml::Value::Table(params));
        let out = update_toml("pipeline.toml", text, &new).unwrap();
        assert!(out.starts_with("# The production pipeline.\n[[models]]\nname = \"pop\"   # the baseline\nkind = \"ease\"\n"), "{out}");
        assert!(
            out.contains("# diversity\nmmr_lambda = 0.2\ngenre_cap = 0\n"),
            "{out}"
        );
        let back: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(back, new);
        // nothing changed: byte for byte the same
        let same: toml::Table = toml::from_str(text).unwrap();
        assert_eq!(update_toml("p.toml", text, &same).unwrap(), text);
    }

    #[test]
    fn json_values_change_in_place() {
        let text = "{\n  \"factors\": 4,\n  \"nested\": {\"reg\": 1.0, \"name\": \"a,b}\"},\n  \"blend\": 0.5\n}\n";
        assert_eq!(
            read_value("p.json", text, "nested.reg").unwrap(),
            Some(json!(1.0))
        );
        let new = set_value("p.json", text, "nested.reg", &json!(0.03)).unwrap();
        assert_eq!(new, text.replace("\"reg\": 1.0", "\"reg\": 0.03"));
        let new = set_value("p.json", &new, "blend", &json!(0.1)).unwrap();
        assert!(new.ends_with("\"blend\": 0.1\n}\n"), "{new}");
        let new = set_value("p.json", &new, "nested.name", &json!("x")).unwrap();
        assert!(new.contains("\"name\": \"x\"}"), "{new}");
        assert!(set_value("p.json", text, "nope", &json!(1)).is_err());
    }

    #[test]
    fn yaml_scalars_change_and_comments_stay() {
        let text = "# training\nmodel:\n  factors: 8  # size\n  solver: \"als\"\nother:\n  factors: 99\nlr: 0.01\n";
        assert_eq!(
            read_value("c.yaml", text, "model.factors").unwrap(),
            Some(json!(8))
        );
        assert_eq!(
            read_value("c.yml", text, "model.solver").unwrap(),
            Some(json!("als"))
        );
        let new = set_value("c.yaml", text, "model.factors", &json!(16)).unwrap();
        assert_eq!(
            new,
            text.replace("factors: 8  # size", "factors: 16  # size")
        );
        let new = set_value("c.yaml", &new, "lr", &json!(0.05)).unwrap();
        assert!(
            new.ends_with("lr: 0.05\n") && new.contains("factors: 99"),
            "{new}"
        );
        let new = set_value("c.yaml", &new, "model.solver", &json!("sgd")).unwrap();
        assert!(new.contains("solver: \"sgd\""), "{new}");
        assert_eq!(read_value("c.yaml", text, "model.lr").unwrap(), None);
        let flow = "model: {factors: 8}\n";
        assert!(
            read_value("c.yaml", flow, "model.factors")
                .unwrap()
                .is_none()
        );
        assert!(set_value("c.ini", "", "a", &json!(1)).is_err());
    }
}
