//! The `ringcast` binary; everything lives in the library (see `lib.rs`).

/// mimalloc rather than glibc's malloc: see the reason beside it in Cargo.toml (measured in
/// docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ringcast::cli::main()
}
