use clap::Parser;
use ingot::cli::{Cli, ReportFormat};
use ingot::output;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.verbose);
    let (format, image) = cli.report();
    let code = match ingot::run::run(&cli) {
        Ok(out) => {
            let text = if cli.json || format == ReportFormat::Json {
                serde_json::to_string_pretty(&out.json()).expect("json")
            } else {
                out.text()
            };
            // A closed pipe (`ingot layers | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{text}");
            out.code()
        }
        Err(e) => {
            if let (ReportFormat::Json | ReportFormat::Github, Some(image)) = (format, image) {
                let mut stdout = std::io::stdout().lock();
                for d in output::report::diagnostics(&e, image) {
                    let line = match format {
                        ReportFormat::Github => output::report::github(&d),
                        _ => output::report::json(&d),
                    };
                    let _ = writeln!(stdout, "{line}");
                }
            } else if cli.json {
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
