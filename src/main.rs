use clap::Parser;
use ingot::cli::Cli;
use ingot::output;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let code = match ingot::run::run(&cli) {
        Ok(out) => {
            let text = if cli.json {
                serde_json::to_string_pretty(&out.json()).expect("json")
            } else {
                out.text()
            };
            // A closed pipe (`ingot layers | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{text}");
            out.code()
        }
        Err(e) => {
            if cli.json {
                let v = output::error_json(&e);
                let _ = writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string_pretty(&v).expect("json")
                );
            }
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.code()
        }
    };
    ExitCode::from(code as u8)
}

fn init_logs(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("INGOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("ingot={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
