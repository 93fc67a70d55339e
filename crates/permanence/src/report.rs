//! `permanence report`: a practice's monthly or weekly report, read from
//! the call records database directly (read-only: it works with the engine
//! running or stopped, for any period still retained).

use std::path::Path;
use std::process::ExitCode;

use permanence_report::{Format, Period, PracticeInfo, DEFAULT_SERVICE_LEVEL_SECS};

/// What to report on.
pub struct ReportArgs<'a> {
    /// The configuration file (records path, the practice's name and zone).
    pub config: &'a Path,
    /// The practice id.
    pub practice: &'a str,
    /// `YYYY-MM`, if a month.
    pub month: Option<&'a str>,
    /// `YYYY-Www`, if a week.
    pub week: Option<&'a str>,
    /// `html`, `csv` or `json`.
    pub format: &'a str,
    /// Where to write it (standard output when `None`).
    pub output: Option<&'a Path>,
}

/// Makes the report and writes it; exit status 2 on a bad argument, 1 when
/// the configuration or the records cannot be read.
pub fn report(args: &ReportArgs<'_>) -> ExitCode {
    match make(args) {
        Ok(text) => write(args.output, &text),
        Err((code, message)) => {
            eprintln!("permanence report: {message}");
            ExitCode::from(code)
        }
    }
}

fn make(args: &ReportArgs<'_>) -> Result<String, (u8, String)> {
    let usage = |e: permanence_report::ReportError| (2, e.to_string());
    let format: Format = args.format.parse().map_err(usage)?;
    let period = match (args.month, args.week) {
        (Some(m), None) => Period::month(m).map_err(usage)?,
        (None, Some(w)) => Period::week(w).map_err(usage)?,
        _ => return Err((2, "give one of --month YYYY-MM or --week YYYY-Www".into())),
    };
    let cfg = permanence_config::load(args.config).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        (1, lines.join("\n"))
    })?;
    let practice = cfg
        .practice(args.practice)
        .ok_or_else(|| (2, format!("no practice {}", args.practice)))?;
    let info = PracticeInfo {
        id: practice.id.clone(),
        name: practice.name.clone(),
        timezone: practice.timezone,
    };
    let path = &cfg.records.path;
    let reader = permanence_records::RecordReader::open(path)
        .map_err(|e| (1, format!("{}: {e}", path.display())))?;
    let report = permanence_report::load(&reader, &info, period, DEFAULT_SERVICE_LEVEL_SECS)
        .map_err(|e| (1, e.to_string()))?;
    permanence_report::render(&report, format).map_err(|e| (1, e.to_string()))
}

fn write(output: Option<&Path>, text: &str) -> ExitCode {
    let result = match output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("permanence report: {e}");
            ExitCode::FAILURE
        }
    }
}
