//! The `ringcast` binary; everything lives in the library (see `lib.rs`).

fn main() -> std::process::ExitCode {
    ringcast::cli::main()
}
