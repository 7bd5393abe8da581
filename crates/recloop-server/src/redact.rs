//! Nothing secret leaves the server: every string shown or returned passes through [`value`] or
//! [`text`], which mask values under secret-looking keys, `KEY=VALUE` pairs whose key looks
//! secret, passwords in URLs, bearer tokens and well-known API-key shapes.

use regex::Regex;
use std::sync::LazyLock;

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

/// Key names whose values are secret (matched case-insensitively as substrings).
const SECRET_WORDS: &[&str] = &[
    "api_key",
    "apikey",
    "api-key",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "private_key",
    "authorization",
    "access_key",
];

/// Whether a key (JSON field, environment variable) names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    // token counts in the usage sense are numbers, not secrets
    if k.starts_with("tokens_") || k.ends_with("_tokens") || k == "tokens" {
        return false;
    }
    SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// `KEY=VALUE` / `KEY: VALUE` pairs; masked when [`is_secret_key`] says the key is secret.
static PAIR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"\b([A-Za-z][A-Za-z0-9_\-]*)("?\s*[=:]\s*)("?)([^\s"',;]+)"#).ok()
});

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let raw: &[(&str, &str)] = &[
        // user:password@ in URLs
        (
            r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]+):[^@/\s]+@",
            "${1}:[redacted]@",
        ),
        // bearer tokens
        (
            r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]{8,}",
            "Bearer [redacted]",
        ),
        // well-known key shapes: OpenAI/Anthropic sk-..., GitHub, Slack, AWS access keys, Google
        (r"\bsk-[A-Za-z0-9_\-]{16,}", "[redacted]"),
        (r"\bgh[pousr]_[A-Za-z0-9]{20,}", "[redacted]"),
        (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", "[redacted]"),
        (r"\bAKIA[0-9A-Z]{16}\b", "[redacted]"),
        (r"\bAIza[0-9A-Za-z_\-]{30,}", "[redacted]"),
    ];
    raw.iter()
        .filter_map(|(p, r)| Regex::new(p).ok().map(|re| (re, *r)))
        .collect()
});

/// `s` with every secret-looking part masked.
pub fn text(s: &str) -> String {
    let mut out = std::borrow::Cow::Borrowed(s);
    for (re, rep) in PATTERNS.iter() {
        if re.is_match(&out) {
            out = std::borrow::Cow::Owned(re.replace_all(&out, *rep).into_owned());
        }
    }
    if let Some(pair) = PAIR.as_ref() {
        let masked = pair.replace_all(&out, |c: &regex::Captures| {
            if is_secret_key(&c[1]) {
                format!("{}{}{}{MASK}", &c[1], &c[2], &c[3])
            } else {
                c[0].to_string()
            }
        });
        if let std::borrow::Cow::Owned(o) = masked {
            out = std::borrow::Cow::Owned(o);
        }
    }
    out.into_owned()
}

/// Mask secrets in a JSON value in place: values under secret-looking keys entirely, every
/// other string by [`text`].
pub fn value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            let masked = text(s);
            if masked != *s {
                *s = masked;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(value),
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if is_secret_key(k) && !x.is_null() && !x.is_number() && !x.is_boolean() {
                    *x = serde_json::Value::String(MASK.into());
                } else {
                    value(x);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys_urls_and_key_shapes() {
        let t = text(
            "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuv and postgres://bob:hunter2@db/x \
             Authorization: Bearer abcdefghijk ghp_abcdefghijklmnopqrstuvwxyz012345",
        );
        assert!(!t.contains("sk-abc"), "{t}");
        assert!(!t.contains("hunter2"), "{t}");
        assert!(!t.contains("abcdefghijk "), "{t}");
        assert!(!t.contains("ghp_"), "{t}");
        assert!(t.contains("OPENAI_API_KEY=[redacted]"), "{t}");
        let mut v = serde_json::json!({"llm": {"api_key": "x", "tokens_in": 5, "model": "m"},
                                       "env": ["HF_TOKEN=abc123"]});
        value(&mut v);
        assert_eq!(v["llm"]["api_key"], MASK);
        assert_eq!(v["llm"]["tokens_in"], 5);
        assert_eq!(v["llm"]["model"], "m");
        assert_eq!(v["env"][0], "HF_TOKEN=[redacted]");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let s = "ndcg@10 rose by 0.004 (tokens_in: 900); see p-0003-02 at http://x:8080/a";
        assert_eq!(text(s), s);
    }
}
