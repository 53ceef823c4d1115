//! `host-aggregator`, the binary: flags in, [`cli::main`] runs them. Not a
//! library; everything it does lives in the `host_aggregator` crate.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
