//! Local GGUF models through llama.cpp (`llama-cpp-2`, cargo feature `local`).
//!
//! The prompt is built with the chat template stored in the GGUF file (ChatML when it has
//! none). Structured output is grammar-constrained: the JSON Schema is converted to a GBNF
//! grammar (llama.cpp's converter) and sampling can only produce text the grammar accepts, so even
//! a 135M-parameter model returns schema-shaped JSON. Tool calls are constrained the same way:
//! the answer must be `{"tool": <name>, "arguments": {...}}` for one of the offered tools or
//! `{"answer": "..."}`.
//!
//! Threads: up to 8 (the available parallelism). On a machine busy with other work, set
//! `OMP_WAIT_POLICY=PASSIVE` so llama.cpp's OpenMP workers sleep instead of spinning while they
//! wait: with 2 cores shared by several builds, SmolLM2-135M decoded 0.7 tokens/s spinning and
//! 12.5 tokens/s passive (grammar-constrained).

use crate::error::{LlmError, Result};
use crate::model::ChatModel;
use crate::types::{ChatRequest, ChatResponse, Message, Role, StopReason, ToolCall, Usage};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut b = LlamaBackend::init().map_err(|e| e.to_string())?;
            b.void_logs();
            Ok(b)
        })
        .as_ref()
        .map_err(|e| LlmError::Local(format!("cannot initialise llama.cpp: {e}")))
}

fn local_err(what: &str, e: impl std::fmt::Display) -> LlmError {
    LlmError::Local(format!("{what}: {e}"))
}

/// Statistics of the last generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LocalStats {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub generated_tokens: usize,
    /// Generated tokens per second (decode only).
    pub tokens_per_second: f64,
}

/// Largest context a local model is given, in tokens (its KV cache grows with it).
const MAX_CONTEXT: u32 = 16_384;

/// A GGUF model run in-process.
pub struct LocalModel {
    name: String,
    model: LlamaModel,
    temperature: Option<f64>,
    n_ctx: u32,
    threads: i32,
    lock: Mutex<LocalStats>,
}

impl LocalModel {
    /// Load the GGUF file at `path`.
    pub fn load(path: &Path, temperature: Option<f64>) -> Result<LocalModel> {
        if !path.is_file() {
            return Err(LlmError::Config {
                field: "llm.model".into(),
                reason: format!(
                    "GGUF file {} not found (get one with `recloop llm fetch smollm2`)",
                    path.display()
                ),
            });
        }
        let model = LlamaModel::load_from_file(backend()?, path, &LlamaModelParams::default())
            .map_err(|e| local_err(&format!("loading {}", path.display()), e))?;
        // the context the model was trained for (SmolLM2: 8,192 tokens), capped for memory
        let n_ctx = model.n_ctx_train().clamp(512, MAX_CONTEXT);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get().min(8) as i32)
            .unwrap_or(2);
        Ok(LocalModel {
            name: format!(
                "local:{}",
                path.file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default()
            ),
            model,
            temperature,
            n_ctx,
            threads,
            lock: Mutex::new(LocalStats::default()),
        })
    }

    /// Statistics of the last call.
    pub fn last_stats(&self) -> LocalStats {
        self.lock.lock().map(|s| *s).unwrap_or_default()
    }

    fn prompt(&self, messages: &[Message], extra_system: Option<String>) -> Result<String> {
        let template = match self.model.chat_template(None) {
            Ok(t) => t,
            Err(_) => {
                LlamaChatTemplate::new("chatml").map_err(|e| local_err("chat template", e))?
            }
        };
        let mut chat = Vec::new();
        let mut system: Vec<String> = messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.clone())
            .collect();
        if let Some(x) = extra_system {
            system.push(x);
        }
        if !system.is_empty() {
            chat.push(
                LlamaChatMessage::new("system".into(), system.join("\n\n"))
                    .map_err(|e| local_err("message", e))?,
            );
        }
        for m in messages {
            let (role, content) = match m.role {
                Role::System => continue,
                Role::User => ("user", m.content.clone()),
                Role::Assistant if m.tool_calls.is_empty() => ("assistant", m.content.clone()),
                Role::Assistant => {
                    let calls: Vec<Value> = m
                        .tool_calls
                        .iter()
                        .map(|c| json!({"tool": c.name, "arguments": c.arguments}))
                        .collect();
                    ("assistant", Value::Array(calls).to_string())
                }
                Role::Tool => (
                    "user",
                    format!(
                        "Result of tool call {}{}: {}",
                        m.tool_call_id.as_deref().unwrap_or(""),
                        if m.is_error { " (error)" } else { "" },
                        m.content
                    ),
                ),
            };
            chat.push(
                LlamaChatMessage::new(role.into(), content).map_err(|e| local_err("message", e))?,
            );
        }
        self.model
            .apply_chat_template(&template, &chat, true)
            .map_err(|e| local_err("applying the chat template", e))
    }

    /// Generate up to `max_tokens` tokens for `prompt`, constrained by `grammar` if given.
    fn generate(
        &self,
        prompt: &str,
        grammar: Option<&str>,
        max_tokens: u32,
        temperature: f64,
        seed: u32,
    ) -> Result<(String, Usage, StopReason)> {
        let mut stats = self
            .lock
            .lock()
            .map_err(|_| LlmError::Local("local model lock poisoned".into()))?;
        let vocab = self.model.vocab();
        let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        if tokens.is_empty() {
            return Err(LlmError::Local("empty prompt".into()));
        }
        let needed = tokens.len() as u32 + max_tokens + 8;
        if needed > self.n_ctx {
            return Err(LlmError::BadRequest {
                provider: "local".into(),
                status: 400,
                message: format!(
                    "prompt ({} tokens) + max_tokens ({max_tokens}) exceed the context of {} tokens",
                    tokens.len(),
                    self.n_ctx
                ),
            });
        }
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(needed.max(512)))
            .with_n_batch(needed.max(512))
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self
            .model
            .new_context(backend()?, params)
            .map_err(|e| local_err("creating a context", e))?;
        let mut batch = LlamaBatch::new(tokens.len().max(512), 1);
        let last = tokens.len() as i32 - 1;
        for (i, t) in tokens.iter().enumerate() {
            batch
                .add(*t, i as i32, &[0], i as i32 == last)
                .map_err(|e| local_err("batch", e))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| local_err("decoding the prompt", e))?;
        let mut samplers = Vec::new();
        if let Some(g) = grammar {
            samplers.push(
                LlamaSampler::grammar(&self.model, g, "root")
                    .map_err(|e| local_err("grammar", e))?,
            );
        }
        if temperature > 0.0 {
            samplers.push(LlamaSampler::temp(temperature as f32));
            samplers.push(LlamaSampler::dist(seed));
        } else {
            samplers.push(LlamaSampler::greedy());
        }
        let mut sampler = LlamaSampler::chain_simple(samplers);
        let mut out = Vec::new();
        let mut pos = tokens.len() as i32;
        let mut generated = 0u32;
        let mut stop = StopReason::MaxTokens;
        let started = Instant::now();
        while generated < max_tokens {
            // `sample` also accepts the token into the sampler chain (grammar state included).
            let token = sampler.sample(&ctx, batch.n_tokens() - 1);
            generated += 1;
            if vocab.is_eog(token) {
                stop = StopReason::EndTurn;
                break;
            }
            out.extend(vocab.token_to_piece(token, false, None));
            batch.clear();
            batch
                .add(token, pos, &[0], true)
                .map_err(|e| local_err("batch", e))?;
            pos += 1;
            ctx.decode(&mut batch)
                .map_err(|e| local_err("decoding", e))?;
        }
        let secs = started.elapsed().as_secs_f64();
        *stats = LocalStats {
            prompt_tokens: tokens.len(),
            generated_tokens: generated as usize,
            tokens_per_second: if secs > 0.0 {
                generated as f64 / secs
            } else {
                0.0
            },
        };
        Ok((
            String::from_utf8_lossy(&out).into_owned(),
            Usage {
                input_tokens: tokens.len() as u64,
                output_tokens: u64::from(generated),
            },
            stop,
        ))
    }
}

/// The schema of a tool-or-answer turn for `request`'s tools.
fn tool_turn_schema(request: &ChatRequest) -> Value {
    let mut options: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            json!({"type": "object",
                   "properties": {"tool": {"const": t.name}, "arguments": t.parameters},
                   "required": ["tool", "arguments"]})
        })
        .collect();
    options.push(
        json!({"type": "object", "properties": {"answer": {"type": "string"}},
                        "required": ["answer"]}),
    );
    json!({"anyOf": options})
}

impl ChatModel for LocalModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let temperature = request.temperature.or(self.temperature).unwrap_or(0.0);
        let seed = request.seed.unwrap_or(0) as u32;
        let max_tokens = request.max_tokens_or_default();
        let use_tools = !request.tools.is_empty() && request.response_format.is_none();
        let (schema, extra) = match (&request.response_format, use_tools) {
            (Some(f), _) => (
                Some(f.schema.clone()),
                Some(format!(
                    "Answer only with JSON matching this schema: {}",
                    f.schema
                )),
            ),
            (None, true) => {
                let list: Vec<String> = request
                    .tools
                    .iter()
                    .map(|t| format!("- {}: {} arguments {}", t.name, t.description, t.parameters))
                    .collect();
                (
                    Some(tool_turn_schema(request)),
                    Some(format!(
                        "You can call tools by answering {{\"tool\": NAME, \"arguments\": {{...}}}}, \
                         or finish with {{\"answer\": TEXT}}. Tools:\n{}",
                        list.join("\n")
                    )),
                )
            }
            (None, false) => (None, None),
        };
        let grammar = match &schema {
            Some(s) => Some(
                llama_cpp_2::json_schema_to_grammar(&s.to_string())
                    .map_err(|e| local_err("JSON Schema to grammar", e))?,
            ),
            None => None,
        };
        let prompt = self.prompt(&request.messages, extra)?;
        let (text, usage, mut stop) =
            self.generate(&prompt, grammar.as_deref(), max_tokens, temperature, seed)?;
        let mut message = Message::assistant(text.trim().to_string());
        if use_tools && let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
            if let (Some(name), Some(args)) =
                (v.get("tool").and_then(Value::as_str), v.get("arguments"))
            {
                let n = self.last_stats().generated_tokens;
                message = Message::assistant_with_tools(
                    "",
                    vec![ToolCall {
                        id: format!("local_{n}_{}", usage.total()),
                        name: name.to_string(),
                        arguments: args.clone(),
                    }],
                );
                stop = StopReason::ToolUse;
            } else if let Some(a) = v.get("answer").and_then(Value::as_str) {
                message = Message::assistant(a);
            }
        }
        Ok(ChatResponse {
            model: self.name.clone(),
            message,
            usage,
            stop_reason: stop,
        })
    }
}
