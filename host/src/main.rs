//! The `tresor` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tresor::cli::Cli::parse().run()
}
