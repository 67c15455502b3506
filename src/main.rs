use clap::Parser;

/// jemalloc: a proxy makes many short-lived allocations per request, and glibc's malloc was
/// about a tenth of the CPU under load; jemalloc also hands freed memory back over time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = vecgate::cli::Cli::parse();
    std::process::exit(vecgate::cli::run(cli));
}
