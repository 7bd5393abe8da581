//! `recloop llm ...`: fetch a local model, ping a provider, chat.

use anyhow::Context;
use clap::{Args, Subcommand};
use recloop_llm::{ChatModel, ChatRequest, LlmRouter, LlmSettings, SettingsOverrides, StreamEvent};
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
    /// Provider: openai | anthropic | openai-compatible | local | scripted | replay.
    #[arg(long)]
    provider: Option<String>,
    /// Model name (a GGUF path for `local`).
    #[arg(long)]
    model: Option<String>,
    /// Base URL of an OpenAI-compatible server (or a proxy for the provider).
    #[arg(long)]
    base_url: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long)]
    api_key_env: Option<String>,
    /// Use the model chain of this agent role.
    #[arg(long, default_value = "cli")]
    role: String,
}

impl Target {
    fn model(&self) -> anyhow::Result<(LlmRouter, recloop_llm::SharedModel)> {
        let overrides = SettingsOverrides {
            provider: self.provider.clone(),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            api_key_env: self.api_key_env.clone(),
        };
        let settings = LlmSettings::resolve(self.workspace.as_deref(), &overrides)?;
        let router = LlmRouter::new(settings);
        let model = router.for_role(&self.role)?;
        Ok((router, model))
    }
}

/// Execute a `recloop llm` subcommand.
pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ping { target, json } => {
            let (router, model) = target.model()?;
            let report = recloop_llm::ping(&*model)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("model     {}", report.model);
                println!("latency   {:.0} ms", report.latency.as_secs_f64() * 1000.0);
                println!(
                    "tokens    {} in / {} out",
                    report.usage.input_tokens, report.usage.output_tokens
                );
                if report.priced {
                    println!(
                        "cost      ${:.6} (prices {})",
                        report.usd, report.prices_version
                    );
                } else {
                    println!("cost      unknown model price (counted as $0)");
                }
                println!("answer    {}", report.answer);
                if report.repaired {
                    println!("note      the first answer was invalid JSON and was repaired");
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
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the prompt from stdin")?;
                    line.trim_end().to_string()
                }
            };
            anyhow::ensure!(!prompt.trim().is_empty(), "empty prompt");
            let (router, model) = target.model()?;
            let req = ChatRequest::simple(system.as_deref(), &prompt).with_max_tokens(max_tokens);
            let mut out = std::io::stdout().lock();
            let response = model.chat_stream(&req, &mut |e| {
                if let StreamEvent::TextDelta { text } = e {
                    let _ = out.write_all(text.as_bytes());
                    let _ = out.flush();
                }
            })?;
            drop(out);
            println!();
            for call in response.tool_calls() {
                println!("[tool call {} {}]", call.name, call.arguments);
            }
            let spent = router.ledger().report();
            eprintln!(
                "[{} · {} in / {} out tokens · ${:.6}]",
                model.name(),
                response.usage.input_tokens,
                response.usage.output_tokens,
                spent.run.usd
            );
            Ok(())
        }
        Command::Fetch { name } => {
            let path = recloop_llm::fetch_model(&name)?;
            println!("{}", path.display());
            Ok(())
        }
    }
}
