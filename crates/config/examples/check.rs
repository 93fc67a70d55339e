//! Validates a configuration and prints its errors or warnings:
//! `cargo run -p permanence-config --example check -- config/permanence.toml`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: check <main config file>");
        return ExitCode::from(2);
    };
    match permanence_config::load(std::path::Path::new(&path)) {
        Ok(c) => {
            for w in c.warnings() {
                println!("warning: {w}");
            }
            println!(
                "OK: {} practices, {} agents, {} pools, {} trunks",
                c.practices().len(),
                c.agents().len(),
                c.pools().len(),
                c.trunks().len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}
