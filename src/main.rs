use clap::Parser;

/// mimalloc: per-thread free lists suit a proxy's many short-lived allocations per request
/// (glibc's malloc was about a tenth of the CPU under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = vecgate::cli::Cli::parse();
    std::process::exit(vecgate::cli::run(cli));
}
