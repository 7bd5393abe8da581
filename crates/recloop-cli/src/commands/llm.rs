//! `recloop llm ...`: fetch a local model, ping a provider, chat.

use crate::choices::ProviderArg;
use anyhow::Context;
use clap::{Args, Subcommand};
use recloop_llm::{
    ChatModel, ChatRequest, LlmMode, LlmRouter, LlmSettings, SettingsOverrides, StreamEvent,
};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Subcommands of `recloop llm`.
#[derive(Subcommand)]
pub enum Command {
    /// One short structured call: prints latency, tokens and cost.
    Ping {
        #[command(flatten)]
        target: Target,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a prompt line from stdin (or --prompt) and print the answer as it streams.
    Chat {
        #[command(flatten)]
        target: Target,
        /// The prompt (default: one line from stdin).
        #[arg(long)]
        prompt: Option<String>,
        /// A system prompt.
        #[arg(long)]
        system: Option<String>,
        /// Output-token limit.
        #[arg(long, default_value_t = 512)]
        max_tokens: u32,
    },
    /// Obtain a local model's weights (verified by sha256), e.g. `smollm2`.
    Fetch {
        /// Model name (`smollm2`).
        name: String,
    },
}

/// Which model to talk to.
#[derive(Args)]
pub struct Target {
    /// Workspace whose `recloop.toml` `[llm]` section configures the model.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Provider (default: the workspace's `[llm] provider`).
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Model name (a GGUF path for `local`, a turns file for `scripted`).
    #[arg(long)]
    model: Option<String>,
    /// Base URL of an OpenAI-compatible server (or a proxy for the provider).
    #[arg(long)]
    base_url: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long)]
    api_key_env: Option<String>,
    /// live | record | replay (default: `RECLOOP_LLM`, else live).
    #[arg(long)]
    mode: Option<String>,
    /// Cassette directory for record/replay.
    #[arg(long)]
    cassettes: Option<PathBuf>,
    /// Use the model chain of this agent role.
    #[arg(long, default_value = "cli")]
    role: String,
}

impl Target {
    fn model(&self) -> anyhow::Result<(LlmRouter, recloop_llm::SharedModel)> {
        let mode = match &self.mode {
            Some(m) => Some(LlmMode::parse(m).context("--mode")?),
            None => None,
        };
        let overrides = SettingsOverrides {
            provider: self.provider.map(|p| p.as_str().to_string()),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            api_key_env: self.api_key_env.clone(),
            mode,
            cassettes: self.cassettes.clone(),
        };
        let settings = LlmSettings::resolve(self.workspace.as_deref(), &overrides)?;
        let router = LlmRouter::new(settings);
        let model = router.for_role(&self.role)?;
        Ok((router, model))
    }
}

/// Execute a `recloop llm` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    run_with(cmd, &mut input, &mut out, &mut err)
}

/// Execute a `recloop llm` subcommand with explicit streams (tests).
fn run_with(
    cmd: Command,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    match cmd {
        Command::Ping { target, json } => {
            let (router, model) = target.model()?;
            let report = recloop_llm::ping(&*model)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                writeln!(out, "model     {}", report.model)?;
                writeln!(
                    out,
                    "latency   {:.0} ms",
                    report.latency.as_secs_f64() * 1000.0
                )?;
                writeln!(
                    out,
                    "tokens    {} in / {} out",
                    report.usage.input_tokens, report.usage.output_tokens
                )?;
                if report.priced {
                    writeln!(
                        out,
                        "cost      ${:.6} (prices {})",
                        report.usd, report.prices_version
                    )?;
                } else {
                    writeln!(out, "cost      unknown model price (counted as $0)")?;
                }
                writeln!(out, "answer    {}", report.answer)?;
                if report.repaired {
                    writeln!(
                        out,
                        "note      the first answer was invalid JSON and was repaired"
                    )?;
                }
            }
            let spent = router.ledger().report();
            tracing::debug!(?spent, "spend");
            Ok(())
        }
        Command::Chat {
            target,
            prompt,
            system,
            max_tokens,
        } => {
            let prompt = match prompt {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    input
                        .read_line(&mut line)
                        .context("reading the prompt from stdin")?;
                    line.trim_end().to_string()
                }
            };
            anyhow::ensure!(!prompt.trim().is_empty(), "empty prompt");
            let (router, model) = target.model()?;
            let req = ChatRequest::simple(system.as_deref(), &prompt).with_max_tokens(max_tokens);
            let mut write_error = None;
            let response = model.chat_stream(&req, &mut |e| {
                if let StreamEvent::TextDelta { text } = e
                    && write_error.is_none()
                    && let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
                {
                    write_error = Some(e);
                }
            })?;
            if let Some(e) = write_error {
                return Err(e).context("writing the answer");
            }
            writeln!(out)?;
            for call in response.tool_calls() {
                writeln!(out, "[tool call {} {}]", call.name, call.arguments)?;
            }
            let spent = router.ledger().report();
            writeln!(
                err,
                "[{} · {} in / {} out tokens · ${:.6}]",
                model.name(),
                response.usage.input_tokens,
                response.usage.output_tokens,
                spent.run.usd
            )?;
            Ok(())
        }
        Command::Fetch { name } => {
            let path = recloop_llm::fetch_model(&name)?;
            writeln!(out, "{}", path.display())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    //! `ping` and `chat` against a minimal mock of the OpenAI wire format (a plain TCP server:
    //! the CLI has no async test dependencies), recorded to cassettes and replayed offline.

    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// Serve canned answers over HTTP/1.1; `answer(body)` gives (content type, body) for each
    /// request body. Returns the base URL and the received bodies.
    fn serve(
        answer: impl Fn(&str) -> (&'static str, String) + Send + 'static,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { break };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (None, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (Some(i + 4), length);
                    }
                };
                let Some(start) = head_end else { continue };
                while buf.len() < start + length {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[start..]).to_string();
                log.lock().unwrap().push(body.clone());
                let (ctype, reply) = answer(&body);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(reply.as_bytes());
            }
        });
        (url, seen)
    }

    fn completion(text: &str) -> String {
        serde_json::json!({"id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 9}})
        .to_string()
    }

    fn stream(parts: &[&str]) -> String {
        let mut body = String::new();
        for (i, p) in parts.iter().enumerate() {
            let finish = if i + 1 == parts.len() {
                serde_json::json!("stop")
            } else {
                serde_json::Value::Null
            };
            let chunk = serde_json::json!({"object": "chat.completion.chunk", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": finish}]});
            body.push_str(&format!("data: {chunk}\n\n"));
        }
        let usage = serde_json::json!({"object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5}});
        body.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
        body
    }

    fn target(base_url: &str, mode: &str, cassettes: &std::path::Path) -> Target {
        Target {
            workspace: None,
            provider: Some(ProviderArg::OpenaiCompatible),
            model: Some("gpt-4o-mini".into()),
            base_url: Some(base_url.into()),
            api_key_env: None,
            mode: Some(mode.into()),
            cassettes: Some(cassettes.to_path_buf()),
            role: "cli".into(),
        }
    }

    fn run_text(cmd: Command, stdin: &str) -> anyhow::Result<(String, String)> {
        let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run_with(cmd, &mut input, &mut out, &mut err)?;
        Ok((
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        ))
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "recloop-cli-llm-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn ping_and_chat_against_a_mock_server_then_from_cassettes() {
        let (url, seen) = serve(|body| {
            if body.contains("\"stream\":true") {
                ("text/event-stream", stream(&["Hello", ", ", "recloop"]))
            } else {
                (
                    "application/json",
                    completion(r#"{"ok": true, "echo": "pong"}"#),
                )
            }
        });
        let tapes = scratch("tapes");

        // Live through the mock, recording.
        let (out, _) = run_text(
            Command::Ping {
                target: target(&url, "record", &tapes),
                json: false,
            },
            "",
        )
        .unwrap();
        assert!(
            out.contains("model     openai-compatible:gpt-4o-mini"),
            "{out}"
        );
        assert!(out.contains("tokens    40 in / 9 out"), "{out}");
        assert!(out.contains("cost      $0.000011"), "{out}");
        assert!(
            out.contains("answer    {") && out.contains(r#""echo":"pong""#),
            "{out}"
        );
        assert!(out.contains("latency"), "{out}");

        let (out, err) = run_text(
            Command::Chat {
                target: target(&url, "record", &tapes),
                prompt: None,
                system: Some("Be brief.".into()),
                max_tokens: 64,
            },
            "Say hello\n",
        )
        .unwrap();
        assert_eq!(out, "Hello, recloop\n");
        assert!(err.contains("12 in / 5 out tokens"), "{err}");
        let bodies = seen.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        assert!(bodies[1].contains("Say hello") && bodies[1].contains("Be brief."));

        // Replay: the same commands with no server behind the URL.
        let dead = "http://127.0.0.1:9/v1";
        let (out, _) = run_text(
            Command::Ping {
                target: target(dead, "replay", &tapes),
                json: true,
            },
            "",
        )
        .unwrap();
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["answer"]["echo"], "pong");
        assert_eq!(report["usage"]["input_tokens"], 40);
        let (out, _) = run_text(
            Command::Chat {
                target: target(dead, "replay", &tapes),
                prompt: Some("Say hello".into()),
                system: Some("Be brief.".into()),
                max_tokens: 64,
            },
            "",
        )
        .unwrap();
        assert_eq!(out, "Hello, recloop\n");
        assert_eq!(seen.lock().unwrap().len(), 2, "replay made no request");

        // An unrecorded request fails in replay, saying how to record it.
        let e = run_text(
            Command::Chat {
                target: target(dead, "replay", &tapes),
                prompt: Some("Something new".into()),
                system: None,
                max_tokens: 64,
            },
            "",
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("no cassette") && msg.contains("RECLOOP_LLM=record"),
            "{msg}"
        );
        let _ = std::fs::remove_dir_all(&tapes);
    }

    #[test]
    fn scripted_provider_and_clear_errors() {
        let dir = scratch("scripted");
        let turns = dir.join("turns.json");
        std::fs::write(
            &turns,
            r#"[{"type": "json", "value": {"ok": true, "echo": "pong"}}, {"type": "text", "text": "hi there"}]"#,
        )
        .unwrap();
        let t = |provider: ProviderArg, model: &str| Target {
            workspace: None,
            provider: Some(provider),
            model: Some(model.into()),
            base_url: None,
            api_key_env: None,
            mode: None,
            cassettes: None,
            role: "cli".into(),
        };
        let path = turns.display().to_string();
        let (out, _) = run_text(
            Command::Ping {
                target: t(ProviderArg::Scripted, &path),
                json: false,
            },
            "",
        )
        .unwrap();
        assert!(out.contains(r#""echo":"pong""#), "{out}");

        let e = run_text(
            Command::Chat {
                target: t(ProviderArg::OpenaiCompatible, "m"),
                prompt: Some("x".into()),
                system: None,
                max_tokens: 8,
            },
            "",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("base_url"), "{e:#}");
        let e = run_text(
            Command::Chat {
                target: t(ProviderArg::Scripted, &path),
                prompt: None,
                system: None,
                max_tokens: 8,
            },
            "\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("empty prompt"), "{e}");
        let mut bad = t(ProviderArg::Scripted, &path);
        bad.mode = Some("tape".into());
        let e = run_text(
            Command::Ping {
                target: bad,
                json: false,
            },
            "",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("--mode"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
