//! `completions` and `man`: documents generated from the clap definition
//! in `cli`, so that they cannot drift from the arguments ingot parses.

use crate::cli::Cli;
use crate::error::Error;
use crate::output::Output;
use clap::CommandFactory;
use std::path::Path;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Output {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ingot", &mut script);
    Output::Document(String::from_utf8(script).expect("clap_complete writes UTF-8"))
}

/// `ingot man`: the top page; `ingot man SUB`: that subcommand's page
/// (`ingot-SUB(1)`, as `man git-commit` or `man cargo-build`); `--out DIR`:
/// every page, as packagers install them.
pub fn man(subcommand: Option<&str>, out: Option<&Path>) -> Result<Output, Error> {
    // No page for clap's `help` subcommand (generate_to skips it too).
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Built, a subcommand's display name is `ingot-render` (its page's
    // title and file name) and its usage says `ingot render`.
    cmd.build();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        // generate_to writes `ingot.1` and one `ingot-SUB.1` per subcommand.
        clap_mangen::generate_to(Cli::command(), dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<_> = std::iter::once("ingot".to_string())
            .chain(
                cmd.get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| format!("ingot-{}", s.get_name())),
            )
            .map(|name| dir.join(format!("{name}.1")))
            .collect();
        files.sort();
        return Ok(Output::ManPages(files));
    }
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let names = || {
                cmd.get_subcommands()
                    .map(|s| s.get_name().to_string())
                    .collect::<Vec<_>>()
            };
            match cmd.find_subcommand(name) {
                Some(sub) => sub.clone(),
                None => {
                    return Err(Error::UnknownSubcommand {
                        name: name.to_string(),
                        known: names(),
                    })
                }
            }
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|source| Error::Write {
            path: "(stdout)".into(),
            source,
        })?;
    Ok(Output::Document(
        String::from_utf8(roff).expect("clap_mangen writes UTF-8"),
    ))
}
