fn main() {
    std::process::exit(letterbox::cli::main());
}
