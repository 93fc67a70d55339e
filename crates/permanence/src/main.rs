//! `permanence`: the binary. It only wires the crates together.

mod admin;
mod report;

/// mimalloc, counted, giving memory back when threads go idle
/// (`permanence_memory`); the C library's malloc with the
/// `system-allocator` feature, for heap profilers.
#[global_allocator]
static GLOBAL: permanence_memory::EngineAllocator = permanence_memory::engine_allocator();

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// SIP call-routing engine for medical telesecretariats.
#[derive(Parser)]
#[command(name = "permanence", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Run {
        /// Main configuration file.
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
        /// Log format on standard output.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Milliseconds of ringing (180) before a forwarded call is answered.
        #[arg(long, default_value_t = 0)]
        answer_delay_ms: u64,
        /// Seconds without RTP from a caller before the call is ended.
        #[arg(long, default_value_t = 60)]
        rtp_timeout_s: u64,
    },
    /// Validate the configuration and dialplans, print every error as
    /// `file:line: field: message`, exit non-zero if any.
    CheckConfig {
        /// Main configuration file.
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
    },
    /// Run the real dispatcher on virtual time through a discrete-event
    /// simulation and print a JSON summary (pickup rate, ASA, service
    /// level, occupancy, and the Erlang-A prediction for single-pool
    /// scenarios).
    Simulate {
        /// Scenario file (see benches/scenarios/).
        #[arg(long)]
        scenario: PathBuf,
        /// Override the scenario's random seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print the practice queues of the running engine (admin API).
    Queues {
        /// Main configuration file (for the HTTP address and admin token).
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
    },
    /// Print the telesecretaries and their state (admin API).
    Agents {
        /// Main configuration file.
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
    },
    /// Print the calls in progress (admin API).
    Calls {
        /// Main configuration file.
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
    },
    /// Print the latest entries of the audit log (admin API, admin role):
    /// who did what, when, from where.
    Audit {
        /// Main configuration file.
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
        /// How many entries, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print the callback requests (admin API): the open ones in place
    /// order, then the latest closed ones; or cancel one, or mark it
    /// handled (supervisor role).
    Callbacks {
        /// Main configuration file.
        #[arg(long, global = true, default_value = "config/permanence.toml")]
        config: PathBuf,
        /// Only this practice's requests (the list only).
        #[arg(long)]
        practice: Option<String>,
        #[command(subcommand)]
        action: Option<CallbackCommand>,
    },
    /// Make a practice's monthly or weekly report (calls offered, answered,
    /// abandoned by phase, waits, service level, callbacks, voicemail,
    /// hours, outbound calls, minutes) from the call records database,
    /// read directly: works with the engine running or stopped.
    Report {
        /// Main configuration file (records path, practices).
        #[arg(long, default_value = "config/permanence.toml")]
        config: PathBuf,
        /// The practice id.
        #[arg(long)]
        practice: String,
        /// A calendar month, `YYYY-MM`, in the practice's time zone.
        #[arg(long, conflicts_with = "week", required_unless_present = "week")]
        month: Option<String>,
        /// An ISO week, `YYYY-Www` (Monday to Sunday).
        #[arg(long)]
        week: Option<String>,
        /// `html` (one self-contained page, in French), `csv` or `json`.
        #[arg(long, default_value = "html")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Make a bearer token for a user of the admin API: prints the token
    /// (give it to the user, it is shown once) and the `[[http.users]]`
    /// block, with its SHA-256, for the configuration file.
    NewToken {
        /// The user's name.
        name: String,
        /// `viewer`, `supervisor` or `admin`.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Print the digest HA1 lines of an agent for the configuration file.
    HashPassword {
        /// SIP user name.
        username: String,
        /// Password (prefer reading it from a prompt in real use).
        password: String,
        /// Digest realm (`sip.realm`).
        #[arg(long, default_value = "permanence")]
        realm: String,
    },
}

/// `permanence callbacks cancel|handled KEY`.
#[derive(Subcommand)]
enum CallbackCommand {
    /// Cancel a callback request: nobody will call the patient back.
    Cancel {
        /// The request's key (first column of `permanence callbacks`).
        key: String,
    },
    /// Mark a callback request handled (the patient was reached by other
    /// means), under your user name.
    Handled {
        /// The request's key (first column of `permanence callbacks`).
        key: String,
    },
}

/// Logs without `RUST_LOG`: ours at info; rsipstack at warn (it logs SIP
/// messages, SDES keys included, below); the WebRTC stack at error (it
/// warns per packet while a browser's DTLS is being set up, and per stray
/// STUN request: thousands of lines at load, none actionable).
const DEFAULT_LOG_FILTER: &str = "info,rsipstack=warn,rtc=error,webrtc=error";

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match permanence_config::load(path) {
        Ok(cfg) => {
            let mut bad = false;
            if let Err(errors) = permanence_engine::media::load_prompts(&cfg) {
                for e in errors {
                    eprintln!("{e}");
                }
                bad = true;
            }
            for w in cfg.warnings() {
                eprintln!("warning: {w}");
            }
            if bad {
                return ExitCode::FAILURE;
            }
            println!(
                "{}: configuration OK ({} practices, {} agents, {} pools, {} trunks)",
                path.display(),
                cfg.practices().len(),
                cfg.agents().len(),
                cfg.pools().len(),
                cfg.trunks().len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn simulate(path: &std::path::Path, seed: Option<u64>) -> ExitCode {
    let scenario = match permanence_sim::Scenario::from_toml_file(path) {
        Ok(mut s) => {
            if let Some(seed) = seed {
                s.seed = seed;
            }
            s
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    match permanence_sim::run_scenario(&scenario) {
        Ok(summary) => match serde_json::to_string_pretty(&summary.to_json()) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot print the summary: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

async fn run(config: PathBuf, options: permanence_engine::EngineOptions) -> anyhow::Result<()> {
    let cfg = match permanence_config::load(&config) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            anyhow::bail!("invalid configuration {}", config.display());
        }
    };
    let mut options = options;
    options.config_path = config.clone();
    let engine = permanence_engine::Engine::start(cfg, options)
        .await
        .context("starting the engine")?;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    // SIGHUP reloads; SIGTERM (or the admin API) drains then exits;
    // SIGINT, or a second SIGTERM while draining, stops at once.
    loop {
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(200));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!(event = "engine.stopping", signal = "SIGINT", "stopping");
                break;
            }
            _ = hup.recv() => {
                tracing::info!(event = "config.reload_requested", signal = "SIGHUP", "reloading configuration");
                let _ = engine.reload().await;
            }
            _ = term.recv() => {
                tracing::info!(event = "engine.stopping", signal = "SIGTERM", "draining, then stopping");
                tokio::select! {
                    _ = engine.drain() => {}
                    _ = term.recv() => tracing::info!(event = "engine.stopping", signal = "SIGTERM", "second SIGTERM: stopping now"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(event = "engine.stopping", signal = "SIGINT", "stopping now"),
                }
                break;
            }
            _ = poll.tick() => {
                if engine.is_draining() {
                    tracing::info!(event = "engine.stopping", reason = "admin drain", "draining, then stopping");
                    engine.drain().await;
                    break;
                }
            }
        }
    }
    engine.shutdown().await;
    tracing::info!(event = "engine.stopped", "stopped");
    Ok(())
}

fn new_token(name: &str, role: &str) -> ExitCode {
    if permanence_config::Role::parse(role).is_none() {
        eprintln!("unknown role {role:?}: expected viewer, supervisor or admin");
        return ExitCode::FAILURE;
    }
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let token = hex::encode(bytes);
    println!("# token for {name} (shown once; keep it secret): {token}");
    println!("[[http.users]]");
    println!("name = \"{name}\"");
    println!("role = \"{role}\"");
    println!(
        "token_sha256 = \"{}\"",
        permanence_engine::admin::token_sha256(&token)
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    permanence_memory::init(&GLOBAL);
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Simulate { scenario, seed } => simulate(&scenario, seed),
        Command::Queues { config } => admin::queues(&config),
        Command::Agents { config } => admin::agents(&config),
        Command::Calls { config } => admin::calls(&config),
        Command::Audit { config, limit } => admin::audit(&config, limit),
        Command::Report {
            config,
            practice,
            month,
            week,
            format,
            output,
        } => report::report(&report::ReportArgs {
            config: &config,
            practice: &practice,
            month: month.as_deref(),
            week: week.as_deref(),
            format: &format,
            output: output.as_deref(),
        }),
        Command::Callbacks {
            config,
            practice,
            action,
        } => match (action, practice) {
            (None, practice) => admin::callbacks(&config, practice.as_deref()),
            (Some(_), Some(_)) => {
                eprintln!("permanence: --practice only applies to the list of callbacks");
                ExitCode::from(2)
            }
            (Some(CallbackCommand::Cancel { key }), None) => {
                admin::callback_action(&config, &key, false)
            }
            (Some(CallbackCommand::Handled { key }), None) => {
                admin::callback_action(&config, &key, true)
            }
        },
        Command::NewToken { name, role } => new_token(&name, &role),
        Command::HashPassword {
            username,
            password,
            realm,
        } => {
            use permanence_sip::digest::{ha1, DigestAlgorithm};
            println!(
                "ha1_md5 = \"{}\"",
                ha1(DigestAlgorithm::Md5, &username, &realm, &password)
            );
            println!(
                "ha1_sha256 = \"{}\"",
                ha1(DigestAlgorithm::Sha256, &username, &realm, &password)
            );
            ExitCode::SUCCESS
        }
        Command::Run {
            config,
            log_format,
            answer_delay_ms,
            rtp_timeout_s,
        } => {
            init_logs(log_format);
            let options = permanence_engine::EngineOptions {
                answer_delay: std::time::Duration::from_millis(answer_delay_ms),
                rtp_timeout: std::time::Duration::from_secs(rtp_timeout_s.max(1)),
                ..Default::default()
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // Idle workers give freed pages back (issue 13).
                .on_thread_park(permanence_memory::on_thread_park)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(config, options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("permanence: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
