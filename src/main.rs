fn main() {
    std::process::exit(bootstrapctl::run(std::env::args().collect()));
}
