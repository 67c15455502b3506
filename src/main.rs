use clap::Parser;

fn main() {
    let cli = vecgate::cli::Cli::parse();
    std::process::exit(vecgate::cli::run(cli));
}
